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

/* Escape for logfmt: the message is always quoted, inner quotes and newlines escaped, so a
 * line stays one line whatever a stage logs. */
static size_t put_quoted(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    if (n < cap) out[n++] = '"';
    for (; *s && n + 3 < cap; s++) {
        if (*s == '"' || *s == '\\') { out[n++] = '\\'; out[n++] = *s; }
        else if (*s == '\n') { out[n++] = '\\'; out[n++] = 'n'; }
        else if ((unsigned char)*s < 0x20) out[n++] = ' ';
        else out[n++] = *s;
    }
    if (n < cap) out[n++] = '"';
    return n;
}

void sl_logv(sl_log_level level, const char *pipeline, int task, const char *stage, const char *fmt,
             va_list ap)
{
    if (level < min_level)
        return;
    char msg[2048], line[4096];
    vsnprintf(msg, sizeof msg, fmt, ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000000, level_names[level]);
    if (!pipeline)
        pipeline = proc_pipeline;
    if (pipeline)
        n += snprintf(line + n, sizeof line - (size_t)n, " pipeline=%s", pipeline);
    if (task >= 0)
        n += snprintf(line + n, sizeof line - (size_t)n, " task=%d", task);
    if (stage)
        n += snprintf(line + n, sizeof line - (size_t)n, " stage=%s", stage);
    n += snprintf(line + n, sizeof line - (size_t)n, " msg=");
    n += (int)put_quoted(line + n, sizeof line - (size_t)n - 2, msg);
    line[n++] = '\n';
    /* One fwrite per line: stderr is unbuffered, so lines from threads do not interleave. */
    fwrite(line, 1, (size_t)n, stderr);
}

void sl_log(sl_log_level level, const char *stage, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sl_logv(level, NULL, -1, stage, fmt, ap);
    va_end(ap);
}
