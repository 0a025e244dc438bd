/*
 * edge/admin.c: the admin listener's endpoints: GET /healthz, GET /metrics and POST /purge (edge/purge_api.c).
 *
 * The admin host is reachable only through the admin listener's accept context (its hosts array
 * holds only this host), so none of this is exposed on client listeners.
 */
#define H2O_USE_LIBUV 0
#include <string.h>
#include "h2o.h"
#include "edge/edge.h"
#include "edge/metrics.h"
#include "edge/purge_api.h"

struct st_admin_handler_t {
    h2o_handler_t super;
    edge_runtime_t *rt;
    int (*serve)(struct st_admin_handler_t *self, h2o_req_t *req);
};

static int only_get(h2o_req_t *req)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD")))
        return 1;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, HEAD"));
    h2o_send_error_generic(req, 405, "Method Not Allowed", "method not allowed\n", H2O_SEND_ERROR_KEEP_HEADERS);
    return 0;
}

static int serve_healthz(struct st_admin_handler_t *self, h2o_req_t *req)
{
    if (!only_get(req))
        return 0;
    req->res.status = self->rt->store != NULL ? 200 : 503;
    req->res.reason = req->res.status == 200 ? "OK" : "Service Unavailable";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/plain"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    /* the node serves while the purge stream is down (it keeps retrying): healthz says so, and stays 200 */
    int stream = edge_purge_api_stream_state();
    const char *body = req->res.status == 200 ? "ok\n" : "store not open\n";
    const char *purge = stream < 0 ? "" : stream ? "purge stream: up\n" : "purge stream: down\n";
    h2o_iovec_t out = h2o_concat(&req->pool, h2o_iovec_init(body, strlen(body)), h2o_iovec_init(purge, strlen(purge)));
    h2o_send_inline(req, out.base, out.len);
    return 0;
}

static int serve_metrics(struct st_admin_handler_t *self, h2o_req_t *req)
{
    if (!only_get(req))
        return 0;
    h2o_iovec_t body = h2o_concat(&req->pool, edge_metrics_render(&req->pool, self->rt->store, self->rt->origin),
                                  edge_purge_api_render_metrics(&req->pool));
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/plain; version=0.0.4; charset=utf-8"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body.base, body.len);
    return 0;
}

static int on_req(h2o_handler_t *_self, h2o_req_t *req)
{
    struct st_admin_handler_t *self = (void *)_self;
    /* a path prefix also matches "/healthz/..."; only the exact paths are endpoints */
    if (!h2o_memis(req->path_normalized.base, req->path_normalized.len, req->pathconf->path.base, req->pathconf->path.len))
        return -1;
    return self->serve(self, req);
}

static void add_endpoint(h2o_hostconf_t *hostconf, const char *path, edge_runtime_t *rt,
                         int (*serve)(struct st_admin_handler_t *, h2o_req_t *))
{
    h2o_pathconf_t *pathconf = h2o_config_register_path(hostconf, path, 0);
    struct st_admin_handler_t *self = (void *)h2o_create_handler(pathconf, sizeof(*self));
    self->super.on_req = on_req;
    self->rt = rt;
    self->serve = serve;
}

void edge_admin_register(h2o_hostconf_t *hostconf, edge_runtime_t *rt)
{
    add_endpoint(hostconf, "/healthz", rt, serve_healthz);
    add_endpoint(hostconf, "/metrics", rt, serve_metrics);
    edge_purge_api_register(hostconf, rt);
}
