/*
 * sl_duration.h — the one duration syntax of sluice: "1500ms", "30s", "5m", "2h", "1d", sums
 * like "1h30m", and a bare number, which is milliseconds. The host's config loader
 * (sl_parse_duration, api->parse_duration) and sluice-gen read durations with it. Header-only
 * and free of host symbols.
 */
#ifndef SL_DURATION_H
#define SL_DURATION_H

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* 0 and *ms set, or -1 when `text` is not a duration (negative, signed, unknown unit, "1h30"). */
static inline int sl_duration_ms(const char *text, int64_t *ms)
{
    static const struct { const char *u; double f; } units[] = {
        {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000},
    };
    const char *p = text;
    double total = 0;
    int parts = 0;
    while (*p == ' ') p++;
    if (!*p) return -1;
    while (*p && *p != ' ') {
        char *end;
        errno = 0;
        double v = strtod(p, &end);
        if (end == p || errno || !isfinite(v) || v < 0 || *p == '+' || *p == '-') return -1;
        p = end;
        if (!*p || *p == ' ') {
            if (parts) return -1; /* "1h30" is ambiguous */
            total += v;
            parts++;
            break;
        }
        size_t ul = 0;
        while (isalpha((unsigned char)p[ul])) ul++;
        double f = -1;
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
            if (strlen(units[i].u) == ul && strncmp(p, units[i].u, ul) == 0) f = units[i].f;
        if (f < 0) return -1;
        total += v * f;
        parts++;
        p += ul;
    }
    while (*p == ' ') p++;
    if (*p || total > 9.2e18) return -1;
    *ms = (int64_t)llround(total);
    return 0;
}

#endif
