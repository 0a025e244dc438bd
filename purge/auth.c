/*
 * purge/auth.c: bearer-token check for the purge API.
 *
 * Contract: a pure function. The token comparison is constant-time in the token's content: every byte of the longer
 * of the two strings is visited and differences are OR-ed together, never returned early. The compiler is kept from
 * short-cutting the loop by accumulating into a volatile.
 */
#include <string.h>
#include <strings.h>
#include "purge/auth.h"

/* @return 0 when equal; runs over max(alen, blen) bytes whatever the content */
static int ct_compare(const unsigned char *a, size_t alen, const unsigned char *b, size_t blen)
{
    size_t n = alen > blen ? alen : blen;
    volatile unsigned char diff = alen != blen;
    for (size_t i = 0; i < n; ++i) {
        unsigned char x = i < alen ? a[i] : 0;
        unsigned char y = i < blen ? b[i] : 0;
        diff |= x ^ y;
    }
    return diff != 0 ? -1 : 0;
}

int purge_auth_check(const char *header, size_t len, const char *token)
{
    static const char scheme[] = "bearer";
    const size_t scheme_len = sizeof(scheme) - 1;

    if (header == NULL || token == NULL || token[0] == '\0')
        return -1;
    if (len <= scheme_len || strncasecmp(header, scheme, scheme_len) != 0 || header[scheme_len] != ' ')
        return -1;
    size_t i = scheme_len;
    while (i < len && header[i] == ' ')
        ++i;
    if (i == len)
        return -1;
    return ct_compare((const unsigned char *)header + i, len - i, (const unsigned char *)token, strlen(token));
}
