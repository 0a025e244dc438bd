/*
 * edge/purge_api.c: `POST /purge` (admin listener), `PURGE <url>` (client listeners) and the Redis stream consumer
 * and publisher threads that carry purges between nodes.
 *
 * A request becomes a *job* (struct st_job_t, malloc'ed, never in req->pool): it is validated whole first (auth, size,
 * JSON, every item), so nothing is half-applied. Then:
 * - alone (no purge.redis): one BAN op per item, all with the same `soft`, submitted at once; each op's on_done (writer
 *   thread) counts down, and the last one posts the job to its loop's purge_receiver, which answers 200 (or 500 if any
 *   op failed). The purge id is the largest ban id.
 * - with purge.redis: the job goes to the publisher thread, which XADDs the request JSON (503 when Redis cannot take
 *   it: nothing is applied anywhere then), then parks the job until the consumer thread reports that entry applied,
 *   which posts the job back. A per-loop timer answers 504 after purge.timeout; the job itself is freed only when it
 *   comes back to its loop, since another thread may hold it until then.
 * The request may go away at any time: a disposer-backed ref in req->pool cuts the link job -> req (loop thread only).
 *
 * The consumer thread reads the stream from the cursor committed in the store (XREAD), applies each entry as BAN ops
 * whose last one carries the entry id as stream_cursor (committed in the same transaction), waits for their on_done,
 * then advances. An entry the node cannot parse is skipped with a CURSOR op (logged, counted). Without a stored cursor
 * (a new node) it starts at the stream's end: a new store holds nothing to purge. After each connect it asks Redis
 * whether entries after its cursor were trimmed away (purge_stream_gap: down for longer than purge.stream_max_len
 * purges): then it purges everything, hard, with the cursor moved past the gap in the same transaction (logged,
 * counted), never silently keeping objects a lost purge named. While Redis is down it retries with
 * backoff and reports the state (log line per change, cdn_edge_purge_stream_up, healthz).
 *
 * Locks: S.mutex guards the stream state (applied id, waiters, publisher queue, flags); it is never held across Redis
 * or store calls. Counters are relaxed atomics.
 */
#define H2O_USE_LIBUV 0
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "h2o.h"
#include "edge/cache_key.h"
#include "edge/edge.h"
#include "edge/purge_api.h"
#include "purge/auth.h"
#include "purge/purge_request.h"
#include "purge/stream.h"

#ifndef EDGE_PURGE_REDIS_TIMEOUT_MS
#define EDGE_PURGE_REDIS_TIMEOUT_MS 1000 /* connect and command timeout of the Redis connections */
#endif
#define EDGE_PURGE_READ_BLOCK_MS 500     /* XREAD BLOCK, also how often the consumer looks at `stopping` */
#define EDGE_PURGE_READ_COUNT 128
#define EDGE_PURGE_BACKOFF_MIN_MS 100
#define EDGE_PURGE_BACKOFF_MAX_MS 5000
/* Limits for entries read from the stream: the publishing node already applied its own; a node with smaller
 * limits must not skip what the others applied. */
#define EDGE_PURGE_STREAM_MAX_BODY (64u * 1024 * 1024)
#define EDGE_PURGE_STREAM_MAX_ITEMS 100000

enum { KIND_URL, KIND_PREFIX, KIND_HOST, KIND_TAG, KIND_ALL, NUM_KINDS };
static const char *const kind_names[NUM_KINDS] = {"url", "prefix", "host", "tag", "all"};

struct st_job_ref_t;

struct st_job_t {
    h2o_multithread_message_t msg; /* posted to thread->purge_receiver when the job is done */
    edge_thread_t *thread;
    h2o_req_t *req;           /* NULL once answered or gone (loop thread only) */
    struct st_job_ref_t *ref; /* the request's side of the link (loop thread only) */
    h2o_timeout_entry_t wait_timer;
    purge_request_t pr;
    /* alone */
    edge_store_op_t *ops;
    size_t num_ops;
    size_t pending; /* atomic: ops whose on_done has not run */
    int failed;     /* atomic: the first failing result */
    /* stream */
    char *json;
    int status; /* 200 or 503, set by the thread that posts */
    char id[PURGE_STREAM_ID_MAX];
    char reason[600];
    struct st_job_t *next;
};

struct st_job_ref_t {
    struct st_job_t *job;
};

struct st_purge_handler_t {
    h2o_handler_t super;
    edge_runtime_t *rt;
};

/* Waits for the ops of one stream entry (consumer thread). */
struct st_apply_t {
    pthread_mutex_t mutex;
    pthread_cond_t cond;
    size_t pending;
    int failed;
};

static struct {
    edge_runtime_t *rt;
    int started, has_stream;
    purge_limits_t limits, stream_limits;
    purge_stream_settings_t redis;
    pthread_t consumer, publisher;
    pthread_mutex_t mutex;
    pthread_cond_t cond;     /* consumer state changes: caught up, connect failed, stopping */
    pthread_cond_t pub_cond; /* the publisher's queue */
    int stopping;
    int caught_up;
    int first_connect_done; /* the consumer tried to connect once (start-up stops waiting when that failed) */
    int state;              /* -1 unknown, 0 down, 1 up (for the log line per change) */
    char applied[PURGE_STREAM_ID_MAX]; /* the last entry applied here ("" none yet) */
    struct st_job_t *waiters;          /* published, waiting for `applied` to reach their id */
    struct st_job_t *pub_head, *pub_tail;
} S = {.mutex = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .pub_cond = PTHREAD_COND_INITIALIZER, .state = -1};

static struct {
    uint64_t kinds[NUM_KINDS];
    uint64_t ok, unauthorized, forbidden, invalid, too_large, failed, unavailable, timeout;
    uint64_t errors;
    uint64_t stream_up, lag_ms, applied, published, skipped, stream_errors, gaps;
} M;

#define ADD(field, n) __atomic_fetch_add(&M.field, (uint64_t)(n), __ATOMIC_RELAXED)
#define LOAD(field) __atomic_load_n(&M.field, __ATOMIC_RELAXED)

static __thread h2o_timeout_t wait_timeout; /* purge.timeout, per loop */

/* ---- helpers ---- */

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void send_json(h2o_req_t *req, int status, const char *reason, json_t *body)
{
    char *text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    size_t len = text != NULL ? strlen(text) : 0;
    char *copy = h2o_mem_alloc_pool(&req->pool, len + 1);
    if (text != NULL)
        memcpy(copy, text, len);
    copy[len] = '\n';
    free(text);
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, copy, len + 1);
}

static void send_error(h2o_req_t *req, int status, const char *reason, const char *message)
{
    send_json(req, status, reason, json_pack("{s:s}", "error", message));
}

static size_t count_ops(const purge_request_t *pr)
{
    return pr->urls.count + pr->prefixes.count + pr->hosts.count + pr->tags.count + (pr->all ? 1 : 0);
}

/* URLs are keyed as this node keys requests: its query rules (cache.query, cache.query_drop) apply to them too. */
static void apply_key_rules(purge_request_t *pr)
{
    if (S.rt == NULL)
        return;
    const conf_cache_t *c = &S.rt->conf->cache;
    if (c->query_mode == CONF_QUERY_KEEP && c->num_query_drop == 0)
        return;
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    for (size_t i = 0; i < pr->urls.count; ++i) {
        h2o_iovec_t out;
        edge_cache_key_apply_query_rules(&pool, h2o_iovec_init(pr->urls.items[i], strlen(pr->urls.items[i])),
                                         (edge_query_mode_t)c->query_mode, (const char *const *)c->query_drop,
                                         c->num_query_drop, &out);
        char *copy = h2o_strdup(NULL, out.base, out.len).base;
        free(pr->urls.items[i]);
        pr->urls.items[i] = copy;
    }
    h2o_mem_clear_pool(&pool);
}

/* One BAN op per item (values point into pr). @return the ops (calloc'ed), or NULL on OOM */
static edge_store_op_t *build_ops(purge_request_t *pr, size_t *n)
{
    apply_key_rules(pr);
    static const edge_store_ban_kind_t kinds[] = {EDGE_STORE_BAN_URL, EDGE_STORE_BAN_PREFIX, EDGE_STORE_BAN_HOST,
                                                  EDGE_STORE_BAN_TAG};
    const purge_list_t *lists[] = {&pr->urls, &pr->prefixes, &pr->hosts, &pr->tags};
    size_t total = count_ops(pr), k = 0;
    edge_store_op_t *ops = calloc(total != 0 ? total : 1, sizeof(*ops));

    if (ops == NULL)
        return NULL;
    for (size_t l = 0; l < 4; ++l) {
        for (size_t i = 0; i < lists[l]->count; ++i, ++k) {
            ops[k].kind = EDGE_STORE_OP_BAN;
            ops[k].ban_kind = kinds[l];
            ops[k].ban_value = lists[l]->items[i];
            ops[k].ban_value_len = strlen(lists[l]->items[i]);
            ops[k].soft = pr->soft ? 1 : 0;
        }
    }
    if (pr->all) {
        ops[k].kind = EDGE_STORE_OP_BAN;
        ops[k].ban_kind = EDGE_STORE_BAN_ALL;
        ops[k].soft = pr->soft ? 1 : 0;
        ++k;
    }
    *n = k;
    return ops;
}

/* The store refuses values it cannot hold: check them all before anything is submitted. */
static const char *check_values(const purge_request_t *pr)
{
    const purge_list_t *lists[] = {&pr->urls, &pr->prefixes, &pr->hosts};
    for (size_t l = 0; l < 3; ++l)
        for (size_t i = 0; i < lists[l]->count; ++i)
            if (strlen(lists[l]->items[i]) > EDGE_STORE_MAX_BAN_VALUE)
                return "a URL, prefix or host is longer than 8192 bytes";
    for (size_t i = 0; i < pr->tags.count; ++i)
        if (strlen(pr->tags.items[i]) > EDGE_STORE_MAX_TAG_LEN)
            return "a tag is longer than 256 bytes";
    return NULL;
}

static void count_kinds(const purge_request_t *pr)
{
    ADD(kinds[KIND_URL], pr->urls.count);
    ADD(kinds[KIND_PREFIX], pr->prefixes.count);
    ADD(kinds[KIND_HOST], pr->hosts.count);
    ADD(kinds[KIND_TAG], pr->tags.count);
    if (pr->all)
        ADD(kinds[KIND_ALL], 1);
}

static json_t *summary(const purge_request_t *pr, const char *id)
{
    return json_pack("{s:s, s:I, s:I, s:I, s:I, s:b, s:b}", "id", id, "urls", (json_int_t)pr->urls.count, "prefixes",
                     (json_int_t)pr->prefixes.count, "hosts", (json_int_t)pr->hosts.count, "tags",
                     (json_int_t)pr->tags.count, "all", pr->all, "soft", pr->soft);
}

static void job_free(struct st_job_t *job)
{
    purge_request_free(&job->pr);
    free(job->ops);
    free(job->json);
    free(job);
}

/* Loop thread: cuts the link with the request, which is answered next (or gone). */
static h2o_req_t *job_take_req(struct st_job_t *job)
{
    h2o_req_t *req = job->req;
    if (job->ref != NULL)
        job->ref->job = NULL;
    job->ref = NULL;
    job->req = NULL;
    if (h2o_timeout_is_linked(&job->wait_timer))
        h2o_timeout_unlink(&job->wait_timer);
    return req;
}

/* Any thread: hands a finished job back to its loop. */
static void job_post(struct st_job_t *job)
{
    h2o_multithread_send_message(&job->thread->purge_receiver, &job->msg);
}

/* Loop thread: the job came back; answer if the request is still waiting, then free it. */
static void job_finish(struct st_job_t *job)
{
    h2o_req_t *req = job_take_req(job);
    if (!S.has_stream && __atomic_load_n(&job->failed, __ATOMIC_ACQUIRE) == 0)
        count_kinds(&job->pr); /* applied, whether or not the client waited (stream: the consumer counts) */
    if (req != NULL) {
        if (S.has_stream) {
            if (job->status == 200) {
                ADD(ok, 1);
                send_json(req, 200, "OK", summary(&job->pr, job->id));
            } else {
                ADD(unavailable, 1);
                ADD(errors, 1);
                h2o_req_log_error(req, "edge/purge_api", "PURGE_ERR detail=\"%s\"", job->reason);
                send_error(req, 503, "Service Unavailable", "purge stream unavailable");
            }
        } else {
            int failed = __atomic_load_n(&job->failed, __ATOMIC_ACQUIRE);
            if (failed != 0) {
                ADD(failed, 1);
                ADD(errors, 1);
                h2o_req_log_error(req, "edge/purge_api", "PURGE_ERR detail=\"%s\"", edge_store_strerror(failed));
                char msg[160];
                snprintf(msg, sizeof(msg), "purge not applied: %s", edge_store_strerror(failed));
                send_error(req, 500, "Internal Server Error", msg);
            } else {
                uint64_t max_id = 0;
                for (size_t i = 0; i < job->num_ops; ++i)
                    if (job->ops[i].ban_id > max_id)
                        max_id = job->ops[i].ban_id;
                char id[24];
                snprintf(id, sizeof(id), "%" PRIu64, max_id);
                ADD(ok, 1);
                send_json(req, 200, "OK", summary(&job->pr, id));
            }
        }
    }
    job_free(job);
}

/* ---- callbacks ---- */

static void on_purge_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        struct st_job_t *job = H2O_STRUCT_FROM_MEMBER(struct st_job_t, msg.link, messages->next);
        h2o_linklist_unlink(&job->msg.link);
        job_finish(job);
    }
}

static void on_ref_dispose(void *p)
{
    struct st_job_ref_t *ref = p;
    if (ref->job != NULL) {
        ref->job->ref = NULL; /* the job lives on until it comes back to this loop */
        job_take_req(ref->job);
    }
    --edge_this_thread->inflight_requests;
}

static void on_wait_timeout(h2o_timeout_entry_t *entry)
{
    struct st_job_t *job = H2O_STRUCT_FROM_MEMBER(struct st_job_t, wait_timer, entry);
    h2o_req_t *req = job_take_req(job);
    if (req == NULL)
        return;
    ADD(timeout, 1);
    ADD(errors, 1);
    h2o_req_log_error(req, "edge/purge_api", "PURGE_ERR detail=\"not applied locally within purge.timeout\"");
    send_error(req, 504, "Gateway Timeout", "purge not applied locally in time (it may still apply)");
}

/* Writer thread: one op of a purge applied alone. */
static void on_job_op_done(edge_store_op_t *op, int result)
{
    struct st_job_t *job = op->data_owner;
    if (result != 0) {
        int zero = 0;
        __atomic_compare_exchange_n(&job->failed, &zero, result, 0, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
    }
    if (__atomic_sub_fetch(&job->pending, 1, __ATOMIC_ACQ_REL) == 0)
        job_post(job);
}

/* Writer thread: one op of a stream entry applied. */
static void on_apply_op_done(edge_store_op_t *op, int result)
{
    struct st_apply_t *a = op->data_owner;
    pthread_mutex_lock(&a->mutex);
    if (result != 0 && a->failed == 0)
        a->failed = result;
    if (--a->pending == 0)
        pthread_cond_signal(&a->cond);
    pthread_mutex_unlock(&a->mutex);
}

/* ---- the stream threads ---- */

static void set_state(int up, const char *detail)
{
    int changed;
    pthread_mutex_lock(&S.mutex);
    changed = S.state != up;
    S.state = up;
    pthread_mutex_unlock(&S.mutex);
    __atomic_store_n(&M.stream_up, (uint64_t)up, __ATOMIC_RELAXED);
    if (!up)
        ADD(stream_errors, 1);
    if (changed) {
        if (up)
            fprintf(stderr, "cdn-edge: purge stream: up (%s, stream %s)\n", S.rt->conf->purge.redis,
                    S.rt->conf->purge.stream);
        else
            fprintf(stderr, "cdn-edge: purge stream: down (%s): %s; retrying\n", S.rt->conf->purge.redis, detail);
    }
}

/* Waits up to ms unless stopping. @return 1 when stopping */
static int wait_or_stop(uint64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec += 1;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&S.mutex);
    while (!S.stopping && pthread_cond_timedwait(&S.cond, &S.mutex, &ts) != ETIMEDOUT)
        ;
    int stopping = S.stopping;
    pthread_mutex_unlock(&S.mutex);
    return stopping;
}

/* Submits ops and waits for all of their on_done. @return 0, or the first failing result */
static int apply_sync(edge_store_op_t *ops, size_t n)
{
    struct st_apply_t a = {.mutex = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER, .pending = n};
    for (size_t i = 0; i < n; ++i) {
        ops[i].on_done = on_apply_op_done;
        ops[i].data_owner = &a;
    }
    for (size_t i = 0; i < n; ++i)
        edge_store_submit(S.rt->store, ops + i);
    pthread_mutex_lock(&a.mutex);
    while (a.pending != 0)
        pthread_cond_wait(&a.cond, &a.mutex);
    pthread_mutex_unlock(&a.mutex);
    pthread_mutex_destroy(&a.mutex);
    pthread_cond_destroy(&a.cond);
    return a.failed;
}

static int persist_cursor(const char *id)
{
    edge_store_op_t op = {.kind = EDGE_STORE_OP_CURSOR, .stream_cursor = id};
    return apply_sync(&op, 1);
}

/* Marks an entry applied and hands back the jobs waiting for it or an earlier one. */
static void advance(const char *id)
{
    pthread_mutex_lock(&S.mutex);
    strcpy(S.applied, id);
    struct st_job_t **pp = &S.waiters;
    while (*pp != NULL) {
        struct st_job_t *job = *pp;
        if (purge_stream_id_compare(job->id, id) <= 0) {
            *pp = job->next;
            job->status = 200;
            job_post(job);
        } else {
            pp = &job->next;
        }
    }
    pthread_mutex_unlock(&S.mutex);
}

/* Applies one entry: its bans, the last carrying the cursor. @return 0, or a store result (retry later) */
static int apply_entry(const purge_stream_entry_t *e)
{
    purge_request_t pr;
    char err[256];
    edge_store_op_t *ops = NULL;
    size_t n = 0;
    int rc;

    int parsed = e->json != NULL && purge_request_parse(e->json, e->json_len, &S.stream_limits, &pr, err, sizeof(err)) == 0;
    const char *bad = parsed ? check_values(&pr) : NULL;
    if (!parsed || bad != NULL) {
        /* the publisher validated it: only a foreign writer or another version gets here; never retry it forever */
        if (e->json == NULL)
            snprintf(err, sizeof(err), "no `%s` field", PURGE_STREAM_FIELD);
        else if (bad != NULL)
            snprintf(err, sizeof(err), "%s", bad);
        if (parsed)
            purge_request_free(&pr);
        fprintf(stderr, "cdn-edge: PURGE stream_id=%s detail=\"entry skipped: %s\"\n", e->id, err);
        ADD(skipped, 1);
        ADD(errors, 1);
        return persist_cursor(e->id);
    }
    if ((ops = build_ops(&pr, &n)) == NULL) {
        purge_request_free(&pr);
        return EDGE_STORE_EIO;
    }
    ops[n - 1].stream_cursor = e->id;
    if ((rc = apply_sync(ops, n)) == 0)
        count_kinds(&pr);
    free(ops);
    purge_request_free(&pr);
    return rc;
}

/*
 * After a connect: were entries after our cursor trimmed away? Then purge everything (hard) and move the cursor to the
 * last trimmed id, in one transaction. @return 0 (checked or handled; *cursor may have moved), -1 Redis failed (err),
 * or a store result (retry later)
 */
static int handle_gap(purge_stream_t *conn, const char *stream, char *cursor, char *err, size_t errlen)
{
    char resume[PURGE_STREAM_ID_MAX];
    int rc = purge_stream_gap(conn, stream, cursor, resume, err, errlen);
    if (rc <= 0)
        return rc;
    fprintf(stderr, "cdn-edge: PURGE detail=\"stream entries after %s were trimmed before this node read them; purging "
                    "everything, reading on after %s\"\n", cursor, resume);
    edge_store_op_t op = {.kind = EDGE_STORE_OP_BAN, .ban_kind = EDGE_STORE_BAN_ALL, .stream_cursor = resume};
    if ((rc = apply_sync(&op, 1)) != 0)
        return rc;
    ADD(gaps, 1);
    ADD(kinds[KIND_ALL], 1);
    strcpy(cursor, resume);
    advance(cursor);
    return 0;
}

static void *consumer_main(void *arg)
{
    int gap_checked = 0;
    purge_stream_t *conn = NULL;
    uint64_t backoff = EDGE_PURGE_BACKOFF_MIN_MS;
    char cursor[PURGE_STREAM_ID_MAX], err[512];
    const char *stream = S.rt->conf->purge.stream;

    pthread_mutex_lock(&S.mutex);
    strcpy(cursor, S.applied);
    pthread_mutex_unlock(&S.mutex);

    for (;;) {
        pthread_mutex_lock(&S.mutex);
        int stopping = S.stopping;
        pthread_mutex_unlock(&S.mutex);
        if (stopping)
            break;
        if (conn == NULL) {
            conn = purge_stream_connect(&S.redis, err, sizeof(err));
            pthread_mutex_lock(&S.mutex);
            S.first_connect_done = 1;
            pthread_cond_broadcast(&S.cond);
            pthread_mutex_unlock(&S.mutex);
            if (conn == NULL) {
                set_state(0, err);
                wait_or_stop(backoff);
                backoff = backoff * 2 > EDGE_PURGE_BACKOFF_MAX_MS ? EDGE_PURGE_BACKOFF_MAX_MS : backoff * 2;
                continue;
            }
            set_state(1, NULL);
            backoff = EDGE_PURGE_BACKOFF_MIN_MS;
            gap_checked = 0;
        }
        if (cursor[0] == '\0') {
            /* a new store holds nothing older to purge: start at the stream's end, and remember it */
            int rc;
            if (purge_stream_last_id(conn, stream, cursor, err, sizeof(err)) != 0)
                goto Down;
            if ((rc = persist_cursor(cursor)) != 0) {
                fprintf(stderr, "cdn-edge: PURGE detail=\"cannot record the stream cursor: %s\"\n", edge_store_strerror(rc));
                cursor[0] = '\0';
                wait_or_stop(backoff);
                continue;
            }
            advance(cursor);
            gap_checked = 1; /* a new store: nothing older to purge */
        }
        if (!gap_checked) {
            int rc = handle_gap(conn, stream, cursor, err, sizeof(err));
            if (rc < 0)
                goto Down;
            if (rc != 0) {
                fprintf(stderr, "cdn-edge: PURGE detail=\"cannot purge after a stream gap: %s; retrying\"\n",
                        edge_store_strerror(rc));
                ADD(errors, 1);
                wait_or_stop(backoff);
                continue;
            }
            gap_checked = 1;
        }
        pthread_mutex_lock(&S.mutex);
        int caught_up = S.caught_up;
        pthread_mutex_unlock(&S.mutex);
        purge_stream_entry_t *entries;
        size_t n;
        if (purge_stream_read(conn, stream, cursor, caught_up ? EDGE_PURGE_READ_BLOCK_MS : 0, EDGE_PURGE_READ_COUNT,
                              &entries, &n, err, sizeof(err)) != 0)
            goto Down;
        if (n == 0) {
            __atomic_store_n(&M.lag_ms, 0, __ATOMIC_RELAXED);
            if (!caught_up) {
                pthread_mutex_lock(&S.mutex);
                S.caught_up = 1;
                pthread_cond_broadcast(&S.cond);
                pthread_mutex_unlock(&S.mutex);
            }
            continue;
        }
        for (size_t i = 0; i < n; ++i) {
            uint64_t ms, seq, now = now_ms();
            if (purge_stream_id_parse(entries[i].id, &ms, &seq) == 0)
                __atomic_store_n(&M.lag_ms, now > ms ? now - ms : 0, __ATOMIC_RELAXED);
            int rc = apply_entry(entries + i);
            if (rc != 0) {
                /* not applied: the cursor stays, the entry is read again after a pause */
                fprintf(stderr, "cdn-edge: PURGE stream_id=%s detail=\"not applied: %s; retrying\"\n", entries[i].id,
                        edge_store_strerror(rc));
                ADD(errors, 1);
                wait_or_stop(backoff);
                break;
            }
            strcpy(cursor, entries[i].id);
            ADD(applied, 1);
            advance(cursor);
        }
        purge_stream_entries_free(entries, n);
        continue;

    Down:
        set_state(0, err);
        purge_stream_close(conn);
        conn = NULL;
        wait_or_stop(backoff);
    }
    purge_stream_close(conn);
    return NULL;
}

static void *publisher_main(void *arg)
{
    purge_stream_t *conn = NULL;
    char err[512];

    for (;;) {
        pthread_mutex_lock(&S.mutex);
        while (S.pub_head == NULL && !S.stopping)
            pthread_cond_wait(&S.pub_cond, &S.mutex);
        struct st_job_t *job = S.pub_head;
        if (job == NULL) {
            pthread_mutex_unlock(&S.mutex);
            break;
        }
        if ((S.pub_head = job->next) == NULL)
            S.pub_tail = NULL;
        job->next = NULL;
        int stopping = S.stopping;
        pthread_mutex_unlock(&S.mutex);

        if (stopping) {
            job->status = 503;
            snprintf(job->reason, sizeof(job->reason), "shutting down");
            job_post(job);
            continue;
        }
        /* one retry on a fresh connection: a connection that idled may have been closed by Redis */
        int ok = 0;
        for (int attempt = 0; attempt < 2 && !ok; ++attempt) {
            if (conn == NULL && (conn = purge_stream_connect(&S.redis, err, sizeof(err))) == NULL)
                break;
            if (purge_stream_add(conn, S.rt->conf->purge.stream, S.rt->conf->purge.stream_max_len, job->json,
                                 strlen(job->json), job->id, err, sizeof(err)) == 0) {
                ok = 1;
            } else {
                purge_stream_close(conn);
                conn = NULL;
            }
        }
        if (!ok) {
            job->status = 503;
            snprintf(job->reason, sizeof(job->reason), "XADD failed: %s", err);
            job_post(job);
            continue;
        }
        ADD(published, 1);
        pthread_mutex_lock(&S.mutex);
        if (S.applied[0] != '\0' && purge_stream_id_compare(S.applied, job->id) >= 0) {
            job->status = 200;
            job_post(job);
        } else {
            job->next = S.waiters;
            S.waiters = job;
        }
        pthread_mutex_unlock(&S.mutex);
    }
    purge_stream_close(conn);
    return NULL;
}

/* ---- requests ---- */

/* Loop thread: a validated request (pr is moved into the job) starts. */
static void start_job(h2o_req_t *req, edge_runtime_t *rt, purge_request_t *pr)
{
    struct st_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL)
        h2o_fatal("no memory");
    job->thread = edge_this_thread;
    job->req = req;
    job->pr = *pr;
    memset(pr, 0, sizeof(*pr));
    job->wait_timer.cb = on_wait_timeout;

    struct st_job_ref_t *ref = h2o_mem_alloc_shared(&req->pool, sizeof(*ref), on_ref_dispose);
    ref->job = job;
    job->ref = ref;
    ++edge_this_thread->inflight_requests;

    if (S.has_stream) {
        if ((job->json = purge_request_to_json(&job->pr)) == NULL) {
            job_take_req(job);
            job_free(job);
            ADD(failed, 1);
            ADD(errors, 1);
            send_error(req, 500, "Internal Server Error", "cannot serialise the purge");
            return;
        }
        h2o_timeout_link(req->conn->ctx->loop, &wait_timeout, &job->wait_timer);
        pthread_mutex_lock(&S.mutex);
        if (S.pub_tail != NULL)
            S.pub_tail->next = job;
        else
            S.pub_head = job;
        S.pub_tail = job;
        pthread_cond_signal(&S.pub_cond);
        pthread_mutex_unlock(&S.mutex);
        return;
    }

    if ((job->ops = build_ops(&job->pr, &job->num_ops)) == NULL)
        h2o_fatal("no memory");
    job->pending = job->num_ops;
    for (size_t i = 0; i < job->num_ops; ++i) {
        job->ops[i].on_done = on_job_op_done;
        job->ops[i].data_owner = job;
    }
    /* every op is counted in `pending` before the first is submitted: the last on_done posts the job */
    size_t n = job->num_ops;
    edge_store_op_t *ops = job->ops;
    for (size_t i = 0; i < n; ++i)
        edge_store_submit(rt->store, ops + i);
}

/* @return 0 when authorised, else the request was answered (401/403) */
static int authorise(h2o_req_t *req, edge_runtime_t *rt)
{
    const char *token = rt->conf->admin.token;
    if (token == NULL || token[0] == '\0') {
        ADD(forbidden, 1);
        send_error(req, 403, "Forbidden", "no admin token configured");
        return -1;
    }
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i == -1 || purge_auth_check(req->headers.entries[i].value.base, req->headers.entries[i].value.len, token) != 0) {
        ADD(unauthorized, 1);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL, H2O_STRLIT("Bearer"));
        send_error(req, 401, "Unauthorized", i == -1 ? "missing bearer token" : "invalid bearer token");
        return -1;
    }
    return 0;
}

static int on_post_purge(h2o_handler_t *_self, h2o_req_t *req)
{
    struct st_purge_handler_t *self = (void *)_self;
    purge_request_t pr;
    char err[512];
    const char *bad;

    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, H2O_STRLIT("/purge")))
        return -1;
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("POST"));
        send_error(req, 405, "Method Not Allowed", "use POST");
        return 0;
    }
    if (authorise(req, self->rt) != 0)
        return 0;
    if (purge_request_check_size(req->entity.len, &S.limits) != PURGE_REQUEST_OK) {
        ADD(too_large, 1);
        snprintf(err, sizeof(err), "body over the limit of %zu bytes", S.limits.max_body_bytes);
        send_error(req, 413, "Payload Too Large", err);
        return 0;
    }
    int rc = purge_request_parse(req->entity.base != NULL ? req->entity.base : "", req->entity.len, &S.limits, &pr, err,
                                 sizeof(err));
    if (rc == PURGE_REQUEST_ETOOBIG) {
        ADD(too_large, 1);
        send_error(req, 413, "Payload Too Large", err);
        return 0;
    }
    if (rc != PURGE_REQUEST_OK) {
        ADD(invalid, 1);
        send_error(req, 400, "Bad Request", err);
        return 0;
    }
    if ((bad = check_values(&pr)) != NULL) {
        purge_request_free(&pr);
        ADD(invalid, 1);
        send_error(req, 400, "Bad Request", bad);
        return 0;
    }
    start_job(req, self->rt, &pr);
    return 0;
}

static int on_client_req(h2o_handler_t *_self, h2o_req_t *req)
{
    struct st_purge_handler_t *self = (void *)_self;
    return edge_purge_api_handle_client_purge(req, self->rt);
}

/* ---- public functions ---- */

int edge_purge_api_handle_client_purge(h2o_req_t *req, edge_runtime_t *rt)
{
    purge_request_t pr;
    h2o_iovec_t key, path;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("PURGE")))
        return -1;
    if (authorise(req, rt) != 0)
        return 0;
    if (edge_request_key(rt, &req->pool, req->scheme->name, req->authority, req->path, &key, &path) != 0) {
        ADD(invalid, 1);
        send_error(req, 400, "Bad Request", "invalid request target or host");
        return 0;
    }
    if (key.len > EDGE_STORE_MAX_BAN_VALUE) {
        ADD(invalid, 1);
        send_error(req, 400, "Bad Request", "URL longer than 8192 bytes");
        return 0;
    }
    memset(&pr, 0, sizeof(pr));
    if (purge_list_push(&pr.urls, key.base) != 0)
        h2o_fatal("no memory");
    start_job(req, rt, &pr);
    return 0;
}

void edge_purge_api_register(h2o_hostconf_t *hostconf, edge_runtime_t *rt)
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, "/purge", 0);
    struct st_purge_handler_t *self = (void *)h2o_create_handler(pathconf, sizeof(*self));
    self->super.on_req = on_post_purge;
    self->rt = rt;
}

void edge_purge_api_register_client(h2o_pathconf_t *pathconf, edge_runtime_t *rt)
{
    struct st_purge_handler_t *self = (void *)h2o_create_handler(pathconf, sizeof(*self));
    self->super.on_req = on_client_req;
    self->rt = rt;
}

void edge_purge_api_thread_init(edge_thread_t *th)
{
    h2o_multithread_register_receiver(th->ctx.queue, &th->purge_receiver, on_purge_messages);
    h2o_timeout_init(th->ctx.loop, &wait_timeout, th->rt->conf->purge.timeout_ms);
}

int edge_purge_api_start(edge_runtime_t *rt)
{
    const conf_purge_t *c = &rt->conf->purge;
    int rc;

    S.rt = rt;
    S.limits = (purge_limits_t){c->max_body_bytes, c->max_items, c->max_items};
    S.stream_limits = (purge_limits_t){EDGE_PURGE_STREAM_MAX_BODY, EDGE_PURGE_STREAM_MAX_ITEMS, EDGE_PURGE_STREAM_MAX_ITEMS};
    S.started = 1;
    if (c->redis == NULL)
        return 0;

    S.has_stream = 1;
    S.redis = (purge_stream_settings_t){c->redis_host, c->redis_port, c->redis_user, c->redis_password, c->redis_db,
                                        EDGE_PURGE_REDIS_TIMEOUT_MS};
    if ((rc = edge_store_get_stream_cursor(rt->store, S.applied, sizeof(S.applied))) != 0 && rc != EDGE_STORE_NOTFOUND) {
        fprintf(stderr, "cdn-edge: purge stream: cannot read the stream cursor: %s\n", edge_store_strerror(rc));
        return -1;
    }
    if (S.applied[0] != '\0' && purge_stream_id_compare(S.applied, "0-0") < 0) {
        fprintf(stderr, "cdn-edge: purge stream: the stored cursor `%s` is not a stream id\n", S.applied);
        return -1;
    }
    if ((rc = pthread_create(&S.consumer, NULL, consumer_main, NULL)) != 0 ||
        (rc = pthread_create(&S.publisher, NULL, publisher_main, NULL)) != 0) {
        fprintf(stderr, "cdn-edge: purge stream: cannot start a thread: %s\n", strerror(rc));
        return -1;
    }

    /* replay what this node missed before it serves; bounded, and not at all when Redis is unreachable */
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += (time_t)(c->catchup_timeout_ms / 1000);
    deadline.tv_nsec += (long)(c->catchup_timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec += 1;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&S.mutex);
    while (!S.caught_up && !(S.first_connect_done && S.state == 0) &&
           pthread_cond_timedwait(&S.cond, &S.mutex, &deadline) != ETIMEDOUT)
        ;
    int caught_up = S.caught_up;
    pthread_mutex_unlock(&S.mutex);
    if (caught_up)
        fprintf(stderr, "cdn-edge: purge stream: caught up at %s\n", S.applied);
    else
        fprintf(stderr, "cdn-edge: purge stream: serving before catching up (Redis %s); purges apply when it is\n",
                S.state == 0 ? "unreachable" : "slow");
    return 0;
}

void edge_purge_api_stop(void)
{
    if (!S.has_stream)
        return;
    pthread_mutex_lock(&S.mutex);
    S.stopping = 1;
    pthread_cond_broadcast(&S.cond);
    pthread_cond_broadcast(&S.pub_cond);
    pthread_mutex_unlock(&S.mutex);
    pthread_join(S.publisher, NULL);
    pthread_join(S.consumer, NULL);
    /* the loops are gone: the waiting jobs are never answered (their requests were drained or cut) */
    pthread_mutex_lock(&S.mutex);
    while (S.waiters != NULL) {
        struct st_job_t *job = S.waiters;
        S.waiters = job->next;
        job->status = 503;
        snprintf(job->reason, sizeof(job->reason), "shutting down");
        job_post(job);
    }
    pthread_mutex_unlock(&S.mutex);
    S.has_stream = 0;
}

int edge_purge_api_stream_state(void)
{
    if (!S.has_stream)
        return -1;
    return LOAD(stream_up) != 0;
}

h2o_iovec_t edge_purge_api_render_metrics(h2o_mem_pool_t *pool)
{
    char buf[8192];
    size_t n = 0;
#define OUT(...) (n += (size_t)snprintf(buf + n, n < sizeof(buf) ? sizeof(buf) - n : 0, __VA_ARGS__))
    OUT("# HELP cdn_edge_purges_total Purge items applied on this node, by kind.\n# TYPE cdn_edge_purges_total counter\n");
    for (size_t i = 0; i < NUM_KINDS; ++i)
        OUT("cdn_edge_purges_total{kind=\"%s\"} %" PRIu64 "\n", kind_names[i], LOAD(kinds[i]));
    OUT("# HELP cdn_edge_purge_requests_total Purge requests (POST /purge, PURGE) by result.\n"
        "# TYPE cdn_edge_purge_requests_total counter\n");
    OUT("cdn_edge_purge_requests_total{result=\"ok\"} %" PRIu64 "\n", LOAD(ok));
    OUT("cdn_edge_purge_requests_total{result=\"unauthorized\"} %" PRIu64 "\n", LOAD(unauthorized));
    OUT("cdn_edge_purge_requests_total{result=\"forbidden\"} %" PRIu64 "\n", LOAD(forbidden));
    OUT("cdn_edge_purge_requests_total{result=\"invalid\"} %" PRIu64 "\n", LOAD(invalid));
    OUT("cdn_edge_purge_requests_total{result=\"too_large\"} %" PRIu64 "\n", LOAD(too_large));
    OUT("cdn_edge_purge_requests_total{result=\"failed\"} %" PRIu64 "\n", LOAD(failed));
    OUT("cdn_edge_purge_requests_total{result=\"unavailable\"} %" PRIu64 "\n", LOAD(unavailable));
    OUT("cdn_edge_purge_requests_total{result=\"timeout\"} %" PRIu64 "\n", LOAD(timeout));
    OUT("# HELP cdn_edge_purge_errors_total Purges that failed or were skipped.\n# TYPE cdn_edge_purge_errors_total "
        "counter\ncdn_edge_purge_errors_total %" PRIu64 "\n",
        LOAD(errors));
    if (S.has_stream) {
        OUT("# HELP cdn_edge_purge_stream_up 1 when the purge stream (Redis) is reachable.\n"
            "# TYPE cdn_edge_purge_stream_up gauge\ncdn_edge_purge_stream_up %" PRIu64 "\n",
            LOAD(stream_up));
        uint64_t lag = LOAD(lag_ms);
        OUT("# HELP cdn_edge_purge_stream_lag_seconds Age of the stream entry being applied (0 when caught up).\n"
            "# TYPE cdn_edge_purge_stream_lag_seconds gauge\ncdn_edge_purge_stream_lag_seconds %" PRIu64 ".%03u\n",
            lag / 1000, (unsigned)(lag % 1000));
        OUT("# TYPE cdn_edge_purge_stream_applied_total counter\ncdn_edge_purge_stream_applied_total %" PRIu64 "\n",
            LOAD(applied));
        OUT("# TYPE cdn_edge_purge_stream_published_total counter\ncdn_edge_purge_stream_published_total %" PRIu64 "\n",
            LOAD(published));
        OUT("# TYPE cdn_edge_purge_stream_skipped_total counter\ncdn_edge_purge_stream_skipped_total %" PRIu64 "\n",
            LOAD(skipped));
        OUT("# HELP cdn_edge_purge_stream_gaps_total Times entries were trimmed before this node read them: all purged.\n"
            "# TYPE cdn_edge_purge_stream_gaps_total counter\ncdn_edge_purge_stream_gaps_total %" PRIu64 "\n",
            LOAD(gaps));
        OUT("# HELP cdn_edge_purge_stream_errors_total Failed connections and commands to Redis.\n"
            "# TYPE cdn_edge_purge_stream_errors_total counter\ncdn_edge_purge_stream_errors_total %" PRIu64 "\n",
            LOAD(stream_errors));
    }
#undef OUT
    if (n >= sizeof(buf))
        n = sizeof(buf) - 1;
    return h2o_strdup(pool, buf, n);
}
