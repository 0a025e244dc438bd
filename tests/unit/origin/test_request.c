#define _GNU_SOURCE
/*
 * Unit tests of origin/request.c: the request head sent to HTTP origins and the filtering of response
 * heads. Table-driven: one row per behaviour.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "origin/origin_private.h"

#define MAX_HDRS 12
#define MAX_CHECKS 8

struct hdr {
    const char *name, *value;
};

struct request_case {
    const char *what;
    const char *method, *path;
    struct hdr headers[MAX_HDRS];
    const char *body;
    int for_cache, tls;
    const char *want[MAX_CHECKS]; /* whole header lines that must appear exactly once */
    const char *deny[MAX_CHECKS]; /* header names (lower case, with ": ") that must not appear */
    const char *if_none_match, *if_modified_since; /* the edge's own validators (revalidation) */
    int accept_gzip;
};

static const struct request_case request_cases[] = {
    {"the cache's fields and Next.js internal headers from a client are dropped",
     "GET",
     "/",
     {{"cdn-cache-control", "max-age=1"},
      {"surrogate-control", "no-store"},
      {"surrogate-key", "a b"},
      {"cache-tag", "a"},
      {"x-middleware-subrequest", "middleware"},
      {"next-resume", "1"},
      {"x-prerender-revalidate", "secret"},
      {"x-now-route-matches", "x"},
      {"x-keep", "k"}},
     NULL,
     0,
     0,
     {"x-keep: k"},
     {"cdn-cache-control: ", "surrogate-", "cache-tag: ", "x-middleware-", "next-resume: ", "x-prerender-", "x-now-"}},
    {"a revalidation sends the stored validators instead of the client's",
     "GET",
     "/",
     {{"if-none-match", "\"client\""}, {"if-modified-since", "Mon, 07 Nov 1994 08:49:37 GMT"}},
     NULL,
     1,
     0,
     {"if-none-match: \"stored\"", "if-modified-since: Sun, 06 Nov 1994 08:49:37 GMT"},
     {"if-none-match: \"client\"", "if-modified-since: Mon"},
     "\"stored\"",
     "Sun, 06 Nov 1994 08:49:37 GMT"},
    {"basic GET",
     "GET",
     "/a/b?x=1",
     {{"accept", "*/*"}, {"user-agent", "t/1"}},
     NULL,
     0,
     0,
     {"host: example.com", "accept: */*", "user-agent: t/1", "x-forwarded-for: 192.0.2.1", "x-forwarded-proto: http",
      "via: 1.1 cdn-edge", "connection: keep-alive"},
     {"content-length: ", "accept-encoding: "}},
    {"hop-by-hop dropped, including tokens named by Connection",
     "GET",
     "/",
     {{"connection", "close, X-Secret, foo"},
      {"keep-alive", "timeout=5"},
      {"te", "trailers"},
      {"trailer", "x"},
      {"transfer-encoding", "chunked"},
      {"upgrade", "h2c"},
      {"proxy-connection", "keep-alive"},
      {"proxy-authorization", "Basic x"},
      {"x-secret", "s"},
      {"foo", "bar"},
      {"x-keep", "k"}},
     NULL,
     0,
     0,
     {"x-keep: k", "connection: keep-alive"},
     {"keep-alive: ", "te: ", "trailer: ", "transfer-encoding: ", "upgrade: ", "proxy-", "x-secret: ", "foo: "}},
    {"host, content-length and expect from the client are dropped",
     "GET",
     "/",
     {{"host", "evil.example"}, {"content-length", "5"}, {"expect", "100-continue"}},
     NULL,
     0,
     0,
     {"host: example.com"},
     {"content-length: ", "expect: ", "host: evil.example"}},
    {"X-Forwarded-For and Via are appended, X-Forwarded-Proto replaced",
     "GET",
     "/",
     {{"x-forwarded-for", "203.0.113.9"}, {"x-forwarded-for", "198.51.100.2"}, {"via", "1.0 fred"}, {"x-forwarded-proto", "ftp"}},
     NULL,
     0,
     1,
     {"x-forwarded-for: 203.0.113.9, 198.51.100.2, 192.0.2.1", "via: 1.0 fred, 1.1 cdn-edge", "x-forwarded-proto: https"},
     {"x-forwarded-proto: ftp"}},
    {"for_cache drops conditionals and ranges, asks for identity",
     "GET",
     "/",
     {{"if-none-match", "\"x\""},
      {"if-modified-since", "Sun, 06 Nov 1994 08:49:37 GMT"},
      {"if-match", "\"y\""},
      {"if-unmodified-since", "Sun, 06 Nov 1994 08:49:37 GMT"},
      {"if-range", "\"z\""},
      {"range", "bytes=0-1"},
      {"accept-encoding", "gzip, br"},
      {"cookie", "a=b"}},
     NULL,
     1,
     0,
     {"accept-encoding: identity", "cookie: a=b"},
     {"if-", "range: ", "accept-encoding: gzip"}},
    {"for_cache with accept_gzip asks for gzip only, whatever the client sent",
     "GET",
     "/",
     {{"accept-encoding", "br, identity;q=0"}},
     NULL,
     1,
     0,
     {"accept-encoding: gzip"},
     {"accept-encoding: identity", "accept-encoding: br"},
     NULL,
     NULL,
     1},
    {"without for_cache, conditionals pass",
     "GET",
     "/",
     {{"if-none-match", "\"x\""}, {"range", "bytes=0-1"}, {"accept-encoding", "gzip"}},
     NULL,
     0,
     0,
     {"if-none-match: \"x\"", "range: bytes=0-1", "accept-encoding: gzip"},
     {}},
    {"body gets Content-Length", "POST", "/form", {{"content-type", "text/plain"}}, "hello", 0, 0, {"content-length: 5"}, {}},
    {"POST without body gets Content-Length: 0", "POST", "/form", {}, NULL, 0, 0, {"content-length: 0"}, {}},
    {"PUT and PATCH too", "PATCH", "/x", {}, NULL, 0, 0, {"content-length: 0"}, {}},
    {"GET without body has none", "GET", "/x", {}, NULL, 0, 0, {}, {"content-length: "}},
    {"values with CR or LF are dropped",
     "GET",
     "/",
     {{"x-evil", "a\r\nx-injected: 1"}, {"x-lf", "a\nb"}, {"x-ok", "fine"}},
     NULL,
     0,
     0,
     {"x-ok: fine"},
     {"x-evil", "x-injected", "x-lf"}},
};

static h2o_iovec_t build(h2o_mem_pool_t *pool, const struct request_case *c, h2o_headers_t *headers)
{
    for (size_t i = 0; i != MAX_HDRS && c->headers[i].name != NULL; ++i)
        h2o_add_header_by_str(pool, headers, c->headers[i].name, strlen(c->headers[i].name), 1, NULL, c->headers[i].value,
                              strlen(c->headers[i].value));
    origin_request_t req = {
        .method = h2o_iovec_init(c->method, strlen(c->method)),
        .authority = h2o_iovec_init(H2O_STRLIT("example.com")),
        .path = h2o_iovec_init(c->path, strlen(c->path)),
        .headers = headers,
        .body = c->body != NULL ? h2o_iovec_init(c->body, strlen(c->body)) : h2o_iovec_init(NULL, 0),
        .client_ip = h2o_iovec_init(H2O_STRLIT("192.0.2.1")),
        .client_is_tls = c->tls,
        .for_cache = c->for_cache,
        .accept_gzip = c->accept_gzip,
        .if_none_match = c->if_none_match != NULL ? h2o_iovec_init(c->if_none_match, strlen(c->if_none_match))
                                                  : h2o_iovec_init(NULL, 0),
        .if_modified_since = c->if_modified_since != NULL
                                 ? h2o_iovec_init(c->if_modified_since, strlen(c->if_modified_since))
                                 : h2o_iovec_init(NULL, 0),
    };
    return origin_build_request_head(pool, &req);
}

/* Splits the head into lines, checks the framing, and returns the number of lines equal to `line`. */
static int count_lines(h2o_iovec_t head, const char *line, const char *prefix)
{
    int count = 0;
    size_t pos = 0;
    while (pos < head.len) {
        const char *eol = memmem(head.base + pos, head.len - pos, "\r\n", 2);
        assert_non_null(eol);
        size_t len = eol - (head.base + pos);
        if (len == 0)
            break;
        assert_null(memchr(head.base + pos, '\n', len)); /* no bare LF inside a line */
        assert_null(memchr(head.base + pos, '\r', len));
        if (line != NULL && len == strlen(line) && memcmp(head.base + pos, line, len) == 0)
            ++count;
        if (prefix != NULL && len >= strlen(prefix) && strncasecmp(head.base + pos, prefix, strlen(prefix)) == 0)
            ++count;
        pos += len + 2;
    }
    return count;
}

static void test_request_table(void **state)
{
    for (size_t i = 0; i != sizeof(request_cases) / sizeof(request_cases[0]); ++i) {
        const struct request_case *c = request_cases + i;
        h2o_mem_pool_t pool;
        h2o_headers_t headers = {NULL};
        h2o_mem_init_pool(&pool);
        h2o_iovec_t head = build(&pool, c, &headers);
        print_message("case: %s\n", c->what);
        assert_non_null(head.base);
        /* request line, then one header per line, then an empty line, nothing after */
        char first[256];
        snprintf(first, sizeof(first), "%s %s HTTP/1.1\r\n", c->method, c->path);
        assert_true(head.len > strlen(first) && memcmp(head.base, first, strlen(first)) == 0);
        assert_true(head.len >= 4 && memcmp(head.base + head.len - 4, "\r\n\r\n", 4) == 0);
        assert_int_equal(count_lines(head, NULL, "host: "), 1);
        for (size_t j = 0; j != MAX_CHECKS && c->want[j] != NULL; ++j) {
            if (count_lines(head, c->want[j], NULL) != 1)
                fail_msg("%s: want exactly one `%s` in\n%.*s", c->what, c->want[j], (int)head.len, head.base);
        }
        for (size_t j = 0; j != MAX_CHECKS && c->deny[j] != NULL; ++j) {
            /* skip the request line: count_lines compares every line, the first is never a header */
            h2o_iovec_t rest = h2o_iovec_init(head.base + strlen(first), head.len - strlen(first));
            if (count_lines(rest, NULL, c->deny[j]) != 0)
                fail_msg("%s: `%s` must not appear in\n%.*s", c->what, c->deny[j], (int)head.len, head.base);
        }
        h2o_mem_clear_pool(&pool);
    }
}

static void test_request_line_refused(void **state)
{
    static const char *const bad_paths[] = {"/a b", "/a\r\nx: y", "", "/a\tb"};
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    for (size_t i = 0; i != sizeof(bad_paths) / sizeof(bad_paths[0]); ++i) {
        origin_request_t req = {.method = h2o_iovec_init(H2O_STRLIT("GET")),
                                .authority = h2o_iovec_init(H2O_STRLIT("a")),
                                .path = h2o_iovec_init(bad_paths[i], strlen(bad_paths[i]))};
        assert_null(origin_build_request_head(&pool, &req).base);
    }
    origin_request_t req = {.method = h2o_iovec_init(H2O_STRLIT("GE T")), .path = h2o_iovec_init(H2O_STRLIT("/"))};
    assert_null(origin_build_request_head(&pool, &req).base);
    /* an authority with CR/LF is not emitted at all */
    req = (origin_request_t){.method = h2o_iovec_init(H2O_STRLIT("GET")),
                             .authority = h2o_iovec_init(H2O_STRLIT("a\r\nx-injected: 1")),
                             .path = h2o_iovec_init(H2O_STRLIT("/"))};
    h2o_iovec_t head = origin_build_request_head(&pool, &req);
    assert_non_null(head.base);
    assert_null(memmem(head.base, head.len, "x-injected", 10));
    assert_int_equal(count_lines(head, NULL, "host:"), 0);
    h2o_mem_clear_pool(&pool);
}

struct response_case {
    const char *what;
    struct hdr headers[MAX_HDRS];
    int ok;
    int64_t content_length;
    int is_chunked;
    const char *kept[MAX_CHECKS]; /* names kept, in order */
};

static const struct response_case response_cases[] = {
    {"end-to-end kept, hop-by-hop and length removed",
     {{"content-type", "text/plain"},
      {"content-length", "12"},
      {"connection", "keep-alive, x-hop"},
      {"keep-alive", "timeout=4"},
      {"x-hop", "1"},
      {"cache-control", "max-age=60"},
      {"upgrade", "h2c"},
      {"proxy-authenticate", "Basic"},
      {"trailer", "x"},
      {"X-Custom", "v"}},
     1,
     12,
     0,
     {"content-type", "cache-control", "x-custom"}},
    {"chunked", {{"transfer-encoding", "chunked"}, {"etag", "\"a\""}}, 1, -1, 1, {"etag"}},
    {"no length", {{"date", "x"}}, 1, -1, 0, {"date"}},
    {"same length twice is fine", {{"content-length", "3"}, {"content-length", "3"}}, 1, 3, 0, {}},
    {"differing lengths are refused", {{"content-length", "3"}, {"content-length", "4"}}, 0, 0, 0, {}},
    {"bad length is refused", {{"content-length", "3x"}}, 0, 0, 0, {}},
    {"negative length is refused", {{"content-length", "-1"}}, 0, 0, 0, {}},
    {"value with LF dropped", {{"x-a", "1\nx-b: 2"}, {"x-c", "3"}}, 1, -1, 0, {"x-c"}},
};

static void test_response_filter_table(void **state)
{
    for (size_t i = 0; i != sizeof(response_cases) / sizeof(response_cases[0]); ++i) {
        const struct response_case *c = response_cases + i;
        h2o_mem_pool_t pool;
        h2o_header_t in[MAX_HDRS], *out;
        size_t n = 0, num_out;
        int64_t cl;
        int chunked;
        h2o_mem_init_pool(&pool);
        print_message("case: %s\n", c->what);
        for (; n != MAX_HDRS && c->headers[n].name != NULL; ++n) {
            h2o_iovec_t *name = h2o_mem_alloc_pool(&pool, sizeof(*name));
            *name = h2o_iovec_init(c->headers[n].name, strlen(c->headers[n].name));
            in[n] = (h2o_header_t){name, NULL, h2o_iovec_init(c->headers[n].value, strlen(c->headers[n].value))};
        }
        int ret = origin__filter_response_headers(&pool, in, n, &out, &num_out, &cl, &chunked);
        if (!c->ok) {
            assert_int_equal(ret, -1);
        } else {
            assert_int_equal(ret, 0);
            assert_int_equal(cl, c->content_length);
            assert_int_equal(chunked, c->is_chunked);
            size_t want = 0;
            while (want != MAX_CHECKS && c->kept[want] != NULL)
                ++want;
            assert_int_equal(num_out, want);
            for (size_t j = 0; j != want; ++j) {
                assert_true(h2o_memis(out[j].name->base, out[j].name->len, c->kept[j], strlen(c->kept[j])));
                /* copied: not pointing into the input */
                assert_ptr_not_equal(out[j].value.base, in[0].value.base);
            }
        }
        h2o_mem_clear_pool(&pool);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_table),
        cmocka_unit_test(test_request_line_refused),
        cmocka_unit_test(test_response_filter_table),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
