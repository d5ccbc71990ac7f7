/* config.h — pipeline files: load, check every stage's `with:` against its schema table, and
 * build the typed config structs the stages receive. Errors name file:line:column. */
#ifndef SL_HOST_CONFIG_H
#define SL_HOST_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "cfgpolicy.h"
#include "loader.h"
#include "util.h"
#include "yamltree.h"

typedef struct stage_cfg {
    char *name;               /* the stage's name in the pipeline */
    const sl_plugin *plugin;
    void *config;             /* typed struct of plugin->desc->config_size bytes */
    sl_arena arena;           /* strings and arrays the typed struct points into */
    int line, col;
} stage_cfg;

typedef struct pipeline_cfg {
    char *name;
    char *file;   /* as given */
    char *dir;    /* directory of the file, for relative paths in stage configs */
    int tasks_min, tasks_max;
    int batch_size;
    int64_t commit_interval_ms;
    stage_cfg *stages;
    size_t nstages;
    stage_cfg *dead_letter; /* NULL when none */
    int errors_tolerance_all; /* errors: {tolerance: all}: records nobody can take are dropped */
    ytree *tree;
    cfg_policy policy;      /* who wrote it (text not kept; data_dir borrowed) */
} pipeline_cfg;

/** Loads and fully checks one pipeline file (plugins must be scanned first). NULL with
 *  "file:line:col: message" in err. */
pipeline_cfg *pipeline_load(const char *path, char *err, size_t errlen);
/** Same, under an explicit policy (pipeline_load uses cfg_policy_default()): the text to check
 *  (NULL: read `path`), untrusted or not, the data directory. */
pipeline_cfg *pipeline_load_ex(const char *path, const cfg_policy *pol, char *err, size_t errlen);
void pipeline_free(pipeline_cfg *p);

/** Checks `with` (a map node, or NULL for none) against the stage's table and builds the typed
 *  struct in `arena`. `who` is used in messages ("stage 'raw' (kafka-source)"). `at` is the
 *  node errors about missing keys point at. */
int stage_config_build(const sl_stage_desc *d, const ynode *with, const ynode *at, const char *who,
                       sl_arena *arena, void **out, char *err, size_t errlen);
/** Same under a policy (NULL: trusted); `dir` is where relative paths of trusted pipelines
 *  resolve (NULL: left relative). */
int stage_config_build_ex(const sl_stage_desc *d, const ynode *with, const ynode *at, const char *who,
                          const cfg_policy *pol, const char *dir, sl_arena *arena, void **out, char *err,
                          size_t errlen);

/** Runs the stage's check callback (ABI 1.4; none: 0) on a config stage_config_build_ex made.
 *  On failure -1 with "file:line:col: who: why" in err, the position that of the node
 *  the stage's JSON Pointer names inside `with` (else `with`, else `at`); `where` (may be NULL)
 *  gets the pointer. `dir`: the pipeline file's directory, NULL when there is none. */
int stage_config_check(const sl_stage_desc *d, const void *config, const ynode *with, const ynode *at,
                       const char *who, const char *dir, char *where, size_t wherelen, char *err, size_t errlen);
/** For REST plugin validation: builds a whole `with` from `text` (JSON or YAML) under `pol` and
 *  runs the check. -1 with the message in err and the top-level key to blame in `key` ("" when
 *  none). */
int stage_config_check_text(const sl_stage_desc *d, const char *text, const cfg_policy *pol, char *key,
                            size_t keylen, char *err, size_t errlen);

#endif
