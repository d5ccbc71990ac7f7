/* sse.h — server-sent event streams on the supervisor's HTTP server (libmicrohttpd).
 *
 * A handler turns its answer into a stream with sse_open(); the connection then stays open and
 * whatever sse_send() queues is written to it as `event: NAME\ndata: JSON\n\n`. Everything runs
 * on the supervisor's thread, like the rest of the HTTP server: a stream with nothing to send is
 * suspended (MHD does not poll it) and resumed when something is queued, so an idle stream costs
 * nothing. Every SSE_PING_MS a comment line is sent: it keeps proxies from closing the stream and
 * is how a client that went away is noticed (its write fails). A client that does not read is
 * cut off once SSE_MAX_BUFFER bytes wait for it, so a slow reader cannot grow the supervisor. */
#ifndef SL_HOST_SSE_H
#define SL_HOST_SSE_H

#include <stddef.h>

#include "http.h"

#define SSE_PING_MS 5000
#define SSE_MAX_BUFFER (1 << 20)

typedef struct sse_client sse_client;

/** Called once when the stream ends (the client went away, sse_close, or shutdown); the client
 *  must not be used after it returns. */
typedef void (*sse_closed_fn)(sse_client *c, void *arg);

/** Answers `resp` with a stream (200, text/event-stream) and returns its handle. */
sse_client *sse_open(http_resp *resp, sse_closed_fn on_close, void *arg);
/** Queues one event (`data` must not contain a newline: send JSON). Returns -1 when the client
 *  is closing or was cut off for not reading. */
int sse_send(sse_client *c, const char *event, const char *data);
/** Ends the stream once what is queued has been sent. */
void sse_close(sse_client *c);
/** Number of open streams. */
size_t sse_count(void);

/* ---- for http.c --------------------------------------------------------------------------- */

/** The MHD response for a stream (struct MHD_Response *), bound to its connection. */
void *sse_mhd_response(sse_client *c, void *mhd_connection);
/** Called on every turn of the supervisor's loop: pings and the periodic publishers. */
void sse_tick(void);
/** Before the HTTP server stops: ends every stream (MHD must not stop with suspended ones). */
void sse_shutdown(void);

/** A function called from sse_tick() on every turn (e.g. the live status stream). */
void sse_add_ticker(void (*fn)(long long now_ms));
/** A function called by sse_shutdown() (e.g. to stop a worker thread). */
void sse_add_shutdown(void (*fn)(void));

#endif
