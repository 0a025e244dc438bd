/*
 * purge/url.c: URLs, URL prefixes and hosts of a purge, normalised to the edge's cache-key form.
 *
 * Contract: pure functions over caller bytes; results are malloc'ed and owned by the caller. The rules are those of
 * edge/cache_key.c (RFC 3986 §6.2.2 case and dot-segment normalisation, §6.2.3 default port, no decoding of escapes)
 * and must stay identical to them: a purge whose URL normalises differently from the key the edge stored never
 * matches anything. See purge/url.h.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include "purge/url.h"

static int is_hex(int c)
{
    return ('0' <= c && c <= '9') || ('a' <= c && c <= 'f') || ('A' <= c && c <= 'F');
}

static int is_alpha(int c)
{
    return ('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z');
}

static int is_digit(int c)
{
    return '0' <= c && c <= '9';
}

static int to_upper(int c)
{
    return 'a' <= c && c <= 'z' ? c - 'a' + 'A' : c;
}

static int to_lower(int c)
{
    return 'A' <= c && c <= 'Z' ? c - 'A' + 'a' : c;
}

/* RFC 3986 §2.3 */
static int is_unreserved(int c)
{
    return is_alpha(c) || is_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

/* RFC 3986 §2.2 */
static int is_sub_delim(int c)
{
    return c != '\0' && strchr("!$&'()*+,;=", c) != NULL;
}

/* never in a request target: CTLs, SP, DEL, and '#' (RFC 9112 §3.2.1) */
static int is_forbidden(int c)
{
    return c <= 0x20 || c == 0x7f || c == '#';
}

static int check_ipv6(const char *s, size_t len)
{
    char buf[64];
    unsigned char addr[16];
    if (len == 0 || len >= sizeof(buf))
        return -1;
    for (size_t i = 0; i != len; ++i) {
        if (!(is_hex((unsigned char)s[i]) || s[i] == ':' || s[i] == '.'))
            return -1; /* zone identifiers ("%25eth0") are refused, as in the edge */
        buf[i] = s[i];
    }
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, addr) == 1 ? 0 : -1;
}

/* RFC 3986 §3.2.2 IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
static int check_ipvfuture(const char *s, size_t len)
{
    size_t i = 1, hexstart;
    if (len == 0 || (s[0] != 'v' && s[0] != 'V'))
        return -1;
    for (hexstart = i; i < len && is_hex((unsigned char)s[i]); ++i)
        ;
    if (i == hexstart || i == len || s[i] != '.')
        return -1;
    if (++i == len)
        return -1;
    for (; i < len; ++i)
        if (!(is_unreserved((unsigned char)s[i]) || is_sub_delim((unsigned char)s[i]) || s[i] == ':'))
            return -1;
    return 0;
}

/*
 * Validates an authority and writes its normalised form into out (capacity >= len + 7).
 * default_port: the scheme's default port, dropped; -1 to keep any port given.
 * @return the written length, or -1
 */
static long normalize_authority(const char *a, size_t len, long default_port, char *out, const char **reason)
{
    size_t i, host_len;
    if (len == 0) {
        *reason = "empty host";
        return -1;
    }
    if (memchr(a, '@', len) != NULL) {
        *reason = "userinfo not allowed"; /* RFC 9110 §4.2.4: not in http(s) URIs */
        return -1;
    }
    if (a[0] == '[') {
        const char *close = memchr(a, ']', len);
        if (close == NULL) {
            *reason = "bad IP literal";
            return -1;
        }
        size_t inner_len = close - a - 1;
        if (check_ipv6(a + 1, inner_len) != 0 && check_ipvfuture(a + 1, inner_len) != 0) {
            *reason = "bad IP literal";
            return -1;
        }
        host_len = inner_len + 2;
        i = host_len;
    } else {
        for (i = 0; i < len && a[i] != ':'; ++i) {
            int c = (unsigned char)a[i];
            if (c == '%') {
                if (len - i < 3 || !is_hex((unsigned char)a[i + 1]) || !is_hex((unsigned char)a[i + 2])) {
                    *reason = "bad percent-escape in host";
                    return -1;
                }
                i += 2;
            } else if (!(is_unreserved(c) || is_sub_delim(c))) {
                *reason = "bad character in host";
                return -1;
            }
        }
        if (i == 0) {
            *reason = "empty host";
            return -1;
        }
        host_len = i;
    }
    long port = -1;
    if (i < len) {
        if (a[i] != ':') {
            *reason = "bad host";
            return -1;
        }
        for (++i; i < len; ++i) {
            if (!is_digit((unsigned char)a[i])) {
                *reason = "bad port";
                return -1;
            }
            port = (port < 0 ? 0 : port) * 10 + (a[i] - '0');
            if (port > 65535) {
                *reason = "bad port";
                return -1;
            }
        }
    }
    if (port == default_port)
        port = -1;

    size_t o = 0;
    for (i = 0; i < host_len; ++i) {
        if (a[i] == '%') {
            out[o++] = '%';
            out[o++] = to_upper((unsigned char)a[i + 1]);
            out[o++] = to_upper((unsigned char)a[i + 2]);
            i += 2;
        } else {
            out[o++] = to_lower((unsigned char)a[i]);
        }
    }
    if (port >= 0)
        o += sprintf(out + o, ":%ld", port);
    return (long)o;
}

static size_t pop_segment(const char *out, size_t olen)
{
    while (olen > 0 && out[olen - 1] != '/')
        --olen;
    if (olen > 0)
        --olen;
    return olen;
}

/* RFC 3986 §5.2.4 for an absolute path (in[0] == '/'); out has capacity >= len. Same algorithm as edge/cache_key.c. */
static size_t remove_dot_segments(const char *in, size_t len, char *out)
{
    size_t i = 0, o = 0;
    while (i < len) {
        size_t rest = len - i;
        if (rest >= 3 && in[i + 1] == '.' && in[i + 2] == '/') {
            i += 2;
        } else if (rest == 2 && in[i + 1] == '.') {
            out[o++] = '/';
            break;
        } else if (rest >= 4 && in[i + 1] == '.' && in[i + 2] == '.' && in[i + 3] == '/') {
            i += 3;
            o = pop_segment(out, o);
        } else if (rest == 3 && in[i + 1] == '.' && in[i + 2] == '.') {
            o = pop_segment(out, o);
            out[o++] = '/';
            break;
        } else {
            out[o++] = in[i++];
            while (i < len && in[i] != '/')
                out[o++] = in[i++];
        }
    }
    return o;
}

/* Does the path (starting with '/') hold a "." or ".." segment? */
static int has_dot_segment(const char *p, size_t len)
{
    for (size_t i = 0; i < len; ++i) {
        if (p[i] != '/')
            continue;
        size_t j = i + 1, n = 0;
        while (j < len && p[j] != '/')
            ++j, ++n;
        if ((n == 1 && p[i + 1] == '.') || (n == 2 && p[i + 1] == '.' && p[i + 2] == '.'))
            return 1;
    }
    return 0;
}

int purge_url_normalize(const char *url, size_t len, int flags, char **out, const char **reason)
{
    const char *scheme;
    long default_port;
    size_t i;

    if (memchr(url, '\0', len) != NULL) {
        *reason = "NUL byte";
        return -1;
    }
    if (len >= 7 && strncasecmp(url, "http://", 7) == 0) {
        scheme = "http";
        default_port = 80;
        i = 7;
    } else if (len >= 8 && strncasecmp(url, "https://", 8) == 0) {
        scheme = "https";
        default_port = 443;
        i = 8;
    } else {
        *reason = "not an absolute http or https URL";
        return -1;
    }
    for (size_t j = 0; j < len; ++j) {
        if (is_forbidden((unsigned char)url[j])) {
            *reason = url[j] == '#' ? "fragment not allowed" : "control character or space";
            return -1;
        }
    }

    size_t auth_start = i;
    while (i < len && url[i] != '/' && url[i] != '?')
        ++i;
    size_t auth_len = i - auth_start;
    const char *rest = url + i; /* path [? query], possibly empty */
    size_t rest_len = len - i;
    const char *q = memchr(rest, '?', rest_len);
    size_t path_len = q != NULL ? (size_t)(q - rest) : rest_len;
    size_t query_len = rest_len - path_len; /* includes the '?' */

    /* capacity: scheme + "://" + authority (+ port growth, at most ":65535" when the input had ":") + "/" + path + query */
    char *buf = malloc(strlen(scheme) + 3 + auth_len + 7 + 1 + path_len + query_len + 1);
    char *cased = malloc(path_len + 2);
    if (buf == NULL || cased == NULL)
        goto Fail_oom;
    size_t o = sprintf(buf, "%s://", scheme);
    long alen = normalize_authority(url + auth_start, auth_len, default_port, buf + o, reason);
    if (alen < 0)
        goto Fail;
    o += (size_t)alen;

    /* the path, escapes' hex upper-cased, never decoded; an empty path is "/" */
    size_t clen = 0;
    if (path_len == 0)
        cased[clen++] = '/';
    for (size_t j = 0; j < path_len; ++j) {
        int c = (unsigned char)rest[j];
        if (c == '%') {
            if (path_len - j < 3 || !is_hex((unsigned char)rest[j + 1]) || !is_hex((unsigned char)rest[j + 2])) {
                *reason = "bad percent-escape in path";
                goto Fail;
            }
            cased[clen++] = '%';
            cased[clen++] = to_upper((unsigned char)rest[j + 1]);
            cased[clen++] = to_upper((unsigned char)rest[j + 2]);
            j += 2;
        } else {
            cased[clen++] = c;
        }
    }
    if ((flags & PURGE_URL_PREFIX) != 0 && has_dot_segment(cased, clen)) {
        *reason = "dot segment in prefix";
        goto Fail;
    }
    o += remove_dot_segments(cased, clen, buf + o);
    if (query_len != 0) {
        memcpy(buf + o, q, query_len);
        o += query_len;
    }
    buf[o] = '\0';
    free(cased);
    *out = buf;
    return 0;

Fail_oom:
    *reason = "out of memory";
Fail:
    free(buf);
    free(cased);
    return -1;
}

int purge_host_normalize(const char *host, size_t len, char **out, const char **reason)
{
    if (memchr(host, '\0', len) != NULL) {
        *reason = "NUL byte";
        return -1;
    }
    for (size_t i = 0; i < len; ++i) {
        if (host[i] == '/' || host[i] == '?' || host[i] == '#' || is_forbidden((unsigned char)host[i])) {
            *reason = "not a host name";
            return -1;
        }
    }
    char *buf = malloc(len + 8);
    if (buf == NULL) {
        *reason = "out of memory";
        return -1;
    }
    long n = normalize_authority(host, len, -1, buf, reason);
    if (n < 0) {
        free(buf);
        return -1;
    }
    buf[n] = '\0';
    *out = buf;
    return 0;
}
