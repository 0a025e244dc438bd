/*
 * Unit tests for purge/url.{h,c}. purge/ does not depend on edge/, so the same table is also run through the edge's
 * edge_cache_key_build: a purge URL must normalise to exactly the key the edge stored (this test links cdn_edge).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "edge/cache_key.h"
#include "purge/url.h"

struct url_case {
    const char *url;
    const char *key; /* NULL: refused */
};

static const struct url_case cases[] = {
    {"http://example.com/", "http://example.com/"},
    {"HTTP://EXAMPLE.com/A/B", "http://example.com/A/B"},
    {"https://a.com:443/x", "https://a.com/x"},
    {"https://a.com:80/x", "https://a.com:80/x"},
    {"http://a.com:80/x", "http://a.com/x"},
    {"http://a.com:080/x", "http://a.com/x"},
    {"http://a.com:00008080/x", "http://a.com:8080/x"},
    {"http://a.com:/x", "http://a.com/x"},
    {"http://a.com:65535/", "http://a.com:65535/"},
    {"http://a.com:65536/", NULL},
    {"http://a.com", "http://a.com/"},
    {"http://a.com?q", "http://a.com/?q"},
    {"http://a.com/?", "http://a.com/?"},
    {"http://a.com/a/./b/../c", "http://a.com/a/c"},
    {"http://a.com/a/b/..", "http://a.com/a/"},
    {"http://a.com/a/b/.", "http://a.com/a/b/"},
    {"http://a.com/../../x", "http://a.com/x"},
    {"http://a.com//x//", "http://a.com//x//"},
    {"http://a.com/%2f%2e%7e", "http://a.com/%2F%2E%7E"},
    {"http://a.com/x?%2f/../", "http://a.com/x?%2f/../"},
    {"http://a.com/x?off=100%", "http://a.com/x?off=100%"},
    {"http://a.com/%", NULL},
    {"http://a.com/%4", NULL},
    {"http://a.com/%zz", NULL},
    {"http://a%2e.com/", "http://a%2E.com/"},
    {"http://a%2/", NULL},
    {"http://[::1]/", "http://[::1]/"},
    {"http://[::FFFF:10.0.0.1]:8080/", "http://[::ffff:10.0.0.1]:8080/"},
    {"http://[fe80::1%25eth0]/", NULL},
    {"http://[::g]/", NULL},
    {"http://[v1.Future]/", "http://[v1.future]/"},
    {"http://[::1/", NULL},
    {"http://[::1]x/", NULL},
    {"http://10.0.0.1:8081/purge", "http://10.0.0.1:8081/purge"},
    {"http://user@a.com/", NULL},
    {"http://a.com/a#frag", NULL},
    {"http://a.com/a b", NULL},
    {"http://a.com/a\tb", NULL},
    {"http://a.com/\x7f", NULL},
    {"http://a.com/caf\xc3\xa9", "http://a.com/caf\xc3\xa9"},
    {"http://a\xc3\xa9.com/", NULL},
    {"http:///x", NULL},
    {"http://:80/x", NULL},
    {"ftp://a.com/", NULL},
    {"//a.com/", NULL},
    {"/a", NULL},
    {"http:/a.com/", NULL},
    {"", NULL},
};

/* Splits an absolute URL the way a request arrives at the edge: scheme, authority, origin-form target. */
static int edge_key(const char *url, char *out, size_t outlen)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL)
        return -1;
    const char *auth = sep + 3, *p = auth;
    while (*p != '\0' && *p != '/' && *p != '?')
        ++p;
    char target[512];
    snprintf(target, sizeof(target), "%s%s", *p == '/' ? "" : "/", p);
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_iovec_t key, path;
    int ret = edge_cache_key_build(&pool, h2o_iovec_init(url, sep - url), h2o_iovec_init(auth, p - auth),
                                   h2o_iovec_init(target, strlen(target)), &key, &path);
    if (ret == 0)
        snprintf(out, outlen, "%.*s", (int)key.len, key.base);
    h2o_mem_clear_pool(&pool);
    return ret;
}

static void test_table_and_agreement_with_edge(void **state)
{
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        const struct url_case *c = &cases[i];
        char *key = NULL, ekey[512];
        const char *reason = NULL;
        int ret = purge_url_normalize(c->url, strlen(c->url), 0, &key, &reason);
        if (c->key == NULL) {
            if (ret != -1)
                fail_msg("%s: accepted as %s", c->url, key);
            assert_non_null(reason);
        } else {
            if (ret != 0)
                fail_msg("%s: refused: %s", c->url, reason);
            if (strcmp(key, c->key) != 0)
                fail_msg("%s: key %s, expected %s", c->url, key, c->key);
        }
        int eret = edge_key(c->url, ekey, sizeof(ekey));
        if (eret != ret)
            fail_msg("%s: purge says %d, edge says %d", c->url, ret, eret);
        if (ret == 0 && strcmp(key, ekey) != 0)
            fail_msg("%s: purge key %s, edge key %s", c->url, key, ekey);
        free(key);
    }
}

/* The URL is bounded by len; an embedded NUL is refused. */
static void test_len(void **state)
{
    char *key;
    const char *reason;
    assert_int_equal(purge_url_normalize("http://a/bXYZ", 10, 0, &key, &reason), 0);
    assert_string_equal(key, "http://a/b");
    free(key);
    assert_int_equal(purge_url_normalize("http://a/b\0c", 12, 0, &key, &reason), -1);
    assert_string_equal(reason, "NUL byte");
}

static void test_prefix(void **state)
{
    static const struct url_case prefixes[] = {
        {"https://Example.com/blog/", "https://example.com/blog/"},
        {"https://example.com", "https://example.com/"},
        {"https://example.com/b", "https://example.com/b"},
        {"https://example.com/.well-known/", "https://example.com/.well-known/"},
        {"https://example.com/a/..b", "https://example.com/a/..b"},
        {"https://example.com/a/../", NULL},
        {"https://example.com/a/./", NULL},
        {"https://example.com/a/..", NULL},
        {"https://example.com/a/.", NULL},
        {"https://example.com/%2", NULL},
        {"https://example.com/x?q=%2", "https://example.com/x?q=%2"},
    };
    for (size_t i = 0; i != sizeof(prefixes) / sizeof(prefixes[0]); ++i) {
        char *key = NULL;
        const char *reason = NULL;
        int ret = purge_url_normalize(prefixes[i].url, strlen(prefixes[i].url), PURGE_URL_PREFIX, &key, &reason);
        if (prefixes[i].key == NULL) {
            if (ret != -1)
                fail_msg("%s: accepted as %s", prefixes[i].url, key);
        } else if (ret != 0 || strcmp(key, prefixes[i].key) != 0) {
            fail_msg("%s: %d %s", prefixes[i].url, ret, ret == 0 ? key : reason);
        }
        free(key);
    }
}

static void test_host(void **state)
{
    static const struct url_case hosts[] = {
        {"Example.COM", "example.com"},
        {"example.com:443", "example.com:443"},
        {"example.com:0080", "example.com:80"},
        {"example.com:", "example.com"},
        {"[::1]", "[::1]"},
        {"[::1]:8443", "[::1]:8443"},
        {"10.0.0.1", "10.0.0.1"},
        {"", NULL},
        {":80", NULL},
        {"a.com:x", NULL},
        {"a.com/", NULL},
        {"a.com?x", NULL},
        {"a.com#x", NULL},
        {"a b", NULL},
        {"u@a.com", NULL},
        {"http://a.com", NULL},
    };
    for (size_t i = 0; i != sizeof(hosts) / sizeof(hosts[0]); ++i) {
        char *out = NULL;
        const char *reason = NULL;
        int ret = purge_host_normalize(hosts[i].url, strlen(hosts[i].url), &out, &reason);
        if (hosts[i].key == NULL) {
            if (ret != -1)
                fail_msg("%s: accepted as %s", hosts[i].url, out);
        } else if (ret != 0 || strcmp(out, hosts[i].key) != 0) {
            fail_msg("%s: %d %s", hosts[i].url, ret, ret == 0 ? out : reason);
        }
        free(out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_and_agreement_with_edge),
        cmocka_unit_test(test_len),
        cmocka_unit_test(test_prefix),
        cmocka_unit_test(test_host),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
