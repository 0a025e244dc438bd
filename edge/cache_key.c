/*
 * edge/cache_key.c: the cache key of a request and the path forwarded to the origin.
 *
 * Contract: pure functions over the bytes the client sent. The key and the forwarded path are made
 * from the same normalized bytes, so the cache can never store under one key what the origin served
 * for a different target (the root of cache poisoning through normalization mismatches). The only
 * normalizations are the ones RFC 3986 §6.2.2 calls safe without scheme knowledge beyond http(s):
 * case of scheme and host (§6.2.2.1), case of percent-escape hex digits (§6.2.2.1), dot-segment
 * removal (§6.2.2.3, algorithm §5.2.4), and the default port (§6.2.3). Percent-escapes are never
 * decoded (§6.2.2.2 is deliberately NOT applied): origins disagree on what %2F or %2E means.
 * No state, no allocation outside the caller's pool, any thread.
 */
#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "h2o.h"
#include "edge/cache_key.h"

static int is_hex(int c)
{
    return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F');
}

static int to_upper(int c)
{
    return 'a' <= c && c <= 'z' ? c - 'a' + 'A' : c;
}

static int to_lower(int c)
{
    return 'A' <= c && c <= 'Z' ? c - 'A' + 'a' : c;
}

static int is_alpha(int c)
{
    return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z');
}

static int is_digit(int c)
{
    return '0' <= c && c <= '9';
}

/* RFC 3986 §2.3 unreserved */
static int is_unreserved(int c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 §2.2 sub-delims */
static int is_sub_delim(int c)
{
    return strchr("!$&'()*+,;=", c) != NULL && c != '\0';
}

/* Bytes never allowed in a request target: CTLs, SP, DEL (RFC 9112 §3.2 has no whitespace in request-target),
 * and '#' (a fragment is not part of the target URI, RFC 9110 §4.2.1 / RFC 9112 §3.2.1). */
static int is_forbidden_in_target(int c)
{
    return c <= 0x20 || c == 0x7f || c == '#';
}

/* Copies a validated IPv6 literal (without brackets) lower-cased. @return 0 or -1 */
static int check_ipv6(const char *s, size_t len)
{
    char buf[64];
    unsigned char addr[16];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    for (size_t i = 0; i != len; ++i) {
        if (!(is_hex(s[i]) || s[i] == ':' || s[i] == '.'))
            return -1; /* also refuses zone identifiers ("%25eth0", RFC 6874): not routable beyond this host */
        buf[i] = s[i];
    }
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, addr) == 1 ? 0 : -1;
}

/* RFC 3986 §3.2.2: IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
static int check_ipvfuture(const char *s, size_t len)
{
    size_t i = 1, hexstart;
    if (len == 0 || (s[0] != 'v' && s[0] != 'V'))
        return -1;
    for (hexstart = i; i < len && is_hex(s[i]); ++i)
        ;
    if (i == hexstart || i == len || s[i] != '.')
        return -1;
    if (++i == len)
        return -1;
    for (; i < len; ++i)
        if (!(is_unreserved(s[i]) || is_sub_delim(s[i]) || s[i] == ':'))
            return -1;
    return 0;
}

/*
 * Splits and validates an authority (RFC 3986 §3.2: no userinfo in HTTP, RFC 9110 §4.2.4).
 * On success *host and *host_len point into `a`, and *port is -1 when there is no port or it is empty.
 */
static int parse_authority(h2o_iovec_t a, const char **host, size_t *host_len, long *port)
{
    size_t i;
    if (a.len == 0)
        return -1;
    if (a.base[0] == '[') {
        /* IP-literal */
        const char *close = memchr(a.base, ']', a.len);
        if (close == NULL)
            return -1;
        size_t inner_len = close - a.base - 1;
        if (check_ipv6(a.base + 1, inner_len) != 0 && check_ipvfuture(a.base + 1, inner_len) != 0)
            return -1;
        *host = a.base;
        *host_len = inner_len + 2;
        i = *host_len;
    } else {
        /* reg-name (which covers IPv4address); RFC 9110 §4.2.1 forbids an empty host for http(s) */
        for (i = 0; i < a.len && a.base[i] != ':'; ++i) {
            int c = (unsigned char)a.base[i];
            if (c == '%') {
                if (a.len - i < 3 || !is_hex(a.base[i + 1]) || !is_hex(a.base[i + 2]))
                    return -1;
                i += 2;
            } else if (!(is_unreserved(c) || is_sub_delim(c))) {
                return -1;
            }
        }
        if (i == 0)
            return -1;
        *host = a.base;
        *host_len = i;
    }
    *port = -1;
    if (i == a.len)
        return 0;
    if (a.base[i] != ':')
        return -1;
    ++i;
    /* port = *DIGIT; empty is allowed and means the default (RFC 3986 §3.2.3) */
    long p = -1;
    for (; i < a.len; ++i) {
        if (!is_digit(a.base[i]))
            return -1;
        p = (p < 0 ? 0 : p) * 10 + (a.base[i] - '0');
        if (p > 65535)
            return -1;
    }
    *port = p;
    return 0;
}

/* Removes the last segment and its preceding '/' from out (RFC 3986 §5.2.4 step 2C). */
static size_t pop_segment(const char *out, size_t olen)
{
    while (olen > 0 && out[olen - 1] != '/')
        --olen;
    if (olen > 0)
        --olen;
    return olen;
}

/*
 * RFC 3986 §5.2.4 remove_dot_segments for an absolute path (in[0] == '/'), writing into out (capacity >= len + 1).
 * Because the input always starts with '/', rules 2A and 2D (relative prefixes) never apply, and a ".." at the
 * root pops nothing: the path cannot climb above "/".
 * @return the output length
 */
static size_t remove_dot_segments(const char *in, size_t len, char *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        size_t rest = len - i; /* in[i] == '/' is an invariant of this loop */
        if (rest >= 3 && in[i + 1] == '.' && in[i + 2] == '/') {
            /* 2B: "/./" -> "/" */
            i += 2;
        } else if (rest == 2 && in[i + 1] == '.') {
            /* 2B: "/." at the end -> "/" */
            out[o++] = '/';
            break;
        } else if (rest >= 4 && in[i + 1] == '.' && in[i + 2] == '.' && in[i + 3] == '/') {
            /* 2C: "/../" -> "/" and drop the last output segment */
            i += 3;
            o = pop_segment(out, o);
        } else if (rest == 3 && in[i + 1] == '.' && in[i + 2] == '.') {
            /* 2C: "/.." at the end -> "/" (keeps the trailing slash) */
            o = pop_segment(out, o);
            out[o++] = '/';
            break;
        } else {
            /* 2E: move "/segment" */
            out[o++] = in[i++];
            while (i < len && in[i] != '/')
                out[o++] = in[i++];
        }
    }
    return o;
}

int edge_cache_key_build(h2o_mem_pool_t *pool, h2o_iovec_t scheme, h2o_iovec_t authority, h2o_iovec_t raw_path, h2o_iovec_t *key,
                         h2o_iovec_t *path)
{
    const char *scheme_lc;
    long default_port;
    if (h2o_lcstris(scheme.base, scheme.len, H2O_STRLIT("http"))) {
        scheme_lc = "http";
        default_port = 80;
    } else if (h2o_lcstris(scheme.base, scheme.len, H2O_STRLIT("https"))) {
        scheme_lc = "https";
        default_port = 443;
    } else {
        return -1;
    }

    const char *host;
    size_t host_len;
    long port;
    if (parse_authority(authority, &host, &host_len, &port) != 0)
        return -1;
    /* RFC 3986 §6.2.3: the scheme's default port is the same as no port */
    if (port == default_port)
        port = -1;

    /* Request target: origin-form = absolute-path [ "?" query ] (RFC 9112 §3.2.1) */
    if (raw_path.len == 0 || raw_path.base[0] != '/')
        return -1;
    const char *q = memchr(raw_path.base, '?', raw_path.len);
    size_t path_len = q != NULL ? (size_t)(q - raw_path.base) : raw_path.len;

    /* Validate the path and upper-case the hex digits of its escapes (RFC 3986 §6.2.2.1), never decoding them. */
    char *cased = h2o_mem_alloc_pool(pool, path_len + 1);
    for (size_t i = 0; i < path_len; ++i) {
        int c = (unsigned char)raw_path.base[i];
        if (is_forbidden_in_target(c))
            return -1;
        if (c == '%') {
            if (path_len - i < 3 || !is_hex(raw_path.base[i + 1]) || !is_hex(raw_path.base[i + 2]))
                return -1;
            cased[i] = '%';
            cased[i + 1] = to_upper(raw_path.base[i + 1]);
            cased[i + 2] = to_upper(raw_path.base[i + 2]);
            i += 2;
        } else {
            cased[i] = c;
        }
    }
    /* The query is kept byte for byte; only bytes that cannot be in a request target are refused. */
    size_t query_len = q != NULL ? raw_path.len - path_len : 0; /* includes the '?' */
    for (size_t i = 0; i < query_len; ++i)
        if (is_forbidden_in_target((unsigned char)q[i]))
            return -1;

    /* forwarded path */
    char *p = h2o_mem_alloc_pool(pool, path_len + 1 + query_len + 1);
    size_t plen = remove_dot_segments(cased, path_len, p);
    if (query_len != 0) {
        memcpy(p + plen, q, query_len);
        plen += query_len;
    }
    p[plen] = '\0';

    /* key = scheme "://" host [":" port] path-with-query */
    size_t klen_max = strlen(scheme_lc) + 3 + host_len + 6 + plen + 1;
    char *k = h2o_mem_alloc_pool(pool, klen_max);
    size_t klen = 0;
    memcpy(k, scheme_lc, strlen(scheme_lc));
    klen += strlen(scheme_lc);
    memcpy(k + klen, "://", 3);
    klen += 3;
    for (size_t i = 0; i < host_len; ++i) {
        if (host[i] == '%') {
            /* an escape in a reg-name: hex digits upper-case, like in the path (RFC 3986 §6.2.2.1) */
            k[klen++] = '%';
            k[klen++] = to_upper(host[i + 1]);
            k[klen++] = to_upper(host[i + 2]);
            i += 2;
        } else {
            k[klen++] = to_lower(host[i]); /* RFC 3986 §3.2.2: host is case-insensitive */
        }
    }
    if (port >= 0) {
        /* by hand: sprintf cost 1.5-4% of a 1 KiB hit (the port is 0..65535, checked above) */
        char digits[8];
        size_t n = 0;
        long v = port;
        do {
            digits[n++] = (char)('0' + v % 10);
            v /= 10;
        } while (v != 0);
        k[klen++] = ':';
        while (n != 0)
            k[klen++] = digits[--n];
    }
    memcpy(k + klen, p, plen);
    klen += plen;
    k[klen] = '\0';

    *key = h2o_iovec_init(k, klen);
    *path = h2o_iovec_init(p, plen);
    return 0;
}

/* --- query rules --- */

static int param_cmp(const void *a, const void *b)
{
    const h2o_iovec_t *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->base, y->base, n);
    return c != 0 ? c : (x->len < y->len ? -1 : x->len > y->len);
}

void edge_cache_key_apply_query_rules(h2o_mem_pool_t *pool, h2o_iovec_t key, edge_query_mode_t mode,
                                      const char *const *drop, size_t num_drop, h2o_iovec_t *out)
{
    const char *q = memchr(key.base, '?', key.len);
    *out = key;
    if (q == NULL || (mode == EDGE_QUERY_KEEP && num_drop == 0))
        return;
    size_t prefix_len = (size_t)(q - key.base);
    if (mode == EDGE_QUERY_IGNORE) {
        *out = h2o_strdup(pool, key.base, prefix_len);
        return;
    }
    /* split the query into its parameters */
    const char *p = q + 1, *end = key.base + key.len;
    size_t count = 1;
    for (const char *c = p; c != end; ++c)
        if (*c == '&')
            ++count;
    h2o_iovec_t *params = h2o_mem_alloc_pool(pool, sizeof(*params) * count);
    size_t n = 0;
    while (p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        h2o_iovec_t param = h2o_iovec_init(p, (size_t)(stop - p));
        const char *eq = memchr(param.base, '=', param.len);
        size_t name_len = eq != NULL ? (size_t)(eq - param.base) : param.len;
        int dropped = param.len == 0;
        for (size_t i = 0; !dropped && i != num_drop; ++i)
            dropped = strlen(drop[i]) == name_len && memcmp(drop[i], param.base, name_len) == 0;
        if (!dropped)
            params[n++] = param;
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    if (mode == EDGE_QUERY_SORT)
        qsort(params, n, sizeof(*params), param_cmp);
    size_t len = prefix_len + 1;
    for (size_t i = 0; i != n; ++i)
        len += params[i].len + 1;
    char *buf = h2o_mem_alloc_pool(pool, len + 1), *w = buf;
    memcpy(w, key.base, prefix_len);
    w += prefix_len;
    for (size_t i = 0; i != n; ++i) {
        *w++ = i == 0 ? '?' : '&';
        memcpy(w, params[i].base, params[i].len);
        w += params[i].len;
    }
    *w = '\0';
    *out = h2o_iovec_init(buf, (size_t)(w - buf));
}
