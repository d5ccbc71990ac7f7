/*
 * sl_time.h — the built-in stages' clocks, and RFC 3339 timestamps <-> milliseconds since the
 * epoch, UTC, for years 1970..9999. Private to the built-in stages (and tools/sluice-gen);
 * header-only so each plugin stays one self-contained .so.
 */
#ifndef SL_TIME_H
#define SL_TIME_H

#include <stdint.h>
#include <time.h>

/* Monotonic ms, for intervals and deadlines, from any thread (inside a callback
 * api->monotonic_ms is the same clock). */
static inline int64_t sl_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The absolute time `ms` from now on `clock`, for pthread_cond_timedwait (a condition
 * variable's clock: CLOCK_REALTIME unless pthread_condattr_setclock changed it). */
static inline struct timespec sl_deadline_in(clockid_t clock, int64_t ms)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* Wall clock, ms since the epoch, from any thread (api->now_ms inside a callback). */
static inline int64_t sl_wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

enum {
    SL_TS_OK = 0,
    SL_TS_INVALID,     /* not RFC 3339 */
    SL_TS_NO_ZONE,     /* date and time but no Z / ±hh:mm */
    SL_TS_BEFORE_1970, /* before 1970-01-01T00:00:00Z */
    SL_TS_AFTER_9999   /* after 9999-12-31T23:59:59.999Z */
};

#define SL_TS_MAX_MS 253402300800000LL /* 10000-01-01T00:00:00Z */

/* Days since 1970-01-01 of a proleptic Gregorian date (the usual era-based formula). */
static inline int64_t sl_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static inline void sl_civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(yoe + era * 400 + (*m <= 2));
}

static inline int sl_ts_digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 1;
}

/* Parse "YYYY-MM-DDTHH:MM:SS[.fff…](Z|±hh:mm)" ('t'/'z'/' ' accepted as RFC 3339 allows).
 * Fractions beyond milliseconds are truncated. Returns SL_TS_*. */
static inline int sl_ts_parse(const char *s, int64_t *ms_out)
{
    int y, mo, d, h, mi, sec, ms = 0;
    int ny = 0;
    while (s[ny] >= '0' && s[ny] <= '9')
        ny++;
    if (ny > 4 && s[ny] == '-')
        return SL_TS_AFTER_9999; /* a five-digit year */
    if (s[0] == '-' && s[1] >= '0' && s[1] <= '9')
        return SL_TS_BEFORE_1970; /* a negative year */
    if (ny != 4 || !sl_ts_digits(s, 4, &y) || s[4] != '-' || !sl_ts_digits(s + 5, 2, &mo) ||
        s[7] != '-' || !sl_ts_digits(s + 8, 2, &d))
        return SL_TS_INVALID;
    if (s[10] != 'T' && s[10] != 't' && s[10] != ' ')
        return SL_TS_INVALID;
    const char *t = s + 11;
    if (!sl_ts_digits(t, 2, &h) || t[2] != ':' || !sl_ts_digits(t + 3, 2, &mi) || t[5] != ':' ||
        !sl_ts_digits(t + 6, 2, &sec))
        return SL_TS_INVALID;
    t += 8;
    if (*t == '.') {
        t++;
        int nd = 0;
        while (*t >= '0' && *t <= '9') {
            if (nd < 3)
                ms = ms * 10 + (*t - '0');
            nd++;
            t++;
        }
        if (!nd)
            return SL_TS_INVALID;
        for (; nd < 3; nd++)
            ms *= 10;
    }
    static const unsigned char mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap) ||
        h > 23 || mi > 59 || sec > 59)
        return SL_TS_INVALID;
    int off_min = 0;
    if (*t == 'Z' || *t == 'z') {
        t++;
    } else if (*t == '+' || *t == '-') {
        int oh, om;
        if (!sl_ts_digits(t + 1, 2, &oh) || t[3] != ':' || !sl_ts_digits(t + 4, 2, &om) ||
            oh > 23 || om > 59)
            return SL_TS_INVALID;
        off_min = (oh * 60 + om) * (*t == '-' ? -1 : 1);
        t += 6;
    } else if (*t == 0) {
        return SL_TS_NO_ZONE;
    } else {
        return SL_TS_INVALID;
    }
    if (*t)
        return SL_TS_INVALID;
    int64_t v = sl_days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400000LL +
                (int64_t)h * 3600000 + (int64_t)mi * 60000 + (int64_t)sec * 1000 + ms -
                (int64_t)off_min * 60000;
    if (v < 0)
        return SL_TS_BEFORE_1970;
    if (v >= SL_TS_MAX_MS)
        return SL_TS_AFTER_9999;
    *ms_out = v;
    return SL_TS_OK;
}

static inline char *sl_ts_put(char *p, unsigned v, int width)
{
    for (int i = width - 1; i >= 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    return p + width;
}

/* Format as "YYYY-MM-DDTHH:MM:SS.mmmZ" (with_ms) or "YYYY-MM-DDTHH:MM:SSZ" into buf (at
 * least 25 bytes), NUL-terminated; `ms` within 0..SL_TS_MAX_MS. Returns the length. */
static inline int sl_ts_format(int64_t ms, int with_ms, char *buf)
{
    int64_t days = ms / 86400000, rem = ms % 86400000;
    if (rem < 0) { /* before 1970: floor, not truncation */
        rem += 86400000;
        days--;
    }
    int y;
    unsigned m, d;
    sl_civil_from_days(days, &y, &m, &d);
    char *p = sl_ts_put(buf, (unsigned)y, 4);
    *p++ = '-';
    p = sl_ts_put(p, m, 2);
    *p++ = '-';
    p = sl_ts_put(p, d, 2);
    *p++ = 'T';
    p = sl_ts_put(p, (unsigned)(rem / 3600000), 2);
    *p++ = ':';
    p = sl_ts_put(p, (unsigned)(rem / 60000 % 60), 2);
    *p++ = ':';
    p = sl_ts_put(p, (unsigned)(rem / 1000 % 60), 2);
    if (with_ms) {
        *p++ = '.';
        p = sl_ts_put(p, (unsigned)(rem % 1000), 3);
    }
    *p++ = 'Z';
    *p = 0;
    return (int)(p - buf);
}

#endif
