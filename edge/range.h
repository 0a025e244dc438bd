/*
 * edge/range.h: byte-range requests (RFC 9110 §14) for a stored representation of known length, as pure
 * functions. This edge answers a single byte range with 206, an unsatisfiable one with 416, and anything else
 * (several ranges, other units, invalid syntax) with the whole representation (200), as RFC 9110 §14.2 allows.
 * No state, no I/O, no clock. Safe from any thread.
 */
#ifndef EDGE_RANGE_H
#define EDGE_RANGE_H

#include <stddef.h>
#include <stdint.h>
#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include "h2o.h"

/** Outcome of edge_range_parse. Only SINGLE (206) and UNSATISFIABLE (416) change the answer; the rest mean 200. */
typedef enum en_edge_range_result_t {
    EDGE_RANGE_NONE = 0,      /* no Range, or one satisfiable only by the whole empty representation: 200 */
    EDGE_RANGE_SINGLE,        /* one satisfiable range: 206 with *first..*last (inclusive) */
    EDGE_RANGE_UNSATISFIABLE, /* 416 with Content-Range: bytes *\/length */
    EDGE_RANGE_MULTIPLE,      /* valid, but more than one range: ignored, 200 */
    EDGE_RANGE_INVALID,       /* not a valid ranges-specifier: ignored, 200 */
    EDGE_RANGE_OTHER_UNIT     /* a unit other than bytes: ignored, 200 */
} edge_range_result_t;

/**
 * Parses a Range field value (RFC 9110 §14.1.2, §14.2) against a representation of `length` bytes.
 * Grammar: "bytes" (case-insensitive) "=" 1#( first-pos "-" [ last-pos ] / "-" suffix-length ). Empty list
 * members and OWS around members are accepted. Numbers of any length are accepted and compared exactly; a
 * last-pos past the end is clamped to length - 1; a suffix longer than the representation selects all of it.
 * Range handling is defined for GET only (RFC 9110 §14.2): the caller ignores Range on any other method, and on
 * any stored status but 200.
 * @param value     need not be NUL-terminated; exactly len bytes are read
 * @param first     set for EDGE_RANGE_SINGLE: first byte position
 * @param last      set for EDGE_RANGE_SINGLE: last byte position (inclusive), first <= last < length
 */
edge_range_result_t edge_range_parse(const char *value, size_t len, uint64_t length, uint64_t *first, uint64_t *last);

/** Seconds between Last-Modified and Date that make Last-Modified a strong validator for a cache (RFC 9110 §8.8.2.2). */
#ifndef EDGE_LM_STRONG_MIN_SEC
#define EDGE_LM_STRONG_MIN_SEC 60
#endif

/**
 * Evaluates If-Range (RFC 9110 §13.1.5): whether the Range field applies. An entity-tag (first character DQUOTE,
 * or W/) must equal the stored ETag by strong comparison (a weak one never matches). An HTTP-date must exactly
 * equal the stored Last-Modified, and that Last-Modified must be strong: the stored Date at least
 * EDGE_LM_STRONG_MIN_SEC after it (§8.8.2.2). Anything else (invalid value, no stored validator) is false.
 * @param stored_etag  raw ETag field value of the stored response, base == NULL when absent
 * @param now          only the reference for the RFC 850 two-digit-year rule
 * @return 1 when the Range is to be honoured, 0 when it must be ignored (answer 200)
 */
int edge_if_range_matches(const char *value, size_t len, h2o_iovec_t stored_etag, int has_last_modified, int64_t last_modified,
                          int has_date, int64_t date, int64_t now);

/** Size of a buffer that holds any Content-Range value written below, NUL included. */
#define EDGE_CONTENT_RANGE_BUFSZ 72

/**
 * Writes the Content-Range value "bytes first-last/length" (RFC 9110 §14.4) into buf, NUL-terminated.
 * @return its length
 */
size_t edge_content_range_format(char buf[EDGE_CONTENT_RANGE_BUFSZ], uint64_t first, uint64_t last, uint64_t length);

/** Writes "bytes *\/length", the Content-Range of a 416 (RFC 9110 §15.5.17), into buf. @return its length */
size_t edge_content_range_format_unsatisfied(char buf[EDGE_CONTENT_RANGE_BUFSZ], uint64_t length);

#endif
