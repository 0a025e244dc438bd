/*
 * origin/http_origin.c: the HTTP/1.1 origin: our own small client on h2o 2.2.5's socket layer, with one
 * h2o_socketpool_t of keep-alive connections per loop. h2o_http1client is not used: it asserts on some
 * origin inputs (an unknown Transfer-Encoding, a bad Content-Length) and cannot pause or tell a cut from an end.
 *
 * Contract and state:
 * - The origin's address is resolved once in origin_create (getaddrinfo, blocking, before the threads):
 *   h2o's own resolver has one thread and no cache. DNS changes are seen after a restart only.
 * - Phases: QUEUED (waiting for a slot) -> CONNECTING (connect timer; TLS handshake included) -> WAITING_HEAD
 *   (first-byte timer, until the final head is parsed) -> BODY (idle timer between reads, unlinked while
 *   paused). `connect_req` is non-NULL while the pool connects for us; `sock` is ours from then until the
 *   fetch ends, when it goes back to the pool (complete body, keep-alive allowed, write done, nothing extra
 *   read) or is closed (origin__http_teardown, from every other path: error, timeout, cancel, destroy).
 * - The parsing is in http_response.c (pure). Heads: picohttpparser; 1xx heads are skipped (at most
 *   ORIGIN_HTTP_MAX_INTERIM); the head is bounded in bytes and header lines. Body: decoded in place in
 *   sock->input: bytes [0, decoded) are body bytes not yet given to on_body, raw bytes follow them.
 * - Pause stops reading the socket (h2o_socket_read_stop: real backpressure, the kernel window closes);
 *   resume restarts it and hands what is buffered to on_body from a 0 ms timer, never inside the call.
 *   on_body gets at most ORIGIN_DELIVER_SLICE bytes a call and no more calls once it paused.
 * - Ends: a complete body -> 0. A close or error before the end -> ETRUNCATED (Content-Length, chunked:
 *   the 0-chunk and the trailer section must have been read), 0 for a close-delimited body (framing CLOSE,
 *   never stored). If the close comes while paused with bytes buffered, it waits (has_final) for resume.
 * - A pooled socket that fails (close, reset) before any response byte was a stale keep-alive connection
 *   whose close raced the pool's liveness check: the request (which we still hold whole) is sent again on
 *   another connection, up to ORIGIN_MAX_STALE_RETRIES times. A connection we opened ourselves is never
 *   retried: its failure is the origin's answer.
 * - Nothing asserts on origin bytes; every path ends the fetch with exactly one on_end (origin__emit_end),
 *   and after a cancel inside a callback, with none (origin__fetch_free).
 */
#include <assert.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "origin/origin_private.h"

static void on_pool_connect(h2o_socket_t *sock, const char *errstr, void *data);
static void on_read(h2o_socket_t *sock, const char *err);

/* --- helpers --- */

static void link_timer(origin_fetch_t *fetch, h2o_timeout_t *timeout, h2o_timeout_cb cb)
{
    h2o_timeout_unlink(&fetch->timer);
    fetch->timer.cb = cb;
    h2o_timeout_link(fetch->octx->loop, timeout, &fetch->timer);
}

static void close_sock(origin_fetch_t *fetch)
{
    if (fetch->sock != NULL) {
        h2o_socket_close(fetch->sock);
        fetch->sock = NULL;
    }
}

static void on_connect_timeout(h2o_timeout_entry_t *entry)
{
    origin__emit_end(H2O_STRUCT_FROM_MEMBER(origin_fetch_t, timer, entry), ORIGIN_ECONNECT_TIMEOUT);
}

static void on_first_byte_timeout(h2o_timeout_entry_t *entry)
{
    origin__emit_end(H2O_STRUCT_FROM_MEMBER(origin_fetch_t, timer, entry), ORIGIN_EFIRST_BYTE_TIMEOUT);
}

static void on_idle_timeout(h2o_timeout_entry_t *entry)
{
    origin__emit_end(H2O_STRUCT_FROM_MEMBER(origin_fetch_t, timer, entry), ORIGIN_EIDLE_TIMEOUT);
}

/* Asks the pool for a connection (a pooled one, or a new one). `fetch` may be freed when this returns
 * (the pool reports a failure synchronously; the user's on_end has run). */
static void start_connect(origin_fetch_t *fetch)
{
    origin_ctx_t *octx = fetch->octx;
    size_t before = __atomic_load_n(&octx->pool._shared.count, __ATOMIC_RELAXED);

    fetch->phase = ORIGIN_PHASE_CONNECTING;
    fetch->reused = fetch->writing = fetch->got_bytes = fetch->broken = 0;
    fetch->interim = 0;
    link_timer(fetch, &octx->connect_timeout, on_connect_timeout);
    octx->connecting = fetch;
    h2o_socketpool_connect(&fetch->connect_req, &octx->pool, octx->loop, &octx->ctx->receivers.hostinfo_getaddr, on_pool_connect,
                           fetch);
    octx->connecting = NULL;
    /* the pool counts a socket when it starts a new connection, not when it hands out a pooled one */
    if (__atomic_load_n(&octx->pool._shared.count, __ATOMIC_RELAXED) > before)
        __atomic_fetch_add(&octx->origin->stats.connections_opened, 1, __ATOMIC_RELAXED);
}

static void on_write_complete(h2o_socket_t *sock, const char *err)
{
    origin_fetch_t *fetch = sock->data;

    fetch->writing = 0;
    /* a failed write (EPIPE, reset) is not decided here: the read side sees the response, if the origin
     * sent one before closing, or the close (a stale pooled socket is retried from there) */
    if (err != NULL)
        fetch->broken = 1;
}

static void send_request(origin_fetch_t *fetch)
{
    h2o_socket_t *sock = fetch->sock;

    fetch->phase = ORIGIN_PHASE_WAITING_HEAD;
    link_timer(fetch, &fetch->octx->first_byte_timeout, on_first_byte_timeout);
    /* h2o's writer advances the iovecs it is given: hand it a copy, keep reqbufs for a retry */
    memcpy(fetch->wbufs, fetch->reqbufs, sizeof(fetch->wbufs));
    fetch->writing = 1;
    h2o_socket_write(sock, fetch->wbufs, fetch->reqbufcnt, on_write_complete);
    /* read at once: an early close of a stale pooled socket, or an early response, is seen while writing */
    h2o_socket_read_start(sock, on_read);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    origin_fetch_t *fetch = sock->data;

    /* as h2o's http1client: a name mismatch only counts when the peer is verified */
    if (err != NULL && !(err == h2o_socket_error_ssl_cert_name_mismatch &&
                         (SSL_CTX_get_verify_mode(fetch->octx->origin->ssl_ctx) & SSL_VERIFY_PEER) == 0)) {
        origin__emit_end(fetch, ORIGIN_ECONNECT);
        return;
    }
    send_request(fetch);
}

static void on_pool_connect(h2o_socket_t *sock, const char *errstr, void *data)
{
    origin_fetch_t *fetch = data;
    origin_ctx_t *octx = fetch->octx;

    fetch->connect_req = NULL;
    if (sock == NULL) {
        origin__emit_end(fetch, ORIGIN_ECONNECT);
        return;
    }
    fetch->sock = sock;
    sock->data = fetch;
    /* the pool calls back synchronously only with an idle pooled socket; new ones connect asynchronously */
    fetch->reused = octx->connecting == fetch;
    if (!fetch->reused) {
        /* h2o's read loop drains the whole kernel buffer into sock->input in one event: bound that buffer so
         * one read event brings at most about ORIGIN_RCVBUF_BYTES */
        int rcvbuf = ORIGIN_RCVBUF_BYTES;
        setsockopt(h2o_socket_get_fd(sock), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    }
    if (octx->origin->is_tls && sock->ssl == NULL) {
        /* the pool of h2o 2.2.5 connects TCP only; pooled TLS sockets keep their session (export/import) */
        h2o_socket_ssl_handshake(sock, octx->origin->ssl_ctx, octx->origin->host, on_handshake);
        return;
    }
    send_request(fetch);
}

/* Hands decoded body bytes to on_body in slices, stopping as soon as the callee pauses (what is left stays in
 * sock->input until resume), so a paused fetch never forces the edge to take more than one slice.
 * @return 0, or -1 when the fetch was cancelled inside and has been freed */
static int deliver(origin_fetch_t *fetch)
{
    while (fetch->decoded != 0 && !fetch->paused) {
        size_t n = fetch->decoded < ORIGIN_DELIVER_SLICE ? fetch->decoded : ORIGIN_DELIVER_SLICE;
        if (origin__emit_body(fetch, fetch->sock->input->bytes, n) != 0) {
            origin__fetch_free(fetch);
            return -1;
        }
        h2o_buffer_consume(&fetch->sock->input, n);
        fetch->decoded -= n;
    }
    return 0;
}

/* The body was delivered whole: give the connection back when it is clean, then end with success. */
static void finish_ok(origin_fetch_t *fetch)
{
    h2o_socket_t *sock = fetch->sock;

    if (fetch->keepalive && !fetch->broken && !fetch->writing && !h2o_socket_is_writing(sock) && sock->input->size == 0) {
        fetch->sock = NULL;
        if (h2o_socketpool_return(&fetch->octx->pool, sock) != 0)
            h2o_socket_close(sock);
    }
    origin__emit_end(fetch, 0); /* closes sock if it is still ours */
}

/* After a delivery: end the fetch, or wait for bytes (reading, idle timer), or wait for resume (paused). */
static void after_delivery(origin_fetch_t *fetch)
{
    h2o_socket_t *sock = fetch->sock;

    if (fetch->decoded == 0 && fetch->body.complete) {
        finish_ok(fetch);
        return;
    }
    if (fetch->decoded == 0 && fetch->has_final) {
        origin__emit_end(fetch, fetch->final_err);
        return;
    }
    if (fetch->paused || fetch->has_final || fetch->body.complete) {
        /* bytes wait for resume; nothing more is read meanwhile */
        h2o_timeout_unlink(&fetch->timer);
        if (h2o_socket_is_reading(sock))
            h2o_socket_read_stop(sock);
        return;
    }
    if (!h2o_socket_is_reading(sock))
        h2o_socket_read_start(sock, on_read);
    link_timer(fetch, &fetch->octx->idle_timeout, on_idle_timeout);
}

/* Decodes what arrived after the head (in place), notes the end of the connection, delivers. */
static void process_body(origin_fetch_t *fetch, const char *err)
{
    h2o_socket_t *sock = fetch->sock;

    h2o_timeout_unlink(&fetch->timer);
    if (sock->input->size > fetch->decoded) {
        size_t len = sock->input->size - fetch->decoded, extra;
        if (origin_http_body_decode(&fetch->body, sock->input->bytes + fetch->decoded, &len, &extra) < 0) {
            origin__emit_end(fetch, ORIGIN_EPROTO); /* bad chunk syntax or size */
            return;
        }
        if (extra != 0)
            fetch->broken = 1; /* bytes past the end of the response: the connection is out of step */
        fetch->decoded += len;
        sock->input->size = fetch->decoded;
    }
    if (err != NULL) {
        /* a close or an error: the socket is done; what is decoded still goes out (after resume if paused) */
        fetch->broken = 1;
        if (h2o_socket_is_reading(sock))
            h2o_socket_read_stop(sock);
        if (!fetch->body.complete) {
            fetch->has_final = 1;
            /* RFC 9112 §6.3: only a close-delimited body ends with the close; the others were cut */
            fetch->final_err = fetch->framing == ORIGIN_FRAMING_CLOSE ? 0 : ORIGIN_ETRUNCATED;
        }
    }
    if (deliver(fetch) != 0)
        return;
    after_delivery(fetch);
}

/* Copies the end-to-end headers for on_head (request.c's filter); Content-Length was validated already by
 * origin_http_framing (list forms included) and is left out so the filter does not judge it again. */
static int filter_head(origin_fetch_t *fetch, const origin_http_head_t *head, h2o_header_t **kept, size_t *num_kept)
{
    h2o_header_t in[ORIGIN_HTTP_MAX_HEADERS];
    size_t n = 0;
    int64_t ignored_cl;
    int ignored_chunked;

    for (size_t i = 0; i != head->num_headers; ++i)
        if (!h2o_lcstris(head->headers[i].name->base, head->headers[i].name->len, H2O_STRLIT("content-length")))
            in[n++] = head->headers[i];
    return origin__filter_response_headers(&fetch->pool, in, n, kept, num_kept, &ignored_cl, &ignored_chunked);
}

/* Parses heads in sock->input: skips 1xx, reports the final one.
 * @return 0 when more bytes are needed, 1 when the final head was reported (phase BODY), -1 when the fetch
 *         ended or was freed */
static int read_head(origin_fetch_t *fetch)
{
    h2o_socket_t *sock = fetch->sock;

    for (;;) {
        origin_http_head_t head;
        origin_http_framing_t fr;
        int len = origin_http_parse_head(sock->input->bytes, sock->input->size, &head);
        if (len == -2)
            return 0;
        if (len < 0)
            goto Invalid;
        switch (origin_http_framing(&head, fetch->is_head, &fr)) {
        case ORIGIN_HTTP_INTERIM:
            if (++fetch->interim > ORIGIN_HTTP_MAX_INTERIM)
                goto Invalid;
            h2o_buffer_consume(&sock->input, len);
            continue;
        case ORIGIN_HTTP_FINAL:
            break;
        default:
            goto Invalid;
        }

        h2o_header_t *kept;
        size_t num_kept;
        if (filter_head(fetch, &head, &kept, &num_kept) != 0)
            goto Invalid;
        fetch->framing = fr.framing;
        fetch->content_length = fr.framing == ORIGIN_FRAMING_CHUNKED ? -1 : fr.content_length;
        fetch->keepalive = fr.keepalive;
        origin_http_body_init(&fetch->body, fr.framing, fetch->content_length);
        h2o_timeout_unlink(&fetch->timer);
        origin_response_t res = {head.status, head.reason, kept, num_kept, fetch->content_length, fetch->framing};
        /* names, values and the reason point into sock->input: consume the head only after on_head */
        if (origin__emit_head(fetch, &res) != 0) {
            origin__fetch_free(fetch);
            return -1;
        }
        h2o_buffer_consume(&sock->input, len);
        fetch->decoded = 0;
        fetch->phase = ORIGIN_PHASE_BODY;
        return 1;
    }

Invalid:
    origin__emit_end(fetch, ORIGIN_EPROTO);
    return -1;
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    origin_fetch_t *fetch = sock->data;

    if (fetch->phase == ORIGIN_PHASE_WAITING_HEAD) {
        if (sock->input->size != 0)
            fetch->got_bytes = 1;
        int ret = read_head(fetch);
        if (ret < 0)
            return;
        if (ret == 0) {
            if (err == NULL)
                return; /* the first-byte timer runs on */
            if (!fetch->got_bytes && fetch->reused && fetch->retries < ORIGIN_MAX_STALE_RETRIES) {
                /* a stale pooled connection: send the request again on another one */
                ++fetch->retries;
                close_sock(fetch);
                start_connect(fetch);
                return;
            }
            origin__emit_end(fetch, ORIGIN_ERESET);
            return;
        }
    }
    process_body(fetch, err);
}

/* resume with body bytes left in sock->input, or with the end of the connection pending */
static void on_deferred_body(h2o_timeout_entry_t *entry)
{
    origin_fetch_t *fetch = H2O_STRUCT_FROM_MEMBER(origin_fetch_t, defer, entry);

    if (fetch->paused || fetch->sock == NULL)
        return;
    if (deliver(fetch) != 0)
        return;
    after_delivery(fetch);
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
    if (res->ai_addrlen > sizeof(origin->addr)) {
        freeaddrinfo(res);
        snprintf(err, errlen, "cannot resolve %s: address too long", conf->host);
        return -1;
    }
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
        /* OpenSSL verifies the chain; h2o_socket_ssl_handshake sends SNI and checks the name (origin->host) */
        SSL_CTX_set_verify(origin->ssl_ctx, SSL_VERIFY_PEER, NULL);
    }
    return 0;
}

void origin__http_ctx_init(origin_ctx_t *octx)
{
    origin_t *origin = octx->origin;

    /* `capacity` is ignored by h2o 2.2.5 (H2O-2.2.5.md §5): the cap is our slot count, see origin.c */
    h2o_socketpool_init_by_address(&octx->pool, (struct sockaddr *)&origin->addr, origin->addrlen, origin->is_tls,
                                   origin->max_connections_per_loop);
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
    __atomic_fetch_add(&fetch->octx->origin->stats.requests, 1, __ATOMIC_RELAXED);
    start_connect(fetch); /* `fetch` may be gone after this */
}

void origin__http_pause(origin_fetch_t *fetch)
{
    /* before the head, connect and first-byte timers keep running (there is nothing to hold back yet) */
    if (fetch->phase != ORIGIN_PHASE_BODY || fetch->sock == NULL)
        return;
    h2o_timeout_unlink(&fetch->timer);
    if (h2o_socket_is_reading(fetch->sock))
        h2o_socket_read_stop(fetch->sock);
}

void origin__http_resume(origin_fetch_t *fetch)
{
    h2o_socket_t *sock = fetch->sock;

    if (fetch->phase != ORIGIN_PHASE_BODY || sock == NULL)
        return;
    if (!fetch->has_final && !fetch->body.complete) {
        if (!h2o_socket_is_reading(sock))
            h2o_socket_read_start(sock, on_read);
        link_timer(fetch, &fetch->octx->idle_timeout, on_idle_timeout);
    }
    /* never deliver from inside origin_fetch_resume: from the loop, through octx->zero */
    if ((fetch->decoded != 0 || fetch->has_final || fetch->body.complete) && !h2o_timeout_is_linked(&fetch->defer)) {
        fetch->defer.cb = on_deferred_body;
        h2o_timeout_link(fetch->octx->loop, &fetch->octx->zero, &fetch->defer);
    }
}

void origin__http_teardown(origin_fetch_t *fetch)
{
    if (fetch->connect_req != NULL) {
        h2o_socketpool_cancel_connect(fetch->connect_req);
        fetch->connect_req = NULL;
    }
    close_sock(fetch);
}
