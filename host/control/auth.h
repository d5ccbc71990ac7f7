/* auth.h — who may call the REST API: the bearer token and the cross-site request rules.
 *
 * Checked for every request before it is routed (see docs/rest-api.md, "Authentication"):
 *  - Host must name loopback, the listen address (or, on a wildcard bind, an IP literal or this
 *    machine's name) or one of rest.allowed_hosts — a DNS-rebinding page sends its own name and
 *    is refused (403);
 *  - a call that changes something (any method but GET/HEAD) must come from the same origin
 *    (or an allowed host) when it says where it comes from (Origin), must send its body as application/json (415
 *    otherwise), and must carry `Authorization: Bearer <token>` (401);
 *  - reads of a pipeline's configuration, offsets or tasks need the token too; the rest (/,
 *    /health, /metrics, statuses, plugins, the dashboard and its data) is open on loopback. On
 *    a non-loopback address, or with rest.token_for_reads, every read but /health and the
 *    dashboard's static files needs the token. */
#ifndef SL_HOST_AUTH_H
#define SL_HOST_AUTH_H

#include "http.h"

/** Sets the policy. `token` NULL means --no-auth (Kafka Connect's old behaviour). `listen` is
 *  the REST address ("HOST:PORT"). `allowed` (rest.allowed_hosts) are further names accepted in
 *  Host and Origin, e.g. the name a reverse proxy is reached by. Copies what it keeps. */
void auth_configure(const char *token, int token_for_reads, const char *listen, char *const *allowed, size_t nallowed);
void auth_shutdown(void);

/** True when `listen` ("HOST:PORT") is a loopback address. */
int auth_listen_is_loopback(const char *listen);

/** True when a token is required for changes (i.e. not --no-auth). */
int auth_enabled(void);

/** Checks one request; 1 to go on, 0 when it answered the request itself (403/415/401). */
int auth_check(const http_req *q, http_resp *r);

/* 1 when authentication is off or `q` carries the right bearer token. Open reads (status) use it
 * to leave out what may hold a secret: a failed pipeline's error text is written after `${VAR}`
 * interpolation. */
int auth_has_token(const http_req *q);

#endif
