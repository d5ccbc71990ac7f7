#include "supervisor.h"

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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "http.h"
#include "lag.h"
#include "loader.h"
#include "log.h"
#include "rest.h"
#include "tap.h"
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
    char *data_dir;     /* realpath of the directory REST pipelines' files stay in, or NULL */
    char worker_id[300];
} S;

static cfg_policy policy_for(int untrusted, const char *text)
{
    return (cfg_policy){.untrusted = untrusted, .data_dir = S.data_dir, .text = text};
}

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

/* A definition file's bytes, or NULL. Opened non-blocking and read only when it is a regular
 * file of at most YT_MAX_BYTES: a FIFO dropped into a watched directory must not hang the
 * supervisor. */
static char *read_whole(const char *path)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (off_t)YT_MAX_BYTES) {
        errno = fstat(fd, &st) == 0 && S_ISREG(st.st_mode) ? EFBIG : EINVAL;
        close(fd);
        return NULL;
    }
    sl_buf b = {0};
    char chunk[8192];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0 && b.len <= YT_MAX_BYTES) buf_put(&b, chunk, (size_t)r);
    close(fd);
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
    /* The child runs exactly the text that was checked (p->def), never the file on disk: a
     * refused reload or a file changed since stays out. */
    int text_fd = cfg_text_fd(p->def);
    if (text_fd < 0) {
        log_error("cannot hand pipeline %s its definition: %s", p->name, strerror(errno));
        close(st[0]);
        close(st[1]);
        close(ctl[0]);
        close(ctl[1]);
        p->next_start_ms = sl_monotonic_ms() + BACKOFF_MAX_MS;
        p->state = SUP_WAITING;
        return;
    }
    cfg_policy pol = policy_for(p->untrusted, NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot fork for pipeline %s: %s", p->name, strerror(errno));
        close(text_fd);
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
        /* Dies with the supervisor: an orphan would keep consuming, and a restarted supervisor
         * would run a second copy. SIGTERM so it drains and commits; the getppid check covers
         * a supervisor that died before prctl. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent) _exit(1);
        dup2(st[1], 3);
        dup2(ctl[0], 4);
        if (text_fd == 5) fcntl(5, F_SETFD, 0);
        else dup2(text_fd, 5);
        if (cfg_policy_to_env(&pol, 5) != 0) _exit(127);
        setenv("SLUICE_NO_PLUGIN_PROBE", "1", 1); /* the supervisor probed them */
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
    close(text_fd);
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
    tap_child_started(p); /* listeners of `sluice tap` outlive a restart */
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
            if (!tap_status_line(p, p->line.data)) { /* sluice tap samples share the pipe */
                set_str(&p->last_status, p->line.data);
                p->status_folded = 0;
            }
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

static int untrusted_text(int editable, const char *def)
{
    return editable && def && !strncmp(def, SUP_REST_MARKER, strlen(SUP_REST_MARKER));
}

const cfg_policy *sup_rest_policy(void)
{
    static cfg_policy pol;
    pol = policy_for(1, NULL);
    return &pol;
}

/* Fully checks the definition `text` of file `path` under the policy of its author (untrusted:
 * stages only by plugin name, paths confined, no ${VAR}, allow-listed settings only). On
 * success fills name and task bounds. The text checked is the text the child will run. */
static int check_file(const char *path, const char *text, int untrusted, char **name, int *tmin, int *tmax,
                      char *err, size_t errlen)
{
    cfg_policy pol = policy_for(untrusted, text);
    pipeline_cfg *c = pipeline_load_ex(path, &pol, err, errlen);
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
    p->untrusted = untrusted_text(p->editable, def);
    p->status_fd = p->ctl_fd = -1;
    p->state = SUP_WAITING;
    p->tasks_min = tmin;
    p->tasks_max = tmax;
    p->tasks = tmin;
    S.p = xrealloc(S.p, (S.n + 1) * sizeof *S.p);
    S.p[S.n++] = p;
    return p;
}

void sup_request_restart(sup_pipeline *p)
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
    int untrusted = from_rest || untrusted_text(p->editable, def);
    if (check_file(p->file, def, untrusted, &name, &tmin, &tmax, err, errlen)) {
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
    p->untrusted = untrusted;
    set_str(&p->reload_error, NULL);
    p->tasks_min = tmin;
    p->tasks_max = tmax;
    if (p->tasks < tmin) p->tasks = tmin;
    if (p->tasks > tmax) p->tasks = tmax;
    log_info("pipeline %s: definition changed; restarting it", p->name);
    if (p->state != SUP_STOPPED) sup_request_restart(p);
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
                    /* Only regular files (or links to them): a FIFO, socket or device is skipped. */
                    struct stat fst;
                    if (fstatat(dirfd(d), e->d_name, &fst, 0) != 0 || !S_ISREG(fst.st_mode)) {
                        log_warn("%s/%s is not a regular file; skipped", src, e->d_name);
                        continue;
                    }
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
            if (initial) fprintf(stderr, "%s: %s\n", files[i], errno == EINVAL ? "not a regular file" : strerror(errno));
            else log_error("%s: %s", files[i], errno == EINVAL ? "not a regular file" : strerror(errno));
            bad = 1;
            continue;
        }
        sup_pipeline *p = find_by_file(files[i]);
        if (p) {
            for (size_t j = 0; j < S.n; j++)
                if (S.p[j] == p) seen[j] = 1;
            if (strcmp(def, p->def)) {
                apply_change(p, def, 0, err, sizeof err);
            } else {
                free(def);
                set_str(&p->reload_error, NULL); /* back to the running definition */
            }
            continue;
        }
        char *name = NULL;
        int tmin, tmax;
        if (check_file(files[i], def, untrusted_text(in_pipeline_dir(files[i]), def), &name, &tmin, &tmax, err,
                       sizeof err)) {
            /* A REST-written file that no longer passes (a stricter policy, an edit by hand) must
             * not keep the supervisor from starting: the REST API is how it gets fixed. */
            int rest_written = untrusted_text(in_pipeline_dir(files[i]), def);
            if (initial && !rest_written) fprintf(stderr, "%s\n", err);
            else log_error("pipeline file refused%s: %s", rest_written ? " (re-create it over REST)" : "", err);
            bad |= !rest_written || !initial;
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

static int precheck(const char *name, sup_pipeline **p, char *err, size_t errlen)
{
    if (!cfg_valid_name(name)) {
        snprintf(err, errlen, "pipeline name is invalid: %s", CFG_NAME_RULE);
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

/* Checks a new definition of `name` as untrusted text at its final place (so relative paths
 * and messages are the final file's): on success *final is set (caller frees) and 0 is
 * returned, else an HTTP status with err set. Nothing is written. */
static int check_definition(const char *name, const char *yaml, sup_pipeline **p, char **final, int *tmin,
                            int *tmax, char *err, size_t errlen)
{
    int rc = precheck(name, p, err, errlen);
    if (rc) return rc;
    *final = *p ? xstrdup((*p)->file) : xasprintf("%s/%s.yaml", S.pipeline_dir, name);
    char *pname = NULL;
    if (check_file(*final, yaml, 1, &pname, tmin, tmax, err, errlen)) {
        free(*final);
        return 400;
    }
    rc = strcmp(pname, name) ? 400 : 0;
    if (rc) snprintf(err, errlen, "the definition names pipeline '%s', not '%s'", pname, name);
    free(pname);
    if (rc) free(*final);
    return rc;
}

int sup_check(const char *name, const char *yaml, char *err, size_t errlen)
{
    sup_pipeline *p = NULL;
    char *final;
    int tmin, tmax;
    int rc = check_definition(name, yaml, &p, &final, &tmin, &tmax, err, errlen);
    if (rc) return rc;
    free(final);
    return 0;
}

int sup_put(const char *name, const char *yaml, char *err, size_t errlen)
{
    sup_pipeline *p = NULL;
    char *final;
    int tmin, tmax;
    int rc = check_definition(name, yaml, &p, &final, &tmin, &tmax, err, errlen);
    if (rc) return rc;
    /* Persist what was checked; the child is handed p->def, never the file. */
    char *tmp = xasprintf("%s/.%s.yaml.tmp", S.pipeline_dir, name);
    int wrote = write_file_atomic(tmp, yaml, err, errlen) == 0;
    if (!wrote || rename(tmp, final) != 0) {
        if (wrote) snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, final, strerror(errno));
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
        sup_pipeline *np = add_pipeline(name, final, xstrdup(yaml), tmin, tmax);
        np->untrusted = 1; /* whatever its first line says: it came over REST */
        log_info("pipeline %s created over REST (%s)", name, final);
        rc = 201;
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
    sup_request_restart(p);
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
        cfg_forbid_dir(abs);
    }
    for (size_t i = 0; i < loader_dir_count(); i++) cfg_forbid_dir(loader_dir_at(i));
    if (o->data_dir) {
        char abs[PATH_MAX];
        if (!realpath(o->data_dir, abs)) {
            fprintf(stderr, "sluice: data directory %s: %s\n", o->data_dir, strerror(errno));
            free(S.pipeline_dir);
            return 2;
        }
        S.data_dir = xstrdup(abs);
        char why[512];
        /* The data directory may not be, or lie inside, a plugin or pipeline directory: a REST
         * pipeline writing there could plant code or definitions. */
        cfg_policy pol = policy_for(1, NULL);
        char *probe = cfg_resolve_path(&pol, NULL, "x", why, sizeof why);
        if (!probe) {
            fprintf(stderr, "sluice: data directory %s: %s\n", abs, why);
            free(S.pipeline_dir);
            free(S.data_dir);
            return 2;
        }
        free(probe);
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
            if (!S.stopping) sup_autoscale(p, now);
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
    free(S.data_dir);
    sup_metrics_free();
    return rc;
}
