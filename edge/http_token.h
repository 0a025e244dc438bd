/*
 * edge/http_token.h: the small lexical helpers of RFC 9110 §5.6 that the pure parsers of edge/ share
 * (cache_policy.c, conditional.c, vary.c). Header-only, no state.
 */
#ifndef EDGE_HTTP_TOKEN_H
#define EDGE_HTTP_TOKEN_H

#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include <string.h>
#include "h2o.h"

/* RFC 9110 §5.6.3 OWS */
static inline int edge_is_ows(int c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 §5.6.2 tchar */
static inline int edge_is_tchar(int c)
{
    if (('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9'))
        return 1;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

/* Case-insensitive equality of two names (h2o_lcstris wants its second argument in lower case already). */
static inline int edge_name_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    if (alen != blen)
        return 0;
    for (size_t i = 0; i != alen; ++i)
        if (h2o_tolower(a[i]) != h2o_tolower(b[i]))
            return 0;
    return 1;
}

/* The value without leading and trailing OWS. */
static inline h2o_iovec_t edge_trim_ows(const char *s, size_t len)
{
    while (len > 0 && edge_is_ows(*s)) {
        ++s;
        --len;
    }
    while (len > 0 && edge_is_ows(s[len - 1]))
        --len;
    return h2o_iovec_init(s, len);
}

#endif
