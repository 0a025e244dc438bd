/*
 * Unit tests of origin/dir_origin.c: the path mapping table (a mkdtemp tree with symlinks in and out),
 * the MIME table, and fetches through a real h2o loop (GET streamed one chunk per loop turn, HEAD, 405,
 * 404, pause/resume, cancel inside a callback, destroy with a fetch in flight).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "origin/origin_private.h"
#include "origin_test_loop.h"

static char base_dir[PATH_MAX]; /* mkdtemp: holds root/ and outside/ */
static char root_dir[PATH_MAX + 16];
#define BIG_SIZE (3 * ORIGIN_DIR_CHUNK_SIZE + 1234)

static void write_file(const char *rel, const char *content, size_t len)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", base_dir, rel);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(content, 1, len, fp), len);
    fclose(fp);
}

static void make_dir(const char *rel)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", base_dir, rel);
    assert_int_equal(mkdir(path, 0755), 0);
}

static void make_link(const char *target, const char *rel)
{
    char path[PATH_MAX * 2];
    snprintf(path, sizeof(path), "%s/%s", base_dir, rel);
    assert_int_equal(symlink(target, path), 0);
}

static int setup_tree(void **state)
{
    const char *tmpdir = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    snprintf(tmpl, sizeof(tmpl), "%s/test_dir_origin.XXXXXX", tmpdir != NULL && tmpdir[0] != '\0' ? tmpdir : "/tmp");
    assert_non_null(mkdtemp(tmpl));
    assert_non_null(realpath(tmpl, base_dir));
    snprintf(root_dir, sizeof(root_dir), "%s/root", base_dir);
    make_dir("root");
    make_dir("outside");
    make_dir("root/sub");
    make_dir("root/noindex");
    write_file("root/index.html", H2O_STRLIT("<h1>home</h1>"));
    write_file("root/a.txt", H2O_STRLIT("hello"));
    write_file("root/b", H2O_STRLIT("b"));
    write_file("root/a b.txt", H2O_STRLIT("space"));
    write_file("root/sub/index.html", H2O_STRLIT("sub"));
    write_file("root/sub/x.css", H2O_STRLIT("body{}"));
    write_file("root/empty.txt", "", 0);
    write_file("outside/secret", H2O_STRLIT("secret"));
    make_link("a.txt", "root/in_link");
    make_link("../outside/secret", "root/out_link");
    make_link("../outside", "root/out_dir");
    make_link("/", "root/slash");
    char *big = malloc(BIG_SIZE);
    for (size_t i = 0; i != BIG_SIZE; ++i)
        big[i] = (char)('a' + i % 26);
    write_file("root/big.bin", big, BIG_SIZE);
    free(big);
    return 0;
}

static int teardown_tree(void **state)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_map_path_table(void **state)
{
    static const struct {
        const char *path;
        const char *want; /* relative to root, NULL: refused */
    } cases[] = {
        {"/", "index.html"},
        {"/index.html", "index.html"},
        {"/a.txt", "a.txt"},
        {"/a.txt?x=../../etc/passwd", "a.txt"},
        {"/a.txt#frag", "a.txt"},
        {"/sub", "sub/index.html"},
        {"/sub/", "sub/index.html"},
        {"//sub//x.css", "sub/x.css"},
        {"/sub%2Fx.css", "sub/x.css"}, /* %2F decodes to a separator; segments are checked after */
        {"/sub%2fx.css", "sub/x.css"},
        {"/a%20b.txt", "a b.txt"},
        {"/%61.txt", "a.txt"},
        {"/in_link", "a.txt"},
        {"/a/../b", NULL},
        {"/sub/../a.txt", NULL},
        {"/./a.txt", NULL},
        {"/sub/.", NULL},
        {"/%2e%2e/outside/secret", NULL},
        {"/%2E%2E/outside/secret", NULL},
        {"/sub/%2e%2e/a.txt", NULL},
        {"/.%2e/outside/secret", NULL},
        {"/sub%2F..%2F..%2Foutside%2Fsecret", NULL},
        {"/a.txt%00.html", NULL},
        {"/%00", NULL},
        {"/a%zz", NULL},
        {"/a%2", NULL},
        {"/a%", NULL},
        {"/out_link", NULL},
        {"/out_dir/secret", NULL},
        {"/slash/etc/passwd", NULL},
        {"/noindex/", NULL},
        {"/missing", NULL},
        {"a.txt", NULL},
        {"", NULL},
        {"?/a.txt", NULL},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i) {
        char *out = (char *)"unset";
        int ret = origin_dir_map_path(root_dir, cases[i].path, strlen(cases[i].path), &out);
        if (cases[i].want == NULL) {
            if (ret != -1)
                fail_msg("%s: want refused, got %s", cases[i].path, out);
            assert_null(out);
        } else {
            char want[PATH_MAX * 2];
            snprintf(want, sizeof(want), "%s/%s", root_dir, cases[i].want);
            if (ret != 0)
                fail_msg("%s: refused, want %s", cases[i].path, want);
            assert_string_equal(out, want);
            free(out);
        }
    }
    /* the length bounds the path: bytes after it are not read */
    char *out = NULL;
    assert_int_equal(origin_dir_map_path(root_dir, "/a.txtXYZ", 6, &out), 0);
    assert_non_null(strstr(out, "/a.txt"));
    free(out);
    /* a root given through a symlink or with a trailing slash still contains its files */
    char root_slash[PATH_MAX * 2];
    snprintf(root_slash, sizeof(root_slash), "%s/", root_dir);
    assert_int_equal(origin_dir_map_path(root_slash, H2O_STRLIT("/a.txt"), &out), 0);
    free(out);
}

static void test_mime_table(void **state)
{
    static const struct {
        const char *name, *type;
    } cases[] = {
        {"a.html", "text/html; charset=utf-8"},
        {"A.HTML", "text/html; charset=utf-8"},
        {"x/y.css", "text/css; charset=utf-8"},
        {"app.js", "text/javascript; charset=utf-8"},
        {"mod.mjs", "text/javascript; charset=utf-8"},
        {"d.json", "application/json"},
        {"i.svg", "image/svg+xml"},
        {"i.png", "image/png"},
        {"i.jpg", "image/jpeg"},
        {"i.jpeg", "image/jpeg"},
        {"i.gif", "image/gif"},
        {"i.webp", "image/webp"},
        {"i.avif", "image/avif"},
        {"favicon.ico", "image/x-icon"},
        {"r.txt", "text/plain; charset=utf-8"},
        {"s.xml", "application/xml"},
        {"m.wasm", "application/wasm"},
        {"f.woff", "font/woff"},
        {"f.woff2", "font/woff2"},
        {"d.pdf", "application/pdf"},
        {"v.mp4", "video/mp4"},
        {"v.webm", "video/webm"},
        {"app.js.map", "application/json"},
        {"noext", "application/octet-stream"},
        {".hidden", "application/octet-stream"},
        {"dir.d/file", "application/octet-stream"},
        {"x.unknown", "application/octet-stream"},
        {"trailingdot.", "application/octet-stream"},
    };
    for (size_t i = 0; i != sizeof(cases) / sizeof(cases[0]); ++i)
        assert_string_equal(origin_dir_mime_type(cases[i].name), cases[i].type);
}

/* --- fetches through a loop --- */

struct fixture {
    struct test_loop t;
    origin_t *origin;
    origin_ctx_t *octx;
};

static void fixture_init(struct fixture *f)
{
    conf_origin_t conf = {.kind = CONF_ORIGIN_DIRECTORY,
                          .directory = root_dir,
                          .cache_control = (char *)"public, max-age=300",
                          .connect_timeout_ms = 1000,
                          .first_byte_timeout_ms = 1000,
                          .idle_timeout_ms = 1000,
                          .pool_idle_timeout_ms = 1000,
                          .max_connections = 4};
    char err[256];
    test_loop_init(&f->t);
    f->origin = origin_create(&conf, 1, err, sizeof(err));
    assert_non_null(f->origin);
    f->octx = origin_ctx_create(f->origin, &f->t.ctx);
}

static void fixture_dispose(struct fixture *f)
{
    origin_ctx_destroy(f->octx);
    origin_destroy(f->origin);
    test_loop_dispose(&f->t);
}

static void fetch(struct fixture *f, struct rec *r, const char *method, const char *path)
{
    origin_request_t req = simple_request(method, path);
    rec_start(r, f->octx, &req);
    run_until(&f->t, rec_ended, r, r, 1000);
}

static void test_get_small(void **state)
{
    struct fixture f;
    struct rec r = {0};
    fixture_init(&f);
    fetch(&f, &r, "GET", "/a.txt");
    assert_int_equal(r.err, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.framing, ORIGIN_FRAMING_LENGTH);
    assert_int_equal(r.content_length, 5);
    assert_string_equal(r.body, "hello");
    assert_non_null(strstr(r.headers, "content-type: text/plain; charset=utf-8\n"));
    assert_non_null(strstr(r.headers, "cache-control: public, max-age=300\n"));
    assert_non_null(strstr(r.headers, "last-modified: "));
    assert_non_null(strstr(r.headers, " GMT\n"));
    assert_non_null(strstr(r.headers, "etag: \"5-"));
    assert_null(strstr(r.headers, "content-length"));
    origin_stats_t st;
    origin_get_stats(f.origin, &st);
    assert_int_equal(st.requests, 1);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.bytes_received, 5);
    rec_dispose(&r);
    fixture_dispose(&f);
}

static void test_get_big_streams_one_chunk_per_turn(void **state)
{
    struct fixture f;
    struct rec r = {0};
    fixture_init(&f);
    fetch(&f, &r, "GET", "/big.bin");
    assert_int_equal(r.err, 0);
    assert_int_equal(r.content_length, BIG_SIZE);
    assert_int_equal(r.len, BIG_SIZE);
    for (size_t i = 0; i != BIG_SIZE; ++i)
        if (r.body[i] != (char)('a' + i % 26))
            fail_msg("byte %zu differs", i);
    /* the path under test really ran: several chunks, never two in one loop turn */
    assert_int_equal(r.bodies, 4);
    assert_int_equal(r.max_bodies_per_turn, 1);
    rec_dispose(&r);
    fixture_dispose(&f);
}

static void test_head_empty_and_index(void **state)
{
    struct fixture f;
    fixture_init(&f);

    struct rec head = {0};
    fetch(&f, &head, "HEAD", "/big.bin");
    assert_int_equal(head.err, 0);
    assert_int_equal(head.status, 200);
    assert_int_equal(head.framing, ORIGIN_FRAMING_NONE);
    assert_int_equal(head.content_length, BIG_SIZE);
    assert_int_equal(head.bodies, 0);

    struct rec empty = {0};
    fetch(&f, &empty, "GET", "/empty.txt");
    assert_int_equal(empty.err, 0);
    assert_int_equal(empty.status, 200);
    assert_int_equal(empty.content_length, 0);
    assert_int_equal(empty.bodies, 0);

    struct rec index = {0};
    fetch(&f, &index, "GET", "/sub/");
    assert_int_equal(index.status, 200);
    assert_string_equal(index.body, "sub");
    assert_non_null(strstr(index.headers, "content-type: text/html; charset=utf-8\n"));

    rec_dispose(&head);
    rec_dispose(&empty);
    rec_dispose(&index);
    fixture_dispose(&f);
}

static void test_method_not_allowed_and_not_found(void **state)
{
    struct fixture f;
    fixture_init(&f);

    struct rec post = {0};
    fetch(&f, &post, "POST", "/a.txt");
    assert_int_equal(post.err, 0);
    assert_int_equal(post.status, 405);
    assert_int_equal(post.content_length, 0);
    assert_non_null(strstr(post.headers, "allow: GET, HEAD\n"));
    assert_int_equal(post.bodies, 0);

    static const char *const missing[] = {"/missing", "/out_link", "/%2e%2e/outside/secret", "/noindex/", "/sub%00"};
    for (size_t i = 0; i != sizeof(missing) / sizeof(missing[0]); ++i) {
        struct rec nf = {0};
        fetch(&f, &nf, "GET", missing[i]);
        assert_int_equal(nf.err, 0);
        assert_int_equal(nf.status, 404);
        assert_int_equal(nf.framing, ORIGIN_FRAMING_LENGTH);
        assert_int_equal(nf.content_length, (int64_t)nf.len);
        assert_non_null(strstr(nf.body, "404"));
        assert_null(strstr(nf.body, "secret"));
        assert_non_null(strstr(nf.headers, "cache-control: public, max-age=60\n"));
        rec_dispose(&nf);
    }

    struct rec head404 = {0};
    fetch(&f, &head404, "HEAD", "/missing");
    assert_int_equal(head404.status, 404);
    assert_int_equal(head404.framing, ORIGIN_FRAMING_NONE);
    assert_int_equal(head404.bodies, 0);

    rec_dispose(&post);
    rec_dispose(&head404);
    fixture_dispose(&f);
}

static void test_pause_resume(void **state)
{
    struct fixture f;
    struct rec r = {.pause_on_head = 1};
    fixture_init(&f);
    origin_request_t req = simple_request("GET", "/big.bin");
    rec_start(&r, f.octx, &req);
    run_until(&f.t, rec_has_head, &r, &r, 100);
    run_turns(&f.t, 20, &r);
    assert_int_equal(r.bodies, 0); /* paused: nothing read */

    /* resume, pausing again in each on_body: exactly one chunk per resume */
    r.pause_on_body = 1;
    for (int i = 1; i <= 4; ++i) {
        rec_resume(&r);
        run_turns(&f.t, 10, &r);
        assert_int_equal(r.bodies, i);
    }
    run_turns(&f.t, 5, &r);
    assert_int_equal(r.ends, 1); /* the last chunk is followed by on_end, pause or not */
    assert_int_equal(r.err, 0);
    assert_int_equal(r.len, BIG_SIZE);
    rec_dispose(&r);
    fixture_dispose(&f);
}

static void test_cancel_inside_callbacks_and_destroy(void **state)
{
    struct fixture f;
    fixture_init(&f);

    struct rec in_body = {.cancel_on_body = 2};
    fetch(&f, &in_body, "GET", "/big.bin");
    assert_int_equal(in_body.bodies, 2);
    assert_int_equal(in_body.ends, 0);

    struct rec in_head = {.cancel_on_head = 1};
    fetch(&f, &in_head, "GET", "/big.bin");
    assert_int_equal(in_head.bodies, 0);
    assert_int_equal(in_head.ends, 0);

    /* cancel before anything ran */
    struct rec early = {0};
    origin_request_t req = simple_request("GET", "/a.txt");
    rec_start(&early, f.octx, &req);
    origin_fetch_cancel(early.fetch);
    run_turns(&f.t, 5, NULL);
    assert_int_equal(early.heads + early.ends, 0);

    /* destroy with one fetch paused mid-body and one not started: no callback, no linked timer */
    struct rec paused = {.pause_on_head = 1}, fresh = {0};
    req = simple_request("GET", "/big.bin");
    rec_start(&paused, f.octx, &req);
    run_until(&f.t, rec_has_head, &paused, &paused, 100);
    rec_start(&fresh, f.octx, &req);
    origin_ctx_destroy(f.octx);
    assert_int_equal(paused.ends + fresh.heads + fresh.ends, 0);
    f.octx = origin_ctx_create(f.origin, &f.t.ctx);

    rec_dispose(&in_body);
    rec_dispose(&in_head);
    rec_dispose(&paused);
    fixture_dispose(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_map_path_table),
        cmocka_unit_test(test_mime_table),
        cmocka_unit_test(test_get_small),
        cmocka_unit_test(test_get_big_streams_one_chunk_per_turn),
        cmocka_unit_test(test_head_empty_and_index),
        cmocka_unit_test(test_method_not_allowed_and_not_found),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_cancel_inside_callbacks_and_destroy),
    };
    return cmocka_run_group_tests(tests, setup_tree, teardown_tree);
}
