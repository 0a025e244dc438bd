/*
 * Unit tests of edge/conditional.h: tables, one row per behaviour, the RFC section in a comment per group.
 * Client-supplied inputs end right before a PROT_NONE page (picohttpparser test.c style). Time is a parameter.
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
#include "edge/conditional.h"

#define GUARD_SLOTS 4
#include "tests/unit/guard_page.h"

/* a guarded h2o_iovec_t for a C string, or {NULL, 0} for NULL */
static h2o_iovec_t gvec(size_t slot, const char *s)
{
    if (s == NULL)
        return h2o_iovec_init(NULL, 0);
    return h2o_iovec_init(guarded_in(slot, s, strlen(s)), strlen(s));
}

/* T1994 = Sun, 06 Nov 1994 08:49:37 GMT */
#define T1994 ((int64_t)784111777)
#define D1994 "Sun, 06 Nov 1994 08:49:37 GMT"
#define D1994_PLUS1 "Sun, 06 Nov 1994 08:49:38 GMT"
#define D1994_MINUS1 "Sun, 06 Nov 1994 08:49:36 GMT"
#define NOW2025 ((int64_t)1748736000)

/* ---- entity-tags (RFC 9110 §8.8.3) ---- */

struct etag_row_t {
    const char *in;
    int ok, weak;
    const char *opaque;
};

static const struct etag_row_t etag_rows[] = {
    {"\"abc\"", 1, 0, "abc"},
    {"W/\"abc\"", 1, 1, "abc"},
    {"  \"abc\"\t", 1, 0, "abc"},
    {"\"\"", 1, 0, ""},
    {"\"a,b\"", 1, 0, "a,b"},           /* etagc includes ',' */
    {"\"\xc3\xa9\"", 1, 0, "\xc3\xa9"}, /* obs-text */
    {"w/\"abc\"", 0, 0, NULL},          /* W/ is case-sensitive (%s"W/") */
    {"abc", 0, 0, NULL},
    {"\"abc", 0, 0, NULL},
    {"\"ab\"c\"", 0, 0, NULL},
    {"\"a b\"", 0, 0, NULL}, /* SP is not etagc */
    {"W/", 0, 0, NULL},
    {"W/abc", 0, 0, NULL},
    {"", 0, 0, NULL},
    {"\"a\" \"b\"", 0, 0, NULL},
};

static void test_etag_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(etag_rows) / sizeof(etag_rows[0]); ++i) {
        const struct etag_row_t *row = &etag_rows[i];
        edge_etag_t tag;
        const char *in = guarded(row->in, strlen(row->in));
        int ret = edge_etag_parse(in, strlen(row->in), &tag);
        if (ret != (row->ok ? 0 : -1))
            fail_msg("row %zu (%s): ret %d", i, row->in, ret);
        if (row->ok) {
            assert_int_equal(tag.weak, row->weak);
            assert_true(h2o_memis(tag.opaque, tag.opaque_len, row->opaque, strlen(row->opaque)));
        }
    }
}

/* RFC 9110 §8.8.3.2 comparison table */
static void test_etag_compare(void **state)
{
    (void)state;
    struct {
        const char *a, *b;
        int strong, weak;
    } rows[] = {
        {"W/\"1\"", "W/\"1\"", 0, 1},
        {"W/\"1\"", "W/\"2\"", 0, 0},
        {"W/\"1\"", "\"1\"", 0, 1},
        {"\"1\"", "\"1\"", 1, 1},
    };
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        edge_etag_t a, b;
        assert_int_equal(edge_etag_parse(rows[i].a, strlen(rows[i].a), &a), 0);
        assert_int_equal(edge_etag_parse(rows[i].b, strlen(rows[i].b), &b), 0);
        assert_int_equal(edge_etag_strong_eq(&a, &b), rows[i].strong);
        assert_int_equal(edge_etag_weak_eq(&a, &b), rows[i].weak);
    }
}

/* ---- precondition evaluation (RFC 9110 §13.1, §13.2.2; RFC 9111 §4.3.2) ---- */

#define HAS_LM 1
#define NO_LM 0

struct cond_row_t {
    const char *name;
    int get;
    const char *if_match, *if_none_match, *ims, *ius;
    int status;
    const char *etag;
    int has_lm;
    int64_t lm;
    int has_date;
    int64_t date;
    int64_t response_time;
    edge_cond_result_t expect;
};

static const struct cond_row_t cond_rows[] = {
    {"no preconditions", 1, NULL, NULL, NULL, NULL, 200, "\"a\"", HAS_LM, T1994, 0, 0, T1994, EDGE_COND_NONE},
    /* §13.1.2 If-None-Match, weak comparison */
    {"INM match", 1, NULL, "\"a\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_NOT_MODIFIED},
    {"INM weak request tag matches strong stored", 1, NULL, "W/\"a\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994,
     EDGE_COND_NOT_MODIFIED},
    {"INM strong request tag matches weak stored", 1, NULL, "\"a\"", NULL, NULL, 200, "W/\"a\"", NO_LM, 0, 0, 0, T1994,
     EDGE_COND_NOT_MODIFIED},
    {"INM no match", 1, NULL, "\"b\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"INM list, match last", 1, NULL, "\"x\", W/\"y\" ,\"a\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994,
     EDGE_COND_NOT_MODIFIED},
    {"INM list with empty members", 1, NULL, ",, \"a\",", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_NOT_MODIFIED},
    {"INM comma inside a tag is not a separator", 1, NULL, "\"a,b\"", NULL, NULL, 200, "\"a,b\"", NO_LM, 0, 0, 0, T1994,
     EDGE_COND_NOT_MODIFIED},
    {"INM tag halves do not match", 1, NULL, "\"a,b\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"INM star", 1, NULL, "*", NULL, NULL, 200, NULL, NO_LM, 0, 0, 0, T1994, EDGE_COND_NOT_MODIFIED},
    {"INM star with OWS", 1, NULL, " * ", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_NOT_MODIFIED},
    {"INM star inside a list is malformed", 1, NULL, "*, \"b\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"INM malformed member skipped, later one matches", 1, NULL, "abc, \"a\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994,
     EDGE_COND_NOT_MODIFIED},
    {"INM unquoted tag never matches", 1, NULL, "a", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"INM lowercase w/ is malformed", 1, NULL, "w/\"a\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"INM unterminated", 1, NULL, "\"a", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"INM against no stored ETag", 1, NULL, "\"a\"", NULL, NULL, 200, NULL, NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"INM against malformed stored ETag", 1, NULL, "\"a\"", NULL, NULL, 200, "a", NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"INM match on another method: 412", 0, NULL, "\"a\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994,
     EDGE_COND_PRECONDITION_FAILED},
    {"INM present: IMS ignored (would be 304)", 1, NULL, "\"b\"", D1994, NULL, 200, "\"a\"", HAS_LM, T1994, 0, 0, T1994,
     EDGE_COND_PASS},
    {"INM present: IMS ignored (would be 200)", 1, NULL, "\"a\"", D1994_MINUS1, NULL, 200, "\"a\"", HAS_LM, T1994, 0, 0, T1994,
     EDGE_COND_NOT_MODIFIED},
    /* §13.1.3 If-Modified-Since, and RFC 9111 §4.3.2 for what a cache compares it with */
    {"IMS equal to LM", 1, NULL, NULL, D1994, NULL, 200, NULL, HAS_LM, T1994, 0, 0, T1994 + 99, EDGE_COND_NOT_MODIFIED},
    {"IMS after LM", 1, NULL, NULL, D1994_PLUS1, NULL, 200, NULL, HAS_LM, T1994, 0, 0, T1994, EDGE_COND_NOT_MODIFIED},
    {"IMS before LM", 1, NULL, NULL, D1994_MINUS1, NULL, 200, NULL, HAS_LM, T1994, 0, 0, T1994, EDGE_COND_PASS},
    {"IMS: Date when no LM", 1, NULL, NULL, D1994, NULL, 200, NULL, NO_LM, 0, 1, T1994, T1994 + 99, EDGE_COND_NOT_MODIFIED},
    {"IMS: Date after IMS", 1, NULL, NULL, D1994, NULL, 200, NULL, NO_LM, 0, 1, T1994 + 1, T1994, EDGE_COND_PASS},
    {"IMS: LM preferred over Date", 1, NULL, NULL, D1994, NULL, 200, NULL, HAS_LM, T1994 + 5, 1, T1994 - 5, T1994, EDGE_COND_PASS},
    {"IMS: response_time when neither", 1, NULL, NULL, D1994, NULL, 200, NULL, NO_LM, 0, 0, 0, T1994, EDGE_COND_NOT_MODIFIED},
    {"IMS: response_time after IMS", 1, NULL, NULL, D1994, NULL, 200, NULL, NO_LM, 0, 0, 0, T1994 + 1, EDGE_COND_PASS},
    {"IMS invalid date ignored", 1, NULL, NULL, "yesterday", NULL, 200, NULL, HAS_LM, T1994, 0, 0, T1994, EDGE_COND_NONE},
    {"IMS two dates ignored", 1, NULL, NULL, D1994 ", " D1994, NULL, 200, NULL, HAS_LM, T1994, 0, 0, T1994, EDGE_COND_NONE},
    {"IMS on another method ignored", 0, NULL, NULL, D1994, NULL, 200, NULL, HAS_LM, T1994, 0, 0, T1994, EDGE_COND_NONE},
    {"IMS rfc850 form", 1, NULL, NULL, "Sunday, 06-Nov-94 08:49:37 GMT", NULL, 200, NULL, HAS_LM, T1994, 0, 0, T1994,
     EDGE_COND_NOT_MODIFIED},
    /* §13.1.1 If-Match, strong comparison */
    {"IM match", 1, "\"a\"", NULL, NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"IM no match", 1, "\"b\"", NULL, NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_PRECONDITION_FAILED},
    {"IM weak stored never matches", 1, "\"a\"", NULL, NULL, NULL, 200, "W/\"a\"", NO_LM, 0, 0, 0, T1994,
     EDGE_COND_PRECONDITION_FAILED},
    {"IM weak request tag never matches", 1, "W/\"a\"", NULL, NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994,
     EDGE_COND_PRECONDITION_FAILED},
    {"IM star", 1, "*", NULL, NULL, NULL, 200, NULL, NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"IM list", 1, "\"x\", \"a\"", NULL, NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_PASS},
    {"IM without stored ETag", 1, "\"a\"", NULL, NULL, NULL, 200, NULL, HAS_LM, T1994, 0, 0, T1994, EDGE_COND_PRECONDITION_FAILED},
    {"IM passes, INM then decides", 1, "\"a\"", "\"a\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_NOT_MODIFIED},
    {"IM fails before INM", 1, "\"b\"", "\"a\"", NULL, NULL, 200, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_PRECONDITION_FAILED},
    /* §13.1.4 If-Unmodified-Since */
    {"IUS equal to LM", 1, NULL, NULL, NULL, D1994, 200, NULL, HAS_LM, T1994, 0, 0, T1994, EDGE_COND_PASS},
    {"IUS before LM", 1, NULL, NULL, NULL, D1994_MINUS1, 200, NULL, HAS_LM, T1994, 0, 0, T1994, EDGE_COND_PRECONDITION_FAILED},
    {"IUS without LM cannot be proven", 1, NULL, NULL, NULL, D1994, 200, NULL, NO_LM, 0, 1, T1994, T1994,
     EDGE_COND_PRECONDITION_FAILED},
    {"IUS invalid ignored", 1, NULL, NULL, NULL, "garbage", 200, NULL, HAS_LM, T1994, 0, 0, T1994, EDGE_COND_NONE},
    {"IUS ignored with If-Match", 1, "\"a\"", NULL, NULL, D1994_MINUS1, 200, "\"a\"", HAS_LM, T1994, 0, 0, T1994, EDGE_COND_PASS},
    {"IUS passes, IMS then decides", 1, NULL, NULL, D1994, D1994, 200, NULL, HAS_LM, T1994, 0, 0, T1994, EDGE_COND_NOT_MODIFIED},
    /* §13.2.1: preconditions ignored when the response would not be 2xx */
    {"stored 404 ignores INM", 1, NULL, "*", NULL, NULL, 404, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_NONE},
    {"stored 301 ignores IM", 1, "\"b\"", NULL, NULL, NULL, 301, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_NONE},
    {"stored 204 evaluates", 1, NULL, "\"a\"", NULL, NULL, 204, "\"a\"", NO_LM, 0, 0, 0, T1994, EDGE_COND_NOT_MODIFIED},
    {"empty INM present matches nothing", 1, NULL, "", D1994, NULL, 200, "\"a\"", HAS_LM, T1994, 0, 0, T1994, EDGE_COND_PASS},
};

static void test_cond_evaluate(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(cond_rows) / sizeof(cond_rows[0]); ++i) {
        const struct cond_row_t *row = &cond_rows[i];
        edge_cond_request_t r = {row->get, gvec(0, row->if_match), gvec(1, row->if_none_match), gvec(2, row->ims),
                                 gvec(3, row->ius)};
        /* the stored ETag is not client input; a plain copy will do */
        edge_cond_stored_t s = {
            row->status,       row->etag != NULL ? h2o_iovec_init(row->etag, strlen(row->etag)) : h2o_iovec_init(NULL, 0),
            row->has_lm,       row->lm,
            row->has_date,     row->date,
            row->response_time};
        edge_cond_result_t got = edge_cond_evaluate(&r, &s, NOW2025);
        if (got != row->expect)
            fail_msg("row %zu (%s): got %d, want %d", i, row->name, (int)got, (int)row->expect);
    }
}

static h2o_header_t hdr(const char *name, const char *value)
{
    h2o_header_t h = {NULL, NULL, h2o_iovec_init(value, strlen(value))};
    const h2o_token_t *t = h2o_lookup_token(name, strlen(name));
    if (t != NULL) {
        h.name = (h2o_iovec_t *)&t->buf;
    } else {
        static h2o_iovec_t names[16];
        static size_t next;
        names[next % 16] = h2o_iovec_init(name, strlen(name));
        h.name = &names[next++ % 16];
    }
    return h;
}

static void test_cond_request_from_headers(void **state)
{
    (void)state;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_header_t headers[] = {hdr("if-none-match", "\"x\""), hdr("accept", "*/*"), hdr("if-none-match", "\"a\""),
                              hdr("if-modified-since", D1994), hdr("if-match", "")};
    edge_cond_request_t r;
    edge_cond_request_from_headers(&r, &pool, h2o_iovec_init(H2O_STRLIT("GET")), headers, 5);
    assert_int_equal(r.is_get_or_head, 1);
    assert_true(h2o_memis(r.if_none_match.base, r.if_none_match.len, H2O_STRLIT("\"x\", \"a\"")));
    assert_true(h2o_memis(r.if_modified_since.base, r.if_modified_since.len, H2O_STRLIT(D1994)));
    assert_non_null(r.if_match.base); /* present though empty */
    assert_int_equal(r.if_match.len, 0);
    assert_null(r.if_unmodified_since.base);

    /* the joined list is evaluated as one: the second line matches */
    r.if_match = h2o_iovec_init(NULL, 0);
    edge_cond_stored_t s = {200, h2o_iovec_init(H2O_STRLIT("\"a\"")), 0, 0, 0, 0, T1994};
    assert_int_equal(edge_cond_evaluate(&r, &s, NOW2025), EDGE_COND_NOT_MODIFIED);

    edge_cond_request_from_headers(&r, &pool, h2o_iovec_init(H2O_STRLIT("POST")), headers, 5);
    assert_int_equal(r.is_get_or_head, 0);
    h2o_mem_clear_pool(&pool);
}

/* ---- 304 header fields (RFC 9110 §15.4.5) ---- */

static void test_header_in_304(void **state)
{
    (void)state;
    struct {
        const char *name;
        int expect;
    } rows[] = {
        {"Content-Location", EDGE_304_ALWAYS},
        {"date", EDGE_304_ALWAYS},
        {"ETag", EDGE_304_ALWAYS},
        {"VARY", EDGE_304_ALWAYS},
        {"cache-control", EDGE_304_ALWAYS},
        {"Expires", EDGE_304_ALWAYS},
        {"Last-Modified", EDGE_304_WITHOUT_ETAG},
        {"Content-Length", 0},
        {"Content-Type", 0},
        {"Content-Encoding", 0},
        {"Set-Cookie", 0},
        {"dat", 0},
        {"dates", 0},
        {"", 0},
    };
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        const char *n = guarded(rows[i].name, strlen(rows[i].name));
        if (edge_header_in_304(n, strlen(rows[i].name)) != rows[i].expect)
            fail_msg("row %zu (%s)", i, rows[i].name);
    }
}

/* ---- freshening with a 304 (RFC 9111 §3.2, §4.3.4) ---- */

static void test_not_updated_by_304(void **state)
{
    (void)state;
    const char *kept[] = {
        "Content-Length", "content-encoding", "Content-Range", "Transfer-Encoding", "Connection", "Keep-Alive", "TE",
        "Upgrade",        "Proxy-Connection", "Trailer"};
    const char *updated[] = {"Cache-Control", "ETag", "Expires", "Date", "Last-Modified", "Content-Type", "X-Custom", "Age"};
    for (size_t i = 0; i != sizeof(kept) / sizeof(kept[0]); ++i)
        assert_int_equal(edge_header_not_updated_by_304(kept[i], strlen(kept[i])), 1);
    for (size_t i = 0; i != sizeof(updated) / sizeof(updated[0]); ++i)
        assert_int_equal(edge_header_not_updated_by_304(updated[i], strlen(updated[i])), 0);
}

static int has_header(const h2o_header_t *h, size_t n, const char *name, const char *value)
{
    for (size_t i = 0; i != n; ++i)
        if (h2o_lcstris(h[i].name->base, h[i].name->len, name, strlen(name)) &&
            h2o_memis(h[i].value.base, h[i].value.len, value, strlen(value)))
            return 1;
    return 0;
}

static size_t count_header(const h2o_header_t *h, size_t n, const char *name)
{
    size_t c = 0;
    for (size_t i = 0; i != n; ++i)
        c += h2o_lcstris(h[i].name->base, h[i].name->len, name, strlen(name));
    return c;
}

static void test_freshen_headers(void **state)
{
    (void)state;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    char v304_cc[] = "max-age=600"; /* the 304's buffers are overwritten below: the result must not point into them */
    char x_name[] = "x-extra";
    h2o_iovec_t x_name_iov = h2o_iovec_init(x_name, strlen(x_name));
    h2o_header_t stored[] = {hdr("cache-control", "max-age=60"),
                             hdr("cache-control", "public"),
                             hdr("content-type", "text/html"),
                             hdr("content-length", "123"),
                             hdr("content-encoding", "gzip"),
                             hdr("etag", "\"a\""),
                             hdr("x-keep", "1")};
    h2o_header_t r304[] = {hdr("cache-control", v304_cc),
                           hdr("content-length", "0"),
                           hdr("content-encoding", "br"),
                           hdr("etag", "\"a\""),
                           hdr("connection", "x-hop"),
                           hdr("x-hop", "secret"),
                           {&x_name_iov, NULL, h2o_iovec_init(H2O_STRLIT("new"))}};
    h2o_header_t *out;
    size_t n = edge_freshen_headers(&pool, stored, 7, r304, 7, &out);
    memset(v304_cc, 'Z', strlen(v304_cc));
    memset(x_name, 'Z', strlen(x_name));

    assert_int_equal(count_header(out, n, "cache-control"), 1); /* both stored lines replaced by the 304's one */
    assert_true(has_header(out, n, "cache-control", "max-age=600"));
    assert_true(has_header(out, n, "content-length", "123"));
    assert_int_equal(count_header(out, n, "content-length"), 1);
    assert_true(has_header(out, n, "content-encoding", "gzip"));
    assert_int_equal(count_header(out, n, "content-encoding"), 1);
    assert_true(has_header(out, n, "content-type", "text/html"));
    assert_true(has_header(out, n, "x-keep", "1"));
    assert_int_equal(count_header(out, n, "etag"), 1);
    assert_int_equal(count_header(out, n, "connection"), 0);
    assert_int_equal(count_header(out, n, "x-hop"), 0); /* listed in the 304's Connection */
    assert_true(has_header(out, n, "x-extra", "new"));
    assert_int_equal(n, 7); /* content-type, content-length, content-encoding, x-keep; cache-control, etag, x-extra */
    /* stored order first */
    assert_true(h2o_lcstris(out[0].name->base, out[0].name->len, H2O_STRLIT("content-type")));
    h2o_mem_clear_pool(&pool);
}

/* non-token names differ in case between the stored response and the 304: still the same field */
static void test_freshen_headers_case(void **state)
{
    (void)state;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    h2o_header_t stored[] = {hdr("X-Thing", "old"), hdr("X-Hop", "stored")};
    h2o_header_t r304[] = {hdr("x-THING", "new"), hdr("Connection", "close, X-HOP"), hdr("x-hop", "from-304")};
    h2o_header_t *out;
    size_t n = edge_freshen_headers(&pool, stored, 2, r304, 3, &out);
    assert_int_equal(n, 2);
    assert_true(has_header(out, n, "x-thing", "new"));
    assert_false(has_header(out, n, "x-thing", "old"));
    assert_true(has_header(out, n, "x-hop", "stored")); /* the 304's x-hop is hop-by-hop: not applied */
    h2o_mem_clear_pool(&pool);
}

static void test_304_selects_stored(void **state)
{
    (void)state;
    h2o_iovec_t none = {NULL, 0};
#define V(s) h2o_iovec_init(H2O_STRLIT(s))
    struct {
        const char *name;
        h2o_iovec_t stored_etag;
        int stored_has_lm;
        int64_t stored_lm;
        h2o_iovec_t new_etag;
        int new_has_lm;
        int64_t new_lm;
        int expect;
    } rows[] = {
        {"same strong", V("\"a\""), 0, 0, V("\"a\""), 0, 0, 1},
        {"different strong", V("\"a\""), 0, 0, V("\"b\""), 0, 0, 0},
        {"strong vs stored weak", V("W/\"a\""), 0, 0, V("\"a\""), 0, 0, 0},
        {"weak vs stored weak", V("W/\"a\""), 0, 0, V("W/\"a\""), 0, 0, 1},
        {"weak vs stored strong", V("\"a\""), 0, 0, V("W/\"a\""), 0, 0, 1},
        {"etag but stored none", none, 1, T1994, V("\"a\""), 0, 0, 0},
        {"malformed 304 etag", V("\"a\""), 0, 0, V("a"), 0, 0, 0},
        {"same LM", none, 1, T1994, none, 1, T1994, 1},
        {"different LM", none, 1, T1994, none, 1, T1994 + 1, 0},
        {"LM but stored none", V("\"a\""), 0, 0, none, 1, T1994, 0},
        {"no validator at all", V("\"a\""), 1, T1994, none, 0, 0, 1},
    };
#undef V
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        int got = edge_304_selects_stored(rows[i].stored_etag, rows[i].stored_has_lm, rows[i].stored_lm, rows[i].new_etag,
                                          rows[i].new_has_lm, rows[i].new_lm);
        if (got != rows[i].expect)
            fail_msg("row %zu (%s)", i, rows[i].name);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_etag_parse),         cmocka_unit_test(test_etag_compare),
        cmocka_unit_test(test_cond_evaluate),      cmocka_unit_test(test_cond_request_from_headers),
        cmocka_unit_test(test_header_in_304),      cmocka_unit_test(test_not_updated_by_304),
        cmocka_unit_test(test_freshen_headers),    cmocka_unit_test(test_freshen_headers_case),
        cmocka_unit_test(test_304_selects_stored),
    };
    return cmocka_run_group_tests(tests, setup_guard, teardown_guard);
}
