/* supervisor.h — runs each pipeline in its own child process and keeps it running.
 *
 * The parent never loads a stage into its own address space for running (only for checking
 * configs), so a crashing stage takes down only its pipeline's child. Each child writes one
 * JSON status line per second to a pipe (see write_status in status.c); the supervisor parses
 * each line once as it arrives, keeps the latest per pipeline (sup_status) and serves it over
 * REST and /metrics. A second pipe carries control
 * bytes to the child ('P' pause, 'R' resume).
 *
 * The supervisor's state has one thread: its loop polls the children's status pipes, the HTTP
 * server, inotify and signals, and REST handlers run on it and use the sup_* functions below
 * directly. Two kinds of helper threads exist and never touch that state: the lag watcher
 * (lag.c: broker round trips, results under its own lock) and REST jobs that answer slow
 * queries off the loop (http_resp.job in http.h: they get a copy of what they need). */
#ifndef SL_HOST_SUPERVISOR_H
#define SL_HOST_SUPERVISOR_H

#include <stddef.h>
#include <sys/types.h>

#include "metrics.h"
#include "util.h"

typedef enum sup_state {
    SUP_RUNNING,  /* a child runs it (it may be paused) */
    SUP_WAITING,  /* (re)start due at next_start_ms */
    SUP_FINISHED, /* its source ended (exit 0), or the supervisor is stopping */
    SUP_FAILED,   /* configuration error (exit 2): not restarted until asked */
    SUP_STOPPED   /* stopped over REST (PUT .../stop): not restarted until resumed */
} sup_state;

/* A topic partition as a status line names it (offset: the committed one, -1 when none). */
typedef struct sup_part {
    char *topic;
    int partition, task;
    long long offset;
} sup_part;

/* Consumer lag of one partition the child's tasks own (status "lag"). */
typedef struct sup_lag {
    char *topic;
    int partition;
    long long end;       /* the source's report (api->report_end_offsets) */
    long long committed; /* next offset to read after the last commit; -1 when none */
    long long lag;
} sup_lag;

typedef struct sup_stage_stat {
    char *name, *use;
    double in, out, rejected, dropped, retries; /* summed over tasks */
} sup_stage_stat;

/* A child's latest status line (the wire format of status.c), parsed once when it arrives. */
typedef struct sup_status {
    int valid;                /* a line arrived */
    char *state;              /* the child's view: RUNNING, PAUSED, STOPPED, FAILED; or NULL */
    int tasks;                /* -1 when the line does not say */
    char **task_states;
    size_t ntask_states;
    sup_stage_stat *stages;
    size_t nstages;
    sup_part *offsets;        /* last committed positions */
    size_t noffsets;
    sup_part *assigned;       /* partitions the tasks own now */
    int nassigned;            /* -1 when the line does not say */
    sup_lag *lag;             /* per partition whose end the source reports */
    int nlag;                 /* -1 when the line has no lag (an older child) */
    char *error;              /* the child's first error, or NULL */
    sl_metrics counters;      /* its cumulative series (metrics_from_status) */
    struct cJSON *json;       /* the whole line, parsed, for readers that need more (sse_live.c) */
} sup_status;

/** Parses one status line into *out (replacing what it held); -1 and *out untouched when the
 *  line is not a JSON object. */
int sup_status_parse(const char *line, sup_status *out);
void sup_status_free(sup_status *s);

typedef struct sup_pipeline {
    char *name;
    char *file;            /* absolute path of its definition */
    char *def;             /* the file's bytes when last accepted: a reload restarts on change */
    int editable;          /* lives in the REST pipeline directory: PUT/DELETE may change it */
    int untrusted;         /* written over REST: checked and run under the untrusted policy */
    pid_t pid;             /* 0 when not running */
    int status_fd, ctl_fd; /* -1 when none */
    sup_status status;     /* latest status of the current or last child */
    int status_folded;     /* status.counters are already in `base` */
    sl_buf line;           /* partial status line */
    int backoff_level;
    long long restarts;    /* starts after the first one */
    long long next_start_ms, started_ms;
    sup_state state;
    int last_exit;         /* exit code, or 128+signal */
    char *trace;           /* why it last failed, for GET .../status */
    char *reload_error;    /* a newer definition that was refused (the old one runs on) */
    int paused;            /* desired: sources paused */
    int restart_pending;   /* start again as soon as the child has exited */
    int deleting;          /* remove once the child has exited */
    int tasks_min, tasks_max, tasks; /* tasks: what the child runs (autoscaling moves it) */
    sl_metrics base;       /* counters of earlier children (see metrics.h) */
    /* autoscaling */
    long long scale_at_ms;      /* last scale decision or start */
    double lag_hist[8];         /* total lag samples, newest last */
    int nlag;
    long long last_in;          /* source output at the previous sample */
    double rate_hist[8];        /* records/s per task */
} sup_pipeline;

typedef struct sup_options {
    const char *exe;          /* the sluice binary children are started from */
    char **sources;           /* pipeline files and directories */
    size_t nsources;
    const char *pipeline_dir; /* REST-created pipelines are kept here (and it is watched) */
    const char *data_dir;     /* the only place paths of REST-created pipelines may name (NULL: none) */
    const char *rest_listen;  /* NULL: no REST server */
    size_t max_body;
    /* autoscaling: decide every `scale_interval_ms` from samples over `scale_window_ms` */
    long long scale_window_ms, scale_interval_ms;
    double scale_lag_low;     /* total lag at or below this counts as "near zero" */
} sup_options;

/** Checks every pipeline, then runs them until all have finished or the supervisor is told to
 *  stop (SIGTERM, SIGINT). SIGHUP and changes in watched directories reload definitions.
 *  Returns the exit code (2 when a definition is bad at start). */
int supervisor_run(const sup_options *o);

/* ---- for the REST API (supervisor thread only) ---------------------------------------- */

size_t sup_count(void);
sup_pipeline *sup_at(size_t i);                 /* includes deleting ones; check ->deleting */
sup_pipeline *sup_find(const char *name);       /* NULL when absent or being deleted */
const sup_options *sup_opts(void);
const char *sup_worker_id(void);                /* "127.0.0.1:8083" */
int sup_stopping(void);                         /* SIGTERM/SIGINT received: shutting down */
/** State as REST shows it: RUNNING, PAUSED, STOPPED, FAILED, RESTARTING, FINISHED. */
const char *sup_state_name(const sup_pipeline *p);
/** The policy REST-submitted text is checked under (untrusted, the data directory). */
const struct cfg_policy *sup_rest_policy(void);

/** Validates `yaml` as the definition of pipeline `name` (stages only by plugin name, never a
 *  path), persists it in the pipeline directory and starts it, or restarts it when it changed.
 *  Returns an HTTP status: 201 created, 200 updated, 400 invalid, 409 not editable or busy,
 *  500 no pipeline directory or I/O error; err says why. */
int sup_put(const char *name, const char *yaml, char *err, size_t errlen);
/** Checks a definition without applying it; 0 or an HTTP status with err. */
int sup_check(const char *name, const char *yaml, char *err, size_t errlen);
/** 204, or 409 when the pipeline is not defined in the pipeline directory. */
int sup_delete(sup_pipeline *p, char *err, size_t errlen);
void sup_pause(sup_pipeline *p);
void sup_resume(sup_pipeline *p);
void sup_stop(sup_pipeline *p);
void sup_restart(sup_pipeline *p);

/* ---- between supervisor.c and sup_metrics.c ------------------------------------------- */

/** Restarts a pipeline (SIGTERM: it drains and commits) or schedules its start. */
void sup_request_restart(sup_pipeline *p);
/** Once per loop turn: scale a pipeline's task count within tasks: {min, max}. */
void sup_autoscale(sup_pipeline *p, long long now);
void sup_metrics_free(void);

/** First line of every definition the REST API writes: such a file is untrusted, even after an
 *  edit by hand, so it never gains the operator's rights. */
#define SUP_REST_MARKER "# created over the sluice REST API"

/** Counts a REST request for /metrics. */
void sup_count_request(int status);
/** One pipeline's series (state, tasks, restarts, counters, lag, committed offsets) into m. */
void sup_pipeline_series(const sup_pipeline *p, sl_metrics *m);
/** The whole exposition (every pipeline's series plus supervisor gauges). */
void sup_metrics(sl_buf *out);

#endif
