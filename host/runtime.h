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

/** Async-signal-safe: ask the running pipeline to stop gracefully (drain, flush, commit). */
void runtime_request_stop(void);

/** The host API table handed to stages. */
extern const sl_api sl_host_api;

#endif
