/* sup_int.h — what the supervisor's files share (supervisor thread only).
 *
 * supervisor.c   the singleton and the loop (signals, status pipes, HTTP, inotify, reaping)
 * sup_children.c starting, reaping, restarting and signalling pipeline processes
 * sup_defs.c     definition files: checking, (re)loading, and the REST operations on them
 * sup_autoscale.c the task count from consumer lag and throughput
 * sup_metrics.c  the /metrics exposition */
#ifndef SL_HOST_SUP_INT_H
#define SL_HOST_SUP_INT_H

#include <stdlib.h>

#include "cfgpolicy.h"
#include "supervisor.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 60000     /* a child that ran this long resets its backoff */
#define STOP_GRACE_MS 60000 /* then SIGKILL */
#define RELOAD_DEBOUNCE_MS 200
#define MAX_STATUS_LINE (4 << 20)

/* The supervisor is a singleton: one per process, owned by supervisor_run. */
typedef struct sup_globals {
    const sup_options *o;
    sup_pipeline **p;
    size_t n;
    int stopping;
    char *pipeline_dir; /* realpath, or NULL */
    char *data_dir;     /* realpath of the directory REST pipelines' files stay in, or NULL */
    char worker_id[300];
} sup_globals;
extern sup_globals sup;

static inline cfg_policy sup_policy_for(int untrusted, const char *text)
{
    return (cfg_policy){.untrusted = untrusted, .data_dir = sup.data_dir, .text = text};
}

static inline void sup_set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? xstrdup(v) : NULL;
}

/* sup_children.c */
void sup_start_child(sup_pipeline *p);
/** Reads what the child wrote on its status pipe (closes it at EOF). */
void sup_read_status(sup_pipeline *p);
/** The child of p exited with wait status `status`: restart, back off, or leave it ended. */
void sup_reaped(sup_pipeline *p, int status);

/* sup_defs.c */
/** Brings the running set in line with the definition files (initial: any bad file fails). */
int sup_reload(int initial);
void sup_remove_pipeline(sup_pipeline *p);

#endif
