/*
 * tests/unit/origin/origin_test_loop.h: an h2o loop and context for the origin tests, and a recorder of
 * origin callbacks that checks the callback contract (order, no re-entrancy from the API, nothing after
 * on_end or cancel) on every call.
 */
#ifndef TESTS_UNIT_ORIGIN_TEST_LOOP_H
#define TESTS_UNIT_ORIGIN_TEST_LOOP_H

#include <stdlib.h>
#include <string.h>
#include "origin/origin.h"

struct test_loop {
    h2o_globalconf_t config;
    h2o_evloop_t *loop;
    h2o_context_t ctx;
};

static inline void test_loop_init(struct test_loop *t)
{
    h2o_config_init(&t->config);
    h2o_config_register_host(&t->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    t->loop = h2o_evloop_create();
    h2o_context_init(&t->ctx, t->loop, &t->config);
}

static inline void test_loop_dispose(struct test_loop *t)
{
    /* asserts (inside h2o) that no timeout entry of ours is still linked */
    h2o_context_dispose(&t->ctx);
    h2o_evloop_run(t->loop, 0); /* let closed sockets be disposed */
    h2o_evloop_destroy(t->loop);
    h2o_config_dispose(&t->config);
}

struct rec {
    origin_fetch_t *fetch;
    int in_api; /* set by the test around origin_* calls: a callback then is re-entrancy */
    int heads, bodies, ends, err;
    int status;
    origin_framing_t framing;
    int64_t content_length;
    char headers[2048]; /* "name: value\n" lines */
    char *body;
    size_t len;
    /* behaviours */
    int pause_on_head;  /* pause inside on_head */
    int pause_on_body;  /* pause inside every on_body */
    int cancel_on_body; /* cancel inside the n-th on_body (1-based), 0: never */
    int cancel_on_head;
    int canceled;
    unsigned max_bodies_per_turn; /* most on_body calls seen in one loop iteration */
    unsigned bodies_this_turn;
};

static inline void rec_on_head(origin_fetch_t *fetch, void *data, const origin_response_t *res)
{
    struct rec *r = data;
    if (r->in_api)
        fail_msg("on_head called from inside the API");
    assert_ptr_equal(fetch, r->fetch);
    assert_int_equal(r->heads, 0);
    assert_int_equal(r->ends, 0);
    assert_false(r->canceled);
    ++r->heads;
    r->status = res->status;
    r->framing = res->framing;
    r->content_length = res->content_length;
    size_t off = 0;
    for (size_t i = 0; i != res->num_headers; ++i)
        off += snprintf(r->headers + off, sizeof(r->headers) - off, "%.*s: %.*s\n", (int)res->headers[i].name->len,
                        res->headers[i].name->base, (int)res->headers[i].value.len, res->headers[i].value.base);
    if (r->pause_on_head)
        origin_fetch_pause(fetch);
    if (r->cancel_on_head) {
        r->canceled = 1;
        origin_fetch_cancel(fetch);
    }
}

static inline void rec_on_body(origin_fetch_t *fetch, void *data, const char *bytes, size_t len)
{
    struct rec *r = data;
    if (r->in_api)
        fail_msg("on_body called from inside the API");
    assert_ptr_equal(fetch, r->fetch);
    assert_int_equal(r->heads, 1);
    assert_int_equal(r->ends, 0);
    assert_false(r->canceled);
    ++r->bodies;
    if (++r->bodies_this_turn > r->max_bodies_per_turn)
        r->max_bodies_per_turn = r->bodies_this_turn;
    r->body = realloc(r->body, r->len + len + 1);
    memcpy(r->body + r->len, bytes, len);
    r->len += len;
    r->body[r->len] = '\0';
    if (r->pause_on_body)
        origin_fetch_pause(fetch);
    if (r->cancel_on_body != 0 && r->bodies == r->cancel_on_body) {
        r->canceled = 1;
        origin_fetch_cancel(fetch);
    }
}

static inline void rec_on_end(origin_fetch_t *fetch, void *data, int err)
{
    struct rec *r = data;
    if (r->in_api)
        fail_msg("on_end called from inside the API");
    assert_ptr_equal(fetch, r->fetch);
    assert_int_equal(r->ends, 0);
    assert_false(r->canceled);
    ++r->ends;
    r->err = err;
    r->fetch = NULL;
}

static const origin_callbacks_t rec_callbacks = {rec_on_head, rec_on_body, rec_on_end};

static inline void rec_dispose(struct rec *r)
{
    free(r->body);
    r->body = NULL;
}

static inline void rec_start(struct rec *r, origin_ctx_t *octx, const origin_request_t *req)
{
    r->in_api = 1;
    r->fetch = origin_fetch_start(octx, req, &rec_callbacks, r);
    r->in_api = 0;
    assert_non_null(r->fetch);
    assert_int_equal(r->heads + r->bodies + r->ends, 0);
}

static inline void rec_resume(struct rec *r)
{
    r->in_api = 1;
    origin_fetch_resume(r->fetch);
    r->in_api = 0;
}

/* Runs the loop until `done` says so, at most max_turns iterations of at most 10 ms each. */
static inline void run_until(struct test_loop *t, int (*done)(void *), void *arg, struct rec *r, unsigned max_turns)
{
    for (unsigned i = 0; i != max_turns; ++i) {
        if (done(arg))
            return;
        if (r != NULL)
            r->bodies_this_turn = 0;
        h2o_evloop_run(t->loop, 10);
    }
    fail_msg("loop did not reach the expected state in %u turns", max_turns);
}

static inline int rec_ended(void *arg)
{
    struct rec *r = arg;
    return r->ends != 0 || r->canceled;
}

static inline int rec_has_head(void *arg)
{
    return ((struct rec *)arg)->heads != 0;
}

static inline void run_turns(struct test_loop *t, unsigned n, struct rec *r)
{
    for (unsigned i = 0; i != n; ++i) {
        if (r != NULL)
            r->bodies_this_turn = 0;
        h2o_evloop_run(t->loop, 1);
    }
}

static inline origin_request_t simple_request(const char *method, const char *path)
{
    return (origin_request_t){.method = h2o_iovec_init(method, strlen(method)),
                              .authority = h2o_iovec_init(H2O_STRLIT("origin.test")),
                              .path = h2o_iovec_init(path, strlen(path)),
                              .client_ip = h2o_iovec_init(H2O_STRLIT("127.0.0.1")),
                              .for_cache = 1};
}

#endif
