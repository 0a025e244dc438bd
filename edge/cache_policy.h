/*
 * edge/cache_policy.h: HTTP caching rules as pure functions (RFC 9111, RFC 9110).
 *
 * Cache-Control parsing, HTTP dates, the facts of a response that caching depends on, the storing
 * decision, freshness lifetime and age arithmetic, and method classes. No state, no I/O, no clock:
 * every time is a parameter (seconds since the epoch, the edge's clock; edge_http_date_parse alone reads
 * time() for the RFC 850 two-digit-year rule). Safe from any thread.
 */
#ifndef EDGE_CACHE_POLICY_H
#define EDGE_CACHE_POLICY_H

#include <stddef.h>
#include <stdint.h>
#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include "h2o.h"

/** RFC 9111 §1.2.2: a delta-seconds too large to represent is taken as 2^31. */
#define EDGE_DELTA_SECONDS_MAX ((int64_t)2147483648)

/**
 * Accumulated Cache-Control directives (RFC 9111 §5.2) of one message, from any number of header lines.
 *
 * Rules applied by edge_cc_parse:
 * - names are case-insensitive; values are a token or a quoted-string (both forms accepted for every
 *   directive, RFC 9111 §5.2); unknown directives are ignored; empty list elements are ignored;
 * - booleans are OR-ed across duplicates and lines; a restrictive boolean (no-store, no-cache, private,
 *   must-revalidate, proxy-revalidate, no-transform, must-understand, only-if-cached) counts even when
 *   it carries an unexpected argument, a permissive one (public, immutable) with an argument is ignored;
 * - max-age / s-maxage: the FIRST occurrence wins (RFC 9111 §4.2.1); an invalid or missing value counts
 *   as 0, i.e. stale (RFC 9111 §4.2.1, §1.2.2);
 * - stale-while-revalidate, stale-if-error, max-stale, min-fresh: the first VALID occurrence wins; an
 *   invalid value is as if the directive were absent; a bare stale-while-revalidate is 0, a bare
 *   max-stale is INT64_MAX (any staleness, RFC 9111 §5.2.1.2);
 * - delta-seconds above 2^31 are capped at 2^31 (RFC 9111 §1.2.2);
 * - the field-named forms no-cache="F" and private="F" set BOTH the plain bit and *_has_fields: like most
 *   caches we treat them as the unqualified directive (RFC 9111 §5.2.2.4 and §5.2.2.7, notes).
 */
typedef struct st_edge_cc_t {
    unsigned no_store : 1, no_cache : 1, private_ : 1, public_ : 1, must_revalidate : 1, proxy_revalidate : 1, immutable : 1,
        only_if_cached : 1, no_transform : 1, must_understand : 1;
    unsigned has_max_age : 1, has_s_maxage : 1, has_swr : 1, has_sie : 1, has_max_stale : 1, has_min_fresh : 1;
    unsigned no_cache_has_fields : 1, private_has_fields : 1; /* the field-named forms: no-cache="Set-Cookie" */
    int64_t max_age, s_maxage, stale_while_revalidate, stale_if_error, max_stale, min_fresh;
    /* max-stale with no value: has_max_stale=1, max_stale = INT64_MAX */
} edge_cc_t;

/**
 * Parses one Cache-Control field line and accumulates it into cc (zero the struct before the first line).
 * @param[in,out] cc
 * @param value  the field value (need not be NUL-terminated; exactly len bytes are read)
 * @param len    its length
 * Malformed elements are skipped up to the next comma outside a quoted-string; nothing fails.
 */
void edge_cc_parse(edge_cc_t *cc, const char *value, size_t len);

/**
 * Parses an HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, obsolete RFC 850 or asctime, always GMT, in the C locale.
 * An RFC 850 two-digit year more than 50 years after the current year is taken in the previous century.
 * @param s    the value (need not be NUL-terminated; at most 63 bytes are considered valid)
 * @return 0 with *t (seconds since epoch) set, or -1 when invalid (including impossible dates such as 31 Feb)
 */
int edge_http_date_parse(const char *s, size_t len, int64_t *t);

/** Same as edge_http_date_parse, with `now` (seconds since epoch) as the reference for the RFC 850 50-year rule. */
int edge_http_date_parse_at(const char *s, size_t len, int64_t now, int64_t *t);

/** Writes IMF-fixdate (29 chars + NUL) into buf[30]. t is clamped to [0, 9999-12-31T23:59:59Z]. */
void edge_http_date_format(int64_t t, char buf[30]);

/** Why a response is not stored (EDGE_VERDICT_STORE when it is). */
typedef enum en_edge_verdict_t {
    EDGE_VERDICT_STORE = 0,
    EDGE_VERDICT_NO_STORE,    /* Cache-Control: no-store */
    EDGE_VERDICT_PRIVATE,     /* private (also the field-named form, conservatively) */
    EDGE_VERDICT_SET_COOKIE,  /* a Set-Cookie response */
    EDGE_VERDICT_NO_LIFETIME, /* no s-maxage, max-age or Expires */
    EDGE_VERDICT_STATUS,      /* status not one of 200, 203, 204, 300, 301, 308, 404, 410 */
    EDGE_VERDICT_VARY,        /* Vary names anything but Accept-Encoding (or is "*") */
    EDGE_VERDICT_TOO_LARGE,   /* Content-Length over max_object_size */
    EDGE_VERDICT_TRUNCATED,   /* set by the caller when the body did not end as framed (not decided here) */
    EDGE_VERDICT_AUTH,        /* the request had Authorization and the response has none of public, s-maxage, must-revalidate */
    EDGE_VERDICT_ENCODED      /* Content-Encoding other than identity (this step asks the origin for identity) */
} edge_verdict_t;

/**
 * @return the Cache-Status detail token: "no-store", "private", "set-cookie", "no-lifetime", "status", "vary",
 *  "too-large", "truncated", "auth", "encoded"; "" for STORE. A static string.
 */
const char *edge_verdict_detail(edge_verdict_t v);

/** What caching needs to know of a response head. Times are seconds since the epoch. */
typedef struct st_edge_response_facts_t {
    int status;
    edge_cc_t cc;
    int has_date;
    int64_t date; /* Date header (first line; invalid -> absent) */
    int has_expires;
    int64_t expires; /* an invalid Expires counts as has_expires with expires = 0 (already expired, RFC 9111 §5.3) */
    int has_age;
    int64_t age; /* Age header (delta-seconds; invalid -> absent) */
    int has_last_modified;
    int64_t last_modified; /* first line; invalid -> absent */
    int has_set_cookie;
    int vary_star;  /* Vary: * */
    int vary_other; /* Vary names a field other than Accept-Encoding */
    int vary_accept_encoding;
    int encoded;            /* Content-Encoding present and not "identity" */
    int64_t content_length; /* -1 unknown */
} edge_response_facts_t;

/**
 * Fills facts from response headers (every Cache-Control line accumulated). Unknown headers are ignored.
 * Header names are compared case-insensitively. For Date, Expires, Age and Last-Modified the first line
 * counts (RFC 9111 §4.2.1). f is fully overwritten; it keeps no pointer into the headers.
 * @param content_length  the framed body length, -1 when unknown
 */
void edge_response_facts_from_headers(edge_response_facts_t *f, int status, const h2o_header_t *headers, size_t num_headers,
                                      int64_t content_length);

/**
 * Storing decision for a GET response (RFC 9111 §3, plus this edge's own stricter rules).
 * Order of checks: status, no-store, private, auth, set-cookie, vary, encoded, too-large, no-lifetime; the
 * first that fails is returned. no-store is ignored when must-understand is present (RFC 9111 §5.2.2.3): the
 * status check has already established that the status code is one this cache understands.
 * no-cache does not prevent storing (it requires revalidation before each reuse, RFC 9111 §5.2.2.4).
 * @param max_object_size  bytes; a known Content-Length above it is TOO_LARGE
 */
edge_verdict_t edge_policy_storable(const edge_response_facts_t *f, int request_has_authorization, uint64_t max_object_size);

/**
 * Freshness lifetime (RFC 9111 §4.2.1): s-maxage, else max-age, else Expires - Date (Date absent: Expires -
 * response_time); -1 when none. Never negative otherwise (clamped at 0). No heuristic freshness (§4.2.2).
 */
int64_t edge_freshness_lifetime(const edge_response_facts_t *f, int64_t response_time);

/**
 * Corrected initial age (RFC 9111 §4.2.3) from request_time/response_time (the edge's clock, seconds):
 * max(max(0, response_time - date), age + max(0, response_time - request_time)). A missing Date means
 * apparent age 0 (the edge stamps its own Date, RFC 9110 §6.6.1); a missing Age means 0.
 */
int64_t edge_initial_age(const edge_response_facts_t *f, int64_t request_time, int64_t response_time);

/**
 * Current age at `now` of a response stored with initial_age at response_time: initial_age + (now - response_time).
 * A clock that went backwards (now < response_time) adds nothing: the age never drops below initial_age.
 */
int64_t edge_current_age(int64_t initial_age, int64_t response_time, int64_t now);

/** @return 1 for GET and HEAD (methods are case-sensitive, RFC 9110 §9.1), else 0 */
int edge_method_is_cacheable(h2o_iovec_t method);

/** @return 1 for anything but GET, HEAD, OPTIONS and TRACE (the safe methods, RFC 9110 §9.2.1), else 0 */
int edge_method_is_unsafe(h2o_iovec_t method);

#endif
