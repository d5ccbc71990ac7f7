/* top.c — `sluice top`: a terminal view of a running host, refreshed by the live status stream
 * (GET /api/live, one event a second): pipelines, tasks, state, restarts, consumer lag, and per
 * stage records in/out per second, rejected, p99 batch time and how busy the stage is. Keys act
 * on the selected pipeline through the REST API: p pause, r resume, x restart; j/k or arrows
 * select, q quits. Plain ANSI escapes, no curses. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "cli_http.h"

static const char top_usage[] =
    "usage: sluice top [--rest ADDR] [--state-dir DIR]\n"
    "A live view of a running `sluice run`, refreshed every second.\n"
    "Keys: j/k or arrows select a pipeline; p pause, r resume, x restart it; q quit.\n";

static struct termios saved_tio;
static int tio_saved;
static volatile sig_atomic_t quit;

static void restore_tty(void)
{
    if (tio_saved) tcsetattr(0, TCSANOW, &saved_tio);
    fputs("\033[?25h\033[?1049l", stdout); /* cursor back, leave the alternate screen */
    fflush(stdout);
}

static void on_sig(int sig)
{
    (void)sig;
    quit = 1;
}

typedef struct top {
    cli_conn conn;
    cJSON *view;  /* the latest status event */
    int sel;      /* selected pipeline */
    char msg[256];
    int connected;
} top;

static const cJSON *pipelines(const top *t) { return cJSON_GetObjectItemCaseSensitive(t->view, "pipelines"); }

static double num(const cJSON *o, const char *k, int *has)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (has) *has = cJSON_IsNumber(v);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

static void cell_rate(const cJSON *s, const char *k)
{
    int has;
    double v = num(s, k, &has);
    if (has) printf(" %10.1f", v);
    else printf(" %10s", "-");
}

static void draw(top *t)
{
    time_t now = time(NULL);
    char clock[16];
    strftime(clock, sizeof clock, "%H:%M:%S", localtime(&now));
    fputs("\033[H\033[2J", stdout);
    printf("\033[1msluice top\033[0m  %s  %s  %s\n", t->conn.base, clock, t->connected ? "" : "\033[31m(disconnected)\033[0m");
    printf("keys: j/k select  p pause  r resume  x restart  q quit\n\n");
    const cJSON *ps = pipelines(t);
    int n = cJSON_GetArraySize(ps);
    if (t->sel >= n) t->sel = n ? n - 1 : 0;
    if (!t->view) printf("waiting for the first figures…\n");
    else if (!n) printf("no pipelines\n");
    printf("\033[7m  %-24s %-11s %5s %8s %10s\033[0m\n", "PIPELINE", "STATE", "TASKS", "RESTARTS", "LAG");
    const cJSON *p;
    int i = 0;
    cJSON_ArrayForEach(p, ps)
    {
        int has;
        double lag = num(p, "lag", &has);
        char lagtxt[32];
        if (has) snprintf(lagtxt, sizeof lagtxt, "%.0f", lag);
        else snprintf(lagtxt, sizeof lagtxt, "-");
        const char *state = str(p, "state");
        const char *colour = !strcmp(state, "RUNNING") ? "\033[32m" : !strcmp(state, "PAUSED") ? "\033[33m" : "\033[31m";
        printf("%s %-24s %s%-11s\033[0m %5.0f %8.0f %10s\n", i == t->sel ? "\033[1m>" : " ", str(p, "name"), colour, state,
               num(p, "tasks", NULL), num(p, "restarts", NULL), lagtxt);
        printf("\033[0m    %-18s %-14s %10s %10s %10s %10s %9s %5s\n", "STAGE", "USE", "IN/s", "OUT/s", "REJ/s", "REJECTED",
               "P99 ms", "BUSY");
        const cJSON *s;
        cJSON_ArrayForEach(s, cJSON_GetObjectItemCaseSensitive(p, "stages"))
        {
            /* The dead-letter sink is not in the chain: say what it is. */
            printf("    %-18.18s %-14.14s", str(s, "name"), cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "dead_letter")) ? "(dead letter)" : str(s, "use"));
            cell_rate(s, "in_per_s");
            cell_rate(s, "out_per_s");
            cell_rate(s, "rejected_per_s");
            printf(" %10.0f", num(s, "rejected", NULL));
            const cJSON *p99 = cJSON_GetObjectItemCaseSensitive(s, "p99_ms");
            if (cJSON_IsNumber(p99)) printf(" %9.1f", p99->valuedouble);
            else printf(" %9s", cJSON_IsString(p99) ? p99->valuestring : "-");
            double busy = num(s, "busy", &has);
            if (has) printf(" %4.0f%%", busy * 100);
            else printf(" %5s", "-");
            putchar('\n');
        }
        i++;
    }
    if (t->msg[0]) printf("\n%s\n", t->msg);
    fflush(stdout);
}

static int on_event(const char *event, const char *data, void *arg)
{
    top *t = arg;
    if (strcmp(event, "status")) return 0;
    cJSON *j = cJSON_Parse(data);
    if (j) {
        cJSON_Delete(t->view);
        t->view = j;
        t->connected = 1;
        draw(t);
    }
    return quit;
}

static void act(top *t, const char *verb)
{
    const cJSON *p = cJSON_GetArrayItem(pipelines(t), t->sel);
    if (!p) return;
    const char *name = str(p, "name");
    char path[512];
    snprintf(path, sizeof path, "/connectors/%s/%s", name, verb);
    sl_buf out = {0};
    long st = cli_request(&t->conn, strcmp(verb, "restart") ? "PUT" : "POST", path, NULL, &out);
    if (st >= 200 && st < 300) snprintf(t->msg, sizeof t->msg, "%s: %s requested", name, verb);
    else if (st < 0) snprintf(t->msg, sizeof t->msg, "%s %s: %.*s", verb, name, (int)out.len, out.data ? out.data : "");
    else {
        cJSON *j = cJSON_ParseWithLength(out.data ? out.data : "", out.len);
        snprintf(t->msg, sizeof t->msg, "%s %s: HTTP %ld %s", verb, name, st, str(j, "message"));
        cJSON_Delete(j);
    }
    buf_free(&out);
    draw(t);
}

static void key(top *t, const char *k, size_t n)
{
    int np = cJSON_GetArraySize(pipelines(t));
    for (size_t i = 0; i < n; i++) {
        char c = k[i];
        if (c == 033 && i + 2 < n + 0 && k[i + 1] == '[') { /* arrows: ESC [ A / B */
            c = k[i + 2] == 'A' ? 'k' : k[i + 2] == 'B' ? 'j' : 0;
            i += 2;
        }
        if (c == 'q' || c == 3) quit = 1;
        else if (c == 'j' && t->sel + 1 < np) t->sel++, draw(t);
        else if (c == 'k' && t->sel > 0) t->sel--, draw(t);
        else if (c == 'p') act(t, "pause");
        else if (c == 'r') act(t, "resume");
        else if (c == 'x') act(t, "restart");
    }
}

int cmd_top(int argc, char **argv)
{
    static const struct option longs[] = {{"rest", required_argument, 0, 'a'}, {"state-dir", required_argument, 0, 's'},
                                          {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *rest = NULL, *state = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longs, NULL)) != -1) {
        if (c == 'a') rest = optarg;
        else if (c == 's') state = optarg;
        else if (c == 'h') {
            fputs(top_usage, stdout);
            return 0;
        } else {
            fputs(top_usage, stderr);
            return 2;
        }
    }
    if (optind != argc) {
        fputs(top_usage, stderr);
        return 2;
    }
    top t = {0};
    if (cli_conn_init(&t.conn, rest, state)) return 1;
    if (isatty(0) && tcgetattr(0, &saved_tio) == 0) {
        struct termios raw = saved_tio;
        raw.c_lflag &= (tcflag_t) ~(ICANON | ECHO);
        raw.c_cc[VMIN] = 0;
        raw.c_cc[VTIME] = 0;
        tcsetattr(0, TCSANOW, &raw);
        tio_saved = 1;
    }
    fputs("\033[?1049h\033[?25l", stdout); /* alternate screen, no cursor */
    atexit(restore_tty);
    signal(SIGINT, on_sig);
    signal(SIGTERM, on_sig);
    signal(SIGHUP, on_sig);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURLM *m = curl_multi_init();
    cli_sse s = {.fn = on_event, .arg = &t};
    struct curl_slist *hd = NULL;
    CURL *h = NULL;
    long long retry_at = 0;
    int rc = 0;
    draw(&t);
    while (!quit) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        long long now = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
        if (!h && now >= retry_at) {
            s.status = 0;
            s.stop = 0;
            s.pending.len = s.error.len = 0;
            h = cli_sse_handle(&t.conn, "/api/live", &s, &hd);
            curl_multi_add_handle(m, h);
        }
        int running = 0;
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE) {
                if (s.status > 1 && s.status != 200) {
                    snprintf(t.msg, sizeof t.msg, "GET /api/live: HTTP %ld", s.status);
                    if (s.status == 401 || s.status == 403) {
                        rc = 1;
                        quit = 1;
                    }
                } else {
                    snprintf(t.msg, sizeof t.msg, "disconnected: %s; retrying", curl_easy_strerror(msg->data.result));
                }
                t.connected = 0;
                curl_multi_remove_handle(m, h);
                curl_easy_cleanup(h);
                curl_slist_free_all(hd);
                h = NULL;
                hd = NULL;
                retry_at = now + 1000;
                draw(&t);
            }
        struct curl_waitfd in = {.fd = 0, .events = CURL_WAIT_POLLIN};
        int nfds = 0;
        curl_multi_poll(m, &in, 1, 200, &nfds);
        if (in.revents & CURL_WAIT_POLLIN) {
            char k[16];
            ssize_t r = read(0, k, sizeof k);
            if (r > 0) key(&t, k, (size_t)r);
            else if (r == 0 && !isatty(0)) quit = 1; /* stdin closed */
        }
    }
    if (h) {
        curl_multi_remove_handle(m, h);
        curl_easy_cleanup(h);
    }
    curl_slist_free_all(hd);
    curl_multi_cleanup(m);
    curl_global_cleanup();
    cJSON_Delete(t.view);
    buf_free(&s.pending);
    buf_free(&s.error);
    return rc;
}
