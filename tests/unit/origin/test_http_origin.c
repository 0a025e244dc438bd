/*
 * End-to-end tests of origin/http_origin.c: a real h2o loop in the test, against a tiny HTTP origin
 * written here (127.0.0.1, port 0, one thread per connection, behaviour chosen by the request path).
 * They prove the framing, parsing, keep-alive and stale-connection rules of http_origin.c and the truncation
 * rules of the header: a chunked body cut at a chunk boundary
 * and a Content-Length body cut short both end with ORIGIN_ETRUNCATED, never with success.
 * Timeouts are short real durations (100-300 ms); the origin never sleeps: where the order of reads
 * matters it waits on a semaphore the test posts once the client has seen the first bytes.
 */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>
#include "origin/origin_private.h"
#include "origin_test_loop.h"

#define BIG_SIZE (4 * 1024 * 1024)
#define MAX_CONN_THREADS 64

/* --- the test origin --- */

struct test_origin {
    int listen_fd;
    uint16_t port;
    pthread_t acceptor;
    pthread_t conns[MAX_CONN_THREADS];
    int conn_fds[MAX_CONN_THREADS];
    unsigned num_conns; /* accepted connections */
    unsigned requests;  /* requests read */
    pthread_mutex_t mutex;
    sem_t go; /* posted by the test: "the client has the first part" */
};

static struct test_origin server;

static void write_all(int fd, const char *s, size_t len)
{
    while (len != 0) {
        ssize_t n = write(fd, s, len);
        if (n <= 0)
            return; /* the client went away: that is a test outcome, not an origin error */
        s += n;
        len -= (size_t)n;
    }
}

static void write_str(int fd, const char *s)
{
    write_all(fd, s, strlen(s));
}

/* Reads one request (head and Content-Length body). @return the head length, or -1 on close */
static ssize_t read_request(int fd, char *buf, size_t cap, size_t *have, char *method, char *path)
{
    char *end;
    while ((end = memmem(buf, *have, "\r\n\r\n", 4)) == NULL) {
        if (*have == cap)
            return -1;
        ssize_t n = read(fd, buf + *have, cap - *have);
        if (n <= 0)
            return -1;
        *have += (size_t)n;
    }
    size_t head_len = end + 4 - buf;
    size_t body_len = 0;
    for (char *p = buf; p < end; p = strstr(p, "\r\n") + 2)
        if (strncasecmp(p, "content-length:", 15) == 0)
            body_len = strtoul(p + 15, NULL, 10);
    while (*have < head_len + body_len) {
        ssize_t n = read(fd, buf + *have, cap - *have);
        if (n <= 0)
            return -1;
        *have += (size_t)n;
    }
    if (sscanf(buf, "%15s %255s", method, path) != 2)
        return -1;
    return (ssize_t)(head_len + body_len);
}

static void *conn_main(void *arg)
{
    int fd = (int)(intptr_t)arg;
    static char big[BIG_SIZE];
    char *buf = malloc(65536);
    size_t have = 0;
    char method[16], path[256];
    ssize_t reqlen;
    int drop_next = 0; /* close the connection on its next request, without an answer (a stale keep-alive) */

    while ((reqlen = read_request(fd, buf, 65536, &have, method, path)) > 0) {
        char head[512];
        pthread_mutex_lock(&server.mutex);
        ++server.requests;
        pthread_mutex_unlock(&server.mutex);
        if (drop_next)
            break;
        if (strcmp(path, "/cl") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\nX-Test: a\r\nConnection: keep-alive, x-hop\r\n"
                          "X-Hop: 1\r\nKeep-Alive: timeout=5\r\n\r\nhello world");
        } else if (strcmp(path, "/echo") == 0) {
            int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %zd\r\n\r\n", reqlen);
            write_all(fd, head, n);
            write_all(fd, buf, (size_t)reqlen);
        } else if (strcmp(path, "/head") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n");
        } else if (strcmp(path, "/204") == 0) {
            write_str(fd, "HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n");
        } else if (strcmp(path, "/chunked") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        } else if (strcmp(path, "/chunked-and-cl") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        } else if (strcmp(path, "/chunked-slow") == 0) {
            /* the 0-chunk comes in a later read than the data */
            write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            sem_wait(&server.go);
            write_str(fd, "0\r\n\r\n");
        } else if (strcmp(path, "/chunked-cut") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            break;
        } else if (strcmp(path, "/chunked-cut-slow") == 0) {
            /* a whole chunk, read by the client, then the close in a read of its own */
            write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
            sem_wait(&server.go);
            break;
        } else if (strcmp(path, "/chunked-cut-mid") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel");
            break;
        } else if (strcmp(path, "/cl-short") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part");
            break;
        } else if (strcmp(path, "/close") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nclose-delimited body");
            break;
        } else if (strcmp(path, "/dup-cl") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd");
            break;
        } else if (strcmp(path, "/te-gzip-chunked") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n");
        } else if (strcmp(path, "/te-Chunked") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n");
        } else if (strcmp(path, "/chunked-trailer") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n");
        } else if (strcmp(path, "/chunked-bad") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
        } else if (strcmp(path, "/cl-12abc") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\nhello world!");
        } else if (strcmp(path, "/interim") == 0) {
            write_str(fd, "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
                          "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Final: 1\r\n\r\nok");
        } else if (strcmp(path, "/interim-flood") == 0) {
            for (int i = 0; i != ORIGIN_HTTP_MAX_INTERIM + 1; ++i)
                write_str(fd, "HTTP/1.1 100 Continue\r\n\r\n");
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        } else if (strcmp(path, "/huge-head") == 0) {
            /* one header line longer than the whole head may be */
            static char line[ORIGIN_HTTP_MAX_HEAD_BYTES + 16];
            memset(line, 'a', sizeof(line));
            write_str(fd, "HTTP/1.1 200 OK\r\nX-Huge: ");
            write_all(fd, line, sizeof(line));
            write_str(fd, "\r\nContent-Length: 2\r\n\r\nok");
        } else if (strcmp(path, "/many-headers") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\n");
            for (int i = 0; i != ORIGIN_HTTP_MAX_HEADERS + 1; ++i)
                write_str(fd, "X-Many: 1\r\n");
            write_str(fd, "Content-Length: 2\r\n\r\nok");
        } else if (strcmp(path, "/http10") == 0) {
            /* no keep-alive in HTTP/1.0 unless asked: the connection stays open here, the client must close it */
            write_str(fd, "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello");
        } else if (strcmp(path, "/http10-keepalive") == 0) {
            write_str(fd, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello");
        } else if (strcmp(path, "/conn-close-open") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello");
        } else if (strcmp(path, "/extra") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloEXTRA");
        } else if (strcmp(path, "/stale-next") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
            drop_next = 1;
        } else if (strcmp(path, "/close-after") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst");
            break;
        } else if (strcmp(path, "/big-close") == 0 || strcmp(path, "/big-cut") == 0) {
            int cut = strcmp(path, "/big-cut") == 0;
            for (size_t i = 0; i != BIG_SIZE; ++i)
                big[i] = (char)('A' + (i * 7) % 26);
            if (cut) {
                int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG_SIZE + 100);
                write_all(fd, head, n);
            } else {
                write_str(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
            }
            write_all(fd, big, BIG_SIZE);
            break;
        } else if (strcmp(path, "/garbage") == 0) {
            write_str(fd, "SPDY/9 what\r\n\r\n");
            break;
        } else if (strcmp(path, "/reset") == 0) {
            break; /* close before the head */
        } else if (strcmp(path, "/silent") == 0) {
            /* never answer; wait for the client to give up */
            while (read(fd, buf, 65536) > 0)
                ;
            break;
        } else if (strcmp(path, "/stall") == 0) {
            write_str(fd, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc");
            while (read(fd, buf, 65536) > 0)
                ;
            break;
        } else if (strcmp(path, "/big") == 0) {
            for (size_t i = 0; i != BIG_SIZE; ++i)
                big[i] = (char)('A' + (i * 7) % 26);
            int n = snprintf(head, sizeof(head), "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG_SIZE);
            write_all(fd, head, n);
            write_all(fd, big, BIG_SIZE);
        } else {
            write_str(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        }
        memmove(buf, buf + reqlen, have - (size_t)reqlen);
        have -= (size_t)reqlen;
    }
    close(fd);
    free(buf);
    return NULL;
}

static void *acceptor_main(void *arg)
{
    int fd;
    while ((fd = accept(server.listen_fd, NULL, NULL)) != -1) {
        pthread_mutex_lock(&server.mutex);
        unsigned i = server.num_conns++;
        pthread_mutex_unlock(&server.mutex);
        assert(i < MAX_CONN_THREADS);
        server.conn_fds[i] = fd;
        pthread_create(&server.conns[i], NULL, conn_main, (void *)(intptr_t)fd);
    }
    return NULL;
}

static void server_start(void)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    memset(&server, 0, sizeof(server));
    pthread_mutex_init(&server.mutex, NULL);
    sem_init(&server.go, 0, 0);
    server.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(server.listen_fd >= 0);
    assert_int_equal(bind(server.listen_fd, (void *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(server.listen_fd, 64), 0);
    assert_int_equal(getsockname(server.listen_fd, (void *)&sin, &len), 0);
    server.port = ntohs(sin.sin_port);
    pthread_create(&server.acceptor, NULL, acceptor_main, NULL);
}

static void server_stop(void)
{
    shutdown(server.listen_fd, SHUT_RDWR);
    pthread_join(server.acceptor, NULL);
    close(server.listen_fd);
    for (unsigned i = 0; i != server.num_conns; ++i)
        pthread_join(server.conns[i], NULL);
    sem_destroy(&server.go);
    pthread_mutex_destroy(&server.mutex);
}

static unsigned server_conns(void)
{
    pthread_mutex_lock(&server.mutex);
    unsigned n = server.num_conns;
    pthread_mutex_unlock(&server.mutex);
    return n;
}

static unsigned server_requests(void)
{
    pthread_mutex_lock(&server.mutex);
    unsigned n = server.requests;
    pthread_mutex_unlock(&server.mutex);
    return n;
}

/* --- fixture --- */

struct fixture {
    struct test_loop t;
    origin_t *origin;
    origin_ctx_t *octx;
};

static void fixture_init_port(struct fixture *f, uint16_t port, unsigned max_connections)
{
    conf_origin_t conf = {.kind = CONF_ORIGIN_HTTP,
                          .host = (char *)"127.0.0.1",
                          .port = port,
                          .connect_timeout_ms = 1000,
                          .first_byte_timeout_ms = 200,
                          .idle_timeout_ms = 200,
                          .pool_idle_timeout_ms = 5000,
                          .max_connections = max_connections};
    char err[256];
    test_loop_init(&f->t);
    f->origin = origin_create(&conf, 1, err, sizeof(err));
    if (f->origin == NULL)
        fail_msg("origin_create: %s", err);
    f->octx = origin_ctx_create(f->origin, &f->t.ctx);
}

static void fixture_init(struct fixture *f)
{
    server_start();
    fixture_init_port(f, server.port, 8);
}

static void fixture_dispose(struct fixture *f)
{
    origin_ctx_destroy(f->octx);
    origin_destroy(f->origin);
    test_loop_dispose(&f->t);
    server_stop();
}

static void fetch(struct fixture *f, struct rec *r, const char *method, const char *path)
{
    origin_request_t req = simple_request(method, path);
    rec_start(r, f->octx, &req);
    run_until(&f->t, rec_ended, r, r, 2000);
}

static int rec_has_body(void *arg)
{
    return ((struct rec *)arg)->bodies != 0;
}

/* --- tests --- */

static void test_content_length_ok_and_keepalive_reuse(void **state)
{
    struct fixture f;
    fixture_init(&f);
    for (int i = 0; i != 2; ++i) {
        struct rec r = {0};
        fetch(&f, &r, "GET", "/cl");
        assert_int_equal(r.err, 0);
        assert_int_equal(r.status, 200);
        assert_int_equal(r.framing, ORIGIN_FRAMING_LENGTH);
        assert_int_equal(r.content_length, 11);
        assert_string_equal(r.body, "hello world");
        assert_non_null(strstr(r.headers, "x-test: a\n"));
        /* hop-by-hop, the header Connection names, and Content-Length are filtered */
        assert_null(strstr(r.headers, "connection"));
        assert_null(strstr(r.headers, "keep-alive"));
        assert_null(strstr(r.headers, "x-hop"));
        assert_null(strstr(r.headers, "content-length"));
        rec_dispose(&r);
    }
    assert_int_equal(server_conns(), 1);
    origin_stats_t st;
    origin_get_stats(f.origin, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.connections_opened, 1);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.bytes_received, 22);
    fixture_dispose(&f);
}

static void test_request_head_sent(void **state)
{
    struct fixture f;
    struct rec r = {0};
    h2o_mem_pool_t pool;
    h2o_headers_t headers = {NULL};
    fixture_init(&f);
    h2o_mem_init_pool(&pool);
    h2o_add_header_by_str(&pool, &headers, H2O_STRLIT("x-forwarded-for"), 1, NULL, H2O_STRLIT("203.0.113.1"));
    h2o_add_header_by_str(&pool, &headers, H2O_STRLIT("connection"), 1, NULL, H2O_STRLIT("close"));
    origin_request_t req = simple_request("POST", "/echo");
    req.headers = &headers;
    req.body = h2o_iovec_init(H2O_STRLIT("the-body"));
    req.for_cache = 0;
    rec_start(&r, f.octx, &req);
    h2o_mem_clear_pool(&pool); /* everything was copied by origin_fetch_start */
    run_until(&f.t, rec_ended, &r, &r, 2000);
    assert_int_equal(r.err, 0);
    assert_non_null(strstr(r.body, "POST /echo HTTP/1.1\r\n"));
    assert_non_null(strstr(r.body, "host: origin.test\r\n"));
    assert_non_null(strstr(r.body, "x-forwarded-for: 203.0.113.1, 127.0.0.1\r\n"));
    assert_non_null(strstr(r.body, "connection: keep-alive\r\n"));
    assert_non_null(strstr(r.body, "content-length: 8\r\n\r\nthe-body"));
    assert_null(strstr(r.body, "close"));
    rec_dispose(&r);
    fixture_dispose(&f);
}

static void test_framings(void **state)
{
    static const struct {
        const char *method, *path;
        int err, status;
        origin_framing_t framing;
        int64_t content_length;
        const char *body;
    } cases[] = {
        {"GET", "/chunked", 0, 200, ORIGIN_FRAMING_CHUNKED, -1, "hello world"},
        {"GET", "/close", 0, 200, ORIGIN_FRAMING_CLOSE, -1, "close-delimited body"},
        {"HEAD", "/head", 0, 200, ORIGIN_FRAMING_NONE, 1234, NULL},
        {"GET", "/204", 0, 204, ORIGIN_FRAMING_NONE, -1, NULL},
    };
    struct fixture f;
    fixture_init(&f);
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        struct rec r = {0};
        print_message("case: %s %s\n", cases[i].method, cases[i].path);
        fetch(&f, &r, cases[i].method, cases[i].path);
        assert_int_equal(r.err, cases[i].err);
        assert_int_equal(r.status, cases[i].status);
        assert_int_equal(r.framing, cases[i].framing);
        assert_int_equal(r.content_length, cases[i].content_length);
        if (cases[i].body != NULL)
            assert_string_equal(r.body, cases[i].body);
        else
            assert_int_equal(r.bodies, 0);
        rec_dispose(&r);
    }
    fixture_dispose(&f);
}

/* The cache-poisoning rules: a body cut short never ends with success. */
static void test_truncation(void **state)
{
    static const struct {
        const char *path;
        int err;
        const char *body_so_far;
    } cases[] = {
        {"/chunked-cut", ORIGIN_ETRUNCATED, "hello"},  /* whole chunk, then close, no 0-chunk */
        {"/chunked-cut-mid", ORIGIN_ETRUNCATED, NULL}, /* close inside a chunk */
        {"/cl-short", ORIGIN_ETRUNCATED, "only part"}, /* 9 of 100 bytes */
        {"/dup-cl", ORIGIN_EPROTO, NULL},              /* two different lengths */
        {"/chunked-and-cl", ORIGIN_EPROTO, NULL},      /* both framings: refused */
        {"/garbage", ORIGIN_EPROTO, NULL},
        {"/reset", ORIGIN_ERESET, NULL},
    };
    struct fixture f;
    fixture_init(&f);
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        struct rec r = {0};
        print_message("case: %s\n", cases[i].path);
        fetch(&f, &r, "GET", cases[i].path);
        assert_int_equal(r.err, cases[i].err);
        if (cases[i].body_so_far != NULL)
            assert_string_equal(r.body, cases[i].body_so_far);
        rec_dispose(&r);
    }
    origin_stats_t st;
    origin_get_stats(f.origin, &st);
    assert_int_equal(st.errors, sizeof(cases) / sizeof(cases[0]));
    fixture_dispose(&f);
}

/* The same cut and the same good end, with the last event forced into a read of its own. */
static void test_chunked_end_vs_cut_in_separate_reads(void **state)
{
    struct fixture f;
    fixture_init(&f);

    struct rec cut = {0};
    origin_request_t req = simple_request("GET", "/chunked-cut-slow");
    rec_start(&cut, f.octx, &req);
    run_until(&f.t, rec_has_body, &cut, &cut, 2000);
    assert_int_equal(cut.ends, 0);
    sem_post(&server.go);
    run_until(&f.t, rec_ended, &cut, &cut, 2000);
    assert_string_equal(cut.body, "hello");
    assert_int_equal(cut.err, ORIGIN_ETRUNCATED);

    struct rec ok = {0};
    req = simple_request("GET", "/chunked-slow");
    rec_start(&ok, f.octx, &req);
    run_until(&f.t, rec_has_body, &ok, &ok, 2000);
    assert_int_equal(ok.ends, 0);
    sem_post(&server.go);
    run_until(&f.t, rec_ended, &ok, &ok, 2000);
    assert_string_equal(ok.body, "hello");
    assert_int_equal(ok.err, 0);
    assert_int_equal(ok.framing, ORIGIN_FRAMING_CHUNKED);

    rec_dispose(&cut);
    rec_dispose(&ok);
    fixture_dispose(&f);
}

static void test_refused(void **state)
{
    /* a port nobody listens on: bind, read the port, close */
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (void *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (void *)&sin, &len), 0);
    close(fd);

    struct fixture f;
    struct rec r = {0};
    server_start(); /* unused, keeps fixture_dispose uniform */
    fixture_init_port(&f, ntohs(sin.sin_port), 8);
    fetch(&f, &r, "GET", "/cl");
    assert_int_equal(r.err, ORIGIN_ECONNECT);
    assert_int_equal(r.heads, 0);
    assert_int_equal(origin_error_status(r.err), 502);
    fixture_dispose(&f);
}

static void test_timeouts(void **state)
{
    struct fixture f;
    fixture_init(&f);

    struct rec silent = {0};
    fetch(&f, &silent, "GET", "/silent");
    assert_int_equal(silent.err, ORIGIN_EFIRST_BYTE_TIMEOUT);
    assert_int_equal(silent.heads, 0);
    assert_int_equal(origin_error_status(silent.err), 504);

    struct rec stall = {0};
    fetch(&f, &stall, "GET", "/stall");
    assert_int_equal(stall.heads, 1);
    assert_string_equal(stall.body, "abc");
    assert_int_equal(stall.err, ORIGIN_EIDLE_TIMEOUT);

    rec_dispose(&stall);
    fixture_dispose(&f);
}

static void test_pause_resume_delivers_everything(void **state)
{
    struct fixture f;
    struct rec r = {.pause_on_head = 1};
    fixture_init(&f);
    origin_request_t req = simple_request("GET", "/big");
    rec_start(&r, f.octx, &req);
    run_until(&f.t, rec_has_head, &r, &r, 2000);
    /* paused for ~3 idle timeouts: no byte delivered, no timeout */
    for (int i = 0; i != 60; ++i)
        h2o_evloop_run(f.t.loop, 10);
    assert_int_equal(r.bodies, 0);
    assert_int_equal(r.ends, 0);

    /* resume, pausing again in every on_body, until the end */
    r.pause_on_body = 1;
    unsigned resumes = 0;
    while (r.ends == 0) {
        int before = r.bodies;
        rec_resume(&r);
        ++resumes;
        for (int i = 0; i != 2000 && r.bodies == before && r.ends == 0; ++i)
            h2o_evloop_run(f.t.loop, 10);
        assert_true(r.bodies == before + 1 || r.ends != 0); /* exactly one on_body per resume */
    }
    assert_int_equal(r.err, 0);
    assert_int_equal(r.len, BIG_SIZE);
    for (size_t i = 0; i != BIG_SIZE; ++i)
        if (r.body[i] != (char)('A' + (i * 7) % 26))
            fail_msg("byte %zu differs", i);
    assert_true(resumes > 1);
    rec_dispose(&r);
    fixture_dispose(&f);
}

static void test_connection_cap_queue_and_cancel(void **state)
{
    struct fixture f;
    struct rec r[3] = {{0}};
    server_start();
    fixture_init_port(&f, server.port, 1); /* one connection for this loop */
    for (int i = 0; i != 3; ++i) {
        origin_request_t req = simple_request("GET", "/cl");
        rec_start(r + i, f.octx, &req);
    }
    /* the queued second one is cancelled: no callback, the third still runs */
    origin_fetch_cancel(r[1].fetch);
    r[1].canceled = 1;
    run_until(&f.t, rec_ended, r + 2, NULL, 2000);
    assert_int_equal(r[0].err, 0);
    assert_int_equal(r[2].err, 0);
    assert_string_equal(r[2].body, "hello world");
    assert_int_equal(r[1].heads + r[1].ends, 0);
    assert_int_equal(server_conns(), 1);

    /* cancel while waiting for the head */
    struct rec waiting = {0};
    origin_request_t req = simple_request("GET", "/silent");
    rec_start(&waiting, f.octx, &req);
    for (int i = 0; i != 10; ++i)
        h2o_evloop_run(f.t.loop, 1);
    origin_fetch_cancel(waiting.fetch);
    for (int i = 0; i != 30; ++i)
        h2o_evloop_run(f.t.loop, 10); /* longer than first_byte_timeout: nothing may fire */
    assert_int_equal(waiting.heads + waiting.ends, 0);

    /* destroy with a fetch in flight: no callback, and h2o finds no timeout entry of ours linked */
    struct rec inflight = {0};
    rec_start(&inflight, f.octx, &req);
    for (int i = 0; i != 10; ++i)
        h2o_evloop_run(f.t.loop, 1);
    origin_ctx_destroy(f.octx);
    assert_int_equal(inflight.heads + inflight.ends, 0);
    f.octx = origin_ctx_create(f.origin, &f.t.ctx);

    for (int i = 0; i != 3; ++i)
        rec_dispose(r + i);
    fixture_dispose(&f);
}

static void test_overload(void **state)
{
    struct fixture f;
    size_t n = ORIGIN_MAX_QUEUE + 2;
    struct rec *r = calloc(n, sizeof(*r));
    server_start();
    fixture_init_port(&f, server.port, 1);
    for (size_t i = 0; i != n; ++i) {
        origin_request_t req = simple_request("GET", "/cl");
        rec_start(r + i, f.octx, &req);
    }
    /* all are queued before the first dispatch: the last two do not fit */
    run_until(&f.t, rec_ended, r + n - 1, NULL, 100);
    assert_int_equal(r[n - 1].err, ORIGIN_EOVERLOAD);
    assert_int_equal(r[n - 2].err, ORIGIN_EOVERLOAD);
    assert_int_equal(origin_error_status(ORIGIN_EOVERLOAD), 503);
    for (size_t i = 0; i != n - 2; ++i) {
        if (r[i].ends == 0) {
            origin_fetch_cancel(r[i].fetch);
        } else {
            assert_int_equal(r[i].err, 0);
        }
        rec_dispose(r + i);
    }
    free(r);
    fixture_dispose(&f);
}

/* Origin input that made h2o's http1client abort the process: each ends the fetch with one clear error. */
static void test_bad_framing_is_an_error_not_a_crash(void **state)
{
    static const struct {
        const char *path;
        int err, heads;
        const char *body;
    } cases[] = {
        {"/te-gzip-chunked", ORIGIN_EPROTO, 0, NULL}, /* h2o 2.2.5: assertion in on_error_before_head */
        {"/te-Chunked", 0, 1, "hello world"},         /* the coding name is case-insensitive */
        {"/chunked-and-cl", ORIGIN_EPROTO, 0, NULL},  /* both framings: a smuggling sign */
        {"/dup-cl", ORIGIN_EPROTO, 0, NULL},          /* two different lengths */
        {"/cl-12abc", ORIGIN_EPROTO, 0, NULL},        /* not 1*DIGIT */
        {"/interim-flood", ORIGIN_EPROTO, 0, NULL},   /* more 1xx than ORIGIN_HTTP_MAX_INTERIM */
        {"/huge-head", ORIGIN_EPROTO, 0, NULL},       /* over ORIGIN_HTTP_MAX_HEAD_BYTES */
        {"/many-headers", ORIGIN_EPROTO, 0, NULL},    /* over ORIGIN_HTTP_MAX_HEADERS */
        {"/chunked-bad", ORIGIN_EPROTO, 1, NULL},     /* the head was fine, the chunk size is not */
        {"/chunked-trailer", 0, 1, "hello"},
    };
    struct fixture f;
    fixture_init(&f);
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        struct rec r = {0};
        print_message("case: %s\n", cases[i].path);
        fetch(&f, &r, "GET", cases[i].path);
        assert_int_equal(r.ends, 1);
        assert_int_equal(r.err, cases[i].err);
        assert_int_equal(r.heads, cases[i].heads);
        if (cases[i].body != NULL)
            assert_string_equal(r.body, cases[i].body);
        if (cases[i].err != 0)
            assert_int_equal(origin_error_status(r.err), 502);
        rec_dispose(&r);
    }
    fixture_dispose(&f);
}

static void test_interim_responses_are_skipped(void **state)
{
    struct fixture f;
    struct rec r = {0};
    fixture_init(&f);
    fetch(&f, &r, "GET", "/interim");
    assert_int_equal(r.err, 0);
    assert_int_equal(r.heads, 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body, "ok");
    assert_non_null(strstr(r.headers, "x-final: 1\n"));
    assert_null(strstr(r.headers, "link")); /* the 103's header is not the final response's */
    rec_dispose(&r);
    /* and the connection is still in step: the next fetch reuses it */
    struct rec next = {0};
    fetch(&f, &next, "GET", "/cl");
    assert_int_equal(next.err, 0);
    assert_string_equal(next.body, "hello world");
    assert_int_equal(server_conns(), 1);
    rec_dispose(&next);
    fixture_dispose(&f);
}

/* When may a connection serve the next fetch? Counted by the origin's accepted connections. */
static void test_keepalive_rules(void **state)
{
    static const struct {
        const char *path, *body;
        unsigned conns; /* after the fetch and one more /cl */
    } cases[] = {
        {"/cl", "hello world", 1},
        {"/chunked-trailer", "hello", 1},  /* the trailer section is read: in step */
        {"/http10", "hello", 2},           /* HTTP/1.0 without keep-alive */
        {"/http10-keepalive", "hello", 1}, /* HTTP/1.0 with keep-alive */
        {"/conn-close-open", "hello", 2},  /* Connection: close, even if the origin keeps it open */
        {"/extra", "hello", 2},            /* bytes past Content-Length: out of step */
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        struct fixture f;
        struct rec r = {0}, next = {0};
        print_message("case: %s\n", cases[i].path);
        fixture_init(&f);
        fetch(&f, &r, "GET", cases[i].path);
        assert_int_equal(r.err, 0);
        assert_string_equal(r.body, cases[i].body);
        fetch(&f, &next, "GET", "/cl");
        assert_int_equal(next.err, 0);
        assert_string_equal(next.body, "hello world");
        assert_int_equal(server_conns(), cases[i].conns);
        origin_stats_t st;
        origin_get_stats(f.origin, &st);
        assert_int_equal(st.connections_opened, cases[i].conns);
        rec_dispose(&r);
        rec_dispose(&next);
        fixture_dispose(&f);
    }
}

/* A pooled connection the origin closed: the request goes again on a new connection and succeeds. */
static void test_stale_pooled_socket_is_retried(void **state)
{
    struct fixture f;
    fixture_init(&f);

    /* the origin reads the second request on the pooled connection and closes it without an answer */
    struct rec first = {0}, second = {0};
    fetch(&f, &first, "GET", "/stale-next");
    assert_int_equal(first.err, 0);
    assert_string_equal(first.body, "first");
    fetch(&f, &second, "GET", "/cl");
    assert_int_equal(second.err, 0);
    assert_string_equal(second.body, "hello world");
    assert_int_equal(server_conns(), 2);
    assert_int_equal(server_requests(), 3); /* /stale-next, the dropped /cl, the retried /cl */
    origin_stats_t st;
    origin_get_stats(f.origin, &st);
    assert_int_equal(st.requests, 2);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.connections_opened, 2);

    /* the origin closes right after its answer: the close is seen by the pool's check or by the retry */
    struct rec third = {0}, fourth = {0};
    fetch(&f, &third, "GET", "/close-after");
    assert_int_equal(third.err, 0);
    fetch(&f, &fourth, "GET", "/cl");
    assert_int_equal(fourth.err, 0);
    assert_string_equal(fourth.body, "hello world");

    /* a request with a body is sent again whole (h2o's writer consumes the iovecs it is given) */
    struct rec stale = {0}, post = {0};
    fetch(&f, &stale, "GET", "/stale-next");
    assert_int_equal(stale.err, 0);
    unsigned conns_before = server_conns();
    origin_request_t req = simple_request("POST", "/echo");
    req.body = h2o_iovec_init(H2O_STRLIT("the-body"));
    req.for_cache = 0;
    rec_start(&post, f.octx, &req);
    run_until(&f.t, rec_ended, &post, &post, 2000);
    assert_int_equal(post.err, 0);
    assert_non_null(strstr(post.body, "POST /echo HTTP/1.1\r\n"));
    assert_non_null(strstr(post.body, "content-length: 8\r\n\r\nthe-body"));
    assert_int_equal(server_conns(), conns_before + 1);

    rec_dispose(&first);
    rec_dispose(&second);
    rec_dispose(&third);
    rec_dispose(&fourth);
    rec_dispose(&stale);
    rec_dispose(&post);
    fixture_dispose(&f);
}

/* A connection opened for the fetch that fails before the head is the origin's answer: not retried. */
static void test_fresh_connection_failure_is_not_retried(void **state)
{
    struct fixture f;
    fixture_init(&f);
    struct rec r = {0};
    fetch(&f, &r, "GET", "/reset");
    assert_int_equal(r.err, ORIGIN_ERESET);
    assert_int_equal(server_requests(), 1);

    /* stale pooled connection, then the new connection fails too: one retry, then the error */
    struct rec first = {0}, second = {0};
    fetch(&f, &first, "GET", "/stale-next");
    assert_int_equal(first.err, 0);
    fetch(&f, &second, "GET", "/reset");
    assert_int_equal(second.err, ORIGIN_ERESET);
    assert_int_equal(server_requests(), 4); /* /reset, /stale-next, /reset dropped, /reset retried */
    assert_int_equal(server_conns(), 3);
    rec_dispose(&first);
    fixture_dispose(&f);
}

/* Resumes one slice at a time until the end; checks the bytes of /big-*. @return resumes */
static unsigned drain_paused(struct fixture *f, struct rec *r)
{
    unsigned resumes = 0;
    r->pause_on_body = 1;
    while (r->ends == 0) {
        int before = r->bodies;
        rec_resume(r);
        ++resumes;
        for (int i = 0; i != 2000 && r->bodies == before && r->ends == 0; ++i) {
            r->bodies_this_turn = 0;
            h2o_evloop_run(f->t.loop, 10);
        }
        assert_true(r->bodies == before + 1 || r->ends != 0); /* exactly one on_body per resume */
    }
    for (size_t i = 0; i != r->len; ++i)
        if (r->body[i] != (char)('A' + (i * 7) % 26))
            fail_msg("byte %zu differs", i);
    return resumes;
}

/* The origin closes while the fetch is paused with bytes buffered: the end waits until they went out. */
static void test_close_while_paused(void **state)
{
    static const struct {
        const char *path;
        int err;
        origin_framing_t framing;
    } cases[] = {
        {"/big-close", 0, ORIGIN_FRAMING_CLOSE},                /* the close is the end */
        {"/big-cut", ORIGIN_ETRUNCATED, ORIGIN_FRAMING_LENGTH}, /* 100 bytes short */
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        struct fixture f;
        struct rec r = {.pause_on_head = 1};
        print_message("case: %s\n", cases[i].path);
        fixture_init(&f);
        origin_request_t req = simple_request("GET", cases[i].path);
        rec_start(&r, f.octx, &req);
        run_until(&f.t, rec_has_head, &r, &r, 2000);
        assert_true(drain_paused(&f, &r) > 1);
        assert_int_equal(r.err, cases[i].err);
        assert_int_equal(r.framing, cases[i].framing);
        assert_int_equal(r.len, BIG_SIZE); /* every byte received went out before the end */
        assert_true(r.max_bodies_per_turn <= 1);
        rec_dispose(&r);
        fixture_dispose(&f);
    }
}

static void test_strerror(void **state)
{
    for (int e = ORIGIN_EOVERLOAD; e <= 0; ++e)
        assert_true(strlen(origin_strerror(e)) > 0);
    assert_string_equal(origin_strerror(ORIGIN_ETRUNCATED), "origin response truncated");
    assert_int_equal(origin_error_status(ORIGIN_ETRUNCATED), 502);
    assert_int_equal(origin_error_status(ORIGIN_ECONNECT_TIMEOUT), 504);
    assert_int_equal(origin_error_status(ORIGIN_EIDLE_TIMEOUT), 504);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length_ok_and_keepalive_reuse),
        cmocka_unit_test(test_request_head_sent),
        cmocka_unit_test(test_framings),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_chunked_end_vs_cut_in_separate_reads),
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_pause_resume_delivers_everything),
        cmocka_unit_test(test_connection_cap_queue_and_cancel),
        cmocka_unit_test(test_overload),
        cmocka_unit_test(test_bad_framing_is_an_error_not_a_crash),
        cmocka_unit_test(test_interim_responses_are_skipped),
        cmocka_unit_test(test_keepalive_rules),
        cmocka_unit_test(test_stale_pooled_socket_is_retried),
        cmocka_unit_test(test_fresh_connection_failure_is_not_retried),
        cmocka_unit_test(test_close_while_paused),
        cmocka_unit_test(test_strerror),
    };
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
