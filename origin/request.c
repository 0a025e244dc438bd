/*
 * origin/request.c: pure functions that build the request head sent to an HTTP origin and filter the
 * response head it sends back. Headers in, bytes or arrays out; no I/O, no loop, no global state.
 * Everything returned is allocated from the caller's pool and lives as long as that pool.
 *
 * Rules (RFC 9110 §7.6.1 hop-by-hop fields, RFC 9110 §7.6.3 Via, RFC 9112 §6.3 framing):
 * - hop-by-hop headers never cross the edge in either direction, including every header the Connection
 *   header names;
 * - the edge frames the request body itself (Content-Length), never passes Expect (it has the whole body);
 * - a header whose name or value holds CR, LF or NUL is dropped, never emitted (request splitting).
 */
#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include "origin/origin_private.h"

static const char *const hop_by_hop[] = {"connection",
                                         "keep-alive",
                                         "proxy-connection",
                                         "proxy-authenticate",
                                         "proxy-authorization",
                                         "te",
                                         "trailer",
                                         "transfer-encoding",
                                         "upgrade",
                                         NULL};

static int has_bad_bytes(const char *s, size_t len)
{
    for (size_t i = 0; i != len; ++i)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return 1;
    return 0;
}

/* request-line tokens: no controls, no space */
static int is_request_line_safe(h2o_iovec_t v)
{
    if (v.len == 0)
        return 0;
    for (size_t i = 0; i != v.len; ++i) {
        unsigned char c = (unsigned char)v.base[i];
        if (c <= 0x20 || c == 0x7f)
            return 0;
    }
    return 1;
}

static int name_is(const h2o_header_t *h, const char *lc)
{
    return h2o_lcstris(h->name->base, h->name->len, lc, strlen(lc));
}

/* Is `name` listed in the value of any Connection header among `headers`? */
static int named_by_connection(const h2o_header_t *headers, size_t num, const char *name, size_t name_len)
{
    for (size_t i = 0; i != num; ++i) {
        if (!name_is(headers + i, "connection"))
            continue;
        h2o_iovec_t iter = headers[i].value;
        const char *token;
        size_t token_len;
        while ((token = h2o_next_token(&iter, ',', &token_len, NULL)) != NULL)
            if (token_len == name_len && strncasecmp(name, token, name_len) == 0)
                return 1;
    }
    return 0;
}

static int is_method(h2o_iovec_t m, const char *s)
{
    return h2o_memis(m.base, m.len, s, strlen(s));
}

/* A growing buffer from the pool; sizes are computed up front, so it never grows past its first estimate. */
struct st_strbuf_t {
    char *base;
    size_t len, cap;
};

static void sb_add(struct st_strbuf_t *sb, const char *s, size_t len)
{
    assert(sb->len + len <= sb->cap);
    memcpy(sb->base + sb->len, s, len);
    sb->len += len;
}

static void sb_adds(struct st_strbuf_t *sb, const char *s)
{
    sb_add(sb, s, strlen(s));
}

int origin__is_hop_by_hop(const char *name, size_t len)
{
    for (size_t i = 0; hop_by_hop[i] != NULL; ++i)
        if (h2o_lcstris(name, len, hop_by_hop[i], strlen(hop_by_hop[i])))
            return 1;
    return 0;
}

/* Should the client's header be dropped from the forwarded request (before the merged ones are added)? */
static int drop_request_header(const origin_request_t *req, const h2o_header_t *h)
{
    const h2o_header_t *all = req->headers->entries;
    size_t num = req->headers->size;
    static const char *const always[] = {"host", "content-length", "expect", "x-forwarded-for", "x-forwarded-proto", "via",
                                         /* the cache's own fields, never a client's to set (DESIGN.md "A request") */
                                         "cdn-cache-control", "surrogate-control", "surrogate-key", "cache-tag",
                                         /* request headers a Next.js origin trusts internally: a client setting
                                          * them could skip middleware or trigger revalidation */
                                         "x-middleware-subrequest", "next-resume", "x-prerender-revalidate",
                                         "x-now-route-matches", NULL};
    static const char *const for_cache[] = {
        "accept-encoding", "if-none-match", "if-modified-since", "if-match", "if-unmodified-since", "if-range", "range", NULL};

    if (h->name->len == 0 || has_bad_bytes(h->name->base, h->name->len) || has_bad_bytes(h->value.base, h->value.len))
        return 1;
    if (origin__is_hop_by_hop(h->name->base, h->name->len))
        return 1;
    if (h->name->len >= 6 && h2o_lcstris(h->name->base, 6, "proxy-", 6))
        return 1;
    for (size_t i = 0; always[i] != NULL; ++i)
        if (name_is(h, always[i]))
            return 1;
    if (req->for_cache)
        for (size_t i = 0; for_cache[i] != NULL; ++i)
            if (name_is(h, for_cache[i]))
                return 1;
    return named_by_connection(all, num, h->name->base, h->name->len);
}

/* Joins the values of every `name` header (kept by the Connection rule and CR/LF-free) with ", ". */
static void add_joined(struct st_strbuf_t *sb, const origin_request_t *req, const char *name)
{
    int first = 1;
    if (req->headers == NULL)
        return;
    for (size_t i = 0; i != req->headers->size; ++i) {
        const h2o_header_t *h = req->headers->entries + i;
        if (!name_is(h, name) || has_bad_bytes(h->value.base, h->value.len) ||
            named_by_connection(req->headers->entries, req->headers->size, h->name->base, h->name->len))
            continue;
        if (!first)
            sb_adds(sb, ", ");
        sb_add(sb, h->value.base, h->value.len);
        first = 0;
    }
    if (!first)
        sb_adds(sb, ", ");
}

h2o_iovec_t origin_build_request_head(h2o_mem_pool_t *pool, const origin_request_t *req)
{
    struct st_strbuf_t sb;
    size_t cap = 512 + req->method.len + req->path.len + req->authority.len + req->client_ip.len + req->if_none_match.len +
                 req->if_modified_since.len;
    char lenbuf[sizeof(H2O_UINT64_LONGEST_STR)];

    if (!is_request_line_safe(req->method) || !is_request_line_safe(req->path) || req->path.base[0] == '\0')
        return h2o_iovec_init(NULL, 0);

    /* every client header may appear once as itself and once inside a merged one */
    if (req->headers != NULL)
        for (size_t i = 0; i != req->headers->size; ++i)
            cap += 2 * (req->headers->entries[i].name->len + req->headers->entries[i].value.len + 4);
    sb = (struct st_strbuf_t){h2o_mem_alloc_pool(pool, cap), 0, cap};

    sb_add(&sb, req->method.base, req->method.len);
    sb_adds(&sb, " ");
    sb_add(&sb, req->path.base, req->path.len);
    sb_adds(&sb, " HTTP/1.1\r\n");
    if (req->authority.len != 0 && !has_bad_bytes(req->authority.base, req->authority.len)) {
        sb_adds(&sb, "host: ");
        sb_add(&sb, req->authority.base, req->authority.len);
        sb_adds(&sb, "\r\n");
    }

    if (req->headers != NULL) {
        for (size_t i = 0; i != req->headers->size; ++i) {
            const h2o_header_t *h = req->headers->entries + i;
            if (drop_request_header(req, h))
                continue;
            sb_add(&sb, h->orig_name != NULL ? h->orig_name : h->name->base, h->name->len);
            sb_adds(&sb, ": ");
            sb_add(&sb, h->value.base, h->value.len);
            sb_adds(&sb, "\r\n");
        }
    }

    /* X-Forwarded-For: the client's list, then the peer we saw */
    sb_adds(&sb, "x-forwarded-for: ");
    add_joined(&sb, req, "x-forwarded-for");
    if (req->client_ip.len != 0 && !has_bad_bytes(req->client_ip.base, req->client_ip.len))
        sb_add(&sb, req->client_ip.base, req->client_ip.len);
    else
        sb_adds(&sb, "unknown");
    sb_adds(&sb, "\r\n");
    sb_adds(&sb, req->client_is_tls ? "x-forwarded-proto: https\r\n" : "x-forwarded-proto: http\r\n");
    /* RFC 9110 §7.6.3: each intermediary appends itself */
    sb_adds(&sb, "via: ");
    add_joined(&sb, req, "via");
    sb_adds(&sb, "1.1 cdn-edge\r\n");
    if (req->for_cache) {
        sb_adds(&sb, req->accept_gzip ? "accept-encoding: gzip\r\n" : "accept-encoding: identity\r\n");
        /* revalidation of a stored response with its own validators (RFC 9111 §4.3.1) */
        if (req->if_none_match.len != 0 && !has_bad_bytes(req->if_none_match.base, req->if_none_match.len)) {
            sb_adds(&sb, "if-none-match: ");
            sb_add(&sb, req->if_none_match.base, req->if_none_match.len);
            sb_adds(&sb, "\r\n");
        }
        if (req->if_modified_since.len != 0 && !has_bad_bytes(req->if_modified_since.base, req->if_modified_since.len)) {
            sb_adds(&sb, "if-modified-since: ");
            sb_add(&sb, req->if_modified_since.base, req->if_modified_since.len);
            sb_adds(&sb, "\r\n");
        }
    }
    sb_adds(&sb, "connection: keep-alive\r\n");
    /* RFC 9110 §8.6: a user agent SHOULD send Content-Length: 0 on POST/PUT/PATCH without content */
    if (req->body.len != 0 || is_method(req->method, "POST") || is_method(req->method, "PUT") || is_method(req->method, "PATCH")) {
        sb_adds(&sb, "content-length: ");
        sb_add(&sb, lenbuf, sprintf(lenbuf, "%zu", req->body.len));
        sb_adds(&sb, "\r\n");
    }
    sb_adds(&sb, "\r\n");
    return h2o_iovec_init(sb.base, sb.len);
}

static int parse_content_length(h2o_iovec_t v, int64_t *out)
{
    /* RFC 9110 §8.6: 1*DIGIT; leading/trailing whitespace was stripped by the parser */
    size_t n = h2o_strtosize(v.base, v.len);
    if (n == SIZE_MAX || n > INT64_MAX)
        return -1;
    *out = (int64_t)n;
    return 0;
}

int origin__filter_response_headers(h2o_mem_pool_t *pool, const h2o_header_t *in, size_t num_in, h2o_header_t **out,
                                    size_t *num_out, int64_t *content_length, int *is_chunked)
{
    h2o_header_t *kept = h2o_mem_alloc_pool(pool, sizeof(*kept) * (num_in != 0 ? num_in : 1));
    size_t n = 0;

    *content_length = -1;
    *is_chunked = 0;
    for (size_t i = 0; i != num_in; ++i) {
        const h2o_header_t *h = in + i;
        if (name_is(h, "content-length")) {
            int64_t v;
            if (parse_content_length(h->value, &v) != 0)
                return -1;
            /* RFC 9112 §6.3: differing values are unrecoverable */
            if (*content_length != -1 && *content_length != v)
                return -1;
            *content_length = v;
            continue;
        }
        if (name_is(h, "transfer-encoding")) {
            if (h2o_memis(h->value.base, h->value.len, H2O_STRLIT("chunked")))
                *is_chunked = 1;
            continue;
        }
        if (origin__is_hop_by_hop(h->name->base, h->name->len) || named_by_connection(in, num_in, h->name->base, h->name->len))
            continue;
        if (has_bad_bytes(h->name->base, h->name->len) || has_bad_bytes(h->value.base, h->value.len))
            continue;
        h2o_iovec_t lc = h2o_strdup(pool, h->name->base, h->name->len), *name;
        h2o_strtolower(lc.base, lc.len);
        const h2o_token_t *token = h2o_lookup_token(lc.base, lc.len);
        if (token != NULL) {
            name = (h2o_iovec_t *)&token->buf;
        } else {
            name = h2o_mem_alloc_pool(pool, sizeof(*name));
            *name = lc;
        }
        kept[n].name = name;
        kept[n].orig_name = h->orig_name != NULL ? h2o_strdup(pool, h->orig_name, h->name->len).base : NULL;
        kept[n].value = h2o_strdup(pool, h->value.base, h->value.len);
        ++n;
    }
    *out = kept;
    *num_out = n;
    return 0;
}
