/*
 * purge/tags.h: purge tags from the origin's response headers.
 *
 * Tag headers: `Surrogate-Key` (space-separated, Fastly), `Cache-Tag` (comma-separated, Cloudflare) and a
 * configurable list of other headers, comma-separated (Next.js sends `x-next-cache-tags`, which is in
 * PURGE_TAGS_DEFAULT_EXTRA_HEADERS). The edge stores the tags with the object and strips every tag header from the
 * responses it sends to clients.
 *
 * Tags are case-sensitive and compared byte for byte. Pure functions, no state, any thread.
 */
#ifndef PURGE_TAGS_H
#define PURGE_TAGS_H

#include <stddef.h>

#define PURGE_TAGS_DEFAULT_MAX_TAGS 64
/** The extra comma-separated tag headers when the configuration names none, NULL-terminated */
#define PURGE_TAGS_DEFAULT_EXTRA_HEADERS {"x-next-cache-tags", NULL}

typedef enum en_purge_tags_sep_t {
    PURGE_TAGS_NOT_A_TAG_HEADER = 0,
    PURGE_TAGS_SPACE, /**< Surrogate-Key: tags separated by spaces (and tabs) */
    PURGE_TAGS_COMMA, /**< Cache-Tag and the extra headers: tags separated by commas, spaces around them trimmed */
} purge_tags_sep_t;

typedef struct st_purge_tags_t {
    char **items;   /**< malloc'ed NUL-terminated tags, distinct, in order of first appearance */
    size_t count;
    size_t dropped; /**< tags dropped: over max_tags, over max_tag_bytes, or holding control characters */
} purge_tags_t;

/**
 * Checks one tag: non-empty, no control character (< 0x20 or DEL), at most max_bytes bytes.
 * @param[out] reason  a static string on failure
 * @return 0, or -1
 */
int purge_tag_check(const char *tag, size_t len, size_t max_bytes, const char **reason);

/**
 * Tells whether a response header carries tags, and how they are separated.
 * @param name    header name (any case, need not be NUL-terminated)
 * @param extra   NULL-terminated list of extra comma-separated header names (any case); NULL for none
 * @return PURGE_TAGS_SPACE for Surrogate-Key, PURGE_TAGS_COMMA for Cache-Tag and the extra names, else
 *         PURGE_TAGS_NOT_A_TAG_HEADER. Every header for which it is not PURGE_TAGS_NOT_A_TAG_HEADER is stripped
 *         from client responses.
 */
purge_tags_sep_t purge_tags_header_kind(const char *name, size_t len, const char *const *extra);

/**
 * Adds the tags of one header value to a set. Items are split on the separator, trimmed of spaces and tabs; empty
 * items are skipped silently; a tag already in the set is not added twice; an invalid tag (purge_tag_check with
 * max_tag_bytes) or one beyond max_tags is dropped and counted in tags->dropped, never an error: origin bytes must
 * not fail the response. Call it once per header line (a header may repeat).
 * @param tags  zeroed before the first call; released with purge_tags_free
 * @return 0, or -1 on OOM (the set stays valid, holding what was added before)
 */
int purge_tags_add_header(purge_tags_t *tags, const char *value, size_t len, purge_tags_sep_t sep, size_t max_tags,
                          size_t max_tag_bytes);

/** Frees what a purge_tags_t owns and zeroes it. Safe on a zeroed set and twice. */
void purge_tags_free(purge_tags_t *tags);

#endif
