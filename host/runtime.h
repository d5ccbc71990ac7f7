/* runtime.h — runs one pipeline in this process: its tasks (threads), each a chain of stage
 * instances driven in batches, with acknowledgements, retries and the dead-letter sink. */
#ifndef SL_HOST_RUNTIME_H
#define SL_HOST_RUNTIME_H

#include "config.h"

/** Exit codes, as the CLI uses them. */
enum { SL_EXIT_OK = 0, SL_EXIT_RUNTIME = 1, SL_EXIT_CONFIG = 2 };

/** Runs the pipeline until its source is exhausted, a stage fails, or runtime_request_stop().
 *  status_fd >= 0: one JSON status line per second is written there (for the supervisor).
 *  Returns an SL_EXIT_* code. */
int runtime_run(pipeline_cfg *cfg, int status_fd);

/** The supervisor's control pipe (read end; made non-blocking): 'P' pauses the sources, 'R'
 *  resumes them. Call before runtime_run; -1 (the default) means none. */
void runtime_set_control_fd(int fd);

/** Async-signal-safe: ask the running pipeline to stop gracefully (drain, flush, commit). */
void runtime_request_stop(void);

/** The host API table handed to stages. */
extern const sl_api sl_host_api;

/** Loads plugins (the given dirs, then the defaults), checks `path` and runs that pipeline in
 *  this process, as `sluice __pipeline` does; for benchmarks and in-process tests. status_fd
 *  as for runtime_run. Returns an SL_EXIT_* code; config errors are printed to stderr. */
int sl_run_pipeline_file(const char *path, const char *const *plugin_dirs, size_t ndirs, int status_fd);

#endif
