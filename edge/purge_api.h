/*
 * edge/purge_api.h: the purge API of a node (`POST /purge` on the admin listener, the `PURGE` method on client
 * listeners) and, with `purge.redis`, the propagation of purges over a Redis stream.
 *
 * Without purge.redis a purge is one BAN op per item, answered 200 once every op's write transaction committed
 * (synced). With purge.redis a purge is XADDed to the stream and answered 200 once this node's stream consumer
 * applied that entry; every node's consumer applies every entry, in stream order, from the last entry it applied (its
 * cursor is committed with the entry's last ban, in the same write transaction).
 *
 * Threads: the handlers run on the worker loops and never block (Redis is used only by two threads of this module:
 * the consumer and a publisher). Completions come back to the request's loop through th->purge_receiver.
 */
#ifndef EDGE_PURGE_API_H
#define EDGE_PURGE_API_H

#define H2O_USE_LIBUV 0
#include "h2o.h"
#include "edge/edge.h"

/**
 * Starts the purge module. With purge.redis: starts the stream consumer and publisher threads, then waits until the
 * consumer has applied every entry it missed, for at most purge.catchup_timeout; if Redis cannot be reached it logs
 * and returns at once (the consumer keeps retrying). Call once, from main, after the store is open and before the
 * worker threads serve.
 * @return 0, or -1 when a thread cannot be created (logged)
 */
int edge_purge_api_start(edge_runtime_t *rt);

/**
 * Stops the stream threads (if any) and answers nothing more. Call from main after the worker threads stopped and
 * before edge_store_close. Safe when edge_purge_api_start was not called.
 */
void edge_purge_api_stop(void);

/** Registers `POST /purge` on the admin host. */
void edge_purge_api_register(h2o_hostconf_t *hostconf, edge_runtime_t *rt);

/**
 * Registers a handler that answers the PURGE method (edge_purge_api_handle_client_purge) and passes every other
 * request on. Register it on the client path before edge_handler_register.
 */
void edge_purge_api_register_client(h2o_pathconf_t *pathconf, edge_runtime_t *rt);

/**
 * Handles `PURGE <target>` on a client listener: with a valid `Authorization: Bearer <admin.token>`, purges the
 * request's own URL (scheme://authority/path?query keyed by edge_cache_key_build, so every variant stored under that
 * key) exactly like a POST /purge with that one URL (through the stream when purge.redis is set).
 * Answers 200 (JSON), 401 (no or wrong token; nothing changes), 403 (no admin.token configured), 400 (the target
 * cannot be keyed), 500/503/504 as POST /purge.
 * @return 0 when the request was taken (answered now or later), -1 when the method is not PURGE (not touched)
 */
int edge_purge_api_handle_client_purge(h2o_req_t *req, edge_runtime_t *rt);

/** Registers th->purge_receiver and the per-loop wait timer. Call on the worker thread after h2o_context_init. */
void edge_purge_api_thread_init(edge_thread_t *th);

/**
 * The purge counters in Prometheus text (cdn_edge_purges_total{kind}, cdn_edge_purge_requests_total{result},
 * cdn_edge_purge_errors_total and, with purge.redis, cdn_edge_purge_stream_up, cdn_edge_purge_stream_lag_seconds,
 * cdn_edge_purge_stream_{applied,published,skipped}_total, cdn_edge_purge_stream_errors_total).
 * @return a buffer from pool
 */
h2o_iovec_t edge_purge_api_render_metrics(h2o_mem_pool_t *pool);

/** @return -1 without purge.redis, else 1 when the stream connection is up and 0 when it is down */
int edge_purge_api_stream_state(void);

#endif
