/*
 * tests/unit/purge/test_purge_stream.c: the pure parts of purge/stream.c (entry ids), through its header.
 * Ids are parsed from the end of a page followed by a guard page, so reading past the NUL crashes the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "purge/stream.h"

static char *guard_region;
static size_t page_size;

static int group_setup(void **state)
{
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    guard_region = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_region == MAP_FAILED)
        return -1;
    return mprotect(guard_region + page_size, page_size, PROT_NONE);
}

static int group_teardown(void **state)
{
    munmap(guard_region, 2 * page_size);
    return 0;
}

static const char *guarded(const char *s)
{
    size_t len = strlen(s) + 1;
    char *p = guard_region + page_size - len;
    memcpy(p, s, len);
    return p;
}

static void test_id_parse(void **state)
{
    static const struct {
        const char *id;
        int ok;
        uint64_t ms, seq;
    } cases[] = {
        {"0-0", 1, 0, 0},
        {"1700000000000-0", 1, 1700000000000ull, 0},
        {"1-18446744073709551615", 1, 1, UINT64_MAX},
        {"18446744073709551615-1", 1, UINT64_MAX, 1},
        {"", 0, 0, 0},
        {"-", 0, 0, 0},
        {"1", 0, 0, 0},
        {"1-", 0, 0, 0},
        {"-1", 0, 0, 0},
        {"1-2-3", 0, 0, 0},
        {"a-1", 0, 0, 0},
        {"1-+2", 0, 0, 0},
        {" 1-2", 0, 0, 0},
        {"1-2 ", 0, 0, 0},
        {"18446744073709551616-0", 0, 0, 0}, /* UINT64_MAX + 1 */
        {"1-99999999999999999999", 0, 0, 0},
        {"$", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        uint64_t ms = 7, seq = 7;
        int ret = purge_stream_id_parse(guarded(cases[i].id), &ms, &seq);
        if ((ret == 0) != cases[i].ok)
            fail_msg("`%s`: got %d", cases[i].id, ret);
        if (cases[i].ok) {
            assert_true(ms == cases[i].ms);
            assert_true(seq == cases[i].seq);
        }
    }
}

static void test_id_compare(void **state)
{
    static const struct {
        const char *a, *b;
        int sign;
    } cases[] = {
        {"0-0", "0-0", 0},
        {"1-0", "0-5", 1},
        {"5-1", "5-2", -1},
        {"10-0", "9-0", 1},                          /* numeric, not lexicographic */
        {"1700000000000-10", "1700000000000-9", 1},  /* the sequence too */
        {"2-0", "10-0", -1},
        {"bogus", "0-0", -1},                         /* an invalid id sorts first */
        {"0-0", "", 1},
        {"x", "y", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        int c = purge_stream_id_compare(cases[i].a, cases[i].b);
        int sign = c < 0 ? -1 : c > 0;
        if (sign != cases[i].sign)
            fail_msg("compare(%s, %s) = %d, expected sign %d", cases[i].a, cases[i].b, c, cases[i].sign);
        int r = purge_stream_id_compare(cases[i].b, cases[i].a);
        assert_int_equal(r < 0 ? -1 : r > 0, -cases[i].sign);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_id_parse), cmocka_unit_test(test_id_compare)};
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
