/*
 * edge/vary.h: secondary cache keys from Vary (RFC 9111 §4.1, RFC 9110 §12.5.5) as pure functions.
 *
 * A stored response's Vary is parsed into a sorted, de-duplicated list of field names; a request's values of
 * those fields are normalised and written as one deterministic, unambiguous string, so that the handler can
 * keep several variants per URL and select one by comparing strings. No state, no I/O. Safe from any thread.
 */
#ifndef EDGE_VARY_H
#define EDGE_VARY_H

#include <stddef.h>
#include <stdint.h>
#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include "h2o.h"

/** A Vary naming more distinct fields than this is refused (the response is treated as uncacheable). */
#ifndef EDGE_VARY_MAX_FIELDS
#define EDGE_VARY_MAX_FIELDS 16
#endif

/* Results of edge_vary_parse / edge_vary_from_headers / edge_vary_key (0 is OK). */
#define EDGE_VARY_STAR (-1)      /* Vary: * (never matches, RFC 9111 §4.1) */
#define EDGE_VARY_TOO_MANY (-2)  /* more than EDGE_VARY_MAX_FIELDS distinct names */
#define EDGE_VARY_MALFORMED (-3) /* a member that is neither "*" nor a field-name (token) */

/**
 * Field names of a Vary, sorted case-insensitively, without duplicates. `fields` point into the parsed field
 * values (the caller keeps those alive as long as the struct). `err` keeps the first failure: once set, later
 * lines change nothing. Zero the struct before the first line.
 */
typedef struct st_edge_vary_t {
    size_t num_fields;
    h2o_iovec_t fields[EDGE_VARY_MAX_FIELDS];
    int err; /* 0, EDGE_VARY_STAR, EDGE_VARY_TOO_MANY or EDGE_VARY_MALFORMED */
} edge_vary_t;

/**
 * Accumulates one Vary field line (Vary = #( "*" / field-name ), RFC 9110 §12.5.5) into vary.
 * Empty members and OWS are accepted; names compare case-insensitively.
 * @return vary->err: 0 or a negative EDGE_VARY_* code
 */
int edge_vary_parse(edge_vary_t *vary, const char *value, size_t len);

/** Zeroes vary and accumulates every Vary line of headers. @return vary->err */
int edge_vary_from_headers(edge_vary_t *vary, const h2o_header_t *headers, size_t num_headers);

/** @return a static description of an EDGE_VARY_* code ("ok" for 0) */
const char *edge_vary_strerror(int err);

/** Buffer size for edge_vary_fold_accept_encoding, NUL included ("br,gzip"). */
#define EDGE_VARY_AE_BUFSZ 8

/**
 * Folds an Accept-Encoding value (RFC 9110 §12.5.3) to the codings this edge serves, sorted: "br,gzip", "br",
 * "gzip" or "". A coding counts when it, or `*` without an explicit entry for it, has a weight above 0;
 * "x-gzip" is gzip (RFC 9110 §8.4.1.3); the first entry for a coding wins; a malformed weight excludes its entry.
 * @param value  NULL/0 when the field is absent: folds to "" as the edge then serves identity
 * @return the length written to buf (NUL-terminated)
 */
size_t edge_vary_fold_accept_encoding(const char *value, size_t len, char buf[EDGE_VARY_AE_BUFSZ]);

/**
 * Normalises the lines of one request field for keying: each line trimmed of OWS, empty lines dropped, lines
 * joined with ",", and OWS next to a comma (outside quoted-strings) removed. "a , b" + "c" -> "a,b,c".
 * @param dst  at least (sum of line lengths + number of lines) bytes; not NUL-terminated
 * @return the length written
 */
size_t edge_vary_normalize(const h2o_iovec_t *lines, size_t num_lines, char *dst);

/**
 * Builds the secondary key of a request for a stored Vary: for each field in vary's (sorted) order,
 * "name=LEN:VALUE;" with the lowercased name and the normalised value (Accept-Encoding folded), or "name;"
 * when the request lacks the field (absent differs from empty, RFC 9111 §4.1). An empty Vary gives "".
 * @param pool  the key is allocated here (NUL-terminated); valid as long as pool
 * @return 0 with *key set, or vary->err (EDGE_VARY_STAR: no request matches; the others: do not cache)
 */
int edge_vary_key(h2o_mem_pool_t *pool, const edge_vary_t *vary, const h2o_header_t *headers, size_t num_headers, h2o_iovec_t *key);

#endif
