/*
 * edge/vary.c: secondary cache keys from Vary (RFC 9111 §4.1).
 *
 * Contract: pure functions; no clock, no globals; memory only from the pool given to edge_vary_key. Inputs need
 * not be NUL-terminated. The key format "name=LEN:VALUE;" is unambiguous because field names are tokens (no
 * '=', ':' or ';') and every value carries its length. Normalisation only merges values that mean the same thing
 * to an origin (whitespace around list commas, line folding of list fields, Accept-Encoding reduced to what this
 * edge can serve); anything else keeps requests apart, which costs a miss, never a wrong variant.
 */
#ifndef H2O_USE_LIBUV
#define H2O_USE_LIBUV 0
#endif
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include "h2o.h"
#include "edge/vary.h"
#include "edge/http_token.h"

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

/* case-insensitive ordering of two names */
static int name_cmp(h2o_iovec_t a, h2o_iovec_t b)
{
    size_t n = a.len < b.len ? a.len : b.len;
    for (size_t i = 0; i != n; ++i) {
        int x = h2o_tolower(a.base[i]), y = h2o_tolower(b.base[i]);
        if (x != y)
            return x - y;
    }
    return a.len == b.len ? 0 : a.len < b.len ? -1 : 1;
}

/* inserts name in sorted position unless present. @return 0, or EDGE_VARY_TOO_MANY */
static int add_field(edge_vary_t *vary, h2o_iovec_t name)
{
    size_t i = 0;
    while (i != vary->num_fields && name_cmp(vary->fields[i], name) < 0)
        ++i;
    if (i != vary->num_fields && name_cmp(vary->fields[i], name) == 0)
        return 0;
    if (vary->num_fields == EDGE_VARY_MAX_FIELDS)
        return EDGE_VARY_TOO_MANY;
    memmove(vary->fields + i + 1, vary->fields + i, (vary->num_fields - i) * sizeof(vary->fields[0]));
    vary->fields[i] = name;
    ++vary->num_fields;
    return 0;
}

/*
 * qvalue (RFC 9110 §12.4.2) in thousandths: ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ).
 * @return 0..1000, or -1 when malformed
 */
static int parse_qvalue(const char *s, size_t len)
{
    if (len == 0 || (s[0] != '0' && s[0] != '1'))
        return -1;
    int q = (s[0] - '0') * 1000, scale = 100;
    if (len == 1)
        return q;
    if (s[1] != '.' || len > 5)
        return -1;
    for (size_t i = 2; i != len; ++i) {
        if (!('0' <= s[i] && s[i] <= '9'))
            return -1;
        q += (s[i] - '0') * scale;
        scale /= 10;
    }
    return q > 1000 ? -1 : q;
}

/* weight of one Accept-Encoding member's parameters (after the coding): 1000 by default, -1 when malformed */
static int member_weight(const char *p, const char *end)
{
    int q = 1000;
    while (p < end) {
        while (p < end && edge_is_ows(*p))
            ++p;
        if (p == end)
            break;
        if (*p != ';')
            return -1;
        ++p;
        while (p < end && edge_is_ows(*p))
            ++p;
        const char *pname = p;
        while (p < end && edge_is_tchar(*p))
            ++p;
        size_t pname_len = p - pname;
        if (pname_len == 0 || p == end || *p != '=')
            return -1;
        const char *pval = ++p;
        while (p < end && edge_is_tchar(*p))
            ++p;
        if (h2o_lcstris(pname, pname_len, H2O_STRLIT("q")))
            q = parse_qvalue(pval, p - pval); /* other parameters are not defined for codings: ignored */
        if (q < 0)
            return -1;
    }
    return q;
}

int edge_vary_parse(edge_vary_t *vary, const char *value, size_t len)
{
    const char *p = value, *end = value + len;
    if (vary->err != 0)
        return vary->err;
    while (p < end) {
        const char *comma = memchr(p, ',', end - p), *e = comma != NULL ? comma : end;
        h2o_iovec_t el = trim_ows(p, e - p);
        p = comma != NULL ? comma + 1 : end;
        if (el.len == 0)
            continue; /* empty list members are ignored (RFC 9110 §5.6.1.2) */
        if (el.len == 1 && el.base[0] == '*')
            return vary->err = EDGE_VARY_STAR;
        for (size_t i = 0; i != el.len; ++i)
            if (!edge_is_tchar(el.base[i]))
                return vary->err = EDGE_VARY_MALFORMED;
        int ret = add_field(vary, el);
        if (ret != 0)
            return vary->err = ret;
    }
    return 0;
}

int edge_vary_from_headers(edge_vary_t *vary, const h2o_header_t *headers, size_t num_headers)
{
    memset(vary, 0, sizeof(*vary));
    for (size_t i = 0; i != num_headers; ++i)
        if (h2o_lcstris(headers[i].name->base, headers[i].name->len, H2O_STRLIT("vary")))
            edge_vary_parse(vary, headers[i].value.base, headers[i].value.len);
    return vary->err;
}

const char *edge_vary_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case EDGE_VARY_STAR:
        return "Vary: *";
    case EDGE_VARY_TOO_MANY:
        return "Vary names too many fields";
    case EDGE_VARY_MALFORMED:
        return "malformed Vary";
    }
    return "unknown Vary error";
}

size_t edge_vary_fold_accept_encoding(const char *value, size_t len, char buf[EDGE_VARY_AE_BUFSZ])
{
    /* weights in thousandths; -2 = not mentioned */
    int br = -2, gzip = -2, star = -2;
    const char *p = value, *end = value != NULL ? value + len : value;

    while (p < end) {
        const char *comma = memchr(p, ',', end - p), *e = comma != NULL ? comma : end;
        const char *c = p;
        p = comma != NULL ? comma + 1 : end;
        while (c < e && edge_is_ows(*c))
            ++c;
        const char *cname = c;
        while (c < e && edge_is_tchar(*c))
            ++c;
        size_t cname_len = c - cname;
        if (cname_len == 0)
            continue; /* empty or malformed member */
        int q = member_weight(c, e);
        if (q < 0)
            q = 0; /* a weight we cannot read: do not count on the coding */
        int *slot = NULL;
        if (h2o_lcstris(cname, cname_len, H2O_STRLIT("br")))
            slot = &br;
        else if (h2o_lcstris(cname, cname_len, H2O_STRLIT("gzip")) || h2o_lcstris(cname, cname_len, H2O_STRLIT("x-gzip")))
            slot = &gzip;
        else if (cname_len == 1 && cname[0] == '*')
            slot = &star;
        if (slot != NULL && *slot == -2)
            *slot = q;
    }
    /* RFC 9110 §12.5.3: "*" matches any coding not explicitly listed; q=0 means "not acceptable" */
    int want_br = br != -2 ? br > 0 : star > 0, want_gzip = gzip != -2 ? gzip > 0 : star > 0;
    size_t n = 0;
    if (want_br) {
        memcpy(buf + n, "br", 2);
        n += 2;
    }
    if (want_gzip) {
        if (n != 0)
            buf[n++] = ',';
        memcpy(buf + n, "gzip", 4);
        n += 4;
    }
    buf[n] = '\0';
    return n;
}

size_t edge_vary_normalize(const h2o_iovec_t *lines, size_t num_lines, char *dst)
{
    size_t n = 0;
    int in_quotes = 0;
    for (size_t l = 0; l != num_lines; ++l) {
        h2o_iovec_t v = trim_ows(lines[l].base, lines[l].len);
        if (v.len == 0)
            continue; /* an empty line adds no member to a list field */
        if (n != 0)
            dst[n++] = ',';
        for (size_t i = 0; i != v.len; ++i) {
            char c = v.base[i];
            if (in_quotes) {
                dst[n++] = c;
                if (c == '\\' && i + 1 != v.len)
                    dst[n++] = v.base[++i];
                else if (c == '"')
                    in_quotes = 0;
            } else if (edge_is_ows(c)) {
                size_t j = i;
                while (j != v.len && edge_is_ows(v.base[j]))
                    ++j;
                /* drop OWS after a comma or before one (line ends are already trimmed) */
                if (!(n != 0 && dst[n - 1] == ',') && !(j != v.len && v.base[j] == ',')) {
                    memcpy(dst + n, v.base + i, j - i);
                    n += j - i;
                }
                i = j - 1;
            } else {
                dst[n++] = c;
                if (c == '"')
                    in_quotes = 1;
            }
        }
    }
    return n;
}

int edge_vary_key(h2o_mem_pool_t *pool, const edge_vary_t *vary, const h2o_header_t *headers, size_t num_headers, h2o_iovec_t *key)
{
    if (vary->err != 0)
        return vary->err;

    /* upper bound: per field "name=" + 20 digits + ":" + value (+ commas) + ";" */
    size_t cap = 1, max_lines = 0;
    for (size_t f = 0; f != vary->num_fields; ++f) {
        size_t lines = 0;
        cap += vary->fields[f].len + 1 + 20 + 1 + 1 + EDGE_VARY_AE_BUFSZ;
        for (size_t i = 0; i != num_headers; ++i) {
            if (edge_name_eq(headers[i].name->base, headers[i].name->len, vary->fields[f].base, vary->fields[f].len)) {
                cap += headers[i].value.len + 1;
                ++lines;
            }
        }
        if (lines > max_lines)
            max_lines = lines;
    }
    char *buf = h2o_mem_alloc_pool(pool, cap), *val = NULL;
    h2o_iovec_t *lines = max_lines != 0 ? h2o_mem_alloc_pool(pool, sizeof(*lines) * max_lines) : NULL;
    size_t n = 0;

    for (size_t f = 0; f != vary->num_fields; ++f) {
        h2o_iovec_t name = vary->fields[f];
        size_t num_lines = 0, total = 0;
        for (size_t i = 0; i != num_headers; ++i) {
            if (edge_name_eq(headers[i].name->base, headers[i].name->len, name.base, name.len)) {
                lines[num_lines++] = headers[i].value;
                total += headers[i].value.len + 1;
            }
        }
        for (size_t i = 0; i != name.len; ++i)
            buf[n++] = h2o_tolower(name.base[i]);
        int is_ae = h2o_lcstris(name.base, name.len, H2O_STRLIT("accept-encoding"));
        if (num_lines == 0 && !is_ae) {
            buf[n++] = ';';
            continue;
        }
        char ae[EDGE_VARY_AE_BUFSZ];
        size_t vlen;
        if (is_ae) {
            /* several lines fold as one list (RFC 9110 §5.3) */
            if (num_lines > 1) {
                val = h2o_mem_alloc_pool(pool, total);
                vlen = edge_vary_normalize(lines, num_lines, val);
                vlen = edge_vary_fold_accept_encoding(val, vlen, ae);
            } else {
                vlen = num_lines == 1 ? edge_vary_fold_accept_encoding(lines[0].base, lines[0].len, ae)
                                      : edge_vary_fold_accept_encoding(NULL, 0, ae);
            }
            val = ae;
        } else {
            val = h2o_mem_alloc_pool(pool, total);
            vlen = edge_vary_normalize(lines, num_lines, val);
        }
        n += sprintf(buf + n, "=%zu:", vlen);
        memcpy(buf + n, val, vlen);
        n += vlen;
        buf[n++] = ';';
    }
    buf[n] = '\0';
    *key = h2o_iovec_init(buf, n);
    return 0;
}
