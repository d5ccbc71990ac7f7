#include "supervisor.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
#define STABLE_MS 60000     /* a child that ran this long resets its backoff */
#define STOP_GRACE_MS 60000 /* then SIGKILL */

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig) { stop_signal = sig; }

static void start_child(sup_pipeline *p, const char *exe)
{
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0) {
        log_error("cannot create status pipe for %s: %s", p->name, strerror(errno));
        p->next_start_ms = sl_monotonic_ms() + BACKOFF_MAX_MS;
        p->state = SUP_WAITING;
        return;
    }
    pid_t pid = fork();
    if (pid < 0) {
        log_error("cannot fork for pipeline %s: %s", p->name, strerror(errno));
        close(fds[0]);
        close(fds[1]);
        p->next_start_ms = sl_monotonic_ms() + BACKOFF_MAX_MS;
        p->state = SUP_WAITING;
        return;
    }
    if (pid == 0) {
        /* Child: status pipe on fd 3, default signal dispositions, then exec a fresh sluice
         * (no state inherited from the parent's threads). */
        dup2(fds[1], 3);
        signal(SIGTERM, SIG_DFL);
        signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the whole group; the parent relays SIGTERM */
        signal(SIGHUP, SIG_DFL);
        setenv("SLUICE_STATUS_FD", "3", 1);
        execl(exe, "sluice", "__pipeline", p->file, (char *)NULL);
        fprintf(stderr, "level=error msg=\"exec %s failed: %s\"\n", exe, strerror(errno));
        _exit(127);
    }
    close(fds[1]);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    p->pid = pid;
    p->status_fd = fds[0];
    p->linelen = 0;
    p->state = SUP_RUNNING;
    p->started_ms = sl_monotonic_ms();
    log_info("pipeline %s started (pid %d, %s)", p->name, (int)pid, p->file);
}

static void read_status(sup_pipeline *p)
{
    for (;;) {
        ssize_t r = read(p->status_fd, p->linebuf + p->linelen, sizeof p->linebuf - p->linelen - 1);
        if (r <= 0) {
            if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(p->status_fd);
                p->status_fd = -1;
            }
            return;
        }
        p->linelen += (size_t)r;
        char *nl;
        while ((nl = memchr(p->linebuf, '\n', p->linelen))) {
            *nl = 0;
            free(p->last_status);
            p->last_status = xstrdup(p->linebuf);
            size_t used = (size_t)(nl - p->linebuf) + 1;
            memmove(p->linebuf, nl + 1, p->linelen - used);
            p->linelen -= used;
        }
        if (p->linelen >= sizeof p->linebuf - 1) p->linelen = 0; /* absurd line: drop it */
    }
}

static void reaped(sup_pipeline *p, int status, int stopping)
{
    if (p->status_fd >= 0) {
        read_status(p);
        if (p->status_fd >= 0) close(p->status_fd);
        p->status_fd = -1;
    }
    p->pid = 0;
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    p->last_exit = code;
    if (stopping || code == 0) {
        p->state = SUP_FINISHED;
        log_info("pipeline %s %s (exit %d)", p->name, stopping ? "stopped" : "finished", code);
        return;
    }
    if (code == 2) {
        p->state = SUP_FAILED;
        log_error("pipeline %s failed with a configuration error (exit 2); not restarting", p->name);
        return;
    }
    long long now = sl_monotonic_ms();
    if (now - p->started_ms >= STABLE_MS) p->restarts = 0;
    long long backoff = BACKOFF_MIN_MS;
    for (int i = 0; i < p->restarts && backoff < BACKOFF_MAX_MS; i++) backoff *= 2;
    if (backoff > BACKOFF_MAX_MS) backoff = BACKOFF_MAX_MS;
    p->restarts++;
    p->next_start_ms = now + backoff;
    p->state = SUP_WAITING;
    if (WIFSIGNALED(status))
        log_warn("pipeline %s crashed (signal %d); restart %d in %lld ms", p->name, WTERMSIG(status),
                 p->restarts, backoff);
    else
        log_warn("pipeline %s exited with code %d; restart %d in %lld ms", p->name, code, p->restarts, backoff);
}

int supervisor_run(sup_pipeline *ps, size_t n, const char *exe)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    for (size_t i = 0; i < n; i++) {
        ps[i].status_fd = -1;
        ps[i].state = SUP_WAITING;
        ps[i].next_start_ms = 0;
    }
    int stopping = 0;
    long long stop_deadline = 0;
    for (;;) {
        long long now = sl_monotonic_ms();
        if (stop_signal && !stopping) {
            stopping = 1;
            stop_deadline = now + STOP_GRACE_MS;
            log_info("stopping %zu pipelines (signal %d)", n, (int)stop_signal);
            for (size_t i = 0; i < n; i++) {
                if (ps[i].pid > 0) kill(ps[i].pid, SIGTERM);
                if (ps[i].state == SUP_WAITING) ps[i].state = SUP_FINISHED;
            }
        }
        if (stopping && now > stop_deadline) {
            for (size_t i = 0; i < n; i++)
                if (ps[i].pid > 0) {
                    log_warn("pipeline %s did not stop in time; killing it", ps[i].name);
                    kill(ps[i].pid, SIGKILL);
                }
            stop_deadline = now + 5000;
        }
        int active = 0;
        for (size_t i = 0; i < n; i++) {
            sup_pipeline *p = &ps[i];
            if (!stopping && p->state == SUP_WAITING && now >= p->next_start_ms) start_child(p, exe);
            active += p->state == SUP_RUNNING || p->state == SUP_WAITING;
        }
        if (!active) break;

        struct pollfd pfd[n ? n : 1];
        size_t np = 0;
        for (size_t i = 0; i < n; i++)
            if (ps[i].status_fd >= 0) pfd[np++] = (struct pollfd){.fd = ps[i].status_fd, .events = POLLIN};
        poll(pfd, np, 100);
        for (size_t i = 0; i < n; i++)
            if (ps[i].status_fd >= 0) read_status(&ps[i]);

        int status;
        pid_t pid;
        while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
            for (size_t i = 0; i < n; i++)
                if (ps[i].pid == pid) reaped(&ps[i], status, stopping);
    }
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (ps[i].state == SUP_FAILED || (!stopping && ps[i].last_exit != 0)) rc = 1;
    return rc;
}
