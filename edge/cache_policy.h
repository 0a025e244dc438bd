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

/* ---- Heuristic freshness, request directives, serving stale (RFC 9111 §4.2.2, §5.2.1, §4.2.4; RFC 5861) ---- */

/** Fraction of (Date - Last-Modified) used as heuristic freshness lifetime, in percent (RFC 9111 §4.2.2: "10%"). */
#ifndef EDGE_HEURISTIC_PERCENT
#define EDGE_HEURISTIC_PERCENT 10
#endif

/**
 * @return 1 for the status codes RFC 9110 §15.1 defines as heuristically cacheable (200, 203, 204, 206, 300, 301,
 *  308, 404, 405, 410, 414, 501), else 0
 */
int edge_status_heuristically_cacheable(int status);

/**
 * Heuristic freshness lifetime (RFC 9111 §4.2.2). Only when the response has no explicit lifetime (s-maxage,
 * max-age, Expires), has Last-Modified, and its status is heuristically cacheable or it carries `public`:
 * EDGE_HEURISTIC_PERCENT of (Date, or response_time without Date) - Last-Modified, at least 0 and at most
 * max_heuristic_sec.
 * @return the lifetime in seconds, or -1 when no heuristic applies
 */
int64_t edge_heuristic_freshness(const edge_response_facts_t *f, int64_t response_time, int64_t max_heuristic_sec);

/** edge_freshness_lifetime, or when that is -1, edge_heuristic_freshness. @return seconds, or -1 when neither applies */
int64_t edge_freshness_lifetime_or_heuristic(const edge_response_facts_t *f, int64_t response_time, int64_t max_heuristic_sec);

/** Whether a stored response may be used for a request (edge_request_reuse). */
typedef enum en_edge_reuse_t {
    EDGE_REUSE_FRESH_OK = 0,      /* fresh, and fresh enough for the request: serve it */
    EDGE_REUSE_STALE,             /* must be validated (or refetched) before it is served */
    EDGE_REUSE_SERVE_STALE_OK,    /* stale, but within the request's max-stale and nothing forbids it: serve it */
    EDGE_REUSE_MUST_FETCH,        /* the request's no-cache, honoured by configuration: go to the origin
                                   * (a conditional request suffices, RFC 9111 §5.2.1.4) */
    EDGE_REUSE_ONLY_IF_CACHED_504 /* only-if-cached and the stored response is not usable without the origin: 504 */
} edge_reuse_t;

/**
 * Decides whether a stored response may be reused for a request, per the request's Cache-Control (RFC 9111
 * §5.2.1) and the stored response's (RFC 9111 §4.2.4, §5.2.2): fresh means lifetime > current_age; the
 * request's max-age (age <= max-age) and min-fresh (lifetime - age >= min-fresh) make a fresh response stale;
 * max-stale (bare: any staleness) allows serving a stale one unless the response has must-revalidate,
 * proxy-revalidate, s-maxage (it implies proxy-revalidate in a shared cache, RFC 9111 §5.2.2.10) or no-cache.
 * A response no-cache always needs validation. The request's no-cache is obeyed only with honor_client_no_cache.
 * only-if-cached turns STALE and MUST_FETCH into ONLY_IF_CACHED_504 (RFC 9111 §5.2.1.7); when nothing at all is
 * stored the caller answers 504 itself on req->only_if_cached.
 * @param req        the request's directives (edge_cc_parse over its Cache-Control lines)
 * @param res        the stored response's directives
 * @param lifetime   freshness lifetime in seconds, -1 when none (always stale)
 */
edge_reuse_t edge_request_reuse(const edge_cc_t *req, const edge_cc_t *res, int64_t current_age, int64_t lifetime,
                                int honor_client_no_cache);

/**
 * Whether a stale response may be served while it is revalidated in the background (RFC 5861 §3).
 * Never with no-cache, must-revalidate or proxy-revalidate (RFC 9111 §4.2.4). An explicit
 * stale-while-revalidate=N allows staleness <= N, even with s-maxage (Next.js ISR sends both and relies on it);
 * without the directive, s-maxage forbids it (RFC 9111 §5.2.2.10) and otherwise default_grace_sec (the
 * site's configuration, 0 for none) applies.
 * @param staleness  current_age - lifetime; <= 0 (still fresh) is always OK unless no-cache
 * @return 1 when it may be served, else 0
 */
int edge_stale_while_revalidate_ok(const edge_cc_t *res, int64_t staleness, int64_t default_grace_sec);

/**
 * Whether a stale response may be served because the origin failed (RFC 5861 §4): as
 * edge_stale_while_revalidate_ok, with stale-if-error=N in place of stale-while-revalidate.
 */
int edge_stale_if_error_ok(const edge_cc_t *res, int64_t staleness, int64_t default_grace_sec);

/**
 * RFC 9213 §2.1: a targeted field (CDN-Cache-Control) is a structured-field Dictionary (RFC 8941 §3.2); a value
 * that does not parse as one, or whose freshness directives (max-age, s-maxage, stale-while-revalidate,
 * stale-if-error) are not Integers, makes the cache ignore the field. This checks one field line.
 * @return 1 when valid, 0 when the field must be ignored
 */
int edge_targeted_cc_valid(const char *value, size_t len);

#endif
