/*
 * Unit tests of edge/vary.h: tables, one row per behaviour, the RFC section in a comment per group.
 * Field values end right before a PROT_NONE page (picohttpparser test.c style).
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
#include "edge/vary.h"

#define GUARD_SLOTS 4
#include "tests/unit/guard_page.h"

static h2o_header_t hdr(const char *name, const char *value)
{
    static h2o_iovec_t names[32];
    static size_t next;
    names[next % 32] = h2o_iovec_init(name, strlen(name));
    h2o_header_t h = {&names[next++ % 32], NULL, h2o_iovec_init(value, strlen(value))};
    return h;
}

/* ---- Vary parsing (RFC 9110 §12.5.5, RFC 9111 §4.1) ---- */

struct vary_row_t {
    const char *lines[3];
    int expect;
    const char *fields; /* the parsed names, lowercased and joined with ' ' */
};

static const struct vary_row_t vary_rows[] = {
    {{"Accept-Encoding"}, 0, "accept-encoding"},
    {{"accept-encoding, Accept-Language"}, 0, "accept-encoding accept-language"},
    {{"Accept-Language, accept-encoding"}, 0, "accept-encoding accept-language"}, /* sorted */
    {{"Accept-Encoding, ACCEPT-ENCODING"}, 0, "accept-encoding"},                 /* de-duplicated case-insensitively */
    {{"rsc", "Next-Router-State-Tree, Next-Router-Prefetch", "rsc"}, 0, "next-router-prefetch next-router-state-tree rsc"},
    {{" , ,Accept-Encoding ,"}, 0, "accept-encoding"}, /* empty members */
    {{""}, 0, ""},
    {{"*"}, EDGE_VARY_STAR, ""},
    {{"Accept-Encoding, *"}, EDGE_VARY_STAR, ""},
    {{"Accept-Encoding", " * "}, EDGE_VARY_STAR, ""},
    {{"*", "Accept-Encoding"}, EDGE_VARY_STAR, ""}, /* sticky */
    {{"Accept Encoding"}, EDGE_VARY_MALFORMED, ""},
    {{"Accept-Encoding;q=1"}, EDGE_VARY_MALFORMED, ""},
    {{"\"Accept-Encoding\""}, EDGE_VARY_MALFORMED, ""},
    {{"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p"}, 0, "a b c d e f g h i j k l m n o p"}, /* exactly the cap */
    {{"a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q"}, EDGE_VARY_TOO_MANY, ""},
    {{"a,b,c,d,e,f,g,h", "i,j,k,l,m,n,o,p", "A, q"}, EDGE_VARY_TOO_MANY, ""},
    {{"a,b,c,d,e,f,g,h", "i,j,k,l,m,n,o,p", "A, P"}, 0, "a b c d e f g h i j k l m n o p"}, /* duplicates do not count */
};

static void test_vary_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(vary_rows) / sizeof(vary_rows[0]); ++i) {
        const struct vary_row_t *row = &vary_rows[i];
        edge_vary_t vary = {0};
        int ret = 0;
        for (size_t l = 0; l != 3 && row->lines[l] != NULL; ++l)
            ret = edge_vary_parse(&vary, guarded_in(l, row->lines[l], strlen(row->lines[l])), strlen(row->lines[l]));
        if (ret != row->expect)
            fail_msg("row %zu (%s): got %d", i, row->lines[0], ret);
        assert_int_equal(vary.err, row->expect);
        if (ret != 0)
            continue;
        char joined[256];
        size_t n = 0;
        for (size_t f = 0; f != vary.num_fields; ++f) {
            if (f != 0)
                joined[n++] = ' ';
            for (size_t c = 0; c != vary.fields[f].len; ++c)
                joined[n++] = h2o_tolower(vary.fields[f].base[c]);
        }
        joined[n] = '\0';
        if (strcmp(joined, row->fields) != 0)
            fail_msg("row %zu: fields \"%s\", want \"%s\"", i, joined, row->fields);
    }
}

static void test_vary_from_headers(void **state)
{
    (void)state;
    h2o_header_t headers[] = {hdr("Content-Type", "text/html"), hdr("Vary", "RSC"), hdr("vary", "Accept-Encoding")};
    edge_vary_t vary;
    memset(&vary, 0xff, sizeof(vary)); /* from_headers zeroes it */
    assert_int_equal(edge_vary_from_headers(&vary, headers, 3), 0);
    assert_int_equal(vary.num_fields, 2);
    assert_true(h2o_memis(vary.fields[0].base, vary.fields[0].len, H2O_STRLIT("Accept-Encoding")));
    assert_true(h2o_memis(vary.fields[1].base, vary.fields[1].len, H2O_STRLIT("RSC")));
    assert_int_equal(edge_vary_from_headers(&vary, headers, 1), 0);
    assert_int_equal(vary.num_fields, 0);
    assert_string_equal(edge_vary_strerror(EDGE_VARY_STAR), "Vary: *");
    assert_string_equal(edge_vary_strerror(0), "ok");
}

/* ---- Accept-Encoding folding (RFC 9110 §12.5.3, §12.4.2 qvalues, §8.4.1.3 x-gzip) ---- */

struct ae_row_t {
    const char *in; /* NULL: field absent */
    const char *expect;
};

static const struct ae_row_t ae_rows[] = {
    {"gzip, deflate, br", "br,gzip"},
    {"br, gzip", "br,gzip"},
    {"gzip", "gzip"},
    {"br", "br"},
    {"deflate", ""},
    {"", ""},
    {NULL, ""},
    {"identity", ""},
    {"GZIP, BR", "br,gzip"},
    {"x-gzip", "gzip"},
    {"gzip;q=0", ""},
    {"gzip;q=0.000, br", "br"},
    {"gzip; q=0.5, br;q=1.0", "br,gzip"},
    {"gzip ; Q=0.001", "gzip"},
    {"gzip;q=1.000", "gzip"},
    {"gzip;q=1.001", ""},  /* malformed weight: not counted */
    {"gzip;q=0.0001", ""}, /* too many digits */
    {"gzip;q=2", ""},
    {"gzip;q=", ""},
    {"gzip;q", ""},
    {"gzip;level=9", "gzip"}, /* unknown parameter ignored */
    {"*", "br,gzip"},
    {"*;q=0", ""},
    {"*, br;q=0", "gzip"},
    {"gzip;q=0, *", "br"},
    {"gzip, gzip;q=0", "gzip"}, /* first entry wins */
    {",, gzip ,", "gzip"},
    {"gzip deflate", ""},               /* not a list of codings */
    {"br;q=0.1,gzip;q=0.9", "br,gzip"}, /* sorted, weights beyond 0 do not order the key */
};

static void test_fold_accept_encoding(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(ae_rows) / sizeof(ae_rows[0]); ++i) {
        char buf[EDGE_VARY_AE_BUFSZ];
        const char *in = ae_rows[i].in != NULL ? guarded(ae_rows[i].in, strlen(ae_rows[i].in)) : NULL;
        size_t n = edge_vary_fold_accept_encoding(in, in != NULL ? strlen(ae_rows[i].in) : 0, buf);
        if (strcmp(buf, ae_rows[i].expect) != 0 || n != strlen(buf))
            fail_msg("row %zu (%s): got \"%s\"", i, ae_rows[i].in != NULL ? ae_rows[i].in : "(absent)", buf);
    }
}

/* ---- value normalisation ---- */

struct norm_row_t {
    const char *lines[3];
    const char *expect;
};

static const struct norm_row_t norm_rows[] = {
    {{"en"}, "en"},
    {{"  en  "}, "en"},
    {{"en , fr"}, "en,fr"},
    {{"en,\t fr"}, "en,fr"},
    {{"en", "fr"}, "en,fr"},
    {{"en ", " fr, de"}, "en,fr,de"},
    {{"a b"}, "a b"}, /* inner whitespace away from commas is kept */
    {{"a  b , c"}, "a  b,c"},
    {{"\"a , b\" , c"}, "\"a , b\",c"}, /* quoted-strings untouched */
    {{"\"a\\\" , b\" , c"}, "\"a\\\" , b\",c"},
    {{"", "en"}, "en"}, /* empty lines add no member */
    {{"", ""}, ""},
    {{"Mozilla/5.0 (X11; Linux x86_64)"}, "Mozilla/5.0 (X11; Linux x86_64)"},
};

static void test_normalize(void **state)
{
    (void)state;
    for (size_t i = 0; i != sizeof(norm_rows) / sizeof(norm_rows[0]); ++i) {
        h2o_iovec_t lines[3];
        size_t num = 0, cap = 0;
        for (; num != 3 && norm_rows[i].lines[num] != NULL; ++num) {
            lines[num] = h2o_iovec_init(guarded_in(num, norm_rows[i].lines[num], strlen(norm_rows[i].lines[num])),
                                        strlen(norm_rows[i].lines[num]));
            cap += lines[num].len + 1;
        }
        /* the output buffer ends at a guard page too: writing past the documented bound crashes */
        char *dst = guard.mem + guard.page * (2 * 3 + 1) - cap;
        size_t n = edge_vary_normalize(lines, num, dst);
        assert_true(n <= cap);
        if (!h2o_memis(dst, n, norm_rows[i].expect, strlen(norm_rows[i].expect)))
            fail_msg("row %zu: got \"%.*s\"", i, (int)n, dst);
    }
}

/* ---- secondary keys ---- */

static const char *key_for(h2o_mem_pool_t *pool, const char *vary_value, const h2o_header_t *headers, size_t n, int *ret)
{
    edge_vary_t vary = {0};
    edge_vary_parse(&vary, vary_value, strlen(vary_value));
    h2o_iovec_t key = {NULL, 0};
    *ret = edge_vary_key(pool, &vary, headers, n, &key);
    if (*ret != 0)
        return NULL;
    assert_int_equal(strlen(key.base), key.len);
    return key.base;
}

static void test_vary_key(void **state)
{
    (void)state;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    int ret;

    h2o_header_t req1[] = {hdr("Accept-Encoding", "gzip, deflate, br"), hdr("Accept-Language", "en , fr"), hdr("Cookie", "x=1")};
    assert_string_equal(key_for(&pool, "Accept-Language, Accept-Encoding", req1, 3, &ret),
                        "accept-encoding=7:br,gzip;accept-language=5:en,fr;");

    /* same meaning, other spelling and line split: same key */
    h2o_header_t req2[] = {hdr("accept-language", "en"), hdr("ACCEPT-ENCODING", "br;q=1, gzip"), hdr("Accept-Language", "fr")};
    assert_string_equal(key_for(&pool, "accept-encoding,accept-language", req2, 3, &ret),
                        "accept-encoding=7:br,gzip;accept-language=5:en,fr;");

    /* absent differs from empty; Accept-Encoding absent folds to "" */
    h2o_header_t req3[] = {hdr("RSC", "")};
    assert_string_equal(key_for(&pool, "RSC, Next-Router-State-Tree, Accept-Encoding", req3, 1, &ret),
                        "accept-encoding=0:;next-router-state-tree;rsc=0:;");
    assert_string_equal(key_for(&pool, "RSC", NULL, 0, &ret), "rsc;");

    /* Accept-Encoding over several lines folds as one list */
    h2o_header_t req4[] = {hdr("Accept-Encoding", "gzip"), hdr("Accept-Encoding", "br")};
    assert_string_equal(key_for(&pool, "Accept-Encoding", req4, 2, &ret), "accept-encoding=7:br,gzip;");

    /* values holding the separators cannot forge another field */
    h2o_header_t req5[] = {hdr("A", "1;b=1:x")};
    h2o_header_t req6[] = {hdr("A", "1"), hdr("B", "x")};
    const char *k5 = key_for(&pool, "A, B", req5, 1, &ret), *k6 = key_for(&pool, "A, B", req6, 2, &ret);
    assert_string_equal(k5, "a=7:1;b=1:x;b;");
    assert_string_not_equal(k5, k6);

    /* no Vary: empty key */
    assert_string_equal(key_for(&pool, "", req1, 3, &ret), "");

    /* refusals */
    assert_null(key_for(&pool, "*", req1, 3, &ret));
    assert_int_equal(ret, EDGE_VARY_STAR);
    assert_null(key_for(&pool, "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q", req1, 3, &ret));
    assert_int_equal(ret, EDGE_VARY_TOO_MANY);

    /* a long value */
    static char big[5000];
    memset(big, 'v', sizeof(big) - 1);
    h2o_header_t req7[] = {hdr("X-Big", big), hdr("x-big", big)};
    const char *k7 = key_for(&pool, "X-Big", req7, 2, &ret);
    assert_non_null(k7);
    assert_int_equal(strlen(k7), strlen("x-big=9999:;") + 9999);
    h2o_mem_clear_pool(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vary_parse), cmocka_unit_test(test_vary_from_headers), cmocka_unit_test(test_fold_accept_encoding),
        cmocka_unit_test(test_normalize),  cmocka_unit_test(test_vary_key),
    };
    return cmocka_run_group_tests(tests, setup_guard, teardown_guard);
}
