/*
 * edge/cache_policy.c: HTTP caching rules as pure functions (RFC 9111 caching, RFC 9110 semantics).
 *
 * Contract: every function here reads its arguments and nothing else: no clock (times are
 * parameters; the one exception is edge_http_date_parse, which reads time() only for the RFC 850
 * two-digit-year rule; edge_http_date_parse_at takes it as a parameter), no global mutable state
 * except a C locale object created once (pthread_once) for strptime_l, no allocation. Parsers read exactly the bytes they are given (inputs need not be
 * NUL-terminated) and never fail hard: what cannot be parsed is treated the way the RFC says a
 * recipient should, which for freshness is always the conservative reading (stale, not stored).
 */
#define _GNU_SOURCE /* strptime_l, timegm */
#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include <locale.h>
#include <pthread.h>
#include <string.h>
#include <time.h>
#include "h2o.h"
#include "edge/cache_policy.h"
#include "edge/http_token.h"

/* 9999-12-31T23:59:59Z: the last instant a 4-digit year can show */
#define MAX_HTTP_DATE ((int64_t)253402300799)

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static int name_is(const char *name, size_t len, const char *lc_literal)
{
    return h2o_lcstris(name, len, lc_literal, strlen(lc_literal));
}

/*
 * delta-seconds = 1*DIGIT (RFC 9111 §1.2.2). Values above 2^31 are capped at 2^31 as that section requires.
 * @return 0 with *out set, or -1 when not a delta-seconds (empty, sign, fraction, anything but digits)
 */
static int parse_delta_seconds(const char *s, size_t len, int64_t *out)
{
    int64_t v = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i != len; ++i) {
        if (!('0' <= s[i] && s[i] <= '9'))
            return -1;
        if (v < EDGE_DELTA_SECONDS_MAX)
            v = v * 10 + (s[i] - '0');
    }
    *out = v > EDGE_DELTA_SECONDS_MAX ? EDGE_DELTA_SECONDS_MAX : v;
    return 0;
}

/* Skips to the next ',' that is not inside a quoted-string (RFC 9110 §5.6.4), or to end. */
static const char *skip_element(const char *p, const char *end)
{
    int in_quotes = 0;
    while (p < end) {
        if (in_quotes) {
            if (*p == '\\') {
                if (++p == end)
                    break;
            } else if (*p == '"') {
                in_quotes = 0;
            }
        } else if (*p == ',') {
            break;
        } else if (*p == '"') {
            in_quotes = 1;
        }
        ++p;
    }
    return p;
}

/*
 * One parsed cache-directive. `well_formed` is 0 when the element did not match
 * token [ "=" ( token / quoted-string ) ] followed by OWS and a comma or the end.
 */
struct st_directive_t {
    const char *name;
    size_t name_len;
    int has_arg;
    int well_formed;
    const char *arg; /* raw: a quoted-string argument is given without its quotes, escapes left in */
    size_t arg_len;
};

/* valued directive whose invalid value means "absent": sets *has and *field from the first valid occurrence */
static void set_first_valid(unsigned *has, int64_t *field, const struct st_directive_t *d)
{
    int64_t v;
    if (*has || !d->has_arg || !d->well_formed || parse_delta_seconds(d->arg, d->arg_len, &v) != 0)
        return;
    *has = 1;
    *field = v;
}

/* max-age / s-maxage: the first occurrence wins, valid or not (RFC 9111 §4.2.1: "either the first occurrence
 * should be used or the response should be considered stale"); invalid freshness information means stale, so
 * a missing or malformed value is 0. */
static void set_first_or_zero(unsigned *has, int64_t *field, const struct st_directive_t *d)
{
    int64_t v;
    if (*has)
        return;
    *has = 1;
    *field = d->has_arg && d->well_formed && parse_delta_seconds(d->arg, d->arg_len, &v) == 0 ? v : 0;
}

static void apply_directive(edge_cc_t *cc, const struct st_directive_t *d)
{
    const char *n = d->name;
    size_t l = d->name_len;
    /* a permissive directive only counts in its exact form: an argument makes it malformed, and a malformed
     * directive must not make the cache store or serve more than the origin clearly allowed */
    int exact_flag = !d->has_arg && d->well_formed;

    if (name_is(n, l, "no-store")) {
        cc->no_store = 1; /* RFC 9111 §5.2.2.5 */
    } else if (name_is(n, l, "no-cache")) {
        cc->no_cache = 1; /* RFC 9111 §5.2.2.4 (response) / §5.2.1.4 (request) */
        if (d->has_arg)
            cc->no_cache_has_fields = 1; /* qualified form handled as unqualified, as the note in §5.2.2.4 allows */
    } else if (name_is(n, l, "private")) {
        cc->private_ = 1; /* RFC 9111 §5.2.2.7 */
        if (d->has_arg)
            cc->private_has_fields = 1; /* qualified form handled as unqualified (note in §5.2.2.7) */
    } else if (name_is(n, l, "public")) {
        if (exact_flag)
            cc->public_ = 1; /* RFC 9111 §5.2.2.9 */
    } else if (name_is(n, l, "must-revalidate")) {
        cc->must_revalidate = 1; /* RFC 9111 §5.2.2.2 */
    } else if (name_is(n, l, "proxy-revalidate")) {
        cc->proxy_revalidate = 1; /* RFC 9111 §5.2.2.8 */
    } else if (name_is(n, l, "immutable")) {
        if (exact_flag)
            cc->immutable = 1; /* RFC 8246 */
    } else if (name_is(n, l, "only-if-cached")) {
        cc->only_if_cached = 1; /* RFC 9111 §5.2.1.7 */
    } else if (name_is(n, l, "no-transform")) {
        cc->no_transform = 1; /* RFC 9111 §5.2.2.6 / §5.2.1.6 */
    } else if (name_is(n, l, "must-understand")) {
        cc->must_understand = 1; /* RFC 9111 §5.2.2.3 */
    } else if (name_is(n, l, "max-age")) {
        unsigned has = cc->has_max_age;
        set_first_or_zero(&has, &cc->max_age, d); /* RFC 9111 §5.2.2.1 */
        cc->has_max_age = has;
    } else if (name_is(n, l, "s-maxage")) {
        unsigned has = cc->has_s_maxage;
        set_first_or_zero(&has, &cc->s_maxage, d); /* RFC 9111 §5.2.2.10 */
        cc->has_s_maxage = has;
    } else if (name_is(n, l, "stale-while-revalidate")) {
        /* RFC 5861 §3; a bare directive is read as 0 seconds of grace */
        unsigned has = cc->has_swr;
        if (!has && !d->has_arg && d->well_formed) {
            has = 1;
            cc->stale_while_revalidate = 0;
        }
        set_first_valid(&has, &cc->stale_while_revalidate, d);
        cc->has_swr = has;
    } else if (name_is(n, l, "stale-if-error")) {
        unsigned has = cc->has_sie; /* RFC 5861 §4 */
        set_first_valid(&has, &cc->stale_if_error, d);
        cc->has_sie = has;
    } else if (name_is(n, l, "max-stale")) {
        /* RFC 9111 §5.2.1.2: without a value the client accepts a stale response of any age */
        unsigned has = cc->has_max_stale;
        if (!has && !d->has_arg && d->well_formed) {
            has = 1;
            cc->max_stale = INT64_MAX;
        }
        set_first_valid(&has, &cc->max_stale, d);
        cc->has_max_stale = has;
    } else if (name_is(n, l, "min-fresh")) {
        unsigned has = cc->has_min_fresh; /* RFC 9111 §5.2.1.3 */
        set_first_valid(&has, &cc->min_fresh, d);
        cc->has_min_fresh = has;
    }
    /* RFC 9111 §5.2.3: unknown directives are ignored */
}

/* First list element of a comma-separated field value (no quoted-strings), OWS trimmed. @return the rest */
static const char *next_list_element(const char *p, const char *end, const char **el, size_t *el_len)
{
    const char *comma = memchr(p, ',', end - p), *e = comma != NULL ? comma : end;
    while (p < e && edge_is_ows(*p))
        ++p;
    const char *last = e;
    while (last > p && edge_is_ows(last[-1]))
        --last;
    *el = p;
    *el_len = last - p;
    return comma != NULL ? comma + 1 : end;
}

static h2o_iovec_t trim_ows(const char *s, size_t len)
{
    while (len > 0 && edge_is_ows(*s)) {
        ++s;
        --len;
    }
    while (len > 0 && edge_is_ows(s[len - 1]))
        --len;
    return h2o_iovec_init(s, len);
}

static void init_c_locale(void)
{
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

static void put_digits(char *dst, int v, int n)
{
    while (n-- > 0) {
        dst[n] = '0' + v % 10;
        v /= 10;
    }
}

void edge_cc_parse(edge_cc_t *cc, const char *value, size_t len)
{
    const char *p = value, *end = value + len;

    /* Cache-Control = #cache-directive (RFC 9111 §5.2); cache-directive = token [ "=" ( token / quoted-string ) ].
     * Empty list elements are allowed and ignored (RFC 9110 §5.6.1.2). */
    for (;;) {
        while (p < end && (edge_is_ows(*p) || *p == ','))
            ++p;
        if (p == end)
            break;

        struct st_directive_t d = {p, 0, 0, 1, NULL, 0};
        while (p < end && edge_is_tchar(*p))
            ++p;
        d.name_len = p - d.name;
        if (d.name_len == 0) {
            p = skip_element(p, end); /* not a directive at all */
            continue;
        }
        /* RFC 9111 §5.2 has no whitespace around '='; accepting it costs nothing and misreads nothing */
        const char *q = p;
        while (q < end && edge_is_ows(*q))
            ++q;
        if (q < end && *q == '=') {
            d.has_arg = 1;
            for (p = q + 1; p < end && edge_is_ows(*p); ++p)
                ;
            if (p < end && *p == '"') {
                /* quoted-string (RFC 9110 §5.6.4); both forms are accepted for every directive (RFC 9111 §5.2) */
                d.arg = ++p;
                while (p < end && *p != '"') {
                    if (*p == '\\' && p + 1 < end)
                        ++p;
                    ++p;
                }
                d.arg_len = p - d.arg;
                if (p == end)
                    d.well_formed = 0; /* unterminated */
                else
                    ++p;
            } else {
                d.arg = p;
                while (p < end && edge_is_tchar(*p))
                    ++p;
                d.arg_len = p - d.arg;
                if (d.arg_len == 0)
                    d.well_formed = 0; /* "max-age=" */
            }
        }
        while (p < end && edge_is_ows(*p))
            ++p;
        if (p < end && *p != ',') {
            d.well_formed = 0; /* trailing garbage: "max-age=60 30", "max-age=60;x" */
            p = skip_element(p, end);
        }
        apply_directive(cc, &d);
    }
}

/*
 * strptime accepts runs of spaces and one-digit fields that no HTTP-date has: check the exact shape of
 * one of the three forms first (RFC 9110 §5.6.7), character class by character class.
 *   IMF-fixdate  "Sun, 06 Nov 1994 08:49:37 GMT"
 *   rfc850-date  "Sunday, 06-Nov-94 08:49:37 GMT" (weekday of any length)
 *   asctime-date "Sun Nov  6 08:49:37 1994"
 * In a pattern, 'a' is a letter, '9' a digit, '_' a space or a digit, anything else itself.
 */
static int shape_match(const char *s, size_t len, const char *pattern)
{
    size_t n = strlen(pattern);
    if (len != n)
        return 0;
    for (size_t i = 0; i != n; ++i) {
        char c = s[i];
        switch (pattern[i]) {
        case 'a':
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')))
                return 0;
            break;
        case '9':
            if (!(c >= '0' && c <= '9'))
                return 0;
            break;
        case '_':
            if (!(c == ' ' || (c >= '0' && c <= '9')))
                return 0;
            break;
        default:
            if (c != pattern[i])
                return 0;
        }
    }
    return 1;
}

static int http_date_shape_ok(const char *s, size_t len)
{
    if (shape_match(s, len, "aaa, 99 aaa 9999 99:99:99 GMT") || shape_match(s, len, "aaa aaa _9 99:99:99 9999"))
        return 1;
    /* rfc850: a weekday name of 6 to 9 letters, then ", 99-aaa-99 99:99:99 GMT" */
    const char *comma = memchr(s, ',', len);
    if (comma == NULL || comma - s < 6 || comma - s > 9)
        return 0;
    for (const char *p = s; p != comma; ++p)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return 0;
    return shape_match(comma, len - (size_t)(comma - s), ", 99-aaa-99 99:99:99 GMT");
}

int edge_http_date_parse_at(const char *s, size_t len, int64_t now, int64_t *t)
{
    /* RFC 9110 §5.6.7: HTTP-date = IMF-fixdate / obs-date (rfc850-date / asctime-date). strptime matches
     * day and month names case-insensitively, which is the robustness that section encourages. */
    static const char *const formats[] = {
        "%a, %d %b %Y %H:%M:%S GMT", /* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
        "%A, %d-%b-%y %H:%M:%S GMT", /* rfc850-date: Sunday, 06-Nov-94 08:49:37 GMT */
        "%a %b %e %H:%M:%S %Y",      /* asctime-date: Sun Nov  6 08:49:37 1994 */
    };
    char buf[64];
    if (len == 0 || len >= sizeof(buf) || memchr(s, '\0', len) != NULL || !http_date_shape_ok(s, len))
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';

    pthread_once(&c_locale_once, init_c_locale);
    for (size_t i = 0; i != sizeof(formats) / sizeof(formats[0]); ++i) {
        struct tm tm = {0};
        const char *rest = c_locale != (locale_t)0 ? strptime_l(buf, formats[i], &tm, c_locale) : strptime(buf, formats[i], &tm);
        if (rest == NULL || *rest != '\0')
            continue;
        if (i == 1) {
            /* RFC 9110 §5.6.7: a two-digit year that appears more than 50 years in the future is the most recent
             * past year with the same last two digits. */
            time_t now_t = (time_t)now;
            struct tm now_tm;
            if (gmtime_r(&now_t, &now_tm) == NULL)
                return -1;
            int cur = now_tm.tm_year + 1900, yy = tm.tm_year % 100;
            int full_year = cur - cur % 100 + yy;
            if (full_year > cur + 50)
                full_year -= 100;
            else if (full_year + 100 <= cur + 50)
                full_year += 100;
            tm.tm_year = full_year - 1900;
        }
        /* timegm normalizes impossible dates ("31 Feb" -> 3 Mar): refuse them by checking the round trip. A leap
         * second (:60) is allowed and simply rolls over. */
        int sec = tm.tm_sec, mday = tm.tm_mday, mon = tm.tm_mon, year = tm.tm_year;
        if (sec > 60)
            return -1;
        tm.tm_sec = 0;
        time_t base = timegm(&tm);
        if (base == (time_t)-1 || tm.tm_mday != mday || tm.tm_mon != mon || tm.tm_year != year)
            return -1;
        *t = (int64_t)base + sec;
        return 0;
    }
    return -1;
}

int edge_http_date_parse(const char *s, size_t len, int64_t *t)
{
    return edge_http_date_parse_at(s, len, (int64_t)time(NULL), t);
}

void edge_http_date_format(int64_t t, char buf[30])
{
    static const char wdays[7][4] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char months[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (t < 0)
        t = 0;
    if (t > MAX_HTTP_DATE)
        t = MAX_HTTP_DATE;
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    /* IMF-fixdate (RFC 9110 §5.6.7): "Sun, 06 Nov 1994 08:49:37 GMT" */
    memcpy(buf, "Www, DD Mmm YYYY HH:MM:SS GMT", 30);
    memcpy(buf, wdays[tm.tm_wday], 3);
    put_digits(buf + 5, tm.tm_mday, 2);
    memcpy(buf + 8, months[tm.tm_mon], 3);
    put_digits(buf + 12, tm.tm_year + 1900, 4);
    put_digits(buf + 17, tm.tm_hour, 2);
    put_digits(buf + 20, tm.tm_min, 2);
    put_digits(buf + 23, tm.tm_sec, 2);
}

const char *edge_verdict_detail(edge_verdict_t v)
{
    switch (v) {
    case EDGE_VERDICT_STORE:
        return "";
    case EDGE_VERDICT_NO_STORE:
        return "no-store";
    case EDGE_VERDICT_PRIVATE:
        return "private";
    case EDGE_VERDICT_SET_COOKIE:
        return "set-cookie";
    case EDGE_VERDICT_NO_LIFETIME:
        return "no-lifetime";
    case EDGE_VERDICT_STATUS:
        return "status";
    case EDGE_VERDICT_VARY:
        return "vary";
    case EDGE_VERDICT_TOO_LARGE:
        return "too-large";
    case EDGE_VERDICT_TRUNCATED:
        return "truncated";
    case EDGE_VERDICT_AUTH:
        return "auth";
    case EDGE_VERDICT_ENCODED:
        return "encoded";
    }
    return "";
}

void edge_response_facts_from_headers(edge_response_facts_t *f, int status, const h2o_header_t *headers, size_t num_headers,
                                      int64_t content_length)
{
    int seen_date = 0, seen_expires = 0, seen_age = 0, seen_last_modified = 0;

    memset(f, 0, sizeof(*f));
    f->status = status;
    f->content_length = content_length;

    for (size_t i = 0; i != num_headers; ++i) {
        const char *n = headers[i].name->base;
        size_t nl = headers[i].name->len;
        h2o_iovec_t v = trim_ows(headers[i].value.base, headers[i].value.len);
        int64_t x;

        if (name_is(n, nl, "cache-control")) {
            edge_cc_parse(&f->cc, v.base, v.len);
        } else if (name_is(n, nl, "date")) {
            /* first line only (RFC 9111 §4.2.1 for duplicates); an invalid Date is ignored and the edge's
             * response time stands in (RFC 9110 §6.6.1) */
            if (!seen_date++ && edge_http_date_parse(v.base, v.len, &x) == 0) {
                f->has_date = 1;
                f->date = x;
            }
        } else if (name_is(n, nl, "expires")) {
            /* RFC 9111 §5.3: an invalid date, especially "0", means already expired; so do several Expires
             * lines, which cannot be one valid HTTP-date */
            f->has_expires = 1;
            f->expires = !seen_expires++ && edge_http_date_parse(v.base, v.len, &x) == 0 ? x : 0;
        } else if (name_is(n, nl, "age")) {
            /* RFC 9111 §5.1: delta-seconds; a list ("7200, 0") counts by its first member, and only the first
             * line counts; anything else is ignored */
            if (!seen_age++) {
                const char *comma = memchr(v.base, ',', v.len);
                h2o_iovec_t first = trim_ows(v.base, comma != NULL ? (size_t)(comma - v.base) : v.len);
                if (parse_delta_seconds(first.base, first.len, &x) == 0) {
                    f->has_age = 1;
                    f->age = x;
                }
            }
        } else if (name_is(n, nl, "last-modified")) {
            if (!seen_last_modified++ && edge_http_date_parse(v.base, v.len, &x) == 0) {
                f->has_last_modified = 1;
                f->last_modified = x;
            }
        } else if (name_is(n, nl, "set-cookie")) {
            f->has_set_cookie = 1;
        } else if (name_is(n, nl, "vary")) {
            /* RFC 9110 §12.5.5: Vary = #( "*" / field-name ), names case-insensitive */
            const char *p = v.base, *end = v.base + v.len, *el;
            size_t el_len;
            while (p < end) {
                p = next_list_element(p, end, &el, &el_len);
                if (el_len == 0)
                    continue;
                if (el_len == 1 && el[0] == '*')
                    f->vary_star = 1;
                else if (name_is(el, el_len, "accept-encoding"))
                    f->vary_accept_encoding = 1;
                else
                    f->vary_other = 1;
            }
        } else if (name_is(n, nl, "content-encoding")) {
            /* RFC 9110 §8.4: Content-Encoding = #content-coding, case-insensitive; "identity" is no coding */
            const char *p = v.base, *end = v.base + v.len, *el;
            size_t el_len;
            while (p < end) {
                p = next_list_element(p, end, &el, &el_len);
                if (el_len != 0 && !name_is(el, el_len, "identity"))
                    f->encoded = 1;
            }
        }
    }
}

/* The final status codes RFC 9110 §15 defines. */
static int status_understood(int status)
{
    switch (status) {
    case 200: case 201: case 202: case 203: case 204: case 205: case 206:
    case 300: case 301: case 302: case 303: case 304: case 305: case 307: case 308:
    case 400: case 401: case 402: case 403: case 404: case 405: case 406: case 407: case 408: case 409:
    case 410: case 411: case 412: case 413: case 414: case 415: case 416: case 417: case 421: case 422:
    case 426:
    case 500: case 501: case 502: case 503: case 504: case 505:
        return 1;
    default:
        return 0;
    }
}

edge_verdict_t edge_policy_storable(const edge_response_facts_t *f, int request_has_authorization, uint64_t max_object_size)
{
    /* RFC 9111 §3: the status must be final and understood; 206 is a part of a response and 304 no response
     * to store at all. Any other final status is stored with explicit freshness (or public); without it only
     * the heuristically cacheable ones can be (RFC 9110 §15.1), through heuristic freshness. */
    if (f->status < 200 || f->status > 599 || f->status == 206 || f->status == 304)
        return EDGE_VERDICT_STATUS;
    if (!edge_status_heuristically_cacheable(f->status) && !f->cc.has_s_maxage && !f->cc.has_max_age &&
        !f->has_expires && !f->cc.public_)
        return EDGE_VERDICT_STATUS;
    /* RFC 9111 §5.2.2.3: must-understand limits storing to caches that understand the status code (then
     * no-store is ignored); this cache understands those RFC 9110 §15 defines */
    if (f->cc.must_understand && !status_understood(f->status))
        return EDGE_VERDICT_NO_STORE;
    /* RFC 9111 §3 and §5.2.2.5 */
    if (f->cc.no_store && !f->cc.must_understand)
        return EDGE_VERDICT_NO_STORE;
    /* RFC 9111 §3: a shared cache must not store a private response (§5.2.2.7, qualified form included) */
    if (f->cc.private_ || f->cc.private_has_fields)
        return EDGE_VERDICT_PRIVATE;
    /* RFC 9111 §3.5: a shared cache stores an answer to an authenticated request only with public, s-maxage or
     * must-revalidate */
    if (request_has_authorization && !(f->cc.public_ || f->cc.has_s_maxage || f->cc.must_revalidate))
        return EDGE_VERDICT_AUTH;
    /* Edge policy (not an RFC rule): a Set-Cookie response is per-user in practice; never share it. */
    if (f->has_set_cookie)
        return EDGE_VERDICT_SET_COOKIE;
    /* RFC 9111 §4.1: "*" never matches; this step keys only on Accept-Encoding (handled by stored variants) */
    if (f->vary_star || f->vary_other)
        return EDGE_VERDICT_VARY;
    if (f->encoded)
        return EDGE_VERDICT_ENCODED;
    if (f->content_length >= 0 && (uint64_t)f->content_length > max_object_size)
        return EDGE_VERDICT_TOO_LARGE;
    /* RFC 9111 §3: explicit freshness is required here, as heuristic freshness (§4.2.2) is not implemented */
    if (!f->cc.has_s_maxage && !f->cc.has_max_age && !f->has_expires)
        return EDGE_VERDICT_NO_LIFETIME;
    return EDGE_VERDICT_STORE;
}

int64_t edge_freshness_lifetime(const edge_response_facts_t *f, int64_t response_time)
{
    /* RFC 9111 §4.2.1, in this order, for a shared cache */
    if (f->cc.has_s_maxage)
        return f->cc.s_maxage;
    if (f->cc.has_max_age)
        return f->cc.max_age;
    if (f->has_expires) {
        /* "the Expires header field value minus the value of the Date header field"; a cache that receives no
         * Date uses its own receipt time (RFC 9110 §6.6.1) */
        int64_t lifetime = f->expires - (f->has_date ? f->date : response_time);
        return lifetime < 0 ? 0 : lifetime;
    }
    return -1;
}

int64_t edge_initial_age(const edge_response_facts_t *f, int64_t request_time, int64_t response_time)
{
    /* RFC 9111 §4.2.3:
     *   apparent_age = max(0, response_time - date_value);
     *   response_delay = response_time - request_time;
     *   corrected_age_value = age_value + response_delay;
     *   corrected_initial_age = max(apparent_age, corrected_age_value);
     * A negative response_delay (edge clock stepped back) is taken as 0 so that it cannot hide an Age. */
    int64_t apparent_age = 0, response_delay = response_time - request_time;
    if (f->has_date && response_time > f->date)
        apparent_age = response_time - f->date;
    if (response_delay < 0)
        response_delay = 0;
    int64_t corrected_age_value = (f->has_age ? f->age : 0) + response_delay;
    return apparent_age > corrected_age_value ? apparent_age : corrected_age_value;
}

int64_t edge_current_age(int64_t initial_age, int64_t response_time, int64_t now)
{
    /* RFC 9111 §4.2.3: resident_time = now - response_time; current_age = corrected_initial_age + resident_time */
    int64_t resident_time = now - response_time;
    return initial_age + (resident_time > 0 ? resident_time : 0);
}

int edge_method_is_cacheable(h2o_iovec_t method)
{
    /* RFC 9110 §9.2.3: GET and HEAD are the cacheable methods this edge stores (POST responses are not reused) */
    return h2o_memis(method.base, method.len, H2O_STRLIT("GET")) || h2o_memis(method.base, method.len, H2O_STRLIT("HEAD"));
}

int edge_method_is_unsafe(h2o_iovec_t method)
{
    /* RFC 9110 §9.2.1: GET, HEAD, OPTIONS and TRACE are safe; RFC 9111 §4.4 invalidates on the others */
    return !(h2o_memis(method.base, method.len, H2O_STRLIT("GET")) || h2o_memis(method.base, method.len, H2O_STRLIT("HEAD")) ||
             h2o_memis(method.base, method.len, H2O_STRLIT("OPTIONS")) || h2o_memis(method.base, method.len, H2O_STRLIT("TRACE")));
}

int edge_status_heuristically_cacheable(int status)
{
    /* RFC 9110 §15.1: "heuristically cacheable" status codes */
    switch (status) {
    case 200:
    case 203:
    case 204:
    case 206:
    case 300:
    case 301:
    case 308:
    case 404:
    case 405:
    case 410:
    case 414:
    case 501:
        return 1;
    default:
        return 0;
    }
}

int64_t edge_heuristic_freshness(const edge_response_facts_t *f, int64_t response_time, int64_t max_heuristic_sec)
{
    /* RFC 9111 §4.2.2: "a cache MUST NOT use heuristics to determine freshness when an explicit expiration time is
     * present"; heuristics only for heuristically cacheable statuses or responses marked e.g. public */
    if (f->cc.has_s_maxage || f->cc.has_max_age || f->has_expires)
        return -1;
    if (!edge_status_heuristically_cacheable(f->status) && !f->cc.public_)
        return -1;
    /* "no more than some fraction of the interval since [Last-Modified]. A typical setting of this fraction might be
     * 10%." Without Last-Modified there is no interval: no heuristic. */
    if (!f->has_last_modified)
        return -1;
    int64_t base = f->has_date ? f->date : response_time, lifetime = 0;
    if (base > f->last_modified)
        lifetime = (base - f->last_modified) * EDGE_HEURISTIC_PERCENT / 100; /* dates are bounded: no overflow */
    if (max_heuristic_sec < 0)
        max_heuristic_sec = 0;
    return lifetime > max_heuristic_sec ? max_heuristic_sec : lifetime;
}

int64_t edge_freshness_lifetime_or_heuristic(const edge_response_facts_t *f, int64_t response_time, int64_t max_heuristic_sec)
{
    int64_t lifetime = edge_freshness_lifetime(f, response_time);
    return lifetime >= 0 ? lifetime : edge_heuristic_freshness(f, response_time, max_heuristic_sec);
}

/* RFC 9111 §4.2.4: directives that forbid serving a stale response, for a shared cache */
static int stale_forbidden(const edge_cc_t *res)
{
    return res->no_cache || res->must_revalidate || res->proxy_revalidate;
}

edge_reuse_t edge_request_reuse(const edge_cc_t *req, const edge_cc_t *res, int64_t current_age, int64_t lifetime,
                                int honor_client_no_cache)
{
    edge_reuse_t r;
    int fresh = lifetime >= 0 && lifetime > current_age; /* RFC 9111 §4.2 response_is_fresh */

    if (req->no_cache && honor_client_no_cache) {
        r = EDGE_REUSE_MUST_FETCH; /* RFC 9111 §5.2.1.4 */
    } else if (res->no_cache) {
        r = EDGE_REUSE_STALE; /* RFC 9111 §5.2.2.4: validate before every reuse */
    } else {
        /* RFC 9111 §5.2.1.1 max-age: the client wants age <= max-age; §5.2.1.3 min-fresh: fresh for at least N more */
        int acceptable = fresh;
        if (req->has_max_age && current_age > req->max_age)
            acceptable = 0;
        if (req->has_min_fresh && fresh && lifetime - current_age < req->min_fresh)
            acceptable = 0;
        if (acceptable) {
            r = EDGE_REUSE_FRESH_OK;
        } else if (!fresh && req->has_max_stale && !(req->has_max_age && current_age > req->max_age) && !stale_forbidden(res) &&
                   !res->has_s_maxage && current_age - (lifetime < 0 ? 0 : lifetime) <= req->max_stale) {
            /* RFC 9111 §5.2.1.2 max-stale; forbidden by must-revalidate (§5.2.2.2), proxy-revalidate (§5.2.2.8) and
             * s-maxage (§5.2.2.10, which implies proxy-revalidate for a shared cache) */
            r = EDGE_REUSE_SERVE_STALE_OK;
        } else {
            r = EDGE_REUSE_STALE;
        }
    }
    /* RFC 9111 §5.2.1.7: with only-if-cached, use a stored response or answer 504 */
    if (req->only_if_cached && (r == EDGE_REUSE_STALE || r == EDGE_REUSE_MUST_FETCH))
        r = EDGE_REUSE_ONLY_IF_CACHED_504;
    return r;
}

static int stale_ok(const edge_cc_t *res, int64_t staleness, int has_window, int64_t window, int64_t default_grace_sec)
{
    if (res->no_cache)
        return 0;
    if (staleness <= 0)
        return 1;
    if (res->must_revalidate || res->proxy_revalidate)
        return 0; /* RFC 9111 §4.2.4, §5.2.2.2, §5.2.2.8 */
    if (has_window)
        return staleness <= window; /* explicit RFC 5861 directive: wins over the s-maxage implication */
    if (res->has_s_maxage)
        return 0;                          /* RFC 9111 §5.2.2.10: s-maxage implies proxy-revalidate */
    return staleness <= default_grace_sec; /* configuration: RFC 9111 §4.2.4 "out-of-band contract" */
}

int edge_stale_while_revalidate_ok(const edge_cc_t *res, int64_t staleness, int64_t default_grace_sec)
{
    return stale_ok(res, staleness, res->has_swr, res->stale_while_revalidate, default_grace_sec);
}

int edge_stale_if_error_ok(const edge_cc_t *res, int64_t staleness, int64_t default_grace_sec)
{
    return stale_ok(res, staleness, res->has_sie, res->stale_if_error, default_grace_sec);
}

/* --- RFC 8941 Dictionary syntax, as far as a targeted cache-control field needs it --- */

static int sf_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static int sf_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int sf_tchar(char c)
{
    return sf_lcalpha(c) || (c >= 'A' && c <= 'Z') || sf_digit(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~:/", c) != NULL);
}

/* key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ) */
static const char *sf_key(const char *p, const char *end)
{
    if (p == end || !(sf_lcalpha(*p) || *p == '*'))
        return NULL;
    for (++p; p != end && (sf_lcalpha(*p) || sf_digit(*p) || *p == '_' || *p == '-' || *p == '.' || *p == '*'); ++p)
        ;
    return p;
}

/* bare-item; *is_integer tells an Integer (needed for the freshness directives) */
static const char *sf_bare_item(const char *p, const char *end, int *is_integer)
{
    *is_integer = 0;
    if (p == end)
        return NULL;
    if (*p == '-' || sf_digit(*p)) { /* Integer or Decimal */
        const char *start = p;
        if (*p == '-')
            ++p;
        const char *digits = p;
        while (p != end && sf_digit(*p))
            ++p;
        if (p == digits || p - digits > 15)
            return NULL;
        if (p != end && *p == '.') {
            const char *frac = ++p;
            while (p != end && sf_digit(*p))
                ++p;
            if (p == frac || p - frac > 3 || frac - 1 - digits > 12)
                return NULL;
            return p;
        }
        *is_integer = *start != '-';
        return p;
    }
    if (*p == '"') { /* String */
        for (++p; p != end; ++p) {
            if (*p == '\\') {
                if (++p == end || (*p != '"' && *p != '\\'))
                    return NULL;
            } else if (*p == '"') {
                return p + 1;
            } else if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e) {
                return NULL;
            }
        }
        return NULL;
    }
    if (*p == ':') { /* Byte Sequence */
        for (++p; p != end && *p != ':'; ++p)
            if (!(sf_lcalpha(*p) || (*p >= 'A' && *p <= 'Z') || sf_digit(*p) || *p == '+' || *p == '/' || *p == '='))
                return NULL;
        return p == end ? NULL : p + 1;
    }
    if (*p == '?') { /* Boolean */
        if (end - p < 2 || (p[1] != '0' && p[1] != '1'))
            return NULL;
        return p + 2;
    }
    if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '*') { /* Token */
        for (++p; p != end && sf_tchar(*p); ++p)
            ;
        return p;
    }
    return NULL;
}

static const char *sf_params(const char *p, const char *end)
{
    while (p != end && *p == ';') {
        ++p;
        while (p != end && *p == ' ')
            ++p;
        if ((p = sf_key(p, end)) == NULL)
            return NULL;
        if (p != end && *p == '=') {
            int is_int;
            if ((p = sf_bare_item(p + 1, end, &is_int)) == NULL)
                return NULL;
        }
    }
    return p;
}

int edge_targeted_cc_valid(const char *value, size_t len)
{
    const char *p = value, *end = value + len;
    while (p != end && (*p == ' ' || *p == '\t'))
        ++p;
    while (end != p && (end[-1] == ' ' || end[-1] == '\t'))
        --end;
    if (p == end)
        return 1; /* an empty Dictionary */
    for (;;) {
        const char *key = p;
        if ((p = sf_key(p, end)) == NULL)
            return 0;
        size_t key_len = (size_t)(p - key);
        int is_int = 0, has_value = 0;
        if (p != end && *p == '=') {
            has_value = 1;
            if (p + 1 != end && p[1] == '(') { /* Inner List */
                p += 2;
                for (;;) {
                    while (p != end && *p == ' ')
                        ++p;
                    if (p == end)
                        return 0;
                    if (*p == ')') {
                        ++p;
                        break;
                    }
                    int unused;
                    if ((p = sf_bare_item(p, end, &unused)) == NULL || (p = sf_params(p, end)) == NULL)
                        return 0;
                    if (p != end && *p != ' ' && *p != ')')
                        return 0;
                }
            } else if ((p = sf_bare_item(p + 1, end, &is_int)) == NULL) {
                return 0;
            }
        }
        if ((p = sf_params(p, end)) == NULL)
            return 0;
        /* the freshness directives must be Integers (RFC 9213 §2.1, RFC 9111 §5.2 as SF) */
        static const char *const int_keys[] = {"max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"};
        for (size_t i = 0; i != sizeof(int_keys) / sizeof(int_keys[0]); ++i)
            if (key_len == strlen(int_keys[i]) && memcmp(key, int_keys[i], key_len) == 0 && !(has_value && is_int))
                return 0;
        while (p != end && (*p == ' ' || *p == '\t'))
            ++p;
        if (p == end)
            return 1;
        if (*p != ',')
            return 0;
        ++p;
        while (p != end && (*p == ' ' || *p == '\t'))
            ++p;
        if (p == end)
            return 0; /* a trailing comma */
    }
}
