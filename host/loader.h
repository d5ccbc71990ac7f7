/* loader.h — finds stage plugins, dlopens them and checks their descriptors. */
#ifndef SL_HOST_LOADER_H
#define SL_HOST_LOADER_H

#include <stddef.h>

#include "sluice/stage.h"

typedef struct sl_plugin {
    const sl_stage_desc *desc; /* a full-size copy: fields the stage's ABI minor lacks are NULL */
    char *path;   /* the .so it came from */
    void *handle; /* dlopen handle, kept open for the life of the process */
} sl_plugin;

/** Adds a directory to the search path (in order of precedence). */
void loader_add_dir(const char *dir);
/** Adds the default dirs after the explicit ones: $SLUICE_PLUGIN_PATH, the build dir next to
 *  the executable, the install dir. */
void loader_add_default_dirs(void);

/** Scans every search dir (one level deep) and loads every *.so found. On a refusal returns -1
 *  with the reason in err (the caller exits 2). Idempotent. */
int loader_scan(char *err, size_t errlen);

/** A plugin by stage name, or by path when `use` contains a '/' (loaded on demand).
 *  NULL with err set when not found or refused. */
const sl_plugin *loader_find(const char *use, char *err, size_t errlen);

/** Loads and checks one .so; NULL with err set on refusal. Never crashes on a bad file. */
sl_plugin *loader_load_file(const char *path, char *err, size_t errlen);

/** The search directories (for keeping REST pipelines' paths out of them). */
size_t loader_dir_count(void);
const char *loader_dir_at(size_t i);

size_t loader_count(void);
const sl_plugin *loader_at(size_t i);

/** Bytes of sl_stage_desc / sl_api that ABI 1.`minor` has (0 for a minor newer than ours). */
size_t loader_abi_desc_size(unsigned minor);
size_t loader_abi_api_size(unsigned minor);

const char *kind_name(sl_kind k);
const char *type_name(sl_type t);

#endif
