/* rest_int.h — what the REST API's files share (supervisor thread only).
 *
 * rest.c            route table, dispatch, /, /health, /metrics, responses, JSON bodies
 * rest_connectors.c /connectors: pipelines in Kafka Connect's shapes
 * rest_plugins.c    /connector-plugins: stages, their config tables, validation
 * auth.c            the token and cross-site checks every request passes first */
#ifndef SL_HOST_REST_INT_H
#define SL_HOST_REST_INT_H

#include <cjson/cJSON.h>

#include "http.h"

/** Kafka Connect's error shape: {"error_code": N, "message": "…"}. */
void rest_error(http_resp *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/** Answers j (taken over) as JSON. */
void rest_json_reply(http_resp *r, int status, cJSON *j);
/** The request body, which must be a JSON object; NULL after answering 400 itself. */
cJSON *rest_body_object(const http_req *q, http_resp *r);
/** j as YAML text (JSON is YAML's flow style), the form definitions are stored in. */
void rest_yaml_of(const cJSON *j, sl_buf *out);

/* A resource's handler; `rest` is what follows the route's path ("" or "/…"). */
void rest_connectors_route(const http_req *q, http_resp *r, const char *rest);
void rest_plugins_route(const http_req *q, http_resp *r, const char *rest);

#endif
