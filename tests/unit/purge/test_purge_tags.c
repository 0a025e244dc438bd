/* Unit tests for purge/tags.{h,c}: tags from the origin's Surrogate-Key, Cache-Tag and extra headers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include "purge/tags.h"

static void test_header_kind(void **state)
{
    static const char *const extra[] = PURGE_TAGS_DEFAULT_EXTRA_HEADERS;
    static const char *const custom[] = {"X-Tags", "edge-tags", NULL};
    static const struct {
        const char *name;
        const char *const *extra;
        purge_tags_sep_t want;
    } cases[] = {
        {"Surrogate-Key", NULL, PURGE_TAGS_SPACE},
        {"surrogate-key", extra, PURGE_TAGS_SPACE},
        {"Cache-Tag", NULL, PURGE_TAGS_COMMA},
        {"CACHE-TAG", extra, PURGE_TAGS_COMMA},
        {"x-next-cache-tags", extra, PURGE_TAGS_COMMA},
        {"X-Next-Cache-Tags", extra, PURGE_TAGS_COMMA},
        {"x-next-cache-tags", NULL, PURGE_TAGS_NOT_A_TAG_HEADER},
        {"x-next-cache-tags", custom, PURGE_TAGS_NOT_A_TAG_HEADER},
        {"x-tags", custom, PURGE_TAGS_COMMA},
        {"Edge-Tags", custom, PURGE_TAGS_COMMA},
        {"Cache-Tags", extra, PURGE_TAGS_NOT_A_TAG_HEADER},
        {"Surrogate-Control", extra, PURGE_TAGS_NOT_A_TAG_HEADER},
        {"Surrogate-Ke", extra, PURGE_TAGS_NOT_A_TAG_HEADER},
        {"", extra, PURGE_TAGS_NOT_A_TAG_HEADER},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        purge_tags_sep_t got = purge_tags_header_kind(cases[i].name, strlen(cases[i].name), cases[i].extra);
        if (got != cases[i].want)
            fail_msg("%s: got %d, expected %d", cases[i].name, got, cases[i].want);
    }
    /* the name is bounded by len */
    assert_int_equal(purge_tags_header_kind("cache-tagX", 9, NULL), PURGE_TAGS_COMMA);
}

struct split_case {
    const char *name;
    purge_tags_sep_t sep;
    const char *values[3]; /* header lines, in order */
    const char *want[8];
    size_t dropped;
    size_t max_tags, max_bytes; /* 0: 4 and 8, small so the limit rows stay short */
};

static const struct split_case split_cases[] = {
    {"surrogate-key spaces", PURGE_TAGS_SPACE, {"a b  c"}, {"a", "b", "c"}},
    {"surrogate-key tabs and edges", PURGE_TAGS_SPACE, {"\t a\tb \t"}, {"a", "b"}},
    {"surrogate-key keeps commas", PURGE_TAGS_SPACE, {"a,b c"}, {"a,b", "c"}},
    {"cache-tag commas, trimmed", PURGE_TAGS_COMMA, {" a , b,c ,  d"}, {"a", "b", "c", "d"}},
    {"cache-tag keeps inner spaces", PURGE_TAGS_COMMA, {"a b, c"}, {"a b", "c"}},
    {"cache-tag empty items skipped", PURGE_TAGS_COMMA, {",,a,, ,b,"}, {"a", "b"}},
    {"empty value", PURGE_TAGS_COMMA, {""}, {NULL}},
    {"only spaces", PURGE_TAGS_SPACE, {"   "}, {NULL}},
    {"dedup within a header", PURGE_TAGS_COMMA, {"a,b,a,b"}, {"a", "b"}},
    {"dedup across header lines", PURGE_TAGS_SPACE, {"a b", "b c", "a"}, {"a", "b", "c"}},
    {"case-sensitive", PURGE_TAGS_COMMA, {"A,a"}, {"A", "a"}},
    {"next.js tags", PURGE_TAGS_COMMA, {"_N_T_/layout,_N_T_/page,_N_T_/blog/post-1"},
     {"_N_T_/layout", "_N_T_/page", "_N_T_/blog/post-1"}, 0, PURGE_TAGS_DEFAULT_MAX_TAGS, 256}, 
    {"control character dropped", PURGE_TAGS_COMMA, {"a,b\x01,c"}, {"a", "c"}, 1},
    {"max tags (4): extras dropped", PURGE_TAGS_SPACE, {"1 2 3", "4 5 6"}, {"1", "2", "3", "4"}, 2},
    {"a duplicate over the max is not counted as dropped", PURGE_TAGS_SPACE, {"1 2 3 4 1"}, {"1", "2", "3", "4"}, 0},
    {"max tag bytes (8)", PURGE_TAGS_COMMA, {"12345678,123456789,x"}, {"12345678", "x"}, 1},
};

static void test_split(void **state)
{
    for (size_t i = 0; i != sizeof(split_cases) / sizeof(split_cases[0]); ++i) {
        const struct split_case *c = &split_cases[i];
        purge_tags_t tags = {0};
        for (size_t v = 0; v != 3 && c->values[v] != NULL; ++v)
            assert_int_equal(purge_tags_add_header(&tags, c->values[v], strlen(c->values[v]), c->sep,
                                                   c->max_tags ? c->max_tags : 4, c->max_bytes ? c->max_bytes : 8),
                             0);
        size_t n = 0;
        while (n < 8 && c->want[n] != NULL)
            ++n;
        if (tags.count != n)
            fail_msg("%s: %zu tags, expected %zu", c->name, tags.count, n);
        for (size_t t = 0; t != n; ++t)
            if (strcmp(tags.items[t], c->want[t]) != 0)
                fail_msg("%s: tag %zu is '%s', expected '%s'", c->name, t, tags.items[t], c->want[t]);
        if (tags.dropped != c->dropped)
            fail_msg("%s: dropped %zu, expected %zu", c->name, tags.dropped, c->dropped);
        purge_tags_free(&tags);
        assert_int_equal(tags.count, 0);
        purge_tags_free(&tags);
    }
}

static void test_value_bounded_by_len(void **state)
{
    purge_tags_t tags = {0};
    const char v[] = "a,b,c";
    assert_int_equal(purge_tags_add_header(&tags, v, 3, PURGE_TAGS_COMMA, 64, 256), 0);
    assert_int_equal(tags.count, 2);
    assert_string_equal(tags.items[1], "b");
    purge_tags_free(&tags);
}

static void test_tag_check(void **state)
{
    const char *reason;
    assert_int_equal(purge_tag_check("abc", 3, 3, &reason), 0);
    assert_int_equal(purge_tag_check("abcd", 4, 3, &reason), -1);
    assert_string_equal(reason, "tag too long");
    assert_int_equal(purge_tag_check("", 0, 3, &reason), -1);
    assert_string_equal(reason, "empty tag");
    assert_int_equal(purge_tag_check("a\nb", 3, 8, &reason), -1);
    assert_string_equal(reason, "control character in tag");
    assert_int_equal(purge_tag_check("a\0b", 3, 8, &reason), -1);
    assert_int_equal(purge_tag_check("caf\xc3\xa9", 5, 8, &reason), 0); /* UTF-8 is fine */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_kind),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_value_bounded_by_len),
        cmocka_unit_test(test_tag_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
