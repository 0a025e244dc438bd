/*
 * Unit tests of edge/compress.h. Tables for the pure functions (inputs copied against a PROT_NONE page, so a read
 * past the given length faults); round-trips through the real zlib and brotli for the encoder and decoder.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>
#include <brotli/decode.h>
#include "edge/compress.h"

#define MiB (1024 * 1024)

/* ---- guard page ---- */

static char *guard_mem;
static size_t guard_page;

static int guard_setup(void **state)
{
    guard_page = (size_t)sysconf(_SC_PAGESIZE);
    guard_mem = mmap(NULL, guard_page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_mem == MAP_FAILED)
        return -1;
    return mprotect(guard_mem + guard_page, guard_page, PROT_NONE);
}

static int guard_teardown(void **state)
{
    munmap(guard_mem, guard_page * 2);
    return 0;
}

/* Copies s so that its last byte is the last one before the guard page; no NUL follows. */
static const char *guarded(const char *s, size_t len)
{
    assert_true(len < guard_page);
    char *dst = guard_mem + guard_page - len;
    memcpy(dst, s, len);
    return dst;
}

/* ---- sink collecting everything ---- */

struct collect_t {
    uint8_t *data;
    size_t len, cap;
    size_t calls;
    size_t max_piece;
    size_t abort_at_call; /* 0: never; n: return 1 on the n-th call */
};

static int on_collect(void *ctx, const void *bytes, size_t len)
{
    struct collect_t *c = ctx;
    assert_true(len >= 1 && len <= EDGE_COMPRESS_CHUNK_SIZE);
    ++c->calls;
    if (c->abort_at_call != 0 && c->calls == c->abort_at_call)
        return 1;
    if (c->len + len > c->cap) {
        c->cap = (c->len + len) * 2;
        c->data = realloc(c->data, c->cap);
        assert_non_null(c->data);
    }
    memcpy(c->data + c->len, bytes, len);
    c->len += len;
    if (len > c->max_piece)
        c->max_piece = len;
    return 0;
}

/* counts bytes only (for the 100 MiB bomb) */
static int on_count(void *ctx, const void *bytes, size_t len)
{
    *(uint64_t *)ctx += len;
    return 0;
}

static void collect_dispose(struct collect_t *c)
{
    free(c->data);
    memset(c, 0, sizeof(*c));
}

/* ---- inputs ---- */

/* Deterministic pseudo-random text (an LCG picks words): compresses like prose, about 3:1. */
static uint8_t *make_text(size_t len, uint32_t seed)
{
    static const char *words[] = {"cache", "edge", "origin", "purge", "stale",  "fresh", "the",  "a",    "of",   "vary",
                                  "etag",  "gzip", "brotli", "lmdb",  "header", "body",  "hit",  "miss", "fill", "key",
                                  "to",    "and",  "with",   "range", "store",  "token", "http", "node", "tag",  "age"};
    uint8_t *p = malloc(len == 0 ? 1 : len);
    size_t i = 0;
    uint32_t x = seed;
    assert_non_null(p);
    while (i < len) {
        x = x * 1103515245u + 12345u;
        const char *w = words[(x >> 16) % (sizeof(words) / sizeof(words[0]))];
        for (; *w != '\0' && i < len; ++w)
            p[i++] = (uint8_t)*w;
        if (i < len)
            p[i++] = ((x >> 8) & 15) == 0 ? '\n' : ' ';
    }
    return p;
}

/* gzip made by zlib itself (deflate with a gzip header, optionally with name/comment/extra/header CRC) */
static uint8_t *zlib_gzip(const uint8_t *in, size_t len, int with_header_fields, size_t *out_len)
{
    z_stream zs = {0};
    gz_header h = {0};
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    if (with_header_fields) {
        static Bytef extra[] = {'A', 'B', 2, 0, 'x', 'y'};
        h.text = 1;
        h.time = 1700000000;
        h.os = 3;
        h.extra = extra;
        h.extra_len = sizeof(extra);
        h.name = (Bytef *)"index.html";
        h.comment = (Bytef *)"made by the test";
        h.hcrc = 1;
        assert_int_equal(deflateSetHeader(&zs, &h), Z_OK);
    }
    size_t cap = deflateBound(&zs, len) + 256;
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *out_len = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* gzip of n zero bytes, made as a stream (100 MiB of zeros never sits in memory) */
static uint8_t *zlib_gzip_zeros(uint64_t n, size_t *out_len)
{
    static uint8_t zeros[1 << 20];
    z_stream zs = {0};
    size_t cap = 1 << 20, used = 0;
    uint8_t *out = malloc(cap);
    assert_non_null(out);
    assert_int_equal(deflateInit2(&zs, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    for (;;) {
        int flush = n == 0 ? Z_FINISH : Z_NO_FLUSH;
        size_t piece = n < sizeof(zeros) ? (size_t)n : sizeof(zeros);
        zs.next_in = zeros;
        zs.avail_in = (uInt)piece;
        n -= piece;
        int r;
        do {
            if (cap - used < 65536) {
                cap *= 2;
                out = realloc(out, cap);
                assert_non_null(out);
            }
            zs.next_out = out + used;
            zs.avail_out = (uInt)(cap - used);
            r = deflate(&zs, flush);
            used = cap - zs.avail_out;
        } while (zs.avail_in != 0 || (flush == Z_FINISH && r != Z_STREAM_END));
        if (flush == Z_FINISH)
            break;
    }
    deflateEnd(&zs);
    *out_len = used;
    return out;
}

/* inflate (gzip framing only) with zlib in one go */
static uint8_t *zlib_gunzip(const uint8_t *in, size_t len, size_t expected_len, size_t *out_len)
{
    z_stream zs = {0};
    uint8_t *out = malloc(expected_len + 1);
    assert_non_null(out);
    assert_int_equal(inflateInit2(&zs, 15 + 16), Z_OK);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)expected_len + 1;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    assert_int_equal(zs.avail_in, 0); /* exactly one member, nothing after it */
    *out_len = zs.total_out;
    inflateEnd(&zs);
    return out;
}

/* Encodes in pieces of `piece` bytes (0: one write). Returns the output in c. */
static void encode_pieces(edge_encoding_t enc, int level, const uint8_t *in, size_t len, size_t piece, struct collect_t *c)
{
    edge_encoder_t *e = edge_encoder_new(enc, level, on_collect, c);
    assert_non_null(e);
    if (piece == 0)
        piece = len == 0 ? 1 : len;
    for (size_t off = 0; off < len; off += piece)
        assert_int_equal(edge_encoder_write(e, in + off, len - off < piece ? len - off : piece), 0);
    assert_int_equal(edge_encoder_finish(e), 0);
    assert_int_equal(edge_encoder_bytes_out(e), c->len);
    edge_encoder_free(e);
}

static void assert_decodes_to(edge_encoding_t enc, const uint8_t *z, size_t zlen, const uint8_t *in, size_t len)
{
    size_t out_len = 0;
    uint8_t *out;
    if (enc == EDGE_ENC_GZIP) {
        out = zlib_gunzip(z, zlen, len, &out_len);
    } else {
        out = malloc(len + 1);
        out_len = len + 1;
        assert_int_equal(BrotliDecoderDecompress(zlen, z, &out_len, out), BROTLI_DECODER_RESULT_SUCCESS);
    }
    assert_int_equal(out_len, len);
    assert_memory_equal(out, in, len);
    free(out);
}

/* Decodes in pieces of `piece` bytes (0: one write); returns the code of the first failing call, or finish's. */
static int decode_pieces(const uint8_t *z, size_t zlen, size_t piece, uint64_t max_output, unsigned max_ratio, struct collect_t *c,
                         unsigned *members)
{
    edge_decoder_t *d = edge_decoder_new_gzip(max_output, max_ratio, on_collect, c);
    int r = 0;
    assert_non_null(d);
    if (piece == 0)
        piece = zlen == 0 ? 1 : zlen;
    for (size_t off = 0; off < zlen && r == 0; off += piece)
        r = edge_decoder_write(d, z + off, zlen - off < piece ? zlen - off : piece);
    if (r == 0)
        r = edge_decoder_finish(d);
    else
        assert_int_equal(edge_decoder_finish(d), r); /* errors are sticky */
    assert_int_equal(edge_decoder_bytes_out(d), c->len);
    if (members != NULL)
        *members = edge_decoder_members(d);
    edge_decoder_free(d);
    return r;
}

/* ---- Accept-Encoding ---- */

#define ALL EDGE_ENC_ALL
#define GZ_ID (EDGE_ENC_BIT(EDGE_ENC_GZIP) | EDGE_ENC_BIT(EDGE_ENC_IDENTITY))
#define BR_ID (EDGE_ENC_BIT(EDGE_ENC_BR) | EDGE_ENC_BIT(EDGE_ENC_IDENTITY))
#define ID_ONLY EDGE_ENC_BIT(EDGE_ENC_IDENTITY)
#define ID EDGE_ENC_IDENTITY
#define GZ EDGE_ENC_GZIP
#define BR EDGE_ENC_BR

struct ae_row_t {
    const char *name;
    const char *value;
    unsigned available;
    int expected;
    size_t value_len; /* 0: strlen(value) */
};

static const struct ae_row_t ae_rows[] = {
    /* basics and the br > gzip > identity tie-break */
    {"empty header: identity", "", ALL, ID},
    {"only spaces: identity", "  \t ", ALL, ID},
    {"only commas: identity", " , ,", ALL, ID},
    {"browser default", "gzip, deflate, br", ALL, BR},
    {"browser default, zstd too", "gzip, deflate, br, zstd", ALL, BR},
    {"gzip only", "gzip", ALL, GZ},
    {"br only", "br", ALL, BR},
    {"br not stored: gzip", "gzip, br", GZ_ID, GZ},
    {"gzip not stored: br", "gzip, br", BR_ID, BR},
    {"nothing stored but identity", "gzip, br", ID_ONLY, ID},
    {"available 0 still has identity", "gzip, br", 0, ID},
    {"deflate only: identity", "deflate", ALL, ID},
    {"unknown coding only: identity", "compress, zstd", ALL, ID},
    /* q-values */
    {"gzip preferred by q", "br;q=0.5, gzip", ALL, GZ},
    {"gzip preferred by q 3 decimals", "br;q=0.998, gzip;q=0.999", ALL, GZ},
    {"equal q: br wins", "gzip;q=0.8, br;q=0.8", ALL, BR},
    {"equal q listed gzip first: br wins", "gzip;q=1.0, br;q=1", ALL, BR},
    {"q=1.000 valid", "gzip;q=1.000, br;q=0.999", ALL, GZ},
    {"q=0. valid (zero digits)", "br;q=0., gzip", ALL, GZ},
    {"q=1. valid", "gzip;q=1., br;q=0.9", ALL, GZ},
    {"br q=0 refuses br", "br;q=0, gzip", ALL, GZ},
    {"br q=0.000 refuses br", "br;q=0.000, gzip;q=0.001", ALL, GZ},
    {"both refused: identity", "br;q=0, gzip;q=0", ALL, ID},
    {"identity preferred by q", "identity;q=1, gzip;q=0.5", ALL, ID},
    {"identity equal q loses", "identity;q=0.5, gzip;q=0.5", ALL, GZ},
    {"unlisted identity is the fallback", "gzip;q=0.1", ALL, GZ},
    {"unlisted identity when gzip missing", "gzip;q=0.1", BR_ID, ID},
    /* identity;q=0 and * */
    {"identity;q=0, gzip available", "gzip, identity;q=0", ALL, GZ},
    {"identity;q=0 and nothing else: -1", "identity;q=0", ALL, -1},
    {"identity;q=0, gzip not stored: -1", "gzip, identity;q=0", BR_ID, -1},
    {"star: br", "*", ALL, BR},
    {"star with only gzip stored", "*", GZ_ID, GZ},
    {"star with identity only stored", "*", ID_ONLY, ID},
    {"star q=0: -1", "*;q=0", ALL, -1},
    {"star q=0 but identity listed", "*;q=0, identity", ALL, ID},
    {"star q=0 but gzip listed", "gzip, *;q=0", ALL, GZ},
    {"star low, gzip explicit high", "*;q=0.1, gzip", ALL, GZ},
    {"explicit br;q=0 beats star", "br;q=0, *", ALL, GZ},
    {"star q=0.5 vs identity unlisted", "*;q=0.5", ID_ONLY, ID},
    {"identity;q=0, star;q=0: -1", "identity;q=0, *;q=0", ID_ONLY, -1},
    /* case and whitespace */
    {"upper case names", "GZIP, BR", ALL, BR},
    {"mixed case, Q", "Br;Q=0.1, GZip;Q=0.9", ALL, GZ},
    {"x-gzip is gzip", "x-gzip", ALL, GZ},
    {"X-Gzip is gzip", "X-Gzip;q=0.5", GZ_ID, GZ},
    {"spaces everywhere", "  br ; q=0.2 ,\tgzip ;\tq=0.4  ", ALL, GZ},
    {"no spaces", "br;q=0.2,gzip;q=0.4", ALL, GZ},
    {"empty elements", ",,gzip,,", ALL, GZ},
    /* invalid q: the element is ignored */
    {"q=2 ignored", "br;q=2, gzip;q=0.5", ALL, GZ},
    {"q=1.5 ignored", "br;q=1.5, gzip;q=0.5", ALL, GZ},
    {"q=1.001 ignored", "br;q=1.001, gzip;q=0.5", ALL, GZ},
    {"q with 4 decimals ignored", "br;q=0.9999, gzip;q=0.5", ALL, GZ},
    {"q=.5 ignored", "br;q=.5, gzip;q=0.1", ALL, GZ},
    {"q=-1 ignored", "br;q=-1, gzip;q=0.1", ALL, GZ},
    {"empty q ignored", "br;q=, gzip;q=0.1", ALL, GZ},
    {"q=abc ignored", "br;q=abc, gzip;q=0.1", ALL, GZ},
    {"space around = ignored", "br;q = 1, gzip;q=0.1", ALL, GZ},
    {"quoted q ignored", "br;q=\"1\", gzip;q=0.1", ALL, GZ},
    {"two q ignored", "br;q=1;q=0.5, gzip;q=0.1", ALL, GZ},
    {"bad identity q=0x does not refuse identity", "identity;q=0x", ID_ONLY, ID},
    {"bad star q does not refuse", "*;q=zero", ID_ONLY, ID},
    /* other junk */
    {"other parameter skipped", "br;level=5;q=0.9, gzip;q=0.1", ALL, BR},
    {"quoted parameter with comma skipped", "br;x=\"a,gzip\", identity;q=0", GZ_ID, -1},
    {"unterminated quote: element ignored", "gzip;x=\"abc", ALL, ID},
    {"garbage element ignored", "@@@, gzip", ALL, GZ},
    {"space inside token: element ignored", "g zip, br;q=0.5", ALL, BR},
    {"missing name ignored", ";q=1, gzip;q=0.3", ALL, GZ},
    {"parameter without value ignored", "br;q, gzip;q=0.3", ALL, GZ},
    {"duplicate: first counts (q=0 first)", "gzip;q=0, gzip", GZ_ID, ID},
    {"duplicate: first counts (q=1 first)", "gzip, gzip;q=0", GZ_ID, GZ},
    {"identity duplicate: first counts", "identity;q=0, identity", ID_ONLY, -1},
    {"NUL byte inside: element ignored", "gz\0ip, br", ALL, BR, 9},
};

static void test_accept_encoding_table(void **state)
{
    for (size_t i = 0; i != sizeof(ae_rows) / sizeof(ae_rows[0]); ++i) {
        const struct ae_row_t *row = &ae_rows[i];
        size_t len = row->value_len != 0 ? row->value_len : strlen(row->value);
        const char *v = guarded(row->value, len);
        int got = edge_accept_encoding_select(v, len, row->available);
        if (got != row->expected)
            fail_msg("row \"%s\": got %d, expected %d", row->name, got, row->expected);
    }
}

/* the parser never reads past len: a header cut inside a token or a q-value */
static void test_accept_encoding_prefixes(void **state)
{
    const char *full = "br;q=0.5, gzip;x=\"q,\\\"\";q=1.0 , identity;q=0";
    size_t n = strlen(full);
    for (size_t len = 0; len <= n; ++len) {
        int got = edge_accept_encoding_select(guarded(full, len), len, ALL);
        assert_true(got >= -1 && got <= EDGE_ENC_BR);
    }
    assert_int_equal(edge_accept_encoding_select(guarded(full, n), n, ALL), EDGE_ENC_GZIP);
    /* cut at "br;q=0.5, gzip;x=\"q," : the gzip element is malformed (unterminated quote) */
    assert_int_equal(edge_accept_encoding_select(guarded(full, 20), 20, ALL), EDGE_ENC_BR);
    /* cut at "br;q=0" : br refused */
    assert_int_equal(edge_accept_encoding_select(guarded(full, 6), 6, ALL), EDGE_ENC_IDENTITY);
}

static void test_encoding_name(void **state)
{
    assert_string_equal(edge_encoding_name(EDGE_ENC_IDENTITY), "identity");
    assert_string_equal(edge_encoding_name(EDGE_ENC_GZIP), "gzip");
    assert_string_equal(edge_encoding_name(EDGE_ENC_BR), "br");
    assert_null(edge_encoding_name((edge_encoding_t)7));
}

/* ---- types ---- */

struct type_row_t {
    const char *content_type;
    int expected;
};

static const struct type_row_t default_type_rows[] = {
    {"text/html", 1},
    {"text/html; charset=utf-8", 1},
    {"TEXT/HTML;charset=UTF-8", 1},
    {"  text/css  ", 1},
    {"text/plain ; charset=us-ascii", 1},
    {"text/javascript", 1},
    {"application/javascript", 1},
    {"application/x-javascript", 1},
    {"application/json", 1},
    {"Application/JSON; charset=utf-8", 1},
    {"application/ld+json", 1},
    {"application/manifest+json", 1},
    {"application/problem+json", 1},
    {"application/xml", 1},
    {"application/rss+xml", 1},
    {"application/xhtml+xml", 1},
    {"image/svg+xml", 1},
    {"application/wasm", 1},
    {"font/ttf", 1},
    {"font/otf", 1},
    {"application/vnd.ms-fontobject", 1},
    {"application/x-font-ttf", 1},
    /* already compressed or not in the list */
    {"font/woff", 0},
    {"font/woff2", 0},
    {"application/font-woff", 0},
    {"image/png", 0},
    {"image/jpeg", 0},
    {"image/webp", 0},
    {"video/mp4", 0},
    {"application/octet-stream", 0},
    {"application/zip", 0},
    {"application/gzip", 0},
    {"application/pdf", 0},
    {"application/epub+zip", 0},
    /* "+json" needs something before it; malformed types */
    {"application/+json", 0},
    {"", 0},
    {"   ", 0},
    {"text", 0},
    {"text/", 0},
    {"/html", 0},
    {"text/html/x", 0},
    {"text /html", 0},
    {"text/ht ml", 0},
    {";charset=utf-8", 0},
    {"textx/html", 0},
    {"tex/html", 0},
    {"application/jsonx", 0},
};

static void test_type_table(void **state)
{
    edge_compress_settings_t s;
    edge_compress_settings_init(&s);
    assert_true(s.num_types > 0);
    assert_null(edge_compress_default_types[s.num_types]);
    assert_int_equal(s.gzip_level, 6);
    assert_int_equal(s.brotli_level, 5);
    for (size_t i = 0; i != sizeof(default_type_rows) / sizeof(default_type_rows[0]); ++i) {
        const struct type_row_t *row = &default_type_rows[i];
        size_t len = strlen(row->content_type);
        int got = edge_compress_type_ok(&s, guarded(row->content_type, len), len);
        if (got != row->expected)
            fail_msg("type \"%s\": got %d, expected %d", row->content_type, got, row->expected);
    }
}

static void test_type_configured(void **state)
{
    static const char *types[] = {"font/*", "image/*", "Application/X-Custom", "+yaml", "text/html"};
    edge_compress_settings_t s = {types, sizeof(types) / sizeof(types[0]), 1000, 6, 5};
    static const struct type_row_t rows[] = {
        {"font/ttf", 1},
        {"font/woff2", 0},
        {"font/woff", 0},
        {"image/bmp", 1},
        {"image/svg+xml", 1},
        {"image/png", 0},
        {"image/avif", 0},
        {"text/css", 0},
        {"application/x-custom", 1},
        {"application/foo+yaml", 1},
        {"text/html", 1},
        {"fonts/ttf", 0},
        {"image", 0},
    };
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        size_t len = strlen(rows[i].content_type);
        int got = edge_compress_type_ok(&s, guarded(rows[i].content_type, len), len);
        if (got != rows[i].expected)
            fail_msg("type \"%s\": got %d, expected %d", rows[i].content_type, got, rows[i].expected);
    }
    /* num_types bounds the list: only the font wildcard */
    s.num_types = 1;
    assert_int_equal(edge_compress_type_ok(&s, "image/bmp", 9), 0);
    assert_int_equal(edge_compress_type_ok(&s, "font/otf", 8), 1);
    /* empty list */
    s.types = NULL;
    s.num_types = 0;
    assert_int_equal(edge_compress_type_ok(&s, "text/html", 9), 0);
    /* a long type is read only up to len */
    assert_int_equal(edge_compress_type_ok(&(edge_compress_settings_t){types, 5, 0, 6, 5}, "text/htmlX", 9), 1);
}

static void test_eligible(void **state)
{
    edge_compress_settings_t s;
    edge_compress_settings_init(&s);
    s.min_size = 1000;
    assert_int_equal(edge_compress_eligible(&s, "text/html", 9, 999), 0);
    assert_int_equal(edge_compress_eligible(&s, "text/html", 9, 1000), 1);
    assert_int_equal(edge_compress_eligible(&s, "image/png", 9, 1 << 20), 0);
}

/* ---- ETag ---- */

struct etag_row_t {
    const char *etag;
    edge_encoding_t enc;
    const char *expected; /* NULL: 0 returned */
};

static const struct etag_row_t etag_rows[] = {
    {"\"abc\"", EDGE_ENC_GZIP, "\"abc-gzip\""},
    {"\"abc\"", EDGE_ENC_BR, "\"abc-br\""},
    {"\"abc\"", EDGE_ENC_IDENTITY, "\"abc\""},
    {"W/\"abc\"", EDGE_ENC_BR, "W/\"abc-br\""},
    {"W/\"abc\"", EDGE_ENC_GZIP, "W/\"abc-gzip\""},
    {"W/\"abc\"", EDGE_ENC_IDENTITY, "W/\"abc\""},
    {"\"\"", EDGE_ENC_GZIP, "\"-gzip\""},
    {"\"5f3a-1c2b\"", EDGE_ENC_BR, "\"5f3a-1c2b-br\""},
    {"\"caf\xc3\xa9\"", EDGE_ENC_BR, "\"caf\xc3\xa9-br\""},
    /* not entity-tags */
    {"abc", EDGE_ENC_GZIP, NULL},
    {"abc", EDGE_ENC_IDENTITY, NULL},
    {"\"abc", EDGE_ENC_GZIP, NULL},
    {"abc\"", EDGE_ENC_GZIP, NULL},
    {"\"", EDGE_ENC_GZIP, NULL},
    {"", EDGE_ENC_GZIP, NULL},
    {"W/", EDGE_ENC_GZIP, NULL},
    {"W/\"", EDGE_ENC_GZIP, NULL},
    {"w/\"abc\"", EDGE_ENC_GZIP, NULL},
    {" \"abc\"", EDGE_ENC_GZIP, NULL},
    {"\"a b\"", EDGE_ENC_GZIP, NULL},
    {"\"a\"b\"", EDGE_ENC_GZIP, NULL},
    {"\"abc\"", (edge_encoding_t)9, NULL},
};

static void test_etag_table(void **state)
{
    for (size_t i = 0; i != sizeof(etag_rows) / sizeof(etag_rows[0]); ++i) {
        const struct etag_row_t *row = &etag_rows[i];
        char out[64];
        memset(out, 'Z', sizeof(out));
        size_t len = strlen(row->etag);
        size_t got = edge_etag_for_encoding(guarded(row->etag, len), len, row->enc, out, sizeof(out));
        if (row->expected == NULL) {
            if (got != 0)
                fail_msg("etag '%s' enc %d: expected 0, got \"%s\"", row->etag, (int)row->enc, out);
        } else {
            if (got != strlen(row->expected) || strcmp(out, row->expected) != 0)
                fail_msg("etag '%s' enc %d: expected '%s', got %zu", row->etag, (int)row->enc, row->expected, got);
        }
    }
}

static void test_etag_outlen(void **state)
{
    char out[16];
    /* "\"abc-gzip\"" is 10 bytes + NUL = 11 */
    assert_int_equal(edge_etag_for_encoding("\"abc\"", 5, EDGE_ENC_GZIP, out, 11), 10);
    assert_string_equal(out, "\"abc-gzip\"");
    assert_int_equal(edge_etag_for_encoding("\"abc\"", 5, EDGE_ENC_GZIP, out, 10), 0);
    assert_int_equal(edge_etag_for_encoding("\"abc\"", 5, EDGE_ENC_IDENTITY, out, 6), 5);
    assert_int_equal(edge_etag_for_encoding("\"abc\"", 5, EDGE_ENC_IDENTITY, out, 5), 0);
}

/* ---- encoder ---- */

static void test_encoder_round_trip(void **state)
{
    static const struct {
        edge_encoding_t enc;
        int level;
    } cases[] = {{EDGE_ENC_GZIP, 1}, {EDGE_ENC_GZIP, 6}, {EDGE_ENC_GZIP, 9}, {EDGE_ENC_BR, 0},
                 {EDGE_ENC_BR, 1},   {EDGE_ENC_BR, 5},   {EDGE_ENC_BR, 9},   {EDGE_ENC_BR, 11}};
    static const size_t sizes[] = {0, 1, 100, 300 * 1024};
    for (size_t s = 0; s != sizeof(sizes) / sizeof(sizes[0]); ++s) {
        uint8_t *in = make_text(sizes[s], 42 + (uint32_t)s);
        for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
            struct collect_t c = {0};
            encode_pieces(cases[i].enc, cases[i].level, in, sizes[s], 0, &c);
            assert_true(c.len > 0);
            if (sizes[s] >= 1024)
                assert_true(c.len < sizes[s] / 2); /* it really compressed */
            assert_decodes_to(cases[i].enc, c.data, c.len, in, sizes[s]);
            collect_dispose(&c);
        }
        free(in);
    }
}

/* 1-byte, 7-byte and 64 KiB pieces give the same bytes as one write (output leaves in full chunks only; brotli
 * levels 0-1, which compress each given piece on its own, get their input staged) */
static void test_encoder_piece_sizes(void **state)
{
    static const struct {
        edge_encoding_t enc;
        int level;
    } cases[] = {{EDGE_ENC_GZIP, 1}, {EDGE_ENC_GZIP, 6}, {EDGE_ENC_GZIP, 9}, {EDGE_ENC_BR, 0},
                 {EDGE_ENC_BR, 1},   {EDGE_ENC_BR, 5},   {EDGE_ENC_BR, 11}};
    static const size_t pieces[] = {1, 7, 65536};
    const size_t len = 200 * 1024 + 3;
    uint8_t *in = make_text(len, 7);
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        struct collect_t whole = {0};
        encode_pieces(cases[i].enc, cases[i].level, in, len, 0, &whole);
        assert_decodes_to(cases[i].enc, whole.data, whole.len, in, len);
        assert_true(whole.calls > 1); /* the output left in several chunks */
        assert_int_equal(whole.max_piece, EDGE_COMPRESS_CHUNK_SIZE);
        for (size_t p = 0; p != sizeof(pieces) / sizeof(pieces[0]); ++p) {
            struct collect_t c = {0};
            encode_pieces(cases[i].enc, cases[i].level, in, len, pieces[p], &c);
            if (c.len != whole.len || memcmp(c.data, whole.data, c.len) != 0)
                fail_msg("enc %d level %d: pieces of %zu differ from one write", (int)cases[i].enc, cases[i].level, pieces[p]);
            collect_dispose(&c);
        }
        collect_dispose(&whole);
    }
    free(in);
}

struct stream_sink_t {
    struct collect_t c;
    int finishing;
    size_t bytes_before_finish;
};

static int on_stream(void *ctx, const void *bytes, size_t len)
{
    struct stream_sink_t *s = ctx;
    if (!s->finishing)
        s->bytes_before_finish += len;
    return on_collect(&s->c, bytes, len);
}

/* 8 MiB streamed in 64 KiB pieces: output leaves during the writes, in chunks, never as one buffer at the end */
static void test_encoder_large_stream(void **state)
{
    const size_t len = 8 * MiB;
    uint8_t *in = make_text(len, 2024);
    static const struct {
        edge_encoding_t enc;
        int level;
    } cases[] = {{EDGE_ENC_GZIP, EDGE_DEFAULT_GZIP_LEVEL}, {EDGE_ENC_BR, EDGE_DEFAULT_BROTLI_LEVEL}};
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        struct stream_sink_t s = {{0}};
        edge_encoder_t *e = edge_encoder_new(cases[i].enc, cases[i].level, on_stream, &s);
        assert_non_null(e);
        for (size_t off = 0; off < len; off += 65536)
            assert_int_equal(edge_encoder_write(e, in + off, 65536), 0);
        s.finishing = 1;
        assert_int_equal(edge_encoder_finish(e), 0);
        edge_encoder_free(e);
        /* most of the output was handed over before finish: the encoder holds a window, not the input */
        assert_true(s.bytes_before_finish > 0);
        assert_true(s.bytes_before_finish >= s.c.len / 2);
        assert_true(s.c.max_piece <= EDGE_COMPRESS_CHUNK_SIZE);
        assert_true(s.c.len < len / 2);
        assert_decodes_to(cases[i].enc, s.c.data, s.c.len, in, len);
        collect_dispose(&s.c);
    }
    free(in);
}

static void test_encoder_errors(void **state)
{
    struct collect_t c = {0};
    assert_null(edge_encoder_new(EDGE_ENC_IDENTITY, 6, on_collect, &c));
    assert_null(edge_encoder_new((edge_encoding_t)5, 6, on_collect, &c));
    assert_null(edge_encoder_new(EDGE_ENC_GZIP, 0, on_collect, &c));
    assert_null(edge_encoder_new(EDGE_ENC_GZIP, 10, on_collect, &c));
    assert_null(edge_encoder_new(EDGE_ENC_BR, -1, on_collect, &c));
    assert_null(edge_encoder_new(EDGE_ENC_BR, 12, on_collect, &c));
    edge_encoder_free(NULL);

    /* write and finish after finish */
    for (int enc = EDGE_ENC_GZIP; enc <= EDGE_ENC_BR; ++enc) {
        edge_encoder_t *e = edge_encoder_new((edge_encoding_t)enc, 5, on_collect, &c);
        assert_int_equal(edge_encoder_write(e, "abc", 3), 0);
        assert_int_equal(edge_encoder_write(e, "", 0), 0);
        assert_int_equal(edge_encoder_finish(e), 0);
        assert_int_equal(edge_encoder_write(e, "abc", 3), -1);
        assert_int_equal(edge_encoder_finish(e), -1);
        edge_encoder_free(e);
        collect_dispose(&c);
    }

    /* the sink aborts on its 2nd call: -1, sticky, nothing more reaches the sink */
    uint8_t *in = make_text(1 * MiB, 3);
    for (int enc = EDGE_ENC_GZIP; enc <= EDGE_ENC_BR; ++enc) {
        c.abort_at_call = 2;
        edge_encoder_t *e = edge_encoder_new((edge_encoding_t)enc, 1, on_collect, &c);
        int r = 0;
        for (size_t off = 0; off < 1 * MiB && r == 0; off += 4096)
            r = edge_encoder_write(e, in + off, 4096);
        if (r == 0)
            r = edge_encoder_finish(e);
        assert_int_equal(r, -1);
        assert_int_equal(c.calls, 2);
        assert_int_equal(edge_encoder_write(e, "x", 1), -1);
        assert_int_equal(edge_encoder_finish(e), -1);
        assert_int_equal(c.calls, 2);
        assert_int_equal(edge_encoder_bytes_out(e), c.len);
        edge_encoder_free(e);
        collect_dispose(&c);
    }
    free(in);

    /* freeing an unfinished encoder is fine (ASan checks the leak) */
    edge_encoder_t *e = edge_encoder_new(EDGE_ENC_BR, 11, on_collect, &c);
    assert_int_equal(edge_encoder_write(e, "abcabcabc", 9), 0);
    edge_encoder_free(e);
    collect_dispose(&c);
}

/* ---- decoder ---- */

static void test_decoder_real_gzip_pieces(void **state)
{
    static const size_t pieces[] = {0, 1, 7, 65536};
    const size_t len = 600 * 1024 + 11;
    uint8_t *in = make_text(len, 99);
    for (int fields = 0; fields <= 1; ++fields) {
        size_t zlen;
        uint8_t *z = zlib_gzip(in, len, fields, &zlen);
        for (size_t p = 0; p != sizeof(pieces) / sizeof(pieces[0]); ++p) {
            struct collect_t c = {0};
            unsigned members = 0;
            assert_int_equal(decode_pieces(z, zlen, pieces[p], 64 * MiB, EDGE_DEFAULT_GUNZIP_MAX_RATIO, &c, &members), 0);
            assert_int_equal(members, 1);
            assert_int_equal(c.len, len);
            assert_memory_equal(c.data, in, len);
            assert_true(c.max_piece <= EDGE_COMPRESS_CHUNK_SIZE);
            collect_dispose(&c);
        }
        free(z);
    }
    free(in);
}

static void test_decoder_empty_member(void **state)
{
    size_t zlen;
    uint8_t *z = zlib_gzip((const uint8_t *)"", 0, 0, &zlen);
    struct collect_t c = {0};
    assert_int_equal(decode_pieces(z, zlen, 0, 10, 10, &c, NULL), 0);
    assert_int_equal(c.len, 0);
    free(z);
}

static int on_to_encoder(void *ctx, const void *bytes, size_t len)
{
    return edge_encoder_write(ctx, bytes, len);
}

/* gzip -> our decoder -> our brotli encoder -> brotli's decoder: the fill pipeline */
static void test_decoder_to_brotli_pipeline(void **state)
{
    const size_t len = 1 * MiB + 5;
    uint8_t *in = make_text(len, 5);
    size_t zlen;
    uint8_t *z = zlib_gzip(in, len, 1, &zlen);
    struct collect_t br = {0};
    edge_encoder_t *e = edge_encoder_new(EDGE_ENC_BR, EDGE_DEFAULT_BROTLI_LEVEL, on_collect, &br);
    edge_decoder_t *d = edge_decoder_new_gzip(len, EDGE_DEFAULT_GUNZIP_MAX_RATIO, on_to_encoder, e);
    for (size_t off = 0; off < zlen; off += 1000)
        assert_int_equal(edge_decoder_write(d, z + off, zlen - off < 1000 ? zlen - off : 1000), 0);
    assert_int_equal(edge_decoder_finish(d), 0);
    assert_int_equal(edge_decoder_bytes_out(d), len); /* max_output == len exactly is allowed */
    assert_int_equal(edge_encoder_finish(e), 0);
    assert_decodes_to(EDGE_ENC_BR, br.data, br.len, in, len);
    edge_decoder_free(d);
    edge_encoder_free(e);
    collect_dispose(&br);
    free(z);
    free(in);
}

static void test_decoder_max_output_boundary(void **state)
{
    const size_t len = 100000;
    uint8_t *in = make_text(len, 8);
    size_t zlen;
    uint8_t *z = zlib_gzip(in, len, 0, &zlen);
    struct collect_t c = {0};
    assert_int_equal(decode_pieces(z, zlen, 0, len, 0, &c, NULL), 0);
    collect_dispose(&c);
    assert_int_equal(decode_pieces(z, zlen, 0, len - 1, 0, &c, NULL), EDGE_COMPRESS_EBOMB);
    assert_true(c.len <= len - 1);
    collect_dispose(&c);
    free(z);
    free(in);
}

/* 100 MiB of zeros (~100 KiB of gzip) against max_output 10 MiB: EBOMB, and the sink never got more than 10 MiB */
static void test_decoder_bomb_size(void **state)
{
    size_t zlen;
    uint8_t *z = zlib_gzip_zeros(100 * (uint64_t)MiB, &zlen);
    assert_true(zlen < 1 * MiB);
    uint64_t got = 0;
    edge_decoder_t *d = edge_decoder_new_gzip(10 * MiB, 0, on_count, &got);
    int r = 0;
    size_t off;
    for (off = 0; off < zlen && r == 0; off += 4096)
        r = edge_decoder_write(d, z + off, zlen - off < 4096 ? zlen - off : 4096);
    assert_int_equal(r, EDGE_COMPRESS_EBOMB);
    assert_true(off < zlen); /* stopped early */
    assert_true(got <= 10 * MiB);
    assert_true(got > 9 * MiB); /* the limit, not something else, stopped it */
    /* sticky */
    assert_int_equal(edge_decoder_write(d, z, 10), EDGE_COMPRESS_EBOMB);
    assert_int_equal(edge_decoder_finish(d), EDGE_COMPRESS_EBOMB);
    assert_int_equal(edge_decoder_finish(d), EDGE_COMPRESS_ESTATE);
    edge_decoder_free(d);
    free(z);
}

static void test_decoder_bomb_ratio(void **state)
{
    size_t zlen;
    uint8_t *z = zlib_gzip_zeros(4 * MiB, &zlen); /* ratio ~ 1000:1 */
    struct collect_t c = {0};
    assert_int_equal(decode_pieces(z, zlen, 512, UINT64_MAX, 100, &c, NULL), EDGE_COMPRESS_EBOMB);
    assert_true(c.len < 4 * MiB);
    collect_dispose(&c);
    /* the same stream passes without a ratio limit, and with a limit above its ratio */
    assert_int_equal(decode_pieces(z, zlen, 512, UINT64_MAX, 0, &c, NULL), 0);
    assert_int_equal(c.len, 4 * MiB);
    collect_dispose(&c);
    assert_int_equal(decode_pieces(z, zlen, 512, UINT64_MAX, 5000, &c, NULL), 0);
    collect_dispose(&c);
    free(z);

    /* ordinary text (ratio ~3) passes a ratio limit of 10 */
    const size_t len = 2 * MiB;
    uint8_t *in = make_text(len, 11);
    z = zlib_gzip(in, len, 0, &zlen);
    assert_int_equal(decode_pieces(z, zlen, 4096, UINT64_MAX, 10, &c, NULL), 0);
    assert_int_equal(c.len, len);
    collect_dispose(&c);
    free(z);
    free(in);

    /* the grace: a small dense body (64 KiB of zeros, ~100 bytes) passes a ratio limit of 2 */
    z = zlib_gzip_zeros(EDGE_COMPRESS_RATIO_GRACE, &zlen);
    assert_int_equal(decode_pieces(z, zlen, 0, UINT64_MAX, 2, &c, NULL), 0);
    collect_dispose(&c);
    free(z);
}

static void test_decoder_truncated(void **state)
{
    const size_t len = 5000;
    uint8_t *in = make_text(len, 12);
    size_t zlen;
    uint8_t *z = zlib_gzip(in, len, 1, &zlen);
    /* every proper prefix (the empty one included) is ETRUNCATED at finish, never an error before it */
    for (size_t cut = 0; cut < zlen; ++cut) {
        struct collect_t c = {0};
        edge_decoder_t *d = edge_decoder_new_gzip(UINT64_MAX, 0, on_collect, &c);
        assert_int_equal(edge_decoder_write(d, z, cut), 0);
        int r = edge_decoder_finish(d);
        if (r != EDGE_COMPRESS_ETRUNCATED)
            fail_msg("cut at %zu of %zu: %d", cut, zlen, r);
        edge_decoder_free(d);
        collect_dispose(&c);
    }
    free(z);
    free(in);
}

static void test_decoder_corrupt(void **state)
{
    const size_t len = 5000;
    uint8_t *in = make_text(len, 13);
    size_t zlen;
    uint8_t *z = zlib_gzip(in, len, 0, &zlen);
    struct collect_t c = {0};

    /* garbage */
    static const char garbage[] = "<html>this is not gzip</html>";
    assert_int_equal(decode_pieces((const uint8_t *)garbage, sizeof(garbage) - 1, 0, UINT64_MAX, 0, &c, NULL),
                     EDGE_COMPRESS_ECORRUPT);
    assert_int_equal(c.len, 0);
    collect_dispose(&c);

    /* a zlib (RFC 1950) stream made by compress2 is not gzip */
    uLongf clen = compressBound(len);
    uint8_t *cz = malloc(clen);
    assert_int_equal(compress2(cz, &clen, in, len, 6), Z_OK);
    assert_int_equal(decode_pieces(cz, clen, 0, UINT64_MAX, 0, &c, NULL), EDGE_COMPRESS_ECORRUPT);
    collect_dispose(&c);
    free(cz);

    /* a flipped bit in the CRC32 trailer, and in ISIZE */
    uint8_t *bad = malloc(zlen);
    memcpy(bad, z, zlen);
    bad[zlen - 8] ^= 1;
    assert_int_equal(decode_pieces(bad, zlen, 7, UINT64_MAX, 0, &c, NULL), EDGE_COMPRESS_ECORRUPT);
    collect_dispose(&c);
    memcpy(bad, z, zlen);
    bad[zlen - 1] ^= 0x80;
    assert_int_equal(decode_pieces(bad, zlen, 0, UINT64_MAX, 0, &c, NULL), EDGE_COMPRESS_ECORRUPT);
    collect_dispose(&c);
    free(bad);

    /* trailing garbage after a complete member, and trailing zero padding */
    static const char *tails[] = {"garbage", "\0\0\0\0", "\x1f\x8c"};
    static const size_t tail_lens[] = {7, 4, 2};
    for (size_t t = 0; t != 3; ++t) {
        uint8_t *zt = malloc(zlen + tail_lens[t]);
        memcpy(zt, z, zlen);
        memcpy(zt + zlen, tails[t], tail_lens[t]);
        assert_int_equal(decode_pieces(zt, zlen + tail_lens[t], 0, UINT64_MAX, 0, &c, NULL), EDGE_COMPRESS_ECORRUPT);
        collect_dispose(&c);
        assert_int_equal(decode_pieces(zt, zlen + tail_lens[t], 1, UINT64_MAX, 0, &c, NULL), EDGE_COMPRESS_ECORRUPT);
        collect_dispose(&c);
        free(zt);
    }

    /* a sink abort */
    c.abort_at_call = 1;
    assert_int_equal(decode_pieces(z, zlen, 0, UINT64_MAX, 0, &c, NULL), EDGE_COMPRESS_ESINK);
    assert_int_equal(c.len, 0);
    collect_dispose(&c);

    /* use after finish */
    edge_decoder_t *d = edge_decoder_new_gzip(UINT64_MAX, 0, on_collect, &c);
    assert_int_equal(edge_decoder_write(d, z, zlen), 0);
    assert_int_equal(edge_decoder_finish(d), 0);
    assert_int_equal(edge_decoder_write(d, z, 1), EDGE_COMPRESS_ESTATE);
    assert_int_equal(edge_decoder_finish(d), EDGE_COMPRESS_ESTATE);
    edge_decoder_free(d);
    edge_decoder_free(NULL);
    collect_dispose(&c);

    free(z);
    free(in);
}

/* Decision: concatenated members (RFC 1952 §2.2) decode to the concatenation, like gunzip; members() says so. */
static void test_decoder_concatenated_members(void **state)
{
    const size_t len1 = 70000, len2 = 333;
    uint8_t *in1 = make_text(len1, 21), *in2 = make_text(len2, 22);
    size_t z1len, z2len;
    uint8_t *z1 = zlib_gzip(in1, len1, 1, &z1len), *z2 = zlib_gzip(in2, len2, 0, &z2len);
    uint8_t *z = malloc(z1len + z2len);
    memcpy(z, z1, z1len);
    memcpy(z + z1len, z2, z2len);
    static const size_t pieces[] = {0, 1, 7, 65536};
    for (size_t p = 0; p != sizeof(pieces) / sizeof(pieces[0]); ++p) {
        struct collect_t c = {0};
        unsigned members = 0;
        assert_int_equal(decode_pieces(z, z1len + z2len, pieces[p], UINT64_MAX, 0, &c, &members), 0);
        assert_int_equal(members, 2);
        assert_int_equal(c.len, len1 + len2);
        assert_memory_equal(c.data, in1, len1);
        assert_memory_equal(c.data + len1, in2, len2);
        collect_dispose(&c);
    }
    /* the second member cut short */
    struct collect_t c = {0};
    assert_int_equal(decode_pieces(z, z1len + z2len - 3, 0, UINT64_MAX, 0, &c, NULL), EDGE_COMPRESS_ETRUNCATED);
    collect_dispose(&c);
    /* max_output counts across members */
    assert_int_equal(decode_pieces(z, z1len + z2len, 0, len1 + 10, 0, &c, NULL), EDGE_COMPRESS_EBOMB);
    assert_true(c.len <= len1 + 10);
    collect_dispose(&c);
    free(z);
    free(z1);
    free(z2);
    free(in1);
    free(in2);
}

static void test_strerror(void **state)
{
    static const int codes[] = {EDGE_COMPRESS_EBOMB, EDGE_COMPRESS_ECORRUPT, EDGE_COMPRESS_ETRUNCATED,
                                EDGE_COMPRESS_ESINK, EDGE_COMPRESS_ENOMEM,   EDGE_COMPRESS_ESTATE};
    for (size_t i = 0; i != sizeof(codes) / sizeof(codes[0]); ++i) {
        assert_true(codes[i] < 0);
        assert_string_not_equal(edge_compress_strerror(codes[i]), "unknown error");
        for (size_t j = 0; j != i; ++j)
            assert_string_not_equal(edge_compress_strerror(codes[i]), edge_compress_strerror(codes[j]));
    }
    assert_string_equal(edge_compress_strerror(0), "ok");
    assert_string_equal(edge_compress_strerror(-1), "unknown error");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accept_encoding_table),
        cmocka_unit_test(test_accept_encoding_prefixes),
        cmocka_unit_test(test_encoding_name),
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_type_configured),
        cmocka_unit_test(test_eligible),
        cmocka_unit_test(test_etag_table),
        cmocka_unit_test(test_etag_outlen),
        cmocka_unit_test(test_encoder_round_trip),
        cmocka_unit_test(test_encoder_piece_sizes),
        cmocka_unit_test(test_encoder_large_stream),
        cmocka_unit_test(test_encoder_errors),
        cmocka_unit_test(test_decoder_real_gzip_pieces),
        cmocka_unit_test(test_decoder_empty_member),
        cmocka_unit_test(test_decoder_to_brotli_pipeline),
        cmocka_unit_test(test_decoder_max_output_boundary),
        cmocka_unit_test(test_decoder_bomb_size),
        cmocka_unit_test(test_decoder_bomb_ratio),
        cmocka_unit_test(test_decoder_truncated),
        cmocka_unit_test(test_decoder_corrupt),
        cmocka_unit_test(test_decoder_concatenated_members),
        cmocka_unit_test(test_strerror),
    };
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
