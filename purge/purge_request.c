/*
 * purge/purge_request.c: the `POST /purge` body, parsed with jansson, validated whole, normalised.
 *
 * Contract: the request is checked entirely before anything is returned, so a caller that gets PURGE_REQUEST_OK can
 * apply it all and one that gets an error has nothing to undo. jansson refuses duplicate keys (JSON_REJECT_DUPLICATES)
 * and trailing bytes; everything else (fields, types, limits, URL rules) is checked here. No state, any thread.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "purge/purge_request.h"
#include "purge/tags.h"
#include "purge/url.h"

const purge_limits_t purge_default_limits = {
    .max_body_bytes = PURGE_DEFAULT_MAX_BODY_BYTES,
    .max_list_items = PURGE_DEFAULT_MAX_LIST_ITEMS,
    .max_total_items = PURGE_DEFAULT_MAX_TOTAL_ITEMS,
};

enum list_kind { LIST_URLS, LIST_PREFIXES, LIST_HOSTS, LIST_TAGS, LIST_COUNT };

static const char *const list_names[LIST_COUNT] = {"urls", "prefixes", "hosts", "tags"};

__attribute__((format(printf, 3, 4))) static int fail(char *err, size_t errlen, const char *fmt, ...)
{
    if (err != NULL && errlen != 0) {
        va_list args;
        va_start(args, fmt);
        vsnprintf(err, errlen, fmt, args);
        va_end(args);
    }
    return PURGE_REQUEST_EINVAL;
}

static purge_list_t *list_of(purge_request_t *req, enum list_kind kind)
{
    switch (kind) {
    case LIST_URLS:
        return &req->urls;
    case LIST_PREFIXES:
        return &req->prefixes;
    case LIST_HOSTS:
        return &req->hosts;
    case LIST_TAGS:
        return &req->tags;
    default:
        assert(!"bad list kind");
        return NULL;
    }
}

static void list_free(purge_list_t *list)
{
    for (size_t i = 0; i != list->count; ++i)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
}

static int list_contains(const purge_list_t *list, const char *s)
{
    for (size_t i = 0; i != list->count; ++i)
        if (strcmp(list->items[i], s) == 0)
            return 1;
    return 0;
}

/* Appends s, taking ownership (freed on failure and when already present). @return 0, or -1 on OOM */
static int list_take(purge_list_t *list, char *s)
{
    if (list_contains(list, s)) {
        free(s);
        return 0;
    }
    char **items = realloc(list->items, (list->count + 1) * sizeof(*items));
    if (items == NULL) {
        free(s);
        return -1;
    }
    list->items = items;
    list->items[list->count++] = s;
    return 0;
}

/* Normalises one item of a list. @return 0 with *out malloc'ed, or -1 with *reason */
static int normalize_item(enum list_kind kind, const char *s, size_t len, char **out, const char **reason)
{
    switch (kind) {
    case LIST_URLS:
        return purge_url_normalize(s, len, 0, out, reason);
    case LIST_PREFIXES:
        return purge_url_normalize(s, len, PURGE_URL_PREFIX, out, reason);
    case LIST_HOSTS:
        return purge_host_normalize(s, len, out, reason);
    case LIST_TAGS:
        if (purge_tag_check(s, len, PURGE_MAX_TAG_BYTES, reason) != 0)
            return -1;
        if ((*out = strndup(s, len)) == NULL) {
            *reason = "out of memory";
            return -1;
        }
        return 0;
    default:
        assert(!"bad list kind");
        return -1;
    }
}

static int parse_fields(json_t *root, const purge_limits_t *limits, purge_request_t *out, char *err, size_t errlen)
{
    json_t *lists[LIST_COUNT] = {NULL};
    size_t total = 0;
    const char *key;
    json_t *value;

    if (!json_is_object(root))
        return fail(err, errlen, "body: not a JSON object");

    /* fields and types first, so the reason names the first thing wrong rather than a later consequence */
    json_object_foreach(root, key, value)
    {
        int found = 0;
        for (int k = 0; k != LIST_COUNT; ++k) {
            if (strcmp(key, list_names[k]) != 0)
                continue;
            found = 1;
            if (!json_is_array(value))
                return fail(err, errlen, "%s: not an array of strings", key);
            size_t n = json_array_size(value);
            if (n > limits->max_list_items)
                return fail(err, errlen, "%s: %zu items, over the limit of %zu", key, n, limits->max_list_items);
            total += n;
            lists[k] = value;
        }
        if (found)
            continue;
        if (strcmp(key, "all") == 0 || strcmp(key, "soft") == 0) {
            if (!json_is_boolean(value))
                return fail(err, errlen, "%s: not a boolean", key);
            *(strcmp(key, "all") == 0 ? &out->all : &out->soft) = json_is_true(value);
            continue;
        }
        /* the key is UTF-8 from jansson but may hold control characters: print it escaped-ish, bounded */
        char shown[64];
        size_t i;
        for (i = 0; key[i] != '\0' && i < sizeof(shown) - 1; ++i)
            shown[i] = (unsigned char)key[i] < 0x20 || key[i] == 0x7f ? '?' : key[i];
        shown[i] = '\0';
        return fail(err, errlen, "%s: unknown field", shown);
    }
    if (total > limits->max_total_items)
        return fail(err, errlen, "body: %zu items in all, over the limit of %zu", total, limits->max_total_items);

    for (int k = 0; k != LIST_COUNT; ++k) {
        size_t idx;
        json_array_foreach(lists[k], idx, value)
        {
            const char *reason;
            char *norm;
            if (!json_is_string(value))
                return fail(err, errlen, "%s[%zu]: not a string", list_names[k], idx);
            if (normalize_item(k, json_string_value(value), json_string_length(value), &norm, &reason) != 0)
                return fail(err, errlen, "%s[%zu]: %s", list_names[k], idx, reason);
            if (list_take(list_of(out, k), norm) != 0)
                return fail(err, errlen, "out of memory");
        }
    }

    int has_lists = out->urls.count + out->prefixes.count + out->hosts.count + out->tags.count != 0;
    if (out->all && has_lists)
        return fail(err, errlen, "all: cannot be combined with urls, prefixes, hosts or tags");
    if (!out->all && !has_lists)
        return fail(err, errlen, "body: nothing to purge");
    return PURGE_REQUEST_OK;
}

int purge_request_check_size(size_t len, const purge_limits_t *limits)
{
    return len > limits->max_body_bytes ? PURGE_REQUEST_ETOOBIG : PURGE_REQUEST_OK;
}

int purge_request_parse(const char *body, size_t len, const purge_limits_t *limits, purge_request_t *out, char *err,
                        size_t errlen)
{
    json_error_t jerr;
    memset(out, 0, sizeof(*out));

    if (purge_request_check_size(len, limits) != PURGE_REQUEST_OK) {
        if (err != NULL && errlen != 0)
            snprintf(err, errlen, "body: over the limit of %zu bytes", limits->max_body_bytes);
        return PURGE_REQUEST_ETOOBIG;
    }
    /* JSON_REJECT_DUPLICATES: {"all":false,"all":true} must not be read either way */
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL)
        return fail(err, errlen, "body: malformed JSON: %s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
    int ret = parse_fields(root, limits, out, err, errlen);
    json_decref(root);
    if (ret != PURGE_REQUEST_OK)
        purge_request_free(out);
    return ret;
}

void purge_request_free(purge_request_t *req)
{
    list_free(&req->urls);
    list_free(&req->prefixes);
    list_free(&req->hosts);
    list_free(&req->tags);
    memset(req, 0, sizeof(*req));
}

int purge_list_push(purge_list_t *list, const char *s)
{
    char *copy = strdup(s);
    if (copy == NULL)
        return -1;
    char **items = realloc(list->items, (list->count + 1) * sizeof(*items));
    if (items == NULL) {
        free(copy);
        return -1;
    }
    list->items = items;
    list->items[list->count++] = copy;
    return 0;
}

char *purge_request_to_json(const purge_request_t *req)
{
    char *text = NULL;
    json_t *root = json_object();
    if (root == NULL)
        return NULL;
    for (int k = 0; k != LIST_COUNT; ++k) {
        const purge_list_t *list = list_of((purge_request_t *)req, k);
        json_t *arr = json_array();
        if (arr == NULL || json_object_set_new(root, list_names[k], arr) != 0)
            goto Exit;
        for (size_t i = 0; i != list->count; ++i)
            if (json_array_append_new(arr, json_string(list->items[i])) != 0) /* NULL (not UTF-8) fails too */
                goto Exit;
    }
    if (json_object_set_new(root, "all", json_boolean(req->all)) != 0 ||
        json_object_set_new(root, "soft", json_boolean(req->soft)) != 0)
        goto Exit;
    text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
Exit:
    json_decref(root);
    return text;
}
