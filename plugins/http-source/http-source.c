/*
 * http-source — records from HTTP, in one of two modes.
 *
 * mode: poll    GET `url` every `interval` with libcurl; the response is a JSON array, NDJSON
 *               or one JSON value. Failures (unreachable, non-2xx, unparsable) are logged and
 *               retried with exponential backoff; the source never stops on them. With
 *               `cursor`, the source asks for what follows the last sequence number it has
 *               (`?after=N`), records carry the endpoint's sequence numbers as offsets, and the
 *               host's commits are kept in an offset file, so a restarted pipeline resumes
 *               from the last committed record (at least once) — see the README.
 * mode: listen  a libmicrohttpd server takes POSTs (listen.c).
 *
 * Every record is checked with the host's strict JSON check (host/jsoncheck.c): in listen mode
 * a body with a record that is not acceptable JSON is refused whole (400 with the reason); in
 * poll mode nobody could be told, so such a record goes to the dead letter with the reason.
 *
 * Positions: partition 0; offset = the endpoint's sequence number (poll with cursor), else a
 * running number (0, 1, 2, ...) per instance. The stage is SINGLE_TASK.
 */
#include "hs.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../common/sl_state.h"
#include "../../host/jsoncheck.h" /* the host's strict JSON check, compiled in */

/* ---- helpers: time, items, parsing --------------------------------------------------- */

static void sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

void items_free(items *it)
{
    if (it->why)
        for (size_t i = 0; i < it->n; i++)
            free(it->why[i]);
    free(it->why);
    free(it->body);
    free(it->off);
    *it = (items){0};
}

static int items_add(items *it, size_t off, size_t len)
{
    if (it->n == it->cap) {
        size_t ncap = it->cap ? it->cap * 2 : 64;
        size_t *n = malloc(2 * ncap * sizeof(size_t));
        if (!n)
            return -1;
        if (it->off) {
            memcpy(n, it->off, it->n * sizeof(size_t));
            memcpy(n + ncap, it->len, it->n * sizeof(size_t));
        }
        free(it->off);
        it->off = n;
        it->len = n + ncap;
        if (it->why) {
            char **w = realloc(it->why, ncap * sizeof(*w));
            if (!w)
                return -1;
            memset(w + it->cap, 0, (ncap - it->cap) * sizeof(*w));
            it->why = w;
        }
        it->cap = ncap;
    }
    it->off[it->n] = off;
    it->len[it->n] = len;
    it->n++;
    return 0;
}

/* Marks item i as not acceptable JSON (poll mode), prefixing the checker's reason with where. */
static int items_refuse(items *it, size_t i, const char *where, const char *reason)
{
    if (!it->why && !(it->why = calloc(it->cap, sizeof(*it->why))))
        return -1;
    size_t n = strlen(where) + strlen(reason) + 3;
    if (!(it->why[i] = malloc(n)))
        return -1;
    snprintf(it->why[i], n, "%s: %s", where, reason);
    return 0;
}

/* Does [p, p+len) parse as JSON at all (cJSON, lenient)? Used only to find an array's
 * elements when the strict check refused the whole array. */
static int parses(const char *p, size_t len)
{
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(p, len, &end, 0);
    if (!j)
        return 0;
    cJSON_Delete(j);
    while (end < p + len && is_ws(*end))
        end++;
    return end == p + len;
}

/* Item boundaries of a JSON array known to parse: top-level elements, raw bytes. */
static int split_array(items *it, const char *b, size_t start, size_t len)
{
    int depth = 0, in_str = 0;
    size_t item = 0, last = 0; /* item start; one past its last non-space byte */
    int have = 0;
    for (size_t i = start; i < len; i++) {
        char c = b[i];
        if (in_str) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_str = 0;
            last = i + 1;
            continue;
        }
        if (c == '"')
            in_str = 1;
        if (c == '[' || c == '{') {
            if (depth++ == 0)
                continue; /* the array's own bracket */
        } else if (c == ']' || c == '}') {
            if (--depth == 0)
                return have && items_add(it, item, last - item) ? -1 : 0;
        } else if (depth == 1 && c == ',') {
            if (items_add(it, item, last - item))
                return -1;
            have = 0;
            continue;
        }
        if (is_ws(c))
            continue;
        if (!have && depth >= 1) {
            have = 1;
            item = i;
        }
        last = i + 1;
    }
    return 0;
}

#define OOM(why, whylen) (snprintf(why, whylen, "out of memory"), -1)

/*
 * Split a body into records: a JSON array (its elements), one JSON value spanning several
 * lines, or NDJSON (one record per non-blank line). Every record passes the strict check or:
 * listen — the body is refused (-1, `why` says which record and why); poll — the record is
 * kept with out->why[i] set (it goes to the dead letter). Takes ownership of body.
 */
int hs_parse_body(char *body, size_t len, int listen, items *out, char *why, size_t whylen)
{
    size_t i = 0;
    char reason[200], where[48];
    *out = (items){.body = body};
    while (i < len && is_ws(body[i]))
        i++;
    if (i == len)
        return 0;
    if (body[i] == '[') {
        if (sl_json_check(body, len, 0, reason, sizeof(reason)) == 0)
            return split_array(out, body, i, len) ? OOM(why, whylen) : 0;
        if (listen || !parses(body + i, len - i)) {
            snprintf(why, whylen, "body is not an acceptable JSON array: %s", reason);
            return -1;
        }
        /* Poll: the array parses, so its elements can be told apart; refuse only the bad ones. */
        if (split_array(out, body, i, len))
            return OOM(why, whylen);
        for (size_t k = 0; k < out->n; k++)
            if (sl_json_check(body + out->off[k], out->len[k], 0, reason, sizeof(reason))) {
                snprintf(where, sizeof(where), "element %zu", k + 1);
                if (items_refuse(out, k, where, reason))
                    return OOM(why, whylen);
            }
        return 0;
    }
    if (body[i] == '{' && memchr(body + i, '\n', len - i) && parses(body + i, len - i)) {
        size_t end = len;
        while (end > i && is_ws(body[end - 1]))
            end--;
        if (items_add(out, i, end - i))
            return OOM(why, whylen);
        if (sl_json_check(body + i, end - i, 0, reason, sizeof(reason)) == 0)
            return 0;
        if (listen) {
            snprintf(why, whylen, "body is not acceptable JSON: %s", reason);
            return -1;
        }
        return items_refuse(out, 0, "body", reason) ? OOM(why, whylen) : 0;
    }
    size_t line = 0;
    while (i < len) {
        const char *nl = memchr(body + i, '\n', len - i);
        size_t eol = nl ? (size_t)(nl - body) : len, s = i, e = eol;
        line++;
        while (s < e && is_ws(body[s]))
            s++;
        while (e > s && is_ws(body[e - 1]))
            e--;
        if (e > s) {
            if (items_add(out, s, e - s))
                return OOM(why, whylen);
            if (sl_json_check(body + s, e - s, 0, reason, sizeof(reason))) {
                if (listen) {
                    snprintf(why, whylen, "line %zu: %s", line, reason);
                    return -1;
                }
                snprintf(where, sizeof(where), "line %zu", line);
                if (items_refuse(out, out->n - 1, where, reason))
                    return OOM(why, whylen);
            }
        }
        i = eol + 1;
    }
    return 0;
}

/* Emits item i at `offset`, or sends it to the dead letter when it is not acceptable JSON. */
sl_err hs_emit_item(hs *s, sl_ctx *ctx, const items *it, size_t i, int64_t offset)
{
    sl_record r = {0};
    r.value = it->body + it->off[i];
    r.value_len = it->len[i];
    r.timestamp_ms = s->api->now_ms(ctx);
    r.topic = s->cfg->topic;
    r.partition = 0;
    r.offset = offset;
    if (it->why && it->why[i]) {
        s->api->count(ctx, "rejected_records", 1);
        s->api->reject(ctx, &r, it->why[i]);
        return SL_OK;
    }
    return s->api->emit(ctx, &r);
}

/* ---- poll mode: the cursor's offset file --------------------------------------------- */

/* <state dir>/offsets/<pipeline>/<stage>.offset, the state dir being $SLUICE_STATE_DIR, else
 * $XDG_STATE_HOME/sluice, else ~/.local/state/sluice (as the host's). Directories made 0700. */
static char *default_offset_path(const sl_api *api, sl_ctx *ctx)
{
    const char *sd = getenv("SLUICE_STATE_DIR"), *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char base[3072];
    if (sd && *sd)
        snprintf(base, sizeof(base), "%s", sd);
    else if (xdg && *xdg)
        snprintf(base, sizeof(base), "%s/sluice", xdg);
    else if (home && *home)
        snprintf(base, sizeof(base), "%s/.local/state/sluice", home);
    else
        return NULL;
    size_t n = strlen(base) + strlen(api->pipeline_name(ctx)) + strlen(api->stage_name(ctx)) + 32;
    char *p = malloc(n);
    if (!p)
        return NULL;
    snprintf(p, n, "%s/offsets/%s/%s.offset", base, api->pipeline_name(ctx), api->stage_name(ctx));
    for (char *q = p + 1; *q; q++) /* mkdir -p of the directories */
        if (*q == '/') {
            *q = 0;
            mkdir(p, 0700);
            *q = '/';
        }
    return p;
}

/* ---- poll mode ----------------------------------------------------------------------- */

static size_t on_curl_data(char *data, size_t size, size_t nmemb, void *arg)
{
    hs *s = arg;
    size_t n = size * nmemb;
    /* The endpoint is not trusted to be small (a REST pipeline names any URL): cut the transfer
     * at max_body instead of growing without bound. */
    if (s->resp.len + n > (size_t)s->cfg->max_body) {
        s->resp_too_large = 1;
        return 0; /* curl reports a write error */
    }
    sl_gbuf_put(&s->resp, data, n);
    return s->resp.oom ? 0 : n; /* 0: curl reports a write error */
}

/* Cursor responses say where they stand: X-Seq-First (the first record's sequence number) and,
 * with 410, X-Seq-Oldest (the oldest the endpoint still has). */
static size_t on_curl_header(char *data, size_t size, size_t nmemb, void *arg)
{
    hs *s = arg;
    size_t n = size * nmemb;
    char line[128];
    if (n < sizeof(line)) {
        memcpy(line, data, n);
        line[n] = 0;
        long long v;
        if (sscanf(line, "X-Seq-First: %lld", &v) == 1 || sscanf(line, "x-seq-first: %lld", &v) == 1)
            s->hdr_first = v;
        else if (sscanf(line, "X-Seq-Oldest: %lld", &v) == 1 || sscanf(line, "x-seq-oldest: %lld", &v) == 1)
            s->hdr_oldest = v;
        else if (sscanf(line, "X-Seq-Epoch: %39s", s->hdr_epoch) == 1 || sscanf(line, "x-seq-epoch: %39s", s->hdr_epoch) == 1)
            (void)0;
    }
    return n;
}

/* The URL of the next GET: `url`, plus `&CURSOR=N` in cursor mode. */
static void set_url(hs *s)
{
    if (!s->cfg->cursor) {
        curl_easy_setopt(s->curl, CURLOPT_URL, s->cfg->url);
        return;
    }
    char u[4096];
    snprintf(u, sizeof(u), "%s%c%s=%lld", s->cfg->url, strchr(s->cfg->url, '?') ? '&' : '?', s->cfg->cursor,
             (long long)s->after);
    curl_easy_setopt(s->curl, CURLOPT_URL, u);
}

/* One GET. Returns 0 and fills s->pending, 1 when the cursor moved (fetch again now), or -1
 * after logging why. */
static int fetch(hs *s, sl_ctx *ctx)
{
    char why[256];
    long status = 0;
    sl_gbuf_reset(&s->resp);
    s->resp_too_large = 0;
    s->hdr_first = s->hdr_oldest = -1;
    s->hdr_epoch[0] = 0;
    set_url(s);
    CURLcode rc = curl_easy_perform(s->curl);
    if (rc == CURLE_OK)
        curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status);
    if (rc == CURLE_OK && s->cfg->cursor && s->hdr_epoch[0] && strcmp(s->hdr_epoch, s->epoch) != 0) {
        /* Another stream (the endpoint restarted): our sequence numbers mean nothing there. */
        if (s->epoch[0] && s->fetched_once) {
            s->api->log(ctx, SL_LOG_ERROR, "the endpoint restarted while being polled (stream %s, now %s): "
                        "stopping, so the pipeline restarts on the new stream", s->epoch, s->hdr_epoch);
            return -2;
        }
        if (s->epoch[0])
            s->api->log(ctx, SL_LOG_WARN, "the endpoint's stream changed (%s, now %s; it restarted): "
                        "starting from its oldest record instead of after %lld", s->epoch, s->hdr_epoch,
                        (long long)s->after);
        snprintf(s->epoch, sizeof(s->epoch), "%s", s->hdr_epoch);
        s->written_seq = s->committed_seq = -1;
        if (s->after != 0) {
            s->after = 0;
            return 1;
        }
    }
    if (rc == CURLE_OK && status == 410 && s->cfg->cursor && s->hdr_oldest > s->after + 1) {
        /* The endpoint no longer has what follows our cursor: say exactly what is gone. */
        int64_t gone = s->hdr_oldest - s->after - 1;
        if (s->committed_seq >= 0 || s->fetched_once) {
            s->api->count(ctx, "cursor_lost", (uint64_t)gone);
            s->api->log(ctx, SL_LOG_ERROR, "cursor %lld fell out of the endpoint's replay window: sequence "
                        "numbers %lld..%lld are lost; resuming from %lld", (long long)s->after,
                        (long long)s->after + 1, (long long)s->hdr_oldest - 1, (long long)s->hdr_oldest);
        } else {
            s->api->log(ctx, SL_LOG_INFO, "first start: the endpoint's oldest record is %lld; starting there",
                        (long long)s->hdr_oldest);
        }
        s->after = s->hdr_oldest - 1;
        return 1;
    }
    if (rc != CURLE_OK && s->resp_too_large) {
        snprintf(why, sizeof(why), "response larger than max_body (%lld bytes)", (long long)s->cfg->max_body);
    } else if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", curl_easy_strerror(rc));
    } else if (status / 100 != 2) {
        snprintf(why, sizeof(why), "HTTP status %ld", status);
    } else {
        char *body = malloc(s->resp.len + 1);
        if (!body)
            return -1;
        memcpy(body, s->resp.p ? s->resp.p : "", s->resp.len);
        if (hs_parse_body(body, s->resp.len, 0, &s->pending, why, sizeof(why)) == 0) {
            if (s->cfg->cursor && s->pending.n && s->hdr_first <= s->after) {
                snprintf(why, sizeof(why), "cursor mode: the response lacks X-Seq-First or repeats sequence "
                         "numbers (X-Seq-First %lld, after %lld)", (long long)s->hdr_first, (long long)s->after);
            } else {
                s->pending_next = 0;
                s->pending_first = s->hdr_first;
                if (s->cfg->cursor && s->pending.n)
                    s->after = s->hdr_first + (int64_t)s->pending.n - 1;
                s->backoff_ms = 0;
                s->fetched_once = 1;
                s->api->count(ctx, "fetches", 1);
                return 0;
            }
        }
        items_free(&s->pending);
    }
    /* Exponential backoff from `interval` up to 30 s; one line per failure. */
    s->backoff_ms = s->backoff_ms ? s->backoff_ms * 2 : s->cfg->interval_ms;
    if (s->backoff_ms > 30000)
        s->backoff_ms = 30000;
    if (s->backoff_ms < 100)
        s->backoff_ms = 100;
    s->api->count(ctx, "fetch_errors", 1);
    s->api->log(ctx, SL_LOG_WARN, "GET %s failed: %s; retrying in %lld ms", s->cfg->url, why, (long long)s->backoff_ms);
    return -1;
}

static sl_err poll_mode(hs *s, sl_ctx *ctx, size_t max, int timeout_ms)
{
    if (s->pending_next >= s->pending.n) {
        int64_t now = sl_mono_ms();
        if (now < s->next_fetch_ms) {
            int64_t wait = s->next_fetch_ms - now;
            sleep_ms(wait < timeout_ms ? wait : timeout_ms);
            return SL_OK;
        }
        items_free(&s->pending);
        s->pending_next = 0;
        int f = fetch(s, ctx);
        if (f == -2)
            return SL_FATAL;
        if (f != 0) {
            s->next_fetch_ms = f > 0 ? now : sl_mono_ms() + s->backoff_ms;
            return SL_OK;
        }
        /* The interval runs from the start of one fetch to the next. */
        s->next_fetch_ms = now + s->cfg->interval_ms;
    }
    size_t n = 0;
    while (n < max && s->pending_next < s->pending.n) {
        size_t i = s->pending_next++;
        int64_t off = s->cfg->cursor ? s->pending_first + (int64_t)i : s->seq++;
        sl_err e = hs_emit_item(s, ctx, &s->pending, i, off);
        if (e != SL_OK)
            return e;
        n++;
    }
    if (n)
        s->api->count(ctx, "records", n);
    return SL_OK;
}

/* ---- stage callbacks ----------------------------------------------------------------- */

static void hs_close(void *self, sl_ctx *ctx);

static sl_err hs_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const hs_config *cfg = config;
    hs *s = calloc(1, sizeof(*s));
    if (!s)
        return SL_ENOMEM;
    s->api = api;
    s->ctx = ctx;
    s->cfg = cfg;
    s->committed = -1;
    s->committed_seq = s->written_seq = -1;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);

    if (cfg->mode == MODE_POLL) {
        if (!cfg->url) {
            api->log(ctx, SL_LOG_ERROR, "mode poll needs `url`");
            goto config_error;
        }
        if (cfg->cursor) {
            if (!*cfg->cursor || strspn(cfg->cursor, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") !=
                                     strlen(cfg->cursor)) {
                api->log(ctx, SL_LOG_ERROR, "cursor: expected a query parameter name like `after`");
                goto config_error;
            }
            if (!cfg->offset_file) {
                s->offset_path = default_offset_path(api, ctx);
            } else if (*cfg->offset_file) {
                s->offset_path = strdup(cfg->offset_file); /* a path setting: the host resolved and confined it */
            }
            s->committed_seq = s->offset_path ? sl_offset_read(s->offset_path, s->epoch, sizeof(s->epoch)) : -1;
            s->written_seq = s->committed_seq;
            s->after = s->committed_seq > 0 ? s->committed_seq : 0;
            api->log(ctx, SL_LOG_INFO, "cursor %s: resuming after %lld (%s)", cfg->cursor, (long long)s->after,
                     s->offset_path ? s->offset_path : "offsets not kept: offset_file is empty");
        }
        curl_global_init(CURL_GLOBAL_DEFAULT);
        s->curl = curl_easy_init();
        if (!s->curl)
            goto config_error;
        for (size_t i = 0; i < cfg->headers.n; i++) {
            char line[1024];
            snprintf(line, sizeof(line), "%s: %s", cfg->headers.keys[i], cfg->headers.values[i]);
            struct curl_slist *l = curl_slist_append(s->req_headers, line);
            if (!l)
                goto config_error;
            s->req_headers = l;
        }
        curl_easy_setopt(s->curl, CURLOPT_URL, cfg->url);
        curl_easy_setopt(s->curl, CURLOPT_HTTPHEADER, s->req_headers);
        curl_easy_setopt(s->curl, CURLOPT_TIMEOUT_MS, (long)cfg->timeout_ms);
        curl_easy_setopt(s->curl, CURLOPT_CONNECTTIMEOUT_MS, (long)cfg->timeout_ms);
        curl_easy_setopt(s->curl, CURLOPT_NOSIGNAL, 1L); /* we are one thread of many */
        /* http(s) only, redirects included: file://, gopher:// and the like would read local files or
         * talk to other services on behalf of whoever wrote the URL. */
        curl_easy_setopt(s->curl, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(s->curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(s->curl, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_curl_data);
        curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(s->curl, CURLOPT_HEADERFUNCTION, on_curl_header);
        curl_easy_setopt(s->curl, CURLOPT_HEADERDATA, s);
        curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "sluice-http-source/1.1");
        *self = s;
        return SL_OK;
    }
    if (!cfg->path || cfg->path[0] != '/') {
        api->log(ctx, SL_LOG_ERROR, "path must start with '/'");
        goto config_error;
    }
    if (hs_start_server(s, ctx) != 0)
        goto config_error;
    *self = s;
    return SL_OK;
config_error:
    hs_close(s, ctx);
    return SL_ECONFIG;
}

static sl_err hs_poll(void *self, sl_ctx *ctx, size_t max, int timeout_ms)
{
    hs *s = self;
    if (s->paused) {
        sleep_ms(timeout_ms);
        return SL_OK;
    }
    return s->cfg->mode == MODE_POLL ? poll_mode(s, ctx, max, timeout_ms) : hs_listen_poll(s, ctx, max, timeout_ms);
}

static sl_err hs_flush(void *self, sl_ctx *ctx, int final)
{
    hs *s = self;
    return s->cfg->mode == MODE_LISTEN ? hs_listen_flush(s, ctx, final) : SL_OK;
}

static sl_err hs_commit(void *self, sl_ctx *ctx, const sl_position *pos, size_t n)
{
    hs *s = self;
    if (s->cfg->mode == MODE_LISTEN) {
        hs_listen_commit(s, pos, n);
        return SL_OK;
    }
    if (!s->cfg->cursor)
        return SL_OK; /* plain polling cannot replay: nothing to persist */
    for (size_t i = 0; i < n; i++)
        if (pos[i].partition == 0 && pos[i].offset > s->committed_seq)
            s->committed_seq = pos[i].offset;
    if (!s->offset_path || s->committed_seq <= s->written_seq)
        return SL_OK;
    if (sl_offset_write(s->offset_path, s->committed_seq, s->epoch) != 0) {
        s->api->log(ctx, SL_LOG_WARN, "cannot write offset file %s: %s", s->offset_path, strerror(errno));
        return SL_RETRY;
    }
    s->written_seq = s->committed_seq;
    return SL_OK;
}

static sl_err hs_pause(void *self, sl_ctx *ctx)
{
    (void)ctx;
    ((hs *)self)->paused = 1;
    return SL_OK;
}

static sl_err hs_resume(void *self, sl_ctx *ctx)
{
    (void)ctx;
    ((hs *)self)->paused = 0;
    return SL_OK;
}

static void hs_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    hs *s = self;
    hs_listen_stop(s);
    if (s->curl)
        curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->req_headers);
    sl_gbuf_free(&s->resp);
    free(s->offset_path);
    items_free(&s->pending);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* ---- config table and descriptor ----------------------------------------------------- */

static const sl_config_entry hs_config_table[] = {
    SL_CFG_ENUM("mode", hs_config, mode, .flags = SL_CFG_REQUIRED, .choices = "poll|listen",
        .description = "poll a URL, or listen for POSTs"),
    SL_CFG_STRING("url", hs_config, url, .description = "poll: the URL to GET"),
    SL_CFG_DURATION("interval", hs_config, interval_ms, .flags = SL_CFG_BOUNDED, .default_value = "500ms",
        .min = 1, .max = 86400000, .description = "poll: time between the starts of two GETs"),
    SL_CFG_MAP("headers", hs_config, headers, .description = "poll: extra request headers"),
    SL_CFG_DURATION("timeout", hs_config, timeout_ms, .flags = SL_CFG_BOUNDED, .default_value = "10s",
        .min = 1, .max = 3600000, .description = "poll: timeout of one GET"),
    SL_CFG_STRING("cursor", hs_config, cursor,
        .description = "poll: query parameter that carries the last sequence number (replayable endpoints)"),
    SL_CFG_PATH("offset_file", hs_config, offset_file,
        .description = "poll with cursor: where the committed sequence number is kept; \"\" = nowhere"),
    SL_CFG_STRING("address", hs_config, address, .default_value = "127.0.0.1:8088",
        .description = "listen: HOST:PORT to bind"),
    SL_CFG_STRING("path", hs_config, path, .default_value = "/events",
        .description = "listen: the URL path taking POSTs"),
    SL_CFG_SIZE("max_body", hs_config, max_body, .flags = SL_CFG_BOUNDED, .default_value = "8MiB", .min = 1,
        .max = 1073741824.0,
        .description = "largest body: listen mode answers 413, poll mode refuses the response"),
    SL_CFG_STRING("token", hs_config, token,
        .description = "listen: required bearer token (401 without it); default: none"),
    SL_CFG_ENUM("ack", hs_config, ack, .default_value = "accepted", .choices = "accepted|durable",
        .description = "listen: answer 202 once queued, or 200 once every record is acked by the sink"),
    SL_CFG_INT("queue_size", hs_config, queue_size, .flags = SL_CFG_BOUNDED, .default_value = "100000",
        .min = 1, .max = 100000000,
        .description = "listen: records buffered before requests get 503 + Retry-After"),
    SL_CFG_DURATION("ack_timeout", hs_config, ack_timeout_ms, .flags = SL_CFG_BOUNDED,
        .default_value = "30s", .min = 1, .max = 3600000,
        .description = "listen, ack durable: answer 504 when not acked by then"),
    SL_CFG_INT("max_connections_per_client", hs_config, max_conn_per_client, .flags = SL_CFG_BOUNDED,
        .default_value = "16", .min = 1, .max = 65535,
        .description = "listen: open connections one IP address may hold"),
    SL_CFG_INT("max_connections", hs_config, max_connections, .flags = SL_CFG_BOUNDED,
        .default_value = "512", .min = 1, .max = 65535, .description = "listen: open connections in all"),
    SL_CFG_DURATION("idle_timeout", hs_config, idle_timeout_ms, .flags = SL_CFG_BOUNDED,
        .default_value = "15s", .min = 1000, .max = 3600000,
        .description = "listen: a connection that sends nothing for this long is closed (whole seconds)"),
    SL_CFG_STRING("topic", hs_config, topic,
        .description = "stream name given to the records (sinks may route by it)"),
    SL_CFG_END,
};

static const sl_stage_desc hs_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_SINGLE_TASK,
    .name = "http-source",
    .version = "1.1.0",
    .kind = SL_KIND_SOURCE,
    .description = "polls an HTTP endpoint (optionally with a replayable cursor) or listens for POSTed JSON / NDJSON",
    .config = hs_config_table,
    .config_size = sizeof(hs_config),
    .init = hs_init,
    .poll = hs_poll,
    .flush = hs_flush,
    .commit = hs_commit,
    .close = hs_close,
    .pause = hs_pause,
    .resume = hs_resume,
};

SL_STAGE_DEFINE(hs_desc)
