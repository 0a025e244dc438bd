/*
 * Unit tests of edge/store.c: round trips through a real LMDB environment, one mkdtemp directory
 * per test. The raw-LMDB corruption tests open the environment only while the store is closed
 * (LMDB forbids opening an environment twice in one process).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "edge/store.h"

#define MiB (1024 * 1024)

struct fixture {
    char dir[256];  /* the mkdtemp directory */
    char path[300]; /* the environment inside it (created by the store) */
    edge_store_t *store;
};

/* An op that records its result; read after edge_store_flush (its mutex orders the accesses). */
struct done_op {
    edge_store_op_t op;
    int result;
    int called;
};

static void on_done(edge_store_op_t *op, int result)
{
    struct done_op *d = (struct done_op *)op;
    d->result = result;
    __atomic_fetch_add(&d->called, 1, __ATOMIC_RELEASE);
}

static edge_store_t *open_store(struct fixture *f, uint64_t max_size, unsigned max_readers)
{
    edge_store_settings_t settings = {.path = f->path, .max_size_bytes = max_size, .max_readers = max_readers};
    char err[512] = "";
    edge_store_t *s = edge_store_open(&settings, err, sizeof(err));
    if (s == NULL)
        fprintf(stderr, "open: %s\n", err);
    assert_non_null(s);
    return s;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/test_store.XXXXXX", tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/env", f->dir);
    f->store = open_store(f, 16 * MiB, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char p[400];
    if (f->store != NULL)
        edge_store_close(f->store);
    snprintf(p, sizeof(p), "%s/data.mdb", f->path);
    unlink(p);
    snprintf(p, sizeof(p), "%s/lock.mdb", f->path);
    unlink(p);
    rmdir(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void reopen(struct fixture *f, uint64_t max_size, unsigned max_readers)
{
    edge_store_close(f->store);
    f->store = open_store(f, max_size, max_readers);
}

static int submit_sync(edge_store_t *s, edge_store_op_t *op)
{
    struct done_op d = {.op = *op};
    d.op.on_done = on_done;
    edge_store_submit(s, &d.op);
    edge_store_flush(s);
    assert_int_equal(d.called, 1);
    return d.result;
}

static int put_chunk(edge_store_t *s, uint64_t fill_id, uint32_t n, const void *data, size_t len)
{
    edge_store_op_t op = {.kind = EDGE_STORE_OP_CHUNK, .fill_id = fill_id, .chunk_index = n, .data = data, .len = len};
    return submit_sync(s, &op);
}

static void make_commit(edge_store_op_t *op, uint64_t fill_id, const char *key, const char *meta, uint64_t body_size,
                        uint32_t num_chunks)
{
    *op = (edge_store_op_t){.kind = EDGE_STORE_OP_COMMIT,
                            .fill_id = fill_id,
                            .data = meta,
                            .len = strlen(meta),
                            .key = key,
                            .key_len = strlen(key),
                            .body_size = body_size,
                            .num_chunks = num_chunks};
    edge_store_hash(key, strlen(key), op->hash);
}

static int commit(edge_store_t *s, uint64_t fill_id, const char *key, const char *meta, uint64_t body_size, uint32_t num_chunks)
{
    edge_store_op_t op;
    make_commit(&op, fill_id, key, meta, body_size, num_chunks);
    return submit_sync(s, &op);
}

static int delete_key(edge_store_t *s, const char *key)
{
    edge_store_op_t op = {.kind = EDGE_STORE_OP_DELETE};
    edge_store_hash(key, strlen(key), op.hash);
    return submit_sync(s, &op);
}

static uint32_t num_chunks_of(size_t len, size_t chunk_len)
{
    return (uint32_t)((len + chunk_len - 1) / chunk_len);
}

/* Stores a whole object; returns its fill id. */
static uint64_t put_object(edge_store_t *s, const char *key, const char *meta, const char *body, size_t len, size_t chunk_len)
{
    uint64_t fill_id = edge_store_new_fill_id(s);
    uint32_t n = num_chunks_of(len, chunk_len);
    for (uint32_t i = 0; i < n; ++i) {
        size_t off = (size_t)i * chunk_len, l = len - off < chunk_len ? len - off : chunk_len;
        assert_int_equal(put_chunk(s, fill_id, i, body + off, l), 0);
    }
    assert_int_equal(commit(s, fill_id, key, meta, len, n), 0);
    return fill_id;
}

static int lookup(edge_store_t *s, const char *key, edge_store_object_t *obj)
{
    edge_store_txn_t *txn;
    uint8_t hash[EDGE_STORE_HASH_LEN];
    assert_int_equal(edge_store_read_begin(s, &txn), 0);
    edge_store_hash(key, strlen(key), hash);
    int rc = edge_store_get(txn, hash, obj);
    edge_store_read_end(txn);
    return rc;
}

static int chunk_exists(edge_store_t *s, uint64_t fill_id, uint32_t n)
{
    edge_store_txn_t *txn;
    const void *data;
    size_t len;
    assert_int_equal(edge_store_read_begin(s, &txn), 0);
    int rc = edge_store_get_chunk(txn, fill_id, n, &data, &len);
    edge_store_read_end(txn);
    assert_true(rc == 0 || rc == EDGE_STORE_NOTFOUND);
    return rc == 0;
}

/* Reads the object back and compares key, meta and the concatenated chunks byte for byte. */
static void assert_object(edge_store_t *s, const char *key, const char *meta, const char *body, size_t len)
{
    edge_store_txn_t *txn;
    edge_store_object_t obj;
    uint8_t hash[EDGE_STORE_HASH_LEN];
    size_t off = 0;

    assert_int_equal(edge_store_read_begin(s, &txn), 0);
    edge_store_hash(key, strlen(key), hash);
    assert_int_equal(edge_store_get(txn, hash, &obj), 0);
    assert_int_equal(obj.key_len, strlen(key));
    assert_memory_equal(obj.key, key, obj.key_len);
    assert_int_equal(obj.meta_len, strlen(meta));
    if (obj.meta_len != 0)
        assert_memory_equal(obj.meta, meta, obj.meta_len);
    assert_int_equal(obj.body_size, len);
    for (uint32_t i = 0; i < obj.num_chunks; ++i) {
        const void *data;
        size_t clen;
        assert_int_equal(edge_store_get_chunk(txn, obj.fill_id, i, &data, &clen), 0);
        assert_true(off + clen <= len);
        assert_memory_equal(data, body + off, clen);
        off += clen;
    }
    assert_int_equal(off, len);
    edge_store_read_end(txn);
}

static char *make_body(size_t len, unsigned seed)
{
    char *b = malloc(len);
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; ++i) {
        x = x * 1103515245u + 12345u;
        b[i] = (char)(x >> 16);
    }
    return b;
}

static edge_store_stats_t stats(edge_store_t *s)
{
    edge_store_stats_t st;
    edge_store_get_stats(s, &st);
    return st;
}

/* ---- tests ---- */

static void test_hash(void **state)
{
    static const uint8_t abc[EDGE_STORE_HASH_LEN] = {0xba, 0x78, 0x16, 0xbf, 0x8f, 0x01, 0xcf, 0xea, 0x41, 0x41, 0x40,
                                                     0xde, 0x5d, 0xae, 0x22, 0x23, 0xb0, 0x03, 0x61, 0xa3, 0x96, 0x17,
                                                     0x7a, 0x9c, 0xb4, 0x10, 0xff, 0x61, 0xf2, 0x00, 0x15, 0xad};
    uint8_t h[EDGE_STORE_HASH_LEN];
    edge_store_hash("abc", 3, h);
    assert_memory_equal(h, abc, sizeof(abc));
    assert_string_equal(edge_store_strerror(EDGE_STORE_EREADERS), "no free reader slot");
    assert_string_equal(edge_store_strerror(0), "success");
}

static void test_roundtrip(void **state)
{
    struct fixture *f = *state;
    char *body = make_body(2500, 1);
    edge_store_object_t obj;

    uint64_t fill_id = put_object(f->store, "http://a.test/x", "HTTP/1.1 200\r\nmeta", body, 2500, 1000);
    assert_object(f->store, "http://a.test/x", "HTTP/1.1 200\r\nmeta", body, 2500);
    assert_int_equal(lookup(f->store, "http://a.test/x", &obj), 0);
    assert_int_equal(obj.fill_id, fill_id);
    assert_int_equal(obj.num_chunks, 3);
    assert_false(chunk_exists(f->store, fill_id, 3));
    assert_int_equal(lookup(f->store, "http://a.test/other", &obj), EDGE_STORE_NOTFOUND);
    edge_store_stats_t st = stats(f->store);
    assert_int_equal(st.objects, 1);
    assert_true(st.live_bytes >= 2500);
    assert_int_equal(st.max_size_bytes, 16 * MiB);

    /* an empty body: no chunks at all */
    put_object(f->store, "http://a.test/empty", "", "", 0, 1000);
    assert_object(f->store, "http://a.test/empty", "", "", 0);
    free(body);
}

static void test_invisible_before_commit(void **state)
{
    struct fixture *f = *state;
    edge_store_object_t obj;
    uint64_t fill_id = edge_store_new_fill_id(f->store);

    assert_int_equal(put_chunk(f->store, fill_id, 0, "hello ", 6), 0);
    assert_int_equal(put_chunk(f->store, fill_id, 1, "world", 5), 0);
    /* the chunks are committed (a fill in progress can be streamed) but the object does not exist */
    assert_true(chunk_exists(f->store, fill_id, 0));
    assert_true(chunk_exists(f->store, fill_id, 1));
    assert_int_equal(lookup(f->store, "k", &obj), EDGE_STORE_NOTFOUND);
    assert_true(stats(f->store).live_bytes > 0);
    assert_int_equal(stats(f->store).objects, 0);

    assert_int_equal(commit(f->store, fill_id, "k", "m", 11, 2), 0);
    assert_object(f->store, "k", "m", "hello world", 11);
}

static void test_replace(void **state)
{
    struct fixture *f = *state;
    char *b1 = make_body(3000, 1), *b2 = make_body(3000, 2);

    uint64_t f1 = put_object(f->store, "key", "meta-1", b1, 3000, 1024);
    uint64_t live1 = stats(f->store).live_bytes;
    uint64_t f2 = put_object(f->store, "key", "meta-2", b2, 3000, 1024);
    assert_true(f2 > f1);
    assert_object(f->store, "key", "meta-2", b2, 3000);
    for (uint32_t i = 0; i < 3; ++i)
        assert_false(chunk_exists(f->store, f1, i));
    assert_int_equal(stats(f->store).objects, 1);
    assert_int_equal(stats(f->store).live_bytes, live1); /* same sizes: same charge */

    /* replaced by a smaller one: less live bytes */
    put_object(f->store, "key", "meta-3", "tiny", 4, 1024);
    assert_true(stats(f->store).live_bytes < live1);
    assert_int_equal(stats(f->store).objects, 1);
    free(b1);
    free(b2);
}

static void test_delete(void **state)
{
    struct fixture *f = *state;
    edge_store_object_t obj;
    char *b = make_body(5000, 3);

    uint64_t keep = put_object(f->store, "keep", "m", "x", 1, 1024);
    uint64_t keep_live = stats(f->store).live_bytes;
    uint64_t fill_id = put_object(f->store, "gone", "m", b, 5000, 1024);
    assert_int_equal(delete_key(f->store, "gone"), 0);
    assert_int_equal(lookup(f->store, "gone", &obj), EDGE_STORE_NOTFOUND);
    for (uint32_t i = 0; i < 5; ++i)
        assert_false(chunk_exists(f->store, fill_id, i));
    assert_int_equal(stats(f->store).objects, 1);
    assert_int_equal(stats(f->store).live_bytes, keep_live);
    assert_true(chunk_exists(f->store, keep, 0));
    /* deleting what is not there is not an error */
    assert_int_equal(delete_key(f->store, "never-stored"), 0);
    assert_int_equal(stats(f->store).objects, 1);
    free(b);
}

static void test_abort(void **state)
{
    struct fixture *f = *state;
    edge_store_object_t obj;
    uint64_t fill_id = edge_store_new_fill_id(f->store);

    assert_int_equal(put_chunk(f->store, fill_id, 0, "aaaa", 4), 0);
    assert_int_equal(put_chunk(f->store, fill_id, 1, "bbbb", 4), 0);
    assert_true(stats(f->store).live_bytes > 0);
    edge_store_op_t op = {.kind = EDGE_STORE_OP_ABORT, .fill_id = fill_id};
    assert_int_equal(submit_sync(f->store, &op), 0);
    assert_false(chunk_exists(f->store, fill_id, 0));
    assert_false(chunk_exists(f->store, fill_id, 1));
    assert_int_equal(stats(f->store).live_bytes, 0);
    /* a COMMIT after the ABORT finds no chunks: refused, nothing becomes visible */
    assert_int_equal(commit(f->store, fill_id, "k", "m", 8, 2), EDGE_STORE_EINVAL);
    assert_int_equal(lookup(f->store, "k", &obj), EDGE_STORE_NOTFOUND);
}

/* COMMIT verifies the chunks: one row per way a fill can be incomplete. */
static void test_commit_incomplete(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *name;
        uint32_t chunks_written[4];
        size_t num_written;
        uint64_t body_size;
        uint32_t num_chunks;
    } cases[] = {
        {"missing last", {0, 1}, 2, 12, 3},      {"gap", {0, 2}, 2, 12, 3},
        {"missing first", {1, 2}, 2, 12, 3},     {"size mismatch", {0, 1, 2}, 3, 13, 3},
        {"extra chunk", {0, 1, 2, 3}, 4, 12, 3}, {"no chunks but a body", {0}, 0, 4, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        edge_store_object_t obj;
        uint64_t fill_id = edge_store_new_fill_id(f->store);
        for (size_t j = 0; j < cases[i].num_written; ++j)
            assert_int_equal(put_chunk(f->store, fill_id, cases[i].chunks_written[j], "abcd", 4), 0);
        assert_int_equal(commit(f->store, fill_id, cases[i].name, "m", cases[i].body_size, cases[i].num_chunks), EDGE_STORE_EINVAL);
        assert_int_equal(lookup(f->store, cases[i].name, &obj), EDGE_STORE_NOTFOUND);
        for (uint32_t n = 0; n < 4; ++n)
            assert_false(chunk_exists(f->store, fill_id, n));
        assert_int_equal(stats(f->store).live_bytes, 0);
    }
    /* an oversized chunk is refused */
    static char big[EDGE_STORE_CHUNK_SIZE + 1];
    assert_int_equal(put_chunk(f->store, edge_store_new_fill_id(f->store), 0, big, sizeof(big)), EDGE_STORE_EINVAL);
}

static void test_reopen(void **state)
{
    struct fixture *f = *state;
    char *b = make_body(10000, 4);
    uint64_t last = 0;

    for (int i = 0; i < 5; ++i) {
        char key[32];
        snprintf(key, sizeof(key), "obj-%d", i);
        last = put_object(f->store, key, key, b, 10000 - i, 4096);
    }
    edge_store_stats_t before = stats(f->store);
    reopen(f, 16 * MiB, 0);
    for (int i = 0; i < 5; ++i) {
        char key[32];
        snprintf(key, sizeof(key), "obj-%d", i);
        assert_object(f->store, key, key, b, 10000 - i);
    }
    edge_store_stats_t after = stats(f->store);
    assert_int_equal(after.objects, 5);
    assert_int_equal(after.live_bytes, before.live_bytes);
    assert_int_equal(after.swept_fills, 0);
    assert_true(edge_store_new_fill_id(f->store) > last);

    /* ids used without leaving a chunk (an empty object, since deleted) are not reused either */
    uint64_t empty = put_object(f->store, "empty", "", "", 0, 4096);
    assert_int_equal(delete_key(f->store, "empty"), 0);
    reopen(f, 16 * MiB, 0);
    assert_true(edge_store_new_fill_id(f->store) > empty);
    free(b);
}

static void test_sweep_after_crash(void **state)
{
    struct fixture *f = *state;
    edge_store_object_t obj;
    char *b = make_body(20000, 5);

    put_object(f->store, "done", "m", b, 20000, 4096);
    edge_store_stats_t before = stats(f->store);
    /* a fill that never finishes: its chunks are committed, then the process "dies" */
    uint64_t dead = edge_store_new_fill_id(f->store);
    for (uint32_t i = 0; i < 4; ++i)
        assert_int_equal(put_chunk(f->store, dead, i, b + i * 4096, 4096), 0);
    assert_true(stats(f->store).live_bytes > before.live_bytes);

    reopen(f, 16 * MiB, 0);
    edge_store_flush(f->store); /* also waits for the sweep */
    for (uint32_t i = 0; i < 4; ++i)
        assert_false(chunk_exists(f->store, dead, i));
    edge_store_stats_t after = stats(f->store);
    assert_int_equal(after.swept_fills, 1);
    assert_int_equal(after.live_bytes, before.live_bytes);
    assert_int_equal(after.objects, 1);
    assert_object(f->store, "done", "m", b, 20000);
    assert_int_equal(lookup(f->store, "never", &obj), EDGE_STORE_NOTFOUND);
    assert_true(edge_store_new_fill_id(f->store) > dead);

    /* the sweep is not repeated at the next open */
    reopen(f, 16 * MiB, 0);
    edge_store_flush(f->store);
    assert_int_equal(stats(f->store).swept_fills, 0);
    assert_int_equal(stats(f->store).live_bytes, before.live_bytes);
    free(b);
}

static void test_eviction_second_chance(void **state)
{
    struct fixture *f = *state;
    const size_t size = 64 * 1024;
    char *b = make_body(size, 6);
    char key[32];

    reopen(f, 4 * MiB, 0);
    uint64_t hot = put_object(f->store, "obj-0", "m", b, size, EDGE_STORE_CHUNK_SIZE);
    for (int i = 1; i < 200; ++i) {
        edge_store_touch(f->store, hot);
        snprintf(key, sizeof(key), "obj-%d", i);
        put_object(f->store, key, "m", b, size, EDGE_STORE_CHUNK_SIZE);
        edge_store_stats_t st = stats(f->store);
        assert_true(st.live_bytes <= st.max_size_bytes);
        assert_int_equal(st.dropped_fills, 0);
    }
    edge_store_stats_t st = stats(f->store);
    assert_true(st.evictions >= 140); /* 200 objects of 68 KiB do not fit in 4 MiB */
    assert_true(st.objects < 60);
    assert_int_equal(st.objects + st.evictions, 200);
    assert_true(st.map_full <= 2); /* then the store has learnt to evict earlier */
    /* the hot object survived all of it; the cold ones of its time did not */
    edge_store_object_t obj;
    assert_object(f->store, "obj-0", "m", b, size);
    for (int i = 1; i < 100; ++i) {
        snprintf(key, sizeof(key), "obj-%d", i);
        assert_int_equal(lookup(f->store, key, &obj), EDGE_STORE_NOTFOUND);
    }
    assert_object(f->store, "obj-199", "m", b, size);

    /* the counters stay consistent across a reopen */
    reopen(f, 4 * MiB, 0);
    assert_int_equal(stats(f->store).objects, st.objects);
    assert_int_equal(stats(f->store).live_bytes, st.live_bytes);
    free(b);
}

/* Holds the writer inside an on_done, so that the ops submitted meanwhile form one batch. */
struct gate {
    struct done_op d;
    pthread_mutex_t m;
    pthread_cond_t c;
    int entered, open;
};

static void on_gate(edge_store_op_t *op, int result)
{
    struct gate *g = (struct gate *)op;
    pthread_mutex_lock(&g->m);
    g->entered = 1;
    pthread_cond_broadcast(&g->c);
    while (!g->open)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
}

static void gate_close(edge_store_t *s, struct gate *g)
{
    memset(g, 0, sizeof(*g));
    pthread_mutex_init(&g->m, NULL);
    pthread_cond_init(&g->c, NULL);
    g->d.op.kind = EDGE_STORE_OP_DELETE; /* of a hash never stored: harmless */
    g->d.op.on_done = on_gate;
    edge_store_submit(s, &g->d.op);
    pthread_mutex_lock(&g->m);
    while (!g->entered)
        pthread_cond_wait(&g->c, &g->m);
    pthread_mutex_unlock(&g->m);
}

static void gate_open(struct gate *g)
{
    pthread_mutex_lock(&g->m);
    g->open = 1;
    pthread_cond_broadcast(&g->c);
    pthread_mutex_unlock(&g->m);
}

static void test_map_full_evict_and_retry(void **state)
{
    struct fixture *f = *state;
    const size_t size = 64 * 1024;
    char *b = make_body(size, 7);
    char key[32];

    reopen(f, 1 * MiB, 0); /* 256 pages; a 64 KiB chunk takes 17 */
    for (int i = 0; i < 11; ++i) {
        snprintf(key, sizeof(key), "old-%d", i);
        put_object(f->store, key, "m", b, size, EDGE_STORE_CHUNK_SIZE);
    }
    assert_int_equal(stats(f->store).evictions, 0);
    assert_int_equal(stats(f->store).map_full, 0);

    /* one batch of four more objects: 68 more pages do not fit */
    struct gate g;
    struct done_op ops[8];
    char keys[4][32];
    gate_close(f->store, &g);
    for (int i = 0; i < 4; ++i) {
        uint64_t fill_id = edge_store_new_fill_id(f->store);
        snprintf(keys[i], sizeof(keys[i]), "new-%d", i);
        ops[2 * i] = (struct done_op){.op = {.kind = EDGE_STORE_OP_CHUNK, .fill_id = fill_id, .data = b, .len = size}};
        make_commit(&ops[2 * i + 1].op, fill_id, keys[i], "m", size, 1);
    }
    for (int i = 0; i < 8; ++i) {
        ops[i].op.on_done = on_done;
        ops[i].called = 0;
        edge_store_submit(f->store, &ops[i].op);
    }
    gate_open(&g);
    edge_store_flush(f->store);
    for (int i = 0; i < 8; ++i) {
        assert_int_equal(ops[i].called, 1);
        assert_int_equal(ops[i].result, 0);
    }
    edge_store_stats_t st = stats(f->store);
    assert_int_equal(st.map_full, 1); /* the path under test really ran */
    assert_true(st.evictions >= 4);
    assert_int_equal(st.dropped_fills, 0);
    for (int i = 0; i < 4; ++i)
        assert_object(f->store, keys[i], "m", b, size);
    edge_store_object_t obj;
    assert_int_equal(lookup(f->store, "old-0", &obj), EDGE_STORE_NOTFOUND);
    free(b);
}

static void test_map_full_drop(void **state)
{
    struct fixture *f = *state;
    const size_t size = 64 * 1024;
    char *b = make_body(size, 8);
    edge_store_object_t obj;

    reopen(f, 1 * MiB, 0);
    put_object(f->store, "small", "m", "tiny", 4, 1024);

    /* one fill of 20 x 64 KiB in one batch: bigger than the whole map, even after eviction */
    struct gate g;
    struct done_op ops[20];
    uint64_t fill_id = edge_store_new_fill_id(f->store);
    gate_close(f->store, &g);
    for (uint32_t i = 0; i < 20; ++i) {
        ops[i] = (struct done_op){
            .op = {.kind = EDGE_STORE_OP_CHUNK, .fill_id = fill_id, .chunk_index = i, .data = b, .len = size, .on_done = on_done}};
        edge_store_submit(f->store, &ops[i].op);
    }
    gate_open(&g);
    edge_store_flush(f->store);
    for (int i = 0; i < 20; ++i) {
        assert_int_equal(ops[i].called, 1);
        assert_int_equal(ops[i].result, EDGE_STORE_EFULL);
    }
    edge_store_stats_t st = stats(f->store);
    assert_int_equal(st.map_full, 1);
    assert_int_equal(st.dropped_fills, 1);
    assert_false(chunk_exists(f->store, fill_id, 0));
    /* later ops of the dropped fill are refused without writing, until its ABORT */
    assert_int_equal(put_chunk(f->store, fill_id, 20, b, 100), EDGE_STORE_EFULL);
    assert_int_equal(commit(f->store, fill_id, "big", "m", size * 20, 20), EDGE_STORE_EFULL);
    edge_store_op_t abort_op = {.kind = EDGE_STORE_OP_ABORT, .fill_id = fill_id};
    assert_int_equal(submit_sync(f->store, &abort_op), 0);
    assert_int_equal(lookup(f->store, "big", &obj), EDGE_STORE_NOTFOUND);

    /* the store still works */
    put_object(f->store, "after", "m", b, size, EDGE_STORE_CHUNK_SIZE);
    assert_object(f->store, "after", "m", b, size);
    free(b);
}

struct probe {
    struct done_op d;
    struct probe *next;
};

static void *close_thread(void *arg)
{
    edge_store_close(arg);
    return NULL;
}

/* close applies what is queued; after it began, submit answers ECLOSED at once */
static void test_close_drains_then_refuses(void **state)
{
    struct fixture *f = *state;
    struct gate g;
    struct done_op chunk = {0}, com = {0};
    uint64_t fill_id = edge_store_new_fill_id(f->store);
    pthread_t t;

    gate_close(f->store, &g);
    chunk.op = (edge_store_op_t){.kind = EDGE_STORE_OP_CHUNK, .fill_id = fill_id, .data = "body", .len = 4, .on_done = on_done};
    make_commit(&com.op, fill_id, "queued", "m", 4, 1);
    com.op.on_done = on_done;
    edge_store_submit(f->store, &chunk.op);
    edge_store_submit(f->store, &com.op);
    assert_int_equal(pthread_create(&t, NULL, close_thread, f->store), 0);

    /* submit probes until one is refused synchronously: then close has begun (no sleeping) */
    struct probe *probes = NULL;
    for (;;) {
        struct probe *p = calloc(1, sizeof(*p));
        p->d.op.kind = EDGE_STORE_OP_DELETE;
        p->d.op.on_done = on_done;
        p->next = probes;
        probes = p;
        edge_store_submit(f->store, &p->d.op);
        if (__atomic_load_n(&p->d.called, __ATOMIC_ACQUIRE)) {
            assert_int_equal(p->d.result, EDGE_STORE_ECLOSED);
            break;
        }
    }
    gate_open(&g);
    assert_int_equal(pthread_join(t, NULL), 0);
    f->store = NULL;
    assert_int_equal(chunk.called, 1);
    assert_int_equal(chunk.result, 0);
    assert_int_equal(com.called, 1);
    assert_int_equal(com.result, 0);
    for (struct probe *p = probes->next; p != NULL; p = p->next)
        assert_int_equal(p->d.result, 0); /* queued before close: applied */
    while (probes != NULL) {
        struct probe *next = probes->next;
        free(probes);
        probes = next;
    }
    f->store = open_store(f, 16 * MiB, 0);
    assert_object(f->store, "queued", "m", "body", 4);
}

/* Opens the closed environment with raw LMDB and stores `val` under the hash of `key` in `db`. */
static void raw_put(struct fixture *f, const char *db, const void *key, size_t key_len, const void *val, size_t len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
    assert_int_equal(mdb_env_open(env, f->path, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    MDB_val k = {key_len, (void *)key}, v = {len, (void *)val};
    assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);
}

/* The record header as store.c writes it (a copy of the on-disk format, on purpose). */
struct test_record_hdr {
    uint32_t magic;
    uint16_t version, hdr_size;
    uint32_t key_len, meta_len;
    uint64_t fill_id, fifo_seq, body_size;
    uint32_t num_chunks, reserved;
};

static void test_corrupt_records(void **state)
{
    struct fixture *f = *state;
    uint8_t good[64 + 8];
    struct test_record_hdr h = {0x4a424f45u, 1, 48, 4, 4, 7, 1, 0, 0, 0};
    memcpy(good, &h, sizeof(h));
    memcpy(good + 48, "keyXmeta", 8);

    /* a good header and lengths, stored with the wrong value size */
    static const struct {
        const char *key;
        size_t len; /* of the stored value; the record is 56 bytes */
    } cases[] = {
        {"short", 10},
        {"empty", 0},
        {"truncated", 53},
        {"trailing", 60},
    };
    uint8_t buf[sizeof(good) + 16] = {0};
    memcpy(buf, good, sizeof(good));

    edge_store_close(f->store);
    f->store = NULL;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        uint8_t hash[EDGE_STORE_HASH_LEN];
        edge_store_hash(cases[i].key, strlen(cases[i].key), hash);
        raw_put(f, "objects", hash, sizeof(hash), buf, cases[i].len);
    }
    /* header fields wrong, lengths right */
    static const struct {
        const char *key;
        size_t field_off;
        uint32_t value;
    } fields[] = {
        {"bad magic", 0, 0x12345678}, {"bad version", 4, 9}, {"key_len", 8, 5},
        {"meta_len", 12, 1000},       {"fill id 0", 16, 0},  {"body without chunks", 40, 0},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); ++i) {
        uint8_t rec[56], hash[EDGE_STORE_HASH_LEN];
        struct test_record_hdr hh = h;
        hh.body_size = 10;
        hh.num_chunks = 1;
        memcpy(rec, &hh, sizeof(hh));
        if (fields[i].field_off == 16)
            memset(rec + 16, 0, 8);
        else if (fields[i].field_off == 40)
            memset(rec + 40, 0, 4); /* num_chunks 0 with body_size 10 */
        else if (fields[i].field_off == 4)
            memcpy(rec + 4, &(uint16_t){(uint16_t)fields[i].value}, 2);
        else
            memcpy(rec + fields[i].field_off, &fields[i].value, 4);
        memcpy(rec + 48, "keyXmeta", 8);
        edge_store_hash(fields[i].key, strlen(fields[i].key), hash);
        raw_put(f, "objects", hash, sizeof(hash), rec, sizeof(rec));
    }
    /* and a valid one, to show the raw writes are what the store reads */
    {
        uint8_t hash[EDGE_STORE_HASH_LEN];
        edge_store_hash("valid", 5, hash);
        raw_put(f, "objects", hash, sizeof(hash), good, 56);
    }
    f->store = open_store(f, 16 * MiB, 0);

    edge_store_object_t obj;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i)
        assert_int_equal(lookup(f->store, cases[i].key, &obj), EDGE_STORE_ECORRUPT);
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); ++i)
        assert_int_equal(lookup(f->store, fields[i].key, &obj), EDGE_STORE_ECORRUPT);
    assert_int_equal(lookup(f->store, "valid", &obj), 0);
    assert_memory_equal(obj.key, "keyX", 4);
    assert_memory_equal(obj.meta, "meta", 4);

    /* deleting and replacing corrupt records works and does not crash */
    assert_int_equal(delete_key(f->store, "short"), 0);
    assert_int_equal(lookup(f->store, "short", &obj), EDGE_STORE_NOTFOUND);
    put_object(f->store, "bad magic", "m", "body", 4, 1024);
    assert_object(f->store, "bad magic", "m", "body", 4);
    put_object(f->store, "key_len", "m", "body", 4, 1024);
    assert_object(f->store, "key_len", "m", "body", 4);
}

static void test_corrupt_stats_recount(void **state)
{
    struct fixture *f = *state;
    char *b = make_body(9000, 9);

    put_object(f->store, "a", "m", b, 9000, 4096);
    put_object(f->store, "b", "mm", b, 5000, 4096);
    uint64_t fill_id = edge_store_new_fill_id(f->store);
    assert_int_equal(put_chunk(f->store, fill_id, 0, b, 4096), 0); /* a fill in progress counts too */
    edge_store_stats_t before = stats(f->store);
    edge_store_close(f->store);
    f->store = NULL;
    raw_put(f, "stats", "stats", 5, "garbage", 7);
    f->store = open_store(f, 16 * MiB, 0);
    edge_store_flush(f->store);
    edge_store_stats_t after = stats(f->store);
    assert_int_equal(after.objects, 2);
    /* the pending fill was swept after the recount */
    assert_int_equal(after.swept_fills, 1);
    assert_true(after.live_bytes < before.live_bytes);
    assert_true(edge_store_new_fill_id(f->store) > fill_id);
    assert_int_equal(delete_key(f->store, "a"), 0);
    assert_int_equal(delete_key(f->store, "b"), 0);
    assert_int_equal(stats(f->store).live_bytes, 0);
    assert_int_equal(stats(f->store).objects, 0);
    free(b);
}

static void test_mvcc_read_survives_replace(void **state)
{
    struct fixture *f = *state;
    const size_t size = 40000;
    char *a = malloc(size), *bb = malloc(size);
    memset(a, 'A', size);
    memset(bb, 'B', size);

    uint64_t f1 = put_object(f->store, "k", "meta-A", a, size, 8192);
    edge_store_txn_t *txn;
    edge_store_object_t obj;
    uint8_t hash[EDGE_STORE_HASH_LEN];
    const void *chunks[5];
    size_t lens[5];
    edge_store_hash("k", 1, hash);
    assert_int_equal(edge_store_read_begin(f->store, &txn), 0);
    assert_int_equal(edge_store_get(txn, hash, &obj), 0);
    for (uint32_t i = 0; i < obj.num_chunks; ++i)
        assert_int_equal(edge_store_get_chunk(txn, f1, i, &chunks[i], &lens[i]), 0);

    /* the writer replaces the object and frees the old chunks, then writes more */
    put_object(f->store, "k", "meta-B", bb, size, 8192);
    for (int i = 0; i < 10; ++i)
        put_object(f->store, "other", "x", bb, size, 8192);
    assert_false(chunk_exists(f->store, f1, 0));

    /* the old snapshot is intact */
    assert_memory_equal(obj.meta, "meta-A", 6);
    for (uint32_t i = 0; i < obj.num_chunks; ++i)
        assert_memory_equal(chunks[i], a, lens[i]);
    assert_int_equal(edge_store_get(txn, hash, &obj), 0);
    assert_int_equal(obj.fill_id, f1);
    edge_store_read_end(txn);
    assert_object(f->store, "k", "meta-B", bb, size);
    free(a);
    free(bb);
}

static void test_readers_full(void **state)
{
    struct fixture *f = *state;
    enum { SLOTS = 126 }; /* the minimum the store enforces, whatever the setting */
    edge_store_txn_t *txns[SLOTS], *extra;

    reopen(f, 16 * MiB, 1);
    for (int i = 0; i < SLOTS; ++i)
        assert_int_equal(edge_store_read_begin(f->store, &txns[i]), 0);
    assert_int_equal(edge_store_read_begin(f->store, &extra), EDGE_STORE_EREADERS);
    /* the writer does not need a reader slot */
    put_object(f->store, "w", "m", "x", 1, 1024);
    edge_store_read_end(txns[0]);
    assert_int_equal(edge_store_read_begin(f->store, &extra), 0);
    edge_store_read_end(extra);
    for (int i = 1; i < SLOTS; ++i)
        edge_store_read_end(txns[i]);
}

static void test_open_errors(void **state)
{
    struct fixture *f = *state;
    char err[512] = "", path[400];
    edge_store_settings_t settings = {.path = path, .max_size_bytes = 16 * MiB};

    /* a missing parent directory: the message names the path */
    snprintf(path, sizeof(path), "%s/missing/env", f->dir);
    assert_null(edge_store_open(&settings, err, sizeof(err)));
    assert_non_null(strstr(err, path));
    /* a budget too small */
    snprintf(path, sizeof(path), "%s/small", f->dir);
    settings.max_size_bytes = 4096;
    assert_null(edge_store_open(&settings, err, sizeof(err)));
    assert_non_null(strstr(err, path));
}

static void test_fill_ids_monotonic(void **state)
{
    struct fixture *f = *state;
    uint64_t prev = edge_store_new_fill_id(f->store);
    assert_true(prev >= 1);
    for (int i = 0; i < 1000; ++i) {
        uint64_t id = edge_store_new_fill_id(f->store);
        assert_true(id > prev);
        prev = id;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invisible_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_abort, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_incomplete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fill_ids_monotonic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_after_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_open_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_stats_recount, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mvcc_read_survives_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readers_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction_second_chance, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full_evict_and_retry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_map_full_drop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_drains_then_refuses, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
