/*
 * purge/auth.h: bearer-token check for the purge API (admin listener and the PURGE method).
 *
 * Pure function, no state, any thread.
 */
#ifndef PURGE_AUTH_H
#define PURGE_AUTH_H

#include <stddef.h>

/**
 * Checks an Authorization header value against the configured token.
 * Accepted form: `Bearer` (any case, RFC 9110 §11.1: auth-scheme is case-insensitive), one or more spaces, then the
 * token, compared byte for byte with no trimming. The comparison runs over max(received, expected) bytes without an
 * early exit, so its time tells nothing about how much of the token matched (it does depend on the lengths).
 * @param header  the header value (need not be NUL-terminated); NULL when the request has none
 * @param len     its length
 * @param token   the configured token (NUL-terminated); NULL or "" never authorises anything
 * @return 0 when authorised, -1 otherwise (missing header, other scheme, empty or wrong token)
 */
int purge_auth_check(const char *header, size_t len, const char *token);

#endif
