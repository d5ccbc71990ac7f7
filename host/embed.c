/* embed.c — run one pipeline in this process (the child side of the supervisor, and what
 * benchmarks and in-process tests call). */
#include <stdio.h>

#include "config.h"
#include "loader.h"
#include "log.h"
#include "runtime.h"

int sl_run_pipeline_file(const char *path, const char *const *plugin_dirs, size_t ndirs, int status_fd)
{
    char err[4096];
    for (size_t i = 0; i < ndirs; i++) loader_add_dir(plugin_dirs[i]);
    loader_add_default_dirs();
    if (loader_scan(err, sizeof err) != 0) {
        fprintf(stderr, "sluice: plugin refused: %s\n", err);
        return SL_EXIT_CONFIG;
    }
    pipeline_cfg *p = pipeline_load(path, err, sizeof err);
    if (!p) {
        fprintf(stderr, "%s\n", err);
        return SL_EXIT_CONFIG;
    }
    sl_log_set_pipeline(p->name);
    int rc = runtime_run(p, status_fd);
    sl_log_set_pipeline(NULL);
    pipeline_free(p);
    return rc;
}
