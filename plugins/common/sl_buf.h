/* sl_buf.h — the built-in stages' one growable byte buffer and one JSON string escaper.
 *
 * The buffer keeps a NUL after its bytes (text built in it is a C string) and a sticky
 * out-of-memory flag, so a sequence of appends is checked once at the end. Header-only and
 * private to plugins/ (and tools/sluice-gen), so each plugin stays one self-contained .so. */
#ifndef SL_PLUGINS_BUF_H
#define SL_PLUGINS_BUF_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct sl_gbuf {
    char *p;
    size_t len, cap;
    bool oom; /* an append failed: the contents are incomplete */
} sl_gbuf;

/* Room for `more` bytes and the NUL; false (and oom set) when memory runs out. */
static inline bool sl_gbuf_reserve(sl_gbuf *b, size_t more)
{
    if (b->oom) return false;
    if (b->len + more + 1 <= b->cap) return true;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + more + 1) cap *= 2;
    char *p = (char *)realloc(b->p, cap);
    if (!p) {
        b->oom = true;
        return false;
    }
    b->p = p;
    b->cap = cap;
    return true;
}

static inline void sl_gbuf_put(sl_gbuf *b, const void *s, size_t n)
{
    if (!sl_gbuf_reserve(b, n)) return;
    if (n) memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static inline void sl_gbuf_puts(sl_gbuf *b, const char *s) { sl_gbuf_put(b, s, strlen(s)); }
static inline void sl_gbuf_putc(sl_gbuf *b, char c) { sl_gbuf_put(b, &c, 1); }

static inline void sl_gbuf_printf(sl_gbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static inline void sl_gbuf_printf(sl_gbuf *b, const char *fmt, ...)
{
    /* Straight into the free space; a second pass only when it did not fit. */
    if (!sl_gbuf_reserve(b, 64)) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->p[b->len] = '\0';
        return;
    }
    if ((size_t)n >= b->cap - b->len) {
        if (!sl_gbuf_reserve(b, (size_t)n)) {
            b->p[b->len] = '\0';
            return;
        }
        va_start(ap, fmt);
        vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
        va_end(ap);
    }
    b->len += (size_t)n;
}

/* Empties the buffer, keeping its memory (and clearing oom). */
static inline void sl_gbuf_reset(sl_gbuf *b)
{
    b->len = 0;
    b->oom = false;
    if (b->p) b->p[0] = '\0';
}

static inline void sl_gbuf_free(sl_gbuf *b)
{
    free(b->p);
    *b = (sl_gbuf){0};
}

/* Appends `s` (n bytes) as a JSON string, quotes included: '"', '\\' and control bytes are
 * escaped (\n, \r, \t by name). Bytes from 0x80 on pass as they are (UTF-8 text stays
 * readable) unless `ascii` is set, when they and DEL become \u00XX too (text that must be
 * valid JSON whatever bytes it holds, such as an error reason quoting its input). */
static inline void sl_gbuf_json_str(sl_gbuf *b, const char *s, size_t n, bool ascii)
{
    sl_gbuf_putc(b, '"');
    size_t run = 0; /* bytes [i - run, i) need no escape: copied in one go */
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        bool plain = c >= 0x20 && c != '"' && c != '\\' && !(ascii && c >= 0x7F);
        if (plain) {
            run++;
            continue;
        }
        sl_gbuf_put(b, s + i - run, run);
        run = 0;
        if (c == '"' || c == '\\') {
            char e[2] = {'\\', (char)c};
            sl_gbuf_put(b, e, 2);
        } else if (c == '\n') {
            sl_gbuf_put(b, "\\n", 2);
        } else if (c == '\r') {
            sl_gbuf_put(b, "\\r", 2);
        } else if (c == '\t') {
            sl_gbuf_put(b, "\\t", 2);
        } else {
            char e[8];
            snprintf(e, sizeof e, "\\u%04x", c);
            sl_gbuf_put(b, e, 6);
        }
    }
    sl_gbuf_put(b, s + n - run, run);
    sl_gbuf_putc(b, '"');
}

#endif
