/*
 * tests/unit/edge/test_store_cursor.c: the purge-stream cursor of edge/store.c (EDGE_STORE_OP_CURSOR, the optional
 * stream_cursor of a BAN op, edge_store_get_stream_cursor), read back through a real LMDB environment, across a
 * reopen. One mkdtemp directory per test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "edge/store.h"

struct fixture {
    char dir[PATH_MAX];
    edge_store_t *store;
};

static int results[16];
static size_t num_results;

static void on_done(edge_store_op_t *op, int result)
{
    results[num_results++] = result; /* ops are flushed one at a time: no race */
}

static edge_store_t *open_store(struct fixture *f)
{
    edge_store_settings_t settings = {.path = f->dir, .max_size_bytes = 8 * 1024 * 1024, .max_readers = 126};
    char err[512];
    edge_store_t *s = edge_store_open(&settings, err, sizeof(err));
    if (s == NULL)
        fail_msg("%s", err);
    return s;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *t = getenv("TMPDIR");
    snprintf(f->dir, sizeof(f->dir), "%s/test_store_cursor.XXXXXX", t != NULL && t[0] != '\0' ? t : "/tmp");
    if (mkdtemp(f->dir) == NULL)
        return -1;
    f->store = open_store(f);
    num_results = 0;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[PATH_MAX + 32];
    if (f->store != NULL)
        edge_store_close(f->store);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir); /* our own mkdtemp path */
    int rc = system(cmd);
    free(f);
    return rc == 0 ? 0 : -1;
}

static int submit(edge_store_t *s, edge_store_op_t *op)
{
    size_t before = num_results;
    op->on_done = on_done;
    edge_store_submit(s, op);
    edge_store_flush(s);
    assert_int_equal(num_results, before + 1);
    return results[before];
}

static void test_no_cursor(void **state)
{
    struct fixture *f = *state;
    char buf[EDGE_STORE_MAX_CURSOR_LEN + 1] = "x";
    assert_int_equal(edge_store_get_stream_cursor(f->store, buf, sizeof(buf)), EDGE_STORE_NOTFOUND);
    assert_string_equal(buf, "");
}

static void test_ban_carries_cursor_and_survives_reopen(void **state)
{
    struct fixture *f = *state;
    char buf[EDGE_STORE_MAX_CURSOR_LEN + 1];
    edge_store_stats_t st;

    edge_store_op_t ban = {.kind = EDGE_STORE_OP_BAN, .ban_kind = EDGE_STORE_BAN_HOST, .ban_value = "a.example",
                           .ban_value_len = 9, .stream_cursor = "1700000000000-3"};
    assert_int_equal(submit(f->store, &ban), 0);
    assert_true(ban.ban_id > 0);
    assert_int_equal(edge_store_get_stream_cursor(f->store, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1700000000000-3");

    /* a BAN without a cursor leaves it alone; a CURSOR op moves it */
    edge_store_op_t ban2 = {.kind = EDGE_STORE_OP_BAN, .ban_kind = EDGE_STORE_BAN_ALL};
    assert_int_equal(submit(f->store, &ban2), 0);
    assert_int_equal(edge_store_get_stream_cursor(f->store, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1700000000000-3");
    edge_store_op_t cur = {.kind = EDGE_STORE_OP_CURSOR, .stream_cursor = "1700000000001-0"};
    assert_int_equal(submit(f->store, &cur), 0);

    edge_store_close(f->store);
    f->store = open_store(f);
    assert_int_equal(edge_store_get_stream_cursor(f->store, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1700000000001-0");
    edge_store_get_stats(f->store, &st);
    assert_int_equal(st.bans_applied, 0); /* counted since open */

    /* a buffer too small for it */
    assert_int_equal(edge_store_get_stream_cursor(f->store, buf, 15), EDGE_STORE_EINVAL);
    assert_int_equal(edge_store_get_stream_cursor(f->store, buf, 16), 0);
}

static void test_invalid_cursor_applies_nothing(void **state)
{
    struct fixture *f = *state;
    char buf[EDGE_STORE_MAX_CURSOR_LEN + 1], longer[EDGE_STORE_MAX_CURSOR_LEN + 2];
    edge_store_stats_t st;

    memset(longer, '1', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';
    edge_store_op_t ban = {.kind = EDGE_STORE_OP_BAN, .ban_kind = EDGE_STORE_BAN_ALL, .stream_cursor = longer};
    assert_int_equal(submit(f->store, &ban), EDGE_STORE_EINVAL);
    edge_store_get_stats(f->store, &st);
    assert_int_equal(st.bans_applied, 0);
    assert_int_equal(st.bans_live, 0);
    edge_store_op_t empty = {.kind = EDGE_STORE_OP_CURSOR, .stream_cursor = ""};
    assert_int_equal(submit(f->store, &empty), EDGE_STORE_EINVAL);
    edge_store_op_t none = {.kind = EDGE_STORE_OP_CURSOR};
    assert_int_equal(submit(f->store, &none), EDGE_STORE_EINVAL);
    assert_int_equal(edge_store_get_stream_cursor(f->store, buf, sizeof(buf)), EDGE_STORE_NOTFOUND);

    /* exactly the maximum is fine */
    longer[EDGE_STORE_MAX_CURSOR_LEN] = '\0';
    edge_store_op_t max = {.kind = EDGE_STORE_OP_CURSOR, .stream_cursor = longer};
    assert_int_equal(submit(f->store, &max), 0);
    assert_int_equal(edge_store_get_stream_cursor(f->store, buf, sizeof(buf)), 0);
    assert_string_equal(buf, longer);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_no_cursor, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ban_carries_cursor_and_survives_reopen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_invalid_cursor_applies_nothing, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
