/*
 * edge/store.c: the persistent object store, on LMDB. The only file that includes lmdb.h.
 *
 * What it owns: the one MDB_env of the process, the writer thread and its op queue, the in-memory
 * access bits used by second-chance eviction, and the counters of edge_store_get_stats.
 *
 * Threads and locks:
 * - Any thread: edge_store_submit/flush take `mutex` (the queue); edge_store_read_* use their own
 *   read-only transaction (MDB_NOTLS, so several per thread); edge_store_touch sets a byte with a
 *   relaxed atomic store; edge_store_get_stats reads atomics.
 * - The writer thread is the only one to open write transactions. All the `w` state (live bytes,
 *   objects, next FIFO seq, counters) belongs to it; a copy is modified inside a transaction and
 *   becomes current only when the transaction commits, then is published to `pub` with atomics.
 *
 * State changes, all on the writer thread:
 * - CHUNK writes chunk (fill, n) and, if missing, the pending record of the fill.
 * - COMMIT checks that chunks 0..num_chunks-1 are all there and add up to body_size, then writes
 *   the object record and its FIFO entry and deletes the pending record, replacing any object at
 *   the same hash. An incomplete fill is aborted instead: an object is whole or absent.
 * - ABORT and the sweep of fills found pending at open delete the chunks and the pending record.
 * - DELETE and eviction delete record, FIFO entry and chunks together.
 *
 * On-disk layout (named databases of one environment; integers in records are native-endian, keys
 * are big-endian so that LMDB's byte order is numeric order):
 *   "objects"  hash[32]               -> struct record_hdr + key + meta
 *   "chunks"   fill_id be64, n be32   -> the chunk bytes
 *   "pending"  fill_id be64           -> struct pending_rec
 *   "fifo"     seq be64               -> struct fifo_rec (hash, fill_id, charged bytes)
 *   "stats"    "stats"                -> struct stats_rec (live bytes, objects, highest fill id)
 *
 * Budget: `live_bytes` charges every value by the space LMDB gives it: a value too big for a node
 * takes whole overflow pages, so a 64 KiB chunk costs 17 pages of 4 KiB, not 64 KiB. After a batch,
 * past 90% of the capacity, eviction (its own bounded transactions) brings live bytes to 80%, then
 * one small transaction follows: pages freed by transaction N are reusable from N+2 on. The capacity
 * starts at the budget; an MDB_MAP_FULL that eviction cured lowers it to what the map really held
 * (overflow values need runs of contiguous free pages, and the free list fragments), and each later
 * eviction pass raises it by 0.1% of the budget, so eviction runs before the next MAP_FULL.
 *
 * Not handled: a CHUNK after the COMMIT of its fill, or an ABORT of a committed fill (caller bugs:
 * the chunks of a live object could then be deleted); a second process on the same environment
 * (its fill ids would collide and the sweep at open would take its fills in progress for dead).
 */
#include <assert.h>
#include <errno.h>
#include <lmdb.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "edge/store.h"

#define RECORD_MAGIC 0x4a424f45u  /* "EOBJ" */
#define PENDING_MAGIC 0x444e5045u /* "EPND" */
#define STATS_MAGIC 0x54535445u   /* "ETST" */
#define FORMAT_VERSION 1

#define MIN_READERS 126
#define BATCH_MAX_OPS 64
#define BATCH_MAX_BYTES (8 * 1024 * 1024)
#define EVICT_HIGH_PCT 90
#define EVICT_LOW_PCT 80
#define EVICT_PER_TXN 256        /* objects examined per eviction transaction */
#define EVICT_MAX_EXAMINED 65536 /* per eviction pass */
#define SWEEP_CHUNKS_PER_TXN 256
#define TOUCH_SLOTS (1u << 16)
#define DROPPED_SLOTS 256
#define OP_BARRIER ((edge_store_op_kind_t)100) /* internal: edge_store_flush */

#define CHUNK_KEY_LEN 12
#define FILL_KEY_LEN 8

/* The object record: this header, then key_len bytes of key, then meta_len bytes of meta. */
struct record_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t hdr_size; /* sizeof(struct record_hdr), so that a later version can grow it */
    uint32_t key_len;
    uint32_t meta_len;
    uint64_t fill_id;
    uint64_t fifo_seq;
    uint64_t body_size;
    uint32_t num_chunks;
    uint32_t reserved;
};
_Static_assert(sizeof(struct record_hdr) == 48, "on-disk record header layout");

struct pending_rec {
    uint32_t magic;
    uint32_t version;
};
_Static_assert(sizeof(struct pending_rec) == 8, "on-disk pending record layout");

struct fifo_rec {
    uint8_t hash[EDGE_STORE_HASH_LEN];
    uint64_t fill_id;
    uint64_t charge; /* bytes charged for the object (record + chunks) when it was committed */
};
_Static_assert(sizeof(struct fifo_rec) == 48, "on-disk fifo record layout");

struct stats_rec {
    uint32_t magic;
    uint32_t version;
    uint64_t live_bytes;
    uint64_t objects;
    uint64_t max_fill_id;
    uint64_t reserved[4];
};
_Static_assert(sizeof(struct stats_rec) == 64, "on-disk stats record layout");

/* Writer-owned state: a copy lives in each write transaction and replaces `w` on commit. */
struct wstate {
    uint64_t live_bytes;
    uint64_t objects;
    uint64_t max_fill_id;
    uint64_t next_seq;
    uint64_t evictions;
    uint64_t swept_fills;
    uint64_t dropped_fills;
};

struct st_edge_store_t {
    MDB_env *env;
    MDB_dbi dbi_objects, dbi_chunks, dbi_pending, dbi_fifo, dbi_stats;
    uint64_t budget_bytes; /* max_size_bytes rounded down to the page size */
    size_t page_size;
    size_t node_max; /* above this a key+value pair goes to overflow pages */
    char *path;

    uint64_t next_fill_id;        /* atomic */
    uint8_t touched[TOUCH_SLOTS]; /* atomic bytes, see edge_store_touch */

    pthread_mutex_t mutex;     /* guards the queue, closing, and barrier completion */
    pthread_cond_t cond;       /* the writer waits on it for ops */
    pthread_cond_t flush_cond; /* edge_store_flush waits on it */
    edge_store_op_t *head, *tail;
    int closing;
    pthread_t writer;

    /* writer thread only */
    struct wstate w;
    uint64_t capacity_bytes; /* live bytes the map really holds, learnt from MDB_MAP_FULL (see run_batch) */
    uint64_t sweep_limit;    /* pending fills below this id died in an earlier run */
    int sweeping;
    edge_store_op_t *deferred_barriers; /* flushes waiting for the sweep to finish */
    uint64_t dropped[DROPPED_SLOTS];    /* fills dropped because the map stayed full */
    unsigned dropped_next;

    /* published counters (atomics) */
    struct {
        uint64_t live_bytes, objects, evictions, commits, map_full, swept_fills, dropped_fills;
    } pub;
};

struct st_edge_store_txn_t {
    edge_store_t *store;
    MDB_txn *txn;
};

struct wtxn {
    edge_store_t *s;
    MDB_txn *txn;
    struct wstate st;
};

struct barrier {
    edge_store_op_t op;
    int done;
};

/* ---- helpers ---- */

static void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_error(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fputs("[edge/store] ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; --i, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; --i, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t get_be32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t sub_clamp(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* The bytes LMDB spends on a key/value pair: node header + key + value in a leaf page, or whole
 * overflow pages (16-byte page header included) once the node is too big for a leaf. */
static uint64_t charge(const edge_store_t *s, size_t key_len, size_t val_len)
{
    size_t node = 8 + key_len + val_len;
    if (node <= s->node_max)
        return node + 2; /* + the page's index slot */
    return (uint64_t)((val_len + 16 + s->page_size - 1) / s->page_size) * s->page_size;
}

static size_t touch_index(uint64_t fill_id)
{
    return (size_t)((fill_id * 0x9E3779B97F4A7C15ull) >> 48) & (TOUCH_SLOTS - 1);
}

static int take_touch(edge_store_t *s, uint64_t fill_id)
{
    uint8_t *slot = &s->touched[touch_index(fill_id)];
    if (!__atomic_load_n(slot, __ATOMIC_RELAXED))
        return 0;
    __atomic_store_n(slot, 0, __ATOMIC_RELAXED);
    return 1;
}

static int is_dropped(edge_store_t *s, uint64_t fill_id)
{
    for (size_t i = 0; i < DROPPED_SLOTS; ++i)
        if (s->dropped[i] == fill_id)
            return 1;
    return 0;
}

static void set_dropped(edge_store_t *s, uint64_t fill_id)
{
    if (is_dropped(s, fill_id))
        return;
    s->dropped[s->dropped_next] = fill_id;
    s->dropped_next = (s->dropped_next + 1) % DROPPED_SLOTS;
}

static void clear_dropped(edge_store_t *s, uint64_t fill_id)
{
    for (size_t i = 0; i < DROPPED_SLOTS; ++i)
        if (s->dropped[i] == fill_id)
            s->dropped[i] = 0;
}

/**
 * Validates an object record read from LMDB.
 * @return 0 with *hdr filled, or EDGE_STORE_ECORRUPT
 */
static int parse_record(const MDB_val *v, struct record_hdr *hdr)
{
    if (v->mv_size < sizeof(*hdr))
        return EDGE_STORE_ECORRUPT;
    memcpy(hdr, v->mv_data, sizeof(*hdr)); /* LMDB values are only 2-byte aligned */
    if (hdr->magic != RECORD_MAGIC || hdr->version != FORMAT_VERSION || hdr->hdr_size != sizeof(*hdr))
        return EDGE_STORE_ECORRUPT;
    if ((uint64_t)sizeof(*hdr) + hdr->key_len + hdr->meta_len != v->mv_size)
        return EDGE_STORE_ECORRUPT;
    if (hdr->fill_id == 0 || (hdr->num_chunks == 0 && hdr->body_size != 0))
        return EDGE_STORE_ECORRUPT;
    return 0;
}

/* ---- write transactions (writer thread) ---- */

static int wtxn_begin(edge_store_t *s, struct wtxn *w)
{
    w->s = s;
    w->st = s->w;
    return mdb_txn_begin(s->env, NULL, 0, &w->txn);
}

static int wtxn_commit(struct wtxn *w)
{
    edge_store_t *s = w->s;
    struct stats_rec rec = {STATS_MAGIC, FORMAT_VERSION, w->st.live_bytes, w->st.objects, w->st.max_fill_id, {0}};
    MDB_val k = {5, "stats"}, v = {sizeof(rec), &rec};
    int rc;

    if ((rc = mdb_put(w->txn, s->dbi_stats, &k, &v, 0)) != 0) {
        mdb_txn_abort(w->txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(w->txn)) != 0)
        return rc;
    s->w = w->st;
    __atomic_store_n(&s->pub.live_bytes, s->w.live_bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.objects, s->w.objects, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.evictions, s->w.evictions, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.swept_fills, s->w.swept_fills, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.dropped_fills, s->w.dropped_fills, __ATOMIC_RELAXED);
    __atomic_fetch_add(&s->pub.commits, 1, __ATOMIC_RELAXED);
    return 0;
}

static void note_fill_id(struct wtxn *w, uint64_t fill_id)
{
    if (fill_id > w->st.max_fill_id)
        w->st.max_fill_id = fill_id;
}

/**
 * Deletes chunks of `fill_id`, at most `max` of them (0: no limit).
 * @param[out] all_gone  set to 1 when no chunk of the fill is left
 * @return 0 or an LMDB error (the transaction is then unusable)
 */
static int delete_chunks(struct wtxn *w, uint64_t fill_id, size_t max, int *all_gone)
{
    MDB_cursor *cur;
    uint8_t kbuf[CHUNK_KEY_LEN];
    MDB_val k, v;
    size_t n = 0;
    int rc;

    *all_gone = 0;
    if ((rc = mdb_cursor_open(w->txn, w->s->dbi_chunks, &cur)) != 0)
        return rc;
    for (;;) {
        if (max != 0 && n == max)
            break;
        put_be64(kbuf, fill_id);
        put_be32(kbuf + 8, 0);
        k.mv_size = sizeof(kbuf);
        k.mv_data = kbuf;
        /* seek again after each delete: simpler than reasoning about the cursor after mdb_cursor_del */
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size != CHUNK_KEY_LEN || get_be64(k.mv_data) != fill_id))) {
            *all_gone = 1;
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
        w->st.live_bytes = sub_clamp(w->st.live_bytes, charge(w->s, CHUNK_KEY_LEN, v.mv_size));
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        ++n;
    }
    mdb_cursor_close(cur);
    return rc;
}

static int del_ignore_missing(MDB_txn *txn, MDB_dbi dbi, void *key, size_t key_len)
{
    MDB_val k = {key_len, key};
    int rc = mdb_del(txn, dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Deletes every chunk and the pending record of a fill. */
static int abort_fill(struct wtxn *w, uint64_t fill_id)
{
    uint8_t kbuf[FILL_KEY_LEN];
    int all_gone, rc;

    if ((rc = delete_chunks(w, fill_id, 0, &all_gone)) != 0)
        return rc;
    put_be64(kbuf, fill_id);
    return del_ignore_missing(w->txn, w->s->dbi_pending, kbuf, sizeof(kbuf));
}

/**
 * Removes the object whose record `v` (read in this transaction) is stored under `hash`: record,
 * FIFO entry and chunks. A corrupt record is removed too; its chunks cannot be found and leak.
 */
static int remove_object(struct wtxn *w, const uint8_t *hash, const MDB_val *v, uint64_t keep_fill_id)
{
    struct record_hdr hdr;
    int known = 0, rc;
    size_t rec_size = v->mv_size;

    if (v->mv_size >= sizeof(hdr)) {
        memcpy(&hdr, v->mv_data, sizeof(hdr));
        known = hdr.magic == RECORD_MAGIC && hdr.fill_id != 0;
    }
    MDB_val k = {EDGE_STORE_HASH_LEN, (void *)hash};
    if ((rc = mdb_del(w->txn, w->s->dbi_objects, &k, NULL)) != 0)
        return rc;
    w->st.live_bytes = sub_clamp(w->st.live_bytes, charge(w->s, EDGE_STORE_HASH_LEN, rec_size));
    w->st.objects = sub_clamp(w->st.objects, 1);
    if (!known) {
        log_error("CORRUPT op=remove detail=\"object record unreadable, its chunks leak\"");
        return 0;
    }
    uint8_t seq[8];
    put_be64(seq, hdr.fifo_seq);
    if ((rc = del_ignore_missing(w->txn, w->s->dbi_fifo, seq, sizeof(seq))) != 0)
        return rc;
    if (hdr.fill_id != keep_fill_id) {
        int all_gone;
        if ((rc = delete_chunks(w, hdr.fill_id, 0, &all_gone)) != 0)
            return rc;
    }
    return 0;
}

static int apply_chunk(struct wtxn *w, edge_store_op_t *op, int *result)
{
    edge_store_t *s = w->s;
    uint8_t kbuf[CHUNK_KEY_LEN];
    struct pending_rec prec = {PENDING_MAGIC, FORMAT_VERSION};
    MDB_val k, v;
    int rc;

    if (is_dropped(s, op->fill_id)) {
        *result = EDGE_STORE_EFULL;
        return 0;
    }
    if (op->fill_id == 0 || op->len > EDGE_STORE_CHUNK_SIZE || (op->len != 0 && op->data == NULL)) {
        *result = EDGE_STORE_EINVAL;
        return 0;
    }
    /* The pending record lets a later open sweep the chunks if the fill never finishes. */
    put_be64(kbuf, op->fill_id);
    k = (MDB_val){FILL_KEY_LEN, kbuf};
    v = (MDB_val){sizeof(prec), &prec};
    rc = mdb_put(w->txn, s->dbi_pending, &k, &v, MDB_NOOVERWRITE);
    if (rc != 0 && rc != MDB_KEYEXIST)
        return rc;

    put_be32(kbuf + 8, op->chunk_index);
    k = (MDB_val){CHUNK_KEY_LEN, kbuf};
    v = (MDB_val){op->len, (void *)op->data};
    rc = mdb_put(w->txn, s->dbi_chunks, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        /* a chunk sent twice: the new bytes win (v now describes the old value) */
        w->st.live_bytes = sub_clamp(w->st.live_bytes, charge(s, CHUNK_KEY_LEN, v.mv_size));
        v = (MDB_val){op->len, (void *)op->data};
        rc = mdb_put(w->txn, s->dbi_chunks, &k, &v, 0);
    }
    if (rc != 0)
        return rc;
    w->st.live_bytes += charge(s, CHUNK_KEY_LEN, op->len);
    note_fill_id(w, op->fill_id);
    *result = 0;
    return 0;
}

/**
 * Checks that chunks 0..num_chunks-1 of the fill, and no others, exist and add up to body_size.
 * @param[out] ok  1 when they do
 * @param[out] chunk_bytes  the bytes charged for them
 */
static int verify_chunks(struct wtxn *w, const edge_store_op_t *op, int *ok, uint64_t *chunk_bytes)
{
    MDB_cursor *cur;
    uint8_t kbuf[CHUNK_KEY_LEN];
    MDB_val k = {sizeof(kbuf), kbuf}, v;
    uint64_t total = 0;
    uint32_t n = 0;
    int rc;

    *ok = 0;
    *chunk_bytes = 0;
    if ((rc = mdb_cursor_open(w->txn, w->s->dbi_chunks, &cur)) != 0)
        return rc;
    put_be64(kbuf, op->fill_id);
    put_be32(kbuf + 8, 0);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != CHUNK_KEY_LEN || get_be64(k.mv_data) != op->fill_id)
            break;
        if (get_be32((const uint8_t *)k.mv_data + 8) != n || n == op->num_chunks)
            goto Done; /* a gap or an extra chunk */
        total += v.mv_size;
        *chunk_bytes += charge(w->s, CHUNK_KEY_LEN, v.mv_size);
        ++n;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto Done;
    rc = 0;
    *ok = n == op->num_chunks && total == op->body_size;
Done:
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int apply_commit(struct wtxn *w, edge_store_op_t *op, int *result)
{
    edge_store_t *s = w->s;
    MDB_val k = {EDGE_STORE_HASH_LEN, op->hash}, v;
    uint64_t chunk_bytes;
    int ok, rc;

    if (is_dropped(s, op->fill_id)) {
        *result = EDGE_STORE_EFULL;
        return 0;
    }
    if (op->fill_id == 0 || op->key_len > UINT32_MAX || op->len > UINT32_MAX || (op->key_len != 0 && op->key == NULL) ||
        (op->len != 0 && op->data == NULL) || (op->num_chunks == 0 && op->body_size != 0)) {
        *result = EDGE_STORE_EINVAL;
        return abort_fill(w, op->fill_id);
    }
    if ((rc = verify_chunks(w, op, &ok, &chunk_bytes)) != 0)
        return rc;
    if (!ok) {
        log_error("ABORT op=commit fill_id=%llu detail=\"chunks missing or body size mismatch, fill dropped\"",
                  (unsigned long long)op->fill_id);
        *result = EDGE_STORE_EINVAL;
        return abort_fill(w, op->fill_id);
    }

    /* replace the object at this hash, if any */
    rc = mdb_get(w->txn, s->dbi_objects, &k, &v);
    if (rc == 0) {
        if ((rc = remove_object(w, op->hash, &v, op->fill_id)) != 0)
            return rc;
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }

    struct record_hdr hdr = {.magic = RECORD_MAGIC,
                             .version = FORMAT_VERSION,
                             .hdr_size = sizeof(hdr),
                             .key_len = (uint32_t)op->key_len,
                             .meta_len = (uint32_t)op->len,
                             .fill_id = op->fill_id,
                             .fifo_seq = w->st.next_seq++,
                             .body_size = op->body_size,
                             .num_chunks = op->num_chunks};
    size_t rec_len = sizeof(hdr) + op->key_len + op->len;
    v = (MDB_val){rec_len, NULL};
    if ((rc = mdb_put(w->txn, s->dbi_objects, &k, &v, MDB_RESERVE)) != 0)
        return rc;
    memcpy(v.mv_data, &hdr, sizeof(hdr));
    if (op->key_len != 0)
        memcpy((char *)v.mv_data + sizeof(hdr), op->key, op->key_len);
    if (op->len != 0)
        memcpy((char *)v.mv_data + sizeof(hdr) + op->key_len, op->data, op->len);
    uint64_t rec_charge = charge(s, EDGE_STORE_HASH_LEN, rec_len);

    struct fifo_rec frec = {.fill_id = op->fill_id, .charge = rec_charge + chunk_bytes};
    memcpy(frec.hash, op->hash, EDGE_STORE_HASH_LEN);
    uint8_t seq[8];
    put_be64(seq, hdr.fifo_seq);
    MDB_val fk = {sizeof(seq), seq}, fv = {sizeof(frec), &frec};
    if ((rc = mdb_put(w->txn, s->dbi_fifo, &fk, &fv, 0)) != 0)
        return rc;

    uint8_t pkey[FILL_KEY_LEN];
    put_be64(pkey, op->fill_id);
    if ((rc = del_ignore_missing(w->txn, s->dbi_pending, pkey, sizeof(pkey))) != 0)
        return rc;

    w->st.live_bytes += rec_charge;
    w->st.objects += 1;
    note_fill_id(w, op->fill_id);
    /* a new object starts cold (the bit may be left over from a colliding fill id) */
    take_touch(s, op->fill_id);
    *result = 0;
    return 0;
}

static int apply_delete(struct wtxn *w, edge_store_op_t *op, int *result)
{
    MDB_val k = {EDGE_STORE_HASH_LEN, op->hash}, v;
    int rc = mdb_get(w->txn, w->s->dbi_objects, &k, &v);

    *result = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    return remove_object(w, op->hash, &v, 0);
}

static int apply_op(struct wtxn *w, edge_store_op_t *op, int *result)
{
    switch ((int)op->kind) {
    case EDGE_STORE_OP_CHUNK:
        return apply_chunk(w, op, result);
    case EDGE_STORE_OP_COMMIT:
        return apply_commit(w, op, result);
    case EDGE_STORE_OP_ABORT:
        *result = 0;
        clear_dropped(w->s, op->fill_id);
        return abort_fill(w, op->fill_id);
    case EDGE_STORE_OP_DELETE:
        return apply_delete(w, op, result);
    case OP_BARRIER:
        *result = 0;
        return 0;
    default:
        *result = EDGE_STORE_EINVAL;
        return 0;
    }
}

/* ---- eviction and sweep (writer thread) ---- */

/* Moves an object to the back of the FIFO (second chance). `frec` is its current entry. */
static int requeue(struct wtxn *w, uint64_t old_seq, const struct fifo_rec *frec, const MDB_val *rec)
{
    edge_store_t *s = w->s;
    uint64_t new_seq = w->st.next_seq++;
    uint8_t seq[8];
    int rc;

    /* copy: the record lives in a page this transaction is about to modify */
    char *buf = malloc(rec->mv_size);
    if (buf == NULL)
        return ENOMEM;
    memcpy(buf, rec->mv_data, rec->mv_size);
    struct record_hdr hdr;
    memcpy(&hdr, buf, sizeof(hdr));
    hdr.fifo_seq = new_seq;
    memcpy(buf, &hdr, sizeof(hdr));
    MDB_val k = {EDGE_STORE_HASH_LEN, (void *)frec->hash}, v = {rec->mv_size, buf};
    rc = mdb_put(w->txn, s->dbi_objects, &k, &v, 0);
    free(buf);
    if (rc != 0)
        return rc;

    put_be64(seq, old_seq);
    if ((rc = del_ignore_missing(w->txn, s->dbi_fifo, seq, sizeof(seq))) != 0)
        return rc;
    put_be64(seq, new_seq);
    MDB_val fk = {sizeof(seq), seq}, fv = {sizeof(*frec), (void *)frec};
    return mdb_put(w->txn, s->dbi_fifo, &fk, &fv, 0);
}

/**
 * Examines the oldest FIFO entry: evicts its object, or gives it a second chance if touched.
 * @param[out] empty  set when the FIFO is empty
 */
static int evict_one(struct wtxn *w, int *empty)
{
    edge_store_t *s = w->s;
    MDB_cursor *cur;
    MDB_val k, v;
    uint8_t seqkey[8];
    struct fifo_rec frec;
    int rc;

    *empty = 0;
    if ((rc = mdb_cursor_open(w->txn, s->dbi_fifo, &cur)) != 0)
        return rc;
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0) {
        if (k.mv_size == sizeof(seqkey)) {
            memcpy(seqkey, k.mv_data, sizeof(seqkey));
        } else {
            rc = mdb_cursor_del(cur, 0); /* not ours: drop it */
            mdb_cursor_close(cur);
            return rc;
        }
        if (v.mv_size != sizeof(frec)) {
            rc = mdb_cursor_del(cur, 0);
            mdb_cursor_close(cur);
            return rc;
        }
        memcpy(&frec, v.mv_data, sizeof(frec));
    }
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND) {
        *empty = 1;
        return 0;
    }
    if (rc != 0)
        return rc;

    uint64_t seq = get_be64(seqkey);
    MDB_val ok = {EDGE_STORE_HASH_LEN, frec.hash}, ov;
    struct record_hdr hdr;
    rc = mdb_get(w->txn, s->dbi_objects, &ok, &ov);
    if (rc == MDB_NOTFOUND || (rc == 0 && (parse_record(&ov, &hdr) != 0 || hdr.fill_id != frec.fill_id || hdr.fifo_seq != seq))) {
        /* a stale entry (its object was replaced under a corrupt record, or is corrupt itself) */
        if (rc == 0 && parse_record(&ov, &hdr) != 0) {
            log_error("CORRUPT op=evict detail=\"object record fails validation, removed\"");
            if ((rc = remove_object(w, frec.hash, &ov, 0)) != 0)
                return rc;
            w->st.evictions += 1;
        }
        return del_ignore_missing(w->txn, s->dbi_fifo, seqkey, sizeof(seqkey));
    }
    if (rc != 0)
        return rc;
    if (take_touch(s, frec.fill_id))
        return requeue(w, seq, &frec, &ov);
    if ((rc = remove_object(w, frec.hash, &ov, 0)) != 0)
        return rc;
    w->st.evictions += 1;
    return 0;
}

/**
 * Evicts in its own bounded transactions until live bytes are at most `target`, the FIFO is empty,
 * or the pass has examined enough entries.
 * @return 0, or the LMDB error that stopped it
 */
static int evict(edge_store_t *s, uint64_t target)
{
    uint64_t max_examined = s->w.objects + 64;
    uint64_t examined = 0;
    int empty = 0, rc = 0;

    if (max_examined > EVICT_MAX_EXAMINED)
        max_examined = EVICT_MAX_EXAMINED;
    while (!empty && s->w.live_bytes > target && examined < max_examined) {
        struct wtxn w;
        if ((rc = wtxn_begin(s, &w)) != 0)
            break;
        for (unsigned n = 0; n < EVICT_PER_TXN && w.st.live_bytes > target && examined < max_examined; ++n) {
            ++examined;
            if ((rc = evict_one(&w, &empty)) != 0 || empty)
                break;
        }
        if (rc != 0) {
            mdb_txn_abort(w.txn);
            break;
        }
        if ((rc = wtxn_commit(&w)) != 0)
            break;
    }
    if (rc != 0)
        log_error("EVICT_ERR detail=\"%s\" live_bytes=%llu", mdb_strerror(rc), (unsigned long long)s->w.live_bytes);
    return rc;
}

/* A transaction that only rewrites the stats record: pages freed by transaction N can be reused from
 * transaction N+2 on (LMDB keeps the previous snapshot), so this lets the retry of a batch use them. */
static void advance_txn(edge_store_t *s)
{
    struct wtxn w;
    if (wtxn_begin(s, &w) == 0)
        wtxn_commit(&w);
}

static void finish_barriers(edge_store_op_t *list)
{
    while (list != NULL) {
        edge_store_op_t *next = list->_next;
        list->on_done(list, 0);
        list = next;
    }
}

/* One bounded step of the sweep of fills left pending by an earlier run. */
static void sweep_step(edge_store_t *s)
{
    struct wtxn w;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t fill_id = 0;
    int all_gone = 0, rc;

    if ((rc = wtxn_begin(s, &w)) != 0)
        goto Error;
    if ((rc = mdb_cursor_open(w.txn, s->dbi_pending, &cur)) != 0) {
        mdb_txn_abort(w.txn);
        goto Error;
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && k.mv_size == FILL_KEY_LEN)
        fill_id = get_be64(k.mv_data);
    else if (rc == 0)
        rc = mdb_cursor_del(cur, 0); /* not ours */
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND || (rc == 0 && fill_id >= s->sweep_limit && fill_id != 0)) {
        mdb_txn_abort(w.txn);
        goto Done;
    }
    if (rc == 0 && fill_id != 0) {
        if ((rc = delete_chunks(&w, fill_id, SWEEP_CHUNKS_PER_TXN, &all_gone)) == 0 && all_gone) {
            uint8_t kbuf[FILL_KEY_LEN];
            put_be64(kbuf, fill_id);
            if ((rc = del_ignore_missing(w.txn, s->dbi_pending, kbuf, sizeof(kbuf))) == 0)
                w.st.swept_fills += 1;
        }
    }
    if (rc != 0) {
        mdb_txn_abort(w.txn);
        goto Error;
    }
    if ((rc = wtxn_commit(&w)) != 0)
        goto Error;
    return;

Error:
    log_error("SWEEP_ERR detail=\"%s\", unfinished fills are left for the next open", mdb_strerror(rc));
Done:
    s->sweeping = 0;
    edge_store_op_t *list = s->deferred_barriers;
    s->deferred_barriers = NULL;
    finish_barriers(list);
}

/* ---- batches (writer thread) ---- */

static int try_batch(edge_store_t *s, edge_store_op_t **ops, size_t n, int *results)
{
    struct wtxn w;
    int rc;

    if ((rc = wtxn_begin(s, &w)) != 0)
        return rc;
    for (size_t i = 0; i < n; ++i) {
        if ((rc = apply_op(&w, ops[i], &results[i])) != 0) {
            mdb_txn_abort(w.txn);
            return rc;
        }
    }
    return wtxn_commit(&w);
}

/* The map stayed full: drop every fill this batch writes, still apply its ABORTs and DELETEs. */
static void drop_batch(edge_store_t *s, edge_store_op_t **ops, size_t n, int *results)
{
    struct wtxn w;
    int rc;

    if ((rc = wtxn_begin(s, &w)) != 0)
        goto Error;
    for (size_t i = 0; i < n; ++i) {
        edge_store_op_t *op = ops[i];
        if (op->kind == EDGE_STORE_OP_CHUNK || op->kind == EDGE_STORE_OP_COMMIT) {
            results[i] = EDGE_STORE_EFULL;
            if (!is_dropped(s, op->fill_id)) {
                if ((rc = abort_fill(&w, op->fill_id)) != 0)
                    break;
                set_dropped(s, op->fill_id);
                w.st.dropped_fills += 1;
                log_error("EFULL fill_id=%llu detail=\"map full after eviction, fill dropped\"", (unsigned long long)op->fill_id);
            }
        } else if ((rc = apply_op(&w, op, &results[i])) != 0) {
            break;
        }
    }
    if (rc != 0) {
        mdb_txn_abort(w.txn);
        goto Error;
    }
    if ((rc = wtxn_commit(&w)) != 0)
        goto Error;
    return;

Error:
    log_error("EFULL detail=\"%s while dropping fills\"", mdb_strerror(rc));
    for (size_t i = 0; i < n; ++i) {
        if (ops[i]->kind == EDGE_STORE_OP_CHUNK || ops[i]->kind == EDGE_STORE_OP_COMMIT) {
            results[i] = EDGE_STORE_EFULL;
            set_dropped(s, ops[i]->fill_id);
        } else {
            results[i] = EDGE_STORE_EIO;
        }
    }
}

static uint64_t batch_charge(edge_store_t *s, edge_store_op_t **ops, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        if (ops[i]->kind == EDGE_STORE_OP_CHUNK)
            total += charge(s, CHUNK_KEY_LEN, ops[i]->len);
        else if (ops[i]->kind == EDGE_STORE_OP_COMMIT)
            total += charge(s, EDGE_STORE_HASH_LEN, sizeof(struct record_hdr) + ops[i]->key_len + ops[i]->len);
    }
    return total;
}

static uint64_t evict_high(edge_store_t *s)
{
    return s->capacity_bytes / 100 * EVICT_HIGH_PCT;
}

static uint64_t evict_low(edge_store_t *s)
{
    return s->capacity_bytes / 100 * EVICT_LOW_PCT;
}

static void run_batch(edge_store_t *s, edge_store_op_t **ops, size_t n)
{
    int results[BATCH_MAX_OPS];
    int rc = try_batch(s, ops, n, results), map_full = 0;

    if (rc == MDB_MAP_FULL) {
        map_full = 1;
        __atomic_fetch_add(&s->pub.map_full, 1, __ATOMIC_RELAXED);
        /* The map holds fewer live bytes than the budget says: overflow values need runs of contiguous
         * free pages, and single-page allocations fragment the free list. Learn the real capacity, so that
         * eviction runs before the next MAP_FULL rather than after it. */
        uint64_t learnt = s->w.live_bytes + batch_charge(s, ops, n) / 2;
        if (learnt < s->budget_bytes / 2)
            learnt = s->budget_bytes / 2;
        /* free the batch's size plus a tenth of the budget, then retry once */
        uint64_t want = batch_charge(s, ops, n) + s->budget_bytes / 10;
        uint64_t target = sub_clamp(s->w.live_bytes, want);
        if (target > evict_low(s))
            target = evict_low(s);
        log_error("MAP_FULL live_bytes=%llu detail=\"evicting to %llu and retrying the batch\"",
                  (unsigned long long)s->w.live_bytes, (unsigned long long)target);
        evict(s, target);
        advance_txn(s);
        rc = try_batch(s, ops, n, results);
        if (rc == MDB_MAP_FULL) {
            /* the batch alone is too big for the map: that says nothing of fragmentation */
            drop_batch(s, ops, n, results);
            rc = 0;
        } else if (rc == 0 && learnt < s->capacity_bytes) {
            s->capacity_bytes = learnt;
            log_error("CAPACITY bytes=%llu detail=\"map fragmented, evicting earlier\"", (unsigned long long)learnt);
        }
    }
    if (rc != 0) {
        log_error("WRITE_ERR detail=\"%s\" ops=%zu", mdb_strerror(rc), n);
        for (size_t i = 0; i < n; ++i)
            results[i] = EDGE_STORE_EIO;
    }

    edge_store_op_t *deferred = NULL;
    for (size_t i = 0; i < n; ++i) {
        if (ops[i]->kind == OP_BARRIER && s->sweeping) {
            /* flush also waits for the sweep started at open */
            ops[i]->_next = deferred;
            deferred = ops[i];
            continue;
        }
        if (ops[i]->on_done != NULL)
            ops[i]->on_done(ops[i], results[i]);
    }
    while (deferred != NULL) {
        edge_store_op_t *next = deferred->_next;
        deferred->_next = s->deferred_barriers;
        s->deferred_barriers = deferred;
        deferred = next;
    }

    if (s->w.live_bytes > evict_high(s)) {
        if (evict(s, evict_low(s)) == 0)
            advance_txn(s); /* so that the next batch can use the pages just freed */
        /* probe upwards again slowly, in case the fragmentation went away */
        if (!map_full && s->capacity_bytes < s->budget_bytes) {
            s->capacity_bytes += s->budget_bytes / 1000;
            if (s->capacity_bytes > s->budget_bytes)
                s->capacity_bytes = s->budget_bytes;
        }
    }
}

static void *writer_main(void *arg)
{
    edge_store_t *s = arg;
    edge_store_op_t *ops[BATCH_MAX_OPS];

    /* the budget may have shrunk since the last run */
    if (s->w.live_bytes > evict_high(s))
        evict(s, evict_low(s));

    for (;;) {
        size_t n = 0, bytes = 0;
        pthread_mutex_lock(&s->mutex);
        while (s->head == NULL && !s->closing && !s->sweeping)
            pthread_cond_wait(&s->cond, &s->mutex);
        if (s->head == NULL && s->closing) {
            pthread_mutex_unlock(&s->mutex);
            break;
        }
        while (s->head != NULL && n < BATCH_MAX_OPS && (n == 0 || bytes + s->head->len + s->head->key_len <= BATCH_MAX_BYTES)) {
            edge_store_op_t *op = s->head;
            s->head = op->_next;
            if (s->head == NULL)
                s->tail = NULL;
            op->_next = NULL;
            bytes += op->len + op->key_len;
            ops[n++] = op;
        }
        pthread_mutex_unlock(&s->mutex);

        if (n != 0)
            run_batch(s, ops, n);
        if (s->sweeping)
            sweep_step(s);
    }

    /* closing with the sweep unfinished: the rest is swept at the next open */
    edge_store_op_t *list = s->deferred_barriers;
    s->deferred_barriers = NULL;
    finish_barriers(list);
    return NULL;
}

/* ---- open ---- */

static uint64_t last_fill_id(MDB_txn *txn, MDB_dbi dbi, size_t key_len)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t id = 0;

    if (mdb_cursor_open(txn, dbi, &cur) != 0)
        return 0;
    if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == key_len)
        id = get_be64(k.mv_data);
    mdb_cursor_close(cur);
    return id;
}

/* Rebuilds the stats record by a scan, when it is missing or fails validation. */
static int recount(edge_store_t *s, MDB_txn *txn, struct wstate *st)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    st->live_bytes = st->objects = 0;
    if ((rc = mdb_cursor_open(txn, s->dbi_objects, &cur)) != 0)
        return rc;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct record_hdr hdr;
        st->live_bytes += charge(s, k.mv_size, v.mv_size);
        st->objects += 1;
        if (parse_record(&v, &hdr) == 0 && hdr.fill_id > st->max_fill_id)
            st->max_fill_id = hdr.fill_id;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->dbi_chunks, &cur)) != 0)
        return rc;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        st->live_bytes += charge(s, k.mv_size, v.mv_size);
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int open_dbs(edge_store_t *s, struct wstate *st, int *has_pending)
{
    MDB_txn *txn;
    MDB_val k = {5, "stats"}, v;
    int rc;

    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return rc;
    if ((rc = mdb_dbi_open(txn, "objects", MDB_CREATE, &s->dbi_objects)) != 0 ||
        (rc = mdb_dbi_open(txn, "chunks", MDB_CREATE, &s->dbi_chunks)) != 0 ||
        (rc = mdb_dbi_open(txn, "pending", MDB_CREATE, &s->dbi_pending)) != 0 ||
        (rc = mdb_dbi_open(txn, "fifo", MDB_CREATE, &s->dbi_fifo)) != 0 ||
        (rc = mdb_dbi_open(txn, "stats", MDB_CREATE, &s->dbi_stats)) != 0)
        goto Error;

    memset(st, 0, sizeof(*st));
    rc = mdb_get(txn, s->dbi_stats, &k, &v);
    struct stats_rec rec;
    if (rc == 0 && v.mv_size == sizeof(rec) && (memcpy(&rec, v.mv_data, sizeof(rec)), rec.magic == STATS_MAGIC) &&
        rec.version == FORMAT_VERSION) {
        st->live_bytes = rec.live_bytes;
        st->objects = rec.objects;
        st->max_fill_id = rec.max_fill_id;
    } else if (rc == 0 || rc == MDB_NOTFOUND) {
        int corrupt = rc == 0;
        MDB_stat ms;
        if ((rc = mdb_stat(txn, s->dbi_objects, &ms)) != 0)
            goto Error;
        if (corrupt || ms.ms_entries != 0) {
            log_error("RECOUNT path=%s detail=\"stats record missing or corrupt, scanning\"", s->path);
            if ((rc = recount(s, txn, st)) != 0)
                goto Error;
        }
    } else {
        goto Error;
    }

    /* fill ids: above any chunk, pending fill or object ever recorded, without a scan */
    uint64_t id = last_fill_id(txn, s->dbi_chunks, CHUNK_KEY_LEN);
    if (id > st->max_fill_id)
        st->max_fill_id = id;
    id = last_fill_id(txn, s->dbi_pending, FILL_KEY_LEN);
    if (id > st->max_fill_id)
        st->max_fill_id = id;
    st->next_seq = last_fill_id(txn, s->dbi_fifo, 8) + 1; /* the same big-endian 8-byte key */

    MDB_stat ms;
    if ((rc = mdb_stat(txn, s->dbi_pending, &ms)) != 0)
        goto Error;
    *has_pending = ms.ms_entries != 0;
    return mdb_txn_commit(txn);

Error:
    mdb_txn_abort(txn);
    return rc;
}

/* ---- public API ---- */

edge_store_t *edge_store_open(const edge_store_settings_t *settings, char *err, size_t errlen)
{
    edge_store_t *s;
    int rc, has_pending = 0;
    long psz = sysconf(_SC_PAGESIZE);

    if (settings->path == NULL || settings->path[0] == '\0') {
        snprintf(err, errlen, "store: no path given");
        return NULL;
    }
    if (psz <= 0)
        psz = 4096;
    if (settings->max_size_bytes < 64 * (uint64_t)psz) {
        snprintf(err, errlen, "store %s: max size %llu is below the minimum of %llu bytes", settings->path,
                 (unsigned long long)settings->max_size_bytes, 64 * (unsigned long long)psz);
        return NULL;
    }
    if (mkdir(settings->path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "store %s: cannot create the directory: %s", settings->path, strerror(errno));
        return NULL;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->path = strdup(settings->path)) == NULL) {
        free(s);
        snprintf(err, errlen, "store %s: out of memory", settings->path);
        return NULL;
    }
    s->page_size = (size_t)psz;
    /* LMDB's me_nodemax: a node bigger than this goes to overflow pages */
    s->node_max = (((s->page_size - 16) / 2) & ~(size_t)1) - 2;
    s->budget_bytes = settings->max_size_bytes / s->page_size * s->page_size;
    s->capacity_bytes = s->budget_bytes;

    unsigned readers = settings->max_readers < MIN_READERS ? MIN_READERS : settings->max_readers;
    if ((rc = mdb_env_create(&s->env)) != 0) {
        s->env = NULL;
        goto Error;
    }
    if ((rc = mdb_env_set_maxdbs(s->env, 8)) != 0 || (rc = mdb_env_set_mapsize(s->env, (size_t)s->budget_bytes)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, readers)) != 0)
        goto Error;
    /* MDB_NOTLS: a worker thread holds one read txn per in-flight response. Commits stay synced. */
    if ((rc = mdb_env_open(s->env, s->path, MDB_NOTLS | MDB_NORDAHEAD, 0600)) != 0)
        goto Error;
    int dead;
    mdb_reader_check(s->env, &dead); /* free the slots of readers from dead processes */
    if ((rc = open_dbs(s, &s->w, &has_pending)) != 0)
        goto Error;

    s->next_fill_id = s->w.max_fill_id + 1;
    s->sweep_limit = s->next_fill_id;
    s->sweeping = has_pending;
    s->pub.live_bytes = s->w.live_bytes;
    s->pub.objects = s->w.objects;

    pthread_mutex_init(&s->mutex, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->flush_cond, NULL);
    if ((rc = pthread_create(&s->writer, NULL, writer_main, s)) != 0) {
        snprintf(err, errlen, "store %s: cannot start the writer thread: %s", s->path, strerror(rc));
        pthread_mutex_destroy(&s->mutex);
        pthread_cond_destroy(&s->cond);
        pthread_cond_destroy(&s->flush_cond);
        mdb_env_close(s->env);
        free(s->path);
        free(s);
        return NULL;
    }
    return s;

Error:
    snprintf(err, errlen, "store %s: %s", s->path, mdb_strerror(rc));
    if (s->env != NULL)
        mdb_env_close(s->env);
    free(s->path);
    free(s);
    return NULL;
}

void edge_store_close(edge_store_t *store)
{
    pthread_mutex_lock(&store->mutex);
    store->closing = 1;
    pthread_cond_signal(&store->cond);
    pthread_mutex_unlock(&store->mutex);
    pthread_join(store->writer, NULL);

    int rc = mdb_env_sync(store->env, 1);
    if (rc != 0)
        log_error("CLOSE_ERR path=%s detail=\"sync: %s\"", store->path, mdb_strerror(rc));
    mdb_env_close(store->env);
    pthread_mutex_destroy(&store->mutex);
    pthread_cond_destroy(&store->cond);
    pthread_cond_destroy(&store->flush_cond);
    free(store->path);
    free(store);
}

static void on_barrier_done(edge_store_op_t *op, int result)
{
    edge_store_t *s = op->data_owner;
    struct barrier *b = (struct barrier *)op;

    pthread_mutex_lock(&s->mutex);
    b->done = 1;
    pthread_cond_broadcast(&s->flush_cond);
    pthread_mutex_unlock(&s->mutex);
}

void edge_store_flush(edge_store_t *store)
{
    struct barrier b = {.op = {.kind = OP_BARRIER, .on_done = on_barrier_done, .data_owner = store}};

    edge_store_submit(store, &b.op);
    pthread_mutex_lock(&store->mutex);
    while (!b.done)
        pthread_cond_wait(&store->flush_cond, &store->mutex);
    pthread_mutex_unlock(&store->mutex);
}

void edge_store_submit(edge_store_t *store, edge_store_op_t *op)
{
    op->_next = NULL;
    pthread_mutex_lock(&store->mutex);
    if (store->closing) {
        pthread_mutex_unlock(&store->mutex);
        if (op->on_done != NULL)
            op->on_done(op, EDGE_STORE_ECLOSED);
        return;
    }
    if (store->tail != NULL)
        store->tail->_next = op;
    else
        store->head = op;
    store->tail = op;
    pthread_cond_signal(&store->cond);
    pthread_mutex_unlock(&store->mutex);
}

int edge_store_read_begin(edge_store_t *store, edge_store_txn_t **txn)
{
    edge_store_txn_t *t = malloc(sizeof(*t));
    int rc;

    if (t == NULL)
        return EDGE_STORE_EIO;
    t->store = store;
    if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &t->txn)) != 0) {
        free(t);
        if (rc == MDB_READERS_FULL)
            return EDGE_STORE_EREADERS;
        log_error("READ_ERR path=%s detail=\"%s\"", store->path, mdb_strerror(rc));
        return EDGE_STORE_EIO;
    }
    *txn = t;
    return 0;
}

void edge_store_read_end(edge_store_txn_t *txn)
{
    mdb_txn_abort(txn->txn);
    free(txn);
}

int edge_store_get(edge_store_txn_t *txn, const uint8_t hash[EDGE_STORE_HASH_LEN], edge_store_object_t *out)
{
    MDB_val k = {EDGE_STORE_HASH_LEN, (void *)hash}, v;
    struct record_hdr hdr;
    int rc = mdb_get(txn->txn, txn->store->dbi_objects, &k, &v);

    if (rc == MDB_NOTFOUND)
        return EDGE_STORE_NOTFOUND;
    if (rc != 0) {
        log_error("READ_ERR detail=\"%s\"", mdb_strerror(rc));
        return EDGE_STORE_EIO;
    }
    if (parse_record(&v, &hdr) != 0) {
        log_error("CORRUPT op=get detail=\"object record fails validation\"");
        return EDGE_STORE_ECORRUPT;
    }
    out->fill_id = hdr.fill_id;
    out->body_size = hdr.body_size;
    out->num_chunks = hdr.num_chunks;
    out->key = (const char *)v.mv_data + sizeof(hdr);
    out->key_len = hdr.key_len;
    out->meta = (const char *)v.mv_data + sizeof(hdr) + hdr.key_len;
    out->meta_len = hdr.meta_len;
    return 0;
}

int edge_store_get_chunk(edge_store_txn_t *txn, uint64_t fill_id, uint32_t n, const void **data, size_t *len)
{
    uint8_t kbuf[CHUNK_KEY_LEN];
    MDB_val k = {sizeof(kbuf), kbuf}, v;
    int rc;

    put_be64(kbuf, fill_id);
    put_be32(kbuf + 8, n);
    rc = mdb_get(txn->txn, txn->store->dbi_chunks, &k, &v);
    if (rc == MDB_NOTFOUND)
        return EDGE_STORE_NOTFOUND;
    if (rc != 0) {
        log_error("READ_ERR detail=\"%s\"", mdb_strerror(rc));
        return EDGE_STORE_EIO;
    }
    *data = v.mv_data;
    *len = v.mv_size;
    return 0;
}

void edge_store_touch(edge_store_t *store, uint64_t fill_id)
{
    uint8_t *slot = &store->touched[touch_index(fill_id)];
    /* read first: a hot object's byte is already set, and a store would bounce the cache line */
    if (!__atomic_load_n(slot, __ATOMIC_RELAXED))
        __atomic_store_n(slot, 1, __ATOMIC_RELAXED);
}

uint64_t edge_store_new_fill_id(edge_store_t *store)
{
    return __atomic_fetch_add(&store->next_fill_id, 1, __ATOMIC_RELAXED);
}

void edge_store_get_stats(edge_store_t *store, edge_store_stats_t *out)
{
    out->live_bytes = __atomic_load_n(&store->pub.live_bytes, __ATOMIC_RELAXED);
    out->objects = __atomic_load_n(&store->pub.objects, __ATOMIC_RELAXED);
    out->evictions = __atomic_load_n(&store->pub.evictions, __ATOMIC_RELAXED);
    out->commits = __atomic_load_n(&store->pub.commits, __ATOMIC_RELAXED);
    out->map_full = __atomic_load_n(&store->pub.map_full, __ATOMIC_RELAXED);
    out->swept_fills = __atomic_load_n(&store->pub.swept_fills, __ATOMIC_RELAXED);
    out->dropped_fills = __atomic_load_n(&store->pub.dropped_fills, __ATOMIC_RELAXED);
    out->max_size_bytes = store->budget_bytes;
}

const char *edge_store_strerror(int result)
{
    switch (result) {
    case 0:
        return "success";
    case EDGE_STORE_NOTFOUND:
        return "not found";
    case EDGE_STORE_EREADERS:
        return "no free reader slot";
    case EDGE_STORE_ECORRUPT:
        return "record failed validation";
    case EDGE_STORE_EFULL:
        return "store full, fill dropped";
    case EDGE_STORE_EIO:
        return "store I/O error";
    case EDGE_STORE_ECLOSED:
        return "store closing";
    case EDGE_STORE_EINVAL:
        return "invalid op or incomplete fill";
    default:
        return "unknown store error";
    }
}

void edge_store_hash(const char *key, size_t key_len, uint8_t hash[EDGE_STORE_HASH_LEN])
{
    unsigned int len = EDGE_STORE_HASH_LEN;
    /* EVP_Digest with SHA-256 cannot fail short of OOM inside OpenSSL; never leave hash undefined */
    if (EVP_Digest(key, key_len, hash, &len, EVP_sha256(), NULL) != 1)
        memset(hash, 0, EDGE_STORE_HASH_LEN);
}
