/*
 * edge/store.c: the persistent object store, on LMDB. The only file that includes lmdb.h.
 *
 * What it owns: the one MDB_env of the process, the writer thread and its op queue, the in-memory
 * access counters and ghost set used by eviction, and the counters of edge_store_get_stats.
 *
 * Threads and locks:
 * - Any thread: edge_store_submit/flush take `mutex` (the queue); edge_store_read_* use their own
 *   read-only transaction (MDB_NOTLS, so several per thread), taken from a lock-free pool of handles
 *   whose ended txns are reset and renewed (no malloc, no reader-table lock per begin); edge_store_touch bumps a byte
 *   (0..FREQ_MAX) with a relaxed atomic load and store; edge_store_get_stats reads atomics. edge_store_new_fill_id and
 *   edge_store_fill_release take `fills_mutex` (the set of live fill ids; held for an append or a
 *   binary search). Lock order: `mutex` before `fills_mutex`; `bans_mutex` nests in neither.
 *   edge_store_get remembers each thread's recent lookups per snapshot (`get_memo`, thread-local: see there).
 * - Bans, read side (RCU-style): the live bans are an immutable `struct ban_list`, refcounted,
 *   whose pointer `bans_cur` the writer swaps under `bans_mutex` after the commit that changed them.
 *   A read txn holds a reference to the list it last saw; edge_store_get compares it with
 *   `bans_cur` (one atomic load, nothing else when there are no bans) and only when they differ
 *   takes `bans_mutex` for a pointer copy and a refcount increment. The last reference frees the list.
 * - The writer thread is the only one to open write transactions. All the `w` state (live bytes,
 *   objects, next FIFO seq, counters) belongs to it; a copy is modified inside a transaction and
 *   becomes current only when the transaction commits, then is published to `pub` with atomics.
 *
 * State changes, all on the writer thread:
 * - CHUNK writes chunk (fill, n) and, if missing, the pending record of the fill.
 * - COMMIT checks that chunks 0..num_chunks-1 are all there and add up to body_size, then writes
 *   the object record and its FIFO entry (small queue, or main: see Eviction) and deletes the pending
 *   record, replacing any object at the same hash. An incomplete fill is aborted instead: an object
 *   is whole or absent.
 * - ABORT and the sweep of fills found pending at open delete the chunks and the pending record.
 * - DELETE and eviction delete record, FIFO entry, chunks and index entries (group, tags) together.
 *   Eviction also moves objects from the small queue to main, or to the back of main (the record is
 *   rewritten with its new sequence number and REC_FLAG_MAIN, the entry moves).
 * - DELETE_GROUP / TRIM_GROUP remove members of a group through the group index.
 * - BAN writes a ban record and appends the ban to the writer's list; the commit publishes it.
 *   Between batches the writer sweeps one ban a bounded step at a time (SWEEP_BAN_PER_STEP records
 *   per transaction): hard bans delete matching objects with fill_id < watermark, soft bans set the
 *   record's stale flag. URL bans walk the group of the URL (and the object at its hash), TAG bans
 *   the tag index, the others the whole objects database from a resumable position. A swept ban is
 *   retired (record deleted, list republished) once no live fill id is below its watermark and no
 *   open read txn has a snapshot older than the sweep's last commit (mdb_reader_list; while only
 *   such a reader holds a ban up, the idle writer looks again every BAN_READER_POLL_MS).
 * - UPDATE_META rewrites a record with a new meta blob, if the fill id matches.
 *
 * On-disk layout (named databases of one environment; integers in records are native-endian, keys
 * are big-endian so that LMDB's byte order is numeric order):
 *   "objects"  hash[32]               -> struct record_hdr + key + variant + tags [+ small body] + meta (version 2;
 *                                        tags are [be16 len][bytes] each; version 1 records read as corrupt)
 *   "groups"   group[32] (dupsort)    -> member hash[32] (objects committed with a non-zero group)
 *   "tags"     tag bytes (dupsort)    -> member hash[32] (untagged objects are not indexed)
 *   "bans"     ban_id be64            -> struct ban_rec + value
 *   "chunks"   fill_id be64, n be32   -> the chunk bytes
 *   "pending"  fill_id be64           -> struct pending_rec
 *   "fifo"     seq be64               -> struct fifo_rec (hash, fill_id, charged bytes): the small queue
 *   "fifo_main" seq be64              -> struct fifo_rec: the main queue (seqs are unique across both)
 *   "stats"    "stats"                -> struct stats_rec (live bytes, objects, highest fill id, highest ban id,
 *                                        bytes of the main queue)
 * Index entries are not charged to live bytes (a few dozen bytes per object).
 *
 * Eviction is S3-FIFO (Yang et al., "FIFO queues are all you need for cache eviction", SOSP'23),
 * with no write on a hit. A hit (edge_store_touch) bumps an in-memory counter, 0..FREQ_MAX, in a
 * table indexed by a hash of the fill id (one slot per SLOT_PER_BYTES of budget, within bounds;
 * colliding objects share a counter: a hint, that may keep one longer or, reset by a COMMIT, cool
 * one down). A new object enters the small queue ("fifo"), unless its hash is in the ghost set: then
 * it enters main ("fifo_main"), and so does a COMMIT replacing an object of main.
 * - While the small queue holds more than SMALL_PCT% of the capacity (live bytes minus main_bytes:
 *   chunks of fills in progress count as small), eviction examines its oldest entry: an object hit at
 *   least MOVE_MIN_FREQ times moves to the back of main (a write, at eviction time); any other is
 *   evicted and its hash goes to the ghost set.
 * - Otherwise it examines the oldest entry of main: an object with a non-zero counter goes to the back
 *   of main with its counter decremented; any other is evicted.
 * - A MDB_MAP_FULL inside an eviction transaction (moves need pages; the pages deletes free are
 *   reusable two transactions later) makes the rest of that pass evict without moving, in smaller
 *   transactions (EVICT_FULL in the log).
 * The ghost set is a bounded in-memory table (GHOST_WAYS-way buckets of hash fingerprints, one slot
 * per SLOT_PER_BYTES of budget) that remembers the last `objects` insertions; the writer thread alone
 * uses it. Queue membership is persisted (the two databases, REC_FLAG_MAIN in the record, main_bytes
 * in the stats record); the counters and the ghost set are not: after a restart every object is cold
 * and the ghost set is empty. A store written before "fifo_main" existed opens as it is: its entries
 * are all in "fifo", so its objects are all in the small queue, and its stats record's main_bytes
 * (reserved then) reads 0.
 *
 * Budget: `live_bytes` charges every value by the space LMDB gives it: a value too big for a node
 * takes whole overflow pages, so a 64 KiB chunk costs 17 pages of 4 KiB, not 64 KiB. After a batch,
 * past 90% of the capacity, eviction (its own bounded transactions) brings live bytes to 80%, then
 * one small transaction follows: pages freed by transaction N are reusable from N+2 on. The capacity
 * starts at the budget; an MDB_MAP_FULL that eviction cured lowers it to what the map really held
 * (overflow values need runs of contiguous free pages, and the free list fragments), and each later
 * eviction pass raises it by 0.1% of the budget, so eviction runs before the next MAP_FULL.
 *
 * Ban sweeps restart from the beginning at each open (their position is not persisted). A sweep step
 * that fails (an LMDB error) is retried after the next batch of ops, not in a loop.
 *
 * Not handled: a CHUNK after the COMMIT of its fill, or an ABORT of a committed fill (caller bugs:
 * the chunks of a live object could then be deleted); a second process on the same environment
 * (its fill ids would collide and the sweep at open would take its fills in progress for dead).
 */
#include <assert.h>
#include <errno.h>
#include <lmdb.h>
/* SHA256_Init/Update/Final are deprecated in OpenSSL 3 but kept through 3.x. They run on a stack
 * context: no allocation, no provider fetch (EVP_Digest with EVP_sha256() fetches the algorithm on
 * every call: ~850 ns for a 40-byte key against ~85 ns here, and the key is hashed on every request).
 * XXX: a library without them (OpenSSL 4) needs EVP_MD_fetch once and a reused per-thread EVP_MD_CTX. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/sha.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "edge/store.h"

#define RECORD_MAGIC 0x4a424f45u  /* "EOBJ" */
#define PENDING_MAGIC 0x444e5045u /* "EPND" */
#define STATS_MAGIC 0x54535445u   /* "ETST" */
#define BAN_MAGIC 0x4e414245u     /* "EBAN" */
#define FORMAT_VERSION 1          /* pending, stats and ban records */
#define RECORD_VERSION 2          /* object records: 2 added variant, tags, group, flags */
#define REC_FLAG_STALE 1u
#define REC_FLAG_MAIN 2u /* the object's FIFO entry is in "fifo_main" (else in "fifo", the small queue) */
#define REC_FLAG_INLINE 4u /* a one-chunk body small enough to keep the record in one node is copied into the
                              record too (between tags and meta): a hit then needs one lookup (chunk 0 stays,
                              for readers by fill id: waiters, ranges, compression jobs) */

#define MIN_READERS 126
#define BATCH_MAX_OPS 1024 /* a commit's fdatasync costs milliseconds: small objects need many per batch */
#define BATCH_MAX_BYTES (8 * 1024 * 1024)
#define EVICT_HIGH_PCT 90
#define EVICT_LOW_PCT 80
#define EVICT_PER_TXN 256        /* objects examined per eviction transaction */
#define EVICT_MAX_EXAMINED 65536 /* per eviction pass */
#define SWEEP_CHUNKS_PER_TXN 256
#ifndef SWEEP_BAN_PER_STEP
#define SWEEP_BAN_PER_STEP 256 /* records examined per ban-sweep transaction */
#endif
#define BAN_READER_POLL_MS 50 /* how often a ban waiting for an old reader to end looks again */
#define TAGS_MAX_BYTES (EDGE_STORE_MAX_TAGS * (2 + EDGE_STORE_MAX_TAG_LEN))
#define FILL_RELEASED (1ull << 63)
#define FREQ_MAX 3 /* access counters saturate here */
#ifndef SMALL_PCT
#define SMALL_PCT 10 /* the small (probationary) queue's share of the capacity */
#endif
#ifndef MOVE_MIN_FREQ
#define MOVE_MIN_FREQ 2 /* hits an object needs while in the small queue to move to main (2 measured better than 1) */
#endif
#define FREQ_SLOTS_MIN (1u << 16)
#define FREQ_SLOTS_MAX (1u << 24)
#define GHOST_WAYS 4
#define GHOST_SLOTS_MIN (1u << 12)
#define GHOST_SLOTS_MAX (1u << 22)
#define SLOT_PER_BYTES 4096 /* both tables get one slot per this many bytes of budget, within their bounds */
#define DROPPED_SLOTS 256
#define OP_BARRIER ((edge_store_op_kind_t)100) /* internal: edge_store_flush */
#define OP_IDLE ((edge_store_op_kind_t)101)    /* internal: edge_store_wait_idle */

#define CHUNK_KEY_LEN 12
#define FILL_KEY_LEN 8

/* The object record: this header, then key_len bytes of key, variant_len of variant, tags_len of
 * encoded tags, (with REC_FLAG_INLINE) body_size bytes of body, meta_len of meta. The first 48 bytes keep the
 * layout of version 1. */
struct record_hdr {
    uint32_t magic;
    uint16_t version;
    uint16_t hdr_size; /* sizeof(struct record_hdr), so that a later version can grow it */
    uint32_t key_len;
    uint32_t meta_len;
    uint64_t fill_id;
    uint64_t fifo_seq;
    uint64_t body_size;
    uint32_t num_chunks;
    uint32_t flags; /* REC_FLAG_STALE, REC_FLAG_MAIN */
    uint32_t variant_len;
    uint32_t tags_len;
    uint64_t revalidated_ban_id; /* soft bans with an id up to this one no longer apply (UPDATE_META) */
    uint8_t group[EDGE_STORE_HASH_LEN];
};
_Static_assert(sizeof(struct record_hdr) == 96, "on-disk record header layout");
#define RECORD_V1_PREFIX 48 /* magic .. fifo_seq are where version 1 had them */

struct ban_rec {
    uint32_t magic;
    uint16_t version;
    uint8_t kind;
    uint8_t soft;
    uint64_t watermark;
    uint32_t value_len;
    uint32_t reserved;
};
_Static_assert(sizeof(struct ban_rec) == 24, "on-disk ban record layout");

struct pending_rec {
    uint32_t magic;
    uint32_t version;
};
_Static_assert(sizeof(struct pending_rec) == 8, "on-disk pending record layout");

struct fifo_rec {
    uint8_t hash[EDGE_STORE_HASH_LEN];
    uint64_t fill_id;
    uint64_t charge; /* bytes charged for the object (record + chunks) when it was committed */
};
_Static_assert(sizeof(struct fifo_rec) == 48, "on-disk fifo record layout");

struct stats_rec {
    uint32_t magic;
    uint32_t version;
    uint64_t live_bytes;
    uint64_t objects;
    uint64_t max_fill_id;
    uint64_t max_ban_id; /* was reserved in the first layout: 0 there */
    uint64_t main_bytes; /* charges of the entries of "fifo_main"; was reserved: 0 there, and so was that queue */
    uint64_t reserved[2];
};
_Static_assert(sizeof(struct stats_rec) == 64, "on-disk stats record layout");

/* Writer-owned state: a copy lives in each write transaction and replaces `w` on commit. */
struct wstate {
    uint64_t live_bytes;
    uint64_t main_bytes; /* the sum of the charges of the entries of the main queue */
    uint64_t promoted;   /* objects moved from the small queue to main by eviction */
    uint64_t ghost_hits; /* COMMITs that went straight to main (their hash was in the ghost set) */
    uint64_t objects;
    uint64_t max_fill_id;
    uint64_t next_seq;
    uint64_t evictions;
    uint64_t swept_fills;
    uint64_t dropped_fills;
    uint64_t max_ban_id;
    uint64_t bans_applied;
    uint64_t swept_objects;
};

/* One ban as readers see it, inside an immutable list. */
struct ban_view {
    uint64_t id, watermark; /* the ban applies to objects whose fill_id < watermark */
    const char *value;
    uint32_t value_len;
    uint8_t kind, soft;
};

/* The live bans, ascending by id (so by watermark too), then the value bytes. Immutable once published. */
struct ban_list {
    uint32_t refcnt; /* atomic: the store's current pointer, plus each read txn holding it */
    size_t n;
    uint64_t max_watermark;
    struct ban_view bans[];
};

/* The writer's copy of a live ban, with its sweep state. */
struct wban {
    struct ban_view v; /* v.value is malloc'd */
    uint8_t url_hash[EDGE_STORE_HASH_LEN]; /* URL bans: the group to walk */
    int swept;    /* the sweep is complete */
    uint64_t swept_txnid; /* the write txn that completed it (0 for a ban with nothing to sweep yet) */
    int retiring; /* deleted from "bans" in the transaction in progress */
    int did_primary;
    int have_pos;
    uint8_t pos[EDGE_STORE_HASH_LEN]; /* the last hash examined */
};

/* What a ban is matched against: a record's, or a COMMIT op's, key and encoded tags. */
struct obj_view {
    const char *key;
    size_t key_len;
    const uint8_t *tags;
    size_t tags_len;
};

/* One slot of the ghost set: a fingerprint of an object hash (0: empty) and when it was added. */
struct ghost_slot {
    uint32_t fp;
    uint32_t stamp; /* ghost_clock at insertion: the entry is forgotten after ghost_capacity() more */
};

struct st_edge_store_t {
    MDB_env *env;
    MDB_dbi dbi_objects, dbi_chunks, dbi_pending, dbi_fifo, dbi_main, dbi_stats, dbi_groups, dbi_tags, dbi_bans;
    uint64_t budget_bytes; /* max_size_bytes rounded down to the page size */
    size_t page_size;
    size_t node_max; /* above this a key+value pair goes to overflow pages */
    char *path;
    uint64_t instance; /* unique per open in this process (1, 2, ...): memos of lookups never outlive their store */

    /* live fill ids: ascending in fills[fills_head..fills_n), released ones marked FILL_RELEASED */
    pthread_mutex_t fills_mutex;
    uint64_t next_fill_id; /* under fills_mutex */
    uint64_t *fills;
    size_t fills_head, fills_n, fills_cap, fills_released;

    pthread_mutex_t bans_mutex; /* see the top comment */
    struct ban_list *bans_cur;  /* atomic pointer; NULL when no ban is live */
    uint64_t bans_live_n;       /* atomic */

    uint8_t *freq;      /* access counters 0..FREQ_MAX, atomic bytes indexed by fill id: see edge_store_touch */
    unsigned freq_bits; /* the table has 1 << freq_bits slots */

    /* The read txn pool: `txns[num_txns]`, one handle per LMDB reader slot, on two lock-free stacks
     * (Treiber stacks of indexes; the head packs a 32-bit ABA tag above the index + 1). `txns_reset`
     * holds handles whose MDB_txn is reset (renewed by the next begin: no malloc, no reader-table
     * mutex), `txns_empty` handles without one. Every handle in use holds a reader slot, so both
     * stacks are empty exactly when LMDB's reader table is full of our txns: EDGE_STORE_EREADERS. */
    edge_store_txn_t *txns;
    uint32_t num_txns;
    uint64_t txns_reset __attribute__((aligned(64))); /* atomic */
    uint64_t txns_empty __attribute__((aligned(64))); /* atomic */

    pthread_mutex_t mutex;     /* guards the queue, closing, and barrier completion */
    uint64_t queued_bytes;     /* atomic: CHUNK bytes submitted and not yet applied (edge_store_queued_bytes) */
    pthread_cond_t cond;       /* the writer waits on it for ops */
    pthread_cond_t flush_cond; /* edge_store_flush waits on it */
    edge_store_op_t *head, *tail;
    int closing;
    pthread_t writer;

    /* writer thread only */
    struct wstate w;
    uint64_t capacity_bytes; /* live bytes the map really holds, learnt from MDB_MAP_FULL (see run_batch) */
    uint64_t sweep_limit;    /* pending fills below this id died in an earlier run */
    int sweeping;
    edge_store_op_t *deferred_barriers; /* flushes waiting for the sweep to finish */
    uint64_t dropped[DROPPED_SLOTS];    /* fills dropped because the map stayed full */
    unsigned dropped_next;
    struct wban *wbans; /* the live bans, ascending by id; [0, wbans_committed) are committed */
    size_t wbans_n, wbans_cap, wbans_committed;
    int bans_dirty;      /* the transaction in progress changed the bans */
    int ban_backoff;     /* a ban sweep step failed: wait for the next batch */
    edge_store_op_t *idle_barriers; /* edge_store_wait_idle callers */
    struct ghost_slot *ghost;       /* hashes recently evicted from the small queue (see ghost_add) */
    size_t ghost_mask;              /* buckets - 1; a bucket is GHOST_WAYS slots */
    uint32_t ghost_clock;           /* insertions so far (wraps) */

    /* published counters (atomics) */
    struct {
        uint64_t live_bytes, objects, evictions, commits, map_full, swept_fills, dropped_fills;
        uint64_t bans_applied, ban_hits, swept_objects, main_bytes, promoted, ghost_hits;
    } pub;
};

/* A read txn handle. The store preallocates one per LMDB reader slot (see the txn pool below): they are
 * never freed before edge_store_close, and one that ended keeps its reset MDB_txn (and its reader slot)
 * for the next edge_store_read_begin, on any thread, to renew. */
struct st_edge_store_txn_t {
    edge_store_t *store;
    MDB_txn *txn;          /* NULL until first begun; reset (no snapshot) while in the pool */
    struct ban_list *bans; /* a reference to the ban list this txn last saw, or NULL */
    uint32_t next;         /* atomic: pool link (index + 1 of the next free handle, 0 at the end) */
    /* a thread's shared snapshot (edge_store_read_begin_shared; touched by that thread only): */
    uint32_t shared_uses; /* begun and not yet ended uses */
    int shared;           /* handed out by edge_store_read_begin_shared and not ended yet */
    uint64_t commits;     /* pub.commits read before the snapshot was taken */
    uint64_t txnid;       /* the snapshot's LMDB txnid (set by each begin): see edge_store_txn_snapshot */
} __attribute__((aligned(64))); /* one cache line each: handles in use on different threads share none */

/* The snapshot edge_store_read_begin_shared hands out on this thread while no commit lands, or NULL. */
static __thread edge_store_txn_t *thread_snapshot;

/*
 * The lookups of edge_store_get, remembered per thread (direct-mapped by the hash): a record found under a hash in
 * one snapshot is the same record, at the same address in the map, in every txn that sees the same snapshot (the
 * same txnid of the same open store), and that txn's reader slot keeps its pages from reuse while it is open. So a
 * slot is used only when store instance, txnid and hash all match; the ban check still runs on every get. Only
 * found, valid records are kept. Fixed memory: GET_MEMO_SLOTS * sizeof(struct get_memo_slot) per thread (10 KiB).
 */
#define GET_MEMO_SLOTS 64
struct get_memo_slot {
    uint64_t instance; /* 0: empty */
    uint64_t txnid;
    uint8_t hash[EDGE_STORE_HASH_LEN];
    MDB_val v;
    struct record_hdr hdr;
};
static __thread struct get_memo_slot get_memo[GET_MEMO_SLOTS];
static uint64_t store_instances; /* atomic: the last edge_store_t.instance given out */

struct wtxn {
    edge_store_t *s;
    MDB_txn *txn;
    struct wstate st;
};

struct barrier {
    edge_store_op_t op;
    int done;
};

/* ---- helpers ---- */

static void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void log_error(const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    fputs("[edge/store] ", stderr);
    vfprintf(stderr, fmt, args);
    fputc('\n', stderr);
    va_end(args);
}

static void put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; --i, v >>= 8)
        p[i] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; --i, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i)
        v = (v << 8) | p[i];
    return v;
}

static uint32_t get_be32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t sub_clamp(uint64_t a, uint64_t b)
{
    return a > b ? a - b : 0;
}

/* The bytes LMDB spends on a key/value pair: node header + key + value in a leaf page, or whole
 * overflow pages (16-byte page header included) once the node is too big for a leaf. */
static uint64_t charge(const edge_store_t *s, size_t key_len, size_t val_len)
{
    size_t node = 8 + key_len + val_len;
    if (node <= s->node_max)
        return node + 2; /* + the page's index slot */
    return (uint64_t)((val_len + 16 + s->page_size - 1) / s->page_size) * s->page_size;
}

/* The slots of both in-memory tables: one per SLOT_PER_BYTES of budget, a power of 2 within [lo, hi]. */
static unsigned table_bits(uint64_t budget_bytes, uint64_t lo, uint64_t hi)
{
    unsigned bits = 0;
    while ((1ull << bits) < lo || ((1ull << bits) < hi && (1ull << bits) * SLOT_PER_BYTES < budget_bytes))
        ++bits;
    return bits;
}

static uint8_t *freq_slot(edge_store_t *s, uint64_t fill_id)
{
    return &s->freq[(fill_id * 0x9E3779B97F4A7C15ull) >> (64 - s->freq_bits)];
}

/* Counters are hints: the writer's stores may race with a reader's increment and lose it, which costs at most a hit. */
static unsigned freq_get(edge_store_t *s, uint64_t fill_id)
{
    return __atomic_load_n(freq_slot(s, fill_id), __ATOMIC_RELAXED);
}

static void freq_set(edge_store_t *s, uint64_t fill_id, unsigned v)
{
    uint8_t *slot = freq_slot(s, fill_id);
    if (__atomic_load_n(slot, __ATOMIC_RELAXED) != v)
        __atomic_store_n(slot, (uint8_t)v, __ATOMIC_RELAXED);
}

/* How many insertions the ghost set remembers: as many as there are objects (the S3-FIFO paper sizes it
 * like the main queue), within what the table holds without evicting live entries too early. */
static uint32_t ghost_capacity(const edge_store_t *s)
{
    uint64_t cap = s->w.objects < 64 ? 64 : s->w.objects, slots = (s->ghost_mask + 1) * GHOST_WAYS;
    return (uint32_t)(cap > slots / 2 ? slots / 2 : cap);
}

static struct ghost_slot *ghost_bucket(edge_store_t *s, const uint8_t *hash, uint32_t *fp)
{
    uint64_t h;
    memcpy(&h, hash, sizeof(h)); /* SHA-256 bytes: uniform */
    memcpy(fp, hash + 8, sizeof(*fp));
    if (*fp == 0)
        *fp = 1;
    return &s->ghost[(h & s->ghost_mask) * GHOST_WAYS];
}

/* Remembers an object evicted from the small queue (writer thread): the slot of an expired entry, or the oldest. */
static void ghost_add(edge_store_t *s, const uint8_t *hash)
{
    uint32_t fp, cap = ghost_capacity(s), oldest_age = 0;
    struct ghost_slot *b = ghost_bucket(s, hash, &fp), *victim = &b[0];
    for (unsigned i = 0; i < GHOST_WAYS; ++i) {
        uint32_t age = s->ghost_clock - b[i].stamp;
        if (b[i].fp == 0 || age >= cap || b[i].fp == fp) {
            victim = &b[i];
            break;
        }
        if (age > oldest_age) {
            oldest_age = age;
            victim = &b[i];
        }
    }
    victim->fp = fp;
    victim->stamp = s->ghost_clock++;
}

/* @return 1 when the hash was evicted from the small queue recently (writer thread). The entry stays (it
 * expires by age): a batch retried after MDB_MAP_FULL must see the same answer. */
static int ghost_has(edge_store_t *s, const uint8_t *hash)
{
    uint32_t fp, cap = ghost_capacity(s);
    struct ghost_slot *b = ghost_bucket(s, hash, &fp);
    for (unsigned i = 0; i < GHOST_WAYS; ++i)
        if (b[i].fp == fp && s->ghost_clock - b[i].stamp < cap)
            return 1;
    return 0;
}

static int is_dropped(edge_store_t *s, uint64_t fill_id)
{
    for (size_t i = 0; i < DROPPED_SLOTS; ++i)
        if (s->dropped[i] == fill_id)
            return 1;
    return 0;
}

static void set_dropped(edge_store_t *s, uint64_t fill_id)
{
    if (is_dropped(s, fill_id))
        return;
    s->dropped[s->dropped_next] = fill_id;
    s->dropped_next = (s->dropped_next + 1) % DROPPED_SLOTS;
}

static void clear_dropped(edge_store_t *s, uint64_t fill_id)
{
    for (size_t i = 0; i < DROPPED_SLOTS; ++i)
        if (s->dropped[i] == fill_id)
            s->dropped[i] = 0;
}

/**
 * Validates an object record read from LMDB.
 * @return 0 with *hdr filled, or EDGE_STORE_ECORRUPT
 */
/* Bytes of the body copied into the record (REC_FLAG_INLINE), 0 for the others. */
static size_t rec_inline_len(const struct record_hdr *hdr)
{
    return (hdr->flags & REC_FLAG_INLINE) != 0 ? (size_t)hdr->body_size : 0;
}

static int parse_record(const MDB_val *v, struct record_hdr *hdr)
{
    if (v->mv_size < sizeof(*hdr))
        return EDGE_STORE_ECORRUPT;
    memcpy(hdr, v->mv_data, sizeof(*hdr)); /* LMDB values are only 2-byte aligned */
    if (hdr->magic != RECORD_MAGIC || hdr->version != RECORD_VERSION || hdr->hdr_size != sizeof(*hdr))
        return EDGE_STORE_ECORRUPT;
    if ((hdr->flags & REC_FLAG_INLINE) != 0 && (hdr->num_chunks != 1 || hdr->body_size > v->mv_size))
        return EDGE_STORE_ECORRUPT;
    if ((uint64_t)sizeof(*hdr) + hdr->key_len + hdr->variant_len + hdr->tags_len + rec_inline_len(hdr) + hdr->meta_len !=
        v->mv_size)
        return EDGE_STORE_ECORRUPT;
    if (hdr->fill_id == 0 || (hdr->num_chunks == 0 && hdr->body_size != 0) || hdr->tags_len > TAGS_MAX_BYTES)
        return EDGE_STORE_ECORRUPT;
    return 0;
}

/* Pointers into a record that parse_record accepted. */
static const char *rec_key(const MDB_val *v)
{
    return (const char *)v->mv_data + sizeof(struct record_hdr);
}

static const char *rec_variant(const MDB_val *v, const struct record_hdr *hdr)
{
    return rec_key(v) + hdr->key_len;
}

static const uint8_t *rec_tags(const MDB_val *v, const struct record_hdr *hdr)
{
    return (const uint8_t *)rec_variant(v, hdr) + hdr->variant_len;
}

static const void *rec_inline(const MDB_val *v, const struct record_hdr *hdr)
{
    return (const char *)rec_tags(v, hdr) + hdr->tags_len;
}

static const void *rec_meta(const MDB_val *v, const struct record_hdr *hdr)
{
    return (const char *)rec_inline(v, hdr) + rec_inline_len(hdr);
}

static struct obj_view rec_view(const MDB_val *v, const struct record_hdr *hdr)
{
    return (struct obj_view){rec_key(v), hdr->key_len, rec_tags(v, hdr), hdr->tags_len};
}

static int is_zero_hash(const uint8_t *h)
{
    static const uint8_t zero[EDGE_STORE_HASH_LEN];
    return memcmp(h, zero, EDGE_STORE_HASH_LEN) == 0;
}

/* Encoded tags: [be16 len][len bytes], repeated. Validates as it goes (records come from disk). */
static int tags_next(const uint8_t *tags, size_t tags_len, size_t *cursor, const char **tag, size_t *len)
{
    if (*cursor >= tags_len)
        return EDGE_STORE_NOTFOUND;
    if (tags_len - *cursor < 2)
        return EDGE_STORE_ECORRUPT;
    size_t l = ((size_t)tags[*cursor] << 8) | tags[*cursor + 1];
    if (l == 0 || l > tags_len - *cursor - 2)
        return EDGE_STORE_ECORRUPT;
    *tag = (const char *)tags + *cursor + 2;
    *len = l;
    *cursor += 2 + l;
    return 0;
}

/* Encodes the tags of a COMMIT into buf (TAGS_MAX_BYTES). @return the length, or -1 if the op breaks a bound */
static long encode_tags(const edge_store_op_t *op, uint8_t *buf)
{
    size_t off = 0;
    if (op->num_tags > EDGE_STORE_MAX_TAGS || (op->num_tags != 0 && (op->tags == NULL || op->tag_lens == NULL)))
        return -1;
    for (size_t i = 0; i < op->num_tags; ++i) {
        size_t l = op->tag_lens[i];
        if (l == 0 || l > EDGE_STORE_MAX_TAG_LEN || op->tags[i] == NULL)
            return -1;
        buf[off] = (uint8_t)(l >> 8);
        buf[off + 1] = (uint8_t)l;
        memcpy(buf + off + 2, op->tags[i], l);
        off += 2 + l;
    }
    return (long)off;
}

/* The host[:port] of a key `scheme://host[:port]/path?query`. @return 0 when the key has no "://" */
static int key_host(const char *key, size_t len, const char **host, size_t *host_len)
{
    size_t i = 0;
    while (i + 3 <= len && memcmp(key + i, "://", 3) != 0)
        ++i;
    if (i + 3 > len)
        return 0;
    const char *h = key + i + 3, *end = key + len, *q = h;
    while (q < end && *q != '/' && *q != '?')
        ++q;
    *host = h;
    *host_len = (size_t)(q - h);
    return 1;
}

static int ban_matches(const struct ban_view *b, const struct obj_view *o)
{
    switch (b->kind) {
    case EDGE_STORE_BAN_URL:
        return o->key_len == b->value_len && memcmp(o->key, b->value, b->value_len) == 0;
    case EDGE_STORE_BAN_PREFIX:
        return o->key_len >= b->value_len && memcmp(o->key, b->value, b->value_len) == 0;
    case EDGE_STORE_BAN_HOST: {
        const char *h;
        size_t hl;
        return key_host(o->key, o->key_len, &h, &hl) && hl == b->value_len && memcmp(h, b->value, hl) == 0;
    }
    case EDGE_STORE_BAN_TAG: {
        const char *t;
        size_t tl, cursor = 0;
        while (tags_next(o->tags, o->tags_len, &cursor, &t, &tl) == 0)
            if (tl == b->value_len && memcmp(t, b->value, tl) == 0)
                return 1;
        return 0;
    }
    case EDGE_STORE_BAN_ALL:
        return 1;
    default:
        return 0;
    }
}

enum { BAN_NONE = 0, BAN_SOFT = 1, BAN_HARD = 2 };

/**
 * Checks one ban, walked from the newest down. Bans are ascending by id and by watermark, so the walk
 * stops at the first whose watermark is not above the object's fill_id.
 * @return 1 to stop the walk
 */
static int check_ban(const struct ban_view *b, uint64_t fill_id, uint64_t revalidated_ban_id, const struct obj_view *o,
                     int *res)
{
    if (b->watermark <= fill_id)
        return 1;
    if (b->soft && (*res == BAN_SOFT || b->id <= revalidated_ban_id))
        return 0;
    if (!ban_matches(b, o))
        return 0;
    if (b->soft) {
        *res = BAN_SOFT;
        return 0;
    }
    *res = BAN_HARD;
    return 1;
}

static int check_ban_list(const struct ban_list *l, uint64_t fill_id, uint64_t revalidated_ban_id, const struct obj_view *o)
{
    int res = BAN_NONE;
    for (size_t i = l->n; i-- > 0;)
        if (check_ban(&l->bans[i], fill_id, revalidated_ban_id, o, &res))
            break;
    return res;
}

static void ban_list_release(struct ban_list *l)
{
    if (l != NULL && __atomic_sub_fetch(&l->refcnt, 1, __ATOMIC_ACQ_REL) == 0)
        free(l);
}

/* ---- the read txn pool (any thread, lock-free; see txns in struct st_edge_store_t) ---- */

static void txn_push(edge_store_t *s, uint64_t *head, edge_store_txn_t *t)
{
    uint64_t old = __atomic_load_n(head, __ATOMIC_RELAXED), idx = (uint64_t)(t - s->txns) + 1, new;
    do {
        __atomic_store_n(&t->next, (uint32_t)old, __ATOMIC_RELAXED);
        new = ((old >> 32) + 1) << 32 | idx;
    } while (!__atomic_compare_exchange_n(head, &old, new, 1, __ATOMIC_RELEASE, __ATOMIC_RELAXED));
}

/* @return a handle taken off the stack, or NULL when it is empty */
static edge_store_txn_t *txn_pop(edge_store_t *s, uint64_t *head)
{
    uint64_t old = __atomic_load_n(head, __ATOMIC_ACQUIRE), new;
    edge_store_txn_t *t;
    do {
        uint32_t idx = (uint32_t)old;
        if (idx == 0)
            return NULL;
        t = &s->txns[idx - 1];
        /* t may be popped and pushed elsewhere meanwhile: then the tag has moved and the CAS fails */
        new = ((old >> 32) + 1) << 32 | __atomic_load_n(&t->next, __ATOMIC_RELAXED);
    } while (!__atomic_compare_exchange_n(head, &old, new, 1, __ATOMIC_ACQUIRE, __ATOMIC_ACQUIRE));
    return t;
}

/* Allocates the pool, one handle per reader slot of the open environment. @return 0 or -1 (ENOMEM) */
static int txn_pool_init(edge_store_t *s)
{
    unsigned n;
    if (mdb_env_get_maxreaders(s->env, &n) != 0 || n == 0)
        return -1;
    if ((s->txns = aligned_alloc(64, (size_t)n * sizeof(*s->txns))) == NULL)
        return -1;
    memset(s->txns, 0, (size_t)n * sizeof(*s->txns));
    s->num_txns = n;
    for (uint32_t i = n; i-- > 0;) {
        s->txns[i].store = s;
        txn_push(s, &s->txns_empty, &s->txns[i]);
    }
    return 0;
}

/* Ends the reset txns and frees the pool. No handle may be in use. */
static void txn_pool_dispose(edge_store_t *s)
{
    for (uint32_t i = 0; i < s->num_txns; ++i) {
        if (s->txns[i].txn != NULL)
            mdb_txn_abort(s->txns[i].txn);
        ban_list_release(s->txns[i].bans);
    }
    free(s->txns);
    s->txns = NULL;
    s->num_txns = 0;
}

/* ---- live fill ids (any thread, under fills_mutex) ---- */

static void fills_compact(edge_store_t *s)
{
    size_t j = 0;
    for (size_t i = s->fills_head; i < s->fills_n; ++i)
        if (!(s->fills[i] & FILL_RELEASED))
            s->fills[j++] = s->fills[i];
    s->fills_head = 0;
    s->fills_n = j;
    s->fills_released = 0;
}

/* @return 0, or -1 when the id could not be recorded (out of memory: then bans may retire early) */
static int fills_add(edge_store_t *s, uint64_t id)
{
    if (s->fills_n == s->fills_cap) {
        if (s->fills_head != 0 || s->fills_released != 0)
            fills_compact(s);
        if (s->fills_n == s->fills_cap) {
            size_t cap = s->fills_cap == 0 ? 64 : s->fills_cap * 2;
            uint64_t *f = realloc(s->fills, cap * sizeof(*f));
            if (f == NULL)
                return -1;
            s->fills = f;
            s->fills_cap = cap;
        }
    }
    s->fills[s->fills_n++] = id;
    return 0;
}

static void fills_release(edge_store_t *s, uint64_t id)
{
    size_t lo = s->fills_head, hi = s->fills_n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint64_t v = s->fills[mid] & ~FILL_RELEASED;
        if (v == id) {
            if (!(s->fills[mid] & FILL_RELEASED)) {
                s->fills[mid] |= FILL_RELEASED;
                ++s->fills_released;
            }
            break;
        }
        if (v < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    while (s->fills_head < s->fills_n && (s->fills[s->fills_head] & FILL_RELEASED)) {
        ++s->fills_head;
        --s->fills_released;
    }
    if (s->fills_head == s->fills_n)
        s->fills_head = s->fills_n = 0;
    else if (s->fills_released > 64 && s->fills_released > (s->fills_n - s->fills_head) / 2)
        fills_compact(s);
}

/* @return the smallest live fill id, or UINT64_MAX */
static uint64_t min_live_fill(edge_store_t *s)
{
    pthread_mutex_lock(&s->fills_mutex);
    uint64_t id = s->fills_head < s->fills_n ? s->fills[s->fills_head] : UINT64_MAX;
    pthread_mutex_unlock(&s->fills_mutex);
    return id;
}

static uint64_t peek_next_fill_id(edge_store_t *s)
{
    pthread_mutex_lock(&s->fills_mutex);
    uint64_t id = s->next_fill_id;
    pthread_mutex_unlock(&s->fills_mutex);
    return id;
}

static void release_fill(edge_store_t *s, uint64_t id)
{
    pthread_mutex_lock(&s->fills_mutex);
    fills_release(s, id);
    pthread_mutex_unlock(&s->fills_mutex);
}

/* ---- bans, writer side ---- */

static int writer_check_bans(edge_store_t *s, uint64_t fill_id, uint64_t revalidated_ban_id, const struct obj_view *o)
{
    int res = BAN_NONE;
    for (size_t i = s->wbans_n; i-- > 0;)
        if (check_ban(&s->wbans[i].v, fill_id, revalidated_ban_id, o, &res))
            break;
    return res;
}

/* Builds the list readers will see from the writer's bans, minus those retiring. *out is NULL when none is left. */
static int build_ban_list(edge_store_t *s, struct ban_list **out)
{
    size_t n = 0, bytes = 0;
    for (size_t i = 0; i < s->wbans_n; ++i) {
        if (!s->wbans[i].retiring) {
            ++n;
            bytes += s->wbans[i].v.value_len;
        }
    }
    *out = NULL;
    if (n == 0)
        return 0;
    struct ban_list *l = malloc(sizeof(*l) + n * sizeof(l->bans[0]) + bytes);
    if (l == NULL)
        return ENOMEM;
    char *p = (char *)&l->bans[n];
    l->refcnt = 1;
    l->n = 0;
    l->max_watermark = 0;
    for (size_t i = 0; i < s->wbans_n; ++i) {
        const struct wban *b = &s->wbans[i];
        if (b->retiring)
            continue;
        l->bans[l->n] = b->v;
        l->bans[l->n].value = p;
        if (b->v.value_len != 0)
            memcpy(p, b->v.value, b->v.value_len);
        p += b->v.value_len;
        if (b->v.watermark > l->max_watermark)
            l->max_watermark = b->v.watermark;
        ++l->n;
    }
    *out = l;
    return 0;
}

static void publish_bans(edge_store_t *s, struct ban_list *l)
{
    pthread_mutex_lock(&s->bans_mutex);
    struct ban_list *old = s->bans_cur;
    __atomic_store_n(&s->bans_cur, l, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&s->bans_mutex);
    ban_list_release(old);
    __atomic_store_n(&s->bans_live_n, l != NULL ? (uint64_t)l->n : 0, __ATOMIC_RELAXED);
}

/* Drops what an aborted transaction did to the writer's bans: appended bans, retirements. */
static void bans_rollback(edge_store_t *s)
{
    while (s->wbans_n > s->wbans_committed)
        free((void *)s->wbans[--s->wbans_n].v.value);
    for (size_t i = 0; i < s->wbans_n; ++i)
        s->wbans[i].retiring = 0;
    s->bans_dirty = 0;
}

/* After a commit: the retired bans leave the writer's list. */
static void bans_settle(edge_store_t *s)
{
    size_t j = 0;
    for (size_t i = 0; i < s->wbans_n; ++i) {
        if (s->wbans[i].retiring)
            free((void *)s->wbans[i].v.value);
        else
            s->wbans[j++] = s->wbans[i];
    }
    s->wbans_n = s->wbans_committed = j;
    s->bans_dirty = 0;
}

/* ---- write transactions (writer thread) ---- */

static int wtxn_begin(edge_store_t *s, struct wtxn *w)
{
    w->s = s;
    w->st = s->w;
    if (s->bans_dirty || s->wbans_n != s->wbans_committed)
        bans_rollback(s);
    return mdb_txn_begin(s->env, NULL, 0, &w->txn);
}

static int wtxn_commit(struct wtxn *w)
{
    edge_store_t *s = w->s;
    struct stats_rec rec = {.magic = STATS_MAGIC,
                            .version = FORMAT_VERSION,
                            .live_bytes = w->st.live_bytes,
                            .objects = w->st.objects,
                            .max_fill_id = w->st.max_fill_id,
                            .max_ban_id = w->st.max_ban_id,
                            .main_bytes = w->st.main_bytes};
    MDB_val k = {5, "stats"}, v = {sizeof(rec), &rec};
    struct ban_list *bans = NULL;
    int rc;

    /* build the readers' list first: once committed, a ban must become visible */
    if ((s->bans_dirty && (rc = build_ban_list(s, &bans)) != 0) || (rc = mdb_put(w->txn, s->dbi_stats, &k, &v, 0)) != 0) {
        mdb_txn_abort(w->txn);
        return rc;
    }
    if ((rc = mdb_txn_commit(w->txn)) != 0) {
        ban_list_release(bans);
        return rc;
    }
    if (s->bans_dirty) {
        bans_settle(s);
        publish_bans(s, bans);
    }
    s->w = w->st;
    __atomic_store_n(&s->pub.bans_applied, s->w.bans_applied, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.swept_objects, s->w.swept_objects, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.live_bytes, s->w.live_bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.objects, s->w.objects, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.evictions, s->w.evictions, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.main_bytes, s->w.main_bytes, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.promoted, s->w.promoted, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.ghost_hits, s->w.ghost_hits, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.swept_fills, s->w.swept_fills, __ATOMIC_RELAXED);
    __atomic_store_n(&s->pub.dropped_fills, s->w.dropped_fills, __ATOMIC_RELAXED);
    /* after the commit: a shared snapshot taken before it is not reused once this is seen (read_begin_shared) */
    __atomic_fetch_add(&s->pub.commits, 1, __ATOMIC_RELEASE);
    return 0;
}

static void note_fill_id(struct wtxn *w, uint64_t fill_id)
{
    if (fill_id > w->st.max_fill_id)
        w->st.max_fill_id = fill_id;
}

/**
 * Deletes chunks of `fill_id`, at most `max` of them (0: no limit).
 * @param[out] all_gone  set to 1 when no chunk of the fill is left
 * @return 0 or an LMDB error (the transaction is then unusable)
 */
static int delete_chunks(struct wtxn *w, uint64_t fill_id, size_t max, int *all_gone)
{
    MDB_cursor *cur;
    uint8_t kbuf[CHUNK_KEY_LEN];
    MDB_val k, v;
    size_t n = 0;
    int rc;

    *all_gone = 0;
    if ((rc = mdb_cursor_open(w->txn, w->s->dbi_chunks, &cur)) != 0)
        return rc;
    for (;;) {
        if (max != 0 && n == max)
            break;
        put_be64(kbuf, fill_id);
        put_be32(kbuf + 8, 0);
        k.mv_size = sizeof(kbuf);
        k.mv_data = kbuf;
        /* seek again after each delete: simpler than reasoning about the cursor after mdb_cursor_del */
        rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
        if (rc == MDB_NOTFOUND || (rc == 0 && (k.mv_size != CHUNK_KEY_LEN || get_be64(k.mv_data) != fill_id))) {
            *all_gone = 1;
            rc = 0;
            break;
        }
        if (rc != 0)
            break;
        w->st.live_bytes = sub_clamp(w->st.live_bytes, charge(w->s, CHUNK_KEY_LEN, v.mv_size));
        if ((rc = mdb_cursor_del(cur, 0)) != 0)
            break;
        ++n;
    }
    mdb_cursor_close(cur);
    return rc;
}

static int del_ignore_missing(MDB_txn *txn, MDB_dbi dbi, void *key, size_t key_len)
{
    MDB_val k = {key_len, key};
    int rc = mdb_del(txn, dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Deletes every chunk and the pending record of a fill. */
static int abort_fill(struct wtxn *w, uint64_t fill_id)
{
    uint8_t kbuf[FILL_KEY_LEN];
    int all_gone, rc;

    if ((rc = delete_chunks(w, fill_id, 0, &all_gone)) != 0)
        return rc;
    put_be64(kbuf, fill_id);
    return del_ignore_missing(w->txn, w->s->dbi_pending, kbuf, sizeof(kbuf));
}

/* Deletes one (key, member hash) pair of a dupsort index, if present. */
static int index_del(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len, const uint8_t *hash)
{
    MDB_val k = {key_len, (void *)key}, d = {EDGE_STORE_HASH_LEN, (void *)hash};
    int rc = mdb_del(txn, dbi, &k, &d);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int index_put(MDB_txn *txn, MDB_dbi dbi, const void *key, size_t key_len, const uint8_t *hash)
{
    MDB_val k = {key_len, (void *)key}, d = {EDGE_STORE_HASH_LEN, (void *)hash};
    int rc = mdb_put(txn, dbi, &k, &d, MDB_NODUPDATA);
    return rc == MDB_KEYEXIST ? 0 : rc; /* a tag given twice */
}

/* Deletes entry `seq` of the small queue, or of the main one (whose byte count it then lowers), if present. */
static int queue_del(struct wtxn *w, int main_q, uint64_t seq)
{
    uint8_t key[8];
    int rc;

    put_be64(key, seq);
    if (!main_q)
        return del_ignore_missing(w->txn, w->s->dbi_fifo, key, sizeof(key));
    MDB_val k = {sizeof(key), key}, v;
    if ((rc = mdb_get(w->txn, w->s->dbi_main, &k, &v)) != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    if (v.mv_size == sizeof(struct fifo_rec)) {
        struct fifo_rec frec;
        memcpy(&frec, v.mv_data, sizeof(frec));
        w->st.main_bytes = sub_clamp(w->st.main_bytes, frec.charge);
    }
    return mdb_del(w->txn, w->s->dbi_main, &k, NULL);
}

/* Appends an entry to the small or the main queue (whose byte count it then raises). */
static int queue_put(struct wtxn *w, int main_q, uint64_t seq, const struct fifo_rec *frec)
{
    uint8_t key[8];
    put_be64(key, seq);
    MDB_val k = {sizeof(key), key}, v = {sizeof(*frec), (void *)frec};
    int rc = mdb_put(w->txn, main_q ? w->s->dbi_main : w->s->dbi_fifo, &k, &v, 0);
    if (rc == 0 && main_q)
        w->st.main_bytes += frec->charge;
    return rc;
}

/**
 * Removes the object whose record `v` (read in this transaction) is stored under `hash`: record,
 * FIFO entry (of the queue its REC_FLAG_MAIN names), chunks and index entries. A corrupt record is
 * removed too; its chunks cannot be found and leak. A record of version 1 loses its chunks and FIFO
 * entry (same places), it had no index.
 */
static int remove_object(struct wtxn *w, const uint8_t *hash, const MDB_val *v, uint64_t keep_fill_id)
{
    struct record_hdr hdr;
    int known = 0, indexed = 0, rc;
    size_t rec_size = v->mv_size;
    uint8_t group[EDGE_STORE_HASH_LEN], tags[TAGS_MAX_BYTES];
    size_t tags_len = 0;

    memset(&hdr, 0, sizeof(hdr));
    if (v->mv_size >= RECORD_V1_PREFIX) {
        memcpy(&hdr, v->mv_data, RECORD_V1_PREFIX);
        known = hdr.magic == RECORD_MAGIC && hdr.fill_id != 0;
    }
    if (known && parse_record(v, &hdr) == 0) {
        /* copy before the delete: the record's page may be reused within this transaction */
        indexed = 1;
        memcpy(group, hdr.group, sizeof(group));
        tags_len = hdr.tags_len;
        memcpy(tags, rec_tags(v, &hdr), tags_len);
    }
    MDB_val k = {EDGE_STORE_HASH_LEN, (void *)hash};
    if ((rc = mdb_del(w->txn, w->s->dbi_objects, &k, NULL)) != 0)
        return rc;
    if (indexed) {
        const char *t;
        size_t tl, cursor = 0;
        if (!is_zero_hash(group) && (rc = index_del(w->txn, w->s->dbi_groups, group, sizeof(group), hash)) != 0)
            return rc;
        while (tags_next(tags, tags_len, &cursor, &t, &tl) == 0)
            if ((rc = index_del(w->txn, w->s->dbi_tags, t, tl, hash)) != 0)
                return rc;
    }
    w->st.live_bytes = sub_clamp(w->st.live_bytes, charge(w->s, EDGE_STORE_HASH_LEN, rec_size));
    w->st.objects = sub_clamp(w->st.objects, 1);
    if (!known) {
        log_error("CORRUPT op=remove detail=\"object record unreadable, its chunks leak\"");
        return 0;
    }
    if ((rc = queue_del(w, (hdr.flags & REC_FLAG_MAIN) != 0, hdr.fifo_seq)) != 0)
        return rc;
    if (hdr.fill_id != keep_fill_id) {
        int all_gone;
        if ((rc = delete_chunks(w, hdr.fill_id, 0, &all_gone)) != 0)
            return rc;
    }
    return 0;
}

static int apply_chunk(struct wtxn *w, edge_store_op_t *op, int *result)
{
    edge_store_t *s = w->s;
    uint8_t kbuf[CHUNK_KEY_LEN];
    struct pending_rec prec = {PENDING_MAGIC, FORMAT_VERSION};
    MDB_val k, v;
    int rc;

    if (is_dropped(s, op->fill_id)) {
        *result = EDGE_STORE_EFULL;
        return 0;
    }
    if (op->fill_id == 0 || op->len > EDGE_STORE_CHUNK_SIZE || (op->len != 0 && op->data == NULL)) {
        *result = EDGE_STORE_EINVAL;
        return 0;
    }
    /* The pending record lets a later open sweep the chunks if the fill never finishes. */
    put_be64(kbuf, op->fill_id);
    k = (MDB_val){FILL_KEY_LEN, kbuf};
    v = (MDB_val){sizeof(prec), &prec};
    rc = mdb_put(w->txn, s->dbi_pending, &k, &v, MDB_NOOVERWRITE);
    if (rc != 0 && rc != MDB_KEYEXIST)
        return rc;

    put_be32(kbuf + 8, op->chunk_index);
    k = (MDB_val){CHUNK_KEY_LEN, kbuf};
    v = (MDB_val){op->len, (void *)op->data};
    rc = mdb_put(w->txn, s->dbi_chunks, &k, &v, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
        /* a chunk sent twice: the new bytes win (v now describes the old value) */
        w->st.live_bytes = sub_clamp(w->st.live_bytes, charge(s, CHUNK_KEY_LEN, v.mv_size));
        v = (MDB_val){op->len, (void *)op->data};
        rc = mdb_put(w->txn, s->dbi_chunks, &k, &v, 0);
    }
    if (rc != 0)
        return rc;
    w->st.live_bytes += charge(s, CHUNK_KEY_LEN, op->len);
    note_fill_id(w, op->fill_id);
    *result = 0;
    return 0;
}

/**
 * Checks that chunks 0..num_chunks-1 of the fill, and no others, exist and add up to body_size.
 * @param[out] ok  1 when they do
 * @param[out] chunk_bytes  the bytes charged for them
 */
static int verify_chunks(struct wtxn *w, const edge_store_op_t *op, int *ok, uint64_t *chunk_bytes)
{
    MDB_cursor *cur;
    uint8_t kbuf[CHUNK_KEY_LEN];
    MDB_val k = {sizeof(kbuf), kbuf}, v;
    uint64_t total = 0;
    uint32_t n = 0;
    int rc;

    *ok = 0;
    *chunk_bytes = 0;
    if ((rc = mdb_cursor_open(w->txn, w->s->dbi_chunks, &cur)) != 0)
        return rc;
    put_be64(kbuf, op->fill_id);
    put_be32(kbuf + 8, 0);
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != CHUNK_KEY_LEN || get_be64(k.mv_data) != op->fill_id)
            break;
        if (get_be32((const uint8_t *)k.mv_data + 8) != n || n == op->num_chunks)
            goto Done; /* a gap or an extra chunk */
        total += v.mv_size;
        *chunk_bytes += charge(w->s, CHUNK_KEY_LEN, v.mv_size);
        ++n;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        goto Done;
    rc = 0;
    *ok = n == op->num_chunks && total == op->body_size;
Done:
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static int apply_commit(struct wtxn *w, edge_store_op_t *op, int *result)
{
    edge_store_t *s = w->s;
    MDB_val k = {EDGE_STORE_HASH_LEN, op->hash}, v;
    uint64_t chunk_bytes;
    int ok, rc;

    if (is_dropped(s, op->fill_id)) {
        *result = EDGE_STORE_EFULL;
        return 0;
    }
    uint8_t tags[TAGS_MAX_BYTES];
    long tags_len = encode_tags(op, tags);
    if (op->fill_id == 0 || op->key_len > UINT32_MAX || op->len > UINT32_MAX || (op->key_len != 0 && op->key == NULL) ||
        (op->len != 0 && op->data == NULL) || (op->num_chunks == 0 && op->body_size != 0) || tags_len < 0 ||
        op->variant_len > UINT32_MAX || (op->variant_len != 0 && op->variant == NULL)) {
        *result = EDGE_STORE_EINVAL;
        return abort_fill(w, op->fill_id);
    }
    /* a fill that began before a matching purge (RFC 9111 has no say: our purge contract) */
    struct obj_view view = {op->key, op->key_len, tags, (size_t)tags_len};
    int banned = s->wbans_n != 0 ? writer_check_bans(s, op->fill_id, 0, &view) : BAN_NONE;
    if (banned == BAN_HARD) {
        *result = EDGE_STORE_EPURGED;
        return abort_fill(w, op->fill_id);
    }
    if ((rc = verify_chunks(w, op, &ok, &chunk_bytes)) != 0)
        return rc;
    if (!ok) {
        log_error("ABORT op=commit fill_id=%llu detail=\"chunks missing or body size mismatch, fill dropped\"",
                  (unsigned long long)op->fill_id);
        *result = EDGE_STORE_EINVAL;
        return abort_fill(w, op->fill_id);
    }

    /* replace the object at this hash, if any */
    int to_main = 0;
    rc = mdb_get(w->txn, s->dbi_objects, &k, &v);
    if (rc == 0) {
        struct record_hdr old;
        /* a new version of an object of the main queue (a refresh) stays there: its URL proved popular */
        to_main = parse_record(&v, &old) == 0 && (old.flags & REC_FLAG_MAIN) != 0;
        if ((rc = remove_object(w, op->hash, &v, op->fill_id)) != 0)
            return rc;
    } else if (rc != MDB_NOTFOUND) {
        return rc;
    }
    /* S3-FIFO: an object evicted from the small queue not long ago goes straight to main */
    if (ghost_has(s, op->hash)) {
        to_main = 1;
        w->st.ghost_hits += 1;
    }

    /* a small one-chunk body goes into the record as well (REC_FLAG_INLINE), when the record still fits a node */
    size_t base_len = sizeof(struct record_hdr) + op->key_len + op->variant_len + (size_t)tags_len + op->len;
    char inline_body[4096];
    size_t inline_len = 0;
    if (op->num_chunks == 1 && op->body_size != 0 && op->body_size <= sizeof(inline_body) &&
        base_len + op->body_size <= s->node_max) {
        uint8_t ckey[CHUNK_KEY_LEN];
        put_be64(ckey, op->fill_id);
        put_be32(ckey + 8, 0);
        MDB_val ck = {sizeof(ckey), ckey}, cv;
        if ((rc = mdb_get(w->txn, s->dbi_chunks, &ck, &cv)) != 0 && rc != MDB_NOTFOUND)
            return rc;
        if (rc == 0 && cv.mv_size == op->body_size) {
            memcpy(inline_body, cv.mv_data, cv.mv_size); /* a copy: the puts below may move pages */
            inline_len = cv.mv_size;
        }
    }

    struct record_hdr hdr = {.magic = RECORD_MAGIC,
                             .version = RECORD_VERSION,
                             .hdr_size = sizeof(hdr),
                             .key_len = (uint32_t)op->key_len,
                             .meta_len = (uint32_t)op->len,
                             .fill_id = op->fill_id,
                             .fifo_seq = w->st.next_seq++,
                             .body_size = op->body_size,
                             .num_chunks = op->num_chunks,
                             .flags = (banned == BAN_SOFT ? REC_FLAG_STALE : 0) | (to_main ? REC_FLAG_MAIN : 0) |
                                      (inline_len != 0 ? REC_FLAG_INLINE : 0),
                             .variant_len = (uint32_t)op->variant_len,
                             .tags_len = (uint32_t)tags_len};
    memcpy(hdr.group, op->group, sizeof(hdr.group));
    size_t rec_len = base_len + inline_len;
    v = (MDB_val){rec_len, NULL};
    if ((rc = mdb_put(w->txn, s->dbi_objects, &k, &v, MDB_RESERVE)) != 0)
        return rc;
    char *p = v.mv_data;
    memcpy(p, &hdr, sizeof(hdr));
    p += sizeof(hdr);
    if (op->key_len != 0)
        memcpy(p, op->key, op->key_len);
    p += op->key_len;
    if (op->variant_len != 0)
        memcpy(p, op->variant, op->variant_len);
    p += op->variant_len;
    if (tags_len != 0)
        memcpy(p, tags, (size_t)tags_len);
    p += tags_len;
    if (inline_len != 0)
        memcpy(p, inline_body, inline_len);
    p += inline_len;
    if (op->len != 0)
        memcpy(p, op->data, op->len);
    uint64_t rec_charge = charge(s, EDGE_STORE_HASH_LEN, rec_len);

    if (!is_zero_hash(op->group) && (rc = index_put(w->txn, s->dbi_groups, op->group, EDGE_STORE_HASH_LEN, op->hash)) != 0)
        return rc;
    for (size_t i = 0; i < op->num_tags; ++i)
        if ((rc = index_put(w->txn, s->dbi_tags, op->tags[i], op->tag_lens[i], op->hash)) != 0)
            return rc;

    struct fifo_rec frec = {.fill_id = op->fill_id, .charge = rec_charge + chunk_bytes};
    memcpy(frec.hash, op->hash, EDGE_STORE_HASH_LEN);
    if ((rc = queue_put(w, to_main, hdr.fifo_seq, &frec)) != 0)
        return rc;

    uint8_t pkey[FILL_KEY_LEN];
    put_be64(pkey, op->fill_id);
    if ((rc = del_ignore_missing(w->txn, s->dbi_pending, pkey, sizeof(pkey))) != 0)
        return rc;

    w->st.live_bytes += rec_charge;
    w->st.objects += 1;
    note_fill_id(w, op->fill_id);
    /* a new object starts cold (the counter may be left over from a colliding fill id) */
    freq_set(s, op->fill_id, 0);
    *result = 0;
    return 0;
}

static int apply_delete(struct wtxn *w, edge_store_op_t *op, int *result)
{
    MDB_val k = {EDGE_STORE_HASH_LEN, op->hash}, v;
    int rc = mdb_get(w->txn, w->s->dbi_objects, &k, &v);

    *result = 0;
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    return remove_object(w, op->hash, &v, 0);
}

/* Removes the object at `hash` if it exists. */
static int remove_at(struct wtxn *w, const uint8_t *hash)
{
    MDB_val k = {EDGE_STORE_HASH_LEN, (void *)hash}, v;
    int rc = mdb_get(w->txn, w->s->dbi_objects, &k, &v);
    if (rc == MDB_NOTFOUND)
        return 0;
    return rc != 0 ? rc : remove_object(w, hash, &v, 0);
}

/**
 * Reads the record of a group member.
 * @return 0 with *hdr when the object exists, is valid and belongs to `group`; MDB_NOTFOUND otherwise
 *         (a dangling index entry); or an LMDB error
 */
static int get_member(struct wtxn *w, const uint8_t *group, const uint8_t *hash, MDB_val *v, struct record_hdr *hdr)
{
    MDB_val k = {EDGE_STORE_HASH_LEN, (void *)hash};
    int rc = mdb_get(w->txn, w->s->dbi_objects, &k, v);
    if (rc != 0)
        return rc;
    if (parse_record(v, hdr) != 0 || memcmp(hdr->group, group, EDGE_STORE_HASH_LEN) != 0)
        return MDB_NOTFOUND;
    return 0;
}

static int apply_delete_group(struct wtxn *w, edge_store_op_t *op, int *result)
{
    edge_store_t *s = w->s;
    MDB_cursor *cur;
    int rc;

    *result = 0;
    for (;;) {
        MDB_val k = {EDGE_STORE_HASH_LEN, op->hash}, d, v;
        uint8_t member[EDGE_STORE_HASH_LEN];
        struct record_hdr hdr;
        if ((rc = mdb_cursor_open(w->txn, s->dbi_groups, &cur)) != 0)
            return rc;
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET_KEY);
        if (rc == 0 && d.mv_size != EDGE_STORE_HASH_LEN)
            rc = mdb_cursor_del(cur, 0) == 0 ? -1 : EIO; /* not ours: drop it, go on */
        else if (rc == 0)
            memcpy(member, d.mv_data, sizeof(member));
        mdb_cursor_close(cur);
        if (rc == MDB_NOTFOUND)
            break;
        if (rc == -1)
            continue;
        if (rc != 0)
            return rc;
        if ((rc = get_member(w, op->hash, member, &v, &hdr)) == 0)
            rc = remove_object(w, member, &v, 0);
        if (rc != 0 && rc != MDB_NOTFOUND)
            return rc;
        if ((rc = index_del(w->txn, s->dbi_groups, op->hash, EDGE_STORE_HASH_LEN, member)) != 0)
            return rc;
    }
    return remove_at(w, op->hash);
}

struct member {
    uint8_t hash[EDGE_STORE_HASH_LEN];
    uint64_t fill_id;
};

static int cmp_member(const void *a, const void *b)
{
    uint64_t x = ((const struct member *)a)->fill_id, y = ((const struct member *)b)->fill_id;
    return x < y ? -1 : x > y;
}

static int apply_trim_group(struct wtxn *w, edge_store_op_t *op, int *result)
{
    edge_store_t *s = w->s;
    MDB_cursor *cur;
    MDB_val k = {EDGE_STORE_HASH_LEN, op->hash}, d;
    struct member *m = NULL;
    size_t n = 0, cap = 0;
    int rc;

    *result = 0;
    if ((rc = mdb_cursor_open(w->txn, s->dbi_groups, &cur)) != 0)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &d, MDB_SET_KEY); rc == 0; rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT_DUP)) {
        if (d.mv_size != EDGE_STORE_HASH_LEN)
            continue;
        if (n == cap) {
            cap = cap == 0 ? 16 : cap * 2;
            struct member *nm = realloc(m, cap * sizeof(*m));
            if (nm == NULL) {
                rc = ENOMEM;
                break;
            }
            m = nm;
        }
        memcpy(m[n].hash, d.mv_data, EDGE_STORE_HASH_LEN);
        m[n++].fill_id = 0;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        goto Exit;
    /* read the fill ids (after the walk: no write under an open cursor); drop dangling entries */
    size_t live = 0;
    for (size_t i = 0; i < n; ++i) {
        MDB_val v;
        struct record_hdr hdr;
        if ((rc = get_member(w, op->hash, m[i].hash, &v, &hdr)) == 0) {
            m[i].fill_id = hdr.fill_id;
            m[live++] = m[i];
        } else if (rc != MDB_NOTFOUND || (rc = index_del(w->txn, s->dbi_groups, op->hash, EDGE_STORE_HASH_LEN, m[i].hash)) != 0) {
            goto Exit;
        }
    }
    rc = 0;
    if (live <= op->max_members)
        goto Exit;
    qsort(m, live, sizeof(*m), cmp_member);
    for (size_t i = 0; i < live - op->max_members; ++i)
        if ((rc = remove_at(w, m[i].hash)) != 0)
            break;
Exit:
    free(m);
    return rc;
}

static int cursor_valid(const char *cursor)
{
    size_t len = cursor != NULL ? strnlen(cursor, EDGE_STORE_MAX_CURSOR_LEN + 1) : 0;
    return len != 0 && len <= EDGE_STORE_MAX_CURSOR_LEN;
}

/* Records the purge-stream cursor in the stats database, in the transaction of the op that carries it. */
static int put_cursor(struct wtxn *w, const char *cursor)
{
    MDB_val k = {13, "stream_cursor"}, v = {strlen(cursor), (void *)cursor};
    return mdb_put(w->txn, w->s->dbi_stats, &k, &v, 0);
}

static int apply_cursor(struct wtxn *w, edge_store_op_t *op, int *result)
{
    if (!cursor_valid(op->stream_cursor)) {
        *result = EDGE_STORE_EINVAL;
        return 0;
    }
    *result = 0;
    return put_cursor(w, op->stream_cursor);
}

static int apply_ban(struct wtxn *w, edge_store_op_t *op, int *result)
{
    edge_store_t *s = w->s;
    size_t len = op->ban_kind == EDGE_STORE_BAN_ALL ? 0 : op->ban_value_len;
    int rc;

    if ((op->stream_cursor != NULL && !cursor_valid(op->stream_cursor)) || op->ban_kind < EDGE_STORE_BAN_URL ||
        op->ban_kind > EDGE_STORE_BAN_ALL || (op->soft != 0 && op->soft != 1) ||
        (op->ban_kind != EDGE_STORE_BAN_ALL && (len == 0 || op->ban_value == NULL)) || len > EDGE_STORE_MAX_BAN_VALUE ||
        (op->ban_kind == EDGE_STORE_BAN_TAG && len > EDGE_STORE_MAX_TAG_LEN)) {
        *result = EDGE_STORE_EINVAL;
        return 0;
    }
    if (s->wbans_n == s->wbans_cap) {
        size_t cap = s->wbans_cap == 0 ? 16 : s->wbans_cap * 2;
        struct wban *nb = realloc(s->wbans, cap * sizeof(*nb));
        if (nb == NULL)
            return ENOMEM;
        s->wbans = nb;
        s->wbans_cap = cap;
    }
    char *value = malloc(len + 1);
    if (value == NULL)
        return ENOMEM;
    if (len != 0)
        memcpy(value, op->ban_value, len);
    value[len] = '\0';

    /* every fill id below the watermark was handed out before this point: those fills are covered */
    uint64_t id = w->st.max_ban_id + 1, watermark = peek_next_fill_id(s);
    struct ban_rec rec = {.magic = BAN_MAGIC, .version = FORMAT_VERSION, .kind = (uint8_t)op->ban_kind,
                          .soft = (uint8_t)op->soft, .watermark = watermark, .value_len = (uint32_t)len};
    uint8_t kbuf[8];
    put_be64(kbuf, id);
    MDB_val k = {sizeof(kbuf), kbuf}, v = {sizeof(rec) + len, NULL};
    if ((rc = mdb_put(w->txn, s->dbi_bans, &k, &v, MDB_RESERVE)) != 0) {
        free(value);
        return rc;
    }
    memcpy(v.mv_data, &rec, sizeof(rec));
    memcpy((char *)v.mv_data + sizeof(rec), value, len);
    if (op->stream_cursor != NULL && (rc = put_cursor(w, op->stream_cursor)) != 0) {
        free(value);
        return rc;
    }

    struct wban *b = &s->wbans[s->wbans_n++];
    memset(b, 0, sizeof(*b));
    b->v = (struct ban_view){.id = id, .watermark = watermark, .value = value, .value_len = (uint32_t)len,
                             .kind = (uint8_t)op->ban_kind, .soft = (uint8_t)op->soft};
    if (op->ban_kind == EDGE_STORE_BAN_URL)
        edge_store_hash(value, len, b->url_hash);
    s->bans_dirty = 1;
    w->st.max_ban_id = id;
    w->st.bans_applied += 1;
    /* fill ids stay above the watermark after a restart, even if none of them was ever written */
    note_fill_id(w, watermark - 1);
    op->ban_id = id;
    *result = 0;
    return 0;
}

static int apply_update_meta(struct wtxn *w, edge_store_op_t *op, int *result)
{
    edge_store_t *s = w->s;
    MDB_val k = {EDGE_STORE_HASH_LEN, op->hash}, v;
    struct record_hdr hdr;
    int rc;

    if (op->len > UINT32_MAX || (op->len != 0 && op->data == NULL)) {
        *result = EDGE_STORE_EINVAL;
        return 0;
    }
    *result = EDGE_STORE_NOTFOUND;
    if ((rc = mdb_get(w->txn, s->dbi_objects, &k, &v)) != 0)
        return rc == MDB_NOTFOUND ? 0 : rc;
    if (parse_record(&v, &hdr) != 0 || hdr.fill_id != op->fill_id)
        return 0; /* gone, corrupt, or replaced by a newer fill: never overwrite it */

    /* Soft purges applied before the revalidation started are answered by it; later ones still apply. */
    uint64_t cutoff = w->st.max_ban_id;
    if (op->started_fill_id != 0) {
        for (size_t i = 0; i < s->wbans_n; ++i) {
            if (s->wbans[i].v.watermark > op->started_fill_id) {
                cutoff = s->wbans[i].v.id - 1;
                break;
            }
        }
    }
    if (cutoff < hdr.revalidated_ban_id)
        cutoff = hdr.revalidated_ban_id;
    struct obj_view view = rec_view(&v, &hdr);
    int still_stale = s->wbans_n != 0 && writer_check_bans(s, hdr.fill_id, cutoff, &view) != BAN_NONE;

    size_t prefix = sizeof(hdr) + hdr.key_len + hdr.variant_len + hdr.tags_len + rec_inline_len(&hdr), old_len = v.mv_size;
    char *buf = malloc(prefix); /* the old record's page may be reused by the put */
    if (buf == NULL)
        return ENOMEM;
    memcpy(buf, v.mv_data, prefix);
    hdr.meta_len = (uint32_t)op->len;
    hdr.revalidated_ban_id = cutoff;
    if (!still_stale)
        hdr.flags &= ~REC_FLAG_STALE;
    memcpy(buf, &hdr, sizeof(hdr));
    v = (MDB_val){prefix + op->len, NULL};
    if ((rc = mdb_put(w->txn, s->dbi_objects, &k, &v, MDB_RESERVE)) == 0) {
        memcpy(v.mv_data, buf, prefix);
        if (op->len != 0)
            memcpy((char *)v.mv_data + prefix, op->data, op->len);
        w->st.live_bytes = sub_clamp(w->st.live_bytes, charge(s, EDGE_STORE_HASH_LEN, old_len));
        w->st.live_bytes += charge(s, EDGE_STORE_HASH_LEN, prefix + op->len);
        *result = 0;
    }
    free(buf);
    return rc;
}

static int apply_op(struct wtxn *w, edge_store_op_t *op, int *result)
{
    switch ((int)op->kind) {
    case EDGE_STORE_OP_CHUNK:
        return apply_chunk(w, op, result);
    case EDGE_STORE_OP_COMMIT:
        return apply_commit(w, op, result);
    case EDGE_STORE_OP_ABORT:
        *result = 0;
        clear_dropped(w->s, op->fill_id);
        return abort_fill(w, op->fill_id);
    case EDGE_STORE_OP_DELETE:
        return apply_delete(w, op, result);
    case EDGE_STORE_OP_DELETE_GROUP:
        return apply_delete_group(w, op, result);
    case EDGE_STORE_OP_TRIM_GROUP:
        return apply_trim_group(w, op, result);
    case EDGE_STORE_OP_BAN:
        return apply_ban(w, op, result);
    case EDGE_STORE_OP_UPDATE_META:
        return apply_update_meta(w, op, result);
    case EDGE_STORE_OP_CURSOR:
        return apply_cursor(w, op, result);
    case OP_BARRIER:
    case OP_IDLE:
        *result = 0;
        return 0;
    default:
        *result = EDGE_STORE_EINVAL;
        return 0;
    }
}

/* ---- eviction and sweep (writer thread) ---- */

/* Moves an object to the back of the main queue (from the small queue, or from the front of main):
 * rewrites its record with the new sequence number and REC_FLAG_MAIN. `frec` is its current entry. */
static int requeue(struct wtxn *w, int from_main, uint64_t old_seq, const struct fifo_rec *frec, const MDB_val *rec)
{
    edge_store_t *s = w->s;
    uint64_t new_seq = w->st.next_seq++;
    int rc;

    /* copy: the record lives in a page this transaction is about to modify */
    char *buf = malloc(rec->mv_size);
    if (buf == NULL)
        return ENOMEM;
    memcpy(buf, rec->mv_data, rec->mv_size);
    struct record_hdr hdr;
    memcpy(&hdr, buf, sizeof(hdr));
    hdr.fifo_seq = new_seq;
    hdr.flags |= REC_FLAG_MAIN;
    memcpy(buf, &hdr, sizeof(hdr));
    MDB_val k = {EDGE_STORE_HASH_LEN, (void *)frec->hash}, v = {rec->mv_size, buf};
    rc = mdb_put(w->txn, s->dbi_objects, &k, &v, 0);
    free(buf);
    if (rc != 0)
        return rc;
    if ((rc = queue_del(w, from_main, old_seq)) != 0)
        return rc;
    return queue_put(w, 1, new_seq, frec);
}

/**
 * Reads the oldest entry of a queue.
 * @return 0 with *seq and *frec, MDB_NOTFOUND when the queue is empty, -1 after dropping a malformed
 *         entry, or an LMDB error
 */
static int queue_head(struct wtxn *w, int main_q, uint64_t *seq, struct fifo_rec *frec)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_cursor_open(w->txn, main_q ? w->s->dbi_main : w->s->dbi_fifo, &cur)) != 0)
        return rc;
    if ((rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == 0) {
        if (k.mv_size == 8 && v.mv_size == sizeof(*frec)) {
            *seq = get_be64(k.mv_data);
            memcpy(frec, v.mv_data, sizeof(*frec));
        } else {
            rc = mdb_cursor_del(cur, 0); /* not ours: drop it (uncharged: it was never counted in main_bytes) */
            rc = rc != 0 ? rc : -1;
        }
    }
    mdb_cursor_close(cur);
    return rc;
}

/**
 * One S3-FIFO step (Yang et al., SOSP'23) on the oldest entry of a queue. The small queue is examined
 * while it holds more than SMALL_PCT% of the capacity (or main is empty), else the main queue.
 * - Small: an object hit at least MOVE_MIN_FREQ times since it came in moves to main; otherwise it is
 *   evicted and its hash goes to the ghost set.
 * - Main: an object with a non-zero counter goes to the back of main with its counter minus one;
 *   otherwise it is evicted.
 * @param[in] plain  evict the object examined whatever its counter (the map is too full for moves)
 * @param[out] empty  set when both queues are empty
 */
static int evict_one(struct wtxn *w, int plain, int *empty)
{
    edge_store_t *s = w->s;
    uint64_t seq, small_bytes = sub_clamp(w->st.live_bytes, w->st.main_bytes);
    struct fifo_rec frec;
    int main_q = small_bytes <= s->capacity_bytes / 100 * SMALL_PCT, rc;

    *empty = 0;
    rc = queue_head(w, main_q, &seq, &frec);
    if (rc == MDB_NOTFOUND) {
        main_q = !main_q;
        rc = queue_head(w, main_q, &seq, &frec);
    }
    if (rc == MDB_NOTFOUND) {
        *empty = 1;
        return 0;
    }
    if (rc == -1)
        return 0;
    if (rc != 0)
        return rc;

    MDB_val ok = {EDGE_STORE_HASH_LEN, frec.hash}, ov;
    struct record_hdr hdr;
    rc = mdb_get(w->txn, s->dbi_objects, &ok, &ov);
    if (rc == MDB_NOTFOUND || (rc == 0 && (parse_record(&ov, &hdr) != 0 || hdr.fill_id != frec.fill_id || hdr.fifo_seq != seq ||
                                           ((hdr.flags & REC_FLAG_MAIN) != 0) != main_q))) {
        /* a stale entry (its object was replaced under a corrupt record, or is corrupt itself) */
        if (rc == 0 && parse_record(&ov, &hdr) != 0) {
            log_error("CORRUPT op=evict detail=\"object record fails validation, removed\"");
            if ((rc = remove_object(w, frec.hash, &ov, 0)) != 0)
                return rc;
            w->st.evictions += 1;
        }
        return queue_del(w, main_q, seq);
    }
    if (rc != 0)
        return rc;
    unsigned freq = plain ? 0 : freq_get(s, frec.fill_id);
    if (!main_q && freq >= MOVE_MIN_FREQ) {
        w->st.promoted += 1;
        return requeue(w, 0, seq, &frec, &ov);
    }
    if (main_q && freq > 0) {
        freq_set(s, frec.fill_id, freq - 1);
        return requeue(w, 1, seq, &frec, &ov);
    }
    if ((rc = remove_object(w, frec.hash, &ov, 0)) != 0)
        return rc;
    if (!main_q)
        ghost_add(s, frec.hash);
    w->st.evictions += 1;
    return 0;
}

/**
 * Evicts in its own bounded transactions until live bytes are at most `target`, the FIFO is empty,
 * or the pass has examined enough entries.
 * @return 0, or the LMDB error that stopped it
 */
static int evict(edge_store_t *s, uint64_t target)
{
    /* an object can be examined once in the small queue and FREQ_MAX + 1 times in main before it goes */
    uint64_t max_examined = (s->w.objects + 64) * (FREQ_MAX + 2);
    uint64_t examined = 0;
    unsigned per_txn = EVICT_PER_TXN;
    int empty = 0, plain = 0, rc = 0;

    if (max_examined > EVICT_MAX_EXAMINED)
        max_examined = EVICT_MAX_EXAMINED;
    while (!empty && s->w.live_bytes > target && examined < max_examined) {
        struct wtxn w;
        if ((rc = wtxn_begin(s, &w)) != 0)
            break;
        for (unsigned n = 0; n < per_txn && w.st.live_bytes > target && examined < max_examined; ++n) {
            ++examined;
            if ((rc = evict_one(&w, plain, &empty)) != 0 || empty)
                break;
        }
        if (rc != 0)
            mdb_txn_abort(w.txn);
        else
            rc = wtxn_commit(&w);
        if (rc == MDB_MAP_FULL && per_txn > 1) {
            /* Moves take pages, and the pages deletes free are reusable only two transactions later: with
             * the map that full, evict in smaller transactions without moving anything. */
            if (!plain)
                log_error("EVICT_FULL live_bytes=%llu detail=\"map full while evicting, evicting without moves\"",
                          (unsigned long long)s->w.live_bytes);
            plain = 1;
            per_txn = per_txn / 8 != 0 ? per_txn / 8 : 1;
            empty = 0;
            rc = 0;
            continue;
        }
        if (rc != 0)
            break;
    }
    if (rc != 0)
        log_error("EVICT_ERR detail=\"%s\" live_bytes=%llu", mdb_strerror(rc), (unsigned long long)s->w.live_bytes);
    return rc;
}

/* A transaction that only rewrites the stats record: pages freed by transaction N can be reused from
 * transaction N+2 on (LMDB keeps the previous snapshot), so this lets the retry of a batch use them. */
static void advance_txn(edge_store_t *s)
{
    struct wtxn w;
    if (wtxn_begin(s, &w) == 0)
        wtxn_commit(&w);
}

static void finish_barriers(edge_store_op_t *list)
{
    while (list != NULL) {
        edge_store_op_t *next = list->_next;
        list->on_done(list, 0);
        list = next;
    }
}

/* One bounded step of the sweep of fills left pending by an earlier run. */
static void sweep_step(edge_store_t *s)
{
    struct wtxn w;
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t fill_id = 0;
    int all_gone = 0, rc;

    if ((rc = wtxn_begin(s, &w)) != 0)
        goto Error;
    if ((rc = mdb_cursor_open(w.txn, s->dbi_pending, &cur)) != 0) {
        mdb_txn_abort(w.txn);
        goto Error;
    }
    rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
    if (rc == 0 && k.mv_size == FILL_KEY_LEN)
        fill_id = get_be64(k.mv_data);
    else if (rc == 0)
        rc = mdb_cursor_del(cur, 0); /* not ours */
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND || (rc == 0 && fill_id >= s->sweep_limit && fill_id != 0)) {
        mdb_txn_abort(w.txn);
        goto Done;
    }
    if (rc == 0 && fill_id != 0) {
        if ((rc = delete_chunks(&w, fill_id, SWEEP_CHUNKS_PER_TXN, &all_gone)) == 0 && all_gone) {
            uint8_t kbuf[FILL_KEY_LEN];
            put_be64(kbuf, fill_id);
            if ((rc = del_ignore_missing(w.txn, s->dbi_pending, kbuf, sizeof(kbuf))) == 0)
                w.st.swept_fills += 1;
        }
    }
    if (rc != 0) {
        mdb_txn_abort(w.txn);
        goto Error;
    }
    if ((rc = wtxn_commit(&w)) != 0)
        goto Error;
    return;

Error:
    log_error("SWEEP_ERR detail=\"%s\", unfinished fills are left for the next open", mdb_strerror(rc));
Done:
    s->sweeping = 0;
    edge_store_op_t *list = s->deferred_barriers;
    s->deferred_barriers = NULL;
    finish_barriers(list);
}

/* ---- ban sweeps (writer thread) ---- */

/* Applies ban `b` to the object at `hash`, if it exists, is older than the ban and matches it. */
static int sweep_candidate(struct wtxn *w, const struct wban *b, const uint8_t *hash)
{
    edge_store_t *s = w->s;
    MDB_val k = {EDGE_STORE_HASH_LEN, (void *)hash}, v;
    struct record_hdr hdr;
    int rc = mdb_get(w->txn, s->dbi_objects, &k, &v);

    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    if (parse_record(&v, &hdr) != 0 || hdr.fill_id >= b->v.watermark)
        return 0; /* a corrupt record is a miss already; eviction removes it */
    struct obj_view view = rec_view(&v, &hdr);
    if (!ban_matches(&b->v, &view))
        return 0;
    if (!b->v.soft) {
        if ((rc = remove_object(w, hash, &v, 0)) == 0)
            w->st.swept_objects += 1;
        return rc;
    }
    if ((hdr.flags & REC_FLAG_STALE) || hdr.revalidated_ban_id >= b->v.id)
        return 0;
    /* copy: the record lives in a page this transaction is about to modify */
    char *buf = malloc(v.mv_size);
    if (buf == NULL)
        return ENOMEM;
    memcpy(buf, v.mv_data, v.mv_size);
    hdr.flags |= REC_FLAG_STALE;
    memcpy(buf, &hdr, sizeof(hdr));
    MDB_val nv = {v.mv_size, buf};
    if ((rc = mdb_put(w->txn, s->dbi_objects, &k, &nv, 0)) == 0)
        w->st.swept_objects += 1;
    free(buf);
    return rc;
}

/**
 * Finds the hash after b->pos: among the keys of "objects" (index_key NULL) or the members of
 * `index_key` in an index database.
 * @return 0 with *found set, or an LMDB error
 */
static int next_candidate(struct wtxn *w, MDB_dbi dbi, const void *index_key, size_t index_key_len, const struct wban *b,
                          uint8_t *out, int *found)
{
    MDB_cursor *cur;
    MDB_val k, d;
    int rc;

    *found = 0;
    if ((rc = mdb_cursor_open(w->txn, dbi, &cur)) != 0)
        return rc;
    if (index_key != NULL) {
        k = (MDB_val){index_key_len, (void *)index_key};
        d = (MDB_val){EDGE_STORE_HASH_LEN, (void *)b->pos};
        rc = mdb_cursor_get(cur, &k, &d, MDB_GET_BOTH_RANGE);
    } else {
        k = (MDB_val){EDGE_STORE_HASH_LEN, (void *)b->pos};
        rc = mdb_cursor_get(cur, &k, &d, MDB_SET_RANGE);
    }
    const MDB_val *h = index_key != NULL ? &d : &k;
    if (rc == 0 && b->have_pos && h->mv_size == EDGE_STORE_HASH_LEN && memcmp(h->mv_data, b->pos, EDGE_STORE_HASH_LEN) == 0)
        rc = mdb_cursor_get(cur, &k, &d, index_key != NULL ? MDB_NEXT_DUP : MDB_NEXT);
    if (rc == 0 && h->mv_size == EDGE_STORE_HASH_LEN) {
        memcpy(out, h->mv_data, EDGE_STORE_HASH_LEN);
        *found = 1;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc; /* a key of another size is not ours: the walk ends there */
}

/* One bounded step of the sweep of `b`. @param[out] done  set when the sweep is complete */
static int sweep_ban(struct wtxn *w, struct wban *b, int *done)
{
    edge_store_t *s = w->s;
    int rc, found;

    *done = 0;
    if (b->v.kind == EDGE_STORE_BAN_URL && !b->did_primary) {
        if ((rc = sweep_candidate(w, b, b->url_hash)) != 0)
            return rc;
        b->did_primary = 1;
    }
    for (unsigned n = 0; n < SWEEP_BAN_PER_STEP; ++n) {
        uint8_t hash[EDGE_STORE_HASH_LEN];
        switch (b->v.kind) {
        case EDGE_STORE_BAN_URL:
            rc = next_candidate(w, s->dbi_groups, b->url_hash, EDGE_STORE_HASH_LEN, b, hash, &found);
            break;
        case EDGE_STORE_BAN_TAG:
            rc = next_candidate(w, s->dbi_tags, b->v.value, b->v.value_len, b, hash, &found);
            break;
        default:
            rc = next_candidate(w, s->dbi_objects, NULL, 0, b, hash, &found);
            break;
        }
        if (rc != 0)
            return rc;
        if (!found) {
            *done = 1;
            return 0;
        }
        if ((rc = sweep_candidate(w, b, hash)) != 0)
            return rc;
        memcpy(b->pos, hash, sizeof(b->pos));
        b->have_pos = 1;
    }
    return 0;
}

static int on_reader_line(const char *msg, void *ctx)
{
    uint64_t *oldest = ctx;
    unsigned long long txnid;
    int pid;
    size_t tid;
    /* "pid thread txnid", or "pid thread -" for an idle slot; the header line does not parse */
    if (sscanf(msg, "%d %zx %llu", &pid, &tid, &txnid) == 3 && txnid < *oldest)
        *oldest = txnid;
    return 0;
}

/* @return the snapshot txn id of the oldest open read txn, or UINT64_MAX */
static uint64_t oldest_reader(edge_store_t *s)
{
    uint64_t oldest = UINT64_MAX;
    mdb_reader_list(s->env, on_reader_line, &oldest);
    return oldest;
}

/**
 * A swept ban can retire when no fill below its watermark is live (no COMMIT can need the check)
 * and no read txn has a snapshot older than the sweep's last commit (such a reader still sees the
 * objects the sweep deleted or marked, and needs the ban to hide them).
 */
static int can_retire(const struct wban *b, uint64_t min_live, uint64_t oldest)
{
    return b->swept && b->v.watermark <= min_live && oldest >= b->swept_txnid;
}

/* Whether the writer has ban work it can do now: a sweep, or a retirement. *blocked: a swept ban
 * waits for an old reader (readers do not wake the writer: it polls). */
static int ban_work_ex(edge_store_t *s, int *blocked)
{
    int swept = 0;
    *blocked = 0;
    if (s->ban_backoff)
        return 0;
    for (size_t i = 0; i < s->wbans_committed; ++i) {
        if (!s->wbans[i].swept)
            return 1;
        swept = 1;
    }
    if (!swept)
        return 0;
    uint64_t min_live = min_live_fill(s), oldest = oldest_reader(s);
    for (size_t i = 0; i < s->wbans_committed; ++i) {
        if (can_retire(&s->wbans[i], min_live, oldest))
            return 1;
        if (s->wbans[i].swept && s->wbans[i].v.watermark <= min_live)
            *blocked = 1;
    }
    return 0;
}

static int ban_work(edge_store_t *s)
{
    int blocked;
    return ban_work_ex(s, &blocked);
}

/* One transaction: a bounded step of the oldest unfinished sweep, then the retirement of every ban
 * whose sweep is done and below whose watermark no fill is live (no COMMIT can need the check). */
static void ban_step(edge_store_t *s)
{
    struct wtxn w;
    struct wban *b = NULL, saved;
    int done = 0, rc;

    if ((rc = wtxn_begin(s, &w)) != 0)
        goto Error;
    for (size_t i = 0; i < s->wbans_committed && b == NULL; ++i)
        if (!s->wbans[i].swept)
            b = &s->wbans[i];
    if (b != NULL) {
        saved = *b;
        if ((rc = sweep_ban(&w, b, &done)) != 0) {
            mdb_txn_abort(w.txn);
            *b = saved;
            goto Error;
        }
    }
    uint64_t min_live = min_live_fill(s), oldest = oldest_reader(s);
    for (size_t i = 0; i < s->wbans_committed && rc == 0; ++i) {
        struct wban *r = &s->wbans[i];
        if (!can_retire(r, min_live, oldest))
            continue; /* one completed by this txn waits for the next step: readers must see this commit */
        uint8_t kbuf[8];
        put_be64(kbuf, r->v.id);
        if ((rc = del_ignore_missing(w.txn, s->dbi_bans, kbuf, sizeof(kbuf))) == 0) {
            r->retiring = 1;
            s->bans_dirty = 1;
        }
    }
    if (rc != 0) {
        mdb_txn_abort(w.txn);
        if (b != NULL)
            *b = saved;
        goto Error;
    }
    uint64_t txnid = mdb_txn_id(w.txn);
    if ((rc = wtxn_commit(&w)) != 0) {
        if (b != NULL)
            *b = saved; /* bans_settle did not run: b still points at it */
        goto Error;
    }
    /* b may have moved (bans_settle compacts the list): mark by id */
    if (b != NULL && done) {
        for (size_t i = 0; i < s->wbans_n; ++i) {
            if (s->wbans[i].v.id == saved.v.id) {
                s->wbans[i].swept = 1;
                s->wbans[i].swept_txnid = txnid;
            }
        }
    }
    return;

Error:
    log_error("BAN_SWEEP_ERR detail=\"%s\", retried after the next batch", mdb_strerror(rc));
    s->ban_backoff = 1;
}

/* ---- batches (writer thread) ---- */

static int try_batch(edge_store_t *s, edge_store_op_t **ops, size_t n, int *results)
{
    struct wtxn w;
    int rc;

    if ((rc = wtxn_begin(s, &w)) != 0)
        return rc;
    for (size_t i = 0; i < n; ++i) {
        if ((rc = apply_op(&w, ops[i], &results[i])) != 0) {
            mdb_txn_abort(w.txn);
            return rc;
        }
    }
    return wtxn_commit(&w);
}

/* The map stayed full: drop every fill this batch writes, still apply its ABORTs and DELETEs. */
static void drop_batch(edge_store_t *s, edge_store_op_t **ops, size_t n, int *results)
{
    struct wtxn w;
    int rc;

    if ((rc = wtxn_begin(s, &w)) != 0)
        goto Error;
    for (size_t i = 0; i < n; ++i) {
        edge_store_op_t *op = ops[i];
        if (op->kind == EDGE_STORE_OP_CHUNK || op->kind == EDGE_STORE_OP_COMMIT) {
            results[i] = EDGE_STORE_EFULL;
            if (!is_dropped(s, op->fill_id)) {
                if ((rc = abort_fill(&w, op->fill_id)) != 0)
                    break;
                set_dropped(s, op->fill_id);
                w.st.dropped_fills += 1;
                log_error("EFULL fill_id=%llu detail=\"map full after eviction, fill dropped\"", (unsigned long long)op->fill_id);
            }
        } else if ((rc = apply_op(&w, op, &results[i])) != 0) {
            break;
        }
    }
    if (rc != 0) {
        mdb_txn_abort(w.txn);
        goto Error;
    }
    if ((rc = wtxn_commit(&w)) != 0)
        goto Error;
    return;

Error:
    log_error("EFULL detail=\"%s while dropping fills\"", mdb_strerror(rc));
    for (size_t i = 0; i < n; ++i) {
        if (ops[i]->kind == EDGE_STORE_OP_CHUNK || ops[i]->kind == EDGE_STORE_OP_COMMIT) {
            results[i] = EDGE_STORE_EFULL;
            set_dropped(s, ops[i]->fill_id);
        } else {
            results[i] = EDGE_STORE_EIO;
        }
    }
}

static uint64_t batch_charge(edge_store_t *s, edge_store_op_t **ops, size_t n)
{
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
        if (ops[i]->kind == EDGE_STORE_OP_CHUNK)
            total += charge(s, CHUNK_KEY_LEN, ops[i]->len);
        else if (ops[i]->kind == EDGE_STORE_OP_COMMIT)
            total += charge(s, EDGE_STORE_HASH_LEN, sizeof(struct record_hdr) + ops[i]->key_len + ops[i]->variant_len +
                                                        ops[i]->num_tags * 2 + ops[i]->len);
    }
    return total;
}

static uint64_t evict_high(edge_store_t *s)
{
    return s->capacity_bytes / 100 * EVICT_HIGH_PCT;
}

static uint64_t evict_low(edge_store_t *s)
{
    return s->capacity_bytes / 100 * EVICT_LOW_PCT;
}

static void run_batch(edge_store_t *s, edge_store_op_t **ops, size_t n)
{
    int results[BATCH_MAX_OPS];
    int rc = try_batch(s, ops, n, results), map_full = 0;

    if (rc == MDB_MAP_FULL) {
        map_full = 1;
        __atomic_fetch_add(&s->pub.map_full, 1, __ATOMIC_RELAXED);
        /* The map holds fewer live bytes than the budget says: overflow values need runs of contiguous
         * free pages, and single-page allocations fragment the free list. Learn the real capacity, so that
         * eviction runs before the next MAP_FULL rather than after it. */
        uint64_t learnt = s->w.live_bytes + batch_charge(s, ops, n) / 2;
        if (learnt < s->budget_bytes / 2)
            learnt = s->budget_bytes / 2;
        /* free the batch's size plus a tenth of the budget, then retry once */
        uint64_t want = batch_charge(s, ops, n) + s->budget_bytes / 10;
        uint64_t target = sub_clamp(s->w.live_bytes, want);
        if (target > evict_low(s))
            target = evict_low(s);
        log_error("MAP_FULL live_bytes=%llu detail=\"evicting to %llu and retrying the batch\"",
                  (unsigned long long)s->w.live_bytes, (unsigned long long)target);
        evict(s, target);
        advance_txn(s);
        rc = try_batch(s, ops, n, results);
        if (rc == MDB_MAP_FULL) {
            /* the batch alone is too big for the map: that says nothing of fragmentation */
            drop_batch(s, ops, n, results);
            rc = 0;
        } else if (rc == 0 && learnt < s->capacity_bytes) {
            s->capacity_bytes = learnt;
            log_error("CAPACITY bytes=%llu detail=\"map fragmented, evicting earlier\"", (unsigned long long)learnt);
        }
    }
    if (rc != 0) {
        log_error("WRITE_ERR detail=\"%s\" ops=%zu", mdb_strerror(rc), n);
        for (size_t i = 0; i < n; ++i)
            results[i] = EDGE_STORE_EIO;
    }

    /* The fills these ops finish can no longer commit: bans may retire (before on_done, which may free the op). */
    for (size_t i = 0; i < n; ++i) {
        if (ops[i]->kind == EDGE_STORE_OP_COMMIT || ops[i]->kind == EDGE_STORE_OP_ABORT)
            release_fill(s, ops[i]->fill_id);
        else if (ops[i]->kind == EDGE_STORE_OP_UPDATE_META && ops[i]->started_fill_id != 0)
            release_fill(s, ops[i]->started_fill_id);
    }
    s->ban_backoff = 0;

    edge_store_op_t *deferred = NULL;
    for (size_t i = 0; i < n; ++i) {
        if (ops[i]->kind == OP_IDLE) {
            ops[i]->_next = s->idle_barriers;
            s->idle_barriers = ops[i];
            continue;
        }
        if (ops[i]->kind == OP_BARRIER && s->sweeping) {
            /* flush also waits for the sweep started at open */
            ops[i]->_next = deferred;
            deferred = ops[i];
            continue;
        }
        if (ops[i]->on_done != NULL)
            ops[i]->on_done(ops[i], results[i]);
    }
    while (deferred != NULL) {
        edge_store_op_t *next = deferred->_next;
        deferred->_next = s->deferred_barriers;
        s->deferred_barriers = deferred;
        deferred = next;
    }

    if (s->w.live_bytes > evict_high(s)) {
        if (evict(s, evict_low(s)) == 0)
            advance_txn(s); /* so that the next batch can use the pages just freed */
        /* probe upwards again slowly, in case the fragmentation went away */
        if (!map_full && s->capacity_bytes < s->budget_bytes) {
            s->capacity_bytes += s->budget_bytes / 1000;
            if (s->capacity_bytes > s->budget_bytes)
                s->capacity_bytes = s->budget_bytes;
        }
    }
}

static void *writer_main(void *arg)
{
    edge_store_t *s = arg;
    edge_store_op_t *ops[BATCH_MAX_OPS];

    /* the budget may have shrunk since the last run */
    if (s->w.live_bytes > evict_high(s))
        evict(s, evict_low(s));

    for (;;) {
        size_t n = 0, bytes = 0;
        pthread_mutex_lock(&s->mutex);
        int blocked = 0;
        while (s->head == NULL && !s->closing && !s->sweeping && !ban_work_ex(s, &blocked)) {
            if (!blocked) {
                pthread_cond_wait(&s->cond, &s->mutex);
                continue;
            }
            /* a ban waits for an old read txn to end: look again soon */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += BAN_READER_POLL_MS * 1000000L;
            if (ts.tv_nsec >= 1000000000L) {
                ts.tv_sec += 1;
                ts.tv_nsec -= 1000000000L;
            }
            pthread_cond_timedwait(&s->cond, &s->mutex, &ts);
        }
        if (s->head == NULL && s->closing) {
            pthread_mutex_unlock(&s->mutex);
            break;
        }
        while (s->head != NULL && n < BATCH_MAX_OPS && (n == 0 || bytes + s->head->len + s->head->key_len <= BATCH_MAX_BYTES)) {
            edge_store_op_t *op = s->head;
            s->head = op->_next;
            if (s->head == NULL)
                s->tail = NULL;
            op->_next = NULL;
            bytes += op->len + op->key_len;
            ops[n++] = op;
        }
        pthread_mutex_unlock(&s->mutex);

        if (n != 0) {
            uint64_t chunk_bytes = 0;
            for (size_t i = 0; i != n; ++i)
                if (ops[i]->kind == EDGE_STORE_OP_CHUNK)
                    chunk_bytes += ops[i]->len;
            run_batch(s, ops, n); /* the ops may be freed by their on_done from here on */
            __atomic_fetch_sub(&s->queued_bytes, chunk_bytes, __ATOMIC_RELAXED);
        }
        if (s->sweeping)
            sweep_step(s);
        else if (ban_work(s))
            ban_step(s);
        if (s->idle_barriers != NULL && !s->sweeping && !ban_work(s)) {
            edge_store_op_t *list = s->idle_barriers;
            s->idle_barriers = NULL;
            finish_barriers(list);
        }
    }

    /* closing with the sweep unfinished: the rest is swept at the next open */
    edge_store_op_t *list = s->deferred_barriers;
    s->deferred_barriers = NULL;
    finish_barriers(list);
    list = s->idle_barriers;
    s->idle_barriers = NULL;
    finish_barriers(list);
    return NULL;
}

/* ---- open ---- */

static uint64_t last_fill_id(MDB_txn *txn, MDB_dbi dbi, size_t key_len)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint64_t id = 0;

    if (mdb_cursor_open(txn, dbi, &cur) != 0)
        return 0;
    if (mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 && k.mv_size == key_len)
        id = get_be64(k.mv_data);
    mdb_cursor_close(cur);
    return id;
}

/* Rebuilds the stats record by a scan, when it is missing or fails validation. */
static int recount(edge_store_t *s, MDB_txn *txn, struct wstate *st)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    st->live_bytes = st->objects = 0;
    if ((rc = mdb_cursor_open(txn, s->dbi_objects, &cur)) != 0)
        return rc;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct record_hdr hdr;
        st->live_bytes += charge(s, k.mv_size, v.mv_size);
        st->objects += 1;
        if (parse_record(&v, &hdr) == 0 && hdr.fill_id > st->max_fill_id)
            st->max_fill_id = hdr.fill_id;
    }
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    if ((rc = mdb_cursor_open(txn, s->dbi_chunks, &cur)) != 0)
        return rc;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0)
        st->live_bytes += charge(s, k.mv_size, v.mv_size);
    mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND)
        return rc;
    st->main_bytes = 0;
    if ((rc = mdb_cursor_open(txn, s->dbi_main, &cur)) != 0)
        return rc;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct fifo_rec frec;
        if (v.mv_size == sizeof(frec)) {
            memcpy(&frec, v.mv_data, sizeof(frec));
            st->main_bytes += frec.charge;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? 0 : rc;
}

/* Loads the live bans recorded by an earlier run; their sweeps start over. A corrupt record is dropped. */
static int load_bans(edge_store_t *s, MDB_txn *txn)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int rc;

    if ((rc = mdb_cursor_open(txn, s->dbi_bans, &cur)) != 0)
        return rc;
    while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
        struct ban_rec rec;
        if (k.mv_size == 8 && v.mv_size >= sizeof(rec))
            memcpy(&rec, v.mv_data, sizeof(rec));
        if (k.mv_size != 8 || v.mv_size < sizeof(rec) || rec.magic != BAN_MAGIC || rec.version != FORMAT_VERSION ||
            rec.kind < EDGE_STORE_BAN_URL || rec.kind > EDGE_STORE_BAN_ALL || rec.soft > 1 ||
            v.mv_size != sizeof(rec) + rec.value_len || rec.value_len > EDGE_STORE_MAX_BAN_VALUE) {
            log_error("CORRUPT op=open detail=\"ban record fails validation, dropped\"");
            if ((rc = mdb_cursor_del(cur, 0)) != 0)
                break;
            continue;
        }
        if (s->wbans_n == s->wbans_cap) {
            size_t cap = s->wbans_cap == 0 ? 16 : s->wbans_cap * 2;
            struct wban *nb = realloc(s->wbans, cap * sizeof(*nb));
            if (nb == NULL) {
                rc = ENOMEM;
                break;
            }
            s->wbans = nb;
            s->wbans_cap = cap;
        }
        char *value = malloc(rec.value_len + 1);
        if (value == NULL) {
            rc = ENOMEM;
            break;
        }
        memcpy(value, (const char *)v.mv_data + sizeof(rec), rec.value_len);
        value[rec.value_len] = '\0';
        struct wban *b = &s->wbans[s->wbans_n++];
        memset(b, 0, sizeof(*b));
        b->v = (struct ban_view){.id = get_be64(k.mv_data), .watermark = rec.watermark, .value = value,
                                 .value_len = rec.value_len, .kind = rec.kind, .soft = rec.soft};
        if (rec.kind == EDGE_STORE_BAN_URL)
            edge_store_hash(value, rec.value_len, b->url_hash);
    }
    mdb_cursor_close(cur);
    s->wbans_committed = s->wbans_n;
    return rc == MDB_NOTFOUND ? 0 : rc;
}

static void free_bans(edge_store_t *s)
{
    for (size_t i = 0; i < s->wbans_n; ++i)
        free((void *)s->wbans[i].v.value);
    free(s->wbans);
    s->wbans = NULL;
    s->wbans_n = s->wbans_cap = s->wbans_committed = 0;
}

static int open_dbs(edge_store_t *s, struct wstate *st, int *has_pending)
{
    MDB_txn *txn;
    MDB_val k = {5, "stats"}, v;
    int rc;

    if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
        return rc;
    if ((rc = mdb_dbi_open(txn, "objects", MDB_CREATE, &s->dbi_objects)) != 0 ||
        (rc = mdb_dbi_open(txn, "chunks", MDB_CREATE, &s->dbi_chunks)) != 0 ||
        (rc = mdb_dbi_open(txn, "pending", MDB_CREATE, &s->dbi_pending)) != 0 ||
        (rc = mdb_dbi_open(txn, "fifo", MDB_CREATE, &s->dbi_fifo)) != 0 ||
        (rc = mdb_dbi_open(txn, "fifo_main", MDB_CREATE, &s->dbi_main)) != 0 ||
        (rc = mdb_dbi_open(txn, "stats", MDB_CREATE, &s->dbi_stats)) != 0 ||
        (rc = mdb_dbi_open(txn, "groups", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &s->dbi_groups)) != 0 ||
        (rc = mdb_dbi_open(txn, "tags", MDB_CREATE | MDB_DUPSORT | MDB_DUPFIXED, &s->dbi_tags)) != 0 ||
        (rc = mdb_dbi_open(txn, "bans", MDB_CREATE, &s->dbi_bans)) != 0)
        goto Error;

    memset(st, 0, sizeof(*st));
    rc = mdb_get(txn, s->dbi_stats, &k, &v);
    struct stats_rec rec;
    if (rc == 0 && v.mv_size == sizeof(rec) && (memcpy(&rec, v.mv_data, sizeof(rec)), rec.magic == STATS_MAGIC) &&
        rec.version == FORMAT_VERSION) {
        st->live_bytes = rec.live_bytes;
        st->objects = rec.objects;
        st->max_fill_id = rec.max_fill_id;
        st->max_ban_id = rec.max_ban_id;
        st->main_bytes = rec.main_bytes < rec.live_bytes ? rec.main_bytes : rec.live_bytes;
    } else if (rc == 0 || rc == MDB_NOTFOUND) {
        int corrupt = rc == 0;
        MDB_stat ms;
        if ((rc = mdb_stat(txn, s->dbi_objects, &ms)) != 0)
            goto Error;
        if (corrupt || ms.ms_entries != 0) {
            log_error("RECOUNT path=%s detail=\"stats record missing or corrupt, scanning\"", s->path);
            if ((rc = recount(s, txn, st)) != 0)
                goto Error;
        }
    } else {
        goto Error;
    }

    /* fill ids: above any chunk, pending fill or object ever recorded, without a scan */
    uint64_t id = last_fill_id(txn, s->dbi_chunks, CHUNK_KEY_LEN);
    if (id > st->max_fill_id)
        st->max_fill_id = id;
    id = last_fill_id(txn, s->dbi_pending, FILL_KEY_LEN);
    if (id > st->max_fill_id)
        st->max_fill_id = id;
    st->next_seq = last_fill_id(txn, s->dbi_fifo, 8) + 1; /* the same big-endian 8-byte key */
    id = last_fill_id(txn, s->dbi_main, 8) + 1;                /* one sequence for both queues */
    if (id > st->next_seq)
        st->next_seq = id;
    id = last_fill_id(txn, s->dbi_bans, 8); /* ban ids: the same big-endian 8-byte key */
    if (id > st->max_ban_id)
        st->max_ban_id = id;
    if ((rc = load_bans(s, txn)) != 0)
        goto Error;

    MDB_stat ms;
    if ((rc = mdb_stat(txn, s->dbi_pending, &ms)) != 0)
        goto Error;
    *has_pending = ms.ms_entries != 0;
    return mdb_txn_commit(txn);

Error:
    mdb_txn_abort(txn);
    return rc;
}

/* ---- public API ---- */

edge_store_t *edge_store_open(const edge_store_settings_t *settings, char *err, size_t errlen)
{
    edge_store_t *s;
    int rc, has_pending = 0;
    long psz = sysconf(_SC_PAGESIZE);

    if (settings->path == NULL || settings->path[0] == '\0') {
        snprintf(err, errlen, "store: no path given");
        return NULL;
    }
    if (psz <= 0)
        psz = 4096;
    if (settings->max_size_bytes < 64 * (uint64_t)psz) {
        snprintf(err, errlen, "store %s: max size %llu is below the minimum of %llu bytes", settings->path,
                 (unsigned long long)settings->max_size_bytes, 64 * (unsigned long long)psz);
        return NULL;
    }
    if (mkdir(settings->path, 0700) != 0 && errno != EEXIST) {
        snprintf(err, errlen, "store %s: cannot create the directory: %s", settings->path, strerror(errno));
        return NULL;
    }
    /* aligned: the txn pool heads sit on cache lines of their own */
    if ((s = aligned_alloc(_Alignof(edge_store_t), sizeof(*s))) != NULL)
        memset(s, 0, sizeof(*s));
    if (s == NULL || (s->path = strdup(settings->path)) == NULL) {
        free(s);
        snprintf(err, errlen, "store %s: out of memory", settings->path);
        return NULL;
    }
    s->instance = __atomic_add_fetch(&store_instances, 1, __ATOMIC_RELAXED);
    s->page_size = (size_t)psz;
    /* LMDB's me_nodemax: a node bigger than this goes to overflow pages */
    s->node_max = (((s->page_size - 16) / 2) & ~(size_t)1) - 2;
    s->budget_bytes = settings->max_size_bytes / s->page_size * s->page_size;
    s->capacity_bytes = s->budget_bytes;
    s->freq_bits = table_bits(s->budget_bytes, FREQ_SLOTS_MIN, FREQ_SLOTS_MAX);
    unsigned ghost_bits = table_bits(s->budget_bytes, GHOST_SLOTS_MIN, GHOST_SLOTS_MAX);
    s->ghost_mask = ((size_t)1 << ghost_bits) / GHOST_WAYS - 1;
    s->freq = calloc((size_t)1 << s->freq_bits, 1);
    s->ghost = calloc((size_t)1 << ghost_bits, sizeof(*s->ghost));
    if (s->freq == NULL || s->ghost == NULL) {
        rc = ENOMEM;
        goto Error;
    }

    unsigned readers = settings->max_readers < MIN_READERS ? MIN_READERS : settings->max_readers;
    if ((rc = mdb_env_create(&s->env)) != 0) {
        s->env = NULL;
        goto Error;
    }
    if ((rc = mdb_env_set_maxdbs(s->env, 16)) != 0 || (rc = mdb_env_set_mapsize(s->env, (size_t)s->budget_bytes)) != 0 ||
        (rc = mdb_env_set_maxreaders(s->env, readers)) != 0)
        goto Error;
    /* MDB_NOTLS: a worker thread holds one read txn per in-flight response. Commits stay synced. */
    if ((rc = mdb_env_open(s->env, s->path, MDB_NOTLS | MDB_NORDAHEAD, 0600)) != 0)
        goto Error;
    if (txn_pool_init(s) != 0) {
        rc = ENOMEM;
        goto Error;
    }
    int dead;
    mdb_reader_check(s->env, &dead); /* free the slots of readers from dead processes */
    if ((rc = open_dbs(s, &s->w, &has_pending)) != 0)
        goto Error;

    s->next_fill_id = s->w.max_fill_id + 1;
    for (size_t i = 0; i < s->wbans_n; ++i)
        if (s->wbans[i].v.watermark > s->next_fill_id)
            s->next_fill_id = s->wbans[i].v.watermark; /* new fills are never covered by an old ban */
    s->sweep_limit = s->next_fill_id;
    s->sweeping = has_pending;
    s->pub.live_bytes = s->w.live_bytes;
    s->pub.objects = s->w.objects;
    s->pub.main_bytes = s->w.main_bytes;

    pthread_mutex_init(&s->mutex, NULL);
    pthread_mutex_init(&s->fills_mutex, NULL);
    pthread_mutex_init(&s->bans_mutex, NULL);
    pthread_cond_init(&s->cond, NULL);
    pthread_cond_init(&s->flush_cond, NULL);
    struct ban_list *bans;
    if ((rc = build_ban_list(s, &bans)) != 0) {
        snprintf(err, errlen, "store %s: out of memory", s->path);
        goto ErrorThreads;
    }
    publish_bans(s, bans);
    if ((rc = pthread_create(&s->writer, NULL, writer_main, s)) != 0) {
        snprintf(err, errlen, "store %s: cannot start the writer thread: %s", s->path, strerror(rc));
        ban_list_release(s->bans_cur);
        goto ErrorThreads;
    }
    return s;

ErrorThreads:
    pthread_mutex_destroy(&s->mutex);
    pthread_mutex_destroy(&s->fills_mutex);
    pthread_mutex_destroy(&s->bans_mutex);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->flush_cond);
    txn_pool_dispose(s);
    mdb_env_close(s->env);
    free_bans(s);
    free(s->freq);
    free(s->ghost);
    free(s->path);
    free(s);
    return NULL;

Error:
    snprintf(err, errlen, "store %s: %s", s->path, mdb_strerror(rc));
    txn_pool_dispose(s);
    if (s->env != NULL)
        mdb_env_close(s->env);
    free_bans(s);
    free(s->freq);
    free(s->ghost);
    free(s->path);
    free(s);
    return NULL;
}

void edge_store_close(edge_store_t *store)
{
    pthread_mutex_lock(&store->mutex);
    store->closing = 1;
    pthread_cond_signal(&store->cond);
    pthread_mutex_unlock(&store->mutex);
    pthread_join(store->writer, NULL);

    int rc = mdb_env_sync(store->env, 1);
    if (rc != 0)
        log_error("CLOSE_ERR path=%s detail=\"sync: %s\"", store->path, mdb_strerror(rc));
    if (thread_snapshot != NULL && thread_snapshot->store == store)
        thread_snapshot = NULL; /* the closing thread's own (other threads released theirs); aborted below */
    txn_pool_dispose(store);
    mdb_env_close(store->env);
    ban_list_release(store->bans_cur);
    free_bans(store);
    free(store->fills);
    free(store->freq);
    free(store->ghost);
    pthread_mutex_destroy(&store->mutex);
    pthread_mutex_destroy(&store->fills_mutex);
    pthread_mutex_destroy(&store->bans_mutex);
    pthread_cond_destroy(&store->cond);
    pthread_cond_destroy(&store->flush_cond);
    free(store->path);
    free(store);
}

static void on_barrier_done(edge_store_op_t *op, int result)
{
    edge_store_t *s = op->data_owner;
    struct barrier *b = (struct barrier *)op;

    pthread_mutex_lock(&s->mutex);
    b->done = 1;
    pthread_cond_broadcast(&s->flush_cond);
    pthread_mutex_unlock(&s->mutex);
}

/* Submits a barrier op (OP_BARRIER or OP_IDLE) and blocks until the writer completes it. */
static void wait_barrier(edge_store_t *store, edge_store_op_kind_t kind)
{
    struct barrier b = {.op = {.kind = kind, .on_done = on_barrier_done, .data_owner = store}};

    edge_store_submit(store, &b.op);
    pthread_mutex_lock(&store->mutex);
    while (!b.done)
        pthread_cond_wait(&store->flush_cond, &store->mutex);
    pthread_mutex_unlock(&store->mutex);
}

void edge_store_flush(edge_store_t *store)
{
    wait_barrier(store, OP_BARRIER);
}

void edge_store_wait_idle(edge_store_t *store)
{
    wait_barrier(store, OP_IDLE);
}

uint64_t edge_store_queued_bytes(edge_store_t *store)
{
    return __atomic_load_n(&store->queued_bytes, __ATOMIC_RELAXED);
}

void edge_store_submit(edge_store_t *store, edge_store_op_t *op)
{
    op->_next = NULL;
    pthread_mutex_lock(&store->mutex);
    if (store->closing) {
        pthread_mutex_unlock(&store->mutex);
        if (op->on_done != NULL)
            op->on_done(op, EDGE_STORE_ECLOSED);
        return;
    }
    if (op->kind == EDGE_STORE_OP_CHUNK)
        __atomic_fetch_add(&store->queued_bytes, op->len, __ATOMIC_RELAXED);
    if (store->tail != NULL)
        store->tail->_next = op;
    else
        store->head = op;
    store->tail = op;
    pthread_cond_signal(&store->cond);
    pthread_mutex_unlock(&store->mutex);
}

int edge_store_read_begin(edge_store_t *store, edge_store_txn_t **txn)
{
    edge_store_txn_t *t;
    int rc;

    /* a reset txn first: renewing it keeps its reader slot (no reader-table mutex, no malloc) */
    if ((t = txn_pop(store, &store->txns_reset)) != NULL) {
        if ((rc = mdb_txn_renew(t->txn)) == 0) {
            t->txnid = mdb_txn_id(t->txn);
            *txn = t;
            return 0;
        }
        log_error("READ_ERR path=%s detail=\"renew: %s\"", store->path, mdb_strerror(rc));
        mdb_txn_abort(t->txn); /* frees its slot; begin a new one below */
        t->txn = NULL;
    } else if ((t = txn_pop(store, &store->txns_empty)) == NULL) {
        return EDGE_STORE_EREADERS; /* every handle, so every reader slot, is in use */
    }
    if ((rc = mdb_txn_begin(store->env, NULL, MDB_RDONLY, &t->txn)) != 0) {
        t->txn = NULL;
        txn_push(store, &store->txns_empty, t);
        if (rc == MDB_READERS_FULL) /* slots held by another process (or a dead one) */
            return EDGE_STORE_EREADERS;
        log_error("READ_ERR path=%s detail=\"%s\"", store->path, mdb_strerror(rc));
        return EDGE_STORE_EIO;
    }
    t->txnid = mdb_txn_id(t->txn);
    *txn = t;
    return 0;
}

/*
 * Shared snapshots: a loop thread serving hits begins and ends a read txn per request; while no commit lands,
 * every one of them would see the same snapshot, so they share one (one mdb_txn_renew, and one lookup of each
 * named database's root, per commit or per loop iteration instead of per request). `pub.commits` is read before
 * the snapshot is taken and compared on each begin: a commit that completed before a begin is always seen (the
 * counter is bumped after mdb_txn_commit, before the ops' completions run). Bans need nothing more: edge_store_get
 * compares the txn's ban list with the current one on every call.
 */
int edge_store_read_begin_shared(edge_store_t *store, edge_store_txn_t **txn)
{
    edge_store_txn_t *t = thread_snapshot;
    uint64_t commits = __atomic_load_n(&store->pub.commits, __ATOMIC_ACQUIRE);
    int rc;

    if (t != NULL) {
        if (t->store == store && t->commits == commits) {
            ++t->shared_uses;
            *txn = t;
            return 0;
        }
        edge_store_read_release_shared(); /* out of date: ended now, or by its last user */
    }
    if ((rc = edge_store_read_begin(store, &t)) != 0)
        return rc;
    t->shared = 1;
    t->shared_uses = 1;
    t->commits = commits;
    thread_snapshot = t;
    *txn = t;
    return 0;
}

void edge_store_read_release_shared(void)
{
    edge_store_txn_t *t = thread_snapshot;
    if (t == NULL)
        return;
    thread_snapshot = NULL;
    if (t->shared_uses == 0) {
        t->shared = 0;
        edge_store_read_end(t);
    }
}

void edge_store_read_end(edge_store_txn_t *txn)
{
    edge_store_t *s = txn->store;
    if (txn->shared) {
        /* the thread's current snapshot stays for the next begin; one released meanwhile ends with its last use */
        if (--txn->shared_uses != 0 || txn == thread_snapshot)
            return;
        txn->shared = 0;
    }
    mdb_txn_reset(txn->txn);
    /* keep the reference if it is to the current list: the next get then needs no mutex. A list
     * replaced later stays alive until the handle is reused or the store closes (one per idle handle) */
    if (txn->bans != NULL && txn->bans != __atomic_load_n(&s->bans_cur, __ATOMIC_ACQUIRE)) {
        ban_list_release(txn->bans);
        txn->bans = NULL;
    }
    txn_push(s, &s->txns_reset, txn);
}

/* Takes a reference to the current ban list (only when it changed since the txn last looked). */
static void refresh_bans(edge_store_txn_t *txn)
{
    edge_store_t *s = txn->store;
    pthread_mutex_lock(&s->bans_mutex);
    struct ban_list *cur = s->bans_cur;
    if (cur != NULL)
        __atomic_fetch_add(&cur->refcnt, 1, __ATOMIC_RELAXED);
    pthread_mutex_unlock(&s->bans_mutex);
    ban_list_release(txn->bans);
    txn->bans = cur;
}

int edge_store_get(edge_store_txn_t *txn, const uint8_t hash[EDGE_STORE_HASH_LEN], edge_store_object_t *out)
{
    MDB_val k = {EDGE_STORE_HASH_LEN, (void *)hash}, v;
    struct record_hdr hdr;
    uint64_t slot_bits;
    memcpy(&slot_bits, hash, sizeof(slot_bits)); /* a SHA-256: any bits spread evenly */
    struct get_memo_slot *m = get_memo + slot_bits % GET_MEMO_SLOTS;

    if (m->instance == txn->store->instance && m->txnid == txn->txnid && memcmp(m->hash, hash, EDGE_STORE_HASH_LEN) == 0) {
        v = m->v;
        hdr = m->hdr;
    } else {
        int rc = mdb_get(txn->txn, txn->store->dbi_objects, &k, &v);
        if (rc == MDB_NOTFOUND)
            return EDGE_STORE_NOTFOUND;
        if (rc != 0) {
            log_error("READ_ERR detail=\"%s\"", mdb_strerror(rc));
            return EDGE_STORE_EIO;
        }
        if (parse_record(&v, &hdr) != 0) {
            log_error("CORRUPT op=get detail=\"object record fails validation\"");
            return EDGE_STORE_ECORRUPT;
        }
        m->instance = txn->store->instance;
        m->txnid = txn->txnid;
        memcpy(m->hash, hash, EDGE_STORE_HASH_LEN);
        m->v = v;
        m->hdr = hdr;
    }
    int banned = BAN_NONE;
    /* the hit path with no ban: one atomic load (bans_cur NULL, txn->bans NULL) */
    if (__atomic_load_n(&txn->store->bans_cur, __ATOMIC_ACQUIRE) != txn->bans)
        refresh_bans(txn);
    if (txn->bans != NULL && hdr.fill_id < txn->bans->max_watermark) {
        struct obj_view view = rec_view(&v, &hdr);
        if ((banned = check_ban_list(txn->bans, hdr.fill_id, hdr.revalidated_ban_id, &view)) == BAN_HARD) {
            __atomic_fetch_add(&txn->store->pub.ban_hits, 1, __ATOMIC_RELAXED);
            return EDGE_STORE_NOTFOUND;
        }
    }
    out->fill_id = hdr.fill_id;
    out->body_size = hdr.body_size;
    out->num_chunks = hdr.num_chunks;
    out->key = rec_key(&v);
    out->key_len = hdr.key_len;
    out->meta = rec_meta(&v, &hdr);
    out->meta_len = hdr.meta_len;
    out->variant = rec_variant(&v, &hdr);
    out->variant_len = hdr.variant_len;
    memcpy(out->group, hdr.group, sizeof(out->group));
    out->tags = rec_tags(&v, &hdr);
    out->tags_len = hdr.tags_len;
    out->body = (hdr.flags & REC_FLAG_INLINE) != 0 ? rec_inline(&v, &hdr) : NULL;
    out->stale_flag = (hdr.flags & REC_FLAG_STALE) != 0;
    out->soft_purged = out->stale_flag || banned == BAN_SOFT;
    return 0;
}

void edge_store_txn_snapshot(const edge_store_txn_t *txn, uint64_t *instance, uint64_t *txnid)
{
    *instance = txn->store->instance;
    *txnid = txn->txnid;
}

int edge_store_group_count(edge_store_txn_t *txn, const uint8_t group[EDGE_STORE_HASH_LEN], size_t *count)
{
    MDB_cursor *cur;
    MDB_val k = {EDGE_STORE_HASH_LEN, (void *)group}, d;
    size_t n = 0;
    int rc;

    *count = 0;
    if ((rc = mdb_cursor_open(txn->txn, txn->store->dbi_groups, &cur)) != 0)
        goto Error;
    rc = mdb_cursor_get(cur, &k, &d, MDB_SET_KEY);
    if (rc == 0)
        rc = mdb_cursor_count(cur, &n);
    mdb_cursor_close(cur);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0)
        goto Error;
    *count = n;
    return 0;
Error:
    log_error("READ_ERR detail=\"%s\"", mdb_strerror(rc));
    return EDGE_STORE_EIO;
}

int edge_store_object_next_tag(const edge_store_object_t *obj, size_t *cursor, const char **tag, size_t *len)
{
    return tags_next(obj->tags, obj->tags_len, cursor, tag, len);
}

int edge_store_get_chunk(edge_store_txn_t *txn, uint64_t fill_id, uint32_t n, const void **data, size_t *len)
{
    uint8_t kbuf[CHUNK_KEY_LEN];
    MDB_val k = {sizeof(kbuf), kbuf}, v;
    int rc;

    put_be64(kbuf, fill_id);
    put_be32(kbuf + 8, n);
    rc = mdb_get(txn->txn, txn->store->dbi_chunks, &k, &v);
    if (rc == MDB_NOTFOUND)
        return EDGE_STORE_NOTFOUND;
    if (rc != 0) {
        log_error("READ_ERR detail=\"%s\"", mdb_strerror(rc));
        return EDGE_STORE_EIO;
    }
    *data = v.mv_data;
    *len = v.mv_size;
    return 0;
}

void edge_store_touch(edge_store_t *store, uint64_t fill_id)
{
    uint8_t *slot = freq_slot(store, fill_id);
    /* read first: a hot object's counter is already at FREQ_MAX, and a store would bounce the cache line.
     * Load + store, not an atomic increment: a lost update between two threads costs at most one hit. */
    uint8_t v = __atomic_load_n(slot, __ATOMIC_RELAXED);
    if (v < FREQ_MAX)
        __atomic_store_n(slot, (uint8_t)(v + 1), __ATOMIC_RELAXED);
}

uint64_t edge_store_new_fill_id(edge_store_t *store)
{
    pthread_mutex_lock(&store->fills_mutex);
    uint64_t id = store->next_fill_id++;
    int rc = fills_add(store, id);
    pthread_mutex_unlock(&store->fills_mutex);
    if (rc != 0)
        log_error("FILL_TRACK_ERR fill_id=%llu detail=\"out of memory, a purge may retire before this fill ends\"",
                  (unsigned long long)id);
    return id;
}

void edge_store_fill_release(edge_store_t *store, uint64_t fill_id)
{
    release_fill(store, fill_id);
    /* a ban may be waiting for this fill to retire: wake the writer */
    if (__atomic_load_n(&store->bans_live_n, __ATOMIC_RELAXED) != 0) {
        pthread_mutex_lock(&store->mutex);
        pthread_cond_signal(&store->cond);
        pthread_mutex_unlock(&store->mutex);
    }
}

int edge_store_get_stream_cursor(edge_store_t *store, char *buf, size_t len)
{
    edge_store_txn_t *t;
    MDB_val k = {13, "stream_cursor"}, v;
    int rc, ret;

    if (len != 0)
        buf[0] = '\0';
    if ((ret = edge_store_read_begin(store, &t)) != 0)
        return ret;
    if ((rc = mdb_get(t->txn, store->dbi_stats, &k, &v)) == MDB_NOTFOUND) {
        ret = EDGE_STORE_NOTFOUND;
    } else if (rc != 0) {
        ret = EDGE_STORE_EIO;
    } else if (v.mv_size == 0 || v.mv_size > EDGE_STORE_MAX_CURSOR_LEN || memchr(v.mv_data, '\0', v.mv_size) != NULL) {
        log_error("CORRUPT detail=\"stream cursor record of %zu bytes\"", v.mv_size);
        ret = EDGE_STORE_ECORRUPT;
    } else if (v.mv_size >= len) {
        ret = EDGE_STORE_EINVAL;
    } else {
        memcpy(buf, v.mv_data, v.mv_size);
        buf[v.mv_size] = '\0';
        ret = 0;
    }
    edge_store_read_end(t);
    return ret;
}

void edge_store_get_stats(edge_store_t *store, edge_store_stats_t *out)
{
    out->live_bytes = __atomic_load_n(&store->pub.live_bytes, __ATOMIC_RELAXED);
    out->objects = __atomic_load_n(&store->pub.objects, __ATOMIC_RELAXED);
    out->evictions = __atomic_load_n(&store->pub.evictions, __ATOMIC_RELAXED);
    out->commits = __atomic_load_n(&store->pub.commits, __ATOMIC_RELAXED);
    out->map_full = __atomic_load_n(&store->pub.map_full, __ATOMIC_RELAXED);
    out->swept_fills = __atomic_load_n(&store->pub.swept_fills, __ATOMIC_RELAXED);
    out->dropped_fills = __atomic_load_n(&store->pub.dropped_fills, __ATOMIC_RELAXED);
    out->max_size_bytes = store->budget_bytes;
    out->bans_live = __atomic_load_n(&store->bans_live_n, __ATOMIC_RELAXED);
    out->bans_applied = __atomic_load_n(&store->pub.bans_applied, __ATOMIC_RELAXED);
    out->ban_hits = __atomic_load_n(&store->pub.ban_hits, __ATOMIC_RELAXED);
    out->swept_objects = __atomic_load_n(&store->pub.swept_objects, __ATOMIC_RELAXED);
    out->main_bytes = __atomic_load_n(&store->pub.main_bytes, __ATOMIC_RELAXED);
    out->promoted = __atomic_load_n(&store->pub.promoted, __ATOMIC_RELAXED);
    out->ghost_hits = __atomic_load_n(&store->pub.ghost_hits, __ATOMIC_RELAXED);
}

const char *edge_store_strerror(int result)
{
    switch (result) {
    case 0:
        return "success";
    case EDGE_STORE_NOTFOUND:
        return "not found";
    case EDGE_STORE_EREADERS:
        return "no free reader slot";
    case EDGE_STORE_ECORRUPT:
        return "record failed validation";
    case EDGE_STORE_EFULL:
        return "store full, fill dropped";
    case EDGE_STORE_EIO:
        return "store I/O error";
    case EDGE_STORE_ECLOSED:
        return "store closing";
    case EDGE_STORE_EINVAL:
        return "invalid op or incomplete fill";
    case EDGE_STORE_EPURGED:
        return "fill predates a purge, not stored";
    default:
        return "unknown store error";
    }
}

void edge_store_hash(const char *key, size_t key_len, uint8_t hash[EDGE_STORE_HASH_LEN])
{
    SHA256_CTX ctx;
    _Static_assert(SHA256_DIGEST_LENGTH == EDGE_STORE_HASH_LEN, "the store key is a SHA-256");
    /* the low-level calls cannot fail (they return 1) */
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, key, key_len);
    SHA256_Final(hash, &ctx);
}

void edge_store_variant_hash(const char *key, size_t key_len, const char *variant, size_t variant_len,
                             uint8_t hash[EDGE_STORE_HASH_LEN])
{
    SHA256_CTX ctx;
    static const unsigned char sep = 0;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, key, key_len);
    SHA256_Update(&ctx, &sep, 1);
    SHA256_Update(&ctx, variant, variant_len);
    SHA256_Final(hash, &ctx);
}
