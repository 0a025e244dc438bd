/*
 * edge/object.c: encoding and validated decoding of the stored response head.
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

h2o_iovec_t edge_object_encode(h2o_mem_pool_t *pool, const edge_object_t *obj)
{
    size_t len = sizeof(edge_object_hdr_t) + sizeof(edge_object_ext_t) + sizeof(edge_object_ext3_t);
    for (size_t i = 0; i != obj->num_headers; ++i)
        len += 6 + obj->headers[i].name->len + obj->headers[i].value.len;
    char *buf = h2o_mem_alloc_pool(pool, len), *p = buf;

    edge_object_hdr_t hdr = {EDGE_OBJECT_MAGIC, EDGE_OBJECT_VERSION, (uint16_t)obj->status, obj->request_time,
                             obj->response_time, obj->initial_age, obj->lifetime, (uint32_t)obj->num_headers,
                             obj->flags};
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
        uint16_t nl = (uint16_t)h->name->len;
        uint32_t vl = (uint32_t)h->value.len;
        memcpy(p, &nl, 2);
        memcpy(p + 2, &vl, 4);
        p += 6;
        /* names are kept as received (h2o lower-cases tokens; orig_name keeps the case for h1) */
        memcpy(p, h->orig_name != NULL ? h->orig_name : h->name->base, nl);
        p += nl;
        memcpy(p, h->value.base, vl);
        p += vl;
    }
    return h2o_iovec_init(buf, len);
}

int edge_object_decode(h2o_mem_pool_t *pool, const void *blob, size_t len, edge_object_t *obj)
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
    obj->flags = hdr.flags;
    obj->swr = ext.swr;
    obj->sie = ext.sie;
    obj->status = hdr.status;
    obj->request_time = hdr.request_time;
    obj->response_time = hdr.response_time;
    obj->initial_age = hdr.initial_age;
    obj->lifetime = hdr.lifetime;
    obj->num_headers = hdr.num_headers;
    obj->headers = hdr.num_headers != 0 ? h2o_mem_alloc_pool(pool, sizeof(*obj->headers) * hdr.num_headers) : NULL;
    for (size_t i = 0; i != hdr.num_headers; ++i) {
        uint16_t nl;
        uint32_t vl;
        if ((size_t)(end - p) < 6)
            return -1;
        memcpy(&nl, p, 2);
        memcpy(&vl, p + 2, 4);
        p += 6;
        if (nl == 0 || nl > MAX_NAME_LEN || (size_t)(end - p) < (size_t)nl + vl)
            return -1;
        h2o_header_t *h = obj->headers + i;
        char *lower = h2o_mem_alloc_pool(pool, nl);
        for (size_t j = 0; j != nl; ++j)
            lower[j] = h2o_tolower(p[j]);
        const h2o_token_t *token = h2o_lookup_token(lower, nl);
        if (token != NULL) {
            h->name = (h2o_iovec_t *)&token->buf;
        } else {
            h->name = h2o_mem_alloc_pool(pool, sizeof(*h->name));
            *h->name = h2o_iovec_init(lower, nl);
        }
        h->orig_name = p;
        h->value = h2o_iovec_init(p + nl, vl);
        p += nl + vl;
    }
    if (p != end)
        return -1;
    return 0;
}
