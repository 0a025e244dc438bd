/*
 * edge/cache_key.h: the cache key of a request and the path forwarded to the origin.
 *
 * Pure functions: no state, no I/O, safe from any thread. Results live in the caller's pool.
 */
#ifndef EDGE_CACHE_KEY_H
#define EDGE_CACHE_KEY_H

#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include "h2o.h"

/**
 * Builds the cache key and the path forwarded to the origin.
 * key  = scheme "://" lower-case(host) [":" port, only if not the scheme's default 80/443] path ["?" query]
 * path = the raw request path with only dot-segment removal (RFC 3986 §5.2.4) and percent-escapes upper-cased
 *        (%2f -> %2F); escapes are NEVER decoded (%2F, %3F, %00, %2E stay escapes); the query is kept raw and
 *        appended unchanged (everything after the first '?').
 *
 * Details:
 * - The scheme is compared case-insensitively and written lower-case; anything but http/https is -1.
 * - The port is written in canonical decimal (":080" is ":80", hence dropped for http); an empty port
 *   ("host:") is dropped; a port above 65535 is -1.
 * - An IPv6 literal ("[::1]") must parse as an IPv6 address (zone identifiers are refused); "[v1.x]"
 *   (IPvFuture) is accepted by its grammar. Hex digits are lower-cased like the rest of the host.
 * - Dot segments never climb above "/" ("/../a" -> "/a"); a trailing slash is kept ("/a/b/.." -> "/a/").
 *   Empty segments ("//") are kept.
 * - The query (after the first '?', even if empty: "/a?" keeps its "?") is copied byte for byte; its
 *   percent-escapes are neither validated nor upper-cased ("?off=100%" is accepted), because the key and
 *   the origin see the very same bytes.
 * - '#' anywhere is refused: a fragment is never part of a request target (RFC 9112 §3.2.1, RFC 9110 §4.2.1),
 *   and origins disagree on whether to strip it.
 *
 * @param scheme     "http" or "https"
 * @param authority  the Host / :authority as received (may carry a port; IPv6 literal in brackets)
 * @param raw_path   req->path as received (path + optional query)
 * @param[out] key   allocated from pool (NUL-terminated, len excludes the NUL), valid for the pool's lifetime
 * @param[out] path  normalized path (+ "?" query), allocated from pool (NUL-terminated): what is forwarded to the origin
 * @return 0, or -1 when the request target cannot be keyed (empty or invalid authority: characters outside
 *         RFC 3986 reg-name/IP-literal + port, userinfo, empty host; path not starting with '/'; a '%' in the
 *         path not followed by two hex digits; control characters, DEL, spaces or '#') -> the caller answers
 *         400. On -1, *key and *path are left untouched.
 */
int edge_cache_key_build(h2o_mem_pool_t *pool, h2o_iovec_t scheme, h2o_iovec_t authority, h2o_iovec_t raw_path, h2o_iovec_t *key,
                         h2o_iovec_t *path);

/* How the query takes part in the cache key (cache.query). */
typedef enum en_edge_query_mode_t {
    EDGE_QUERY_KEEP = 0, /* raw, as received (the default) */
    EDGE_QUERY_SORT,     /* parameters sorted (byte order of "name=value"), so their order does not matter */
    EDGE_QUERY_IGNORE    /* left out of the key entirely (the origin still gets it) */
} edge_query_mode_t;

/**
 * Applies the query rules to a cache key built by edge_cache_key_build: parameters whose name is in `drop`
 * (compared byte for byte, before any '=') are removed, then the rest are sorted or all removed as `mode`
 * says; an empty query loses its '?'. The forwarded path is not changed (the origin gets the query as sent).
 * @param[out] out  the key, allocated from pool when it changed, else `key` itself
 */
void edge_cache_key_apply_query_rules(h2o_mem_pool_t *pool, h2o_iovec_t key, edge_query_mode_t mode,
                                      const char *const *drop, size_t num_drop, h2o_iovec_t *out);

#endif
