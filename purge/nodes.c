/*
 * purge/nodes.c: the nodes file of cdn-purge, loaded with libyaml's document API.
 *
 * Contract: the whole file is checked before anything is returned; the first problem is reported as
 * `file:line: key: reason` (YAML syntax errors as `file:line: reason`), the way conf/config.c reports them. Each
 * mapping is checked for unknown, duplicate and non-scalar keys before its values are read. No state, any thread.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>
#include "purge/nodes.h"
#include "purge/url.h"

#define KEY_MAX 64
#define MAX_FILE_BYTES (4 * 1024 * 1024)

struct st_loader_t {
    yaml_document_t *doc;
    const char *file;
    char *err;
    size_t errlen;
};

static const char *const top_keys[] = {"token", "nodes", NULL};
static const char *const node_keys[] = {"name", "admin", "token", NULL};

__attribute__((format(printf, 4, 5))) static int fail(struct st_loader_t *ld, unsigned line, const char *key,
                                                      const char *fmt, ...)
{
    va_list args;
    int n;
    if (ld->errlen == 0)
        return -1;
    if (key != NULL)
        n = snprintf(ld->err, ld->errlen, "%s:%u: %s: ", ld->file, line, key);
    else
        n = snprintf(ld->err, ld->errlen, "%s:%u: ", ld->file, line);
    if (n < 0 || (size_t)n >= ld->errlen)
        return -1;
    va_start(args, fmt);
    vsnprintf(ld->err + n, ld->errlen - n, fmt, args);
    va_end(args);
    return -1;
}

static unsigned node_line(const yaml_node_t *node)
{
    return (unsigned)node->start_mark.line + 1;
}

static yaml_node_t *get_node(struct st_loader_t *ld, int index)
{
    return yaml_document_get_node(ld->doc, index);
}

static const char *scalar(const yaml_node_t *node)
{
    return (const char *)node->data.scalar.value;
}

static int check_keys(struct st_loader_t *ld, yaml_node_t *map, const char *prefix, const char *const *known)
{
    char key[KEY_MAX + 32];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; ++p) {
        yaml_node_t *k = get_node(ld, p->key);
        if (k->type != YAML_SCALAR_NODE)
            return fail(ld, node_line(k), prefix[0] != '\0' ? prefix : NULL, "a key must be a scalar");
        snprintf(key, sizeof(key), "%s%s%.*s", prefix, prefix[0] != '\0' ? "." : "", KEY_MAX, scalar(k));
        size_t i;
        for (i = 0; known[i] != NULL; ++i)
            if (strcmp(known[i], scalar(k)) == 0)
                break;
        if (known[i] == NULL)
            return fail(ld, node_line(k), key, "unknown key");
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; ++q)
            if (strcmp(scalar(get_node(ld, q->key)), scalar(k)) == 0)
                return fail(ld, node_line(k), key, "duplicate key");
    }
    return 0;
}

static yaml_node_t *lookup(struct st_loader_t *ld, yaml_node_t *map, const char *name)
{
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; ++p)
        if (strcmp(scalar(get_node(ld, p->key)), name) == 0)
            return get_node(ld, p->value);
    return NULL;
}

/* A scalar value, copied into *out (malloc'ed). A null / empty value is refused. */
static int get_string(struct st_loader_t *ld, yaml_node_t *value, const char *key, char **out)
{
    if (value->type != YAML_SCALAR_NODE)
        return fail(ld, node_line(value), key, "must be a string");
    if (value->data.scalar.length == 0)
        return fail(ld, node_line(value), key, "must not be empty");
    if (strlen(scalar(value)) != value->data.scalar.length)
        return fail(ld, node_line(value), key, "NUL byte");
    if ((*out = strdup(scalar(value))) == NULL)
        return fail(ld, node_line(value), key, "out of memory");
    return 0;
}

/* Tokens go into an Authorization header: printable ASCII, no space (also keeps CR/LF out of the request). */
static int get_token(struct st_loader_t *ld, yaml_node_t *value, const char *key, char **out)
{
    if (get_string(ld, value, key, out) != 0)
        return -1;
    for (const char *p = *out; *p != '\0'; ++p) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f) {
            free(*out);
            *out = NULL;
            return fail(ld, node_line(value), key, "must be printable ASCII without spaces");
        }
    }
    return 0;
}

static int check_name(struct st_loader_t *ld, yaml_node_t *value, const char *key, const char *name)
{
    if (strlen(name) > PURGE_NODE_NAME_MAX_BYTES)
        return fail(ld, node_line(value), key, "longer than %d bytes", PURGE_NODE_NAME_MAX_BYTES);
    for (const char *p = name; *p != '\0'; ++p) {
        char c = *p;
        if (!(('a' <= c && c <= 'z') || ('A' <= c && c <= 'Z') || ('0' <= c && c <= '9') || c == '.' || c == '_' ||
              c == ':' || c == '-'))
            return fail(ld, node_line(value), key, "only letters, digits and . _ : - are allowed");
    }
    return 0;
}

/* admin: http(s)://host[:port][/base], no query, fragment or userinfo; normalised without a trailing '/'. */
static int check_admin(struct st_loader_t *ld, yaml_node_t *value, const char *key, char **admin)
{
    const char *reason;
    char *norm;
    if (strchr(*admin, '?') != NULL)
        return fail(ld, node_line(value), key, "bad URL: query not allowed");
    if (purge_url_normalize(*admin, strlen(*admin), 0, &norm, &reason) != 0)
        return fail(ld, node_line(value), key, "bad URL: %s", reason);
    size_t n = strlen(norm);
    while (n > 0 && norm[n - 1] == '/')
        norm[--n] = '\0';
    free(*admin);
    *admin = norm;
    return 0;
}

static int load_node(struct st_loader_t *ld, yaml_node_t *map, size_t idx, const char *default_token, purge_node_t *node)
{
    char prefix[32], key[64];
    yaml_node_t *v;

    snprintf(prefix, sizeof(prefix), "nodes[%zu]", idx);
    node->line = node_line(map);
    if (map->type != YAML_MAPPING_NODE)
        return fail(ld, node_line(map), prefix, "must be a mapping with name and admin");
    if (check_keys(ld, map, prefix, node_keys) != 0)
        return -1;

    snprintf(key, sizeof(key), "%s.name", prefix);
    if ((v = lookup(ld, map, "name")) == NULL)
        return fail(ld, node_line(map), key, "missing");
    if (get_string(ld, v, key, &node->name) != 0 || check_name(ld, v, key, node->name) != 0)
        return -1;

    snprintf(key, sizeof(key), "%s.admin", prefix);
    if ((v = lookup(ld, map, "admin")) == NULL)
        return fail(ld, node_line(map), key, "missing");
    if (get_string(ld, v, key, &node->admin) != 0 || check_admin(ld, v, key, &node->admin) != 0)
        return -1;

    snprintf(key, sizeof(key), "%s.token", prefix);
    if ((v = lookup(ld, map, "token")) != NULL)
        return get_token(ld, v, key, &node->token);
    if (default_token == NULL)
        return fail(ld, node_line(map), key, "missing, and there is no top-level token");
    if ((node->token = strdup(default_token)) == NULL)
        return fail(ld, node_line(map), key, "out of memory");
    return 0;
}

static int load_root(struct st_loader_t *ld, yaml_node_t *root, purge_nodes_t *out)
{
    char *default_token = NULL;
    yaml_node_t *v;
    int ret = -1;

    if (root == NULL)
        return fail(ld, 1, NULL, "empty file: expected a mapping with nodes");
    if (root->type != YAML_MAPPING_NODE)
        return fail(ld, node_line(root), NULL, "expected a mapping with nodes");
    if (check_keys(ld, root, "", top_keys) != 0)
        return -1;
    if ((v = lookup(ld, root, "token")) != NULL && get_token(ld, v, "token", &default_token) != 0)
        return -1;
    if ((v = lookup(ld, root, "nodes")) == NULL) {
        fail(ld, node_line(root), "nodes", "missing");
        goto Exit;
    }
    if (v->type != YAML_SEQUENCE_NODE) {
        fail(ld, node_line(v), "nodes", "must be a list");
        goto Exit;
    }
    size_t n = v->data.sequence.items.top - v->data.sequence.items.start;
    if (n == 0) {
        fail(ld, node_line(v), "nodes", "must not be empty");
        goto Exit;
    }
    if ((out->nodes = calloc(n, sizeof(*out->nodes))) == NULL) {
        fail(ld, node_line(v), "nodes", "out of memory");
        goto Exit;
    }
    for (size_t i = 0; i != n; ++i) {
        yaml_node_t *item = get_node(ld, v->data.sequence.items.start[i]);
        purge_node_t *node = &out->nodes[i];
        out->count = i + 1; /* so that dispose frees a half-loaded node */
        if (load_node(ld, item, i, default_token, node) != 0)
            goto Exit;
        for (size_t j = 0; j != i; ++j) {
            if (strcmp(out->nodes[j].name, node->name) == 0) {
                char key[64];
                snprintf(key, sizeof(key), "nodes[%zu].name", i);
                fail(ld, node_line(lookup(ld, item, "name")), key, "duplicate of nodes[%zu] (line %u)", j,
                     out->nodes[j].line);
                goto Exit;
            }
        }
    }
    ret = 0;
Exit:
    free(default_token);
    return ret;
}

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

int purge_nodes_load_string(purge_nodes_t *out, const char *yaml, size_t len, const char *name, char *err,
                            size_t errlen)
{
    struct st_loader_t ld = {.file = name, .err = err, .errlen = errlen};
    yaml_parser_t parser;
    yaml_document_t doc, extra;
    int ret;

    memset(out, 0, sizeof(*out));
    if (!yaml_parser_initialize(&parser))
        return fail(&ld, 1, NULL, "cannot initialise the YAML parser");
    yaml_parser_set_input_string(&parser, (const unsigned char *)yaml, len);
    if (!yaml_parser_load(&parser, &doc)) {
        ret = fail(&ld, yaml_error_line(&parser, yaml, len), NULL, "%s",
                   parser.problem != NULL ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
        return ret;
    }
    ld.doc = &doc;
    ret = load_root(&ld, yaml_document_get_root_node(&doc), out);
    if (ret == 0) {
        /* a second document would be ignored silently: refuse it */
        if (!yaml_parser_load(&parser, &extra)) {
            ret = fail(&ld, yaml_error_line(&parser, yaml, len), NULL, "%s",
                       parser.problem != NULL ? parser.problem : "YAML error");
        } else {
            yaml_node_t *root = yaml_document_get_root_node(&extra);
            if (root != NULL)
                ret = fail(&ld, node_line(root), NULL, "only one YAML document is allowed");
            yaml_document_delete(&extra);
        }
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (ret != 0)
        purge_nodes_dispose(out);
    return ret;
}

int purge_nodes_load_file(purge_nodes_t *out, const char *path, char *err, size_t errlen)
{
    struct st_loader_t ld = {.file = path, .err = err, .errlen = errlen};
    FILE *fp;
    char *buf = NULL;
    size_t len = 0;
    int ret;

    memset(out, 0, sizeof(*out));
    if ((fp = fopen(path, "rb")) == NULL) {
        int e = errno;
        if (errlen != 0)
            snprintf(err, errlen, "%s: %s", path, strerror(e));
        return -1;
    }
    if ((buf = malloc(MAX_FILE_BYTES + 1)) == NULL) {
        fclose(fp);
        return fail(&ld, 1, NULL, "out of memory");
    }
    len = fread(buf, 1, MAX_FILE_BYTES + 1, fp);
    if (ferror(fp)) {
        ret = fail(&ld, 1, NULL, "read error");
    } else if (len > MAX_FILE_BYTES) {
        ret = fail(&ld, 1, NULL, "file larger than %d bytes", MAX_FILE_BYTES);
    } else {
        ret = purge_nodes_load_string(out, buf, len, path, err, errlen);
    }
    fclose(fp);
    free(buf);
    return ret;
}

void purge_nodes_dispose(purge_nodes_t *nodes)
{
    for (size_t i = 0; i != nodes->count; ++i) {
        free(nodes->nodes[i].name);
        free(nodes->nodes[i].admin);
        free(nodes->nodes[i].token);
    }
    free(nodes->nodes);
    memset(nodes, 0, sizeof(*nodes));
}
