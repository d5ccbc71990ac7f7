#include "auth.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "../../plugins/common/sl_httpd.h"

static struct {
    char *token;          /* NULL: --no-auth */
    int token_for_reads;  /* every read but /health and /ui needs the token */
    char listen_host[256];
    int wildcard;         /* bound to 0.0.0.0: any of this machine's addresses */
    char hostname[256];   /* gethostname(), accepted as Host on a wildcard bind */
    char **allowed;       /* rest.allowed_hosts */
    size_t nallowed;
} A;

static int is_ipv4(const char *s)
{
    struct in_addr a;
    return inet_pton(AF_INET, s, &a) == 1;
}

/* localhost, 127.0.0.0/8, ::1 (Host names compare case-insensitively). */
static int is_loopback_name(const char *h)
{
    struct in_addr a;
    if (!strcasecmp(h, "localhost") || !strcmp(h, "::1") || !strcmp(h, "[::1]")) return 1;
    return inet_pton(AF_INET, h, &a) == 1 && (ntohl(a.s_addr) >> 24) == 127;
}

/* The host part of "HOST:PORT" / "[V6]:PORT" / "HOST" into out; 0 when malformed. */
static int host_part(const char *hp, char *out, size_t outlen)
{
    size_t l;
    if (hp[0] == '[') {
        const char *e = strchr(hp, ']');
        if (!e || (e[1] && e[1] != ':')) return 0;
        l = (size_t)(e - hp + 1);
    } else {
        const char *c = strchr(hp, ':');
        if (c && strchr(c + 1, ':')) return 0;
        l = c ? (size_t)(c - hp) : strlen(hp);
    }
    if (!l || l >= outlen) return 0;
    /* After the name only ":PORT" may follow: "127.0.0.1:8083, evil.example" is not a Host. */
    const char *port = hp + l;
    if (*port && (*port++ != ':' || !*port || strspn(port, "0123456789") != strlen(port))) return 0;
    memcpy(out, hp, l);
    out[l] = 0;
    return 1;
}

int auth_listen_is_loopback(const char *listen)
{
    char h[256];
    const char *colon = strrchr(listen, ':');
    size_t l = colon ? (size_t)(colon - listen) : strlen(listen);
    if (l >= sizeof h) return 0;
    memcpy(h, listen, l);
    h[l] = 0;
    return is_loopback_name(h);
}

void auth_configure(const char *token, int token_for_reads, const char *listen, char *const *allowed, size_t nallowed)
{
    auth_shutdown();
    A.allowed = xcalloc(nallowed ? nallowed : 1, sizeof *A.allowed);
    for (size_t i = 0; i < nallowed; i++) A.allowed[A.nallowed++] = xstrdup(allowed[i]);
    A.token = token ? xstrdup(token) : NULL;
    A.token_for_reads = token_for_reads;
    const char *colon = listen ? strrchr(listen, ':') : NULL;
    if (colon && (size_t)(colon - listen) < sizeof A.listen_host) {
        memcpy(A.listen_host, listen, (size_t)(colon - listen));
        A.listen_host[colon - listen] = 0;
    }
    A.wildcard = !strcmp(A.listen_host, "0.0.0.0");
    /* Reads are open only where only this machine can reach them. */
    if (listen && !auth_listen_is_loopback(listen)) A.token_for_reads = 1;
    if (gethostname(A.hostname, sizeof A.hostname - 1) != 0) A.hostname[0] = 0;
}

void auth_shutdown(void)
{
    free(A.token);
    for (size_t i = 0; i < A.nallowed; i++) free(A.allowed[i]);
    free(A.allowed);
    memset(&A, 0, sizeof A);
}

int auth_enabled(void) { return A.token != NULL; }

static int listed(const char *name)
{
    for (size_t i = 0; i < A.nallowed; i++)
        if (!strcasecmp(name, A.allowed[i])) return 1;
    return 0;
}

static int host_allowed(const char *name)
{
    if (is_loopback_name(name) || !strcasecmp(name, A.listen_host) || listed(name)) return 1;
    return A.wildcard && (is_ipv4(name) || (A.hostname[0] && !strcasecmp(name, A.hostname)));
}

/* "/connectors/NAME/status" and "/connectors/NAME/tasks/N/status": split as the router does. */
static int is_status_path(const char *path)
{
    if (strncmp(path, "/connectors/", 12)) return 0;
    const char *rest = strchr(path + 12, '/');
    if (!rest || rest == path + 12) return 0;
    if (!strcmp(rest, "/status")) return 1;
    if (strncmp(rest, "/tasks/", 7)) return 0;
    const char *d = rest + 7;
    while (*d >= '0' && *d <= '9') d++;
    return d > rest + 7 && !strcmp(d, "/status");
}

/* Reads open without the token: an allow-list, so a route added later is protected until it
 * is listed here. A pipeline's configuration (GET /connectors/NAME, …/config, ?expand=info),
 * offsets and tasks are never on it. */
static int open_read(const http_req *q)
{
    const char *p = q->path;
    if (!strcmp(p, "/health") || !strcmp(p, "/ui") || !strncmp(p, "/ui/", 4)) return 1;
    if (A.token_for_reads) return 0;
    if (!strcmp(p, "/") || !*p || !strcmp(p, "/metrics") || !strncmp(p, "/api/", 5)) return 1;
    if (!strcmp(p, "/connector-plugins") || !strncmp(p, "/connector-plugins/", 19)) return 1;
    if (!strcmp(p, "/connectors") || !strcmp(p, "/connectors/")) return !http_query_has(q, "expand", "info");
    return is_status_path(p);
}

/* "application/json", optionally with parameters ("; charset=utf-8"). */
static int is_json_type(const char *ct)
{
    while (*ct == ' ' || *ct == '\t') ct++;
    if (strncasecmp(ct, "application/json", 16)) return 0;
    ct += 16;
    while (*ct == ' ' || *ct == '\t') ct++;
    return !*ct || *ct == ';';
}

int auth_has_token(const http_req *q)
{
    if (!A.token) return 1;
    return sl_bearer_ok(http_header(q, "Authorization"), A.token);
}

int auth_check(const http_req *q, http_resp *r)
{
    /* DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 still sends
     * Host: evil.example. The port is not compared, so an ssh tunnel on another port works. */
    const char *host = http_header(q, "Host");
    char name[256];
    int is_read = !strcmp(q->method, "GET") || !strcmp(q->method, "HEAD");
    /* Load-balancer probes may send no Host (HTTP/1.0) or an internal name; /health says
     * nothing worth rebinding for. */
    if (is_read && !strcmp(q->path, "/health")) return 1;
    if (!host || !*host) {
        http_error(r, 403, "a Host header is required");
        return 0;
    }
    if (!host_part(host, name, sizeof name) || !host_allowed(name)) {
        http_error(r, 403, "Host '%s' is not this server (use 127.0.0.1, localhost or the listen address)", host);
        return 0;
    }
    if (!is_read) {
        /* CSRF: a browser names the page that sent a cross-site request; only the dashboard
         * (same origin) may change things. */
        const char *origin = http_header(q, "Origin");
        if (origin) {
            const char *o = !strncasecmp(origin, "http://", 7) ? origin + 7 : !strncasecmp(origin, "https://", 8) ? origin + 8 : NULL;
            char oname[256];
            /* Same origin, or a listed name (a reverse proxy that rewrites Host). */
            if (!o || (strcasecmp(o, host) && !(host_part(o, oname, sizeof oname) && listed(oname)))) {
                http_error(r, 403, "cross-origin request refused (Origin %s is not %s)", origin, host);
                return 0;
            }
        }
    }
    if (A.token && !(is_read && open_read(q))) {
        const char *h = http_header(q, "Authorization");
        if (!auth_has_token(q)) {
            http_error(r, 401, h ? "invalid bearer token"
                                 : "this request needs 'Authorization: Bearer <token>' (the token is in STATE_DIR/rest.token; see docs/rest-api.md)");
            r->want_auth = 1;
            return 0;
        }
    }
    if (!is_read) {
        /* A body must be JSON: HTML forms and no-preflight fetches can only send text/plain,
         * form or multipart bodies. A body-less call (PUT …/pause) may omit the type. */
        const char *ct = http_header(q, "Content-Type");
        if ((ct || q->body_len) && !(ct && is_json_type(ct))) {
            http_error(r, 415, "Content-Type must be application/json (got %s)", ct ? ct : "none");
            return 0;
        }
    }
    return 1;
}
