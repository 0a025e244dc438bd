/*
 * origin/dir_origin.c: the local-directory origin (static files), behind the same fetch interface.
 *
 * Contract:
 * - GET and HEAD only; any other method gets a normal 405 response (Allow: GET, HEAD, no body).
 * - A path that cannot be mapped (origin_dir_map_path refuses it, or it is not a regular file) gets a
 *   normal 404 response with a small HTML body and `Cache-Control: public, max-age=60`, so the edge may
 *   cache the miss briefly.
 * - A file gets 200 with Content-Type (by extension), Last-Modified (IMF-fixdate of mtime), a strong
 *   ETag "<size hex>-<mtime ns hex>", the configured Cache-Control and content_length = its size at
 *   open time. HEAD: framing NONE, no body.
 * - Nothing runs inside origin_fetch_start: the work starts from a 0 ms timer. The body is read with
 *   pread in ORIGIN_DIR_CHUNK_SIZE pieces, one piece per loop turn (through the zero/bounce pair of
 *   timeouts, see origin_private.h), into one per-loop buffer (on_body's bytes are valid during the
 *   call only). Nothing is read while paused. A file that shrinks while being sent ends with
 *   ORIGIN_ETRUNCATED; one that grows is sent at its size at open time.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "origin/origin_private.h"

static const char not_found_body[] = "<!DOCTYPE html>\n<title>404 Not Found</title>\n<h1>404 Not Found</h1>\n";

static void on_step(h2o_timeout_entry_t *entry);

/* --- pure helpers --- */

static int hex_value(int c)
{
    if ('0' <= c && c <= '9')
        return c - '0';
    if ('a' <= c && c <= 'f')
        return c - 'a' + 10;
    if ('A' <= c && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int is_inside(const char *root, const char *path)
{
    size_t rl = strlen(root);
    if (strncmp(root, path, rl) != 0)
        return 0;
    if (path[rl] == '\0')
        return 1;
    return root[rl - 1] == '/' || path[rl] == '/';
}

static char *join(const char *a, const char *b)
{
    size_t al = strlen(a), bl = strlen(b);
    char *p = malloc(al + bl + 2);
    if (p == NULL)
        return NULL;
    memcpy(p, a, al);
    if (al == 0 || a[al - 1] != '/')
        p[al++] = '/';
    while (*b == '/')
        ++b, --bl;
    memcpy(p + al, b, bl + 1);
    return p;
}

/* --- fetch steps --- */

static void add_header(h2o_header_t *headers, size_t *n, const h2o_token_t *token, h2o_iovec_t value)
{
    headers[*n] = (h2o_header_t){(h2o_iovec_t *)&token->buf, NULL, value};
    ++*n;
}

static void schedule_next_turn(h2o_timeout_entry_t *entry)
{
    origin_fetch_t *fetch = H2O_STRUCT_FROM_MEMBER(origin_fetch_t, bounce, entry);
    fetch->defer.cb = on_step;
    h2o_timeout_link(fetch->octx->loop, &fetch->octx->zero, &fetch->defer);
}

/* From `zero`'s callback: run on_step on the next loop turn, via `bounce`. */
static void schedule_step_bounced(origin_fetch_t *fetch)
{
    if (fetch->paused || h2o_timeout_is_linked(&fetch->defer) || h2o_timeout_is_linked(&fetch->bounce))
        return;
    fetch->bounce.cb = schedule_next_turn;
    h2o_timeout_link(fetch->octx->loop, &fetch->octx->bounce, &fetch->bounce);
}

static void on_step(h2o_timeout_entry_t *entry)
{
    origin_fetch_t *fetch = H2O_STRUCT_FROM_MEMBER(origin_fetch_t, defer, entry);
    origin_ctx_t *octx = fetch->octx;

    if (fetch->paused)
        return;
    if (fetch->mem_body != NULL) {
        if (origin__emit_body(fetch, fetch->mem_body, fetch->mem_len) != 0) {
            origin__fetch_free(fetch);
            return;
        }
        origin__emit_end(fetch, 0);
        return;
    }

    uint64_t left = (uint64_t)fetch->content_length - fetch->offset;
    size_t want = left < ORIGIN_DIR_CHUNK_SIZE ? (size_t)left : ORIGIN_DIR_CHUNK_SIZE;
    ssize_t rret;
    if (octx->dir_buf == NULL)
        octx->dir_buf = h2o_mem_alloc(ORIGIN_DIR_CHUNK_SIZE);
    while ((rret = pread(fetch->fd, octx->dir_buf, want, (off_t)fetch->offset)) == -1 && errno == EINTR)
        ;
    if (rret <= 0) {
        /* the file shrank (or an I/O error): the announced length cannot be met */
        origin__emit_end(fetch, ORIGIN_ETRUNCATED);
        return;
    }
    fetch->offset += (uint64_t)rret;
    if (origin__emit_body(fetch, octx->dir_buf, (size_t)rret) != 0) {
        origin__fetch_free(fetch);
        return;
    }
    if (fetch->offset == (uint64_t)fetch->content_length) {
        origin__emit_end(fetch, 0);
        return;
    }
    schedule_step_bounced(fetch);
}

/* Sends the head, then either ends or schedules the body. */
static void respond(origin_fetch_t *fetch, int status, const char *reason, h2o_header_t *headers, size_t num_headers)
{
    origin_response_t res = {status,        h2o_iovec_init(reason, strlen(reason)), headers, num_headers, fetch->content_length,
                             fetch->framing};

    fetch->phase = ORIGIN_PHASE_BODY;
    if (origin__emit_head(fetch, &res) != 0) {
        origin__fetch_free(fetch);
        return;
    }
    if (fetch->framing == ORIGIN_FRAMING_NONE || fetch->content_length == 0) {
        origin__emit_end(fetch, 0);
        return;
    }
    schedule_step_bounced(fetch);
}

static void on_start(h2o_timeout_entry_t *entry)
{
    origin_fetch_t *fetch = H2O_STRUCT_FROM_MEMBER(origin_fetch_t, defer, entry);
    origin_t *origin = fetch->octx->origin;
    h2o_header_t *headers = h2o_mem_alloc_pool(&fetch->pool, sizeof(*headers) * 8);
    size_t n = 0;
    char *file = NULL;
    struct stat st;
    int fd = -1;

    if (!fetch->is_head && !h2o_memis(fetch->method.base, fetch->method.len, H2O_STRLIT("GET"))) {
        add_header(headers, &n, H2O_TOKEN_ALLOW, h2o_iovec_init(H2O_STRLIT("GET, HEAD")));
        fetch->content_length = 0;
        fetch->framing = ORIGIN_FRAMING_LENGTH;
        respond(fetch, 405, "Method Not Allowed", headers, n);
        return;
    }

    if (origin_dir_map_path(origin->root, fetch->path.base, fetch->path.len, &file) != 0 ||
        (fd = open(file, O_RDONLY | O_CLOEXEC | O_NONBLOCK)) == -1 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd != -1)
            close(fd);
        free(file);
        add_header(headers, &n, H2O_TOKEN_CONTENT_TYPE, h2o_iovec_init(H2O_STRLIT("text/html; charset=utf-8")));
        add_header(headers, &n, H2O_TOKEN_CACHE_CONTROL, h2o_iovec_init(H2O_STRLIT("public, max-age=60")));
        fetch->content_length = sizeof(not_found_body) - 1;
        fetch->framing = fetch->is_head ? ORIGIN_FRAMING_NONE : ORIGIN_FRAMING_LENGTH;
        fetch->mem_body = not_found_body;
        fetch->mem_len = sizeof(not_found_body) - 1;
        respond(fetch, 404, "Not Found", headers, n);
        return;
    }

    const char *mime = origin_dir_mime_type(file);
    add_header(headers, &n, H2O_TOKEN_CONTENT_TYPE, h2o_iovec_init(mime, strlen(mime)));
    free(file);
    fetch->fd = fd;

    struct tm gmt;
    char *lm = h2o_mem_alloc_pool(&fetch->pool, H2O_TIMESTR_RFC1123_LEN + 1);
    gmtime_r(&st.st_mtim.tv_sec, &gmt);
    h2o_time2str_rfc1123(lm, &gmt);
    add_header(headers, &n, H2O_TOKEN_LAST_MODIFIED, h2o_iovec_init(lm, H2O_TIMESTR_RFC1123_LEN));

    uint64_t mtime_ns = (uint64_t)st.st_mtim.tv_sec * 1000000000u + (uint64_t)st.st_mtim.tv_nsec;
    char *etag = h2o_mem_alloc_pool(&fetch->pool, sizeof("\"-\"") + 2 * 16);
    int etag_len = sprintf(etag, "\"%" PRIx64 "-%" PRIx64 "\"", (uint64_t)st.st_size, mtime_ns);
    add_header(headers, &n, H2O_TOKEN_ETAG, h2o_iovec_init(etag, etag_len));
    if (origin->cache_control[0] != '\0')
        add_header(headers, &n, H2O_TOKEN_CACHE_CONTROL, h2o_iovec_init(origin->cache_control, strlen(origin->cache_control)));

    fetch->content_length = st.st_size;
    fetch->framing = fetch->is_head ? ORIGIN_FRAMING_NONE : ORIGIN_FRAMING_LENGTH;
    respond(fetch, 200, "OK", headers, n);
}

/* --- entry points from origin.c --- */

void origin__dir_start(origin_fetch_t *fetch, const origin_request_t *req)
{
    fetch->method = h2o_strdup(&fetch->pool, req->method.base, req->method.len);
    fetch->path = h2o_strdup(&fetch->pool, req->path.base, req->path.len);
    fetch->defer.cb = on_start;
    h2o_timeout_link(fetch->octx->loop, &fetch->octx->zero, &fetch->defer);
}

void origin__dir_pause(origin_fetch_t *fetch)
{
    if (fetch->phase != ORIGIN_PHASE_BODY)
        return; /* the head is still to come; on_start runs regardless */
    h2o_timeout_unlink(&fetch->defer);
    h2o_timeout_unlink(&fetch->bounce);
}

void origin__dir_resume(origin_fetch_t *fetch)
{
    if (fetch->phase != ORIGIN_PHASE_BODY || h2o_timeout_is_linked(&fetch->defer) || h2o_timeout_is_linked(&fetch->bounce))
        return;
    fetch->defer.cb = on_step;
    h2o_timeout_link(fetch->octx->loop, &fetch->octx->zero, &fetch->defer);
}

void origin__dir_teardown(origin_fetch_t *fetch)
{
    if (fetch->fd != -1) {
        close(fetch->fd);
        fetch->fd = -1;
    }
}

/* --- public pure helpers --- */

int origin_dir_map_path(const char *root, const char *path, size_t path_len, char **out)
{
    char *decoded = NULL, *root_real = NULL, *candidate = NULL, *real = NULL;
    size_t end = 0, n = 0;
    struct stat st;

    *out = NULL;
    while (end != path_len && path[end] != '?' && path[end] != '#')
        ++end;
    if (end == 0 || path[0] != '/')
        return -1;

    /* percent-decode; NUL (raw or %00) and malformed escapes are refused */
    if ((decoded = malloc(end + 1)) == NULL)
        return -1;
    for (size_t i = 0; i != end; ++i) {
        int c = (unsigned char)path[i];
        if (c == '%') {
            int hi, lo;
            if (i + 2 >= end)
                goto Refuse;
            if ((hi = hex_value(path[i + 1])) < 0 || (lo = hex_value(path[i + 2])) < 0)
                goto Refuse;
            c = hi * 16 + lo;
            i += 2;
        }
        if (c == '\0')
            goto Refuse;
        decoded[n++] = (char)c;
    }
    decoded[n] = '\0';

    /* no `.` or `..` segment after decoding (so %2e%2e and .%2F.. are caught too) */
    for (const char *seg = decoded; *seg != '\0';) {
        const char *slash = strchr(seg, '/');
        size_t len = slash != NULL ? (size_t)(slash - seg) : strlen(seg);
        if ((len == 1 && seg[0] == '.') || (len == 2 && seg[0] == '.' && seg[1] == '.'))
            goto Refuse;
        seg += len;
        while (*seg == '/')
            ++seg;
    }

    /* resolve symlinks and require the result inside the root */
    if ((root_real = realpath(root, NULL)) == NULL || (candidate = join(root_real, decoded)) == NULL ||
        (real = realpath(candidate, NULL)) == NULL || !is_inside(root_real, real) || stat(real, &st) != 0)
        goto Refuse;
    if (S_ISDIR(st.st_mode)) {
        free(candidate);
        candidate = NULL;
        char *index = join(real, "index.html");
        free(real);
        real = index != NULL ? realpath(index, NULL) : NULL;
        free(index);
        if (real == NULL || !is_inside(root_real, real) || stat(real, &st) != 0 || !S_ISREG(st.st_mode))
            goto Refuse;
    }

    free(decoded);
    free(root_real);
    free(candidate);
    *out = real;
    return 0;

Refuse:
    free(decoded);
    free(root_real);
    free(candidate);
    free(real);
    return -1;
}

const char *origin_dir_mime_type(const char *filename)
{
    static const struct {
        const char *ext, *type;
    } table[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"webp", "image/webp"},
        {"avif", "image/avif"},
        {"ico", "image/x-icon"},
        {"txt", "text/plain; charset=utf-8"},
        {"xml", "application/xml"},
        {"wasm", "application/wasm"},
        {"woff", "font/woff"},
        {"woff2", "font/woff2"},
        {"pdf", "application/pdf"},
        {"mp4", "video/mp4"},
        {"webm", "video/webm"},
    };
    const char *base = strrchr(filename, '/'), *dot;

    base = base != NULL ? base + 1 : filename;
    if ((dot = strrchr(base, '.')) == NULL || dot == base || dot[1] == '\0')
        return "application/octet-stream";
    for (size_t i = 0; i != sizeof(table) / sizeof(table[0]); ++i)
        if (strcasecmp(dot + 1, table[i].ext) == 0)
            return table[i].type;
    return "application/octet-stream";
}
