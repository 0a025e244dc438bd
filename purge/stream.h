/*
 * purge/stream.h: purge propagation over a Redis stream (hiredis, synchronous).
 *
 * Each purge accepted by any node is one stream entry whose field `purge` holds the validated request JSON
 * (purge_request_to_json). Every node reads the stream from the last entry it applied (XREAD), so entries apply in
 * stream order, and a node that was down replays what it missed.
 *
 * A purge_stream_t is one blocking connection: use it from one thread at a time (a consumer thread or a publisher
 * thread, never an event loop). The id helpers are pure functions, any thread.
 */
#ifndef PURGE_STREAM_H
#define PURGE_STREAM_H

#include <stddef.h>
#include <stdint.h>

#define PURGE_STREAM_ID_MAX 48        /* bytes of an entry id with its NUL ("<ms>-<seq>": at most 41) */
#define PURGE_STREAM_FIELD "purge"    /* the entry's field holding the request JSON */

typedef struct st_purge_stream_t purge_stream_t;

typedef struct st_purge_stream_settings_t {
    const char *host;     /* name or address literal (no brackets) */
    uint16_t port;
    const char *user;     /* NULL: AUTH with the password alone */
    const char *password; /* NULL: no AUTH */
    unsigned db;          /* SELECT when not 0 */
    uint64_t timeout_ms;  /* connect timeout, and the socket timeout of commands that do not block */
} purge_stream_settings_t;

/** One entry read from the stream. */
typedef struct st_purge_stream_entry_t {
    char id[PURGE_STREAM_ID_MAX];
    char *json; /* malloc'ed NUL-terminated value of the `purge` field; NULL when the entry has no such field */
    size_t json_len;
} purge_stream_entry_t;

/**
 * Connects (and AUTH / SELECT as configured).
 * @param[out] err  a one-line reason on failure
 * @return the connection (release with purge_stream_close), or NULL
 */
purge_stream_t *purge_stream_connect(const purge_stream_settings_t *settings, char *err, size_t errlen);

/** Closes a connection. NULL is fine. */
void purge_stream_close(purge_stream_t *conn);

/**
 * XADD stream MAXLEN ~ max_len * purge <json>.
 * @param max_len  0: no trimming
 * @param[out] id  the new entry's id (PURGE_STREAM_ID_MAX bytes)
 * @return 0, or -1 with err (the connection is then unusable: close it)
 */
int purge_stream_add(purge_stream_t *conn, const char *stream, uint64_t max_len, const char *json, size_t json_len, char *id,
                     char *err, size_t errlen);

/**
 * XREAD [BLOCK block_ms] COUNT count STREAMS stream after: the entries after `after`, in order.
 * @param block_ms  0: do not block; else wait up to this long for an entry
 * @param[out] entries  malloc'ed array (free with purge_stream_entries_free), NULL when *n is 0
 * @return 0 (with *n = 0 when nothing came), or -1 with err (close the connection)
 */
int purge_stream_read(purge_stream_t *conn, const char *stream, const char *after, uint64_t block_ms, size_t count,
                      purge_stream_entry_t **entries, size_t *n, char *err, size_t errlen);

/** Frees what purge_stream_read returned. */
void purge_stream_entries_free(purge_stream_entry_t *entries, size_t n);

/**
 * The id of the stream's newest entry ("0-0" when the stream is empty or does not exist).
 * @return 0, or -1 with err (close the connection)
 */
int purge_stream_last_id(purge_stream_t *conn, const char *stream, char *id, char *err, size_t errlen);

/**
 * Did entries after `cursor` get trimmed (MAXLEN) before this reader read them? Trimming removes the oldest entries,
 * so entries after the cursor are intact when the stream's first entry is at or before it; when the stream is empty,
 * they are gone if any id was generated after the cursor; when the first entry is after the cursor, the cursor's own
 * entry was trimmed and its successors may have been (counted as a gap: the safe side). A cursor of "0-0" (a reader
 * that started on an empty stream) has a gap when anything was ever trimmed (XINFO entries-added, Redis 7.0+).
 * @param[out] resume  on a gap: where to read on from (just below the first entry left, or the last generated id)
 * @return 0 (no gap), 1 (a gap), or -1 with err (close the connection)
 */
int purge_stream_gap(purge_stream_t *conn, const char *stream, const char *cursor, char *resume, char *err, size_t errlen);

/**
 * Parses an entry id "<ms>-<seq>" (both decimal, no sign, no overflow, nothing else).
 * @return 0, or -1
 */
int purge_stream_id_parse(const char *id, uint64_t *ms, uint64_t *seq);

/**
 * Compares two valid entry ids numerically (ms, then seq); an invalid id sorts before every valid one.
 * @return <0, 0 or >0
 */
int purge_stream_id_compare(const char *a, const char *b);

#endif
