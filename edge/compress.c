/*
 * edge/compress.c: content codings (gzip, brotli) of stored objects, and their negotiation.
 *
 * Contract:
 * - This is the only file of the project that includes zlib.h and the brotli headers (STYLE.md: one third-party
 *   boundary per file). Callers see plain C types only.
 * - Negotiation, type and ETag helpers are pure: no allocation, no global state, one pass over their input,
 *   never read past the given length. Safe from any thread, cheap enough for the hit path.
 * - An encoder/decoder owns a zlib or brotli state plus one EDGE_COMPRESS_CHUNK_SIZE output buffer, allocated
 *   with malloc (it lives on the fill/compression thread, not in a request pool) and released by *_free in any
 *   state. Memory is bounded by the coding's window, never by the body: output leaves through the sink as soon
 *   as a chunk is full. One thread at a time per object; no locks.
 * - States: open -> finished (after *_finish) or failed (sticky: the first error is returned again by every
 *   later call). Nothing reaches the sink after an error.
 * - Origin bytes (gzip bodies) are hostile: the decoder bounds the total output and the output/input ratio and
 *   refuses anything that is not a sequence of complete gzip members.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>
#include <brotli/encode.h>
#include "edge/compress.h"

/* q-values are kept in thousandths: 0..1000. */
#define Q_UNSET (-1)
#define Q_MAX 1000

/* Brotli levels 0 and 1 compress each piece of input they are given on its own (BrotliEncoderCompressStreamFast):
 * 1-byte writes made the output 4x the input. Those levels get their input staged in blocks of this size. */
#ifndef EDGE_COMPRESS_BROTLI_STAGE_SIZE
#define EDGE_COMPRESS_BROTLI_STAGE_SIZE 65536
#endif

/* Media types longer than this are not compressible (no real one comes close). */
#define MAX_MEDIA_TYPE_LEN 127

enum { STATE_OPEN = 0, STATE_FINISHED = 1, STATE_FAILED = 2 };

struct st_edge_encoder_t {
    edge_encoding_t enc;
    edge_compress_sink_cb sink;
    void *ctx;
    int state;
    uint64_t bytes_out;
    z_stream zs;
    BrotliEncoderState *br;
    size_t buf_used; /* brotli: bytes of buf filled; gzip uses zs.avail_out */
    uint8_t *stage;  /* brotli levels 0-1: input staged into EDGE_COMPRESS_BROTLI_STAGE_SIZE blocks, else NULL */
    size_t stage_used;
    uint8_t buf[EDGE_COMPRESS_CHUNK_SIZE];
};

struct st_edge_decoder_t {
    z_stream zs;
    edge_compress_sink_cb sink;
    void *ctx;
    uint64_t max_output;
    unsigned max_ratio;
    int err;       /* sticky error code, 0 when fine */
    int finished;  /* finish was called */
    int in_member; /* bytes of a member were fed and its end was not seen yet */
    unsigned members;
    uint64_t in_total;  /* compressed bytes consumed, all members */
    uint64_t out_total; /* bytes given to the sink */
    uint8_t buf[EDGE_COMPRESS_CHUNK_SIZE];
};

const char *edge_compress_default_types[] = {
    "text/*",
    "application/javascript",
    "application/x-javascript",
    "application/ecmascript",
    "application/json",
    "+json", /* application/ld+json, application/manifest+json, application/problem+json ... */
    "application/xml",
    "+xml", /* application/rss+xml, application/atom+xml, application/xhtml+xml ... */
    "image/svg+xml",
    "application/wasm",
    /* fonts that are not compressed already (woff/woff2 are, see never_types) */
    "font/ttf",
    "font/otf",
    "font/sfnt",
    "font/collection",
    "application/font-sfnt",
    "application/x-font-ttf",
    "application/x-font-truetype",
    "application/x-font-otf",
    "application/x-font-opentype",
    "application/vnd.ms-fontobject",
    NULL,
};

/* Compressed already: never recompressed, whatever the configured list says (a configured image or font wildcard included). */
static const char *never_types[] = {
    "font/woff",
    "font/woff2",
    "application/font-woff",
    "application/font-woff2",
    "application/x-font-woff",
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "image/heic",
    "image/heif",
    "image/jxl",
    "video/*",
    "audio/*",
    "application/zip",
    "application/gzip",
    "application/x-gzip",
    "application/x-brotli",
    "application/zstd",
    "application/x-xz",
    "application/x-bzip2",
    "application/x-7z-compressed",
    "application/x-rar-compressed",
    "+zip",
    "+gzip",
    NULL,
};

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 §5.6.2 tchar */
static int is_tchar(char ch)
{
    unsigned char c = (unsigned char)ch;
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'))
        return 1;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

static int token_eq(const char *s, size_t n, const char *lit)
{
    size_t i;
    for (i = 0; i != n; ++i)
        if (lit[i] == '\0' || lower(s[i]) != lower(lit[i]))
            return 0;
    return lit[i] == '\0';
}

/* RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ). Returns thousandths or -1. */
static int parse_qvalue(const char *s, size_t n)
{
    int q, frac = 0;
    size_t i;
    if (n == 0 || n > 5)
        return -1;
    if (s[0] == '0')
        q = 0;
    else if (s[0] == '1')
        q = Q_MAX;
    else
        return -1;
    if (n == 1)
        return q;
    if (s[1] != '.')
        return -1;
    for (i = 2; i != 5; ++i) {
        frac *= 10;
        if (i < n) {
            if (s[i] < '0' || s[i] > '9')
                return -1;
            frac += s[i] - '0';
        }
    }
    if (q == Q_MAX && frac != 0)
        return -1;
    return q + frac;
}

/* i points at an opening DQUOTE; returns the index after the closing one, or len when unterminated. */
static size_t skip_quoted(const char *v, size_t len, size_t i, int *ok)
{
    for (++i; i < len; ++i) {
        if (v[i] == '\\') {
            if (++i == len)
                break;
        } else if (v[i] == '"') {
            *ok = 1;
            return i + 1;
        }
    }
    *ok = 0;
    return len;
}

/* Parses the parameters after a coding name, starting at *pos. Returns the q (thousandths, Q_MAX when absent) or
 * -1 when the element is malformed. *pos ends at the ',' that ends the element or at len. */
static int parse_element_params(const char *v, size_t len, size_t *pos)
{
    size_t i = *pos;
    int q = Q_MAX, seen_q = 0, ok = 1;

    for (;;) {
        while (i < len && is_ows(v[i]))
            ++i;
        if (i == len || v[i] == ',')
            break;
        if (v[i] != ';') {
            ok = 0;
            break;
        }
        ++i;
        while (i < len && is_ows(v[i]))
            ++i;
        size_t name = i;
        while (i < len && is_tchar(v[i]))
            ++i;
        size_t name_len = i - name;
        if (name_len == 0 || i == len || v[i] != '=') {
            ok = 0;
            break;
        }
        ++i;
        size_t value = i;
        int is_q = name_len == 1 && lower(v[name]) == 'q';
        if (i < len && v[i] == '"') {
            int closed;
            i = skip_quoted(v, len, i, &closed);
            if (!closed || is_q) { /* a quoted q is not a qvalue */
                ok = 0;
                break;
            }
        } else {
            while (i < len && is_tchar(v[i]))
                ++i;
        }
        if (is_q) {
            if (seen_q || (q = parse_qvalue(v + value, i - value)) < 0) {
                ok = 0;
                break;
            }
            seen_q = 1;
        }
    }
    if (!ok) {
        /* skip the rest of the element, quotes included */
        while (i < len && v[i] != ',') {
            if (v[i] == '"') {
                int closed;
                i = skip_quoted(v, len, i, &closed);
            } else {
                ++i;
            }
        }
    }
    *pos = i;
    return ok ? q : -1;
}

static int media_type_matches(const char *mt, size_t mt_len, size_t slash, const char *pattern)
{
    size_t plen = strlen(pattern);
    if (pattern[0] == '+') {
        /* structured syntax suffix: the subtype ends with it and has something before it */
        size_t sub_len = mt_len - slash - 1;
        return sub_len > plen && token_eq(mt + mt_len - plen, plen, pattern);
    }
    if (plen >= 2 && pattern[plen - 2] == '/' && pattern[plen - 1] == '*')
        return slash == plen - 2 && strncasecmp(mt, pattern, slash) == 0; /* "type" "/" "*": same type */
    return token_eq(mt, mt_len, pattern);
}

static int media_type_in(const char *mt, size_t mt_len, size_t slash, const char **list, size_t n)
{
    for (size_t i = 0; i != n && list[i] != NULL; ++i)
        if (media_type_matches(mt, mt_len, slash, list[i]))
            return 1;
    return 0;
}

static int encoder_emit(edge_encoder_t *e, size_t len)
{
    if (len == 0)
        return 0;
    if (e->sink(e->ctx, e->buf, len) != 0)
        return -1;
    e->bytes_out += len;
    return 0;
}

/* Runs deflate over the pending input until it is consumed (flush == Z_NO_FLUSH) or the stream ended (Z_FINISH).
 * Only full chunks leave during writes, so the output bytes do not depend on how the input was cut. */
static int gzip_run(edge_encoder_t *e, int flush)
{
    for (;;) {
        int r = deflate(&e->zs, flush);
        if (r == Z_STREAM_ERROR)
            return -1;
        if (e->zs.avail_out == 0) {
            if (encoder_emit(e, sizeof(e->buf)) != 0)
                return -1;
            e->zs.next_out = e->buf;
            e->zs.avail_out = sizeof(e->buf);
            continue;
        }
        /* deflate stops with room left only when the input is consumed (or, for Z_FINISH, the stream ended) */
        if (flush == Z_NO_FLUSH)
            return 0;
        if (r == Z_STREAM_END)
            return encoder_emit(e, sizeof(e->buf) - e->zs.avail_out);
    }
}

static int brotli_run(edge_encoder_t *e, BrotliEncoderOperation op, const uint8_t *in, size_t in_len)
{
    for (;;) {
        size_t avail_out = sizeof(e->buf) - e->buf_used;
        uint8_t *next_out = e->buf + e->buf_used;
        if (!BrotliEncoderCompressStream(e->br, op, &in_len, &in, &avail_out, &next_out, NULL))
            return -1;
        e->buf_used = sizeof(e->buf) - avail_out;
        if (e->buf_used == sizeof(e->buf)) {
            if (encoder_emit(e, e->buf_used) != 0)
                return -1;
            e->buf_used = 0;
            continue;
        }
        if (op == BROTLI_OPERATION_FINISH) {
            if (BrotliEncoderIsFinished(e->br)) {
                int r = encoder_emit(e, e->buf_used);
                e->buf_used = 0;
                return r;
            }
        } else if (in_len == 0 && !BrotliEncoderHasMoreOutput(e->br)) {
            return 0;
        }
    }
}

static int decoder_fail(edge_decoder_t *d, int err)
{
    d->err = err;
    return err;
}

/* Checks the bomb limits for `produced` more bytes, then gives them to the sink. */
static int decoder_emit(edge_decoder_t *d, size_t produced)
{
    if (produced == 0)
        return 0;
    if (produced > d->max_output - d->out_total) /* out_total <= max_output always holds */
        return decoder_fail(d, EDGE_COMPRESS_EBOMB);
    uint64_t new_out = d->out_total + produced;
    /* new_out > max_ratio * in_total, written without the multiplication (no overflow) */
    if (d->max_ratio != 0 && new_out > EDGE_COMPRESS_RATIO_GRACE && d->in_total <= (new_out - 1) / d->max_ratio)
        return decoder_fail(d, EDGE_COMPRESS_EBOMB);
    if (d->sink(d->ctx, d->buf, produced) != 0)
        return decoder_fail(d, EDGE_COMPRESS_ESINK);
    d->out_total = new_out;
    return 0;
}

int edge_accept_encoding_select(const char *value, size_t len, unsigned available)
{
    int q_br = Q_UNSET, q_gzip = Q_UNSET, q_identity = Q_UNSET, q_star = Q_UNSET, q_min_nonzero = Q_MAX;
    size_t i = 0;

    while (i < len) {
        /* empty list elements are allowed (RFC 9110 §5.6.1.2) */
        while (i < len && (is_ows(value[i]) || value[i] == ','))
            ++i;
        if (i == len)
            break;
        size_t name = i;
        while (i < len && is_tchar(value[i]))
            ++i;
        size_t name_len = i - name;
        int q = parse_element_params(value, len, &i);
        if (name_len == 0 || q < 0)
            continue; /* malformed element or invalid q: ignored */
        int *slot = NULL;
        if (token_eq(value + name, name_len, "br"))
            slot = &q_br;
        else if (token_eq(value + name, name_len, "gzip") || token_eq(value + name, name_len, "x-gzip"))
            slot = &q_gzip;
        else if (token_eq(value + name, name_len, "identity"))
            slot = &q_identity;
        else if (token_eq(value + name, name_len, "*"))
            slot = &q_star;
        if (q != 0 && q < q_min_nonzero)
            q_min_nonzero = q;
        if (slot != NULL && *slot == Q_UNSET) /* first occurrence counts */
            *slot = q;
    }

    /* Codings not listed take the q of "*" or are unacceptable. Identity not listed is acceptable by default
     * (RFC 9110 §12.5.3) unless "*;q=0"; as the fallback it ranks with the lowest q the client gave and loses ties,
     * so "gzip;q=0.5" still gets gzip. */
    if (q_br == Q_UNSET)
        q_br = q_star != Q_UNSET ? q_star : 0;
    if (q_gzip == Q_UNSET)
        q_gzip = q_star != Q_UNSET ? q_star : 0;
    if (q_identity == Q_UNSET)
        q_identity = q_star != Q_UNSET ? q_star : q_min_nonzero;

    int best = -1, best_q = 0;
    if ((available & EDGE_ENC_BIT(EDGE_ENC_BR)) != 0 && q_br > best_q) {
        best = EDGE_ENC_BR;
        best_q = q_br;
    }
    if ((available & EDGE_ENC_BIT(EDGE_ENC_GZIP)) != 0 && q_gzip > best_q) {
        best = EDGE_ENC_GZIP;
        best_q = q_gzip;
    }
    if (q_identity > best_q)
        best = EDGE_ENC_IDENTITY;
    return best;
}

const char *edge_encoding_name(edge_encoding_t e)
{
    switch (e) {
    case EDGE_ENC_IDENTITY:
        return "identity";
    case EDGE_ENC_GZIP:
        return "gzip";
    case EDGE_ENC_BR:
        return "br";
    }
    return NULL;
}

void edge_compress_settings_init(edge_compress_settings_t *s)
{
    size_t n = 0;
    while (edge_compress_default_types[n] != NULL)
        ++n;
    s->types = edge_compress_default_types;
    s->num_types = n;
    s->min_size = EDGE_DEFAULT_COMPRESS_MIN_SIZE;
    s->gzip_level = EDGE_DEFAULT_GZIP_LEVEL;
    s->brotli_level = EDGE_DEFAULT_BROTLI_LEVEL;
    s->hot_hits = EDGE_DEFAULT_COMPRESS_HOT_HITS;
}

int edge_compress_type_ok(const edge_compress_settings_t *s, const char *content_type, size_t len)
{
    size_t start = 0, end = 0, slash = 0;

    while (start < len && is_ows(content_type[start]))
        ++start;
    end = start;
    while (end < len && content_type[end] != ';')
        ++end;
    while (end > start && is_ows(content_type[end - 1]))
        --end;

    const char *mt = content_type + start;
    size_t mt_len = end - start;
    if (mt_len == 0 || mt_len > MAX_MEDIA_TYPE_LEN)
        return 0;
    /* type "/" subtype, both tokens (RFC 9110 §8.3.1) */
    for (size_t i = 0; i != mt_len; ++i) {
        if (mt[i] == '/') {
            if (slash != 0 || i == 0)
                return 0;
            slash = i;
        } else if (!is_tchar(mt[i])) {
            return 0;
        }
    }
    if (slash == 0 || slash == mt_len - 1)
        return 0;

    if (media_type_in(mt, mt_len, slash, never_types, SIZE_MAX))
        return 0;
    return s->types != NULL && media_type_in(mt, mt_len, slash, s->types, s->num_types);
}

int edge_compress_eligible(const edge_compress_settings_t *s, const char *content_type, size_t len, uint64_t body_size)
{
    return body_size >= s->min_size && edge_compress_type_ok(s, content_type, len);
}

edge_encoder_t *edge_encoder_new(edge_encoding_t enc, int level, edge_compress_sink_cb sink, void *ctx)
{
    edge_encoder_t *e;

    switch (enc) {
    case EDGE_ENC_GZIP:
        if (level < 1 || level > 9)
            return NULL;
        break;
    case EDGE_ENC_BR:
        if (level < BROTLI_MIN_QUALITY || level > BROTLI_MAX_QUALITY)
            return NULL;
        break;
    default:
        return NULL;
    }
    if ((e = malloc(sizeof(*e))) == NULL)
        return NULL;
    memset(e, 0, offsetof(edge_encoder_t, buf));
    e->enc = enc;
    e->sink = sink;
    e->ctx = ctx;
    if (enc == EDGE_ENC_GZIP) {
        /* windowBits 15 + 16: gzip framing (RFC 1952), as Content-Encoding: gzip means; memLevel 8 is zlib's default */
        if (deflateInit2(&e->zs, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
            free(e);
            return NULL;
        }
        e->zs.next_out = e->buf;
        e->zs.avail_out = sizeof(e->buf);
    } else {
        if ((e->br = BrotliEncoderCreateInstance(NULL, NULL, NULL)) == NULL) {
            free(e);
            return NULL;
        }
        BrotliEncoderSetParameter(e->br, BROTLI_PARAM_QUALITY, (uint32_t)level);
        BrotliEncoderSetParameter(e->br, BROTLI_PARAM_LGWIN, BROTLI_DEFAULT_WINDOW);
        if (level < 2 && (e->stage = malloc(EDGE_COMPRESS_BROTLI_STAGE_SIZE)) == NULL) {
            BrotliEncoderDestroyInstance(e->br);
            free(e);
            return NULL;
        }
    }
    return e;
}

int edge_encoder_write(edge_encoder_t *e, const void *bytes, size_t len)
{
    const uint8_t *p = bytes;

    if (e->state != STATE_OPEN)
        return -1;
    if (e->enc == EDGE_ENC_GZIP) {
        /* avail_in is a uInt: feed huge buffers in slices */
        while (len != 0) {
            size_t n = len < UINT_MAX ? len : UINT_MAX;
            e->zs.next_in = (Bytef *)p;
            e->zs.avail_in = (uInt)n;
            if (gzip_run(e, Z_NO_FLUSH) != 0)
                goto Fail;
            p += n;
            len -= n;
        }
    } else if (e->stage != NULL) {
        while (len != 0) {
            size_t n = EDGE_COMPRESS_BROTLI_STAGE_SIZE - e->stage_used;
            if (n > len)
                n = len;
            memcpy(e->stage + e->stage_used, p, n);
            e->stage_used += n;
            p += n;
            len -= n;
            if (e->stage_used == EDGE_COMPRESS_BROTLI_STAGE_SIZE) {
                e->stage_used = 0;
                if (brotli_run(e, BROTLI_OPERATION_PROCESS, e->stage, EDGE_COMPRESS_BROTLI_STAGE_SIZE) != 0)
                    goto Fail;
            }
        }
    } else if (len != 0) {
        if (brotli_run(e, BROTLI_OPERATION_PROCESS, p, len) != 0)
            goto Fail;
    }
    return 0;
Fail:
    e->state = STATE_FAILED;
    return -1;
}

int edge_encoder_finish(edge_encoder_t *e)
{
    int r;

    if (e->state != STATE_OPEN)
        return -1;
    if (e->enc == EDGE_ENC_GZIP) {
        e->zs.next_in = NULL;
        e->zs.avail_in = 0;
        r = gzip_run(e, Z_FINISH);
    } else {
        r = brotli_run(e, BROTLI_OPERATION_FINISH, e->stage, e->stage_used);
        e->stage_used = 0;
    }
    e->state = r == 0 ? STATE_FINISHED : STATE_FAILED;
    return r;
}

void edge_encoder_free(edge_encoder_t *e)
{
    if (e == NULL)
        return;
    if (e->enc == EDGE_ENC_GZIP)
        deflateEnd(&e->zs);
    else
        BrotliEncoderDestroyInstance(e->br);
    free(e->stage);
    free(e);
}

uint64_t edge_encoder_bytes_out(const edge_encoder_t *e)
{
    return e->bytes_out;
}

edge_decoder_t *edge_decoder_new_gzip(uint64_t max_output, unsigned max_ratio, edge_compress_sink_cb sink, void *ctx)
{
    edge_decoder_t *d;

    if ((d = malloc(sizeof(*d))) == NULL)
        return NULL;
    memset(d, 0, offsetof(edge_decoder_t, buf));
    /* windowBits 15 + 16: gzip only; a zlib or raw deflate body under Content-Encoding: gzip is corrupt */
    if (inflateInit2(&d->zs, 15 + 16) != Z_OK) {
        free(d);
        return NULL;
    }
    d->sink = sink;
    d->ctx = ctx;
    d->max_output = max_output;
    d->max_ratio = max_ratio;
    return d;
}

int edge_decoder_write(edge_decoder_t *d, const void *bytes, size_t len)
{
    const uint8_t *p = bytes;
    int pending = 0; /* the output buffer filled up: inflate may hold more output without needing input */

    if (d->finished)
        return EDGE_COMPRESS_ESTATE;
    if (d->err != 0)
        return d->err;

    while (len != 0 || pending) {
        if (!d->in_member) {
            /* a new member starts (the first one, or concatenated members: RFC 1952 §2.2) */
            if (d->members != 0 && inflateReset(&d->zs) != Z_OK)
                return decoder_fail(d, EDGE_COMPRESS_ECORRUPT);
            d->in_member = 1;
            ++d->members;
        }
        size_t given = len < UINT_MAX ? len : UINT_MAX;
        d->zs.next_in = (Bytef *)p;
        d->zs.avail_in = (uInt)given;
        d->zs.next_out = d->buf;
        d->zs.avail_out = sizeof(d->buf);
        int r = inflate(&d->zs, Z_NO_FLUSH);
        size_t consumed = given - d->zs.avail_in;
        size_t produced = sizeof(d->buf) - d->zs.avail_out;
        p += consumed;
        len -= consumed;
        d->in_total += consumed;
        switch (r) {
        case Z_OK:
        case Z_BUF_ERROR: /* no progress possible: needs input we do not have yet */
            break;
        case Z_STREAM_END: /* trailer (CRC32, ISIZE) verified */
            d->in_member = 0;
            break;
        case Z_MEM_ERROR:
            return decoder_fail(d, EDGE_COMPRESS_ENOMEM);
        default: /* Z_DATA_ERROR, Z_NEED_DICT, Z_STREAM_ERROR */
            return decoder_fail(d, EDGE_COMPRESS_ECORRUPT);
        }
        int er;
        if ((er = decoder_emit(d, produced)) != 0)
            return er;
        pending = d->in_member && d->zs.avail_out == 0;
        if (r == Z_BUF_ERROR && consumed == 0 && produced == 0)
            break;
    }
    return 0;
}

int edge_decoder_finish(edge_decoder_t *d)
{
    if (d->finished)
        return EDGE_COMPRESS_ESTATE;
    d->finished = 1;
    if (d->err != 0)
        return d->err;
    if (d->members == 0 || d->in_member)
        return decoder_fail(d, EDGE_COMPRESS_ETRUNCATED);
    return 0;
}

void edge_decoder_free(edge_decoder_t *d)
{
    if (d == NULL)
        return;
    inflateEnd(&d->zs);
    free(d);
}

unsigned edge_decoder_members(const edge_decoder_t *d)
{
    return d->members;
}

uint64_t edge_decoder_bytes_out(const edge_decoder_t *d)
{
    return d->out_total;
}

const char *edge_compress_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case EDGE_COMPRESS_EBOMB:
        return "decompressed size or ratio over the limit";
    case EDGE_COMPRESS_ECORRUPT:
        return "corrupt gzip stream";
    case EDGE_COMPRESS_ETRUNCATED:
        return "truncated gzip stream";
    case EDGE_COMPRESS_ESINK:
        return "aborted by the sink";
    case EDGE_COMPRESS_ENOMEM:
        return "out of memory";
    case EDGE_COMPRESS_ESTATE:
        return "stream already finished";
    default:
        return "unknown error";
    }
}

size_t edge_etag_for_encoding(const char *etag, size_t len, edge_encoding_t e, char *out, size_t outlen)
{
    size_t prefix = 0, i;
    const char *suffix;

    switch (e) {
    case EDGE_ENC_IDENTITY:
        suffix = "";
        break;
    case EDGE_ENC_GZIP:
        suffix = "-gzip";
        break;
    case EDGE_ENC_BR:
        suffix = "-br";
        break;
    default:
        return 0;
    }
    /* entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc = %x21 / %x23-7E / obs-text (RFC 9110 §8.8.3) */
    if (len >= 2 && etag[0] == 'W' && etag[1] == '/')
        prefix = 2;
    if (len < prefix + 2 || etag[prefix] != '"' || etag[len - 1] != '"')
        return 0;
    for (i = prefix + 1; i != len - 1; ++i) {
        unsigned char c = (unsigned char)etag[i];
        if (!(c == 0x21 || (c >= 0x23 && c <= 0x7e) || c >= 0x80))
            return 0;
    }
    size_t suffix_len = strlen(suffix), out_len = len + suffix_len;
    if (out_len >= outlen)
        return 0;
    memcpy(out, etag, len - 1);
    memcpy(out + len - 1, suffix, suffix_len);
    out[out_len - 1] = '"';
    out[out_len] = '\0';
    return out_len;
}
