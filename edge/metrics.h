/*
 * edge/metrics.h: process-wide counters and their Prometheus text rendering.
 *
 * Counters are plain uint64_t updated with relaxed atomic adds from any thread (no lock). Every
 * failure log line has a counter next to it; tests assert on these names, so they are stable API:
 *   cdn_edge_requests_total{cache="hit|miss|pass|error"}
 *   cdn_edge_client_bytes_total, cdn_edge_origin_bytes_total, cdn_edge_origin_requests_total,
 *   cdn_edge_origin_errors_total, cdn_edge_fills_total{result="stored|unstored|aborted|dropped"},
 *   cdn_edge_store_bytes, cdn_edge_store_objects, cdn_edge_store_max_bytes, cdn_edge_evictions_total,
 *   cdn_edge_store_errors_total, cdn_edge_watchdog_closes_total, cdn_edge_revalidations_total,
 *   cdn_edge_stale_served_total, cdn_edge_background_revalidations_total,
 *   cdn_edge_compress_jobs_total{result="done|dropped|failed"}, cdn_edge_compress_bytes_in_total,
 *   cdn_edge_compress_bytes_out_total (from edge_compress_get_stats, edge/compress_job.h).
 */
#ifndef EDGE_METRICS_H
#define EDGE_METRICS_H

#include <stdint.h>
#include "edge/store.h"
#include "origin/origin.h"

typedef struct st_edge_metrics_t {
    uint64_t req_hit, req_miss, req_pass, req_error;
    uint64_t client_bytes;
    uint64_t fills_stored, fills_unstored, fills_aborted, fills_dropped;
    uint64_t store_errors;
    uint64_t watchdog_closes;
    uint64_t revalidations;         /* stale objects freshened by a 304 */
    uint64_t stale_served;          /* stale objects served (stale-while-revalidate, stale-if-error, max-stale) */
    uint64_t background_revalidations;
    uint64_t origin_gunzip;         /* origin responses sent gzipped and decoded by the fill */
    uint64_t origin_gunzip_failed;  /* ... whose gzip was corrupt, truncated or a bomb: not stored */
} edge_metrics_t;

extern edge_metrics_t edge_metrics;

#define EDGE_METRIC_ADD(field, n) __atomic_fetch_add(&edge_metrics.field, (uint64_t)(n), __ATOMIC_RELAXED)

/**
 * Renders the Prometheus text exposition of every counter.
 * @return a buffer allocated from pool, valid for the pool's lifetime
 */
h2o_iovec_t edge_metrics_render(h2o_mem_pool_t *pool, edge_store_t *store, const origin_t *origin);

#endif
