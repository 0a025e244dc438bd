/*
 * Unit tests of edge/compress_job.c (and the version 3 head of edge/object.c): a real store in a mkdtemp directory,
 * the real encoders, and the variants read back and decoded with zlib and brotli.
 *
 * Waiting: a job's counters move only after every store op it submitted has been applied, so tests poll the counters
 * (bounded by a deadline, no sleeping). Tests that need a worker parked at a known point park the store's writer
 * instead: an op whose on_done blocks on a gate holds every later op's on_done, so a job that submitted chunk ops waits.
 * Leaked fill ids are detected through bans: a ban retires only once no fill below its watermark is live.
 */
#define _GNU_SOURCE /* memmem */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>
#include <brotli/decode.h>
#include "edge/compress_job.h"
#include "edge/metrics.h"
#include "edge/object.h"
#include "store_env.h"

#define MiB (1024 * 1024)
#define KEY "http://a.test/app.js"

struct fixture {
    char dir[256];
    char path[300];
    edge_store_t *store;
    h2o_mem_pool_t pool;
};

/* The writer-thread gate: an op whose on_done blocks until the test opens the gate. */
static struct {
    pthread_mutex_t m;
    pthread_cond_t c;
    int open;
    edge_store_op_t op;
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER};

static void on_gate(edge_store_op_t *op, int result)
{
    pthread_mutex_lock(&gate.m);
    while (!gate.open)
        pthread_cond_wait(&gate.c, &gate.m);
    pthread_mutex_unlock(&gate.m);
}

static void gate_close(edge_store_t *store)
{
    gate.open = 0;
    memset(&gate.op, 0, sizeof(gate.op));
    gate.op.kind = EDGE_STORE_OP_DELETE; /* of nothing */
    memset(gate.op.hash, 0xee, sizeof(gate.op.hash));
    gate.op.on_done = on_gate;
    edge_store_submit(store, &gate.op);
}

static void gate_open(void)
{
    pthread_mutex_lock(&gate.m);
    gate.open = 1;
    pthread_cond_broadcast(&gate.c);
    pthread_mutex_unlock(&gate.m);
}

static uint32_t setup_hot_hits = EDGE_DEFAULT_COMPRESS_HOT_HITS;

static int setup_with(void **state, unsigned threads, size_t queue)
{
    struct fixture *f = calloc(1, sizeof(*f));
    if (store_env_make(f->dir, sizeof(f->dir), f->path, sizeof(f->path), "test_compress_job") != 0)
        return -1;
    f->store = store_env_open(f->path, 64 * MiB, 0);
    edge_compress_settings_t cs;
    edge_compress_settings_init(&cs);
    cs.hot_hits = setup_hot_hits;
    if (edge_compress_jobs_start(f->store, &cs, threads, queue) != 0)
        return -1;
    h2o_mem_init_pool(&f->pool);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return setup_with(state, 1, 16);
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    edge_compress_jobs_stop();
    edge_store_close(f->store);
    store_env_remove(f->path);
    rmdir(f->dir);
    h2o_mem_clear_pool(&f->pool);
    free(f);
    return 0;
}

/* --- helpers --- */

static edge_compress_stats_t cstats(void)
{
    edge_compress_stats_t s;
    edge_compress_get_stats(&s);
    return s;
}

static uint64_t jobs_ended(void)
{
    edge_compress_stats_t s = cstats();
    return s.jobs_done + s.jobs_dropped + s.jobs_failed;
}

static double now_sec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Polls until `target` jobs have ended (a deadline turns a hang into a failure). */
static void wait_jobs(struct fixture *f, uint64_t target)
{
    double deadline = now_sec() + 60;
    while (jobs_ended() < target) {
        assert_true(now_sec() < deadline);
        sched_yield();
    }
    edge_store_flush(f->store);
}

static h2o_header_t header(const h2o_token_t *token, const char *value)
{
    h2o_header_t h = {(h2o_iovec_t *)&token->buf, NULL, h2o_iovec_init(value, strlen(value))};
    return h;
}

/* Text that compresses like real text: words picked by a fixed LCG. */
static char *make_text(size_t len)
{
    static const char *words[] = {"function", " ", "return",    "var",      "const",  "(", ")", "{",    "}",   ";\n", "this", ".",
                                  "length",   "=", "prototype", "document", "window", "0", "1", "null", "true"};
    char *p = malloc(len);
    uint32_t x = 12345;
    size_t i = 0;
    while (i < len) {
        x = x * 1103515245 + 12345;
        const char *w = words[(x >> 16) % (sizeof(words) / sizeof(words[0]))];
        for (size_t j = 0; w[j] != '\0' && i < len; ++j)
            p[i++] = w[j];
    }
    return p;
}

/* Bytes no coding shrinks: xorshift. */
static char *make_random(size_t len)
{
    char *p = malloc(len);
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i != len; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (char)(x >> 32);
    }
    return p;
}

/* Writes bytes as the chunks of a new fill id, without a COMMIT (a base's body, or the origin's gzip as the fill
 * writes it). */
static uint64_t put_chunks(struct fixture *f, const char *bytes, size_t len, uint32_t *num_chunks)
{
    uint64_t fill_id = edge_store_new_fill_id(f->store);
    *num_chunks = (uint32_t)((len + EDGE_STORE_CHUNK_SIZE - 1) / EDGE_STORE_CHUNK_SIZE);
    struct done_op *ops = calloc(*num_chunks, sizeof(*ops));
    for (uint32_t n = 0; n != *num_chunks; ++n) {
        size_t off = (size_t)n * EDGE_STORE_CHUNK_SIZE;
        ops[n].op = (edge_store_op_t){.kind = EDGE_STORE_OP_CHUNK,
                                      .fill_id = fill_id,
                                      .chunk_index = n,
                                      .data = bytes + off,
                                      .len = len - off < EDGE_STORE_CHUNK_SIZE ? len - off : EDGE_STORE_CHUNK_SIZE,
                                      .on_done = on_done};
        edge_store_submit(f->store, &ops[n].op);
    }
    edge_store_flush(f->store);
    for (uint32_t n = 0; n != *num_chunks; ++n) {
        assert_int_equal(ops[n].called, 1);
        assert_int_equal(ops[n].result, 0);
    }
    free(ops);
    return fill_id;
}

struct base {
    uint8_t hash[EDGE_STORE_HASH_LEN];
    uint8_t url_hash[EDGE_STORE_HASH_LEN];
    uint64_t fill_id;
    uint32_t num_chunks;
    h2o_iovec_t meta;
};

/* Stores an identity object (chunks + COMMIT, group = the URL's hash) and returns where it is. */
static struct base put_base(struct fixture *f, const char *key, const char *variant, const char *body, size_t len,
                            const h2o_header_t *headers, size_t num_headers, const char *const *tags, size_t num_tags)
{
    struct base b;
    edge_object_t obj = {200, 0, 0, 0, 1000, 1001, 0, 300, (h2o_header_t *)headers, num_headers};
    b.meta = edge_object_encode(&f->pool, &obj);
    edge_store_hash(key, strlen(key), b.url_hash);
    if (variant != NULL)
        edge_store_variant_hash(key, strlen(key), variant, strlen(variant), b.hash);
    else
        memcpy(b.hash, b.url_hash, sizeof(b.hash));
    b.fill_id = put_chunks(f, body, len, &b.num_chunks);
    struct done_op d = {0};
    size_t tag_lens[8];
    for (size_t i = 0; i != num_tags; ++i)
        tag_lens[i] = strlen(tags[i]);
    edge_store_op_t *c = &d.op;
    *c = (edge_store_op_t){.kind = EDGE_STORE_OP_COMMIT,
                           .fill_id = b.fill_id,
                           .data = b.meta.base,
                           .len = b.meta.len,
                           .key = key,
                           .key_len = strlen(key),
                           .body_size = len,
                           .num_chunks = b.num_chunks,
                           .variant = variant,
                           .variant_len = variant != NULL ? strlen(variant) : 0,
                           .tags = tags,
                           .tag_lens = tag_lens,
                           .num_tags = num_tags,
                           .on_done = on_done};
    memcpy(c->hash, b.hash, sizeof(b.hash));
    memcpy(c->group, b.url_hash, sizeof(b.url_hash));
    edge_store_submit(f->store, c);
    edge_store_flush(f->store);
    assert_int_equal(d.called, 1);
    assert_int_equal(d.result, 0);
    return b;
}

static edge_compress_job_t job_for(const char *key, const char *variant, const struct base *b, size_t len)
{
    edge_compress_job_t job = {.key = key,
                               .key_len = strlen(key),
                               .variant = variant != NULL ? variant : "",
                               .variant_len = variant != NULL ? strlen(variant) : 0,
                               .base_fill_id = b->fill_id,
                               .body_size = len,
                               .num_chunks = b->num_chunks,
                               .meta = b->meta.base,
                               .meta_len = b->meta.len};
    memcpy(job.url_hash, b->url_hash, sizeof(job.url_hash));
    memcpy(job.base_hash, b->hash, sizeof(job.base_hash));
    return job;
}

static int lookup(struct fixture *f, const char *key, const char *variant, edge_encoding_t enc)
{
    h2o_iovec_t v =
        edge_compress_variant_string(&f->pool, variant != NULL ? variant : "", variant != NULL ? strlen(variant) : 0, enc);
    uint8_t hash[EDGE_STORE_HASH_LEN];
    edge_store_txn_t *txn;
    edge_store_object_t obj;
    edge_store_variant_hash(key, strlen(key), v.base, v.len, hash);
    assert_int_equal(edge_store_read_begin(f->store, &txn), 0);
    int rc = edge_store_get(txn, hash, &obj);
    edge_store_read_end(txn);
    return rc;
}

static const h2o_header_t *find(const edge_object_t *obj, const h2o_token_t *token, size_t *count)
{
    const h2o_header_t *found = NULL;
    *count = 0;
    for (size_t i = 0; i != obj->num_headers; ++i) {
        if (h2o_memis(obj->headers[i].name->base, obj->headers[i].name->len, token->buf.base, token->buf.len)) {
            if (found == NULL)
                found = obj->headers + i;
            ++*count;
        }
    }
    return found;
}

static void assert_header(const edge_object_t *obj, const h2o_token_t *token, const char *expected)
{
    size_t count;
    const h2o_header_t *h = find(obj, token, &count);
    if (expected == NULL) {
        assert_int_equal(count, 0);
        return;
    }
    assert_int_equal(count, 1);
    assert_int_equal(h->value.len, strlen(expected));
    assert_memory_equal(h->value.base, expected, h->value.len);
}

struct expect {
    const char *etag; /* NULL: none */
    const char *vary;
    const char *const *tags;
    size_t num_tags;
};

/* Reads the `enc` variant back, decodes it and checks it against the identity body and the expected head. */
static void check_variant(struct fixture *f, const char *key, const char *variant, edge_encoding_t enc, const char *body,
                          size_t len, const struct base *b, const struct expect *ex)
{
    h2o_iovec_t v =
        edge_compress_variant_string(&f->pool, variant != NULL ? variant : "", variant != NULL ? strlen(variant) : 0, enc);
    uint8_t hash[EDGE_STORE_HASH_LEN];
    edge_store_txn_t *txn;
    edge_store_object_t obj;
    edge_store_variant_hash(key, strlen(key), v.base, v.len, hash);
    assert_int_equal(edge_store_read_begin(f->store, &txn), 0);
    assert_int_equal(edge_store_get(txn, hash, &obj), 0);
    assert_int_equal(obj.key_len, strlen(key));
    assert_memory_equal(obj.key, key, obj.key_len);
    assert_int_equal(obj.variant_len, v.len);
    assert_memory_equal(obj.variant, v.base, v.len);
    assert_memory_equal(obj.group, b->url_hash, EDGE_STORE_HASH_LEN);
    assert_true(obj.fill_id > b->fill_id);
    assert_true(obj.body_size < len);

    /* the body, through the real decoder */
    char *enc_body = malloc(obj.body_size + 1), *dec = malloc(len + 1);
    size_t off = 0;
    for (uint32_t n = 0; n != obj.num_chunks; ++n) {
        const void *data;
        size_t clen;
        assert_int_equal(edge_store_get_chunk(txn, obj.fill_id, n, &data, &clen), 0);
        assert_true(off + clen <= obj.body_size);
        memcpy(enc_body + off, data, clen);
        off += clen;
    }
    assert_int_equal(off, obj.body_size);
    if (enc == EDGE_ENC_GZIP) {
        z_stream zs = {0};
        assert_int_equal(inflateInit2(&zs, 16 + MAX_WBITS), Z_OK);
        zs.next_in = (Bytef *)enc_body;
        zs.avail_in = (uInt)obj.body_size;
        zs.next_out = (Bytef *)dec;
        zs.avail_out = (uInt)(len + 1);
        assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
        assert_int_equal(zs.total_out, len);
        assert_int_equal(zs.avail_in, 0);
        inflateEnd(&zs);
    } else {
        size_t dlen = len + 1;
        assert_int_equal(BrotliDecoderDecompress(obj.body_size, (const uint8_t *)enc_body, &dlen, (uint8_t *)dec),
                         BROTLI_DECODER_RESULT_SUCCESS);
        assert_int_equal(dlen, len);
    }
    assert_memory_equal(dec, body, len);
    free(enc_body);
    free(dec);

    /* the head */
    edge_object_t head;
    assert_int_equal(edge_object_decode(&f->pool, obj.meta, obj.meta_len, &head), 0);
    assert_int_equal(head.status, 200);
    assert_int_equal(head.request_time, 1000);
    assert_int_equal(head.response_time, 1001);
    assert_int_equal(head.lifetime, 300);
    assert_int_equal(head.base_fill_id, b->fill_id);
    assert_header(&head, H2O_TOKEN_CONTENT_ENCODING, edge_encoding_name(enc));
    assert_header(&head, H2O_TOKEN_CONTENT_LENGTH, NULL);
    assert_header(&head, H2O_TOKEN_CONTENT_TYPE, "application/javascript");
    assert_header(&head, H2O_TOKEN_VARY, ex->vary);
    if (ex->etag != NULL) {
        char expected[64];
        /* "v1" -> "v1-gzip": the closing quote moves after the suffix */
        size_t l = strlen(ex->etag);
        snprintf(expected, sizeof(expected), "%.*s-%s\"", (int)(l - 1), ex->etag, edge_encoding_name(enc));
        assert_header(&head, H2O_TOKEN_ETAG, expected);
    } else {
        assert_header(&head, H2O_TOKEN_ETAG, NULL);
    }

    /* the tags */
    size_t cursor = 0, tlen, n = 0;
    const char *tag;
    while (edge_store_object_next_tag(&obj, &cursor, &tag, &tlen) == 0) {
        assert_true(n < ex->num_tags);
        assert_int_equal(tlen, strlen(ex->tags[n]));
        assert_memory_equal(tag, ex->tags[n], tlen);
        ++n;
    }
    assert_int_equal(n, ex->num_tags);
    edge_store_read_end(txn);
}

/* A ban on everything retires only when no fill id below its watermark is live: none of the jobs leaked one. */
static void assert_no_live_fill(struct fixture *f)
{
    struct done_op d = {.op = {.kind = EDGE_STORE_OP_BAN, .ban_kind = EDGE_STORE_BAN_ALL, .on_done = on_done}};
    edge_store_submit(f->store, &d.op);
    edge_store_flush(f->store);
    assert_int_equal(d.result, 0);
    edge_store_wait_idle(f->store);
    edge_store_stats_t st;
    edge_store_get_stats(f->store, &st);
    assert_int_equal(st.bans_live, 0);
}

/* --- tests --- */

static void test_variant_string(void **state)
{
    struct fixture *f = *state;
    h2o_iovec_t v = edge_compress_variant_string(&f->pool, "", 0, EDGE_ENC_GZIP);
    assert_int_equal(v.len, 9);
    assert_memory_equal(v.base,
                        "\x01"
                        "enc=gzip",
                        9);
    v = edge_compress_variant_string(&f->pool, "lang=en", 7, EDGE_ENC_BR);
    assert_int_equal(v.len, 14);
    assert_memory_equal(v.base,
                        "lang=en\x01"
                        "enc=br",
                        14);
}

/* Version 1 and 2 heads (written before base_fill_id existed) decode with base_fill_id 0; version 3 round-trips. */
static void test_object_versions(void **state)
{
    struct fixture *f = *state;
    h2o_header_t hs[] = {header(H2O_TOKEN_CONTENT_TYPE, "text/plain")};
    edge_object_t obj = {200, EDGE_OBJECT_HAS_SWR, 30, 0, 1000, 1001, 2, 300, hs, 1, 77}, out;
    h2o_iovec_t v3 = edge_object_encode(&f->pool, &obj);
    assert_int_equal(edge_object_decode(&f->pool, v3.base, v3.len, &out), 0);
    assert_int_equal(out.base_fill_id, 77);
    assert_int_equal(out.swr, 30);
    assert_int_equal(out.flags, EDGE_OBJECT_HAS_SWR);
    assert_int_equal(out.num_headers, 1);
    assert_int_equal(out.lifetime, 300);

    /* layout: a 48-byte head (version at offset 4), 16 bytes of swr/sie, 8 bytes of base_fill_id, the headers */
    uint16_t version;
    char *v2 = malloc(v3.len - 8), *v1 = malloc(v3.len - 24);
    memcpy(v2, v3.base, 64);
    memcpy(v2 + 64, v3.base + 72, v3.len - 72);
    version = 2;
    memcpy(v2 + 4, &version, 2);
    assert_int_equal(edge_object_decode(&f->pool, v2, v3.len - 8, &out), 0);
    assert_int_equal(out.base_fill_id, 0);
    assert_int_equal(out.swr, 30);
    assert_int_equal(out.num_headers, 1);
    assert_memory_equal(out.headers[0].value.base, "text/plain", 10);

    memcpy(v1, v3.base, 48);
    memcpy(v1 + 48, v3.base + 72, v3.len - 72);
    version = 1;
    memcpy(v1 + 4, &version, 2);
    out.base_fill_id = 99;
    assert_int_equal(edge_object_decode(&f->pool, v1, v3.len - 24, &out), 0);
    assert_int_equal(out.base_fill_id, 0);
    assert_int_equal(out.flags, 0);
    assert_int_equal(out.num_headers, 1);

    /* version 3 cut inside its extension; a version from the future */
    edge_object_t bare = {200, 0, 0, 0, 0, 0, 0, 0, NULL, 0, 5};
    h2o_iovec_t b3 = edge_object_encode(&f->pool, &bare);
    assert_int_equal(b3.len, 72);
    for (size_t cut = 65; cut < 72; ++cut)
        assert_int_equal(edge_object_decode(&f->pool, b3.base, cut, &out), -1);
    version = 4;
    memcpy(b3.base + 4, &version, 2);
    assert_int_equal(edge_object_decode(&f->pool, b3.base, b3.len, &out), -1);
    free(v1);
    free(v2);
}

/* The main path: a 300 KiB text object in several chunks gets a gzip and a brotli variant. */
static void test_variants_stored(void **state)
{
    struct fixture *f = *state;
    const size_t len = 300 * 1024;
    char *body = make_text(len);
    static const char *const tags[] = {"product-42", "js"};
    h2o_header_t hs[] = {header(H2O_TOKEN_CONTENT_TYPE, "application/javascript"), header(H2O_TOKEN_ETAG, "\"v1\""),
                         header(H2O_TOKEN_CONTENT_LENGTH, "307200"), header(H2O_TOKEN_VARY, "Origin"),
                         header(H2O_TOKEN_CACHE_CONTROL, "public, max-age=300")};
    edge_compress_stats_t before = cstats();
    struct base b = put_base(f, KEY, NULL, body, len, hs, 5, tags, 2);
    assert_true(b.num_chunks > 1); /* the chunk loop really ran */

    edge_compress_job_t job = job_for(KEY, NULL, &b, len);
    assert_int_equal(edge_compress_job_submit(&job), 0);
    wait_jobs(f, before.jobs_done + before.jobs_dropped + before.jobs_failed + 1);

    edge_compress_stats_t after = cstats();
    assert_int_equal(after.jobs_done - before.jobs_done, 1);
    assert_int_equal(after.jobs_failed - before.jobs_failed, 0);
    assert_int_equal(after.bytes_in - before.bytes_in, len);
    struct expect ex = {"\"v1\"", "Origin, Accept-Encoding", tags, 2};
    check_variant(f, KEY, NULL, EDGE_ENC_GZIP, body, len, &b, &ex);
    check_variant(f, KEY, NULL, EDGE_ENC_BR, body, len, &b, &ex);

    /* bytes_out is what was stored; the group holds the base and both variants */
    edge_store_txn_t *txn;
    size_t count;
    assert_int_equal(edge_store_read_begin(f->store, &txn), 0);
    assert_int_equal(edge_store_group_count(txn, b.url_hash, &count), 0);
    assert_int_equal(count, 3);
    uint64_t stored = 0;
    for (int e = EDGE_ENC_GZIP; e <= EDGE_ENC_BR; ++e) {
        h2o_iovec_t v = edge_compress_variant_string(&f->pool, "", 0, e);
        uint8_t hash[EDGE_STORE_HASH_LEN];
        edge_store_object_t obj;
        edge_store_variant_hash(KEY, strlen(KEY), v.base, v.len, hash);
        assert_int_equal(edge_store_get(txn, hash, &obj), 0);
        stored += obj.body_size;
    }
    edge_store_read_end(txn);
    assert_int_equal(after.bytes_out - before.bytes_out, stored);
    assert_no_live_fill(f);
    free(body);
}

/* How the head changes, one row per behaviour: Vary extended or added or kept, ETag per encoding or dropped. */
static void test_variant_heads(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *base_variant; /* the base object's own Vary variant, NULL: none */
        const char *vary_in;      /* NULL: no Vary */
        const char *etag_in;      /* NULL: no ETag */
        const char *vary_out;
        const char *etag_out; /* the base tag the suffix goes into; NULL: no ETag on the variant */
    } rows[] = {
        {NULL, NULL, "\"abc\"", "Accept-Encoding", "\"abc\""},
        {NULL, "Origin", "W/\"w1\"", "Origin, Accept-Encoding", "W/\"w1\""},
        {"lang=en", "accept-language", NULL, "accept-language, Accept-Encoding", NULL},
        {NULL, "Origin, accept-encoding", "not-a-tag", "Origin, accept-encoding", NULL},
        {NULL, "*", "\"x\"", "*", "\"x\""},
    };
    const size_t len = 8192;
    char *body = make_text(len);
    for (size_t r = 0; r != sizeof(rows) / sizeof(rows[0]); ++r) {
        char key[64];
        snprintf(key, sizeof(key), "http://a.test/row%zu.js", r);
        h2o_header_t hs[3];
        size_t n = 0;
        hs[n++] = header(H2O_TOKEN_CONTENT_TYPE, "application/javascript");
        if (rows[r].vary_in != NULL)
            hs[n++] = header(H2O_TOKEN_VARY, rows[r].vary_in);
        if (rows[r].etag_in != NULL)
            hs[n++] = header(H2O_TOKEN_ETAG, rows[r].etag_in);
        uint64_t ended = jobs_ended();
        struct base b = put_base(f, key, rows[r].base_variant, body, len, hs, n, NULL, 0);
        edge_compress_job_t job = job_for(key, rows[r].base_variant, &b, len);
        assert_int_equal(edge_compress_job_submit(&job), 0);
        wait_jobs(f, ended + 1);
        struct expect ex = {rows[r].etag_out, rows[r].vary_out, NULL, 0};
        check_variant(f, key, rows[r].base_variant, EDGE_ENC_GZIP, body, len, &b, &ex);
        check_variant(f, key, rows[r].base_variant, EDGE_ENC_BR, body, len, &b, &ex);
    }
    free(body);
}

/* Random bytes: neither coding saves 5%, so nothing is stored, and both fill ids end (ABORT). */
static void test_incompressible(void **state)
{
    struct fixture *f = *state;
    const size_t len = 200 * 1024;
    char *body = make_random(len);
    h2o_header_t hs[] = {header(H2O_TOKEN_CONTENT_TYPE, "application/javascript")};
    edge_compress_stats_t before = cstats();
    struct base b = put_base(f, KEY, NULL, body, len, hs, 1, NULL, 0);
    edge_compress_job_t job = job_for(KEY, NULL, &b, len);
    assert_int_equal(edge_compress_job_submit(&job), 0);
    wait_jobs(f, before.jobs_done + before.jobs_dropped + before.jobs_failed + 1);
    edge_compress_stats_t after = cstats();
    assert_int_equal(after.jobs_done - before.jobs_done, 1);
    assert_int_equal(after.bytes_in - before.bytes_in, len);
    assert_int_equal(after.bytes_out, before.bytes_out);
    assert_int_equal(lookup(f, KEY, NULL, EDGE_ENC_GZIP), EDGE_STORE_NOTFOUND);
    assert_int_equal(lookup(f, KEY, NULL, EDGE_ENC_BR), EDGE_STORE_NOTFOUND);
    edge_store_stats_t st;
    edge_store_get_stats(f->store, &st);
    assert_int_equal(st.objects, 1);
    assert_no_live_fill(f);
    free(body);
}

/* The base was replaced (or deleted) before the job ran: dropped, nothing stored, fill ids released. */
static void test_base_replaced(void **state)
{
    struct fixture *f = *state;
    const size_t len = 4096;
    char *body = make_text(len);
    h2o_header_t hs[] = {header(H2O_TOKEN_CONTENT_TYPE, "application/javascript")};
    edge_compress_stats_t before = cstats();
    struct base old = put_base(f, KEY, NULL, body, len, hs, 1, NULL, 0);
    struct base cur = put_base(f, KEY, NULL, body, len, hs, 1, NULL, 0);
    assert_true(cur.fill_id != old.fill_id);
    edge_compress_job_t job = job_for(KEY, NULL, &old, len);
    assert_int_equal(edge_compress_job_submit(&job), 0);

    /* and a base that is not there at all */
    edge_compress_job_t gone = job_for("http://a.test/gone.js", NULL, &old, len);
    edge_store_hash(gone.key, gone.key_len, gone.base_hash);
    assert_int_equal(edge_compress_job_submit(&gone), 0);
    wait_jobs(f, before.jobs_done + before.jobs_dropped + before.jobs_failed + 2);

    edge_compress_stats_t after = cstats();
    assert_int_equal(after.jobs_dropped - before.jobs_dropped, 2);
    assert_int_equal(after.jobs_done, before.jobs_done);
    assert_int_equal(after.bytes_in, before.bytes_in);
    assert_int_equal(lookup(f, KEY, NULL, EDGE_ENC_GZIP), EDGE_STORE_NOTFOUND);
    assert_int_equal(lookup(f, KEY, NULL, EDGE_ENC_BR), EDGE_STORE_NOTFOUND);
    assert_no_live_fill(f);
    free(body);
}

/*
 * The base disappears while the job reads it: a chunk is missing, both variants are ABORTed, the job counts as
 * failed. With the writer parked, the job stops after EDGE_COMPRESS_JOB_MAX_INFLIGHT chunk ops; the DELETE queued
 * then is applied before any op the job submits later, and the body is long enough that the job still has base
 * chunks to read after that.
 */
static void test_base_gone_midway(void **state)
{
    struct fixture *f = *state;
    const size_t len = 2 * MiB;
    char *body = make_random(len);
    h2o_header_t hs[] = {header(H2O_TOKEN_CONTENT_TYPE, "application/javascript")};
    edge_compress_stats_t before = cstats();
    struct base b = put_base(f, KEY, NULL, body, len, hs, 1, NULL, 0);

    gate_close(f->store);
    edge_compress_job_t job = job_for(KEY, NULL, &b, len);
    assert_int_equal(edge_compress_job_submit(&job), 0);
    double deadline = now_sec() + 60;
    while (cstats().bytes_in == before.bytes_in) { /* the job passed its check of the base */
        assert_true(now_sec() < deadline);
        sched_yield();
    }
    struct done_op del = {.op = {.kind = EDGE_STORE_OP_DELETE, .on_done = on_done}};
    memcpy(del.op.hash, b.hash, sizeof(b.hash));
    edge_store_submit(f->store, &del.op);
    gate_open();
    wait_jobs(f, before.jobs_done + before.jobs_dropped + before.jobs_failed + 1);

    edge_compress_stats_t after = cstats();
    assert_int_equal(after.jobs_failed - before.jobs_failed, 1);
    assert_true(after.bytes_in - before.bytes_in < len);
    assert_int_equal(del.result, 0);
    assert_int_equal(lookup(f, KEY, NULL, EDGE_ENC_GZIP), EDGE_STORE_NOTFOUND);
    assert_int_equal(lookup(f, KEY, NULL, EDGE_ENC_BR), EDGE_STORE_NOTFOUND);
    edge_store_stats_t st;
    edge_store_get_stats(f->store, &st);
    assert_int_equal(st.objects, 0);
    assert_no_live_fill(f);
    free(body);
}

static int setup_small_queue(void **state)
{
    return setup_with(state, 1, 1);
}

/* One worker parked in a job and a queue of one: of four submissions at least two are refused, and counted. */
static void test_queue_full(void **state)
{
    struct fixture *f = *state;
    const size_t len = 64 * 1024;
    char *body = make_text(len);
    h2o_header_t hs[] = {header(H2O_TOKEN_CONTENT_TYPE, "application/javascript")};
    struct base b = put_base(f, KEY, NULL, body, len, hs, 1, NULL, 0);
    edge_compress_job_t job = job_for(KEY, NULL, &b, len);
    edge_compress_stats_t before = cstats();

    gate_close(f->store);
    int refused = 0;
    for (int i = 0; i != 4; ++i)
        refused += edge_compress_job_submit(&job) != 0;
    assert_true(refused >= 2);
    assert_int_equal(cstats().jobs_dropped - before.jobs_dropped, refused);
    gate_open();
    wait_jobs(f, before.jobs_done + before.jobs_dropped + before.jobs_failed + 4);
    edge_compress_stats_t after = cstats();
    assert_int_equal(after.jobs_failed, before.jobs_failed);
    assert_true(after.jobs_done - before.jobs_done >= 1);
    assert_int_equal(after.jobs_done - before.jobs_done + after.jobs_dropped - before.jobs_dropped, 4);
    assert_no_live_fill(f);
    free(body);
}

static void *stop_main(void *arg)
{
    edge_compress_jobs_stop();
    return NULL;
}

/* Stopping with a job running and others queued: the queued ones are dropped, the running one finishes. */
static void test_stop_with_queued_jobs(void **state)
{
    struct fixture *f = *state;
    const size_t len = 64 * 1024;
    char *body = make_text(len);
    h2o_header_t hs[] = {header(H2O_TOKEN_CONTENT_TYPE, "application/javascript")};
    struct base b = put_base(f, KEY, NULL, body, len, hs, 1, NULL, 0);
    edge_compress_job_t job = job_for(KEY, NULL, &b, len);
    edge_compress_stats_t before = cstats();

    gate_close(f->store);
    for (int i = 0; i != 4; ++i)
        assert_int_equal(edge_compress_job_submit(&job), 0);
    pthread_t stopper;
    assert_int_equal(pthread_create(&stopper, NULL, stop_main, NULL), 0);
    double deadline = now_sec() + 60;
    while (cstats().jobs_dropped == before.jobs_dropped) { /* the stopper took the queue */
        assert_true(now_sec() < deadline);
        sched_yield();
    }
    gate_open();
    pthread_join(stopper, NULL);

    edge_compress_stats_t after = cstats();
    assert_int_equal(after.jobs_done - before.jobs_done + after.jobs_dropped - before.jobs_dropped, 4);
    assert_true(after.jobs_dropped - before.jobs_dropped >= 3);
    assert_int_equal(after.jobs_failed, before.jobs_failed);
    /* stopped: submissions are refused and counted; a second stop is a no-op */
    assert_int_equal(edge_compress_job_submit(&job), -1);
    assert_int_equal(cstats().jobs_dropped, after.jobs_dropped + 1);
    edge_compress_jobs_stop();
    edge_store_flush(f->store);
    assert_no_live_fill(f);
    free(body);
}

static void test_start_rejects(void **state)
{
    struct fixture *f = *state;
    edge_compress_settings_t cs;
    edge_compress_settings_init(&cs);
    assert_int_equal(edge_compress_jobs_start(f->store, &cs, 1, 4), -1); /* running already */
    edge_compress_jobs_stop();
    assert_int_equal(edge_compress_jobs_start(f->store, &cs, 0, 4), -1);
    assert_int_equal(edge_compress_jobs_start(f->store, &cs, 1, 0), -1);
    cs.gzip_level = 10;
    assert_int_equal(edge_compress_jobs_start(f->store, &cs, 1, 4), -1);
    cs.gzip_level = 6;
    cs.brotli_level = 12;
    assert_int_equal(edge_compress_jobs_start(f->store, &cs, 1, 4), -1);
    cs.brotli_level = 5;
    assert_int_equal(edge_compress_jobs_start(f->store, &cs, 2, 4), 0);
}

static void test_metrics(void **state)
{
    struct fixture *f = *state;
    edge_compress_job_t job = {.key = "x", .key_len = 1, .variant = NULL, .variant_len = 0};
    edge_compress_jobs_stop();
    assert_int_equal(edge_compress_job_submit(&job), -1);
    edge_compress_stats_t s = cstats();
    h2o_iovec_t text = edge_metrics_render(&f->pool, NULL, NULL);
    char line[128];
    snprintf(line, sizeof(line), "\ncdn_edge_compress_jobs_total{result=\"dropped\"} %llu\n", (unsigned long long)s.jobs_dropped);
    assert_non_null(memmem(text.base, text.len, line, strlen(line)));
    snprintf(line, sizeof(line), "\ncdn_edge_compress_jobs_total{result=\"done\"} %llu\n", (unsigned long long)s.jobs_done);
    assert_non_null(memmem(text.base, text.len, line, strlen(line)));
    snprintf(line, sizeof(line), "\ncdn_edge_compress_jobs_total{result=\"failed\"} %llu\n", (unsigned long long)s.jobs_failed);
    assert_non_null(memmem(text.base, text.len, line, strlen(line)));
    snprintf(line, sizeof(line), "\ncdn_edge_compress_bytes_in_total %llu\n", (unsigned long long)s.bytes_in);
    assert_non_null(memmem(text.base, text.len, line, strlen(line)));
    snprintf(line, sizeof(line), "\ncdn_edge_compress_bytes_out_total %llu\n", (unsigned long long)s.bytes_out);
    assert_non_null(memmem(text.base, text.len, line, strlen(line)));
}

/* --- the origin's gzip as the gzip variant; hot objects --- */

struct buf {
    char *p;
    size_t len, cap;
};

static int buf_sink(void *ctx, const void *bytes, size_t len)
{
    struct buf *b = ctx;
    if (b->len + len > b->cap) {
        b->cap = (b->len + len) * 2;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->len, bytes, len);
    b->len += len;
    return 0;
}

/* gzip of body at `level`, through the real encoder */
static struct buf gzip_of(const char *body, size_t len, int level)
{
    struct buf out = {0};
    edge_encoder_t *e = edge_encoder_new(EDGE_ENC_GZIP, level, buf_sink, &out);
    assert_non_null(e);
    assert_int_equal(edge_encoder_write(e, body, len), 0);
    assert_int_equal(edge_encoder_finish(e), 0);
    edge_encoder_free(e);
    return out;
}

/* The stored body of a variant, copied out. */
static struct buf variant_body(struct fixture *f, const char *key, edge_encoding_t enc, uint64_t *fill_id)
{
    h2o_iovec_t v = edge_compress_variant_string(&f->pool, "", 0, enc);
    uint8_t hash[EDGE_STORE_HASH_LEN];
    edge_store_txn_t *txn;
    edge_store_object_t obj;
    struct buf out = {0};
    edge_store_variant_hash(key, strlen(key), v.base, v.len, hash);
    assert_int_equal(edge_store_read_begin(f->store, &txn), 0);
    assert_int_equal(edge_store_get(txn, hash, &obj), 0);
    *fill_id = obj.fill_id;
    for (uint32_t n = 0; n != obj.num_chunks; ++n) {
        const void *data;
        size_t len;
        assert_int_equal(edge_store_get_chunk(txn, obj.fill_id, n, &data, &len), 0);
        buf_sink(&out, data, len);
    }
    edge_store_read_end(txn);
    return out;
}

static void test_prefilled_gzip_is_stored_as_sent(void **state)
{
    struct fixture *f = *state;
    const size_t len = 200 * 1024;
    char *body = make_text(len);
    h2o_header_t hs[] = {header(H2O_TOKEN_CONTENT_TYPE, "application/javascript"), header(H2O_TOKEN_ETAG, "\"v1\"")};
    edge_compress_stats_t before = cstats();
    struct base b = put_base(f, KEY, NULL, body, len, hs, 2, NULL, 0);
    struct buf sent = gzip_of(body, len, 1); /* level 1: not what the job would make at level 6 */
    edge_compress_job_t job = job_for(KEY, NULL, &b, len);
    job.gzip_fill_id = put_chunks(f, sent.p, sent.len, &job.gzip_num_chunks);
    job.gzip_size = sent.len;
    assert_int_equal(edge_compress_job_submit(&job), 0);
    wait_jobs(f, before.jobs_done + before.jobs_dropped + before.jobs_failed + 1);
    assert_int_equal(cstats().jobs_done - before.jobs_done, 1);

    struct expect ex = {"\"v1\"", "Accept-Encoding", NULL, 0};
    check_variant(f, KEY, NULL, EDGE_ENC_GZIP, body, len, &b, &ex);
    check_variant(f, KEY, NULL, EDGE_ENC_BR, body, len, &b, &ex);
    uint64_t fill_id;
    struct buf stored = variant_body(f, KEY, EDGE_ENC_GZIP, &fill_id);
    assert_int_equal(fill_id, job.gzip_fill_id);
    assert_int_equal(stored.len, sent.len);
    assert_memory_equal(stored.p, sent.p, sent.len); /* the origin's bytes, as sent */
    assert_int_equal(cstats().bytes_in - before.bytes_in, len); /* the base was read once, for brotli */
    assert_no_live_fill(f);
    free(stored.p);
    free(sent.p);
    free(body);
}

static void test_prefilled_gzip_aborted_when_the_base_is_gone(void **state)
{
    struct fixture *f = *state;
    const size_t len = 100 * 1024;
    char *body = make_text(len);
    h2o_header_t hs[] = {header(H2O_TOKEN_CONTENT_TYPE, "text/css")};
    edge_compress_stats_t before = cstats();
    struct base b = put_base(f, KEY, NULL, body, len, hs, 1, NULL, 0);
    struct buf sent = gzip_of(body, len, 6);
    edge_compress_job_t job = job_for(KEY, NULL, &b, len);
    job.base_fill_id = b.fill_id + 1000; /* another version: the job is dropped */
    job.gzip_fill_id = put_chunks(f, sent.p, sent.len, &job.gzip_num_chunks);
    job.gzip_size = sent.len;
    assert_int_equal(edge_compress_job_submit(&job), 0);
    wait_jobs(f, before.jobs_done + before.jobs_dropped + before.jobs_failed + 1);
    assert_int_equal(cstats().jobs_dropped - before.jobs_dropped, 1);
    assert_int_equal(lookup(f, KEY, NULL, EDGE_ENC_GZIP), EDGE_STORE_NOTFOUND);
    assert_no_live_fill(f); /* the prefilled fill id ended (ABORT): its chunks are deleted */
    free(sent.p);
    free(body);
}

static int setup_hot(void **state)
{
    setup_hot_hits = 3;
    int rc = setup_with(state, 1, 16);
    setup_hot_hits = EDGE_DEFAULT_COMPRESS_HOT_HITS;
    return rc;
}

static void test_hot_hits_counted_once(void **state)
{
    int seq[6];
    for (int i = 0; i != 6; ++i)
        seq[i] = edge_compress_note_hit(1007);
    int want[6] = {0, 0, 1, 0, 0, 0};
    assert_memory_equal(seq, want, sizeof(want));
    /* another object (another version of the same URL has another fill id too) counts on its own */
    assert_int_equal(edge_compress_note_hit(1008) + edge_compress_note_hit(1008), 0);
    assert_int_equal(edge_compress_note_hit(1008), 1);
    assert_int_equal(edge_compress_note_hit(1008), 0);
}

static int setup_hot_off(void **state)
{
    setup_hot_hits = 0;
    int rc = setup_with(state, 1, 16);
    setup_hot_hits = EDGE_DEFAULT_COMPRESS_HOT_HITS;
    return rc;
}

/* compress.hot_hits: 0 never counts; a stopped pool neither */
static void test_hot_hits_off(void **state)
{
    for (int i = 0; i != EDGE_DEFAULT_COMPRESS_HOT_HITS + 5; ++i)
        assert_int_equal(edge_compress_note_hit(2001), 0);
}

static void test_hot_hits_stopped_pool(void **state)
{
    edge_compress_jobs_stop();
    for (int i = 0; i != EDGE_DEFAULT_COMPRESS_HOT_HITS + 5; ++i)
        assert_int_equal(edge_compress_note_hit(2002), 0);
}

static void test_hot_job_remakes_the_variants(void **state)
{
    struct fixture *f = *state;
    const size_t len = 300 * 1024;
    char *body = make_text(len);
    h2o_header_t hs[] = {header(H2O_TOKEN_CONTENT_TYPE, "application/javascript"), header(H2O_TOKEN_ETAG, "\"v1\"")};
    edge_compress_stats_t before = cstats();
    struct base b = put_base(f, KEY, NULL, body, len, hs, 2, NULL, 0);
    edge_compress_job_t job = job_for(KEY, NULL, &b, len);
    assert_int_equal(edge_compress_job_submit(&job), 0);
    wait_jobs(f, before.jobs_done + before.jobs_dropped + before.jobs_failed + 1);
    uint64_t gz1, br1, gz2, br2;
    struct buf g1 = variant_body(f, KEY, EDGE_ENC_GZIP, &gz1), b1 = variant_body(f, KEY, EDGE_ENC_BR, &br1);

    job.hot = 1;
    assert_int_equal(edge_compress_job_submit(&job), 0);
    wait_jobs(f, before.jobs_done + before.jobs_dropped + before.jobs_failed + 2);
    assert_int_equal(cstats().jobs_done - before.jobs_done, 2);
    assert_int_equal(cstats().hot_jobs - before.hot_jobs, 1);
    struct buf g2 = variant_body(f, KEY, EDGE_ENC_GZIP, &gz2), b2 = variant_body(f, KEY, EDGE_ENC_BR, &br2);
    assert_true(gz2 > gz1 && br2 > br1); /* swapped in place: the same hashes hold the new versions */
    assert_true(g2.len <= g1.len && b2.len < b1.len); /* the best levels: brotli 11 beats 5 on text */
    struct expect ex = {"\"v1\"", "Accept-Encoding", NULL, 0};
    check_variant(f, KEY, NULL, EDGE_ENC_GZIP, body, len, &b, &ex);
    check_variant(f, KEY, NULL, EDGE_ENC_BR, body, len, &b, &ex);
    edge_store_txn_t *txn;
    size_t count;
    assert_int_equal(edge_store_read_begin(f->store, &txn), 0);
    assert_int_equal(edge_store_group_count(txn, b.url_hash, &count), 0);
    edge_store_read_end(txn);
    assert_int_equal(count, 3); /* the base and two variants, not four */
    assert_no_live_fill(f);
    free(g1.p), free(g2.p), free(b1.p), free(b2.p);
    free(body);
}

/* The nice value of this process's threads named `name`, each into nices[]. @return how many were found */
static int thread_nices(const char *name, int *nices, int max)
{
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    int n = 0;
    assert_non_null(d);
    while ((e = readdir(d)) != NULL && n < max) {
        char path[300], buf[1024];
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
        FILE *fp = fopen(path, "r");
        if (fp == NULL)
            continue;
        int named = fgets(buf, sizeof(buf), fp) != NULL && strncmp(buf, name, strlen(name)) == 0 && buf[strlen(name)] == '\n';
        fclose(fp);
        snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
        if (!named || (fp = fopen(path, "r")) == NULL)
            continue;
        size_t len = fread(buf, 1, sizeof(buf) - 1, fp);
        fclose(fp);
        buf[len] = '\0';
        /* proc(5): after "pid (comm) " come the fields from 3 (state) on; the nice value is field 19 */
        char *p = strrchr(buf, ')'), *save = NULL, *tok = NULL;
        assert_non_null(p);
        tok = strtok_r(p + 1, " ", &save);
        for (int field = 3; field < 19 && tok != NULL; ++field)
            tok = strtok_r(NULL, " ", &save);
        assert_non_null(tok);
        nices[n++] = atoi(tok);
    }
    closedir(d);
    return n;
}

/* The workers are background work: named, and at nice EDGE_COMPRESS_NICE (or lower still when the process already
 * runs below that: a worker only ever lowers its priority). */
static void test_workers_yield_to_loops(void **state)
{
    int nices[8], n = 0, mine = getpriority(PRIO_PROCESS, (id_t)gettid());
    int expected = mine > EDGE_COMPRESS_NICE ? mine : EDGE_COMPRESS_NICE;
    for (int i = 0; i < 200; ++i) { /* a worker lowers its own priority as it starts */
        if ((n = thread_nices("cdn-compress", nices, 8)) == 1 && nices[0] == expected)
            break;
        usleep(10000);
    }
    assert_int_equal(n, 1); /* setup starts one */
    assert_int_equal(nices[0], expected);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_variant_string, setup, teardown),
        cmocka_unit_test_setup_teardown(test_workers_yield_to_loops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_object_versions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_variants_stored, setup, teardown),
        cmocka_unit_test_setup_teardown(test_variant_heads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_incompressible, setup, teardown),
        cmocka_unit_test_setup_teardown(test_base_replaced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_base_gone_midway, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full, setup_small_queue, teardown),
        cmocka_unit_test_setup_teardown(test_stop_with_queued_jobs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefilled_gzip_is_stored_as_sent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_prefilled_gzip_aborted_when_the_base_is_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hot_hits_counted_once, setup_hot, teardown),
        cmocka_unit_test_setup_teardown(test_hot_hits_off, setup_hot_off, teardown),
        cmocka_unit_test_setup_teardown(test_hot_hits_stopped_pool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hot_job_remakes_the_variants, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
