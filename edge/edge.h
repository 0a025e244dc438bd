/*
 * edge/edge.h: the process runtime shared by main, the request handler and the admin handlers.
 *
 * Lifetimes: the runtime is built in main before the worker threads start and is read-only while
 * they run (counters excepted, which are atomics). Each worker thread owns one edge_thread_t: its
 * event loop, h2o context, origin context and per-loop timers; only that thread touches it, except
 * `store_receiver`, which the store's writer thread posts completion messages to.
 */
#ifndef EDGE_EDGE_H
#define EDGE_EDGE_H

#define H2O_USE_LIBUV 0
#include <pthread.h>
#include "h2o.h"
#include "conf/config.h"
#include "edge/compress.h"
#include "edge/store.h"
#include "origin/origin.h"

typedef struct st_edge_runtime_t {
    const conf_t *conf;
    edge_store_t *store;
    origin_t *origin;
    const char *const *tag_headers;   /* NULL-terminated: response headers with comma-separated purge tags
                                         besides Surrogate-Key and Cache-Tag (purge.tag_headers) */
    int compress_enabled;             /* compressed variants are made (edge/compress_job.h) */
    edge_compress_settings_t compress; /* which responses, at which levels */
    h2o_globalconf_t globalconf;
} edge_runtime_t;

typedef struct st_edge_thread_t {
    unsigned index;
    edge_runtime_t *rt;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
    origin_ctx_t *origin;
    h2o_multithread_receiver_t store_receiver; /* completions of this thread's store ops */
    h2o_multithread_receiver_t fill_receiver;  /* progress of other fills this thread's clients wait on */
    h2o_multithread_receiver_t purge_receiver; /* finished purges of this thread's requests (edge/purge_api.c) */
    h2o_timeout_t write_timeout;               /* the write watchdog (h2o 2.2.5 has none) */
    h2o_timeout_entry_t snapshot_release;      /* gives the hits' shared store snapshot back each loop iteration */
    struct st_key_slot_t *key_cache;           /* keys of recent request targets (edge/handler.c), NULL until used */
    struct st_head_slot_t *head_memo;          /* decoded heads of recent hits (edge/handler.c), NULL until used */
    size_t inflight_requests;                  /* requests taken by our handlers and not yet disposed */
    size_t live_fills;                         /* fills owned by this thread (origin side or ops pending) */
} edge_thread_t;

/** The worker thread the caller runs on (set by main before the thread's loop starts). */
extern __thread edge_thread_t *edge_this_thread;

/**
 * The cache key of a request target: edge_cache_key_build (edge/cache_key.h), then the configured query rules
 * (cache.query, cache.query_drop). Every place that keys a URL uses this, purges included.
 * @return 0, or -1 when the target cannot be keyed (400)
 */
int edge_request_key(const edge_runtime_t *rt, h2o_mem_pool_t *pool, h2o_iovec_t scheme, h2o_iovec_t authority,
                     h2o_iovec_t raw_path, h2o_iovec_t *key, h2o_iovec_t *path);

/**
 * Registers the caching proxy handler on a path (hit / miss / pass).
 * The runtime must outlive every context.
 */
void edge_handler_register(h2o_pathconf_t *pathconf, edge_runtime_t *rt);

/** Registers the admin endpoints (/healthz, /metrics) on the admin host's paths. */
void edge_admin_register(h2o_hostconf_t *hostconf, edge_runtime_t *rt);

/** Sets up this thread's handler state (store receiver, watchdog timer). Call after h2o_context_init. */
void edge_handler_thread_init(edge_thread_t *th);
/** Tears it down (after every request and fill of the thread has finished). */
void edge_handler_thread_dispose(edge_thread_t *th);

#endif
