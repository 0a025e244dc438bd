/*
 * origin/origin.h: the one interface through which the edge talks to an origin.
 *
 * Two implementations sit behind it: an HTTP/1.1 origin (our own client on h2o's sockets and
 * socket pool, `http_origin.c`, with the pure response parser in `http_response.c`; h2o 2.2.5's
 * http1client aborts the process on some malformed responses) and a local directory of static files
 * (`dir_origin.c`). The edge never knows which one it is talking to.
 *
 * Threads and lifetimes:
 * - origin_t is created once in main from the config, before the worker threads, and is read-only
 *   afterwards. It is destroyed after every worker has stopped.
 * - origin_ctx_t is per event loop: created and destroyed on that loop's thread. It owns the loop's
 *   connection pool, its timeout lists and its queue of fetches waiting for a connection.
 * - origin_fetch_t is one request. Callbacks always run on the loop of its origin_ctx_t, never from
 *   inside origin_fetch_start(), origin_fetch_resume() or origin_fetch_cancel() (no re-entrancy).
 *   The order is: on_head at most once, then on_body zero or more times, then on_end exactly once,
 *   unless origin_fetch_cancel() was called first, after which no callback runs. The fetch is freed
 *   right after on_end returns; a pointer to it must not be used after that.
 */
#ifndef ORIGIN_ORIGIN_H
#define ORIGIN_ORIGIN_H

#define H2O_USE_LIBUV 0
#include <stdint.h>
#include "h2o.h"
#include "conf/config.h"

typedef struct st_origin_t origin_t;
typedef struct st_origin_ctx_t origin_ctx_t;
typedef struct st_origin_fetch_t origin_fetch_t;

/* Error codes passed to on_end (0 is success). */
#define ORIGIN_ECONNECT (-1)            /* refused, unreachable, name not resolved, TLS failed: 502 */
#define ORIGIN_ECONNECT_TIMEOUT (-2)    /* connect did not finish in connect_timeout: 504 */
#define ORIGIN_EFIRST_BYTE_TIMEOUT (-3) /* no response head within first_byte_timeout: 504 */
#define ORIGIN_EIDLE_TIMEOUT (-4)       /* no bytes for idle_timeout during the body: 504 (or a cut) */
#define ORIGIN_EPROTO (-5)              /* unparsable or invalid response: 502 */
#define ORIGIN_ERESET (-6)              /* connection closed or reset before the response ended: 502 */
#define ORIGIN_ETRUNCATED (-7)          /* body shorter than Content-Length, or chunked without its 0-chunk */
#define ORIGIN_EOVERLOAD (-8)           /* too many fetches queued for a connection: 503 */

/** How the origin delimited the body. Only LENGTH, CHUNKED (0-chunk read) and NONE can be proved whole. */
typedef enum en_origin_framing_t {
    ORIGIN_FRAMING_NONE = 0, /* no body by definition: HEAD, 1xx, 204, 304 */
    ORIGIN_FRAMING_LENGTH,   /* Content-Length */
    ORIGIN_FRAMING_CHUNKED,  /* Transfer-Encoding: chunked */
    ORIGIN_FRAMING_CLOSE     /* close-delimited: its end cannot be told from a cut; never stored */
} origin_framing_t;

typedef struct st_origin_request_t {
    h2o_iovec_t method;
    h2o_iovec_t authority;        /* sent as Host */
    h2o_iovec_t path;             /* path and query, sent exactly as given */
    const h2o_headers_t *headers; /* the client's request headers; hop-by-hop ones (Connection and
                                     those it names, Keep-Alive, TE, Trailer, Transfer-Encoding,
                                     Upgrade, Proxy-*), Host, Content-Length and Expect are dropped */
    h2o_iovec_t body;             /* the whole request body; {NULL, 0} for none */
    h2o_iovec_t client_ip;        /* appended to X-Forwarded-For */
    int client_is_tls;            /* X-Forwarded-Proto: https / http */
    int for_cache;                /* a fill for the cache: Accept-Encoding is sent as `identity` (or `gzip`), and
                                     If-None-Match, If-Modified-Since, If-Match, If-Unmodified-Since,
                                     If-Range and Range are dropped so the whole response comes back */
    int accept_gzip;              /* for_cache only: send `Accept-Encoding: gzip` (the edge decodes what it stores) */
    h2o_iovec_t if_none_match;    /* for_cache only: the stored response's validators, sent when a */
    h2o_iovec_t if_modified_since; /* stale object is revalidated (RFC 9111 §4.3.1); empty: not sent */
} origin_request_t;

typedef struct st_origin_response_t {
    int status;
    h2o_iovec_t reason;
    const h2o_header_t *headers; /* end-to-end headers only: hop-by-hop ones and Content-Length removed */
    size_t num_headers;
    int64_t content_length;      /* -1 when unknown */
    origin_framing_t framing;
} origin_response_t;

typedef struct st_origin_callbacks_t {
    /** The response head. Everything in `res` is valid only during the call: copy what you keep. */
    void (*on_head)(origin_fetch_t *fetch, void *data, const origin_response_t *res);
    /** Body bytes, valid only during the call. Never called after origin_fetch_pause() until resume. */
    void (*on_body)(origin_fetch_t *fetch, void *data, const char *bytes, size_t len);
    /**
     * The end: err 0 when the body ended as its framing says (for ORIGIN_FRAMING_CLOSE, when the
     * connection closed), else an ORIGIN_E* code; on_head may not have run. The fetch is freed after
     * this returns.
     */
    void (*on_end)(origin_fetch_t *fetch, void *data, int err);
} origin_callbacks_t;

/**
 * Creates the origin described by the config (HTTP or directory). Called once, before threads start.
 * @param[in] num_workers  event loops that will call origin_ctx_create (the connection bound is
 *                         divided among them: each loop may open max_connections / num_workers,
 *                         at least 1)
 * @param[out] err         `file:line: key: reason`-free message (the caller adds the location)
 * @return the origin, or NULL with err filled
 */
origin_t *origin_create(const conf_origin_t *conf, unsigned num_workers, char *err, size_t errlen);
void origin_destroy(origin_t *origin);

/** Per-loop state. Call on the loop's thread after h2o_context_init; destroy on the same thread. */
origin_ctx_t *origin_ctx_create(origin_t *origin, h2o_context_t *ctx);
void origin_ctx_destroy(origin_ctx_t *octx);

/**
 * Starts a fetch. Everything `req` points to is copied before this returns.
 * @return the fetch (never NULL: failures arrive through on_end)
 */
origin_fetch_t *origin_fetch_start(origin_ctx_t *octx, const origin_request_t *req, const origin_callbacks_t *cb,
                                   void *data);

/** Stops reading from the origin (backpressure). Timeouts do not fire while paused. Idempotent. */
void origin_fetch_pause(origin_fetch_t *fetch);
/** Resumes reading; pending bytes are delivered from the loop, not from inside this call. Idempotent. */
void origin_fetch_resume(origin_fetch_t *fetch);
/** Abandons the fetch: the connection is closed, no callback runs after this, the fetch is freed. */
void origin_fetch_cancel(origin_fetch_t *fetch);

/** @return a short static text for an ORIGIN_E* code, e.g. "connection refused" */
const char *origin_strerror(int err);
/** @return the status a client gets for an error before any response byte: 502, 503 or 504 */
int origin_error_status(int err);

/* Counters, process-wide, read by the metrics endpoint. Updated with relaxed atomics. */
typedef struct st_origin_stats_t {
    uint64_t requests;        /* fetches that reached an origin (or the directory) */
    uint64_t errors;          /* fetches that ended with an error */
    uint64_t bytes_received;  /* body bytes received from the origin */
    uint64_t connections_opened;
} origin_stats_t;
void origin_get_stats(const origin_t *origin, origin_stats_t *out);

/* --- pure helpers, exposed for unit tests and for the edge --- */

/**
 * Builds the raw HTTP/1.1 request head sent to an HTTP origin, allocated from `pool`.
 * Adds `Host`, `Connection: keep-alive`, `X-Forwarded-For` (appended to the client's),
 * `X-Forwarded-Proto`, `Via: 1.1 cdn-edge` (appended), and `Content-Length` when there is a body.
 */
h2o_iovec_t origin_build_request_head(h2o_mem_pool_t *pool, const origin_request_t *req);

/**
 * Maps a raw request path (with query) to a file under `root` for the directory origin.
 * The query is ignored; percent-escapes are decoded; a path that decodes to a NUL, to a `..` or `.`
 * segment, or that resolves (symlinks included) outside `root`, is refused. A directory maps to its
 * `index.html`.
 * @param[out] out  receives a malloc'ed absolute path on success
 * @return 0, or -1 (the caller answers 404)
 */
int origin_dir_map_path(const char *root, const char *path, size_t path_len, char **out);

/** @return the Content-Type for a file name by its extension; "application/octet-stream" if unknown */
const char *origin_dir_mime_type(const char *filename);

#endif
