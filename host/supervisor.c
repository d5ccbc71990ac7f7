#include "supervisor.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "lag.h"
#include "log.h"
#include "rest.h"
#include "yamltree.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 60000     /* a child that ran this long resets its backoff */
#define STOP_GRACE_MS 60000 /* then SIGKILL */
#define RELOAD_DEBOUNCE_MS 200
#define MAX_STATUS_LINE (4 << 20)

static volatile sig_atomic_t stop_signal, hup_signal;

static void on_stop(int sig) { stop_signal = sig; }
static void on_hup(int sig) { (void)sig; hup_signal = 1; }

/* The supervisor is a singleton: one per process, owned by supervisor_run. */
static struct {
    const sup_options *o;
    sup_pipeline **p;
    size_t n;
    int stopping;
    char *pipeline_dir; /* realpath, or NULL */
    char worker_id[300];
    sl_metrics http_requests;
} S;

size_t sup_count(void) { return S.n; }
sup_pipeline *sup_at(size_t i) { return i < S.n ? S.p[i] : NULL; }
const sup_options *sup_opts(void) { return S.o; }
const char *sup_worker_id(void) { return S.worker_id; }
int sup_stopping(void) { return S.stopping; }

sup_pipeline *sup_find(const char *name)
{
    for (size_t i = 0; i < S.n; i++)
        if (!S.p[i]->deleting && !strcmp(S.p[i]->name, name)) return S.p[i];
    return NULL;
}

static sup_pipeline *find_by_file(const char *file)
{
    for (size_t i = 0; i < S.n; i++)
        if (!S.p[i]->deleting && !strcmp(S.p[i]->file, file)) return S.p[i];
    return NULL;
}

const char *sup_state_name(const sup_pipeline *p)
{
    switch (p->state) {
    case SUP_RUNNING: return p->restart_pending ? "RESTARTING" : p->paused ? "PAUSED" : "RUNNING";
    case SUP_WAITING: return "RESTARTING";
    case SUP_FINISHED: return "FINISHED";
    case SUP_FAILED: return "FAILED";
    case SUP_STOPPED: return "STOPPED";
    }
    return "UNASSIGNED";
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = v ? xstrdup(v) : NULL;
}

static char *read_whole(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    sl_buf b = {0};
    char chunk[8192];
    size_t r;
    while ((r = fread(chunk, 1, sizeof chunk, f)) > 0) buf_put(&b, chunk, r);
    fclose(f);
    buf_cstr(&b);
    return b.data ? b.data : xstrdup("");
}

/* The "error" field of a status line, if any (malloc'd). */
static char *status_error(const char *status)
{
    const char *e = status ? strstr(status, "\"error\":\"") : NULL;
    if (!e) return NULL;
    e += 9;
    sl_buf b = {0};
    for (; *e && *e != '"'; e++) {
        if (*e == '\\' && e[1]) e++;
        buf_put(&b, e, 1);
    }
    buf_cstr(&b);
    return b.data;
}

/* ---- children ----------------------------------------------------------------------------- */

static void start_child(sup_pipeline *p)
{
    int st[2], ctl[2];
    if (pipe2(st, O_CLOEXEC) != 0) {
        log_error("cannot create status pipe for %s: %s", p->name, strerror(errno));
        p->next_start_ms = sl_monotonic_ms() + BACKOFF_MAX_MS;
        p->state = SUP_WAITING;
        return;
    }
    if (pipe2(ctl, O_CLOEXEC) != 0) {
        log_error("cannot create control pipe for %s: %s", p->name, strerror(errno));
        close(st[0]);
        close(st[1]);
        p->next_start_ms = sl_monotonic_ms() + BACKOFF_MAX_MS;
        p->state = SUP_WAITING;
        return;
    }
    char ntasks[16];
    snprintf(ntasks, sizeof ntasks, "%d", p->tasks);
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot fork for pipeline %s: %s", p->name, strerror(errno));
        close(st[0]);
        close(st[1]);
        close(ctl[0]);
        close(ctl[1]);
        p->next_start_ms = sl_monotonic_ms() + BACKOFF_MAX_MS;
        p->state = SUP_WAITING;
        return;
    }
    if (pid == 0) {
        /* Child: status pipe on fd 3, control pipe on fd 4, default signal dispositions, then
         * exec a fresh sluice (no state inherited from the parent). dup2 clears CLOEXEC. */
        dup2(st[1], 3);
        dup2(ctl[0], 4);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the whole group; the parent relays SIGTERM */
        signal(SIGHUP, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        setenv("SLUICE_STATUS_FD", "3", 1);
        setenv("SLUICE_CONTROL_FD", "4", 1);
        setenv("SLUICE_TASKS", ntasks, 1);
        execl(S.o->exe, "sluice", "__pipeline", p->file, (char *)NULL);
        fprintf(stderr, "level=error msg=\"exec %s failed: %s\"\n", S.o->exe, strerror(errno));
        _exit(127);
    }
    close(st[1]);
    close(ctl[0]);
    fcntl(st[0], F_SETFL, O_NONBLOCK);
    fcntl(ctl[1], F_SETFL, O_NONBLOCK);
    p->pid = pid;
    p->status_fd = st[0];
    p->ctl_fd = ctl[1];
    p->line.len = 0;
    p->state = SUP_RUNNING;
    p->started_ms = p->scale_at_ms = sl_monotonic_ms();
    p->nlag = 0;
    p->last_in = -1;
    if (p->paused && write(p->ctl_fd, "P", 1) != 1) log_warn("pipeline %s: cannot send pause", p->name);
    log_info("pipeline %s started (pid %d, %s, %d task%s%s)", p->name, (int)pid, p->file, p->tasks,
             p->tasks == 1 ? "" : "s", p->paused ? ", paused" : "");
}

static void read_status(sup_pipeline *p)
{
    char chunk[65536];
    for (;;) {
        ssize_t r = read(p->status_fd, chunk, sizeof chunk);
        if (r <= 0) {
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(p->status_fd);
                p->status_fd = -1;
            }
            return;
        }
        buf_put(&p->line, chunk, (size_t)r);
        char *nl;
        while ((nl = memchr(p->line.data, '\n', p->line.len))) {
            *nl = 0;
            set_str(&p->last_status, p->line.data);
            p->status_folded = 0;
            size_t used = (size_t)(nl - p->line.data) + 1;
            memmove(p->line.data, nl + 1, p->line.len - used);
            p->line.len -= used;
        }
        if (p->line.len > MAX_STATUS_LINE) p->line.len = 0; /* absurd line: drop it */
    }
}

static void send_control(sup_pipeline *p, char c)
{
    if (p->ctl_fd >= 0 && write(p->ctl_fd, &c, 1) != 1)
        log_warn("pipeline %s: control pipe: %s", p->name, strerror(errno));
}

static void sup_pipeline_free(sup_pipeline *p)
{
    free(p->name);
    free(p->file);
    free(p->def);
    free(p->last_status);
    free(p->trace);
    free(p->reload_error);
    buf_free(&p->line);
    metrics_free(&p->base);
    free(p);
}

static void remove_pipeline(sup_pipeline *p)
{
    for (size_t i = 0; i < S.n; i++)
        if (S.p[i] == p) {
            memmove(&S.p[i], &S.p[i + 1], (S.n - i - 1) * sizeof *S.p);
            S.n--;
            break;
        }
    lag_forget(p->name);
    log_info("pipeline %s removed", p->name);
    sup_pipeline_free(p);
}

static void reaped(sup_pipeline *p, int status)
{
    if (p->status_fd >= 0) {
        read_status(p);
        if (p->status_fd >= 0) close(p->status_fd);
        p->status_fd = -1;
    }
    if (p->ctl_fd >= 0) close(p->ctl_fd);
    p->ctl_fd = -1;
    p->pid = 0;
    /* Counters restart with every child: keep what this one counted. */
    if (p->last_status && !p->status_folded) {
        metrics_from_status(p->last_status, &p->base);
        p->status_folded = 1;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    p->last_exit = code;
    char *why = status_error(p->last_status);
    if (p->deleting) {
        free(why);
        remove_pipeline(p);
        return;
    }
    if (p->restart_pending && !S.stopping) {
        p->restart_pending = 0;
        p->state = SUP_WAITING;
        p->next_start_ms = 0;
        p->restarts++;
        free(why);
        return;
    }
    p->restart_pending = 0;
    if (p->state == SUP_STOPPED || S.stopping || code == 0) {
        if (p->state != SUP_STOPPED) p->state = SUP_FINISHED;
        log_info("pipeline %s %s (exit %d)", p->name, S.stopping || p->state == SUP_STOPPED ? "stopped" : "finished", code);
        free(why);
        return;
    }
    char trace[1024];
    if (code == 2) {
        p->state = SUP_FAILED;
        snprintf(trace, sizeof trace, "configuration error (exit 2): %s", why ? why : "see the log");
        set_str(&p->trace, trace);
        log_error("pipeline %s failed with a configuration error (exit 2); not restarting", p->name);
        free(why);
        return;
    }
    long long now = sl_monotonic_ms();
    if (now - p->started_ms >= STABLE_MS) p->backoff_level = 0;
    long long backoff = BACKOFF_MIN_MS;
    for (int i = 0; i < p->backoff_level && backoff < BACKOFF_MAX_MS; i++) backoff *= 2;
    if (backoff > BACKOFF_MAX_MS) backoff = BACKOFF_MAX_MS;
    p->backoff_level++;
    p->restarts++;
    p->next_start_ms = now + backoff;
    p->state = SUP_WAITING;
    if (WIFSIGNALED(status)) {
        snprintf(trace, sizeof trace, "pipeline process crashed (signal %d, %s) after %lld ms; restart %d in %lld ms%s%s",
                 WTERMSIG(status), strsignal(WTERMSIG(status)), now - p->started_ms, p->backoff_level, backoff,
                 why ? "; last error: " : "", why ? why : "");
        log_warn("pipeline %s crashed (signal %d); restart %d in %lld ms", p->name, WTERMSIG(status),
                 p->backoff_level, backoff);
    } else {
        snprintf(trace, sizeof trace, "pipeline process exited with code %d after %lld ms; restart %d in %lld ms%s%s", code,
                 now - p->started_ms, p->backoff_level, backoff, why ? "; last error: " : "", why ? why : "");
        log_warn("pipeline %s exited with code %d; restart %d in %lld ms", p->name, code, p->backoff_level, backoff);
    }
    set_str(&p->trace, trace);
    free(why);
}

/* ---- definitions ------------------------------------------------------------------------- */

/* Over REST a stage may only name an installed plugin: a path would let a client load any
 * shared object into the host (remote code execution). Checked on the parsed tree, after
 * ${VAR} interpolation, before anything is loaded. */
static int check_uses(const ytree *t, char *err, size_t errlen)
{
    const ynode *r = t->root, *stages = ynode_get(r, "stages"), *dl = ynode_get(r, "dead_letter");
    size_t n = stages && stages->kind == YN_SEQ ? stages->n : 0;
    for (size_t i = 0; i <= n; i++) {
        const ynode *st = i < n ? stages->items[i] : dl;
        const ynode *use = st ? ynode_get(st, "use") : NULL;
        if (!use || use->kind != YN_SCALAR) continue;
        size_t l = strlen(use->str);
        if (strchr(use->str, '/') || (l >= 3 && !strcmp(use->str + l - 3, ".so")) || strstr(use->str, ".so.")) {
            snprintf(err, errlen,
                     "%s:%d:%d: 'use: %s' names a file; pipelines created over REST may only use installed "
                     "plugins by name (see GET /connector-plugins)",
                     use->file, use->line, use->col, use->str);
            return -1;
        }
    }
    return 0;
}

/* Loads and fully checks a definition file. On success fills name and task bounds. */
static int check_file(const char *path, int from_rest, char **name, int *tmin, int *tmax, char *err, size_t errlen)
{
    if (from_rest) {
        ytree *t = ytree_load(path, NULL, err, errlen);
        if (!t) return -1;
        int bad = check_uses(t, err, errlen);
        ytree_free(t);
        if (bad) return -1;
    }
    pipeline_cfg *c = pipeline_load(path, err, errlen);
    if (!c) return -1;
    *name = xstrdup(c->name);
    *tmin = c->tasks_min;
    *tmax = c->tasks_max;
    pipeline_free(c);
    return 0;
}

static int in_pipeline_dir(const char *file)
{
    if (!S.pipeline_dir) return 0;
    char *tmp = xstrdup(file);
    int r = !strcmp(dirname(tmp), S.pipeline_dir);
    free(tmp);
    return r;
}

static sup_pipeline *add_pipeline(const char *name, const char *file, char *def, int tmin, int tmax)
{
    sup_pipeline *p = xcalloc(1, sizeof *p);
    p->name = xstrdup(name);
    p->file = xstrdup(file);
    p->def = def;
    p->editable = in_pipeline_dir(file);
    p->status_fd = p->ctl_fd = -1;
    p->state = SUP_WAITING;
    p->tasks_min = tmin;
    p->tasks_max = tmax;
    p->tasks = tmin;
    S.p = xrealloc(S.p, (S.n + 1) * sizeof *S.p);
    S.p[S.n++] = p;
    return p;
}

static void request_restart(sup_pipeline *p)
{
    if (p->pid > 0) {
        p->restart_pending = 1;
        kill(p->pid, SIGTERM);
    } else {
        p->state = SUP_WAITING;
        p->next_start_ms = 0;
        p->backoff_level = 0;
    }
}

/* A definition changed on disk or over REST: accept it (restart the pipeline) or refuse it
 * (the old one keeps running). `def` is taken over. */
static int apply_change(sup_pipeline *p, char *def, int from_rest, char *err, size_t errlen)
{
    char *name = NULL;
    int tmin, tmax;
    if (check_file(p->file, from_rest, &name, &tmin, &tmax, err, errlen)) {
        log_error("pipeline %s: new definition refused, the running one stays: %s", p->name, err);
        set_str(&p->reload_error, err);
        free(def);
        return -1;
    }
    if (strcmp(name, p->name)) {
        snprintf(err, errlen, "%s: renaming pipeline '%s' to '%s' in place is not supported; delete it and create '%s'",
                 p->file, p->name, name, name);
        log_error("pipeline %s: %s", p->name, err);
        set_str(&p->reload_error, err);
        free(name);
        free(def);
        return -1;
    }
    free(name);
    free(p->def);
    p->def = def;
    set_str(&p->reload_error, NULL);
    p->tasks_min = tmin;
    p->tasks_max = tmax;
    if (p->tasks < tmin) p->tasks = tmin;
    if (p->tasks > tmax) p->tasks = tmax;
    log_info("pipeline %s: definition changed; restarting it", p->name);
    if (p->state != SUP_STOPPED) request_restart(p);
    return 0;
}

static void delete_pipeline(sup_pipeline *p)
{
    p->deleting = 1;
    if (p->pid > 0) kill(p->pid, SIGTERM);
    else remove_pipeline(p);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The definition files the sources stand for: files as given, directories as their *.yaml /
 * *.yml files in name order, then the pipeline directory. Absolute paths. */
static char **list_files(size_t *count)
{
    char **out = NULL;
    size_t n = 0;
    size_t nsrc = S.o->nsources + (S.pipeline_dir ? 1 : 0);
    for (size_t i = 0; i < nsrc; i++) {
        const char *src = i < S.o->nsources ? S.o->sources[i] : S.pipeline_dir;
        struct stat st;
        if (stat(src, &st) == 0 && S_ISDIR(st.st_mode)) {
            DIR *d = opendir(src);
            struct dirent *e;
            size_t first = n;
            while (d && (e = readdir(d))) {
                size_t l = strlen(e->d_name);
                if (e->d_name[0] == '.') continue;
                if ((l > 5 && !strcmp(e->d_name + l - 5, ".yaml")) || (l > 4 && !strcmp(e->d_name + l - 4, ".yml"))) {
                    out = xrealloc(out, (n + 1) * sizeof *out);
                    out[n++] = xasprintf("%s/%s", src, e->d_name);
                }
            }
            if (d) closedir(d);
            if (n > first) qsort(out + first, n - first, sizeof *out, cmp_str); /* out may be NULL */
        } else {
            out = xrealloc(out, (n + 1) * sizeof *out);
            out[n++] = xstrdup(src);
        }
    }
    /* Absolute and unique (the pipeline directory may also be a source). */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        char abs[PATH_MAX];
        char *a = xstrdup(realpath(out[i], abs) ? abs : out[i]);
        free(out[i]);
        int dup = 0;
        for (size_t j = 0; j < k && !dup; j++) dup = !strcmp(out[j], a);
        if (dup) free(a);
        else out[k++] = a;
    }
    *count = k;
    return out;
}

/* Brings the running set in line with the definition files. At start (initial = 1) any bad
 * file fails the whole start; later a bad file is refused and the old definition runs on. */
static int reload(int initial)
{
    size_t nf;
    char **files = list_files(&nf);
    int bad = 0;
    char *seen = xcalloc(S.n + nf + 1, 1);
    for (size_t i = 0; i < nf; i++) {
        char err[4096];
        char *def = read_whole(files[i]);
        if (!def) {
            fprintf(stderr, "%s: %s\n", files[i], strerror(errno));
            bad = 1;
            continue;
        }
        sup_pipeline *p = find_by_file(files[i]);
        if (p) {
            for (size_t j = 0; j < S.n; j++)
                if (S.p[j] == p) seen[j] = 1;
            if (strcmp(def, p->def)) {
                apply_change(p, def, p->editable, err, sizeof err);
            } else {
                free(def);
                set_str(&p->reload_error, NULL); /* back to the running definition */
            }
            continue;
        }
        char *name = NULL;
        int tmin, tmax;
        if (check_file(files[i], in_pipeline_dir(files[i]), &name, &tmin, &tmax, err, sizeof err)) {
            if (initial) fprintf(stderr, "%s\n", err);
            else log_error("new pipeline file refused: %s", err);
            bad = 1;
            free(def);
            continue;
        }
        sup_pipeline *other = sup_find(name);
        if (other) {
            if (initial) fprintf(stderr, "%s: pipeline name '%s' is also used by %s\n", files[i], name, other->file);
            else log_error("%s: pipeline name '%s' is also used by %s; refused", files[i], name, other->file);
            bad = 1;
            free(name);
            free(def);
            continue;
        }
        add_pipeline(name, files[i], def, tmin, tmax);
        seen[S.n - 1] = 1;
        if (!initial) log_info("pipeline %s added (%s)", name, files[i]);
        free(name);
    }
    /* Definitions whose file is gone are stopped and forgotten. */
    for (size_t j = S.n; j-- > 0;)
        if (!seen[j] && !S.p[j]->deleting && !initial) {
            log_info("pipeline %s: %s is gone; stopping it", S.p[j]->name, S.p[j]->file);
            delete_pipeline(S.p[j]);
        }
    free(seen);
    for (size_t i = 0; i < nf; i++) free(files[i]);
    free(files);
    return bad;
}

/* ---- operations for REST ------------------------------------------------------------------ */

static int write_file_atomic(const char *path, const char *text, char *err, size_t errlen)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fflush(f) != 0 || fsync(fileno(f)) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        if (f) fclose(f);
        return -1;
    }
    if (fclose(f) != 0) {
        snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Replaces every mention of `from` in err by `to` (error messages of the temporary file). */
static void rename_in(char *err, size_t errlen, const char *from, const char *to)
{
    char *at = strstr(err, from);
    if (!at) return;
    sl_buf b = {0};
    buf_put(&b, err, (size_t)(at - err));
    buf_puts(&b, to);
    buf_puts(&b, at + strlen(from));
    snprintf(err, errlen, "%s", buf_cstr(&b));
    buf_free(&b);
}

/* Writes `yaml` next to the pipeline's final file and checks it there (so relative paths
 * resolve the same). Returns the temporary path (malloc'd) or NULL with err. */
static char *stage_definition(const char *name, const char *yaml, const char *final, int *status, char *err,
                              size_t errlen)
{
    char *tmp = xasprintf("%s/.%s.yaml.tmp", S.pipeline_dir, name);
    *status = 500;
    if (write_file_atomic(tmp, yaml, err, errlen)) {
        free(tmp);
        return NULL;
    }
    char *pname = NULL;
    int tmin, tmax;
    if (check_file(tmp, 1, &pname, &tmin, &tmax, err, errlen)) {
        rename_in(err, errlen, tmp, final);
        unlink(tmp);
        free(tmp);
        *status = 400;
        return NULL;
    }
    if (strcmp(pname, name)) {
        snprintf(err, errlen, "the definition names pipeline '%s', not '%s'", pname, name);
        free(pname);
        unlink(tmp);
        free(tmp);
        *status = 400;
        return NULL;
    }
    free(pname);
    return tmp;
}

static int valid_name(const char *name)
{
    if (!*name || strlen(name) > 128 || name[0] == '.') return 0;
    for (const char *c = name; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '-' ||
              *c == '_' || *c == '.'))
            return 0;
    return 1;
}

static int precheck(const char *name, sup_pipeline **p, char *err, size_t errlen)
{
    if (!valid_name(name)) {
        snprintf(err, errlen, "pipeline name '%s' may contain only letters, digits, '-', '_' and '.'", name);
        return 400;
    }
    if (!S.pipeline_dir) {
        snprintf(err, errlen, "no pipeline directory is configured (rest.pipeline_dir or --pipeline-dir)");
        return 500;
    }
    for (size_t i = 0; i < S.n; i++)
        if (S.p[i]->deleting && !strcmp(S.p[i]->name, name)) {
            snprintf(err, errlen, "pipeline %s is being deleted; try again shortly", name);
            return 409;
        }
    *p = sup_find(name);
    if (*p && !(*p)->editable) {
        snprintf(err, errlen, "pipeline %s is defined by %s, outside the REST pipeline directory; edit that file "
                 "(it is reloaded on SIGHUP)", name, (*p)->file);
        return 409;
    }
    return 0;
}

/* Checks a new definition of `name` and writes it next to its final place: on success *final
 * and *tmp are set (caller frees) and 0 is returned, else an HTTP status with err set. */
static int check_definition(const char *name, const char *yaml, sup_pipeline **p, char **final, char **tmp,
                            char *err, size_t errlen)
{
    int rc = precheck(name, p, err, errlen);
    if (rc) return rc;
    *final = *p ? xstrdup((*p)->file) : xasprintf("%s/%s.yaml", S.pipeline_dir, name);
    int status;
    *tmp = stage_definition(name, yaml, *final, &status, err, errlen);
    if (*tmp) return 0;
    free(*final);
    return status;
}

int sup_check(const char *name, const char *yaml, char *err, size_t errlen)
{
    sup_pipeline *p = NULL;
    char *final, *tmp;
    int rc = check_definition(name, yaml, &p, &final, &tmp, err, errlen);
    if (rc) return rc;
    unlink(tmp);
    free(tmp);
    free(final);
    return 0;
}

int sup_put(const char *name, const char *yaml, char *err, size_t errlen)
{
    sup_pipeline *p = NULL;
    char *final, *tmp;
    int rc = check_definition(name, yaml, &p, &final, &tmp, err, errlen);
    if (rc) return rc;
    if (rename(tmp, final) != 0) {
        snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
        unlink(tmp);
        free(tmp);
        free(final);
        return 500;
    }
    free(tmp);
    rc = 200;
    if (p) {
        if (strcmp(p->def, yaml) && apply_change(p, xstrdup(yaml), 1, err, errlen)) rc = 400;
    } else {
        char *pname = NULL;
        int tmin, tmax;
        if (check_file(final, 1, &pname, &tmin, &tmax, err, errlen)) {
            rc = 400; /* changed under us between the check and the rename */
        } else {
            add_pipeline(name, final, xstrdup(yaml), tmin, tmax);
            log_info("pipeline %s created over REST (%s)", name, final);
            rc = 201;
        }
        free(pname);
    }
    free(final);
    return rc;
}

int sup_delete(sup_pipeline *p, char *err, size_t errlen)
{
    if (!p->editable) {
        snprintf(err, errlen, "pipeline %s is defined by %s, outside the REST pipeline directory; remove that file "
                 "instead", p->name, p->file);
        return 409;
    }
    if (unlink(p->file) != 0 && errno != ENOENT) {
        snprintf(err, errlen, "cannot remove %s: %s", p->file, strerror(errno));
        return 500;
    }
    log_info("pipeline %s deleted over REST", p->name);
    delete_pipeline(p);
    return 204;
}

void sup_pause(sup_pipeline *p)
{
    if (!p->paused) log_info("pipeline %s paused", p->name);
    p->paused = 1;
    send_control(p, 'P');
}

void sup_resume(sup_pipeline *p)
{
    if (p->paused) log_info("pipeline %s resumed", p->name);
    p->paused = 0;
    send_control(p, 'R');
    if (p->state == SUP_STOPPED) {
        p->state = SUP_WAITING;
        p->next_start_ms = 0;
    }
}

void sup_stop(sup_pipeline *p)
{
    log_info("pipeline %s stopped over REST", p->name);
    p->restart_pending = 0;
    if (p->pid > 0) kill(p->pid, SIGTERM);
    p->state = SUP_STOPPED;
}

void sup_restart(sup_pipeline *p)
{
    log_info("pipeline %s restart requested", p->name);
    if (p->state == SUP_STOPPED) p->state = SUP_FINISHED; /* a restart runs it again */
    request_restart(p);
}

void sup_count_request(int status)
{
    char s[96];
    snprintf(s, sizeof s, "sluice_http_requests_total{code=\"%d\"}", status);
    metrics_add(&S.http_requests, "sluice_http_requests_total", s, 1);
}

void sup_metrics(sl_buf *out)
{
    static const char *const states[] = {"RUNNING", "PAUSED", "STOPPED", "FAILED", "RESTARTING", "FINISHED"};
    sl_metrics m = {0};
    sl_buf s = {0};
    buf_puts(&s, "sluice_info{version=");
    metrics_label(&s, SLUICE_VERSION);
    buf_puts(&s, "}");
    metrics_add(&m, "sluice_info", buf_cstr(&s), 1);
    for (size_t i = 0; i < S.n; i++) {
        sup_pipeline *p = S.p[i];
        if (p->deleting) continue;
        sl_buf lab = {0};
        buf_puts(&lab, "pipeline=");
        metrics_label(&lab, p->name);
        const char *cur = sup_state_name(p);
        for (size_t k = 0; k < sizeof states / sizeof states[0]; k++) {
            s.len = 0;
            buf_printf(&s, "sluice_pipeline_state{%s,state=\"%s\"}", buf_cstr(&lab), states[k]);
            metrics_add(&m, "sluice_pipeline_state", buf_cstr(&s), !strcmp(cur, states[k]));
        }
        s.len = 0;
        buf_printf(&s, "sluice_pipeline_tasks{%s}", buf_cstr(&lab));
        metrics_add(&m, "sluice_pipeline_tasks", buf_cstr(&s), p->state == SUP_RUNNING ? p->tasks : 0);
        s.len = 0;
        buf_printf(&s, "sluice_pipeline_restarts_total{%s}", buf_cstr(&lab));
        metrics_add(&m, "sluice_pipeline_restarts_total", buf_cstr(&s), (double)p->restarts);
        sl_metrics cur_m = {0};
        metrics_merge(&cur_m, &p->base);
        if (!p->status_folded) metrics_from_status(p->last_status, &cur_m);
        metrics_merge(&m, &cur_m);
        metrics_free(&cur_m);
        lag_metrics(p->name, &m);
        /* Committed offsets: the latest status knows them (also after the child exited). */
        cJSON *st = p->last_status ? cJSON_Parse(p->last_status) : NULL;
        const cJSON *o;
        const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(st, "offsets"); /* NULL-safe */
        cJSON_ArrayForEach(o, offsets)
        {
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "topic"), *pa = cJSON_GetObjectItemCaseSensitive(o, "partition"),
                        *off = cJSON_GetObjectItemCaseSensitive(o, "offset");
            if (!cJSON_IsString(t) || !cJSON_IsNumber(pa) || !cJSON_IsNumber(off)) continue;
            s.len = 0;
            buf_printf(&s, "sluice_committed_offset{%s,topic=", buf_cstr(&lab));
            metrics_label(&s, t->valuestring);
            buf_printf(&s, ",partition=\"%d\"}", pa->valueint);
            metrics_add(&m, "sluice_committed_offset", buf_cstr(&s), off->valuedouble);
        }
        cJSON_Delete(st);
        buf_free(&lab);
    }
    metrics_merge(&m, &S.http_requests);
    metrics_render(&m, out);
    metrics_free(&m);
    buf_free(&s);
}

/* ---- autoscaling -------------------------------------------------------------------------- */

/* Source records emitted so far by the running child (stage 0's "out"). */
static long long source_out(const sup_pipeline *p)
{
    cJSON *st = p->last_status && !p->status_folded ? cJSON_Parse(p->last_status) : NULL;
    const cJSON *stages = st ? cJSON_GetObjectItemCaseSensitive(st, "stages") : NULL;
    const cJSON *out = stages ? cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(stages, 0), "out") : NULL;
    long long v = cJSON_IsNumber(out) ? (long long)out->valuedouble : -1;
    cJSON_Delete(st);
    return v;
}

/* Partitions the running child's tasks own now (status "assigned"); -1 if it does not say. The
 * lag watcher sees the whole group's partitions, but another host may own most of them. */
static int owned_partitions(const sup_pipeline *p)
{
    cJSON *st = p->last_status && !p->status_folded ? cJSON_Parse(p->last_status) : NULL;
    const cJSON *a = st ? cJSON_GetObjectItemCaseSensitive(st, "assigned") : NULL;
    int n = cJSON_IsArray(a) ? cJSON_GetArraySize(a) : -1;
    cJSON_Delete(st);
    return n;
}

/* Once per interval: sample total lag and throughput per task; add a task when lag has grown
 * across the window and every task was busy, remove one when lag stayed near zero. */
static void autoscale(sup_pipeline *p, long long now)
{
    if (p->tasks_max <= p->tasks_min || p->state != SUP_RUNNING || p->paused || p->restart_pending) return;
    long long interval = S.o->scale_interval_ms > 0 ? S.o->scale_interval_ms : 5000;
    long long window = S.o->scale_window_ms > 0 ? S.o->scale_window_ms : 30000;
    int need = (int)(window / interval);
    if (need < 2) need = 2;
    if (need > 8) need = 8;
    if (now - p->scale_at_ms < interval) return;
    double lag;
    int partitions;
    if (lag_total(p->name, &lag, &partitions) != 0) return;
    long long in = source_out(p);
    double rate = p->last_in >= 0 && in >= p->last_in ? (double)(in - p->last_in) * 1000.0 / (double)(now - p->scale_at_ms) / p->tasks : 0;
    p->last_in = in;
    p->scale_at_ms = now;
    if (p->nlag == 8) {
        memmove(p->lag_hist, p->lag_hist + 1, 7 * sizeof *p->lag_hist);
        memmove(p->rate_hist, p->rate_hist + 1, 7 * sizeof *p->rate_hist);
        p->nlag--;
    }
    p->lag_hist[p->nlag] = lag;
    p->rate_hist[p->nlag++] = rate;
    if (p->nlag < need) return;
    const double *lh = p->lag_hist + p->nlag - need;
    int grew = lh[need - 1] > lh[0] && lh[need - 1] > S.o->scale_lag_low, low = 1;
    for (int i = 0; i < need; i++) low &= lh[i] <= S.o->scale_lag_low;
    int limit = p->tasks_max < partitions ? p->tasks_max : partitions;
    int owned = owned_partitions(p);
    if (owned >= 0 && owned < limit) limit = owned; /* more tasks than our partitions would idle */
    const char *why = NULL;
    int to = p->tasks;
    /* "Saturated": every sample of the window consumed something (the tasks never idled)
     * while lag still grew, or the backlog would take longer than the window to drain at the
     * current rate (a burst that already stopped growing still deserves more consumers). */
    int busy = 1;
    for (int i = 0; i < need; i++) busy &= p->rate_hist[p->nlag - need + i] > 0;
    double drain_ms = rate > 0 ? lh[need - 1] / (rate * p->tasks) * 1000.0 : 0;
    int behind = lh[need - 1] > S.o->scale_lag_low && drain_ms > (double)window;
    if ((grew || behind) && busy && p->tasks < limit) {
        to = p->tasks + 1;
        why = grew ? "consumer lag grew over the window while every task was busy"
                   : "the backlog would take longer than the window to drain while every task was busy";
    } else if (low && p->tasks > p->tasks_min) {
        to = p->tasks - 1;
        why = "consumer lag stayed near zero over the window";
    }
    if (!why) return;
    log_info("pipeline %s: scaling from %d to %d tasks: %s (lag %.0f, %.0f records/s per task, %d partitions, %d owned)",
             p->name, p->tasks, to, why, lag, rate, partitions, owned);
    p->tasks = to;
    p->nlag = 0;
    request_restart(p); /* SIGTERM: the child drains and commits, then starts with the new count */
}

/* ---- the loop ------------------------------------------------------------------------------ */

static int watch_dirs(void)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        log_warn("inotify unavailable (%s); reload with SIGHUP", strerror(errno));
        return -1;
    }
    size_t nsrc = S.o->nsources + (S.pipeline_dir ? 1 : 0);
    for (size_t i = 0; i < nsrc; i++) {
        const char *src = i < S.o->nsources ? S.o->sources[i] : S.pipeline_dir;
        struct stat st;
        char *dir = xstrdup(src);
        if (stat(src, &st) != 0 || !S_ISDIR(st.st_mode)) {
            char *d = xstrdup(dirname(dir)); /* a file: watch its directory */
            free(dir);
            dir = d;
        }
        if (inotify_add_watch(fd, dir, IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE) < 0)
            log_warn("cannot watch %s: %s", dir, strerror(errno));
        free(dir);
    }
    return fd;
}

/* Drains inotify; true when a definition file may have changed. */
static int read_inotify(int fd)
{
    char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
    int relevant = 0;
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        for (char *at = buf; at < buf + r;) {
            struct inotify_event *e = (struct inotify_event *)at;
            size_t l = e->len ? strlen(e->name) : 0;
            if (l && e->name[0] != '.' &&
                ((l > 5 && !strcmp(e->name + l - 5, ".yaml")) || (l > 4 && !strcmp(e->name + l - 4, ".yml"))))
                relevant = 1;
            at += sizeof *e + e->len;
        }
    return relevant;
}

int supervisor_run(const sup_options *o)
{
    memset(&S, 0, sizeof S);
    S.o = o;
    if (o->pipeline_dir) {
        char abs[PATH_MAX];
        if (!realpath(o->pipeline_dir, abs)) {
            if (mkdir(o->pipeline_dir, 0755) != 0 || !realpath(o->pipeline_dir, abs)) {
                fprintf(stderr, "sluice: pipeline directory %s: %s\n", o->pipeline_dir, strerror(errno));
                return 2;
            }
        }
        S.pipeline_dir = xstrdup(abs);
    }
    /* Check everything before starting anything: a bad file means nothing runs. */
    if (reload(1)) {
        while (S.n) remove_pipeline(S.p[S.n - 1]);
        free(S.p);
        free(S.pipeline_dir);
        return 2;
    }
    if (!S.n && !o->rest_listen) {
        fputs("sluice run: no pipeline files given\n", stderr);
        free(S.pipeline_dir);
        return 2;
    }
    sl_http *http = NULL;
    if (o->rest_listen) {
        char err[512];
        http = http_start(o->rest_listen, o->max_body ? o->max_body : (1 << 20), rest_handle, NULL, err, sizeof err);
        if (!http) {
            log_error("REST API: %s (use --rest ADDR to pick another address, or --no-rest)", err);
            while (S.n) remove_pipeline(S.p[S.n - 1]);
            free(S.p);
            free(S.pipeline_dir);
            return 1;
        }
        char host[64];
        snprintf(host, sizeof host, "%.*s", (int)(strrchr(o->rest_listen, ':') - o->rest_listen), o->rest_listen);
        snprintf(S.worker_id, sizeof S.worker_id, "%s:%d", host, http_port(http));
        log_info("REST API listening on http://%s/", S.worker_id);
    }
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_hup;
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    int ino = watch_dirs();
    long long stop_deadline = 0, reload_at = 0;
    for (;;) {
        long long now = sl_monotonic_ms();
        if (stop_signal && !S.stopping) {
            S.stopping = 1;
            stop_deadline = now + STOP_GRACE_MS;
            log_info("stopping %zu pipelines (signal %d)", S.n, (int)stop_signal);
            for (size_t i = 0; i < S.n; i++) {
                if (S.p[i]->pid > 0) kill(S.p[i]->pid, SIGTERM);
                if (S.p[i]->state == SUP_WAITING) S.p[i]->state = SUP_FINISHED;
            }
        }
        if (S.stopping && now > stop_deadline) {
            for (size_t i = 0; i < S.n; i++)
                if (S.p[i]->pid > 0) {
                    log_warn("pipeline %s did not stop in time; killing it", S.p[i]->name);
                    kill(S.p[i]->pid, SIGKILL);
                }
            stop_deadline = now + 5000;
        }
        if (hup_signal && !S.stopping) {
            hup_signal = 0;
            log_info("SIGHUP: reloading pipeline definitions");
            reload(0);
        }
        if (reload_at && now >= reload_at && !S.stopping) {
            reload_at = 0;
            reload(0);
        }
        int active = 0, alive = 0;
        for (size_t i = 0; i < S.n; i++) {
            sup_pipeline *p = S.p[i];
            if (!S.stopping && p->state == SUP_WAITING && now >= p->next_start_ms) start_child(p);
            if (!S.stopping) autoscale(p, now);
            /* Pipelines managed over REST (in the pipeline directory) keep a serving supervisor
             * up even when they failed or finished: they can be fixed and restarted. */
            active += p->state == SUP_RUNNING || p->state == SUP_WAITING || p->state == SUP_STOPPED || p->pid > 0 ||
                      (http && p->editable);
            alive += p->pid > 0;
        }
        /* Done when every pipeline has ended by itself; with REST and no pipelines at all the
         * supervisor waits for some to be created. A failed one ends the run too (exit 1). */
        if (S.stopping ? !alive : (!active && (S.n || !http))) break;

        size_t cap = S.n + 2, np = 0;
        struct pollfd *pfd = xcalloc(cap, sizeof *pfd);
        for (size_t i = 0; i < S.n; i++)
            if (S.p[i]->status_fd >= 0) pfd[np++] = (struct pollfd){.fd = S.p[i]->status_fd, .events = POLLIN};
        if (http) pfd[np++] = (struct pollfd){.fd = http_fd(http), .events = POLLIN};
        if (ino >= 0) pfd[np++] = (struct pollfd){.fd = ino, .events = POLLIN};
        int timeout = 100, ht = http ? http_timeout_ms(http) : -1;
        if (ht >= 0 && ht < timeout) timeout = ht;
        poll(pfd, np, timeout);
        free(pfd);
        for (size_t i = 0; i < S.n; i++)
            if (S.p[i]->status_fd >= 0) read_status(S.p[i]);
        if (http) http_run(http);
        if (ino >= 0 && read_inotify(ino)) reload_at = sl_monotonic_ms() + RELOAD_DEBOUNCE_MS;
        lag_update(S.p, S.n);

        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
            for (size_t i = 0; i < S.n; i++)
                if (S.p[i]->pid == pid) {
                    reaped(S.p[i], status);
                    break;
                }
    }
    int rc = 0;
    for (size_t i = 0; i < S.n; i++)
        if (S.p[i]->state == SUP_FAILED || (!S.stopping && S.p[i]->last_exit != 0))
            rc = rc == 2 || S.p[i]->last_exit == 2 ? 2 : 1; /* a config error keeps its code */
    http_stop(http);
    lag_stop();
    if (ino >= 0) close(ino);
    while (S.n) remove_pipeline(S.p[S.n - 1]);
    free(S.p);
    free(S.pipeline_dir);
    metrics_free(&S.http_requests);
    return rc;
}
