/*
 * edge/main.c: cdn-edge's entry point: arguments, configuration, listeners, worker threads,
 * signals. Nothing else.
 *
 * Start-up order (each step can fail with `file:line: key: reason` and exit 1 before serving):
 * config -> TLS contexts (self-signed certificate made on first run) -> the store (the one MDB_env
 * of the process) -> the origin -> h2o hosts and paths -> listener sockets (all bound here, so
 * port errors come before any thread runs) -> the purge stream (replays missed purges, bounded) ->
 * worker threads -> ready file.
 *
 * Shutdown: SIGTERM or SIGINT (taken by sigwait in the main thread; workers block them) tells
 * every worker to stop accepting and to drain its requests and fills for at most drain_timeout;
 * then the store writer is flushed and synced and the process exits 0. h2o objects are not torn
 * down one by one (h2o 2.2.5's own server does not either): idle keep-alive connections still hold
 * timeouts that h2o_context_dispose would assert on.
 */
#define H2O_USE_LIBUV 0
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <lmdb.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include "h2o.h"
#include "h2o/http1.h"
#include "h2o/http2.h"
#include "conf/config.h"
#include "edge/compress.h"
#include "edge/compress_job.h"
#include "edge/edge.h"
#include "edge/purge_api.h"
#include "edge/tls.h"
#include "purge/tags.h"

#define ACCESS_LOG_FORMAT                                                                                                  \
    "%h %l %u %t \"%r\" %s %b \"%{referer}i\" \"%{user-agent}i\" cache=\"%{cache-status}o\" duration=%{duration}x "     \
    "error=\"%{error}x\""

/* conf/ holds plain numbers and edge/compress.h its own defaults: each default has one value */
_Static_assert(CONF_DEFAULT_COMPRESS_MIN_SIZE == EDGE_DEFAULT_COMPRESS_MIN_SIZE, "compress.min_size default");
_Static_assert(CONF_DEFAULT_COMPRESS_GZIP_LEVEL == EDGE_DEFAULT_GZIP_LEVEL, "compress.gzip_level default");
_Static_assert(CONF_DEFAULT_COMPRESS_BROTLI_LEVEL == EDGE_DEFAULT_BROTLI_LEVEL, "compress.brotli_level default");
_Static_assert(CONF_DEFAULT_COMPRESS_HOT_HITS == EDGE_DEFAULT_COMPRESS_HOT_HITS, "compress.hot_hits default");

struct st_listener_t {
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *sock;
    int is_admin; /* the admin listener is not counted against limits.client_connections */
};

static struct {
    conf_t conf;
    edge_runtime_t rt;
    h2o_hostconf_t *main_hosts[2];
    h2o_hostconf_t *admin_hosts[2];
    SSL_CTX **listen_ssl; /* per conf.listen entry */
    SSL_CTX *admin_ssl;
    int **listen_fds;     /* [listen index][thread index] */
    int admin_fd;
    char **bound_addresses; /* per listen entry, after bind: "127.0.0.1:43210" */
    char *admin_bound;
    edge_thread_t *threads;
    unsigned num_threads;
    pthread_barrier_t started;
} g;

struct st_thread_extra_t {
    h2o_multithread_receiver_t control;
    h2o_multithread_message_t stop_msg;
    volatile int stopping;
    struct st_listener_t *listeners; /* num_listen + admin */
    size_t num_listeners;
};
static struct st_thread_extra_t *extras;

/* --- listeners --- */

static int bind_one(const conf_listen_t *l, uint16_t port, char *err, size_t errlen, const char *key)
{
    struct addrinfo hints = {0}, *res = NULL;
    char portstr[8];
    int fd = -1, on = 1;

    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    hints.ai_family = l->host == NULL ? AF_INET6 : AF_UNSPEC;
    snprintf(portstr, sizeof(portstr), "%u", port);
    int gai = getaddrinfo(l->host, portstr, &hints, &res);
    if (gai != 0 && l->host == NULL) {
        hints.ai_family = AF_INET; /* no IPv6 on this machine */
        gai = getaddrinfo(NULL, portstr, &hints, &res);
    }
    if (gai != 0) {
        conf_error(err, errlen, &g.conf, l->line, key, "cannot resolve %s: %s", l->address, gai_strerror(gai));
        return -1;
    }
    if ((fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
        goto Error;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on)) != 0)
        goto Error;
    if (res->ai_family == AF_INET6 && l->host == NULL) {
        int off = 0;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
    }
    if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0)
        goto Error;
    if (fcntl(fd, F_SETFL, O_NONBLOCK) != 0)
        goto Error;
    freeaddrinfo(res);
    return fd;
Error:
    conf_error(err, errlen, &g.conf, l->line, key, "cannot listen on %s: %s", l->address, strerror(errno));
    if (fd != -1)
        close(fd);
    freeaddrinfo(res);
    return -1;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return 0;
    return ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port : ((struct sockaddr_in6 *)&ss)->sin6_port);
}

static char *bound_address(const conf_listen_t *l, uint16_t port)
{
    char buf[300];
    const char *host = l->host != NULL ? l->host : "*";
    if (strchr(host, ':') != NULL)
        snprintf(buf, sizeof(buf), "[%s]:%u", host, port);
    else
        snprintf(buf, sizeof(buf), "%s:%u", host, port);
    return strdup(buf);
}

/* Binds one socket per thread (SO_REUSEPORT: the kernel balances accepts), all on one port. */
static int bind_listener(const conf_listen_t *l, unsigned count, int *fds, char **address, char *err, size_t errlen,
                         const char *key)
{
    uint16_t port = l->port;
    for (unsigned i = 0; i != count; ++i) {
        if ((fds[i] = bind_one(l, port, err, errlen, key)) == -1)
            return -1;
        if (i == 0)
            port = bound_port(fds[0]);
    }
    *address = bound_address(l, port);
    return 0;
}

static size_t num_connections; /* client connections open, every listener (atomic) */

static void on_socket_close(void *data)
{
    __atomic_fetch_sub(&num_connections, 1, __ATOMIC_RELAXED);
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    struct st_listener_t *l = listener->data;
    h2o_socket_t *sock;

    if (err != NULL)
        return;
    for (int i = 0; i != 16 && (sock = h2o_evloop_socket_accept(listener)) != NULL; ++i) {
        if (l->is_admin) {
            h2o_accept(&l->accept_ctx, sock);
            continue;
        }
        /* limits.client_connections bounds what every connection may hold (buffers, reader slots) */
        if (__atomic_add_fetch(&num_connections, 1, __ATOMIC_RELAXED) > g.conf.limits.client_connections) {
            __atomic_fetch_sub(&num_connections, 1, __ATOMIC_RELAXED);
            h2o_socket_close(sock);
            continue;
        }
        sock->on_close.cb = on_socket_close;
        sock->on_close.data = NULL;
        h2o_accept(&l->accept_ctx, sock);
    }
}

static void listener_start(struct st_listener_t *l, edge_thread_t *th, int fd, SSL_CTX *ssl, h2o_hostconf_t **hosts)
{
    l->accept_ctx.ctx = &th->ctx;
    l->accept_ctx.hosts = hosts;
    l->accept_ctx.ssl_ctx = ssl;
    l->sock = h2o_evloop_socket_create(th->loop, fd, H2O_SOCKET_FLAG_DONT_READ);
    l->sock->data = l;
    h2o_socket_read_start(l->sock, on_accept);
}

/* --- workers --- */

static void on_control(h2o_multithread_receiver_t *receiver, h2o_linklist_t *messages)
{
    struct st_thread_extra_t *x = H2O_STRUCT_FROM_MEMBER(struct st_thread_extra_t, control, receiver);
    while (!h2o_linklist_is_empty(messages)) {
        h2o_multithread_message_t *msg = H2O_STRUCT_FROM_MEMBER(h2o_multithread_message_t, link, messages->next);
        h2o_linklist_unlink(&msg->link);
    }
    x->stopping = 1;
}

static void *worker_main(void *arg)
{
    edge_thread_t *th = arg;
    struct st_thread_extra_t *x = extras + th->index;
    size_t num_listen = g.conf.num_listen;

    edge_this_thread = th;
    th->loop = h2o_evloop_create();
    h2o_context_init(&th->ctx, th->loop, &g.rt.globalconf);
    th->origin = origin_ctx_create(g.rt.origin, &th->ctx);
    edge_handler_thread_init(th);
    edge_purge_api_thread_init(th);
    h2o_multithread_register_receiver(th->ctx.queue, &x->control, on_control);

    x->num_listeners = num_listen + 1;
    x->listeners = calloc(x->num_listeners, sizeof(*x->listeners));
    for (size_t i = 0; i != num_listen; ++i)
        listener_start(x->listeners + i, th, g.listen_fds[i][th->index], g.listen_ssl[i], g.main_hosts);
    if (th->index == 0 && g.admin_fd != -1) {
        x->listeners[num_listen].is_admin = 1;
        listener_start(x->listeners + num_listen, th, g.admin_fd, g.admin_ssl, g.admin_hosts);
    }

    pthread_barrier_wait(&g.started);
    while (!x->stopping)
        h2o_evloop_run(th->loop, INT32_MAX);

    /* drain: no new connections; in-flight requests and fills get until the deadline */
    for (size_t i = 0; i != x->num_listeners; ++i) {
        if (x->listeners[i].sock != NULL) {
            h2o_socket_read_stop(x->listeners[i].sock);
            h2o_socket_close(x->listeners[i].sock);
            x->listeners[i].sock = NULL;
        }
    }
    h2o_context_request_shutdown(&th->ctx);
    uint64_t deadline = h2o_now(th->loop) + g.conf.drain_timeout_ms;
    while ((th->inflight_requests != 0 || th->live_fills != 0) && h2o_now(th->loop) < deadline)
        h2o_evloop_run(th->loop, 50);
    if (th->inflight_requests != 0 || th->live_fills != 0)
        fprintf(stderr, "cdn-edge: worker %u: drain deadline passed with %zu requests and %zu fills in flight\n",
                th->index, th->inflight_requests, th->live_fills);
    edge_store_read_release_shared(); /* requests still in flight keep theirs until the store closes */
    return NULL;
}

/* --- start-up --- */

static void usage(FILE *fp)
{
    fprintf(fp, "usage: cdn-edge [-c FILE] [-t] [--ready-file PATH] [--version]\n"
                "  -c FILE            configuration (YAML); without it the embedded default runs\n"
                "  -t                 check the configuration (certificates included) and exit\n"
                "  --ready-file PATH  once serving, write the bound addresses there as JSON\n"
                "  --version          print the version and exit\n");
}

static int make_tls(const conf_tls_t *tls, const char *key, SSL_CTX **out, int check_only, char *err, size_t errlen)
{
    char reason[4400];
    if (check_only && tls->self_signed && access(tls->certificate_file, F_OK) != 0 && access(tls->key_file, F_OK) != 0) {
        *out = NULL; /* made on first run */
        return 0;
    }
    if ((*out = edge_tls_create_server_ctx(tls, reason, sizeof(reason))) == NULL) {
        conf_error(err, errlen, &g.conf, tls->line, key, "%s", reason);
        return -1;
    }
    return 0;
}

static int write_ready_file(const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *fp = fopen(tmp, "w");
    if (fp == NULL)
        return -1;
    fprintf(fp, "{\"pid\": %d, \"listen\": [", (int)getpid());
    for (size_t i = 0; i != g.conf.num_listen; ++i)
        fprintf(fp, "%s{\"address\": \"%s\", \"tls\": %s}", i == 0 ? "" : ", ", g.bound_addresses[i],
                g.conf.listen[i].has_tls ? "true" : "false");
    fprintf(fp, "], \"admin\": ");
    if (g.admin_bound != NULL)
        fprintf(fp, "\"%s\"}\n", g.admin_bound);
    else
        fprintf(fp, "null}\n");
    if (fclose(fp) != 0)
        return -1;
    return rename(tmp, path);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {{"version", no_argument, NULL, 'V'},
                                             {"ready-file", required_argument, NULL, 'R'},
                                             {"help", no_argument, NULL, 'h'},
                                             {NULL, 0, NULL, 0}};
    const char *conf_file = NULL, *ready_file = NULL;
    int check_only = 0, ch;
    char err[8192];

    /* Body chunks of fills (64 KiB each, allocated on one worker thread, freed after the writer thread stored them)
     * come from mmap, so freeing one gives it back to the system. From the heap they fragmented each thread's arena:
     * after a burst of a million small fills glibc kept GiBs the process no longer used (bench/scale.py). Fixing the
     * threshold also stops glibc from raising it on its own; smaller allocations still use the heap. */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);

    while ((ch = getopt_long(argc, argv, "c:th", longopts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            conf_file = optarg;
            break;
        case 't':
            check_only = 1;
            break;
        case 'R':
            ready_file = optarg;
            break;
        case 'V':
            printf("cdn-edge %s (libh2o %s, %s)\n", EDGE_VERSION, H2O_VERSION, MDB_VERSION_STRING);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 1;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 1;
    }

    int r = conf_file != NULL ? conf_load_file(&g.conf, conf_file, err, sizeof(err))
                              : conf_load_string(&g.conf, conf_embedded_default, strlen(conf_embedded_default),
                                                 "<embedded>", ".", err, sizeof(err));
    if (r != 0) {
        fprintf(stderr, "%s\n", err);
        return 1;
    }

    /* TLS: certificates load (or are made) before anything listens */
    g.listen_ssl = calloc(g.conf.num_listen, sizeof(*g.listen_ssl));
    for (size_t i = 0; i != g.conf.num_listen; ++i) {
        char key[64];
        snprintf(key, sizeof(key), "listen[%zu].tls", i);
        if (g.conf.listen[i].has_tls && make_tls(&g.conf.listen[i].tls, key, g.listen_ssl + i, check_only, err, sizeof(err)) != 0)
            goto Fail;
    }
    if (g.conf.admin.enabled && g.conf.admin.listen.has_tls &&
        make_tls(&g.conf.admin.listen.tls, "admin.tls", &g.admin_ssl, check_only, err, sizeof(err)) != 0)
        goto Fail;

    g.num_threads = g.conf.workers != 0 ? g.conf.workers : (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    if (g.num_threads == 0)
        g.num_threads = 1;

    char reason[1024];
    if ((g.rt.origin = origin_create(&g.conf.origin, g.num_threads, reason, sizeof(reason))) == NULL) {
        conf_error(err, sizeof(err), &g.conf, g.conf.origin.line,
                   g.conf.origin.kind == CONF_ORIGIN_DIRECTORY ? "origin.directory" : "origin.url", "%s", reason);
        goto Fail;
    }
    if (check_only) {
        printf("cdn-edge: the configuration %s is ok\n", g.conf.file);
        return 0;
    }

    signal(SIGPIPE, SIG_IGN); /* h2o writes with writev: a dead peer must not kill us */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL); /* inherited by every thread; the main thread sigwaits */

    edge_store_settings_t ss = {g.conf.cache.path, g.conf.cache.max_size_bytes,
                                g.conf.limits.client_connections * 2 < 126     ? 126
                                : g.conf.limits.client_connections * 2 > 16384 ? 16384
                                                                              : g.conf.limits.client_connections * 2};
    if ((g.rt.store = edge_store_open(&ss, reason, sizeof(reason))) == NULL) {
        conf_error(err, sizeof(err), &g.conf, g.conf.cache.path_line, "cache.path", "%s", reason);
        goto Fail;
    }
    g.rt.conf = &g.conf;
    static const char *const default_tag_headers[] = PURGE_TAGS_DEFAULT_EXTRA_HEADERS;
    g.rt.tag_headers = g.conf.purge.tag_headers != NULL ? (const char *const *)g.conf.purge.tag_headers : default_tag_headers;

    /* compressed variants: made by their own threads, which read and write the store */
    edge_compress_settings_init(&g.rt.compress);
    if (g.conf.compress.types != NULL) { /* else the built-in list */
        g.rt.compress.types = (const char **)g.conf.compress.types; /* owned by g.conf, which lives as long */
        g.rt.compress.num_types = g.conf.compress.num_types;
    }
    g.rt.compress.min_size = g.conf.compress.min_size_bytes;
    g.rt.compress.gzip_level = (int)g.conf.compress.gzip_level;
    g.rt.compress.brotli_level = (int)g.conf.compress.brotli_level;
    g.rt.compress.hot_hits = g.conf.compress.hot_hits;
    g.rt.compress_enabled = g.conf.compress.enabled;
    if (g.rt.compress_enabled &&
        edge_compress_jobs_start(g.rt.store, &g.rt.compress, g.conf.compress.threads, g.conf.compress.queue) != 0) {
        conf_error(err, sizeof(err), &g.conf, 0, "compress.threads", "cannot start the compression threads");
        goto Fail;
    }

    /* h2o configuration */
    h2o_config_init(&g.rt.globalconf);
    g.rt.globalconf.server_name = h2o_iovec_init(H2O_STRLIT("")); /* no Server header of ours */
    g.rt.globalconf.max_request_entity_size = g.conf.limits.request_body_bytes;
    h2o_hostconf_t *host = h2o_config_register_host(&g.rt.globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pathconf = h2o_config_register_path(host, "/", 0);
    edge_purge_api_register_client(pathconf, &g.rt); /* PURGE <url>; every other request goes on to the handler */
    edge_handler_register(pathconf, &g.rt);
    if (g.conf.access_log != NULL) {
        const char *path = strcmp(g.conf.access_log, "-") == 0 ? "/dev/stdout" : g.conf.access_log;
        h2o_access_log_filehandle_t *fh = h2o_access_log_open_handle(path, ACCESS_LOG_FORMAT, H2O_LOGCONF_ESCAPE_APACHE);
        if (fh == NULL) {
            conf_error(err, sizeof(err), &g.conf, 0, "access_log", "cannot open %s", path);
            goto Fail;
        }
        h2o_access_log_register(pathconf, fh);
    }
    h2o_hostconf_t *admin_host = h2o_config_register_host(&g.rt.globalconf, h2o_iovec_init(H2O_STRLIT("admin")), 65535);
    edge_admin_register(admin_host, &g.rt);
    g.main_hosts[0] = host;
    g.admin_hosts[0] = admin_host;

    /* every socket is bound before any thread runs. Our sockets use SO_REUSEPORT (one per worker, and so a
     * new process can take over the ports on reload), which would also let two of our own listeners share
     * a port and split its traffic: a configured address:port may appear once, and the explicit ports are
     * bound before the port-0 ones, so the kernel never hands one of ours to a port-0 listener. */
    for (size_t i = 0; i <= g.conf.num_listen; ++i) {
        const conf_listen_t *a = i < g.conf.num_listen ? g.conf.listen + i : &g.conf.admin.listen;
        if ((i == g.conf.num_listen && !g.conf.admin.enabled) || a->port == 0)
            continue;
        for (size_t j = 0; j < i; ++j) {
            const conf_listen_t *b = g.conf.listen + j;
            if (b->port == a->port && ((a->host == NULL) || (b->host == NULL) || strcmp(a->host, b->host) == 0)) {
                char key[64];
                snprintf(key, sizeof(key), i < g.conf.num_listen ? "listen[%zu].address" : "admin.address", i);
                conf_error(err, sizeof(err), &g.conf, a->line, key, "%s is already used by listen[%zu]", a->address, j);
                goto Fail;
            }
        }
    }
    g.listen_fds = calloc(g.conf.num_listen, sizeof(*g.listen_fds));
    g.bound_addresses = calloc(g.conf.num_listen, sizeof(*g.bound_addresses));
    g.admin_fd = -1;
    for (int explicit_ports = 1; explicit_ports >= 0; --explicit_ports) {
        for (size_t i = 0; i != g.conf.num_listen; ++i) {
            if ((g.conf.listen[i].port != 0) != explicit_ports)
                continue;
            char key[64];
            snprintf(key, sizeof(key), "listen[%zu].address", i);
            g.listen_fds[i] = calloc(g.num_threads, sizeof(int));
            if (bind_listener(g.conf.listen + i, g.num_threads, g.listen_fds[i], g.bound_addresses + i, err, sizeof(err), key) !=
                0)
                goto Fail;
        }
        if (g.conf.admin.enabled && (g.conf.admin.listen.port != 0) == explicit_ports &&
            bind_listener(&g.conf.admin.listen, 1, &g.admin_fd, &g.admin_bound, err, sizeof(err), "admin.address") != 0)
            goto Fail;
    }

    /* purges: replay what the stream holds for this node before serving (bounded by purge.catchup_timeout) */
    if (edge_purge_api_start(&g.rt) != 0) {
        conf_error(err, sizeof(err), &g.conf, g.conf.purge.redis_line, "purge.redis", "cannot start the purge stream");
        goto Fail;
    }

    /* workers */
    g.threads = calloc(g.num_threads, sizeof(*g.threads));
    extras = calloc(g.num_threads, sizeof(*extras));
    pthread_barrier_init(&g.started, NULL, g.num_threads + 1);
    pthread_t *tids = calloc(g.num_threads, sizeof(*tids));
    for (unsigned i = 0; i != g.num_threads; ++i) {
        g.threads[i].index = i;
        g.threads[i].rt = &g.rt;
        h2o_multithread_create_thread(tids + i, NULL, worker_main, g.threads + i);
    }
    pthread_barrier_wait(&g.started);
    for (size_t i = 0; i != g.conf.num_listen; ++i)
        fprintf(stderr, "cdn-edge: listening on %s%s\n", g.bound_addresses[i], g.conf.listen[i].has_tls ? " (tls)" : "");
    if (g.admin_bound != NULL)
        fprintf(stderr, "cdn-edge: admin on %s\n", g.admin_bound);
    if (ready_file != NULL && write_ready_file(ready_file) != 0)
        fprintf(stderr, "cdn-edge: cannot write the ready file %s: %s\n", ready_file, strerror(errno));

    int sig;
    sigwait(&sigs, &sig);
    fprintf(stderr, "cdn-edge: %s: draining for up to %llu ms\n", sig == SIGTERM ? "SIGTERM" : "SIGINT",
            (unsigned long long)g.conf.drain_timeout_ms);
    for (unsigned i = 0; i != g.num_threads; ++i)
        h2o_multithread_send_message(&extras[i].control, &extras[i].stop_msg);
    for (unsigned i = 0; i != g.num_threads; ++i)
        pthread_join(tids[i], NULL);
    free(tids);
    edge_compress_jobs_stop(); /* queued jobs are dropped, running ones finish: before the store closes */
    edge_purge_api_stop(); /* the consumer may be applying an entry: before the store closes */
    edge_store_close(g.rt.store); /* applies what the workers queued, then syncs */
    g.rt.store = NULL;
    fprintf(stderr, "cdn-edge: stopped\n");
    return 0;

Fail:
    fprintf(stderr, "%s\n", err);
    return 1;
}
