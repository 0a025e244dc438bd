/*
 * edge/handler.c: the caching proxy handler: hit, miss (fill), pass.
 *
 * Objects and their owners:
 * - A *fill* (struct st_fill_t) is one origin response on its way to clients and, when storable,
 *   into the store. It lives on the thread that started it and is touched only there. It is
 *   refcounted: one reference for the origin side while the fetch is live, one per attached
 *   client, one per store op in flight. When the last goes, a fill that submitted chunks but never
 *   committed submits an ABORT so the writer deletes them.
 * - The body is kept as fixed-size chunks (EDGE_STORE_CHUNK_SIZE). A chunk stays in memory while
 *   it is filling, while its store op is in flight, while a client's send points into it, and
 *   (when not storing) until every client has passed it. A committed chunk is dropped from memory;
 *   a client that reaches it later reads it from LMDB. So a slow client never paces the fill (the
 *   store holds what it has not read yet) and a fill never holds more than MAX_MEM_CHUNKS chunks:
 *   beyond that the origin is paused until the writer catches up (or, passing, the client).
 * - A *reader* (struct st_reader_t) is one client response, allocated in req->pool with a
 *   disposer, so it is released on every path (final send, error, client gone). It reads either a
 *   stored object through one read transaction (a hit) or a live fill (a miss or a pass). Rules of
 *   h2o 2.2.5 it obeys (shared/H2O-2.2.5.md §4, §7): one outstanding h2o_send; never an empty
 *   IN_PROGRESS send; nothing touched after a FINAL/ERROR send (h1 may dispose the request inside
 *   it); bytes given to h2o stay valid until proceed or dispose.
 * - Store op completions arrive on the writer thread and are posted to the owning thread's
 *   store_receiver, where they update the fill.
 */
#define _GNU_SOURCE /* memmem */
#define H2O_USE_LIBUV 0
#include <arpa/inet.h>
#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include "h2o.h"
#include "edge/cache_key.h"
#include "edge/cache_policy.h"
#include "edge/compress.h"
#include "edge/compress_job.h"
#include "edge/conditional.h"
#include "edge/range.h"
#include "edge/vary.h"
#include "purge/tags.h"
#include "edge/edge.h"
#include "edge/metrics.h"
#include "edge/object.h"

#ifndef EDGE_FILL_MAX_MEM_CHUNKS
#define EDGE_FILL_MAX_MEM_CHUNKS 8 /* per fill: 512 KiB with 64 KiB chunks */
#endif
/* gzip from the origin is decoded in pieces of this many input bytes, the memory bound checked between pieces: one
 * piece makes at most EDGE_DEFAULT_GUNZIP_MAX_RATIO times its size (256 KiB) before the check stops the decoder */
#ifndef EDGE_GUNZIP_PIECE
#define EDGE_GUNZIP_PIECE 256
#endif

__thread edge_thread_t *edge_this_thread;

struct st_edge_handler_t {
    h2o_handler_t super;
    edge_runtime_t *rt;
};

struct st_fill_t;

/* A store completion posted from the writer thread to the owner's loop. */
struct st_store_msg_t {
    h2o_multithread_message_t super;
    int is_commit; /* 0: a chunk op, 1: the commit, 2: an invalidation */
    int result;
};

/* An invalidation after an unsafe request: its response waits until the writer applied it, so a
 * client that reads after its own write never gets the old object. */
struct st_inval_op_t {
    edge_store_op_t op;
    struct st_store_msg_t msg;
    struct st_fill_t *fill;
};

/* A chunk of the origin's own gzip bytes (kept as the gzip variant): submitted when full, freed when applied. */
struct st_rawchunk_t {
    edge_store_op_t op;
    struct st_store_msg_t msg; /* is_commit = 3 */
    struct st_fill_t *fill;
    size_t len;
    char buf[EDGE_STORE_CHUNK_SIZE];
};

struct st_chunk_t {
    struct st_fill_t *fill;
    uint32_t index;
    size_t len;
    unsigned client_refs; /* sends of clients pointing into buf */
    unsigned op_pending : 1, committed : 1, submitted : 1;
    edge_store_op_t op;
    struct st_store_msg_t msg;
    size_t cap; /* EDGE_STORE_CHUNK_SIZE, or less for the last chunk of a body whose length was announced */
    char buf[];
};

enum fill_mode { FILL_CACHE, FILL_PASS };

#ifndef EDGE_MAX_VARIANTS
#define EDGE_MAX_VARIANTS 32 /* variants kept per URL (RFC 9111 §4.1); the oldest go first */
#endif
#ifndef EDGE_HFP_SLOTS
#define EDGE_HFP_SLOTS 4096 /* hit-for-pass memory: keys recently found uncacheable (direct-mapped, bounded) */
#endif
#ifndef EDGE_HFP_SEC
#define EDGE_HFP_SEC 10 /* for how long such a key's requests go to the origin without waiting on each other */
#endif
#ifndef EDGE_MAX_HEURISTIC_SEC
#define EDGE_MAX_HEURISTIC_SEC 86400 /* the cap on heuristic freshness (RFC 9111 §4.2.2) */
#endif
#ifndef EDGE_DEFAULT_STALE_GRACE_SEC
#define EDGE_DEFAULT_STALE_GRACE_SEC 0 /* stale-while-revalidate for responses that do not allow it: none (RFC 5861) */
#endif

/*
 * A stale stored response that a fill revalidates (RFC 9111 §4.3.1), copied out of the store (the
 * read transaction that found it is gone): its validators go to the origin, a 304 freshens it
 * (§4.3.4) and its body is served from its own chunks, and stale-if-error serves it when the origin
 * fails (RFC 5861 §4).
 */
struct st_stale_t {
    int by_request; /* the object is fresh, but the request's directives want it revalidated (fwd=request) */
    /* what the lookup learned about variants (RFC 9111 §4.1), stale object or not */
    int has_variant;                   /* the URL has a Vary marker: the object is keyed by `variant` */
    int vary_miss;                     /* ... and this request's variant was not stored */
    h2o_iovec_t variant;
    uint8_t hash[EDGE_STORE_HASH_LEN]; /* the hash of the object looked up (the variant's, or the URL's) */
    int active;
    int soft; /* soft-purged: stale from the purge on, whatever its age */
    uint64_t fill_id, body_size;
    uint32_t num_chunks;
    int status;
    uint32_t flags;
    int64_t swr, sie, lifetime, initial_age, response_time;
    h2o_header_t *headers;
    size_t num_headers;
};

/*
 * The process-wide face of a cacheable fill, so that a request for the same key on any thread is
 * served from it instead of starting another origin fetch (DESIGN.md: exactly one fetch per key at
 * a time). Such a *waiter* reads the fill's committed chunks from the store; the owner posts it a
 * message whenever the state or the committed length changes. Lock order: registry_mutex, then
 * `mutex`. Everything after `mutex` is guarded by it; the head fields are written once, before
 * `state` leaves SF_WAIT_HEAD, and are read-only afterwards.
 */
enum shared_state { SF_WAIT_HEAD, SF_STORING, SF_RELEASED, SF_DONE, SF_FAILED };

struct st_shared_fill_t {
    h2o_linklist_t registry_link; /* under registry_mutex */
    int registered;               /* under registry_mutex */
    uint8_t hash[EDGE_STORE_HASH_LEN];
    pthread_mutex_t mutex;
    unsigned refcnt;              /* the owner fill, and each waiter */
    enum shared_state state;
    int origin_complete;          /* the origin's response arrived whole; only its commit is pending */
    uint64_t committed_bytes;     /* the body bytes readable from the store */
    h2o_linklist_t waiters;
    size_t num_waiters;
    /* the head, immutable once published */
    h2o_mem_pool_t pool;
    int status;
    h2o_iovec_t reason;
    h2o_header_t *headers;
    size_t num_headers;
    int64_t content_length;
    origin_framing_t framing;
    uint64_t fill_id;
    int64_t initial_age, response_time;
    const char *cache_status;
    int64_t lifetime;
    int has_vary;       /* the response varies: a waiter is served only when its own variant matches */
    edge_vary_t vary;   /* points into the head (pool) */
    h2o_iovec_t variant;
};

/* One client of another fill. Freed when its reader is gone and no message for it is in flight. */
struct st_waiter_t {
    h2o_linklist_t link;          /* in shared->waiters, under shared->mutex */
    edge_thread_t *thread;
    struct st_reader_t *reader;   /* touched only on `thread`; NULL once the client is gone */
    unsigned refcnt;              /* atomic: the reader, and each message in flight */
};

struct st_waiter_msg_t {
    h2o_multithread_message_t super;
    struct st_waiter_t *waiter;
};

#ifndef EDGE_MAX_WAITERS
#define EDGE_MAX_WAITERS 10000 /* per fill; more clients than this fetch on their own */
#endif
#define REGISTRY_BUCKETS 4096

static pthread_mutex_t registry_mutex = PTHREAD_MUTEX_INITIALIZER;
static h2o_linklist_t registry[REGISTRY_BUCKETS];
static pthread_once_t registry_once = PTHREAD_ONCE_INIT;

struct st_fill_t {
    edge_thread_t *thread;
    struct st_shared_fill_t *shared; /* cacheable fills: what other requests for the key attach to */
    unsigned refcnt;
    enum fill_mode mode;
    int invalidates;       /* an unsafe request whose success invalidates its target (RFC 9111 §4.4) */
    struct st_stale_t stale;   /* a revalidation: the stored response it started from */
    uint64_t stale_started_id; /* a fill id taken when the revalidation started (purges during it count) */
    int revalidated;           /* the origin answered 304: the stored record is being freshened */
    uint32_t obj_flags;        /* EDGE_OBJECT_* of the response being stored */
    h2o_iovec_t variant;       /* a response with Vary: its secondary key; stored under the variant's hash */
    int has_variant;
    uint8_t url_hash[EDGE_STORE_HASH_LEN]; /* the URL's hash: the group of its variants, the Vary marker's key */
    int compress_after_commit; /* a compressible identity object: gzip / br variants are made once stored */
    /*
     * gzip from the origin (asked for with `Accept-Encoding: gzip` when compression is on): the fill decodes it as
     * it arrives, so clients, the store and the compression jobs all see identity; the origin's gzip bytes are
     * also written as chunks of their own fill id (gz_fill_id) and become the gzip variant once the base is
     * committed (edge/compress_job.h gzip_fill_id). Decoding is bounded (edge/compress.h: size and ratio); a bad
     * or bomb body is never stored, and a client gets a 502 when it is found in the first body bytes (the head
     * waits for them: heads_deferred), else a cut response.
     */
    int asked_gzip;
    edge_decoder_t *gunzip;      /* while decoding */
    uint64_t gunzip_in;          /* compressed bytes fed */
    int heads_deferred;          /* the head waits until the first body bytes decoded */
    int end_deferred;            /* the origin ended while undecoded input was stashed (memory bound) */
    char *stash;                 /* undecoded input: [stash_off, stash_len) */
    size_t stash_len, stash_off, stash_cap;
    int drain_scheduled;
    h2o_timeout_entry_t drain_timer;
    int gz_keep;                 /* the origin's gzip bytes go to the store */
    uint64_t gz_fill_id;         /* owned by the fill until handed to a compression job */
    struct st_rawchunk_t *gz_cur;
    uint32_t gz_num_chunks;
    uint64_t gz_bytes;
    int gz_submitted;
    const char **tags;         /* its purge tags (Surrogate-Key, Cache-Tag, ...) */
    size_t *tag_lens;
    size_t num_tags;
    int64_t swr, sie;
    unsigned pending_invalidations; /* the response head waits for these store ops */
    origin_fetch_t *fetch; /* NULL once the origin side ended */
    h2o_mem_pool_t pool;   /* the response head and key */
    h2o_iovec_t key;
    uint8_t hash[EDGE_STORE_HASH_LEN];
    int head_received;
    int status;
    h2o_iovec_t reason;
    h2o_header_t *headers;
    size_t num_headers;
    origin_framing_t framing;
    int64_t content_length;
    int64_t request_time, response_time, initial_age, lifetime;
    const char *cache_status; /* the member sent to this fill's clients */
    /* storing */
    int storing;          /* headed for the store */
    int store_failed;     /* counted already */
    int commit_submitted, committed_ok, chunks_submitted;
    uint64_t fill_id;
    unsigned ops_in_flight;
    edge_store_op_t commit_op;
    struct st_store_msg_t commit_msg;
    h2o_iovec_t commit_blob;
    /* body */
    struct st_chunk_t **chunks; /* index -> chunk in memory, or NULL when dropped */
    size_t num_chunks, cap_chunks;
    size_t mem_lo;              /* no chunk below this index is in memory */
    size_t mem_chunks;
    uint64_t bytes;             /* body bytes received */
    uint64_t committed_bytes;   /* body bytes committed to the store (chunks commit in order) */
    int origin_ended;
    int origin_err;
    int paused;
    h2o_linklist_t readers;
};

struct st_reader_t {
    h2o_generator_t super;
    h2o_req_t *req;
    h2o_linklist_t link;        /* in fill->readers */
    struct st_fill_t *fill;     /* live source, or NULL for a stored object */
    edge_store_txn_t *txn;      /* stored source, or a fill's committed chunks */
    uint64_t fill_id;
    uint64_t body_size;         /* stored objects */
    const void *inline_body;    /* a stored object's whole body kept in its record (valid with txn), else NULL */
    uint32_t num_chunks;
    uint64_t pos;               /* body bytes handed to h2o so far (the offset of the next byte to send) */
    uint64_t end;               /* a range: the offset after its last byte; 0: the whole body */
    struct st_chunk_t *held;    /* chunk the outstanding send points into */
    struct st_shared_fill_t *shared; /* another fill this reader waits on (reads its committed chunks) */
    struct st_waiter_t *waiter;
    h2o_iovec_t key, path;      /* to fetch on its own when the shared fill turns out unstorable */
    uint8_t hash[EDGE_STORE_HASH_LEN];
    unsigned is_head : 1, sending : 1, waiting : 1, started : 1, finished : 1;
    unsigned only_if_cached : 1; /* RFC 9111 §5.2.1.7: never go to the origin for this client */
    h2o_timeout_entry_t watchdog;
};

/* --- small helpers --- */

static int64_t now_sec(void)
{
    return (int64_t)time(NULL);
}

static const char *status_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 203: return "Non-Authoritative Information";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 300: return "Multiple Choices";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

static void add_cache_status(h2o_req_t *req, const char *value)
{
    /* not an h2o token: one shared name instead of one allocated per response */
    static h2o_iovec_t name = {H2O_STRLIT("cache-status")};
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + 1);
    req->res.headers.entries[req->res.headers.size++] = (h2o_header_t){&name, NULL, h2o_iovec_init(value, strlen(value))};
}

/* Decimal digits of v into buf (at least 21 bytes), NUL-terminated; the hit path avoids snprintf. @return the length */
static size_t i64toa(char *buf, int64_t v)
{
    char tmp[21];
    size_t n = 0, len = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        buf[len++] = '-';
    while (n != 0)
        buf[len++] = tmp[--n];
    buf[len] = '\0';
    return len;
}

static void add_age(h2o_req_t *req, int64_t age)
{
    char *buf = h2o_mem_alloc_pool(&req->pool, 24);
    size_t n = i64toa(buf, age < 0 ? 0 : age);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_AGE, NULL, buf, n);
}

/* Copies a stored or received header to the response, minus what h2o writes itself (Date) and what
 * the cache recomputes (Age). */
/* Fields meant for this cache alone (RFC 9213 targeted fields, surrogate keys and cache tags): they
 * rule or index the cache and never reach clients. None of them is an h2o token. */
static int is_internal_response_header(const h2o_iovec_t *name)
{
    static const h2o_iovec_t internal[] = {{H2O_STRLIT("cdn-cache-control")}, {H2O_STRLIT("surrogate-control")},
                                           {H2O_STRLIT("surrogate-key")},     {H2O_STRLIT("cache-tag")},
                                           {H2O_STRLIT("x-next-cache-tags")}};
    if (h2o_iovec_is_token(name))
        return 0;
    for (size_t i = 0; i != sizeof(internal) / sizeof(internal[0]); ++i)
        if (h2o_memis(name->base, name->len, internal[i].base, internal[i].len))
            return 1;
    /* the configured tag headers (purge.tag_headers) */
    for (const char *const *t = edge_this_thread->rt->tag_headers; t != NULL && *t != NULL; ++t)
        if (h2o_memis(name->base, name->len, *t, strlen(*t)))
            return 1;
    return 0;
}

static void copy_response_headers(h2o_req_t *req, const h2o_header_t *headers, size_t num, int drop_age)
{
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + num);
    for (size_t i = 0; i != num; ++i) {
        const h2o_header_t *h = headers + i;
        if (h->name == &H2O_TOKEN_DATE->buf || (drop_age && h->name == &H2O_TOKEN_AGE->buf) ||
            is_internal_response_header(h->name))
            continue;
        if (h2o_iovec_is_token(h->name)) {
            h2o_add_header(&req->pool, &req->res.headers, (const h2o_token_t *)h->name, h->orig_name, h->value.base,
                           h->value.len);
        } else {
            h2o_add_header_by_str(&req->pool, &req->res.headers, h->name->base, h->name->len, 0, h->orig_name,
                                  h->value.base, h->value.len);
        }
    }
}

/* copy_response_headers for a hit's whole stored head, without copying a byte: names and values stay where
 * edge_object_decode left them (the record, pinned by the reader's read transaction until the request is
 * disposed, and req->pool). Room for `extra` headers more is reserved, so the ones added next do not grow
 * the vector either. */
static void link_stored_headers(h2o_req_t *req, const h2o_header_t *headers, size_t num, size_t extra)
{
    h2o_vector_reserve(&req->pool, &req->res.headers, req->res.headers.size + num + extra);
    for (size_t i = 0; i != num; ++i) {
        const h2o_header_t *h = headers + i;
        if (h->name == &H2O_TOKEN_DATE->buf || h->name == &H2O_TOKEN_AGE->buf || is_internal_response_header(h->name))
            continue;
        req->res.headers.entries[req->res.headers.size++] = *h;
    }
}

static void send_error(h2o_req_t *req, int status, const char *cache_status, const char *body)
{
    EDGE_METRIC_ADD(req_error, 1);
    if (cache_status != NULL)
        add_cache_status(req, cache_status);
    h2o_send_error_generic(req, status, status_reason(status), body, H2O_SEND_ERROR_KEEP_HEADERS);
}

/* --- fills --- */

static void fill_unref(struct st_fill_t *fill);
static void reader_pump(struct st_reader_t *reader);
static void shared_update(struct st_shared_fill_t *sf, enum shared_state state, uint64_t committed);
static void shared_release(struct st_shared_fill_t *sf);
static void fill_respond_heads(struct st_fill_t *fill);
static void on_chunk_done(edge_store_op_t *op, int result);
static void on_commit_done(edge_store_op_t *op, int result);
static void on_abort_done(edge_store_op_t *op, int result);

static struct st_fill_t *fill_new(edge_thread_t *th, enum fill_mode mode)
{
    struct st_fill_t *fill = h2o_mem_alloc(sizeof(*fill));
    memset(fill, 0, sizeof(*fill));
    fill->thread = th;
    fill->refcnt = 1; /* the origin side */
    fill->mode = mode;
    h2o_mem_init_pool(&fill->pool);
    h2o_linklist_init_anchor(&fill->readers);
    fill->content_length = -1;
    ++th->live_fills;
    return fill;
}

static void gz_discard(struct st_fill_t *fill);

/* Every fill id ends in a commit, an abort or a release, or purges could not retire. A fill id that will never
 * commit: with chunks possibly in the store the writer deletes them (an ABORT, which outlives the fill), else it is
 * released. */
static void end_fill_id(edge_thread_t *th, uint64_t fill_id, int chunks_written)
{
    if (chunks_written) {
        edge_store_op_t *op = h2o_mem_alloc(sizeof(*op));
        memset(op, 0, sizeof(*op));
        op->kind = EDGE_STORE_OP_ABORT;
        op->fill_id = fill_id;
        op->on_done = on_abort_done;
        edge_store_submit(th->rt->store, op);
    } else {
        edge_store_fill_release(th->rt->store, fill_id);
    }
}

static void fill_destroy(struct st_fill_t *fill)
{
    assert(h2o_linklist_is_empty(&fill->readers));
    assert(fill->ops_in_flight == 0);
    assert(!fill->drain_scheduled);
    gz_discard(fill);
    edge_decoder_free(fill->gunzip);
    free(fill->stash);
    if (fill->shared != NULL) {
        /* no-op when a final state was published already */
        shared_update(fill->shared, SF_FAILED, fill->committed_bytes);
        shared_release(fill->shared);
    }
    if (fill->stale_started_id != 0)
        edge_store_fill_release(fill->thread->rt->store, fill->stale_started_id);
    if (fill->fill_id != 0 && !fill->commit_submitted)
        end_fill_id(fill->thread, fill->fill_id, fill->num_chunks != 0 && fill->chunks_submitted);
    for (size_t i = fill->mem_lo; i < fill->num_chunks; ++i)
        free(fill->chunks[i]);
    free(fill->chunks);
    h2o_mem_clear_pool(&fill->pool);
    --fill->thread->live_fills;
    free(fill);
}

static void fill_unref(struct st_fill_t *fill)
{
    assert(fill->refcnt > 0);
    if (--fill->refcnt == 0)
        fill_destroy(fill);
}


/* --- hit-for-pass: a hot uncacheable URL never queues --- */

/*
 * When a response for a key turns out unstorable, requests for that key stop waiting on each other's
 * fills for EDGE_HFP_SEC: they go to the origin in parallel (Varnish's hit-for-pass). A fixed table of
 * slots picked by the key's hash; a slot holds a tag (more of the hash) and an expiry, read and written
 * with relaxed atomics: a torn or overwritten slot only makes a request wait, or not, once.
 */
static struct {
    uint64_t tag;
    int64_t until;
} hfp_slots[EDGE_HFP_SLOTS];

static void hfp_slot(const uint8_t *hash, size_t *index, uint64_t *tag)
{
    uint64_t a, b;
    memcpy(&a, hash, sizeof(a));
    memcpy(&b, hash + 8, sizeof(b));
    *index = (size_t)(a % EDGE_HFP_SLOTS);
    *tag = b | 1; /* never 0, the empty slot */
}

static void hfp_set(const uint8_t *hash, int uncacheable)
{
    size_t i;
    uint64_t tag;
    hfp_slot(hash, &i, &tag);
    if (uncacheable) {
        __atomic_store_n(&hfp_slots[i].until, now_sec() + EDGE_HFP_SEC, __ATOMIC_RELAXED);
        __atomic_store_n(&hfp_slots[i].tag, tag, __ATOMIC_RELAXED);
    } else if (__atomic_load_n(&hfp_slots[i].tag, __ATOMIC_RELAXED) == tag) {
        __atomic_store_n(&hfp_slots[i].until, 0, __ATOMIC_RELAXED);
    }
}

static int hfp_active(const uint8_t *hash)
{
    size_t i;
    uint64_t tag;
    hfp_slot(hash, &i, &tag);
    return __atomic_load_n(&hfp_slots[i].tag, __ATOMIC_RELAXED) == tag &&
           __atomic_load_n(&hfp_slots[i].until, __ATOMIC_RELAXED) > now_sec();
}

/* --- the registry of fills in flight --- */

static void registry_init(void)
{
    for (size_t i = 0; i != REGISTRY_BUCKETS; ++i)
        h2o_linklist_init_anchor(registry + i);
}

static size_t bucket_of(const uint8_t *hash)
{
    uint32_t b;
    memcpy(&b, hash, sizeof(b));
    return b % REGISTRY_BUCKETS;
}

static struct st_shared_fill_t *shared_new(const uint8_t *hash)
{
    struct st_shared_fill_t *sf = h2o_mem_alloc(sizeof(*sf));
    memset(sf, 0, sizeof(*sf));
    memcpy(sf->hash, hash, EDGE_STORE_HASH_LEN);
    pthread_mutex_init(&sf->mutex, NULL);
    sf->refcnt = 1;
    sf->state = SF_WAIT_HEAD;
    h2o_linklist_init_anchor(&sf->waiters);
    h2o_mem_init_pool(&sf->pool);
    return sf;
}

static void shared_release(struct st_shared_fill_t *sf)
{
    pthread_mutex_lock(&sf->mutex);
    unsigned left = --sf->refcnt;
    pthread_mutex_unlock(&sf->mutex);
    if (left != 0)
        return;
    assert(!sf->registered);
    assert(h2o_linklist_is_empty(&sf->waiters));
    pthread_mutex_destroy(&sf->mutex);
    h2o_mem_clear_pool(&sf->pool);
    free(sf);
}

static void registry_remove(struct st_shared_fill_t *sf)
{
    pthread_mutex_lock(&registry_mutex);
    if (sf->registered) {
        h2o_linklist_unlink(&sf->registry_link);
        sf->registered = 0;
    }
    pthread_mutex_unlock(&registry_mutex);
}

/**
 * Attaches `w` to the fill in flight for `hash`, or, when there is none, registers `mine` as that
 * fill. @return the fill attached to (a reference is taken for the waiter), or NULL: the caller
 * fetches itself (with `mine` registered, unless another fill for the key is full of waiters)
 */
static struct st_shared_fill_t *registry_attach_or_register(const uint8_t *hash, struct st_waiter_t *w,
                                                            struct st_shared_fill_t *mine)
{
    h2o_linklist_t *bucket = registry + bucket_of(hash);
    int found = 0;

    pthread_once(&registry_once, registry_init);
    pthread_mutex_lock(&registry_mutex);
    for (h2o_linklist_t *l = bucket->next; l != bucket; l = l->next) {
        struct st_shared_fill_t *sf = H2O_STRUCT_FROM_MEMBER(struct st_shared_fill_t, registry_link, l);
        if (memcmp(sf->hash, hash, EDGE_STORE_HASH_LEN) != 0)
            continue;
        found = 1;
        if (w == NULL)
            break; /* only registering, and a fill is under way */
        pthread_mutex_lock(&sf->mutex);
        if ((sf->state == SF_WAIT_HEAD || sf->state == SF_STORING) && sf->num_waiters < EDGE_MAX_WAITERS) {
            ++sf->refcnt;
            ++sf->num_waiters;
            h2o_linklist_insert(&sf->waiters, &w->link);
            pthread_mutex_unlock(&sf->mutex);
            pthread_mutex_unlock(&registry_mutex);
            return sf;
        }
        pthread_mutex_unlock(&sf->mutex);
        break;
    }
    if (!found && mine != NULL) {
        h2o_linklist_insert(bucket, &mine->registry_link);
        mine->registered = 1;
    }
    pthread_mutex_unlock(&registry_mutex);
    return NULL;
}

/**
 * The owner publishes a new state and committed length and wakes every waiter (one message each,
 * handled on the waiter's own loop). A terminal state leaves the registry first, and is final.
 */
static void shared_update(struct st_shared_fill_t *sf, enum shared_state state, uint64_t committed)
{
    if (state != SF_WAIT_HEAD && state != SF_STORING)
        registry_remove(sf);
    pthread_mutex_lock(&sf->mutex);
    if (sf->state == SF_WAIT_HEAD || sf->state == SF_STORING) {
        sf->state = state;
        sf->committed_bytes = committed;
        for (h2o_linklist_t *l = sf->waiters.next; l != &sf->waiters; l = l->next) {
            struct st_waiter_t *w = H2O_STRUCT_FROM_MEMBER(struct st_waiter_t, link, l);
            struct st_waiter_msg_t *m = h2o_mem_alloc(sizeof(*m));
            memset(m, 0, sizeof(*m));
            m->waiter = w;
            __atomic_add_fetch(&w->refcnt, 1, __ATOMIC_RELAXED);
            h2o_multithread_send_message(&w->thread->fill_receiver, &m->super);
        }
    }
    pthread_mutex_unlock(&sf->mutex);
}

static void waiter_unref(struct st_waiter_t *w)
{
    if (__atomic_sub_fetch(&w->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        free(w);
}

static int fill_is_gzip(const struct st_fill_t *fill);
static int readers_take_gzip(struct st_fill_t *fill);
static void fill_start_gunzip(struct st_fill_t *fill, int storing);

/* Stops storing a fill (too large, store failure, origin error). Chunks already submitted are
 * deleted by the ABORT submitted when the fill is destroyed. */
static void fill_stop_storing(struct st_fill_t *fill, uint64_t *counter)
{
    if (!fill->storing)
        return;
    fill->storing = 0;
    if (counter != NULL)
        __atomic_fetch_add(counter, 1, __ATOMIC_RELAXED);
}

static void schedule_drain(struct st_fill_t *fill);

/* Drops chunks that nobody needs in memory any more and resumes the origin when below the bound. */
static void fill_gc(struct st_fill_t *fill)
{
    /* the lowest position of any reader still attached */
    uint64_t min_pos = UINT64_MAX;
    for (h2o_linklist_t *l = fill->readers.next; l != &fill->readers; l = l->next) {
        struct st_reader_t *r = H2O_STRUCT_FROM_MEMBER(struct st_reader_t, link, l);
        if (r->pos < min_pos)
            min_pos = r->pos;
    }
    for (size_t i = fill->mem_lo; i < fill->num_chunks; ++i) {
        struct st_chunk_t *c = fill->chunks[i];
        if (c == NULL)
            continue;
        int full = c->len == EDGE_STORE_CHUNK_SIZE || (fill->origin_ended && i + 1 == fill->num_chunks);
        uint64_t chunk_end = (uint64_t)i * EDGE_STORE_CHUNK_SIZE + c->len;
        int passed = min_pos == UINT64_MAX || min_pos >= chunk_end;
        if (!full || c->client_refs != 0 || c->op_pending)
            continue;
        if (!(c->committed || passed))
            continue;
        free(c);
        fill->chunks[i] = NULL;
        --fill->mem_chunks;
    }
    while (fill->mem_lo < fill->num_chunks && fill->chunks[fill->mem_lo] == NULL)
        ++fill->mem_lo;
    if (fill->stash_off != fill->stash_len) {
        /* gzip input waits to be decoded: that comes first (from the loop, not inside this call), the origin stays
         * paused until it is all decoded */
        if (fill->mem_chunks < EDGE_FILL_MAX_MEM_CHUNKS)
            schedule_drain(fill);
        return;
    }
    if (fill->paused && fill->fetch != NULL && fill->mem_chunks < EDGE_FILL_MAX_MEM_CHUNKS) {
        fill->paused = 0;
        origin_fetch_resume(fill->fetch);
    }
}

/*
 * What fills waiting for the store's writer hold, beyond their queued chunk bytes (edge_store_queued_bytes): the fill,
 * its head and key in its pool, the shared fill. A burst of small misses faster than the disk commits would otherwise
 * grow without bound (measured: about 13 KiB per waiting 256-byte fill with glibc's overhead, bench/scale.py restart).
 */
#ifndef EDGE_FILL_WAIT_CHARGE
#define EDGE_FILL_WAIT_CHARGE (12 * 1024)
#endif
static uint64_t fills_waiting; /* atomic: fills with store ops in flight, every thread */

static void fill_op_begin(struct st_fill_t *fill)
{
    if (fill->ops_in_flight++ == 0)
        __atomic_fetch_add(&fills_waiting, 1, __ATOMIC_RELAXED);
}

static void fill_op_end(struct st_fill_t *fill)
{
    assert(fill->ops_in_flight != 0);
    if (--fill->ops_in_flight == 0)
        __atomic_fetch_sub(&fills_waiting, 1, __ATOMIC_RELAXED);
}

/* The bytes the writer's backlog holds in memory, estimated: queued chunks plus a charge per waiting fill. */
static uint64_t store_backlog_bytes(edge_store_t *store)
{
    return edge_store_queued_bytes(store) + __atomic_load_n(&fills_waiting, __ATOMIC_RELAXED) * EDGE_FILL_WAIT_CHARGE;
}

/* The store's writer is behind by more than cache.write_queue: this fill passes through unstored, so that the memory
 * queued chunks hold stays bounded (its clients are served from memory as any pass). */
static void fill_store_busy(struct st_fill_t *fill)
{
    static __thread uint64_t last_log;
    fill_stop_storing(fill, &edge_metrics.fills_dropped);
    if (fill->shared != NULL)
        shared_update(fill->shared, SF_FAILED, fill->committed_bytes);
    uint64_t now = (uint64_t)now_sec();
    if (now != last_log) { /* at most one line a second per thread */
        last_log = now;
        fprintf(stderr, "edge/handler: STORE_BUSY key=%.*s backlog=%" PRIu64 " detail=\"the store's writer is behind by "
                        "cache.write_queue: not stored\"\n", (int)(fill->key.len > 256 ? 256 : fill->key.len),
                fill->key.base, store_backlog_bytes(fill->thread->rt->store));
    }
}

/* @return 0 submitted, -1 not: the writer is too far behind and the fill stopped storing */
static int submit_chunk(struct st_fill_t *fill, struct st_chunk_t *c)
{
    assert(!c->submitted);
    if (store_backlog_bytes(fill->thread->rt->store) + c->len > fill->thread->rt->conf->cache.write_queue_bytes) {
        fill_store_busy(fill);
        return -1;
    }
    c->submitted = 1;
    c->op_pending = 1;
    fill->chunks_submitted = 1;
    c->op.kind = EDGE_STORE_OP_CHUNK;
    c->op.fill_id = fill->fill_id;
    c->op.chunk_index = c->index;
    c->op.data = c->buf;
    c->op.len = c->len;
    c->op.on_done = on_chunk_done;
    fill_op_begin(fill);
    ++fill->refcnt;
    edge_store_submit(fill->thread->rt->store, &c->op);
    return 0;
}

static void wake_readers(struct st_fill_t *fill)
{
    ++fill->refcnt; /* a reader's final send may dispose it, and with it the last reference */
    h2o_linklist_t *l = fill->readers.next;
    while (l != &fill->readers) {
        struct st_reader_t *r = H2O_STRUCT_FROM_MEMBER(struct st_reader_t, link, l);
        l = l->next;
        if (r->waiting && r->started) {
            r->waiting = 0;
            reader_pump(r);
        }
    }
    fill_unref(fill);
}

/* --- compressed variants (made once, off the loops: edge/compress_job.h) --- */

static h2o_iovec_t fill_header(const struct st_fill_t *fill, const h2o_token_t *token)
{
    for (size_t i = 0; i != fill->num_headers; ++i)
        if (fill->headers[i].name == &token->buf)
            return fill->headers[i].value;
    return h2o_iovec_init(NULL, 0);
}

/* A Next.js Pages Router data request: the path of the key (`scheme://host/path?query`) is under /_next/data/. */
static int is_next_data_request(h2o_iovec_t key)
{
    size_t i = h2o_strstr(key.base, key.len, H2O_STRLIT("://"));
    if (i == SIZE_MAX)
        return 0;
    for (i += 3; i < key.len && key.base[i] != '/'; ++i)
        ;
    return key.len - i >= 12 && memcmp(key.base + i, "/_next/data/", 12) == 0;
}

/*
 * Makes the response vary on one more request field (the fill's header array has room for one more header).
 * Used for `x-nextjs-data` on Next.js data requests: with middleware, Next.js answers a data request's redirect as a
 * 200 with x-nextjs-redirect instead of a 307, so requests with and without it must not share an object; as a Vary
 * field it keys them apart as variants of one URL (purges of the URL cover both), and clients are told.
 */
static void add_vary_field(struct st_fill_t *fill, h2o_mem_pool_t *pool, h2o_iovec_t field)
{
    for (size_t i = 0; i != fill->num_headers; ++i) {
        h2o_header_t *h = fill->headers + i;
        if (h->name != &H2O_TOKEN_VARY->buf)
            continue;
        if (h2o_strstr(h->value.base, h->value.len, field.base, field.len) != SIZE_MAX)
            return;
        h->value = h2o_concat(pool, h->value, h2o_iovec_init(H2O_STRLIT(", ")), field);
        return;
    }
    h2o_header_t *h = fill->headers + fill->num_headers++;
    h->name = (h2o_iovec_t *)&H2O_TOKEN_VARY->buf;
    h->orig_name = NULL;
    h->value = field;
}

/* A response from a Next.js origin: its x-nextjs-* headers, or Vary on rsc. */
static int fill_from_nextjs(const struct st_fill_t *fill)
{
    int nextjs = 0;
    for (size_t i = 0; i != fill->num_headers && !nextjs; ++i) {
        const h2o_header_t *h = fill->headers + i;
        if (h->name == &H2O_TOKEN_VARY->buf)
            nextjs = h2o_strstr(h->value.base, h->value.len, H2O_STRLIT("rsc")) != SIZE_MAX ||
                     h2o_strstr(h->value.base, h->value.len, H2O_STRLIT("RSC")) != SIZE_MAX;
        else if (!h2o_iovec_is_token(h->name) && h->name->len > 9 && h2o_lcstris(h->name->base, 9, H2O_STRLIT("x-nextjs-")))
            nextjs = 1;
    }
    return nextjs;
}

/* A response from a Next.js origin that is a 204 or an empty HTML (or untyped) page. */
static int empty_nextjs_page(const struct st_fill_t *fill)
{
    if (!fill_from_nextjs(fill))
        return 0;
    if (fill->status == 204)
        return 1;
    h2o_iovec_t ct = fill_header(fill, H2O_TOKEN_CONTENT_TYPE);
    return ct.base == NULL || h2o_lcstris(ct.base, ct.len < 9 ? ct.len : 9, H2O_STRLIT("text/html"));
}

/* A whole identity 200 of a compressible type and size (the origin was asked for identity). */
static int fill_is_compressible(const struct st_fill_t *fill)
{
    edge_runtime_t *rt = fill->thread->rt;
    if (!rt->compress_enabled || fill->status != 200 || fill_header(fill, H2O_TOKEN_CONTENT_ENCODING).base != NULL)
        return 0;
    h2o_iovec_t ct = fill_header(fill, H2O_TOKEN_CONTENT_TYPE);
    return ct.base != NULL && edge_compress_eligible(&rt->compress, ct.base, ct.len, fill->bytes);
}

static void submit_compress_job(struct st_fill_t *fill)
{
    edge_compress_job_t job = {fill->key.base, fill->key.len};
    job.variant = fill->has_variant ? fill->variant.base : "";
    job.variant_len = fill->has_variant ? fill->variant.len : 0;
    memcpy(job.url_hash, fill->url_hash, EDGE_STORE_HASH_LEN);
    memcpy(job.base_hash, fill->hash, EDGE_STORE_HASH_LEN);
    job.base_fill_id = fill->fill_id;
    job.body_size = fill->bytes;
    job.num_chunks = (uint32_t)fill->num_chunks;
    job.meta = fill->commit_blob.base;
    job.meta_len = fill->commit_blob.len;
    if (fill->gz_keep && fill->gz_fill_id != 0) {
        job.gzip_fill_id = fill->gz_fill_id;
        job.gzip_size = fill->gz_bytes;
        job.gzip_num_chunks = fill->gz_num_chunks;
    } else {
        gz_discard(fill);
    }
    if (edge_compress_job_submit(&job) != 0) {
        gz_discard(fill); /* a full queue drops it (counted): the object is served as identity */
        return;
    }
    fill->gz_fill_id = 0; /* the job's now */
}

/* --- store completions --- */

/* Writer thread: hand the completion to the fill's own loop. */
static void on_chunk_done(edge_store_op_t *op, int result)
{
    struct st_chunk_t *c = H2O_STRUCT_FROM_MEMBER(struct st_chunk_t, op, op);
    c->msg.is_commit = 0;
    c->msg.result = result;
    h2o_multithread_send_message(&c->fill->thread->store_receiver, &c->msg.super);
}

static void on_commit_done(edge_store_op_t *op, int result)
{
    struct st_fill_t *fill = H2O_STRUCT_FROM_MEMBER(struct st_fill_t, commit_op, op);
    fill->commit_msg.is_commit = 1;
    fill->commit_msg.result = result;
    h2o_multithread_send_message(&fill->thread->store_receiver, &fill->commit_msg.super);
}

static void on_abort_done(edge_store_op_t *op, int result)
{
    if (result != 0 && result != EDGE_STORE_ECLOSED)
        EDGE_METRIC_ADD(store_errors, 1);
    free(op);
}

static void count_store_failure(struct st_fill_t *fill, int result)
{
    if (fill->store_failed)
        return;
    fill->store_failed = 1;
    if (result == EDGE_STORE_EFULL)
        EDGE_METRIC_ADD(fills_dropped, 1);
    else
        EDGE_METRIC_ADD(store_errors, 1);
}

/* Owner's loop: a chunk or commit op of one of its fills completed. */
static void on_store_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        struct st_store_msg_t *msg = H2O_STRUCT_FROM_MEMBER(struct st_store_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&msg->super.link);
        struct st_fill_t *fill;
        if (msg->is_commit == 2) {
            struct st_inval_op_t *iop = H2O_STRUCT_FROM_MEMBER(struct st_inval_op_t, msg, msg);
            fill = iop->fill;
            if (msg->result != 0 && msg->result != EDGE_STORE_NOTFOUND)
                EDGE_METRIC_ADD(store_errors, 1);
            free(iop);
            if (--fill->pending_invalidations == 0 && !fill->heads_deferred)
                fill_respond_heads(fill);
        } else if (msg->is_commit == 3) {
            struct st_rawchunk_t *c = H2O_STRUCT_FROM_MEMBER(struct st_rawchunk_t, msg, msg);
            fill = c->fill;
            if (msg->result != 0)
                fill->gz_keep = 0; /* the gzip variant cannot be whole: discarded at the commit */
            free(c);
            --fill->mem_chunks;
        } else if (msg->is_commit) {
            fill = H2O_STRUCT_FROM_MEMBER(struct st_fill_t, commit_msg, msg);
            if (msg->result == 0) {
                fill->committed_ok = 1;
                if (fill->revalidated)
                    EDGE_METRIC_ADD(revalidations, 1);
                else
                    EDGE_METRIC_ADD(fills_stored, 1);
                if (fill->compress_after_commit && !fill->revalidated)
                    submit_compress_job(fill);
                if (fill->shared != NULL)
                    shared_update(fill->shared, SF_DONE, fill->revalidated ? fill->stale.body_size : fill->bytes);
            } else {
                if (fill->shared != NULL)
                    shared_update(fill->shared, SF_FAILED, fill->committed_bytes);
                fprintf(stderr, "edge/store: STORE_ERR commit fill=%" PRIu64 " result=%s\n", fill->fill_id,
                                 edge_store_strerror(msg->result));
                count_store_failure(fill, msg->result);
            }
        } else {
            struct st_chunk_t *c = H2O_STRUCT_FROM_MEMBER(struct st_chunk_t, msg, msg);
            fill = c->fill;
            c->op_pending = 0;
            if (msg->result == 0) {
                c->committed = 1;
                /* the writer applies ops in order: every earlier chunk is committed too */
                uint64_t end = (uint64_t)c->index * EDGE_STORE_CHUNK_SIZE + c->len;
                if (end > fill->committed_bytes) {
                    fill->committed_bytes = end;
                    if (fill->shared != NULL && fill->storing)
                        shared_update(fill->shared, SF_STORING, end);
                }
            } else {
                if (fill->shared != NULL)
                    shared_update(fill->shared, SF_FAILED, fill->committed_bytes);
                if (!fill->store_failed)
                    fprintf(stderr, "edge/store: STORE_ERR chunk fill=%" PRIu64 " result=%s\n", fill->fill_id,
                                     edge_store_strerror(msg->result));
                count_store_failure(fill, msg->result);
                /* readers cannot fall back on the store for this fill any more: keep chunks until passed */
                fill_stop_storing(fill, NULL);
            }
        }
        fill_op_end(fill);
        fill_gc(fill);
        fill_unref(fill);
    }
}

/* --- origin side of a fill --- */

static int request_has_authorization(h2o_req_t *req)
{
    return h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1) != -1;
}

static void reader_respond_head(struct st_reader_t *reader);
static void reader_detach(struct st_reader_t *reader);
static void fill_respond_heads(struct st_fill_t *fill);
static void respond_head(struct st_reader_t *reader, int status, h2o_iovec_t reason, const h2o_header_t *headers,
                         size_t num_headers, origin_framing_t framing, int64_t content_length, int stored, int64_t age,
                         const char *cache_status);
static int apply_range(h2o_req_t *req, struct st_reader_t *reader, const edge_object_t *obj, uint64_t size);

/**
 * RFC 9213 §2.2: when a targeted field this cache implements is present (CDN-Cache-Control, then
 * Surrogate-Control), its directives rule this cache and Cache-Control and Expires are ignored; the
 * client still gets Cache-Control untouched. @return the header array the storing rules read: the
 * response's own, or a copy in which the targeted field stands in for Cache-Control.
 */
static size_t targeted_cache_headers(h2o_mem_pool_t *pool, h2o_header_t *headers, size_t num, h2o_header_t **out)
{
    static const h2o_iovec_t targets[] = {{H2O_STRLIT("cdn-cache-control")}, {H2O_STRLIT("surrogate-control")}};
    for (size_t t = 0; t != sizeof(targets) / sizeof(targets[0]); ++t) {
        size_t found = 0, invalid = 0;
        for (size_t i = 0; i != num; ++i)
            if (!h2o_iovec_is_token(headers[i].name) &&
                h2o_memis(headers[i].name->base, headers[i].name->len, targets[t].base, targets[t].len)) {
                ++found;
                /* RFC 9213 §2.1: a value that is not a valid Dictionary makes the cache ignore the field */
                if (!edge_targeted_cc_valid(headers[i].value.base, headers[i].value.len))
                    ++invalid;
            }
        if (found == 0 || invalid != 0)
            continue;
        h2o_header_t *copy = h2o_mem_alloc_pool(pool, sizeof(*copy) * num);
        size_t n = 0;
        for (size_t i = 0; i != num; ++i) {
            if (headers[i].name == &H2O_TOKEN_CACHE_CONTROL->buf || headers[i].name == &H2O_TOKEN_EXPIRES->buf)
                continue;
            copy[n] = headers[i];
            if (!h2o_iovec_is_token(headers[i].name) &&
                h2o_memis(headers[i].name->base, headers[i].name->len, targets[t].base, targets[t].len))
                copy[n].name = &H2O_TOKEN_CACHE_CONTROL->buf;
            ++n;
        }
        *out = copy;
        return n;
    }
    *out = headers;
    return num;
}

/* The origin part of a cache key: "scheme://host[:port]". */
static h2o_iovec_t key_origin(h2o_iovec_t key)
{
    const char *p = memmem(key.base, key.len, "://", 3);
    if (p == NULL)
        return h2o_iovec_init(NULL, 0);
    const char *slash = memchr(p + 3, '/', key.base + key.len - (p + 3));
    return h2o_iovec_init(key.base, (slash != NULL ? slash : key.base + key.len) - key.base);
}

/**
 * RFC 9111 §4.4: a non-error response to an unsafe request invalidates the target URI, and the URIs in
 * Location and Content-Location when they have the same origin (so a client cannot purge another site).
 */
static void on_inval_done(edge_store_op_t *op, int result)
{
    struct st_inval_op_t *iop = H2O_STRUCT_FROM_MEMBER(struct st_inval_op_t, op, op);
    iop->msg.is_commit = 2;
    iop->msg.result = result;
    h2o_multithread_send_message(&iop->fill->thread->store_receiver, &iop->msg.super);
}

static void submit_invalidation(struct st_fill_t *fill, h2o_iovec_t key)
{
    struct st_inval_op_t *iop = h2o_mem_alloc(sizeof(*iop));
    memset(iop, 0, sizeof(*iop));
    iop->op.kind = EDGE_STORE_OP_DELETE_GROUP; /* the URL and every variant of it */
    edge_store_hash(key.base, key.len, iop->op.hash);
    memcpy(iop->op.group, iop->op.hash, EDGE_STORE_HASH_LEN);
    iop->op.on_done = on_inval_done;
    iop->fill = fill;
    ++fill->pending_invalidations;
    fill_op_begin(fill);
    ++fill->refcnt;
    edge_store_submit(fill->thread->rt->store, &iop->op);
}

static void invalidate_after_unsafe(struct st_fill_t *fill, h2o_req_t *req)
{
    h2o_iovec_t target_key = fill->key, target_origin = key_origin(target_key);

    submit_invalidation(fill, target_key);
    for (size_t i = 0; i != fill->num_headers; ++i) {
        const h2o_header_t *h = fill->headers + i;
        if (h->name != &H2O_TOKEN_LOCATION->buf && h->name != &H2O_TOKEN_CONTENT_LOCATION->buf)
            continue;
        h2o_iovec_t key, path;
        int r;
        if (h->value.len != 0 && h->value.base[0] == '/' && (h->value.len == 1 || h->value.base[1] != '/')) {
            r = edge_request_key(fill->thread->rt, &req->pool, req->scheme->name, req->authority, h->value, &key, &path);
        } else {
            h2o_url_t url;
            if (h2o_url_parse(h->value.base, h->value.len, &url) != 0)
                continue;
            r = edge_request_key(fill->thread->rt, &req->pool, url.scheme->name, url.authority, url.path, &key, &path);
        }
        h2o_iovec_t origin = key_origin(key);
        if (r == 0 && h2o_memis(origin.base, origin.len, target_origin.base, target_origin.len))
            submit_invalidation(fill, key);
    }
}

/**
 * The request fields a variant is keyed on. Next.js's image optimizer answers per Accept with only three
 * outcomes (AVIF, WebP, the original), so for `/_next/image` the Accept value is folded to its class
 * (`avif`, `webp`, `other`) and browsers' many Accept strings share three objects.
 */
static const h2o_header_t *vary_request_headers(h2o_req_t *req, h2o_mem_pool_t *pool, size_t *num)
{
    *num = req->headers.size;
    if (!(req->path.len >= 12 && memcmp(req->path.base, "/_next/image", 12) == 0))
        return req->headers.entries;
    h2o_header_t *copy = h2o_mem_alloc_pool(pool, sizeof(*copy) * (req->headers.size + 1));
    for (size_t i = 0; i != req->headers.size; ++i) {
        copy[i] = req->headers.entries[i];
        if (copy[i].name == &H2O_TOKEN_ACCEPT->buf) {
            h2o_iovec_t v = copy[i].value;
            if (h2o_strstr(v.base, v.len, H2O_STRLIT("image/avif")) != SIZE_MAX)
                copy[i].value = h2o_iovec_init(H2O_STRLIT("avif"));
            else if (h2o_strstr(v.base, v.len, H2O_STRLIT("image/webp")) != SIZE_MAX)
                copy[i].value = h2o_iovec_init(H2O_STRLIT("webp"));
            else
                copy[i].value = h2o_iovec_init(H2O_STRLIT("other"));
        }
    }
    return copy;
}

/**
 * A response that varies on request fields (RFC 9111 §4.1): it is stored as one variant of its URL, keyed
 * by the values of those fields in the request that fetched it. @return 1 when the fill has its variant
 * (fill->hash is now the variant's), 0 when it cannot be stored (Vary: *, too many fields, no request)
 */
static int choose_variant(struct st_fill_t *fill, h2o_mem_pool_t *pool, edge_vary_t *vary)
{
    if (edge_vary_from_headers(vary, fill->headers, fill->num_headers) != 0)
        return 0;
    if (!h2o_linklist_is_empty(&fill->readers)) {
        h2o_req_t *req = H2O_STRUCT_FROM_MEMBER(struct st_reader_t, link, fill->readers.next)->req;
        h2o_iovec_t variant;
        size_t num;
        const h2o_header_t *headers = vary_request_headers(req, pool, &num);
        if (edge_vary_key(pool, vary, headers, num, &variant) != 0)
            return 0;
        fill->variant = variant;
    } else if (!fill->has_variant) {
        return 0; /* a background revalidation that did not know the variant */
    }
    fill->has_variant = 1;
    edge_store_variant_hash(fill->key.base, fill->key.len, fill->variant.base, fill->variant.len, fill->hash);
    return 1;
}

static void on_free_op(edge_store_op_t *op, int result)
{
    if (result != 0 && result != EDGE_STORE_NOTFOUND && result != EDGE_STORE_ECLOSED && result != EDGE_STORE_EPURGED)
        EDGE_METRIC_ADD(store_errors, 1);
    free(op);
}

/* Before a variant's commit: the URL's Vary marker (what to key its variants on). It goes first, so that when
 * the variant's commit is reported (and its fill leaves the registry) a lookup already finds the marker. */
static void submit_vary_marker(struct st_fill_t *fill)
{
    edge_store_t *store = fill->thread->rt->store;
    size_t num = 0;
    for (size_t i = 0; i != fill->num_headers; ++i)
        if (fill->headers[i].name == &H2O_TOKEN_VARY->buf)
            ++num;
    h2o_header_t *vary = h2o_mem_alloc_pool(&fill->pool, sizeof(*vary) * (num + 1));
    num = 0;
    for (size_t i = 0; i != fill->num_headers; ++i)
        if (fill->headers[i].name == &H2O_TOKEN_VARY->buf)
            vary[num++] = fill->headers[i];
    edge_object_t marker = {0, EDGE_OBJECT_VARY_MARKER, 0, 0, fill->request_time, fill->response_time, 0, 0, vary, num};
    h2o_iovec_t blob = edge_object_encode(&fill->pool, &marker);

    /* the op outlives the fill: it owns a copy of what it points to */
    edge_store_op_t *op = h2o_mem_alloc(sizeof(*op) + blob.len + fill->key.len);
    memset(op, 0, sizeof(*op));
    char *p = (char *)(op + 1);
    memcpy(p, blob.base, blob.len);
    memcpy(p + blob.len, fill->key.base, fill->key.len);
    op->kind = EDGE_STORE_OP_COMMIT;
    op->fill_id = edge_store_new_fill_id(store);
    memcpy(op->hash, fill->url_hash, EDGE_STORE_HASH_LEN);
    memcpy(op->group, fill->url_hash, EDGE_STORE_HASH_LEN);
    op->data = p;
    op->len = blob.len;
    op->key = p + blob.len;
    op->key_len = fill->key.len;
    op->on_done = on_free_op;
    edge_store_submit(store, op);
}

/* After a variant's commit: the cap on variants per URL (the oldest go). */
static void submit_variant_trim(struct st_fill_t *fill)
{
    edge_store_t *store = fill->thread->rt->store;
    edge_store_op_t *trim = h2o_mem_alloc(sizeof(*trim));
    memset(trim, 0, sizeof(*trim));
    trim->kind = EDGE_STORE_OP_TRIM_GROUP;
    memcpy(trim->hash, fill->url_hash, EDGE_STORE_HASH_LEN);
    memcpy(trim->group, fill->url_hash, EDGE_STORE_HASH_LEN);
    trim->max_members = EDGE_MAX_VARIANTS + 1; /* the marker is a member too, and the newest */
    trim->on_done = on_free_op;
    edge_store_submit(store, trim);
}

/* The purge tags of a response being stored: Surrogate-Key, Cache-Tag and X-Next-Cache-Tags (bounded). */
static void collect_tags(struct st_fill_t *fill)
{
    const char *const *extra = fill->thread->rt->tag_headers;
    purge_tags_t tags = {NULL, 0, 0};
    for (size_t i = 0; i != fill->num_headers; ++i) {
        const h2o_header_t *h = fill->headers + i;
        purge_tags_sep_t sep = purge_tags_header_kind(h->name->base, h->name->len, extra);
        if (sep != PURGE_TAGS_NOT_A_TAG_HEADER)
            purge_tags_add_header(&tags, h->value.base, h->value.len, sep, EDGE_STORE_MAX_TAGS, EDGE_STORE_MAX_TAG_LEN);
    }
    if (tags.count != 0) {
        fill->tags = h2o_mem_alloc_pool(&fill->pool, sizeof(*fill->tags) * tags.count);
        fill->tag_lens = h2o_mem_alloc_pool(&fill->pool, sizeof(*fill->tag_lens) * tags.count);
        for (size_t i = 0; i != tags.count; ++i) {
            size_t len = strlen(tags.items[i]);
            fill->tags[i] = h2o_strdup(&fill->pool, tags.items[i], len).base;
            fill->tag_lens[i] = len;
        }
        fill->num_tags = tags.count;
    }
    purge_tags_free(&tags);
}

/* --- stale objects: revalidation and serving stale --- */

static h2o_header_t *dup_headers(h2o_mem_pool_t *pool, const h2o_header_t *src, size_t num)
{
    h2o_header_t *dst = h2o_mem_alloc_pool(pool, sizeof(*dst) * (num + 1));
    for (size_t i = 0; i != num; ++i) {
        if (h2o_iovec_is_token(src[i].name)) {
            dst[i].name = src[i].name;
        } else {
            dst[i].name = h2o_mem_alloc_pool(pool, sizeof(*dst[i].name));
            *dst[i].name = h2o_strdup(pool, src[i].name->base, src[i].name->len);
        }
        dst[i].orig_name = src[i].orig_name != NULL ? h2o_strdup(pool, src[i].orig_name, src[i].name->len).base : NULL;
        dst[i].value = h2o_strdup(pool, src[i].value.base, src[i].value.len);
    }
    return dst;
}

/* What a hit needs of the response's Cache-Control, as stored with the object. */
static void object_flags_from_cc(const edge_cc_t *cc, uint32_t *flags, int64_t *swr, int64_t *sie)
{
    *flags = (cc->no_cache ? EDGE_OBJECT_NO_CACHE : 0) | (cc->must_revalidate ? EDGE_OBJECT_MUST_REVALIDATE : 0) |
             (cc->proxy_revalidate ? EDGE_OBJECT_PROXY_REVALIDATE : 0) | (cc->has_swr ? EDGE_OBJECT_HAS_SWR : 0) |
             (cc->has_sie ? EDGE_OBJECT_HAS_SIE : 0) | (cc->has_s_maxage ? EDGE_OBJECT_HAS_SMAXAGE : 0);
    *swr = cc->has_swr ? cc->stale_while_revalidate : 0;
    *sie = cc->has_sie ? cc->stale_if_error : 0;
}

static void cc_from_object_flags(uint32_t flags, int64_t swr, int64_t sie, edge_cc_t *cc)
{
    memset(cc, 0, sizeof(*cc));
    cc->no_cache = (flags & EDGE_OBJECT_NO_CACHE) != 0;
    cc->must_revalidate = (flags & EDGE_OBJECT_MUST_REVALIDATE) != 0;
    cc->proxy_revalidate = (flags & EDGE_OBJECT_PROXY_REVALIDATE) != 0;
    cc->has_s_maxage = (flags & EDGE_OBJECT_HAS_SMAXAGE) != 0;
    cc->has_swr = (flags & EDGE_OBJECT_HAS_SWR) != 0;
    cc->stale_while_revalidate = swr;
    cc->has_sie = (flags & EDGE_OBJECT_HAS_SIE) != 0;
    cc->stale_if_error = sie;
}

/* How long a stored response has been stale, in whole seconds counted from 1: with second resolution
 * it is stale from age == lifetime on, so a stale-while-revalidate=N window covers ages
 * [lifetime, lifetime + N). A soft purge makes it stale from now on. 0: not stale. */
static int64_t staleness_of(int soft, int64_t age, int64_t lifetime)
{
    if (soft)
        return 1;
    return age >= lifetime ? age - lifetime + 1 : 0;
}

/* stale-if-error (RFC 5861 §4) as the response allows it; when the origin cannot be reached at all (refused,
 * reset, timed out: "disconnected", RFC 9111 §4.2.4) also within cache.stale_if_unreachable, unless the
 * response forbids serving it stale. */
static int stale_if_error_allowed(const struct st_stale_t *st, int unreachable)
{
    edge_cc_t cc;
    if (!st->active)
        return 0;
    cc_from_object_flags(st->flags, st->swr, st->sie, &cc);
    int64_t age = edge_current_age(st->initial_age, st->response_time, now_sec());
    int64_t grace = unreachable ? (int64_t)(edge_this_thread->rt->conf->cache.stale_if_unreachable_ms / 1000) : 0;
    return edge_stale_if_error_ok(&cc, staleness_of(st->soft, age, st->lifetime), grace);
}

static void serve_after_commit(h2o_req_t *req, h2o_iovec_t key, const uint8_t *hash, h2o_iovec_t path, int only_if_cached);

/* Turns a client of the fill into a client of the stored (stale or freshened) object, and answers it. */
static void reader_serve_stored(struct st_reader_t *reader, const struct st_stale_t *st, const uint8_t *hash,
                                const h2o_header_t *headers, size_t num_headers, int64_t age, const char *cache_status)
{
    h2o_req_t *req = reader->req;
    edge_store_t *store = edge_this_thread->rt->store;
    edge_store_txn_t *txn;
    edge_store_object_t so;

    reader_detach(reader);
    /* the stale object may have been replaced or purged since it was looked up: serve it only if it is still
     * there, and pin it (this read transaction) for as long as its body is sent */
    if (edge_store_read_begin(store, &txn) != 0) {
        reader->finished = 1;
        send_error(req, 503, "cdn-edge; fwd=stale; detail=store-busy", "the cache is busy, try again");
        return;
    }
    if (edge_store_get(txn, hash, &so) != 0 || so.fill_id != st->fill_id) {
        edge_store_read_end(txn);
        reader->finished = 1;
        serve_after_commit(req, reader->key, hash, reader->path, 0);
        return;
    }
    reader->txn = txn;
    reader->fill_id = st->fill_id;
    reader->body_size = st->body_size;
    reader->num_chunks = st->num_chunks;
    h2o_header_t *copy = dup_headers(&req->pool, headers, num_headers); /* the fill may go before the client */
    respond_head(reader, st->status, h2o_iovec_init(NULL, 0), copy, num_headers, ORIGIN_FRAMING_LENGTH,
                 (int64_t)st->body_size, 1, age, h2o_strdup(&req->pool, cache_status, SIZE_MAX).base);
}

/* stale-if-error (RFC 5861 §4): the origin failed; every client still waiting gets the stale object. */
static void serve_stale_on_error(struct st_fill_t *fill, int fwd_status)
{
    struct st_stale_t *st = &fill->stale;
    int64_t age = edge_current_age(st->initial_age, st->response_time, now_sec());
    char cs[96];
    snprintf(cs, sizeof(cs), "cdn-edge; hit; ttl=%" PRId64 "; detail=stale-if-error",
             -staleness_of(st->soft, age, st->lifetime));
    (void)fwd_status;
    if (fill->shared != NULL)
        shared_update(fill->shared, SF_RELEASED, 0);
    ++fill->refcnt;
    while (!h2o_linklist_is_empty(&fill->readers)) {
        struct st_reader_t *r = H2O_STRUCT_FROM_MEMBER(struct st_reader_t, link, fill->readers.next);
        EDGE_METRIC_ADD(req_hit, 1);
        reader_serve_stored(r, st, fill->hash, st->headers, st->num_headers, age, cs);
    }
    fill_unref(fill);
}

/* The origin answered 304 to a revalidation (RFC 9111 §4.3.3, §4.3.4): freshen the stored head, serve its body. */
static void revalidated_304(struct st_fill_t *fill)
{
    edge_runtime_t *rt = fill->thread->rt;
    struct st_stale_t *st = &fill->stale;
    h2o_mem_pool_t *pool = fill->shared != NULL ? &fill->shared->pool : &fill->pool;
    h2o_header_t *merged, *rules;
    size_t num = edge_freshen_headers(pool, st->headers, st->num_headers, fill->headers, fill->num_headers, &merged);
    size_t num_rules = targeted_cache_headers(&fill->pool, merged, num, &rules);
    edge_response_facts_t facts;
    edge_response_facts_from_headers(&facts, st->status, rules, num_rules, (int64_t)st->body_size);

    fill->revalidated = 1;
    fill->initial_age = edge_initial_age(&facts, fill->request_time, fill->response_time);
    fill->lifetime = edge_freshness_lifetime_or_heuristic(&facts, fill->response_time, EDGE_MAX_HEURISTIC_SEC);
    if (fill->lifetime < 0 || facts.cc.no_cache)
        fill->lifetime = 0;
    object_flags_from_cc(&facts.cc, &fill->obj_flags, &fill->swr, &fill->sie);
    edge_object_t obj = {st->status, fill->obj_flags, fill->swr, fill->sie, fill->request_time, fill->response_time,
                         fill->initial_age, fill->lifetime, merged, num};
    fill->commit_blob = edge_object_encode(&fill->pool, &obj);
    memset(&fill->commit_op, 0, sizeof(fill->commit_op));
    fill->commit_op.kind = EDGE_STORE_OP_UPDATE_META;
    fill->commit_op.fill_id = st->fill_id;
    memcpy(fill->commit_op.hash, fill->hash, EDGE_STORE_HASH_LEN);
    fill->commit_op.data = fill->commit_blob.base;
    fill->commit_op.len = fill->commit_blob.len;
    fill->commit_op.started_fill_id = fill->stale_started_id;
    fill->stale_started_id = 0; /* released by the store with the op */
    fill->commit_op.on_done = on_commit_done;
    fill->commit_submitted = 1;
    fill_op_begin(fill);
    ++fill->refcnt;
    edge_store_submit(rt->store, &fill->commit_op);

    if (fill->shared != NULL) {
        /* waiters look the object up again once the freshened record is committed */
        struct st_shared_fill_t *sf = fill->shared;
        sf->initial_age = fill->initial_age;
        sf->response_time = fill->response_time;
        sf->lifetime = fill->lifetime;
        pthread_mutex_lock(&sf->mutex);
        sf->origin_complete = 1;
        pthread_mutex_unlock(&sf->mutex);
        shared_update(sf, SF_STORING, 0);
    }
    ++fill->refcnt;
    while (!h2o_linklist_is_empty(&fill->readers)) {
        struct st_reader_t *r = H2O_STRUCT_FROM_MEMBER(struct st_reader_t, link, fill->readers.next);
        EDGE_METRIC_ADD(req_miss, 1);
        reader_serve_stored(r, st, fill->hash, merged, num, fill->initial_age,
                            st->by_request ? "cdn-edge; fwd=request; fwd-status=304" : "cdn-edge; fwd=stale; fwd-status=304");
    }
    fill_unref(fill);
}

static void on_origin_head(origin_fetch_t *fetch, void *data, const origin_response_t *res)
{
    struct st_fill_t *fill = data;
    edge_runtime_t *rt = fill->thread->rt;

    /* a cacheable fill keeps its head where its waiters can read it */
    h2o_mem_pool_t *pool = fill->shared != NULL ? &fill->shared->pool : &fill->pool;
    fill->head_received = 1;
    fill->response_time = now_sec();
    fill->status = res->status;
    fill->reason = h2o_strdup(pool, res->reason.base, res->reason.len);
    fill->framing = res->framing;
    fill->content_length = res->content_length;
    fill->num_headers = res->num_headers;
    fill->headers = h2o_mem_alloc_pool(pool, sizeof(h2o_header_t) * (res->num_headers + 1));
    for (size_t i = 0; i != res->num_headers; ++i) {
        const h2o_header_t *src = res->headers + i;
        h2o_header_t *dst = fill->headers + i;
        if (h2o_iovec_is_token(src->name)) {
            dst->name = src->name;
        } else {
            dst->name = h2o_mem_alloc_pool(pool, sizeof(*dst->name));
            *dst->name = h2o_strdup(pool, src->name->base, src->name->len);
        }
        dst->orig_name = src->orig_name != NULL ? h2o_strdup(pool, src->orig_name, src->name->len).base : NULL;
        dst->value = h2o_strdup(pool, src->value.base, src->value.len);
    }

    if (fill->stale.active) {
        if (fill->status == 304) {
            revalidated_304(fill);
            return;
        }
        if (fill->status >= 500 && stale_if_error_allowed(&fill->stale, 0)) {
            ++fill->refcnt; /* the clients leaving may cancel the fetch and drop the last other reference */
            serve_stale_on_error(fill, fill->status);
            if (fill->fetch != NULL && h2o_linklist_is_empty(&fill->readers)) {
                origin_fetch_cancel(fill->fetch);
                fill->fetch = NULL;
                fill->origin_ended = 1;
                fill->origin_err = ORIGIN_ERESET;
                fill_unref(fill); /* the origin side */
            }
            fill_unref(fill);
            return;
        }
        /* a whole new response: it replaces the stored one like any fill */
        edge_store_fill_release(rt->store, fill->stale_started_id);
        fill->stale_started_id = 0;
    }

    if (fill->invalidates && fill->status >= 200 && fill->status < 400 && !h2o_linklist_is_empty(&fill->readers))
        invalidate_after_unsafe(fill, H2O_STRUCT_FROM_MEMBER(struct st_reader_t, link, fill->readers.next)->req);

    if (fill->mode == FILL_CACHE) {
        edge_response_facts_t facts;
        if (is_next_data_request(fill->key) && fill_from_nextjs(fill))
            add_vary_field(fill, pool, h2o_iovec_init(H2O_STRLIT("x-nextjs-data")));
        h2o_header_t *rules;
        size_t num_rules = targeted_cache_headers(&fill->pool, fill->headers, fill->num_headers, &rules);
        edge_response_facts_from_headers(&facts, fill->status, rules, num_rules, fill->content_length);
        /* the first reader's request decides the Authorization rule (RFC 9111 §3.5) */
        int auth = 0;
        if (!h2o_linklist_is_empty(&fill->readers))
            auth = request_has_authorization(
                H2O_STRUCT_FROM_MEMBER(struct st_reader_t, link, fill->readers.next)->req);
        edge_verdict_t verdict = edge_policy_storable(&facts, auth, rt->conf->cache.max_object_size_bytes);
        if (verdict == EDGE_VERDICT_ENCODED) {
            /* the origin sent a content coding although asked for identity: stored as it came, opaque (RFC 9111
             * §3.1 keeps stored fields as received), never recompressed, ranges over its encoded bytes */
            facts.encoded = 0;
            verdict = edge_policy_storable(&facts, auth, rt->conf->cache.max_object_size_bytes);
        }
        edge_vary_t vary = {0};
        if (verdict == EDGE_VERDICT_VARY && !facts.vary_star && choose_variant(fill, pool, &vary)) {
            /* stored as a variant: the other rules still apply */
            facts.vary_other = 0;
            verdict = edge_policy_storable(&facts, auth, rt->conf->cache.max_object_size_bytes);
        }
        /* a body whose end cannot be proved is never stored (RFC 9112 §6.3: close-delimited) */
        if (verdict == EDGE_VERDICT_STORE && fill->framing == ORIGIN_FRAMING_CLOSE)
            verdict = EDGE_VERDICT_TRUNCATED;
        /* RFC 9111 §4.2.2: with Last-Modified and no explicit lifetime, a heuristic one (a fraction of
         * its age, capped) for the statuses that allow it */
        if (verdict == EDGE_VERDICT_NO_LIFETIME && fill->framing != ORIGIN_FRAMING_CLOSE &&
            edge_heuristic_freshness(&facts, fill->response_time, EDGE_MAX_HEURISTIC_SEC) > 0)
            verdict = EDGE_VERDICT_STORE;
        fill->initial_age = edge_initial_age(&facts, fill->request_time, fill->response_time);
        fill->lifetime = edge_freshness_lifetime_or_heuristic(&facts, fill->response_time, EDGE_MAX_HEURISTIC_SEC);
        object_flags_from_cc(&facts.cc, &fill->obj_flags, &fill->swr, &fill->sie);
        /* RFC 9111 §5.2.2.4: no-cache may be stored but never used without validation (the field-named
         * form is treated the same, conservatively): it is stored already stale */
        if (facts.cc.no_cache)
            fill->lifetime = 0;
        /* Next.js answers with the old page and `x-nextjs-cache: STALE` while it regenerates, yet with full
         * freshness: stored with none left, so the regenerated page is fetched next */
        for (size_t i = 0; i != fill->num_headers; ++i)
            if (!h2o_iovec_is_token(fill->headers[i].name) &&
                h2o_memis(fill->headers[i].name->base, fill->headers[i].name->len, H2O_STRLIT("x-nextjs-cache")) &&
                h2o_lcstris(fill->headers[i].value.base, fill->headers[i].value.len, H2O_STRLIT("stale")))
                fill->lifetime = 0;
        const char *fwd = fill->stale.by_request ? "request"
                          : fill->stale.active ? "stale"
                          : fill->stale.vary_miss ? "vary-miss"
                                                  : "miss";
        hfp_set(fill->hash, verdict != EDGE_VERDICT_STORE);
        /* we asked for gzip: decoded for the store, and for any client that does not take it */
        if (fill->asked_gzip && fill_is_gzip(fill) && (verdict == EDGE_VERDICT_STORE || !readers_take_gzip(fill)))
            fill_start_gunzip(fill, verdict == EDGE_VERDICT_STORE);
        if (verdict == EDGE_VERDICT_STORE) {
            fill->storing = 1;
            collect_tags(fill);
            fill->cache_status = h2o_concat(pool, h2o_iovec_init(H2O_STRLIT("cdn-edge; fwd=")),
                                            h2o_iovec_init(fwd, strlen(fwd)), h2o_iovec_init(H2O_STRLIT("; stored")))
                                     .base;
        } else {
            const char *detail = edge_verdict_detail(verdict);
            EDGE_METRIC_ADD(fills_unstored, 1);
            fill->cache_status =
                h2o_concat(pool, h2o_iovec_init(H2O_STRLIT("cdn-edge; fwd=")), h2o_iovec_init(fwd, strlen(fwd)),
                           h2o_iovec_init(H2O_STRLIT("; detail=")), h2o_iovec_init(detail, strlen(detail)))
                    .base;
        }
        if (fill->shared != NULL) {
            struct st_shared_fill_t *sf = fill->shared;
            sf->status = fill->status;
            sf->reason = fill->reason;
            sf->headers = fill->headers;
            sf->num_headers = fill->num_headers;
            sf->content_length = fill->content_length;
            sf->framing = fill->framing;
            sf->fill_id = fill->fill_id;
            sf->initial_age = fill->initial_age;
            sf->response_time = fill->response_time;
            sf->lifetime = fill->lifetime;
            if (fill->has_variant) {
                sf->has_vary = 1;
                sf->vary = vary;
                sf->variant = h2o_strdup(pool, fill->variant.base, fill->variant.len);
            }
            sf->cache_status = h2o_concat(pool, h2o_iovec_init(fill->cache_status, strlen(fill->cache_status)),
                                          h2o_iovec_init(H2O_STRLIT("; collapsed")))
                                   .base;
            if (!fill->heads_deferred)
                shared_update(sf, fill->storing ? SF_STORING : SF_RELEASED, 0);
        }
    }

    if (fill->pending_invalidations == 0 && !fill->heads_deferred)
        fill_respond_heads(fill);
}

/* Answers every client of the fill with its head (after any invalidation it waited for). */
static void fill_respond_heads(struct st_fill_t *fill)
{
    ++fill->refcnt;
    h2o_linklist_t *l = fill->readers.next;
    while (l != &fill->readers) {
        struct st_reader_t *r = H2O_STRUCT_FROM_MEMBER(struct st_reader_t, link, l);
        l = l->next;
        if (!r->started && !r->finished)
            reader_respond_head(r);
    }
    if (h2o_linklist_is_empty(&fill->readers) && !fill->storing && fill->fetch != NULL) {
        /* nobody to serve and nothing to store */
        origin_fetch_cancel(fill->fetch);
        fill->fetch = NULL;
        fill->origin_ended = 1;
        fill->origin_err = ORIGIN_ERESET;
        fill_unref(fill); /* the origin side */
    }
    fill_unref(fill);
}

static struct st_chunk_t *new_chunk(struct st_fill_t *fill)
{
    if (fill->num_chunks == fill->cap_chunks) {
        fill->cap_chunks = fill->cap_chunks == 0 ? 16 : fill->cap_chunks * 2;
        fill->chunks = h2o_mem_realloc(fill->chunks, sizeof(*fill->chunks) * fill->cap_chunks);
    }
    /* a small body gets a small buffer: many fills waiting for the writer must not each hold 64 KiB. The origin
     * client delivers exactly the announced length (origin/http_origin.c), so only the last chunk is short. */
    size_t cap = EDGE_STORE_CHUNK_SIZE;
    uint64_t at = (uint64_t)fill->num_chunks * EDGE_STORE_CHUNK_SIZE;
    if (fill->framing == ORIGIN_FRAMING_LENGTH && fill->content_length >= 0 && (uint64_t)fill->content_length > at &&
        (uint64_t)fill->content_length - at < cap)
        cap = (size_t)((uint64_t)fill->content_length - at);
    struct st_chunk_t *c = h2o_mem_alloc(offsetof(struct st_chunk_t, buf) + cap);
    memset(c, 0, offsetof(struct st_chunk_t, buf));
    c->cap = cap;
    c->fill = fill;
    c->index = (uint32_t)fill->num_chunks;
    fill->chunks[fill->num_chunks++] = c;
    ++fill->mem_chunks;
    return c;
}

/* Appends body bytes (as the clients and the store see them: decoded, when the origin sent gzip) to the chunks. */
static void fill_append(struct st_fill_t *fill, const char *bytes, size_t len)
{
    uint64_t max_object = fill->thread->rt->conf->cache.max_object_size_bytes;

    if (fill->storing && fill->bytes + len > max_object) {
        /* an unannounced length went over the bound: pass the rest through */
        fill_stop_storing(fill, NULL);
        EDGE_METRIC_ADD(fills_unstored, 1);
        if (fill->shared != NULL)
            shared_update(fill->shared, SF_FAILED, fill->committed_bytes);
    }
    while (len != 0) {
        struct st_chunk_t *c = fill->num_chunks != 0 ? fill->chunks[fill->num_chunks - 1] : NULL;
        if (c == NULL || c->len == c->cap)
            c = new_chunk(fill);
        size_t n = c->cap - c->len;
        if (n > len)
            n = len;
        memcpy(c->buf + c->len, bytes, n);
        c->len += n;
        bytes += n;
        len -= n;
        fill->bytes += n;
        if (c->len == EDGE_STORE_CHUNK_SIZE && fill->storing)
            submit_chunk(fill, c);
    }
}

/* --- gzip from the origin (see st_fill_t: asked_gzip) --- */

static int on_decoded(void *ctx, const void *bytes, size_t len)
{
    fill_append(ctx, bytes, len);
    return 0;
}

static void gz_discard(struct st_fill_t *fill)
{
    if (fill->gz_cur != NULL) {
        free(fill->gz_cur);
        fill->gz_cur = NULL;
        --fill->mem_chunks;
    }
    fill->gz_keep = 0;
    if (fill->gz_fill_id == 0)
        return;
    end_fill_id(fill->thread, fill->gz_fill_id, fill->gz_submitted);
    fill->gz_fill_id = 0;
}

static void on_rawchunk_done(edge_store_op_t *op, int result)
{
    struct st_rawchunk_t *c = H2O_STRUCT_FROM_MEMBER(struct st_rawchunk_t, op, op);
    c->msg.is_commit = 3;
    c->msg.result = result;
    h2o_multithread_send_message(&c->fill->thread->store_receiver, &c->msg.super);
}

static void gz_submit_cur(struct st_fill_t *fill)
{
    struct st_rawchunk_t *c = fill->gz_cur;
    if (c == NULL || c->len == 0)
        return;
    fill->gz_cur = NULL;
    memset(&c->op, 0, sizeof(c->op));
    c->op.kind = EDGE_STORE_OP_CHUNK;
    c->op.fill_id = fill->gz_fill_id;
    c->op.chunk_index = fill->gz_num_chunks++;
    c->op.data = c->buf;
    c->op.len = c->len;
    c->op.on_done = on_rawchunk_done;
    fill->gz_submitted = 1;
    fill_op_begin(fill);
    ++fill->refcnt;
    edge_store_submit(fill->thread->rt->store, &c->op); /* mem_chunks counts it until it is applied */
}

/* Keeps the origin's gzip bytes as they came (the future gzip variant). */
static void gz_append(struct st_fill_t *fill, const char *bytes, size_t len)
{
    if (!fill->storing || fill->gz_bytes + len > fill->thread->rt->conf->cache.max_object_size_bytes) {
        /* the base is not stored after all (too big, the store busy, a store error): neither is its gzip */
        gz_discard(fill);
        return;
    }
    fill->gz_bytes += len;
    while (len != 0) {
        if (fill->gz_cur == NULL) {
            fill->gz_cur = h2o_mem_alloc(sizeof(*fill->gz_cur));
            memset(fill->gz_cur, 0, offsetof(struct st_rawchunk_t, buf));
            fill->gz_cur->fill = fill;
            ++fill->mem_chunks;
        }
        struct st_rawchunk_t *c = fill->gz_cur;
        size_t n = EDGE_STORE_CHUNK_SIZE - c->len;
        if (n > len)
            n = len;
        memcpy(c->buf + c->len, bytes, n);
        c->len += n;
        bytes += n;
        len -= n;
        if (c->len == EDGE_STORE_CHUNK_SIZE)
            gz_submit_cur(fill);
    }
}

/* A Content-Encoding of exactly gzip (one field, one coding; x-gzip is the same, RFC 9110 §8.4.1.3). */
static int fill_is_gzip(const struct st_fill_t *fill)
{
    int found = 0;
    for (size_t i = 0; i != fill->num_headers; ++i) {
        if (fill->headers[i].name != &H2O_TOKEN_CONTENT_ENCODING->buf)
            continue;
        h2o_iovec_t v = fill->headers[i].value;
        while (v.len != 0 && (v.base[0] == ' ' || v.base[0] == '\t'))
            ++v.base, --v.len;
        while (v.len != 0 && (v.base[v.len - 1] == ' ' || v.base[v.len - 1] == '\t'))
            --v.len;
        if (found++ || !(h2o_lcstris(v.base, v.len, H2O_STRLIT("gzip")) || h2o_lcstris(v.base, v.len, H2O_STRLIT("x-gzip"))))
            return 0;
    }
    return found;
}

/* Does every client of the fill take gzip? (None: yes.) */
static int readers_take_gzip(struct st_fill_t *fill)
{
    for (h2o_linklist_t *l = fill->readers.next; l != &fill->readers; l = l->next) {
        h2o_req_t *req = H2O_STRUCT_FROM_MEMBER(struct st_reader_t, link, l)->req;
        ssize_t ai = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT_ENCODING, -1);
        if (ai == -1 || edge_accept_encoding_select(req->headers.entries[ai].value.base, req->headers.entries[ai].value.len,
                                                    EDGE_ENC_BIT(EDGE_ENC_GZIP)) != EDGE_ENC_GZIP)
            return 0;
    }
    return 1;
}

/* From the head on, the fill decodes: its head loses Content-Encoding and its length, and is held back until the
 * first body bytes decoded. */
static void fill_start_gunzip(struct st_fill_t *fill, int storing)
{
    edge_runtime_t *rt = fill->thread->rt;
    uint64_t max_out = rt->conf->cache.max_object_size_bytes * 4; /* more than this is a bomb, whatever the ratio */
    if ((fill->gunzip = edge_decoder_new_gzip(max_out, EDGE_DEFAULT_GUNZIP_MAX_RATIO, on_decoded, fill)) == NULL)
        h2o_fatal("no memory");
    size_t n = 0;
    for (size_t i = 0; i != fill->num_headers; ++i)
        if (fill->headers[i].name != &H2O_TOKEN_CONTENT_ENCODING->buf)
            fill->headers[n++] = fill->headers[i];
    fill->num_headers = n;
    fill->content_length = -1;
    if (fill->framing == ORIGIN_FRAMING_LENGTH)
        fill->framing = ORIGIN_FRAMING_CHUNKED; /* the decoded length is known at the end only */
    fill->heads_deferred = 1;
    h2o_iovec_t ct = fill_header(fill, H2O_TOKEN_CONTENT_TYPE);
    if (storing && fill->status == 200 && ct.base != NULL && edge_compress_type_ok(&rt->compress, ct.base, ct.len)) {
        fill->gz_keep = 1;
        fill->gz_fill_id = edge_store_new_fill_id(rt->store);
    }
}

static void fill_gunzip_failed(struct st_fill_t *fill, int rc);
static void on_origin_end(origin_fetch_t *fetch, void *data, int err);

/* Decodes from bytes until they are all used or the fill's memory bound is reached. @return 0 or an error code */
static int gunzip_feed(struct st_fill_t *fill, const char *bytes, size_t len, size_t *used)
{
    size_t off = 0;
    while (off != len && fill->mem_chunks < EDGE_FILL_MAX_MEM_CHUNKS) {
        size_t n = len - off < EDGE_GUNZIP_PIECE ? len - off : EDGE_GUNZIP_PIECE;
        int rc = edge_decoder_write(fill->gunzip, bytes + off, n);
        if (rc != 0)
            return rc;
        off += n;
        fill->gunzip_in += n;
    }
    *used = off;
    return 0;
}

/* The head, held back while the first body bytes decoded: now to the clients and the waiters. */
static void release_heads(struct st_fill_t *fill)
{
    fill->heads_deferred = 0;
    if (fill->shared != NULL)
        shared_update(fill->shared, fill->storing ? SF_STORING : SF_RELEASED, 0);
    if (fill->pending_invalidations == 0)
        fill_respond_heads(fill);
}

static void on_drain(h2o_timeout_entry_t *entry)
{
    struct st_fill_t *fill = H2O_STRUCT_FROM_MEMBER(struct st_fill_t, drain_timer, entry);
    fill->drain_scheduled = 0;
    if (fill->gunzip != NULL && fill->stash_off != fill->stash_len) {
        size_t used = 0;
        int rc = gunzip_feed(fill, fill->stash + fill->stash_off, fill->stash_len - fill->stash_off, &used);
        if (rc != 0) {
            fill_gunzip_failed(fill, rc);
            fill_unref(fill);
            return;
        }
        fill->stash_off += used;
        if (fill->stash_off == fill->stash_len)
            fill->stash_off = fill->stash_len = 0;
        if (fill->heads_deferred && fill->stash_len == 0)
            release_heads(fill);
        wake_readers(fill);
        if (fill->stash_len == 0 && fill->end_deferred) {
            fill->end_deferred = 0;
            on_origin_end(NULL, fill, 0); /* releases the origin side */
        } else {
            fill_gc(fill); /* resumes the origin, or schedules the next drain */
        }
    }
    fill_unref(fill);
}

static void schedule_drain(struct st_fill_t *fill)
{
    if (fill->drain_scheduled)
        return;
    fill->drain_scheduled = 1;
    ++fill->refcnt;
    fill->drain_timer.cb = on_drain;
    h2o_timeout_link(fill->thread->loop, &fill->thread->ctx.zero_timeout, &fill->drain_timer);
}

/* A corrupt, truncated or bomb gzip body: nothing is stored, the fill ends as an origin error (a 502 for clients
 * that got no head yet, a cut response for the others). */
static void fill_gunzip_failed(struct st_fill_t *fill, int rc)
{
    fprintf(stderr, "edge/handler: ORIGIN_GZIP key=%.*s err=\"%s\" in=%" PRIu64 " out=%" PRIu64 "\n", (int)fill->key.len,
            fill->key.base, edge_compress_strerror(rc), fill->gunzip_in, edge_decoder_bytes_out(fill->gunzip));
    EDGE_METRIC_ADD(origin_gunzip_failed, 1);
    edge_decoder_free(fill->gunzip);
    fill->gunzip = NULL;
    fill->stash_off = fill->stash_len = 0;
    fill->end_deferred = 0;
    gz_discard(fill);
    if (fill->heads_deferred) {
        fill->heads_deferred = 0;
        fill->head_received = 0; /* nothing went out: the clients get a clean 502 */
    }
    if (fill->fetch != NULL)
        origin_fetch_cancel(fill->fetch);
    on_origin_end(NULL, fill, ORIGIN_EPROTO); /* releases the origin side */
}

static void on_origin_body(origin_fetch_t *fetch, void *data, const char *bytes, size_t len)
{
    struct st_fill_t *fill = data;

    if (fill->gunzip != NULL) {
        if (fill->gz_keep)
            gz_append(fill, bytes, len);
        size_t used = 0;
        int rc = gunzip_feed(fill, bytes, len, &used);
        if (rc != 0) {
            fill_gunzip_failed(fill, rc); /* cancels the fetch: nothing more comes */
            return;
        }
        if (used != len) {
            /* the memory bound: the rest waits (at most one delivery slice), the origin pauses below */
            size_t rest = len - used;
            if (fill->stash_cap < rest) {
                free(fill->stash);
                fill->stash = h2o_mem_alloc(rest);
                fill->stash_cap = rest;
            }
            memcpy(fill->stash, bytes + used, rest);
            fill->stash_off = 0;
            fill->stash_len = rest;
        }
        ++fill->refcnt; /* releasing the heads may cancel the fetch and drop the origin side */
        /* the head goes out once the whole first slice decoded (a bomb shows there); a fill that does not store
         * frees memory only as its clients read, so its head cannot wait */
        if (fill->heads_deferred && (fill->stash_len == 0 || !fill->storing))
            release_heads(fill);
        wake_readers(fill);
        fill_gc(fill);
        if (fill->fetch != NULL && !fill->paused &&
            (fill->mem_chunks >= EDGE_FILL_MAX_MEM_CHUNKS || fill->stash_len != 0)) {
            fill->paused = 1;
            origin_fetch_pause(fill->fetch);
        }
        fill_unref(fill);
        return;
    }

    fill_append(fill, bytes, len);
    if (fill->shared != NULL && fill->storing && fill->framing == ORIGIN_FRAMING_LENGTH &&
        fill->bytes == (uint64_t)fill->content_length) {
        /* the whole body is in (the origin's end is reported next): a request arriving now waits for the
         * commit and is served as a hit */
        pthread_mutex_lock(&fill->shared->mutex);
        fill->shared->origin_complete = 1;
        pthread_mutex_unlock(&fill->shared->mutex);
    }
    wake_readers(fill);
    fill_gc(fill);
    if (fill->fetch != NULL && !fill->paused && fill->mem_chunks >= EDGE_FILL_MAX_MEM_CHUNKS) {
        fill->paused = 1;
        origin_fetch_pause(fill->fetch);
    }
}

static void on_origin_end(origin_fetch_t *fetch, void *data, int err)
{
    struct st_fill_t *fill = data;

    fill->fetch = NULL;
    if (fill->gunzip != NULL) {
        if (err == 0 && fill->stash_off != fill->stash_len) {
            fill->end_deferred = 1; /* on_drain ends it once the stash is decoded */
            return;
        }
        int rc = err == 0 ? edge_decoder_finish(fill->gunzip) : 0;
        if (rc == EDGE_COMPRESS_ETRUNCATED && fill->gunzip_in == 0)
            rc = 0; /* no body at all: an empty identity body */
        if (rc != 0) {
            fprintf(stderr, "edge/handler: ORIGIN_GZIP key=%.*s err=\"%s\" in=%" PRIu64 "\n", (int)fill->key.len,
                    fill->key.base, edge_compress_strerror(rc), fill->gunzip_in);
            EDGE_METRIC_ADD(origin_gunzip_failed, 1);
            err = ORIGIN_EPROTO;
        } else if (err == 0) {
            EDGE_METRIC_ADD(origin_gunzip, 1);
        }
        if (err != 0 || edge_decoder_members(fill->gunzip) > 1)
            gz_discard(fill); /* several members: some clients decode only the first, the job makes its own gzip */
        edge_decoder_free(fill->gunzip);
        fill->gunzip = NULL;
    }
    if (fill->heads_deferred) {
        if (err != 0) {
            fill->heads_deferred = 0;
            fill->head_received = 0; /* nothing went out: the clients get a clean error status */
        } else {
            ++fill->refcnt;
            release_heads(fill);
            --fill->refcnt; /* the origin side still holds it */
        }
    }
    fill->origin_ended = 1;
    fill->origin_err = err;
    if (err != 0) {
        fprintf(stderr, "edge/handler: ORIGIN_ERR key=%.*s err=\"%s\"\n", (int)fill->key.len, fill->key.base,
                         origin_strerror(err));
        if (fill->storing) {
            fill_stop_storing(fill, NULL);
            EDGE_METRIC_ADD(fills_aborted, 1);
        }
        if (fill->shared != NULL)
            shared_update(fill->shared, SF_FAILED, fill->committed_bytes);
    } else if (fill->storing && fill->bytes == 0 && empty_nextjs_page(fill)) {
        /* Next.js: a 204 or an empty body for a page (e.g. a segment prefetch's empty 404) must never answer
         * a page request from the cache */
        fill_stop_storing(fill, NULL);
        EDGE_METRIC_ADD(fills_unstored, 1);
        if (fill->shared != NULL)
            shared_update(fill->shared, SF_FAILED, 0);
    } else if (fill->storing) {
        /* the last, partial chunk, then the record: the object exists from this commit on */
        if (fill->num_chunks != 0 && !fill->chunks[fill->num_chunks - 1]->submitted &&
            submit_chunk(fill, fill->chunks[fill->num_chunks - 1]) != 0)
            goto Committed; /* not stored after all (the store is busy) */
        fill->compress_after_commit = fill_is_compressible(fill);
        if (fill->compress_after_commit)
            fill->obj_flags |= EDGE_OBJECT_COMPRESSIBLE;
        if (fill->compress_after_commit && fill->gz_keep)
            gz_submit_cur(fill); /* the origin's gzip: its last chunk, committed by the compression job */
        else
            gz_discard(fill);
        edge_object_t obj = {fill->status,       fill->obj_flags,   fill->swr,
                             fill->sie,          fill->request_time, fill->response_time,
                             fill->initial_age,  fill->lifetime < 0 ? 0 : fill->lifetime,
                             fill->headers,      fill->num_headers};
        fill->commit_blob = edge_object_encode(&fill->pool, &obj);
        fill->commit_op.kind = EDGE_STORE_OP_COMMIT;
        fill->commit_op.fill_id = fill->fill_id;
        fill->commit_op.data = fill->commit_blob.base;
        fill->commit_op.len = fill->commit_blob.len;
        memcpy(fill->commit_op.hash, fill->hash, EDGE_STORE_HASH_LEN);
        fill->commit_op.key = fill->key.base;
        fill->commit_op.key_len = fill->key.len;
        fill->commit_op.body_size = fill->bytes;
        fill->commit_op.num_chunks = (uint32_t)fill->num_chunks;
        if (fill->has_variant) {
            memcpy(fill->commit_op.group, fill->url_hash, EDGE_STORE_HASH_LEN);
            fill->commit_op.variant = fill->variant.base;
            fill->commit_op.variant_len = fill->variant.len;
        }
        fill->commit_op.tags = (const char *const *)fill->tags;
        fill->commit_op.tag_lens = fill->tag_lens;
        fill->commit_op.num_tags = fill->num_tags;
        fill->commit_op.on_done = on_commit_done;
        fill->commit_submitted = 1;
        if (fill->shared != NULL) {
            pthread_mutex_lock(&fill->shared->mutex);
            fill->shared->origin_complete = 1;
            pthread_mutex_unlock(&fill->shared->mutex);
        }
        fill_op_begin(fill);
        ++fill->refcnt;
        if (fill->has_variant)
            submit_vary_marker(fill);
        edge_store_submit(fill->thread->rt->store, &fill->commit_op);
        if (fill->has_variant)
            submit_variant_trim(fill);
    }
Committed:

    if (err != 0 && !fill->head_received && stale_if_error_allowed(&fill->stale, 1))
        serve_stale_on_error(fill, 0);

    ++fill->refcnt;
    h2o_linklist_t *l = fill->readers.next;
    while (l != &fill->readers) {
        struct st_reader_t *r = H2O_STRUCT_FROM_MEMBER(struct st_reader_t, link, l);
        l = l->next;
        if (!fill->head_received) {
            /* nothing was sent yet: a clean error status */
            h2o_req_t *req = r->req;
            const char *cs = fill->mode == FILL_PASS ? fill->cache_status : "cdn-edge; fwd=miss; detail=origin-error";
            r->finished = 1;
            reader_detach(r);
            h2o_req_log_error(req, "edge/handler", "origin: %s", origin_strerror(err));
            send_error(req, origin_error_status(err), cs, origin_strerror(err));
        } else if (r->waiting && r->started) {
            r->waiting = 0;
            reader_pump(r);
        }
    }
    fill_gc(fill);
    fill_unref(fill);
    fill_unref(fill); /* the origin side */
}

static const origin_callbacks_t fill_callbacks = {on_origin_head, on_origin_body, on_origin_end};

/* --- readers (client responses) --- */

static void on_watchdog(h2o_timeout_entry_t *entry)
{
    struct st_reader_t *reader = H2O_STRUCT_FROM_MEMBER(struct st_reader_t, watchdog, entry);
    h2o_socket_t *sock = reader->req->conn->callbacks->get_socket(reader->req->conn);
    EDGE_METRIC_ADD(watchdog_closes, 1);
    h2o_req_log_error(reader->req, "edge/handler", "client took no bytes for the write timeout; closing");
    /* h2o tears the connection down cleanly on its next I/O (shared/H2O-2.2.5.md §4) */
    if (sock != NULL)
        shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
}

static void release_held(struct st_reader_t *reader)
{
    if (reader->held != NULL) {
        --reader->held->client_refs;
        reader->held = NULL;
    }
}

static void reader_detach(struct st_reader_t *reader)
{
    struct st_fill_t *fill = reader->fill;
    if (fill == NULL)
        return;
    release_held(reader);
    reader->fill = NULL;
    h2o_linklist_unlink(&reader->link);
    if (h2o_linklist_is_empty(&fill->readers) && fill->fetch != NULL &&
        (fill->mode == FILL_PASS || (fill->head_received && !fill->storing))) {
        /* nobody left to serve and nothing to store: stop the origin */
        origin_fetch_cancel(fill->fetch);
        fill->fetch = NULL;
        fill->origin_ended = 1;
        fill->origin_err = ORIGIN_ERESET;
        fill_unref(fill); /* the origin side */
    }
    fill_gc(fill);
    fill_unref(fill);
}

/* Leaves the other fill this reader waited on. */
static void reader_detach_shared(struct st_reader_t *reader)
{
    struct st_shared_fill_t *sf = reader->shared;
    struct st_waiter_t *w = reader->waiter;
    if (sf == NULL)
        return;
    pthread_mutex_lock(&sf->mutex);
    h2o_linklist_unlink(&w->link);
    --sf->num_waiters;
    pthread_mutex_unlock(&sf->mutex);
    w->reader = NULL;
    reader->shared = NULL;
    reader->waiter = NULL;
    waiter_unref(w);
    shared_release(sf);
}

static void on_reader_dispose(void *p)
{
    struct st_reader_t *reader = p;
    h2o_timeout_unlink(&reader->watchdog);
    reader_detach(reader);
    reader_detach_shared(reader);
    if (reader->txn != NULL) {
        edge_store_read_end(reader->txn);
        reader->txn = NULL;
    }
    --edge_this_thread->inflight_requests;
}

static void do_send(struct st_reader_t *reader, h2o_iovec_t *buf, size_t bufcnt, h2o_send_state_t state)
{
    if (bufcnt != 0)
        EDGE_METRIC_ADD(client_bytes, buf->len);
    if (!h2o_timeout_is_linked(&reader->watchdog))
        h2o_timeout_link(edge_this_thread->loop, &edge_this_thread->write_timeout, &reader->watchdog);
    if (state == H2O_SEND_STATE_IN_PROGRESS) {
        reader->sending = 1;
    } else {
        /* the reader stays attached (its chunk stays in memory) until the request is disposed, which
         * may happen inside this h2o_send: nothing of the reader is touched after it */
        reader->finished = 1;
    }
    h2o_send(reader->req, buf, bufcnt, state);
}

/* Sends the next piece of the body, or parks the reader until the fill has more. */
static void reader_pump(struct st_reader_t *reader)
{
    struct st_fill_t *fill = reader->fill;
    h2o_iovec_t buf;

    if (reader->sending || reader->finished)
        return;
    release_held(reader);
    if (fill != NULL)
        fill_gc(fill); /* what this client has passed may be freed, and a paused origin resumed */

    /* what the source has: a live fill (memory or store), another thread's fill (store), or a stored object */
    uint64_t available, fill_id;
    int complete, failed;
    if (fill != NULL) {
        available = fill->bytes;
        complete = fill->origin_ended && fill->origin_err == 0;
        failed = fill->origin_ended && fill->origin_err != 0;
        fill_id = fill->fill_id;
    } else if (reader->shared != NULL) {
        pthread_mutex_lock(&reader->shared->mutex);
        available = reader->shared->committed_bytes;
        complete = reader->shared->state == SF_DONE;
        failed = reader->shared->state != SF_DONE && reader->shared->state != SF_STORING;
        pthread_mutex_unlock(&reader->shared->mutex);
        fill_id = reader->shared->fill_id;
    } else {
        available = reader->body_size;
        complete = 1;
        failed = 0;
        fill_id = reader->fill_id;
    }
    uint64_t body_available = available; /* what the chunks can hold, for their validation below */
    if (reader->end != 0 && available > reader->end) {
        available = reader->end;
        complete = 1;
    }
    if (reader->pos >= available) {
        if (complete) {
            do_send(reader, NULL, 0, H2O_SEND_STATE_FINAL);
        } else if (failed) {
            h2o_req_log_error(reader->req, "edge/handler", "origin response cut short%s%s",
                              fill != NULL ? ": " : "", fill != NULL ? origin_strerror(fill->origin_err) : "");
            do_send(reader, NULL, 0, H2O_SEND_STATE_ERROR);
        } else {
            reader->waiting = 1;
        }
        return;
    }

    uint32_t n = (uint32_t)(reader->pos / EDGE_STORE_CHUNK_SIZE);
    size_t off = (size_t)(reader->pos % EDGE_STORE_CHUNK_SIZE);
    struct st_chunk_t *c = fill != NULL && n < fill->num_chunks ? fill->chunks[n] : NULL;
    if (c != NULL) {
        buf = h2o_iovec_init(c->buf + off, c->len - off);
        ++c->client_refs;
        reader->held = c;
    } else {
        /* a stored object, or a committed chunk the fill no longer keeps in memory */
        const void *data;
        size_t len;
        int r;
        if ((fill != NULL || reader->shared != NULL) && reader->txn != NULL) {
            /* a new snapshot sees chunks committed since the last one */
            edge_store_read_end(reader->txn);
            reader->txn = NULL;
        }
        if (reader->txn == NULL && (r = edge_store_read_begin(edge_this_thread->rt->store, &reader->txn)) != 0) {
            EDGE_METRIC_ADD(store_errors, 1);
            h2o_req_log_error(reader->req, "edge/store", "STORE_ERR read_begin: %s", edge_store_strerror(r));
            do_send(reader, NULL, 0, H2O_SEND_STATE_ERROR);
            return;
        }
        if (reader->inline_body != NULL && n == 0) {
            data = reader->inline_body; /* the record's copy: no second lookup */
            len = (size_t)reader->body_size;
            r = 0;
        } else if ((r = edge_store_get_chunk(reader->txn, fill_id, n, &data, &len)) != 0) {
            len = 0;
        }
        if (r != 0 || len <= off ||
            len > EDGE_STORE_CHUNK_SIZE || (uint64_t)n * EDGE_STORE_CHUNK_SIZE + len > body_available) {
            EDGE_METRIC_ADD(store_errors, 1);
            h2o_req_log_error(reader->req, "edge/store", "STORE_ERR chunk %" PRIu32 " of fill %" PRIu64 ": %s", n,
                              fill_id, r != 0 ? edge_store_strerror(r) : "bad length");
            do_send(reader, NULL, 0, H2O_SEND_STATE_ERROR);
            return;
        }
        buf = h2o_iovec_init((const char *)data + off, len - off);
    }
    if (buf.len > available - reader->pos)
        buf.len = available - reader->pos; /* the end of a range */
    reader->pos += buf.len;
    do_send(reader, &buf, 1, complete && reader->pos >= available ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_reader_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    struct st_reader_t *reader = (struct st_reader_t *)self;
    h2o_timeout_unlink(&reader->watchdog);
    reader->sending = 0;
    reader_pump(reader);
}

static void on_reader_stop(h2o_generator_t *self, h2o_req_t *req)
{
    /* the client went away: the disposer detaches the reader; a fill worth finishing goes on */
}

static struct st_reader_t *reader_new(h2o_req_t *req)
{
    struct st_reader_t *reader = h2o_mem_alloc_shared(&req->pool, sizeof(*reader), on_reader_dispose);
    memset(reader, 0, sizeof(*reader));
    reader->super.proceed = on_reader_proceed;
    reader->super.stop = on_reader_stop;
    reader->req = req;
    reader->watchdog.cb = on_watchdog;
    reader->is_head = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
    ++edge_this_thread->inflight_requests;
    return reader;
}

/*
 * HTTP/1.1 over TLS: h2o 2.2.5 writes one TLS record (one SSL_write) per buffer it is given, so a response sent as
 * head + body costs two records where h2o's file handler, which pulls the body into the buffer of the head
 * (lib/http1.c finalostream_start_pull), costs one. A whole stored body kept in its record and no bigger than
 * PULL_MAX_BODY is served the same way: h2o copies it after the head. Everything else is pushed (no copy).
 */
#define PULL_MAX_BODY 16384

static int reader_pulls(const struct st_reader_t *reader)
{
    h2o_req_t *req = reader->req;
    return reader->inline_body != NULL && reader->fill == NULL && reader->shared == NULL && reader->pos == 0 &&
           reader->end == 0 && reader->body_size != 0 && reader->body_size <= PULL_MAX_BODY && !reader->is_head &&
           req->version < 0x200 && req->scheme == &H2O_URL_SCHEME_HTTPS && req->_ostr_top->start_pull != NULL;
}

static h2o_send_state_t on_reader_pull(h2o_generator_t *self, h2o_req_t *req, h2o_iovec_t *buf)
{
    struct st_reader_t *reader = (struct st_reader_t *)self;
    size_t n = (size_t)(reader->body_size - reader->pos);
    if (n > buf->len)
        n = buf->len;
    memcpy(buf->base, (const char *)reader->inline_body + reader->pos, n);
    buf->len = n;
    reader->pos += n;
    EDGE_METRIC_ADD(client_bytes, n);
    if (!h2o_timeout_is_linked(&reader->watchdog)) /* unlinked when the request is disposed */
        h2o_timeout_link(edge_this_thread->loop, &edge_this_thread->write_timeout, &reader->watchdog);
    if (reader->pos < reader->body_size)
        return H2O_SEND_STATE_IN_PROGRESS;
    reader->finished = 1;
    return H2O_SEND_STATE_FINAL;
}

static void reader_start(struct st_reader_t *reader)
{
    reader->started = 1;
    h2o_start_response(reader->req, &reader->super);
    if (reader->is_head) {
        do_send(reader, NULL, 0, H2O_SEND_STATE_FINAL);
        return;
    }
    if (reader_pulls(reader)) {
        reader->req->_ostr_top->start_pull(reader->req->_ostr_top, on_reader_pull);
        return;
    }
    reader_pump(reader);
}

/* Answers a client with a response head (from a fill, or from another thread's fill). */
static void respond_head(struct st_reader_t *reader, int status, h2o_iovec_t reason, const h2o_header_t *headers,
                         size_t num_headers, origin_framing_t framing, int64_t content_length, int stored, int64_t age,
                         const char *cache_status)
{
    h2o_req_t *req = reader->req;

    req->res.status = status;
    req->res.reason = reason.len != 0 ? reason.base : status_reason(status);
    /* a stored response carries the cache's Age (RFC 9111 §5.1); a passed one keeps the origin's */
    copy_response_headers(req, headers, num_headers, stored);
    if (stored)
        add_age(req, age);
    add_cache_status(req, cache_status);
    switch (framing) {
    case ORIGIN_FRAMING_LENGTH:
        req->res.content_length = (size_t)content_length;
        break;
    case ORIGIN_FRAMING_NONE:
        req->res.content_length = content_length >= 0 ? (size_t)content_length : 0;
        break;
    default:
        req->res.content_length = SIZE_MAX;
        break;
    }
    if (stored && status == 200 && framing == ORIGIN_FRAMING_LENGTH) {
        /* RFC 9110 §14: a range of a whole response being filled (or served from the store) is answered as
         * soon as its bytes are there; the fill itself always fetches the whole object */
        edge_object_t view = {status};
        view.headers = (h2o_header_t *)headers;
        view.num_headers = num_headers;
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCEPT_RANGES, NULL, H2O_STRLIT("bytes"));
        if (apply_range(req, reader, &view, (uint64_t)content_length) != 0)
            return; /* answered (416) */
    }
    /* RFC 9110 §9.3.2: a HEAD client gets the GET's header section, never its body */
    reader_start(reader);
}

/* The fill's head arrived: answer this reader's client. */
static void reader_respond_head(struct st_reader_t *reader)
{
    struct st_fill_t *fill = reader->fill;
    respond_head(reader, fill->status, fill->reason, fill->headers, fill->num_headers, fill->framing, fill->content_length,
                 fill->storing, fill->initial_age, fill->cache_status);
}

static struct st_fill_t *start_fetch(h2o_req_t *req, enum fill_mode mode, h2o_iovec_t key, const uint8_t *hash,
                                     h2o_iovec_t path, const struct st_stale_t *stale, struct st_shared_fill_t *shared,
                                     int with_reader);

static int try_hit(h2o_req_t *req, edge_runtime_t *rt, h2o_iovec_t key, const uint8_t *hash, struct st_stale_t *stale);

/* The fill a request waited on was committed: look it up again, as a hit. */
static void serve_after_commit(h2o_req_t *req, h2o_iovec_t key, const uint8_t *hash, h2o_iovec_t path, int only_if_cached)
{
    struct st_stale_t stale = {0};
    int hr = try_hit(req, edge_this_thread->rt, key, hash, &stale);
    if (hr == 0)
        return;
    if (only_if_cached) {
        send_error(req, 504, "cdn-edge; fwd=miss; detail=only-if-cached", "not in the cache (only-if-cached)");
        return;
    }
    /* gone already (purged, evicted), or preconditions for the origin: fetch alone */
    if (hr == 2) {
        EDGE_METRIC_ADD(req_pass, 1);
        start_fetch(req, FILL_PASS, h2o_iovec_init(NULL, 0), NULL, path, NULL, NULL, 1);
    } else {
        EDGE_METRIC_ADD(req_miss, 1);
        start_fetch(req, FILL_CACHE, key, hash, path, &stale, NULL, 1);
    }
}

/* A waiter's fill changed: answer its client, go on sending, or fetch alone. */
static void waiter_progress(struct st_reader_t *reader)
{
    struct st_shared_fill_t *sf = reader->shared;
    if (sf == NULL)
        return;
    pthread_mutex_lock(&sf->mutex);
    enum shared_state state = sf->state;
    int origin_complete = sf->origin_complete;
    pthread_mutex_unlock(&sf->mutex);
    if (state == SF_WAIT_HEAD)
        return;
    if (reader->started) {
        if (reader->waiting) {
            reader->waiting = 0;
            reader_pump(reader);
        }
        return;
    }
    h2o_req_t *req = reader->req;
    int64_t age = edge_current_age(sf->initial_age, sf->response_time, now_sec());
    if ((state == SF_STORING || state == SF_DONE) && origin_complete && age < sf->lifetime) {
        /* the whole response is in; once its record is committed (a few ms) this request is an ordinary
         * hit, with everything a hit does (conditionals, ranges) */
        if (state == SF_STORING)
            return;
        reader_detach_shared(reader);
        reader->finished = 1;
        serve_after_commit(req, reader->key, reader->hash, reader->path, reader->only_if_cached);
        return;
    }
    if (reader->only_if_cached) {
        reader_detach_shared(reader);
        reader->finished = 1;
        send_error(req, 504, "cdn-edge; fwd=miss; detail=only-if-cached", "not in the cache (only-if-cached)");
        return;
    }
    /* a response that may not be reused without validation (no-cache, max-age=0) serves only its own
     * request: a waiter goes to the origin itself */
    /* a response that is stale on arrival (or may not be reused without validation) serves only its own request */
    if ((state == SF_STORING || state == SF_DONE) && age < sf->lifetime && sf->has_vary) {
        /* RFC 9111 §4.1: the response varies; it serves this request only if its fields select the same variant */
        h2o_iovec_t mine;
        size_t num_req;
        const h2o_header_t *req_headers = vary_request_headers(req, &req->pool, &num_req);
        if (edge_vary_key(&req->pool, &sf->vary, req_headers, num_req, &mine) != 0 ||
            !h2o_memis(mine.base, mine.len, sf->variant.base, sf->variant.len)) {
            reader_detach_shared(reader);
            reader->finished = 1;
            EDGE_METRIC_ADD(req_miss, 1);
            serve_after_commit(req, reader->key, reader->hash, reader->path, 0);
            return;
        }
    }
    if ((state == SF_STORING || state == SF_DONE) && age < sf->lifetime) {
        EDGE_METRIC_ADD(req_miss, 1);
        respond_head(reader, sf->status, sf->reason, sf->headers, sf->num_headers, sf->framing, sf->content_length, 1,
                     age, sf->cache_status);
        return;
    }
    if (state == SF_FAILED && sf->status == 0 && !reader->only_if_cached) {
        /* the origin failed before answering: this client gets the same error as the fill's own */
        reader_detach_shared(reader);
        reader->finished = 1;
        h2o_req_log_error(req, "edge/handler", "the fill this request waited on failed");
        send_error(req, 502, "cdn-edge; fwd=miss; collapsed; detail=origin-error", "origin error");
        return;
    }
    /* not storable (RFC 9111 §4: the waiters are released), or it failed midway: fetch alone */
    reader_detach_shared(reader);
    reader->finished = 1;
    EDGE_METRIC_ADD(req_miss, 1);
    start_fetch(req, FILL_CACHE, reader->key, reader->hash, reader->path, NULL, NULL, 1);
}

static void on_waiter_messages(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    while (!h2o_linklist_is_empty(messages)) {
        struct st_waiter_msg_t *m = H2O_STRUCT_FROM_MEMBER(struct st_waiter_msg_t, super.link, messages->next);
        h2o_linklist_unlink(&m->super.link);
        struct st_waiter_t *w = m->waiter;
        free(m);
        if (w->reader != NULL)
            waiter_progress(w->reader);
        waiter_unref(w);
    }
}

/* --- request entry points --- */

static h2o_iovec_t client_ip(h2o_req_t *req)
{
    struct sockaddr_storage ss;
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    char *buf = h2o_mem_alloc_pool(&req->pool, INET6_ADDRSTRLEN);
    buf[0] = '\0';
    if (len != 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, buf, INET6_ADDRSTRLEN);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, buf, INET6_ADDRSTRLEN);
    }
    return h2o_iovec_init(buf, strlen(buf));
}

/* Starts an origin fetch for this request; a cacheable one owns `shared` (NULL: not registered). */
static struct st_fill_t *start_fetch(h2o_req_t *req, enum fill_mode mode, h2o_iovec_t key, const uint8_t *hash,
                                     h2o_iovec_t path, const struct st_stale_t *stale, struct st_shared_fill_t *shared,
                                     int with_reader)
{
    edge_thread_t *th = edge_this_thread;
    struct st_fill_t *fill = fill_new(th, mode);

    fill->shared = shared;
    fill->request_time = now_sec();
    /* the fill id is taken before the request goes out: a purge applied while the origin works on it covers
     * it (edge/store.h, bans' watermarks) */
    if (mode == FILL_CACHE)
        fill->fill_id = edge_store_new_fill_id(th->rt->store);
    h2o_iovec_t if_none_match = {NULL, 0}, if_modified_since = {NULL, 0};
    if (stale != NULL && stale->active) {
        /* a revalidation: the stored validators go to the origin (RFC 9111 §4.3.1) */
        fill->stale = *stale;
        fill->stale.variant = fill->variant;
        fill->stale.headers = dup_headers(&fill->pool, stale->headers, stale->num_headers);
        fill->stale_started_id = edge_store_new_fill_id(th->rt->store);
        for (size_t i = 0; i != fill->stale.num_headers; ++i) {
            if (fill->stale.headers[i].name == &H2O_TOKEN_ETAG->buf)
                if_none_match = fill->stale.headers[i].value;
            else if (fill->stale.headers[i].name == &H2O_TOKEN_LAST_MODIFIED->buf)
                if_modified_since = fill->stale.headers[i].value;
        }
    }
    if (mode == FILL_CACHE) {
        fill->key = h2o_strdup(&fill->pool, key.base, key.len);
        memcpy(fill->url_hash, hash, EDGE_STORE_HASH_LEN);
        memcpy(fill->hash, hash, EDGE_STORE_HASH_LEN);
        if (stale != NULL && stale->has_variant) {
            /* the URL's Vary marker named the variant this request needs */
            fill->has_variant = 1;
            fill->variant = h2o_strdup(&fill->pool, stale->variant.base, stale->variant.len);
            memcpy(fill->hash, stale->hash, EDGE_STORE_HASH_LEN);
            fill->stale.vary_miss = stale->vary_miss;
        }
    } else if (key.len != 0) {
        fill->key = h2o_strdup(&fill->pool, key.base, key.len);
        fill->invalidates = 1;
        fill->cache_status = "cdn-edge; fwd=method";
    } else {
        fill->key = h2o_strdup(&fill->pool, req->path.base, req->path.len);
        fill->cache_status = "cdn-edge; fwd=method";
    }
    if (with_reader) {
        struct st_reader_t *reader = reader_new(req);
        reader->fill = fill;
        reader->key = key;
        reader->path = path;
        ++fill->refcnt;
        h2o_linklist_insert(&fill->readers, &reader->link);
    }

    origin_request_t oreq = {0};
    oreq.method = mode == FILL_CACHE ? h2o_iovec_init(H2O_STRLIT("GET")) : req->method;
    oreq.authority = req->authority;
    oreq.path = path;
    oreq.headers = &req->headers;
    oreq.body = mode == FILL_PASS ? req->entity : h2o_iovec_init(NULL, 0);
    oreq.client_ip = client_ip(req);
    oreq.client_is_tls = req->scheme == &H2O_URL_SCHEME_HTTPS;
    oreq.for_cache = mode == FILL_CACHE;
    /* less origin egress: the fill decodes what it stores (edge/compress.h bounds), the jobs make the variants */
    oreq.accept_gzip = fill->asked_gzip = mode == FILL_CACHE && th->rt->compress_enabled;
    oreq.if_none_match = if_none_match;
    oreq.if_modified_since = if_modified_since;
    fill->fetch = origin_fetch_start(th->origin, &oreq, &fill_callbacks, fill);
    return fill;
}

/* stale-while-revalidate: one revalidation per key, in the background, no client attached. */
static void start_background_revalidation(h2o_req_t *req, h2o_iovec_t key, const uint8_t *hash, h2o_iovec_t path,
                                          const struct st_stale_t *stale)
{
    struct st_shared_fill_t *mine = shared_new(stale->hash);
    registry_attach_or_register(stale->hash, NULL, mine);
    if (!mine->registered) {
        shared_release(mine); /* one is under way already */
        return;
    }
    EDGE_METRIC_ADD(background_revalidations, 1);
    start_fetch(req, FILL_CACHE, key, hash, path, stale, mine, 0);
}

static h2o_iovec_t stored_header(const edge_object_t *obj, const h2o_token_t *token)
{
    for (size_t i = 0; i != obj->num_headers; ++i)
        if (obj->headers[i].name == &token->buf)
            return obj->headers[i].value;
    return h2o_iovec_init(NULL, 0);
}

static int stored_date(const edge_object_t *obj, const h2o_token_t *token, int64_t *t)
{
    h2o_iovec_t v = stored_header(obj, token);
    return v.base != NULL && edge_http_date_parse(v.base, v.len, t) == 0;
}

static edge_cond_result_t evaluate_preconditions(h2o_req_t *req, const edge_object_t *obj)
{
    /* most requests carry no precondition: one pass over the names, no copies */
    size_t i;
    for (i = 0; i != req->headers.size; ++i) {
        const h2o_iovec_t *n = req->headers.entries[i].name;
        if (n == &H2O_TOKEN_IF_MATCH->buf || n == &H2O_TOKEN_IF_NONE_MATCH->buf || n == &H2O_TOKEN_IF_MODIFIED_SINCE->buf ||
            n == &H2O_TOKEN_IF_UNMODIFIED_SINCE->buf)
            break;
    }
    if (i == req->headers.size)
        return EDGE_COND_NONE;
    edge_cond_request_t cr;
    edge_cond_request_from_headers(&cr, &req->pool, req->method, req->headers.entries, req->headers.size);
    if (cr.if_match.base == NULL && cr.if_none_match.base == NULL && cr.if_modified_since.base == NULL &&
        cr.if_unmodified_since.base == NULL)
        return EDGE_COND_NONE;
    edge_cond_stored_t st = {obj->status, stored_header(obj, H2O_TOKEN_ETAG)};
    st.has_last_modified = stored_date(obj, H2O_TOKEN_LAST_MODIFIED, &st.last_modified);
    st.has_date = stored_date(obj, H2O_TOKEN_DATE, &st.date);
    st.response_time = obj->response_time;
    return edge_cond_evaluate(&cr, &st, now_sec());
}

/* A 304 made from a stored response: the fields RFC 9110 §15.4.5 lists, no body. */
static void send_not_modified(h2o_req_t *req, const edge_object_t *obj, int64_t age, const char *cache_status)
{
    int has_etag = stored_header(obj, H2O_TOKEN_ETAG).base != NULL;
    req->res.status = 304;
    req->res.reason = "Not Modified";
    for (size_t i = 0; i != obj->num_headers; ++i) {
        const h2o_header_t *h = obj->headers + i;
        int in = edge_header_in_304(h->name->base, h->name->len);
        if (in == 0 || (in == EDGE_304_WITHOUT_ETAG && has_etag) || h->name == &H2O_TOKEN_DATE->buf)
            continue;
        copy_response_headers(req, h, 1, 1);
    }
    add_age(req, age);
    add_cache_status(req, cache_status);
    h2o_send_inline(req, NULL, 0);
}

/**
 * RFC 9110 §14: a single satisfiable byte range of a stored 200 is answered with 206 from the chunks it
 * covers; an unsatisfiable one with 416; anything else (several ranges, a failed If-Range) with the whole 200.
 * @return 0 when the reader is to be started (200 or 206), -1 when the response was sent (416)
 */
static int apply_range(h2o_req_t *req, struct st_reader_t *reader, const edge_object_t *obj, uint64_t size)
{
    ssize_t ri = h2o_find_header(&req->headers, H2O_TOKEN_RANGE, -1);
    if (ri == -1 || !h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")))
        return 0;
    ssize_t ii = h2o_find_header(&req->headers, H2O_TOKEN_IF_RANGE, -1);
    if (ii != -1) {
        int64_t lm = 0, date = 0;
        int has_lm = stored_date(obj, H2O_TOKEN_LAST_MODIFIED, &lm), has_date = stored_date(obj, H2O_TOKEN_DATE, &date);
        if (!edge_if_range_matches(req->headers.entries[ii].value.base, req->headers.entries[ii].value.len,
                                   stored_header(obj, H2O_TOKEN_ETAG), has_lm, lm, has_date, date, now_sec()))
            return 0;
    }
    uint64_t first, last;
    char *cr = h2o_mem_alloc_pool(&req->pool, EDGE_CONTENT_RANGE_BUFSZ);
    size_t crlen;
    switch (edge_range_parse(req->headers.entries[ri].value.base, req->headers.entries[ri].value.len, size, &first, &last)) {
    case EDGE_RANGE_SINGLE:
        crlen = edge_content_range_format(cr, first, last, size);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_RANGE, NULL, cr, crlen);
        req->res.status = 206;
        req->res.reason = "Partial Content";
        req->res.content_length = last - first + 1;
        reader->pos = first;
        reader->end = last + 1;
        return 0;
    case EDGE_RANGE_UNSATISFIABLE:
        crlen = edge_content_range_format_unsatisfied(cr, size);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_RANGE, NULL, cr, crlen);
        reader->finished = 1;
        req->res.status = 416;
        req->res.reason = "Range Not Satisfiable";
        h2o_send_inline(req, NULL, 0);
        return -1;
    default:
        return 0;
    }
}

static void start_background_revalidation(h2o_req_t *req, h2o_iovec_t key, const uint8_t *hash, h2o_iovec_t path,
                                          const struct st_stale_t *stale);

/* The request's Cache-Control, as far as this cache honours it: max-stale and only-if-cached always;
 * max-age, min-fresh and no-cache protect the origin and are not honoured (documented in README). */
static void request_cc(h2o_req_t *req, int honor, edge_cc_t *cc)
{
    ssize_t i = -1;
    memset(cc, 0, sizeof(*cc));
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_CACHE_CONTROL, i)) != -1)
        edge_cc_parse(cc, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    if (!honor) {
        /* cache.honor_client_no_cache off (the default): no client forces origin traffic */
        cc->has_max_age = cc->has_min_fresh = 0;
        cc->no_cache = 0;
    }
    cc->no_store = 0;
}

/* Copies what a revalidation needs of a stale stored object out of the read transaction. */
static void stale_copy(h2o_mem_pool_t *pool, struct st_stale_t *st, const edge_store_object_t *so, const edge_object_t *obj)
{
    st->active = 1;
    st->soft = so->soft_purged;
    st->fill_id = so->fill_id;
    st->body_size = so->body_size;
    st->num_chunks = so->num_chunks;
    st->status = obj->status;
    st->flags = obj->flags;
    st->swr = obj->swr;
    st->sie = obj->sie;
    st->lifetime = obj->lifetime;
    st->initial_age = obj->initial_age;
    st->response_time = obj->response_time;
    st->headers = dup_headers(pool, obj->headers, obj->num_headers);
    st->num_headers = obj->num_headers;
}

/*
 * The decoded heads of the records hits read, per thread (direct-mapped by the record's address): a record's meta
 * holds the same bytes at the same address in every txn of one snapshot (edge_store_txn_snapshot), so a slot is
 * used only when store instance, txnid and address all match, and a hit then copies the decoded header array into
 * its pool (nothing of a request points into a slot, which the next hit may take over) instead of parsing the head
 * and looking up a token per header again. A head of more than HEAD_MEMO_MAX_HEADERS headers is decoded every time.
 * Fixed memory: HEAD_MEMO_SLOTS * sizeof(struct st_head_slot_t) per worker thread (79 KiB), allocated on first use.
 */
#define HEAD_MEMO_SLOTS 64
#define HEAD_MEMO_MAX_HEADERS 24
struct st_head_slot_t {
    uint64_t instance, txnid; /* instance 0: empty */
    const void *meta;
    size_t meta_len;
    edge_object_t obj; /* obj.headers is `headers`; names that are no token point into `names` */
    h2o_header_t headers[HEAD_MEMO_MAX_HEADERS];
    h2o_iovec_t names[HEAD_MEMO_MAX_HEADERS];
};

/* edge_object_decode of a record read through txn, into req's pool, through this thread's memo. @return as it */
static int decode_head(h2o_req_t *req, edge_store_txn_t *txn, const edge_store_object_t *so, edge_object_t *obj)
{
    struct st_head_slot_t *memo = edge_this_thread->head_memo;
    if (memo == NULL && (memo = edge_this_thread->head_memo = calloc(HEAD_MEMO_SLOTS, sizeof(*memo))) == NULL)
        return edge_object_decode(&req->pool, so->meta, so->meta_len, obj);
    uint64_t instance, txnid;
    edge_store_txn_snapshot(txn, &instance, &txnid);
    struct st_head_slot_t *slot = memo + ((uintptr_t)so->meta * 0x9E3779B97F4A7C15ull >> 32) % HEAD_MEMO_SLOTS;
    if (slot->instance != instance || slot->txnid != txnid || slot->meta != so->meta || slot->meta_len != so->meta_len) {
        slot->instance = 0;
        int r = edge_object_decode_into(so->meta, so->meta_len, &slot->obj, slot->headers, slot->names, HEAD_MEMO_MAX_HEADERS);
        if (r != 0)
            return r < 0 ? -1 : edge_object_decode(&req->pool, so->meta, so->meta_len, obj);
        slot->instance = instance;
        slot->txnid = txnid;
        slot->meta = so->meta;
        slot->meta_len = so->meta_len;
    }
    *obj = slot->obj;
    if (obj->num_headers != 0) {
        h2o_header_t *headers = h2o_mem_alloc_pool(&req->pool, (sizeof(h2o_header_t) + sizeof(h2o_iovec_t)) * obj->num_headers);
        h2o_iovec_t *names = (h2o_iovec_t *)(headers + obj->num_headers);
        memcpy(headers, slot->headers, sizeof(*headers) * obj->num_headers);
        for (size_t i = 0; i != obj->num_headers; ++i) {
            if (headers[i].name == slot->names + i) {
                names[i] = slot->names[i];
                headers[i].name = names + i;
            }
        }
        obj->headers = headers;
    }
    return 0;
}

/*
 * Content negotiation on a hit (RFC 9110 §12.5.3): for a compressible object, the encoding the client
 * prefers among those stored (br > gzip > identity when equal) is served as stored; ranges are served
 * from identity. A variant counts only if it was made from this very object (base_fill_id).
 */
#ifndef EDGE_VARIANT_HASH_SLOTS
#define EDGE_VARIANT_HASH_SLOTS 256 /* per thread: store hashes of the encoded variants of recently served objects */
#endif

/* The store hash of an encoded variant depends only on its base object (whose key and Vary variant are fixed for its
 * fill id, and fill ids are never reused) and the encoding: each thread remembers the latest ones (direct-mapped)
 * instead of hashing on every compressed hit. A slot cannot make a wrong object served: what is found under the
 * hash is checked exactly as before. */
static __thread struct st_variant_hash_slot_t {
    uint64_t fill_id;
    int enc; /* 0: empty */
    uint8_t hash[EDGE_STORE_HASH_LEN];
} variant_hashes[EDGE_VARIANT_HASH_SLOTS];

static const uint8_t *variant_hash(h2o_iovec_t key, const edge_store_object_t *so, h2o_iovec_t variant, int enc)
{
    struct st_variant_hash_slot_t *slot = variant_hashes + (so->fill_id * 2 + (enc == EDGE_ENC_BR)) % EDGE_VARIANT_HASH_SLOTS;
    if (slot->enc != enc + 1 || slot->fill_id != so->fill_id) {
        edge_store_variant_hash(key.base, key.len, variant.base, variant.len, slot->hash);
        slot->fill_id = so->fill_id;
        slot->enc = enc + 1;
    }
    return slot->hash;
}

static int pick_encoded(h2o_req_t *req, edge_store_txn_t *txn, h2o_iovec_t key, const edge_store_object_t *so,
                        edge_store_object_t *vso, edge_object_t *vobj)
{
    ssize_t ai = h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT_ENCODING, -1);
    if (ai == -1 || h2o_find_header(&req->headers, H2O_TOKEN_RANGE, -1) != -1)
        return 0;
    int enc = edge_accept_encoding_select(req->headers.entries[ai].value.base, req->headers.entries[ai].value.len,
                                          EDGE_ENC_BIT(EDGE_ENC_GZIP) | EDGE_ENC_BIT(EDGE_ENC_BR));
    for (; enc == EDGE_ENC_BR || enc == EDGE_ENC_GZIP; enc = enc == EDGE_ENC_BR ? EDGE_ENC_GZIP : -1) {
        h2o_iovec_t v = edge_compress_variant_string(&req->pool, so->variant, so->variant_len, (edge_encoding_t)enc);
        if (edge_store_get(txn, variant_hash(key, so, v, enc), vso) == 0 && vso->key_len == key.len && memcmp(vso->key, key.base, key.len) == 0 &&
            h2o_memis(vso->variant, vso->variant_len, v.base, v.len) &&
            decode_head(req, txn, vso, vobj) == 0 && vobj->base_fill_id == so->fill_id)
            return 1;
        /* the preferred one is not there (yet): the next one the client accepts, if it accepts it at all */
        if (enc == EDGE_ENC_BR &&
            edge_accept_encoding_select(req->headers.entries[ai].value.base, req->headers.entries[ai].value.len,
                                        EDGE_ENC_BIT(EDGE_ENC_GZIP)) != EDGE_ENC_GZIP)
            break;
    }
    return 0;
}

/* Vary: Accept-Encoding on every response of a compressible object (RFC 9110 §12.5.5). */
static void add_vary_accept_encoding(h2o_req_t *req, const edge_object_t *obj)
{
    for (size_t i = 0; i != obj->num_headers; ++i) {
        const h2o_header_t *h = obj->headers + i;
        if (h->name != &H2O_TOKEN_VARY->buf)
            continue;
        h2o_iovec_t iter = h->value;
        const char *token;
        size_t token_len;
        while ((token = h2o_next_token(&iter, ',', &token_len, NULL)) != NULL)
            if (h2o_lcstris(token, token_len, H2O_STRLIT("accept-encoding")))
                return;
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_VARY, NULL, H2O_STRLIT("Accept-Encoding"));
}

/* A compressible object served encoded often enough (compress.hot_hits): its variants are remade at the best levels,
 * once per stored version, off the loops. Rare: hashes are computed here, not on every hit. */
static void submit_hot_job(const edge_store_object_t *base)
{
    edge_compress_job_t job = {base->key, base->key_len, base->variant, base->variant_len};
    edge_store_hash(base->key, base->key_len, job.url_hash);
    if (base->variant_len != 0)
        edge_store_variant_hash(base->key, base->key_len, base->variant, base->variant_len, job.base_hash);
    else
        memcpy(job.base_hash, job.url_hash, EDGE_STORE_HASH_LEN);
    job.base_fill_id = base->fill_id;
    job.body_size = base->body_size;
    job.num_chunks = base->num_chunks;
    job.hot = 1;
    edge_compress_job_submit(&job); /* a full queue drops it (counted) */
}

/* Serves a stored object (fresh or allowed stale): preconditions, ranges, headers, body. @return 0, or 2
 * when the origin must decide the preconditions */
static int serve_object(h2o_req_t *req, edge_runtime_t *rt, edge_store_txn_t *txn, const edge_store_object_t *base_so,
                        const edge_object_t *base_obj, int64_t age, const char *cs)
{
    edge_store_object_t vso;
    edge_object_t vobj;
    const edge_store_object_t *so = base_so;
    const edge_object_t *obj = base_obj;
    int compressible = (base_obj->flags & EDGE_OBJECT_COMPRESSIBLE) != 0, encoded = 0;
    if (compressible && pick_encoded(req, txn, h2o_iovec_init(base_so->key, base_so->key_len), base_so, &vso, &vobj)) {
        so = &vso;
        obj = &vobj;
        encoded = 1;
        if (edge_compress_note_hit(base_so->fill_id))
            submit_hot_job(base_so);
    }

    /* RFC 9110 §13.2.2: the client's preconditions first (a cache answers GET/HEAD ones itself, RFC 9111 §4.3.2) */
    switch (evaluate_preconditions(req, obj)) {
    case EDGE_COND_NOT_MODIFIED:
        edge_store_touch(rt->store, so->fill_id);
        EDGE_METRIC_ADD(req_hit, 1);
        send_not_modified(req, obj, age, cs);
        edge_store_read_end(txn);
        return 0;
    case EDGE_COND_PRECONDITION_FAILED:
        /* If-Match / If-Unmodified-Since: the origin decides (RFC 9111 §4.3.2) */
        edge_store_read_end(txn);
        return 2;
    default:
        break;
    }

    struct st_reader_t *reader = reader_new(req);
    reader->txn = txn;
    reader->fill_id = so->fill_id;
    reader->body_size = so->body_size;
    reader->inline_body = so->body;
    reader->num_chunks = so->num_chunks;
    edge_store_touch(rt->store, so->fill_id);
    EDGE_METRIC_ADD(req_hit, 1);

    req->res.status = obj->status;
    req->res.reason = status_reason(obj->status);
    link_stored_headers(req, obj->headers, obj->num_headers, 4); /* vary, age, cache-status, accept-ranges */
    if (compressible && !encoded)
        add_vary_accept_encoding(req, obj);
    add_age(req, age);
    add_cache_status(req, cs);
    req->res.content_length = so->body_size;
    if (obj->status == 200 && !encoded) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ACCEPT_RANGES, NULL, H2O_STRLIT("bytes"));
        if (apply_range(req, reader, obj, so->body_size) != 0)
            return 0; /* answered (416) */
    }
    reader_start(reader);
    return 0;
}

/* Hits on a loop thread share one store snapshot while no commit lands (edge_store_read_begin_shared); it is given
 * back at the end of each loop iteration (a zero timeout runs after the iteration's I/O), so an idle thread pins
 * no old snapshot. */
static void on_snapshot_release(h2o_timeout_entry_t *entry)
{
    edge_store_read_release_shared();
}

static int hit_read_begin(edge_store_t *store, edge_store_txn_t **txn)
{
    edge_thread_t *th = edge_this_thread;
    if (!h2o_timeout_is_linked(&th->snapshot_release))
        h2o_timeout_link(th->loop, &th->ctx.zero_timeout, &th->snapshot_release);
    return edge_store_read_begin_shared(store, txn);
}

/**
 * Looks the request up and serves it when the store can (RFC 9111 §4): fresh, allowed stale
 * (max-stale, stale-while-revalidate with one background revalidation), or answers 504 for
 * only-if-cached. @return 0 when answered; 1 when the caller must go to the origin (with *stale filled
 * when a stale object is to be revalidated); 2 when the origin must decide the request's preconditions
 */
static int try_hit(h2o_req_t *req, edge_runtime_t *rt, h2o_iovec_t key, const uint8_t *hash, struct st_stale_t *stale)
{
    edge_store_txn_t *txn;
    edge_store_object_t so;
    edge_object_t obj;
    int r;

    memcpy(stale->hash, hash, EDGE_STORE_HASH_LEN);
    if ((r = hit_read_begin(rt->store, &txn)) != 0) {
        EDGE_METRIC_ADD(store_errors, 1);
        h2o_req_log_error(req, "edge/store", "STORE_ERR read_begin: %s", edge_store_strerror(r));
        send_error(req, 503, "cdn-edge; fwd=miss; detail=store-busy", "the cache is busy, try again");
        return 0;
    }
    if ((r = edge_store_get(txn, hash, &so)) != 0) {
        if (r != EDGE_STORE_NOTFOUND) {
            EDGE_METRIC_ADD(store_errors, 1);
            h2o_req_log_error(req, "edge/store", "STORE_ERR get: %s", edge_store_strerror(r));
        }
        goto Miss;
    }
    if (so.key_len != key.len || memcmp(so.key, key.base, key.len) != 0)
        goto Miss;
    if (decode_head(req, txn, &so, &obj) != 0) {
        EDGE_METRIC_ADD(store_errors, 1);
        h2o_req_log_error(req, "edge/store", "STORE_ERR corrupt record for %.*s", (int)key.len, key.base);
        goto Miss;
    }
    if (obj.flags & EDGE_OBJECT_VARY_MARKER) {
        /* RFC 9111 §4.1: the URL's responses vary; this request's variant is keyed by the fields the marker
         * names, and stored under its own hash */
        edge_vary_t vary;
        h2o_iovec_t variant;
        size_t num_req;
        const h2o_header_t *req_headers = vary_request_headers(req, &req->pool, &num_req);
        if (edge_vary_from_headers(&vary, obj.headers, obj.num_headers) != 0 ||
            edge_vary_key(&req->pool, &vary, req_headers, num_req, &variant) != 0)
            goto Miss;
        stale->has_variant = 1;
        stale->variant = variant;
        edge_store_variant_hash(key.base, key.len, variant.base, variant.len, stale->hash);
        if ((r = edge_store_get(txn, stale->hash, &so)) != 0 || so.key_len != key.len ||
            memcmp(so.key, key.base, key.len) != 0 || so.variant_len != variant.len ||
            memcmp(so.variant, variant.base, variant.len) != 0) {
            stale->vary_miss = 1;
            goto Miss;
        }
        if (decode_head(req, txn, &so, &obj) != 0 || (obj.flags & EDGE_OBJECT_VARY_MARKER)) {
            EDGE_METRIC_ADD(store_errors, 1);
            h2o_req_log_error(req, "edge/store", "STORE_ERR corrupt variant record for %.*s", (int)key.len, key.base);
            stale->vary_miss = 1;
            goto Miss;
        }
    }

    int64_t now = now_sec(), age = edge_current_age(obj.initial_age, obj.response_time, now);
    /* a soft purge (or a stored stale flag) makes the object stale, whatever its age */
    int64_t lifetime = so.soft_purged ? (age < obj.lifetime ? age : obj.lifetime) : obj.lifetime;
    edge_cc_t rcc, occ;
    int honor = rt->conf->cache.honor_client_no_cache;
    request_cc(req, honor, &rcc);
    cc_from_object_flags(obj.flags, obj.swr, obj.sie, &occ);
    char *cs = h2o_mem_alloc_pool(&req->pool, 96);
    edge_reuse_t reuse = edge_request_reuse(&rcc, &occ, age, lifetime, honor);
    switch (reuse) {
    case EDGE_REUSE_FRESH_OK:
        memcpy(cs, "cdn-edge; hit; ttl=", 19);
        i64toa(cs + 19, lifetime - age);
        return serve_object(req, rt, txn, &so, &obj, age, cs);
    case EDGE_REUSE_SERVE_STALE_OK:
        /* RFC 9111 §4.2.4: the client accepts it (max-stale) */
        snprintf(cs, 96, "cdn-edge; hit; ttl=%" PRId64 "; detail=max-stale", -staleness_of(so.soft_purged, age, lifetime));
        EDGE_METRIC_ADD(stale_served, 1);
        return serve_object(req, rt, txn, &so, &obj, age, cs);
    case EDGE_REUSE_ONLY_IF_CACHED_504:
        edge_store_read_end(txn);
        send_error(req, 504, "cdn-edge; fwd=miss; detail=only-if-cached", "not usable from the cache (only-if-cached)");
        return 0;
    default:
        break;
    }
    stale_copy(&req->pool, stale, &so, &obj);
    if (reuse == EDGE_REUSE_MUST_FETCH || (reuse == EDGE_REUSE_STALE && age < lifetime)) {
        /* the client's own directives refused a usable object (honor_client_no_cache): revalidate, fwd=request */
        stale->by_request = 1;
        goto Miss;
    }
    if (edge_stale_while_revalidate_ok(&occ, staleness_of(so.soft_purged, age, lifetime), EDGE_DEFAULT_STALE_GRACE_SEC)) {
        /* RFC 5861 §3: served at once, even to the first request; one revalidation in the background */
        snprintf(cs, 96, "cdn-edge; hit; ttl=%" PRId64 "; detail=stale-while-revalidate",
                 -staleness_of(so.soft_purged, age, lifetime));
        EDGE_METRIC_ADD(stale_served, 1);
        h2o_iovec_t path = h2o_iovec_init(NULL, 0);
        int hr = serve_object(req, rt, txn, &so, &obj, age, cs);
        h2o_iovec_t key_unused;
        if (edge_request_key(rt, &req->pool, req->scheme->name, req->authority, req->path, &key_unused, &path) == 0)
            start_background_revalidation(req, key, hash, path, stale);
        return hr;
    }

Miss:
    edge_store_read_end(txn);
    return 1;
}

static int request_only_if_cached(h2o_req_t *req)
{
    edge_cc_t cc;
    ssize_t i = -1;
    memset(&cc, 0, sizeof(cc));
    while ((i = h2o_find_header(&req->headers, H2O_TOKEN_CACHE_CONTROL, i)) != -1)
        edge_cc_parse(&cc, req->headers.entries[i].value.base, req->headers.entries[i].value.len);
    return cc.only_if_cached;
}

/*
 * The key, forwarded path and store hash of the request targets a thread saw last (direct-mapped, per thread): a
 * target seen before skips edge_request_key and SHA-256, pure functions of the scheme, authority, raw path and the
 * config. A slot is used only when all three match byte for byte; targets longer than KEY_CACHE_MAX_TARGET are
 * keyed every time. Fixed memory: KEY_CACHE_SLOTS * sizeof(struct st_key_slot_t) per worker thread (~81 KiB).
 */
#define KEY_CACHE_SLOTS 128
#define KEY_CACHE_MAX_TARGET 200 /* authority + raw path */
struct st_key_slot_t {
    uint8_t used, https;
    uint16_t authority_len, raw_len, key_len, path_len;
    uint8_t hash[EDGE_STORE_HASH_LEN];
    /* authority, raw path, key, path; the key is at most the scheme, "://" and the target, the path at most the raw path */
    char bytes[KEY_CACHE_MAX_TARGET + (8 + KEY_CACHE_MAX_TARGET) + KEY_CACHE_MAX_TARGET];
};

static h2o_iovec_t pool_dup(h2o_mem_pool_t *pool, const char *s, size_t len)
{
    char *d = h2o_mem_alloc_pool(pool, len + 1);
    memcpy(d, s, len);
    d[len] = '\0';
    return h2o_iovec_init(d, len);
}

/* edge_request_key and edge_store_hash of the key, through this thread's cache. @return 0, or -1 (400) */
static int request_key_hash(const edge_runtime_t *rt, h2o_req_t *req, h2o_iovec_t *key, h2o_iovec_t *path,
                            uint8_t hash[EDGE_STORE_HASH_LEN])
{
    h2o_iovec_t a = req->authority, r = req->path;
    uint8_t https = req->scheme == &H2O_URL_SCHEME_HTTPS;
    struct st_key_slot_t *slot = NULL, *key_cache = edge_this_thread->key_cache;
    if (a.len + r.len <= KEY_CACHE_MAX_TARGET &&
        (key_cache != NULL || (key_cache = edge_this_thread->key_cache = calloc(KEY_CACHE_SLOTS, sizeof(*key_cache))) != NULL)) {
        uint64_t h = 14695981039346656037u; /* FNV-1a */
        for (size_t i = 0; i != r.len; ++i)
            h = (h ^ (uint8_t)r.base[i]) * 1099511628211u;
        for (size_t i = 0; i != a.len; ++i)
            h = (h ^ (uint8_t)a.base[i]) * 1099511628211u;
        slot = key_cache + (h ^ https) % KEY_CACHE_SLOTS;
        if (slot->used && slot->https == https && slot->authority_len == a.len && slot->raw_len == r.len &&
            memcmp(slot->bytes, a.base, a.len) == 0 && memcmp(slot->bytes + a.len, r.base, r.len) == 0) {
            const char *k = slot->bytes + a.len + r.len;
            *key = pool_dup(&req->pool, k, slot->key_len);
            *path = pool_dup(&req->pool, k + slot->key_len, slot->path_len);
            memcpy(hash, slot->hash, EDGE_STORE_HASH_LEN);
            return 0;
        }
    }
    if (edge_request_key(rt, &req->pool, req->scheme->name, a, r, key, path) != 0)
        return -1;
    edge_store_hash(key->base, key->len, hash);
    if (slot != NULL && key->len <= 8 + KEY_CACHE_MAX_TARGET && path->len <= KEY_CACHE_MAX_TARGET) {
        slot->used = 1;
        slot->https = https;
        slot->authority_len = (uint16_t)a.len;
        slot->raw_len = (uint16_t)r.len;
        slot->key_len = (uint16_t)key->len;
        slot->path_len = (uint16_t)path->len;
        memcpy(slot->hash, hash, EDGE_STORE_HASH_LEN);
        memcpy(slot->bytes, a.base, a.len);
        memcpy(slot->bytes + a.len, r.base, r.len);
        memcpy(slot->bytes + a.len + r.len, key->base, key->len);
        memcpy(slot->bytes + a.len + r.len + key->len, path->base, path->len);
    } else if (slot != NULL) {
        slot->used = 0;
    }
    return 0;
}

static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    struct st_edge_handler_t *self = (void *)_self;
    edge_runtime_t *rt = self->rt;
    h2o_iovec_t key, path;

    if (edge_method_is_cacheable(req->method) == 0) {
        /* RFC 9111 §3: only GET and HEAD responses are stored here; everything else goes through */
        EDGE_METRIC_ADD(req_pass, 1);
        int keyed = edge_method_is_unsafe(req->method) &&
                    edge_request_key(rt, &req->pool, req->scheme->name, req->authority, req->path, &key, &path) == 0;
        start_fetch(req, FILL_PASS, keyed ? key : h2o_iovec_init(NULL, 0), NULL, req->path, NULL, NULL, 1);
        return 0;
    }
    uint8_t hash[EDGE_STORE_HASH_LEN];
    if (request_key_hash(rt, req, &key, &path, hash) != 0) {
        h2o_req_log_error(req, "edge/handler", "cannot key %.*s", (int)req->path.len, req->path.base);
        send_error(req, 400, NULL, "invalid request target or host");
        return 0;
    }
    struct st_stale_t stale = {0};
    int hr;
    if ((hr = try_hit(req, rt, key, hash, &stale)) == 0)
        return 0;
    if (hr == 2) {
        /* preconditions the cache does not answer: the origin does, unstored */
        EDGE_METRIC_ADD(req_pass, 1);
        start_fetch(req, FILL_PASS, h2o_iovec_init(NULL, 0), NULL, path, NULL, NULL, 1);
        return 0;
    }
    /* RFC 9111 §5.2.1.7: the client forbids going to the origin; only a whole response in flight serves */
    int only_if_cached = request_only_if_cached(req);
    if (!only_if_cached && hfp_active(stale.hash)) {
        /* recently unstorable: no waiting on another request's fill */
        EDGE_METRIC_ADD(req_miss, 1);
        start_fetch(req, FILL_CACHE, key, hash, path, &stale, NULL, 1);
        return 0;
    }
    /* a fill for this key in flight on any thread serves this client too */
    struct st_waiter_t *w = h2o_mem_alloc(sizeof(*w));
    memset(w, 0, sizeof(*w));
    w->thread = edge_this_thread;
    w->refcnt = 1;
    /* a variant's fills are keyed by the variant (requests for another variant do not wait on them) */
    struct st_shared_fill_t *mine = shared_new(stale.hash), *sf = NULL;
    /* a variant not stored yet may be the one a fill for the URL is storing right now: that fill is registered
     * under the URL until its commit lands (the waiter checks the variant when the head is known) */
    if (stale.vary_miss)
        sf = registry_attach_or_register(hash, w, NULL);
    if (sf == NULL && (sf = registry_attach_or_register(stale.hash, w, only_if_cached ? NULL : mine)) == NULL) {
        free(w);
        if (only_if_cached) {
            shared_release(mine);
            send_error(req, 504, "cdn-edge; fwd=miss; detail=only-if-cached", "not in the cache (only-if-cached)");
            return 0;
        }
        EDGE_METRIC_ADD(req_miss, 1);
        start_fetch(req, FILL_CACHE, key, hash, path, &stale, mine->registered ? mine : NULL, 1);
        if (!mine->registered)
            shared_release(mine);
        return 0;
    }
    shared_release(mine);
    struct st_reader_t *reader = reader_new(req);
    reader->shared = sf;
    reader->waiter = w;
    reader->only_if_cached = only_if_cached;
    w->reader = reader;
    reader->key = key;
    reader->path = path;
    memcpy(reader->hash, hash, EDGE_STORE_HASH_LEN);
    waiter_progress(reader); /* the fill may be under way already */
    return 0;
}

int edge_request_key(const edge_runtime_t *rt, h2o_mem_pool_t *pool, h2o_iovec_t scheme, h2o_iovec_t authority,
                     h2o_iovec_t raw_path, h2o_iovec_t *key, h2o_iovec_t *path)
{
    if (edge_cache_key_build(pool, scheme, authority, raw_path, key, path) != 0)
        return -1;
    const conf_cache_t *c = &rt->conf->cache;
    edge_cache_key_apply_query_rules(pool, *key, (edge_query_mode_t)c->query_mode, (const char *const *)c->query_drop,
                                     c->num_query_drop, key);
    return 0;
}

/* --- registration and per-thread state --- */

void edge_handler_register(h2o_pathconf_t *pathconf, edge_runtime_t *rt)
{
    struct st_edge_handler_t *self = (void *)h2o_create_handler(pathconf, sizeof(*self));
    self->super.on_req = on_req;
    self->rt = rt;
}

void edge_handler_thread_init(edge_thread_t *th)
{
    h2o_multithread_register_receiver(th->ctx.queue, &th->store_receiver, on_store_messages);
    h2o_multithread_register_receiver(th->ctx.queue, &th->fill_receiver, on_waiter_messages);
    h2o_timeout_init(th->ctx.loop, &th->write_timeout, th->rt->conf->write_timeout_ms);
    th->snapshot_release.cb = on_snapshot_release;
}

void edge_handler_thread_dispose(edge_thread_t *th)
{
    h2o_multithread_unregister_receiver(th->ctx.queue, &th->store_receiver);
    h2o_multithread_unregister_receiver(th->ctx.queue, &th->fill_receiver);
    h2o_timeout_dispose(th->ctx.loop, &th->write_timeout);
    h2o_timeout_unlink(&th->snapshot_release);
    edge_store_read_release_shared();
    free(th->key_cache);
    th->key_cache = NULL;
    free(th->head_memo);
    th->head_memo = NULL;
}
