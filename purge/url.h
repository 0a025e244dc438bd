/*
 * purge/url.h: normalisation of the URLs, URL prefixes and host names a purge names.
 *
 * Pure functions, no state, any thread. purge/ does not depend on edge/, so this is a second implementation of the
 * rules of edge_cache_key_build (edge/cache_key.h); tests/unit/purge/test_purge_url.c checks both agree on a table.
 * Whoever changes one changes the other.
 *
 * The cache key is:  scheme "://" lower-case(host) [":" port, only if not the scheme's default] path ["?" query]
 * - scheme: http or https, compared case-insensitively, written lower-case;
 * - host: reg-name (RFC 3986 unreserved / sub-delims / percent-escapes) or an IP literal in brackets (IPv6, checked
 *   with inet_pton, no zone identifier; or IPvFuture); lower-cased, the hex digits of its escapes upper-cased;
 *   no userinfo ('@' is refused);
 * - port: canonical decimal (":080" -> ":80"), dropped when it is the scheme's default or empty, <= 65535;
 * - path: dot segments removed (RFC 3986 §5.2.4, never above "/"), hex digits of escapes upper-cased, escapes never
 *   decoded; an empty path is "/" (RFC 9110 §4.2.3: the request target of "http://h" is "/");
 * - query: everything after the first '?', byte for byte;
 * - refused anywhere: bytes <= 0x20, DEL, '#' (a fragment is never part of a request target), bytes >= 0x80 in the
 *   authority.
 */
#ifndef PURGE_URL_H
#define PURGE_URL_H

#include <stddef.h>

/** purge_url_normalize flags */
enum {
    /**
     * The URL is a prefix of cache keys (a purge by prefix): its path must not hold a "." or ".." segment (the key
     * it is compared with never does, so such a prefix could only be a mistake), and a percent-escape may not be cut
     * at its end. Everything else is as for a URL.
     */
    PURGE_URL_PREFIX = 1,
};

/**
 * Normalises an absolute http(s) URL to the edge's cache key.
 * @param url     the URL (need not be NUL-terminated; an embedded NUL is refused)
 * @param flags   0, or PURGE_URL_PREFIX
 * @param[out] out     malloc'ed NUL-terminated key, owned by the caller (free()); untouched on failure
 * @param[out] reason  on failure, a static string saying why ("not http or https", "bad host", ...)
 * @return 0, or -1
 */
int purge_url_normalize(const char *url, size_t len, int flags, char **out, const char **reason);

/**
 * Normalises the authority of a purge by host: host [":" port], host as in a URL (lower-cased; IPv6 in brackets).
 * The port is kept in canonical decimal when given, even 80 or 443, because a host purge has no scheme to know its
 * default: "example.com" names the keys whose authority is exactly "example.com" (both schemes on their default
 * ports), "example.com:8080" the keys with that explicit port.
 * @param[out] out     malloc'ed NUL-terminated host, owned by the caller; untouched on failure
 * @param[out] reason  on failure, a static string
 * @return 0, or -1
 */
int purge_host_normalize(const char *host, size_t len, char **out, const char **reason);

#endif
