/*
 * Unit tests of edge/object.c: the stored response head. Round trips through edge_object_encode and
 * edge_object_decode (lower-cased names, original spellings kept only when they differ), records of earlier builds
 * (names as received) made by hand, malformed records, each ending right before a guard page, and
 * edge_object_decode_into (the same decoding into the caller's arrays).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "edge/object.h"

#define GUARD_SLOTS 2
#include "../guard_page.h"

/* The on-disk head (edge/object.c): 48 bytes, then swr/sie (16) and base_fill_id (8) from version 3 on. */
#define HEAD_LEN 72
#define FLAGS_OFFSET 44
#define LOWER_NAMES 0x80000000u /* the storage flag of edge/object.c */

static h2o_mem_pool_t pool;

static int setup(void **state)
{
    h2o_mem_init_pool(&pool);
    return setup_guard(state);
}

static int teardown(void **state)
{
    h2o_mem_clear_pool(&pool);
    return teardown_guard(state);
}

static h2o_header_t token_header(const h2o_token_t *token, const char *orig, const char *value)
{
    return (h2o_header_t){(h2o_iovec_t *)&token->buf, orig, h2o_iovec_init(value, strlen(value))};
}

static h2o_header_t str_header(const char *name, const char *orig, const char *value)
{
    h2o_iovec_t *n = h2o_mem_alloc_pool(&pool, sizeof(*n));
    *n = h2o_iovec_init(name, strlen(name));
    return (h2o_header_t){n, orig, h2o_iovec_init(value, strlen(value))};
}

/* Appends one header of the earlier per-header layout { u16 name_len, u32 value_len, name, value }. */
static size_t put_header(char *p, const char *name, const char *value)
{
    uint16_t nl = (uint16_t)strlen(name);
    uint32_t vl = (uint32_t)strlen(value);
    memcpy(p, &nl, 2);
    memcpy(p + 2, &vl, 4);
    memcpy(p + 6, name, nl);
    memcpy(p + 6 + nl, value, vl);
    return 6 + nl + vl;
}

/* Decodes a copy of the blob that ends right before a guard page. */
static int decode_guarded(const char *blob, size_t len, edge_object_t *out)
{
    return edge_object_decode(&pool, guarded(blob, len), len, out);
}

/* Names come back lower-cased (h2o tokens as the token), with the original spelling only where it differs; the
 * head's fields and the object flags survive; the storage flag never shows. */
static void test_round_trip(void **state)
{
    h2o_header_t hs[] = {
        token_header(H2O_TOKEN_CONTENT_TYPE, "Content-Type", "text/plain"), /* h1 origin spelling */
        token_header(H2O_TOKEN_ETAG, NULL, "\"abc\""),                      /* already lower case */
        str_header("x-custom", NULL, "1"),                                 /* not a token */
        str_header("X-Mixed", NULL, ""),                                   /* a name nobody lower-cased, empty value */
        str_header("x-spelled", "X-Spelled", "v"),
    };
    edge_object_t obj = {200, EDGE_OBJECT_COMPRESSIBLE | EDGE_OBJECT_HAS_SIE, 0, 40, 1000, 1001, 2, 300, hs, 5, 9}, out;
    h2o_iovec_t blob = edge_object_encode(&pool, &obj);
    /* a spelling costs its length once more, only for the three names whose spelling differs from lower case */
    size_t expect = HEAD_LEN;
    for (size_t i = 0; i != 5; ++i)
        expect += 6 + hs[i].name->len + hs[i].value.len;
    assert_int_equal(blob.len, expect + strlen("Content-Type") + strlen("X-Mixed") + strlen("X-Spelled"));

    assert_int_equal(decode_guarded(blob.base, blob.len, &out), 0);
    assert_int_equal(out.status, 200);
    assert_int_equal(out.flags, EDGE_OBJECT_COMPRESSIBLE | EDGE_OBJECT_HAS_SIE);
    assert_int_equal(out.sie, 40);
    assert_int_equal(out.lifetime, 300);
    assert_int_equal(out.base_fill_id, 9);
    assert_int_equal(out.num_headers, 5);
    static const struct {
        const char *name, *orig, *value;
        const h2o_token_t *token;
    } want[] = {
        {"content-type", "Content-Type", "text/plain", H2O_TOKEN_CONTENT_TYPE},
        {"etag", NULL, "\"abc\"", H2O_TOKEN_ETAG},
        {"x-custom", NULL, "1", NULL},
        {"x-mixed", "X-Mixed", "", NULL},
        {"x-spelled", "X-Spelled", "v", NULL},
    };
    for (size_t i = 0; i != 5; ++i) {
        const h2o_header_t *h = out.headers + i;
        if (want[i].token != NULL)
            assert_ptr_equal(h->name, &want[i].token->buf);
        else
            assert_false(h2o_iovec_is_token(h->name));
        assert_int_equal(h->name->len, strlen(want[i].name));
        assert_memory_equal(h->name->base, want[i].name, h->name->len);
        if (want[i].orig == NULL) {
            assert_null(h->orig_name);
        } else {
            assert_non_null(h->orig_name);
            assert_memory_equal(h->orig_name, want[i].orig, h->name->len);
        }
        assert_int_equal(h->value.len, strlen(want[i].value));
        assert_memory_equal(h->value.base, want[i].value, h->value.len);
    }

    /* encoding what was decoded gives the same bytes (the spellings survive a freshening) */
    h2o_iovec_t again = edge_object_encode(&pool, &out);
    assert_int_equal(again.len, blob.len);
    assert_memory_equal(again.base, blob.base, blob.len);
}

/* A record of an earlier build (version 3, names as received, no storage flag) decodes with lower-cased names and
 * the stored spelling as orig_name; so does a version 1 one. */
static void test_earlier_records(void **state)
{
    edge_object_t bare = {200, EDGE_OBJECT_HAS_SWR, 30, 0, 1000, 1001, 2, 300, NULL, 0, 0}, out;
    h2o_iovec_t head = edge_object_encode(&pool, &bare);
    assert_int_equal(head.len, HEAD_LEN);
    char blob[256];
    memcpy(blob, head.base, HEAD_LEN);
    uint32_t num = 2, flags = EDGE_OBJECT_HAS_SWR; /* no LOWER_NAMES */
    memcpy(blob + 40, &num, 4);
    memcpy(blob + FLAGS_OFFSET, &flags, 4);
    size_t len = HEAD_LEN;
    len += put_header(blob + len, "Cache-Control", "max-age=60");
    len += put_header(blob + len, "X-Thing", "y");

    assert_int_equal(decode_guarded(blob, len, &out), 0);
    assert_int_equal(out.flags, EDGE_OBJECT_HAS_SWR);
    assert_int_equal(out.num_headers, 2);
    assert_ptr_equal(out.headers[0].name, &H2O_TOKEN_CACHE_CONTROL->buf);
    assert_memory_equal(out.headers[0].orig_name, "Cache-Control", 13);
    assert_memory_equal(out.headers[0].value.base, "max-age=60", 10);
    assert_int_equal(out.headers[1].name->len, 7);
    assert_memory_equal(out.headers[1].name->base, "x-thing", 7);
    assert_memory_equal(out.headers[1].orig_name, "X-Thing", 7);

    /* version 1: flags are reserved (read as 0), headers right after the 48-byte head */
    char v1[256];
    uint16_t version = 1;
    memcpy(v1, blob, 48);
    memcpy(v1 + 4, &version, 2);
    flags = LOWER_NAMES; /* ignored by version 1 */
    memcpy(v1 + FLAGS_OFFSET, &flags, 4);
    memcpy(v1 + 48, blob + HEAD_LEN, len - HEAD_LEN);
    assert_int_equal(decode_guarded(v1, len - 24, &out), 0);
    assert_int_equal(out.flags, 0);
    assert_memory_equal(out.headers[1].name->base, "x-thing", 7);
    assert_memory_equal(out.headers[1].orig_name, "X-Thing", 7);
}

/* Malformed records are refused, never read past their end: each is cut or corrupted, then decoded from the guard
 * page's edge. */
static void test_malformed(void **state)
{
    h2o_header_t hs[] = {token_header(H2O_TOKEN_CONTENT_TYPE, "Content-Type", "text/plain"),
                         str_header("x-a", NULL, "b")};
    edge_object_t obj = {200, 0, 0, 0, 1, 1, 0, 60, hs, 2, 0}, out;
    h2o_iovec_t blob = edge_object_encode(&pool, &obj);
    char buf[256];
    assert_true(blob.len < sizeof(buf));

    /* every cut short of the whole record, and one byte too many */
    for (size_t cut = 0; cut != blob.len; ++cut)
        assert_int_equal(decode_guarded(blob.base, cut, &out), -1);
    memcpy(buf, blob.base, blob.len);
    buf[blob.len] = 'x';
    assert_int_equal(decode_guarded(buf, blob.len + 1, &out), -1);

    /* the spelling flag on a name whose spelling is missing: the value's bytes would be read as one */
    memcpy(buf, blob.base, blob.len);
    uint16_t nl;
    size_t second = HEAD_LEN + 6 + 12 * 2 + 10; /* content-type, its spelling, its value */
    memcpy(&nl, buf + second, 2);
    assert_int_equal(nl, 3);
    nl |= 0x8000;
    memcpy(buf + second, &nl, 2);
    assert_int_equal(decode_guarded(buf, blob.len, &out), -1);

    /* an empty name, and one longer than any allowed */
    static const uint16_t bad_lens[] = {0, 0x8000, 1025, 0x8000 | 1025};
    for (size_t i = 0; i != sizeof(bad_lens) / sizeof(bad_lens[0]); ++i) {
        memcpy(buf, blob.base, blob.len);
        memcpy(buf + second, &bad_lens[i], 2);
        assert_int_equal(decode_guarded(buf, blob.len, &out), -1);
    }
}

/* edge_object_decode_into fills the caller's arrays exactly as edge_object_decode fills the pool's (token names as
 * the token, other names in `names`, spellings and values in the blob); a record with more headers than the arrays
 * hold, or one of an earlier build (names to lower-case), gives 1; a malformed one -1, read no further than its end. */
static void test_decode_into(void **state)
{
    h2o_header_t hs[] = {token_header(H2O_TOKEN_CONTENT_TYPE, "Content-Type", "text/plain"), str_header("x-a", NULL, "b"),
                         str_header("x-spelled", "X-Spelled", "v")};
    edge_object_t obj = {200, EDGE_OBJECT_NO_CACHE, 0, 0, 1, 1, 0, 60, hs, 3, 4}, want, got;
    h2o_iovec_t blob = edge_object_encode(&pool, &obj);
    const char *stored = guarded(blob.base, blob.len);
    h2o_header_t headers[3];
    h2o_iovec_t names[3];

    assert_int_equal(edge_object_decode(&pool, stored, blob.len, &want), 0);
    assert_int_equal(edge_object_decode_into(stored, blob.len, &got, headers, names, 3), 0);
    assert_ptr_equal(got.headers, headers);
    assert_int_equal(got.num_headers, 3);
    assert_int_equal(got.status, want.status);
    assert_int_equal(got.flags, want.flags);
    assert_int_equal(got.lifetime, want.lifetime);
    assert_int_equal(got.base_fill_id, 4);
    assert_ptr_equal(headers[0].name, &H2O_TOKEN_CONTENT_TYPE->buf);
    for (size_t i = 0; i != 3; ++i) {
        if (i != 0)
            assert_ptr_equal(headers[i].name, names + i);
        assert_int_equal(headers[i].name->len, want.headers[i].name->len);
        assert_memory_equal(headers[i].name->base, want.headers[i].name->base, headers[i].name->len);
        assert_ptr_equal(headers[i].orig_name, want.headers[i].orig_name);
        assert_ptr_equal(headers[i].value.base, want.headers[i].value.base);
        assert_int_equal(headers[i].value.len, want.headers[i].value.len);
    }
    assert_int_equal(edge_object_decode_into(stored, blob.len, &got, headers, names, 2), 1);
    for (size_t cut = 0; cut != blob.len; ++cut)
        assert_int_equal(edge_object_decode_into(guarded(blob.base, cut), cut, &got, headers, names, 3), -1);

    /* an earlier build's record (the storage flag cleared: names as received) */
    char old[256];
    uint32_t flags = EDGE_OBJECT_NO_CACHE;
    assert_true(blob.len < sizeof(old));
    memcpy(old, blob.base, blob.len);
    memcpy(old + FLAGS_OFFSET, &flags, 4);
    assert_int_equal(edge_object_decode_into(guarded(old, blob.len), blob.len, &got, headers, names, 3), 1);
    /* no headers at all: nothing to lower-case, nothing to hold */
    edge_object_t bare = {204, 0, 0, 0, 1, 1, 0, 60, NULL, 0, 0};
    h2o_iovec_t head = edge_object_encode(&pool, &bare);
    assert_int_equal(edge_object_decode_into(guarded(head.base, head.len), head.len, &got, headers, names, 0), 0);
    assert_int_equal(got.num_headers, 0);
    assert_int_equal(got.status, 204);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_earlier_records),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_decode_into),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
