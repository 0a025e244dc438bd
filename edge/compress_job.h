/*
 * edge/compress_job.h: compressed variants made once, off the event loops.
 *
 * After an identity object is committed, the handler submits a job for it when it is compressible
 * (edge_compress_eligible in edge/compress.h). A pool of worker threads reads the object's chunks
 * from the store, streams them through the gzip and brotli encoders (edge/compress.c), and stores
 * each result as an object of its own: same URL key, variant string `<base variant> "\x01" "enc=gzip"`
 * (or "enc=br"), hash edge_store_variant_hash(key, that variant string), group = the URL's hash, the
 * same tags as the base object, and a meta blob that is the base object's head plus
 * `Content-Encoding`, an ETag made distinct per encoding (edge_etag_for_encoding), `Vary` including
 * Accept-Encoding, and base_fill_id = the base object's fill id. A hit that prefers an encoding looks
 * the variant up and serves it only when its base_fill_id equals the fill id of the base object it
 * found, so a variant of an older version is never served. Nothing is ever compressed on a hit.
 *
 * Threads: submit from any thread; jobs run on the pool's threads, which block on the store (bounded
 * chunks in flight) but never on an event loop. The queue is bounded; a full queue drops the job
 * (counted). edge_compress_jobs_stop runs before edge_store_close.
 */
#ifndef EDGE_COMPRESS_JOB_H
#define EDGE_COMPRESS_JOB_H

#define H2O_USE_LIBUV 0
#include <stddef.h>
#include <stdint.h>
#include "h2o.h"
#include "edge/compress.h"
#include "edge/store.h"

#define EDGE_COMPRESS_VARIANT_SEP '\x01'

typedef struct st_edge_compress_job_t {
    const char *key; /* the URL key */
    size_t key_len;
    const char *variant; /* the base object's Vary variant ("" and 0 when it has none) */
    size_t variant_len;
    uint8_t url_hash[EDGE_STORE_HASH_LEN];  /* the group of the URL's objects */
    uint8_t base_hash[EDGE_STORE_HASH_LEN]; /* where the base (identity) object is stored */
    uint64_t base_fill_id;
    uint64_t body_size;
    uint32_t num_chunks;
    const void *meta; /* the base object's meta blob (edge/object.h) */
    size_t meta_len;
} edge_compress_job_t;

/**
 * Starts the worker threads. Call once, after the store is open and before the event loops serve.
 * @param settings  copied
 * @return 0, or -1 (threads could not start)
 */
int edge_compress_jobs_start(edge_store_t *store, const edge_compress_settings_t *settings, unsigned threads,
                             size_t max_queued);

/** Stops the workers: queued jobs that have not started are dropped, running ones finish. Idempotent. */
void edge_compress_jobs_stop(void);

/**
 * Queues a job; everything it points to is copied. Any thread; never blocks on I/O.
 * @return 0, or -1 when the queue is full or the pool is not running (the job is dropped and counted)
 */
int edge_compress_job_submit(const edge_compress_job_t *job);

/**
 * The variant string of the `enc` variant of an object whose own variant is `variant` (may be empty),
 * allocated from pool: variant + EDGE_COMPRESS_VARIANT_SEP + "enc=gzip" / "enc=br".
 */
h2o_iovec_t edge_compress_variant_string(h2o_mem_pool_t *pool, const char *variant, size_t variant_len, edge_encoding_t enc);

/* Counters (relaxed atomics), rendered by the admin metrics endpoint. */
typedef struct st_edge_compress_stats_t {
    uint64_t jobs_done, jobs_dropped, jobs_failed;
    uint64_t bytes_in, bytes_out; /* identity bytes read, encoded bytes stored */
} edge_compress_stats_t;
void edge_compress_get_stats(edge_compress_stats_t *out);

#endif
