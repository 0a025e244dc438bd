/*
 * edge/store.h: the persistent object store (LMDB). `store.c` is the only file that includes lmdb.h.
 *
 * Model:
 * - An object is a metadata record under the SHA-256 of its cache key, plus its body as fixed-size
 *   chunks keyed (fill_id, n). The metadata record holds the full key string (callers compare it on
 *   every hit), an opaque `meta` blob the caller wrote (the stored response head), the body size and
 *   the chunk count.
 * - A fill gets a monotonic fill_id. Its chunks are committed as they arrive; its metadata record is
 *   written by the COMMIT op, in the same transaction as any chunk still queued: until then the
 *   object does not exist, and a crash leaves no partial object visible. A pending-fill record
 *   written with chunk 0 lets a background sweep delete the chunks of fills that never finished
 *   (crash, ABORT), without a scan at open.
 * - Exactly one writer thread opens write transactions. Ops from any thread go into one FIFO queue
 *   and are applied in batches (one transaction per batch, synced at commit). Callers bound what
 *   they have in flight; submitting never blocks on I/O.
 * - Readers (worker threads) use read-only transactions (MDB_NOTLS: many per thread). A read
 *   transaction pins the pages it sees, so data pointers stay valid until edge_store_read_end even
 *   if the writer replaces or evicts the object meanwhile.
 * - Budget: `max_size_bytes` is the LMDB map size. Live bytes (chunk bytes + record bytes) are
 *   counted in a stats record; after a batch, past 90% of the budget the writer evicts down to 80%.
 *   Eviction is S3-FIFO: new objects enter a small FIFO (about 10% of the capacity); one evicted from
 *   it untouched is forgotten, except for its hash in a bounded in-memory ghost set; one touched there
 *   (edge_store_touch, an in-memory counter of 0..3, no write) moves to the main FIFO when it reaches
 *   the head, and so does a new object whose hash is in the ghost set. At the head of main, an object
 *   with a non-zero counter goes to the back with its counter decremented, else it is evicted. Scans
 *   of one-hit objects thus evict each other, in FIFO order, not the objects that get hits. Queue
 *   membership survives a restart; counters and the ghost set do not.
 *   MDB_MAP_FULL aborts the batch: the writer evicts and retries it once, else drops the fills of
 *   that batch (their on_done gets EDGE_STORE_EFULL). A client request never fails for it.
 * - Variants: several objects per URL. Each record holds the URL key string and an optional
 *   `variant` string (the secondary key built from the request headers named by Vary). The caller
 *   computes the object's hash: edge_store_hash(key) for the primary, edge_store_variant_hash(key,
 *   variant) for a variant, and passes `group` = edge_store_hash(key) to COMMIT. A group index
 *   (group -> member hash) lets DELETE_GROUP remove every variant of a URL, TRIM_GROUP cap their
 *   number, and edge_store_group_count count them. Every object committed with a non-zero group is a
 *   member, whatever its own hash (so a primary committed with group = its own hash counts too).
 * - Tags (Surrogate-Key, Cache-Tag): up to EDGE_STORE_MAX_TAGS per object, kept in the record and
 *   in a tag index (tag -> member hash) used by the sweeper of tag purges.
 * - Purges are bans: EDGE_STORE_OP_BAN records a ban (URL, prefix, host, tag, all; hard or soft)
 *   with a watermark = the next fill id at that moment. Lookups check the live bans in memory: an
 *   object whose fill_id < watermark and that matches a hard ban is a miss; one matching a soft ban
 *   is returned with soft_purged set. A COMMIT of a fill that predates a matching live ban is refused
 *   (hard: EDGE_STORE_EPURGED) or stored stale (soft). The writer thread sweeps matching objects in
 *   bounded transactions between batches (delete, or set the persisted stale flag) and retires a ban
 *   when its sweep is done, no fill whose id is below its watermark is still live, and no read txn
 *   older than the sweep's last commit is open. Bans are kept
 *   in their own database, so they survive restarts, and their sweeps start over at the next open.
 * - Live fills: every id returned by edge_store_new_fill_id is live until a COMMIT or ABORT op for
 *   it is applied, or edge_store_fill_release is called. A caller that takes a fill id and never
 *   writes must release it, or bans whose watermark is above it are never retired (they keep working,
 *   they only cost lookup time and memory).
 */
#ifndef EDGE_STORE_H
#define EDGE_STORE_H

#include <stddef.h>
#include <stdint.h>

#ifndef EDGE_STORE_CHUNK_SIZE
#define EDGE_STORE_CHUNK_SIZE (64 * 1024) /* bytes per body chunk; tests may shrink it */
#endif
#define EDGE_STORE_HASH_LEN 32

/* Result codes (0 is success), in their own range like LMDB's. */
#define EDGE_STORE_NOTFOUND (-31001) /* no such object or chunk: a miss, not an error */
#define EDGE_STORE_EREADERS (-31002) /* no free reader slot: answer 503 */
#define EDGE_STORE_ECORRUPT (-31003) /* a record failed validation: treated as a miss, and logged */
#define EDGE_STORE_EFULL (-31004)    /* the map stayed full after eviction: the fill was dropped */
#define EDGE_STORE_EIO (-31005)      /* any other LMDB or system error */
#define EDGE_STORE_ECLOSED (-31006)  /* the store is closing: the op was not applied */
#define EDGE_STORE_EINVAL (-31007)   /* a malformed op, or a COMMIT whose chunks are missing or do not add up to
                                        body_size: the fill was aborted (its chunks deleted) */
#define EDGE_STORE_EPURGED (-31008)  /* a COMMIT of a fill that began before a matching hard purge: refused, the
                                        fill was aborted (its chunks deleted) */

#define EDGE_STORE_MAX_TAGS 64        /* tags per object */
#define EDGE_STORE_MAX_TAG_LEN 256    /* bytes per tag (at least 1) */
#define EDGE_STORE_MAX_BAN_VALUE 8192 /* bytes of a ban value */

/* What a ban (EDGE_STORE_OP_BAN) matches, compared with the object's URL key `scheme://host[:port]/path?query`. */
typedef enum en_edge_store_ban_kind_t {
    EDGE_STORE_BAN_URL = 1, /* the key equals the value: the URL and all its variants */
    EDGE_STORE_BAN_PREFIX,  /* the key starts with the value */
    EDGE_STORE_BAN_HOST,    /* the host[:port] of the key (between "://" and the next '/' or '?') equals the value */
    EDGE_STORE_BAN_TAG,     /* one of the object's tags equals the value */
    EDGE_STORE_BAN_ALL      /* every object (the value is ignored) */
} edge_store_ban_kind_t;

typedef struct st_edge_store_t edge_store_t;
typedef struct st_edge_store_txn_t edge_store_txn_t;
typedef struct st_edge_store_op_t edge_store_op_t;

typedef struct st_edge_store_settings_t {
    const char *path;        /* the environment directory; created (mode 0700) when missing */
    uint64_t max_size_bytes; /* the hard budget, used as the map size */
    unsigned max_readers;    /* concurrent read transactions, process-wide */
} edge_store_settings_t;

typedef struct st_edge_store_object_t {
    uint64_t fill_id;
    uint64_t body_size;
    uint32_t num_chunks;
    const char *key; /* the full cache key string (not NUL-terminated) */
    size_t key_len;
    const void *meta; /* the caller's blob, as given to COMMIT (or the last UPDATE_META) */
    size_t meta_len;
    const char *variant; /* the secondary key given to COMMIT (not NUL-terminated; variant_len may be 0) */
    size_t variant_len;
    uint8_t group[EDGE_STORE_HASH_LEN]; /* the group given to COMMIT (zero-filled: none) */
    const void *tags; /* the encoded tags: walk them with edge_store_object_next_tag */
    size_t tags_len;
    const void *body; /* the whole body (body_size bytes, the same as chunk 0) when it is small enough to be kept in
                         the record too: one lookup serves it; NULL otherwise (read the chunks) */
    unsigned stale_flag : 1;  /* the persisted stale flag (set by a soft purge, cleared by UPDATE_META) */
    unsigned soft_purged : 1; /* treat as stale: the stale flag is set, or a live soft ban matches */
} edge_store_object_t;

typedef enum en_edge_store_op_kind_t {
    EDGE_STORE_OP_CHUNK = 1, /* store chunk `chunk_index` of `fill_id` (index 0 also writes the pending record) */
    EDGE_STORE_OP_COMMIT,    /* write the object record: the object now exists; replaces any object at `hash` */
    EDGE_STORE_OP_ABORT,     /* the fill will never commit: delete its chunks and pending record */
    EDGE_STORE_OP_DELETE,    /* remove the object at `hash` (and its chunks), if any */
    EDGE_STORE_OP_DELETE_GROUP, /* `hash` is a group: remove every member and the object at `hash` itself */
    EDGE_STORE_OP_TRIM_GROUP,   /* `hash` is a group: remove its oldest members (by fill_id) beyond `max_members` */
    EDGE_STORE_OP_BAN,          /* record a purge (ban_kind, ban_value, soft); sets `ban_id` before on_done(0) */
    EDGE_STORE_OP_UPDATE_META,  /* replace the meta blob (`data`, `len`) of the object at `hash` if its fill_id
                                   equals `fill_id`, and clear its stale flag; else on_done(EDGE_STORE_NOTFOUND) */
    EDGE_STORE_OP_CURSOR        /* only record `stream_cursor` (a purge-stream entry with nothing to apply) */
} edge_store_op_kind_t;

#define EDGE_STORE_MAX_CURSOR_LEN 64 /* bytes of a stream cursor (a Redis stream entry id is at most 41) */

/**
 * One queued write. The caller allocates it and keeps it (and what it points to) alive until
 * on_done runs. on_done runs on the writer thread after the batch holding the op committed
 * (result 0) or failed (EDGE_STORE_EFULL, EDGE_STORE_EIO, EDGE_STORE_ECLOSED); it must be quick and
 * thread-safe (e.g. post a message to the owner's loop). on_done may be NULL.
 */
struct st_edge_store_op_t {
    edge_store_op_kind_t kind;
    uint64_t fill_id;       /* CHUNK, COMMIT, ABORT, UPDATE_META */
    uint32_t chunk_index;   /* CHUNK */
    const void *data;       /* CHUNK: the bytes (at most EDGE_STORE_CHUNK_SIZE); COMMIT, UPDATE_META: the meta blob */
    size_t len;
    uint8_t hash[EDGE_STORE_HASH_LEN]; /* COMMIT, DELETE, UPDATE_META; DELETE_GROUP, TRIM_GROUP: the group */
    const char *key;        /* COMMIT: the URL key string */
    size_t key_len;
    uint64_t body_size;     /* COMMIT: must equal the sum of the chunk lengths */
    uint32_t num_chunks;    /* COMMIT: chunks 0..num_chunks-1 must all have been submitted before */
    /* COMMIT, variants: the group (edge_store_hash of the URL key; zero-filled: no group) and the secondary key */
    uint8_t group[EDGE_STORE_HASH_LEN];
    const char *variant;
    size_t variant_len;
    /* COMMIT, tags: at most EDGE_STORE_MAX_TAGS of 1..EDGE_STORE_MAX_TAG_LEN bytes each, else EDGE_STORE_EINVAL */
    const char *const *tags;
    const size_t *tag_lens;
    size_t num_tags;
    uint32_t max_members;   /* TRIM_GROUP */
    /* BAN: value (unused for ALL; at most EDGE_STORE_MAX_BAN_VALUE bytes, at least 1), hard (0) or soft (1) */
    edge_store_ban_kind_t ban_kind;
    const char *ban_value;
    size_t ban_value_len;
    int soft;
    uint64_t ban_id;        /* BAN, out: the ban's id (monotonic across restarts), set before on_done(0) */
    /* BAN (optional) and CURSOR: a NUL-terminated purge-stream position (1..EDGE_STORE_MAX_CURSOR_LEN bytes, else
     * EDGE_STORE_EINVAL and nothing is applied), recorded in the same write transaction as the ban: read it back with
     * edge_store_get_stream_cursor. NULL: the recorded cursor is left as it is. */
    const char *stream_cursor;
    /* UPDATE_META, optional: a fill id taken with edge_store_new_fill_id when the revalidation request started
     * (it is released when the op is applied). Soft purges applied after it keep the object stale. 0: every
     * purge applied so far counts as revalidated. */
    uint64_t started_fill_id;
    void (*on_done)(edge_store_op_t *op, int result);
    void *data_owner;       /* free for the caller */
    edge_store_op_t *_next; /* queue link, owned by the store */
};

typedef struct st_edge_store_stats_t {
    uint64_t live_bytes;     /* bytes of objects, chunks of fills in progress included */
    uint64_t objects;
    uint64_t evictions;      /* objects evicted since open */
    uint64_t commits;        /* write transactions committed since open */
    uint64_t map_full;       /* batches that hit MDB_MAP_FULL */
    uint64_t swept_fills;    /* unfinished fills whose chunks were swept */
    uint64_t dropped_fills;  /* fills dropped because the map stayed full */
    uint64_t max_size_bytes;
    uint64_t bans_live;      /* bans checked at lookup (applied, not yet retired) */
    uint64_t bans_applied;   /* BAN ops applied since open */
    uint64_t ban_hits;       /* lookups answered NOTFOUND because of a hard ban, since open */
    uint64_t swept_objects;  /* objects deleted or marked stale by the ban sweeper, since open */
    uint64_t main_bytes;     /* the part of live_bytes in the main eviction queue (the rest is in the small one) */
    uint64_t promoted;       /* objects moved from the small queue to main by eviction, since open */
    uint64_t ghost_hits;     /* objects committed straight into main (recently evicted from small), since open */
} edge_store_stats_t;

/**
 * Opens (creating if needed) the environment and starts the writer thread. Call once per process,
 * before the worker threads start. Unfinished fills found on open are swept in the background.
 * @param[out] err  a message naming the path and the LMDB error
 * @return the store, or NULL
 */
edge_store_t *edge_store_open(const edge_store_settings_t *settings, char *err, size_t errlen);

/** Applies every op already submitted, stops the writer, syncs and closes. No reader may be open. */
void edge_store_close(edge_store_t *store);

/**
 * Blocks until every op submitted before the call has been applied (tests, shutdown, durable purges),
 * and until the sweep of unfinished fills started by edge_store_open is done. Never call it from an
 * on_done callback (it runs on the writer thread: deadlock).
 */
void edge_store_flush(edge_store_t *store);

/**
 * Blocks until every op submitted before the call has been applied and the writer has nothing left
 * it can do now: the sweep of unfinished fills and the sweep of every ban are done, and every ban
 * that can be retired is (a ban waiting for a live fill, or for an older read txn to end, does not
 * hold it up). For tests and shutdown. Never call it from an on_done callback.
 */
void edge_store_wait_idle(edge_store_t *store);

/**
 * Body bytes of CHUNK ops submitted and not yet applied (the writer is behind by this much). Callers bound the memory
 * their queued chunks hold with it (the handler: cache.write_queue). One relaxed atomic load; any thread.
 */
uint64_t edge_store_queued_bytes(edge_store_t *store);

/**
 * Begins a read-only transaction (any thread; several per thread are fine).
 * @return 0, EDGE_STORE_EREADERS when every reader slot is taken, or EDGE_STORE_EIO
 */
int edge_store_read_begin(edge_store_t *store, edge_store_txn_t **txn);
/** Ends it. Every pointer obtained through it becomes invalid. */
void edge_store_read_end(edge_store_txn_t *txn);

/**
 * Like edge_store_read_begin, for a thread that begins many short reads (an event loop serving hits): while
 * no commit has completed since, every call on this thread returns the same snapshot (one txn renewal per
 * commit instead of one per call). Each call is ended by edge_store_read_end as usual. The thread must call
 * edge_store_read_release_shared often (each loop iteration): a kept snapshot pins the pages it sees, delays
 * the retirement of bans (see edge_store_get) and its reader slot is not free, and it must release it before
 * the store closes. One shared snapshot per thread: a call for another store releases the first one's.
 * @return as edge_store_read_begin
 */
int edge_store_read_begin_shared(edge_store_t *store, edge_store_txn_t **txn);
/** Gives this thread's shared snapshot back: ended now, or by edge_store_read_end of its last use. */
void edge_store_read_release_shared(void);

/**
 * Looks up the object stored under `hash`. Pointers in `out` point into the map and stay valid
 * until edge_store_read_end(txn). The object is checked against the live bans that apply to it
 * (watermark > its fill_id): a matching hard ban makes it a miss (counted in ban_hits); a matching
 * soft ban, or the persisted stale flag, sets out->soft_purged (serve it as stale). With no live
 * ban this costs one atomic load; with bans, the txn takes a reference to the current immutable ban
 * list (a mutex held for a pointer copy, only when the list changed since the txn last looked).
 * No allocation, no syscall.
 * @return 0, EDGE_STORE_NOTFOUND, EDGE_STORE_ECORRUPT (the record fails validation; also a record of
 *         an older format version), or EDGE_STORE_EIO
 */
int edge_store_get(edge_store_txn_t *txn, const uint8_t hash[EDGE_STORE_HASH_LEN], edge_store_object_t *out);

/**
 * The snapshot a read txn sees, as two numbers: two txns give the same pair exactly when they see the same
 * committed state of the same open store. Then a pointer read under one holds the same bytes, at the same address,
 * under the other as long as that one is open, so what a caller derives from records (a decoded head) may be
 * remembered per pair. (edge_store_get itself remembers each thread's recent lookups this way.)
 */
void edge_store_txn_snapshot(const edge_store_txn_t *txn, uint64_t *instance, uint64_t *txnid);

/**
 * Reads chunk `n` of a fill (committed chunks of a fill still in progress included).
 * @return 0 with *data and *len valid until edge_store_read_end(txn), or EDGE_STORE_NOTFOUND
 */
int edge_store_get_chunk(edge_store_txn_t *txn, uint64_t fill_id, uint32_t n, const void **data, size_t *len);

/**
 * Counts the members of a group (objects committed with this `group`) in the txn's snapshot.
 * @return 0 with *count set (0 for an unknown group), or EDGE_STORE_EIO
 */
int edge_store_group_count(edge_store_txn_t *txn, const uint8_t group[EDGE_STORE_HASH_LEN], size_t *count);

/**
 * Walks the tags of an object read by edge_store_get. Start with *cursor = 0.
 * @param[out] tag, len  the next tag (not NUL-terminated), valid as long as `obj` is
 * @return 0 with the next tag, EDGE_STORE_NOTFOUND after the last one, or EDGE_STORE_ECORRUPT
 */
int edge_store_object_next_tag(const edge_store_object_t *obj, size_t *cursor, const char **tag, size_t *len);

/**
 * Records a hit on an object for eviction: bumps its in-memory access counter (saturating at 3; a
 * relaxed atomic load and store, no write transaction, no lock). Any thread; a stale fill id is harmless.
 */
void edge_store_touch(edge_store_t *store, uint64_t fill_id);

/**
 * @return a new fill id, greater than any used before, in this run or an earlier one. Thread-safe
 * (a short mutex: the id is recorded as live until a COMMIT or ABORT op for it is applied, or
 * edge_store_fill_release). Take it before the origin fetch starts: a purge applied meanwhile then
 * covers the fill when it commits.
 */
uint64_t edge_store_new_fill_id(edge_store_t *store);

/**
 * Declares that a fill id will never be written (no COMMIT or ABORT op will follow), so that bans
 * can retire. Any thread; releasing an id twice, or after its COMMIT/ABORT, is harmless.
 */
void edge_store_fill_release(edge_store_t *store, uint64_t fill_id);

/** Queues a write (any thread). Never blocks on I/O. After edge_store_close began: on_done(ECLOSED). */
void edge_store_submit(edge_store_t *store, edge_store_op_t *op);

/**
 * Reads the purge-stream cursor last recorded by a BAN or CURSOR op (committed, so durable). Any thread; opens and
 * ends its own read transaction.
 * @param[out] buf  receives the NUL-terminated cursor
 * @return 0; EDGE_STORE_NOTFOUND when none was ever recorded (buf[0] = '\0'); EDGE_STORE_EINVAL when len is too
 *         small for it; EDGE_STORE_ECORRUPT (the record fails validation, logged); EDGE_STORE_EREADERS or EDGE_STORE_EIO
 */
int edge_store_get_stream_cursor(edge_store_t *store, char *buf, size_t len);

/** Current counters (any thread). */
void edge_store_get_stats(edge_store_t *store, edge_store_stats_t *out);

/** @return a static text for a result code (EDGE_STORE_* or 0) */
const char *edge_store_strerror(int result);

/** SHA-256 of a cache key string, the store's key. */
void edge_store_hash(const char *key, size_t key_len, uint8_t hash[EDGE_STORE_HASH_LEN]);

/** The hash of a variant of the URL key `key`: SHA-256 of key, a 0 byte, variant (unambiguous: keys hold no 0 byte). */
void edge_store_variant_hash(const char *key, size_t key_len, const char *variant, size_t variant_len,
                             uint8_t hash[EDGE_STORE_HASH_LEN]);

#endif
