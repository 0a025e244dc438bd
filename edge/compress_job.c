/*
 * edge/compress_job.c: the pool of threads that make the gzip and brotli variants of stored objects.
 *
 * Contract (see compress_job.h for the variant naming and the meta a variant carries):
 * - State: one process-wide pool (a static struct) with a bounded FIFO of jobs. pool.mutex guards the queue,
 *   the running/stopping flags and the in-flight op counts of the running jobs; pool.queue_cond wakes idle
 *   workers, pool.done_cond wakes a worker waiting for its store ops (on_done runs on the store's writer
 *   thread). A job owns a malloc'ed copy of what it was submitted with (key, variant; the submitted meta is
 *   not kept: the job reads the base's current meta from the store, which a revalidation may have refreshed).
 * - A job: takes one fill id per encoding FIRST (so that a purge applied while it runs covers the variants'
 *   COMMITs), then checks in a read txn that the base object still exists with the submitted fill id (else it
 *   is dropped and its fill ids released); copies the base's tags and builds both variant heads; then reads the
 *   base chunks one read txn per chunk (never pinning one snapshot for a long object), feeding each chunk to
 *   both encoders. Encoded bytes are cut into EDGE_STORE_CHUNK_SIZE CHUNK ops, at most
 *   EDGE_COMPRESS_JOB_MAX_INFLIGHT of them in flight per job (the worker blocks; it is not an event loop).
 *   Once every chunk op completed, each encoding is COMMITted, or ABORTed when something failed (a missing base
 *   chunk: the base was replaced or evicted midway; an encoder or store error) or when the output is not below
 *   95% of the identity size (not worth storing). Every fill id taken ends in a COMMIT, an ABORT or a release.
 * - A job may carry the origin's own gzip bytes (gzip_fill_id: chunks the fill wrote): that output is "prefilled",
 *   it has no encoder and no chunks to write, only the final COMMIT or ABORT, decided by the same rules; every exit
 *   path, a job dropped from the queue by edge_compress_jobs_stop included, ABORTs it when it is not committed.
 * - Counters: each job ends counted exactly once, as done, dropped (queue full, pool stopped, base gone or not
 *   identity, a purge refused the COMMIT) or failed (logged); bytes_in counts identity bytes read, bytes_out
 *   encoded bytes committed.
 * - edge_compress_jobs_stop drops queued jobs and joins the workers after their running job: the store must
 *   still be open then (main stops the pool before edge_store_close).
 */
#define _GNU_SOURCE /* pthread_setname_np, gettid */
#define H2O_USE_LIBUV 0
#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include "h2o.h"
#include "edge/compress_job.h"
#include "edge/object.h"

/* Encoded chunks of one job submitted to the store and not yet applied. Tests may change it. */
#ifndef EDGE_COMPRESS_JOB_MAX_INFLIGHT
#define EDGE_COMPRESS_JOB_MAX_INFLIGHT 16
#endif

#define NUM_ENCODINGS 2

struct st_queued_job_t {
    struct st_queued_job_t *next;
    edge_compress_job_t job; /* key and variant point into bytes; meta is NULL */
    char bytes[];
};

struct st_run_t;

/* One CHUNK op and its bytes; freed by on_chunk_done. */
struct st_chunk_op_t {
    edge_store_op_t op;
    struct st_output_t *out;
    size_t len;
    uint8_t data[EDGE_STORE_CHUNK_SIZE];
};

#ifndef EDGE_COMPRESS_JOB_PROBE_BYTES
#define EDGE_COMPRESS_JOB_PROBE_BYTES (1024 * 1024) /* read this much before judging an object incompressible */
#endif

/* One encoding of the running job. */
struct st_output_t {
    struct st_run_t *run;
    edge_encoding_t enc;
    edge_encoder_t *encoder;
    uint64_t fill_id;
    int prefilled;             /* the gzip the origin sent, written by the fill: no encoder, chunks already stored */
    struct st_chunk_op_t *cur; /* being filled; NULL when none */
    uint32_t num_chunks;
    uint64_t bytes;
    int store_failed;      /* a CHUNK op failed (written by on_chunk_done under pool.mutex) */
    h2o_iovec_t meta;      /* the variant's head */
    h2o_iovec_t variant;   /* the variant string */
    edge_store_op_t final; /* the COMMIT or ABORT */
    int final_result;
};

struct st_run_t {
    size_t inflight; /* ops submitted, on_done not run yet (pool.mutex) */
    struct st_output_t outs[NUM_ENCODINGS];
};

static struct {
    pthread_mutex_t mutex;
    pthread_cond_t queue_cond;
    pthread_cond_t done_cond;
    int running, stopping;
    struct st_queued_job_t *head, **tail;
    size_t queued, max_queued;
    pthread_t *threads;
    unsigned num_threads;
    edge_store_t *store;
    edge_compress_settings_t settings;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER};

static edge_compress_stats_t stats;

/* Hit counters of edge_compress_note_hit: per slot, a 40-bit tag of (hash, fill id) << 24 | a 24-bit hit count. */
#ifndef EDGE_COMPRESS_HOT_SLOTS
#define EDGE_COMPRESS_HOT_SLOTS 65536 /* 512 KiB */
#endif
static uint64_t hot_table[EDGE_COMPRESS_HOT_SLOTS];

#define STAT_ADD(field, n) __atomic_fetch_add(&stats.field, (uint64_t)(n), __ATOMIC_RELAXED)

static const edge_encoding_t encodings[NUM_ENCODINGS] = {EDGE_ENC_GZIP, EDGE_ENC_BR};

/* --- the variant's head --- */

/* Does a Vary value already name Accept-Encoding (or "*", which covers it)? */
static int vary_covers_accept_encoding(const char *v, size_t len)
{
    size_t i = 0;
    while (i < len) {
        while (i < len && (v[i] == ' ' || v[i] == '\t' || v[i] == ','))
            ++i;
        size_t start = i;
        while (i < len && v[i] != ',')
            ++i;
        size_t end = i;
        while (end > start && (v[end - 1] == ' ' || v[end - 1] == '\t'))
            --end;
        if (h2o_lcstris(v + start, end - start, H2O_STRLIT("accept-encoding")) || (end - start == 1 && v[start] == '*'))
            return 1;
    }
    return 0;
}

static int name_is(const h2o_header_t *h, const h2o_token_t *token)
{
    return h2o_lcstris(h->name->base, h->name->len, token->buf.base, token->buf.len);
}

/*
 * The head of the `enc` variant of `base`: Content-Encoding added, ETag made per encoding (dropped when it is not a
 * valid entity-tag), Content-Length dropped (the store knows the size), Vary extended with Accept-Encoding, every other
 * field copied, base_fill_id set. The blob is allocated from mem (it copies what it points to).
 */
static h2o_iovec_t build_meta(h2o_mem_pool_t *mem, const edge_object_t *base, edge_encoding_t enc, uint64_t base_fill_id)
{
    h2o_header_t *headers = h2o_mem_alloc_pool(mem, sizeof(*headers) * (base->num_headers + 2));
    size_t n = 0;
    int etag_seen = 0, vary_ok = 0;
    h2o_header_t *vary = NULL;

    for (size_t i = 0; i != base->num_headers; ++i) {
        const h2o_header_t *h = base->headers + i;
        if (name_is(h, H2O_TOKEN_CONTENT_LENGTH) || name_is(h, H2O_TOKEN_CONTENT_ENCODING))
            continue;
        if (name_is(h, H2O_TOKEN_ETAG)) {
            if (etag_seen)
                continue;
            etag_seen = 1;
            size_t cap = h->value.len + 16;
            char *buf = h2o_mem_alloc_pool(mem, cap);
            size_t len = edge_etag_for_encoding(h->value.base, h->value.len, enc, buf, cap);
            if (len == 0)
                continue; /* not a valid entity-tag: the variant goes without one */
            headers[n] = *h;
            headers[n++].value = h2o_iovec_init(buf, len);
            continue;
        }
        headers[n] = *h;
        if (name_is(h, H2O_TOKEN_VARY)) {
            if (vary_covers_accept_encoding(h->value.base, h->value.len))
                vary_ok = 1;
            else if (vary == NULL)
                vary = headers + n;
        }
        ++n;
    }
    /* RFC 9110 §12.5.5: a response selected by Accept-Encoding must say so in Vary */
    if (!vary_ok) {
        if (vary != NULL) {
            vary->value = h2o_concat(mem, vary->value, h2o_iovec_init(H2O_STRLIT(", Accept-Encoding")));
        } else {
            headers[n].name = (h2o_iovec_t *)&H2O_TOKEN_VARY->buf;
            headers[n].orig_name = NULL;
            headers[n++].value = h2o_iovec_init(H2O_STRLIT("Accept-Encoding"));
        }
    }
    const char *name = edge_encoding_name(enc);
    headers[n].name = (h2o_iovec_t *)&H2O_TOKEN_CONTENT_ENCODING->buf;
    headers[n].orig_name = NULL;
    headers[n++].value = h2o_iovec_init(name, strlen(name));

    edge_object_t obj = *base;
    obj.headers = headers;
    obj.num_headers = n;
    obj.base_fill_id = base_fill_id;
    return edge_object_encode(mem, &obj);
}

/* Is the base's Content-Encoding absent or identity? (Only identity objects are encoded.) */
static int is_identity(const edge_object_t *obj)
{
    for (size_t i = 0; i != obj->num_headers; ++i) {
        const h2o_header_t *h = obj->headers + i;
        if (name_is(h, H2O_TOKEN_CONTENT_ENCODING) && !h2o_lcstris(h->value.base, h->value.len, H2O_STRLIT("identity")))
            return 0;
    }
    return 1;
}

/* --- store ops --- */

static void on_chunk_done(edge_store_op_t *op, int result)
{
    struct st_chunk_op_t *c = (struct st_chunk_op_t *)op;
    pthread_mutex_lock(&pool.mutex);
    if (result != 0)
        c->out->store_failed = 1;
    --c->out->run->inflight;
    pthread_cond_broadcast(&pool.done_cond);
    pthread_mutex_unlock(&pool.mutex);
    free(c);
}

static void on_final_done(edge_store_op_t *op, int result)
{
    struct st_output_t *out = H2O_STRUCT_FROM_MEMBER(struct st_output_t, final, op);
    pthread_mutex_lock(&pool.mutex);
    out->final_result = result;
    --out->run->inflight;
    pthread_cond_broadcast(&pool.done_cond);
    pthread_mutex_unlock(&pool.mutex);
}

static void on_free_op(edge_store_op_t *op, int result)
{
    free(op);
}

/* Fire and forget: the writer deletes the chunks of a fill id that will never commit. */
static void submit_abort(edge_store_t *store, uint64_t fill_id)
{
    edge_store_op_t *op = h2o_mem_alloc(sizeof(*op));
    memset(op, 0, sizeof(*op));
    op->kind = EDGE_STORE_OP_ABORT;
    op->fill_id = fill_id;
    op->on_done = on_free_op;
    edge_store_submit(store, op);
}

/* Blocks until at most `max` ops of the run are in flight, then counts one more when `take`. */
static void wait_inflight(struct st_run_t *run, size_t max, int take)
{
    pthread_mutex_lock(&pool.mutex);
    while (run->inflight > max)
        pthread_cond_wait(&pool.done_cond, &pool.mutex);
    if (take)
        ++run->inflight;
    pthread_mutex_unlock(&pool.mutex);
}

static int store_failed(struct st_output_t *out)
{
    pthread_mutex_lock(&pool.mutex);
    int failed = out->store_failed;
    pthread_mutex_unlock(&pool.mutex);
    return failed;
}

static void flush_chunk(struct st_output_t *out)
{
    struct st_chunk_op_t *c = out->cur;
    if (c == NULL || c->len == 0)
        return;
    out->cur = NULL;
    wait_inflight(out->run, EDGE_COMPRESS_JOB_MAX_INFLIGHT - 1, 1);
    c->op.kind = EDGE_STORE_OP_CHUNK;
    c->op.fill_id = out->fill_id;
    c->op.chunk_index = out->num_chunks++;
    c->op.data = c->data;
    c->op.len = c->len;
    c->op.on_done = on_chunk_done;
    edge_store_submit(pool.store, &c->op);
}

/* The encoders' sink: cuts the output into store chunks. */
static int on_encoded(void *ctx, const void *bytes, size_t len)
{
    struct st_output_t *out = ctx;
    const uint8_t *p = bytes;
    out->bytes += len;
    while (len != 0) {
        if (out->cur == NULL) {
            out->cur = h2o_mem_alloc(sizeof(*out->cur));
            memset(&out->cur->op, 0, sizeof(out->cur->op));
            out->cur->out = out;
            out->cur->len = 0;
        }
        size_t n = EDGE_STORE_CHUNK_SIZE - out->cur->len;
        if (n > len)
            n = len;
        memcpy(out->cur->data + out->cur->len, p, n);
        out->cur->len += n;
        p += n;
        len -= n;
        if (out->cur->len == EDGE_STORE_CHUNK_SIZE)
            flush_chunk(out);
    }
    return 0;
}

/* --- the job --- */

enum { RESULT_DONE, RESULT_DROPPED, RESULT_FAILED };

static void log_failure(const edge_compress_job_t *job, const char *reason)
{
    fprintf(stderr, "cdn-edge: COMPRESS_ERR key=%.*s fill_id=%llu reason=\"%s\"\n", (int)(job->key_len > 512 ? 512 : job->key_len),
            job->key, (unsigned long long)job->base_fill_id, reason);
}

/*
 * Reads the base object: checks it is still the submitted fill, copies its tags and builds both variant heads.
 * @return RESULT_DONE (go on), RESULT_DROPPED or RESULT_FAILED (with *reason)
 */
static int read_base(const edge_compress_job_t *job, h2o_mem_pool_t *mem, struct st_run_t *run, const char ***tags,
                     size_t **tag_lens, size_t *num_tags, uint64_t *body_size, uint32_t *num_chunks, const char **reason)
{
    edge_store_txn_t *txn;
    edge_store_object_t obj;
    edge_object_t head;
    int ret = RESULT_DONE, rc;

    if ((rc = edge_store_read_begin(pool.store, &txn)) != 0) {
        *reason = edge_store_strerror(rc);
        return RESULT_FAILED;
    }
    if ((rc = edge_store_get(txn, job->base_hash, &obj)) != 0) {
        if (rc == EDGE_STORE_NOTFOUND) {
            ret = RESULT_DROPPED; /* replaced by nothing: evicted, deleted or purged */
        } else {
            *reason = edge_store_strerror(rc);
            ret = RESULT_FAILED;
        }
        goto Exit;
    }
    /* another version of the object replaced it, or a soft purge made it stale: its variants would be wasted */
    if (obj.fill_id != job->base_fill_id || obj.soft_purged || obj.key_len != job->key_len ||
        memcmp(obj.key, job->key, job->key_len) != 0) {
        ret = RESULT_DROPPED;
        goto Exit;
    }
    if (edge_object_decode(mem, obj.meta, obj.meta_len, &head) != 0) {
        *reason = "the base object's head does not decode";
        ret = RESULT_FAILED;
        goto Exit;
    }
    if ((head.flags & EDGE_OBJECT_VARY_MARKER) != 0 || !is_identity(&head)) {
        ret = RESULT_DROPPED;
        goto Exit;
    }

    /* tags: copied out of the txn */
    size_t cursor = 0, n = 0, len;
    const char *tag;
    while ((rc = edge_store_object_next_tag(&obj, &cursor, &tag, &len)) == 0)
        ++n;
    if (rc != EDGE_STORE_NOTFOUND) {
        *reason = "the base object's tags are corrupt";
        ret = RESULT_FAILED;
        goto Exit;
    }
    *tags = n != 0 ? h2o_mem_alloc_pool(mem, sizeof(**tags) * n) : NULL;
    *tag_lens = n != 0 ? h2o_mem_alloc_pool(mem, sizeof(**tag_lens) * n) : NULL;
    *num_tags = n;
    cursor = 0;
    for (size_t i = 0; i != n && edge_store_object_next_tag(&obj, &cursor, &tag, &len) == 0; ++i) {
        char *copy = h2o_mem_alloc_pool(mem, len);
        memcpy(copy, tag, len);
        (*tags)[i] = copy;
        (*tag_lens)[i] = len;
    }

    for (size_t i = 0; i != NUM_ENCODINGS; ++i)
        run->outs[i].meta = build_meta(mem, &head, run->outs[i].enc, job->base_fill_id);
    *body_size = obj.body_size;
    *num_chunks = obj.num_chunks;

Exit:
    edge_store_read_end(txn);
    return ret;
}

/* Feeds base chunk n to both encoders, in a read txn of its own. @return 0, or -1 with *reason */
static int encode_chunk(const edge_compress_job_t *job, struct st_run_t *run, uint32_t n, uint64_t *bytes_read, const char **reason)
{
    edge_store_txn_t *txn;
    const void *data;
    size_t len;
    int rc, ret = 0;

    if ((rc = edge_store_read_begin(pool.store, &txn)) != 0) {
        *reason = edge_store_strerror(rc);
        return -1;
    }
    if ((rc = edge_store_get_chunk(txn, job->base_fill_id, n, &data, &len)) != 0) {
        *reason = rc == EDGE_STORE_NOTFOUND ? "a chunk of the base object is gone (replaced or evicted meanwhile)"
                                            : edge_store_strerror(rc);
        ret = -1;
        goto Exit;
    }
    *bytes_read += len;
    STAT_ADD(bytes_in, len);
    for (size_t i = 0; i != NUM_ENCODINGS; ++i) {
        if (run->outs[i].prefilled)
            continue;
        if (edge_encoder_write(run->outs[i].encoder, data, len) != 0) {
            *reason = "the encoder failed";
            ret = -1;
            goto Exit;
        }
    }
Exit:
    edge_store_read_end(txn);
    return ret;
}

static void run_job(const edge_compress_job_t *job)
{
    h2o_mem_pool_t mem;
    struct st_run_t run;
    const char **tags = NULL, *reason = NULL;
    size_t *tag_lens = NULL, num_tags = 0;
    uint64_t body_size = 0, bytes_read = 0;
    uint32_t num_chunks = 0;
    int result, submitted = 0;

    h2o_mem_init_pool(&mem);
    memset(&run, 0, sizeof(run));
    /* fill ids first: a purge applied from now on covers the variants (their COMMIT is refused or stored stale) */
    for (size_t i = 0; i != NUM_ENCODINGS; ++i) {
        struct st_output_t *out = run.outs + i;
        out->run = &run;
        out->enc = encodings[i];
        if (out->enc == EDGE_ENC_GZIP && job->gzip_fill_id != 0) {
            out->prefilled = 1;
            out->fill_id = job->gzip_fill_id;
            out->bytes = job->gzip_size;
            out->num_chunks = job->gzip_num_chunks;
        } else {
            out->fill_id = edge_store_new_fill_id(pool.store);
        }
        out->variant = edge_compress_variant_string(&mem, job->variant, job->variant_len, out->enc);
    }

    if ((result = read_base(job, &mem, &run, &tags, &tag_lens, &num_tags, &body_size, &num_chunks, &reason)) != RESULT_DONE)
        goto Release;
    for (size_t i = 0; i != NUM_ENCODINGS; ++i) {
        struct st_output_t *out = run.outs + i;
        int level = out->enc == EDGE_ENC_GZIP ? (job->hot ? EDGE_DEFAULT_GZIP_LEVEL_HOT : pool.settings.gzip_level)
                                              : (job->hot ? EDGE_DEFAULT_BROTLI_LEVEL_HOT : pool.settings.brotli_level);
        if (out->prefilled)
            continue;
        if ((out->encoder = edge_encoder_new(out->enc, level, on_encoded, out)) == NULL) {
            reason = "cannot create the encoder";
            result = RESULT_FAILED;
            goto Release;
        }
    }

    /* from here on chunks may be in the store: every fill id ends in an ABORT or a COMMIT */
    submitted = 1;
    int not_worth_it = 0;
    for (uint32_t n = 0; n != num_chunks; ++n) {
        if (__atomic_load_n(&pool.stopping, __ATOMIC_RELAXED)) {
            /* shutting down: a long job must not hold the drain up */
            reason = "shutting down";
            result = RESULT_DROPPED;
            break;
        }
        if (encode_chunk(job, &run, n, &bytes_read, &reason) != 0) {
            result = RESULT_FAILED;
            break;
        }
        if (store_failed(run.outs + 0) && store_failed(run.outs + 1)) {
            reason = "the store refused the encoded chunks";
            result = RESULT_FAILED;
            break;
        }
        /* incompressible (media, random bytes): after the first MiB, when neither encoding saves 5%, stop
         * instead of reading the whole object */
        if (!run.outs[0].prefilled && bytes_read >= EDGE_COMPRESS_JOB_PROBE_BYTES && run.outs[0].bytes * 20 >= bytes_read * 19 &&
            run.outs[1].bytes * 20 >= bytes_read * 19) {
            not_worth_it = 1;
            break;
        }
    }
    if (not_worth_it) {
        /* counted as done: both variants are aborted below, as when the whole object did not compress */
        for (size_t i = 0; i != NUM_ENCODINGS; ++i)
            run.outs[i].bytes = body_size;
        bytes_read = body_size;
    }
    if (result == RESULT_DONE && bytes_read != body_size) {
        reason = "the base object's chunks do not add up to its size";
        result = RESULT_FAILED;
    }
    for (size_t i = 0; result == RESULT_DONE && i != NUM_ENCODINGS; ++i) {
        if (!run.outs[i].prefilled && edge_encoder_finish(run.outs[i].encoder) != 0) {
            reason = "the encoder failed";
            result = RESULT_FAILED;
        }
    }
    if (result == RESULT_DONE)
        for (size_t i = 0; i != NUM_ENCODINGS; ++i)
            flush_chunk(run.outs + i);
    wait_inflight(&run, 0, 0); /* every chunk applied (or failed): now decide */

    for (size_t i = 0; i != NUM_ENCODINGS; ++i) {
        struct st_output_t *out = run.outs + i;
        edge_store_op_t *op = &out->final;
        memset(op, 0, sizeof(*op));
        op->fill_id = out->fill_id;
        op->on_done = on_final_done;
        /* not worth storing unless it saves 5% */
        if (result != RESULT_DONE || out->store_failed || out->bytes * 20 >= body_size * 19) {
            op->kind = EDGE_STORE_OP_ABORT;
        } else {
            op->kind = EDGE_STORE_OP_COMMIT;
            edge_store_variant_hash(job->key, job->key_len, out->variant.base, out->variant.len, op->hash);
            op->key = job->key;
            op->key_len = job->key_len;
            op->data = out->meta.base;
            op->len = out->meta.len;
            op->body_size = out->bytes;
            op->num_chunks = out->num_chunks;
            memcpy(op->group, job->url_hash, EDGE_STORE_HASH_LEN);
            op->variant = out->variant.base;
            op->variant_len = out->variant.len;
            op->tags = tags;
            op->tag_lens = tag_lens;
            op->num_tags = num_tags;
        }
        wait_inflight(&run, SIZE_MAX, 1);
        edge_store_submit(pool.store, op);
    }
    wait_inflight(&run, 0, 0);
    for (size_t i = 0; i != NUM_ENCODINGS; ++i) {
        struct st_output_t *out = run.outs + i;
        if (out->final.kind != EDGE_STORE_OP_COMMIT)
            continue;
        if (out->final_result == 0) {
            STAT_ADD(bytes_out, out->bytes);
        } else if (out->final_result == EDGE_STORE_EPURGED) {
            if (result == RESULT_DONE)
                result = RESULT_DROPPED; /* purged while it ran: nothing to store */
        } else {
            reason = edge_store_strerror(out->final_result);
            result = RESULT_FAILED;
        }
    }
    if (result == RESULT_DONE && (run.outs[0].store_failed || run.outs[1].store_failed)) {
        reason = "the store refused the encoded chunks";
        result = RESULT_FAILED;
    }

Release:
    for (size_t i = 0; i != NUM_ENCODINGS; ++i) {
        struct st_output_t *out = run.outs + i;
        if (!submitted) {
            if (out->prefilled)
                submit_abort(pool.store, out->fill_id); /* its chunks are in the store already */
            else
                edge_store_fill_release(pool.store, out->fill_id);
        }
        free(out->cur);
        edge_encoder_free(out->encoder);
    }
    switch (result) {
    case RESULT_DONE:
        STAT_ADD(jobs_done, 1);
        if (job->hot)
            STAT_ADD(hot_jobs, 1);
        break;
    case RESULT_DROPPED:
        STAT_ADD(jobs_dropped, 1);
        break;
    default:
        log_failure(job, reason != NULL ? reason : "unknown");
        STAT_ADD(jobs_failed, 1);
        break;
    }
    h2o_mem_clear_pool(&mem);
}

static void *worker_main(void *arg)
{
    /* background work: where a worker and an event loop share a CPU, the loop comes first (Linux: the nice value
     * is per thread). A hot job (brotli 11) otherwise takes whole time slices from the hits of its loop. */
    pthread_setname_np(pthread_self(), "cdn-compress");
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, (id_t)gettid());
    if (errno == 0 && nice_now < EDGE_COMPRESS_NICE && setpriority(PRIO_PROCESS, (id_t)gettid(), EDGE_COMPRESS_NICE) != 0)
        fprintf(stderr, "cdn-edge: compress: cannot lower the workers' priority: %s\n", strerror(errno));
    for (;;) {
        pthread_mutex_lock(&pool.mutex);
        while (!pool.stopping && pool.head == NULL)
            pthread_cond_wait(&pool.queue_cond, &pool.mutex);
        if (pool.stopping) {
            pthread_mutex_unlock(&pool.mutex);
            break;
        }
        struct st_queued_job_t *q = pool.head;
        if ((pool.head = q->next) == NULL)
            pool.tail = &pool.head;
        --pool.queued;
        pthread_mutex_unlock(&pool.mutex);
        run_job(&q->job);
        free(q);
    }
    return NULL;
}

/* --- public functions --- */

int edge_compress_jobs_start(edge_store_t *store, const edge_compress_settings_t *settings, unsigned threads, size_t max_queued)
{
    if (store == NULL || threads == 0 || max_queued == 0 || settings->gzip_level < 1 || settings->gzip_level > 9 ||
        settings->brotli_level < 0 || settings->brotli_level > 11)
        return -1;

    pthread_mutex_lock(&pool.mutex);
    if (pool.running) {
        pthread_mutex_unlock(&pool.mutex);
        return -1;
    }
    pool.store = store;
    pool.settings = *settings;
    pool.head = NULL;
    pool.tail = &pool.head;
    pool.queued = 0;
    pool.max_queued = max_queued;
    pool.stopping = 0;
    pool.threads = h2o_mem_alloc(sizeof(*pool.threads) * threads);
    pool.num_threads = 0;
    pool.running = 1;
    pthread_mutex_unlock(&pool.mutex);

    for (unsigned i = 0; i != threads; ++i) {
        if (pthread_create(pool.threads + i, NULL, worker_main, NULL) != 0) {
            fprintf(stderr, "cdn-edge: compress: cannot start a worker thread\n");
            edge_compress_jobs_stop();
            return -1;
        }
        pool.num_threads = i + 1;
    }
    return 0;
}

void edge_compress_jobs_stop(void)
{
    pthread_mutex_lock(&pool.mutex);
    if (!pool.running || pool.stopping) {
        pthread_mutex_unlock(&pool.mutex);
        return;
    }
    pool.stopping = 1;
    struct st_queued_job_t *dropped = pool.head;
    pool.head = NULL;
    pool.tail = &pool.head;
    pool.queued = 0;
    pthread_cond_broadcast(&pool.queue_cond);
    pthread_mutex_unlock(&pool.mutex);

    while (dropped != NULL) {
        struct st_queued_job_t *next = dropped->next;
        if (dropped->job.gzip_fill_id != 0)
            submit_abort(pool.store, dropped->job.gzip_fill_id);
        STAT_ADD(jobs_dropped, 1);
        free(dropped);
        dropped = next;
    }
    for (unsigned i = 0; i != pool.num_threads; ++i)
        pthread_join(pool.threads[i], NULL);
    free(pool.threads);

    pthread_mutex_lock(&pool.mutex);
    pool.threads = NULL;
    pool.num_threads = 0;
    pool.store = NULL;
    pool.running = 0;
    pool.stopping = 0;
    pthread_mutex_unlock(&pool.mutex);
}

int edge_compress_job_submit(const edge_compress_job_t *job)
{
    struct st_queued_job_t *q = h2o_mem_alloc(offsetof(struct st_queued_job_t, bytes) + job->key_len + job->variant_len);
    memset(q, 0, sizeof(*q));
    q->job = *job;
    if (job->key_len != 0)
        memcpy(q->bytes, job->key, job->key_len);
    if (job->variant_len != 0) /* variant may be NULL when empty */
        memcpy(q->bytes + job->key_len, job->variant, job->variant_len);
    q->job.key = q->bytes;
    q->job.variant = q->bytes + job->key_len;
    q->job.meta = NULL; /* read again from the store by the job */
    q->job.meta_len = 0;

    pthread_mutex_lock(&pool.mutex);
    if (!pool.running || pool.stopping || pool.queued >= pool.max_queued) {
        pthread_mutex_unlock(&pool.mutex);
        free(q);
        STAT_ADD(jobs_dropped, 1);
        return -1;
    }
    *pool.tail = q;
    pool.tail = &q->next;
    ++pool.queued;
    pthread_cond_signal(&pool.queue_cond);
    pthread_mutex_unlock(&pool.mutex);
    return 0;
}

h2o_iovec_t edge_compress_variant_string(h2o_mem_pool_t *mem, const char *variant, size_t variant_len, edge_encoding_t enc)
{
    const char *name = edge_encoding_name(enc);
    assert(name != NULL && enc != EDGE_ENC_IDENTITY);
    size_t name_len = strlen(name), len = variant_len + 1 + 4 + name_len;
    char *buf = h2o_mem_alloc_pool(mem, len), *p = buf;
    if (variant_len != 0)
        memcpy(p, variant, variant_len);
    p += variant_len;
    *p++ = EDGE_COMPRESS_VARIANT_SEP;
    memcpy(p, "enc=", 4);
    p += 4;
    memcpy(p, name, name_len);
    return h2o_iovec_init(buf, len);
}

int edge_compress_note_hit(uint64_t fill_id)
{
    uint32_t limit = pool.settings.hot_hits; /* written before the pool runs, never after */
    if (limit == 0 || !__atomic_load_n(&pool.running, __ATOMIC_RELAXED))
        return 0;
    uint64_t h = fill_id * 0x9E3779B97F4A7C15ull;
    uint64_t *slot = hot_table + (h & (EDGE_COMPRESS_HOT_SLOTS - 1)), tag = h >> 24;
    uint64_t cur = __atomic_load_n(slot, __ATOMIC_RELAXED), next;
    do {
        uint64_t count = (cur >> 24) == tag ? (cur & 0xffffff) : 0;
        if (count >= limit)
            return 0; /* done already: a load, no write */
        next = tag << 24 | (count + 1);
    } while (!__atomic_compare_exchange_n(slot, &cur, next, 1, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
    return (next & 0xffffff) == limit;
}

void edge_compress_get_stats(edge_compress_stats_t *out)
{
    out->hot_jobs = __atomic_load_n(&stats.hot_jobs, __ATOMIC_RELAXED);
    out->jobs_done = __atomic_load_n(&stats.jobs_done, __ATOMIC_RELAXED);
    out->jobs_dropped = __atomic_load_n(&stats.jobs_dropped, __ATOMIC_RELAXED);
    out->jobs_failed = __atomic_load_n(&stats.jobs_failed, __ATOMIC_RELAXED);
    out->bytes_in = __atomic_load_n(&stats.bytes_in, __ATOMIC_RELAXED);
    out->bytes_out = __atomic_load_n(&stats.bytes_out, __ATOMIC_RELAXED);
}
