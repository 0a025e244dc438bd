/*
 * origin/origin.c: the dispatch behind origin.h, and what both origins share: the per-loop context,
 * fetch allocation, the guarded user callbacks, the connection-slot queue, error texts and counters.
 *
 * Contract:
 * - origin_t is read-only after origin_create except for its counters (relaxed atomics, any thread).
 * - origin_ctx_t and every fetch belong to one loop thread; nothing here locks.
 * - User callbacks run only from h2o callbacks or from our own timeout entries, never from inside
 *   origin_fetch_start/pause/resume/cancel. origin_fetch_start always queues; a 0 ms timer dispatches.
 * - A fetch is freed exactly once: by origin__emit_end after on_end returns, by origin_fetch_cancel, or
 *   (cancel from inside a callback) by the code that made that callback, once it returns.
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "origin/origin_private.h"

/* --- shared fetch plumbing --- */

static void on_dispatch(h2o_timeout_entry_t *entry)
{
    origin_ctx_t *octx = H2O_STRUCT_FROM_MEMBER(origin_ctx_t, dispatch_entry, entry);

    /* pop one at a time: a start may end synchronously and its on_end may queue or cancel others */
    while (octx->inflight < octx->origin->max_connections_per_loop && !h2o_linklist_is_empty(&octx->waitq)) {
        origin_fetch_t *fetch = H2O_STRUCT_FROM_MEMBER(origin_fetch_t, wait_link, octx->waitq.next);
        h2o_linklist_unlink(&fetch->wait_link);
        --octx->waitq_len;
        fetch->queued = 0;
        fetch->active = 1;
        ++octx->inflight;
        origin__http_dispatch(fetch);
    }
}

static void schedule_dispatch(origin_ctx_t *octx)
{
    if (!h2o_linklist_is_empty(&octx->waitq) && octx->inflight < octx->origin->max_connections_per_loop &&
        !h2o_timeout_is_linked(&octx->dispatch_entry))
        h2o_timeout_link(octx->loop, &octx->zero, &octx->dispatch_entry);
}

static void on_deferred_end(h2o_timeout_entry_t *entry)
{
    origin_fetch_t *fetch = H2O_STRUCT_FROM_MEMBER(origin_fetch_t, defer, entry);
    origin__emit_end(fetch, fetch->deferred_err);
}

origin_fetch_t *origin__fetch_alloc(origin_ctx_t *octx, const origin_callbacks_t *cb, void *data)
{
    origin_fetch_t *fetch = h2o_mem_alloc(sizeof(*fetch));

    *fetch = (origin_fetch_t){octx, *cb, data};
    h2o_linklist_insert(&octx->fetches, &fetch->all_link);
    h2o_mem_init_pool(&fetch->pool);
    fetch->content_length = -1;
    fetch->fd = -1;
    return fetch;
}

void origin__release_slot(origin_fetch_t *fetch)
{
    if (!fetch->active)
        return;
    fetch->active = 0;
    assert(fetch->octx->inflight > 0);
    --fetch->octx->inflight;
    schedule_dispatch(fetch->octx);
}

void origin__fetch_free(origin_fetch_t *fetch)
{
    origin_ctx_t *octx = fetch->octx;

    if (octx->origin->kind == CONF_ORIGIN_HTTP)
        origin__http_teardown(fetch);
    else
        origin__dir_teardown(fetch);
    h2o_timeout_unlink(&fetch->timer);
    h2o_timeout_unlink(&fetch->defer);
    h2o_timeout_unlink(&fetch->bounce);
    if (fetch->queued) {
        h2o_linklist_unlink(&fetch->wait_link);
        --octx->waitq_len;
        fetch->queued = 0;
    }
    origin__release_slot(fetch);
    h2o_linklist_unlink(&fetch->all_link);
    h2o_mem_clear_pool(&fetch->pool);
    free(fetch);
}

int origin__emit_head(origin_fetch_t *fetch, const origin_response_t *res)
{
    ++fetch->in_cb;
    fetch->cb.on_head(fetch, fetch->data, res);
    --fetch->in_cb;
    return fetch->canceled ? -1 : 0;
}

int origin__emit_body(origin_fetch_t *fetch, const char *bytes, size_t len)
{
    __atomic_fetch_add(&fetch->octx->origin->stats.bytes_received, len, __ATOMIC_RELAXED);
    fetch->received += len;
    ++fetch->in_cb;
    fetch->cb.on_body(fetch, fetch->data, bytes, len);
    --fetch->in_cb;
    return fetch->canceled ? -1 : 0;
}

void origin__emit_end(origin_fetch_t *fetch, int err)
{
    assert(!fetch->ending);
    /* free the slot and timers first: on_end may start the next fetch */
    h2o_timeout_unlink(&fetch->timer);
    h2o_timeout_unlink(&fetch->defer);
    h2o_timeout_unlink(&fetch->bounce);
    origin__release_slot(fetch);
    if (err != 0)
        __atomic_fetch_add(&fetch->octx->origin->stats.errors, 1, __ATOMIC_RELAXED);
    fetch->ending = 1;
    ++fetch->in_cb;
    fetch->cb.on_end(fetch, fetch->data, err);
    --fetch->in_cb;
    origin__fetch_free(fetch);
}

void origin__defer_end(origin_fetch_t *fetch, int err)
{
    h2o_timeout_unlink(&fetch->timer);
    h2o_timeout_unlink(&fetch->defer);
    h2o_timeout_unlink(&fetch->bounce);
    fetch->deferred_err = err;
    fetch->defer.cb = on_deferred_end;
    h2o_timeout_link(fetch->octx->loop, &fetch->octx->zero, &fetch->defer);
}

/* --- public API --- */

origin_t *origin_create(const conf_origin_t *conf, unsigned num_workers, char *err, size_t errlen)
{
    origin_t *origin = calloc(1, sizeof(*origin));

    if (origin == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    origin->kind = conf->kind;
    origin->connect_timeout_ms = conf->connect_timeout_ms;
    origin->first_byte_timeout_ms = conf->first_byte_timeout_ms;
    origin->idle_timeout_ms = conf->idle_timeout_ms;
    origin->pool_idle_timeout_ms = conf->pool_idle_timeout_ms;
    if (num_workers == 0)
        num_workers = 1;
    origin->max_connections_per_loop = conf->max_connections / num_workers;
    if (origin->max_connections_per_loop == 0)
        origin->max_connections_per_loop = 1;

    switch (conf->kind) {
    case CONF_ORIGIN_HTTP:
        if (origin__http_init(origin, conf, err, errlen) != 0)
            goto Error;
        break;
    case CONF_ORIGIN_DIRECTORY:
        if (conf->directory == NULL || (origin->root = realpath(conf->directory, NULL)) == NULL) {
            snprintf(err, errlen, "directory %s: %s", conf->directory != NULL ? conf->directory : "(none)", strerror(errno));
            goto Error;
        }
        origin->cache_control = strdup(conf->cache_control != NULL ? conf->cache_control : CONF_DEFAULT_ORIGIN_CACHE_CONTROL);
        break;
    default:
        snprintf(err, errlen, "unknown origin kind");
        goto Error;
    }
    return origin;

Error:
    origin_destroy(origin);
    return NULL;
}

void origin_destroy(origin_t *origin)
{
    if (origin == NULL)
        return;
    if (origin->ssl_ctx != NULL)
        SSL_CTX_free(origin->ssl_ctx);
    free(origin->host);
    free(origin->root);
    free(origin->cache_control);
    free(origin);
}

origin_ctx_t *origin_ctx_create(origin_t *origin, h2o_context_t *ctx)
{
    origin_ctx_t *octx = h2o_mem_alloc(sizeof(*octx));

    *octx = (origin_ctx_t){origin, ctx, ctx->loop};
    /* init order matters: `zero` must precede `bounce` in the loop's list (see origin_private.h) */
    h2o_timeout_init(octx->loop, &octx->zero, 0);
    h2o_timeout_init(octx->loop, &octx->bounce, 0);
    h2o_timeout_init(octx->loop, &octx->connect_timeout, origin->connect_timeout_ms);
    h2o_timeout_init(octx->loop, &octx->first_byte_timeout, origin->first_byte_timeout_ms);
    h2o_timeout_init(octx->loop, &octx->idle_timeout, origin->idle_timeout_ms);
    h2o_linklist_init_anchor(&octx->waitq);
    h2o_linklist_init_anchor(&octx->fetches);
    octx->dispatch_entry.cb = on_dispatch;
    if (origin->kind == CONF_ORIGIN_HTTP)
        origin__http_ctx_init(octx);
    return octx;
}

void origin_ctx_destroy(origin_ctx_t *octx)
{
    /* fetches still running are cancelled: no callback runs */
    while (!h2o_linklist_is_empty(&octx->fetches)) {
        origin_fetch_t *fetch = H2O_STRUCT_FROM_MEMBER(origin_fetch_t, all_link, octx->fetches.next);
        origin__fetch_free(fetch);
    }
    h2o_timeout_unlink(&octx->dispatch_entry);
    if (octx->origin->kind == CONF_ORIGIN_HTTP)
        origin__http_ctx_dispose(octx);
    h2o_timeout_dispose(octx->loop, &octx->zero);
    h2o_timeout_dispose(octx->loop, &octx->bounce);
    h2o_timeout_dispose(octx->loop, &octx->connect_timeout);
    h2o_timeout_dispose(octx->loop, &octx->first_byte_timeout);
    h2o_timeout_dispose(octx->loop, &octx->idle_timeout);
    free(octx->dir_buf);
    free(octx);
}

origin_fetch_t *origin_fetch_start(origin_ctx_t *octx, const origin_request_t *req, const origin_callbacks_t *cb, void *data)
{
    origin_fetch_t *fetch = origin__fetch_alloc(octx, cb, data);

    fetch->is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    if (octx->origin->kind == CONF_ORIGIN_DIRECTORY) {
        __atomic_fetch_add(&octx->origin->stats.requests, 1, __ATOMIC_RELAXED);
        origin__dir_start(fetch, req);
        return fetch;
    }

    if (origin__http_start(fetch, req) == 0) {
        if (octx->waitq_len >= ORIGIN_MAX_QUEUE) {
            origin__defer_end(fetch, ORIGIN_EOVERLOAD);
        } else {
            fetch->queued = 1;
            h2o_linklist_insert(&octx->waitq, &fetch->wait_link);
            ++octx->waitq_len;
            schedule_dispatch(octx);
        }
    }
    return fetch;
}

void origin_fetch_pause(origin_fetch_t *fetch)
{
    if (fetch->paused || fetch->ending)
        return;
    fetch->paused = 1;
    if (fetch->octx->origin->kind == CONF_ORIGIN_HTTP)
        origin__http_pause(fetch);
    else
        origin__dir_pause(fetch);
}

void origin_fetch_resume(origin_fetch_t *fetch)
{
    if (!fetch->paused || fetch->ending)
        return;
    fetch->paused = 0;
    if (fetch->canceled)
        return;
    if (fetch->octx->origin->kind == CONF_ORIGIN_HTTP)
        origin__http_resume(fetch);
    else
        origin__dir_resume(fetch);
}

void origin_fetch_cancel(origin_fetch_t *fetch)
{
    if (fetch->ending || fetch->canceled)
        return;
    if (fetch->in_cb != 0) {
        /* the code that made the callback frees it once the callback returns */
        fetch->canceled = 1;
        return;
    }
    origin__fetch_free(fetch);
}

const char *origin_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
    case ORIGIN_ECONNECT:
        return "connection to origin failed";
    case ORIGIN_ECONNECT_TIMEOUT:
        return "origin connect timeout";
    case ORIGIN_EFIRST_BYTE_TIMEOUT:
        return "origin first byte timeout";
    case ORIGIN_EIDLE_TIMEOUT:
        return "origin idle timeout";
    case ORIGIN_EPROTO:
        return "invalid origin response";
    case ORIGIN_ERESET:
        return "origin closed the connection";
    case ORIGIN_ETRUNCATED:
        return "origin response truncated";
    case ORIGIN_EOVERLOAD:
        return "too many origin fetches queued";
    default:
        return "unknown origin error";
    }
}

int origin_error_status(int err)
{
    switch (err) {
    case ORIGIN_ECONNECT_TIMEOUT:
    case ORIGIN_EFIRST_BYTE_TIMEOUT:
    case ORIGIN_EIDLE_TIMEOUT:
        return 504;
    case ORIGIN_EOVERLOAD:
        return 503;
    default:
        return 502;
    }
}

void origin_get_stats(const origin_t *origin, origin_stats_t *out)
{
    out->requests = __atomic_load_n(&origin->stats.requests, __ATOMIC_RELAXED);
    out->errors = __atomic_load_n(&origin->stats.errors, __ATOMIC_RELAXED);
    out->bytes_received = __atomic_load_n(&origin->stats.bytes_received, __ATOMIC_RELAXED);
    out->connections_opened = __atomic_load_n(&origin->stats.connections_opened, __ATOMIC_RELAXED);
}
