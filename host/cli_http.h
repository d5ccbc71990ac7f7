/* cli_http.h — what `sluice tap` and `sluice top` share: finding the running host's REST address
 * and token, plain requests, and reading a server-sent event stream (libcurl). */
#ifndef SL_HOST_CLI_HTTP_H
#define SL_HOST_CLI_HTTP_H

#include <curl/curl.h>

#include "util.h"

typedef struct cli_conn {
    char base[320];  /* http://HOST:PORT */
    char auth[300];  /* "Authorization: Bearer TOKEN" */
} cli_conn;

/** `rest`: --rest ADDR, else $SLUICE_REST_LISTEN when it names a port, else 127.0.0.1:8083;
 *  the token: $SLUICE_REST_TOKEN, else STATE_DIR/rest.token (`state_dir`: --state-dir or NULL),
 *  as `sluice token` finds it. Returns 0, or -1 after printing why. */
int cli_conn_init(cli_conn *c, const char *rest, const char *state_dir);

/** A request with the token; the body (if any) is JSON. Returns the HTTP status, or -1 with
 *  the reason in `out` when the host cannot be reached. */
long cli_request(const cli_conn *c, const char *method, const char *path, const char *body, sl_buf *out);

/** Reads an event stream: calls on_event(event, data, arg) for every event; a nonzero return
 *  ends the stream. */
typedef int (*cli_event_fn)(const char *event, const char *data, void *arg);
typedef struct cli_sse {
    sl_buf pending;
    cli_event_fn fn;
    void *arg;
    int stop;
    long status;   /* the HTTP status once known */
    sl_buf error;  /* the body of a non-200 answer */
} cli_sse;

/** A curl handle set up to stream GET `path` into `s`. */
CURL *cli_sse_handle(const cli_conn *c, const char *path, cli_sse *s, struct curl_slist **hdrs);

/** Prints "sluice: <message of an error answer>" for a failed call. */
void cli_print_error(const char *what, long status, const sl_buf *body);

#endif
