/*
 * tests/unit/conf/test_config.c: conf/config.c through its header.
 *
 * Tables of cases, one row per behaviour: sizes, durations, addresses, origin URLs, and bad
 * configurations each with the exact `file:line: key: reason` prefix expected. Scalar parsers get
 * their input at the end of a page followed by an inaccessible guard page, so reading past the
 * terminating NUL crashes the test. Files and directories live in a mkdtemp directory.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/config.h"

#ifndef EDGE_SOURCE_DIR
#error "EDGE_SOURCE_DIR must name the source tree (tests.cmake defines it)"
#endif

static char tmp_dir[1024];
static char *guard_region;
static size_t page_size;

/* ---- fixtures ---- */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static int rm_rf(const char *path)
{
    char cmd[PATH_MAX + 32];
    /* the path is our own mkdtemp result: no shell metacharacters */
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
    return system(cmd);
}

static int group_setup(void **state)
{
    const char *t = getenv("TMPDIR");
    char path[PATH_MAX];
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/test_config.XXXXXX", t != NULL && t[0] != '\0' ? t : "/tmp");
    if (mkdtemp(tmp_dir) == NULL)
        return -1;
    snprintf(path, sizeof(path), "%s/site", tmp_dir);
    if (mkdir(path, 0755) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/sub", tmp_dir);
    if (mkdir(path, 0755) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/sub/site", tmp_dir);
    if (mkdir(path, 0755) != 0)
        return -1;
    snprintf(path, sizeof(path), "%s/plain-file", tmp_dir);
    FILE *fp = fopen(path, "w");
    if (fp == NULL)
        return -1;
    fclose(fp);

    page_size = (size_t)sysconf(_SC_PAGESIZE);
    guard_region = mmap(NULL, 2 * page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (guard_region == MAP_FAILED)
        return -1;
    if (mprotect(guard_region + page_size, page_size, PROT_NONE) != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    munmap(guard_region, 2 * page_size);
    return rm_rf(tmp_dir) == 0 ? 0 : -1;
}

/* Copies s (with its NUL) to the very end of the accessible page. */
static const char *guarded(const char *s)
{
    size_t len = strlen(s) + 1;
    assert_true(len <= page_size);
    char *p = guard_region + page_size - len;
    memcpy(p, s, len);
    return p;
}

static char *tmp_path(char *buf, const char *rel)
{
    snprintf(buf, PATH_MAX, "%s/%s", tmp_dir, rel);
    return buf;
}

/* ---- sizes and durations ---- */

static void test_parse_size(void **state)
{
    static const struct {
        const char *in;
        int ok;
        uint64_t bytes;
    } cases[] = {
        {"0", 1, 0},
        {"123", 1, 123},
        {"10B", 1, 10},
        {"64KiB", 1, 64 * 1024},
        {"1MiB", 1, 1024 * 1024},
        {"2GiB", 1, 2ull * 1024 * 1024 * 1024},
        {"18446744073709551615", 1, UINT64_MAX},
        {"17179869183GiB", 1, 17179869183ull * 1024 * 1024 * 1024}, /* largest GiB count that fits */
        {"", 0, 0},
        {"B", 0, 0},
        {"KiB", 0, 0},
        {"-1", 0, 0},
        {"+1", 0, 0},
        {"1.5MiB", 0, 0},
        {"1 MiB", 0, 0},
        {" 1", 0, 0},
        {"1 ", 0, 0},
        {"1KB", 0, 0},
        {"1kib", 0, 0},
        {"1TiB", 0, 0},
        {"1MiBx", 0, 0},
        {"0x10", 0, 0},
        {"18446744073709551616", 0, 0}, /* UINT64_MAX + 1 */
        {"99999999999999999999999", 0, 0},
        {"17179869184GiB", 0, 0}, /* 2^34 GiB = 2^64 bytes */
        {"18014398509481984KiB", 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        uint64_t bytes = 12345;
        int ret = conf_parse_size(guarded(cases[i].in), &bytes);
        if (ret != (cases[i].ok ? 0 : -1))
            fail_msg("conf_parse_size(\"%s\") returned %d", cases[i].in, ret);
        if (cases[i].ok && bytes != cases[i].bytes)
            fail_msg("conf_parse_size(\"%s\") gave %llu", cases[i].in, (unsigned long long)bytes);
    }
}

static void test_parse_duration(void **state)
{
    static const struct {
        const char *in;
        int ok;
        uint64_t ms;
    } cases[] = {
        {"500ms", 1, 500},
        {"5s", 1, 5000},
        {"2m", 1, 120000},
        {"1h", 1, 3600000},
        {"7", 1, 7000}, /* a bare number is seconds */
        {"0", 1, 0},
        {"0ms", 1, 0},
        {"18446744073709551615ms", 1, UINT64_MAX},
        {"18446744073709551s", 1, 18446744073709551000ull},
        {"", 0, 0},
        {"s", 0, 0},
        {"ms", 0, 0},
        {"-5s", 0, 0},
        {"1.5s", 0, 0},
        {"5 s", 0, 0},
        {"5S", 0, 0},
        {"5sec", 0, 0},
        {"1d", 0, 0},
        {"5us", 0, 0},
        {"18446744073709552s", 0, 0},     /* * 1000 overflows */
        {"18446744073709552", 0, 0},      /* bare seconds overflow as well */
        {"5124095576030432h", 0, 0},      /* * 3600000 overflows */
        {"18446744073709551616ms", 0, 0}, /* the number itself overflows */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        uint64_t ms = 12345;
        int ret = conf_parse_duration_ms(guarded(cases[i].in), &ms);
        if (ret != (cases[i].ok ? 0 : -1))
            fail_msg("conf_parse_duration_ms(\"%s\") returned %d", cases[i].in, ret);
        if (cases[i].ok && ms != cases[i].ms)
            fail_msg("conf_parse_duration_ms(\"%s\") gave %llu", cases[i].in, (unsigned long long)ms);
    }
}

/* ---- addresses ---- */

static void test_parse_address(void **state)
{
    static const struct {
        const char *in;
        int ok;
        const char *host; /* expected host (NULL for "*"), or on failure the expected reason prefix */
        uint16_t port;
    } cases[] = {
        {"127.0.0.1:8080", 1, "127.0.0.1", 8080},
        {"0.0.0.0:0", 1, "0.0.0.0", 0},
        {"[::1]:8080", 1, "::1", 8080},
        {"[::]:443", 1, "::", 443},
        {"[2001:db8::1]:65535", 1, "2001:db8::1", 65535},
        {"*:8080", 1, NULL, 8080},
        {"localhost:8080", 1, "localhost", 8080},
        {"edge-1.example.com:80", 1, "edge-1.example.com", 80},
        {"", 0, "empty address", 0},
        {"127.0.0.1", 0, "missing port", 0},
        {"127.0.0.1:", 0, "missing port", 0},
        {"localhost", 0, "missing port", 0},
        {"[::1]", 0, "missing port", 0},
        {"[::1]:", 0, "missing port", 0},
        {":8080", 0, "missing host", 0},
        {"127.0.0.1:65536", 0, "invalid port", 0},
        {"127.0.0.1:-1", 0, "invalid port", 0},
        {"127.0.0.1:80x", 0, "invalid port", 0},
        {"127.0.0.1:99999999999999999999999", 0, "invalid port", 0},
        {"::1:8080", 0, "an IPv6 address must be in brackets", 0},
        {"[::1:8080", 0, "missing ']'", 0},
        {"[::1]8080", 0, "expected ':' after ']'", 0},
        {"[127.0.0.1]:80", 0, "invalid IPv6 address", 0},
        {"[]:80", 0, "invalid IPv6 address", 0},
        {"[zz::1]:80", 0, "invalid IPv6 address", 0},
        {"256.0.0.1:80", 0, "invalid IPv4 address", 0},
        {"1.2.3:80", 0, "invalid IPv4 address", 0},
        {"bad host:80", 0, "invalid host name", 0},
        {"-bad:80", 0, "invalid host name", 0},
        {"a..b:80", 0, "invalid host name", 0},
        {"**:80", 0, "invalid host name", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        char *host = (char *)"untouched";
        uint16_t port = 1;
        const char *reason = NULL;
        int ret = conf_parse_address(guarded(cases[i].in), &host, &port, &reason);
        if (cases[i].ok) {
            if (ret != 0)
                fail_msg("conf_parse_address(\"%s\") failed: %s", cases[i].in, reason);
            if (cases[i].host == NULL)
                assert_null(host);
            else
                assert_string_equal(host, cases[i].host);
            assert_int_equal(port, cases[i].port);
            free(host);
        } else {
            if (ret != -1)
                fail_msg("conf_parse_address(\"%s\") succeeded", cases[i].in);
            assert_null(host);
            assert_non_null(reason);
            if (strncmp(reason, cases[i].host, strlen(cases[i].host)) != 0)
                fail_msg("conf_parse_address(\"%s\"): reason \"%s\", expected \"%s...\"", cases[i].in, reason, cases[i].host);
        }
    }
}

/* ---- whole configurations ---- */

static const char full_config[] = "listen:\n"                                 /* 1 */
                                  "  - address: 127.0.0.1:0\n"                /* 2 */
                                  "  - address: \"[::1]:8443\"\n"             /* 3 */
                                  "    tls:\n"                                /* 4 */
                                  "      certificate: certs/cert.pem\n"       /* 5 */
                                  "      key: /etc/edge/key.pem\n"            /* 6 */
                                  "      self_signed: yes\n"                  /* 7 */
                                  "  - address: '*:9000'\n"                   /* 8 */
                                  "admin:\n"                                  /* 9 */
                                  "  address: localhost:9001\n"               /* 10 */
                                  "  token: \"s3cret\"\n"                     /* 11 */
                                  "  tls: {certificate: a.pem, key: b.pem}\n" /* 12 */
                                  "workers: 4\n"                              /* 13 */
                                  "cache:\n"                                  /* 14 */
                                  "  path: store\n"                           /* 15 */
                                  "  max_size: 2GiB\n"                        /* 16 */
                                  "  max_object_size: 1MiB\n"                 /* 17 */
                                  "limits:\n"                                 /* 18 */
                                  "  request_body: 64KiB\n"                   /* 19 */
                                  "  client_connections: 100\n"               /* 20 */
                                  "origin:\n"                                 /* 21 */
                                  "  directory: site\n"                       /* 22 */
                                  "  cache_control: \"no-cache\"\n"           /* 23 */
                                  "  connect_timeout: 500ms\n"                /* 24 */
                                  "  first_byte_timeout: 2m\n"                /* 25 */
                                  "  idle_timeout: 1h\n"                      /* 26 */
                                  "  pool_idle_timeout: 7\n"                  /* 27 */
                                  "  max_connections: 65535\n"                /* 28 */
                                  "drain_timeout: 10s\n"                      /* 29 */
                                  "write_timeout: 45s\n"                      /* 30 */
                                  "access_log: logs/access.log\n";            /* 31 */

static void test_full_config(void **state)
{
    conf_t conf;
    char err[512], path[PATH_MAX];

    if (conf_load_string(&conf, full_config, strlen(full_config), "full.yaml", tmp_dir, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(conf.file, "full.yaml");
    assert_string_equal(conf.base_dir, tmp_dir);

    assert_int_equal(conf.num_listen, 3);
    assert_string_equal(conf.listen[0].address, "127.0.0.1:0");
    assert_string_equal(conf.listen[0].host, "127.0.0.1");
    assert_int_equal(conf.listen[0].port, 0);
    assert_int_equal(conf.listen[0].has_tls, 0);
    assert_null(conf.listen[0].tls.certificate_file);
    assert_int_equal(conf.listen[0].line, 2);
    assert_string_equal(conf.listen[1].address, "[::1]:8443");
    assert_string_equal(conf.listen[1].host, "::1");
    assert_int_equal(conf.listen[1].port, 8443);
    assert_int_equal(conf.listen[1].line, 3);
    assert_int_equal(conf.listen[1].has_tls, 1);
    assert_string_equal(conf.listen[1].tls.certificate_file, tmp_path(path, "certs/cert.pem"));
    assert_string_equal(conf.listen[1].tls.key_file, "/etc/edge/key.pem"); /* absolute stays */
    assert_int_equal(conf.listen[1].tls.self_signed, 1);
    assert_int_equal(conf.listen[1].tls.line, 4);
    assert_string_equal(conf.listen[2].address, "*:9000");
    assert_null(conf.listen[2].host);
    assert_int_equal(conf.listen[2].port, 9000);

    assert_int_equal(conf.admin.enabled, 1);
    assert_string_equal(conf.admin.listen.address, "localhost:9001");
    assert_string_equal(conf.admin.listen.host, "localhost");
    assert_int_equal(conf.admin.listen.port, 9001);
    assert_int_equal(conf.admin.listen.line, 10);
    assert_string_equal(conf.admin.token, "s3cret");
    assert_int_equal(conf.admin.token_line, 11);
    assert_int_equal(conf.admin.listen.has_tls, 1);
    assert_string_equal(conf.admin.listen.tls.certificate_file, tmp_path(path, "a.pem"));
    assert_string_equal(conf.admin.listen.tls.key_file, tmp_path(path, "b.pem"));
    assert_int_equal(conf.admin.listen.tls.self_signed, 0);
    assert_int_equal(conf.admin.listen.tls.line, 12);

    assert_int_equal(conf.workers, 4);
    assert_string_equal(conf.cache.path, tmp_path(path, "store"));
    assert_int_equal(conf.cache.path_line, 15);
    assert_int_equal(conf.cache.max_size_bytes, 2ull * 1024 * 1024 * 1024);
    assert_int_equal(conf.cache.max_size_line, 16);
    assert_int_equal(conf.cache.max_object_size_bytes, 1024 * 1024);
    assert_int_equal(conf.limits.request_body_bytes, 64 * 1024);
    assert_int_equal(conf.limits.client_connections, 100);

    assert_int_equal(conf.origin.kind, CONF_ORIGIN_DIRECTORY);
    assert_string_equal(conf.origin.directory, tmp_path(path, "site"));
    assert_null(conf.origin.url);
    assert_null(conf.origin.host);
    assert_int_equal(conf.origin.line, 22);
    assert_string_equal(conf.origin.cache_control, "no-cache");
    assert_int_equal(conf.origin.connect_timeout_ms, 500);
    assert_int_equal(conf.origin.first_byte_timeout_ms, 120000);
    assert_int_equal(conf.origin.idle_timeout_ms, 3600000);
    assert_int_equal(conf.origin.pool_idle_timeout_ms, 7000);
    assert_int_equal(conf.origin.max_connections, 65535);
    assert_int_equal(conf.drain_timeout_ms, 10000);
    assert_int_equal(conf.write_timeout_ms, 45000);
    assert_string_equal(conf.access_log, tmp_path(path, "logs/access.log"));

    conf_dispose(&conf);
    assert_null(conf.listen);
    assert_null(conf.file);
    conf_dispose(&conf); /* safe twice */
}

static void test_defaults(void **state)
{
    static const char yaml[] = "listen:\n  - address: 127.0.0.1:8080\norigin:\n  url: http://127.0.0.1:3000\n";
    conf_t conf;
    char err[512], path[PATH_MAX];

    if (conf_load_string(&conf, yaml, strlen(yaml), "min.yaml", tmp_dir, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(conf.num_listen, 1);
    assert_int_equal(conf.admin.enabled, 1);
    assert_string_equal(conf.admin.listen.address, CONF_DEFAULT_ADMIN_ADDRESS);
    assert_string_equal(conf.admin.listen.host, "127.0.0.1");
    assert_int_equal(conf.admin.listen.port, 8081);
    assert_int_equal(conf.admin.listen.has_tls, 0);
    assert_null(conf.admin.token);
    assert_null(conf.purge.redis);
    assert_string_equal(conf.purge.stream, CONF_DEFAULT_PURGE_STREAM);
    assert_int_equal(conf.purge.max_body_bytes, CONF_DEFAULT_PURGE_MAX_BODY);
    assert_int_equal(conf.purge.max_items, CONF_DEFAULT_PURGE_MAX_ITEMS);
    assert_int_equal(conf.purge.stream_max_len, CONF_DEFAULT_PURGE_STREAM_MAX_LEN);
    assert_int_equal(conf.purge.catchup_timeout_ms, CONF_DEFAULT_PURGE_CATCHUP_TIMEOUT_MS);
    assert_int_equal(conf.purge.timeout_ms, CONF_DEFAULT_PURGE_TIMEOUT_MS);
    assert_int_equal(conf.workers, CONF_DEFAULT_WORKERS);
    assert_string_equal(conf.cache.path, tmp_path(path, CONF_DEFAULT_CACHE_PATH));
    assert_int_equal(conf.cache.max_size_bytes, CONF_DEFAULT_CACHE_MAX_SIZE);
    assert_int_equal(conf.cache.max_object_size_bytes, CONF_DEFAULT_CACHE_MAX_OBJECT_SIZE);
    assert_int_equal(conf.cache.write_queue_bytes, CONF_DEFAULT_CACHE_WRITE_QUEUE);
    assert_int_equal(conf.cache.stale_if_unreachable_ms, CONF_DEFAULT_STALE_IF_UNREACHABLE_MS);
    assert_int_equal(conf.limits.request_body_bytes, CONF_DEFAULT_REQUEST_BODY);
    assert_int_equal(conf.limits.client_connections, CONF_DEFAULT_CLIENT_CONNECTIONS);
    assert_int_equal(conf.origin.kind, CONF_ORIGIN_HTTP);
    assert_string_equal(conf.origin.url, "http://127.0.0.1:3000");
    assert_string_equal(conf.origin.host, "127.0.0.1");
    assert_int_equal(conf.origin.port, 3000);
    assert_int_equal(conf.origin.is_tls, 0);
    assert_int_equal(conf.origin.line, 4);
    assert_null(conf.origin.directory);
    assert_null(conf.origin.cache_control); /* a directory origin's setting */
    assert_int_equal(conf.origin.connect_timeout_ms, CONF_DEFAULT_CONNECT_TIMEOUT_MS);
    assert_int_equal(conf.origin.first_byte_timeout_ms, CONF_DEFAULT_FIRST_BYTE_TIMEOUT_MS);
    assert_int_equal(conf.origin.idle_timeout_ms, CONF_DEFAULT_IDLE_TIMEOUT_MS);
    assert_int_equal(conf.origin.pool_idle_timeout_ms, CONF_DEFAULT_POOL_IDLE_TIMEOUT_MS);
    assert_int_equal(conf.origin.max_connections, CONF_DEFAULT_ORIGIN_MAX_CONNECTIONS);
    assert_int_equal(conf.drain_timeout_ms, CONF_DEFAULT_DRAIN_TIMEOUT_MS);
    assert_int_equal(conf.write_timeout_ms, CONF_DEFAULT_WRITE_TIMEOUT_MS);
    assert_string_equal(conf.access_log, CONF_DEFAULT_ACCESS_LOG);
    assert_int_equal(conf.compress.enabled, 1);
    assert_null(conf.compress.types); /* the built-in list */
    assert_int_equal(conf.compress.num_types, 0);
    assert_int_equal(conf.compress.min_size_bytes, CONF_DEFAULT_COMPRESS_MIN_SIZE);
    assert_int_equal(conf.compress.gzip_level, CONF_DEFAULT_COMPRESS_GZIP_LEVEL);
    assert_int_equal(conf.compress.brotli_level, CONF_DEFAULT_COMPRESS_BROTLI_LEVEL);
    assert_int_equal(conf.compress.threads, CONF_DEFAULT_COMPRESS_THREADS);
    assert_int_equal(conf.compress.queue, CONF_DEFAULT_COMPRESS_QUEUE);
    assert_int_equal(conf.compress.hot_hits, CONF_DEFAULT_COMPRESS_HOT_HITS);
    conf_dispose(&conf);
}

static void check_embedded(const char *base_dir, const char *prefix)
{
    conf_t conf;
    char err[512], want[PATH_MAX];

    if (conf_load_string(&conf, conf_embedded_default, strlen(conf_embedded_default), "<embedded>", base_dir, err, sizeof(err)) !=
        0)
        fail_msg("%s", err);
    assert_int_equal(conf.num_listen, 2);
    assert_string_equal(conf.listen[0].host, "127.0.0.1");
    assert_int_equal(conf.listen[0].port, 8080);
    assert_int_equal(conf.listen[0].has_tls, 0);
    assert_string_equal(conf.listen[1].host, "127.0.0.1");
    assert_int_equal(conf.listen[1].port, 8443);
    assert_int_equal(conf.listen[1].has_tls, 1);
    assert_int_equal(conf.listen[1].tls.self_signed, 1);
    snprintf(want, sizeof(want), "%s%s", prefix, CONF_DEFAULT_SELF_SIGNED_CERT);
    assert_string_equal(conf.listen[1].tls.certificate_file, want);
    snprintf(want, sizeof(want), "%s%s", prefix, CONF_DEFAULT_SELF_SIGNED_KEY);
    assert_string_equal(conf.listen[1].tls.key_file, want);
    assert_int_equal(conf.admin.enabled, 1);
    assert_string_equal(conf.admin.listen.address, "127.0.0.1:8081");
    assert_null(conf.admin.token);
    assert_int_equal(conf.origin.kind, CONF_ORIGIN_DIRECTORY);
    snprintf(want, sizeof(want), "%sconf/example-site", prefix);
    assert_string_equal(conf.origin.directory, want);
    assert_string_equal(conf.origin.cache_control, CONF_DEFAULT_ORIGIN_CACHE_CONTROL);
    snprintf(want, sizeof(want), "%s%s", prefix, CONF_DEFAULT_CACHE_PATH);
    assert_string_equal(conf.cache.path, want);
    assert_int_equal(conf.cache.max_size_bytes, CONF_DEFAULT_CACHE_MAX_SIZE);
    assert_int_equal(conf.workers, CONF_DEFAULT_WORKERS);
    assert_string_equal(conf.access_log, "-");
    conf_dispose(&conf);
}

static void test_embedded_default(void **state)
{
    /* as the unit test sees it: against the source tree */
    check_embedded(EDGE_SOURCE_DIR, EDGE_SOURCE_DIR "/");

    /* as cdn-edge sees it when run from the repository root: paths stay relative */
    int cwd = open(".", O_RDONLY | O_DIRECTORY);
    assert_true(cwd >= 0);
    assert_int_equal(chdir(EDGE_SOURCE_DIR), 0);
    check_embedded(".", "");
    assert_int_equal(fchdir(cwd), 0);
    close(cwd);
}

static void test_load_file(void **state)
{
    conf_t conf;
    char err[512], file[PATH_MAX], want[PATH_MAX + 64];

    /* relative paths resolve against the file's directory, not the working directory */
    tmp_path(file, "sub/edge.yaml");
    write_file(file, "listen:\n  - address: 127.0.0.1:0\norigin:\n  directory: site\naccess_log: access.log\n");
    if (conf_load_file(&conf, file, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(conf.file, file);
    snprintf(want, sizeof(want), "%s/sub", tmp_dir);
    assert_string_equal(conf.base_dir, want);
    snprintf(want, sizeof(want), "%s/sub/site", tmp_dir);
    assert_string_equal(conf.origin.directory, want);
    snprintf(want, sizeof(want), "%s/sub/access.log", tmp_dir);
    assert_string_equal(conf.access_log, want);
    conf_dispose(&conf);

    /* errors name the file as given */
    write_file(file, "listen:\n  - address: 127.0.0.1:0\norigin:\n  directory: nowhere\n");
    assert_int_equal(conf_load_file(&conf, file, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:4: origin.directory: %s", file, strerror(ENOENT));
    assert_string_equal(err, want);
    assert_null(conf.file);

    /* I/O error: `file: reason` */
    tmp_path(file, "missing.yaml");
    assert_int_equal(conf_load_file(&conf, file, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s: %s", file, strerror(ENOENT));
    assert_string_equal(err, want);
    conf_dispose(&conf);
}

/* The shipped example must stay loadable and say what its comments say. */
static void test_example_file(void **state)
{
    conf_t conf;
    char err[512];

    /* the Next.js example: the default with the origin changed */
    if (conf_load_file(&conf, EDGE_SOURCE_DIR "/conf/nextjs.example.yaml", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(conf.origin.kind, CONF_ORIGIN_HTTP);
    assert_int_equal(conf.origin.port, 3000);
    assert_string_equal(conf.admin.token, "change-me");
    conf_dispose(&conf);

    if (conf_load_file(&conf, EDGE_SOURCE_DIR "/conf/edge.example.yaml", err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_string_equal(conf.base_dir, EDGE_SOURCE_DIR "/conf");
    assert_int_equal(conf.num_listen, 2);
    assert_int_equal(conf.listen[1].has_tls, 1);
    assert_string_equal(conf.listen[1].tls.certificate_file, EDGE_SOURCE_DIR "/conf/../var/tls/cert.pem");
    assert_int_equal(conf.origin.kind, CONF_ORIGIN_HTTP);
    assert_string_equal(conf.origin.host, "127.0.0.1");
    assert_int_equal(conf.origin.port, 3000);
    assert_string_equal(conf.cache.path, EDGE_SOURCE_DIR "/conf/../var/cache");
    assert_int_equal(conf.cache.max_size_bytes, CONF_DEFAULT_CACHE_MAX_SIZE);
    assert_int_equal(conf.origin.pool_idle_timeout_ms, CONF_DEFAULT_POOL_IDLE_TIMEOUT_MS);
    assert_string_equal(conf.access_log, "-");
    /* the example names every compress key with its default; types stays commented out (the built-in list) */
    assert_int_equal(conf.compress.enabled, CONF_DEFAULT_COMPRESS_ENABLED);
    assert_null(conf.compress.types);
    assert_int_equal(conf.compress.min_size_bytes, CONF_DEFAULT_COMPRESS_MIN_SIZE);
    assert_int_equal(conf.compress.gzip_level, CONF_DEFAULT_COMPRESS_GZIP_LEVEL);
    assert_int_equal(conf.compress.brotli_level, CONF_DEFAULT_COMPRESS_BROTLI_LEVEL);
    assert_int_equal(conf.compress.threads, CONF_DEFAULT_COMPRESS_THREADS);
    assert_int_equal(conf.compress.queue, CONF_DEFAULT_COMPRESS_QUEUE);
    conf_dispose(&conf);
}

static void test_origin_url(void **state)
{
    static const struct {
        const char *url;
        const char *err; /* NULL: accepted; else the reason prefix */
        int is_tls;
        const char *host;
        uint16_t port;
    } cases[] = {
        {"http://127.0.0.1:3000", NULL, 0, "127.0.0.1", 3000},
        {"http://127.0.0.1:3000/", NULL, 0, "127.0.0.1", 3000},
        {"http://example.com", NULL, 0, "example.com", 80},
        {"https://example.com", NULL, 1, "example.com", 443},
        {"HTTPS://example.com:8443/", NULL, 1, "example.com", 8443},
        {"http://[::1]:3000", NULL, 0, "::1", 3000},
        {"http://[::1]", NULL, 0, "::1", 80},
        {"ftp://example.com", "unsupported scheme", 0, NULL, 0},
        {"example.com:80", "unsupported scheme", 0, NULL, 0},
        {"http://example.com/app", "a path is not allowed", 0, NULL, 0},
        {"http://example.com//", "a path is not allowed", 0, NULL, 0},
        {"http://example.com/?a=1", "a query is not allowed", 0, NULL, 0},
        {"http://example.com?a=1", "a query is not allowed", 0, NULL, 0},
        {"http://example.com#top", "a fragment is not allowed", 0, NULL, 0},
        {"http://user:pw@example.com", "userinfo", 0, NULL, 0},
        {"http://", "missing host", 0, NULL, 0},
        {"http://:80", "missing host", 0, NULL, 0},
        {"http://example.com:0", "invalid port", 0, NULL, 0},
        {"http://example.com:", "missing port", 0, NULL, 0},
        {"http://example.com:65536", "invalid port", 0, NULL, 0},
        {"http://*:80", "invalid host", 0, NULL, 0},
        {"http://::1:80", "an IPv6 address must be in brackets", 0, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        char yaml[512], err[512], want[512];
        conf_t conf;
        snprintf(yaml, sizeof(yaml), "listen:\n  - address: 127.0.0.1:0\norigin:\n  url: \"%s\"\n", cases[i].url);
        int ret = conf_load_string(&conf, yaml, strlen(yaml), "u.yaml", tmp_dir, err, sizeof(err));
        if (cases[i].err == NULL) {
            if (ret != 0)
                fail_msg("%s: %s", cases[i].url, err);
            assert_int_equal(conf.origin.kind, CONF_ORIGIN_HTTP);
            assert_string_equal(conf.origin.url, cases[i].url);
            assert_int_equal(conf.origin.is_tls, cases[i].is_tls);
            assert_string_equal(conf.origin.host, cases[i].host);
            assert_int_equal(conf.origin.port, cases[i].port);
        } else {
            snprintf(want, sizeof(want), "u.yaml:4: origin.url: %s", cases[i].err);
            if (ret != -1 || strncmp(err, want, strlen(want)) != 0)
                fail_msg("%s: got %d \"%s\", expected \"%s...\"", cases[i].url, ret, err, want);
        }
        conf_dispose(&conf);
    }
}

static void test_redis_url(void **state)
{
    static const struct {
        const char *url;
        const char *err; /* NULL: accepted; else the reason prefix */
        const char *host;
        uint16_t port;
        const char *user, *password;
        unsigned db;
    } cases[] = {
        {"redis://127.0.0.1:6379", NULL, "127.0.0.1", 6379, NULL, NULL, 0},
        {"redis://127.0.0.1", NULL, "127.0.0.1", CONF_DEFAULT_REDIS_PORT, NULL, NULL, 0},
        {"redis://redis.example.com:7000/3", NULL, "redis.example.com", 7000, NULL, NULL, 3},
        {"redis://[::1]:6380", NULL, "::1", 6380, NULL, NULL, 0},
        {"redis://[::1]", NULL, "::1", 6379, NULL, NULL, 0},
        {"redis://:s3cret@127.0.0.1", NULL, "127.0.0.1", 6379, NULL, "s3cret", 0},
        {"redis://edge:p@ss@127.0.0.1:1/0", NULL, "127.0.0.1", 1, "edge", "p@ss", 0},
        {"redis://127.0.0.1:6379/", NULL, "127.0.0.1", 6379, NULL, NULL, 0},
        {"rediss://127.0.0.1", "expected redis://", NULL, 0, NULL, NULL, 0},
        {"http://127.0.0.1", "expected redis://", NULL, 0, NULL, NULL, 0},
        {"redis://", "missing host", NULL, 0, NULL, NULL, 0},
        {"redis://*:6379", "invalid host", NULL, 0, NULL, NULL, 0},
        {"redis://127.0.0.1:0", "invalid port", NULL, 0, NULL, NULL, 0},
        {"redis://127.0.0.1:65536", "invalid port", NULL, 0, NULL, NULL, 0},
        {"redis://127.0.0.1/x", "invalid database number", NULL, 0, NULL, NULL, 0},
        {"redis://127.0.0.1/65536", "invalid database number", NULL, 0, NULL, NULL, 0},
        {"redis://user@127.0.0.1", "expected user:password@", NULL, 0, NULL, NULL, 0},
        {"redis://user:@127.0.0.1", "empty password", NULL, 0, NULL, NULL, 0},
        {"redis://::1:6379", "an IPv6 address must be in brackets", NULL, 0, NULL, NULL, 0},
        {"redis://127.0.0.1?db=1", "a query or fragment is not allowed", NULL, 0, NULL, NULL, 0},
        {"redis://256.1.1.1", "invalid IPv4 address", NULL, 0, NULL, NULL, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        char yaml[512], err[512], want[512];
        conf_t conf;
        snprintf(yaml, sizeof(yaml), "listen:\n  - address: 127.0.0.1:0\norigin:\n  url: http://o\npurge:\n  redis: \"%s\"\n",
                 cases[i].url);
        int ret = conf_load_string(&conf, yaml, strlen(yaml), "r.yaml", tmp_dir, err, sizeof(err));
        if (cases[i].err == NULL) {
            if (ret != 0)
                fail_msg("%s: %s", cases[i].url, err);
            assert_string_equal(conf.purge.redis, cases[i].url);
            assert_string_equal(conf.purge.redis_host, cases[i].host);
            assert_int_equal(conf.purge.redis_port, cases[i].port);
            if (cases[i].user == NULL)
                assert_null(conf.purge.redis_user);
            else
                assert_string_equal(conf.purge.redis_user, cases[i].user);
            if (cases[i].password == NULL)
                assert_null(conf.purge.redis_password);
            else
                assert_string_equal(conf.purge.redis_password, cases[i].password);
            assert_int_equal(conf.purge.redis_db, cases[i].db);
            assert_int_equal(conf.purge.redis_line, 6);
        } else {
            snprintf(want, sizeof(want), "r.yaml:6: purge.redis: %s", cases[i].err);
            if (ret != -1 || strncmp(err, want, strlen(want)) != 0)
                fail_msg("%s: got %d \"%s\", expected \"%s...\"", cases[i].url, ret, err, want);
        }
        conf_dispose(&conf);
    }
}

static void test_purge_section(void **state)
{
    static const char yaml[] = "listen:\n  - address: 127.0.0.1:0\norigin:\n  url: http://o\npurge:\n"
                               "  stream: edge-purges\n  max_body: 64KiB\n  max_items: 10\n  stream_max_len: 0\n"
                               "  catchup_timeout: 3s\n  timeout: 500ms\n";
    conf_t conf;
    char err[512];

    if (conf_load_string(&conf, yaml, strlen(yaml), "p.yaml", tmp_dir, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_null(conf.purge.redis);
    assert_string_equal(conf.purge.stream, "edge-purges");
    assert_int_equal(conf.purge.max_body_bytes, 64 * 1024);
    assert_int_equal(conf.purge.max_items, 10);
    assert_int_equal(conf.purge.stream_max_len, 0);
    assert_int_equal(conf.purge.catchup_timeout_ms, 3000);
    assert_int_equal(conf.purge.timeout_ms, 500);
    conf_dispose(&conf);
}

static void test_compress_section(void **state)
{
    static const char yaml[] = "listen:\n  - address: 127.0.0.1:0\norigin:\n  url: http://o\ncompress:\n"
                               "  enabled: true\n  types: [text/html, \"text/*\", +json, image/svg+xml]\n  min_size: 1KiB\n"
                               "  gzip_level: 9\n  brotli_level: 0\n  threads: 4\n  queue: 1\n  hot_hits: 0\n";
    conf_t conf;
    char err[512];

    if (conf_load_string(&conf, yaml, strlen(yaml), "c.yaml", tmp_dir, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_int_equal(conf.compress.enabled, 1);
    assert_int_equal(conf.compress.num_types, 4);
    assert_string_equal(conf.compress.types[0], "text/html");
    assert_string_equal(conf.compress.types[1], "text/*");
    assert_string_equal(conf.compress.types[2], "+json");
    assert_string_equal(conf.compress.types[3], "image/svg+xml");
    assert_int_equal(conf.compress.types_line, 7);
    assert_int_equal(conf.compress.min_size_bytes, 1024);
    assert_int_equal(conf.compress.gzip_level, 9);
    assert_int_equal(conf.compress.brotli_level, 0);
    assert_int_equal(conf.compress.threads, 4);
    assert_int_equal(conf.compress.queue, 1);
    assert_int_equal(conf.compress.hot_hits, 0);
    conf_dispose(&conf);

    static const struct {
        const char *tail;
        int enabled;
    } cases[] = {{"compress: off\n", 0}, {"compress: on\n", 1}, {"compress: {}\n", 1}, {"compress:\n  enabled: no\n", 0}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        char y[512];
        snprintf(y, sizeof(y), "listen:\n  - address: 127.0.0.1:0\norigin:\n  url: http://o\n%s", cases[i].tail);
        if (conf_load_string(&conf, y, strlen(y), "c.yaml", tmp_dir, err, sizeof(err)) != 0)
            fail_msg("%s: %s", cases[i].tail, err);
        if (conf.compress.enabled != cases[i].enabled)
            fail_msg("%s: compress.enabled %d", cases[i].tail, conf.compress.enabled);
        assert_int_equal(conf.compress.gzip_level, CONF_DEFAULT_COMPRESS_GZIP_LEVEL);
        conf_dispose(&conf);
    }
}

static void test_switches(void **state)
{
    static const struct {
        const char *tail; /* appended to a minimal config */
        int admin_enabled;
        const char *access_log; /* NULL: none */
    } cases[] = {
        {"", 1, "-"},
        {"admin: off\n", 0, "-"},
        {"admin: no\n", 0, "-"},
        {"admin: on\n", 1, "-"},
        {"admin: {}\n", 1, "-"},
        {"access_log: off\n", 1, NULL},
        {"access_log: \"off\"\n", 1, NULL},
        {"access_log: false\n", 1, NULL},
        {"access_log: '-'\n", 1, "-"},
        {"access_log: /var/log/edge.log\n", 1, "/var/log/edge.log"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        char yaml[512], err[512];
        conf_t conf;
        snprintf(yaml, sizeof(yaml), "listen:\n  - address: 127.0.0.1:0\norigin:\n  directory: site\n%s", cases[i].tail);
        if (conf_load_string(&conf, yaml, strlen(yaml), "s.yaml", tmp_dir, err, sizeof(err)) != 0)
            fail_msg("%s: %s", cases[i].tail, err);
        if (conf.admin.enabled != cases[i].admin_enabled)
            fail_msg("%s: admin.enabled %d", cases[i].tail, conf.admin.enabled);
        if (cases[i].access_log == NULL)
            assert_null(conf.access_log);
        else
            assert_string_equal(conf.access_log, cases[i].access_log);
        conf_dispose(&conf);
    }
}

#define LISTEN "listen:\n  - address: 127.0.0.1:8080\n" /* lines 1-2 */
#define ORIGIN "origin:\n  directory: site\n"           /* 2 lines */

static void test_bad_configs(void **state)
{
    static const struct {
        const char *yaml;
        const char *err; /* exact prefix of the error */
    } cases[] = {
        /* keys */
        {LISTEN ORIGIN "bogus: 1\n", "b.yaml:5: bogus: unknown key"},
        {LISTEN "cache:\n  maxsize: 1GiB\n" ORIGIN, "b.yaml:4: cache.maxsize: unknown key"},
        {LISTEN "    port: 80\n" ORIGIN, "b.yaml:3: listen[0].port: unknown key"},
        {LISTEN "  - address: 127.0.0.1:8443\n    tls: {certificate: c, key: k, selfsigned: true}\n" ORIGIN,
         "b.yaml:4: listen[1].tls.selfsigned: unknown key"},
        {"workers: 1\n" LISTEN "workers: 2\n" ORIGIN, "b.yaml:4: workers: duplicate key"},
        {LISTEN "    address: 127.0.0.1:8081\n" ORIGIN, "b.yaml:3: listen[0].address: duplicate key"},
        {LISTEN "origin:\n  directory: site\n  directory: site\n", "b.yaml:5: origin.directory: duplicate key"},
        {LISTEN ORIGIN "? [a]\n: 1\n", "b.yaml:5: a key must be a scalar"},
        /* sizes and numbers */
        {LISTEN "cache:\n  max_size: 1.5GiB\n" ORIGIN, "b.yaml:4: cache.max_size: invalid size `1.5GiB`"},
        {LISTEN "cache:\n  stale_if_unreachable: soon\n" ORIGIN, "b.yaml:4: cache.stale_if_unreachable: invalid duration `soon`"},
        {LISTEN "cache:\n  query: shuffle\n" ORIGIN, "b.yaml:4: cache.query: expected keep, sort or ignore, got `shuffle`"},
        {LISTEN "cache:\n  query_drop: [\"a&b\"]\n" ORIGIN, "b.yaml:4: cache.query_drop[0]: invalid parameter name `a&b`"},
        {LISTEN "cache:\n  honor_client_no_cache: maybe\n" ORIGIN, "b.yaml:4: cache.honor_client_no_cache: "},
        {LISTEN "purge:\n  tag_headers: [\"bad header\"]\n" ORIGIN, "b.yaml:4: purge.tag_headers[0]: invalid header name `bad header`"},
        {LISTEN "purge:\n  tag_headers: x-tags\n" ORIGIN, "b.yaml:4: purge.tag_headers: expected a list of header names"},
        {LISTEN "cache:\n  max_size: -1\n" ORIGIN, "b.yaml:4: cache.max_size: invalid size `-1`"},
        {LISTEN "cache:\n  max_size: 99999999999GiB\n" ORIGIN, "b.yaml:4: cache.max_size: invalid size"},
        {LISTEN "cache:\n  max_size: 1KiB\n" ORIGIN, "b.yaml:4: cache.max_size: must be at least 1MiB"},
        {LISTEN "cache:\n  max_size: 2MiB\n  max_object_size: 3MiB\n" ORIGIN,
         "b.yaml:5: cache.max_object_size: must not exceed cache.max_size"},
        {LISTEN "cache:\n  write_queue: 512KiB\n" ORIGIN, "b.yaml:4: cache.write_queue: must be at least 1MiB"},
        {LISTEN "cache:\n  max_size: 2MiB\n" ORIGIN, "b.yaml:4: cache.max_object_size: must not exceed cache.max_size"},
        {LISTEN "cache:\n  max_object_size: 0\n" ORIGIN, "b.yaml:4: cache.max_object_size: must be greater than 0"},
        {LISTEN "limits:\n  request_body: 1MB\n" ORIGIN, "b.yaml:4: limits.request_body: invalid size `1MB`"},
        {LISTEN "limits:\n  client_connections: 0\n" ORIGIN, "b.yaml:4: limits.client_connections: must be between 1 and 1000000"},
        {LISTEN "workers: 257\n" ORIGIN, "b.yaml:3: workers: must be between 0 and 256"},
        {LISTEN "workers: -1\n" ORIGIN, "b.yaml:3: workers: expected an integer, got `-1`"},
        {LISTEN "workers: 2.5\n" ORIGIN, "b.yaml:3: workers: expected an integer"},
        {LISTEN "origin:\n  url: http://o\n  max_connections: 65536\n",
         "b.yaml:5: origin.max_connections: must be between 1 and 65535"},
        /* durations */
        {LISTEN "origin:\n  url: http://o\n  connect_timeout: 5x\n", "b.yaml:5: origin.connect_timeout: invalid duration `5x`"},
        {LISTEN "origin:\n  url: http://o\n  idle_timeout: 0ms\n", "b.yaml:5: origin.idle_timeout: must be greater than 0"},
        {LISTEN ORIGIN "drain_timeout: 0\n", "b.yaml:5: drain_timeout: must be greater than 0"},
        {LISTEN ORIGIN "write_timeout: 1.5s\n", "b.yaml:5: write_timeout: invalid duration"},
        /* purge */
        {LISTEN ORIGIN "purge:\n  bogus: 1\n", "b.yaml:6: purge.bogus: unknown key"},
        {LISTEN ORIGIN "purge: on\n", "b.yaml:5: purge: expected a mapping"},
        {LISTEN ORIGIN "purge:\n  redis: redis://h:99999\n", "b.yaml:6: purge.redis: invalid port"},
        {LISTEN ORIGIN "purge:\n  redis:\n", "b.yaml:6: purge.redis: missing value"},
        {LISTEN ORIGIN "purge:\n  stream: \"a b\"\n", "b.yaml:6: purge.stream: must not contain spaces"},
        {LISTEN ORIGIN "purge:\n  max_body: 10B\n", "b.yaml:6: purge.max_body: must be between 64B and 64MiB"},
        {LISTEN ORIGIN "purge:\n  max_body: 65MiB\n", "b.yaml:6: purge.max_body: must be between 64B and 64MiB"},
        {LISTEN "limits:\n  request_body: 1KiB\n" ORIGIN "purge:\n  max_body: 2KiB\n",
         "b.yaml:8: purge.max_body: must not exceed limits.request_body"},
        {LISTEN ORIGIN "purge:\n  max_items: 0\n", "b.yaml:6: purge.max_items: must be between 1 and 100000"},
        {LISTEN ORIGIN "purge:\n  stream_max_len: -1\n", "b.yaml:6: purge.stream_max_len: expected an integer"},
        {LISTEN ORIGIN "purge:\n  catchup_timeout: 1x\n", "b.yaml:6: purge.catchup_timeout: invalid duration"},
        {LISTEN ORIGIN "purge:\n  timeout: 0\n", "b.yaml:6: purge.timeout: must be greater than 0"},
        /* compress */
        {LISTEN ORIGIN "compress:\n  bogus: 1\n", "b.yaml:6: compress.bogus: unknown key"},
        {LISTEN ORIGIN "compress: maybe\n", "b.yaml:5: compress: expected a mapping or off, got `maybe`"},
        {LISTEN ORIGIN "compress:\n  enabled: 2\n", "b.yaml:6: compress.enabled: expected a boolean"},
        {LISTEN ORIGIN "compress:\n  types: text/html\n", "b.yaml:6: compress.types: expected a list of media types, got a scalar"},
        {LISTEN ORIGIN "compress:\n  types: []\n", "b.yaml:6: compress.types: at least one media type"},
        {LISTEN ORIGIN "compress:\n  types:\n    - text/html\n    - html\n",
         "b.yaml:8: compress.types[1]: invalid media type `html`"},
        {LISTEN ORIGIN "compress:\n  types: [\"text/html; charset=utf-8\"]\n", "b.yaml:6: compress.types[0]: invalid media type"},
        {LISTEN ORIGIN "compress:\n  types: [\"*/*\"]\n", "b.yaml:6: compress.types[0]: invalid media type"},
        {LISTEN ORIGIN "compress:\n  types: [+]\n", "b.yaml:6: compress.types[0]: invalid media type"},
        {LISTEN ORIGIN "compress:\n  types: [text/]\n", "b.yaml:6: compress.types[0]: invalid media type"},
        {LISTEN ORIGIN "compress:\n  types: [[text/html]]\n", "b.yaml:6: compress.types[0]: expected a scalar value, got a list"},
        {LISTEN ORIGIN "compress:\n  min_size: 1k\n", "b.yaml:6: compress.min_size: invalid size"},
        {LISTEN ORIGIN "compress:\n  gzip_level: 0\n", "b.yaml:6: compress.gzip_level: must be between 1 and 9"},
        {LISTEN ORIGIN "compress:\n  gzip_level: 10\n", "b.yaml:6: compress.gzip_level: must be between 1 and 9"},
        {LISTEN ORIGIN "compress:\n  brotli_level: 12\n", "b.yaml:6: compress.brotli_level: must be between 0 and 11"},
        {LISTEN ORIGIN "compress:\n  threads: 0\n", "b.yaml:6: compress.threads: must be between 1 and 64"},
        {LISTEN ORIGIN "compress:\n  queue: 0\n", "b.yaml:6: compress.queue: must be between 1 and 1000000"},
        {LISTEN ORIGIN "compress:\n  hot_hits: 16000001\n", "b.yaml:6: compress.hot_hits: must be between 0 and 16000000"},
        /* origin */
        {LISTEN "origin:\n  url: http://o\n  directory: site\n",
         "b.yaml:5: origin.directory: url and directory are mutually exclusive"},
        {LISTEN "origin:\n  connect_timeout: 1s\n", "b.yaml:3: origin: one of url or directory is required"},
        {LISTEN "origin: {}\n", "b.yaml:3: origin: one of url or directory is required"},
        {LISTEN, "b.yaml:1: origin: required"},
        {LISTEN "origin: http://o\n", "b.yaml:3: origin: expected a mapping, got a scalar"},
        {LISTEN "origin:\n", "b.yaml:3: origin: expected a mapping, got nothing"},
        {LISTEN "origin:\n  url: ftp://o\n", "b.yaml:4: origin.url: unsupported scheme"},
        {LISTEN "origin:\n  url: http://o/app\n", "b.yaml:4: origin.url: a path is not allowed"},
        {LISTEN "origin:\n  url: [http://o]\n", "b.yaml:4: origin.url: expected a scalar value, got a list"},
        {LISTEN "origin:\n  url:\n", "b.yaml:4: origin.url: missing value"},
        {LISTEN "origin:\n  directory: nope\n", "b.yaml:4: origin.directory: No such file or directory"},
        {LISTEN "origin:\n  directory: plain-file\n", "b.yaml:4: origin.directory: Not a directory"},
        {LISTEN "origin:\n  url: http://o\n  cache_control: no-store\n",
         "b.yaml:5: origin.cache_control: only valid with origin.directory"},
        /* listen */
        {"listen: 127.0.0.1:8080\n" ORIGIN, "b.yaml:1: listen: expected a list of listeners, got a scalar"},
        {"listen:\n  address: 127.0.0.1:8080\n" ORIGIN, "b.yaml:2: listen: expected a list of listeners, got a mapping"},
        {"listen: []\n" ORIGIN, "b.yaml:1: listen: at least one listener is required"},
        {ORIGIN, "b.yaml:1: listen: at least one listener is required"},
        {"", "b.yaml:1: listen: at least one listener is required"},
        {"listen:\n  - 127.0.0.1:8080\n" ORIGIN, "b.yaml:2: listen[0]: expected a mapping, got a scalar"},
        {LISTEN "  - tls: {certificate: c, key: k}\n" ORIGIN, "b.yaml:3: listen[1].address: missing"},
        {LISTEN "  - address: 127.0.0.1\n" ORIGIN, "b.yaml:3: listen[1].address: missing port"},
        {LISTEN "  - address: 127.0.0.1:70000\n" ORIGIN, "b.yaml:3: listen[1].address: invalid port"},
        {LISTEN "  - address: ::1:80\n" ORIGIN, "b.yaml:3: listen[1].address: an IPv6 address must be in brackets"},
        {LISTEN "  - address: {host: x}\n" ORIGIN, "b.yaml:3: listen[1].address: expected a scalar value, got a mapping"},
        {LISTEN "  - address: 127.0.0.1:8443\n    tls:\n      certificate: c.pem\n" ORIGIN, "b.yaml:4: listen[1].tls.key: missing"},
        {LISTEN "  - address: 127.0.0.1:8443\n    tls:\n      key: k.pem\n      self_signed: true\n" ORIGIN,
         "b.yaml:4: listen[1].tls.certificate: missing"},
        {LISTEN "    tls: on\n" ORIGIN, "b.yaml:3: listen[0].tls: expected a mapping, got a scalar"},
        {LISTEN "    tls: {certificate: c, key: k, self_signed: maybe}\n" ORIGIN,
         "b.yaml:3: listen[0].tls.self_signed: expected a boolean"},
        /* admin */
        {LISTEN "admin: maybe\n" ORIGIN, "b.yaml:3: admin: expected a mapping or off"},
        {LISTEN "admin:\n  address: 127.0.0.1\n" ORIGIN, "b.yaml:4: admin.address: missing port"},
        {LISTEN "admin:\n  tls: {key: k}\n" ORIGIN, "b.yaml:4: admin.tls.certificate: missing"},
        {LISTEN "admin:\n  token: \"\"\n" ORIGIN, "b.yaml:4: admin.token: empty value"},
        {LISTEN "admin:\n  token: \"a\\0b\"\n" ORIGIN, "b.yaml:4: admin.token: value contains a NUL character"},
        {LISTEN ORIGIN "access_log: yes\n", "b.yaml:5: access_log: expected a path"},
        /* YAML itself */
        {LISTEN "  - address: a: b\n" ORIGIN, "b.yaml:3: mapping values are not allowed in this context"},
        {LISTEN "origin: [\n", "b.yaml:4: did not find expected node content"},
        {LISTEN "\tworkers: 1\n" ORIGIN, "b.yaml:3: found a tab character that violates indentation"},
        {LISTEN "workers: *w\n" ORIGIN, "b.yaml:3: found undefined alias"},
        {LISTEN "workers: \"\xff\"\n" ORIGIN, "b.yaml:3: invalid leading UTF-8 octet"},
        {"- 1\n- 2\n", "b.yaml:1: the top level must be a mapping, got a list"},
        {LISTEN ORIGIN "---\nworkers: 1\n", "b.yaml:6: only one YAML document is allowed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        conf_t conf;
        char err[512];
        memset(err, 'x', sizeof(err));
        int ret = conf_load_string(&conf, cases[i].yaml, strlen(cases[i].yaml), "b.yaml", tmp_dir, err, sizeof(err));
        if (ret != -1)
            fail_msg("case %zu accepted:\n%s", i, cases[i].yaml);
        if (strncmp(err, cases[i].err, strlen(cases[i].err)) != 0)
            fail_msg("case %zu:\n%sgot:      %s\nexpected: %s...", i, cases[i].yaml, err, cases[i].err);
        /* a failed load leaves the conf disposed */
        assert_null(conf.file);
        assert_null(conf.listen);
        assert_null(conf.cache.path);
        conf_dispose(&conf);
    }
}

static void test_conf_error(void **state)
{
    static const char yaml[] = LISTEN ORIGIN;
    conf_t conf;
    char err[512], small[12];

    if (conf_load_string(&conf, yaml, strlen(yaml), "e.yaml", tmp_dir, err, sizeof(err)) != 0)
        fail_msg("%s", err);
    assert_ptr_equal(conf_error(err, sizeof(err), &conf, conf.listen[0].line, "listen[0].address", "bind: %s", "Address in use"),
                     err);
    assert_string_equal(err, "e.yaml:2: listen[0].address: bind: Address in use");
    /* line 0: a value that came from a default */
    conf_error(err, sizeof(err), &conf, 0, "cache.path", "cannot open");
    assert_string_equal(err, "e.yaml: cache.path: cannot open");
    /* truncated, still terminated */
    conf_error(small, sizeof(small), &conf, 2, "listen[0].address", "long reason");
    assert_string_equal(small, "e.yaml:2: l");
    conf_dispose(&conf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_size),  cmocka_unit_test(test_parse_duration), cmocka_unit_test(test_parse_address),
        cmocka_unit_test(test_full_config), cmocka_unit_test(test_defaults),       cmocka_unit_test(test_embedded_default),
        cmocka_unit_test(test_load_file),   cmocka_unit_test(test_example_file),   cmocka_unit_test(test_origin_url),
        cmocka_unit_test(test_switches),    cmocka_unit_test(test_bad_configs),    cmocka_unit_test(test_conf_error),
        cmocka_unit_test(test_redis_url),   cmocka_unit_test(test_purge_section),  cmocka_unit_test(test_compress_section),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
