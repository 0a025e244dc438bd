/*
 * origin/origin_private.h: the structures shared by origin.c, http_origin.c and dir_origin.c.
 * Nothing outside origin/ includes this file (the unit tests of origin/ do, to reach the pure helpers).
 *
 * Invariants:
 * - Every origin_fetch_t is on its origin_ctx_t's `fetches` list from origin_fetch_start until it is freed.
 * - A fetch holds one of the loop's connection slots (`active`) from dispatch until it ends or is cancelled;
 *   until then it waits on `waitq` (`queued`).
 * - `in_cb` counts user callbacks of this fetch currently on the stack. origin_fetch_cancel() inside one
 *   only sets `canceled`; the code that made the callback frees the fetch after it returns.
 */
#ifndef ORIGIN_ORIGIN_PRIVATE_H
#define ORIGIN_ORIGIN_PRIVATE_H

#include <sys/socket.h>
#include <sys/types.h>
#include "origin/origin.h"
#include "origin/http_response.h"

/* Fetches waiting for a connection slot on one loop; beyond this they end with ORIGIN_EOVERLOAD. */
#ifndef ORIGIN_MAX_QUEUE
#define ORIGIN_MAX_QUEUE 4096
#endif
/* Directory origin: bytes read (pread) per loop turn and per on_body call. */
#ifndef ORIGIN_DIR_CHUNK_SIZE
#define ORIGIN_DIR_CHUNK_SIZE (64 * 1024)
#endif
/* Body bytes handed to on_body per call: a pause takes effect between two slices. */
#ifndef ORIGIN_DELIVER_SLICE
#define ORIGIN_DELIVER_SLICE (64 * 1024)
#endif
/* SO_RCVBUF of origin connections: bounds what one read event can pull in (h2o 2.2.5 reads until
 * the kernel buffer is empty). 256 KiB keeps a loopback or LAN origin at full speed. */
#ifndef ORIGIN_RCVBUF_BYTES
#define ORIGIN_RCVBUF_BYTES (256 * 1024)
#endif
/* Attempts of one fetch on pooled connections that died before any response byte (a close racing the
 * pool's MSG_PEEK liveness check): each such failure is retried on another connection, at most this many
 * times; a failure on a connection this fetch opened itself is never retried. */
#ifndef ORIGIN_MAX_STALE_RETRIES
#define ORIGIN_MAX_STALE_RETRIES 3
#endif

struct st_origin_t {
    conf_origin_kind_t kind;
    /* HTTP */
    char *host;
    uint16_t port;
    int is_tls;
    struct sockaddr_storage addr; /* resolved once in origin_create */
    socklen_t addrlen;
    SSL_CTX *ssl_ctx; /* https only */
    uint64_t connect_timeout_ms, first_byte_timeout_ms, idle_timeout_ms, pool_idle_timeout_ms;
    unsigned max_connections_per_loop;
    /* directory */
    char *root;          /* realpath of the directory */
    char *cache_control; /* sent with 200 responses */
    /* counters (relaxed atomics) */
    struct {
        uint64_t requests, errors, bytes_received, connections_opened;
    } stats;
};

struct st_origin_ctx_t {
    origin_t *origin;
    h2o_context_t *ctx;
    h2o_loop_t *loop;
    /*
     * `zero` and `bounce` are both 0 ms timeouts; `zero` is initialised first, so the loop runs it first
     * in every iteration (evloop walks its timeouts in init order). A callback of `zero` that wants to run
     * again on the next loop turn links into `bounce`, whose callback links back into `zero`: linking into
     * `zero` from its own callback would run it again in the same h2o_timeout_run (now does not advance).
     */
    h2o_timeout_t zero;
    h2o_timeout_t bounce;
    h2o_timeout_t connect_timeout;
    h2o_timeout_t first_byte_timeout;
    h2o_timeout_t idle_timeout;
    h2o_socketpool_t pool;
    origin_fetch_t *connecting; /* the fetch inside h2o_socketpool_connect: a callback then is synchronous */
    int has_pool;
    unsigned inflight;
    h2o_linklist_t waitq;
    size_t waitq_len;
    h2o_timeout_entry_t dispatch_entry; /* in `zero`: start queued fetches */
    h2o_linklist_t fetches;             /* every live fetch, for origin_ctx_destroy */
    char *dir_buf;                      /* ORIGIN_DIR_CHUNK_SIZE bytes, lazily allocated */
};

typedef enum en_origin_phase_t {
    ORIGIN_PHASE_QUEUED = 0,
    ORIGIN_PHASE_CONNECTING,
    ORIGIN_PHASE_WAITING_HEAD,
    ORIGIN_PHASE_BODY,
} origin_phase_t;

struct st_origin_fetch_t {
    origin_ctx_t *octx;
    origin_callbacks_t cb;
    void *data;
    h2o_linklist_t all_link;  /* octx->fetches */
    h2o_linklist_t wait_link; /* octx->waitq while queued */
    h2o_mem_pool_t pool;      /* request head, copies of the response head */
    origin_phase_t phase;
    unsigned queued : 1;
    unsigned active : 1; /* holds a connection slot */
    unsigned paused : 1;
    unsigned canceled : 1;
    unsigned ending : 1; /* on_end is running: cancel is a no-op */
    unsigned is_head : 1;
    unsigned has_final : 1; /* http: the connection ended (final_err) while body bytes wait in sock->input */
    unsigned in_cb;
    int deferred_err;           /* for on_deferred_end */
    h2o_timeout_entry_t timer;  /* connect, first-byte or idle timer: one at a time */
    h2o_timeout_entry_t defer;  /* in octx->zero */
    h2o_timeout_entry_t bounce; /* in octx->bounce */
    origin_framing_t framing;
    int64_t content_length;
    uint64_t received;
    /* http */
    h2o_socketpool_connect_request_t *connect_req; /* non-NULL while the pool connects for us */
    h2o_socket_t *sock;                            /* non-NULL from connect until the fetch ends */
    h2o_iovec_t reqbufs[2];                        /* the request, kept intact for a retry */
    h2o_iovec_t wbufs[2];                          /* the copy given to h2o_socket_write (it edits them) */
    size_t reqbufcnt;
    unsigned reused : 1;    /* sock came idle from the pool */
    unsigned writing : 1;   /* the request write has not completed */
    unsigned got_bytes : 1; /* a response byte arrived on sock */
    unsigned keepalive : 1; /* the head allows reusing sock after a complete body */
    unsigned broken : 1;    /* sock must not be reused whatever the head says (write error, bytes past the end) */
    unsigned retries;       /* see ORIGIN_MAX_STALE_RETRIES */
    unsigned interim;       /* 1xx heads skipped */
    origin_http_body_t body;
    size_t decoded; /* sock->input->bytes[0 .. decoded) are body bytes not yet given to on_body */
    int final_err;  /* with has_final */
    /* directory */
    h2o_iovec_t method;
    h2o_iovec_t path;
    int fd;               /* the file being sent, -1 when none */
    uint64_t offset;      /* next byte of the file to read */
    const char *mem_body; /* or a static body (the 404 page) */
    size_t mem_len;
};

/* origin.c: shared fetch plumbing */
origin_fetch_t *origin__fetch_alloc(origin_ctx_t *octx, const origin_callbacks_t *cb, void *data);
/** Frees the fetch and everything it holds; releases its slot. No callback. */
void origin__fetch_free(origin_fetch_t *fetch);
/** Calls on_head. @return 0, or -1 when the fetch was cancelled inside (caller tears down and frees) */
int origin__emit_head(origin_fetch_t *fetch, const origin_response_t *res);
/** Calls on_body. @return 0, or -1 when the fetch was cancelled inside (caller tears down and frees) */
int origin__emit_body(origin_fetch_t *fetch, const char *bytes, size_t len);
/** Calls on_end, counts an error, then frees the fetch (closing its connection if it still has one). */
void origin__emit_end(origin_fetch_t *fetch, int err);
/** Ends the fetch with err from the loop (octx->zero), not from the caller's stack. */
void origin__defer_end(origin_fetch_t *fetch, int err);
/** Gives the connection slot back and schedules the dispatch of a queued fetch. */
void origin__release_slot(origin_fetch_t *fetch);

/* http_origin.c */
int origin__http_init(origin_t *origin, const conf_origin_t *conf, char *err, size_t errlen);
void origin__http_ctx_init(origin_ctx_t *octx);
void origin__http_ctx_dispose(origin_ctx_t *octx);
/** Prepares the request. @return 0, or -1 after scheduling on_end (the request cannot be sent) */
int origin__http_start(origin_fetch_t *fetch, const origin_request_t *req);
void origin__http_dispatch(origin_fetch_t *fetch);
void origin__http_pause(origin_fetch_t *fetch);
void origin__http_resume(origin_fetch_t *fetch);
void origin__http_teardown(origin_fetch_t *fetch);

/* dir_origin.c */
void origin__dir_start(origin_fetch_t *fetch, const origin_request_t *req);
void origin__dir_pause(origin_fetch_t *fetch);
void origin__dir_resume(origin_fetch_t *fetch);
void origin__dir_teardown(origin_fetch_t *fetch);

/* request.c: pure response-head helpers */
/**
 * Filters an origin's response headers for the edge: drops hop-by-hop headers (Connection and the tokens
 * it names, Keep-Alive, Proxy-Connection, Proxy-Authenticate, TE, Trailer, Transfer-Encoding, Upgrade),
 * Content-Length, and any header whose value holds CR, LF or NUL. Names and values are copied into `pool`.
 * @param[out] out, num_out    the kept headers (allocated from pool)
 * @param[out] content_length  the Content-Length value, -1 when absent
 * @param[out] is_chunked      1 when Transfer-Encoding is `chunked`
 * @return 0, or -1 when Content-Length is invalid or given twice with different values
 */
int origin__filter_response_headers(h2o_mem_pool_t *pool, const h2o_header_t *in, size_t num_in, h2o_header_t **out,
                                    size_t *num_out, int64_t *content_length, int *is_chunked);
/** @return 1 when `name` is a hop-by-hop header name (lower or mixed case) of a request or a response */
int origin__is_hop_by_hop(const char *name, size_t len);

#endif
