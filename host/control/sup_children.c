/* sup_children.c — the supervisor's pipeline processes: start, read status, reap, restart,
 * and the control bytes REST's pause/resume send. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "sup_int.h"
#include "tap.h"

extern char **environ;

/* The child's environment: ours with the supervisor's settings on top (prepared in the parent,
 * so nothing runs between the spawn and the exec). */
typedef struct env_set {
    char **v;
    size_t n;
} env_set;

static void env_put(void *ctx, const char *name, const char *value)
{
    env_set *e = ctx;
    size_t l = strlen(name);
    for (size_t i = 0; i < e->n; i++)
        if (!strncmp(e->v[i], name, l) && e->v[i][l] == '=') {
            free(e->v[i]);
            e->v[i] = e->v[--e->n];
            e->v[e->n] = NULL;
            break;
        }
    if (!value) return;
    e->v = xrealloc(e->v, (e->n + 2) * sizeof *e->v);
    e->v[e->n++] = xasprintf("%s=%s", name, value);
    e->v[e->n] = NULL;
}

static void env_free(env_set *e)
{
    for (size_t i = 0; i < e->n; i++) free(e->v[i]);
    free(e->v);
}

/* fd moved to 10 or above (close-on-exec), so the child's dup2 onto 3, 4, 5 never overwrites
 * another of its sources. */
static int high_fd(int fd)
{
    if (fd >= 10) return fd;
    int h = fcntl(fd, F_DUPFD_CLOEXEC, 10);
    if (h < 0) return fd;
    close(fd);
    return h;
}

static void start_failed(sup_pipeline *p, const char *what, int err)
{
    log_error("cannot %s for pipeline %s: %s", what, p->name, strerror(err));
    p->next_start_ms = sl_monotonic_ms() + BACKOFF_MAX_MS;
    p->state = SUP_WAITING;
}

/* Starts `sluice __pipeline FILE` with posix_spawn: status pipe on fd 3, control pipe on fd 4,
 * the checked text on fd 5, default signal dispositions and mask. The child cannot be given
 * PR_SET_PDEATHSIG here (posix_spawn has no hook for it): it sets it itself first thing and
 * exits when its parent is no longer SLUICE_SUPERVISOR_PID (see cmd_pipeline in main.c). It also
 * stops on EOF of the control pipe, so a supervisor that is killed leaves no child behind. */
void sup_start_child(sup_pipeline *p)
{
    int st[2], ctl[2];
    if (pipe2(st, O_CLOEXEC) != 0) {
        start_failed(p, "create status pipe", errno);
        return;
    }
    if (pipe2(ctl, O_CLOEXEC) != 0) {
        start_failed(p, "create control pipe", errno);
        close(st[0]);
        close(st[1]);
        return;
    }
    /* The child runs exactly the text that was checked (p->def), never the file on disk: a
     * refused reload or a file changed since stays out. */
    int text_fd = cfg_text_fd(p->def);
    if (text_fd < 0) {
        start_failed(p, "hand over the definition", errno);
        close(st[0]);
        close(st[1]);
        close(ctl[0]);
        close(ctl[1]);
        return;
    }
    st[1] = high_fd(st[1]);
    ctl[0] = high_fd(ctl[0]);
    text_fd = high_fd(text_fd);

    env_set env = {0};
    for (char **e = environ; *e; e++) {
        env.v = xrealloc(env.v, (env.n + 2) * sizeof *env.v);
        env.v[env.n++] = xstrdup(*e);
        env.v[env.n] = NULL;
    }
    char num[32];
    cfg_policy pol = sup_policy_for(p->untrusted, NULL);
    cfg_policy_env(&pol, 5, env_put, &env);
    env_put(&env, "SLUICE_NO_PLUGIN_PROBE", "1"); /* the supervisor probed them */
    env_put(&env, "SLUICE_STATUS_FD", "3");
    env_put(&env, "SLUICE_CONTROL_FD", "4");
    snprintf(num, sizeof num, "%d", p->tasks);
    env_put(&env, "SLUICE_TASKS", num);
    snprintf(num, sizeof num, "%d", (int)getpid());
    env_put(&env, "SLUICE_SUPERVISOR_PID", num);

    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, st[1], 3); /* dup2 clears close-on-exec */
    posix_spawn_file_actions_adddup2(&fa, ctl[0], 4);
    posix_spawn_file_actions_adddup2(&fa, text_fd, 5);
    posix_spawnattr_init(&at);
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGTERM);
    sigaddset(&dfl, SIGINT);
    sigaddset(&dfl, SIGHUP);
    sigaddset(&dfl, SIGPIPE);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &dfl);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    char *argv[] = {"sluice", "__pipeline", p->file, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, sup.o->exe, &fa, &at, argv, env.v);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    env_free(&env);
    close(st[1]);
    close(ctl[0]);
    close(text_fd);
    if (rc != 0) {
        start_failed(p, "start sluice", rc);
        close(st[0]);
        close(ctl[1]);
        return;
    }
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

void sup_read_status(sup_pipeline *p)
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
            if (tap_status_line(p, p->line.data)) {
                /* a `sluice tap` sample: it shares the pipe */
            } else if (sup_status_parse(p->line.data, &p->status) == 0) {
                p->status_folded = 0;
            } else {
                log_warn("pipeline %s: unreadable status line ignored", p->name);
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

void sup_reaped(sup_pipeline *p, int status)
{
    if (p->status_fd >= 0) {
        sup_read_status(p);
        if (p->status_fd >= 0) close(p->status_fd);
        p->status_fd = -1;
    }
    if (p->ctl_fd >= 0) close(p->ctl_fd);
    p->ctl_fd = -1;
    p->pid = 0;
    /* Counters restart with every child: keep what this one counted. */
    if (p->status.valid && !p->status_folded) {
        metrics_merge(&p->base, &p->status.counters);
        p->status_folded = 1;
    }
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    p->last_exit = code;
    const char *why = p->status.error;
    if (p->deleting) {
        sup_remove_pipeline(p);
        return;
    }
    if (p->restart_pending && !sup.stopping) {
        p->restart_pending = 0;
        p->state = SUP_WAITING;
        p->next_start_ms = 0;
        p->restarts++;
        return;
    }
    p->restart_pending = 0;
    if (p->state == SUP_STOPPED || sup.stopping || code == 0) {
        if (p->state != SUP_STOPPED) p->state = SUP_FINISHED;
        log_info("pipeline %s %s (exit %d)", p->name, sup.stopping || p->state == SUP_STOPPED ? "stopped" : "finished", code);
        return;
    }
    char trace[1024];
    if (code == 2) {
        p->state = SUP_FAILED;
        snprintf(trace, sizeof trace, "configuration error (exit 2): %s", why ? why : "see the log");
        sup_set_str(&p->trace, trace);
        log_error("pipeline %s failed with a configuration error (exit 2); not restarting", p->name);
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
    sup_set_str(&p->trace, trace);
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
