/* sse.c — server-sent event streams on libmicrohttpd (see sse.h). */
#include "sse.h"

#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

struct sse_client {
    sse_client *next;
    struct MHD_Connection *conn; /* NULL until the response is queued */
    sl_buf out;                  /* queued bytes; out.data[sent..len) not yet handed to MHD */
    size_t sent;
    int suspended;
    int closing; /* end the stream once `out` is sent */
    int cut;     /* did not read: end it now */
    long long last_ms; /* last time something was queued (pings keep it below SSE_PING_MS) */
    sse_closed_fn on_close;
    void *arg;
};

static sse_client *clients;
static size_t nclients;
static void (*tickers[8])(long long);
static size_t ntickers;
static void (*at_shutdown[4])(void);
static size_t nshutdown;

void sse_add_shutdown(void (*fn)(void))
{
    for (size_t i = 0; i < nshutdown; i++)
        if (at_shutdown[i] == fn) return;
    if (nshutdown < sizeof at_shutdown / sizeof at_shutdown[0]) at_shutdown[nshutdown++] = fn;
}

size_t sse_count(void) { return nclients; }

void sse_add_ticker(void (*fn)(long long))
{
    for (size_t i = 0; i < ntickers; i++)
        if (tickers[i] == fn) return;
    if (ntickers < sizeof tickers / sizeof tickers[0]) tickers[ntickers++] = fn;
}

static void wake(sse_client *c)
{
    if (c->suspended && c->conn) {
        c->suspended = 0;
        MHD_resume_connection(c->conn);
    }
}

sse_client *sse_open(http_resp *resp, sse_closed_fn on_close, void *arg)
{
    sse_client *c = xcalloc(1, sizeof *c);
    c->on_close = on_close;
    c->arg = arg;
    c->last_ms = sl_monotonic_ms();
    c->next = clients;
    clients = c;
    nclients++;
    resp->status = 200;
    resp->content_type = "text/event-stream; charset=utf-8";
    resp->stream = c;
    /* Tells EventSource-style clients how long to wait before reconnecting, and gets the
     * headers and first bytes out at once. */
    buf_puts(&c->out, "retry: 2000\n\n");
    return c;
}

int sse_send(sse_client *c, const char *event, const char *data)
{
    if (c->closing || c->cut) return -1;
    if (c->out.len - c->sent > SSE_MAX_BUFFER) {
        /* It does not read: what we keep for it would grow without bound. */
        log_info("event stream: a client that does not read was cut off");
        c->cut = 1;
        wake(c);
        return -1;
    }
    if (c->sent && c->sent == c->out.len) c->out.len = c->sent = 0;
    if (event) buf_printf(&c->out, "event: %s\n", event);
    buf_puts(&c->out, "data: ");
    buf_puts(&c->out, data);
    buf_puts(&c->out, "\n\n");
    c->last_ms = sl_monotonic_ms();
    wake(c);
    return 0;
}

void sse_close(sse_client *c)
{
    c->closing = 1;
    wake(c);
}

static ssize_t reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    sse_client *c = cls;
    if (c->cut) return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t avail = c->out.len - c->sent;
    if (avail) {
        size_t n = avail < max ? avail : max;
        memcpy(buf, c->out.data + c->sent, n);
        c->sent += n;
        if (c->sent == c->out.len) c->out.len = c->sent = 0;
        else if (c->sent > (64u << 10)) { /* keep the buffer from creeping */
            memmove(c->out.data, c->out.data + c->sent, c->out.len - c->sent);
            c->out.len -= c->sent;
            c->sent = 0;
        }
        return (ssize_t)n;
    }
    if (c->closing) return MHD_CONTENT_READER_END_OF_STREAM;
    /* Nothing to send: take it out of MHD's loop until sse_send wakes it. */
    c->suspended = 1;
    MHD_suspend_connection(c->conn);
    return 0;
}

/* MHD destroys the response when the connection is done, whatever the reason. */
static void released(void *cls)
{
    sse_client *c = cls;
    for (sse_client **pp = &clients; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            nclients--;
            break;
        }
    if (c->on_close) c->on_close(c, c->arg);
    buf_free(&c->out);
    free(c);
}

void *sse_mhd_response(sse_client *c, void *mhd_connection)
{
    c->conn = mhd_connection;
    struct MHD_Response *m = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 << 10, reader, c, released);
    if (!m) {
        released(c);
        return NULL;
    }
    MHD_add_response_header(m, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(m, "X-Accel-Buffering", "no"); /* a proxy must not hold events back */
    return m;
}

void sse_tick(void)
{
    long long now = sl_monotonic_ms();
    for (size_t i = 0; i < ntickers; i++) tickers[i](now);
    for (sse_client *c = clients; c; c = c->next)
        if (!c->closing && !c->cut && now - c->last_ms >= SSE_PING_MS) {
            /* A comment line: ignored by clients, and a failed write shows the client left. */
            buf_puts(&c->out, ": ping\n\n");
            c->last_ms = now;
            wake(c);
        }
}

void sse_shutdown(void)
{
    for (sse_client *c = clients; c; c = c->next) {
        c->closing = 1;
        wake(c);
    }
    for (size_t i = 0; i < nshutdown; i++) at_shutdown[i]();
}
