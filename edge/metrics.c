/*
 * edge/metrics.c: counters and the Prometheus text exposition served on the admin listener.
 * Counters are only ever added to (relaxed atomics); rendering reads them without a lock, so a
 * scrape may see two counters from slightly different instants, which Prometheus tolerates.
 */
#define H2O_USE_LIBUV 0
#include <stdio.h>
#include "h2o.h"
#include "edge/compress_job.h"
#include "edge/metrics.h"

edge_metrics_t edge_metrics;

static uint64_t get(const uint64_t *p)
{
    return __atomic_load_n(p, __ATOMIC_RELAXED);
}

h2o_iovec_t edge_metrics_render(h2o_mem_pool_t *pool, edge_store_t *store, const origin_t *origin)
{
    edge_store_stats_t ss = {0};
    origin_stats_t os = {0};
    edge_compress_stats_t cs;
    edge_compress_get_stats(&cs);
    if (store != NULL)
        edge_store_get_stats(store, &ss);
    if (origin != NULL)
        origin_get_stats(origin, &os);

    size_t cap = 8192;
    char *buf = h2o_mem_alloc_pool(pool, cap);
    int n = snprintf(buf, cap,
                     "# HELP cdn_edge_requests_total Client requests by cache outcome.\n"
                     "# TYPE cdn_edge_requests_total counter\n"
                     "cdn_edge_requests_total{cache=\"hit\"} %llu\n"
                     "cdn_edge_requests_total{cache=\"miss\"} %llu\n"
                     "cdn_edge_requests_total{cache=\"pass\"} %llu\n"
                     "cdn_edge_requests_total{cache=\"error\"} %llu\n"
                     "# HELP cdn_edge_client_bytes_total Body bytes sent to clients.\n"
                     "# TYPE cdn_edge_client_bytes_total counter\n"
                     "cdn_edge_client_bytes_total %llu\n"
                     "# HELP cdn_edge_origin_bytes_total Body bytes received from the origin.\n"
                     "# TYPE cdn_edge_origin_bytes_total counter\n"
                     "cdn_edge_origin_bytes_total %llu\n"
                     "# HELP cdn_edge_origin_requests_total Requests sent to the origin.\n"
                     "# TYPE cdn_edge_origin_requests_total counter\n"
                     "cdn_edge_origin_requests_total %llu\n"
                     "# HELP cdn_edge_origin_errors_total Origin requests that failed.\n"
                     "# TYPE cdn_edge_origin_errors_total counter\n"
                     "cdn_edge_origin_errors_total %llu\n"
                     "# HELP cdn_edge_origin_connections_total Connections opened to the origin.\n"
                     "# TYPE cdn_edge_origin_connections_total counter\n"
                     "cdn_edge_origin_connections_total %llu\n"
                     "# HELP cdn_edge_fills_total Origin responses by what the cache did with them.\n"
                     "# TYPE cdn_edge_fills_total counter\n"
                     "cdn_edge_fills_total{result=\"stored\"} %llu\n"
                     "cdn_edge_fills_total{result=\"unstored\"} %llu\n"
                     "cdn_edge_fills_total{result=\"aborted\"} %llu\n"
                     "cdn_edge_fills_total{result=\"dropped\"} %llu\n"
                     "# HELP cdn_edge_store_bytes Live bytes in the store.\n"
                     "# TYPE cdn_edge_store_bytes gauge\n"
                     "cdn_edge_store_bytes %llu\n"
                     "# HELP cdn_edge_store_max_bytes The store's byte budget.\n"
                     "# TYPE cdn_edge_store_max_bytes gauge\n"
                     "cdn_edge_store_max_bytes %llu\n"
                     "# HELP cdn_edge_store_objects Objects in the store.\n"
                     "# TYPE cdn_edge_store_objects gauge\n"
                     "cdn_edge_store_objects %llu\n"
                     "# HELP cdn_edge_evictions_total Objects evicted to stay under the budget.\n"
                     "# TYPE cdn_edge_evictions_total counter\n"
                     "cdn_edge_evictions_total %llu\n"
                     "# HELP cdn_edge_store_commits_total Write transactions committed.\n"
                     "# TYPE cdn_edge_store_commits_total counter\n"
                     "cdn_edge_store_commits_total %llu\n"
                     "# HELP cdn_edge_store_map_full_total Write batches that hit the map size.\n"
                     "# TYPE cdn_edge_store_map_full_total counter\n"
                     "cdn_edge_store_map_full_total %llu\n"
                     "# HELP cdn_edge_store_swept_fills_total Unfinished fills whose chunks were swept.\n"
                     "# TYPE cdn_edge_store_swept_fills_total counter\n"
                     "cdn_edge_store_swept_fills_total %llu\n"
                     "# HELP cdn_edge_store_errors_total Store reads or writes that failed.\n"
                     "# TYPE cdn_edge_store_errors_total counter\n"
                     "cdn_edge_store_errors_total %llu\n"
                     "# HELP cdn_edge_watchdog_closes_total Responses ended because the client took no bytes.\n"
                     "# TYPE cdn_edge_watchdog_closes_total counter\n"
                     "cdn_edge_watchdog_closes_total %llu\n"
                     "# HELP cdn_edge_revalidations_total Stale objects freshened by a 304 from the origin.\n"
                     "# TYPE cdn_edge_revalidations_total counter\n"
                     "cdn_edge_revalidations_total %llu\n"
                     "# HELP cdn_edge_stale_served_total Stale objects served (stale-while-revalidate, stale-if-error).\n"
                     "# TYPE cdn_edge_stale_served_total counter\n"
                     "cdn_edge_stale_served_total %llu\n"
                     "# HELP cdn_edge_background_revalidations_total Revalidations started in the background.\n"
                     "# TYPE cdn_edge_background_revalidations_total counter\n"
                     "cdn_edge_background_revalidations_total %llu\n"
                     "# HELP cdn_edge_origin_gunzip_total Origin responses sent gzipped, decoded by the fill.\n"
                     "# TYPE cdn_edge_origin_gunzip_total counter\n"
                     "cdn_edge_origin_gunzip_total{result=\"ok\"} %llu\n"
                     "cdn_edge_origin_gunzip_total{result=\"failed\"} %llu\n"
                     "# HELP cdn_edge_compress_jobs_total Compressed-variant jobs by outcome.\n"
                     "# TYPE cdn_edge_compress_jobs_total counter\n"
                     "cdn_edge_compress_jobs_total{result=\"done\"} %llu\n"
                     "cdn_edge_compress_jobs_total{result=\"dropped\"} %llu\n"
                     "cdn_edge_compress_jobs_total{result=\"failed\"} %llu\n"
                     "# HELP cdn_edge_compress_hot_jobs_total Hot objects whose variants were remade at the best levels.\n"
                     "# TYPE cdn_edge_compress_hot_jobs_total counter\n"
                     "cdn_edge_compress_hot_jobs_total %llu\n"
                     "# HELP cdn_edge_compress_bytes_in_total Identity bytes read by compression jobs.\n"
                     "# TYPE cdn_edge_compress_bytes_in_total counter\n"
                     "cdn_edge_compress_bytes_in_total %llu\n"
                     "# HELP cdn_edge_compress_bytes_out_total Encoded bytes stored by compression jobs.\n"
                     "# TYPE cdn_edge_compress_bytes_out_total counter\n"
                     "cdn_edge_compress_bytes_out_total %llu\n",
                     (unsigned long long)get(&edge_metrics.req_hit), (unsigned long long)get(&edge_metrics.req_miss),
                     (unsigned long long)get(&edge_metrics.req_pass), (unsigned long long)get(&edge_metrics.req_error),
                     (unsigned long long)get(&edge_metrics.client_bytes), (unsigned long long)os.bytes_received,
                     (unsigned long long)os.requests, (unsigned long long)os.errors,
                     (unsigned long long)os.connections_opened, (unsigned long long)get(&edge_metrics.fills_stored),
                     (unsigned long long)get(&edge_metrics.fills_unstored),
                     (unsigned long long)get(&edge_metrics.fills_aborted),
                     (unsigned long long)get(&edge_metrics.fills_dropped), (unsigned long long)ss.live_bytes,
                     (unsigned long long)ss.max_size_bytes, (unsigned long long)ss.objects,
                     (unsigned long long)ss.evictions, (unsigned long long)ss.commits, (unsigned long long)ss.map_full,
                     (unsigned long long)ss.swept_fills, (unsigned long long)get(&edge_metrics.store_errors),
                     (unsigned long long)get(&edge_metrics.watchdog_closes),
                     (unsigned long long)get(&edge_metrics.revalidations),
                     (unsigned long long)get(&edge_metrics.stale_served),
                     (unsigned long long)get(&edge_metrics.background_revalidations),
                     (unsigned long long)get(&edge_metrics.origin_gunzip),
                     (unsigned long long)get(&edge_metrics.origin_gunzip_failed),
                     (unsigned long long)cs.jobs_done, (unsigned long long)cs.jobs_dropped,
                     (unsigned long long)cs.jobs_failed, (unsigned long long)cs.hot_jobs, (unsigned long long)cs.bytes_in,
                     (unsigned long long)cs.bytes_out);
    if (n < 0)
        n = 0;
    if ((size_t)n >= cap)
        n = (int)cap - 1; /* cap is sized for every counter at 20 digits */
    return h2o_iovec_init(buf, (size_t)n);
}
