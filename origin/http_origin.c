/*
 * origin/http_origin.c: the HTTP/1.1 origin, on h2o 2.2.5's h2o_http1client with one keep-alive socket
 * pool per loop.
 *
 * Contract and state:
 * - The origin's address is resolved once in origin_create (getaddrinfo, blocking, before the threads):
 *   h2o's own resolver has one thread and no cache. DNS changes are seen after a restart only.
 * - Phases: QUEUED (waiting for a slot) -> CONNECTING (connect timer) -> WAITING_HEAD (first-byte timer)
 *   -> BODY (idle timer, unlinked while paused). `fetch->client` is non-NULL exactly while h2o's client
 *   lives; it is cleared before any code path in which h2o frees the client (a final callback, or our
 *   own h2o_http1client_cancel).
 * - h2o_http1client_cancel is never called from inside one of its callbacks: there, a cancelled fetch
 *   makes the callback return NULL / -1 and h2o closes the connection itself.
 * - Pause is the read-stop hack of H2O-2.2.5.md §5: the socket's read callback is saved and reading
 *   stopped; resume restarts it, and bytes already in sock->input go out from a 0 ms timer.
 * - h2o's io_timeout is set to a long backstop (ORIGIN_BACKSTOP_TIMEOUT_MS): our shorter timers decide.
 *
 * How truncation is told apart (h2o 2.2.5 lib/common/http1client.c, proved in test_http_origin.c):
 * - Content-Length body cut: h2o says "I/O error (body; content-length)" -> ORIGIN_ETRUNCATED.
 * - Chunked body cut inside a chunk: "I/O error (body; chunked)" -> ORIGIN_ETRUNCATED.
 * - Chunked body cut at a chunk boundary: h2o says end-of-stream, as for a real end. The real end is
 *   only reported from the decode path, which runs only when the read brought bytes (sock->bytes_read
 *   != 0); the cut is reported from the error path of a read that returned h2o_socket_error_closed, and
 *   on_read_core (evloop.c.h) returns that only when its first read() gave 0 bytes, so bytes_read == 0.
 *   Hence: chunked + end-of-stream + sock->bytes_read == 0 -> ORIGIN_ETRUNCATED.
 * - Close-delimited: end-of-stream on any close or reset; framing CLOSE, err 0 (never stored).
 */
#include <assert.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "origin/origin_private.h"

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head);
static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor_version, int status,
                                       h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers, int rlen);
static int on_body(h2o_http1client_t *client, const char *errstr);

/* --- helpers --- */

static void link_timer(origin_fetch_t *fetch, h2o_timeout_t *timeout, h2o_timeout_cb cb)
{
    h2o_timeout_unlink(&fetch->timer);
    fetch->timer.cb = cb;
    h2o_timeout_link(fetch->octx->loop, timeout, &fetch->timer);
}

static void stop_reading(origin_fetch_t *fetch)
{
    h2o_socket_t *sock = fetch->client != NULL ? fetch->client->sock : NULL;
    if (sock != NULL && h2o_socket_is_reading(sock)) {
        fetch->saved_read = sock->_cb.read;
        h2o_socket_read_stop(sock);
        fetch->read_stopped = 1;
    }
}

static void start_reading(origin_fetch_t *fetch)
{
    h2o_socket_t *sock = fetch->client != NULL ? fetch->client->sock : NULL;
    if (fetch->read_stopped) {
        fetch->read_stopped = 0;
        if (sock != NULL && !h2o_socket_is_reading(sock))
            h2o_socket_read_start(sock, fetch->saved_read);
    }
}

/* Our timer fired: h2o's client is live and not on the stack. */
static void fail_live(origin_fetch_t *fetch, int err)
{
    if (fetch->client != NULL) {
        h2o_http1client_cancel(fetch->client);
        fetch->client = NULL;
    }
    origin__emit_end(fetch, err);
}

static int head_error(const char *errstr)
{
    if (strcmp(errstr, "I/O timeout") == 0)
        return ORIGIN_EFIRST_BYTE_TIMEOUT;
    if (strncmp(errstr, "I/O error", 9) == 0)
        return ORIGIN_ERESET;
    return ORIGIN_EPROTO;
}

static int body_end_error(origin_fetch_t *fetch, const char *errstr, h2o_socket_t *sock)
{
    if (errstr == h2o_http1client_error_is_eos) {
        /* see the top comment: a chunked end without fresh bytes is a close at a chunk boundary */
        if (fetch->framing == ORIGIN_FRAMING_CHUNKED && sock->bytes_read == 0)
            return ORIGIN_ETRUNCATED;
        if (fetch->framing == ORIGIN_FRAMING_LENGTH && fetch->received + sock->input->size != (uint64_t)fetch->content_length)
            return ORIGIN_ETRUNCATED;
        return 0;
    }
    if (strcmp(errstr, "I/O timeout") == 0)
        return ORIGIN_EIDLE_TIMEOUT; /* the backstop: paused too long */
    if (strncmp(errstr, "I/O error", 9) == 0)
        return ORIGIN_ETRUNCATED;
    return ORIGIN_EPROTO;
}

/* Hands sock->input to on_body in slices, stopping as soon as the callee pauses (what is left stays
 * in sock->input until resume), so a paused fetch never forces the edge to take more than one slice.
 * @return 0, or -1 when the fetch was cancelled inside (not freed yet) */
static int deliver_input(origin_fetch_t *fetch)
{
    h2o_socket_t *sock = fetch->client->sock;

    while (sock->input->size != 0 && !fetch->paused) {
        size_t n = sock->input->size < ORIGIN_DELIVER_SLICE ? sock->input->size : ORIGIN_DELIVER_SLICE;
        if (origin__emit_body(fetch, sock->input->bytes, n) != 0)
            return -1;
        h2o_buffer_consume(&sock->input, n);
    }
    return 0;
}

/* --- timers --- */

static void on_connect_timeout(h2o_timeout_entry_t *entry)
{
    fail_live(H2O_STRUCT_FROM_MEMBER(origin_fetch_t, timer, entry), ORIGIN_ECONNECT_TIMEOUT);
}

static void on_first_byte_timeout(h2o_timeout_entry_t *entry)
{
    fail_live(H2O_STRUCT_FROM_MEMBER(origin_fetch_t, timer, entry), ORIGIN_EFIRST_BYTE_TIMEOUT);
}

static void on_idle_timeout(h2o_timeout_entry_t *entry)
{
    fail_live(H2O_STRUCT_FROM_MEMBER(origin_fetch_t, timer, entry), ORIGIN_EIDLE_TIMEOUT);
}

/* resume with bytes left in sock->input */
static void on_deferred_body(h2o_timeout_entry_t *entry)
{
    origin_fetch_t *fetch = H2O_STRUCT_FROM_MEMBER(origin_fetch_t, defer, entry);

    if (fetch->paused || fetch->client == NULL)
        return;
    if (deliver_input(fetch) != 0) {
        origin__fetch_free(fetch); /* not inside an h2o callback: cancels the client */
        return;
    }
    if (fetch->paused) {
        h2o_timeout_unlink(&fetch->timer);
        stop_reading(fetch);
    }
}

/* resume after the client ended while paused */
static void on_deferred_final(h2o_timeout_entry_t *entry)
{
    origin_fetch_t *fetch = H2O_STRUCT_FROM_MEMBER(origin_fetch_t, defer, entry);

    if (fetch->paused)
        return;
    if (fetch->pending_len != 0) {
        int rc = origin__emit_body(fetch, fetch->pending, fetch->pending_len);
        free(fetch->pending);
        fetch->pending = NULL;
        fetch->pending_len = 0;
        if (rc != 0) {
            origin__fetch_free(fetch);
            return;
        }
        if (fetch->paused)
            return; /* on_end after the next resume */
    }
    origin__emit_end(fetch, fetch->final_err);
}

/* --- h2o callbacks --- */

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr, h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    origin_fetch_t *fetch = client->data;

    h2o_timeout_unlink(&fetch->timer);
    if (errstr != NULL) {
        fetch->client = NULL;
        origin__emit_end(fetch, strcmp(errstr, "connection timeout") == 0 ? ORIGIN_ECONNECT_TIMEOUT : ORIGIN_ECONNECT);
        return NULL;
    }
    /* h2o's read loop drains the whole kernel buffer into sock->input before a pause can take
     * effect: bound that buffer so one read event brings at most ORIGIN_RCVBUF_BYTES */
    int rcvbuf = ORIGIN_RCVBUF_BYTES;
    setsockopt(h2o_socket_get_fd(client->sock), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    *reqbufs = fetch->reqbufs;
    *reqbufcnt = fetch->reqbufcnt;
    *method_is_head = fetch->is_head;
    fetch->phase = ORIGIN_PHASE_WAITING_HEAD;
    link_timer(fetch, &fetch->octx->first_byte_timeout, on_first_byte_timeout);
    return on_head;
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr, int minor_version, int status,
                                       h2o_iovec_t msg, h2o_header_t *headers, size_t num_headers, int rlen)
{
    origin_fetch_t *fetch = client->data;
    origin_response_t res;
    h2o_header_t *kept;
    size_t num_kept;
    int64_t content_length;
    int is_chunked;

    h2o_timeout_unlink(&fetch->timer);
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        fetch->client = NULL;
        origin__emit_end(fetch, head_error(errstr));
        return NULL;
    }
    /*
     * We never ask for an upgrade (1xx other than 101 were consumed by h2o). Both Content-Length and
     * chunked is refused: RFC 9112 §6.3 calls it a smuggling sign, and h2o 2.2.5 parses Content-Length
     * into the union that holds the chunked decoder, which then decodes garbage (seen: a hang).
     */
    if (status < 200 || status > 999 ||
        origin__filter_response_headers(&fetch->pool, headers, num_headers, &kept, &num_kept, &content_length, &is_chunked) != 0 ||
        (is_chunked && content_length >= 0)) {
        fetch->client = NULL;
        origin__emit_end(fetch, ORIGIN_EPROTO);
        return NULL;
    }

    /* mirror h2o's choice of body reader (RFC 9112 §6.3: chunked wins over Content-Length) */
    if (errstr == h2o_http1client_error_is_eos) {
        fetch->framing = ORIGIN_FRAMING_NONE;
    } else if (is_chunked) {
        fetch->framing = ORIGIN_FRAMING_CHUNKED;
        content_length = -1;
    } else if (content_length >= 0) {
        fetch->framing = ORIGIN_FRAMING_LENGTH;
    } else {
        fetch->framing = ORIGIN_FRAMING_CLOSE;
    }
    fetch->content_length = content_length;

    res = (origin_response_t){status, msg, kept, num_kept, content_length, fetch->framing};
    if (origin__emit_head(fetch, &res) != 0) {
        fetch->client = NULL; /* returning NULL makes h2o close it */
        origin__fetch_free(fetch);
        return NULL;
    }
    if (errstr == h2o_http1client_error_is_eos) {
        fetch->client = NULL;
        origin__emit_end(fetch, 0);
        return NULL;
    }
    fetch->phase = ORIGIN_PHASE_BODY;
    if (!fetch->paused)
        link_timer(fetch, &fetch->octx->idle_timeout, on_idle_timeout);
    /* if paused, h2o is about to restart reading; on_body stops it again */
    return on_body;
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    origin_fetch_t *fetch = client->data;
    h2o_socket_t *sock = client->sock;

    h2o_timeout_unlink(&fetch->timer);

    if (errstr == NULL) {
        if (!fetch->paused && deliver_input(fetch) != 0) {
            fetch->client = NULL;
            origin__fetch_free(fetch);
            return -1;
        }
        if (fetch->paused)
            stop_reading(fetch);
        else
            link_timer(fetch, &fetch->octx->idle_timeout, on_idle_timeout);
        return 0;
    }

    /* the last call: h2o frees the client when we return */
    int err = body_end_error(fetch, errstr, sock);
    fetch->client = NULL;
    fetch->read_stopped = 0;
    if (err == 0 && sock->input->size != 0) {
        if (fetch->paused) {
            fetch->pending = h2o_mem_alloc(sock->input->size);
            memcpy(fetch->pending, sock->input->bytes, sock->input->size);
            fetch->pending_len = sock->input->size;
            fetch->final_err = 0;
            fetch->has_final = 1;
            return 0;
        }
        if (origin__emit_body(fetch, sock->input->bytes, sock->input->size) != 0) {
            origin__fetch_free(fetch);
            return -1;
        }
    }
    origin__emit_end(fetch, err);
    return 0;
}

/* --- entry points from origin.c --- */

int origin__http_init(origin_t *origin, const conf_origin_t *conf, char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    char serv[sizeof("65535")];
    int gai;

    if (conf->host == NULL || conf->host[0] == '\0') {
        snprintf(err, errlen, "origin has no host");
        return -1;
    }
    origin->host = strdup(conf->host);
    origin->port = conf->port;
    origin->is_tls = conf->is_tls;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV;
    snprintf(serv, sizeof(serv), "%u", (unsigned)conf->port);
    if ((gai = getaddrinfo(conf->host, serv, &hints, &res)) != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", conf->host, gai_strerror(gai));
        return -1;
    }
    assert(res->ai_addrlen <= sizeof(origin->addr));
    memcpy(&origin->addr, res->ai_addr, res->ai_addrlen);
    origin->addrlen = res->ai_addrlen;
    freeaddrinfo(res);

    if (conf->is_tls) {
        if ((origin->ssl_ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
            snprintf(err, errlen, "SSL_CTX_new failed");
            return -1;
        }
        SSL_CTX_set_min_proto_version(origin->ssl_ctx, TLS1_2_VERSION);
        if (SSL_CTX_set_default_verify_paths(origin->ssl_ctx) != 1) {
            snprintf(err, errlen, "cannot load the system certificate store");
            return -1;
        }
        /* h2o verifies the certificate and the name (the pool's host, see origin__http_ctx_init) */
        SSL_CTX_set_verify(origin->ssl_ctx, SSL_VERIFY_PEER, NULL);
    }
    return 0;
}

void origin__http_ctx_init(origin_ctx_t *octx)
{
    origin_t *origin = octx->origin;
    uint64_t backstop = ORIGIN_BACKSTOP_TIMEOUT_MS, longest = origin->connect_timeout_ms;

    if (longest < origin->first_byte_timeout_ms)
        longest = origin->first_byte_timeout_ms;
    if (longest < origin->idle_timeout_ms)
        longest = origin->idle_timeout_ms;
    if (backstop < 2 * longest)
        backstop = 2 * longest;
    h2o_timeout_init(octx->loop, &octx->io_timeout, backstop);
    octx->client_ctx =
        (h2o_http1client_ctx_t){octx->loop, &octx->ctx->receivers.hostinfo_getaddr, &octx->io_timeout, NULL, origin->ssl_ctx};

    h2o_socketpool_init_by_address(&octx->pool, (struct sockaddr *)&origin->addr, origin->addrlen, origin->is_tls,
                                   origin->max_connections_per_loop);
    /* by address, the pool's host is the numeric address; TLS needs the name for SNI and verification */
    free(octx->pool.peer.host.base);
    octx->pool.peer.host = h2o_strdup(NULL, origin->host, strlen(origin->host));
    /* mandatory before the first connect (H2O-2.2.5.md §5: NULL loop otherwise) */
    h2o_socketpool_set_timeout(&octx->pool, octx->loop, origin->pool_idle_timeout_ms);
    octx->has_pool = 1;
}

void origin__http_ctx_dispose(origin_ctx_t *octx)
{
    if (octx->has_pool) {
        h2o_socketpool_dispose(&octx->pool);
        octx->has_pool = 0;
    }
    h2o_timeout_dispose(octx->loop, &octx->io_timeout);
}

int origin__http_start(origin_fetch_t *fetch, const origin_request_t *req)
{
    h2o_iovec_t head = origin_build_request_head(&fetch->pool, req);

    if (head.base == NULL) {
        origin__defer_end(fetch, ORIGIN_EPROTO);
        return -1;
    }
    fetch->reqbufs[0] = head;
    fetch->reqbufcnt = 1;
    if (req->body.len != 0)
        fetch->reqbufs[fetch->reqbufcnt++] = h2o_strdup(&fetch->pool, req->body.base, req->body.len);
    fetch->phase = ORIGIN_PHASE_QUEUED;
    return 0;
}

void origin__http_dispatch(origin_fetch_t *fetch)
{
    origin_ctx_t *octx = fetch->octx;
    origin_t *origin = octx->origin;
    size_t before = __atomic_load_n(&octx->pool._shared.count, __ATOMIC_RELAXED);

    __atomic_fetch_add(&origin->stats.requests, 1, __ATOMIC_RELAXED);
    fetch->phase = ORIGIN_PHASE_CONNECTING;
    link_timer(fetch, &octx->connect_timeout, on_connect_timeout);
    /* may call on_connect synchronously (pooled socket, or socket() failure): `fetch` may be gone after this */
    h2o_http1client_connect_with_pool(&fetch->client, fetch, &octx->client_ctx, &octx->pool, on_connect);
    /* the pool counts a socket when it starts a new connection, not when it hands out a pooled one */
    if (__atomic_load_n(&octx->pool._shared.count, __ATOMIC_RELAXED) > before)
        __atomic_fetch_add(&origin->stats.connections_opened, 1, __ATOMIC_RELAXED);
}

void origin__http_pause(origin_fetch_t *fetch)
{
    /* before the head, connect and first-byte timers keep running (there is nothing to hold back yet) */
    if (fetch->phase != ORIGIN_PHASE_BODY)
        return;
    h2o_timeout_unlink(&fetch->timer);
    stop_reading(fetch);
}

void origin__http_resume(origin_fetch_t *fetch)
{
    if (fetch->has_final) {
        if (!h2o_timeout_is_linked(&fetch->defer)) {
            fetch->defer.cb = on_deferred_final;
            h2o_timeout_link(fetch->octx->loop, &fetch->octx->zero, &fetch->defer);
        }
        return;
    }
    if (fetch->phase != ORIGIN_PHASE_BODY || fetch->client == NULL)
        return;
    start_reading(fetch);
    if (!h2o_timeout_is_linked(&fetch->timer))
        link_timer(fetch, &fetch->octx->idle_timeout, on_idle_timeout);
    if (fetch->client->sock->input->size != 0 && !h2o_timeout_is_linked(&fetch->defer)) {
        fetch->defer.cb = on_deferred_body;
        h2o_timeout_link(fetch->octx->loop, &fetch->octx->zero, &fetch->defer);
    }
}

void origin__http_teardown(origin_fetch_t *fetch)
{
    if (fetch->client != NULL) {
        h2o_http1client_cancel(fetch->client);
        fetch->client = NULL;
    }
    free(fetch->pending);
    fetch->pending = NULL;
}
