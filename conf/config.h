/*
 * conf/config.h: the YAML configuration of cdn-edge, parsed into plain settings structs.
 *
 * Contract:
 * - Parsing (libyaml) fills a conf_t; validation reports the first error as `file:line: key: reason`
 *   where `key` is the dotted path (`origin.url`, `listen[1].address`, `cache.max_size`).
 * - Unknown keys and duplicate keys are errors. Sizes are bytes or with `KiB`/`MiB`/`GiB`
 *   (also `B`); durations are `500ms`, `5s`, `2m`, `1h` (a bare number is seconds).
 * - Every value that a later check may reject (an address that fails to bind, a certificate that
 *   fails to load, a cache path that fails to open) keeps its line in a `*_line` field, so callers
 *   can report `file:line: key: reason` with conf_error().
 * - Relative paths in a file are resolved against the directory of that file; in the embedded
 *   default against the current working directory. After loading, every path field is either
 *   absolute or relative to the working directory, ready for open().
 * - Every default is defined once, as a CONF_DEFAULT_* constant below; the embedded default YAML
 *   only names what differs from them.
 * - No h2o, LMDB or OpenSSL types appear here, so the parser is unit-tested alone.
 *
 * Ownership: every string in a conf_t is owned by it and freed by conf_dispose().
 */
#ifndef CONF_CONFIG_H
#define CONF_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#define CONF_DEFAULT_ADMIN_ADDRESS "127.0.0.1:8081"
#define CONF_DEFAULT_WORKERS 0 /* 0: one per online CPU */
#define CONF_DEFAULT_CACHE_PATH "var/cache"
#define CONF_DEFAULT_CACHE_MAX_SIZE (1024ull * 1024 * 1024)
#define CONF_DEFAULT_CACHE_MAX_OBJECT_SIZE (128ull * 1024 * 1024)
#define CONF_DEFAULT_CACHE_WRITE_QUEUE (128ull * 1024 * 1024) /* memory of fills waiting for the store's writer */
#define CONF_DEFAULT_STALE_IF_UNREACHABLE_MS (24ull * 3600 * 1000)
#define CONF_DEFAULT_REQUEST_BODY (16ull * 1024 * 1024)
#define CONF_DEFAULT_CLIENT_CONNECTIONS 4096
#define CONF_DEFAULT_ORIGIN_CACHE_CONTROL "public, max-age=300"
#define CONF_DEFAULT_CONNECT_TIMEOUT_MS 2000
#define CONF_DEFAULT_FIRST_BYTE_TIMEOUT_MS 30000
#define CONF_DEFAULT_IDLE_TIMEOUT_MS 30000
#define CONF_DEFAULT_POOL_IDLE_TIMEOUT_MS 4000
#define CONF_DEFAULT_ORIGIN_MAX_CONNECTIONS 256
#define CONF_DEFAULT_DRAIN_TIMEOUT_MS 5000
#define CONF_DEFAULT_WRITE_TIMEOUT_MS 30000
#define CONF_DEFAULT_ACCESS_LOG "-" /* "-": standard output; "off": none */
#define CONF_DEFAULT_PURGE_MAX_BODY (1024ull * 1024)       /* POST /purge bodies over this get 413 */
#define CONF_DEFAULT_PURGE_MAX_ITEMS 1000                  /* per list, and all lists together */
#define CONF_DEFAULT_PURGE_STREAM "cdn-purge"              /* the Redis stream key */
#define CONF_DEFAULT_PURGE_STREAM_MAX_LEN 1000000          /* XADD MAXLEN ~ */
#define CONF_DEFAULT_PURGE_CATCHUP_TIMEOUT_MS 10000        /* start-up: wait this long to replay missed purges */
#define CONF_DEFAULT_PURGE_TIMEOUT_MS 10000                /* POST /purge with Redis: wait this long for the apply */
#define CONF_DEFAULT_REDIS_PORT 6379
/* `compress:` stored gzip/brotli variants. The three values edge/compress.h also names (EDGE_DEFAULT_COMPRESS_MIN_SIZE,
 * EDGE_DEFAULT_GZIP_LEVEL, EDGE_DEFAULT_BROTLI_LEVEL) must equal these: edge/main.c checks it with _Static_assert. */
#define CONF_DEFAULT_COMPRESS_ENABLED 1
#define CONF_DEFAULT_COMPRESS_MIN_SIZE 256   /* bytes: smaller bodies are stored as identity only */
#define CONF_DEFAULT_COMPRESS_GZIP_LEVEL 6   /* 1..9 */
#define CONF_DEFAULT_COMPRESS_BROTLI_LEVEL 5 /* 0..11 */
#define CONF_DEFAULT_COMPRESS_THREADS 1      /* compression threads */
#define CONF_DEFAULT_COMPRESS_QUEUE 1024     /* jobs waiting for a thread; more are dropped (counted) */
#define CONF_DEFAULT_COMPRESS_HOT_HITS 1000  /* hits after which an object's variants are remade at gzip 9 / brotli 11 */

/* Path names the default config uses for the self-signed certificate made on first run. */
#define CONF_DEFAULT_SELF_SIGNED_CERT "var/tls/cert.pem"
#define CONF_DEFAULT_SELF_SIGNED_KEY "var/tls/key.pem"

/** The embedded default configuration (YAML text), used when no `-c FILE` is given. */
extern const char conf_embedded_default[];

typedef struct st_conf_tls_t {
    char *certificate_file; /* resolved path; NULL when not configured */
    char *key_file;         /* resolved path */
    int self_signed;        /* `self_signed: true`: generate both files when they do not exist */
    unsigned line;          /* line of the `tls:` key */
} conf_tls_t;

typedef struct st_conf_listen_t {
    char *address;  /* as written: "127.0.0.1:8080", "[::1]:8080", "*:8080" */
    char *host;     /* "127.0.0.1", "::1"; NULL for "*" (any address, IPv6 dual stack) */
    uint16_t port;  /* 0 is allowed: the kernel picks (tests read it from the ready file) */
    int has_tls;    /* a `tls:` mapping was given */
    conf_tls_t tls;
    unsigned line;  /* line of the `address:` value */
} conf_listen_t;

typedef struct st_conf_admin_t {
    int enabled;        /* `admin: off` disables the admin listener; default on */
    conf_listen_t listen;
    char *token;        /* bearer token for mutating admin calls; NULL if none configured */
    unsigned token_line;
} conf_admin_t;

#define CONF_QUERY_KEEP 0
#define CONF_QUERY_SORT 1
#define CONF_QUERY_IGNORE 2

typedef struct st_conf_cache_t {
    char *path;                     /* LMDB environment directory, resolved */
    unsigned path_line;
    uint64_t max_size_bytes;        /* hard budget of the store on disk */
    uint64_t max_object_size_bytes; /* larger responses pass through unstored */
    uint64_t write_queue_bytes;     /* body bytes submitted to the store's writer and not yet written, at most: past
                                       it a fill passes through unstored (the disk is behind; memory stays bounded) */
    unsigned max_size_line;
    int query_mode;                 /* CONF_QUERY_KEEP (raw), CONF_QUERY_SORT or CONF_QUERY_IGNORE: the query in the key */
    char **query_drop;              /* query parameters left out of the key (e.g. utm_source); NULL-terminated */
    size_t num_query_drop;
    int honor_client_no_cache;      /* a request's no-cache / max-age / min-fresh may send it to the origin; default
                                       off: clients cannot force origin traffic */
    uint64_t stale_if_unreachable_ms; /* a stale object is served when the origin cannot be reached (refused,
                                         reset, timed out; not a 5xx) for up to this long past its freshness,
                                         unless the response forbids it (RFC 9111 §4.2.4 "disconnected"); 0: never */
} conf_cache_t;

typedef struct st_conf_limits_t {
    uint64_t request_body_bytes; /* request bodies over this get 413 */
    unsigned client_connections; /* accepted client connections at once, all listeners */
} conf_limits_t;

typedef enum en_conf_origin_kind_t { CONF_ORIGIN_HTTP = 1, CONF_ORIGIN_DIRECTORY = 2 } conf_origin_kind_t;

typedef struct st_conf_origin_t {
    conf_origin_kind_t kind;
    /* CONF_ORIGIN_HTTP */
    char *url;       /* as written */
    int is_tls;      /* https:// */
    char *host;      /* host name or address literal, without brackets */
    uint16_t port;   /* explicit, or 80 / 443 */
    /* CONF_ORIGIN_DIRECTORY */
    char *directory; /* resolved path */
    char *cache_control; /* Cache-Control the directory origin sends */
    unsigned line;   /* line of `url:` or `directory:` */
    uint64_t connect_timeout_ms;
    uint64_t first_byte_timeout_ms;
    uint64_t idle_timeout_ms;      /* between two reads of one response */
    uint64_t pool_idle_timeout_ms; /* keep-alive connections idle longer than this are closed */
    unsigned max_connections;      /* to this origin, whole process */
} conf_origin_t;

/* `purge:` the purge API's limits and its propagation over a Redis stream. */
typedef struct st_conf_purge_t {
    char *redis;          /* `redis://[[user]:password@]host[:port][/db]` as written; NULL: the node purges alone */
    char *redis_host;     /* host name or address literal, without brackets */
    uint16_t redis_port;  /* explicit, or CONF_DEFAULT_REDIS_PORT */
    char *redis_user;     /* NULL when none (AUTH with the password alone) */
    char *redis_password; /* NULL when none */
    unsigned redis_db;    /* the path's number (SELECT); 0 when none */
    unsigned redis_line;
    char *stream;                /* the stream key */
    uint64_t max_body_bytes;     /* POST /purge bodies over this get 413 */
    unsigned max_items;          /* items per list and in all lists together; more gets 400 */
    uint64_t stream_max_len;     /* XADD MAXLEN ~ this; 0: never trimmed */
    uint64_t catchup_timeout_ms; /* start-up waits at most this long for the replay of missed purges */
    uint64_t timeout_ms;         /* POST /purge with Redis: 504 when not applied locally within this */
    char **tag_headers;          /* more response headers carrying comma-separated purge tags (besides Surrogate-Key
                                    and Cache-Tag), lower-cased; NULL when not configured: x-next-cache-tags */
    size_t num_tag_headers;
} conf_purge_t;

/* `compress:` which responses get stored gzip and brotli variants, and the threads that make them. */
typedef struct st_conf_compress_t {
    int enabled;             /* `compress: off` or `enabled: false`: identity only */
    char **types;            /* media-type patterns as written ("text/html", "text/" "*", "+json"); NULL when not
                                configured: the built-in list (edge_compress_default_types) applies */
    size_t num_types;
    unsigned types_line;
    uint64_t min_size_bytes; /* bodies smaller than this are stored as identity only */
    unsigned gzip_level;     /* 1..9 */
    unsigned brotli_level;   /* 0..11 */
    unsigned threads;        /* 1..64 */
    unsigned queue;          /* jobs waiting for a thread, 1..1000000 */
    unsigned hot_hits;       /* 0: never; else after this many hits the variants are remade at the best levels */
} conf_compress_t;

typedef struct st_conf_t {
    char *file;      /* the file name used in error messages; "<embedded>" for the default */
    char *base_dir;  /* directory relative paths were resolved against */
    conf_listen_t *listen;
    size_t num_listen;
    conf_admin_t admin;
    unsigned workers; /* 0 means one per online CPU (resolved by the caller) */
    conf_cache_t cache;
    conf_limits_t limits;
    conf_origin_t origin;
    uint64_t drain_timeout_ms; /* SIGTERM: how long in-flight requests may finish */
    uint64_t write_timeout_ms; /* a response whose client takes no bytes this long is ended */
    char *access_log;          /* path, "-" for standard output, or NULL for none ("off") */
    conf_purge_t purge;
    conf_compress_t compress;
} conf_t;

/**
 * Loads and validates a YAML file.
 * @param[out] conf   filled on success; on failure it is left disposed (safe to conf_dispose again)
 * @param[in]  path   the file; its directory is the base for relative paths
 * @param[out] err    receives `file:line: key: reason` (or `file: reason` for I/O errors)
 * @return 0, or -1 with err filled
 */
int conf_load_file(conf_t *conf, const char *path, char *err, size_t errlen);

/**
 * Loads and validates YAML text (used for the embedded default and by the unit tests).
 * @param[in] name      the file name used in error messages
 * @param[in] base_dir  directory relative paths are resolved against ("." for the working directory)
 * @return 0, or -1 with err filled
 */
int conf_load_string(conf_t *conf, const char *yaml, size_t len, const char *name, const char *base_dir, char *err,
                     size_t errlen);

/** Frees everything a conf_t owns and zeroes it. Safe on a zeroed or already disposed conf_t. */
void conf_dispose(conf_t *conf);

/**
 * Formats a later error (bind, certificate, store open) as `file:line: key: reason`.
 * @return err
 */
char *conf_error(char *err, size_t errlen, const conf_t *conf, unsigned line, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/** Parses `123`, `64KiB`, `1MiB`, `2GiB`, `10B` (no fractions, no overflow). @return 0, or -1 */
int conf_parse_size(const char *s, uint64_t *bytes);

/** Parses `500ms`, `5s`, `2m`, `1h`, or a bare number of seconds (no overflow). @return 0, or -1 */
int conf_parse_duration_ms(const char *s, uint64_t *ms);

/**
 * Parses a listen address: `127.0.0.1:8080`, `[::1]:8080`, `*:8080`, `localhost:8080`.
 * @param[out] host  malloc'ed host without brackets, NULL for `*`
 * @return 0, or -1 with *reason set to a static string
 */
int conf_parse_address(const char *s, char **host, uint16_t *port, const char **reason);

/**
 * Parses a Redis URL: `redis://[[user]:password@]host[:port][/db]` (host as in conf_parse_address, IPv6 in brackets;
 * user and password taken as written, no percent-decoding; db a decimal number up to 65535).
 * @param[out] host, user, password  malloc'ed (user and password NULL when absent); untouched on failure
 * @return 0, or -1 with *reason set to a static string
 */
int conf_parse_redis_url(const char *s, char **host, uint16_t *port, char **user, char **password, unsigned *db,
                         const char **reason);

#endif
