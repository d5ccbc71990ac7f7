/* sl_base64.h — standard base64 (RFC 4648, with padding) for binary state carried in JSON text
 * (window-kpi's distinct-user sketch). Header-only and private to plugins/. */
#ifndef SL_PLUGINS_BASE64_H
#define SL_PLUGINS_BASE64_H

#include <stddef.h>
#include <stdint.h>

/* Encodes n bytes into out (room for 4 * ((n + 2) / 3) + 1 bytes); returns the length. */
static inline size_t sl_base64_encode(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < n ? (uint32_t)in[i + 1] << 8 : 0) | (i + 2 < n ? in[i + 2] : 0);
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
    return o;
}

static inline int sl_base64_val(char c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes exactly `want` bytes from the NUL-terminated `in` into out; 0, or -1 if `in` is not
 * the base64 of exactly `want` bytes. */
static inline int sl_base64_decode(const char *in, uint8_t *out, size_t want)
{
    size_t o = 0, i = 0;
    for (; in[i] && in[i + 1] && in[i + 2] && in[i + 3]; i += 4) {
        int a = sl_base64_val(in[i]), b = sl_base64_val(in[i + 1]);
        int c = in[i + 2] == '=' ? 0 : sl_base64_val(in[i + 2]), d = in[i + 3] == '=' ? 0 : sl_base64_val(in[i + 3]);
        if (a < 0 || b < 0 || c < 0 || d < 0) return -1;
        uint32_t v = (uint32_t)a << 18 | (uint32_t)b << 12 | (uint32_t)c << 6 | (uint32_t)d;
        size_t k = in[i + 2] == '=' ? 1 : in[i + 3] == '=' ? 2 : 3;
        if (o + k > want) return -1;
        out[o++] = (uint8_t)(v >> 16);
        if (k > 1) out[o++] = (uint8_t)(v >> 8);
        if (k > 2) out[o++] = (uint8_t)v;
        if (k < 3 && in[i + 4]) return -1; /* padding only at the end */
    }
    return in[i] || o != want ? -1 : 0;
}

#endif
