#include "cfgpolicy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"
#include "yamltree.h"

static cfg_policy def_policy;
static char **forbid;
static int *forbid_soft; /* soft: only when the data directory is not inside it */
static size_t nforbid;

static char *real_prefix(const char *path);

const cfg_policy *cfg_policy_default(void) { return &def_policy; }

static void forbid_add(const char *dir, int soft)
{
    char *abs = dir ? real_prefix(dir) : NULL; /* may not exist yet */
    if (!abs) return;
    for (size_t i = 0; i < nforbid; i++)
        if (!strcmp(forbid[i], abs)) {
            free(abs);
            return;
        }
    forbid = xrealloc(forbid, (nforbid + 1) * sizeof *forbid);
    forbid_soft = xrealloc(forbid_soft, (nforbid + 1) * sizeof *forbid_soft);
    forbid_soft[nforbid] = soft;
    forbid[nforbid++] = abs;
}

void cfg_forbid_dir(const char *dir) { forbid_add(dir, 0); }
void cfg_forbid_around_data(const char *dir) { forbid_add(dir, 1); }

int cfg_valid_name(const char *s)
{
    size_t n = 0;
    for (const char *c = s; *c; c++, n++) {
        int alnum = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9');
        if (!alnum && (n == 0 || (*c != '.' && *c != '_' && *c != '-'))) return 0;
    }
    return n >= 1 && n <= 64;
}

int cfg_text_fd(const char *text)
{
    int fd = memfd_create("sluice-pipeline", MFD_CLOEXEC);
    if (fd < 0) return -1;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w < 0) {
            if (errno == EINTR) continue;
            close(fd);
            return -1;
        }
        off += (size_t)w;
    }
    return fd;
}

void cfg_policy_env(const cfg_policy *pol, int text_fd, void (*set)(void *ctx, const char *name, const char *value),
                    void *ctx)
{
    char fd[16];
    snprintf(fd, sizeof fd, "%d", text_fd);
    set(ctx, "SLUICE_PIPELINE_TEXT_FD", fd);
    set(ctx, "SLUICE_UNTRUSTED", pol->untrusted ? "1" : "0");
    set(ctx, "SLUICE_DATA_DIR", pol->data_dir);
    sl_buf b = {0};
    for (size_t i = 0; i < nforbid; i++) {
        if (i) buf_puts(&b, ":");
        if (forbid_soft[i]) buf_puts(&b, "~");
        buf_puts(&b, forbid[i]);
    }
    set(ctx, "SLUICE_FORBID_DIRS", buf_cstr(&b));
    buf_free(&b);
}

int cfg_policy_from_env(char *err, size_t errlen)
{
    const char *fds = getenv("SLUICE_PIPELINE_TEXT_FD"), *u = getenv("SLUICE_UNTRUSTED");
    const char *dd = getenv("SLUICE_DATA_DIR"), *fb = getenv("SLUICE_FORBID_DIRS");
    def_policy.untrusted = u && strcmp(u, "0");
    if (dd && *dd) def_policy.data_dir = xstrdup(dd);
    if (fb && *fb) {
        char *copy = xstrdup(fb), *save = NULL;
        for (char *d = strtok_r(copy, ":", &save); d; d = strtok_r(NULL, ":", &save)) forbid_add(d + (*d == '~'), *d == '~');
        free(copy);
    }
    if (!fds) return 0;
    int fd = atoi(fds);
    sl_buf b = {0};
    char chunk[8192];
    ssize_t r;
    off_t at = 0;
    /* pread: the memfd's offset is where the supervisor stopped writing. */
    while ((r = pread(fd, chunk, sizeof chunk, at)) > 0 && b.len <= YT_MAX_BYTES) {
        buf_put(&b, chunk, (size_t)r);
        at += r;
    }
    close(fd);
    unsetenv("SLUICE_PIPELINE_TEXT_FD");
    if (r < 0) {
        snprintf(err, errlen, "cannot read the pipeline definition from the supervisor: %s", strerror(errno));
        buf_free(&b);
        return -1;
    }
    buf_cstr(&b);
    def_policy.text = b.data ? b.data : xstrdup("");
    return 0;
}

/* True when `path` is `dir` or below it (both absolute, normalised). */
static int inside(const char *path, const char *dir)
{
    size_t l = strlen(dir);
    if (l == 1 && dir[0] == '/') return 1;
    return !strncmp(path, dir, l) && (path[l] == '/' || path[l] == 0);
}

static int has_dotdot(const char *p)
{
    for (const char *c = p; *c;) {
        size_t l = strcspn(c, "/");
        if (l == 2 && c[0] == '.' && c[1] == '.') return 1;
        c += l;
        while (*c == '/') c++;
    }
    return 0;
}

/* The realpath of `path`, or of its longest existing ancestor with the rest appended (a file a
 * sink will create does not exist yet; a symlink anywhere on the way is still followed). */
static char *real_prefix(const char *path)
{
    char *p = xstrdup(path), abs[PATH_MAX];
    char *tail = NULL;
    for (;;) {
        if (realpath(p, abs)) {
            char *r = tail ? xasprintf("%s/%s", strcmp(abs, "/") ? abs : "", tail) : xstrdup(abs);
            free(p);
            free(tail);
            return r;
        }
        char *slash = strrchr(p, '/');
        if (!slash || slash == p) {
            free(p);
            free(tail);
            return NULL;
        }
        char *t = tail ? xasprintf("%s/%s", slash + 1, tail) : xstrdup(slash + 1);
        free(tail);
        tail = t;
        *slash = 0;
    }
}

char *cfg_resolve_path(const cfg_policy *pol, const char *base, const char *value, char *why, size_t whylen)
{
    /* "" (e.g. "no offset file") names no file; "-" is stdin/stdout, the operator's only. */
    if (!*value) return xstrdup("");
    if (!pol || !pol->untrusted)
        return value[0] == '/' || !base || !strcmp(value, "-") ? xstrdup(value) : xasprintf("%s/%s", base, value);
    if (!pol->data_dir) {
        snprintf(why, whylen, "pipelines created over REST may name files only when the operator configures a data "
                 "directory (rest.data_dir), and none is");
        return NULL;
    }
    if (!strcmp(value, "-")) {
        snprintf(why, whylen, "stdin/stdout ('-') belong to the operator's own pipelines");
        return NULL;
    }
    if (has_dotdot(value)) {
        snprintf(why, whylen, "'..' is not allowed in paths of pipelines created over REST");
        return NULL;
    }
    if (value[0] == '/' && !inside(value, pol->data_dir)) {
        snprintf(why, whylen, "an absolute path outside the data directory; pipelines created over REST name files "
                 "relative to it");
        return NULL;
    }
    char *full = value[0] == '/' ? xstrdup(value) : xasprintf("%s/%s", pol->data_dir, value);
    char *real = real_prefix(full);
    const char *bad = NULL;
    if (!real || !inside(real, pol->data_dir) || !strcmp(real, pol->data_dir))
        bad = "it leads outside the data directory (through a symbolic link?)";
    for (size_t i = 0; !bad && i < nforbid; i++)
        if (inside(real, forbid[i]) && !(forbid_soft[i] && inside(pol->data_dir, forbid[i])))
            bad = "it lies in a plugin, pipeline, state or web directory";
    free(real);
    if (bad) {
        snprintf(why, whylen, "%s", bad);
        free(full);
        return NULL;
    }
    return full;
}
