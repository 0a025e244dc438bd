/*
 * Unit tests of edge/cache_policy.h: tables, one row per behaviour. Parser inputs are copied so that their
 * last byte touches a PROT_NONE page (picohttpparser test.c style). Time is always a parameter.
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
#include "edge/cache_policy.h"

#define CAP EDGE_DELTA_SECONDS_MAX
#define T1994 ((int64_t)784111777)    /* Sun, 06 Nov 1994 08:49:37 GMT */
#define NOW2025 ((int64_t)1748736000) /* 2025-06-01T00:00:00Z */

struct guard_t {
    char *mem;
    size_t page;
};

static struct guard_t guard;

static int setup_guard(void **state)
{
    guard.page = (size_t)sysconf(_SC_PAGESIZE);
    guard.mem = mmap(NULL, guard.page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard.mem == MAP_FAILED || mprotect(guard.mem + guard.page, guard.page, PROT_NONE) != 0)
        return -1;
    return 0;
}

static int teardown_guard(void **state)
{
    munmap(guard.mem, guard.page * 2);
    return 0;
}

/* Copies s so that it ends right before the guard page; no NUL follows it. Valid until the next call. */
static const char *guarded(const char *s, size_t len)
{
    assert_true(len < guard.page);
    char *dst = guard.mem + guard.page - len;
    memcpy(dst, s, len);
    return dst;
}

/* ---- Cache-Control ---- */

struct cc_row_t {
    const char *name;
    const char *lines[3]; /* each parsed by one edge_cc_parse call, into the same struct */
    edge_cc_t expect;
};

static const struct cc_row_t cc_rows[] = {
    {"max-age", {"max-age=60"}, {.has_max_age = 1, .max_age = 60}},
    {"names case-insensitive", {"MAX-AGE=60, Public, No-Store"}, {.has_max_age = 1, .max_age = 60, .public_ = 1, .no_store = 1}},
    {"every boolean",
     {"no-store, no-cache, private, public, must-revalidate, proxy-revalidate, immutable, only-if-cached, no-transform, "
      "must-understand"},
     {.no_store = 1,
      .no_cache = 1,
      .private_ = 1,
      .public_ = 1,
      .must_revalidate = 1,
      .proxy_revalidate = 1,
      .immutable = 1,
      .only_if_cached = 1,
      .no_transform = 1,
      .must_understand = 1}},
    {"both ages", {"max-age=60, s-maxage=120"}, {.has_max_age = 1, .max_age = 60, .has_s_maxage = 1, .s_maxage = 120}},
    {"quoted delta-seconds", {"max-age=\"60\""}, {.has_max_age = 1, .max_age = 60}},
    {"leading zeros", {"max-age=0060"}, {.has_max_age = 1, .max_age = 60}},
    {"quoted comma does not split",
     {"no-cache=\"Set-Cookie, max-age=1\", max-age=5"},
     {.no_cache = 1, .no_cache_has_fields = 1, .has_max_age = 1, .max_age = 5}},
    {"quoted escape",
     {"no-cache=\"a\\\"b, c\", max-age=7"},
     {.no_cache = 1, .no_cache_has_fields = 1, .has_max_age = 1, .max_age = 7}},
    {"private field-named", {"private=\"Set-Cookie\""}, {.private_ = 1, .private_has_fields = 1}},
    {"private field-named token form", {"private=Set-Cookie"}, {.private_ = 1, .private_has_fields = 1}},
    {"no-cache plain has no fields", {"no-cache"}, {.no_cache = 1}},
    {"duplicate max-age: first wins", {"max-age=60, max-age=10"}, {.has_max_age = 1, .max_age = 60}},
    {"duplicate max-age across lines", {"max-age=60", "max-age=10"}, {.has_max_age = 1, .max_age = 60}},
    {"duplicate s-maxage: first wins", {"s-maxage=5, s-maxage=50"}, {.has_s_maxage = 1, .s_maxage = 5}},
    {"invalid first max-age wins as 0", {"max-age=x, max-age=60"}, {.has_max_age = 1, .max_age = 0}},
    {"booleans OR across lines", {"public", "no-store", "public"}, {.public_ = 1, .no_store = 1}},
    {"max-age letters -> 0", {"max-age=abc"}, {.has_max_age = 1, .max_age = 0}},
    {"max-age negative -> 0", {"max-age=-1"}, {.has_max_age = 1, .max_age = 0}},
    {"max-age fraction -> 0", {"max-age=1.5"}, {.has_max_age = 1, .max_age = 0}},
    {"max-age empty -> 0", {"max-age="}, {.has_max_age = 1, .max_age = 0}},
    {"max-age bare -> 0", {"max-age"}, {.has_max_age = 1, .max_age = 0}},
    {"max-age empty quotes -> 0", {"max-age=\"\""}, {.has_max_age = 1, .max_age = 0}},
    {"s-maxage invalid -> 0", {"s-maxage=1e3"}, {.has_s_maxage = 1, .s_maxage = 0}},
    {"max-age trailing garbage -> 0", {"max-age=60 30, public"}, {.has_max_age = 1, .max_age = 0, .public_ = 1}},
    {"max-age semicolon -> 0", {"max-age=60;x"}, {.has_max_age = 1, .max_age = 0}},
    {"max-age unterminated quote -> 0", {"max-age=\"60"}, {.has_max_age = 1, .max_age = 0}},
    {"unterminated quote swallows the rest", {"no-cache=\"abc, max-age=5"}, {.no_cache = 1, .no_cache_has_fields = 1}},
    {"swr invalid is absent", {"stale-while-revalidate=x"}, {0}},
    {"swr invalid then valid",
     {"stale-while-revalidate=x, stale-while-revalidate=30"},
     {.has_swr = 1, .stale_while_revalidate = 30}},
    {"swr first valid wins", {"stale-while-revalidate=30, stale-while-revalidate=5"}, {.has_swr = 1, .stale_while_revalidate = 30}},
    {"bare swr is 0", {"stale-while-revalidate"}, {.has_swr = 1, .stale_while_revalidate = 0}},
    {"bare swr then valued: bare wins", {"stale-while-revalidate, stale-while-revalidate=9"}, {.has_swr = 1}},
    {"sie", {"stale-if-error=300"}, {.has_sie = 1, .stale_if_error = 300}},
    {"sie invalid is absent", {"stale-if-error=abc"}, {0}},
    {"sie bare is absent", {"stale-if-error"}, {0}},
    {"max-stale bare is unlimited", {"max-stale"}, {.has_max_stale = 1, .max_stale = INT64_MAX}},
    {"max-stale valued", {"max-stale=10"}, {.has_max_stale = 1, .max_stale = 10}},
    {"max-stale invalid is absent", {"max-stale=-3"}, {0}},
    {"min-fresh", {"min-fresh=5"}, {.has_min_fresh = 1, .min_fresh = 5}},
    {"min-fresh invalid is absent", {"min-fresh=five"}, {0}},
    {"cap: 2^31 - 1 kept", {"max-age=2147483647"}, {.has_max_age = 1, .max_age = 2147483647}},
    {"cap: 2^31 kept", {"max-age=2147483648"}, {.has_max_age = 1, .max_age = CAP}},
    {"cap: 2^31 + 1 capped", {"max-age=2147483649"}, {.has_max_age = 1, .max_age = CAP}},
    {"cap: 2^64 capped (no wrap)", {"max-age=18446744073709551616"}, {.has_max_age = 1, .max_age = CAP}},
    {"cap: huge capped", {"s-maxage=99999999999999999999999999999"}, {.has_s_maxage = 1, .s_maxage = CAP}},
    {"cap: swr capped", {"stale-while-revalidate=4294967296"}, {.has_swr = 1, .stale_while_revalidate = CAP}},
    {"spaces around elements", {"  max-age=60  ,\tpublic\t "}, {.has_max_age = 1, .max_age = 60, .public_ = 1}},
    {"spaces around =", {"max-age = 60"}, {.has_max_age = 1, .max_age = 60}},
    {"empty elements", {",,, max-age=60 ,, ,"}, {.has_max_age = 1, .max_age = 60}},
    {"empty value", {""}, {0}},
    {"only commas and spaces", {" , ,"}, {0}},
    {"unknown directives ignored", {"foo, bar=\"a,max-age=1\", baz=2, max-age=3"}, {.has_max_age = 1, .max_age = 3}},
    {"garbage element skipped", {"=60, \"junk,x\", max-age=2"}, {.has_max_age = 1, .max_age = 2}},
    {"quoted comma inside garbage hides a directive", {"\"a, max-age=1\", max-age=2"}, {.has_max_age = 1, .max_age = 2}},
    {"quoted comma after a directive hides one", {"foo \"a,no-store\", max-age=2"}, {.has_max_age = 1, .max_age = 2}},
    {"restrictive boolean with garbage still counts", {"no-store junk"}, {.no_store = 1}},
    {"restrictive boolean with argument counts", {"no-store=1, must-revalidate=\"x\""}, {.no_store = 1, .must_revalidate = 1}},
    {"permissive boolean with argument ignored", {"public=1, immutable=yes"}, {0}},
    {"permissive boolean with garbage ignored", {"public junk"}, {0}},
    {"prefix of a name is not the name", {"max-ag=5, no-stor, publics"}, {0}},
};

static void assert_cc_equal(const edge_cc_t *got, const edge_cc_t *want)
{
#define F(x) assert_int_equal(got->x, want->x)
    F(no_store);
    F(no_cache);
    F(private_);
    F(public_);
    F(must_revalidate);
    F(proxy_revalidate);
    F(immutable);
    F(only_if_cached);
    F(no_transform);
    F(must_understand);
    F(has_max_age);
    F(has_s_maxage);
    F(has_swr);
    F(has_sie);
    F(has_max_stale);
    F(has_min_fresh);
    F(no_cache_has_fields);
    F(private_has_fields);
    F(max_age);
    F(s_maxage);
    F(stale_while_revalidate);
    F(stale_if_error);
    F(max_stale);
    F(min_fresh);
#undef F
}

static void test_cc_table(void **state)
{
    for (size_t i = 0; i != sizeof(cc_rows) / sizeof(cc_rows[0]); ++i) {
        const struct cc_row_t *r = cc_rows + i;
        edge_cc_t cc;
        memset(&cc, 0, sizeof(cc));
        print_message("row: %s\n", r->name);
        for (size_t l = 0; l != 3 && r->lines[l] != NULL; ++l) {
            size_t len = strlen(r->lines[l]);
            edge_cc_parse(&cc, guarded(r->lines[l], len), len);
        }
        assert_cc_equal(&cc, &r->expect);
    }
}

/* the parser reads exactly len bytes: what follows (here a max-age) is not seen */
static void test_cc_length_bound(void **state)
{
    const char *s = "no-store, max-age=60";
    edge_cc_t cc;
    memset(&cc, 0, sizeof(cc));
    edge_cc_parse(&cc, s, strlen("no-store"));
    assert_int_equal(cc.no_store, 1);
    assert_int_equal(cc.has_max_age, 0);
    /* truncated inside a number: the digits seen are the value */
    memset(&cc, 0, sizeof(cc));
    edge_cc_parse(&cc, s + strlen("no-store, "), strlen("max-age=6"));
    assert_int_equal(cc.has_max_age, 1);
    assert_int_equal(cc.max_age, 6);
}

/* ---- HTTP dates ---- */

struct date_row_t {
    const char *name;
    const char *s;
    size_t len; /* 0: strlen */
    int ret;
    int64_t t;
};

static const struct date_row_t date_rows[] = {
    {"IMF-fixdate", "Sun, 06 Nov 1994 08:49:37 GMT", 0, 0, T1994},
    {"RFC 850", "Sunday, 06-Nov-94 08:49:37 GMT", 0, 0, T1994},
    {"asctime", "Sun Nov  6 08:49:37 1994", 0, 0, T1994},
    {"asctime two-digit day", "Sun Nov 16 08:49:37 1994", 0, 0, T1994 + 10 * 86400},
    {"asctime single space before a 1-digit day is not an HTTP-date", "Sun Nov 6 08:49:37 1994", 0, -1, 0},
    {"IMF-fixdate with double spaces", "Thu, 18  Aug  2050 02:01:18 GMT", 0, -1, 0},
    {"IMF-fixdate with a 1-digit hour", "Thu, 18 Aug 2050 2:01:18 GMT", 0, -1, 0},
    {"IMF-fixdate with dashes", "Thu, 18-Aug-2050 02:01:18 GMT", 0, -1, 0},
    {"IMF-fixdate with periods in the time", "Thu, 18 Aug 2050 02.01.18 GMT", 0, -1, 0},
    {"RFC 850 with a short weekday", "Sun, 06-Nov-94 08:49:37 GMT", 0, -1, 0},
    {"epoch", "Thu, 01 Jan 1970 00:00:00 GMT", 0, 0, 0},
    {"leap day", "Tue, 29 Feb 2000 12:00:00 GMT", 0, 0, 951825600},
    {"last 4-digit second", "Fri, 31 Dec 9999 23:59:59 GMT", 0, 0, 253402300799},
    {"leap second rolls over", "Sat, 31 Dec 2016 23:59:60 GMT", 0, 0, 1483228800},
    {"names case-insensitive", "sun, 06 NOV 1994 08:49:37 GMT", 0, 0, T1994},
    {"RFC 850 year 45 years ahead is future", "Tuesday, 01-Jan-70 00:00:00 GMT", 0, 0, 3155760000},
    {"RFC 850 year 55 years ahead is past", "Tuesday, 01-Jan-80 00:00:00 GMT", 0, 0, 315532800},
    {"empty", "", 0, -1, 0},
    {"zero", "0", 0, -1, 0},
    {"minus one", "-1", 0, -1, 0},
    {"no GMT", "Sun, 06 Nov 1994 08:49:37", 0, -1, 0},
    {"UTC instead of GMT", "Sun, 06 Nov 1994 08:49:37 UTC", 0, -1, 0},
    {"trailing junk", "Sun, 06 Nov 1994 08:49:37 GMT junk", 0, -1, 0},
    {"31 Feb", "Thu, 31 Feb 1994 08:49:37 GMT", 0, -1, 0},
    {"29 Feb in a common year", "Tue, 29 Feb 1994 08:49:37 GMT", 0, -1, 0},
    {"bad month", "Sun, 06 Foo 1994 08:49:37 GMT", 0, -1, 0},
    {"hour 25", "Sun, 06 Nov 1994 25:49:37 GMT", 0, -1, 0},
    {"minute 60", "Sun, 06 Nov 1994 08:60:37 GMT", 0, -1, 0},
    {"second 61", "Sun, 06 Nov 1994 08:49:61 GMT", 0, -1, 0},
    {"day 0", "Sun, 00 Nov 1994 08:49:37 GMT", 0, -1, 0},
    {"NUL inside", "Sun, 06 Nov 1994\0 08:49:37 GMT", 30, -1, 0},
    {"too long", "Sun, 06 Nov 1994 08:49:37 GMT                                   ", 0, -1, 0},
    {"truncated", "Sun, 06 Nov 1994 08:49:37 GM", 0, -1, 0},
};

static void test_date_table(void **state)
{
    for (size_t i = 0; i != sizeof(date_rows) / sizeof(date_rows[0]); ++i) {
        const struct date_row_t *r = date_rows + i;
        size_t len = r->len != 0 ? r->len : strlen(r->s);
        int64_t t = -12345;
        print_message("row: %s\n", r->name);
        int ret = edge_http_date_parse_at(guarded(r->s, len), len, NOW2025, &t);
        assert_int_equal(ret, r->ret);
        assert_int_equal(t, r->ret == 0 ? r->t : -12345);
    }
    /* the RFC 850 rule depends on the reference time: from 1995, "70" is 1970 */
    int64_t t;
    assert_int_equal(edge_http_date_parse_at(H2O_STRLIT("Thursday, 01-Jan-70 00:00:00 GMT"), 795000000, &t), 0);
    assert_int_equal(t, 0);
    /* the wrapper uses the wall clock only for that rule */
    assert_int_equal(edge_http_date_parse(H2O_STRLIT("Sun, 06 Nov 1994 08:49:37 GMT"), &t), 0);
    assert_int_equal(t, T1994);
}

static void test_date_format(void **state)
{
    static const struct {
        int64_t t;
        const char *s;
    } rows[] = {
        {T1994, "Sun, 06 Nov 1994 08:49:37 GMT"},     {0, "Thu, 01 Jan 1970 00:00:00 GMT"},
        {-5, "Thu, 01 Jan 1970 00:00:00 GMT"}, /* clamped */
        {951825600, "Tue, 29 Feb 2000 12:00:00 GMT"}, {253402300799, "Fri, 31 Dec 9999 23:59:59 GMT"},
        {INT64_MAX, "Fri, 31 Dec 9999 23:59:59 GMT"}, /* clamped */
    };
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        char buf[30];
        memset(buf, 'x', sizeof(buf));
        edge_http_date_format(rows[i].t, buf);
        assert_string_equal(buf, rows[i].s);
        /* round trip through the parser */
        int64_t back;
        assert_int_equal(edge_http_date_parse_at(buf, 29, NOW2025, &back), 0);
        assert_int_equal(back, rows[i].t < 0 ? 0 : rows[i].t > 253402300799 ? 253402300799 : rows[i].t);
    }
}

/* ---- response facts and storing rules ---- */

#define MAX_HDRS 6

struct hdr_t {
    const char *name, *value;
};

static size_t make_headers(h2o_header_t *out, h2o_iovec_t *names, const struct hdr_t *in)
{
    size_t n = 0;
    for (; n != MAX_HDRS && in[n].name != NULL; ++n) {
        names[n] = h2o_iovec_init(in[n].name, strlen(in[n].name));
        out[n].name = &names[n];
        out[n].orig_name = in[n].name;
        out[n].value = h2o_iovec_init(in[n].value, strlen(in[n].value));
    }
    return n;
}

struct store_row_t {
    const char *name;
    int status;
    struct hdr_t headers[MAX_HDRS];
    int auth;
    int64_t content_length;
    edge_verdict_t verdict;
};

#define MAXSZ 1000

static const struct store_row_t store_rows[] = {
    {"plain 200 max-age", 200, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"203", 203, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"204", 204, {{"cache-control", "max-age=60"}}, 0, 0, EDGE_VERDICT_STORE},
    {"300", 300, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"301", 301, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"308", 308, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"404", 404, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"410", 410, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"206 not stored", 206, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STATUS},
    {"302 with explicit freshness stored (RFC 9111 §3)", 302, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"302 without explicit freshness not stored", 302, {{"last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"}}, 0, 10,
     EDGE_VERDICT_STATUS},
    {"304 not stored", 304, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STATUS},
    {"500 with explicit freshness stored", 500, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"500 with public only not stored", 500, {{"cache-control", "public"}}, 0, 10, EDGE_VERDICT_NO_LIFETIME},
    {"500 without freshness not stored", 500, {{"x", "y"}}, 0, 10, EDGE_VERDICT_STATUS},
    {"599 with s-maxage stored", 599, {{"cache-control", "s-maxage=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"599 with must-understand is not understood (RFC 9111 §5.2.2.3)", 599,
     {{"cache-control", "max-age=3600, no-store, must-understand"}}, 0, 10, EDGE_VERDICT_NO_STORE},
    {"200 with must-understand and no-store is stored", 200,
     {{"cache-control", "max-age=3600, no-store, must-understand"}}, 0, 10, EDGE_VERDICT_STORE},
    {"600 not stored", 600, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STATUS},
    {"199 not stored", 199, {{"cache-control", "max-age=60"}}, 0, 10, EDGE_VERDICT_STATUS},
    {"status before no-store", 500, {{"cache-control", "no-store"}}, 0, 10, EDGE_VERDICT_STATUS},
    {"no-store", 200, {{"cache-control", "no-store, max-age=60"}}, 0, 10, EDGE_VERDICT_NO_STORE},
    {"no-store on a second line",
     200,
     {{"cache-control", "max-age=60"}, {"Cache-Control", "no-store"}},
     0,
     10,
     EDGE_VERDICT_NO_STORE},
    {"header name case-insensitive", 200, {{"CACHE-CONTROL", "no-store"}}, 0, 10, EDGE_VERDICT_NO_STORE},
    {"no-store before private", 200, {{"cache-control", "private, no-store"}}, 0, 10, EDGE_VERDICT_NO_STORE},
    {"must-understand overrides no-store",
     200,
     {{"cache-control", "no-store, must-understand, max-age=60"}},
     0,
     10,
     EDGE_VERDICT_STORE},
    {"must-understand does not help unknown status",
     206,
     {{"cache-control", "no-store, must-understand, max-age=60"}},
     0,
     10,
     EDGE_VERDICT_STATUS},
    {"private", 200, {{"cache-control", "private, max-age=60"}}, 0, 10, EDGE_VERDICT_PRIVATE},
    {"private field-named", 200, {{"cache-control", "private=\"Set-Cookie\", max-age=60"}}, 0, 10, EDGE_VERDICT_PRIVATE},
    {"private before auth", 200, {{"cache-control", "private, max-age=60"}}, 1, 10, EDGE_VERDICT_PRIVATE},
    {"auth without permission", 200, {{"cache-control", "max-age=60"}}, 1, 10, EDGE_VERDICT_AUTH},
    {"auth with public", 200, {{"cache-control", "public, max-age=60"}}, 1, 10, EDGE_VERDICT_STORE},
    {"auth with s-maxage", 200, {{"cache-control", "s-maxage=60"}}, 1, 10, EDGE_VERDICT_STORE},
    {"auth with must-revalidate", 200, {{"cache-control", "must-revalidate, max-age=60"}}, 1, 10, EDGE_VERDICT_STORE},
    {"auth before set-cookie", 200, {{"cache-control", "max-age=60"}, {"set-cookie", "a=b"}}, 1, 10, EDGE_VERDICT_AUTH},
    {"set-cookie", 200, {{"cache-control", "public, max-age=60"}, {"Set-Cookie", "a=b"}}, 0, 10, EDGE_VERDICT_SET_COOKIE},
    {"set-cookie before vary",
     200,
     {{"cache-control", "max-age=60"}, {"set-cookie", "a=b"}, {"vary", "*"}},
     0,
     10,
     EDGE_VERDICT_SET_COOKIE},
    {"vary star", 200, {{"cache-control", "max-age=60"}, {"vary", "*"}}, 0, 10, EDGE_VERDICT_VARY},
    {"vary other field", 200, {{"cache-control", "max-age=60"}, {"vary", "Cookie"}}, 0, 10, EDGE_VERDICT_VARY},
    {"vary accept-encoding only", 200, {{"cache-control", "max-age=60"}, {"Vary", "Accept-Encoding"}}, 0, 10, EDGE_VERDICT_STORE},
    {"vary accept-encoding and another",
     200,
     {{"cache-control", "max-age=60"}, {"vary", "accept-encoding, User-Agent"}},
     0,
     10,
     EDGE_VERDICT_VARY},
    {"vary on two lines",
     200,
     {{"cache-control", "max-age=60"}, {"vary", "accept-encoding"}, {"vary", "rsc"}},
     0,
     10,
     EDGE_VERDICT_VARY},
    {"vary empty", 200, {{"cache-control", "max-age=60"}, {"vary", ""}}, 0, 10, EDGE_VERDICT_STORE},
    {"vary before encoded",
     200,
     {{"cache-control", "max-age=60"}, {"vary", "cookie"}, {"content-encoding", "gzip"}},
     0,
     10,
     EDGE_VERDICT_VARY},
    {"encoded", 200, {{"cache-control", "max-age=60"}, {"content-encoding", "gzip"}}, 0, 10, EDGE_VERDICT_ENCODED},
    {"identity is not encoded",
     200,
     {{"cache-control", "max-age=60"}, {"content-encoding", "Identity"}},
     0,
     10,
     EDGE_VERDICT_STORE},
    {"encoded before too-large",
     200,
     {{"cache-control", "max-age=60"}, {"content-encoding", "br"}},
     0,
     MAXSZ + 1,
     EDGE_VERDICT_ENCODED},
    {"too large", 200, {{"cache-control", "max-age=60"}}, 0, MAXSZ + 1, EDGE_VERDICT_TOO_LARGE},
    {"exactly max size", 200, {{"cache-control", "max-age=60"}}, 0, MAXSZ, EDGE_VERDICT_STORE},
    {"unknown length", 200, {{"cache-control", "max-age=60"}}, 0, -1, EDGE_VERDICT_STORE},
    {"too-large before no-lifetime", 200, {{"date", "Sun, 06 Nov 1994 08:49:37 GMT"}}, 0, MAXSZ + 1, EDGE_VERDICT_TOO_LARGE},
    {"no lifetime",
     200,
     {{"date", "Sun, 06 Nov 1994 08:49:37 GMT"}, {"last-modified", "Sun, 06 Nov 1994 08:49:37 GMT"}},
     0,
     10,
     EDGE_VERDICT_NO_LIFETIME},
    {"no headers at all", 200, {{NULL}}, 0, 10, EDGE_VERDICT_NO_LIFETIME},
    {"expires gives a lifetime", 200, {{"expires", "Sun, 06 Nov 1994 08:49:37 GMT"}}, 0, 10, EDGE_VERDICT_STORE},
    {"invalid expires still a (zero) lifetime", 200, {{"expires", "0"}}, 0, 10, EDGE_VERDICT_STORE},
    {"s-maxage alone", 200, {{"cache-control", "s-maxage=0"}}, 0, 10, EDGE_VERDICT_STORE},
    {"no-cache does not prevent storing", 200, {{"cache-control", "no-cache, max-age=60"}}, 0, 10, EDGE_VERDICT_STORE},
    {"unknown headers ignored",
     200,
     {{"x-foo", "no-store"}, {"cache-control", "max-age=60"}, {"surrogate-control", "no-store"}},
     0,
     10,
     EDGE_VERDICT_STORE},
};

static void test_storable_table(void **state)
{
    for (size_t i = 0; i != sizeof(store_rows) / sizeof(store_rows[0]); ++i) {
        const struct store_row_t *r = store_rows + i;
        h2o_header_t headers[MAX_HDRS];
        h2o_iovec_t names[MAX_HDRS];
        size_t n = make_headers(headers, names, r->headers);
        edge_response_facts_t f;
        print_message("row: %s\n", r->name);
        edge_response_facts_from_headers(&f, r->status, headers, n, r->content_length);
        assert_int_equal(f.status, r->status);
        assert_int_equal(f.content_length, r->content_length);
        edge_verdict_t v = edge_policy_storable(&f, r->auth, MAXSZ);
        assert_string_equal(edge_verdict_detail(v), edge_verdict_detail(r->verdict));
        assert_int_equal(v, r->verdict);
    }
}

static void test_verdict_detail(void **state)
{
    static const struct {
        edge_verdict_t v;
        const char *s;
    } rows[] = {
        {EDGE_VERDICT_STORE, ""},
        {EDGE_VERDICT_NO_STORE, "no-store"},
        {EDGE_VERDICT_PRIVATE, "private"},
        {EDGE_VERDICT_SET_COOKIE, "set-cookie"},
        {EDGE_VERDICT_NO_LIFETIME, "no-lifetime"},
        {EDGE_VERDICT_STATUS, "status"},
        {EDGE_VERDICT_VARY, "vary"},
        {EDGE_VERDICT_TOO_LARGE, "too-large"},
        {EDGE_VERDICT_TRUNCATED, "truncated"},
        {EDGE_VERDICT_AUTH, "auth"},
        {EDGE_VERDICT_ENCODED, "encoded"},
    };
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i)
        assert_string_equal(edge_verdict_detail(rows[i].v), rows[i].s);
}

static void test_facts(void **state)
{
    static const struct hdr_t in[MAX_HDRS] = {
        {"Date", "Sun, 06 Nov 1994 08:49:37 GMT"},
        {"date", "Mon, 07 Nov 1994 08:49:37 GMT"}, /* second Date line ignored */
        {"Expires", "garbage"},                    /* invalid: already expired */
        {"Age", " 42 "},
        {"Last-Modified", "Sat, 05 Nov 1994 08:49:37 GMT"},
        {"Vary", " , Accept-Encoding ,"},
    };
    h2o_header_t headers[MAX_HDRS];
    h2o_iovec_t names[MAX_HDRS];
    size_t n = make_headers(headers, names, in);
    edge_response_facts_t f;
    memset(&f, 0xa5, sizeof(f)); /* every field must be overwritten */
    edge_response_facts_from_headers(&f, 200, headers, n, 123);
    assert_int_equal(f.status, 200);
    assert_int_equal(f.content_length, 123);
    assert_int_equal(f.has_date, 1);
    assert_int_equal(f.date, T1994);
    assert_int_equal(f.has_expires, 1);
    assert_int_equal(f.expires, 0);
    assert_int_equal(f.has_age, 1);
    assert_int_equal(f.age, 42);
    assert_int_equal(f.has_last_modified, 1);
    assert_int_equal(f.last_modified, T1994 - 86400);
    assert_int_equal(f.vary_accept_encoding, 1);
    assert_int_equal(f.vary_other, 0);
    assert_int_equal(f.vary_star, 0);
    assert_int_equal(f.has_set_cookie, 0);
    assert_int_equal(f.encoded, 0);
    assert_int_equal(f.cc.has_max_age, 0);
    assert_int_equal(f.cc.no_store, 0);

    static const struct {
        const char *name;
        struct hdr_t in[MAX_HDRS];
        int has_date, has_age;
        int64_t age;
        int has_lm, encoded;
    } rows[] = {
        {"invalid Date is absent", {{"date", "yesterday"}}, 0, 0, 0, 0, 0},
        {"first Date invalid: absent", {{"date", "yesterday"}, {"date", "Sun, 06 Nov 1994 08:49:37 GMT"}}, 0, 0, 0, 0, 0},
        {"Age list counts by its first member (cache-tests age-parse-suffix)", {{"age", "7200, 0"}}, 0, 1, 7200, 0, 0},
        {"Age list with an invalid first member is absent", {{"age", "x, 20"}}, 0, 0, 0, 0, 0},
        {"Age negative is invalid", {{"age", "-1"}}, 0, 0, 0, 0, 0},
        {"Age capped", {{"age", "99999999999"}}, 0, 1, CAP, 0, 0},
        {"first Age wins", {{"age", "7"}, {"age", "9"}}, 0, 1, 7, 0, 0},
        {"invalid Last-Modified absent", {{"last-modified", "0"}}, 0, 0, 0, 0, 0},
        {"gzip, identity is encoded", {{"content-encoding", "gzip, identity"}}, 0, 0, 0, 0, 1},
        {"empty Content-Encoding is not encoded", {{"content-encoding", ""}}, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        print_message("row: %s\n", rows[i].name);
        n = make_headers(headers, names, rows[i].in);
        edge_response_facts_from_headers(&f, 200, headers, n, -1);
        assert_int_equal(f.has_date, rows[i].has_date);
        assert_int_equal(f.has_age, rows[i].has_age);
        if (rows[i].has_age)
            assert_int_equal(f.age, rows[i].age);
        assert_int_equal(f.has_last_modified, rows[i].has_lm);
        assert_int_equal(f.encoded, rows[i].encoded);
        assert_int_equal(f.has_expires, 0);
    }

    /* several Expires lines cannot be one valid HTTP-date: already expired (cache-tests
     * freshness-expires-invalid-multiple-lines) */
    static const struct hdr_t two_expires[MAX_HDRS] = {{"expires", "Thu, 18 Aug 2050 02:01:18 GMT"},
                                                        {"expires", "Thu, 18 Aug 2050 02:01:19 GMT"}};
    n = make_headers(headers, names, two_expires);
    edge_response_facts_from_headers(&f, 200, headers, n, -1);
    assert_int_equal(f.has_expires, 1);
    assert_int_equal(f.expires, 0);
    static const struct hdr_t one_expires[MAX_HDRS] = {{"expires", "Thu, 18 Aug 2050 02:01:18 GMT"}};
    n = make_headers(headers, names, one_expires);
    edge_response_facts_from_headers(&f, 200, headers, n, -1);
    assert_int_equal(f.has_expires, 1);
    assert_int_not_equal(f.expires, 0);
}

/* ---- freshness lifetime and age arithmetic ---- */

struct age_row_t {
    const char *name;
    /* response */
    int has_s_maxage, has_max_age, has_expires, has_date, has_age;
    int64_t s_maxage, max_age, expires, date, age;
    /* edge clock */
    int64_t request_time, response_time, now;
    /* expectations */
    int64_t lifetime, initial_age, current_age;
};

static const struct age_row_t age_rows[] = {
    {"max-age", 0, 1, 0, 1, 0, 0, 60, 0, 1000, 0, 999, 1000, 1030, 60, 1, 31},
    {"s-maxage over max-age", 1, 1, 0, 1, 0, 10, 60, 0, 1000, 0, 1000, 1000, 1000, 10, 0, 0},
    {"max-age over Expires", 0, 1, 1, 1, 0, 0, 5, 5000, 1000, 0, 1000, 1000, 1000, 5, 0, 0},
    {"max-age 0", 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1000, 1000, 1001, 0, 0, 1},
    {"Expires minus Date", 0, 0, 1, 1, 0, 0, 0, 1100, 1000, 0, 1003, 1005, 1005, 100, 5, 5},
    {"Expires minus response time without Date", 0, 0, 1, 0, 0, 0, 0, 1100, 0, 0, 1030, 1040, 1050, 60, 10, 20},
    {"Expires before Date clamps to 0", 0, 0, 1, 1, 0, 0, 0, 900, 1000, 0, 1000, 1000, 1000, 0, 0, 0},
    {"invalid Expires (0) is 0", 0, 0, 1, 1, 0, 0, 0, 0, 1000, 0, 1000, 1000, 1000, 0, 0, 0},
    {"no lifetime", 0, 0, 0, 1, 0, 0, 0, 0, 1000, 0, 1000, 1000, 1000, -1, 0, 0},
    {"Age plus delay beats apparent age", 0, 1, 0, 1, 1, 0, 600, 0, 1000, 100, 1000, 1002, 1010, 600, 102, 110},
    {"apparent age beats Age", 0, 1, 0, 1, 1, 0, 600, 0, 800, 100, 1000, 1002, 1002, 600, 202, 202},
    {"Date in the future: apparent age 0", 0, 1, 0, 1, 0, 0, 600, 0, 2000, 0, 1000, 1000, 1000, 600, 0, 0},
    {"negative response delay is 0", 0, 1, 0, 0, 1, 0, 600, 0, 0, 5, 1010, 1000, 1000, 600, 5, 5},
    {"clock went back: age never drops", 0, 1, 0, 1, 1, 0, 600, 0, 1000, 30, 1000, 1000, 900, 600, 30, 30},
    {"Age capped value", 0, 1, 0, 0, 1, 0, 600, 0, 0, CAP, 1000, 1001, 1001, 600, CAP + 1, CAP + 1},
};

static void test_age_table(void **state)
{
    for (size_t i = 0; i != sizeof(age_rows) / sizeof(age_rows[0]); ++i) {
        const struct age_row_t *r = age_rows + i;
        edge_response_facts_t f;
        memset(&f, 0, sizeof(f));
        f.status = 200;
        f.content_length = -1;
        f.cc.has_s_maxage = r->has_s_maxage;
        f.cc.s_maxage = r->s_maxage;
        f.cc.has_max_age = r->has_max_age;
        f.cc.max_age = r->max_age;
        f.has_expires = r->has_expires;
        f.expires = r->expires;
        f.has_date = r->has_date;
        f.date = r->date;
        f.has_age = r->has_age;
        f.age = r->age;
        print_message("row: %s\n", r->name);
        assert_int_equal(edge_freshness_lifetime(&f, r->response_time), r->lifetime);
        int64_t initial = edge_initial_age(&f, r->request_time, r->response_time);
        assert_int_equal(initial, r->initial_age);
        assert_int_equal(edge_current_age(initial, r->response_time, r->now), r->current_age);
    }
}

/* from headers to a lifetime: the path the handler takes */
static void test_lifetime_from_headers(void **state)
{
    static const struct hdr_t in[MAX_HDRS] = {
        {"date", "Sun, 06 Nov 1994 08:49:37 GMT"},
        {"expires", "Sun, 06 Nov 1994 09:49:37 GMT"},
        {"age", "20"},
    };
    h2o_header_t headers[MAX_HDRS];
    h2o_iovec_t names[MAX_HDRS];
    size_t n = make_headers(headers, names, in);
    edge_response_facts_t f;
    edge_response_facts_from_headers(&f, 200, headers, n, -1);
    assert_int_equal(edge_policy_storable(&f, 0, MAXSZ), EDGE_VERDICT_STORE);
    assert_int_equal(edge_freshness_lifetime(&f, T1994 + 5), 3600);
    int64_t initial = edge_initial_age(&f, T1994 + 4, T1994 + 5);
    assert_int_equal(initial, 21); /* Age 20 + 1 s delay beats apparent age 5 */
    assert_int_equal(edge_current_age(initial, T1994 + 5, T1994 + 65), 81);
}

/* ---- methods ---- */

static void test_methods(void **state)
{
    static const struct {
        const char *m;
        int cacheable, unsafe;
    } rows[] = {
        {"GET", 1, 0},  {"HEAD", 1, 0},   {"OPTIONS", 0, 0}, {"TRACE", 0, 0}, {"POST", 0, 1},
        {"PUT", 0, 1},  {"DELETE", 0, 1}, {"PATCH", 0, 1},   {"PURGE", 0, 1}, {"get", 0, 1}, /* case-sensitive */
        {"GETX", 0, 1}, {"GE", 0, 1},     {"", 0, 1},
    };
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        size_t len = strlen(rows[i].m);
        h2o_iovec_t m = h2o_iovec_init(guarded(rows[i].m, len), len);
        print_message("row: %s\n", rows[i].m);
        assert_int_equal(edge_method_is_cacheable(m), rows[i].cacheable);
        assert_int_equal(edge_method_is_unsafe(m), rows[i].unsafe);
    }
}

/* ---- heuristic freshness (RFC 9111 §4.2.2; RFC 9110 §15.1 heuristically cacheable statuses) ---- */

static void test_heuristic_status(void **state)
{
    static const int yes[] = {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501};
    static const int no[] = {100, 201, 202, 302, 303, 304, 307, 400, 401, 403, 500, 502, 503, 504, 0, -1};
    for (size_t i = 0; i != sizeof(yes) / sizeof(yes[0]); ++i)
        assert_int_equal(edge_status_heuristically_cacheable(yes[i]), 1);
    for (size_t i = 0; i != sizeof(no) / sizeof(no[0]); ++i)
        assert_int_equal(edge_status_heuristically_cacheable(no[i]), 0);
}

struct heuristic_row_t {
    const char *name;
    int status;
    const char *cc;
    int has_expires, has_date, has_lm;
    int64_t date, lm, response_time, max_sec;
    int64_t expect, expect_combined;
};

static const struct heuristic_row_t heuristic_rows[] = {
    {"10% of Date - LM", 200, "", 0, 1, 1, 11000, 1000, 11005, 86400, 1000, 1000},
    {"rounds down", 200, "", 0, 1, 1, 1019, 1000, 2000, 86400, 1, 1},
    {"response time without Date", 200, "", 0, 0, 1, 0, 1000, 2000, 86400, 100, 100},
    {"capped", 200, "", 0, 1, 1, 100000000, 0, 100000000, 86400, 86400, 86400},
    {"cap 0", 200, "", 0, 1, 1, 11000, 1000, 11000, 0, 0, 0},
    {"LM after Date: 0", 200, "", 0, 1, 1, 1000, 2000, 1000, 86400, 0, 0},
    {"no LM: none", 200, "", 0, 1, 0, 11000, 0, 11000, 86400, -1, -1},
    {"206 heuristically cacheable", 206, "", 0, 1, 1, 11000, 1000, 11000, 86400, 1000, 1000},
    {"404 heuristically cacheable", 404, "", 0, 1, 1, 11000, 1000, 11000, 86400, 1000, 1000},
    {"501 heuristically cacheable", 501, "", 0, 1, 1, 11000, 1000, 11000, 86400, 1000, 1000},
    {"302 is not", 302, "", 0, 1, 1, 11000, 1000, 11000, 86400, -1, -1},
    {"500 is not", 500, "", 0, 1, 1, 11000, 1000, 11000, 86400, -1, -1},
    {"302 with public", 302, "public", 0, 1, 1, 11000, 1000, 11000, 86400, 1000, 1000},
    {"explicit max-age: no heuristic", 200, "max-age=5", 0, 1, 1, 11000, 1000, 11000, 86400, -1, 5},
    {"explicit s-maxage: no heuristic", 200, "s-maxage=7", 0, 1, 1, 11000, 1000, 11000, 86400, -1, 7},
    {"explicit Expires: no heuristic", 200, "", 1, 1, 1, 11000, 1000, 11000, 86400, -1, 0},
    {"max-age=0 is explicit", 200, "max-age=0", 0, 1, 1, 11000, 1000, 11000, 86400, -1, 0},
    {"no-cache does not stop the heuristic", 200, "no-cache", 0, 1, 1, 11000, 1000, 11000, 86400, 1000, 1000},
};

static void test_heuristic_table(void **state)
{
    for (size_t i = 0; i != sizeof(heuristic_rows) / sizeof(heuristic_rows[0]); ++i) {
        const struct heuristic_row_t *r = heuristic_rows + i;
        edge_response_facts_t f;
        memset(&f, 0, sizeof(f));
        f.status = r->status;
        f.content_length = -1;
        edge_cc_parse(&f.cc, r->cc, strlen(r->cc));
        f.has_expires = r->has_expires;
        f.expires = r->date; /* Expires == Date: explicit lifetime 0 */
        f.has_date = r->has_date;
        f.date = r->date;
        f.has_last_modified = r->has_lm;
        f.last_modified = r->lm;
        print_message("row: %s\n", r->name);
        assert_int_equal(edge_heuristic_freshness(&f, r->response_time, r->max_sec), r->expect);
        assert_int_equal(edge_freshness_lifetime_or_heuristic(&f, r->response_time, r->max_sec), r->expect_combined);
    }
}

/* ---- reuse for a request (RFC 9111 §4.2 fresh, §5.2.1 request directives, §5.2.2 response directives) ---- */

struct reuse_row_t {
    const char *name;
    const char *req_cc, *res_cc;
    int64_t age, lifetime;
    int honor_no_cache;
    edge_reuse_t expect;
};

static const struct reuse_row_t reuse_rows[] = {
    /* §4.2: fresh iff lifetime > age */
    {"fresh", "", "max-age=60", 10, 60, 0, EDGE_REUSE_FRESH_OK},
    {"age == lifetime is stale", "", "max-age=60", 60, 60, 0, EDGE_REUSE_STALE},
    {"stale", "", "max-age=60", 61, 60, 0, EDGE_REUSE_STALE},
    {"no lifetime is stale", "", "", 0, -1, 0, EDGE_REUSE_STALE},
    /* §5.2.1.1 max-age */
    {"req max-age satisfied", "max-age=10", "", 10, 60, 0, EDGE_REUSE_FRESH_OK},
    {"req max-age exceeded", "max-age=10", "", 11, 60, 0, EDGE_REUSE_STALE},
    {"req max-age=0 (reload)", "max-age=0", "", 1, 60, 0, EDGE_REUSE_STALE},
    {"req max-age=0 at age 0", "max-age=0", "", 0, 60, 0, EDGE_REUSE_FRESH_OK},
    {"req max-age exceeded beats max-stale", "max-age=10, max-stale", "", 70, 60, 0, EDGE_REUSE_STALE},
    {"req max-age with max-stale, stale within both", "max-age=100, max-stale=50", "", 70, 60, 0, EDGE_REUSE_SERVE_STALE_OK},
    /* §5.2.1.3 min-fresh */
    {"min-fresh satisfied", "min-fresh=20", "", 40, 60, 0, EDGE_REUSE_FRESH_OK},
    {"min-fresh not satisfied", "min-fresh=21", "", 40, 60, 0, EDGE_REUSE_STALE},
    /* §5.2.1.2 max-stale */
    {"max-stale=N within", "max-stale=30", "max-age=60", 90, 60, 0, EDGE_REUSE_SERVE_STALE_OK},
    {"max-stale=N beyond", "max-stale=30", "max-age=60", 91, 60, 0, EDGE_REUSE_STALE},
    {"bare max-stale: any staleness", "max-stale", "max-age=60", 1000000000, 60, 0, EDGE_REUSE_SERVE_STALE_OK},
    {"max-stale with no lifetime", "max-stale=5", "", 5, -1, 0, EDGE_REUSE_SERVE_STALE_OK},
    {"max-stale on a fresh response", "max-stale=30", "max-age=60", 10, 60, 0, EDGE_REUSE_FRESH_OK},
    {"invalid max-stale is absent", "max-stale=abc", "max-age=60", 61, 60, 0, EDGE_REUSE_STALE},
    /* §5.2.2.2, §5.2.2.8, §5.2.2.10: forbid serving stale */
    {"max-stale vs must-revalidate", "max-stale", "max-age=60, must-revalidate", 61, 60, 0, EDGE_REUSE_STALE},
    {"max-stale vs proxy-revalidate", "max-stale", "max-age=60, proxy-revalidate", 61, 60, 0, EDGE_REUSE_STALE},
    {"max-stale vs s-maxage", "max-stale", "s-maxage=60", 61, 60, 0, EDGE_REUSE_STALE},
    /* §5.2.2.4 response no-cache */
    {"response no-cache: validate even when fresh", "", "no-cache, max-age=60", 0, 60, 0, EDGE_REUSE_STALE},
    {"response no-cache vs max-stale", "max-stale", "no-cache", 100, 60, 0, EDGE_REUSE_STALE},
    /* §5.2.1.4 request no-cache, honoured only by configuration */
    {"req no-cache ignored", "no-cache", "max-age=60", 0, 60, 0, EDGE_REUSE_FRESH_OK},
    {"req no-cache honoured", "no-cache", "max-age=60", 0, 60, 1, EDGE_REUSE_MUST_FETCH},
    {"req no-cache honoured, stale", "no-cache", "max-age=60", 100, 60, 1, EDGE_REUSE_MUST_FETCH},
    /* §5.2.1.7 only-if-cached */
    {"only-if-cached fresh", "only-if-cached", "max-age=60", 0, 60, 0, EDGE_REUSE_FRESH_OK},
    {"only-if-cached stale: 504", "only-if-cached", "max-age=60", 61, 60, 0, EDGE_REUSE_ONLY_IF_CACHED_504},
    {"only-if-cached with max-stale", "only-if-cached, max-stale", "max-age=60", 61, 60, 0, EDGE_REUSE_SERVE_STALE_OK},
    {"only-if-cached and honoured no-cache: 504", "only-if-cached, no-cache", "max-age=60", 0, 60, 1,
     EDGE_REUSE_ONLY_IF_CACHED_504},
    {"only-if-cached, response no-cache: 504", "only-if-cached", "no-cache", 0, 60, 0, EDGE_REUSE_ONLY_IF_CACHED_504},
};

static void test_reuse_table(void **state)
{
    for (size_t i = 0; i != sizeof(reuse_rows) / sizeof(reuse_rows[0]); ++i) {
        const struct reuse_row_t *r = reuse_rows + i;
        edge_cc_t req = {0}, res = {0};
        edge_cc_parse(&req, guarded(r->req_cc, strlen(r->req_cc)), strlen(r->req_cc));
        edge_cc_parse(&res, r->res_cc, strlen(r->res_cc));
        print_message("row: %s\n", r->name);
        assert_int_equal(edge_request_reuse(&req, &res, r->age, r->lifetime, r->honor_no_cache), r->expect);
    }
}

/* ---- serving stale: RFC 5861 stale-while-revalidate / stale-if-error, RFC 9111 §4.2.4 ---- */

struct stale_row_t {
    const char *name;
    const char *res_cc;
    int64_t staleness, grace;
    int swr_ok, sie_ok;
};

static const struct stale_row_t stale_rows[] = {
    {"fresh is always ok", "max-age=60", 0, 0, 1, 1},
    {"fresh with must-revalidate ok", "max-age=60, must-revalidate", -5, 0, 1, 1},
    {"fresh with no-cache is not", "no-cache", -5, 0, 0, 0},
    {"swr window inclusive", "max-age=60, stale-while-revalidate=30", 30, 0, 1, 0},
    {"swr window exceeded", "max-age=60, stale-while-revalidate=30", 31, 0, 0, 0},
    {"sie window", "max-age=60, stale-if-error=300", 300, 0, 0, 1},
    {"sie window exceeded", "max-age=60, stale-if-error=300", 301, 0, 0, 0},
    {"bare swr is 0 s", "max-age=60, stale-while-revalidate", 1, 0, 0, 0},
    {"neither: grace applies", "max-age=60", 10, 10, 1, 1},
    {"neither: beyond grace", "max-age=60", 11, 10, 0, 0},
    {"neither, no grace", "max-age=60", 1, 0, 0, 0},
    {"explicit swr replaces grace", "max-age=60, stale-while-revalidate=5", 8, 10, 0, 1},
    {"must-revalidate forbids swr", "max-age=60, must-revalidate, stale-while-revalidate=30", 1, 100, 0, 0},
    {"proxy-revalidate forbids sie", "max-age=60, proxy-revalidate, stale-if-error=30", 1, 100, 0, 0},
    {"no-cache forbids", "no-cache, stale-while-revalidate=30, stale-if-error=30", 1, 100, 0, 0},
    {"s-maxage forbids grace", "s-maxage=60", 1, 100, 0, 0},
    {"Next.js ISR: explicit swr beats s-maxage", "s-maxage=60, stale-while-revalidate=31536000", 86400, 0, 1, 0},
    {"explicit sie beats s-maxage", "s-maxage=60, stale-if-error=100", 100, 0, 0, 1},
    {"invalid swr value is absent", "max-age=60, stale-while-revalidate=x", 5, 10, 1, 1},
};

static void test_stale_table(void **state)
{
    for (size_t i = 0; i != sizeof(stale_rows) / sizeof(stale_rows[0]); ++i) {
        const struct stale_row_t *r = stale_rows + i;
        edge_cc_t res = {0};
        edge_cc_parse(&res, r->res_cc, strlen(r->res_cc));
        print_message("row: %s\n", r->name);
        assert_int_equal(edge_stale_while_revalidate_ok(&res, r->staleness, r->grace), r->swr_ok);
        assert_int_equal(edge_stale_if_error_ok(&res, r->staleness, r->grace), r->sie_ok);
    }
}

/* from headers to a stale decision: the path the handler takes for a Next.js ISR page */
static void test_isr_from_headers(void **state)
{
    static const struct hdr_t in[MAX_HDRS] = {
        {"date", "Sun, 06 Nov 1994 08:49:37 GMT"},
        {"cache-control", "s-maxage=60, stale-while-revalidate=31536000"},
    };
    h2o_header_t headers[MAX_HDRS];
    h2o_iovec_t names[MAX_HDRS];
    size_t n = make_headers(headers, names, in);
    edge_response_facts_t f;
    edge_response_facts_from_headers(&f, 200, headers, n, -1);
    int64_t lifetime = edge_freshness_lifetime_or_heuristic(&f, T1994, 86400);
    assert_int_equal(lifetime, 60);
    int64_t age = edge_current_age(edge_initial_age(&f, T1994, T1994), T1994, T1994 + 90);
    edge_cc_t req = {0};
    assert_int_equal(edge_request_reuse(&req, &f.cc, age, lifetime, 0), EDGE_REUSE_STALE);
    assert_int_equal(edge_stale_while_revalidate_ok(&f.cc, age - lifetime, 0), 1);
    assert_int_equal(edge_stale_if_error_ok(&f.cc, age - lifetime, 3600), 0);
}

/* ---- RFC 9213 targeted fields: structured-field Dictionary check ---- */

static void test_targeted_cc_valid(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        int valid;
    } rows[] = {
        {"max-age=10000", 1},
        {"max-age=10000, must-revalidate", 1},
        {"no-store", 1},
        {"private", 1},
        {"", 1},
        {"  max-age=60  ", 1},
        {"s-maxage=60, stale-while-revalidate=30, stale-if-error=600", 1},
        {"foo=\"bar\", baz=?1, qux=1.5, t=tok, b=:aGk=:", 1},
        {"foo=(a b \"c\");p=1", 1},
        {"max-age=10000, &&&&&", 0},         /* cache-tests cdn-cc-invalid-sh-type-unknown */
        {"max-age=\"10000\"", 0},           /* cache-tests cdn-cc-invalid-sh-type-wrong */
        {"max-age=1.5", 0},
        {"max-age=-1", 0},
        {"max-age", 0},                      /* a Boolean true, not an Integer */
        {"Max-Age=60", 0},                   /* keys are lower case */
        {"max-age=60,", 0},
        {"max-age=60;;", 0},
        {"foo=\"unterminated", 0},
        {"foo=1234567890123456", 0},         /* more than 15 digits */
        {"a b", 0},
    };
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        print_message("row: %s\n", rows[i].value);
        assert_int_equal(edge_targeted_cc_valid(rows[i].value, strlen(rows[i].value)), rows[i].valid);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cc_table),    cmocka_unit_test(test_cc_length_bound),  cmocka_unit_test(test_date_table),
        cmocka_unit_test(test_targeted_cc_valid),
        cmocka_unit_test(test_date_format), cmocka_unit_test(test_storable_table),   cmocka_unit_test(test_verdict_detail),
        cmocka_unit_test(test_facts),       cmocka_unit_test(test_age_table),        cmocka_unit_test(test_lifetime_from_headers),
        cmocka_unit_test(test_methods),     cmocka_unit_test(test_heuristic_status), cmocka_unit_test(test_heuristic_table),
        cmocka_unit_test(test_reuse_table), cmocka_unit_test(test_stale_table),      cmocka_unit_test(test_isr_from_headers),
    };
    return cmocka_run_group_tests(tests, setup_guard, teardown_guard);
}
