/*
 * purge/tags.c: purge tags from the origin's response headers (Surrogate-Key, Cache-Tag, extra comma-separated
 * headers such as Next.js's x-next-cache-tags).
 *
 * Contract: pure functions over header bytes the origin sent, so nothing here fails a response: bad or surplus tags
 * are dropped and counted. Sets are small (max_tags), so duplicates are found with a linear scan.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "purge/tags.h"

static int name_is(const char *name, size_t len, const char *want)
{
    return strlen(want) == len && strncasecmp(name, want, len) == 0;
}

static int is_ows(int c)
{
    return c == ' ' || c == '\t';
}

static int set_contains(const purge_tags_t *tags, const char *s, size_t len)
{
    for (size_t i = 0; i != tags->count; ++i)
        if (strlen(tags->items[i]) == len && memcmp(tags->items[i], s, len) == 0)
            return 1;
    return 0;
}

/* @return 0, or -1 on OOM */
static int add_one(purge_tags_t *tags, const char *s, size_t len, size_t max_tags, size_t max_tag_bytes)
{
    const char *reason;
    if (len == 0)
        return 0;
    if (purge_tag_check(s, len, max_tag_bytes, &reason) != 0) {
        ++tags->dropped;
        return 0;
    }
    if (set_contains(tags, s, len))
        return 0;
    if (tags->count >= max_tags) {
        ++tags->dropped;
        return 0;
    }
    char *copy = strndup(s, len);
    if (copy == NULL)
        return -1;
    char **items = realloc(tags->items, (tags->count + 1) * sizeof(*items));
    if (items == NULL) {
        free(copy);
        return -1;
    }
    tags->items = items;
    tags->items[tags->count++] = copy;
    return 0;
}

int purge_tag_check(const char *tag, size_t len, size_t max_bytes, const char **reason)
{
    if (len == 0) {
        *reason = "empty tag";
        return -1;
    }
    if (len > max_bytes) {
        *reason = "tag too long";
        return -1;
    }
    for (size_t i = 0; i != len; ++i) {
        unsigned char c = tag[i];
        if (c < 0x20 || c == 0x7f) {
            *reason = "control character in tag";
            return -1;
        }
    }
    return 0;
}

purge_tags_sep_t purge_tags_header_kind(const char *name, size_t len, const char *const *extra)
{
    if (name_is(name, len, "surrogate-key"))
        return PURGE_TAGS_SPACE;
    if (name_is(name, len, "cache-tag"))
        return PURGE_TAGS_COMMA;
    for (; extra != NULL && *extra != NULL; ++extra)
        if (name_is(name, len, *extra))
            return PURGE_TAGS_COMMA;
    return PURGE_TAGS_NOT_A_TAG_HEADER;
}

int purge_tags_add_header(purge_tags_t *tags, const char *value, size_t len, purge_tags_sep_t sep, size_t max_tags,
                          size_t max_tag_bytes)
{
    size_t i = 0;
    while (i < len) {
        size_t start, end;
        if (sep == PURGE_TAGS_SPACE) {
            while (i < len && is_ows(value[i]))
                ++i;
            start = i;
            while (i < len && !is_ows(value[i]))
                ++i;
            end = i;
        } else {
            start = i;
            while (i < len && value[i] != ',')
                ++i;
            end = i;
            if (i < len)
                ++i; /* the comma */
            while (start < end && is_ows(value[start]))
                ++start;
            while (end > start && is_ows(value[end - 1]))
                --end;
        }
        if (add_one(tags, value + start, end - start, max_tags, max_tag_bytes) != 0)
            return -1;
    }
    return 0;
}

void purge_tags_free(purge_tags_t *tags)
{
    for (size_t i = 0; i != tags->count; ++i)
        free(tags->items[i]);
    free(tags->items);
    memset(tags, 0, sizeof(*tags));
}
