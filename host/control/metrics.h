/* metrics.h — Prometheus text exposition of what the pipelines report.
 *
 * A metric set is a flat list of series ("family{labels}" → value). Children report cumulative
 * counts that restart from zero with every child process, so the supervisor keeps, per
 * pipeline, a base set: when a child exits its last counters are added to the base, and
 * GET /metrics shows base + the running child's counters. That way counters never go backwards
 * across restarts, reloads and rescaling. */
#ifndef SL_HOST_METRICS_H
#define SL_HOST_METRICS_H

#include <stddef.h>

#include "util.h"

typedef struct sl_series {
    char *family; /* e.g. "sluice_records_in_total" (histograms: the base name) */
    char *series; /* full series text without the value: name{labels} */
    double value;
} sl_series;

typedef struct sl_metrics {
    sl_series *v;
    size_t n, cap;
    struct sl_series_idx *index; /* series text -> position in v (a scrape adds thousands) */
} sl_metrics;

/** Adds v to the series (created at the end when new). */
void metrics_add(sl_metrics *m, const char *family, const char *series, double v);
/** Adds every series of `from` into `into`. */
void metrics_merge(sl_metrics *into, const sl_metrics *from);
void metrics_free(sl_metrics *m);

struct cJSON;
/** The cumulative series (counters, histograms) of one parsed child status line. */
void metrics_from_status(const struct cJSON *st, sl_metrics *out);

/** Renders the set grouped by family (first-seen order) with # HELP and # TYPE lines. */
void metrics_render(const sl_metrics *m, sl_buf *out);

/** Appends `"value"` escaped for a Prometheus label value (quotes included). */
void metrics_label(sl_buf *b, const char *value);

#endif
