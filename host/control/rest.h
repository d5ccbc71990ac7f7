/* rest.h — the REST API (Kafka Connect's shapes and status codes), /metrics, and the web
 * dashboard's files and data API, all on the supervisor's HTTP server. See docs/rest-api.md. */
#ifndef SL_HOST_REST_H
#define SL_HOST_REST_H

#include "http.h"

/** The HTTP handler (arg unused). Runs on the supervisor thread. */
void rest_handle(void *arg, const http_req *req, http_resp *resp);

/** Converts a JSON value (cJSON text) to the YAML REST-created pipelines are persisted in (the
 *  JSON itself, indented: JSON is YAML's flow style). Returns 0, or -1 with err when the text is
 *  not JSON. */
int rest_json_to_yaml(const char *json, sl_buf *out, char *err, size_t errlen);

#endif
