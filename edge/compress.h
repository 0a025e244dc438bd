/*
 * edge/compress.h: content codings of stored objects.
 *
 * What it offers:
 * - Accept-Encoding negotiation (RFC 9110 §12.5.3) over the variants an object has: pure, no allocation.
 * - The "is this response worth compressing" rule (content type list + minimum size): pure.
 * - A streaming gzip/brotli encoder and a streaming, bomb-bounded gzip decoder. Output leaves through a sink
 *   callback in pieces of at most EDGE_COMPRESS_CHUNK_SIZE bytes, so memory stays bounded whatever the body size.
 * - The per-encoding ETag (a variant is a different representation, so it gets its own entity-tag).
 *
 * Thread rules: the pure functions are safe from any thread. An encoder or decoder belongs to one thread at a
 * time and is meant to run off the event loops (the fill/compression thread): compressing at brotli 11 costs
 * milliseconds per 100 KiB. Nothing here is ever called on the hit path.
 *
 * This header is plain C on purpose (no h2o, zlib or brotli types): edge/compress.c is the only file of the
 * project that includes zlib.h and the brotli headers.
 */
#ifndef EDGE_COMPRESS_H
#define EDGE_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

/** Content codings an object can be stored in. The values index EDGE_ENC_BIT() bit sets. */
typedef enum { EDGE_ENC_IDENTITY = 0, EDGE_ENC_GZIP = 1, EDGE_ENC_BR = 2 } edge_encoding_t;

/** Bit of encoding e in a set of available encodings. */
#define EDGE_ENC_BIT(e) (1u << (e))
/** Every encoding this module can produce. */
#define EDGE_ENC_ALL (EDGE_ENC_BIT(EDGE_ENC_IDENTITY) | EDGE_ENC_BIT(EDGE_ENC_GZIP) | EDGE_ENC_BIT(EDGE_ENC_BR))

#define EDGE_DEFAULT_GZIP_LEVEL 6          /**< at fill time */
#define EDGE_DEFAULT_BROTLI_LEVEL 5        /**< at fill time */
#define EDGE_DEFAULT_GZIP_LEVEL_HOT 9      /**< background recompression of hot objects */
#define EDGE_DEFAULT_BROTLI_LEVEL_HOT 11   /**< background recompression of hot objects */
#define EDGE_DEFAULT_COMPRESS_MIN_SIZE 256 /**< bytes; below this the codings' overhead eats the gain */
#define EDGE_DEFAULT_COMPRESS_HOT_HITS 1000 /**< hits after which the variants are remade at the _HOT levels */
#define EDGE_DEFAULT_GUNZIP_MAX_RATIO 1000 /**< output/input; real text stays far below, zeros reach ~1030 */

/** Size of the pieces handed to a sink, and of the encoder/decoder output buffer. Tests may shrink it. */
#ifndef EDGE_COMPRESS_CHUNK_SIZE
#define EDGE_COMPRESS_CHUNK_SIZE 16384
#endif

/** The decoder's ratio limit only applies once this many bytes came out (a gzip header alone makes ratio 0/10,
 *  and the first deflate block of a legitimate file can be very dense). */
#ifndef EDGE_COMPRESS_RATIO_GRACE
#define EDGE_COMPRESS_RATIO_GRACE 65536
#endif

/* Error codes of the decoder (and edge_compress_strerror). Negative, in their own range. */
#define EDGE_COMPRESS_EBOMB (-30401)      /**< output above max_output, or output/input above max_ratio */
#define EDGE_COMPRESS_ECORRUPT (-30402)   /**< not gzip, bad header/data/CRC/length, or trailing garbage */
#define EDGE_COMPRESS_ETRUNCATED (-30403) /**< the input ended inside a gzip member (or was empty) */
#define EDGE_COMPRESS_ESINK (-30404)      /**< the sink returned non-zero */
#define EDGE_COMPRESS_ENOMEM (-30405)     /**< zlib could not allocate */
#define EDGE_COMPRESS_ESTATE (-30406)     /**< write or finish after finish */

/**
 * Picks the encoding to serve, per RFC 9110 §12.5.3.
 *
 * Rules:
 * - Elements are `coding [;q=qvalue]`, separated by commas, with optional whitespace (OWS) around commas and
 *   semicolons; empty list elements (", ,") are skipped. Names are case-insensitive; "x-gzip" means gzip
 *   (RFC 9110 §8.4.1.3). Unknown codings (deflate, zstd...) are ignored.
 * - qvalue = "0" ["." 0*3DIGIT] / "1" ["." 0*3"0"] (RFC 9110 §12.4.2): "q" or "Q", no spaces around "=".
 *   An element whose q is invalid ("q=2", "q=0.1234", "q=.5", "q=", "q = 1") is ignored entirely, as is an
 *   element that does not parse. Other parameters are skipped (quoted strings allowed).
 * - A coding listed more than once: the first occurrence counts.
 * - A coding that is not listed takes the q of "*" if "*" is listed, else it is not acceptable; except identity,
 *   which is acceptable by default unless "identity;q=0" or "*;q=0" (without an identity entry) excludes it.
 *   Unlisted identity (and no "*") ranks with the lowest non-zero q of the valid elements (q=1 if none), so it
 *   is the fallback: "gzip;q=0.5" selects gzip, not identity at an implied q=1 (as the negotiator npm module).
 * - An empty (or all-whitespace) value means "no coding, please": identity.
 * - Among the acceptable available encodings, the highest q wins; equal q prefers br, then gzip, then identity.
 *
 * The caller handles an ABSENT header (serve identity: RFC 9110 says any coding is acceptable, but clients
 * that send nothing usually cannot decode). Work is one pass over value; nothing is allocated.
 *
 * @param[in] value      the header value (need not be NUL-terminated; not read past len)
 * @param[in] len        its length
 * @param[in] available  EDGE_ENC_BIT() set of the variants stored; identity is treated as available always
 * @return the edge_encoding_t to serve, or -1 when nothing is acceptable (identity excluded and no available
 *         coding matches): the caller answers 406 or sends identity anyway, per its policy.
 */
int edge_accept_encoding_select(const char *value, size_t len, unsigned available);

/**
 * The content-coding token of an encoding, as written in Content-Encoding.
 * @return "identity", "gzip" or "br" (static strings), or NULL for a value outside edge_encoding_t.
 */
const char *edge_encoding_name(edge_encoding_t e);

/** What to compress at fill time. Plain values: conf/ fills it, the fill path reads it. */
typedef struct {
    /** Media-type patterns: "type/subtype" (exact), "type/" "*" (any subtype) or "+suffix" (structured syntax suffix,
     *  RFC 6838 §4.2.8, e.g. "+json" matches application/ld+json). Case-insensitive. Not owned. */
    const char **types;
    size_t num_types;
    uint64_t min_size; /**< bytes; a body smaller than this is stored as identity only */
    int gzip_level;    /**< 1..9 */
    int brotli_level;  /**< 0..11 */
    uint32_t hot_hits; /**< 0: never; else after this many hits of an object its variants are remade at
                            EDGE_DEFAULT_GZIP_LEVEL_HOT / EDGE_DEFAULT_BROTLI_LEVEL_HOT (edge_compress_note_hit) */
} edge_compress_settings_t;

/** The default type patterns (NULL-terminated): text, JavaScript, JSON, XML, SVG, WASM, ttf/otf/eot fonts. */
extern const char *edge_compress_default_types[];

/**
 * Fills s with the defaults: edge_compress_default_types, EDGE_DEFAULT_COMPRESS_MIN_SIZE, EDGE_DEFAULT_GZIP_LEVEL,
 * EDGE_DEFAULT_BROTLI_LEVEL, EDGE_DEFAULT_COMPRESS_HOT_HITS.
 */
void edge_compress_settings_init(edge_compress_settings_t *s);

/**
 * Is a response with this Content-Type worth storing compressed?
 *
 * The media type is the value up to the first ';' (parameters such as charset are ignored), OWS-trimmed,
 * compared case-insensitively with s->types. Types that are compressed already (woff, woff2, images other than
 * SVG, audio, video, zip/gzip/brotli/zstd archives...) are refused whatever the list says.
 * The caller also checks that the origin's Content-Encoding is absent/identity or gzip.
 *
 * @param[in] s             settings (s->types may be NULL when num_types is 0)
 * @param[in] content_type  header value, not necessarily NUL-terminated, not read past len
 * @return 1 if compressible, 0 if not (including an empty or malformed type)
 */
int edge_compress_type_ok(const edge_compress_settings_t *s, const char *content_type, size_t len);

/**
 * edge_compress_type_ok() and body_size >= s->min_size.
 * @param body_size the identity body size (when only the gzip size is known, use the decoded size; when the size
 *                  is unknown until the end, test the type now and the size at the end)
 */
int edge_compress_eligible(const edge_compress_settings_t *s, const char *content_type, size_t len, uint64_t body_size);

/**
 * Sink of compressed or decompressed bytes. Called with 1..EDGE_COMPRESS_CHUNK_SIZE bytes that are valid only
 * during the call (copy them). Return 0 to go on, non-zero to abort the stream.
 */
typedef int (*edge_compress_sink_cb)(void *ctx, const void *bytes, size_t len);

/** A streaming gzip or brotli encoder. */
typedef struct st_edge_encoder_t edge_encoder_t;

/**
 * Creates an encoder. Memory is bounded by the coding's window, not the body: gzip ~ 300 KiB, brotli a few MiB at
 * level 5 and tens of MiB at level 11 (4 MiB window, the default lgwin 22).
 *
 * @param enc    EDGE_ENC_GZIP (RFC 1952 framing, as Content-Encoding: gzip requires) or EDGE_ENC_BR
 * @param level  gzip 1..9, brotli 0..11
 * @param sink   receives the output as it is produced (during write and finish)
 * @param ctx    passed to sink
 * @return the encoder (free with edge_encoder_free), or NULL on identity/unknown enc, a level out of range,
 *         or out of memory.
 */
edge_encoder_t *edge_encoder_new(edge_encoding_t enc, int level, edge_compress_sink_cb sink, void *ctx);

/**
 * Feeds input (any piece size; the output bytes do not depend on how the input is cut). Output is passed to the
 * sink whenever a chunk is full; the input is never kept beyond the coding's window (brotli levels 0-1 also stage
 * up to 64 KiB of input, because they compress each piece on its own).
 * @return 0, or -1 when the sink aborted, the library failed, or the encoder already failed or finished
 *         (errors are sticky: every later write/finish returns -1).
 */
int edge_encoder_write(edge_encoder_t *e, const void *bytes, size_t len);

/**
 * Ends the stream: flushes what is pending and the trailer (gzip CRC32 + ISIZE, brotli last block) to the sink.
 * @return 0, or -1 as for edge_encoder_write (a second finish is -1).
 */
int edge_encoder_finish(edge_encoder_t *e);

/** Frees the encoder in any state (finished or not); NULL is a no-op. */
void edge_encoder_free(edge_encoder_t *e);

/** Total bytes given to the sink so far. */
uint64_t edge_encoder_bytes_out(const edge_encoder_t *e);

/** A streaming gzip decoder with bomb limits. */
typedef struct st_edge_decoder_t edge_decoder_t;

/**
 * Creates a gzip (RFC 1952) decoder for a body the origin sent with Content-Encoding: gzip.
 *
 * Concatenated gzip members (RFC 1952 §2.2) are accepted and decode to the concatenation of their contents
 * (like gunzip). Some clients decode only the first member, so a caller that stores the origin's gzip bytes as
 * the gzip variant should re-encode it when edge_decoder_members() > 1. Anything after a member that is not
 * another member (zero padding included) is ECORRUPT. A zlib (RFC 1950) or raw deflate stream is ECORRUPT.
 *
 * @param max_output  the sink never receives more than this many bytes in total; one more byte is EBOMB
 * @param max_ratio   once EDGE_COMPRESS_RATIO_GRACE bytes came out, output > max_ratio * input consumed is
 *                    EBOMB; 0 disables the ratio limit
 * @return the decoder (free with edge_decoder_free), or NULL when out of memory.
 */
edge_decoder_t *edge_decoder_new_gzip(uint64_t max_output, unsigned max_ratio, edge_compress_sink_cb sink, void *ctx);

/**
 * Feeds compressed bytes (any piece size, 0 included).
 * @return 0, or EDGE_COMPRESS_EBOMB, ECORRUPT, ESINK, ENOMEM, ESTATE (after finish). Errors are sticky: later
 *         writes and finish return the same code. On error the caller discards everything the sink received.
 */
int edge_decoder_write(edge_decoder_t *d, const void *bytes, size_t len);

/**
 * Ends the input.
 * @return 0 when the input was one or more complete members (CRC and length checked); EDGE_COMPRESS_ETRUNCATED
 *         when it ended inside a member or was empty; a sticky error from write; ESTATE on a second finish.
 */
int edge_decoder_finish(edge_decoder_t *d);

/** Frees the decoder in any state; NULL is a no-op. */
void edge_decoder_free(edge_decoder_t *d);

/** Number of gzip members started so far. */
unsigned edge_decoder_members(const edge_decoder_t *d);

/** Total bytes given to the sink so far. */
uint64_t edge_decoder_bytes_out(const edge_decoder_t *d);

/** @return a static description of an EDGE_COMPRESS_E* code ("unknown error" for anything else, "ok" for 0). */
const char *edge_compress_strerror(int err);

/**
 * The entity-tag of a variant: `"abc"` -> `"abc-gzip"` / `"abc-br"`, `W/"abc"` -> `W/"abc-br"`; identity is
 * copied unchanged. The validator must differ per coding (RFC 9110 §8.8.3: a representation with a different
 * content coding is a different representation).
 *
 * @param[in] etag    the stored ETag value, exactly an entity-tag (`[W/]"etagc*"`, no surrounding spaces)
 * @param[in] len     its length (not read past it)
 * @param[in] e       the encoding of the variant
 * @param[out] out    receives the tag and a NUL
 * @param[in] outlen  size of out
 * @return the length written (without the NUL), or 0 when etag is not a valid entity-tag, e is out of range,
 *         or out is too small (then the caller sends the variant without an ETag).
 */
size_t edge_etag_for_encoding(const char *etag, size_t len, edge_encoding_t e, char *out, size_t outlen);

#endif
