/*
 * purge/stream.c: the Redis stream that carries purges between nodes (hiredis, synchronous connections).
 *
 * Owns only its connections: no global state, no threads. Every reply is validated before use (Redis is outside the
 * process: a wrong type or a malformed id is an error, never an assert). Callers close a connection after any error:
 * a timed-out command may leave a reply in flight.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <hiredis/hiredis.h>
#include "purge/stream.h"

struct st_purge_stream_t {
    redisContext *ctx;
    struct timeval timeout;
};

static struct timeval ms_to_tv(uint64_t ms)
{
    struct timeval tv = {(time_t)(ms / 1000), (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static void set_err(char *err, size_t errlen, const char *what, const purge_stream_t *conn, const redisReply *reply)
{
    if (errlen == 0)
        return;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        snprintf(err, errlen, "%s: %.*s", what, (int)reply->len, reply->str);
    else if (conn->ctx->err != 0)
        snprintf(err, errlen, "%s: %s", what, conn->ctx->errstr);
    else
        snprintf(err, errlen, "%s: unexpected reply", what);
}

static int copy_id(char *dst, const redisReply *r)
{
    uint64_t ms, seq;
    if (r == NULL || (r->type != REDIS_REPLY_STRING && r->type != REDIS_REPLY_STATUS) || r->len == 0 ||
        r->len >= PURGE_STREAM_ID_MAX)
        return -1;
    memcpy(dst, r->str, r->len);
    dst[r->len] = '\0';
    return purge_stream_id_parse(dst, &ms, &seq);
}

/* One entry of an XREAD/XREVRANGE reply: [id, [field, value, ...]]. */
static int parse_entry(const redisReply *e, purge_stream_entry_t *out)
{
    memset(out, 0, sizeof(*out));
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || copy_id(out->id, e->element[0]) != 0)
        return -1;
    const redisReply *fields = e->element[1];
    if (fields->type == REDIS_REPLY_NIL)
        return 0; /* an entry deleted with XDEL still listed */
    if (fields->type != REDIS_REPLY_ARRAY || fields->elements % 2 != 0)
        return -1;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *k = fields->element[i], *v = fields->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            return -1;
        if (k->len == sizeof(PURGE_STREAM_FIELD) - 1 && memcmp(k->str, PURGE_STREAM_FIELD, k->len) == 0 && out->json == NULL) {
            if ((out->json = malloc(v->len + 1)) == NULL)
                return -1;
            memcpy(out->json, v->str, v->len);
            out->json[v->len] = '\0';
            out->json_len = v->len;
        }
    }
    return 0;
}

purge_stream_t *purge_stream_connect(const purge_stream_settings_t *settings, char *err, size_t errlen)
{
    purge_stream_t *conn = calloc(1, sizeof(*conn));
    redisReply *reply = NULL;

    if (conn == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    conn->timeout = ms_to_tv(settings->timeout_ms);
    conn->ctx = redisConnectWithTimeout(settings->host, settings->port, conn->timeout);
    if (conn->ctx == NULL) {
        snprintf(err, errlen, "connect %s:%u: out of memory", settings->host, settings->port);
        free(conn);
        return NULL;
    }
    if (conn->ctx->err != 0) {
        snprintf(err, errlen, "connect %s:%u: %s", settings->host, settings->port, conn->ctx->errstr);
        goto Error;
    }
    if (redisSetTimeout(conn->ctx, conn->timeout) != REDIS_OK) {
        snprintf(err, errlen, "connect %s:%u: cannot set the timeout", settings->host, settings->port);
        goto Error;
    }
    if (settings->password != NULL) {
        if (settings->user != NULL)
            reply = redisCommand(conn->ctx, "AUTH %s %s", settings->user, settings->password);
        else
            reply = redisCommand(conn->ctx, "AUTH %s", settings->password);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            set_err(err, errlen, "AUTH", conn, reply);
            goto Error;
        }
        freeReplyObject(reply);
        reply = NULL;
    }
    if (settings->db != 0) {
        reply = redisCommand(conn->ctx, "SELECT %u", settings->db);
        if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            set_err(err, errlen, "SELECT", conn, reply);
            goto Error;
        }
        freeReplyObject(reply);
    }
    return conn;

Error:
    if (reply != NULL)
        freeReplyObject(reply);
    redisFree(conn->ctx);
    free(conn);
    return NULL;
}

void purge_stream_close(purge_stream_t *conn)
{
    if (conn == NULL)
        return;
    redisFree(conn->ctx);
    free(conn);
}

int purge_stream_add(purge_stream_t *conn, const char *stream, uint64_t max_len, const char *json, size_t json_len, char *id,
                     char *err, size_t errlen)
{
    char maxlen_buf[24];
    const char *argv[8];
    size_t argvlen[8], argc = 0;

#define ARG(s, l) (argv[argc] = (s), argvlen[argc] = (l), ++argc)
    ARG("XADD", 4);
    ARG(stream, strlen(stream));
    if (max_len != 0) {
        snprintf(maxlen_buf, sizeof(maxlen_buf), "%llu", (unsigned long long)max_len);
        ARG("MAXLEN", 6);
        ARG("~", 1);
        ARG(maxlen_buf, strlen(maxlen_buf));
    }
    ARG("*", 1);
    ARG(PURGE_STREAM_FIELD, sizeof(PURGE_STREAM_FIELD) - 1);
    ARG(json, json_len);
#undef ARG
    redisReply *reply = redisCommandArgv(conn->ctx, (int)argc, argv, argvlen);
    if (reply == NULL || copy_id(id, reply) != 0) {
        set_err(err, errlen, "XADD", conn, reply);
        if (reply != NULL)
            freeReplyObject(reply);
        return -1;
    }
    freeReplyObject(reply);
    return 0;
}

int purge_stream_read(purge_stream_t *conn, const char *stream, const char *after, uint64_t block_ms, size_t count,
                      purge_stream_entry_t **entries, size_t *n, char *err, size_t errlen)
{
    char count_buf[24], block_buf[24];
    const char *argv[9];
    size_t argvlen[9], argc = 0;
    redisReply *reply;
    int ret = -1;

    *entries = NULL;
    *n = 0;
#define ARG(s, l) (argv[argc] = (s), argvlen[argc] = (l), ++argc)
    ARG("XREAD", 5);
    snprintf(count_buf, sizeof(count_buf), "%zu", count);
    ARG("COUNT", 5);
    ARG(count_buf, strlen(count_buf));
    if (block_ms != 0) {
        snprintf(block_buf, sizeof(block_buf), "%llu", (unsigned long long)block_ms);
        ARG("BLOCK", 5);
        ARG(block_buf, strlen(block_buf));
    }
    ARG("STREAMS", 7);
    ARG(stream, strlen(stream));
    ARG(after, strlen(after));
#undef ARG
    /* a blocking read may take block_ms before the reply: the socket waits that much longer */
    if (block_ms != 0) {
        struct timeval tv = ms_to_tv(block_ms + (uint64_t)conn->timeout.tv_sec * 1000 + conn->timeout.tv_usec / 1000);
        redisSetTimeout(conn->ctx, tv);
    }
    reply = redisCommandArgv(conn->ctx, (int)argc, argv, argvlen);
    if (block_ms != 0)
        redisSetTimeout(conn->ctx, conn->timeout);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        goto Error;
    if (reply->type == REDIS_REPLY_NIL) {
        ret = 0; /* nothing after `after` */
        goto Exit;
    }
    /* [[stream, [entry, ...]]] */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 1 || reply->element[0]->type != REDIS_REPLY_ARRAY ||
        reply->element[0]->elements != 2 || reply->element[0]->element[1]->type != REDIS_REPLY_ARRAY)
        goto Error;
    const redisReply *list = reply->element[0]->element[1];
    if (list->elements == 0) {
        ret = 0;
        goto Exit;
    }
    if ((*entries = calloc(list->elements, sizeof(**entries))) == NULL)
        goto Error;
    for (size_t i = 0; i < list->elements; ++i) {
        if (parse_entry(list->element[i], *entries + i) != 0) {
            purge_stream_entries_free(*entries, i + 1);
            *entries = NULL;
            goto Error;
        }
    }
    *n = list->elements;
    ret = 0;
    goto Exit;

Error:
    set_err(err, errlen, "XREAD", conn, reply);
Exit:
    if (reply != NULL)
        freeReplyObject(reply);
    return ret;
}

void purge_stream_entries_free(purge_stream_entry_t *entries, size_t n)
{
    for (size_t i = 0; i < n; ++i)
        free(entries[i].json);
    free(entries);
}

int purge_stream_last_id(purge_stream_t *conn, const char *stream, char *id, char *err, size_t errlen)
{
    const char *argv[] = {"XREVRANGE", stream, "+", "-", "COUNT", "1"};
    size_t argvlen[] = {9, strlen(stream), 1, 1, 5, 1};
    redisReply *reply = redisCommandArgv(conn->ctx, 6, argv, argvlen);
    purge_stream_entry_t e;

    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements > 1)
        goto Error;
    if (reply->elements == 0) {
        strcpy(id, "0-0");
    } else {
        if (parse_entry(reply->element[0], &e) != 0) {
            free(e.json);
            goto Error;
        }
        free(e.json);
        memcpy(id, e.id, sizeof(e.id));
    }
    freeReplyObject(reply);
    return 0;

Error:
    set_err(err, errlen, "XREVRANGE", conn, reply);
    if (reply != NULL)
        freeReplyObject(reply);
    return -1;
}

/* The id just below `id` (valid ids only): XREAD after it returns `id` first. */
static void id_before(const char *id, char *out)
{
    uint64_t ms, seq;
    purge_stream_id_parse(id, &ms, &seq);
    if (seq != 0)
        snprintf(out, PURGE_STREAM_ID_MAX, "%llu-%llu", (unsigned long long)ms, (unsigned long long)(seq - 1));
    else if (ms != 0)
        snprintf(out, PURGE_STREAM_ID_MAX, "%llu-%llu", (unsigned long long)(ms - 1), (unsigned long long)UINT64_MAX);
    else
        strcpy(out, "0-0");
}

static const redisReply *info_field(const redisReply *reply, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i];
        if ((k->type == REDIS_REPLY_STRING || k->type == REDIS_REPLY_STATUS) && k->len == len && memcmp(k->str, name, len) == 0)
            return reply->element[i + 1];
    }
    return NULL;
}

int purge_stream_gap(purge_stream_t *conn, const char *stream, const char *cursor, char *resume, char *err, size_t errlen)
{
    const char *argv[] = {"XINFO", "STREAM", stream};
    size_t argvlen[] = {5, 6, strlen(stream)};
    redisReply *reply = redisCommandArgv(conn->ctx, 3, argv, argvlen);
    const redisReply *length, *added, *last, *first;
    char last_id[PURGE_STREAM_ID_MAX], first_id[PURGE_STREAM_ID_MAX];
    int ret = 0;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR && strstr(reply->str, "no such key") != NULL)
        goto Exit; /* no stream: nothing was ever added, nothing lost */
    /* RESP2: a flat array of field names and values */
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 != 0 ||
        (length = info_field(reply, "length")) == NULL || length->type != REDIS_REPLY_INTEGER ||
        (last = info_field(reply, "last-generated-id")) == NULL || copy_id(last_id, last) != 0 ||
        (first = info_field(reply, "first-entry")) == NULL) {
        set_err(err, errlen, "XINFO STREAM", conn, reply);
        ret = -1;
        goto Exit;
    }
    added = info_field(reply, "entries-added"); /* Redis 7.0+ */
    if (length->integer == 0) {
        /* everything after the cursor, if anything was added after it, is gone */
        if (purge_stream_id_compare(last_id, cursor) > 0) {
            strcpy(resume, last_id);
            ret = 1;
        }
        goto Exit;
    }
    if (first->type != REDIS_REPLY_ARRAY || first->elements != 2 || copy_id(first_id, first->element[0]) != 0) {
        set_err(err, errlen, "XINFO STREAM: first-entry", conn, NULL);
        ret = -1;
        goto Exit;
    }
    if (purge_stream_id_compare(first_id, cursor) <= 0)
        goto Exit; /* trimming removes the oldest entries: everything after the cursor is still there */
    if (strcmp(cursor, "0-0") == 0) {
        /* a node that has seen nothing: a gap when anything was ever trimmed (unknown before Redis 7.0: assume not) */
        if (added == NULL || added->type != REDIS_REPLY_INTEGER || added->integer <= length->integer)
            goto Exit;
    }
    /* the cursor's own entry is gone: entries after it may have been trimmed too (they were unless the first one left
     * is its direct successor, which cannot be told): take the safe side */
    id_before(first_id, resume);
    ret = 1;
Exit:
    if (reply != NULL)
        freeReplyObject(reply);
    return ret;
}

static int parse_u64(const char *s, const char *end, uint64_t *v)
{
    if (s == end || end - s > 20)
        return -1;
    *v = 0;
    for (; s != end; ++s) {
        if (*s < '0' || *s > '9')
            return -1;
        uint64_t d = (uint64_t)(*s - '0');
        if (*v > (UINT64_MAX - d) / 10)
            return -1;
        *v = *v * 10 + d;
    }
    return 0;
}

int purge_stream_id_parse(const char *id, uint64_t *ms, uint64_t *seq)
{
    const char *dash = strchr(id, '-');
    if (dash == NULL)
        return -1;
    return parse_u64(id, dash, ms) == 0 && parse_u64(dash + 1, dash + 1 + strlen(dash + 1), seq) == 0 ? 0 : -1;
}

int purge_stream_id_compare(const char *a, const char *b)
{
    uint64_t ams, aseq, bms, bseq;
    int va = purge_stream_id_parse(a, &ams, &aseq) == 0, vb = purge_stream_id_parse(b, &bms, &bseq) == 0;
    if (!va || !vb)
        return va - vb;
    if (ams != bms)
        return ams < bms ? -1 : 1;
    if (aseq != bseq)
        return aseq < bseq ? -1 : 1;
    return 0;
}
