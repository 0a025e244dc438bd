/*
 * origin/http_response.h: pure parsing of an HTTP/1.x response from an origin: the head
 * (picohttpparser's phr_parse_response, as exported by libh2o-evloop), the framing decision of
 * RFC 9112 §6.3, and the body decoder (Content-Length, chunked through phr_decode_chunked,
 * close-delimited). Bytes in, structs out: no I/O, no loop, no allocation, no global state.
 * Nothing here asserts on input: every malformed input is a -1 return (the caller's ORIGIN_EPROTO).
 */
#ifndef ORIGIN_HTTP_RESPONSE_H
#define ORIGIN_HTTP_RESPONSE_H

#define H2O_USE_LIBUV 0
#include <stdint.h>
#include <sys/types.h>
#include "h2o.h"
#include "origin/origin.h"

/* A response head (status line and header section, final CRLF included) longer than this is refused. */
#ifndef ORIGIN_HTTP_MAX_HEAD_BYTES
#define ORIGIN_HTTP_MAX_HEAD_BYTES (64 * 1024)
#endif
/* A response head with more header lines than this is refused. */
#ifndef ORIGIN_HTTP_MAX_HEADERS
#define ORIGIN_HTTP_MAX_HEADERS 100
#endif
/* Interim (1xx) responses skipped before the final one; one more is refused. */
#ifndef ORIGIN_HTTP_MAX_INTERIM
#define ORIGIN_HTTP_MAX_INTERIM 10
#endif

/*
 * picohttpparser as bundled in h2o v2.2.5 (deps/picohttpparser/picohttpparser.h at tag v2.2.5) and exported
 * by libh2o-evloop (nm -D: phr_parse_response, phr_decode_chunked). Debian installs no picohttpparser.h, so
 * the two structs and two functions are declared here exactly as that header declares them. Do not link a
 * second picohttpparser (H2O-2.2.5.md §0: symbol interposition).
 */
struct phr_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};
int phr_parse_response(const char *_buf, size_t len, int *minor_version, int *status, const char **msg, size_t *msg_len,
                       struct phr_header *headers, size_t *num_headers, size_t last_len);
struct phr_chunked_decoder {
    size_t bytes_left_in_chunk; /* number of bytes left in current chunk */
    char consume_trailer;       /* if trailing headers should be consumed */
    char _hex_count;
    char _state;
};
ssize_t phr_decode_chunked(struct phr_chunked_decoder *decoder, char *buf, size_t *bufsz);

/** One parsed response head. Names, values and the reason point into the parsed buffer. */
typedef struct st_origin_http_head_t {
    int minor_version; /* 0 or 1 (HTTP/1.x with x > 1 is read as 1) */
    int status;        /* 100..999 */
    h2o_iovec_t reason;
    size_t num_headers;
    h2o_header_t headers[ORIGIN_HTTP_MAX_HEADERS]; /* name -> names[i]; orig_name NULL */
    h2o_iovec_t names[ORIGIN_HTTP_MAX_HEADERS];
} origin_http_head_t;

/**
 * Parses the response head at the start of `buf`. Only the first ORIGIN_HTTP_MAX_HEAD_BYTES are looked at.
 * @param[out] head  filled on success; its pointers point into `buf` and live as long as those bytes
 * @return the length of the head (> 0), -2 when more bytes are needed (len < ORIGIN_HTTP_MAX_HEAD_BYTES),
 *         -1 when the head is invalid: bad syntax, a status under 100, more than ORIGIN_HTTP_MAX_HEADERS
 *         headers, a header name with a NUL or a folded (obs-fold) line, or no end within
 *         ORIGIN_HTTP_MAX_HEAD_BYTES
 */
int origin_http_parse_head(const char *buf, size_t len, origin_http_head_t *head);

/** What the framing decision says about a head. */
typedef struct st_origin_http_framing_t {
    origin_framing_t framing;
    int64_t content_length; /* the Content-Length value, -1 when absent (also reported for bodiless responses) */
    int keepalive;          /* the connection may be reused after a complete body (Connection / version) */
} origin_http_framing_t;

#define ORIGIN_HTTP_FINAL 0    /* a final response: `out` is filled */
#define ORIGIN_HTTP_INTERIM 1  /* a 1xx other than 101: skip it and read the next head */
#define ORIGIN_HTTP_INVALID -1 /* refuse the response (ORIGIN_EPROTO); the connection cannot be reused */

/**
 * Decides how the body of `head` is delimited (RFC 9112 §6.3), for a request whose method is HEAD or not.
 * - 1xx except 101: ORIGIN_HTTP_INTERIM. 101 (we never ask for an upgrade): invalid.
 * - Transfer-Encoding (all its lines, in order) must be a list of `identity` codings followed by a final
 *   `chunked` (case-insensitive, OWS and empty list members allowed); anything else, Transfer-Encoding
 *   together with Content-Length, or Transfer-Encoding in an HTTP/1.0 response is invalid.
 * - Content-Length: every line and every list member is 1*DIGIT fitting in int64_t, all equal; else invalid.
 * - Bodiless: HEAD requests, 204, 304 (ORIGIN_FRAMING_NONE); then chunked, then Content-Length, else
 *   ORIGIN_FRAMING_CLOSE (never keep-alive).
 * - keepalive: HTTP/1.1 without a `close` token in Connection; HTTP/1.0 only with a `keep-alive` token.
 * These checks apply to bodiless responses too (a head is valid or not whatever the request was).
 * @return ORIGIN_HTTP_FINAL, ORIGIN_HTTP_INTERIM or ORIGIN_HTTP_INVALID
 */
int origin_http_framing(const origin_http_head_t *head, int is_head_request, origin_http_framing_t *out);

/** The state of one body being read. Zero-fill, then origin_http_body_init. */
typedef struct st_origin_http_body_t {
    origin_framing_t framing;
    uint64_t bytes_left; /* LENGTH: bytes still to come */
    struct phr_chunked_decoder chunked;
    int complete; /* the body ended as its framing says (never set for CLOSE: only a close ends it) */
} origin_http_body_t;

void origin_http_body_init(origin_http_body_t *body, origin_framing_t framing, int64_t content_length);

/**
 * Decodes raw bytes of the body in place.
 * @param[in,out] buf, len  in: `*len` raw bytes; out: `buf[0 .. *len)` are body bytes (chunked framing removed)
 * @param[out] extra        bytes after the end of the body (only when it returns 1); they were moved to
 *                          `buf + *len` and are not part of the response (the connection must not be reused)
 * @return 0 when the body goes on, 1 when it is complete (the final 0-chunk and the trailer section were read,
 *         or Content-Length bytes arrived; at once for NONE), -1 on bad chunked syntax or a chunk size overflow
 *         (the decoder must not be used again). Calling it after it returned 1 returns 1 with every byte extra.
 */
int origin_http_body_decode(origin_http_body_t *body, char *buf, size_t *len, size_t *extra);

#endif
