/*
 * bench/evict_trace.c: the eviction benchmark of issue #6. Replays one Zipf trace against an exact
 * LRU simulation and against the real store (edge/store.c on LMDB), and prints object and byte hit
 * ratios side by side.
 *
 *   evict-trace [--objects N] [--requests R] [--seed S] [--alpha A] [--cache-pct P] [--dir DIR] [--lru-only]
 *
 * Defaults: N = 1,000,000 objects, R = 5 N requests, seed 1, alpha 0.9, P = 10 (% of the total size).
 *
 * The trace: object k (0-based) is requested with probability proportional to 1 / (k + 1)^alpha
 * (inverse-CDF sampling, xoshiro256** seeded by splitmix64(seed)). Object sizes are log-uniform in
 * [1 KiB, 64 KiB] (drawn from the same generator before the trace), so one object is one chunk.
 * Only the second half of the trace is counted (the first half warms both caches up).
 *
 * Bytes: both sides count an object at what the store charges for it (store.c `charge`: an LMDB
 * value too big for a leaf node takes whole 4 KiB overflow pages, so a 5 KiB body costs 8 KiB; plus
 * its record), mirrored in `charged_size` below. The budget C is P% of the sum of the charged sizes
 * of all N objects. The LRU gets exactly C. The store keeps its live bytes between 80% and 90% of
 * its capacity (evicting to 80% once past 90%), so it is opened with max_size_bytes = C / 0.85:
 * its live bytes then average about C. The bench samples the store's live bytes over the counted
 * half and also runs the LRU again with that mean as its budget ("LRU @store mean"), so that the
 * comparison holds even if LMDB's own overhead made the store evict earlier (a MAP_FULL lowers the
 * capacity it aims at: see store.c, "Budget").
 *
 * The store replay is what the handler does: a request is a hit when edge_store_get returns the
 * object (then edge_store_touch), else a miss that fills it (CHUNK ops, then COMMIT with group =
 * its hash). Ops are submitted without waiting; the bench calls edge_store_flush before looking up
 * an object whose fill is still queued (a real edge would coalesce that request onto the fill) and
 * after every FLUSH_EVERY fills, so batches look like a busy edge's.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "edge/store.h"

#define MIN_SIZE 1024
#define MAX_SIZE (64 * 1024)
#define PAGE_SIZE 4096 /* what store.c's charge() assumes on this machine: checked at start */
#define FLUSH_EVERY 32
#define SAMPLE_EVERY 1024 /* requests between two samples of the store's live bytes */
#define KEY_FMT "http://bench.test/o/%08" PRIu32
#define META "bench-meta-0123456789abcdef"

struct options {
    uint32_t objects;
    uint64_t requests;
    uint64_t seed;
    double alpha;
    double cache_pct;
    const char *dir;
    int lru_only;
};

struct result {
    uint64_t requests, hits, req_bytes, hit_bytes;
};

struct fill {
    edge_store_op_t chunk;
    edge_store_op_t commit;
    int remaining; /* atomic: ops whose on_done has not run */
    int failed;    /* atomic */
    char key[48];
};

static uint64_t rng_s[4];
static unsigned char body_buf[MAX_SIZE];
static uint64_t failed_fills;

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static uint64_t rng_next(void)
{
    uint64_t result = rotl(rng_s[1] * 5, 7) * 9, t = rng_s[1] << 17;
    rng_s[2] ^= rng_s[0];
    rng_s[3] ^= rng_s[1];
    rng_s[1] ^= rng_s[2];
    rng_s[0] ^= rng_s[3];
    rng_s[2] ^= t;
    rng_s[3] = rotl(rng_s[3], 45);
    return result;
}

static double rng_unit(void)
{
    return (double)(rng_next() >> 11) * 0x1.0p-53;
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* store.c's charge(): node header + key + value in a leaf page, or whole overflow pages. */
static uint64_t lmdb_charge(size_t key_len, size_t val_len)
{
    size_t node_max = (((PAGE_SIZE - 16) / 2) & ~(size_t)1) - 2, node = 8 + key_len + val_len;
    if (node <= node_max)
        return node + 2;
    return (uint64_t)((val_len + 16 + PAGE_SIZE - 1) / PAGE_SIZE) * PAGE_SIZE;
}

/* What the store charges for object `id` of `size` body bytes: its record (96-byte header, key, meta) and its chunks. */
static uint64_t charged_size(uint32_t id, uint32_t size)
{
    char key[48];
    int key_len = snprintf(key, sizeof(key), KEY_FMT, id);
    uint64_t c = lmdb_charge(EDGE_STORE_HASH_LEN, 96 + (size_t)key_len + strlen(META));
    for (uint32_t off = 0; off < size; off += EDGE_STORE_CHUNK_SIZE)
        c += lmdb_charge(12, size - off < EDGE_STORE_CHUNK_SIZE ? size - off : EDGE_STORE_CHUNK_SIZE);
    return c;
}

/* ---- exact LRU ---- */

struct lru {
    uint32_t *prev, *next; /* a doubly linked list through the object ids; UINT32_MAX ends it */
    uint8_t *in;
    uint32_t head, tail; /* head: most recent */
    uint64_t bytes, budget;
};

static void lru_unlink(struct lru *l, uint32_t id)
{
    if (l->prev[id] != UINT32_MAX)
        l->next[l->prev[id]] = l->next[id];
    else
        l->head = l->next[id];
    if (l->next[id] != UINT32_MAX)
        l->prev[l->next[id]] = l->prev[id];
    else
        l->tail = l->prev[id];
}

static void lru_push(struct lru *l, uint32_t id)
{
    l->prev[id] = UINT32_MAX;
    l->next[id] = l->head;
    if (l->head != UINT32_MAX)
        l->prev[l->head] = id;
    l->head = id;
    if (l->tail == UINT32_MAX)
        l->tail = id;
}

static struct result run_lru(const struct options *o, const uint32_t *trace, const uint32_t *sizes, const uint64_t *charges,
                             uint64_t budget)
{
    struct lru l = {.prev = malloc(o->objects * sizeof(uint32_t)),
                    .next = malloc(o->objects * sizeof(uint32_t)),
                    .in = calloc(o->objects, 1),
                    .head = UINT32_MAX,
                    .tail = UINT32_MAX,
                    .budget = budget};
    struct result r = {0};
    if (l.prev == NULL || l.next == NULL || l.in == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (uint64_t i = 0; i < o->requests; ++i) {
        uint32_t id = trace[i];
        int counted = i >= o->requests / 2;
        if (counted) {
            r.requests += 1;
            r.req_bytes += sizes[id];
        }
        if (l.in[id]) {
            if (counted) {
                r.hits += 1;
                r.hit_bytes += sizes[id];
            }
            lru_unlink(&l, id);
            lru_push(&l, id);
            continue;
        }
        if (charges[id] > l.budget)
            continue;
        while (l.bytes + charges[id] > l.budget) {
            uint32_t victim = l.tail;
            lru_unlink(&l, victim);
            l.in[victim] = 0;
            l.bytes -= charges[victim];
        }
        lru_push(&l, id);
        l.in[id] = 1;
        l.bytes += charges[id];
    }
    free(l.prev);
    free(l.next);
    free(l.in);
    return r;
}

/* ---- the real store ---- */

static void on_fill_op_done(edge_store_op_t *op, int result)
{
    struct fill *f = op->data_owner;
    if (result != 0)
        __atomic_store_n(&f->failed, 1, __ATOMIC_RELAXED);
    if (__atomic_sub_fetch(&f->remaining, 1, __ATOMIC_ACQ_REL) == 0) {
        if (__atomic_load_n(&f->failed, __ATOMIC_RELAXED))
            __atomic_fetch_add(&failed_fills, 1, __ATOMIC_RELAXED);
        free(f);
    }
}

static void submit_fill(edge_store_t *store, uint32_t id, uint32_t size, const uint8_t *hash)
{
    struct fill *f = calloc(1, sizeof(*f));
    if (f == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    /* sizes are at most MAX_SIZE = EDGE_STORE_CHUNK_SIZE (checked in main): one chunk */
    uint64_t fill_id = edge_store_new_fill_id(store);
    int key_len = snprintf(f->key, sizeof(f->key), KEY_FMT, id);
    f->remaining = 2;
    f->chunk = (edge_store_op_t){.kind = EDGE_STORE_OP_CHUNK,
                                 .fill_id = fill_id,
                                 .chunk_index = 0,
                                 .data = body_buf,
                                 .len = size,
                                 .on_done = on_fill_op_done,
                                 .data_owner = f};
    f->commit = (edge_store_op_t){.kind = EDGE_STORE_OP_COMMIT,
                                  .fill_id = fill_id,
                                  .data = META,
                                  .len = strlen(META),
                                  .key = f->key,
                                  .key_len = (size_t)key_len,
                                  .body_size = size,
                                  .num_chunks = 1,
                                  .on_done = on_fill_op_done,
                                  .data_owner = f};
    memcpy(f->commit.hash, hash, EDGE_STORE_HASH_LEN);
    memcpy(f->commit.group, hash, EDGE_STORE_HASH_LEN);
    edge_store_submit(store, &f->chunk);
    edge_store_submit(store, &f->commit);
}

static int rm_env(const char *env)
{
    char p[1100];
    snprintf(p, sizeof(p), "%s/data.mdb", env);
    unlink(p);
    snprintf(p, sizeof(p), "%s/lock.mdb", env);
    unlink(p);
    return rmdir(env);
}

static struct result run_store(const struct options *o, const uint32_t *trace, const uint32_t *sizes, uint64_t max_size,
                               double *mean_live, edge_store_stats_t *final)
{
    char base[1024], env[1100], key[48];
    struct result r = {0};
    uint32_t pending[FLUSH_EVERY];
    size_t npending = 0;
    uint64_t samples = 0;
    double live_sum = 0;

    if (o->dir != NULL) {
        snprintf(base, sizeof(base), "%s", o->dir);
        if (mkdir(base, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "%s: %s\n", base, strerror(errno));
            exit(1);
        }
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(base, sizeof(base), "%s/evict-trace.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
        if (mkdtemp(base) == NULL) {
            fprintf(stderr, "mkdtemp %s: %s\n", base, strerror(errno));
            exit(1);
        }
    }
    snprintf(env, sizeof(env), "%s/env", base);
    rm_env(env); /* start empty */

    edge_store_settings_t settings = {.path = env, .max_size_bytes = max_size, .max_readers = 0};
    char err[512];
    edge_store_t *store = edge_store_open(&settings, err, sizeof(err));
    if (store == NULL) {
        fprintf(stderr, "%s\n", err);
        exit(1);
    }

    double t0 = now_sec();
    for (uint64_t i = 0; i < o->requests; ++i) {
        uint32_t id = trace[i];
        int counted = i >= o->requests / 2;
        uint8_t hash[EDGE_STORE_HASH_LEN];
        int key_len = snprintf(key, sizeof(key), KEY_FMT, id);
        edge_store_hash(key, (size_t)key_len, hash);

        for (size_t j = 0; j < npending; ++j) {
            if (pending[j] == id) {
                edge_store_flush(store);
                npending = 0;
                break;
            }
        }

        edge_store_txn_t *txn;
        edge_store_object_t obj;
        int rc, hit = 0;
        if ((rc = edge_store_read_begin(store, &txn)) != 0) {
            fprintf(stderr, "read_begin: %s\n", edge_store_strerror(rc));
            exit(1);
        }
        rc = edge_store_get(txn, hash, &obj);
        if (rc == 0 && obj.key_len == (size_t)key_len && memcmp(obj.key, key, obj.key_len) == 0 && obj.body_size == sizes[id]) {
            hit = 1;
            edge_store_touch(store, obj.fill_id);
        } else if (rc != 0 && rc != EDGE_STORE_NOTFOUND) {
            fprintf(stderr, "get: %s\n", edge_store_strerror(rc));
            exit(1);
        }
        edge_store_read_end(txn);

        if (counted) {
            r.requests += 1;
            r.req_bytes += sizes[id];
            if (hit) {
                r.hits += 1;
                r.hit_bytes += sizes[id];
            }
            if (i % SAMPLE_EVERY == 0) {
                edge_store_stats_t st;
                edge_store_get_stats(store, &st);
                live_sum += (double)st.live_bytes;
                samples += 1;
            }
        }
        if (!hit) {
            submit_fill(store, id, sizes[id], hash);
            pending[npending++] = id;
            if (npending == FLUSH_EVERY) {
                edge_store_flush(store);
                npending = 0;
            }
        }
        if ((i + 1) % (o->requests / 10 < 1 ? 1 : o->requests / 10) == 0)
            fprintf(stderr, "  store: %3d%% of the trace, %.0f s\n", (int)((i + 1) * 100 / o->requests), now_sec() - t0);
    }
    edge_store_flush(store);
    edge_store_get_stats(store, final);
    edge_store_close(store);
    *mean_live = samples != 0 ? live_sum / (double)samples : 0;
    rm_env(env);
    if (o->dir == NULL)
        rmdir(base);
    return r;
}

/* ---- main ---- */

static void usage(void)
{
    fprintf(stderr, "usage: evict-trace [--objects N] [--requests R] [--seed S] [--alpha A] [--cache-pct P] [--dir DIR] "
                    "[--lru-only]\n");
    exit(2);
}

static void print_row(const char *name, uint64_t bytes, const struct result *r)
{
    printf("%-22s %14" PRIu64 "  %8.4f  %8.4f\n", name, bytes, r->requests ? (double)r->hits / (double)r->requests : 0,
           r->req_bytes ? (double)r->hit_bytes / (double)r->req_bytes : 0);
}

int main(int argc, char **argv)
{
    struct options o = {.objects = 1000000, .requests = 0, .seed = 1, .alpha = 0.9, .cache_pct = 10};

    for (int i = 1; i < argc; ++i) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--lru-only") == 0) {
            o.lru_only = 1;
            continue;
        }
        if (v == NULL)
            usage();
        ++i;
        if (strcmp(a, "--objects") == 0)
            o.objects = (uint32_t)strtoul(v, NULL, 10);
        else if (strcmp(a, "--requests") == 0)
            o.requests = strtoull(v, NULL, 10);
        else if (strcmp(a, "--seed") == 0)
            o.seed = strtoull(v, NULL, 10);
        else if (strcmp(a, "--alpha") == 0)
            o.alpha = strtod(v, NULL);
        else if (strcmp(a, "--cache-pct") == 0)
            o.cache_pct = strtod(v, NULL);
        else if (strcmp(a, "--dir") == 0)
            o.dir = v;
        else
            usage();
    }
    if (o.objects < 2 || o.objects >= UINT32_MAX || o.cache_pct <= 0 || o.cache_pct > 100 || o.alpha <= 0)
        usage();
    if (o.requests == 0)
        o.requests = 5 * (uint64_t)o.objects;
    _Static_assert(MAX_SIZE <= EDGE_STORE_CHUNK_SIZE, "one chunk per object");
    if (sysconf(_SC_PAGESIZE) != PAGE_SIZE) {
        fprintf(stderr, "the charge model assumes %d-byte pages\n", PAGE_SIZE);
        return 1;
    }

    /* sizes, then the trace, from one generator */
    uint64_t sm = o.seed;
    for (int i = 0; i < 4; ++i)
        rng_s[i] = splitmix64(&sm);
    uint32_t *sizes = malloc(o.objects * sizeof(*sizes));
    uint64_t *charges = malloc(o.objects * sizeof(*charges));
    double *cdf = malloc(o.objects * sizeof(*cdf));
    uint32_t *trace = malloc(o.requests * sizeof(*trace));
    if (sizes == NULL || charges == NULL || cdf == NULL || trace == NULL) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    uint64_t total_raw = 0, total_charged = 0;
    for (uint32_t k = 0; k < o.objects; ++k) {
        double s = exp(log(MIN_SIZE) + rng_unit() * (log(MAX_SIZE) - log(MIN_SIZE)));
        sizes[k] = (uint32_t)s;
        if (sizes[k] < MIN_SIZE)
            sizes[k] = MIN_SIZE;
        if (sizes[k] > MAX_SIZE)
            sizes[k] = MAX_SIZE;
        charges[k] = charged_size(k, sizes[k]);
        total_raw += sizes[k];
        total_charged += charges[k];
    }
    double sum = 0;
    for (uint32_t k = 0; k < o.objects; ++k) {
        sum += 1.0 / pow((double)k + 1, o.alpha);
        cdf[k] = sum;
    }
    for (uint64_t i = 0; i < o.requests; ++i) {
        double u = rng_unit() * sum;
        uint32_t lo = 0, hi = o.objects - 1;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (cdf[mid] < u)
                lo = mid + 1;
            else
                hi = mid;
        }
        trace[i] = lo;
    }
    free(cdf);

    uint64_t budget = (uint64_t)((double)total_charged * o.cache_pct / 100);
    uint64_t max_size = (uint64_t)((double)budget / 0.85);
    printf("objects %" PRIu32 ", requests %" PRIu64 " (second half counted), zipf alpha %.2f, seed %" PRIu64 "\n", o.objects,
           o.requests, o.alpha, o.seed);
    printf("total size %" PRIu64 " bytes (%" PRIu64 " charged as the store does), cache %.1f%%: %" PRIu64 " charged bytes\n",
           total_raw, total_charged, o.cache_pct, budget);

    double t0 = now_sec();
    struct result lru = run_lru(&o, trace, sizes, charges, budget);
    fprintf(stderr, "  lru: %.1f s\n", now_sec() - t0);

    printf("%-22s %14s  %8s  %8s\n", "policy", "cache bytes", "obj hit", "byte hit");
    print_row("LRU (exact)", budget, &lru);
    if (o.lru_only)
        return 0;
    fflush(stdout);

    double mean_live;
    edge_store_stats_t st;
    t0 = now_sec();
    struct result sr = run_store(&o, trace, sizes, max_size, &mean_live, &st);
    double secs = now_sec() - t0;
    struct result lru2 = run_lru(&o, trace, sizes, charges, (uint64_t)mean_live);
    print_row("LRU @store mean", (uint64_t)mean_live, &lru2);
    print_row("store (edge/store.c)", (uint64_t)mean_live, &sr);
    printf("store: map size %" PRIu64 ", mean live bytes %.0f over the counted half, %" PRIu64 " evictions, %" PRIu64
           " map_full, %" PRIu64 " failed fills, %" PRIu64 " commits, %.0f s\n",
           max_size, mean_live, st.evictions, st.map_full, failed_fills, st.commits, secs);
    free(sizes);
    free(charges);
    free(trace);
    return 0;
}
