#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

/* mkdir -p with mode 0700 for every directory it creates (existing ones are left alone). */
static int mkdirs(const char *path, char *err, size_t errlen)
{
    char *p = xstrdup(path);
    for (char *s = p + 1;; s++) {
        if (*s != '/' && *s) continue;
        char c = *s;
        *s = 0;
        struct stat st;
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            snprintf(err, errlen, "cannot create %s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            snprintf(err, errlen, "%s is not a directory", p);
            free(p);
            return -1;
        }
        if (!c) break;
        *s = c;
    }
    free(p);
    return 0;
}

char *state_dir_open(const char *flag, char *err, size_t errlen)
{
    char *dir = NULL;
    const char *env = getenv("SLUICE_STATE_DIR"), *xdg = getenv("XDG_STATE_HOME");
    if (flag && *flag) dir = xstrdup(flag);
    else if (env && *env) dir = xstrdup(env);
    else if (xdg && xdg[0] == '/') dir = xasprintf("%s/sluice", xdg); /* XDG: relative values are ignored */
    else {
        const char *home = getenv("HOME");
        if (!home || !*home) {
            const struct passwd *pw = getpwuid(geteuid());
            home = pw ? pw->pw_dir : NULL;
        }
        if (!home || !*home) {
            snprintf(err, errlen, "no state directory: set --state-dir, $SLUICE_STATE_DIR or $HOME");
            return NULL;
        }
        dir = xasprintf("%s/.local/state/sluice", home);
    }
    if (dir[0] != '/') { /* relative to where sluice was started */
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            snprintf(err, errlen, "state directory %s: %s", dir, strerror(errno));
            free(dir);
            return NULL;
        }
        char *abs = xasprintf("%s/%s", cwd, dir);
        free(dir);
        dir = abs;
    }
    if (mkdirs(dir, err, errlen)) {
        free(dir);
        return NULL;
    }
    char real[PATH_MAX];
    if (!realpath(dir, real)) {
        snprintf(err, errlen, "state directory %s: %s", dir, strerror(errno));
        free(dir);
        return NULL;
    }
    free(dir);
    struct stat st;
    if (stat(real, &st) == 0 && (st.st_mode & 077))
        log_warn("state directory %s can be entered by others (mode %04o): pipelines created over REST may hold "
                 "credentials; chmod 700 it", real, (unsigned)(st.st_mode & 07777));
    return xstrdup(real);
}

int state_token_valid(const char *tok)
{
    size_t n = strlen(tok);
    if (n == 0 || n > 256) return 0;
    for (const char *p = tok; *p; p++)
        if (*p <= ' ' || *p > '~') return 0;
    return 1;
}

/* Reads STATE/rest.token: a regular file of ours that nobody else can read. */
static char *read_token(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        if (errno != ENOENT) snprintf(err, errlen, "%s: %s", path, strerror(errno));
        else err[0] = 0;
        return NULL;
    }
    struct stat st;
    char buf[300];
    ssize_t n = -1;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) snprintf(err, errlen, "%s is not a regular file", path);
    else if (st.st_uid != geteuid()) snprintf(err, errlen, "%s belongs to another user (uid %u)", path, (unsigned)st.st_uid);
    else if (st.st_mode & 077)
        snprintf(err, errlen, "%s can be read by others (mode %04o); run: chmod 600 %s", path, (unsigned)(st.st_mode & 07777), path);
    else if ((n = read(fd, buf, sizeof buf - 1)) < 0) snprintf(err, errlen, "%s: %s", path, strerror(errno));
    close(fd);
    if (n < 0) return NULL;
    buf[n] = 0;
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
    if (!state_token_valid(buf)) {
        snprintf(err, errlen, "%s does not hold a token (1..256 visible ASCII characters); delete it to get a new one", path);
        return NULL;
    }
    return xstrdup(buf);
}

/* Writes a new random token to a private temporary file, then links it into place: link()
 * fails when the name exists, so of two sluices starting at once one token wins and both use
 * it, and nobody ever sees a half-written file. */
static int create_token(const char *dir, const char *path, char *err, size_t errlen)
{
    unsigned char rnd[32];
    size_t got = 0;
    while (got < sizeof rnd) {
        ssize_t r = getrandom(rnd + got, sizeof rnd - got, 0);
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) {
            snprintf(err, errlen, "getrandom: %s", strerror(errno));
            return -1;
        }
        got += (size_t)r;
    }
    char hex[sizeof rnd * 2 + 2];
    for (size_t i = 0; i < sizeof rnd; i++) snprintf(hex + 2 * i, 3, "%02x", rnd[i]);
    strcat(hex, "\n");
    char *tmp = xasprintf("%s/.rest.token.XXXXXX", dir);
    int fd = mkstemp(tmp); /* mode 0600 */
    int rc = -1;
    if (fd < 0) {
        snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    size_t len = strlen(hex);
    if (fchmod(fd, 0600) != 0 || write(fd, hex, len) != (ssize_t)len || fsync(fd) != 0)
        snprintf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    else if (link(tmp, path) != 0 && errno != EEXIST)
        snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
    else rc = 0;
    close(fd);
    unlink(tmp);
    free(tmp);
    memset(rnd, 0, sizeof rnd);
    memset(hex, 0, sizeof hex);
    return rc;
}

char *state_token(const char *state_dir, const char *configured, const char **from, char *err, size_t errlen)
{
    const char *env = getenv("SLUICE_REST_TOKEN");
    if (env && *env) {
        if (!state_token_valid(env)) {
            snprintf(err, errlen, "SLUICE_REST_TOKEN must be 1..256 visible ASCII characters");
            return NULL;
        }
        *from = "$SLUICE_REST_TOKEN";
        return xstrdup(env);
    }
    if (configured) {
        if (!state_token_valid(configured)) {
            snprintf(err, errlen, "rest.token must be 1..256 visible ASCII characters");
            return NULL;
        }
        *from = "rest.token in the host config";
        return xstrdup(configured);
    }
    char *path = xasprintf("%s/rest.token", state_dir);
    char *tok = read_token(path, err, errlen);
    if (!tok && !err[0] && create_token(state_dir, path, err, errlen) == 0) tok = read_token(path, err, errlen);
    if (tok) *from = "the state directory (rest.token)";
    free(path);
    return tok;
}
