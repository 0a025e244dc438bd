#define _GNU_SOURCE
/*
 * Unit tests of origin/http_response.c: the pure response-head parser, the framing decision (RFC 9112 §6.3)
 * and the body decoder. One table row per behaviour. Every input is also parsed from the end of a page
 * followed by a PROT_NONE guard page (picohttpparser test.c), whole and at every prefix length, so a read
 * past the input crashes the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "origin/http_response.h"

/* --- guard page --- */

static char *guard_area;
static size_t page_size;

static int setup_guard(void **state)
{
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    /* big enough for the largest head of the tables (ORIGIN_HTTP_MAX_HEAD_BYTES + a little) */
    size_t data_pages = (ORIGIN_HTTP_MAX_HEAD_BYTES + 4096) / page_size + 2;
    guard_area = mmap(NULL, (data_pages + 1) * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(guard_area != MAP_FAILED);
    assert_int_equal(mprotect(guard_area + data_pages * page_size, page_size, PROT_NONE), 0);
    guard_area += data_pages * page_size; /* the guard page: inputs end right here */
    return 0;
}

/* @return a copy of s[0..len) whose last byte is the last byte before the guard page */
static char *guarded(const char *s, size_t len)
{
    char *p = guard_area - len;
    memcpy(p, s, len);
    return p;
}

/* --- head parser --- */

struct head_case {
    const char *what;
    const char *input;
    int ret; /* -1, -2, or 0 for "the whole input" */
    int status, minor_version;
    const char *reason;
    size_t num_headers;
    const char *value0; /* value of the first header, if any */
    size_t len;         /* input length when it holds a NUL; 0: strlen */
};

static const struct head_case head_cases[] = {
    {"a simple head", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0, 200, 1, "OK", 1, "5"},
    {"LF-only line ends", "HTTP/1.1 404 Not Found\nA: b\n\n", 0, 404, 1, "Not Found", 1, "b"},
    {"HTTP/1.0", "HTTP/1.0 200 OK\r\n\r\n", 0, 200, 0, "OK", 0, NULL},
    {"HTTP/1.2 is read as 1.1", "HTTP/1.2 200 OK\r\n\r\n", 0, 200, 1, "OK", 0, NULL},
    {"an empty reason", "HTTP/1.1 200 \r\nA: b\r\n\r\n", 0, 200, 1, "", 1, "b"},
    {"leading OWS of a value is not part of it", "HTTP/1.1 200 OK\r\nA:   b\r\n\r\n", 0, 200, 1, "OK", 1, "b"},
    {"incomplete: no empty line", "HTTP/1.1 200 OK\r\nA: b\r\n", -2},
    {"incomplete: only the version", "HTTP/1.1", -2},
    {"not HTTP", "SPDY/9 what\r\n\r\n", -1},
    {"HTTP/2 status line", "HTTP/2 200\r\n\r\n", -1},
    {"a two-digit status", "HTTP/1.1 20 OK\r\n\r\n", -1},
    {"a status under 100", "HTTP/1.1 099 Low\r\n\r\n", -1},
    {"a status with a letter", "HTTP/1.1 2x0 OK\r\n\r\n", -1},
    {"obs-fold is refused", "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", -1},
    {"a space before the colon", "HTTP/1.1 200 OK\r\nA : b\r\n\r\n", -1},
    {"an empty header name", "HTTP/1.1 200 OK\r\n: b\r\n\r\n", -1},
    {"a NUL in a value", "HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n", -1, .len = 27},
    {"a bare CR in a value", "HTTP/1.1 200 OK\r\nA: b\rc\r\n\r\n", -1},
};

static void test_parse_head_table(void **state)
{
    for (size_t i = 0; i != sizeof(head_cases) / sizeof(head_cases[0]); ++i) {
        const struct head_case *c = head_cases + i;
        size_t len = c->len != 0 ? c->len : strlen(c->input);
        origin_http_head_t head;
        print_message("case: %s\n", c->what);
        int ret = origin_http_parse_head(guarded(c->input, len), len, &head);
        if (c->ret == 0) {
            assert_int_equal(ret, (int)len);
            assert_int_equal(head.status, c->status);
            assert_int_equal(head.minor_version, c->minor_version);
            assert_int_equal(head.reason.len, strlen(c->reason));
            assert_memory_equal(head.reason.base, c->reason, head.reason.len);
            assert_int_equal(head.num_headers, c->num_headers);
            if (c->value0 != NULL) {
                assert_int_equal(head.headers[0].value.len, strlen(c->value0));
                assert_memory_equal(head.headers[0].value.base, c->value0, strlen(c->value0));
                assert_ptr_equal(head.headers[0].name, &head.names[0]);
            }
            /* every strict prefix of a valid head is incomplete, never an error nor a crash */
            for (size_t n = 0; n != len; ++n)
                assert_int_equal(origin_http_parse_head(guarded(c->input, n), n, &head), -2);
        } else {
            assert_int_equal(ret, c->ret);
            for (size_t n = 0; n != len; ++n) {
                int r = origin_http_parse_head(guarded(c->input, n), n, &head);
                assert_true(r == -1 || r == -2);
            }
        }
    }
}

/* Builds "HTTP/1.1 200 OK\r\n" + n headers "X-Hnnn: v\r\n" + "\r\n" */
static char *head_with_headers(size_t n, size_t *len)
{
    char *s = malloc(64 + n * 32);
    size_t off = (size_t)sprintf(s, "HTTP/1.1 200 OK\r\n");
    for (size_t i = 0; i != n; ++i)
        off += (size_t)sprintf(s + off, "X-H%zu: v\r\n", i);
    off += (size_t)sprintf(s + off, "\r\n");
    *len = off;
    return s;
}

/* Builds a head with one header whose value makes the whole head exactly `total` bytes long */
static char *head_of_size(size_t total)
{
    static const char pre[] = "HTTP/1.1 200 OK\r\nX-Big: ", post[] = "\r\n\r\n";
    char *s = malloc(total);
    size_t fill = total - (sizeof(pre) - 1) - (sizeof(post) - 1);
    memcpy(s, pre, sizeof(pre) - 1);
    memset(s + sizeof(pre) - 1, 'a', fill);
    memcpy(s + sizeof(pre) - 1 + fill, post, sizeof(post) - 1);
    return s;
}

static void test_parse_head_bounds(void **state)
{
    origin_http_head_t head;
    size_t len;
    char *s;

    /* header count: the bound is accepted, one more is refused */
    s = head_with_headers(ORIGIN_HTTP_MAX_HEADERS, &len);
    assert_int_equal(origin_http_parse_head(guarded(s, len), len, &head), (int)len);
    assert_int_equal(head.num_headers, ORIGIN_HTTP_MAX_HEADERS);
    free(s);
    s = head_with_headers(ORIGIN_HTTP_MAX_HEADERS + 1, &len);
    assert_int_equal(origin_http_parse_head(guarded(s, len), len, &head), -1);
    free(s);

    /* size: a head of exactly the bound is fine; one byte more is refused, complete or not */
    s = head_of_size(ORIGIN_HTTP_MAX_HEAD_BYTES - 1);
    assert_int_equal(origin_http_parse_head(guarded(s, ORIGIN_HTTP_MAX_HEAD_BYTES - 1), ORIGIN_HTTP_MAX_HEAD_BYTES - 1, &head),
                     ORIGIN_HTTP_MAX_HEAD_BYTES - 1);
    free(s);
    s = head_of_size(ORIGIN_HTTP_MAX_HEAD_BYTES);
    assert_int_equal(origin_http_parse_head(guarded(s, ORIGIN_HTTP_MAX_HEAD_BYTES), ORIGIN_HTTP_MAX_HEAD_BYTES, &head),
                     ORIGIN_HTTP_MAX_HEAD_BYTES);
    /* its prefix one byte short of the bound is still incomplete ... */
    assert_int_equal(origin_http_parse_head(guarded(s, ORIGIN_HTTP_MAX_HEAD_BYTES - 1), ORIGIN_HTTP_MAX_HEAD_BYTES - 1, &head), -2);
    free(s);
    s = head_of_size(ORIGIN_HTTP_MAX_HEAD_BYTES + 1);
    assert_int_equal(origin_http_parse_head(guarded(s, ORIGIN_HTTP_MAX_HEAD_BYTES + 1), ORIGIN_HTTP_MAX_HEAD_BYTES + 1, &head), -1);
    /* ... and a prefix that reaches the bound without an end is refused, not awaited forever */
    assert_int_equal(origin_http_parse_head(guarded(s, ORIGIN_HTTP_MAX_HEAD_BYTES), ORIGIN_HTTP_MAX_HEAD_BYTES, &head), -1);
    free(s);
}

/* --- framing --- */

struct framing_case {
    const char *what;
    const char *head;
    int is_head_request;
    int ret;
    origin_framing_t framing;
    int64_t content_length;
    int keepalive;
};

#define OK ORIGIN_HTTP_FINAL
#define INTERIM ORIGIN_HTTP_INTERIM
#define INVALID ORIGIN_HTTP_INVALID
#define NONE ORIGIN_FRAMING_NONE
#define LENGTH ORIGIN_FRAMING_LENGTH
#define CHUNKED ORIGIN_FRAMING_CHUNKED
#define CLOSE ORIGIN_FRAMING_CLOSE

static const struct framing_case framing_cases[] = {
    /* Content-Length (RFC 9110 §8.6) */
    {"content-length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 0, OK, LENGTH, 5, 1},
    {"content-length 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, OK, LENGTH, 0, 1},
    {"content-length with trailing OWS", "HTTP/1.1 200 OK\r\nContent-Length: 5 \t\r\n\r\n", 0, OK, LENGTH, 5, 1},
    {"content-length list of equal values", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n", 0, OK, LENGTH, 5, 1},
    {"content-length twice, equal", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n", 0, OK, LENGTH, 5, 1},
    {"content-length twice, different", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 0, INVALID},
    {"content-length list, different", "HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\n", 0, INVALID},
    {"content-length 12abc", "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n", 0, INVALID},
    {"content-length empty", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\n", 0, INVALID},
    {"content-length empty member", "HTTP/1.1 200 OK\r\nContent-Length: 5,,5\r\n\r\n", 0, INVALID},
    {"content-length negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", 0, INVALID},
    {"content-length with a plus", "HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\n", 0, INVALID},
    {"content-length hex", "HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n", 0, INVALID},
    {"content-length INT64_MAX", "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775807\r\n\r\n", 0, OK, LENGTH, INT64_MAX, 1},
    {"content-length INT64_MAX + 1", "HTTP/1.1 200 OK\r\nContent-Length: 9223372036854775808\r\n\r\n", 0, INVALID},
    {"content-length 2^64", "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n", 0, INVALID},
    {"content-length huge", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999999999\r\n\r\n", 0, INVALID},
    /* Transfer-Encoding (RFC 9112 §6.1) */
    {"chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, OK, CHUNKED, -1, 1},
    {"Chunked (case)", "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n", 0, OK, CHUNKED, -1, 1},
    {"CHUNKED with OWS", "HTTP/1.1 200 OK\r\nTransfer-Encoding: CHUNKED \r\n\r\n", 0, OK, CHUNKED, -1, 1},
    {"identity, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, chunked\r\n\r\n", 0, OK, CHUNKED, -1, 1},
    {"empty list members", "HTTP/1.1 200 OK\r\nTransfer-Encoding: , chunked,\r\n\r\n", 0, OK, CHUNKED, -1, 1},
    {"identity then chunked on two lines", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n",
     0, OK, CHUNKED, -1, 1},
    {"gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 0, INVALID},
    {"chunked, gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 0, INVALID},
    {"chunked twice", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 0, INVALID},
    {"chunked then chunked on two lines", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 0,
     INVALID},
    {"identity alone", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n", 0, INVALID},
    {"gzip alone", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", 0, INVALID},
    {"empty transfer-encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding: \r\n\r\n", 0, INVALID},
    {"chunked with a parameter", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", 0, INVALID},
    {"chunkedx", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunkedx\r\n\r\n", 0, INVALID},
    {"chunked and content-length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 0, INVALID},
    {"chunked in HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 0, INVALID},
    /* close-delimited */
    {"no length at all", "HTTP/1.1 200 OK\r\n\r\n", 0, OK, CLOSE, -1, 0},
    {"no length, keep-alive asked", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n", 0, OK, CLOSE, -1, 0},
    /* bodiless (RFC 9112 §6.3 rule 1) */
    {"HEAD keeps the content-length", "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n", 1, OK, NONE, 1234, 1},
    {"HEAD of a chunked resource", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", 1, OK, NONE, -1, 1},
    {"HEAD without length", "HTTP/1.1 200 OK\r\n\r\n", 1, OK, NONE, -1, 1},
    {"HEAD: a bad content-length is still invalid", "HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", 1, INVALID},
    {"HEAD: gzip, chunked is still invalid", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 1, INVALID},
    {"204", "HTTP/1.1 204 No Content\r\n\r\n", 0, OK, NONE, -1, 1},
    {"304 with a content-length", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", 0, OK, NONE, 10, 1},
    /* interim (RFC 9110 §15.2) */
    {"100 Continue", "HTTP/1.1 100 Continue\r\n\r\n", 0, INTERIM},
    {"103 Early Hints", "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n", 0, INTERIM},
    {"199", "HTTP/1.1 199 Whatever\r\nContent-Length: x\r\n\r\n", 0, INTERIM},
    {"101 without an upgrade asked", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", 0, INVALID},
    /* persistence (RFC 9112 §9.3) */
    {"1.1 Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n", 0, OK, LENGTH, 1, 0},
    {"1.1 Connection: Close (case)", "HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 1\r\n\r\n", 0, OK, LENGTH, 1, 0},
    {"1.1 close among other tokens", "HTTP/1.1 200 OK\r\nConnection: x-a, close\r\nContent-Length: 1\r\n\r\n", 0, OK, LENGTH, 1, 0},
    {"1.1 keep-alive and close", "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\n", 0, OK, LENGTH, 1,
     0},
    {"1.1 closed is not close", "HTTP/1.1 200 OK\r\nConnection: closed\r\nContent-Length: 1\r\n\r\n", 0, OK, LENGTH, 1, 1},
    {"1.0 without keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", 0, OK, LENGTH, 1, 0},
    {"1.0 with keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\n", 0, OK, LENGTH, 1, 1},
    {"1.0 close-delimited", "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", 0, OK, CLOSE, -1, 0},
};

static void test_framing_table(void **state)
{
    for (size_t i = 0; i != sizeof(framing_cases) / sizeof(framing_cases[0]); ++i) {
        const struct framing_case *c = framing_cases + i;
        size_t len = strlen(c->head);
        origin_http_head_t head;
        origin_http_framing_t fr = {-1, -2, -1};
        print_message("case: %s\n", c->what);
        assert_int_equal(origin_http_parse_head(guarded(c->head, len), len, &head), (int)len);
        assert_int_equal(origin_http_framing(&head, c->is_head_request, &fr), c->ret);
        if (c->ret != OK)
            continue;
        assert_int_equal(fr.framing, c->framing);
        assert_int_equal(fr.content_length, c->content_length);
        assert_int_equal(fr.keepalive, c->keepalive);
    }
}

/* --- body decoder --- */

struct body_case {
    const char *what;
    origin_framing_t framing;
    int64_t content_length;
    const char *raw;
    int ret; /* of the last call */
    const char *body;
    size_t extra;
};

static const struct body_case body_cases[] = {
    {"length: exact", LENGTH, 5, "hello", 1, "hello", 0},
    {"length: bytes past the end", LENGTH, 5, "helloEXTRA", 1, "hello", 5},
    {"length: short", LENGTH, 5, "hel", 0, "hel", 0},
    {"length: zero", LENGTH, 0, "x", 1, "", 1},
    {"chunked: two chunks", CHUNKED, -1, "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", 1, "hello world", 0},
    {"chunked: upper-case hex", CHUNKED, -1, "A\r\n0123456789\r\n0\r\n\r\n", 1, "0123456789", 0},
    {"chunked: leading zeros", CHUNKED, -1, "0005\r\nhello\r\n0\r\n\r\n", 1, "hello", 0},
    {"chunked: an extension", CHUNKED, -1, "5;name=value\r\nhello\r\n0\r\n\r\n", 1, "hello", 0},
    {"chunked: a trailer section", CHUNKED, -1, "5\r\nhello\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n", 1, "hello", 0},
    {"chunked: LF-only", CHUNKED, -1, "5\nhello\n0\n\n", 1, "hello", 0},
    {"chunked: bytes past the end", CHUNKED, -1, "5\r\nhello\r\n0\r\n\r\nHTTP", 1, "hello", 4},
    {"chunked: cut at a chunk boundary", CHUNKED, -1, "5\r\nhello\r\n", 0, "hello", 0},
    {"chunked: cut inside a chunk", CHUNKED, -1, "5\r\nhel", 0, "hel", 0},
    {"chunked: 0-chunk without the empty line", CHUNKED, -1, "5\r\nhello\r\n0\r\n", 0, "hello", 0},
    {"chunked: cut inside the trailer section", CHUNKED, -1, "0\r\nX-T: 1\r\n", 0, "", 0},
    {"chunked: no size", CHUNKED, -1, "\r\nhello\r\n", -1, NULL, 0},
    {"chunked: size not hex", CHUNKED, -1, "zz\r\nhello\r\n", -1, NULL, 0},
    {"chunked: negative size", CHUNKED, -1, "-5\r\nhello\r\n", -1, NULL, 0},
    {"chunked: size overflows 64 bits", CHUNKED, -1, "10000000000000000\r\nx", -1, NULL, 0},
    {"chunked: data longer than the size", CHUNKED, -1, "3\r\nhello\r\n0\r\n\r\n", -1, NULL, 0},
    {"close: everything is body", CLOSE, -1, "anything\r\n0\r\n\r\n", 0, "anything\r\n0\r\n\r\n", 0},
    {"none: everything is extra", NONE, -1, "abc", 1, "", 3},
};

/* Feeds raw in one call or byte by byte; stops at the first 1 or -1. */
static int feed(const struct body_case *c, int bytewise, char *out, size_t *out_len, size_t *extra_total)
{
    origin_http_body_t body;
    size_t raw_len = strlen(c->raw), pos = 0;
    int ret = body.complete = 0;

    origin_http_body_init(&body, c->framing, c->content_length);
    *out_len = 0;
    *extra_total = 0;
    while (pos != raw_len) {
        size_t n = bytewise ? 1 : raw_len - pos, len = n, extra;
        char *buf = guarded(c->raw + pos, n);
        ret = origin_http_body_decode(&body, buf, &len, &extra);
        pos += n;
        if (ret < 0)
            return ret;
        memcpy(out + *out_len, buf, len);
        *out_len += len;
        if (ret == 1) {
            *extra_total = extra + (raw_len - pos);
            /* once complete, everything that follows is extra */
            if (pos != raw_len) {
                size_t rest = raw_len - pos, rest_len = rest, rest_extra;
                assert_int_equal(origin_http_body_decode(&body, guarded(c->raw + pos, rest), &rest_len, &rest_extra), 1);
                assert_int_equal(rest_len, 0);
                assert_int_equal(rest_extra, rest);
            }
            return 1;
        }
    }
    return ret == 0 && body.complete ? 1 : ret;
}

static void test_body_table(void **state)
{
    for (size_t i = 0; i != sizeof(body_cases) / sizeof(body_cases[0]); ++i) {
        const struct body_case *c = body_cases + i;
        print_message("case: %s\n", c->what);
        for (int bytewise = 0; bytewise != 2; ++bytewise) {
            char out[256];
            size_t out_len, extra;
            int ret = feed(c, bytewise, out, &out_len, &extra);
            assert_int_equal(ret, c->ret);
            if (ret < 0)
                continue;
            assert_int_equal(out_len, strlen(c->body));
            assert_memory_equal(out, c->body, out_len);
            assert_int_equal(extra, c->extra);
        }
    }
}

static void test_body_none_and_empty_length_complete_at_init(void **state)
{
    origin_http_body_t body;
    origin_http_body_init(&body, NONE, 10);
    assert_true(body.complete);
    origin_http_body_init(&body, LENGTH, 0);
    assert_true(body.complete);
    origin_http_body_init(&body, CHUNKED, -1);
    assert_false(body.complete);
    assert_int_equal(body.chunked.consume_trailer, 1);
    origin_http_body_init(&body, CLOSE, -1);
    assert_false(body.complete);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_head_table),
        cmocka_unit_test(test_parse_head_bounds),
        cmocka_unit_test(test_framing_table),
        cmocka_unit_test(test_body_table),
        cmocka_unit_test(test_body_none_and_empty_length_complete_at_init),
    };
    return cmocka_run_group_tests(tests, setup_guard, NULL);
}
