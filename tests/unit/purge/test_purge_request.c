/* Unit tests for purge/purge_request.{h,c}: the `POST /purge` body. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <jansson.h>
#include "purge/purge_request.h"

/* ---- invalid bodies: one row per reason, the exact error text ---- */

struct bad_case {
    const char *name;
    const char *body;
    const char *err; /* expected error, or its prefix when it ends with '*' */
};

static const struct bad_case bad_cases[] = {
    {"malformed JSON", "{\"urls\": [", "body: malformed JSON: *"},
    {"trailing garbage", "{\"all\": true} x", "body: malformed JSON: *"},
    {"not an object", "[\"http://a/\"]", "body: not a JSON object"},
    {"duplicate field", "{\"all\": false, \"all\": true}", "body: malformed JSON: *"},
    {"unknown field", "{\"urls\": [\"http://a/\"], \"url\": []}", "url: unknown field"},
    {"unknown field, control chars shown as ?", "{\"a\\u0001b\": 1}", "a?b: unknown field"},
    {"urls not an array", "{\"urls\": \"http://a/\"}", "urls: not an array of strings"},
    {"tags an object", "{\"tags\": {}}", "tags: not an array of strings"},
    {"url item a number", "{\"urls\": [\"http://a/\", 3]}", "urls[1]: not a string"},
    {"url item null", "{\"hosts\": [null]}", "hosts[0]: not a string"},
    {"all a string", "{\"all\": \"true\"}", "all: not a boolean"},
    {"soft a number", "{\"urls\": [\"http://a/\"], \"soft\": 1}", "soft: not a boolean"},
    {"relative url", "{\"urls\": [\"/a\"]}", "urls[0]: not an absolute http or https URL"},
    {"ftp url", "{\"urls\": [\"ftp://a/b\"]}", "urls[0]: not an absolute http or https URL"},
    {"url without host", "{\"urls\": [\"http:///a\"]}", "urls[0]: empty host"},
    {"url with userinfo", "{\"urls\": [\"http://u@a/\"]}", "urls[0]: userinfo not allowed"},
    {"url with fragment", "{\"urls\": [\"http://a/b#c\"]}", "urls[0]: fragment not allowed"},
    {"url with space", "{\"urls\": [\"http://a/b c\"]}", "urls[0]: control character or space"},
    {"url with NUL", "{\"urls\": [\"http://a/b\\u0000\"]}", "body: malformed JSON: *"},
    {"url bad escape", "{\"urls\": [\"http://a/%zz\"]}", "urls[0]: bad percent-escape in path"},
    {"url bad port", "{\"urls\": [\"http://a:99999/\"]}", "urls[0]: bad port"},
    {"url port not digits", "{\"urls\": [\"http://a:8x/\"]}", "urls[0]: bad port"},
    {"url bad ipv6", "{\"urls\": [\"http://[::g]/\"]}", "urls[0]: bad IP literal"},
    {"url bad host char", "{\"urls\": [\"http://a_b\\\"/\"]}", "urls[0]: bad character in host"},
    {"prefix relative", "{\"prefixes\": [\"/blog/\"]}", "prefixes[0]: not an absolute http or https URL"},
    {"prefix dot segment", "{\"prefixes\": [\"https://a/blog/../\"]}", "prefixes[0]: dot segment in prefix"},
    {"prefix cut escape", "{\"prefixes\": [\"https://a/b%2\"]}", "prefixes[0]: bad percent-escape in path"},
    {"host with path", "{\"hosts\": [\"a.com/x\"]}", "hosts[0]: not a host name"},
    {"host with scheme", "{\"hosts\": [\"http://a.com\"]}", "hosts[0]: not a host name"},
    {"host empty", "{\"hosts\": [\"\"]}", "hosts[0]: empty host"},
    {"host bad port", "{\"hosts\": [\"a.com:70000\"]}", "hosts[0]: bad port"},
    {"tag empty", "{\"tags\": [\"\"]}", "tags[0]: empty tag"},
    {"tag control char", "{\"tags\": [\"a\\tb\"]}", "tags[0]: control character in tag"},
    {"tag DEL", "{\"tags\": [\"a\\u007f\"]}", "tags[0]: control character in tag"},
    {"empty object", "{}", "body: nothing to purge"},
    {"all false, empty lists", "{\"all\": false, \"urls\": [], \"tags\": []}", "body: nothing to purge"},
    {"soft alone", "{\"soft\": true}", "body: nothing to purge"},
    {"all with a list", "{\"all\": true, \"tags\": [\"t\"]}", "all: cannot be combined with urls, prefixes, hosts or tags"},
    {"first bad item named, not a later one", "{\"urls\": [\"http://a/\", \"x\", \"y\"]}",
     "urls[1]: not an absolute http or https URL"},
};

static void check_err(const char *name, const char *got, const char *want)
{
    size_t n = strlen(want);
    if (n > 0 && want[n - 1] == '*') {
        if (strncmp(got, want, n - 1) != 0)
            fail_msg("%s: error '%s' does not start with '%.*s'", name, got, (int)(n - 1), want);
    } else if (strcmp(got, want) != 0) {
        fail_msg("%s: error '%s', expected '%s'", name, got, want);
    }
}

static void test_bad_bodies(void **state)
{
    for (size_t i = 0; i != sizeof(bad_cases) / sizeof(bad_cases[0]); ++i) {
        const struct bad_case *c = &bad_cases[i];
        purge_request_t req;
        char err[256] = "";
        int ret = purge_request_parse(c->body, strlen(c->body), &purge_default_limits, &req, err, sizeof(err));
        if (ret != PURGE_REQUEST_EINVAL)
            fail_msg("%s: returned %d", c->name, ret);
        check_err(c->name, err, c->err);
        /* nothing half-filled */
        assert_null(req.urls.items);
        assert_int_equal(req.urls.count + req.prefixes.count + req.hosts.count + req.tags.count, 0);
        assert_int_equal(req.all, 0);
    }
}

/* ---- valid bodies: normalisation ---- */

struct good_case {
    const char *name;
    const char *body;
    const char *urls[4], *prefixes[4], *hosts[4], *tags[4];
    int all, soft;
};

static const struct good_case good_cases[] = {
    {"one url", "{\"urls\": [\"https://example.com/a\"]}", {"https://example.com/a"}},
    {"scheme and host lower-cased, default port dropped", "{\"urls\": [\"HTTPS://Example.COM:443/A?Q=1\"]}",
     {"https://example.com/A?Q=1"}},
    {"http default port", "{\"urls\": [\"http://a:80/\", \"http://b:080/\", \"http://c:/\"]}",
     {"http://a/", "http://b/", "http://c/"}},
    {"other port kept, canonical", "{\"urls\": [\"http://a:0443/\", \"https://a:80/\"]}",
     {"http://a:443/", "https://a:80/"}},
    {"empty path is /", "{\"urls\": [\"http://a\", \"http://b?x=1\"]}", {"http://a/", "http://b/?x=1"}},
    {"dot segments removed, escapes upper-cased not decoded",
     "{\"urls\": [\"http://a/x/./y/../z/%2f%7e?q=%2f\"]}", {"http://a/x/z/%2F%7E?q=%2f"}},
    {"dot segments never above /", "{\"urls\": [\"http://a/../../b/..\"]}", {"http://a/"}},
    {"ipv6 literal lower-cased", "{\"urls\": [\"http://[::FFFF:1.2.3.4]:8080/\"]}", {"http://[::ffff:1.2.3.4]:8080/"}},
    {"urls de-duplicated after normalisation", "{\"urls\": [\"http://A/x\", \"http://a:80/x\", \"http://a/y\"]}",
     {"http://a/x", "http://a/y"}},
    {"prefix normalised, bare host gets /", "{\"prefixes\": [\"HTTPS://Example.com:443/Blog/\", \"http://b\"]}",
     {NULL},
     {"https://example.com/Blog/", "http://b/"}},
    {"prefix with a query", "{\"prefixes\": [\"https://a/search?q=\"]}", {NULL}, {"https://a/search?q="}},
    {"hosts lower-cased, port kept even when 443", "{\"hosts\": [\"Example.COM\", \"example.com:443\", \"[::1]:8080\"]}",
     {NULL},
     {NULL},
     {"example.com", "example.com:443", "[::1]:8080"}},
    {"host empty port dropped", "{\"hosts\": [\"a.com:\"]}", {NULL}, {NULL}, {"a.com"}},
    {"tags kept as sent, de-duplicated, case-sensitive", "{\"tags\": [\"Product-1\", \"product-1\", \"Product-1\", \"a b,c\"]}",
     {NULL},
     {NULL},
     {NULL},
     {"Product-1", "product-1", "a b,c"}},
    {"all", "{\"all\": true}", {NULL}, {NULL}, {NULL}, {NULL}, 1, 0},
    {"all soft, with empty lists", "{\"all\": true, \"soft\": true, \"urls\": [], \"hosts\": []}", {NULL}, {NULL}, {NULL},
     {NULL}, 1, 1},
    {"every kind soft",
     "{\"urls\": [\"http://a/1\"], \"prefixes\": [\"http://a/p/\"], \"hosts\": [\"a\"], \"tags\": [\"t\"], "
     "\"all\": false, \"soft\": true}",
     {"http://a/1"},
     {"http://a/p/"},
     {"a"},
     {"t"},
     0,
     1},
    {"unicode tag", "{\"tags\": [\"caf\\u00e9\"]}", {NULL}, {NULL}, {NULL}, {"caf\xc3\xa9"}},
};

static void check_list(const char *name, const char *what, const purge_list_t *got, const char *const *want)
{
    size_t n = 0;
    while (n < 4 && want[n] != NULL)
        ++n;
    if (got->count != n)
        fail_msg("%s: %s has %zu items, expected %zu", name, what, got->count, n);
    for (size_t i = 0; i != n; ++i)
        if (strcmp(got->items[i], want[i]) != 0)
            fail_msg("%s: %s[%zu] is '%s', expected '%s'", name, what, i, got->items[i], want[i]);
}

static void test_good_bodies(void **state)
{
    for (size_t i = 0; i != sizeof(good_cases) / sizeof(good_cases[0]); ++i) {
        const struct good_case *c = &good_cases[i];
        purge_request_t req;
        char err[256] = "";
        int ret = purge_request_parse(c->body, strlen(c->body), &purge_default_limits, &req, err, sizeof(err));
        if (ret != PURGE_REQUEST_OK)
            fail_msg("%s: returned %d: %s", c->name, ret, err);
        check_list(c->name, "urls", &req.urls, c->urls);
        check_list(c->name, "prefixes", &req.prefixes, c->prefixes);
        check_list(c->name, "hosts", &req.hosts, c->hosts);
        check_list(c->name, "tags", &req.tags, c->tags);
        if (req.all != c->all || req.soft != c->soft)
            fail_msg("%s: all=%d soft=%d", c->name, req.all, req.soft);
        purge_request_free(&req);
        assert_null(req.urls.items);
        purge_request_free(&req); /* twice is safe */
    }
}

/* ---- limits ---- */

static char *list_body(const char *field, size_t n)
{
    size_t cap = 64 + n * 32;
    char *b = malloc(cap);
    size_t o = snprintf(b, cap, "{\"%s\": [", field);
    for (size_t i = 0; i != n; ++i)
        o += snprintf(b + o, cap - o, "%s\"http://h/%zu\"", i ? "," : "", i);
    snprintf(b + o, cap - o, "]}");
    return b;
}

static void test_limits(void **state)
{
    purge_limits_t limits = {.max_body_bytes = 4096, .max_list_items = 3, .max_total_items = 4};
    purge_request_t req;
    char err[256];

    char *b = list_body("urls", 3);
    assert_int_equal(purge_request_parse(b, strlen(b), &limits, &req, err, sizeof(err)), PURGE_REQUEST_OK);
    assert_int_equal(req.urls.count, 3);
    purge_request_free(&req);
    free(b);

    b = list_body("urls", 4);
    assert_int_equal(purge_request_parse(b, strlen(b), &limits, &req, err, sizeof(err)), PURGE_REQUEST_EINVAL);
    assert_string_equal(err, "urls: 4 items, over the limit of 3");
    free(b);

    /* counted before de-duplication: 4 copies of one URL are still 4 items */
    const char *dup = "{\"urls\": [\"http://a/\",\"http://a/\",\"http://a/\",\"http://a/\"]}";
    assert_int_equal(purge_request_parse(dup, strlen(dup), &limits, &req, err, sizeof(err)), PURGE_REQUEST_EINVAL);
    assert_string_equal(err, "urls: 4 items, over the limit of 3");

    const char *total = "{\"urls\": [\"http://a/1\",\"http://a/2\",\"http://a/3\"], \"tags\": [\"x\",\"y\"]}";
    assert_int_equal(purge_request_parse(total, strlen(total), &limits, &req, err, sizeof(err)), PURGE_REQUEST_EINVAL);
    assert_string_equal(err, "body: 5 items in all, over the limit of 4");
    const char *total_ok = "{\"urls\": [\"http://a/1\",\"http://a/2\",\"http://a/3\"], \"tags\": [\"x\"]}";
    assert_int_equal(purge_request_parse(total_ok, strlen(total_ok), &limits, &req, err, sizeof(err)), PURGE_REQUEST_OK);
    purge_request_free(&req);

    /* body size: the helper, and parse itself */
    limits.max_body_bytes = 20;
    assert_int_equal(purge_request_check_size(20, &limits), PURGE_REQUEST_OK);
    assert_int_equal(purge_request_check_size(21, &limits), PURGE_REQUEST_ETOOBIG);
    const char *big = "{\"tags\": [\"0123456789\"]}"; /* 24 bytes */
    assert_int_equal(purge_request_parse(big, strlen(big), &limits, &req, err, sizeof(err)), PURGE_REQUEST_ETOOBIG);
    assert_string_equal(err, "body: over the limit of 20 bytes");

    /* tag length: 256 bytes is fine, 257 is not */
    char tagbody[400];
    char tag[258];
    memset(tag, 't', 257);
    tag[256] = '\0';
    snprintf(tagbody, sizeof(tagbody), "{\"tags\": [\"%s\"]}", tag);
    assert_int_equal(purge_request_parse(tagbody, strlen(tagbody), &purge_default_limits, &req, err, sizeof(err)),
                     PURGE_REQUEST_OK);
    assert_int_equal(strlen(req.tags.items[0]), 256);
    purge_request_free(&req);
    tag[256] = 't';
    tag[257] = '\0';
    snprintf(tagbody, sizeof(tagbody), "{\"tags\": [\"%s\"]}", tag);
    assert_int_equal(purge_request_parse(tagbody, strlen(tagbody), &purge_default_limits, &req, err, sizeof(err)),
                     PURGE_REQUEST_EINVAL);
    assert_string_equal(err, "tags[0]: tag too long");
}

/* The body ends right at a guard page: the parser must not read past len (and needs no NUL). */
static void test_guard_page(void **state)
{
    static const char *bodies[] = {"{\"urls\": [\"http://a/b\"]}", "{\"tags\": [\"x\"", "{\"all\": tru"};
    long page = sysconf(_SC_PAGESIZE);
    char *mem = mmap(NULL, page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(mem != MAP_FAILED);
    assert_int_equal(mprotect(mem + page, page, PROT_NONE), 0);
    for (size_t i = 0; i != sizeof(bodies) / sizeof(bodies[0]); ++i) {
        size_t len = strlen(bodies[i]);
        char *p = mem + page - len;
        memcpy(p, bodies[i], len);
        purge_request_t req;
        char err[256];
        int ret = purge_request_parse(p, len, &purge_default_limits, &req, err, sizeof(err));
        assert_int_equal(ret, i == 0 ? PURGE_REQUEST_OK : PURGE_REQUEST_EINVAL);
        purge_request_free(&req);
    }
    munmap(mem, page * 2);
}

/* ---- building the body (cdn-purge) and reading it back ---- */

static void test_to_json_round_trip(void **state)
{
    purge_request_t raw = {0}, req;
    char err[256];
    assert_int_equal(purge_list_push(&raw.urls, "HTTP://A.com/x/../y"), 0);
    assert_int_equal(purge_list_push(&raw.prefixes, "https://a.com/blog/"), 0);
    assert_int_equal(purge_list_push(&raw.hosts, "B.com:8080"), 0);
    assert_int_equal(purge_list_push(&raw.tags, "t\"1"), 0);
    raw.soft = 1;

    char *json = purge_request_to_json(&raw);
    assert_non_null(json);
    assert_string_equal(json, "{\"urls\":[\"HTTP://A.com/x/../y\"],\"prefixes\":[\"https://a.com/blog/\"],"
                              "\"hosts\":[\"B.com:8080\"],\"tags\":[\"t\\\"1\"],\"all\":false,\"soft\":true}");
    assert_int_equal(purge_request_parse(json, strlen(json), &purge_default_limits, &req, err, sizeof(err)), 0);
    free(json);
    json = purge_request_to_json(&req);
    assert_string_equal(json, "{\"urls\":[\"http://a.com/y\"],\"prefixes\":[\"https://a.com/blog/\"],"
                              "\"hosts\":[\"b.com:8080\"],\"tags\":[\"t\\\"1\"],\"all\":false,\"soft\":true}");
    free(json);
    purge_request_free(&req);
    purge_request_free(&raw);

    /* all, no lists */
    raw.all = 1;
    json = purge_request_to_json(&raw);
    assert_string_equal(json, "{\"urls\":[],\"prefixes\":[],\"hosts\":[],\"tags\":[],\"all\":true,\"soft\":false}");
    assert_int_equal(purge_request_parse(json, strlen(json), &purge_default_limits, &req, err, sizeof(err)), 0);
    assert_int_equal(req.all, 1);
    free(json);
    purge_request_free(&req);

    /* a string that is not UTF-8 cannot be sent */
    purge_request_t bad = {0};
    assert_int_equal(purge_list_push(&bad.tags, "\xff"), 0);
    assert_null(purge_request_to_json(&bad));
    purge_request_free(&bad);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_bodies),      cmocka_unit_test(test_good_bodies),
        cmocka_unit_test(test_limits),          cmocka_unit_test(test_guard_page),
        cmocka_unit_test(test_to_json_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
