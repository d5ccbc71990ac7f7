/* sse_kpi.h — the dashboard's KPI queries pushed over the live stream:
 * GET /api/live?query=headline,distinct_users:5,series_1m&points=60 sends `event: query` with the
 * answer of each named query (web.queries, as GET /api/query/NAME gives it) every `every`
 * seconds (default 1, at most 60; "NAME:N": that query every N seconds). Parameters are the
 * other query-string arguments, shared by the queries of the stream. The queries run on one worker thread, never on the supervisor's; a
 * query wanted by several streams with the same parameters runs once per period for all. */
#ifndef SL_HOST_SSE_KPI_H
#define SL_HOST_SSE_KPI_H

#include "http.h"
#include "sse.h"

typedef struct kpi_sub kpi_sub;

/** Checks the request's queries and parameters; NULL with an HTTP status and message when one
 *  is unknown or lacks a parameter. Call kpi_attach once the stream is open. */
kpi_sub *kpi_open(const http_req *q, int *status, char *err, size_t errlen);
void kpi_attach(kpi_sub *s, sse_client *c);
/** The stream ended. */
void kpi_close(kpi_sub *s);

#endif
