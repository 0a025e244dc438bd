/*
 * purge/cdn_purge.c: `cdn-purge`, sends one purge to every node of a nodes file, in parallel.
 *
 *   cdn-purge -n NODES.yaml [--url U]... [--prefix P]... [--host H]... [--tag T]... [--all] [--soft]
 *             [--timeout 5s] [--retries 2] [--insecure] [--cacert FILE]
 *
 * Contract: the purge is validated and normalised locally (purge_request_parse on the JSON that is sent) before any
 * node is contacted. Each node gets `POST <admin>/purge` with `Authorization: Bearer <token>`; it has confirmed when
 * it answered 200 with a JSON object. Connection errors, timeouts and 5xx are retried (--retries more attempts, with a
 * backoff of 100 ms doubling up to 1 s); any other answer (4xx, 200 without JSON) fails at once. One libcurl multi
 * handle drives all nodes from this single thread; each attempt is bounded by --timeout (connect included).
 *
 * Output: one line per node on stdout as it finishes, `NAME ok <id=ID | body summary> <N>ms` or
 * `NAME FAILED <reason>`; then, if any node did not confirm, `cdn-purge: not confirmed: a, b` on stderr.
 * Exit: 0 all confirmed, 1 some not confirmed, 2 usage, nodes file or purge invalid (nothing sent).
 * Tokens are never printed. https nodes have their certificate verified against the system CAs (or --cacert);
 * --insecure skips that (the token then travels to whoever answers: use it only on a trusted network).
 * Proxy variables (http_proxy, ...) are ignored: admin listeners are reached directly.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <curl/curl.h>
#include <jansson.h>
#include "conf/config.h"
#include "purge/nodes.h"
#include "purge/purge_request.h"

#define CDN_PURGE_DEFAULT_TIMEOUT_MS 5000
#define CDN_PURGE_DEFAULT_RETRIES 2
#define CDN_PURGE_BACKOFF_FIRST_MS 100
#define CDN_PURGE_BACKOFF_MAX_MS 1000
#define CDN_PURGE_MAX_RESPONSE_BYTES (64 * 1024)
#define CDN_PURGE_MAX_RETRIES 10

enum node_state { NODE_WAITING, NODE_RUNNING, NODE_DONE };

struct st_node_run_t {
    const purge_node_t *node;
    CURL *curl;
    struct curl_slist *headers;
    char *url;
    char errbuf[CURL_ERROR_SIZE];
    char *body;
    size_t body_len;
    int body_overflow;
    enum node_state state;
    unsigned attempts;
    uint64_t start_ms, next_attempt_ms;
    int ok;
};

struct st_options_t {
    const char *nodes_file;
    purge_request_t raw;
    uint64_t timeout_ms;
    unsigned retries;
    int insecure;
    const char *cacert;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void usage(FILE *fp)
{
    fprintf(fp, "usage: cdn-purge -n NODES.yaml [--url U]... [--prefix P]... [--host H]... [--tag T]... [--all]\n"
                "                 [--soft] [--timeout 5s] [--retries 2] [--insecure] [--cacert FILE]\n"
                "Sends one purge to every node of NODES.yaml in parallel; exits 0 only if every node confirmed.\n");
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct st_node_run_t *run = userdata;
    size_t n = size * nmemb;
    if (run->body_len + n > CDN_PURGE_MAX_RESPONSE_BYTES) {
        run->body_overflow = 1;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    char *p = realloc(run->body, run->body_len + n + 1);
    if (p == NULL)
        return 0;
    memcpy(p + run->body_len, ptr, n);
    run->body = p;
    run->body_len += n;
    run->body[run->body_len] = '\0';
    return n;
}

/* Copies at most max bytes of s into out, printable ASCII only (a hostile body cannot write to the terminal). */
static void sanitize(char *out, size_t outlen, const char *s, size_t len, size_t max)
{
    size_t o = 0;
    for (size_t i = 0; i < len && i < max && o + 1 < outlen; ++i)
        out[o++] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    if (len > max && o + 3 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* The confirmation printed for a 200: id=<id or purge_id> if the body has one, else the compact body, shortened. */
static void summarize(char *out, size_t outlen, json_t *obj)
{
    static const char *const id_keys[] = {"purge_id", "id"};
    for (size_t i = 0; i != sizeof(id_keys) / sizeof(id_keys[0]); ++i) {
        json_t *v = json_object_get(obj, id_keys[i]);
        char tmp[64];
        if (json_is_string(v)) {
            sanitize(tmp, sizeof(tmp), json_string_value(v), json_string_length(v), 40);
            snprintf(out, outlen, "id=%s", tmp);
            return;
        }
        if (json_is_integer(v)) {
            snprintf(out, outlen, "id=%" JSON_INTEGER_FORMAT, json_integer_value(v));
            return;
        }
    }
    char *text = json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text == NULL) {
        snprintf(out, outlen, "{}");
        return;
    }
    sanitize(out, outlen, text, strlen(text), 80);
    free(text);
}

static int start_attempt(CURLM *multi, struct st_node_run_t *run)
{
    free(run->body);
    run->body = NULL;
    run->body_len = 0;
    run->body_overflow = 0;
    run->errbuf[0] = '\0';
    ++run->attempts;
    run->state = NODE_RUNNING;
    return curl_multi_add_handle(multi, run->curl) == CURLM_OK ? 0 : -1;
}

/*
 * Judges a finished attempt. @return 1 confirmed, 0 failed for good, -1 worth retrying; reason filled unless confirmed
 */
static int judge(struct st_node_run_t *run, CURLcode code, char *reason, size_t reasonlen, char *summary, size_t sumlen)
{
    long status = 0;
    char snippet[128];

    if (code != CURLE_OK) {
        if (run->body_overflow) {
            snprintf(reason, reasonlen, "response larger than %d bytes", CDN_PURGE_MAX_RESPONSE_BYTES);
            return 0;
        }
        sanitize(snippet, sizeof(snippet), run->errbuf[0] != '\0' ? run->errbuf : curl_easy_strerror(code),
                 strlen(run->errbuf[0] != '\0' ? run->errbuf : curl_easy_strerror(code)), 100);
        snprintf(reason, reasonlen, "%s", snippet);
        /* TLS verification failures will not get better by retrying; everything else on the way may */
        return code == CURLE_PEER_FAILED_VERIFICATION || code == CURLE_SSL_CACERT_BADFILE ? 0 : -1;
    }
    curl_easy_getinfo(run->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status == 200) {
        json_error_t jerr;
        json_t *obj = json_loadb(run->body != NULL ? run->body : "", run->body_len, 0, &jerr);
        if (json_is_object(obj)) {
            summarize(summary, sumlen, obj);
            json_decref(obj);
            return 1;
        }
        json_decref(obj);
        sanitize(snippet, sizeof(snippet), run->body != NULL ? run->body : "", run->body_len, 60);
        snprintf(reason, reasonlen, "HTTP 200 without a JSON object: %s", snippet);
        return 0;
    }
    /* the first line of the body usually says why (400 reasons, 401) */
    size_t line_len = 0;
    while (line_len < run->body_len && run->body[line_len] != '\n' && run->body[line_len] != '\r')
        ++line_len;
    sanitize(snippet, sizeof(snippet), run->body != NULL ? run->body : "", line_len, 100);
    snprintf(reason, reasonlen, "HTTP %ld%s%s", status, snippet[0] != '\0' ? ": " : "", snippet);
    return status >= 500 && status <= 599 ? -1 : 0;
}

static int setup_run(struct st_node_run_t *run, const purge_node_t *node, const char *body,
                     const struct st_options_t *opts)
{
    size_t auth_len = strlen("Authorization: Bearer ") + strlen(node->token) + 1;
    char *auth = malloc(auth_len);
    struct curl_slist *h;

    run->node = node;
    if (auth == NULL || (run->url = malloc(strlen(node->admin) + sizeof("/purge"))) == NULL ||
        (run->curl = curl_easy_init()) == NULL) {
        free(auth);
        return -1;
    }
    sprintf(run->url, "%s/purge", node->admin);
    snprintf(auth, auth_len, "Authorization: Bearer %s", node->token);
    h = curl_slist_append(NULL, auth);
    /* curl copies the strings: wipe ours so the token lives in one place less */
    memset(auth, 0, auth_len);
    free(auth);
    if (h == NULL)
        return -1;
    run->headers = h;
    if ((h = curl_slist_append(run->headers, "Content-Type: application/json")) == NULL ||
        (h = curl_slist_append(run->headers, "Expect:")) == NULL) /* no 100-continue round trip */
        return -1;

    CURL *c = run->curl;
    curl_easy_setopt(c, CURLOPT_URL, run->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_PROXY, ""); /* ignore http_proxy & co. */
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, run->headers);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)opts->timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)opts->timeout_ms);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, run);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, run->errbuf);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "cdn-purge/" EDGE_VERSION);
    curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L); /* each attempt on a fresh connection */
    if (opts->insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (opts->cacert != NULL)
        curl_easy_setopt(c, CURLOPT_CAINFO, opts->cacert);
    return 0;
}

static void dispose_run(struct st_node_run_t *run)
{
    if (run->curl != NULL)
        curl_easy_cleanup(run->curl);
    curl_slist_free_all(run->headers);
    free(run->url);
    free(run->body);
}

/* Drives every node to NODE_DONE. @return the number of nodes that confirmed */
static size_t fan_out(struct st_node_run_t *runs, size_t n, const struct st_options_t *opts)
{
    CURLM *multi = curl_multi_init();
    size_t done = 0, confirmed = 0;
    uint64_t t0 = now_ms();

    if (multi == NULL) {
        fprintf(stderr, "cdn-purge: cannot initialise libcurl\n");
        return 0;
    }
    for (size_t i = 0; i != n; ++i) {
        runs[i].start_ms = t0;
        runs[i].next_attempt_ms = t0;
        runs[i].state = NODE_WAITING;
    }
    while (done < n) {
        uint64_t now = now_ms();
        long wait_ms = 1000;
        for (size_t i = 0; i != n; ++i) {
            struct st_node_run_t *run = &runs[i];
            if (run->state != NODE_WAITING)
                continue;
            if (run->next_attempt_ms <= now) {
                if (start_attempt(multi, run) != 0) {
                    printf("%s FAILED cannot start a request\n", run->node->name);
                    fflush(stdout);
                    run->state = NODE_DONE;
                    ++done;
                }
            } else if ((long)(run->next_attempt_ms - now) < wait_ms) {
                wait_ms = (long)(run->next_attempt_ms - now);
            }
        }
        int running;
        curl_multi_perform(multi, &running);

        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct st_node_run_t *run = NULL;
            for (size_t i = 0; i != n; ++i)
                if (runs[i].curl == msg->easy_handle)
                    run = &runs[i];
            CURLcode code = msg->data.result;
            curl_multi_remove_handle(multi, run->curl); /* msg is invalid from here on */
            char reason[256], summary[160];
            int verdict = judge(run, code, reason, sizeof(reason), summary, sizeof(summary));
            uint64_t end = now_ms();
            if (verdict == -1 && run->attempts <= opts->retries) {
                uint64_t backoff = CDN_PURGE_BACKOFF_FIRST_MS << (run->attempts - 1);
                if (backoff > CDN_PURGE_BACKOFF_MAX_MS)
                    backoff = CDN_PURGE_BACKOFF_MAX_MS;
                run->next_attempt_ms = end + backoff;
                run->state = NODE_WAITING;
                if ((long)backoff < wait_ms)
                    wait_ms = (long)backoff;
                continue;
            }
            run->state = NODE_DONE;
            ++done;
            if (verdict == 1) {
                run->ok = 1;
                ++confirmed;
                printf("%s ok %s %llums\n", run->node->name, summary, (unsigned long long)(end - run->start_ms));
            } else {
                printf("%s FAILED %s (%u attempt%s)\n", run->node->name, reason, run->attempts,
                       run->attempts == 1 ? "" : "s");
            }
            fflush(stdout);
        }
        if (done < n)
            curl_multi_poll(multi, NULL, 0, (int)(wait_ms > 0 ? wait_ms : 0), NULL);
    }
    curl_multi_cleanup(multi);
    return confirmed;
}

static int add_item(purge_list_t *list, const char *s)
{
    if (purge_list_push(list, s) != 0) {
        fprintf(stderr, "cdn-purge: out of memory\n");
        return -1;
    }
    return 0;
}

/* @return 0, or the exit status */
static int parse_args(int argc, char **argv, struct st_options_t *opts)
{
    enum { OPT_URL = 256, OPT_PREFIX, OPT_HOST, OPT_TAG, OPT_ALL, OPT_SOFT, OPT_TIMEOUT, OPT_RETRIES, OPT_INSECURE,
           OPT_CACERT };
    static const struct option longopts[] = {
        {"nodes", required_argument, NULL, 'n'},   {"url", required_argument, NULL, OPT_URL},
        {"prefix", required_argument, NULL, OPT_PREFIX}, {"host", required_argument, NULL, OPT_HOST},
        {"tag", required_argument, NULL, OPT_TAG},   {"all", no_argument, NULL, OPT_ALL},
        {"soft", no_argument, NULL, OPT_SOFT},       {"timeout", required_argument, NULL, OPT_TIMEOUT},
        {"retries", required_argument, NULL, OPT_RETRIES}, {"insecure", no_argument, NULL, OPT_INSECURE},
        {"cacert", required_argument, NULL, OPT_CACERT}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    char *end;

    opts->timeout_ms = CDN_PURGE_DEFAULT_TIMEOUT_MS;
    opts->retries = CDN_PURGE_DEFAULT_RETRIES;
    while ((c = getopt_long(argc, argv, "n:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            opts->nodes_file = optarg;
            break;
        case OPT_URL:
            if (add_item(&opts->raw.urls, optarg) != 0)
                return 2;
            break;
        case OPT_PREFIX:
            if (add_item(&opts->raw.prefixes, optarg) != 0)
                return 2;
            break;
        case OPT_HOST:
            if (add_item(&opts->raw.hosts, optarg) != 0)
                return 2;
            break;
        case OPT_TAG:
            if (add_item(&opts->raw.tags, optarg) != 0)
                return 2;
            break;
        case OPT_ALL:
            opts->raw.all = 1;
            break;
        case OPT_SOFT:
            opts->raw.soft = 1;
            break;
        case OPT_TIMEOUT:
            if (conf_parse_duration_ms(optarg, &opts->timeout_ms) != 0 || opts->timeout_ms == 0 ||
                opts->timeout_ms > 3600 * 1000) {
                fprintf(stderr, "cdn-purge: --timeout: bad duration '%s' (e.g. 5s, 500ms)\n", optarg);
                return 2;
            }
            break;
        case OPT_RETRIES: {
            unsigned long r = strtoul(optarg, &end, 10);
            if (optarg[0] < '0' || optarg[0] > '9' || *end != '\0' || r > CDN_PURGE_MAX_RETRIES) {
                fprintf(stderr, "cdn-purge: --retries: expected 0..%d, got '%s'\n", CDN_PURGE_MAX_RETRIES, optarg);
                return 2;
            }
            opts->retries = (unsigned)r;
            break;
        }
        case OPT_INSECURE:
            opts->insecure = 1;
            break;
        case OPT_CACERT:
            opts->cacert = optarg;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "cdn-purge: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (opts->nodes_file == NULL) {
        fprintf(stderr, "cdn-purge: -n NODES.yaml is required\n");
        usage(stderr);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct st_options_t opts = {0};
    purge_nodes_t nodes = {0};
    purge_request_t req = {0};
    struct st_node_run_t *runs = NULL;
    char *raw_json = NULL, *body = NULL;
    char err[512];
    int status = 2;

    if ((status = parse_args(argc, argv, &opts)) != 0)
        goto Exit;
    status = 2;

    /* Build the body, then validate and normalise it by the very rules the nodes apply: a purge a node would refuse
     * is refused here, before any node has seen it. */
    if ((raw_json = purge_request_to_json(&opts.raw)) == NULL) {
        fprintf(stderr, "cdn-purge: invalid purge: an argument is not valid UTF-8\n");
        goto Exit;
    }
    if (purge_request_parse(raw_json, strlen(raw_json), &purge_default_limits, &req, err, sizeof(err)) != 0) {
        fprintf(stderr, "cdn-purge: invalid purge: %s\n", err);
        goto Exit;
    }
    if ((body = purge_request_to_json(&req)) == NULL) {
        fprintf(stderr, "cdn-purge: out of memory\n");
        goto Exit;
    }
    if (purge_nodes_load_file(&nodes, opts.nodes_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        goto Exit;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "cdn-purge: cannot initialise libcurl\n");
        goto Exit;
    }
    if ((runs = calloc(nodes.count, sizeof(*runs))) == NULL) {
        fprintf(stderr, "cdn-purge: out of memory\n");
        goto Exit_curl;
    }
    for (size_t i = 0; i != nodes.count; ++i) {
        if (setup_run(&runs[i], &nodes.nodes[i], body, &opts) != 0) {
            fprintf(stderr, "cdn-purge: cannot set up the request to %s\n", nodes.nodes[i].name);
            goto Exit_runs;
        }
    }

    size_t confirmed = fan_out(runs, nodes.count, &opts);
    if (confirmed == nodes.count) {
        status = 0;
    } else {
        status = 1;
        fprintf(stderr, "cdn-purge: not confirmed: ");
        const char *sep = "";
        for (size_t i = 0; i != nodes.count; ++i) {
            if (!runs[i].ok) {
                fprintf(stderr, "%s%s", sep, runs[i].node->name);
                sep = ", ";
            }
        }
        fprintf(stderr, "\n");
    }

Exit_runs:
    for (size_t i = 0; i != nodes.count; ++i)
        dispose_run(&runs[i]);
    free(runs);
Exit_curl:
    curl_global_cleanup();
Exit:
    purge_nodes_dispose(&nodes);
    purge_request_free(&req);
    purge_request_free(&opts.raw);
    free(raw_json);
    free(body);
    return status;
}
