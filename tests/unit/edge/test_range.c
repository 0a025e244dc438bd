/*
 * Unit tests of edge/range.h: tables, one row per behaviour, the RFC section in a comment per group.
 * Range and If-Range values end right before a PROT_NONE page (picohttpparser test.c style).
 */
#define H2O_USE_LIBUV 0
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "h2o.h"
#include "edge/range.h"

#define GUARD_SLOTS 1
#include "tests/unit/guard_page.h"

#define T1994 ((int64_t)784111777) /* Sun, 06 Nov 1994 08:49:37 GMT */
#define D1994 "Sun, 06 Nov 1994 08:49:37 GMT"
#define NOW2025 ((int64_t)1748736000)
#define U64MAX UINT64_MAX

/* ---- Range (RFC 9110 §14.1.2 byte ranges, §14.2 Range) ---- */

struct range_row_t {
    const char *in;
    uint64_t length;
    edge_range_result_t expect;
    uint64_t first, last;
};

static const struct range_row_t range_rows[] = {
    /* int-range */
    {"bytes=0-499", 10000, EDGE_RANGE_SINGLE, 0, 499},
    {"bytes=500-999", 10000, EDGE_RANGE_SINGLE, 500, 999},
    {"bytes=9500-", 10000, EDGE_RANGE_SINGLE, 9500, 9999},
    {"bytes=0-0", 10000, EDGE_RANGE_SINGLE, 0, 0},
    {"bytes=9999-9999", 10000, EDGE_RANGE_SINGLE, 9999, 9999},
    {"bytes=100-20000", 10000, EDGE_RANGE_SINGLE, 100, 9999}, /* last-pos clamped */
    {"bytes=0-", 1, EDGE_RANGE_SINGLE, 0, 0},
    {"bytes=007-0009", 100, EDGE_RANGE_SINGLE, 7, 9}, /* leading zeros */
    /* suffix-range */
    {"bytes=-500", 10000, EDGE_RANGE_SINGLE, 9500, 9999},
    {"bytes=-1", 10000, EDGE_RANGE_SINGLE, 9999, 9999},
    {"bytes=-20000", 10000, EDGE_RANGE_SINGLE, 0, 9999}, /* longer than the representation: all of it */
    {"bytes=-0", 10000, EDGE_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=-000", 10000, EDGE_RANGE_UNSATISFIABLE, 0, 0},
    /* unsatisfiable: first-pos >= length */
    {"bytes=10000-", 10000, EDGE_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=10000-10005", 10000, EDGE_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=0-", 0, EDGE_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=-5", 0, EDGE_RANGE_NONE, 0, 0}, /* only the empty representation itself: 200 */
    /* unit and syntax */
    {"BYTES=1-2", 10, EDGE_RANGE_SINGLE, 1, 2},
    {"  bytes=1-2  ", 10, EDGE_RANGE_SINGLE, 1, 2},
    {"bytes= 1-2 ,", 10, EDGE_RANGE_SINGLE, 1, 2}, /* OWS and empty members */
    {"bytes=,,1-2", 10, EDGE_RANGE_SINGLE, 1, 2},
    {"", 10, EDGE_RANGE_NONE, 0, 0},
    {"   ", 10, EDGE_RANGE_NONE, 0, 0},
    {"items=1-2", 10, EDGE_RANGE_OTHER_UNIT, 0, 0},
    {"none=", 10, EDGE_RANGE_OTHER_UNIT, 0, 0},
    {"bytes", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes=", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes=,", 10, EDGE_RANGE_INVALID, 0, 0},
    {"=1-2", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes =1-2", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes=-", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes=5-1", 10, EDGE_RANGE_INVALID, 0, 0}, /* last-pos < first-pos */
    {"bytes=1 - 2", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes=1-2x", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes=a-b", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes=+1-2", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes=1-2;x", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes=--1", 10, EDGE_RANGE_INVALID, 0, 0},
    {"bytes=1-2-3", 10, EDGE_RANGE_INVALID, 0, 0},
    /* several ranges: ignored, even if one alone would be unsatisfiable or invalid elsewhere */
    {"bytes=0-1,5-6", 10, EDGE_RANGE_MULTIPLE, 0, 0},
    {"bytes=0-1, -1", 10, EDGE_RANGE_MULTIPLE, 0, 0},
    {"bytes=50-60,70-80", 10, EDGE_RANGE_MULTIPLE, 0, 0},
    {"bytes=0-1,x", 10, EDGE_RANGE_INVALID, 0, 0},
    /* 64-bit edges and numbers longer than 19/20 digits */
    {"bytes=9223372036854775806-", 9223372036854775807ULL, EDGE_RANGE_SINGLE, 9223372036854775806ULL, 9223372036854775806ULL},
    {"bytes=0-18446744073709551615", U64MAX, EDGE_RANGE_SINGLE, 0, U64MAX - 1},
    {"bytes=18446744073709551614-", U64MAX, EDGE_RANGE_SINGLE, U64MAX - 1, U64MAX - 1},
    {"bytes=18446744073709551615-", U64MAX, EDGE_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=18446744073709551616-", U64MAX, EDGE_RANGE_UNSATISFIABLE, 0, 0}, /* 2^64 */
    {"bytes=99999999999999999999999999-", 10, EDGE_RANGE_UNSATISFIABLE, 0, 0},
    {"bytes=1-99999999999999999999999999", 10, EDGE_RANGE_SINGLE, 1, 9},
    {"bytes=-99999999999999999999999999", 10, EDGE_RANGE_SINGLE, 0, 9},
    {"bytes=00000000000000000000000000001-00000000000000000000000000002", 10, EDGE_RANGE_SINGLE, 1, 2},
    {"bytes=99999999999999999999999999-99999999999999999999999998", 10, EDGE_RANGE_INVALID, 0, 0}, /* exact comparison */
    {"bytes=18446744073709551617-18446744073709551616", 10, EDGE_RANGE_INVALID, 0, 0},
};

static void test_range_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(range_rows) / sizeof(range_rows[0]); ++i) {
        const struct range_row_t *row = &range_rows[i];
        uint64_t first = 12345, last = 12345;
        const char *in = guarded(row->in, strlen(row->in));
        edge_range_result_t got = edge_range_parse(in, strlen(row->in), row->length, &first, &last);
        if (got != row->expect)
            fail_msg("row %zu (%s): got %d, want %d", i, row->in, (int)got, (int)row->expect);
        if (got == EDGE_RANGE_SINGLE && (first != row->first || last != row->last))
            fail_msg("row %zu (%s): got %ju-%ju", i, row->in, (uintmax_t)first, (uintmax_t)last);
        if (got == EDGE_RANGE_SINGLE)
            assert_true(first <= last && last < row->length);
    }
}

/* ---- If-Range (RFC 9110 §13.1.5, §8.8.2.2) ---- */

struct if_range_row_t {
    const char *name, *in, *etag;
    int has_lm;
    int64_t lm;
    int has_date;
    int64_t date;
    int expect;
};

static const struct if_range_row_t if_range_rows[] = {
    {"strong etag match", "\"a\"", "\"a\"", 0, 0, 0, 0, 1},
    {"strong etag mismatch", "\"b\"", "\"a\"", 0, 0, 0, 0, 0},
    {"weak request etag never", "W/\"a\"", "\"a\"", 0, 0, 0, 0, 0},
    {"weak stored etag never", "\"a\"", "W/\"a\"", 0, 0, 0, 0, 0},
    {"etag with OWS", " \"a\" ", "\"a\"", 0, 0, 0, 0, 1},
    {"etag but none stored", "\"a\"", NULL, 1, T1994, 1, T1994 + 3600, 0},
    {"malformed etag", "\"a", "\"a\"", 0, 0, 0, 0, 0},
    {"list is not an If-Range", "\"a\", \"b\"", "\"a\"", 0, 0, 0, 0, 0},
    {"date equals strong LM", D1994, "\"a\"", 1, T1994, 1, T1994 + 60, 1},
    {"date equals LM, Date 59 s later: weak", D1994, NULL, 1, T1994, 1, T1994 + 59, 0},
    {"date equals LM, no Date: weak", D1994, NULL, 1, T1994, 0, 0, 0},
    {"date later than LM: not exact", D1994, NULL, 1, T1994 - 1, 1, T1994 + 3600, 0},
    {"date earlier than LM", D1994, NULL, 1, T1994 + 1, 1, T1994 + 3600, 0},
    {"date without stored LM", D1994, "\"a\"", 0, 0, 1, T1994 + 3600, 0},
    {"invalid date", "yesterday", NULL, 1, T1994, 1, T1994 + 3600, 0},
    {"empty", "", "\"a\"", 1, T1994, 1, T1994 + 3600, 0},
};

static void test_if_range(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(if_range_rows) / sizeof(if_range_rows[0]); ++i) {
        const struct if_range_row_t *row = &if_range_rows[i];
        const char *in = guarded(row->in, strlen(row->in));
        h2o_iovec_t etag = row->etag != NULL ? h2o_iovec_init(row->etag, strlen(row->etag)) : h2o_iovec_init(NULL, 0);
        int got = edge_if_range_matches(in, strlen(row->in), etag, row->has_lm, row->lm, row->has_date, row->date, NOW2025);
        if (got != row->expect)
            fail_msg("row %zu (%s): got %d", i, row->name, got);
    }
}

/* ---- Content-Range (RFC 9110 §14.4) ---- */

static void test_content_range_format(void **state)
{
    (void)state;
    char buf[EDGE_CONTENT_RANGE_BUFSZ];
    assert_int_equal(edge_content_range_format(buf, 0, 499, 1234), strlen("bytes 0-499/1234"));
    assert_string_equal(buf, "bytes 0-499/1234");
    size_t n = edge_content_range_format(buf, U64MAX - 1, U64MAX - 1, U64MAX);
    assert_string_equal(buf, "bytes 18446744073709551614-18446744073709551614/18446744073709551615");
    assert_int_equal(n, strlen(buf));
    assert_true(n < sizeof(buf));
    assert_int_equal(edge_content_range_format_unsatisfied(buf, 1234), strlen("bytes */1234"));
    assert_string_equal(buf, "bytes */1234");
    edge_content_range_format_unsatisfied(buf, 0);
    assert_string_equal(buf, "bytes */0");
}

/* The round trip a handler does: parse, then format what it will send. */
static void test_range_round_trip(void **state)
{
    (void)state;
    char buf[EDGE_CONTENT_RANGE_BUFSZ];
    uint64_t first, last;
    assert_int_equal(edge_range_parse(H2O_STRLIT("bytes=-3"), 10, &first, &last), EDGE_RANGE_SINGLE);
    edge_content_range_format(buf, first, last, 10);
    assert_string_equal(buf, "bytes 7-9/10");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_range_parse),
        cmocka_unit_test(test_if_range),
        cmocka_unit_test(test_content_range_format),
        cmocka_unit_test(test_range_round_trip),
    };
    return cmocka_run_group_tests(tests, setup_guard, teardown_guard);
}
