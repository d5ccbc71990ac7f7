/*
 * http-source — records from HTTP, in one of two modes.
 *
 * mode: poll    GET `url` every `interval` with libcurl; the response is a JSON array, NDJSON
 *               or one JSON value. Failures (unreachable, non-2xx, unparsable) are logged and
 *               retried with exponential backoff; the source never stops on them.
 * mode: listen  a libmicrohttpd server takes POSTs of a JSON array or NDJSON on `path`.
 *               Requests go into a bounded queue that poll() drains; a full queue answers 503
 *               with Retry-After (backpressure), never blocking the server thread. With
 *               `ack: durable` the request is suspended (MHD suspend/resume) until the host's
 *               commit() reports every record of it finished, or `ack_timeout` passes (504).
 *
 * Positions: partition 0, offset = a running sequence number (0, 1, 2, ...) per instance.
 * The stage is SINGLE_TASK: one listening socket, one sequence.
 *
 * Threads: the MHD thread parses and enqueues; the task thread emits and commits; in durable
 * mode a small watchdog thread answers 504 on timeout. `mu` guards the queue and the list of
 * durable requests. MHD_resume_connection is always called without holding `mu`.
 */
#include <sluice/stage.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MODE_POLL = 0, MODE_LISTEN = 1 };
enum { ACK_ACCEPTED = 0, ACK_DURABLE = 1 };

typedef struct hs_config {
    int mode;
    char *url;
    int64_t interval_ms;
    sl_map headers;
    int64_t timeout_ms;
    char *address;
    char *path;
    int64_t max_body;
    char *token;
    int ack;
    int64_t queue_size;
    int64_t ack_timeout_ms;
    char *topic;
} hs_config;

/* The records of one body: slices of `body` (which the items point into). */
typedef struct items {
    char *body;
    size_t *off, *len; /* one allocation: off[0..n), then len[0..n) */
    size_t n;
} items;

struct hs_conn;

/* One accepted request waiting in the queue (listen mode). */
typedef struct batch {
    struct batch *next;
    items it;
    size_t next_item;
    struct hs_conn *conn; /* durable: the suspended request; NULL once answered */
} batch;

/* Per HTTP request state (MHD's con_cls). */
typedef struct hs_conn {
    struct MHD_Connection *mc;
    char *body;
    size_t len, cap;
    int too_large;
    int suspended;
    unsigned status;     /* answer once resumed */
    char reason[160];
    size_t nrecs;
    batch *queued;       /* durable, not yet fully emitted: its batch */
    int seq_known;       /* durable, fully emitted: seq_last is the last record's offset */
    int64_t seq_last;
    int64_t deadline_ms;
    struct hs_conn *next_durable;
} hs_conn;

typedef struct hs {
    const sl_api *api;
    sl_ctx *ctx;
    const hs_config *cfg;
    int64_t seq;    /* next record offset */
    int paused;

    /* poll mode */
    CURL *curl;
    struct curl_slist *req_headers;
    char *resp;
    size_t resp_len, resp_cap;
    items pending; /* fetched, not yet emitted */
    size_t pending_next;
    int64_t next_fetch_ms, backoff_ms;

    /* listen mode */
    struct MHD_Daemon *mhd;
    pthread_mutex_t mu;
    pthread_cond_t cv;       /* queue became non-empty / watchdog wake-up */
    batch *head, *tail;      /* guarded by mu */
    size_t queued;           /* records in the queue, guarded by mu */
    hs_conn *durable;        /* suspended durable requests, guarded by mu */
    int64_t committed;       /* guarded by mu */
    pthread_t watchdog;
    int watchdog_started, stopping;
} hs;

/* ---- helpers: time, parsing ---------------------------------------------------------- */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

static void items_free(items *it)
{
    free(it->body);
    free(it->off);
    *it = (items){0};
}

static int items_add(items *it, size_t *cap, size_t off, size_t len)
{
    if (it->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 64;
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
        *cap = ncap;
    }
    it->off[it->n] = off;
    it->len[it->n] = len;
    it->n++;
    return 0;
}

/* Does [p, p+len) hold exactly one valid JSON value (surrounding whitespace allowed)? */
static int valid_json(const char *p, size_t len)
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

/* Item boundaries of a JSON array already known to be valid: top-level elements, raw bytes. */
static int split_array(items *it, size_t *cap, const char *b, size_t start, size_t len)
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
            if (--depth == 0) {
                if (have && items_add(it, cap, item, last - item))
                    return -1;
                return 0;
            }
        } else if (depth == 1 && c == ',') {
            if (items_add(it, cap, item, last - item))
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

/*
 * Split a body into records: a JSON array (its elements), one JSON value spanning several
 * lines, or NDJSON (one record per non-blank line). With `strict`, every NDJSON line must be
 * valid JSON. Takes ownership of body. Returns 0, or -1 with `why` set.
 */
static int parse_body(char *body, size_t len, int strict, items *out, char *why, size_t whylen)
{
    size_t cap = 0, i = 0;
    *out = (items){.body = body};
    while (i < len && is_ws(body[i]))
        i++;
    if (i == len)
        return 0;
    if (body[i] == '[') {
        if (!valid_json(body + i, len - i)) {
            snprintf(why, whylen, "body is not a valid JSON array");
            return -1;
        }
        if (split_array(out, &cap, body, i, len)) {
            snprintf(why, whylen, "out of memory");
            return -1;
        }
        return 0;
    }
    if (body[i] == '{' && memchr(body + i, '\n', len - i) && valid_json(body + i, len - i)) {
        size_t end = len;
        while (end > i && is_ws(body[end - 1]))
            end--;
        return items_add(out, &cap, i, end - i) ? (snprintf(why, whylen, "out of memory"), -1) : 0;
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
            if (strict && !valid_json(body + s, e - s)) {
                snprintf(why, whylen, "line %zu: not valid JSON", line);
                return -1;
            }
            if (items_add(out, &cap, s, e - s)) {
                snprintf(why, whylen, "out of memory");
                return -1;
            }
        }
        i = eol + 1;
    }
    return 0;
}

static sl_err emit_item(hs *s, sl_ctx *ctx, const char *p, size_t len)
{
    sl_record r = {0};
    r.value = p;
    r.value_len = len;
    r.timestamp_ms = s->api->now_ms(ctx);
    r.topic = s->cfg->topic;
    r.partition = 0;
    r.offset = s->seq++;
    return s->api->emit(ctx, &r);
}

/* ---- poll mode ----------------------------------------------------------------------- */

static size_t on_curl_data(char *data, size_t size, size_t nmemb, void *arg)
{
    hs *s = arg;
    size_t n = size * nmemb;
    if (s->resp_len + n + 1 > s->resp_cap) {
        size_t cap = (s->resp_len + n + 1) * 2;
        char *r = realloc(s->resp, cap);
        if (!r)
            return 0; /* curl reports a write error */
        s->resp = r;
        s->resp_cap = cap;
    }
    memcpy(s->resp + s->resp_len, data, n);
    s->resp_len += n;
    return n;
}

/* One GET. Returns 0 and fills s->pending, or -1 after logging why. */
static int fetch(hs *s, sl_ctx *ctx)
{
    char why[256];
    long status = 0;
    s->resp_len = 0;
    CURLcode rc = curl_easy_perform(s->curl);
    if (rc != CURLE_OK) {
        snprintf(why, sizeof(why), "%s", curl_easy_strerror(rc));
    } else if (curl_easy_getinfo(s->curl, CURLINFO_RESPONSE_CODE, &status), status / 100 != 2) {
        snprintf(why, sizeof(why), "HTTP status %ld", status);
    } else {
        char *body = malloc(s->resp_len + 1);
        if (!body)
            return -1;
        memcpy(body, s->resp ? s->resp : "", s->resp_len);
        if (parse_body(body, s->resp_len, 0, &s->pending, why, sizeof(why)) == 0) {
            s->pending_next = 0;
            s->backoff_ms = 0;
            s->api->count(ctx, "fetches", 1);
            return 0;
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
    s->api->log(ctx, SL_LOG_WARN, "GET %s failed: %s; retrying in %lld ms", s->cfg->url, why,
                (long long)s->backoff_ms);
    return -1;
}

static sl_err poll_mode(hs *s, sl_ctx *ctx, size_t max, int timeout_ms)
{
    if (s->pending_next >= s->pending.n) {
        int64_t now = mono_ms();
        if (now < s->next_fetch_ms) {
            int64_t wait = s->next_fetch_ms - now;
            sleep_ms(wait < timeout_ms ? wait : timeout_ms);
            return SL_OK;
        }
        items_free(&s->pending);
        s->pending_next = 0;
        if (fetch(s, ctx) != 0) {
            s->next_fetch_ms = mono_ms() + s->backoff_ms;
            return SL_OK;
        }
        /* The interval runs from the start of one fetch to the next. */
        s->next_fetch_ms = now + s->cfg->interval_ms;
    }
    size_t n = 0;
    while (n < max && s->pending_next < s->pending.n) {
        size_t i = s->pending_next++;
        sl_err e = emit_item(s, ctx, s->pending.body + s->pending.off[i], s->pending.len[i]);
        if (e != SL_OK)
            return e;
        n++;
    }
    if (n)
        s->api->count(ctx, "records", n);
    return SL_OK;
}

/* ---- listen mode: MHD callbacks (server thread) -------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *mc, unsigned status, const char *msg)
{
    char body[256];
    int n = snprintf(body, sizeof(body), status / 100 == 2 ? "{\"status\":\"%s\"}\n"
                                                           : "{\"error\":\"%s\"}\n", msg);
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (status == 503)
        MHD_add_response_header(r, "Retry-After", "1");
    if (status == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    if (status == 405)
        MHD_add_response_header(r, "Allow", "POST");
    enum MHD_Result ret = MHD_queue_response(mc, status, r);
    MHD_destroy_response(r);
    return ret;
}

static int authorized(hs *s, struct MHD_Connection *mc)
{
    if (!s->cfg->token)
        return 1;
    const char *h = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7) != 0)
        return 0;
    /* Compare every byte so the time taken does not reveal the matching prefix. */
    const char *a = h + 7, *b = s->cfg->token;
    size_t la = strlen(a), lb = strlen(b);
    unsigned diff = la != lb;
    for (size_t i = 0; i < la && i < lb; i++)
        diff |= (unsigned char)a[i] ^ (unsigned char)b[i];
    return diff == 0;
}

/* The body is complete: parse, enqueue, and answer now (accepted) or later (durable). */
static enum MHD_Result finish_request(hs *s, hs_conn *c)
{
    char why[160];
    if (c->too_large) {
        snprintf(why, sizeof(why), "body larger than max_body (%lld bytes)",
                 (long long)s->cfg->max_body);
        return respond(c->mc, 413, why);
    }
    items it;
    char *body = c->body;
    c->body = NULL;
    if (parse_body(body ? body : strdup(""), c->len, 1, &it, why, sizeof(why)) != 0) {
        items_free(&it);
        s->api->count(s->ctx, "bad_requests", 1);
        return respond(c->mc, 400, why);
    }
    c->nrecs = it.n;
    if (it.n == 0) {
        items_free(&it);
        return respond(c->mc, 200, "ok");
    }
    batch *b = calloc(1, sizeof(*b));
    if (!b) {
        items_free(&it);
        return respond(c->mc, 503, "out of memory");
    }
    b->it = it;

    pthread_mutex_lock(&s->mu);
    /* A request larger than the whole queue still gets in when the queue is empty. */
    if (s->stopping || (s->queued > 0 && s->queued + it.n > (size_t)s->cfg->queue_size)) {
        pthread_mutex_unlock(&s->mu);
        items_free(&b->it);
        free(b);
        s->api->count(s->ctx, "busy_responses", 1);
        return respond(c->mc, 503, "pipeline busy, retry later");
    }
    if (s->cfg->ack == ACK_DURABLE) {
        b->conn = c;
        c->queued = b;
        c->deadline_ms = mono_ms() + s->cfg->ack_timeout_ms;
        c->next_durable = s->durable;
        s->durable = c;
        c->suspended = 1;
        /* Under mu, so nobody can resume it before it is suspended. */
        MHD_suspend_connection(c->mc);
    }
    if (s->tail)
        s->tail->next = b;
    else
        s->head = b;
    s->tail = b;
    s->queued += it.n;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    s->api->count(s->ctx, "requests", 1);
    if (s->cfg->ack == ACK_DURABLE)
        return MHD_YES;
    return respond(c->mc, 200, "accepted");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *mc, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    hs *s = cls;
    hs_conn *c = *con_cls;
    if (!c) { /* headers are in, the body is not: decide what we can now */
        if (strcmp(url, s->cfg->path) != 0)
            return respond(mc, 404, "no such path");
        if (strcmp(method, "POST") != 0)
            return respond(mc, 405, "use POST");
        if (!authorized(s, mc))
            return respond(mc, 401, "missing or wrong bearer token");
        const char *cl = MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > (unsigned long long)s->cfg->max_body) {
            char why[160];
            snprintf(why, sizeof(why), "body larger than max_body (%lld bytes)",
                     (long long)s->cfg->max_body);
            return respond(mc, 413, why);
        }
        c = calloc(1, sizeof(*c));
        if (!c)
            return MHD_NO;
        c->mc = mc;
        *con_cls = c;
        return MHD_YES;
    }
    if (c->suspended) { /* resumed: the answer is decided */
        c->suspended = 0;
        return respond(mc, c->status, c->reason);
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (c->too_large || c->len + n > (size_t)s->cfg->max_body) {
            c->too_large = 1; /* keep reading (and dropping) so we can answer 413 */
            return MHD_YES;
        }
        if (c->len + n + 1 > c->cap) {
            size_t cap = (c->len + n + 1) * 2;
            if (cap > (size_t)s->cfg->max_body + 1)
                cap = (size_t)s->cfg->max_body + 1;
            char *nb = realloc(c->body, cap);
            if (!nb)
                return MHD_NO;
            c->body = nb;
            c->cap = cap;
        }
        memcpy(c->body + c->len, upload, n);
        c->len += n;
        return MHD_YES;
    }
    return finish_request(s, c);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)mc;
    (void)toe;
    hs_conn *c = *con_cls;
    if (!c)
        return;
    /* Never still listed: it is unlinked before it is resumed. */
    free(c->body);
    free(c);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    hs *s = cls;
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = 0;
    s->api->log(s->ctx, SL_LOG_WARN, "http: %s", buf);
}

/* ---- listen mode: answering durable requests ----------------------------------------- */

/* Under mu: unlink every durable request that `done` selects, give it its answer, and chain
 * it on *out (through next_durable) for resuming after unlock. */
static void take_durable(hs *s, int64_t now, hs_conn **out)
{
    hs_conn **pp = &s->durable;
    while (*pp) {
        hs_conn *c = *pp;
        int acked = c->seq_known && c->seq_last <= s->committed;
        int late = now >= c->deadline_ms || s->stopping;
        if (!acked && !late) {
            pp = &c->next_durable;
            continue;
        }
        *pp = c->next_durable;
        if (c->queued)
            c->queued->conn = NULL; /* its records still flow; nobody waits for them */
        c->queued = NULL;
        if (acked) {
            c->status = 200;
            snprintf(c->reason, sizeof(c->reason), "durable");
        } else if (s->stopping) {
            c->status = 503;
            snprintf(c->reason, sizeof(c->reason), "shutting down before the records were acked");
        } else {
            c->status = 504;
            snprintf(c->reason, sizeof(c->reason), "records not acked within ack_timeout");
        }
        c->next_durable = *out;
        *out = c;
    }
}

static void resume_all(hs_conn *c)
{
    while (c) {
        hs_conn *next = c->next_durable;
        MHD_resume_connection(c->mc);
        c = next;
    }
}

static void *watchdog(void *arg)
{
    hs *s = arg;
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        if (s->stopping)
            break;
        hs_conn *out = NULL;
        take_durable(s, mono_ms(), &out);
        if (out) {
            pthread_mutex_unlock(&s->mu);
            resume_all(out);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static sl_err listen_mode(hs *s, sl_ctx *ctx, size_t max, int timeout_ms)
{
    size_t n = 0;
    pthread_mutex_lock(&s->mu);
    if (!s->head && timeout_ms > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_sec += timeout_ms / 1000;
        ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    while (n < max && s->head) {
        /* Only this thread removes batches and the server thread only appends, so the head's
         * items can be read without the lock. */
        batch *b = s->head;
        pthread_mutex_unlock(&s->mu);
        size_t k = 0;
        sl_err e = SL_OK;
        while (n + k < max && b->next_item + k < b->it.n && e == SL_OK) {
            size_t i = b->next_item + k;
            e = emit_item(s, ctx, b->it.body + b->it.off[i], b->it.len[i]);
            if (e == SL_OK)
                k++;
        }
        pthread_mutex_lock(&s->mu);
        b->next_item += k;
        s->queued -= k;
        n += k;
        if (b->next_item == b->it.n) {
            s->head = b->next;
            if (!s->head)
                s->tail = NULL;
            if (b->conn) { /* durable: wait for commit to cover its last record */
                b->conn->queued = NULL;
                b->conn->seq_known = 1;
                b->conn->seq_last = s->seq - 1;
            }
            items_free(&b->it);
            free(b);
        }
        if (e != SL_OK) {
            pthread_mutex_unlock(&s->mu);
            return e;
        }
    }
    pthread_mutex_unlock(&s->mu);
    if (n)
        s->api->count(ctx, "records", n);
    return SL_OK;
}

static int start_server(hs *s, sl_ctx *ctx)
{
    char host[256];
    const char *colon = strrchr(s->cfg->address, ':');
    if (!colon || colon == s->cfg->address || (size_t)(colon - s->cfg->address) >= sizeof(host)) {
        s->api->log(ctx, SL_LOG_ERROR, "address %s: expected HOST:PORT", s->cfg->address);
        return -1;
    }
    memcpy(host, s->cfg->address, (size_t)(colon - s->cfg->address));
    host[colon - s->cfg->address] = 0;
    if (host[0] == '[' && host[strlen(host) - 1] == ']') { /* [::1]:8088 */
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = 0;
    }
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
                             .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        s->api->log(ctx, SL_LOG_ERROR, "address %s: %s", s->cfg->address, gai_strerror(rc));
        return -1;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                              MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* must come first */
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
                              MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->mhd) {
        s->api->log(ctx, SL_LOG_ERROR, "cannot listen on %s", s->cfg->address);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->api->log(ctx, SL_LOG_INFO, "listening on %s (port %u), path %s, ack %s", s->cfg->address,
                info ? (unsigned)info->port : 0u, s->cfg->path,
                s->cfg->ack == ACK_DURABLE ? "durable" : "accepted");
    return 0;
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
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);

    if (cfg->mode == MODE_POLL) {
        if (!cfg->url) {
            api->log(ctx, SL_LOG_ERROR, "mode poll needs `url`");
            goto config_error;
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
        curl_easy_setopt(s->curl, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(s->curl, CURLOPT_WRITEFUNCTION, on_curl_data);
        curl_easy_setopt(s->curl, CURLOPT_WRITEDATA, s);
        curl_easy_setopt(s->curl, CURLOPT_USERAGENT, "sluice-http-source/1.0");
        *self = s;
        return SL_OK;
    }
    if (!cfg->path || cfg->path[0] != '/') {
        api->log(ctx, SL_LOG_ERROR, "path must start with '/'");
        goto config_error;
    }
    if (start_server(s, ctx) != 0)
        goto config_error;
    if (cfg->ack == ACK_DURABLE) {
        if (pthread_create(&s->watchdog, NULL, watchdog, s) != 0) {
            hs_close(s, ctx);
            return SL_FATAL;
        }
        s->watchdog_started = 1;
    }
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
    return s->cfg->mode == MODE_POLL ? poll_mode(s, ctx, max, timeout_ms)
                                     : listen_mode(s, ctx, max, timeout_ms);
}

static sl_err hs_commit(void *self, sl_ctx *ctx, const sl_position *pos, size_t n)
{
    (void)ctx;
    hs *s = self;
    if (s->cfg->mode != MODE_LISTEN || s->cfg->ack != ACK_DURABLE)
        return SL_OK; /* HTTP cannot replay: nothing to persist */
    hs_conn *out = NULL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++)
        if (pos[i].partition == 0 && pos[i].offset > s->committed)
            s->committed = pos[i].offset;
    take_durable(s, mono_ms(), &out);
    pthread_mutex_unlock(&s->mu);
    resume_all(out);
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
    if (s->mhd) {
        /* Answer every suspended request (MHD must not stop with suspended connections). */
        hs_conn *out = NULL;
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        take_durable(s, mono_ms(), &out);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        resume_all(out);
        if (s->watchdog_started)
            pthread_join(s->watchdog, NULL);
        MHD_stop_daemon(s->mhd);
    }
    while (s->head) {
        batch *b = s->head;
        s->head = b->next;
        items_free(&b->it);
        free(b);
    }
    if (s->curl)
        curl_easy_cleanup(s->curl);
    curl_slist_free_all(s->req_headers);
    free(s->resp);
    items_free(&s->pending);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
}

/* ---- config table and descriptor ----------------------------------------------------- */

static const sl_config_entry hs_config_table[] = {
    {.key = "mode", .type = SL_T_ENUM, .flags = SL_CFG_REQUIRED, .choices = "poll|listen",
     .offset = offsetof(hs_config, mode), .description = "poll a URL, or listen for POSTs"},
    {.key = "url", .type = SL_T_STRING, .offset = offsetof(hs_config, url),
     .description = "poll: the URL to GET"},
    {.key = "interval", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "500ms",
     .min = 1, .max = 86400000, .offset = offsetof(hs_config, interval_ms),
     .description = "poll: time between the starts of two GETs"},
    {.key = "headers", .type = SL_T_MAP, .offset = offsetof(hs_config, headers),
     .description = "poll: extra request headers"},
    {.key = "timeout", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "10s",
     .min = 1, .max = 3600000, .offset = offsetof(hs_config, timeout_ms),
     .description = "poll: timeout of one GET"},
    {.key = "address", .type = SL_T_STRING, .default_value = "127.0.0.1:8088",
     .offset = offsetof(hs_config, address), .description = "listen: HOST:PORT to bind"},
    {.key = "path", .type = SL_T_STRING, .default_value = "/events",
     .offset = offsetof(hs_config, path), .description = "listen: the URL path taking POSTs"},
    {.key = "max_body", .type = SL_T_SIZE, .flags = SL_CFG_BOUNDED, .default_value = "8MiB",
     .min = 1, .max = 1073741824.0, .offset = offsetof(hs_config, max_body),
     .description = "listen: larger bodies get 413"},
    {.key = "token", .type = SL_T_STRING, .offset = offsetof(hs_config, token),
     .description = "listen: required bearer token (401 without it); default: none"},
    {.key = "ack", .type = SL_T_ENUM, .default_value = "accepted", .choices = "accepted|durable",
     .offset = offsetof(hs_config, ack),
     .description = "listen: answer 200 once queued, or once every record is acked by the sink"},
    {.key = "queue_size", .type = SL_T_INT, .flags = SL_CFG_BOUNDED, .default_value = "100000",
     .min = 1, .max = 100000000, .offset = offsetof(hs_config, queue_size),
     .description = "listen: records buffered before requests get 503 + Retry-After"},
    {.key = "ack_timeout", .type = SL_T_DURATION, .flags = SL_CFG_BOUNDED, .default_value = "30s",
     .min = 1, .max = 3600000, .offset = offsetof(hs_config, ack_timeout_ms),
     .description = "listen, ack durable: answer 504 when not acked by then"},
    {.key = "topic", .type = SL_T_STRING, .offset = offsetof(hs_config, topic),
     .description = "stream name given to the records (sinks may route by it)"},
    {.key = NULL},
};

static const sl_stage_desc hs_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_SINGLE_TASK,
    .name = "http-source",
    .version = "1.0.0",
    .kind = SL_KIND_SOURCE,
    .description = "polls an HTTP endpoint or listens for POSTed JSON / NDJSON",
    .config = hs_config_table,
    .config_size = sizeof(hs_config),
    .init = hs_init,
    .poll = hs_poll,
    .commit = hs_commit,
    .close = hs_close,
    .pause = hs_pause,
    .resume = hs_resume,
};

SL_STAGE_DEFINE(hs_desc)
