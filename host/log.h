/* log.h — one logfmt-like line per event on stderr: ts=… level=… pipeline=… stage=… msg="…". */
#ifndef SL_HOST_LOG_H
#define SL_HOST_LOG_H

#include <stdarg.h>

#include "sluice/stage.h"

/** Minimum level printed (SLUICE_LOG_LEVEL=debug|info|warn|error; default info). */
void sl_log_init(void);
/** Process-wide context printed on every line (e.g. pipeline name in a child); may be NULL. */
void sl_log_set_pipeline(const char *pipeline);
void sl_logv(sl_log_level level, const char *pipeline, int task, const char *stage, const char *fmt,
             va_list ap);
void sl_log(sl_log_level level, const char *stage, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_info(...) sl_log(SL_LOG_INFO, NULL, __VA_ARGS__)
#define log_warn(...) sl_log(SL_LOG_WARN, NULL, __VA_ARGS__)
#define log_error(...) sl_log(SL_LOG_ERROR, NULL, __VA_ARGS__)
#define log_debug(...) sl_log(SL_LOG_DEBUG, NULL, __VA_ARGS__)

#endif
