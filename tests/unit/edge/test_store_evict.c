/*
 * Unit tests of the store's eviction (edge/store.c, S3-FIFO): a small budget, objects of 64 KiB (17
 * pages each, so about 48 of them fit below the low-water mark of a 4 MiB map), one mkdtemp
 * directory per test. Plain FIFO order (what the one-hit objects of a scan get) and what protects
 * an object from it: hits while it is in the small queue, or coming back soon after its eviction.
 * "Hit while in the small queue" is two touches here, so that the tests hold for MOVE_MIN_FREQ 1 or 2.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "edge/store.h"
#include "store_env.h"

#define MiB (1024 * 1024)
#define OBJ_SIZE (64 * 1024)
#define BUDGET (4 * MiB)

struct fixture {
    char dir[256];
    char path[300];
    edge_store_t *store;
    char *body;
};

static edge_store_t *open_store(struct fixture *f)
{
    return store_env_open(f->path, BUDGET, 0);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (store_env_make(f->dir, sizeof(f->dir), f->path, sizeof(f->path), "test_store_evict") != 0)
        return -1;
    f->store = open_store(f);
    f->body = malloc(OBJ_SIZE);
    for (size_t i = 0; i < OBJ_SIZE; ++i)
        f->body[i] = (char)(i * 31 + 7);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->store != NULL)
        edge_store_close(f->store);
    store_env_remove(f->path);
    rmdir(f->dir);
    free(f->body);
    free(f);
    return 0;
}

static void reopen(struct fixture *f)
{
    edge_store_close(f->store);
    f->store = open_store(f);
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

/* Stores a one-chunk object of OBJ_SIZE bytes under `key`; returns its fill id. */
static uint64_t put(struct fixture *f, const char *key)
{
    uint64_t fill_id = edge_store_new_fill_id(f->store);
    edge_store_op_t chunk = {.kind = EDGE_STORE_OP_CHUNK, .fill_id = fill_id, .data = f->body, .len = OBJ_SIZE};
    assert_int_equal(submit_sync(f->store, &chunk), 0);
    edge_store_op_t commit = {.kind = EDGE_STORE_OP_COMMIT,
                              .fill_id = fill_id,
                              .data = "m",
                              .len = 1,
                              .key = key,
                              .key_len = strlen(key),
                              .body_size = OBJ_SIZE,
                              .num_chunks = 1};
    edge_store_hash(key, strlen(key), commit.hash);
    assert_int_equal(submit_sync(f->store, &commit), 0);
    return fill_id;
}

/* @return the fill id of the object stored under `key`, or 0 when there is none */
static uint64_t find(struct fixture *f, const char *key)
{
    edge_store_txn_t *txn;
    edge_store_object_t obj;
    uint8_t hash[EDGE_STORE_HASH_LEN];
    uint64_t fill_id = 0;

    assert_int_equal(edge_store_read_begin(f->store, &txn), 0);
    edge_store_hash(key, strlen(key), hash);
    int rc = edge_store_get(txn, hash, &obj);
    assert_true(rc == 0 || rc == EDGE_STORE_NOTFOUND);
    if (rc == 0) {
        assert_int_equal(obj.key_len, strlen(key));
        assert_memory_equal(obj.key, key, obj.key_len);
        assert_int_equal(obj.body_size, OBJ_SIZE);
        fill_id = obj.fill_id;
    }
    edge_store_read_end(txn);
    return fill_id;
}

static edge_store_stats_t stats(edge_store_t *s)
{
    edge_store_stats_t st;
    edge_store_get_stats(s, &st);
    return st;
}

/* Stores one-hit objects `prefix`-first .. `prefix`-(first + n - 1), never touched. */
static void scan(struct fixture *f, const char *prefix, int first, int n)
{
    char key[64];
    for (int i = first; i < first + n; ++i) {
        snprintf(key, sizeof(key), "%s-%d", prefix, i);
        put(f, key);
        edge_store_stats_t st = stats(f->store);
        assert_true(st.live_bytes <= st.max_size_bytes);
        assert_true(st.main_bytes <= st.live_bytes);
        assert_int_equal(st.dropped_fills, 0);
    }
}

/* The one-hit objects of a scan leave in FIFO order: the oldest are gone, the newest are there. */
static void assert_fifo_order(struct fixture *f, const char *prefix, int first, int n)
{
    char key[64];
    int gone_first = -1, present_last = -1;
    for (int i = first; i < first + n; ++i) {
        snprintf(key, sizeof(key), "%s-%d", prefix, i);
        if (find(f, key) == 0)
            gone_first = gone_first < 0 ? i : gone_first;
        else
            present_last = i;
        /* once one is present, every later one is too */
        if (present_last >= 0)
            assert_int_equal(present_last, i);
    }
    assert_int_equal(gone_first, first); /* the scan really evicted */
    assert_int_equal(present_last, first + n - 1);
}

/* ---- tests ---- */

/* Hits while in the small queue protect an object from a scan that plain FIFO with second chance
 * would evict it in (one touch bit lasts one pass); hits cost no write transaction. */
static void test_hot_survives_scan(void **state)
{
    struct fixture *f = *state;

    uint64_t hot = put(f, "hot");
    uint64_t commits = stats(f->store).commits;
    for (int i = 0; i < 1000; ++i)
        edge_store_touch(f->store, hot);
    assert_int_equal(stats(f->store).commits, commits); /* no write per hit */

    scan(f, "scan", 0, 200);
    edge_store_stats_t st = stats(f->store);
    assert_true(st.evictions >= 140); /* 200 objects of 68 KiB do not fit in 4 MiB */
    assert_int_equal(st.objects + st.evictions, 201);
    assert_int_equal(st.promoted, 1); /* hot moved to main: the path under test ran */
    assert_int_equal(st.ghost_hits, 0);
    assert_true(st.main_bytes > OBJ_SIZE && st.main_bytes < 2 * OBJ_SIZE);
    assert_int_equal(find(f, "hot"), hot);
    assert_fifo_order(f, "scan", 0, 200);

    /* a second scan, with no hit at all meanwhile: the one object of main is not even examined while the
     * small queue is over its share, and the counters stay consistent across a reopen */
    scan(f, "scan2", 0, 100);
    assert_int_equal(find(f, "hot"), hot);
    st = stats(f->store);
    reopen(f);
    assert_int_equal(stats(f->store).objects, st.objects);
    assert_int_equal(stats(f->store).live_bytes, st.live_bytes);
    assert_int_equal(stats(f->store).main_bytes, st.main_bytes);
}

/* An object never hit is evicted in FIFO order, hot or not later: a touch after eviction does nothing. */
static void test_cold_evicted_in_order(void **state)
{
    struct fixture *f = *state;

    uint64_t cold = put(f, "cold");
    scan(f, "scan", 0, 100);
    assert_int_equal(find(f, "cold"), 0);
    edge_store_touch(f->store, cold); /* a stale fill id: harmless */
    edge_store_stats_t st = stats(f->store);
    assert_int_equal(st.promoted, 0);
    assert_int_equal(st.main_bytes, 0);
    assert_fifo_order(f, "scan", 0, 100);
}

/* An object evicted from the small queue and stored again soon after goes straight to main: it
 * survives the next scan, while one stored at the same time for the first time does not. */
static void test_ghost_readmits_to_main(void **state)
{
    struct fixture *f = *state;
    char key[64];
    int i = 0;

    put(f, "again");
    while (find(f, "again") != 0) {
        snprintf(key, sizeof(key), "scan-%d", i++);
        put(f, key);
        assert_true(i < 200);
    }
    assert_int_equal(stats(f->store).ghost_hits, 0);
    uint64_t again = put(f, "again"); /* a miss: filled again */
    uint64_t fresh = put(f, "fresh");
    edge_store_stats_t st = stats(f->store);
    assert_int_equal(st.ghost_hits, 1); /* the path under test ran */
    assert_true(st.main_bytes > OBJ_SIZE && st.main_bytes < 2 * OBJ_SIZE);

    scan(f, "scan2", 0, 100);
    assert_int_equal(find(f, "again"), again);
    assert_int_equal(find(f, "fresh"), 0);
    assert_int_equal(stats(f->store).ghost_hits, 1);
    assert_int_not_equal(fresh, 0);

    /* main survives a restart (the ghost set does not: it is in memory) */
    reopen(f);
    scan(f, "scan3", 0, 100);
    assert_int_equal(find(f, "again"), again);
    assert_int_equal(stats(f->store).main_bytes, st.main_bytes);
}

/* In main, an object whose counter ran down is evicted; hits keep one there. Every object of this
 * test is hit while in the small queue, so all of them move to main, which must then evict. */
static void test_main_counters(void **state)
{
    struct fixture *f = *state;
    char key[64];
    enum { N = 20 };
    uint64_t ids[N];

    for (int j = 0; j < N; ++j) {
        snprintf(key, sizeof(key), "m-%d", j);
        ids[j] = put(f, key);
        for (int t = 0; t < (j % 2 == 0 ? 5 : 2); ++t) /* evens saturate at 3, odds have 2 */
            edge_store_touch(f->store, ids[j]);
    }
    for (int i = 0; i < 150; ++i) {
        snprintf(key, sizeof(key), "p-%d", i);
        uint64_t id = put(f, key);
        edge_store_touch(f->store, id);
        edge_store_touch(f->store, id);
        if (i % 5 == 0) /* the evens keep being hit */
            for (int j = 0; j < N; j += 2)
                edge_store_touch(f->store, ids[j]);
        edge_store_stats_t st = stats(f->store);
        assert_true(st.live_bytes <= st.max_size_bytes);
        assert_true(st.main_bytes <= st.live_bytes);
    }
    edge_store_stats_t st = stats(f->store);
    assert_true(st.promoted >= N + 100); /* the path under test ran */
    assert_true(st.main_bytes > st.live_bytes / 2);
    for (int j = 0; j < N; ++j) {
        snprintf(key, sizeof(key), "m-%d", j);
        if (j % 2 == 0)
            assert_int_equal(find(f, key), ids[j]);
        else
            assert_int_equal(find(f, key), 0);
    }
    assert_int_not_equal(find(f, "p-149"), 0);
    assert_int_equal(find(f, "p-0"), 0);
}

/* A store written before the main queue existed: every FIFO entry in "fifo", no REC_FLAG_MAIN, the
 * stats record's main_bytes field 0. Made from a new store by undoing what the main queue adds. */
static void test_old_layout_opens(void **state)
{
    struct fixture *f = *state;
    char key[64];

    uint64_t hot = put(f, "hot");
    edge_store_touch(f->store, hot);
    edge_store_touch(f->store, hot);
    scan(f, "scan", 0, 80); /* hot is now in main */
    assert_true(stats(f->store).main_bytes > 0);
    edge_store_stats_t before = stats(f->store);
    edge_store_close(f->store);
    f->store = NULL;

    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi objects, fifo, fifo_main, st;
    MDB_cursor *cur;
    MDB_val k, v;
    assert_int_equal(mdb_env_create(&env), 0);
    assert_int_equal(mdb_env_set_maxdbs(env, 16), 0);
    assert_int_equal(mdb_env_open(env, f->path, MDB_NOTLS, 0600), 0);
    assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
    assert_int_equal(mdb_dbi_open(txn, "objects", 0, &objects), 0);
    assert_int_equal(mdb_dbi_open(txn, "fifo", 0, &fifo), 0);
    assert_int_equal(mdb_dbi_open(txn, "fifo_main", 0, &fifo_main), 0);
    assert_int_equal(mdb_dbi_open(txn, "stats", 0, &st), 0);
    int moved = 0;
    assert_int_equal(mdb_cursor_open(txn, fifo_main, &cur), 0);
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
        assert_int_equal(mdb_put(txn, fifo, &k, &v, 0), 0);
        ++moved;
    }
    mdb_cursor_close(cur);
    assert_int_equal(moved, 1);
    assert_int_equal(mdb_drop(txn, fifo_main, 1), 0);
    assert_int_equal(mdb_cursor_open(txn, objects, &cur), 0);
    int flagged = 0;
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == 0) {
        uint8_t rec[512];
        uint32_t flags;
        assert_true(v.mv_size <= sizeof(rec));
        memcpy(rec, v.mv_data, v.mv_size);
        memcpy(&flags, rec + 44, 4); /* record_hdr.flags */
        flagged += (flags & 2u) != 0;
        flags &= ~2u;
        memcpy(rec + 44, &flags, 4);
        MDB_val nv = {v.mv_size, rec};
        assert_int_equal(mdb_cursor_put(cur, &k, &nv, MDB_CURRENT), 0);
    }
    mdb_cursor_close(cur);
    assert_int_equal(flagged, 1);
    k = (MDB_val){5, "stats"};
    assert_int_equal(mdb_get(txn, st, &k, &v), 0);
    uint8_t srec[64];
    assert_int_equal(v.mv_size, sizeof(srec));
    memcpy(srec, v.mv_data, sizeof(srec));
    memset(srec + 40, 0, 8); /* stats_rec.main_bytes: reserved in the old layout */
    v = (MDB_val){sizeof(srec), srec};
    assert_int_equal(mdb_put(txn, st, &k, &v, 0), 0);
    assert_int_equal(mdb_txn_commit(txn), 0);
    mdb_env_close(env);

    /* it opens; old entries are the small queue; eviction goes on in FIFO order with no error */
    f->store = open_store(f);
    edge_store_stats_t after = stats(f->store);
    assert_int_equal(after.main_bytes, 0);
    assert_int_equal(after.objects, before.objects);
    assert_int_equal(after.live_bytes, before.live_bytes);
    scan(f, "scan2", 0, 100);
    assert_fifo_order(f, "scan2", 0, 100);
    for (int i = 0; i < 80; ++i) {
        snprintf(key, sizeof(key), "scan-%d", i);
        assert_int_equal(find(f, key), 0);
    }
    assert_int_equal(find(f, "hot"), 0); /* the restart forgot its hits */
    after = stats(f->store);
    assert_int_equal(after.objects + after.evictions, before.objects + 100);
    reopen(f);
    assert_int_equal(stats(f->store).objects, after.objects);
    assert_int_equal(stats(f->store).live_bytes, after.live_bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hot_survives_scan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cold_evicted_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ghost_readmits_to_main, setup, teardown),
        cmocka_unit_test_setup_teardown(test_main_counters, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_layout_opens, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
