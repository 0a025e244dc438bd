/*
 * Unit tests of edge/cache_key.h: one table row per behaviour. Every input is copied so that its last byte
 * touches a PROT_NONE page (picohttpparser test.c style): a read past the given length faults.
 */
#define H2O_USE_LIBUV 0
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "h2o.h"
#include "edge/cache_key.h"

struct guard_t {
    char *mem;
    size_t page;
};

static void guard_init(struct guard_t *g)
{
    g->page = (size_t)sysconf(_SC_PAGESIZE);
    g->mem = mmap(NULL, g->page * 2, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g->mem != MAP_FAILED);
    assert_int_equal(mprotect(g->mem + g->page, g->page, PROT_NONE), 0);
}

static void guard_dispose(struct guard_t *g)
{
    munmap(g->mem, g->page * 2);
}

/* Copies s so that it ends right before the guard page; no NUL follows it. */
static h2o_iovec_t guarded(struct guard_t *g, const char *s, size_t len)
{
    assert_true(len < g->page);
    char *dst = g->mem + g->page - len;
    memcpy(dst, s, len);
    return h2o_iovec_init(dst, len);
}

struct key_row_t {
    const char *name;
    const char *scheme;
    const char *authority;
    const char *raw_path;
    size_t raw_path_len; /* 0: strlen(raw_path) */
    const char *key;     /* NULL: expect -1 */
    const char *path;
};

static const struct key_row_t rows[] = {
    /* basics, case */
    {"root", "http", "example.com", "/", 0, "http://example.com/", "/"},
    {"host lower-cased, path case kept", "http", "ExAmple.COM", "/A/b", 0, "http://example.com/A/b", "/A/b"},
    {"scheme lower-cased", "HTTPS", "example.com", "/", 0, "https://example.com/", "/"},
    {"unknown scheme", "ftp", "example.com", "/", 0, NULL, NULL},
    /* ports */
    {"http default port dropped", "http", "example.com:80", "/", 0, "http://example.com/", "/"},
    {"https default port dropped", "https", "example.com:443", "/", 0, "https://example.com/", "/"},
    {"443 kept for http", "http", "example.com:443", "/", 0, "http://example.com:443/", "/"},
    {"80 kept for https", "https", "example.com:80", "/", 0, "https://example.com:80/", "/"},
    {"other port kept", "http", "example.com:8080", "/x", 0, "http://example.com:8080/x", "/x"},
    {"empty port dropped", "http", "example.com:", "/", 0, "http://example.com/", "/"},
    {"port leading zeros canonical", "http", "example.com:0080", "/", 0, "http://example.com/", "/"},
    {"port leading zeros kept value", "http", "example.com:08080", "/", 0, "http://example.com:8080/", "/"},
    {"port too large", "http", "example.com:65536", "/", 0, NULL, NULL},
    {"port not digits", "http", "example.com:8x", "/", 0, NULL, NULL},
    {"two colons", "http", "example.com:80:80", "/", 0, NULL, NULL},
    /* hosts */
    {"IPv4", "http", "127.0.0.1:80", "/", 0, "http://127.0.0.1/", "/"},
    {"IPv6 with port", "http", "[::1]:8080", "/", 0, "http://[::1]:8080/", "/"},
    {"IPv6 lower-cased, default port", "https", "[2001:DB8::1]:443", "/", 0, "https://[2001:db8::1]/", "/"},
    {"IPv6 no port", "http", "[::1]", "/", 0, "http://[::1]/", "/"},
    {"IPvFuture", "http", "[v1.fe80::a+en1]", "/", 0, "http://[v1.fe80::a+en1]/", "/"},
    {"IPv6 unclosed", "http", "[::1", "/", 0, NULL, NULL},
    {"IPv6 bad digit", "http", "[::g]", "/", 0, NULL, NULL},
    {"IPv6 not an address", "http", "[1:2]", "/", 0, NULL, NULL},
    {"IPv6 zone id refused", "http", "[fe80::1%25eth0]", "/", 0, NULL, NULL},
    {"IPv6 junk after bracket", "http", "[::1]x", "/", 0, NULL, NULL},
    {"IPv6 empty", "http", "[]", "/", 0, NULL, NULL},
    {"reg-name escape upper-cased", "http", "EX%4a.com", "/", 0, "http://ex%4A.com/", "/"},
    {"reg-name sub-delims", "http", "a!$&'()*+,;=b", "/", 0, "http://a!$&'()*+,;=b/", "/"},
    {"empty authority", "http", "", "/", 0, NULL, NULL},
    {"empty host with port", "http", ":80", "/", 0, NULL, NULL},
    {"space in host", "http", "exa mple.com", "/", 0, NULL, NULL},
    {"userinfo refused", "http", "user@example.com", "/", 0, NULL, NULL},
    {"slash in host", "http", "exa/mple", "/", 0, NULL, NULL},
    {"truncated escape in host", "http", "ex%4", "/", 0, NULL, NULL},
    {"control char in host", "http", "ex\x01.com", "/", 0, NULL, NULL},
    /* dot segments (RFC 3986 §5.2.4) */
    {"single dot", "http", "h", "/a/./b", 0, "http://h/a/b", "/a/b"},
    {"double dot", "http", "h", "/a/b/../c", 0, "http://h/a/c", "/a/c"},
    {"climb from root", "http", "h", "/../a", 0, "http://h/a", "/a"},
    {"climb many", "http", "h", "/../../..", 0, "http://h/", "/"},
    {"climb past first segment", "http", "h", "/a/../../b", 0, "http://h/b", "/b"},
    {"trailing dotdot keeps slash", "http", "h", "/a/b/..", 0, "http://h/a/", "/a/"},
    {"trailing dot keeps slash", "http", "h", "/a/.", 0, "http://h/a/", "/a/"},
    {"trailing slash kept", "http", "h", "/a/", 0, "http://h/a/", "/a/"},
    {"lone dot", "http", "h", "/.", 0, "http://h/", "/"},
    {"lone dotdot", "http", "h", "/..", 0, "http://h/", "/"},
    {"empty segments kept", "http", "h", "/a//b/../c", 0, "http://h/a//c", "/a//c"},
    {"dot-like segments kept", "http", "h", "/.../.a/..b/a.", 0, "http://h/.../.a/..b/a.", "/.../.a/..b/a."},
    {"escaped dots are not dots", "http", "h", "/%2e%2e/x", 0, "http://h/%2E%2E/x", "/%2E%2E/x"},
    {"escaped dot segment kept", "http", "h", "/a/%2E/b", 0, "http://h/a/%2E/b", "/a/%2E/b"},
    /* percent-escapes */
    {"escape hex upper-cased", "http", "h", "/a%2fb%c3%a9", 0, "http://h/a%2Fb%C3%A9", "/a%2Fb%C3%A9"},
    {"escapes never decoded", "http", "h", "/a%2F..%3F%00%41", 0, "http://h/a%2F..%3F%00%41", "/a%2F..%3F%00%41"},
    {"escaped slash is no separator", "http", "h", "/a%2F../b", 0, "http://h/a%2F../b", "/a%2F../b"},
    {"escaped slash then real dotdot", "http", "h", "/a%2Fb/../c", 0, "http://h/c", "/c"},
    {"escape truncated at end", "http", "h", "/a%2", 0, NULL, NULL},
    {"lone percent at end", "http", "h", "/a%", 0, NULL, NULL},
    {"escape not hex", "http", "h", "/a%zz", 0, NULL, NULL},
    {"escape half hex", "http", "h", "/a%2g", 0, NULL, NULL},
    /* query */
    {"query raw, no dot removal in it", "http", "h", "/a/../b?x=/../y&z=%2f", 0, "http://h/b?x=/../y&z=%2f", "/b?x=/../y&z=%2f"},
    {"question mark inside query", "http", "h", "/p?a=1?b=2", 0, "http://h/p?a=1?b=2", "/p?a=1?b=2"},
    {"empty query keeps ?", "http", "h", "/p?", 0, "http://h/p?", "/p?"},
    {"bare percent in query accepted", "http", "h", "/p?off=100%", 0, "http://h/p?off=100%", "/p?off=100%"},
    {"dot removal stops at ?", "http", "h", "/a/..?q", 0, "http://h/?q", "/?q"},
    {"escaped ? stays in path", "http", "h", "/a%3fb/..", 0, "http://h/", "/"},
    {"space in query", "http", "h", "/p?q b", 0, NULL, NULL},
    {"fragment in query", "http", "h", "/p?q#f", 0, NULL, NULL},
    /* path validity */
    {"fragment in path", "http", "h", "/a#frag", 0, NULL, NULL},
    {"raw UTF-8 kept", "http", "h", "/caf\xc3\xa9", 0, "http://h/caf\xc3\xa9", "/caf\xc3\xa9"},
    {"empty path", "http", "h", "", 0, NULL, NULL},
    {"relative path", "http", "h", "a/b", 0, NULL, NULL},
    {"asterisk form", "http", "h", "*", 0, NULL, NULL},
    {"absolute form", "http", "h", "http://h/", 0, NULL, NULL},
    {"space in path", "http", "h", "/a b", 0, NULL, NULL},
    {"tab in path", "http", "h", "/a\tb", 0, NULL, NULL},
    {"control char in path", "http", "h", "/a\x01", 0, NULL, NULL},
    {"DEL in path", "http", "h", "/a\x7f", 0, NULL, NULL},
    {"NUL in path", "http", "h", "/a\0b", 4, NULL, NULL},
};

static void test_key_table(void **state)
{
    struct guard_t ga, gp;
    guard_init(&ga);
    guard_init(&gp);
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        const struct key_row_t *r = rows + i;
        h2o_mem_pool_t pool;
        h2o_mem_init_pool(&pool);
        size_t plen = r->raw_path_len != 0 ? r->raw_path_len : strlen(r->raw_path);
        h2o_iovec_t authority = guarded(&ga, r->authority, strlen(r->authority));
        h2o_iovec_t raw_path = guarded(&gp, r->raw_path, plen);
        h2o_iovec_t key = h2o_iovec_init("untouched", 9), path = key;
        int ret = edge_cache_key_build(&pool, h2o_iovec_init(r->scheme, strlen(r->scheme)), authority, raw_path, &key, &path);
        print_message("row: %s\n", r->name);
        if (r->key == NULL) {
            assert_int_equal(ret, -1);
            /* outputs are left untouched on failure */
            assert_true(h2o_memis(key.base, key.len, H2O_STRLIT("untouched")));
            assert_true(h2o_memis(path.base, path.len, H2O_STRLIT("untouched")));
        } else {
            assert_int_equal(ret, 0);
            assert_int_equal(key.len, strlen(r->key));
            assert_memory_equal(key.base, r->key, key.len);
            assert_int_equal(key.base[key.len], '\0');
            assert_int_equal(path.len, strlen(r->path));
            assert_memory_equal(path.base, r->path, path.len);
            assert_int_equal(path.base[path.len], '\0');
        }
        h2o_mem_clear_pool(&pool);
    }
    guard_dispose(&ga);
    guard_dispose(&gp);
}

/* Normalization is idempotent: keying the forwarded path again gives the same key and path. */
static void test_key_idempotent(void **state)
{
    size_t checked = 0;
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        const struct key_row_t *r = rows + i;
        if (r->key == NULL)
            continue;
        h2o_mem_pool_t pool;
        h2o_mem_init_pool(&pool);
        h2o_iovec_t key, path;
        int ret = edge_cache_key_build(&pool, h2o_iovec_init(r->scheme, strlen(r->scheme)),
                                       h2o_iovec_init(r->authority, strlen(r->authority)), h2o_iovec_init(r->path, strlen(r->path)),
                                       &key, &path);
        print_message("row: %s\n", r->name);
        assert_int_equal(ret, 0);
        assert_string_equal(key.base, r->key);
        assert_string_equal(path.base, r->path);
        h2o_mem_clear_pool(&pool);
        ++checked;
    }
    assert_true(checked > 40);
}

/* ---- query rules ---- */

static void test_query_rules(void **state)
{
    (void)state;
    static const char *const drop[] = {"utm_source", "fbclid"};
    static const struct {
        const char *key;
        edge_query_mode_t mode;
        size_t num_drop;
        const char *want;
    } rows[] = {
        {"http://a/p?b=2&a=1", EDGE_QUERY_KEEP, 0, "http://a/p?b=2&a=1"},
        {"http://a/p?b=2&a=1", EDGE_QUERY_SORT, 0, "http://a/p?a=1&b=2"},
        {"http://a/p?b=2&a=1", EDGE_QUERY_IGNORE, 0, "http://a/p"},
        {"http://a/p", EDGE_QUERY_SORT, 2, "http://a/p"},
        {"http://a/p?utm_source=x&a=1&fbclid=z", EDGE_QUERY_KEEP, 2, "http://a/p?a=1"},
        {"http://a/p?utm_source=x", EDGE_QUERY_KEEP, 2, "http://a/p"},
        {"http://a/p?utm_source_x=1&utm_source", EDGE_QUERY_KEEP, 2, "http://a/p?utm_source_x=1"},
        {"http://a/p?z&&y=1&", EDGE_QUERY_SORT, 0, "http://a/p?y=1&z"},
        {"http://a/p?a=2&a=1", EDGE_QUERY_SORT, 0, "http://a/p?a=1&a=2"},
        {"http://a/p?", EDGE_QUERY_KEEP, 2, "http://a/p"},
    };
    h2o_mem_pool_t pool;
    h2o_mem_init_pool(&pool);
    for (size_t i = 0; i != sizeof(rows) / sizeof(rows[0]); ++i) {
        h2o_iovec_t out;
        print_message("row: %s mode %d\n", rows[i].key, (int)rows[i].mode);
        edge_cache_key_apply_query_rules(&pool, h2o_iovec_init(rows[i].key, strlen(rows[i].key)), rows[i].mode, drop,
                                         rows[i].num_drop, &out);
        assert_int_equal(out.len, strlen(rows[i].want));
        assert_memory_equal(out.base, rows[i].want, out.len);
    }
    h2o_mem_clear_pool(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_table),
        cmocka_unit_test(test_key_idempotent),
        cmocka_unit_test(test_query_rules),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
