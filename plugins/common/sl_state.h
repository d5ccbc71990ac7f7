/* sl_state.h — where built-in stages keep their own small state files (file-source offsets,
 * file-sink's truncation marker): under the state directory, keyed by pipeline and stage.
 *
 * The state directory follows the host's rule: $SLUICE_STATE_DIR (the supervisor sets it for
 * its children from --state-dir), else $XDG_STATE_HOME/sluice, else ~/.local/state/sluice.
 * Header-only and private to plugins/. */
#ifndef SL_PLUGINS_STATE_H
#define SL_PLUGINS_STATE_H

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sl_hash.h"

/* Creates every missing directory of `path` (not its last component). 0 or -1 with errno. */
static inline int sl_mkdirs_for(const char *path)
{
    char tmp[4096];
    size_t n = strlen(path);
    if (n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(tmp, path, n + 1);
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return 0;
}

/* "<state dir>/<kind>/<pipeline>/<stage>-<16 hex digits of hash(key)>.<ext>" into out (its
 * directories created). `key` ties the file to what it describes (the input's absolute path):
 * the same pipeline pointed at another file starts afresh. 0, or -1 if it does not fit or the
 * directories cannot be made. */
static inline int sl_state_path(char *out, size_t n, const char *kind, const char *pipeline, const char *stage,
                                const char *key, const char *ext)
{
    const char *dir = getenv("SLUICE_STATE_DIR"), *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char base[2048];
    if (dir && *dir) snprintf(base, sizeof base, "%s", dir);
    else if (xdg && *xdg) snprintf(base, sizeof base, "%s/sluice", xdg);
    else snprintf(base, sizeof base, "%s/.local/state/sluice", home && *home ? home : ".");
    uint64_t h = sl_hash_bytes(0, key, strlen(key));
    int len = snprintf(out, n, "%s/%s/%s/%s-%016llx.%s", base, kind, pipeline, stage, (unsigned long long)h, ext);
    if (len < 0 || (size_t)len >= n) {
        errno = ENAMETOOLONG;
        return -1;
    }
    return sl_mkdirs_for(out);
}

#endif
