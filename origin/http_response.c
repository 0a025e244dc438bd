/*
 * origin/http_response.c: the pure response-head and framing parser of the HTTP origin (see http_response.h).
 *
 * Contract: bytes in, structs out. No I/O, no allocation, no global state; safe on any thread. Every
 * malformed input ends in a -1 return, never in an assert: origin bytes are untrusted (STYLE.md "Errors").
 * The rules are RFC 9112 §6.3 (message body length), §6.1 (Transfer-Encoding), §9.3 (persistence) and
 * RFC 9110 §8.6 (Content-Length); where the RFC lets a recipient choose, the stricter choice is taken,
 * because a response whose end is in doubt must never be stored or followed by a reuse of the connection.
 */
#include <string.h>
#include <strings.h>
#include "origin/http_response.h"

/* --- helpers --- */

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

static h2o_iovec_t trim_ows(const char *s, size_t len)
{
    while (len != 0 && is_ows(s[0])) {
        ++s;
        --len;
    }
    while (len != 0 && is_ows(s[len - 1]))
        --len;
    return h2o_iovec_init(s, len);
}

static int name_is(const h2o_header_t *h, const char *lc)
{
    return h2o_lcstris(h->name->base, h->name->len, lc, strlen(lc));
}

/*
 * Calls cb on each member of a comma-separated list value (RFC 9110 §5.6.1), OWS trimmed. Empty members are
 * passed too (the caller decides). Quoted strings are not special: none of the fields we read allows them.
 * @return 0, or the first non-zero return of cb
 */
static int for_each_member(h2o_iovec_t value, int (*cb)(h2o_iovec_t member, void *arg), void *arg)
{
    const char *p = value.base, *end = value.base + value.len;
    for (;;) {
        const char *comma = memchr(p, ',', end - p);
        const char *stop = comma != NULL ? comma : end;
        int ret = cb(trim_ows(p, stop - p), arg);
        if (ret != 0)
            return ret;
        if (comma == NULL)
            return 0;
        p = comma + 1;
    }
}

/* RFC 9110 §8.6: Content-Length = 1*DIGIT; a list of identical values may be accepted as one */
struct cl_state {
    int64_t value; /* -1: none yet */
};

static int on_cl_member(h2o_iovec_t m, void *arg)
{
    struct cl_state *st = arg;
    int64_t v = 0;

    if (m.len == 0)
        return -1;
    for (size_t i = 0; i != m.len; ++i) {
        if (m.base[i] < '0' || m.base[i] > '9')
            return -1;
        if (v > (INT64_MAX - (m.base[i] - '0')) / 10)
            return -1; /* overflow */
        v = v * 10 + (m.base[i] - '0');
    }
    if (st->value != -1 && st->value != v)
        return -1;
    st->value = v;
    return 0;
}

/* RFC 9112 §6.1: accepted only `identity`* then a final `chunked` (identity is a leftover of RFC 2616) */
struct te_state {
    int chunked_seen; /* the last non-empty member so far was chunked */
    int any;          /* a non-empty member was seen */
};

static int on_te_member(h2o_iovec_t m, void *arg)
{
    struct te_state *st = arg;

    if (m.len == 0)
        return 0; /* RFC 9110 §5.6.1: empty list elements are ignored */
    if (st->chunked_seen)
        return -1; /* chunked must be the final coding, and applied only once */
    st->any = 1;
    if (h2o_lcstris(m.base, m.len, H2O_STRLIT("chunked"))) {
        st->chunked_seen = 1;
        return 0;
    }
    if (h2o_lcstris(m.base, m.len, H2O_STRLIT("identity")))
        return 0;
    return -1; /* gzip, compress, deflate, parameters, unknown codings: we cannot find the end of such a body */
}

struct conn_state {
    int close, keep_alive;
};

static int on_connection_member(h2o_iovec_t m, void *arg)
{
    struct conn_state *st = arg;
    if (h2o_lcstris(m.base, m.len, H2O_STRLIT("close")))
        st->close = 1;
    else if (h2o_lcstris(m.base, m.len, H2O_STRLIT("keep-alive")))
        st->keep_alive = 1;
    return 0;
}

/* --- public functions --- */

int origin_http_parse_head(const char *buf, size_t len, origin_http_head_t *head)
{
    struct phr_header phr[ORIGIN_HTTP_MAX_HEADERS];
    size_t num_headers = ORIGIN_HTTP_MAX_HEADERS, parse_len = len < ORIGIN_HTTP_MAX_HEAD_BYTES ? len : ORIGIN_HTTP_MAX_HEAD_BYTES;
    const char *msg;
    size_t msg_len;
    int ret;

    if (len == 0)
        return -2;
    ret = phr_parse_response(buf, parse_len, &head->minor_version, &head->status, &msg, &msg_len, phr, &num_headers, 0);
    if (ret == -2)
        return len < ORIGIN_HTTP_MAX_HEAD_BYTES ? -2 : -1; /* the head does not end within the bound */
    if (ret < 0)
        return -1; /* bad syntax, or more than ORIGIN_HTTP_MAX_HEADERS headers (picohttpparser says -1) */
    if (head->status < 100)
        return -1;
    if (head->minor_version > 1)
        head->minor_version = 1;
    head->reason = h2o_iovec_init(msg, msg_len);
    head->num_headers = num_headers;
    for (size_t i = 0; i != num_headers; ++i) {
        /* RFC 9112 §5.2: a proxy must reject or unfold obs-fold; we reject (picohttpparser gives name NULL) */
        if (phr[i].name == NULL)
            return -1;
        head->names[i] = h2o_iovec_init(phr[i].name, phr[i].name_len);
        head->headers[i] = (h2o_header_t){&head->names[i], NULL, h2o_iovec_init(phr[i].value, phr[i].value_len)};
    }
    return ret;
}

int origin_http_framing(const origin_http_head_t *head, int is_head_request, origin_http_framing_t *out)
{
    struct cl_state cl = {-1};
    struct te_state te = {0};
    struct conn_state conn = {0};
    int has_cl = 0, has_te = 0;

    if (head->status == 101)
        return ORIGIN_HTTP_INVALID; /* we never send Upgrade */
    if (head->status < 200)
        return ORIGIN_HTTP_INTERIM; /* RFC 9110 §15.2: 1xx precede the final response, never have a body */

    for (size_t i = 0; i != head->num_headers; ++i) {
        const h2o_header_t *h = head->headers + i;
        if (name_is(h, "content-length")) {
            has_cl = 1;
            if (for_each_member(h->value, on_cl_member, &cl) != 0)
                return ORIGIN_HTTP_INVALID;
        } else if (name_is(h, "transfer-encoding")) {
            has_te = 1;
            if (for_each_member(h->value, on_te_member, &te) != 0)
                return ORIGIN_HTTP_INVALID;
        } else if (name_is(h, "connection")) {
            for_each_member(h->value, on_connection_member, &conn);
        }
    }
    if (has_te) {
        /* a TE that does not end with chunked: RFC 9112 §6.3 rule 4 would read until close, but such a
         * body's end (and its coding) is unknowable to us; refuse it rather than relay it */
        if (!te.chunked_seen)
            return ORIGIN_HTTP_INVALID;
        /* RFC 9112 §6.1: both framings are a smuggling sign; HTTP/1.0 has no chunked */
        if (has_cl || head->minor_version == 0)
            return ORIGIN_HTTP_INVALID;
    }

    out->content_length = has_cl ? cl.value : -1;
    out->keepalive = head->minor_version >= 1 ? !conn.close : (conn.keep_alive && !conn.close);
    if (is_head_request || head->status == 204 || head->status == 304) {
        out->framing = ORIGIN_FRAMING_NONE; /* RFC 9112 §6.3 rule 1 */
    } else if (has_te) {
        out->framing = ORIGIN_FRAMING_CHUNKED;
    } else if (has_cl) {
        out->framing = ORIGIN_FRAMING_LENGTH;
    } else {
        out->framing = ORIGIN_FRAMING_CLOSE; /* rule 8: the close ends it, so the connection ends too */
        out->keepalive = 0;
    }
    return ORIGIN_HTTP_FINAL;
}

void origin_http_body_init(origin_http_body_t *body, origin_framing_t framing, int64_t content_length)
{
    memset(body, 0, sizeof(*body));
    body->framing = framing;
    switch (framing) {
    case ORIGIN_FRAMING_NONE:
        body->complete = 1;
        break;
    case ORIGIN_FRAMING_LENGTH:
        body->bytes_left = content_length > 0 ? (uint64_t)content_length : 0;
        body->complete = body->bytes_left == 0;
        break;
    case ORIGIN_FRAMING_CHUNKED:
        /* read the trailer section too, so that a complete body leaves the connection at the next response */
        body->chunked.consume_trailer = 1;
        break;
    case ORIGIN_FRAMING_CLOSE:
        break;
    }
}

int origin_http_body_decode(origin_http_body_t *body, char *buf, size_t *len, size_t *extra)
{
    *extra = 0;
    if (body->complete) {
        *extra = *len;
        *len = 0;
        return 1;
    }
    switch (body->framing) {
    case ORIGIN_FRAMING_LENGTH:
        if (*len >= body->bytes_left) {
            *extra = *len - body->bytes_left;
            *len = body->bytes_left;
            body->bytes_left = 0;
            body->complete = 1;
            return 1;
        }
        body->bytes_left -= *len;
        return 0;
    case ORIGIN_FRAMING_CHUNKED: {
        /* picohttpparser (v2.2.5) refuses a chunk size of more than 16 hex digits and non-hex sizes (-1),
         * and on -2 it has consumed every input byte (its state keeps partial sizes and CRLFs) */
        ssize_t ret = phr_decode_chunked(&body->chunked, buf, len);
        if (ret == -1)
            return -1;
        if (ret == -2)
            return 0;
        *extra = (size_t)ret;
        body->complete = 1;
        return 1;
    }
    case ORIGIN_FRAMING_CLOSE:
        return 0;
    case ORIGIN_FRAMING_NONE:
        break;
    }
    /* NONE is complete from init; an unknown framing value cannot come from origin bytes */
    *extra = *len;
    *len = 0;
    body->complete = 1;
    return 1;
}
