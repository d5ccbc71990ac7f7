/* supervisor.c — the supervisor's singleton and its loop: signals, the children's status
 * pipes, the REST server, inotify, reaping. The parts live in sup_*.c (see sup_int.h). */
#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "http.h"
#include "loader.h"
#include "log.h"
#include "rest.h"
#include "sup_int.h"

sup_globals sup;

static volatile sig_atomic_t stop_signal, hup_signal;

static void on_stop(int sig) { stop_signal = sig; }
static void on_hup(int sig) { (void)sig; hup_signal = 1; }

size_t sup_count(void) { return sup.n; }
sup_pipeline *sup_at(size_t i) { return i < sup.n ? sup.p[i] : NULL; }
const sup_options *sup_opts(void) { return sup.o; }
const char *sup_worker_id(void) { return sup.worker_id; }
int sup_stopping(void) { return sup.stopping; }

sup_pipeline *sup_find(const char *name)
{
    for (size_t i = 0; i < sup.n; i++)
        if (!sup.p[i]->deleting && !strcmp(sup.p[i]->name, name)) return sup.p[i];
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

/* ---- the loop ------------------------------------------------------------------------------ */

static int watch_dirs(void)
{
    int fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (fd < 0) {
        log_warn("inotify unavailable (%s); reload with SIGHUP", strerror(errno));
        return -1;
    }
    size_t nsrc = sup.o->nsources + (sup.pipeline_dir ? 1 : 0);
    for (size_t i = 0; i < nsrc; i++) {
        const char *src = i < sup.o->nsources ? sup.o->sources[i] : sup.pipeline_dir;
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
    memset(&sup, 0, sizeof sup);
    sup.o = o;
    if (o->pipeline_dir) {
        char abs[PATH_MAX];
        if (!realpath(o->pipeline_dir, abs)) {
            if (mkdir(o->pipeline_dir, 0755) != 0 || !realpath(o->pipeline_dir, abs)) {
                fprintf(stderr, "sluice: pipeline directory %s: %s\n", o->pipeline_dir, strerror(errno));
                return 2;
            }
        }
        sup.pipeline_dir = xstrdup(abs);
        cfg_forbid_dir(abs);
    }
    for (size_t i = 0; i < loader_dir_count(); i++) cfg_forbid_dir(loader_dir_at(i));
    if (o->data_dir) {
        char abs[PATH_MAX];
        if (!realpath(o->data_dir, abs)) {
            fprintf(stderr, "sluice: data directory %s: %s\n", o->data_dir, strerror(errno));
            free(sup.pipeline_dir);
            return 2;
        }
        sup.data_dir = xstrdup(abs);
        char why[512];
        /* The data directory may not be, or lie inside, a plugin or pipeline directory: a REST
         * pipeline writing there could plant code or definitions. */
        cfg_policy pol = sup_policy_for(1, NULL);
        char *probe = cfg_resolve_path(&pol, NULL, "x", why, sizeof why);
        if (!probe) {
            fprintf(stderr, "sluice: data directory %s: %s\n", abs, why);
            free(sup.pipeline_dir);
            free(sup.data_dir);
            return 2;
        }
        free(probe);
    }
    /* Check everything before starting anything: a bad file means nothing runs. */
    if (sup_reload(1)) {
        while (sup.n) sup_remove_pipeline(sup.p[sup.n - 1]);
        free(sup.p);
        free(sup.pipeline_dir);
        return 2;
    }
    if (!sup.n && !o->rest_listen) {
        fputs("sluice run: no pipeline files given\n", stderr);
        free(sup.pipeline_dir);
        return 2;
    }
    sl_http *http = NULL;
    if (o->rest_listen) {
        char err[512];
        http = http_start(o->rest_listen, o->max_body ? o->max_body : (1 << 20), rest_handle, NULL, err, sizeof err);
        if (!http) {
            log_error("REST API: %s (use --rest ADDR to pick another address, or --no-rest)", err);
            while (sup.n) sup_remove_pipeline(sup.p[sup.n - 1]);
            free(sup.p);
            free(sup.pipeline_dir);
            return 1;
        }
        char host[64];
        snprintf(host, sizeof host, "%.*s", (int)(strrchr(o->rest_listen, ':') - o->rest_listen), o->rest_listen);
        snprintf(sup.worker_id, sizeof sup.worker_id, "%s:%d", host, http_port(http));
        log_info("REST API listening on http://%s/", sup.worker_id);
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
        if (stop_signal && !sup.stopping) {
            sup.stopping = 1;
            stop_deadline = now + STOP_GRACE_MS;
            log_info("stopping %zu pipelines (signal %d)", sup.n, (int)stop_signal);
            for (size_t i = 0; i < sup.n; i++) {
                if (sup.p[i]->pid > 0) kill(sup.p[i]->pid, SIGTERM);
                if (sup.p[i]->state == SUP_WAITING) sup.p[i]->state = SUP_FINISHED;
            }
        }
        if (sup.stopping && now > stop_deadline) {
            for (size_t i = 0; i < sup.n; i++)
                if (sup.p[i]->pid > 0) {
                    log_warn("pipeline %s did not stop in time; killing it", sup.p[i]->name);
                    kill(sup.p[i]->pid, SIGKILL);
                }
            stop_deadline = now + 5000;
        }
        if (hup_signal && !sup.stopping) {
            hup_signal = 0;
            log_info("SIGHUP: reloading pipeline definitions");
            sup_reload(0);
        }
        if (reload_at && now >= reload_at && !sup.stopping) {
            reload_at = 0;
            sup_reload(0);
        }
        int active = 0, alive = 0;
        for (size_t i = 0; i < sup.n; i++) {
            sup_pipeline *p = sup.p[i];
            if (!sup.stopping && p->state == SUP_WAITING && now >= p->next_start_ms) sup_start_child(p);
            if (!sup.stopping) sup_autoscale(p, now);
            /* Pipelines managed over REST (in the pipeline directory) keep a serving supervisor
             * up even when they failed or finished: they can be fixed and restarted. */
            active += p->state == SUP_RUNNING || p->state == SUP_WAITING || p->state == SUP_STOPPED || p->pid > 0 ||
                      (http && p->editable);
            alive += p->pid > 0;
        }
        /* Done when every pipeline has ended by itself; with REST and no pipelines at all the
         * supervisor waits for some to be created. A failed one ends the run too (exit 1). */
        if (sup.stopping ? !alive : (!active && (sup.n || !http))) break;

        size_t cap = sup.n + 2, np = 0;
        struct pollfd *pfd = xcalloc(cap, sizeof *pfd);
        for (size_t i = 0; i < sup.n; i++)
            if (sup.p[i]->status_fd >= 0) pfd[np++] = (struct pollfd){.fd = sup.p[i]->status_fd, .events = POLLIN};
        if (http) pfd[np++] = (struct pollfd){.fd = http_fd(http), .events = POLLIN};
        if (ino >= 0) pfd[np++] = (struct pollfd){.fd = ino, .events = POLLIN};
        int timeout = 100, ht = http ? http_timeout_ms(http) : -1;
        if (ht >= 0 && ht < timeout) timeout = ht;
        poll(pfd, np, timeout);
        free(pfd);
        for (size_t i = 0; i < sup.n; i++)
            if (sup.p[i]->status_fd >= 0) sup_read_status(sup.p[i]);
        if (http) http_run(http);
        if (ino >= 0 && read_inotify(ino)) reload_at = sl_monotonic_ms() + RELOAD_DEBOUNCE_MS;

        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
            for (size_t i = 0; i < sup.n; i++)
                if (sup.p[i]->pid == pid) {
                    sup_reaped(sup.p[i], status);
                    break;
                }
    }
    int rc = 0;
    for (size_t i = 0; i < sup.n; i++)
        if (sup.p[i]->state == SUP_FAILED || (!sup.stopping && sup.p[i]->last_exit != 0))
            rc = rc == 2 || sup.p[i]->last_exit == 2 ? 2 : 1; /* a config error keeps its code */
    http_stop(http);
    if (ino >= 0) close(ino);
    while (sup.n) sup_remove_pipeline(sup.p[sup.n - 1]);
    free(sup.p);
    free(sup.pipeline_dir);
    free(sup.data_dir);
    sup_metrics_free();
    return rc;
}
