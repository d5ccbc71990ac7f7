/* cli_http.c — REST client helpers for `sluice tap` and `sluice top` (see cli_http.h). */
#include "cli_http.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "state.h"

int cli_conn_init(cli_conn *c, const char *rest, const char *state_dir)
{
    memset(c, 0, sizeof *c);
    const char *env = getenv("SLUICE_REST_LISTEN");
    if (!rest && env && *env && !strstr(env, ":0")) rest = env;
    if (!rest) rest = "127.0.0.1:8083";
    if (!strncmp(rest, "http://", 7)) rest += 7;
    snprintf(c->base, sizeof c->base, "http://%s", rest);
    size_t l = strlen(c->base);
    while (l > 7 && c->base[l - 1] == '/') c->base[--l] = 0;
    const char *tok = getenv("SLUICE_REST_TOKEN");
    char *owned = NULL;
    if (!tok || !*tok) {
        char err[512], *dir = state_dir_open(state_dir, err, sizeof err);
        const char *from;
        if (!dir) {
            fprintf(stderr, "sluice: state directory: %s\n", err);
            return -1;
        }
        owned = state_token(dir, NULL, &from, err, sizeof err);
        free(dir);
        if (!owned) {
            fprintf(stderr, "sluice: REST token: %s\n", err);
            return -1;
        }
        tok = owned;
    }
    snprintf(c->auth, sizeof c->auth, "Authorization: Bearer %s", tok);
    free(owned);
    return 0;
}

static size_t collect(char *p, size_t size, size_t n, void *arg)
{
    buf_put(arg, p, size * n);
    return size * n;
}

long cli_request(const cli_conn *c, const char *method, const char *path, const char *body, sl_buf *out)
{
    CURL *h = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    struct curl_slist *hd = curl_slist_append(NULL, c->auth);
    if (body) hd = curl_slist_append(hd, "Content-Type: application/json");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    if (body) curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    long status = -1;
    CURLcode rc = curl_easy_perform(h);
    if (rc == CURLE_OK) curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    else buf_printf(out, "%s: %s", url, curl_easy_strerror(rc));
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    return status;
}

/* "event: X" / "data: Y" lines, an empty line ends an event (the SSE format; comments start
 * with ':'). */
static void parse(cli_sse *s)
{
    char *start = s->pending.data;
    size_t len = s->pending.len;
    for (;;) {
        char *end = NULL;
        for (size_t i = 0; i + 1 < len; i++)
            if (start[i] == '\n' && start[i + 1] == '\n') {
                end = start + i;
                break;
            }
        if (!end) break;
        *end = 0;
        char event[64] = "message";
        sl_buf data = {0};
        for (char *line = start; line && *line;) {
            char *nl = strchr(line, '\n');
            if (nl) *nl = 0;
            if (!strncmp(line, "event:", 6)) snprintf(event, sizeof event, "%s", line + 6 + (line[6] == ' '));
            else if (!strncmp(line, "data:", 5)) {
                if (data.len) buf_puts(&data, "\n");
                buf_puts(&data, line + 5 + (line[5] == ' '));
            }
            line = nl ? nl + 1 : NULL;
        }
        if (data.len && !s->stop && s->fn(event, buf_cstr(&data), s->arg)) s->stop = 1;
        buf_free(&data);
        len -= (size_t)(end + 2 - start);
        start = end + 2;
    }
    memmove(s->pending.data, start, len);
    s->pending.len = len;
}

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    cli_sse *s = arg;
    if (!s->status) s->status = 1; /* set properly by the header callback */
    if (s->status != 200) {
        buf_put(&s->error, p, size * n);
        return size * n;
    }
    buf_put(&s->pending, p, size * n);
    parse(s);
    return s->stop ? 0 : size * n; /* 0 makes curl end the transfer */
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    cli_sse *s = arg;
    if (n * size > 9 && !strncmp(p, "HTTP/", 5)) {
        const char *sp = strchr(p, ' ');
        if (sp) s->status = strtol(sp + 1, NULL, 10);
    }
    return size * n;
}

CURL *cli_sse_handle(const cli_conn *c, const char *path, cli_sse *s, struct curl_slist **hdrs)
{
    CURL *h = curl_easy_init();
    char url[1024];
    snprintf(url, sizeof url, "%s%s", c->base, path);
    *hdrs = curl_slist_append(NULL, c->auth);
    *hdrs = curl_slist_append(*hdrs, "Accept: text/event-stream");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    return h;
}

void cli_print_error(const char *what, long status, const sl_buf *body)
{
    cJSON *j = body->len ? cJSON_ParseWithLength(body->data, body->len) : NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(j, "message");
    if (status < 0) fprintf(stderr, "sluice: %s: cannot reach sluice: %.*s\n", what, (int)body->len, body->data ? body->data : "");
    else fprintf(stderr, "sluice: %s: HTTP %ld: %s\n", what, status,
                 cJSON_IsString(m) ? m->valuestring : "(no message)");
    cJSON_Delete(j);
}
