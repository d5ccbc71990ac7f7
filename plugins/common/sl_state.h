/* sl_state.h — where built-in stages keep their own small state files (file-source offsets,
 * file-sink's truncation marker): under the state directory, keyed by pipeline and stage.
 *
 * The state directory follows the host's rule: $SLUICE_STATE_DIR (the supervisor sets it for
 * its children from --state-dir), else $XDG_STATE_HOME/sluice, else ~/.local/state/sluice.
 * Header-only and private to plugins/. */
#ifndef SL_PLUGINS_STATE_H
#define SL_PLUGINS_STATE_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

/* Offset files: one line "POSITION[ TAG]" (TAG: a word of up to 39 characters naming what the
 * position belongs to, such as an http-source stream's epoch; "" for none). Used by the sources
 * that keep their own committed position (file-source, http-source). */

/* The position in `path`, or -1 when there is none (no file, not a number, negative); `tag`
 * (cap bytes, may be NULL) gets the tag or "". */
static inline int64_t sl_offset_read(const char *path, char *tag, size_t cap)
{
    if (tag && cap) tag[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long long v = -1;
    char t[40] = "";
    int n = fscanf(f, "%lld %39s", &v, t);
    fclose(f);
    if (n < 1 || v < 0) return -1;
    if (tag && cap) snprintf(tag, cap, "%s", n == 2 ? t : "");
    return v;
}

/* Writes, fsyncs and renames into place, so the file always holds a whole position.
 * 0, or -1 with errno. */
static inline int sl_offset_write(const char *path, int64_t v, const char *tag)
{
    size_t n = strlen(path) + 8;
    char *tmp = (char *)malloc(n);
    if (!tmp) return -1;
    snprintf(tmp, n, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0;
    if (ok) {
        char line[96];
        int len = snprintf(line, sizeof line, "%" PRId64 "%s%.39s\n", v, tag && *tag ? " " : "", tag ? tag : "");
        ok = write(fd, line, (size_t)len) == len && fsync(fd) == 0;
        ok = close(fd) == 0 && ok;
    }
    ok = ok && rename(tmp, path) == 0;
    int e = errno;
    if (!ok) unlink(tmp);
    free(tmp);
    errno = e;
    return ok ? 0 : -1;
}

#endif
