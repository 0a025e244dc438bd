/*
 * conf/config.c: loads the YAML configuration of cdn-edge into a conf_t (see config.h).
 *
 * Contract:
 * - The YAML text is loaded whole with libyaml's document API (yaml_parser_load), then walked
 *   mapping by mapping. Each mapping is first checked for unknown, duplicate and non-scalar keys,
 *   then each known key is read. The first problem found is the one reported, as
 *   `file:line: key: reason`; `key` is the dotted path (`listen[1].tls.key`), `line` the line of
 *   the offending value (or key, for key errors; or parent key, for a missing key).
 * - Every default comes from a CONF_DEFAULT_* constant of config.h; conf_embedded_default names
 *   only what differs from them.
 * - Relative paths are joined to base_dir (a base of "." leaves them as written), never
 *   canonicalised, so nothing but origin.directory (which must exist) touches the file system.
 * - Ownership: every string in a conf_t is malloc'ed and owned by it; conf_dispose frees them all
 *   and zeroes the struct. A failed load leaves the conf_t disposed.
 * - No global state: the functions are reentrant. Out of memory aborts (like h2o_mem_alloc).
 */
#include "conf/config.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <yaml.h>

/* Only what differs from the CONF_DEFAULT_* constants. Relative paths: against the working
 * directory, so `cdn-edge` run without -c from the repository root finds the bundled site. */
const char conf_embedded_default[] = "# cdn-edge embedded default configuration\n"
                                     "listen:\n"
                                     "  - address: 127.0.0.1:8080\n"
                                     "  - address: 127.0.0.1:8443\n"
                                     "    tls:\n"
                                     "      certificate: " CONF_DEFAULT_SELF_SIGNED_CERT "\n"
                                     "      key: " CONF_DEFAULT_SELF_SIGNED_KEY "\n"
                                     "      self_signed: true\n"
                                     "origin:\n"
                                     "  directory: conf/example-site\n";

#define MIN_CACHE_MAX_SIZE (1024ull * 1024)
#define MAX_WORKERS 256
#define MAX_CLIENT_CONNECTIONS 1000000
#define MAX_PURGE_BODY (64ull * 1024 * 1024)
#define MAX_PURGE_ITEMS 100000
#define MAX_ORIGIN_CONNECTIONS 65535
#define MAX_COMPRESS_THREADS 64
#define MAX_COMPRESS_QUEUE 1000000
#define MAX_COMPRESS_HOT_HITS 16000000 /* fits the 24-bit hit counters of edge/compress_job.c */
#define MAX_COMPRESS_TYPES 256
#define MAX_TAG_HEADERS 16
#define MAX_QUERY_DROP 64
#define MAX_MEDIA_TYPE_LEN 127 /* as edge/compress.c: a longer type never matches */
#define KEY_MAX 128

struct st_loader_t {
    conf_t *conf;
    yaml_document_t *doc;
    char *err;
    size_t errlen;
};

/* ---- small helpers ---- */

static void *xmalloc(size_t sz)
{
    void *p = malloc(sz);
    if (p == NULL) {
        fprintf(stderr, "conf: out of memory\n");
        abort();
    }
    return p;
}

static char *xstrndup(const char *s, size_t len)
{
    char *p = xmalloc(len + 1);
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

static void replace_str(char **dst, char *value)
{
    free(*dst);
    *dst = value;
}

/* Joins a relative path to base_dir; an absolute path, or a base of "." or "", is kept as is. */
static char *resolve_path(const char *base_dir, const char *path)
{
    if (path[0] == '/' || base_dir == NULL || base_dir[0] == '\0' || strcmp(base_dir, ".") == 0)
        return xstrdup(path);
    size_t blen = strlen(base_dir), plen = strlen(path);
    int need_slash = base_dir[blen - 1] != '/';
    char *p = xmalloc(blen + need_slash + plen + 1);
    memcpy(p, base_dir, blen);
    if (need_slash)
        p[blen] = '/';
    memcpy(p + blen + need_slash, path, plen + 1);
    return p;
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

/* Reads the leading decimal digits of s into *value. @return the number of digits, or -1 on overflow */
static int parse_digits(const char *s, uint64_t *value)
{
    uint64_t v = 0;
    int n = 0;
    for (; is_digit(s[n]); ++n) {
        unsigned d = s[n] - '0';
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *value = v;
    return n;
}

static int parse_uint(const char *s, uint64_t *value)
{
    int n = parse_digits(s, value);
    return n > 0 && s[n] == '\0' ? 0 : -1;
}

static int parse_bool(const char *s, int *value)
{
    static const char *const yes[] = {"true", "on", "yes"}, *const no[] = {"false", "off", "no"};
    for (size_t i = 0; i < 3; ++i) {
        if (strcasecmp(s, yes[i]) == 0) {
            *value = 1;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *value = 0;
            return 0;
        }
    }
    return -1;
}

/* A DNS name: dot-separated labels of letters, digits and '-', not starting or ending with '-'. */
static int is_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < len; ++i) {
        char c = s[i];
        if (c == '.') {
            if (label == 0 || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || c == '-' || c == '_') {
            if (label == 0 && c == '-')
                return 0;
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return s[len - 1] != '-';
}

/*
 * Parses a host in [hs, he): `[v6]` (when bracketed), `*` (when allow_any), an IPv4 literal or a
 * host name. *host is malloc'ed, NULL for `*`. @return 0, or -1 with *reason
 */
static int parse_host(const char *hs, const char *he, int bracketed, int allow_any, char **host, const char **reason)
{
    size_t len = he - hs;
    char buf[256];
    *host = NULL;
    if (bracketed) {
        if (len == 0 || len >= sizeof(buf)) {
            *reason = "invalid IPv6 address";
            return -1;
        }
        memcpy(buf, hs, len);
        buf[len] = '\0';
        struct in6_addr a6;
        if (inet_pton(AF_INET6, buf, &a6) != 1) {
            *reason = "invalid IPv6 address";
            return -1;
        }
        *host = xstrdup(buf);
        return 0;
    }
    if (len == 0) {
        *reason = allow_any ? "missing host (use * for any address)" : "missing host";
        return -1;
    }
    if (len == 1 && hs[0] == '*') {
        if (!allow_any) {
            *reason = "invalid host";
            return -1;
        }
        return 0;
    }
    if (memchr(hs, ':', len) != NULL) {
        *reason = "an IPv6 address must be in brackets, as in [::1]";
        return -1;
    }
    /* Digits and dots only: it can only be meant as an IPv4 literal, so it must be a valid one. */
    if (strspn(hs, "0123456789.") >= len) {
        struct in_addr a4;
        if (len >= sizeof(buf))
            goto BadV4;
        memcpy(buf, hs, len);
        buf[len] = '\0';
        if (inet_pton(AF_INET, buf, &a4) != 1)
            goto BadV4;
        *host = xstrdup(buf);
        return 0;
    BadV4:
        *reason = "invalid IPv4 address";
        return -1;
    }
    if (!is_hostname(hs, len)) {
        *reason = "invalid host name";
        return -1;
    }
    *host = xstrndup(hs, len);
    return 0;
}

static int parse_port(const char *s, uint16_t min, uint16_t *port, const char **reason)
{
    uint64_t v;
    if (*s == '\0') {
        *reason = "missing port";
        return -1;
    }
    int n = parse_digits(s, &v);
    if (n <= 0 || s[n] != '\0' || v < min || v > 65535) {
        *reason = min == 0 ? "invalid port (expected 0..65535)" : "invalid port (expected 1..65535)";
        return -1;
    }
    *port = (uint16_t)v;
    return 0;
}

/* Splits `host:port` / `[v6]:port` at the port. @return 0 with the host span and port string */
static int split_host_port(const char *s, const char **hs, const char **he, int *bracketed, const char **port, int *has_port,
                           const char **reason)
{
    *has_port = 1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (close == NULL) {
            *reason = "missing ']' after IPv6 address";
            return -1;
        }
        *hs = s + 1;
        *he = close;
        *bracketed = 1;
        if (close[1] == '\0') {
            *port = close + 1;
            *has_port = 0;
        } else if (close[1] == ':') {
            *port = close + 2;
        } else {
            *reason = "expected ':' after ']'";
            return -1;
        }
        return 0;
    }
    const char *colon = strrchr(s, ':');
    *bracketed = 0;
    *hs = s;
    if (colon == NULL) {
        *he = s + strlen(s);
        *port = *he;
        *has_port = 0;
    } else {
        *he = colon;
        *port = colon + 1;
    }
    return 0;
}

/* ---- error reporting ---- */

static void vformat_error(char *err, size_t errlen, const char *file, unsigned line, const char *key, const char *fmt, va_list args)
{
    if (errlen == 0)
        return;
    int n;
    if (line != 0)
        n = snprintf(err, errlen, "%s:%u: ", file != NULL ? file : "<config>", line);
    else
        n = snprintf(err, errlen, "%s: ", file != NULL ? file : "<config>");
    if (n < 0 || (size_t)n >= errlen)
        return;
    if (key != NULL) {
        int k = snprintf(err + n, errlen - n, "%s: ", key);
        if (k < 0 || (size_t)(n + k) >= errlen)
            return;
        n += k;
    }
    vsnprintf(err + n, errlen - n, fmt, args);
}

__attribute__((format(printf, 4, 5))) static int fail(struct st_loader_t *ld, unsigned line, const char *key, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vformat_error(ld->err, ld->errlen, ld->conf->file, line, key, fmt, args);
    va_end(args);
    return -1;
}

/* ---- YAML node access ---- */

static unsigned node_line(const yaml_node_t *node)
{
    return (unsigned)node->start_mark.line + 1;
}

static yaml_node_t *get_node(struct st_loader_t *ld, int index)
{
    return yaml_document_get_node(ld->doc, index);
}

static const char *node_kind(const yaml_node_t *node)
{
    switch (node->type) {
    case YAML_MAPPING_NODE:
        return "a mapping";
    case YAML_SEQUENCE_NODE:
        return "a list";
    default:
        return "a scalar";
    }
}

static int is_null(const yaml_node_t *node)
{
    if (node->type != YAML_SCALAR_NODE || node->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *v = (const char *)node->data.scalar.value;
    return v[0] == '\0' || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 || strcmp(v, "NULL") == 0;
}

/* The text of a scalar node: not a mapping or list, no NUL inside, not empty (null). */
static int get_scalar(struct st_loader_t *ld, yaml_node_t *node, const char *key, const char **value)
{
    if (node->type != YAML_SCALAR_NODE)
        return fail(ld, node_line(node), key, "expected a scalar value, got %s", node_kind(node));
    if (is_null(node))
        return fail(ld, node_line(node), key, "missing value");
    if (node->data.scalar.length == 0)
        return fail(ld, node_line(node), key, "empty value");
    if (strlen((const char *)node->data.scalar.value) != node->data.scalar.length)
        return fail(ld, node_line(node), key, "value contains a NUL character");
    *value = (const char *)node->data.scalar.value;
    return 0;
}

static int expect_mapping(struct st_loader_t *ld, yaml_node_t *node, const char *key)
{
    if (node->type != YAML_MAPPING_NODE)
        return fail(ld, node_line(node), key, "expected a mapping, got %s", is_null(node) ? "nothing" : node_kind(node));
    return 0;
}

/* `prefix.name` into buf (KEY_MAX bytes); a key too long for it is cut (it only names things in messages). */
static void join_key(char *buf, const char *prefix, const char *name)
{
    size_t plen = strlen(prefix), nlen = strlen(name), len = 0;
    if (plen != 0) {
        if (plen > KEY_MAX - 2)
            plen = KEY_MAX - 2;
        memcpy(buf, prefix, plen);
        buf[plen] = '.';
        len = plen + 1;
    }
    if (nlen > KEY_MAX - 1 - len)
        nlen = KEY_MAX - 1 - len;
    memcpy(buf + len, name, nlen);
    buf[len + nlen] = '\0';
}

/*
 * Checks a mapping's keys: each a non-empty scalar, named in `known` (NULL-terminated), and given
 * once. The reported key is `prefix.name`.
 */
static int check_keys(struct st_loader_t *ld, yaml_node_t *map, const char *prefix, const char *const *known)
{
    char key[KEY_MAX];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = get_node(ld, p->key);
        if (k->type != YAML_SCALAR_NODE)
            return fail(ld, node_line(k), prefix[0] != '\0' ? prefix : NULL, "a key must be a scalar, got %s", node_kind(k));
        const char *name = (const char *)k->data.scalar.value;
        join_key(key, prefix, name);
        size_t i;
        for (i = 0; known[i] != NULL; ++i)
            if (strcmp(known[i], name) == 0)
                break;
        if (known[i] == NULL)
            return fail(ld, node_line(k), key, "unknown key");
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; ++q) {
            yaml_node_t *qk = get_node(ld, q->key);
            if (strcmp((const char *)qk->data.scalar.value, name) == 0)
                return fail(ld, node_line(k), key, "duplicate key");
        }
    }
    return 0;
}

/* The value of `name` in a mapping whose keys check_keys accepted, or NULL; *key_node gets the key. */
static yaml_node_t *lookup(struct st_loader_t *ld, yaml_node_t *map, const char *name, yaml_node_t **key_node)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = get_node(ld, p->key);
        if (strcmp((const char *)k->data.scalar.value, name) == 0) {
            if (key_node != NULL)
                *key_node = k;
            return get_node(ld, p->value);
        }
    }
    return NULL;
}

static int get_string(struct st_loader_t *ld, yaml_node_t *node, const char *key, char **dst)
{
    const char *v;
    if (get_scalar(ld, node, key, &v) != 0)
        return -1;
    replace_str(dst, xstrdup(v));
    return 0;
}

static int get_path(struct st_loader_t *ld, yaml_node_t *node, const char *key, char **dst)
{
    const char *v;
    if (get_scalar(ld, node, key, &v) != 0)
        return -1;
    replace_str(dst, resolve_path(ld->conf->base_dir, v));
    return 0;
}

static int get_bool(struct st_loader_t *ld, yaml_node_t *node, const char *key, int *dst)
{
    const char *v;
    if (get_scalar(ld, node, key, &v) != 0)
        return -1;
    if (parse_bool(v, dst) != 0)
        return fail(ld, node_line(node), key, "expected a boolean (true/false, on/off, yes/no), got `%s`", v);
    return 0;
}

static int get_uint(struct st_loader_t *ld, yaml_node_t *node, const char *key, uint64_t min, uint64_t max, unsigned *dst)
{
    const char *v;
    uint64_t n;
    if (get_scalar(ld, node, key, &v) != 0)
        return -1;
    if (parse_uint(v, &n) != 0)
        return fail(ld, node_line(node), key, "expected an integer, got `%s`", v);
    if (n < min || n > max)
        return fail(ld, node_line(node), key, "must be between %llu and %llu", (unsigned long long)min, (unsigned long long)max);
    *dst = (unsigned)n;
    return 0;
}

static int get_size(struct st_loader_t *ld, yaml_node_t *node, const char *key, uint64_t *dst)
{
    const char *v;
    if (get_scalar(ld, node, key, &v) != 0)
        return -1;
    if (conf_parse_size(v, dst) != 0)
        return fail(ld, node_line(node), key, "invalid size `%s` (expected bytes, or a number with B, KiB, MiB or GiB)", v);
    return 0;
}

/* A duration that must be > 0 (every duration of the schema is a timeout). */
static int get_timeout(struct st_loader_t *ld, yaml_node_t *node, const char *key, uint64_t *dst)
{
    const char *v;
    if (get_scalar(ld, node, key, &v) != 0)
        return -1;
    if (conf_parse_duration_ms(v, dst) != 0)
        return fail(ld, node_line(node), key, "invalid duration `%s` (expected a number with ms, s, m or h)", v);
    if (*dst == 0)
        return fail(ld, node_line(node), key, "must be greater than 0");
    return 0;
}

/* ---- sections ---- */

static int load_tls(struct st_loader_t *ld, yaml_node_t *key_node, yaml_node_t *node, const char *prefix, conf_tls_t *tls)
{
    static const char *const known[] = {"certificate", "key", "self_signed", NULL};
    char key[KEY_MAX];
    yaml_node_t *v;

    tls->line = node_line(key_node);
    if (expect_mapping(ld, node, prefix) != 0 || check_keys(ld, node, prefix, known) != 0)
        return -1;
    join_key(key, prefix, "certificate");
    if ((v = lookup(ld, node, "certificate", NULL)) == NULL)
        return fail(ld, tls->line, key, "missing (a tls mapping needs certificate and key)");
    if (get_path(ld, v, key, &tls->certificate_file) != 0)
        return -1;
    join_key(key, prefix, "key");
    if ((v = lookup(ld, node, "key", NULL)) == NULL)
        return fail(ld, tls->line, key, "missing (a tls mapping needs certificate and key)");
    if (get_path(ld, v, key, &tls->key_file) != 0)
        return -1;
    join_key(key, prefix, "self_signed");
    if ((v = lookup(ld, node, "self_signed", NULL)) != NULL && get_bool(ld, v, key, &tls->self_signed) != 0)
        return -1;
    return 0;
}

static int set_address(struct st_loader_t *ld, conf_listen_t *listen, const char *address, unsigned line, const char *key)
{
    const char *reason;
    char *host;
    uint16_t port;
    if (conf_parse_address(address, &host, &port, &reason) != 0)
        return fail(ld, line, key, "%s", reason);
    replace_str(&listen->address, xstrdup(address));
    replace_str(&listen->host, host);
    listen->port = port;
    listen->line = line;
    return 0;
}

/* Reads `address` and `tls` of a listen entry or of admin (whose keys check_keys accepted). */
static int load_listen_fields(struct st_loader_t *ld, yaml_node_t *node, const char *prefix, conf_listen_t *listen,
                              int address_required, unsigned parent_line)
{
    char key[KEY_MAX];
    yaml_node_t *v, *k;
    const char *s;

    join_key(key, prefix, "address");
    if ((v = lookup(ld, node, "address", NULL)) != NULL) {
        if (get_scalar(ld, v, key, &s) != 0 || set_address(ld, listen, s, node_line(v), key) != 0)
            return -1;
    } else if (address_required) {
        return fail(ld, parent_line, key, "missing");
    }
    join_key(key, prefix, "tls");
    if ((v = lookup(ld, node, "tls", &k)) != NULL) {
        listen->has_tls = 1;
        if (load_tls(ld, k, v, key, &listen->tls) != 0)
            return -1;
    }
    return 0;
}

static int load_listen(struct st_loader_t *ld, yaml_node_t *key_node, yaml_node_t *node)
{
    static const char *const known[] = {"address", "tls", NULL};
    conf_t *conf = ld->conf;

    if (node->type != YAML_SEQUENCE_NODE)
        return fail(ld, node_line(node), "listen", "expected a list of listeners, got %s",
                    is_null(node) ? "nothing" : node_kind(node));
    size_t n = node->data.sequence.items.top - node->data.sequence.items.start;
    if (n == 0)
        return fail(ld, node_line(key_node), "listen", "at least one listener is required");
    conf->listen = xmalloc(n * sizeof(*conf->listen));
    memset(conf->listen, 0, n * sizeof(*conf->listen));
    conf->num_listen = n;
    for (size_t i = 0; i < n; ++i) {
        char prefix[KEY_MAX];
        yaml_node_t *item = get_node(ld, node->data.sequence.items.start[i]);
        snprintf(prefix, sizeof(prefix), "listen[%zu]", i);
        if (expect_mapping(ld, item, prefix) != 0 || check_keys(ld, item, prefix, known) != 0 ||
            load_listen_fields(ld, item, prefix, conf->listen + i, 1, node_line(item)) != 0)
            return -1;
    }
    return 0;
}

static int load_admin(struct st_loader_t *ld, yaml_node_t *node)
{
    static const char *const known[] = {"address", "tls", "token", NULL};
    conf_admin_t *admin = &ld->conf->admin;
    yaml_node_t *v;

    if (node->type == YAML_SCALAR_NODE && !is_null(node)) {
        /* `admin: off` disables; `admin: on` keeps the defaults */
        if (parse_bool((const char *)node->data.scalar.value, &admin->enabled) != 0)
            return fail(ld, node_line(node), "admin", "expected a mapping or off, got `%s`", node->data.scalar.value);
        return 0;
    }
    if (expect_mapping(ld, node, "admin") != 0 || check_keys(ld, node, "admin", known) != 0 ||
        load_listen_fields(ld, node, "admin", &admin->listen, 0, node_line(node)) != 0)
        return -1;
    if ((v = lookup(ld, node, "token", NULL)) != NULL) {
        if (get_string(ld, v, "admin.token", &admin->token) != 0)
            return -1;
        admin->token_line = node_line(v);
    }
    return 0;
}

static int load_cache(struct st_loader_t *ld, yaml_node_t *node)
{
    static const char *const known[] = {"path",  "max_size",   "max_object_size",       "stale_if_unreachable",
                                        "query", "query_drop", "honor_client_no_cache", "write_queue", NULL};
    conf_cache_t *cache = &ld->conf->cache;
    yaml_node_t *v, *k;
    unsigned object_line = 0;

    if (expect_mapping(ld, node, "cache") != 0 || check_keys(ld, node, "cache", known) != 0)
        return -1;
    if ((v = lookup(ld, node, "path", NULL)) != NULL) {
        if (get_path(ld, v, "cache.path", &cache->path) != 0)
            return -1;
        cache->path_line = node_line(v);
    }
    if ((v = lookup(ld, node, "max_size", NULL)) != NULL) {
        if (get_size(ld, v, "cache.max_size", &cache->max_size_bytes) != 0)
            return -1;
        cache->max_size_line = node_line(v);
        if (cache->max_size_bytes < MIN_CACHE_MAX_SIZE)
            return fail(ld, cache->max_size_line, "cache.max_size", "must be at least 1MiB");
    }
    if ((v = lookup(ld, node, "query", NULL)) != NULL) {
        const char *str;
        if (get_scalar(ld, v, "cache.query", &str) != 0)
            return -1;
        if (strcmp(str, "keep") == 0)
            cache->query_mode = CONF_QUERY_KEEP;
        else if (strcmp(str, "sort") == 0)
            cache->query_mode = CONF_QUERY_SORT;
        else if (strcmp(str, "ignore") == 0)
            cache->query_mode = CONF_QUERY_IGNORE;
        else
            return fail(ld, node_line(v), "cache.query", "expected keep, sort or ignore, got `%s`", str);
    }
    if ((v = lookup(ld, node, "query_drop", &k)) != NULL) {
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(ld, node_line(v), "cache.query_drop", "expected a list of parameter names, got %s",
                        is_null(v) ? "nothing" : node_kind(v));
        size_t n = v->data.sequence.items.top - v->data.sequence.items.start;
        if (n > MAX_QUERY_DROP)
            return fail(ld, node_line(k), "cache.query_drop", "at most %d parameter names", MAX_QUERY_DROP);
        cache->query_drop = xmalloc((n + 1) * sizeof(*cache->query_drop));
        memset(cache->query_drop, 0, (n + 1) * sizeof(*cache->query_drop));
        cache->num_query_drop = n;
        for (size_t i = 0; i < n; ++i) {
            char key[KEY_MAX];
            const char *str;
            yaml_node_t *item = get_node(ld, v->data.sequence.items.start[i]);
            snprintf(key, sizeof(key), "cache.query_drop[%zu]", i);
            if (get_scalar(ld, item, key, &str) != 0)
                return -1;
            if (*str == '\0' || strpbrk(str, "&=#? ") != NULL)
                return fail(ld, node_line(item), key, "invalid parameter name `%s`", str);
            cache->query_drop[i] = xstrdup(str);
        }
    }
    if ((v = lookup(ld, node, "honor_client_no_cache", NULL)) != NULL &&
        get_bool(ld, v, "cache.honor_client_no_cache", &cache->honor_client_no_cache) != 0)
        return -1;
    if ((v = lookup(ld, node, "stale_if_unreachable", NULL)) != NULL) {
        const char *str;
        if (get_scalar(ld, v, "cache.stale_if_unreachable", &str) != 0)
            return -1;
        if (conf_parse_duration_ms(str, &cache->stale_if_unreachable_ms) != 0)
            return fail(ld, node_line(v), "cache.stale_if_unreachable", "invalid duration `%s` (expected a number with ms, s, m or h)",
                        str);
    }
    if ((v = lookup(ld, node, "max_object_size", NULL)) != NULL) {
        if (get_size(ld, v, "cache.max_object_size", &cache->max_object_size_bytes) != 0)
            return -1;
        object_line = node_line(v);
        if (cache->max_object_size_bytes == 0)
            return fail(ld, object_line, "cache.max_object_size", "must be greater than 0");
    }
    if (cache->max_object_size_bytes > cache->max_size_bytes)
        return fail(ld, object_line != 0 ? object_line : cache->max_size_line, "cache.max_object_size",
                    "must not exceed cache.max_size");
    if ((v = lookup(ld, node, "write_queue", NULL)) != NULL) {
        if (get_size(ld, v, "cache.write_queue", &cache->write_queue_bytes) != 0)
            return -1;
        if (cache->write_queue_bytes < 1024 * 1024)
            return fail(ld, node_line(v), "cache.write_queue", "must be at least 1MiB");
    }
    return 0;
}

static int load_limits(struct st_loader_t *ld, yaml_node_t *node)
{
    static const char *const known[] = {"request_body", "client_connections", NULL};
    conf_limits_t *limits = &ld->conf->limits;
    yaml_node_t *v;

    if (expect_mapping(ld, node, "limits") != 0 || check_keys(ld, node, "limits", known) != 0)
        return -1;
    if ((v = lookup(ld, node, "request_body", NULL)) != NULL &&
        get_size(ld, v, "limits.request_body", &limits->request_body_bytes) != 0)
        return -1;
    if ((v = lookup(ld, node, "client_connections", NULL)) != NULL &&
        get_uint(ld, v, "limits.client_connections", 1, MAX_CLIENT_CONNECTIONS, &limits->client_connections) != 0)
        return -1;
    return 0;
}

/* `http[s]://host[:port][/]`: no userinfo, path, query or fragment (the edge forwards the client's path). */
static int parse_origin_url(const char *url, conf_origin_t *origin, const char **reason)
{
    const char *p, *end, *hs, *he, *port_str;
    int bracketed, has_port;
    char authority[300];

    if (strncasecmp(url, "http://", 7) == 0) {
        origin->is_tls = 0;
        p = url + 7;
    } else if (strncasecmp(url, "https://", 8) == 0) {
        origin->is_tls = 1;
        p = url + 8;
    } else {
        *reason = "unsupported scheme (expected http:// or https://)";
        return -1;
    }
    end = p + strcspn(p, "/?#");
    if (memchr(p, '@', end - p) != NULL) {
        *reason = "userinfo (user@) is not allowed";
        return -1;
    }
    if (*end == '/' && end[1] == '\0') {
        /* a lone "/" is the same as none */
    } else if (strchr(end, '?') != NULL) {
        *reason = "a query is not allowed";
        return -1;
    } else if (strchr(end, '#') != NULL) {
        *reason = "a fragment is not allowed";
        return -1;
    } else if (*end != '\0') {
        *reason = "a path is not allowed (the client's path is forwarded)";
        return -1;
    }
    if ((size_t)(end - p) >= sizeof(authority)) {
        *reason = "host too long";
        return -1;
    }
    memcpy(authority, p, end - p);
    authority[end - p] = '\0';
    if (split_host_port(authority, &hs, &he, &bracketed, &port_str, &has_port, reason) != 0)
        return -1;
    char *host;
    if (parse_host(hs, he, bracketed, 0, &host, reason) != 0)
        return -1;
    if (!has_port) {
        origin->port = origin->is_tls ? 443 : 80;
    } else if (parse_port(port_str, 1, &origin->port, reason) != 0) {
        free(host);
        return -1;
    }
    replace_str(&origin->host, host);
    return 0;
}

static int load_origin(struct st_loader_t *ld, yaml_node_t *key_node, yaml_node_t *node)
{
    static const char *const known[] = {"url",
                                        "directory",
                                        "cache_control",
                                        "connect_timeout",
                                        "first_byte_timeout",
                                        "idle_timeout",
                                        "pool_idle_timeout",
                                        "max_connections",
                                        NULL};
    conf_origin_t *origin = &ld->conf->origin;
    yaml_node_t *url, *dir, *v;
    const char *s, *reason;

    if (expect_mapping(ld, node, "origin") != 0 || check_keys(ld, node, "origin", known) != 0)
        return -1;
    url = lookup(ld, node, "url", NULL);
    dir = lookup(ld, node, "directory", NULL);
    if (url == NULL && dir == NULL)
        return fail(ld, node_line(key_node), "origin", "one of url or directory is required");
    if (url != NULL && dir != NULL) {
        yaml_node_t *later = node_line(dir) >= node_line(url) ? dir : url;
        return fail(ld, node_line(later), later == dir ? "origin.directory" : "origin.url",
                    "url and directory are mutually exclusive");
    }
    if (url != NULL) {
        if (get_scalar(ld, url, "origin.url", &s) != 0)
            return -1;
        origin->kind = CONF_ORIGIN_HTTP;
        origin->line = node_line(url);
        if (parse_origin_url(s, origin, &reason) != 0)
            return fail(ld, origin->line, "origin.url", "%s", reason);
        replace_str(&origin->url, xstrdup(s));
        if (lookup(ld, node, "cache_control", NULL) != NULL)
            return fail(ld, node_line(lookup(ld, node, "cache_control", NULL)), "origin.cache_control",
                        "only valid with origin.directory");
    } else {
        struct stat st;
        origin->kind = CONF_ORIGIN_DIRECTORY;
        origin->line = node_line(dir);
        if (get_path(ld, dir, "origin.directory", &origin->directory) != 0)
            return -1;
        if (stat(origin->directory, &st) != 0)
            return fail(ld, origin->line, "origin.directory", "%s", strerror(errno));
        if (!S_ISDIR(st.st_mode))
            return fail(ld, origin->line, "origin.directory", "%s", strerror(ENOTDIR));
        replace_str(&origin->cache_control, xstrdup(CONF_DEFAULT_ORIGIN_CACHE_CONTROL));
        if ((v = lookup(ld, node, "cache_control", NULL)) != NULL &&
            get_string(ld, v, "origin.cache_control", &origin->cache_control) != 0)
            return -1;
    }
    if ((v = lookup(ld, node, "connect_timeout", NULL)) != NULL &&
        get_timeout(ld, v, "origin.connect_timeout", &origin->connect_timeout_ms) != 0)
        return -1;
    if ((v = lookup(ld, node, "first_byte_timeout", NULL)) != NULL &&
        get_timeout(ld, v, "origin.first_byte_timeout", &origin->first_byte_timeout_ms) != 0)
        return -1;
    if ((v = lookup(ld, node, "idle_timeout", NULL)) != NULL &&
        get_timeout(ld, v, "origin.idle_timeout", &origin->idle_timeout_ms) != 0)
        return -1;
    if ((v = lookup(ld, node, "pool_idle_timeout", NULL)) != NULL &&
        get_timeout(ld, v, "origin.pool_idle_timeout", &origin->pool_idle_timeout_ms) != 0)
        return -1;
    if ((v = lookup(ld, node, "max_connections", NULL)) != NULL &&
        get_uint(ld, v, "origin.max_connections", 1, MAX_ORIGIN_CONNECTIONS, &origin->max_connections) != 0)
        return -1;
    return 0;
}

static int load_access_log(struct st_loader_t *ld, yaml_node_t *node)
{
    const char *s;
    int on;
    if (get_scalar(ld, node, "access_log", &s) != 0)
        return -1;
    if (parse_bool(s, &on) == 0) {
        if (on)
            return fail(ld, node_line(node), "access_log", "expected a path, \"-\" (standard output) or off");
        replace_str(&ld->conf->access_log, NULL);
    } else if (strcmp(s, "-") == 0) {
        replace_str(&ld->conf->access_log, xstrdup("-"));
    } else {
        replace_str(&ld->conf->access_log, resolve_path(ld->conf->base_dir, s));
    }
    return 0;
}

static int is_tchar(int c);

static int load_purge(struct st_loader_t *ld, yaml_node_t *node)
{
    static const char *const known[] = {"redis",          "stream",           "max_body", "max_items",
                                        "stream_max_len", "catchup_timeout", "timeout",  "tag_headers", NULL};
    conf_purge_t *purge = &ld->conf->purge;
    yaml_node_t *v, *k;
    const char *s, *reason;

    if (expect_mapping(ld, node, "purge") != 0 || check_keys(ld, node, "purge", known) != 0)
        return -1;
    if ((v = lookup(ld, node, "tag_headers", &k)) != NULL) {
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(ld, node_line(v), "purge.tag_headers", "expected a list of header names, got %s",
                        is_null(v) ? "nothing" : node_kind(v));
        size_t n = v->data.sequence.items.top - v->data.sequence.items.start;
        if (n > MAX_TAG_HEADERS)
            return fail(ld, node_line(k), "purge.tag_headers", "at most %d header names", MAX_TAG_HEADERS);
        purge->tag_headers = xmalloc((n + 1) * sizeof(*purge->tag_headers));
        memset(purge->tag_headers, 0, (n + 1) * sizeof(*purge->tag_headers));
        purge->num_tag_headers = n;
        for (size_t i = 0; i < n; ++i) {
            char key[KEY_MAX];
            yaml_node_t *item = get_node(ld, v->data.sequence.items.start[i]);
            snprintf(key, sizeof(key), "purge.tag_headers[%zu]", i);
            if (get_scalar(ld, item, key, &s) != 0)
                return -1;
            if (*s == '\0')
                return fail(ld, node_line(item), key, "empty header name");
            for (const char *p = s; *p != '\0'; ++p)
                if (!is_tchar(*p))
                    return fail(ld, node_line(item), key, "invalid header name `%s`", s);
            char *lower = xstrdup(s);
            for (char *p = lower; *p != '\0'; ++p)
                *p = (char)tolower((unsigned char)*p);
            purge->tag_headers[i] = lower;
        }
    }
    if ((v = lookup(ld, node, "redis", NULL)) != NULL) {
        char *host, *user, *password;
        uint16_t port;
        unsigned db;
        if (get_scalar(ld, v, "purge.redis", &s) != 0)
            return -1;
        purge->redis_line = node_line(v);
        if (conf_parse_redis_url(s, &host, &port, &user, &password, &db, &reason) != 0)
            return fail(ld, purge->redis_line, "purge.redis", "%s", reason);
        replace_str(&purge->redis, xstrdup(s));
        replace_str(&purge->redis_host, host);
        replace_str(&purge->redis_user, user);
        replace_str(&purge->redis_password, password);
        purge->redis_port = port;
        purge->redis_db = db;
    }
    if ((v = lookup(ld, node, "stream", NULL)) != NULL) {
        if (get_scalar(ld, v, "purge.stream", &s) != 0)
            return -1;
        for (const char *p = s; *p != '\0'; ++p)
            if ((unsigned char)*p <= 0x20 || *p == 0x7f)
                return fail(ld, node_line(v), "purge.stream", "must not contain spaces or control characters");
        replace_str(&purge->stream, xstrdup(s));
    }
    if ((v = lookup(ld, node, "max_body", NULL)) != NULL) {
        if (get_size(ld, v, "purge.max_body", &purge->max_body_bytes) != 0)
            return -1;
        if (purge->max_body_bytes < 64 || purge->max_body_bytes > MAX_PURGE_BODY)
            return fail(ld, node_line(v), "purge.max_body", "must be between 64B and 64MiB");
        if (purge->max_body_bytes > ld->conf->limits.request_body_bytes)
            return fail(ld, node_line(v), "purge.max_body", "must not exceed limits.request_body");
    }
    if ((v = lookup(ld, node, "max_items", NULL)) != NULL &&
        get_uint(ld, v, "purge.max_items", 1, MAX_PURGE_ITEMS, &purge->max_items) != 0)
        return -1;
    if ((v = lookup(ld, node, "stream_max_len", NULL)) != NULL) {
        unsigned n;
        if (get_uint(ld, v, "purge.stream_max_len", 0, UINT32_MAX, &n) != 0)
            return -1;
        purge->stream_max_len = n;
    }
    if ((v = lookup(ld, node, "catchup_timeout", NULL)) != NULL &&
        get_timeout(ld, v, "purge.catchup_timeout", &purge->catchup_timeout_ms) != 0)
        return -1;
    if ((v = lookup(ld, node, "timeout", NULL)) != NULL && get_timeout(ld, v, "purge.timeout", &purge->timeout_ms) != 0)
        return -1;
    return 0;
}

/* RFC 9110 §5.6.2 tchar */
static int is_tchar(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* A media-type pattern: "type/subtype", "type/" "*" or "+suffix" (RFC 6838 §4.2.8), tokens without parameters. */
static int is_media_type_pattern(const char *s)
{
    size_t len = strlen(s);
    if (len == 0 || len > MAX_MEDIA_TYPE_LEN)
        return 0;
    if (s[0] == '+') {
        for (size_t i = 1; i < len; ++i)
            if (!is_tchar(s[i]) || s[i] == '*' || s[i] == '+')
                return 0;
        return len > 1;
    }
    const char *slash = strchr(s, '/');
    if (slash == NULL || slash == s || slash[1] == '\0')
        return 0;
    for (const char *p = s; p < slash; ++p)
        if (!is_tchar(*p) || *p == '*')
            return 0;
    if (strcmp(slash + 1, "*") == 0)
        return 1;
    for (const char *p = slash + 1; *p != '\0'; ++p)
        if (!is_tchar(*p) || *p == '*')
            return 0;
    return 1;
}

static int load_compress(struct st_loader_t *ld, yaml_node_t *node)
{
    static const char *const known[] = {"enabled", "types", "min_size", "gzip_level", "brotli_level", "threads", "queue",
                                        "hot_hits", NULL};
    conf_compress_t *compress = &ld->conf->compress;
    yaml_node_t *v, *k;

    if (node->type == YAML_SCALAR_NODE && !is_null(node)) {
        /* `compress: off` disables; `compress: on` keeps the defaults */
        if (parse_bool((const char *)node->data.scalar.value, &compress->enabled) != 0)
            return fail(ld, node_line(node), "compress", "expected a mapping or off, got `%s`", node->data.scalar.value);
        return 0;
    }
    if (expect_mapping(ld, node, "compress") != 0 || check_keys(ld, node, "compress", known) != 0)
        return -1;
    if ((v = lookup(ld, node, "enabled", NULL)) != NULL && get_bool(ld, v, "compress.enabled", &compress->enabled) != 0)
        return -1;
    if ((v = lookup(ld, node, "types", &k)) != NULL) {
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(ld, node_line(v), "compress.types", "expected a list of media types, got %s",
                        is_null(v) ? "nothing" : node_kind(v));
        size_t n = v->data.sequence.items.top - v->data.sequence.items.start;
        if (n == 0)
            return fail(ld, node_line(k), "compress.types", "at least one media type (use enabled: false to turn compression off)");
        if (n > MAX_COMPRESS_TYPES)
            return fail(ld, node_line(k), "compress.types", "at most %d media types", MAX_COMPRESS_TYPES);
        compress->types = xmalloc(n * sizeof(*compress->types));
        memset(compress->types, 0, n * sizeof(*compress->types));
        compress->num_types = n;
        compress->types_line = node_line(k);
        for (size_t i = 0; i < n; ++i) {
            char key[KEY_MAX];
            const char *s;
            yaml_node_t *item = get_node(ld, v->data.sequence.items.start[i]);
            snprintf(key, sizeof(key), "compress.types[%zu]", i);
            if (get_scalar(ld, item, key, &s) != 0)
                return -1;
            if (!is_media_type_pattern(s))
                return fail(ld, node_line(item), key, "invalid media type `%s` (expected type/subtype, type/*, or +suffix)", s);
            compress->types[i] = xstrdup(s);
        }
    }
    if ((v = lookup(ld, node, "min_size", NULL)) != NULL && get_size(ld, v, "compress.min_size", &compress->min_size_bytes) != 0)
        return -1;
    if ((v = lookup(ld, node, "gzip_level", NULL)) != NULL &&
        get_uint(ld, v, "compress.gzip_level", 1, 9, &compress->gzip_level) != 0)
        return -1;
    if ((v = lookup(ld, node, "brotli_level", NULL)) != NULL &&
        get_uint(ld, v, "compress.brotli_level", 0, 11, &compress->brotli_level) != 0)
        return -1;
    if ((v = lookup(ld, node, "threads", NULL)) != NULL &&
        get_uint(ld, v, "compress.threads", 1, MAX_COMPRESS_THREADS, &compress->threads) != 0)
        return -1;
    if ((v = lookup(ld, node, "queue", NULL)) != NULL &&
        get_uint(ld, v, "compress.queue", 1, MAX_COMPRESS_QUEUE, &compress->queue) != 0)
        return -1;
    if ((v = lookup(ld, node, "hot_hits", NULL)) != NULL &&
        get_uint(ld, v, "compress.hot_hits", 0, MAX_COMPRESS_HOT_HITS, &compress->hot_hits) != 0)
        return -1;
    return 0;
}

static void set_defaults(conf_t *conf)
{
    const char *reason;
    conf->admin.enabled = 1;
    conf->admin.listen.address = xstrdup(CONF_DEFAULT_ADMIN_ADDRESS);
    if (conf_parse_address(CONF_DEFAULT_ADMIN_ADDRESS, &conf->admin.listen.host, &conf->admin.listen.port, &reason) != 0)
        abort(); /* our own constant */
    conf->workers = CONF_DEFAULT_WORKERS;
    conf->cache.path = resolve_path(conf->base_dir, CONF_DEFAULT_CACHE_PATH);
    conf->cache.max_size_bytes = CONF_DEFAULT_CACHE_MAX_SIZE;
    conf->cache.max_object_size_bytes = CONF_DEFAULT_CACHE_MAX_OBJECT_SIZE;
    conf->cache.write_queue_bytes = CONF_DEFAULT_CACHE_WRITE_QUEUE;
    conf->cache.stale_if_unreachable_ms = CONF_DEFAULT_STALE_IF_UNREACHABLE_MS;
    conf->limits.request_body_bytes = CONF_DEFAULT_REQUEST_BODY;
    conf->limits.client_connections = CONF_DEFAULT_CLIENT_CONNECTIONS;
    conf->origin.connect_timeout_ms = CONF_DEFAULT_CONNECT_TIMEOUT_MS;
    conf->origin.first_byte_timeout_ms = CONF_DEFAULT_FIRST_BYTE_TIMEOUT_MS;
    conf->origin.idle_timeout_ms = CONF_DEFAULT_IDLE_TIMEOUT_MS;
    conf->origin.pool_idle_timeout_ms = CONF_DEFAULT_POOL_IDLE_TIMEOUT_MS;
    conf->origin.max_connections = CONF_DEFAULT_ORIGIN_MAX_CONNECTIONS;
    conf->drain_timeout_ms = CONF_DEFAULT_DRAIN_TIMEOUT_MS;
    conf->write_timeout_ms = CONF_DEFAULT_WRITE_TIMEOUT_MS;
    conf->access_log = strcmp(CONF_DEFAULT_ACCESS_LOG, "off") == 0 ? NULL : xstrdup(CONF_DEFAULT_ACCESS_LOG);
    conf->purge.stream = xstrdup(CONF_DEFAULT_PURGE_STREAM);
    conf->purge.max_body_bytes = CONF_DEFAULT_PURGE_MAX_BODY;
    conf->purge.max_items = CONF_DEFAULT_PURGE_MAX_ITEMS;
    conf->purge.stream_max_len = CONF_DEFAULT_PURGE_STREAM_MAX_LEN;
    conf->purge.catchup_timeout_ms = CONF_DEFAULT_PURGE_CATCHUP_TIMEOUT_MS;
    conf->purge.timeout_ms = CONF_DEFAULT_PURGE_TIMEOUT_MS;
    conf->compress.enabled = CONF_DEFAULT_COMPRESS_ENABLED;
    conf->compress.min_size_bytes = CONF_DEFAULT_COMPRESS_MIN_SIZE;
    conf->compress.gzip_level = CONF_DEFAULT_COMPRESS_GZIP_LEVEL;
    conf->compress.brotli_level = CONF_DEFAULT_COMPRESS_BROTLI_LEVEL;
    conf->compress.threads = CONF_DEFAULT_COMPRESS_THREADS;
    conf->compress.queue = CONF_DEFAULT_COMPRESS_QUEUE;
    conf->compress.hot_hits = CONF_DEFAULT_COMPRESS_HOT_HITS;
}

static int load_root(struct st_loader_t *ld, yaml_node_t *root)
{
    static const char *const known[] = {"listen",        "admin",         "workers",    "cache", "limits",   "origin",
                                        "drain_timeout", "write_timeout", "access_log", "purge", "compress", NULL};
    conf_t *conf = ld->conf;
    yaml_node_t *v, *k;
    unsigned root_line = root != NULL ? node_line(root) : 1;

    if (root == NULL || is_null(root))
        return fail(ld, root_line, "listen", "at least one listener is required");
    if (root->type != YAML_MAPPING_NODE)
        return fail(ld, root_line, NULL, "the top level must be a mapping, got %s", node_kind(root));
    if (check_keys(ld, root, "", known) != 0)
        return -1;

    if ((v = lookup(ld, root, "listen", &k)) == NULL)
        return fail(ld, root_line, "listen", "at least one listener is required");
    if (load_listen(ld, k, v) != 0)
        return -1;
    if ((v = lookup(ld, root, "admin", NULL)) != NULL && load_admin(ld, v) != 0)
        return -1;
    if ((v = lookup(ld, root, "workers", NULL)) != NULL && get_uint(ld, v, "workers", 0, MAX_WORKERS, &conf->workers) != 0)
        return -1;
    if ((v = lookup(ld, root, "cache", NULL)) != NULL && load_cache(ld, v) != 0)
        return -1;
    if ((v = lookup(ld, root, "limits", NULL)) != NULL && load_limits(ld, v) != 0)
        return -1;
    if ((v = lookup(ld, root, "origin", &k)) == NULL)
        return fail(ld, root_line, "origin", "required (url or directory)");
    if (load_origin(ld, k, v) != 0)
        return -1;
    if ((v = lookup(ld, root, "drain_timeout", NULL)) != NULL && get_timeout(ld, v, "drain_timeout", &conf->drain_timeout_ms) != 0)
        return -1;
    if ((v = lookup(ld, root, "write_timeout", NULL)) != NULL && get_timeout(ld, v, "write_timeout", &conf->write_timeout_ms) != 0)
        return -1;
    if ((v = lookup(ld, root, "access_log", NULL)) != NULL && load_access_log(ld, v) != 0)
        return -1;
    /* after limits: purge.max_body is checked against limits.request_body */
    if ((v = lookup(ld, root, "purge", NULL)) != NULL && load_purge(ld, v) != 0)
        return -1;
    if ((v = lookup(ld, root, "compress", NULL)) != NULL && load_compress(ld, v) != 0)
        return -1;
    return 0;
}

/* Line of a libyaml error; reader errors (bad UTF-8) only carry a byte offset. */
static unsigned yaml_error_line(const yaml_parser_t *parser, const char *yaml, size_t len)
{
    if (parser->error == YAML_READER_ERROR) {
        unsigned line = 1;
        for (size_t i = 0; i < parser->problem_offset && i < len; ++i)
            line += yaml[i] == '\n';
        return line;
    }
    return (unsigned)parser->problem_mark.line + 1;
}

static int load_yaml(struct st_loader_t *ld, const char *yaml, size_t len)
{
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int ret;

    if (!yaml_parser_initialize(&parser))
        return fail(ld, 0, NULL, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        /* yaml_parser_load deletes the partial document itself */
        ret = fail(ld, yaml_error_line(&parser, yaml, len), NULL, "%s", parser.problem != NULL ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
        return ret;
    }
    ld->doc = &doc;
    ret = load_root(ld, yaml_document_get_root_node(&doc));
    ld->doc = NULL;
    if (ret == 0) {
        /* A second document would be silently ignored: refuse it. */
        if (!yaml_parser_load(&parser, &extra)) {
            ret = fail(ld, yaml_error_line(&parser, yaml, len), NULL, "%s", parser.problem != NULL ? parser.problem : "YAML error");
        } else {
            yaml_node_t *root = yaml_document_get_root_node(&extra);
            if (root != NULL)
                ret = fail(ld, node_line(root), NULL, "only one YAML document is allowed");
            yaml_document_delete(&extra);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return ret;
}

/* ---- public functions ---- */

int conf_load_string(conf_t *conf, const char *yaml, size_t len, const char *name, const char *base_dir, char *err, size_t errlen)
{
    struct st_loader_t ld = {conf, NULL, err, errlen};

    memset(conf, 0, sizeof(*conf));
    if (errlen != 0)
        err[0] = '\0';
    conf->file = xstrdup(name != NULL ? name : "<config>");
    conf->base_dir = xstrdup(base_dir != NULL && base_dir[0] != '\0' ? base_dir : ".");
    set_defaults(conf);
    if (load_yaml(&ld, yaml, len) != 0) {
        conf_dispose(conf);
        return -1;
    }
    return 0;
}

int conf_load_file(conf_t *conf, const char *path, char *err, size_t errlen)
{
    FILE *fp;
    char *text = NULL, *base_dir;
    size_t len = 0, cap = 0;
    int ret;

    memset(conf, 0, sizeof(*conf));
    if ((fp = fopen(path, "rb")) == NULL) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    for (;;) {
        if (len == cap) {
            cap = cap == 0 ? 8192 : cap * 2;
            char *grown = realloc(text, cap);
            if (grown == NULL) {
                fprintf(stderr, "conf: out of memory\n");
                abort();
            }
            text = grown;
        }
        size_t n = fread(text + len, 1, cap - len, fp);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno != 0 ? errno : EIO));
        fclose(fp);
        free(text);
        return -1;
    }
    fclose(fp);

    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        base_dir = xstrdup(".");
    else if (slash == path)
        base_dir = xstrdup("/");
    else
        base_dir = xstrndup(path, slash - path);
    ret = conf_load_string(conf, text, len, path, base_dir, err, errlen);
    free(base_dir);
    free(text);
    return ret;
}

static void dispose_listen(conf_listen_t *listen)
{
    free(listen->address);
    free(listen->host);
    free(listen->tls.certificate_file);
    free(listen->tls.key_file);
}

void conf_dispose(conf_t *conf)
{
    for (size_t i = 0; i < conf->num_listen; ++i)
        dispose_listen(conf->listen + i);
    free(conf->listen);
    dispose_listen(&conf->admin.listen);
    free(conf->admin.token);
    free(conf->cache.path);
    free(conf->origin.url);
    free(conf->origin.host);
    free(conf->origin.directory);
    free(conf->origin.cache_control);
    free(conf->access_log);
    free(conf->purge.redis);
    free(conf->purge.redis_host);
    free(conf->purge.redis_user);
    free(conf->purge.redis_password);
    free(conf->purge.stream);
    for (size_t i = 0; i < conf->compress.num_types; ++i)
        free(conf->compress.types[i]);
    free(conf->compress.types);
    for (size_t i = 0; i < conf->cache.num_query_drop; ++i)
        free(conf->cache.query_drop[i]);
    free(conf->cache.query_drop);
    for (size_t i = 0; i < conf->purge.num_tag_headers; ++i)
        free(conf->purge.tag_headers[i]);
    free(conf->purge.tag_headers);
    free(conf->file);
    free(conf->base_dir);
    memset(conf, 0, sizeof(*conf));
}

char *conf_error(char *err, size_t errlen, const conf_t *conf, unsigned line, const char *key, const char *fmt, ...)
{
    va_list args;
    va_start(args, fmt);
    vformat_error(err, errlen, conf->file, line, key, fmt, args);
    va_end(args);
    return err;
}

int conf_parse_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1}, {"B", 1}, {"KiB", 1024}, {"MiB", 1024 * 1024}, {"GiB", 1024 * 1024 * 1024}};
    uint64_t n;
    int digits = parse_digits(s, &n);
    if (digits <= 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); ++i) {
        if (strcmp(s + digits, units[i].suffix) == 0) {
            if (n > UINT64_MAX / units[i].mult)
                return -1;
            *bytes = n * units[i].mult;
            return 0;
        }
    }
    return -1;
}

int conf_parse_duration_ms(const char *s, uint64_t *ms)
{
    static const struct {
        const char *suffix;
        uint64_t mult;
    } units[] = {{"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 60 * 60 * 1000}};
    uint64_t n;
    int digits = parse_digits(s, &n);
    if (digits <= 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); ++i) {
        if (strcmp(s + digits, units[i].suffix) == 0) {
            if (n > UINT64_MAX / units[i].mult)
                return -1;
            *ms = n * units[i].mult;
            return 0;
        }
    }
    return -1;
}

int conf_parse_address(const char *s, char **host, uint16_t *port, const char **reason)
{
    const char *hs, *he, *port_str;
    int bracketed, has_port;
    char *h;

    *host = NULL;
    if (s == NULL || *s == '\0') {
        *reason = "empty address";
        return -1;
    }
    if (split_host_port(s, &hs, &he, &bracketed, &port_str, &has_port, reason) != 0)
        return -1;
    if (!bracketed && memchr(hs, ':', he - hs) != NULL) {
        *reason = "an IPv6 address must be in brackets, as in [::1]:8080";
        return -1;
    }
    if (!has_port || *port_str == '\0') {
        *reason = "missing port (expected HOST:PORT)";
        return -1;
    }
    if (parse_host(hs, he, bracketed, 1, &h, reason) != 0)
        return -1;
    if (parse_port(port_str, 0, port, reason) != 0) {
        free(h);
        return -1;
    }
    *host = h;
    return 0;
}

int conf_parse_redis_url(const char *s, char **host, uint16_t *port, char **user, char **password, unsigned *db,
                         const char **reason)
{
    const char *auth_end, *hostport, *slash, *hs, *he, *port_str;
    char *hp = NULL, *h = NULL, *u = NULL, *pw = NULL;
    int bracketed, has_port;
    uint16_t p = CONF_DEFAULT_REDIS_PORT;
    uint64_t d = 0;

    if (s == NULL || strncmp(s, "redis://", 8) != 0) {
        *reason = "expected redis://[[user]:password@]host[:port][/db]";
        return -1;
    }
    s += 8;
    for (const char *c = s; *c != '\0'; ++c) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f) {
            *reason = "spaces and control characters are not allowed";
            return -1;
        }
    }
    /* userinfo: up to the last '@' (a password may hold '@'; a host never does) */
    if ((auth_end = strrchr(s, '@')) != NULL) {
        const char *colon = memchr(s, ':', auth_end - s);
        if (colon == NULL) {
            *reason = "expected user:password@ or :password@ before the host";
            return -1;
        }
        if (colon + 1 == auth_end) {
            *reason = "empty password";
            return -1;
        }
        if (colon != s)
            u = xstrndup(s, colon - s);
        pw = xstrndup(colon + 1, auth_end - colon - 1);
        hostport = auth_end + 1;
    } else {
        hostport = s;
    }
    if ((slash = strchr(hostport, '/')) != NULL) {
        int n = parse_digits(slash + 1, &d);
        if (slash[1] != '\0' && (n <= 0 || slash[1 + n] != '\0' || d > 65535)) {
            *reason = "invalid database number (expected /0../65535)";
            goto Error;
        }
    }
    hp = slash != NULL ? xstrndup(hostport, slash - hostport) : xstrdup(hostport);
    if (strpbrk(hp, "?#") != NULL) {
        *reason = "a query or fragment is not allowed";
        goto Error;
    }
    if (split_host_port(hp, &hs, &he, &bracketed, &port_str, &has_port, reason) != 0)
        goto Error;
    if (!bracketed && memchr(hs, ':', he - hs) != NULL) {
        *reason = "an IPv6 address must be in brackets, as in [::1]:6379";
        goto Error;
    }
    if (parse_host(hs, he, bracketed, 0, &h, reason) != 0)
        goto Error;
    if (has_port && *port_str != '\0' && parse_port(port_str, 1, &p, reason) != 0)
        goto Error;
    free(hp);
    *host = h;
    *port = p;
    *user = u;
    *password = pw;
    *db = (unsigned)d;
    return 0;

Error:
    free(hp);
    free(h);
    free(u);
    free(pw);
    return -1;
}
