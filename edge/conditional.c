/*
 * edge/conditional.c: conditional requests answered by a cache (RFC 9110 §13, RFC 9111 §3.2 and §4.3).
 *
 * Contract: pure functions. They read their arguments and nothing else (no clock, no globals), allocate only
 * from the pool they are given, and read exactly the bytes they are given (inputs need not be NUL-terminated).
 * What cannot be parsed is read the conservative way: a malformed validator never matches, so the cache
 * answers 200 (or lets the origin decide) rather than a wrong 304.
 */
#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include <string.h>
#include "h2o.h"
#include "edge/cache_policy.h"
#include "edge/http_token.h"
#include "edge/conditional.h"

/* RFC 9110 §8.8.3: etagc = %x21 / %x23-7E / obs-text */
static int is_etagc(int c)
{
    unsigned char u = (unsigned char)c;
    return u == 0x21 || (0x23 <= u && u <= 0x7e) || u >= 0x80;
}

static int name_is(const char *name, size_t len, const char *lc_literal)
{
    return h2o_lcstris(name, len, lc_literal, strlen(lc_literal));
}

static h2o_iovec_t trim_ows(const char *s, size_t len)
{
    while (len > 0 && edge_is_ows(*s)) {
        ++s;
        --len;
    }
    while (len > 0 && edge_is_ows(s[len - 1]))
        --len;
    return h2o_iovec_init(s, len);
}

/* Parses an entity-tag at p (no leading OWS). @return the end of it, or NULL when there is none */
static const char *parse_etag_at(const char *p, const char *end, edge_etag_t *tag)
{
    tag->weak = 0;
    if (end - p >= 2 && p[0] == 'W' && p[1] == '/') {
        tag->weak = 1;
        p += 2;
    }
    if (p == end || *p != '"')
        return NULL;
    tag->opaque = ++p;
    while (p < end && is_etagc(*p))
        ++p;
    if (p == end || *p != '"')
        return NULL;
    tag->opaque_len = p - tag->opaque;
    return p + 1;
}

/*
 * Whether a field value `"*" / #entity-tag` matches the stored tag. `*` matches any current representation
 * (RFC 9110 §13.1.1, §13.1.2). A malformed member is skipped up to the next comma and never matches.
 * stored == NULL means the stored response has no (valid) entity-tag.
 */
static int list_matches(h2o_iovec_t value, const edge_etag_t *stored, int strong)
{
    h2o_iovec_t v = trim_ows(value.base, value.len);
    if (v.len == 1 && v.base[0] == '*')
        return 1;
    const char *p = v.base, *end = v.base + v.len;
    while (p < end) {
        while (p < end && (edge_is_ows(*p) || *p == ','))
            ++p;
        if (p == end)
            break;
        edge_etag_t tag;
        const char *q = parse_etag_at(p, end, &tag);
        if (q != NULL) {
            while (q < end && edge_is_ows(*q))
                ++q;
        }
        if (q == NULL || (q < end && *q != ',')) {
            /* malformed member: skip it (an opaque-tag may hold commas, but a broken one cannot be trusted) */
            const char *comma = memchr(p, ',', end - p);
            p = comma != NULL ? comma + 1 : end;
            continue;
        }
        if (stored != NULL && (strong ? edge_etag_strong_eq(&tag, stored) : edge_etag_weak_eq(&tag, stored)))
            return 1;
        p = q;
    }
    return 0;
}

/* Joins every line of `token` into one value (", " between lines). {NULL, 0} when absent. */
static h2o_iovec_t join_field(h2o_mem_pool_t *pool, const h2o_header_t *headers, size_t num_headers, const h2o_token_t *token)
{
    h2o_iovec_t first = {NULL, 0};
    size_t count = 0, total = 0;
    for (size_t i = 0; i != num_headers; ++i) {
        if (!h2o_lcstris(headers[i].name->base, headers[i].name->len, token->buf.base, token->buf.len))
            continue;
        if (count++ == 0)
            first = headers[i].value;
        total += headers[i].value.len + 2;
    }
    if (count <= 1) {
        if (count == 1 && first.base == NULL)
            first.base = ""; /* present but empty must stay "present" */
        return first;
    }
    char *buf = h2o_mem_alloc_pool(pool, total), *dst = buf;
    for (size_t i = 0; i != num_headers; ++i) {
        if (!h2o_lcstris(headers[i].name->base, headers[i].name->len, token->buf.base, token->buf.len))
            continue;
        if (dst != buf) {
            *dst++ = ',';
            *dst++ = ' ';
        }
        if (headers[i].value.len != 0)
            memcpy(dst, headers[i].value.base, headers[i].value.len);
        dst += headers[i].value.len;
    }
    return h2o_iovec_init(buf, dst - buf);
}

static int parse_date(h2o_iovec_t v, int64_t now, int64_t *t)
{
    h2o_iovec_t d = trim_ows(v.base, v.len);
    return edge_http_date_parse_at(d.base, d.len, now, t);
}

static h2o_iovec_t copy_iovec(h2o_mem_pool_t *pool, h2o_iovec_t v)
{
    char *p = h2o_mem_alloc_pool(pool, v.len + 1);
    if (v.len != 0)
        memcpy(p, v.base, v.len);
    p[v.len] = '\0';
    return h2o_iovec_init(p, v.len);
}

static void copy_header(h2o_mem_pool_t *pool, h2o_header_t *dst, const h2o_header_t *src)
{
    if (h2o_iovec_is_token(src->name)) {
        dst->name = src->name; /* tokens are static */
    } else {
        dst->name = h2o_mem_alloc_pool(pool, sizeof(*dst->name));
        *dst->name = copy_iovec(pool, *src->name);
    }
    dst->orig_name = src->orig_name != NULL ? copy_iovec(pool, h2o_iovec_init(src->orig_name, src->name->len)).base : NULL;
    dst->value = copy_iovec(pool, src->value);
}

/* Whether `name` appears as a member of a Connection field value among headers (RFC 9110 §7.6.1). */
static int listed_in_connection(const h2o_header_t *headers, size_t num_headers, const char *name, size_t len)
{
    for (size_t i = 0; i != num_headers; ++i) {
        if (!name_is(headers[i].name->base, headers[i].name->len, "connection"))
            continue;
        const char *p = headers[i].value.base, *end = p + headers[i].value.len;
        while (p < end) {
            const char *comma = memchr(p, ',', end - p), *e = comma != NULL ? comma : end;
            h2o_iovec_t el = trim_ows(p, e - p);
            if (edge_name_eq(el.base, el.len, name, len))
                return 1;
            p = comma != NULL ? comma + 1 : end;
        }
    }
    return 0;
}

int edge_etag_parse(const char *s, size_t len, edge_etag_t *tag)
{
    h2o_iovec_t v = trim_ows(s, len);
    const char *end = v.base + v.len, *q = parse_etag_at(v.base, end, tag);
    return q == end ? 0 : -1;
}

int edge_etag_strong_eq(const edge_etag_t *a, const edge_etag_t *b)
{
    return !a->weak && !b->weak && h2o_memis(a->opaque, a->opaque_len, b->opaque, b->opaque_len);
}

int edge_etag_weak_eq(const edge_etag_t *a, const edge_etag_t *b)
{
    return h2o_memis(a->opaque, a->opaque_len, b->opaque, b->opaque_len);
}

void edge_cond_request_from_headers(edge_cond_request_t *r, h2o_mem_pool_t *pool, h2o_iovec_t method, const h2o_header_t *headers,
                                    size_t num_headers)
{
    r->is_get_or_head = edge_method_is_cacheable(method);
    r->if_match = join_field(pool, headers, num_headers, H2O_TOKEN_IF_MATCH);
    r->if_none_match = join_field(pool, headers, num_headers, H2O_TOKEN_IF_NONE_MATCH);
    r->if_modified_since = join_field(pool, headers, num_headers, H2O_TOKEN_IF_MODIFIED_SINCE);
    r->if_unmodified_since = join_field(pool, headers, num_headers, H2O_TOKEN_IF_UNMODIFIED_SINCE);
}

edge_cond_result_t edge_cond_evaluate(const edge_cond_request_t *r, const edge_cond_stored_t *s, int64_t now)
{
    edge_cond_result_t result = EDGE_COND_NONE;
    edge_etag_t stored_tag, *stored = NULL;
    int64_t t;

    if (r->if_match.base == NULL && r->if_none_match.base == NULL && r->if_modified_since.base == NULL &&
        r->if_unmodified_since.base == NULL)
        return EDGE_COND_NONE;
    /* RFC 9110 §13.2.1: preconditions are ignored when the response without them would not be 2xx */
    if (s->status < 200 || s->status > 299)
        return EDGE_COND_NONE;
    if (s->etag.base != NULL && edge_etag_parse(s->etag.base, s->etag.len, &stored_tag) == 0)
        stored = &stored_tag;

    /* RFC 9110 §13.2.2 step 1: If-Match, strong comparison (§13.1.1); `*` is true as a representation exists */
    if (r->if_match.base != NULL) {
        if (!list_matches(r->if_match, stored, 1))
            return EDGE_COND_PRECONDITION_FAILED;
        result = EDGE_COND_PASS;
    } else if (r->if_unmodified_since.base != NULL && parse_date(r->if_unmodified_since, now, &t) == 0) {
        /* step 2 (§13.1.4): ignored when If-Match is present or the date is invalid. Without a Last-Modified the
         * cache cannot prove the condition true: report failure so that the caller forwards the request. */
        if (!s->has_last_modified || s->last_modified > t)
            return EDGE_COND_PRECONDITION_FAILED;
        result = EDGE_COND_PASS;
    }

    /* step 3 (§13.1.2): If-None-Match, weak comparison; false means 304 for GET/HEAD, 412 otherwise */
    if (r->if_none_match.base != NULL) {
        if (list_matches(r->if_none_match, stored, 0))
            return r->is_get_or_head ? EDGE_COND_NOT_MODIFIED : EDGE_COND_PRECONDITION_FAILED;
        return EDGE_COND_PASS;
    }

    /* step 4 (§13.1.3): If-Modified-Since, only without If-None-Match, only for GET/HEAD, invalid dates ignored.
     * RFC 9111 §4.3.2: a cache compares with Last-Modified, else Date, else the time it received the response. */
    if (r->is_get_or_head && r->if_modified_since.base != NULL && parse_date(r->if_modified_since, now, &t) == 0) {
        int64_t modified = s->has_last_modified ? s->last_modified : s->has_date ? s->date : s->response_time;
        if (modified <= t)
            return EDGE_COND_NOT_MODIFIED;
        return EDGE_COND_PASS;
    }
    return result;
}

int edge_header_in_304(const char *name, size_t len)
{
    /* RFC 9110 §15.4.5: "Content-Location, Date, ETag, and Vary; Cache-Control and Expires"; other representation
     * metadata SHOULD NOT be sent unless it guides cache updates, e.g. "Last-Modified might be useful if the
     * response does not have an ETag field". */
    static const char *const always[] = {"content-location", "date", "etag", "vary", "cache-control", "expires"};
    for (size_t i = 0; i != sizeof(always) / sizeof(always[0]); ++i)
        if (name_is(name, len, always[i]))
            return EDGE_304_ALWAYS;
    if (name_is(name, len, "last-modified"))
        return EDGE_304_WITHOUT_ETAG;
    return 0;
}

int edge_header_not_updated_by_304(const char *name, size_t len)
{
    /* RFC 9111 §3.2: never Content-Length; nor fields the stored response depends upon (this cache keeps the
     * body as received: its coding and range) or that the recipient processes and removes (Content-Range,
     * Transfer-Encoding); nor fields excepted from storage by §3.1 (hop-by-hop, RFC 9110 §7.6.1). */
    static const char *const kept[] = {"content-length", "content-encoding", "content-range",    "transfer-encoding",
                                       "connection",     "keep-alive",       "proxy-connection", "te",
                                       "upgrade",        "trailer"};
    for (size_t i = 0; i != sizeof(kept) / sizeof(kept[0]); ++i)
        if (name_is(name, len, kept[i]))
            return 1;
    return 0;
}

int edge_304_selects_stored(h2o_iovec_t stored_etag, int stored_has_lm, int64_t stored_lm, h2o_iovec_t new_etag, int new_has_lm,
                            int64_t new_lm)
{
    edge_etag_t st, nt;
    int stored_ok = stored_etag.base != NULL && edge_etag_parse(stored_etag.base, stored_etag.len, &st) == 0;

    /* RFC 9111 §4.3.4 */
    if (new_etag.base != NULL) {
        if (edge_etag_parse(new_etag.base, new_etag.len, &nt) != 0 || !stored_ok)
            return 0;
        return nt.weak ? edge_etag_weak_eq(&nt, &st) : edge_etag_strong_eq(&nt, &st);
    }
    if (new_has_lm)
        return stored_has_lm && stored_lm == new_lm;
    return 1; /* no validator in the 304: see the header for this deviation */
}

size_t edge_freshen_headers(h2o_mem_pool_t *pool, const h2o_header_t *stored, size_t num_stored, const h2o_header_t *resp304,
                            size_t num_304, h2o_header_t **out)
{
    h2o_header_t *dst = h2o_mem_alloc_pool(pool, sizeof(*dst) * (num_stored + num_304 + 1));
    size_t n = 0;

    /* which 304 fields update the stored response (RFC 9111 §3.2) */
    char *updates = h2o_mem_alloc_pool(pool, num_304 + 1);
    for (size_t i = 0; i != num_304; ++i) {
        const h2o_iovec_t *nm = resp304[i].name;
        updates[i] =
            !edge_header_not_updated_by_304(nm->base, nm->len) && !listed_in_connection(resp304, num_304, nm->base, nm->len);
    }

    for (size_t i = 0; i != num_stored; ++i) {
        int replaced = 0;
        for (size_t j = 0; j != num_304 && !replaced; ++j)
            replaced =
                updates[j] && edge_name_eq(stored[i].name->base, stored[i].name->len, resp304[j].name->base, resp304[j].name->len);
        if (!replaced)
            copy_header(pool, &dst[n++], &stored[i]);
    }
    for (size_t j = 0; j != num_304; ++j)
        if (updates[j])
            copy_header(pool, &dst[n++], &resp304[j]);
    *out = dst;
    return n;
}
