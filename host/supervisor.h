/* supervisor.h — runs each pipeline in its own child process and keeps it running.
 *
 * The parent never loads a stage into its own address space for running (only for checking
 * configs), so a crashing stage takes down only its pipeline's child. Each child writes one
 * JSON status line per second to a pipe; the supervisor keeps the latest per pipeline, which
 * is what a REST API and /metrics will serve. */
#ifndef SL_HOST_SUPERVISOR_H
#define SL_HOST_SUPERVISOR_H

#include <stddef.h>
#include <sys/types.h>

typedef struct sup_pipeline {
    char *name;
    char *file;
    pid_t pid;            /* 0 when not running */
    int status_fd;        /* read end of the child's status pipe, -1 when none */
    char *last_status;    /* latest JSON status line from the child */
    char linebuf[65536];
    size_t linelen;
    int restarts;
    long long next_start_ms; /* when to (re)start, monotonic; 0 = now */
    long long started_ms;
    enum { SUP_RUNNING, SUP_WAITING, SUP_FINISHED, SUP_FAILED } state;
    int last_exit;        /* exit code, or 128+signal */
} sup_pipeline;

/** Runs the pipelines until all have finished or the supervisor is told to stop (SIGTERM,
 *  SIGINT). `exe` is the sluice binary the children are started from. Returns the exit code. */
int supervisor_run(sup_pipeline *p, size_t n, const char *exe);

#endif
