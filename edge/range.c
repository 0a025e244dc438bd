/*
 * edge/range.c: byte-range requests (RFC 9110 §14) as pure functions.
 *
 * Contract: no state, no clock, no allocation; inputs need not be NUL-terminated and exactly the given bytes are
 * read. Byte positions are compared as decimal strings, so numbers longer than any 64-bit integer are handled
 * exactly (such a first-pos is unsatisfiable, such a last-pos or suffix-length covers the whole representation).
 * Whatever is not understood makes the edge ignore the Range field and send the whole representation, which
 * RFC 9110 §14.2 always permits.
 */
#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "h2o.h"
#include "edge/cache_policy.h"
#include "edge/conditional.h"
#include "edge/range.h"

/* A decimal number as it appears in the field: leading zeros stripped (an all-zero number has len 0). */
struct st_decimal_t {
    const char *digits;
    size_t len;
};

/* One range-spec. first absent => suffix-range; last absent => "first-". */
struct st_spec_t {
    int has_first, has_last;
    struct st_decimal_t first, last;
};

static int is_ows(int c)
{
    return c == ' ' || c == '\t';
}

static int is_digit(int c)
{
    return '0' <= c && c <= '9';
}

/* 1*DIGIT at *p. @return 0 and advances *p, or -1 when no digit */
static int parse_decimal(const char **p, const char *end, struct st_decimal_t *d)
{
    const char *s = *p;
    while (*p < end && is_digit(**p))
        ++*p;
    if (*p == s)
        return -1;
    while (s < *p && *s == '0')
        ++s;
    d->digits = s;
    d->len = *p - s;
    return 0;
}

/* <0, 0, >0 as a < b, for leading-zero-stripped decimals of any length */
static int decimal_cmp(const struct st_decimal_t *a, const struct st_decimal_t *b)
{
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    return a->len == 0 ? 0 : memcmp(a->digits, b->digits, a->len);
}

/* @return 1 with *v set when d fits in uint64_t, 0 when it does not */
static int decimal_to_u64(const struct st_decimal_t *d, uint64_t *v)
{
    uint64_t x = 0;
    for (size_t i = 0; i != d->len; ++i) {
        unsigned digit = d->digits[i] - '0';
        if (x > (UINT64_MAX - digit) / 10)
            return 0;
        x = x * 10 + digit;
    }
    *v = x;
    return 1;
}

/* range-spec at p (OWS already skipped). @return its end, or NULL when malformed */
static const char *parse_spec(const char *p, const char *end, struct st_spec_t *spec)
{
    memset(spec, 0, sizeof(*spec));
    if (p < end && is_digit(*p)) {
        parse_decimal(&p, end, &spec->first);
        spec->has_first = 1;
    }
    if (p == end || *p != '-')
        return NULL;
    ++p;
    if (p < end && is_digit(*p)) {
        parse_decimal(&p, end, &spec->last);
        spec->has_last = 1;
    }
    if (!spec->has_first && !spec->has_last)
        return NULL; /* "-" alone */
    /* RFC 9110 §14.1.2: an int-range with last-pos < first-pos is invalid */
    if (spec->has_first && spec->has_last && decimal_cmp(&spec->last, &spec->first) < 0)
        return NULL;
    return p;
}

edge_range_result_t edge_range_parse(const char *value, size_t len, uint64_t length, uint64_t *first, uint64_t *last)
{
    const char *p = value, *end = value + len;
    struct st_spec_t spec = {0};
    size_t num_specs = 0;

    while (p < end && is_ows(*p))
        ++p;
    while (end > p && is_ows(end[-1]))
        --end;
    if (p == end)
        return EDGE_RANGE_NONE;

    /* ranges-specifier = range-unit "=" range-set; range-unit is a token compared case-insensitively (§14.1) */
    const char *eq = memchr(p, '=', end - p);
    if (eq == NULL)
        return EDGE_RANGE_INVALID;
    if (!h2o_lcstris(p, eq - p, H2O_STRLIT("bytes"))) {
        for (const char *u = p; u < eq; ++u)
            if (is_ows(*u) || *u == ',' || *u == '"' || *u == ';')
                return EDGE_RANGE_INVALID;
        return eq == p ? EDGE_RANGE_INVALID : EDGE_RANGE_OTHER_UNIT;
    }

    /* range-set = 1#range-spec; empty members ignored (RFC 9110 §5.6.1.2) */
    for (p = eq + 1;;) {
        while (p < end && (is_ows(*p) || *p == ','))
            ++p;
        if (p == end)
            break;
        struct st_spec_t s;
        const char *q = parse_spec(p, end, &s);
        if (q == NULL)
            return EDGE_RANGE_INVALID;
        while (q < end && is_ows(*q))
            ++q;
        if (q < end && *q != ',')
            return EDGE_RANGE_INVALID;
        if (num_specs++ == 0)
            spec = s;
        p = q;
    }
    if (num_specs == 0)
        return EDGE_RANGE_INVALID;
    if (num_specs > 1)
        return EDGE_RANGE_MULTIPLE; /* this edge does not send multipart/byteranges */

    uint64_t a, b;
    if (spec.has_first) {
        /* int-range: satisfiable iff first-pos < length */
        if (!decimal_to_u64(&spec.first, &a) || a >= length)
            return EDGE_RANGE_UNSATISFIABLE;
        b = length - 1;
        if (spec.has_last && decimal_to_u64(&spec.last, &b) && b > length - 1)
            b = length - 1;
        *first = a;
        *last = b;
        return EDGE_RANGE_SINGLE;
    }
    /* suffix-range: satisfiable iff suffix-length > 0; the last N bytes, or all of them */
    if (spec.last.len == 0)
        return EDGE_RANGE_UNSATISFIABLE;
    if (length == 0)
        return EDGE_RANGE_NONE; /* "satisfiable" (§14.1.2) by the empty representation itself: send it whole */
    if (!decimal_to_u64(&spec.last, &b) || b > length)
        b = length;
    *first = length - b;
    *last = length - 1;
    return EDGE_RANGE_SINGLE;
}

int edge_if_range_matches(const char *value, size_t len, h2o_iovec_t stored_etag, int has_last_modified, int64_t last_modified,
                          int has_date, int64_t date, int64_t now)
{
    while (len > 0 && is_ows(*value)) {
        ++value;
        --len;
    }
    /* RFC 9110 §13.1.5: an entity-tag is told from an HTTP-date by its DQUOTE (we also take W/ as one) */
    if (len > 0 && (value[0] == '"' || (len >= 2 && value[0] == 'W' && value[1] == '/'))) {
        edge_etag_t want, have;
        if (edge_etag_parse(value, len, &want) != 0 || stored_etag.base == NULL ||
            edge_etag_parse(stored_etag.base, stored_etag.len, &have) != 0)
            return 0;
        return edge_etag_strong_eq(&want, &have);
    }
    int64_t t;
    while (len > 0 && is_ows(value[len - 1]))
        --len;
    if (edge_http_date_parse_at(value, len, now, &t) != 0 || !has_last_modified || t != last_modified)
        return 0;
    /* RFC 9110 §8.8.2.2: Last-Modified is implicitly weak unless the stored Date is at least 60 s after it */
    return has_date && date - last_modified >= EDGE_LM_STRONG_MIN_SEC;
}

size_t edge_content_range_format(char buf[EDGE_CONTENT_RANGE_BUFSZ], uint64_t first, uint64_t last, uint64_t length)
{
    int n = snprintf(buf, EDGE_CONTENT_RANGE_BUFSZ, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last, length);
    return (size_t)n;
}

size_t edge_content_range_format_unsatisfied(char buf[EDGE_CONTENT_RANGE_BUFSZ], uint64_t length)
{
    int n = snprintf(buf, EDGE_CONTENT_RANGE_BUFSZ, "bytes */%" PRIu64, length);
    return (size_t)n;
}
