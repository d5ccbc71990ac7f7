#include "log.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static sl_log_level min_level = SL_LOG_INFO;
static const char *proc_pipeline;
static const char *level_names[] = {"debug", "info", "warn", "error"};

void sl_log_init(void)
{
    const char *e = getenv("SLUICE_LOG_LEVEL");
    for (int i = 0; e && i < 4; i++)
        if (strcasecmp(e, level_names[i]) == 0)
            min_level = (sl_log_level)i;
}

void sl_log_set_pipeline(const char *pipeline) { proc_pipeline = pipeline; }

/* A line under construction: appends never run past the end, whatever the inputs (a 4 KB
 * stage name once overflowed the old buffer). */
typedef struct line_buf {
    char *p;
    size_t n, cap; /* cap excludes room kept for the closing '"' and '\n' */
} line_buf;

static void put(line_buf *l, const char *s, size_t len)
{
    if (l->n >= l->cap) return;
    if (len > l->cap - l->n) len = l->cap - l->n;
    memcpy(l->p + l->n, s, len);
    l->n += len;
}

/* A value in logfmt: bare when it is a plain token, else quoted with '"', '\' and every
 * control byte escaped, so no input (a name, a message, an error from a peer) can end the line
 * or forge a field. */
static void put_value(line_buf *l, const char *s, int always_quote)
{
    int bare = !always_quote && *s;
    for (const char *c = s; bare && *c; c++)
        bare = (unsigned char)*c > 0x20 && *c != '"' && *c != '\\' && *c != '=' && (unsigned char)*c != 0x7f;
    if (bare) {
        put(l, s, strlen(s));
        return;
    }
    put(l, "\"", 1);
    for (const unsigned char *c = (const unsigned char *)s; *c && l->n + 5 < l->cap; c++) {
        char esc[8];
        if (*c == '"' || *c == '\\') { esc[0] = '\\'; esc[1] = (char)*c; put(l, esc, 2); }
        else if (*c == '\n') put(l, "\\n", 2);
        else if (*c == '\r') put(l, "\\r", 2);
        else if (*c == '\t') put(l, "\\t", 2);
        else if (*c < 0x20 || *c == 0x7f) { snprintf(esc, sizeof esc, "\\x%02x", *c); put(l, esc, 4); }
        else put(l, (const char *)c, 1);
    }
    put(l, "\"", 1);
}

void sl_logv(sl_log_level level, const char *pipeline, int task, const char *stage, const char *fmt,
             va_list ap)
{
    if (level < min_level)
        return;
    char msg[2048], line[4096], head[96];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    line_buf l = {line, 0, sizeof line - 1}; /* room for the '\n' */
    snprintf(head, sizeof head, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000,
             level_names[level]);
    put(&l, head, strlen(head));
    if (!pipeline)
        pipeline = proc_pipeline;
    /* Names are clamped so the message always has room. */
    char clamp[160];
    if (pipeline) {
        snprintf(clamp, sizeof clamp, "%s", pipeline);
        put(&l, " pipeline=", 10);
        put_value(&l, clamp, 0);
    }
    if (task >= 0) {
        snprintf(head, sizeof head, " task=%d", task);
        put(&l, head, strlen(head));
    }
    if (stage) {
        snprintf(clamp, sizeof clamp, "%s", stage);
        put(&l, " stage=", 7);
        put_value(&l, clamp, 0);
    }
    put(&l, " msg=", 5);
    put_value(&l, msg, 1);
    line[l.n++] = '\n';
    /* One fwrite per line: stderr is unbuffered, so lines from threads do not interleave. */
    fwrite(line, 1, l.n, stderr);
}

void sl_log(sl_log_level level, const char *stage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_logv(level, NULL, -1, stage, fmt, ap);
    va_end(ap);
}
