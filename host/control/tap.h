/* tap.h — `sluice tap` in the supervisor: GET /connectors/NAME/tap streams (server-sent events)
 * a live sample of the records leaving a stage of a running pipeline, and with dead_letter=true
 * those it rejected, with the reasons.
 *
 * The route needs the REST token (it shows record contents; auth.c's allow-list of open reads
 * does not list it). While at least one client listens to a pipeline, the supervisor tells the
 * pipeline's process over the control pipe which stages to sample and how fast (the highest
 * rate any listener asked for); the samples come back on the status pipe as `{"tap":…}` lines
 * and are fanned out to the listeners (each at its own rate and limit). When the last listener
 * goes, the process is told to stop sampling: nothing is tapped when nobody listens. */
#ifndef SL_HOST_TAP_H
#define SL_HOST_TAP_H

#include "http.h"
#include "supervisor.h"

#define TAP_DEFAULT_RATE 10
#define TAP_MAX_RATE 1000

/** Serves GET /connectors/NAME/tap; 0 when the path is not a tap. Runs after auth_check. */
int tap_route(const http_req *q, http_resp *r);

/** A line from a pipeline's status pipe: 1 when it was a tap sample (handled here), 0 when it
 *  is a status line. */
int tap_status_line(sup_pipeline *p, const char *line);

/** The position of `stage` in the pipeline's chain (-1: none; the dead-letter sink is not in
 *  it); *nstages gets the chain's length and `names` the stage names, comma-separated. */
int tap_stage_index(const sup_pipeline *p, const char *stage, int *nstages, sl_buf *names);

/** A pipeline's process was (re)started: tell it what is being tapped. */
void tap_child_started(sup_pipeline *p);

#endif
