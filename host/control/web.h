/* web.h — the web dashboard's side of the supervisor's HTTP server: its static files under
 * /ui/ and a small read-only data API (/api/config, /api/queries, /api/query/{name}) that runs
 * named, parameterised SQL from the host config on a PostgreSQL connection the supervisor keeps.
 * The browser only ever picks a query by name and passes parameter values; SQL text never
 * comes from a request. */
#ifndef SL_HOST_WEB_H
#define SL_HOST_WEB_H

#include "http.h"
#include "yamltree.h"

/** Reads the host config's `web:` map (root, generator_url, database, queries). Relative paths
 *  are taken from `dir`. Returns 0, or -1 with "file:line:col: message" in err. */
int web_configure(const ynode *web, const char *dir, char *err, size_t errlen);
/** Serves /ui/… and /api/…; returns 0 when the path is not one of them. */
int web_handle(const http_req *req, http_resp *resp);
/** Runs the named query of web.queries as GET /api/query/NAME does, with parameter values from
 *  get(arg, name) (NULL: the default), on the calling thread (it blocks on the database: a
 *  worker thread only). dry_run: only check the name and parameters. Returns the HTTP status;
 *  the answer, or the error in Kafka Connect's shape, is appended to out. */
int web_query_now(const char *name, const char *(*get)(void *, const char *), void *arg, int dry_run, sl_buf *out);
/** Frees the configuration and closes the database connection. */
void web_shutdown(void);

#endif
