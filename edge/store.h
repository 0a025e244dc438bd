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
 *   Eviction order is FIFO by insertion with second chance: an object touched (edge_store_touch, an
 *   in-memory bit, no write) since it was last examined is moved to the back instead of evicted.
 *   MDB_MAP_FULL aborts the batch: the writer evicts and retries it once, else drops the fills of
 *   that batch (their on_done gets EDGE_STORE_EFULL). A client request never fails for it.
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
    const void *meta; /* the caller's blob, as given to COMMIT */
    size_t meta_len;
} edge_store_object_t;

typedef enum en_edge_store_op_kind_t {
    EDGE_STORE_OP_CHUNK = 1, /* store chunk `chunk_index` of `fill_id` (index 0 also writes the pending record) */
    EDGE_STORE_OP_COMMIT,    /* write the object record: the object now exists; replaces any object at `hash` */
    EDGE_STORE_OP_ABORT,     /* the fill will never commit: delete its chunks and pending record */
    EDGE_STORE_OP_DELETE     /* remove the object at `hash` (and its chunks), if any */
} edge_store_op_kind_t;

/**
 * One queued write. The caller allocates it and keeps it (and what it points to) alive until
 * on_done runs. on_done runs on the writer thread after the batch holding the op committed
 * (result 0) or failed (EDGE_STORE_EFULL, EDGE_STORE_EIO, EDGE_STORE_ECLOSED); it must be quick and
 * thread-safe (e.g. post a message to the owner's loop). on_done may be NULL.
 */
struct st_edge_store_op_t {
    edge_store_op_kind_t kind;
    uint64_t fill_id;       /* CHUNK, COMMIT, ABORT */
    uint32_t chunk_index;   /* CHUNK */
    const void *data;       /* CHUNK: the bytes (at most EDGE_STORE_CHUNK_SIZE); COMMIT: the meta blob */
    size_t len;
    uint8_t hash[EDGE_STORE_HASH_LEN]; /* COMMIT, DELETE */
    const char *key;        /* COMMIT: the full cache key string */
    size_t key_len;
    uint64_t body_size;     /* COMMIT: must equal the sum of the chunk lengths */
    uint32_t num_chunks;    /* COMMIT: chunks 0..num_chunks-1 must all have been submitted before */
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
 * Begins a read-only transaction (any thread; several per thread are fine).
 * @return 0, EDGE_STORE_EREADERS when every reader slot is taken, or EDGE_STORE_EIO
 */
int edge_store_read_begin(edge_store_t *store, edge_store_txn_t **txn);
/** Ends it. Every pointer obtained through it becomes invalid. */
void edge_store_read_end(edge_store_txn_t *txn);

/**
 * Looks up the object stored under `hash`. Pointers in `out` point into the map and stay valid
 * until edge_store_read_end(txn).
 * @return 0, EDGE_STORE_NOTFOUND, or EDGE_STORE_ECORRUPT (the record fails validation)
 */
int edge_store_get(edge_store_txn_t *txn, const uint8_t hash[EDGE_STORE_HASH_LEN], edge_store_object_t *out);

/**
 * Reads chunk `n` of a fill (committed chunks of a fill still in progress included).
 * @return 0 with *data and *len valid until edge_store_read_end(txn), or EDGE_STORE_NOTFOUND
 */
int edge_store_get_chunk(edge_store_txn_t *txn, uint64_t fill_id, uint32_t n, const void **data, size_t *len);

/** Sets the in-memory access bit of an object for second-chance eviction. No write, no lock. */
void edge_store_touch(edge_store_t *store, uint64_t fill_id);

/** @return a new fill id, greater than any used before, in this run or an earlier one. Thread-safe. */
uint64_t edge_store_new_fill_id(edge_store_t *store);

/** Queues a write (any thread). Never blocks on I/O. After edge_store_close began: on_done(ECLOSED). */
void edge_store_submit(edge_store_t *store, edge_store_op_t *op);

/** Current counters (any thread). */
void edge_store_get_stats(edge_store_t *store, edge_store_stats_t *out);

/** @return a static text for a result code (EDGE_STORE_* or 0) */
const char *edge_store_strerror(int result);

/** SHA-256 of a cache key string, the store's key. */
void edge_store_hash(const char *key, size_t key_len, uint8_t hash[EDGE_STORE_HASH_LEN]);

#endif
