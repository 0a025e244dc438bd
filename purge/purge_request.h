/*
 * purge/purge_request.h: the body of `POST /purge`, parsed, validated whole and normalised; and built back (cdn-purge).
 *
 * Body: {"urls": [...], "prefixes": [...], "hosts": [...], "tags": [...], "all": false, "soft": false}, every field
 * optional. Pure functions (jansson inside), no state, any thread.
 *
 * Semantics the edge applies (the parser only checks and normalises):
 * - urls: cache keys (purge/url.h rules, the same as edge_cache_key_build): every variant stored under the key goes.
 * - prefixes: absolute URL prefixes normalised the same way ("https://Example.com" is "https://example.com/"), matched
 *   as a byte prefix of the cache key. A prefix always reaches the path's "/", so it never spans hosts.
 * - hosts: host[:port] (purge_host_normalize), matched exactly against the key's authority.
 * - tags: matched exactly (case-sensitive) against the tags stored from the origin's tag headers (purge/tags.h).
 * - all: everything. It may NOT be combined with non-empty lists (400): a client that meant a list and sent all:true
 *   by mistake would empty the cache, and "all plus a list" has no meaning of its own.
 * - soft: mark stale instead of removing, for every kind above.
 * Each list is de-duplicated after normalisation (first occurrence kept, order kept).
 */
#ifndef PURGE_REQUEST_H
#define PURGE_REQUEST_H

#include <stddef.h>

#define PURGE_DEFAULT_MAX_BODY_BYTES (1024 * 1024)
#define PURGE_DEFAULT_MAX_LIST_ITEMS 1000
#define PURGE_DEFAULT_MAX_TOTAL_ITEMS 1000
/** Longest tag accepted, in a purge or from an origin header */
#define PURGE_MAX_TAG_BYTES 256

/** purge_request_parse / purge_request_check_size results */
enum {
    PURGE_REQUEST_OK = 0,
    PURGE_REQUEST_EINVAL = -1,  /**< malformed or invalid: answer 400 with the error text */
    PURGE_REQUEST_ETOOBIG = -2, /**< body over limits->max_body_bytes: answer 413 */
};

typedef struct st_purge_limits_t {
    size_t max_body_bytes;  /**< checked by purge_request_check_size (and again by purge_request_parse) */
    size_t max_list_items;  /**< per list, counted before de-duplication */
    size_t max_total_items; /**< all lists together, counted before de-duplication */
} purge_limits_t;

/** The PURGE_DEFAULT_* limits */
extern const purge_limits_t purge_default_limits;

typedef struct st_purge_list_t {
    char **items; /**< malloc'ed NUL-terminated strings */
    size_t count;
} purge_list_t;

typedef struct st_purge_request_t {
    purge_list_t urls;
    purge_list_t prefixes;
    purge_list_t hosts;
    purge_list_t tags;
    int all;
    int soft;
} purge_request_t;

/**
 * Tells whether a body of `len` bytes may be read at all. Call it with the Content-Length (or the bytes received so
 * far) before buffering the body.
 * @return PURGE_REQUEST_OK, or PURGE_REQUEST_ETOOBIG (answer 413)
 */
int purge_request_check_size(size_t len, const purge_limits_t *limits);

/**
 * Parses and validates a whole purge body. Nothing is returned half-filled: on failure *out is left zeroed.
 * Refused (PURGE_REQUEST_EINVAL, with a reason in err): malformed JSON or trailing bytes; a top level that is not an
 * object; duplicate or unknown fields (the field is named); lists that are not arrays of strings; all/soft that are
 * not booleans; a bad URL, prefix, host or tag (the field and index are named, e.g. `urls[2]: bad port`); a list
 * over max_list_items or all lists together over max_total_items; all:true with a non-empty list; nothing to purge.
 * @param body    the bytes (need not be NUL-terminated)
 * @param limits  limits; &purge_default_limits for the defaults
 * @param[out] out  zeroed then filled; owned by the caller, released with purge_request_free
 * @param[out] err  a one-line reason on failure (may be NULL)
 * @return PURGE_REQUEST_OK, PURGE_REQUEST_EINVAL or PURGE_REQUEST_ETOOBIG
 */
int purge_request_parse(const char *body, size_t len, const purge_limits_t *limits, purge_request_t *out, char *err,
                        size_t errlen);

/** Frees what a purge_request_t owns and zeroes it. Safe on a zeroed request and twice. */
void purge_request_free(purge_request_t *req);

/**
 * Appends a copy of s to a list (for callers building a request, like cdn-purge).
 * @return 0, or -1 on OOM (the list is unchanged)
 */
int purge_list_push(purge_list_t *list, const char *s);

/**
 * Serialises a request as a compact JSON object with all six fields, in the order urls, prefixes, hosts, tags,
 * all, soft. The strings are written as they are: run purge_request_parse on the result to validate and normalise.
 * @return a malloc'ed NUL-terminated string owned by the caller (free()), or NULL on OOM or a string that is not UTF-8
 */
char *purge_request_to_json(const purge_request_t *req);

#endif
