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
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "edge/store.h"
#include "store_env.h"

#define MiB (1024 * 1024)

struct fixture {
    char dir[256];  /* the mkdtemp directory */
    char path[300]; /* the environment inside it (created by the store) */
    edge_store_t *store;
};

static edge_store_t *open_store(struct fixture *f, uint64_t max_size, unsigned max_readers)
{
    return store_env_open(f->path, max_size, max_readers);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (store_env_make(f->dir, sizeof(f->dir), f->path, sizeof(f->path), "test_store") != 0)
        return -1;
    f->store = open_store(f, 16 * MiB, 0);
    *state = f;
    return 0;
}

static void teardown_env(struct fixture *f)
{
    store_env_remove(f->path);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->store != NULL)
        edge_store_close(f->store);
    teardown_env(f);
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

/* edge_store_queued_bytes counts the CHUNK bytes submitted and not yet applied (what callers bound their memory by). */
static void test_queued_bytes(void **state)
{
    struct fixture *f = *state;
    char *b = make_body(5000, 3);
    struct gate g;
    struct done_op ops[3];
    assert_int_equal(edge_store_queued_bytes(f->store), 0);
    gate_close(f->store, &g); /* the writer is busy: nothing below is applied yet */
    uint64_t fill_id = edge_store_new_fill_id(f->store);
    ops[0] = (struct done_op){.op = {.kind = EDGE_STORE_OP_CHUNK, .fill_id = fill_id, .chunk_index = 0, .data = b, .len = 3000}};
    ops[1] = (struct done_op){.op = {.kind = EDGE_STORE_OP_CHUNK, .fill_id = fill_id, .chunk_index = 1, .data = b, .len = 2000}};
    make_commit(&ops[2].op, fill_id, "queued", "m", 5000, 2);
    for (int i = 0; i < 3; ++i) {
        ops[i].op.on_done = on_done;
        edge_store_submit(f->store, &ops[i].op);
    }
    assert_int_equal(edge_store_queued_bytes(f->store), 5000); /* chunks count, the commit does not */
    gate_open(&g);
    edge_store_flush(f->store);
    for (int i = 0; i < 3; ++i)
        assert_int_equal(ops[i].result, 0);
    assert_int_equal(edge_store_queued_bytes(f->store), 0);
    free(b);
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

/* The record header as store.c writes it (a copy of the on-disk format, version 2, on purpose). */
struct test_record_hdr {
    uint32_t magic;
    uint16_t version, hdr_size;
    uint32_t key_len, meta_len;
    uint64_t fill_id, fifo_seq, body_size;
    uint32_t num_chunks, flags;
    uint32_t variant_len, tags_len;
    uint64_t revalidated_ban_id;
    uint8_t group[32];
};
#define HDR 96

static void test_corrupt_records(void **state)
{
    struct fixture *f = *state;
    uint8_t good[HDR + 16];
    struct test_record_hdr h = {0x4a424f45u, 2, HDR, 4, 4, 7, 1, 0, 0, 0};
    _Static_assert(sizeof(h) == HDR, "test copy of the record header");
    memcpy(good, &h, sizeof(h));
    memcpy(good + HDR, "keyXmeta", 8);

    /* a good header and lengths, stored with the wrong value size */
    static const struct {
        const char *key;
        size_t len; /* of the stored value; the record is HDR + 8 bytes */
    } cases[] = {
        {"short", 10},
        {"empty", 0},
        {"truncated", HDR + 5},
        {"trailing", HDR + 12},
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
        {"version 1", 4, 1},          {"variant_len", 48, 1}, {"tags_len", 52, 2},
        {"hdr_size", 6, 48},
    };
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); ++i) {
        uint8_t rec[HDR + 8], hash[EDGE_STORE_HASH_LEN];
        struct test_record_hdr hh = h;
        hh.body_size = 10;
        hh.num_chunks = 1;
        memcpy(rec, &hh, sizeof(hh));
        if (fields[i].field_off == 16)
            memset(rec + 16, 0, 8);
        else if (fields[i].field_off == 40)
            memset(rec + 40, 0, 4); /* num_chunks 0 with body_size 10 */
        else if (fields[i].field_off == 4 || fields[i].field_off == 6)
            memcpy(rec + fields[i].field_off, &(uint16_t){(uint16_t)fields[i].value}, 2);
        else
            memcpy(rec + fields[i].field_off, &fields[i].value, 4);
        memcpy(rec + HDR, "keyXmeta", 8);
        edge_store_hash(fields[i].key, strlen(fields[i].key), hash);
        raw_put(f, "objects", hash, sizeof(hash), rec, sizeof(rec));
    }
    /* and a valid one, to show the raw writes are what the store reads */
    {
        uint8_t hash[EDGE_STORE_HASH_LEN];
        edge_store_hash("valid", 5, hash);
        raw_put(f, "objects", hash, sizeof(hash), good, HDR + 8);
    }
    /* a whole record of the first format (48-byte header): a miss now */
    {
        uint8_t v1[56], hash[EDGE_STORE_HASH_LEN];
        memcpy(v1, &h, 48);
        memcpy(v1 + 4, &(uint16_t){1}, 2);
        memcpy(v1 + 6, &(uint16_t){48}, 2);
        memcpy(v1 + 48, "keyXmeta", 8);
        edge_store_hash("format 1", 8, hash);
        raw_put(f, "objects", hash, sizeof(hash), v1, sizeof(v1));
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
    assert_int_equal(lookup(f->store, "format 1", &obj), EDGE_STORE_ECORRUPT);
    assert_int_equal(delete_key(f->store, "format 1"), 0);
    assert_int_equal(lookup(f->store, "format 1", &obj), EDGE_STORE_NOTFOUND);

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


/* ---- variants, tags, bans ---- */

/* An object with a variant, a group and tags. Returns the fill id (or 0 when the commit failed: *result). */
struct obj_spec {
    const char *key;
    const char *variant; /* NULL: the primary (hash of the key, no group) */
    const char *tags[4];
    const char *body;
};

static void spec_hash(const struct obj_spec *o, uint8_t hash[EDGE_STORE_HASH_LEN])
{
    if (o->variant != NULL)
        edge_store_variant_hash(o->key, strlen(o->key), o->variant, strlen(o->variant), hash);
    else
        edge_store_hash(o->key, strlen(o->key), hash);
}

static int commit_spec(edge_store_t *s, uint64_t fill_id, const struct obj_spec *o, const char *meta)
{
    size_t lens[4], n = 0;
    while (n < 4 && o->tags[n] != NULL) {
        lens[n] = strlen(o->tags[n]);
        ++n;
    }
    edge_store_op_t op;
    make_commit(&op, fill_id, o->key, meta, strlen(o->body), 1);
    spec_hash(o, op.hash);
    if (o->variant != NULL) {
        edge_store_hash(o->key, strlen(o->key), op.group);
        op.variant = o->variant;
        op.variant_len = strlen(o->variant);
    }
    op.tags = o->tags;
    op.tag_lens = lens;
    op.num_tags = n;
    return submit_sync(s, &op);
}

static uint64_t put_spec(edge_store_t *s, const struct obj_spec *o, const char *meta)
{
    uint64_t fill_id = edge_store_new_fill_id(s);
    assert_int_equal(put_chunk(s, fill_id, 0, o->body, strlen(o->body)), 0);
    assert_int_equal(commit_spec(s, fill_id, o, meta), 0);
    return fill_id;
}

static int get_spec(edge_store_t *s, const struct obj_spec *o, edge_store_object_t *obj)
{
    edge_store_txn_t *txn;
    uint8_t hash[EDGE_STORE_HASH_LEN];
    spec_hash(o, hash);
    assert_int_equal(edge_store_read_begin(s, &txn), 0);
    int rc = edge_store_get(txn, hash, obj);
    edge_store_read_end(txn);
    return rc;
}

static size_t group_count(edge_store_t *s, const char *key)
{
    edge_store_txn_t *txn;
    uint8_t group[EDGE_STORE_HASH_LEN];
    size_t n = 99;
    edge_store_hash(key, strlen(key), group);
    assert_int_equal(edge_store_read_begin(s, &txn), 0);
    assert_int_equal(edge_store_group_count(txn, group, &n), 0);
    edge_store_read_end(txn);
    return n;
}

static int group_op(edge_store_t *s, edge_store_op_kind_t kind, const char *key, uint32_t max_members)
{
    edge_store_op_t op = {.kind = kind, .max_members = max_members};
    edge_store_hash(key, strlen(key), op.hash);
    return submit_sync(s, &op);
}

static int ban(edge_store_t *s, edge_store_ban_kind_t kind, const char *value, int soft, uint64_t *ban_id)
{
    struct done_op d = {.op = {.kind = EDGE_STORE_OP_BAN, .ban_kind = kind, .ban_value = value,
                               .ban_value_len = value != NULL ? strlen(value) : 0, .soft = soft, .on_done = on_done}};
    edge_store_submit(s, &d.op);
    edge_store_flush(s);
    assert_int_equal(d.called, 1);
    if (ban_id != NULL)
        *ban_id = d.op.ban_id;
    return d.result;
}

/* Counts the entries of a database (dups included) of the closed environment: `key` NULL for all. */
static size_t raw_count(struct fixture *f, const char *db, const void *key, size_t key_len)
{
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    MDB_cursor *cur;
    MDB_val k = {key_len, (void *)key}, v;
    size_t n = 0;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->path, MDB_NOTLS | MDB_RDONLY, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
    assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
    if (key == NULL) {
        while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0)
            ++n;
    } else if (mdb_cursor_get(cur, &k, &v, MDB_SET_KEY) == 0) {
        assert_int_equal(mdb_cursor_count(cur, &n), 0);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    mdb_env_close(env);
    return n;
}

/* Closes the store, runs raw_count, reopens. */
static size_t index_count(struct fixture *f, const char *db, const char *key, int key_is_group)
{
    uint8_t group[EDGE_STORE_HASH_LEN];
    edge_store_close(f->store);
    f->store = NULL;
    size_t n;
    if (key_is_group) {
        edge_store_hash(key, strlen(key), group);
        n = raw_count(f, db, group, sizeof(group));
    } else {
        n = raw_count(f, db, key, key != NULL ? strlen(key) : 0);
    }
    f->store = open_store(f, 16 * MiB, 0);
    return n;
}

static void test_variant_hash(void **state)
{
    uint8_t a[EDGE_STORE_HASH_LEN], b[EDGE_STORE_HASH_LEN], c[EDGE_STORE_HASH_LEN], d[EDGE_STORE_HASH_LEN];
    edge_store_hash("k", 1, a);
    edge_store_variant_hash("k", 1, "", 0, b);
    assert_memory_not_equal(a, b, sizeof(a)); /* the 0 byte separates */
    edge_store_variant_hash("ka", 2, "b", 1, c);
    edge_store_variant_hash("k", 1, "ab", 2, d);
    assert_memory_not_equal(c, d, sizeof(c)); /* unambiguous */
    edge_store_variant_hash("k", 1, "ab", 2, c);
    assert_memory_equal(c, d, sizeof(c));
    edge_store_hash("k\0ab", 4, a); /* SHA-256 over key, 0, variant */
    assert_memory_equal(a, d, sizeof(a));
}

static void test_variants(void **state)
{
    struct fixture *f = *state;
    const char *url = "http://a.test/v";
    struct obj_spec primary = {url, NULL, {0}, "vary marker"}, other = {"http://a.test/other", NULL, {0}, "o"};
    struct obj_spec v[3] = {{url, "gzip", {0}, "body-gzip"}, {url, "br", {0}, "body-br"}, {url, "", {0}, "body-id"}};
    uint64_t fills[3];
    edge_store_object_t obj;

    put_spec(f->store, &primary, "m");
    put_spec(f->store, &other, "m");
    for (int i = 0; i < 3; ++i)
        fills[i] = put_spec(f->store, &v[i], "m");
    assert_int_equal(group_count(f->store, url), 3);
    assert_int_equal(group_count(f->store, "http://a.test/other"), 0);
    for (int i = 0; i < 3; ++i) {
        assert_int_equal(get_spec(f->store, &v[i], &obj), 0);
        assert_int_equal(obj.fill_id, fills[i]);
        assert_int_equal(obj.key_len, strlen(url));
        assert_memory_equal(obj.key, url, obj.key_len);
        assert_int_equal(obj.variant_len, strlen(v[i].variant));
        assert_memory_equal(obj.variant, v[i].variant, obj.variant_len);
        uint8_t g[EDGE_STORE_HASH_LEN];
        edge_store_hash(url, strlen(url), g);
        assert_memory_equal(obj.group, g, sizeof(g));
        assert_false(obj.soft_purged);
    }
    /* replacing a variant keeps one index entry */
    fills[1] = put_spec(f->store, &v[1], "m2");
    assert_int_equal(group_count(f->store, url), 3);
    assert_int_equal(stats(f->store).objects, 5);

    assert_int_equal(group_op(f->store, EDGE_STORE_OP_DELETE_GROUP, url, 0), 0);
    for (int i = 0; i < 3; ++i) {
        assert_int_equal(get_spec(f->store, &v[i], &obj), EDGE_STORE_NOTFOUND);
        assert_false(chunk_exists(f->store, fills[i], 0));
    }
    assert_int_equal(get_spec(f->store, &primary, &obj), EDGE_STORE_NOTFOUND);
    assert_int_equal(get_spec(f->store, &other, &obj), 0);
    assert_int_equal(group_count(f->store, url), 0);
    assert_int_equal(stats(f->store).objects, 1);
    assert_int_equal(index_count(f, "groups", NULL, 0), 0);
}

static void test_trim_group(void **state)
{
    struct fixture *f = *state;
    const char *url = "http://a.test/t";
    char variants[6][16];
    struct obj_spec v[6];
    edge_store_object_t obj;

    for (int i = 0; i < 6; ++i) {
        snprintf(variants[i], sizeof(variants[i]), "v%d", i);
        v[i] = (struct obj_spec){url, variants[i], {0}, "b"};
        put_spec(f->store, &v[i], "m");
    }
    /* v0 replaced: now the newest */
    put_spec(f->store, &v[0], "m");
    assert_int_equal(group_count(f->store, url), 6);
    assert_int_equal(group_op(f->store, EDGE_STORE_OP_TRIM_GROUP, url, 6), 0);
    assert_int_equal(group_count(f->store, url), 6);
    assert_int_equal(group_op(f->store, EDGE_STORE_OP_TRIM_GROUP, url, 2), 0);
    assert_int_equal(group_count(f->store, url), 2);
    /* the two newest by fill id: v5, then v0 */
    assert_int_equal(get_spec(f->store, &v[0], &obj), 0);
    assert_int_equal(get_spec(f->store, &v[5], &obj), 0);
    for (int i = 1; i < 5; ++i)
        assert_int_equal(get_spec(f->store, &v[i], &obj), EDGE_STORE_NOTFOUND);
    assert_int_equal(stats(f->store).objects, 2);
    assert_int_equal(group_op(f->store, EDGE_STORE_OP_TRIM_GROUP, url, 0), 0);
    assert_int_equal(group_count(f->store, url), 0);
    assert_int_equal(stats(f->store).objects, 0);
}

static void test_group_eviction(void **state)
{
    struct fixture *f = *state;
    const size_t size = 64 * 1024;
    char *b = make_body(size, 11);
    char vname[16];

    reopen(f, 4 * MiB, 0);
    for (int i = 0; i < 100; ++i) {
        uint64_t fill_id = edge_store_new_fill_id(f->store);
        edge_store_op_t op;
        snprintf(vname, sizeof(vname), "v%d", i);
        assert_int_equal(put_chunk(f->store, fill_id, 0, b, size), 0);
        make_commit(&op, fill_id, "http://a.test/big", "m", size, 1);
        edge_store_hash("http://a.test/big", 17, op.group);
        op.variant = vname;
        op.variant_len = strlen(vname);
        edge_store_variant_hash("http://a.test/big", 17, vname, strlen(vname), op.hash);
        assert_int_equal(submit_sync(f->store, &op), 0);
    }
    edge_store_stats_t st = stats(f->store);
    assert_true(st.evictions >= 40); /* the path under test ran */
    /* the index holds exactly the members still stored */
    assert_int_equal(group_count(f->store, "http://a.test/big"), st.objects);
    size_t found = 0;
    for (int i = 0; i < 100; ++i) {
        struct obj_spec o = {"http://a.test/big", vname, {0}, ""};
        edge_store_object_t obj;
        snprintf(vname, sizeof(vname), "v%d", i);
        found += get_spec(f->store, &o, &obj) == 0;
    }
    assert_int_equal(found, st.objects);
    free(b);
}

static void test_tags(void **state)
{
    struct fixture *f = *state;
    struct obj_spec a = {"http://a.test/a", NULL, {"red", "green"}, "a"}, bb = {"http://a.test/b", NULL, {"green"}, "b"},
                    c = {"http://a.test/c", NULL, {0}, "c"}, a2 = {"http://a.test/a", NULL, {"blue"}, "a2"};
    edge_store_object_t obj;

    put_spec(f->store, &a, "m");
    put_spec(f->store, &bb, "m");
    put_spec(f->store, &c, "m");
    assert_int_equal(get_spec(f->store, &a, &obj), 0);
    const char *t;
    size_t tl, cursor = 0;
    assert_int_equal(edge_store_object_next_tag(&obj, &cursor, &t, &tl), 0);
    assert_int_equal(tl, 3);
    assert_memory_equal(t, "red", 3);
    assert_int_equal(edge_store_object_next_tag(&obj, &cursor, &t, &tl), 0);
    assert_memory_equal(t, "green", 5);
    assert_int_equal(edge_store_object_next_tag(&obj, &cursor, &t, &tl), EDGE_STORE_NOTFOUND);
    assert_int_equal(get_spec(f->store, &c, &obj), 0);
    cursor = 0;
    assert_int_equal(edge_store_object_next_tag(&obj, &cursor, &t, &tl), EDGE_STORE_NOTFOUND);

    assert_int_equal(index_count(f, "tags", "green", 0), 2);
    assert_int_equal(index_count(f, "tags", NULL, 0), 3); /* untagged c is not indexed */
    /* replace: the old tags leave the index */
    put_spec(f->store, &a2, "m");
    assert_int_equal(index_count(f, "tags", "red", 0), 0);
    assert_int_equal(index_count(f, "tags", "green", 0), 1);
    assert_int_equal(index_count(f, "tags", "blue", 0), 1);
    assert_int_equal(delete_key(f->store, "http://a.test/b"), 0);
    assert_int_equal(index_count(f, "tags", NULL, 0), 1);

    /* a tag ban purges only the tagged objects */
    struct obj_spec d = {"http://a.test/d", NULL, {"blue"}, "d"};
    put_spec(f->store, &d, "m");
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_TAG, "blue", 0, NULL), 0);
    assert_int_equal(get_spec(f->store, &a2, &obj), EDGE_STORE_NOTFOUND);
    assert_int_equal(get_spec(f->store, &d, &obj), EDGE_STORE_NOTFOUND);
    assert_int_equal(get_spec(f->store, &c, &obj), 0);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).objects, 1);
    assert_int_equal(stats(f->store).swept_objects, 2);
    assert_int_equal(stats(f->store).bans_live, 0);
    assert_int_equal(index_count(f, "tags", NULL, 0), 0);

    /* bounds */
    char long_tag[EDGE_STORE_MAX_TAG_LEN + 2];
    memset(long_tag, 't', sizeof(long_tag) - 1);
    long_tag[sizeof(long_tag) - 1] = '\0';
    struct obj_spec bad = {"http://a.test/bad", NULL, {long_tag}, "x"};
    uint64_t fill_id = edge_store_new_fill_id(f->store);
    assert_int_equal(put_chunk(f->store, fill_id, 0, "x", 1), 0);
    assert_int_equal(commit_spec(f->store, fill_id, &bad, "m"), EDGE_STORE_EINVAL);
    assert_false(chunk_exists(f->store, fill_id, 0));
    long_tag[EDGE_STORE_MAX_TAG_LEN] = '\0'; /* exactly the maximum */
    put_spec(f->store, &bad, "m");
    const char *many[EDGE_STORE_MAX_TAGS + 1];
    size_t lens[EDGE_STORE_MAX_TAGS + 1];
    for (int i = 0; i <= EDGE_STORE_MAX_TAGS; ++i) {
        many[i] = "t";
        lens[i] = 1;
    }
    edge_store_op_t op;
    fill_id = edge_store_new_fill_id(f->store);
    assert_int_equal(put_chunk(f->store, fill_id, 0, "x", 1), 0);
    make_commit(&op, fill_id, "http://a.test/many", "m", 1, 1);
    op.tags = many;
    op.tag_lens = lens;
    op.num_tags = EDGE_STORE_MAX_TAGS + 1;
    assert_int_equal(submit_sync(f->store, &op), EDGE_STORE_EINVAL);
}

/* One row per ban kind: which of the fixture objects it matches. */
static void test_ban_kinds(void **state)
{
    struct fixture *f = *state;
    static const struct obj_spec objs[] = {
        {"http://a.test/x/1", NULL, {"red"}, "o1"},
        {"http://a.test/y/2", NULL, {"blue"}, "o2"},
        {"http://b.test:8080/x/1", NULL, {"red"}, "o3"},
        {"http://a.test/x/1", "gz", {0}, "o4"},
        {"http://a.test.evil/x/1", NULL, {0}, "o5"},
    };
    enum { N = sizeof(objs) / sizeof(objs[0]) };
    static const struct {
        edge_store_ban_kind_t kind;
        const char *value;
        int match[N];
        const struct obj_spec after; /* a matching object filled after the ban */
    } rows[] = {
        {EDGE_STORE_BAN_URL, "http://a.test/x/1", {1, 0, 0, 1, 0}, {"http://a.test/x/1", "br", {0}, "new"}},
        {EDGE_STORE_BAN_PREFIX, "http://a.test/x", {1, 0, 0, 1, 0}, {"http://a.test/x/9", NULL, {0}, "new"}},
        {EDGE_STORE_BAN_HOST, "a.test", {1, 1, 0, 1, 0}, {"http://a.test/z", NULL, {0}, "new"}},
        {EDGE_STORE_BAN_HOST, "b.test:8080", {0, 0, 1, 0, 0}, {"http://b.test:8080/q", NULL, {0}, "new"}},
        {EDGE_STORE_BAN_TAG, "red", {1, 0, 1, 0, 0}, {"http://c.test/", NULL, {"red"}, "new"}},
        {EDGE_STORE_BAN_ALL, NULL, {1, 1, 1, 1, 1}, {"http://c.test/", NULL, {0}, "new"}},
    };
    edge_store_object_t obj;

    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); ++r) {
        for (int soft = 0; soft <= 1; ++soft) {
            /* a fresh environment per row */
            edge_store_close(f->store);
            teardown_env(f);
            f->store = open_store(f, 16 * MiB, 0);
            for (int i = 0; i < N; ++i)
                put_spec(f->store, &objs[i], "m");
            /* a fill in flight across the purge: its id predates it */
            uint64_t inflight = edge_store_new_fill_id(f->store);
            assert_int_equal(put_chunk(f->store, inflight, 0, "new", 3), 0);
            uint64_t ban_id = 0;
            assert_int_equal(ban(f->store, rows[r].kind, rows[r].value, soft, &ban_id), 0);
            assert_true(ban_id >= 1);
            for (int i = 0; i < N; ++i) {
                int rc = get_spec(f->store, &objs[i], &obj);
                if (rows[r].match[i] && !soft) {
                    assert_int_equal(rc, EDGE_STORE_NOTFOUND);
                } else {
                    assert_int_equal(rc, 0);
                    assert_int_equal(obj.soft_purged, rows[r].match[i]);
                }
            }
            /* the in-flight fill lands: refused (hard) or stale (soft) */
            int rc = commit_spec(f->store, inflight, &rows[r].after, "m");
            assert_int_equal(rc, soft ? 0 : EDGE_STORE_EPURGED);
            if (!soft) {
                assert_false(chunk_exists(f->store, inflight, 0));
                assert_int_equal(get_spec(f->store, &rows[r].after, &obj), EDGE_STORE_NOTFOUND);
            } else {
                assert_int_equal(get_spec(f->store, &rows[r].after, &obj), 0);
                assert_true(obj.stale_flag);
                assert_true(obj.soft_purged);
            }
            /* filled after the purge: unaffected */
            put_spec(f->store, &rows[r].after, "m");
            assert_int_equal(get_spec(f->store, &rows[r].after, &obj), 0);
            assert_false(obj.soft_purged);

            /* the sweeper deletes or marks, then the ban retires; a restart keeps the result */
            edge_store_wait_idle(f->store);
            edge_store_stats_t st = stats(f->store);
            assert_int_equal(st.bans_live, 0);
            assert_int_equal(st.bans_applied, 1);
            int matched = 0;
            for (int i = 0; i < N; ++i)
                matched += rows[r].match[i];
            assert_int_equal(st.swept_objects, matched);
            assert_int_equal(st.objects, (uint64_t)(N + 1 - (soft ? 0 : matched)));
            reopen(f, 16 * MiB, 0);
            assert_int_equal(stats(f->store).bans_live, 0);
            for (int i = 0; i < N; ++i) {
                rc = get_spec(f->store, &objs[i], &obj);
                if (rows[r].match[i] && !soft) {
                    assert_int_equal(rc, EDGE_STORE_NOTFOUND);
                } else {
                    assert_int_equal(rc, 0);
                    assert_int_equal(obj.stale_flag, rows[r].match[i]);
                    assert_int_equal(obj.soft_purged, rows[r].match[i]);
                }
            }
            assert_int_equal(get_spec(f->store, &rows[r].after, &obj), 0);
            assert_false(obj.soft_purged);
        }
    }
    /* malformed bans */
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_URL, NULL, 0, NULL), EDGE_STORE_EINVAL);
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_PREFIX, "", 0, NULL), EDGE_STORE_EINVAL);
    assert_int_equal(ban(f->store, (edge_store_ban_kind_t)99, "x", 0, NULL), EDGE_STORE_EINVAL);
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_URL, "x", 2, NULL), EDGE_STORE_EINVAL);
    assert_int_equal(stats(f->store).bans_applied, 0);
}

/* Many objects: the sweep takes several bounded steps; a live fill holds the ban until released. */
static void test_sweeper_retires(void **state)
{
    struct fixture *f = *state;
    enum { N = 700 };
    static struct done_op ops[2 * N];
    static char keys[N][48];
    edge_store_object_t obj;

    for (int i = 0; i < N; ++i) {
        uint64_t fill_id = edge_store_new_fill_id(f->store);
        snprintf(keys[i], sizeof(keys[i]), "http://%s.test/%d", i % 2 ? "odd" : "even", i);
        ops[2 * i] = (struct done_op){.op = {.kind = EDGE_STORE_OP_CHUNK, .fill_id = fill_id, .data = "body", .len = 4}};
        make_commit(&ops[2 * i + 1].op, fill_id, keys[i], "m", 4, 1);
    }
    for (int i = 0; i < 2 * N; ++i) {
        ops[i].op.on_done = on_done;
        edge_store_submit(f->store, &ops[i].op);
    }
    edge_store_flush(f->store);
    for (int i = 0; i < 2 * N; ++i)
        assert_int_equal(ops[i].result, 0);
    assert_int_equal(stats(f->store).objects, N);

    uint64_t held = edge_store_new_fill_id(f->store); /* a fill that never writes, until released */
    /* the ban's on_done holds the writer: no sweep step yet, only the lookup-time check answers */
    struct gate g;
    memset(&g, 0, sizeof(g));
    pthread_mutex_init(&g.m, NULL);
    pthread_cond_init(&g.c, NULL);
    g.d.op = (edge_store_op_t){.kind = EDGE_STORE_OP_BAN, .ban_kind = EDGE_STORE_BAN_PREFIX, .ban_value = "http://odd.test/",
                               .ban_value_len = 16, .on_done = on_gate};
    edge_store_submit(f->store, &g.d.op);
    pthread_mutex_lock(&g.m);
    while (!g.entered)
        pthread_cond_wait(&g.c, &g.m);
    pthread_mutex_unlock(&g.m);
    assert_int_equal(stats(f->store).swept_objects, 0);
    for (int i = 0; i < N; ++i)
        assert_int_equal(lookup(f->store, keys[i], &obj), i % 2 ? EDGE_STORE_NOTFOUND : 0);
    assert_int_equal(stats(f->store).ban_hits, N / 2);
    assert_int_equal(stats(f->store).objects, N);
    gate_open(&g);
    edge_store_wait_idle(f->store);
    edge_store_stats_t st = stats(f->store);
    assert_int_equal(st.swept_objects, N / 2);
    assert_int_equal(st.objects, N / 2);
    assert_int_equal(st.bans_live, 1); /* the sweep is done, but `held` could still commit */
    edge_store_fill_release(f->store, held);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).bans_live, 0);
    assert_int_equal(index_count(f, "bans", NULL, 0), 0);
    for (int i = 0; i < N; ++i)
        assert_int_equal(lookup(f->store, keys[i], &obj), i % 2 ? EDGE_STORE_NOTFOUND : 0);
}

static void test_bans_survive_reopen(void **state)
{
    struct fixture *f = *state;
    edge_store_object_t obj;
    uint64_t id1 = 0, id2 = 0;
    struct obj_spec a = {"http://a.test/1", NULL, {"t"}, "a"}, b = {"http://b.test/1", NULL, {0}, "b"};

    put_spec(f->store, &a, "m");
    put_spec(f->store, &b, "m");
    uint64_t held = edge_store_new_fill_id(f->store); /* keeps the bans live until the close */
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_HOST, "a.test", 0, &id1), 0);
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_HOST, "b.test", 1, NULL), 0);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).bans_live, 2);
    /* durable: the ban records are on disk */
    assert_int_equal(index_count(f, "bans", NULL, 0), 2);
    /* ... and loaded at open: after the restart the fill ids start above the watermarks */
    assert_true(edge_store_new_fill_id(f->store) > held);
    assert_int_equal(get_spec(f->store, &a, &obj), EDGE_STORE_NOTFOUND);
    assert_int_equal(get_spec(f->store, &b, &obj), 0);
    assert_true(obj.soft_purged);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).bans_live, 0); /* no fill of the old run is live */
    assert_int_equal(index_count(f, "bans", NULL, 0), 0);
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_ALL, NULL, 1, &id2), 0);
    assert_true(id2 > id1 + 1); /* ban ids never repeat across restarts */
}

/* A read txn whose snapshot predates the sweep keeps the ban live: it still sees the swept object. */
static void test_old_reader_holds_ban(void **state)
{
    struct fixture *f = *state;
    edge_store_txn_t *old;
    edge_store_object_t obj;
    uint8_t hash[EDGE_STORE_HASH_LEN];

    put_object(f->store, "http://a.test/r", "m", "b", 1, 16);
    edge_store_hash("http://a.test/r", 15, hash);
    assert_int_equal(edge_store_read_begin(f->store, &old), 0);
    assert_int_equal(edge_store_get(old, hash, &obj), 0);
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_URL, "http://a.test/r", 0, NULL), 0);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).objects, 0); /* swept */
    assert_int_equal(stats(f->store).bans_live, 1);
    assert_int_equal(edge_store_get(old, hash, &obj), EDGE_STORE_NOTFOUND); /* its snapshot has it: the ban hides it */
    edge_store_read_end(old);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).bans_live, 0);
    assert_int_equal(lookup(f->store, "http://a.test/r", &obj), EDGE_STORE_NOTFOUND);
}

static int update_meta(edge_store_t *s, const char *key, uint64_t fill_id, uint64_t started, const char *meta)
{
    edge_store_op_t op = {.kind = EDGE_STORE_OP_UPDATE_META, .fill_id = fill_id, .started_fill_id = started,
                          .data = meta, .len = strlen(meta)};
    edge_store_hash(key, strlen(key), op.hash);
    return submit_sync(s, &op);
}

/* A small one-chunk body is also kept in the record (one lookup per hit); it survives every record rewrite (a new
 * head, the soft-purge flag, a reopen); larger or several-chunk bodies are not inlined. */
static void test_inline_body(void **state)
{
    struct fixture *f = *state;
    edge_store_object_t obj;
    edge_store_txn_t *txn;
    char *small = make_body(1000, 11), *big = make_body(3000, 12);
    put_object(f->store, "http://a.test/small", "m1", small, 1000, EDGE_STORE_CHUNK_SIZE);
    put_object(f->store, "http://a.test/big", "m1", big, 3000, EDGE_STORE_CHUNK_SIZE); /* the record would not fit a node */
    put_object(f->store, "http://a.test/two", "m1", small, 1000, 600);                   /* two chunks */
    assert_int_equal(lookup(f->store, "http://a.test/big", &obj), 0);
    assert_null(obj.body);
    assert_int_equal(lookup(f->store, "http://a.test/two", &obj), 0);
    assert_null(obj.body);

    uint8_t hash[EDGE_STORE_HASH_LEN];
    edge_store_hash("http://a.test/small", strlen("http://a.test/small"), hash);
    for (int step = 0; step != 4; ++step) {
        if (step == 1)
            assert_int_equal(update_meta(f->store, "http://a.test/small", obj.fill_id, 0, "a longer head, m2"), 0);
        if (step == 2) {
            assert_int_equal(ban(f->store, EDGE_STORE_BAN_URL, "http://a.test/small", 1, NULL), 0);
            edge_store_wait_idle(f->store); /* the sweeper sets the stale flag: a record rewrite */
        }
        if (step == 3)
            reopen(f, 16 * MiB, 0);
        assert_int_equal(edge_store_read_begin(f->store, &txn), 0);
        assert_int_equal(edge_store_get(txn, hash, &obj), 0);
        assert_non_null(obj.body);
        assert_int_equal(obj.body_size, 1000);
        assert_memory_equal(obj.body, small, 1000);
        if (step >= 1)
            assert_memory_equal(obj.meta, "a longer head, m2", obj.meta_len);
        if (step >= 2)
            assert_true(obj.stale_flag);
        const void *data;
        size_t len;
        assert_int_equal(edge_store_get_chunk(txn, obj.fill_id, 0, &data, &len), 0); /* chunk 0 stays */
        assert_int_equal(len, 1000);
        edge_store_read_end(txn);
    }
    free(small);
    free(big);
}

static void test_update_meta(void **state)
{
    struct fixture *f = *state;
    edge_store_object_t obj;
    struct obj_spec o = {"http://a.test/m", NULL, {"tag"}, "body"};

    uint64_t f1 = put_spec(f->store, &o, "meta-1");
    assert_int_equal(update_meta(f->store, o.key, f1 + 1000, 0, "wrong"), EDGE_STORE_NOTFOUND);
    assert_int_equal(update_meta(f->store, "http://a.test/none", f1, 0, "none"), EDGE_STORE_NOTFOUND);
    assert_int_equal(get_spec(f->store, &o, &obj), 0);
    assert_memory_equal(obj.meta, "meta-1", 6);
    uint64_t live = stats(f->store).live_bytes;
    assert_int_equal(update_meta(f->store, o.key, f1, 0, "meta-two-longer"), 0);
    assert_int_equal(get_spec(f->store, &o, &obj), 0);
    assert_int_equal(obj.meta_len, 15);
    assert_memory_equal(obj.meta, "meta-two-longer", 15);
    assert_int_equal(obj.fill_id, f1);
    const char *t;
    size_t tl, cursor = 0;
    assert_int_equal(edge_store_object_next_tag(&obj, &cursor, &t, &tl), 0);
    assert_memory_equal(t, "tag", 3);
    assert_true(stats(f->store).live_bytes > live);
    assert_object(f->store, o.key, "meta-two-longer", "body", 4);

    /* a newer fill replaced it: the old fill's 304 does not overwrite it */
    uint64_t f2 = put_spec(f->store, &o, "meta-3");
    assert_int_equal(update_meta(f->store, o.key, f1, 0, "old"), EDGE_STORE_NOTFOUND);
    assert_object(f->store, o.key, "meta-3", "body", 4);

    /* soft purge: a revalidation that started before it does not make the object fresh */
    uint64_t before = edge_store_new_fill_id(f->store);
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_URL, o.key, 1, NULL), 0);
    edge_store_wait_idle(f->store);
    assert_int_equal(get_spec(f->store, &o, &obj), 0);
    assert_true(obj.stale_flag);
    assert_int_equal(update_meta(f->store, o.key, f2, before, "meta-4"), 0);
    assert_int_equal(get_spec(f->store, &o, &obj), 0);
    assert_memory_equal(obj.meta, "meta-4", 6);
    assert_true(obj.stale_flag);
    assert_true(obj.soft_purged);
    /* one that started after it does */
    uint64_t after = edge_store_new_fill_id(f->store);
    assert_int_equal(update_meta(f->store, o.key, f2, after, "meta-5"), 0);
    assert_int_equal(get_spec(f->store, &o, &obj), 0);
    assert_false(obj.stale_flag);
    assert_false(obj.soft_purged);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).bans_live, 0);
    reopen(f, 16 * MiB, 0);
    assert_int_equal(get_spec(f->store, &o, &obj), 0);
    assert_false(obj.soft_purged);
    assert_memory_equal(obj.meta, "meta-5", 6);
}

/* With no live ban a lookup allocates nothing (and takes no lock: see edge_store_get). */
static void test_get_cost_without_bans(void **state)
{
    struct fixture *f = *state;
    edge_store_txn_t *txn;
    edge_store_object_t obj;
    uint8_t hash[EDGE_STORE_HASH_LEN];

    put_object(f->store, "k", "m", "b", 1, 16);
    /* a ban that came and went leaves nothing behind */
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_URL, "other", 0, NULL), 0);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).bans_live, 0);
    edge_store_hash("k", 1, hash);
    assert_int_equal(edge_store_read_begin(f->store, &txn), 0);
    assert_int_equal(edge_store_get(txn, hash, &obj), 0);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 10000; ++i)
        assert_int_equal(edge_store_get(txn, hash, &obj), 0);
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(after.uordblks, before.uordblks);
    assert_int_equal(after.hblks, before.hblks);
    edge_store_read_end(txn);
    assert_int_equal(stats(f->store).ban_hits, 0);
}

/* Read txns are pooled: an ended one is reset and renewed by the next begin (any thread). */
static uint64_t get_fill(edge_store_txn_t *txn, const char *key)
{
    edge_store_object_t obj;
    uint8_t hash[EDGE_STORE_HASH_LEN];
    edge_store_hash(key, strlen(key), hash);
    int rc = edge_store_get(txn, hash, &obj);
    return rc == 0 ? obj.fill_id : 0;
}

static void test_txn_reuse(void **state)
{
    struct fixture *f = *state;
    edge_store_txn_t *a, *b, *first;

    uint64_t f1 = put_object(f->store, "k", "m1", "x", 1, 16);
    assert_int_equal(edge_store_read_begin(f->store, &first), 0);
    assert_int_equal(get_fill(first, "k"), f1);
    edge_store_read_end(first);

    /* the next begin renews the same handle, and its new snapshot sees commits made since */
    uint64_t f2 = put_object(f->store, "k", "m2", "y", 1, 16);
    uint64_t f3 = put_object(f->store, "new", "m3", "z", 1, 16);
    assert_int_equal(edge_store_read_begin(f->store, &a), 0);
    assert_ptr_equal(a, first); /* the reuse path ran */
    assert_int_equal(get_fill(a, "k"), f2);
    assert_int_equal(get_fill(a, "new"), f3);
    assert_int_equal(edge_store_read_begin(f->store, &b), 0); /* a second one while `a` is open: another handle */
    assert_ptr_not_equal(b, a);
    /* `a` keeps its snapshot while the writer commits; `b` renewed after the commit sees it */
    assert_int_equal(delete_key(f->store, "new"), 0);
    edge_store_read_end(b);
    assert_int_equal(edge_store_read_begin(f->store, &b), 0);
    assert_int_equal(get_fill(a, "new"), f3);
    assert_int_equal(get_fill(b, "new"), 0);
    edge_store_read_end(a);
    edge_store_read_end(b);

    /* many interleaved cycles (test_txn_reuse_readers_full checks that no handle leaks) */
    for (int i = 0; i < 20000; ++i) {
        assert_int_equal(edge_store_read_begin(f->store, &a), 0);
        assert_int_equal(edge_store_read_begin(f->store, &b), 0);
        assert_int_equal(get_fill(a, "k"), f2);
        edge_store_read_end(a);
        assert_int_equal(get_fill(b, "k"), f2);
        edge_store_read_end(b);
    }

    /* begins that renew allocate nothing: with handles that ended (reset), opening as many again does not
     * grow the heap (a malloc'd handle or MDB_txn per begin would) */
    enum { N = 16 };
    edge_store_txn_t *txns[N];
    for (int i = 0; i < N; ++i)
        assert_int_equal(edge_store_read_begin(f->store, &txns[i]), 0);
    for (int i = 0; i < N; ++i)
        edge_store_read_end(txns[i]);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < N; ++i)
        assert_int_equal(edge_store_read_begin(f->store, &txns[i]), 0);
    struct mallinfo2 during = mallinfo2();
    for (int i = 0; i < N; ++i)
        edge_store_read_end(txns[i]);
    assert_int_equal(during.uordblks, before.uordblks);
    assert_int_equal(during.hblks, before.hblks);
}

static void test_txn_reuse_readers_full(void **state)
{
    struct fixture *f = *state;
    enum { SLOTS = 126 }; /* the minimum the store enforces, whatever the setting */
    edge_store_txn_t *txns[SLOTS], *extra;

    reopen(f, 16 * MiB, 1);
    uint64_t f1 = put_object(f->store, "k", "m", "x", 1, 16);
    /* churn first: half the handles end reset, half never begun */
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < SLOTS / 2; ++i)
            assert_int_equal(edge_store_read_begin(f->store, &txns[i]), 0);
        for (int i = 0; i < SLOTS / 2; ++i)
            edge_store_read_end(txns[i]);
    }
    for (int i = 0; i < SLOTS; ++i) {
        assert_int_equal(edge_store_read_begin(f->store, &txns[i]), 0);
        assert_int_equal(get_fill(txns[i], "k"), f1);
    }
    assert_int_equal(edge_store_read_begin(f->store, &extra), EDGE_STORE_EREADERS);
    assert_int_equal(edge_store_get_stream_cursor(f->store, (char[8]){0}, 8), EDGE_STORE_EREADERS);
    edge_store_read_end(txns[5]);
    assert_int_equal(edge_store_read_begin(f->store, &extra), 0);
    assert_ptr_equal(extra, txns[5]);
    assert_int_equal(edge_store_read_begin(f->store, &txns[5]), EDGE_STORE_EREADERS);
    edge_store_read_end(extra);
    for (int i = 0; i < SLOTS; ++i)
        if (i != 5)
            edge_store_read_end(txns[i]);
    /* every slot is free again (reset handles renew) */
    for (int i = 0; i < SLOTS; ++i)
        assert_int_equal(edge_store_read_begin(f->store, &txns[i]), 0);
    for (int i = 0; i < SLOTS; ++i)
        edge_store_read_end(txns[i]);
}

struct thread_arg {
    edge_store_t *store;
    edge_store_txn_t *txn;
    uint64_t fill_id;
    int rc;
};

static void *end_on_thread(void *p)
{
    struct thread_arg *a = p;
    edge_store_read_end(a->txn);
    return NULL;
}

static void *begin_on_thread(void *p)
{
    struct thread_arg *a = p;
    if ((a->rc = edge_store_read_begin(a->store, &a->txn)) == 0)
        a->fill_id = get_fill(a->txn, "k");
    return NULL;
}

static void test_txn_reuse_across_threads(void **state)
{
    struct fixture *f = *state;
    struct thread_arg arg = {.store = f->store};
    pthread_t th;

    put_object(f->store, "k", "m1", "x", 1, 16);
    assert_int_equal(edge_store_read_begin(f->store, &arg.txn), 0);
    edge_store_txn_t *mine = arg.txn;
    assert_int_equal(pthread_create(&th, NULL, end_on_thread, &arg), 0); /* ended on another thread */
    assert_int_equal(pthread_join(th, NULL), 0);
    uint64_t f2 = put_object(f->store, "k", "m2", "y", 1, 16);
    assert_int_equal(pthread_create(&th, NULL, begin_on_thread, &arg), 0); /* renewed on a third one */
    assert_int_equal(pthread_join(th, NULL), 0);
    assert_int_equal(arg.rc, 0);
    assert_ptr_equal(arg.txn, mine);
    assert_int_equal(arg.fill_id, f2);
    edge_store_read_end(arg.txn); /* and ended here */
}

/* A reused handle keeps its reference to the ban list, and refreshes it when the bans changed. */
static void test_txn_reuse_bans(void **state)
{
    struct fixture *f = *state;
    edge_store_txn_t *old, *t, *t2;

    put_object(f->store, "http://a.test/x", "m", "b", 1, 16);
    put_object(f->store, "http://a.test/y", "m", "b", 1, 16);
    assert_int_equal(edge_store_read_begin(f->store, &old), 0); /* holds the bans live */
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_URL, "http://a.test/x", 0, NULL), 0);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).bans_live, 1);
    assert_int_equal(edge_store_get(old, (uint8_t[EDGE_STORE_HASH_LEN]){0}, &(edge_store_object_t){0}),
                     EDGE_STORE_NOTFOUND);
    assert_int_equal(edge_store_read_begin(f->store, &t), 0);
    assert_int_equal(get_fill(t, "http://a.test/x"), 0);
    assert_int_not_equal(get_fill(t, "http://a.test/y"), 0);
    edge_store_read_end(t);

    assert_int_equal(ban(f->store, EDGE_STORE_BAN_URL, "http://a.test/y", 0, NULL), 0);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).bans_live, 2);
    assert_int_equal(edge_store_read_begin(f->store, &t2), 0);
    assert_ptr_equal(t2, t);
    uint64_t hits = stats(f->store).ban_hits;
    /* the old snapshot still has y: the new ban (seen through the refreshed list) hides it */
    assert_int_equal(get_fill(old, "http://a.test/y"), 0);
    assert_int_equal(stats(f->store).ban_hits, hits + 1);
    assert_int_equal(get_fill(t2, "http://a.test/y"), 0);
    edge_store_read_end(t2);

    edge_store_read_end(old);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).bans_live, 0);
    uint64_t f3 = put_object(f->store, "http://a.test/y", "m", "c", 1, 16);
    assert_int_equal(edge_store_read_begin(f->store, &t), 0); /* it kept a list that is now retired */
    assert_int_equal(get_fill(t, "http://a.test/y"), f3);
    edge_store_read_end(t);
}

/* edge_store_get remembers each thread's lookups per snapshot: a txn of a later snapshot finds the replacing object, one
 * of the earlier snapshot keeps finding its own (whichever the thread looked up last), bans still hide a remembered
 * object, and a txn of another store at the same txnid never gets the first store's record. */
static void test_get_memo_follows_snapshots(void **state)
{
    struct fixture *f = *state;
    edge_store_txn_t *old, *cur;
    uint64_t instance_old, txnid_old, instance_cur, txnid_cur;

    uint64_t f1 = put_object(f->store, "http://m.test/a", "meta-1", "one", 3, 16);
    assert_int_equal(edge_store_read_begin(f->store, &old), 0);
    assert_int_equal(get_fill(old, "http://m.test/a"), f1);
    assert_int_equal(get_fill(old, "http://m.test/a"), f1); /* from the memo */
    uint64_t f2 = put_object(f->store, "http://m.test/a", "meta-2", "two", 3, 16);
    assert_int_equal(edge_store_read_begin(f->store, &cur), 0);
    edge_store_txn_snapshot(old, &instance_old, &txnid_old);
    edge_store_txn_snapshot(cur, &instance_cur, &txnid_cur);
    assert_int_equal(instance_old, instance_cur);
    assert_true(txnid_cur > txnid_old);
    for (int i = 0; i < 3; ++i) { /* each look-up replaces the other snapshot's in the slot of their hash */
        assert_int_equal(get_fill(cur, "http://m.test/a"), f2);
        assert_int_equal(get_fill(old, "http://m.test/a"), f1);
    }
    edge_store_object_t obj;
    uint8_t hash[EDGE_STORE_HASH_LEN];
    edge_store_hash("http://m.test/a", strlen("http://m.test/a"), hash);
    assert_int_equal(edge_store_get(cur, hash, &obj), 0);
    assert_memory_equal(obj.meta, "meta-2", 6);
    assert_int_equal(edge_store_get(old, hash, &obj), 0);
    assert_memory_equal(obj.meta, "meta-1", 6);
    edge_store_read_end(old);

    /* a ban published after the lookup hides the object from the snapshot that remembers it */
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_URL, "http://m.test/a", 0, NULL), 0);
    edge_store_wait_idle(f->store);
    assert_int_equal(get_fill(cur, "http://m.test/a"), 0);
    edge_store_read_end(cur);

    /* another store, with its own record under the same hash: two txns of the two stores at the same txnid (each
     * store's one behind takes chunk writes, one write txn each, until they meet: background commits may intervene) */
    char dir2[256], path2[300];
    assert_int_equal(store_env_make(dir2, sizeof(dir2), path2, sizeof(path2), "test_store_memo"), 0);
    edge_store_t *second = store_env_open(path2, 16 * MiB, 0);
    uint64_t f3 = put_object(f->store, "http://m.test/a", "meta-3", "three", 5, 16);
    uint64_t f4 = put_object(second, "http://m.test/a", "meta-4", "four", 4, 16);
    int met = 0;
    for (int i = 0; i != 1000 && !met; ++i) {
        edge_store_txn_t *b;
        assert_int_equal(edge_store_read_begin(f->store, &cur), 0);
        assert_int_equal(edge_store_read_begin(second, &b), 0);
        edge_store_txn_snapshot(cur, &instance_old, &txnid_old);
        edge_store_txn_snapshot(b, &instance_cur, &txnid_cur);
        if (txnid_old == txnid_cur) {
            met = 1;
            assert_int_not_equal(instance_cur, instance_old);
            assert_int_equal(get_fill(cur, "http://m.test/a"), f3);
            assert_int_equal(edge_store_get(b, hash, &obj), 0); /* the same slot, the same txnid: another store */
            assert_int_equal(obj.fill_id, f4);
            assert_memory_equal(obj.meta, "meta-4", 6);
        }
        edge_store_read_end(b);
        edge_store_read_end(cur);
        if (!met) {
            edge_store_t *behind = txnid_old < txnid_cur ? f->store : second;
            assert_int_equal(put_chunk(behind, edge_store_new_fill_id(behind), 0, "x", 1), 0);
        }
    }
    assert_true(met);
    edge_store_close(second);
    store_env_remove(path2);
    rmdir(dir2);
}

/* Shared snapshots (edge_store_read_begin_shared): one handle for every begin on the thread while no commit lands; a
 * commit makes the next begin take a snapshot that sees it while the old one stays valid for its users and ends with
 * the last of them; release ends an unused one at once, and until then it holds bans live like any old reader. */
static void test_shared_snapshot(void **state)
{
    struct fixture *f = *state;
    edge_store_txn_t *a, *b, *c, *d;

    reopen(f, 16 * MiB, 1);
    uint64_t f1 = put_object(f->store, "http://a.test/k", "m1", "x", 1, 16);
    assert_int_equal(edge_store_read_begin_shared(f->store, &a), 0);
    assert_int_equal(edge_store_read_begin_shared(f->store, &b), 0);
    assert_ptr_equal(b, a);
    assert_int_equal(get_fill(a, "http://a.test/k"), f1);
    edge_store_read_end(a);
    edge_store_read_end(b);
    assert_int_equal(edge_store_read_begin_shared(f->store, &b), 0); /* kept once its uses ended */
    assert_ptr_equal(b, a);

    uint64_t f2 = put_object(f->store, "http://a.test/k", "m2", "y", 1, 16);
    assert_int_equal(edge_store_read_begin_shared(f->store, &c), 0);
    assert_ptr_not_equal(c, a);
    assert_int_equal(get_fill(c, "http://a.test/k"), f2);
    assert_int_equal(get_fill(a, "http://a.test/k"), f1); /* the old snapshot, still in use */
    edge_store_read_end(a); /* its last use: ended and back in the pool, whose next begin renews it */
    assert_int_equal(edge_store_read_begin(f->store, &d), 0);
    assert_ptr_equal(d, a);
    assert_int_equal(get_fill(d, "http://a.test/k"), f2);
    edge_store_read_end(d);

    /* released while in use: the next begin takes another; the released one ends with its last use */
    edge_store_read_release_shared();
    assert_int_equal(edge_store_read_begin_shared(f->store, &d), 0);
    assert_ptr_not_equal(d, c);
    assert_int_equal(get_fill(c, "http://a.test/k"), f2);
    edge_store_read_end(c);
    assert_int_equal(edge_store_read_begin(f->store, &a), 0);
    assert_ptr_equal(a, c);
    edge_store_read_end(a);
    edge_store_read_end(d);

    /* kept unused, the snapshot is an old reader: a ban waits for its release */
    assert_int_equal(ban(f->store, EDGE_STORE_BAN_URL, "http://a.test/k", 0, NULL), 0);
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).objects, 0);
    assert_int_equal(stats(f->store).bans_live, 1);
    edge_store_read_release_shared();
    edge_store_wait_idle(f->store);
    assert_int_equal(stats(f->store).bans_live, 0);

    /* many cycles end every snapshot they take (test_txn_reuse_readers_full: a leak would exhaust the slots) */
    for (int i = 0; i < 5000; ++i) {
        assert_int_equal(edge_store_read_begin_shared(f->store, &a), 0);
        if (i % 100 == 0)
            put_object(f->store, "http://a.test/n", "m", "z", 1, 16);
        assert_int_equal(edge_store_read_begin_shared(f->store, &b), 0);
        edge_store_read_end(a);
        if (i % 7 == 0)
            edge_store_read_release_shared();
        edge_store_read_end(b);
    }
    edge_store_read_release_shared();
    enum { SLOTS = 126 }; /* what reopen(f, .., 1) leaves, as in test_txn_reuse_readers_full */
    edge_store_txn_t *all[SLOTS];
    for (int i = 0; i < SLOTS; ++i)
        assert_int_equal(edge_store_read_begin(f->store, &all[i]), 0);
    assert_int_equal(edge_store_read_begin(f->store, &a), EDGE_STORE_EREADERS);
    for (int i = 0; i < SLOTS; ++i)
        edge_store_read_end(all[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash),
        cmocka_unit_test_setup_teardown(test_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invisible_before_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replace, setup, teardown),
        cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queued_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_inline_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_memo_follows_snapshots, setup, teardown),
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
        cmocka_unit_test(test_variant_hash),
        cmocka_unit_test_setup_teardown(test_variants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_trim_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_group_eviction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ban_kinds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweeper_retires, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bans_survive_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_reader_holds_ban, setup, teardown),
        cmocka_unit_test_setup_teardown(test_update_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_cost_without_bans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_reuse, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_reuse_readers_full, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_reuse_across_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_txn_reuse_bans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_snapshot, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
