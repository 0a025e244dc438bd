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
 * When the origin sent gzip (the edge asks for it), the fill stored the decoded identity as the base
 * and the origin's gzip bytes under a fill id of their own: the job commits those as the gzip variant
 * (gzip_fill_id) and encodes brotli only.
 *
 * Threads: submit from any thread; jobs run on the pool's threads, which block on the store (bounded
 * chunks in flight) but never on an event loop. The queue is bounded; a full queue drops the job
 * (counted). edge_compress_jobs_stop runs before edge_store_close. The workers are named "cdn-compress"
 * and run at nice EDGE_COMPRESS_NICE: on a busy CPU the event loops' hits come first.
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
#define EDGE_COMPRESS_NICE 10 /* the workers' nice value (a CFS weight about a tenth of a loop's) */

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
    /* Optional: the origin's own gzip bytes of this object, already written by the fill as CHUNK ops of
     * `gzip_fill_id` (one gzip member, decoded by the fill to make the base). The job then stores them as the
     * gzip variant instead of encoding one (same head rules, same 5% rule), and encodes brotli only. From the
     * successful submit on, the job owns that fill id: it ends in a COMMIT or an ABORT whatever happens
     * (edge_compress_jobs_stop dropping it included); when the submit fails the caller still owns it. 0: none. */
    uint64_t gzip_fill_id;
    uint64_t gzip_size;
    uint32_t gzip_num_chunks;
    /* A hot object (edge_compress_note_hit said so): both variants are made again at EDGE_DEFAULT_GZIP_LEVEL_HOT and
     * EDGE_DEFAULT_BROTLI_LEVEL_HOT and replace the ones stored (same hash: the COMMIT swaps them in place). */
    int hot;
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
 * @return 0, or -1 when the queue is full or the pool is not running (the job is dropped and counted; the
 *         caller must then ABORT the job's gzip_fill_id, if any)
 */
int edge_compress_job_submit(const edge_compress_job_t *job);

/**
 * The variant string of the `enc` variant of an object whose own variant is `variant` (may be empty),
 * allocated from pool: variant + EDGE_COMPRESS_VARIANT_SEP + "enc=gzip" / "enc=br".
 */
h2o_iovec_t edge_compress_variant_string(h2o_mem_pool_t *pool, const char *variant, size_t variant_len, edge_encoding_t enc);

/**
 * Counts a hit of a compressible object, named by its fill id (unique per stored version). Any thread, on the hit
 * path: one relaxed compare-and-swap in a fixed table of EDGE_COMPRESS_HOT_SLOTS counters, no lock, no allocation,
 * and only a load once the count is reached; two objects sharing a slot restart each other's count, which only
 * delays the recompression. Counts start over at each start of the process.
 * @return 1 exactly once per object version: on the hit that makes the count reach settings.hot_hits (the caller then
 *         submits a job with hot = 1); else 0 (always 0 when hot_hits is 0 or the pool is not running)
 */
int edge_compress_note_hit(uint64_t fill_id);

/* Counters (relaxed atomics), rendered by the admin metrics endpoint. */
typedef struct st_edge_compress_stats_t {
    uint64_t jobs_done, jobs_dropped, jobs_failed;
    uint64_t hot_jobs; /* jobs that remade the variants of a hot object at the best levels (counted in jobs_* too) */
    uint64_t bytes_in, bytes_out; /* identity bytes read, encoded bytes stored */
} edge_compress_stats_t;
void edge_compress_get_stats(edge_compress_stats_t *out);

#endif
