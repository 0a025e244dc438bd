/*
 * edge/object.h: the stored response head (the `meta` blob of a store object).
 *
 * Layout (little-endian host order is fine: the store lives and dies with the machine):
 *   edge_object_hdr_t, then (version >= 2) the extension { i64 swr, i64 sie }, then (version >= 3)
 *   { u64 base_fill_id }, then num_headers times { u16 name_len, u32 value_len, name, value }.
 *   Records of this build set a storage bit in the head's flags: each name is then stored lower-cased,
 *   and a name_len with its top bit set is followed by the name, its original spelling (same length),
 *   then the value; earlier records store the name as received (see edge/object.c).
 * Encoding always writes the current version.
 * A decoded record is validated field by field; a bad one is EDGE_STORE_ECORRUPT for the caller
 * (a miss plus a log line), never an assert.
 */
#ifndef EDGE_OBJECT_H
#define EDGE_OBJECT_H

#define H2O_USE_LIBUV 0
#include <stdint.h>
#include "h2o.h"

#define EDGE_OBJECT_MAGIC 0x4d474445u /* "EDGM" */
#define EDGE_OBJECT_VERSION 3 /* 2 added flags, swr and sie; 3 base_fill_id; versions 1 and 2 still decode */

/* What of the response's (targeted) Cache-Control a hit needs, kept so hits never re-parse it. */
#define EDGE_OBJECT_NO_CACHE 0x1         /* no-cache: validate before every use */
#define EDGE_OBJECT_MUST_REVALIDATE 0x2  /* must-revalidate: never served stale */
#define EDGE_OBJECT_PROXY_REVALIDATE 0x4 /* proxy-revalidate, or s-maxage (RFC 9111 §5.2.2.10) */
#define EDGE_OBJECT_HAS_SWR 0x8          /* an explicit stale-while-revalidate (value in swr) */
#define EDGE_OBJECT_HAS_SIE 0x10         /* an explicit stale-if-error (value in sie) */
#define EDGE_OBJECT_HAS_SMAXAGE 0x20
#define EDGE_OBJECT_COMPRESSIBLE 0x40    /* gzip / br variants may exist (edge/compress_job.h) */
#define EDGE_OBJECT_VARY_MARKER 0x100    /* not a response: the Vary of the URL's variants (no body) */

typedef struct st_edge_object_t {
    int status;
    uint32_t flags;        /* EDGE_OBJECT_* */
    int64_t swr, sie;      /* stale-while-revalidate / stale-if-error seconds (with the HAS_ flags) */
    int64_t request_time;  /* edge clock (s) when the fill's request was sent */
    int64_t response_time; /* edge clock (s) when its head arrived */
    int64_t initial_age;   /* corrected initial age at response_time (RFC 9111 §4.2.3) */
    int64_t lifetime;      /* freshness lifetime (RFC 9111 §4.2.1) */
    h2o_header_t *headers; /* stored end-to-end headers, in origin order */
    size_t num_headers;
    uint64_t base_fill_id; /* a compressed variant (edge/compress_job.h): the fill id of the identity object it
                              was made from; 0 for everything else (and for records of versions 1 and 2) */
} edge_object_t;

/**
 * Serialises an object head into a buffer allocated from pool.
 * @return the blob (valid as long as the pool)
 */
h2o_iovec_t edge_object_encode(h2o_mem_pool_t *pool, const edge_object_t *obj);

/**
 * Parses a blob (on every hit: one allocation from pool, nothing copied for records of this build).
 * Header names that are h2o tokens point to the token; values, other names and orig_name point
 * into `blob` (valid as long as it is, e.g. the read transaction). orig_name is NULL when the
 * original spelling is the lower-cased name. The header array is allocated from pool.
 * @return 0, or -1 when the blob is malformed
 */
int edge_object_decode(h2o_mem_pool_t *pool, const void *blob, size_t len, edge_object_t *obj);

/**
 * edge_object_decode into the caller's arrays (no allocation): obj->headers becomes `headers`, and the names that are
 * no h2o token point into `names`; both hold `capacity` entries.
 * @return 0; -1 when the blob is malformed; 1 when it is valid but cannot be decoded this way (more than `capacity`
 *         headers, or a record of an earlier build whose names must be lower-cased into a pool)
 */
int edge_object_decode_into(const void *blob, size_t len, edge_object_t *obj, h2o_header_t *headers, h2o_iovec_t *names,
                            size_t capacity);

#endif
