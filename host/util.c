#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "../plugins/common/sl_duration.h"

/* Durations: a number with a unit (ms, s, m, h, d); a bare number means milliseconds.
 * Compound forms like "1h30m" are accepted, as Go and Kafka users expect. The parser is shared
 * with sluice-gen (plugins/common/sl_duration.h): one syntax, one meaning. */
sl_err sl_parse_duration(const char *text, int64_t *ms)
{
    return sl_duration_ms(text, ms) == 0 ? SL_OK : SL_EINVAL;
}

/* Sizes: B, kB/KB (1000), KiB (1024), MB/MiB, GB/GiB; a bare number is bytes. */
sl_err sl_parse_size(const char *text, int64_t *bytes)
{
    static const struct { const char *u; double f; } units[] = {
        {"", 1}, {"b", 1}, {"k", 1e3}, {"kb", 1e3}, {"kib", 1024.0}, {"m", 1e6}, {"mb", 1e6},
        {"mib", 1048576.0}, {"g", 1e9}, {"gb", 1e9}, {"gib", 1073741824.0},
    };
    char *end;
    errno = 0;
    while (*text == ' ') text++;
    if (*text == '-' || *text == '+') return SL_EINVAL;
    double v = strtod(text, &end);
    if (end == text || errno || !isfinite(v) || v < 0) return SL_EINVAL;
    while (*end == ' ') end++;
    size_t ul = strlen(end);
    while (ul && end[ul - 1] == ' ') ul--;
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strlen(units[i].u) == ul && strncasecmp(end, units[i].u, ul) == 0) {
            double b = v * units[i].f;
            if (b > 9.2e18) return SL_EINVAL;
            *bytes = (int64_t)llround(b);
            return SL_OK;
        }
    }
    return SL_EINVAL;
}

int64_t sl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sl_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sl_sleep_ms(int64_t ms)
{
    if (ms <= 0) return;
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

int sl_edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64) return 99;
    int row[65];
    for (size_t j = 0; j <= lb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= la; i++) {
        int prev = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= lb; j++) {
            int cur = row[j];
            int sub = prev + (a[i - 1] != b[j - 1]);
            int del = row[j] + 1, ins = row[j - 1] + 1;
            row[j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            prev = cur;
        }
    }
    return row[lb];
}

static void oom(void)
{
    fputs("level=error msg=\"out of memory\"\n", stderr);
    abort();
}

void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}

void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom();
    return p;
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) oom();
    return p;
}

char *xstrdup(const char *s) { return xstrndup(s, strlen(s)); }

char *xstrndup(const char *s, size_t n)
{
    char *p = xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

char *xasprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    if (vasprintf(&s, fmt, ap) < 0) oom();
    va_end(ap);
    return s;
}

struct arena_chunk {
    struct arena_chunk *next;
    size_t cap;
    _Alignas(16) char data[];
};

#define ARENA_CHUNK (256u << 10)

void *arena_alloc(sl_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    while (!a->cur || a->used + n > a->cur->cap) {
        if (a->cur && a->cur->next) { /* reuse the next chunk kept from before a reset */
            a->cur = a->cur->next;
            a->used = 0;
            continue;
        }
        size_t cap = n > ARENA_CHUNK ? n : ARENA_CHUNK;
        struct arena_chunk *c = xmalloc(sizeof *c + cap);
        c->cap = cap;
        c->next = NULL;
        if (a->cur) a->cur->next = c;
        else a->head = c;
        a->cur = c;
        a->used = 0;
    }
    void *p = a->cur->data + a->used;
    a->used += n;
    return p;
}

char *arena_strdup(sl_arena *a, const char *s) { return s ? arena_memdup(a, s, strlen(s) + 1) : NULL; }

void *arena_memdup(sl_arena *a, const void *p, size_t n)
{
    void *d = arena_alloc(a, n);
    if (n) memcpy(d, p, n);
    return d;
}

int arena_owns(const sl_arena *a, const void *p)
{
    for (const struct arena_chunk *c = a->head; c; c = c->next)
        if ((const char *)p >= c->data && (const char *)p < c->data + c->cap) return 1;
    return 0;
}

void arena_reset(sl_arena *a)
{
    a->cur = a->head;
    a->used = 0;
}

void arena_free(sl_arena *a)
{
    for (struct arena_chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    a->head = a->cur = NULL;
    a->used = 0;
}

void buf_put(sl_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->len + n + 1) cap *= 2;
        b->data = xrealloc(b->data, cap);
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
}

void buf_puts(sl_buf *b, const char *s) { buf_put(b, s, strlen(s)); }

void buf_printf(sl_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = NULL;
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0) oom();
    buf_put(b, s, (size_t)n);
    free(s);
}

void buf_json_str(sl_buf *b, const char *s, size_t n)
{
    buf_put(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[8];
        if (c == '"' || c == '\\') { esc[0] = '\\'; esc[1] = (char)c; buf_put(b, esc, 2); }
        else if (c == '\n') buf_put(b, "\\n", 2);
        else if (c == '\r') buf_put(b, "\\r", 2);
        else if (c == '\t') buf_put(b, "\\t", 2);
        else if (c < 0x20) { snprintf(esc, sizeof esc, "\\u%04x", c); buf_put(b, esc, 6); }
        else buf_put(b, &s[i], 1);
    }
    buf_put(b, "\"", 1);
}

const char *buf_cstr(sl_buf *b)
{
    buf_put(b, "", 0);
    if (!b->data) return "";
    b->data[b->len] = 0;
    return b->data;
}

void buf_free(sl_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
