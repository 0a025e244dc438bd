/*
 * edge/conditional.h: conditional requests answered by a cache (RFC 9110 §13, RFC 9111 §4.3) as pure functions.
 *
 * Entity-tag parsing and comparison, evaluation of a GET/HEAD request's preconditions against one stored
 * response, the header fields a 304 carries, and the freshening of stored header fields from a 304
 * (RFC 9111 §3.2, §4.3.4). No state, no I/O, no clock: times are parameters (seconds since the epoch).
 * Safe from any thread.
 */
#ifndef EDGE_CONDITIONAL_H
#define EDGE_CONDITIONAL_H

#include <stddef.h>
#include <stdint.h>
#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include "h2o.h"

/** One entity-tag (RFC 9110 §8.8.3). `opaque` points into the parsed input, quotes excluded. */
typedef struct st_edge_etag_t {
    int weak; /* the W/ prefix (case-sensitive, %s"W/") */
    const char *opaque;
    size_t opaque_len;
} edge_etag_t;

/**
 * Parses one entity-tag: [ W/ ] DQUOTE *etagc DQUOTE, with OWS around it.
 * @param s    the value (need not be NUL-terminated; exactly len bytes are read)
 * @return 0 with *tag set (pointing into s), or -1 when s is not exactly one entity-tag
 */
int edge_etag_parse(const char *s, size_t len, edge_etag_t *tag);

/** RFC 9110 §8.8.3.2 strong comparison: neither weak and the opaque-tags are identical. */
int edge_etag_strong_eq(const edge_etag_t *a, const edge_etag_t *b);

/** RFC 9110 §8.8.3.2 weak comparison: the opaque-tags are identical, W/ ignored. */
int edge_etag_weak_eq(const edge_etag_t *a, const edge_etag_t *b);

/** Outcome of edge_cond_evaluate. */
typedef enum en_edge_cond_result_t {
    EDGE_COND_NONE = 0,           /* no precondition applied (absent, or every one ignored): serve as usual */
    EDGE_COND_PASS,               /* at least one precondition evaluated, all true: serve as usual (200) */
    EDGE_COND_NOT_MODIFIED,       /* If-None-Match / If-Modified-Since false on GET/HEAD: answer 304 */
    EDGE_COND_PRECONDITION_FAILED /* If-Match / If-Unmodified-Since false (or If-None-Match false on another method):
                                   * 412; a cache usually forwards the request instead (RFC 9111 §4.3.2) */
} edge_cond_result_t;

/** The precondition header fields of a request. A field with base == NULL is absent. */
typedef struct st_edge_cond_request_t {
    int is_get_or_head;
    h2o_iovec_t if_match, if_none_match, if_modified_since, if_unmodified_since;
} edge_cond_request_t;

/** What of the stored response the evaluation needs. */
typedef struct st_edge_cond_stored_t {
    int status;       /* stored status code; preconditions are ignored unless 2xx (RFC 9110 §13.2.1) */
    h2o_iovec_t etag; /* raw ETag field value; base == NULL when absent. A malformed one counts as absent. */
    int has_last_modified;
    int64_t last_modified;
    int has_date;
    int64_t date;
    int64_t response_time; /* when the edge received it: the If-Modified-Since fallback (RFC 9111 §4.3.2) */
} edge_cond_stored_t;

/**
 * Fills r from request headers. Repeated lines of one field are joined with ", " into pool memory (for the
 * list fields If-Match / If-None-Match this is the combined value of RFC 9110 §5.3; for the date fields it
 * makes the value invalid, which RFC 9110 §13.1.3/§13.1.4 say to ignore). Otherwise r points into headers.
 * @param pool  used only when a field appears more than once
 */
void edge_cond_request_from_headers(edge_cond_request_t *r, h2o_mem_pool_t *pool, h2o_iovec_t method, const h2o_header_t *headers,
                                    size_t num_headers);

/**
 * Evaluates the preconditions of a request against a stored response, in the order of RFC 9110 §13.2.2:
 * If-Match (strong comparison) else If-Unmodified-Since; then If-None-Match (weak comparison) else, for GET/HEAD
 * only, If-Modified-Since compared with the stored Last-Modified, else its Date, else response_time
 * (RFC 9111 §4.3.2). Invalid dates are ignored; malformed list members never match; an If-Unmodified-Since
 * against a response without Last-Modified cannot be proven true and fails (the caller forwards it).
 * If-Range is not evaluated here (see edge/range.h).
 * @param now  only the reference for the RFC 850 two-digit-year rule when parsing dates
 */
edge_cond_result_t edge_cond_evaluate(const edge_cond_request_t *r, const edge_cond_stored_t *s, int64_t now);

#define EDGE_304_ALWAYS 1       /* the 304 must carry it when the 200 would have (RFC 9110 §15.4.5) */
#define EDGE_304_WITHOUT_ETAG 2 /* Last-Modified: worth sending when the response has no ETag (RFC 9110 §15.4.5) */

/**
 * Which stored header fields a 304 generated from a stored response carries (RFC 9110 §15.4.5):
 * Content-Location, Date, ETag, Vary, Cache-Control, Expires -> EDGE_304_ALWAYS; Last-Modified ->
 * EDGE_304_WITHOUT_ETAG; anything else -> 0. Names compare case-insensitively.
 */
int edge_header_in_304(const char *name, size_t len);

/**
 * Whether a stored header field must keep its stored value when a 304 freshens the response (RFC 9111 §3.2):
 * Content-Length, the fields describing the stored body as this cache keeps it (Content-Encoding,
 * Content-Range, Transfer-Encoding) and hop-by-hop fields (Connection, Keep-Alive, Proxy-Connection, TE,
 * Upgrade, Trailer; RFC 9110 §7.6.1, RFC 9111 §3.1). @return 1 when it must not be updated
 */
int edge_header_not_updated_by_304(const char *name, size_t len);

/**
 * Whether a 304 (its ETag / Last-Modified) identifies the one stored response for update (RFC 9111 §4.3.4):
 * a strong ETag in the 304 must equal the stored ETag strongly; a weak one weakly; without ETag a
 * Last-Modified must equal the stored one. Deviation: a 304 with no validator at all freshens the stored
 * response even when that has validators (it answers the edge's own conditional request for it); the RFC
 * restricts that to stored responses without validators.
 * @return 1 when it may update, 0 when the 304 must be ignored (refetch unconditionally)
 */
int edge_304_selects_stored(h2o_iovec_t stored_etag, int stored_has_lm, int64_t stored_lm, h2o_iovec_t new_etag, int new_has_lm,
                            int64_t new_lm);

/**
 * Freshens stored header fields with a 304 (RFC 9111 §3.2): every field of the 304 replaces all stored lines of
 * the same name, except the fields edge_header_not_updated_by_304 names and those listed in the 304's Connection
 * field; stored fields the 304 does not mention are kept, in their order; the 304's fields follow, in theirs.
 * The caller recomputes age and freshness from the 304 (RFC 9111 §4.3.4); this touches header fields only.
 * @param pool   the result array, and copies of every name and value, are allocated here
 * @param out    set to the new array (valid as long as pool; independent of both inputs)
 * @return the number of headers in *out
 */
size_t edge_freshen_headers(h2o_mem_pool_t *pool, const h2o_header_t *stored, size_t num_stored, const h2o_header_t *resp304,
                            size_t num_304, h2o_header_t **out);

#endif
