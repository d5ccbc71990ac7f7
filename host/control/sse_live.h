/* sse_live.h — GET /api/live: the dashboard's and `sluice top`'s live view, pushed once a second
 * as server-sent events instead of being polled.
 *
 * Each `status` event carries every pipeline's state, tasks, restarts, consumer lag and, per
 * stage, the totals and the rates over the last 3 seconds (records in/out/rejected per second),
 * the p99 of its batch time and how busy it was (share of the tasks' time spent in the stage):
 * the busiest stage is the one holding the pipeline back (the chain is synchronous, so a slow
 * stage backpressures its source). It shows what the open reads show (GET /connectors?expand=
 * status, /metrics): open on loopback, behind the token where reads need it; failure traces
 * only with the token. */
#ifndef SL_HOST_SSE_LIVE_H
#define SL_HOST_SSE_LIVE_H

#include "http.h"

/** Serves GET /api/live; 0 when the path is another. Runs after auth_check. */
int live_route(const http_req *q, http_resp *r);

#endif
