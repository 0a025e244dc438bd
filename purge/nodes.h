/*
 * purge/nodes.h: the nodes file of cdn-purge (libyaml).
 *
 *   token: "secret"                 # default for every node (optional when every node has its own)
 *   nodes:
 *     - name: fra-1                 # [A-Za-z0-9._:-], at most 64 bytes, unique
 *       admin: http://10.0.0.1:8081 # http(s)://host[:port][/base path]; the tool POSTs to <admin>/purge
 *     - name: sin-1
 *       admin: https://10.1.0.1:8081
 *       token: "other"              # per-node override
 *
 * Errors are one line, `file:line: key: reason`, with keys such as `token`, `nodes`, `nodes[1].admin`.
 * Tokens are printable ASCII without spaces (they travel in an Authorization header). No state, any thread.
 */
#ifndef PURGE_NODES_H
#define PURGE_NODES_H

#include <stddef.h>

#define PURGE_NODE_NAME_MAX_BYTES 64

typedef struct st_purge_node_t {
    char *name;
    char *admin;  /**< normalised base URL: lower-case scheme and host, no trailing '/' */
    char *token;  /**< the node's token, or a copy of the default */
    unsigned line; /**< line of the node's entry in the file */
} purge_node_t;

typedef struct st_purge_nodes_t {
    purge_node_t *nodes;
    size_t count;
} purge_nodes_t;

/**
 * Loads a nodes file.
 * @param[out] out  zeroed then filled on success (left zeroed on failure); release with purge_nodes_dispose
 * @param[out] err  `file:line: key: reason` on failure
 * @return 0, or -1
 */
int purge_nodes_load_file(purge_nodes_t *out, const char *path, char *err, size_t errlen);

/** purge_nodes_load_file on text in memory; `name` stands for the file name in errors. */
int purge_nodes_load_string(purge_nodes_t *out, const char *yaml, size_t len, const char *name, char *err,
                            size_t errlen);

/** Frees what a purge_nodes_t owns and zeroes it. Safe on a zeroed value and twice. */
void purge_nodes_dispose(purge_nodes_t *nodes);

#endif
