/*
 * sl_httpd.h — what every libmicrohttpd server in sluice does the same way: collect a request
 * body up to a cap (answer 413 past it, after reading the rest) and check a bearer token.
 * Header-only and free of host symbols, so the host (host/control/http.c, auth.c), http-source
 * (listen.c) and sluice-gen (service.c) compile the same code.
 */
#ifndef SL_HTTPD_H
#define SL_HTTPD_H

#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A request body being received. Zero-initialise; data is NUL-terminated once non-NULL. */
typedef struct sl_body {
    char *data;
    size_t len, cap;
    int too_big; /* over the cap: answer 413 once the body is in (what came is dropped) */
} sl_body;

/* First call of the access handler (headers only): an announced body over the cap is refused
 * before a byte of it is kept. content_length: the header's value, or NULL. */
static inline void sl_body_begin(sl_body *b, const char *content_length, size_t max)
{
    if (content_length && strtoull(content_length, NULL, 10) > (unsigned long long)max) b->too_big = 1;
}

/* One chunk of the body. Past `max` bytes the body is dropped and only too_big stays: MHD must
 * still be given every chunk (*upload_size = 0) so the answer can be sent. 0, or -1 when out of
 * memory. */
static inline int sl_body_add(sl_body *b, const char *chunk, size_t n, size_t max)
{
    if (b->too_big) return 0;
    if (b->len + n > max) {
        b->too_big = 1;
        free(b->data);
        b->data = NULL;
        b->len = b->cap = 0;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        if (cap > max + 1) cap = max + 1;
        char *nb = (char *)realloc(b->data, cap);
        if (!nb) return -1;
        b->data = nb;
        b->cap = cap;
    }
    memcpy(b->data + b->len, chunk, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

static inline void sl_body_free(sl_body *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

/* 1 when `authorization` (the header's value, or NULL) is "Bearer <token>" ("bearer" in any
 * case, RFC 7235). Every byte of the token is compared, so the time taken does not reveal how
 * much of a guess was right. */
static inline int sl_bearer_ok(const char *authorization, const char *token)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0) return 0;
    const char *got = authorization + 7;
    size_t gl = strlen(got), wl = strlen(token);
    unsigned char diff = gl != wl;
    for (size_t i = 0; i < wl; i++) diff |= (unsigned char)(got[i < gl ? i : 0] ^ token[i]);
    return diff == 0;
}

#endif
