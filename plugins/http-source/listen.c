/*
 * listen.c — http-source's listen mode: a libmicrohttpd server takes POSTs of a JSON array,
 * one JSON value or NDJSON on `path`. Requests go into a bounded queue that poll() drains; a
 * full queue answers 503 with Retry-After (backpressure), never blocking the server thread.
 *
 *   ack: accepted  202 once the records are queued (in memory: accepted, not yet durable). A
 *                  graceful stop stops taking requests (503) and drains the queue through the
 *                  pipeline (flush with final = 1); whatever could not be delivered is counted
 *                  (`undelivered`) and logged.
 *   ack: durable   the request is suspended (MHD suspend/resume) until the host's commit()
 *                  reports every record of it finished (200), or `ack_timeout` passes (504).
 *
 * Hostile clients: at most `max_connections_per_client` connections per IP address and
 * `max_connections` in all; a connection idle for `idle_timeout` is closed. What the server
 * has to say about clients (limits hit, resets, timeouts) is counted and summarised at most
 * once a minute, never one warning line per connection.
 *
 * Threads: the MHD thread parses and enqueues; the task thread emits and commits; in durable
 * mode a small watchdog thread answers 504 on timeout. `mu` guards the queue and the list of
 * durable requests. MHD_resume_connection is always called without holding `mu`.
 */
#include "hs.h"

#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONN_LOG_EVERY_MS 60000

/* ---- MHD callbacks (server thread) ----------------------------------------------------- */

static enum MHD_Result respond(struct MHD_Connection *mc, unsigned status, const char *msg)
{
    /* A reason may quote the request's bytes: escaped to ASCII, so the body is JSON whatever
     * they were. */
    sl_gbuf body = {0};
    sl_gbuf_puts(&body, status / 100 == 2 ? "{\"status\":" : "{\"error\":");
    sl_gbuf_json_str(&body, msg, strnlen(msg, 300), true);
    sl_gbuf_puts(&body, "}\n");
    struct MHD_Response *r =
        body.oom ? NULL : MHD_create_response_from_buffer(body.len, body.p, MHD_RESPMEM_MUST_COPY);
    sl_gbuf_free(&body);
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
    return !s->cfg->token ||
           sl_bearer_ok(MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Authorization"), s->cfg->token);
}

/* The body is complete: parse, enqueue, and answer now (accepted) or later (durable). */
static enum MHD_Result finish_request(hs *s, hs_conn *c)
{
    char why[200];
    if (c->body.too_big) {
        snprintf(why, sizeof(why), "body larger than max_body (%lld bytes)", (long long)s->cfg->max_body);
        return respond(c->mc, 413, why);
    }
    items it;
    char *body = c->body.data;
    size_t body_len = c->body.len;
    c->body.data = NULL;
    if (hs_parse_body(body ? body : strdup(""), body_len, 1, &it, why, sizeof(why)) != 0) {
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
    if (s->stopping || s->draining || (s->queued > 0 && s->queued + it.n > (size_t)s->cfg->queue_size)) {
        int closing = s->stopping || s->draining;
        pthread_mutex_unlock(&s->mu);
        items_free(&b->it);
        free(b);
        s->api->count(s->ctx, "busy_responses", 1);
        return respond(c->mc, 503, closing ? "shutting down, retry later" : "pipeline busy, retry later");
    }
    if (s->cfg->ack == ACK_DURABLE) {
        b->conn = c;
        c->queued = b;
        c->deadline_ms = sl_mono_ms() + s->cfg->ack_timeout_ms;
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
    /* 202: queued in this process's memory, not yet durable (ack: durable answers 200). */
    return respond(c->mc, 202, "accepted");
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
        sl_body announced = {0};
        sl_body_begin(&announced, MHD_lookup_connection_value(mc, MHD_HEADER_KIND, "Content-Length"),
                      (size_t)s->cfg->max_body);
        if (announced.too_big) {
            char why[160];
            snprintf(why, sizeof(why), "body larger than max_body (%lld bytes)", (long long)s->cfg->max_body);
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
        /* past max_body: keep reading (and dropping) so we can answer 413 */
        return sl_body_add(&c->body, upload, n, (size_t)s->cfg->max_body) == 0 ? MHD_YES : MHD_NO;
    }
    return finish_request(s, c);
}

static void on_completed(void *cls, struct MHD_Connection *mc, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)mc;
    hs *s = cls;
    if (toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED || toe == MHD_REQUEST_TERMINATED_READ_ERROR ||
        toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT)
        s->api->count(s->ctx, "connections_dropped", 1);
    hs_conn *c = *con_cls;
    if (!c)
        return;
    /* Never still listed: it is unlinked before it is resumed. */
    sl_body_free(&c->body);
    free(c);
    *con_cls = NULL;
}

/* libmicrohttpd speaks about clients (limits hit, resets, timeouts): one debug line each and
 * a warning that sums them up at most once a minute, so a flood cannot flood the log. */
static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    hs *s = cls;
    char buf[512];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    size_t n = strlen(buf);
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = 0;
    s->api->count(s->ctx, "connection_messages", 1);
    s->api->log(s->ctx, SL_LOG_DEBUG, "http: %s", buf);
    int64_t now = sl_mono_ms();
    pthread_mutex_lock(&s->mu);
    s->conn_msgs++;
    uint64_t k = 0;
    if (!s->conn_log_ms || now - s->conn_log_ms >= CONN_LOG_EVERY_MS) {
        k = s->conn_msgs;
        s->conn_msgs = 0;
        s->conn_log_ms = now;
    }
    pthread_mutex_unlock(&s->mu);
    if (k)
        s->api->log(s->ctx, SL_LOG_WARN, "http: %llu connection message(s) since the last summary, latest: %s "
                    "(further ones are summed up once a minute; metric connection_messages)",
                    (unsigned long long)k, buf);
}

/* ---- answering durable requests -------------------------------------------------------- */

/* Under mu: unlink every durable request that is acked or late, give it its answer, and chain
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
        struct timespec ts = sl_deadline_in(CLOCK_REALTIME, 200);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        if (s->stopping)
            break;
        hs_conn *out = NULL;
        take_durable(s, sl_mono_ms(), &out);
        if (out) {
            pthread_mutex_unlock(&s->mu);
            resume_all(out);
            pthread_mutex_lock(&s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- the task thread: emitting, committing, draining ----------------------------------- */

/* Emits up to `max` queued records. */
static sl_err emit_queued(hs *s, sl_ctx *ctx, size_t max, size_t *emitted)
{
    size_t n = 0;
    sl_err e = SL_OK;
    pthread_mutex_lock(&s->mu);
    while (n < max && s->head && e == SL_OK) {
        /* Only this thread removes batches and the server thread only appends, so the head's
         * items can be read without the lock. */
        batch *b = s->head;
        pthread_mutex_unlock(&s->mu);
        size_t k = 0;
        while (n + k < max && b->next_item + k < b->it.n && e == SL_OK) {
            e = hs_emit_item(s, ctx, &b->it, b->next_item + k, s->seq);
            if (e == SL_OK) {
                s->seq++;
                k++;
            }
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
    }
    pthread_mutex_unlock(&s->mu);
    if (n)
        s->api->count(ctx, "records", n);
    *emitted = n;
    return e;
}

sl_err hs_listen_poll(hs *s, sl_ctx *ctx, size_t max, int timeout_ms)
{
    pthread_mutex_lock(&s->mu);
    if (!s->head && timeout_ms > 0) {
        struct timespec ts = sl_deadline_in(CLOCK_REALTIME, timeout_ms);
        pthread_cond_timedwait(&s->cv, &s->mu, &ts);
    }
    pthread_mutex_unlock(&s->mu);
    size_t n;
    return emit_queued(s, ctx, max, &n);
}

/* At a graceful stop (final = 1) the host stops polling and drains the chain: stop taking
 * requests and hand everything already answered 202 to the pipeline now, so it is delivered
 * before the host's last commit instead of being dropped with the process. */
sl_err hs_listen_flush(hs *s, sl_ctx *ctx, int final)
{
    if (!final)
        return SL_OK;
    pthread_mutex_lock(&s->mu);
    int first = !s->draining;
    s->draining = 1;
    size_t queued = s->queued;
    pthread_mutex_unlock(&s->mu);
    if (!queued)
        return SL_OK;
    if (first)
        s->api->log(ctx, SL_LOG_INFO, "stopping: delivering %zu queued record(s) before exit", queued);
    size_t n;
    return emit_queued(s, ctx, (size_t)-1, &n);
}

void hs_listen_commit(hs *s, const sl_position *pos, size_t n)
{
    if (s->cfg->ack != ACK_DURABLE)
        return;
    hs_conn *out = NULL;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < n; i++)
        if (pos[i].partition == 0 && pos[i].offset > s->committed)
            s->committed = pos[i].offset;
    take_durable(s, sl_mono_ms(), &out);
    pthread_mutex_unlock(&s->mu);
    resume_all(out);
}

/* Close: answer suspended requests, stop the server, and account for anything never emitted. */
void hs_listen_stop(hs *s)
{
    if (s->mhd) {
        hs_conn *out = NULL;
        pthread_mutex_lock(&s->mu);
        s->stopping = 1;
        take_durable(s, sl_mono_ms(), &out);
        pthread_cond_broadcast(&s->cv);
        pthread_mutex_unlock(&s->mu);
        resume_all(out);
        if (s->watchdog_started)
            pthread_join(s->watchdog, NULL);
        MHD_stop_daemon(s->mhd);
        s->mhd = NULL;
    }
    size_t lost = 0;
    while (s->head) {
        batch *b = s->head;
        s->head = b->next;
        lost += b->it.n - b->next_item;
        items_free(&b->it);
        free(b);
    }
    if (lost) {
        s->api->count(s->ctx, "undelivered", lost);
        s->api->log(s->ctx, SL_LOG_ERROR, "%zu accepted record(s) (answered 202) were never delivered: "
                    "the pipeline stopped before they could be emitted", lost);
    }
}

int hs_start_server(hs *s, sl_ctx *ctx)
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
    struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, colon + 1, &hints, &ai);
    if (rc != 0) {
        s->api->log(ctx, SL_LOG_ERROR, "address %s: %s", s->cfg->address, gai_strerror(rc));
        return -1;
    }
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned idle_s = (unsigned)((s->cfg->idle_timeout_ms + 999) / 1000);
    s->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, s,
                              MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, s, /* must come first */
                              MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                              MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                              MHD_OPTION_CONNECTION_TIMEOUT, idle_s,
                              MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->cfg->max_conn_per_client,
                              MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->cfg->max_connections,
                              MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!s->mhd) {
        s->api->log(ctx, SL_LOG_ERROR, "cannot listen on %s", s->cfg->address);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->mhd, MHD_DAEMON_INFO_BIND_PORT);
    s->api->log(ctx, SL_LOG_INFO, "listening on %s (port %u), path %s, ack %s", s->cfg->address,
                info ? (unsigned)info->port : 0u, s->cfg->path, s->cfg->ack == ACK_DURABLE ? "durable" : "accepted");
    if (s->cfg->ack == ACK_DURABLE) {
        if (pthread_create(&s->watchdog, NULL, watchdog, s) != 0) {
            s->api->log(ctx, SL_LOG_ERROR, "cannot start the ack watchdog thread");
            return -1;
        }
        s->watchdog_started = 1;
    }
    return 0;
}
