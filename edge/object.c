/*
 * edge/object.c: encoding and validated decoding of the stored response head.
 *
 * Decoding runs on every hit, so it allocates once (the header array) and copies nothing: names and
 * values point into the blob. Records written with HDR_LOWER_NAMES (every record this file writes) keep
 * each name lower-cased, as h2o wants it, followed by its original spelling only when that differs
 * (HTTP/1.1 clients get the origin's spelling back); older records keep the original spelling alone
 * and are lower-cased into the pool when decoded.
 */
#define H2O_USE_LIBUV 0
#include <string.h>
#include "h2o.h"
#include "edge/object.h"

typedef struct st_edge_object_hdr_t {
    uint32_t magic;
    uint16_t version;
    uint16_t status;
    int64_t request_time;
    int64_t response_time;
    int64_t initial_age;
    int64_t lifetime;
    uint32_t num_headers;
    uint32_t flags; /* version 1: reserved (0) */
} edge_object_hdr_t;
_Static_assert(sizeof(edge_object_hdr_t) == 48, "on-disk layout of the object head");

/* version 2 appends this after the head */
typedef struct st_edge_object_ext_t {
    int64_t swr;
    int64_t sie;
} edge_object_ext_t;
_Static_assert(sizeof(edge_object_ext_t) == 16, "on-disk layout of the object head extension");

/* version 3 appends this after the version 2 extension */
typedef struct st_edge_object_ext3_t {
    uint64_t base_fill_id;
} edge_object_ext3_t;
_Static_assert(sizeof(edge_object_ext3_t) == 8, "on-disk layout of the object head extension of version 3");

#define MAX_HEADERS 1000
#define MAX_NAME_LEN 1024

/* In the head's flags (never in edge_object_t.flags): the header names are stored lower-cased; a name
 * length with NAME_HAS_ORIG set is followed by the name, then its original spelling (same length), then
 * the value. Without the flag (records of earlier builds), a name is stored as received. */
#define HDR_LOWER_NAMES 0x80000000u
#define NAME_HAS_ORIG 0x8000u
_Static_assert(MAX_NAME_LEN < NAME_HAS_ORIG, "the name length leaves its top bit to NAME_HAS_ORIG");
_Static_assert((HDR_LOWER_NAMES & (EDGE_OBJECT_NO_CACHE | EDGE_OBJECT_MUST_REVALIDATE | EDGE_OBJECT_PROXY_REVALIDATE |
                                   EDGE_OBJECT_HAS_SWR | EDGE_OBJECT_HAS_SIE | EDGE_OBJECT_HAS_SMAXAGE |
                                   EDGE_OBJECT_COMPRESSIBLE | EDGE_OBJECT_VARY_MARKER)) == 0,
               "the storage flag is apart from the object flags");

/* @return 1 when the n bytes at p hold no upper-case ASCII letter */
static int is_lower(const char *p, size_t n)
{
    for (size_t i = 0; i != n; ++i)
        if ((unsigned char)(p[i] - 'A') <= 'Z' - 'A')
            return 0;
    return 1;
}

/* The spelling of h's name to keep next to its lower-cased form, or NULL when that form is it. */
static const char *orig_spelling(const h2o_header_t *h)
{
    const char *orig = h->orig_name != NULL ? h->orig_name : h->name->base;
    return is_lower(orig, h->name->len) ? NULL : orig;
}

h2o_iovec_t edge_object_encode(h2o_mem_pool_t *pool, const edge_object_t *obj)
{
    size_t len = sizeof(edge_object_hdr_t) + sizeof(edge_object_ext_t) + sizeof(edge_object_ext3_t);
    for (size_t i = 0; i != obj->num_headers; ++i) {
        const h2o_header_t *h = obj->headers + i;
        len += 6 + h->name->len * (orig_spelling(h) != NULL ? 2 : 1) + h->value.len;
    }
    char *buf = h2o_mem_alloc_pool(pool, len), *p = buf;

    edge_object_hdr_t hdr = {EDGE_OBJECT_MAGIC, EDGE_OBJECT_VERSION, (uint16_t)obj->status, obj->request_time,
                             obj->response_time, obj->initial_age, obj->lifetime, (uint32_t)obj->num_headers,
                             obj->flags | HDR_LOWER_NAMES};
    edge_object_ext_t ext = {obj->swr, obj->sie};
    edge_object_ext3_t ext3 = {obj->base_fill_id};
    memcpy(p, &hdr, sizeof(hdr));
    p += sizeof(hdr);
    memcpy(p, &ext, sizeof(ext));
    p += sizeof(ext);
    memcpy(p, &ext3, sizeof(ext3));
    p += sizeof(ext3);
    for (size_t i = 0; i != obj->num_headers; ++i) {
        const h2o_header_t *h = obj->headers + i;
        const char *orig = orig_spelling(h);
        uint16_t nl = (uint16_t)h->name->len, tagged = nl | (orig != NULL ? NAME_HAS_ORIG : 0);
        uint32_t vl = (uint32_t)h->value.len;
        memcpy(p, &tagged, 2);
        memcpy(p + 2, &vl, 4);
        p += 6;
        /* the name as h2o wants it (lower case), then the spelling HTTP/1.1 clients get, when it differs */
        for (size_t j = 0; j != nl; ++j)
            p[j] = h2o_tolower(h->name->base[j]);
        p += nl;
        if (orig != NULL) {
            memcpy(p, orig, nl);
            p += nl;
        }
        memcpy(p, h->value.base, vl);
        p += vl;
    }
    return h2o_iovec_init(buf, len);
}

/* edge_object_decode, into the pool (pool != NULL) or into the caller's arrays of `capacity` entries (pool NULL: then
 * 1 for a record that does not fit or needs its names lower-cased) */
static int decode(h2o_mem_pool_t *pool, const void *blob, size_t len, edge_object_t *obj, h2o_header_t *headers,
                  h2o_iovec_t *names, size_t capacity)
{
    edge_object_hdr_t hdr;
    const char *p = blob, *end = p + len;

    if (len < sizeof(hdr))
        return -1;
    memcpy(&hdr, p, sizeof(hdr));
    p += sizeof(hdr);
    if (hdr.magic != EDGE_OBJECT_MAGIC || hdr.version < 1 || hdr.version > EDGE_OBJECT_VERSION ||
        (hdr.status < 100 && !(hdr.flags & EDGE_OBJECT_VARY_MARKER)) || hdr.status > 999 || hdr.num_headers > MAX_HEADERS ||
        hdr.lifetime < 0 || hdr.initial_age < 0)
        return -1;
    edge_object_ext_t ext = {0, 0};
    if (hdr.version >= 2) {
        if ((size_t)(end - p) < sizeof(ext))
            return -1;
        memcpy(&ext, p, sizeof(ext));
        p += sizeof(ext);
    } else {
        hdr.flags = 0;
    }
    edge_object_ext3_t ext3 = {0};
    if (hdr.version >= 3) {
        if ((size_t)(end - p) < sizeof(ext3))
            return -1;
        memcpy(&ext3, p, sizeof(ext3));
        p += sizeof(ext3);
    }
    obj->base_fill_id = ext3.base_fill_id;
    obj->flags = hdr.flags & ~HDR_LOWER_NAMES;
    obj->swr = ext.swr;
    obj->sie = ext.sie;
    obj->status = hdr.status;
    obj->request_time = hdr.request_time;
    obj->response_time = hdr.response_time;
    obj->initial_age = hdr.initial_age;
    obj->lifetime = hdr.lifetime;
    obj->num_headers = hdr.num_headers;
    obj->headers = NULL;
    if (hdr.num_headers == 0)
        goto End;
    int lower_names = hdr.version >= 2 && (hdr.flags & HDR_LOWER_NAMES) != 0;
    if (pool != NULL) {
        /* one allocation: the headers, then the names that are no h2o token */
        obj->headers = h2o_mem_alloc_pool(pool, (sizeof(h2o_header_t) + sizeof(h2o_iovec_t)) * hdr.num_headers);
        names = (h2o_iovec_t *)(obj->headers + hdr.num_headers);
    } else if (hdr.num_headers > capacity || !lower_names) {
        return 1;
    } else {
        obj->headers = headers;
    }
    for (size_t i = 0; i != hdr.num_headers; ++i) {
        uint16_t nl;
        uint32_t vl;
        if ((size_t)(end - p) < 6)
            return -1;
        memcpy(&nl, p, 2);
        memcpy(&vl, p + 2, 4);
        p += 6;
        const char *name, *orig = NULL;
        if (lower_names) {
            int has_orig = (nl & NAME_HAS_ORIG) != 0;
            nl &= ~NAME_HAS_ORIG;
            if (nl == 0 || nl > MAX_NAME_LEN || (size_t)(end - p) < (size_t)nl * (has_orig ? 2 : 1) + vl)
                return -1;
            name = p;
            p += nl;
            if (has_orig) {
                orig = p;
                p += nl;
            }
        } else {
            /* an earlier build's record: the name as received */
            if (nl == 0 || nl > MAX_NAME_LEN || (size_t)(end - p) < (size_t)nl + vl)
                return -1;
            char *lower = h2o_mem_alloc_pool(pool, nl);
            for (size_t j = 0; j != nl; ++j)
                lower[j] = h2o_tolower(p[j]);
            name = lower;
            orig = p;
            p += nl;
        }
        h2o_header_t *h = obj->headers + i;
        const h2o_token_t *token = h2o_lookup_token(name, nl);
        if (token != NULL) {
            h->name = (h2o_iovec_t *)&token->buf;
        } else {
            names[i] = h2o_iovec_init(name, nl);
            h->name = names + i;
        }
        h->orig_name = orig;
        h->value = h2o_iovec_init(p, vl);
        p += vl;
    }
End:
    if (p != end)
        return -1;
    return 0;
}

int edge_object_decode(h2o_mem_pool_t *pool, const void *blob, size_t len, edge_object_t *obj)
{
    return decode(pool, blob, len, obj, NULL, NULL, 0);
}

int edge_object_decode_into(const void *blob, size_t len, edge_object_t *obj, h2o_header_t *headers, h2o_iovec_t *names,
                            size_t capacity)
{
    return decode(NULL, blob, len, obj, headers, names, capacity);
}
