/* lag.h — consumer lag of Kafka-fed pipelines, measured from outside like Burrow does.
 *
 * For every pipeline whose source is kafka-source, a background thread asks the brokers once a
 * second for each partition's end (high watermark) and the group's committed offset, with a
 * client of its own that never joins the group. Lag = end - committed (end - start of the log
 * when nothing is committed). This needs nothing from the stage, and it is the lag Kafka
 * tooling would report. The supervisor thread reads the results; the thread does the network. */
#ifndef SL_HOST_LAG_H
#define SL_HOST_LAG_H

#include <stddef.h>

#include "metrics.h"

/* What the lag watcher needs of a pipeline: its definition (the supervisor hands it over; lag
 * knows nothing of the supervisor). */
typedef struct lag_pipeline {
    const char *name;
    const char *file; /* for messages and relative paths */
    const char *def;  /* the definition text that runs */
    int untrusted;    /* written over REST: no ${VAR} expansion */
} lag_pipeline;

/** Tells the lag thread which pipelines to watch (started on first use); a pipeline left out
 *  keeps its watch until lag_forget. Cheap; called every supervisor loop. */
void lag_update(const lag_pipeline *p, size_t n);
/** Total lag over the pipeline's partitions and their number; -1 when unknown (not Kafka-fed,
 *  or no answer from the brokers yet). */
int lag_total(const char *pipeline, double *lag, int *partitions);
/** Adds sluice_consumer_lag{pipeline,topic,partition} gauges. */
void lag_metrics(const char *pipeline, sl_metrics *m);
/** Lag per partition as a JSON array [{"topic","partition","lag","end","committed"}], or NULL. */
char *lag_json(const char *pipeline);
void lag_forget(const char *pipeline);
void lag_stop(void);

#endif
