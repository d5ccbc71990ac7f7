/* t_push.c — push mode against a tiny NDJSON receiver standing in for http-source. */
#include "gentest.h"

struct receiver {
    pthread_mutex_t mu;
    sl_gbuf lines; /* every accepted line, normalised, newline-terminated */
    long requests, accepted_lines, max_batch, bad_lines;
    int fail_first; /* answer 503 to this many requests first */
};

struct upload {
    sl_gbuf body;
};

static enum MHD_Result rx_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)url, (void)version;
    struct receiver *rx = cls;
    struct upload *u = *con_cls;
    if (!u) {
        *con_cls = calloc(1, sizeof *u);
        return *con_cls ? MHD_YES : MHD_NO;
    }
    if (*size) {
        sb_add(&u->body, data, *size);
        *size = 0;
        return MHD_YES;
    }
    unsigned status = 200;
    pthread_mutex_lock(&rx->mu);
    rx->requests++;
    if (strcmp(method, "POST"))
        status = 405;
    else if (rx->fail_first > 0) {
        rx->fail_first--;
        status = 503;
    } else {
        long n = 0;
        for (char *line = u->body.p, *nl; line && (nl = strchr(line, '\n')); line = nl + 1) {
            *nl = '\0';
            cJSON *e = cJSON_Parse(line);
            if (!e) {
                rx->bad_lines++;
                continue;
            }
            char *s = cJSON_PrintUnformatted(e);
            sb_add(&rx->lines, s, strlen(s));
            sb_add(&rx->lines, "\n", 1);
            free(s);
            cJSON_Delete(e);
            n++;
        }
        rx->accepted_lines += n;
        if (n > rx->max_batch)
            rx->max_batch = n;
    }
    pthread_mutex_unlock(&rx->mu);
    struct MHD_Response *r = MHD_create_response_from_buffer(2, (void *)"{}",
                                                             MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static void rx_done(void *cls, struct MHD_Connection *c, void **con_cls,
                    enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)c, (void)code;
    struct upload *u = *con_cls;
    if (u) {
        sb_free(&u->body);
        free(u);
        *con_cls = NULL;
    }
}

static struct MHD_Daemon *rx_start(struct receiver *rx, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    REQUIRE(fd >= 0 && !bind(fd, (struct sockaddr *)&sa, sizeof sa) && !listen(fd, 16) &&
                !getsockname(fd, (struct sockaddr *)&sa, &sl), "receiver socket: %s",
            strerror(errno));
    *port = ntohs(sa.sin_port);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL,
                                            rx_request, rx, MHD_OPTION_LISTEN_SOCKET, fd,
                                            MHD_OPTION_NOTIFY_COMPLETED, rx_done, NULL,
                                            MHD_OPTION_END);
    REQUIRE(d, "receiver did not start");
    return d;
}

/* Runs sluice-gen in push mode to completion; returns its exit status and stdout. */
static int run_push(const char *const *args, sl_gbuf *out)
{
    int fd;
    pid_t pid = spawn(args, &fd);
    REQUIRE(pid > 0, "fork");
    read_out(fd, out, false, 60000);
    close(fd);
    sb_add(out, "", 0);
    return wait_exit(pid, 30000);
}

void t_push(void)
{
    struct receiver rx = {.mu = PTHREAD_MUTEX_INITIALIZER, .fail_first = 1};
    int port;
    struct MHD_Daemon *d = rx_start(&rx, &port);
    char url[128], *rec = tmp_path("push.ndjson");
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ingest", port);

    /* Unpaced: 20,000 events in batches of 700; the first request is refused and retried. */
    const char *args[] = {"--push", url, "--count", "20000", "--batch", "700", "--rate", "0",
                          "--seed", "3", "--record", rec, "--config",
                          "{\"invalid_pct\":5,\"duplicate_pct\":5,\"late_pct\":5}", NULL};
    sl_gbuf out = {0};
    int rc = run_push(args, &out);
    printf("  %s", out.p);
    CHECK(rc == 0, "push exit status %d", rc);
    CHECK(strstr(out.p, "sent 20000 events") && strstr(out.p, "events/s") &&
              strstr(out.p, "1 failed requests retried"), "summary: %s", out.p);
    pthread_mutex_lock(&rx.mu);
    CHECK(rx.accepted_lines == 20000 && rx.bad_lines == 0, "receiver got %ld lines (%ld bad)",
          rx.accepted_lines, rx.bad_lines);
    CHECK(rx.max_batch == 700, "largest batch %ld, want 700", rx.max_batch);
    size_t nr;
    struct rec *v = read_record(rec, &nr);
    sl_gbuf want = {0};
    size_t not_push = 0;
    for (size_t i = 0; i < nr; i++) {
        char *s = cJSON_PrintUnformatted(v[i].event);
        sb_add(&want, s, strlen(s));
        sb_add(&want, "\n", 1);
        free(s);
        not_push += strcmp(v[i].dest, "push") != 0;
    }
    CHECK(not_push == 0, "%zu records without dest push", not_push);
    CHECK(nr == 20000 && want.len == rx.lines.len && !memcmp(want.p, rx.lines.p, want.len),
          "received events differ from the record (%zu records)", nr);
    free_record(v, nr);
    sb_free(&want);

    /* Paced: at 2000 events/s batches shrink to rate/20 = 100 events. */
    rx.max_batch = rx.accepted_lines = 0;
    const char *paced[] = {"--push", url, "--count", "500", "--rate", "2000", "--seed", "4", NULL};
    sb_free(&out);
    pthread_mutex_unlock(&rx.mu);
    rc = run_push(paced, &out);
    printf("  %s", out.p);
    pthread_mutex_lock(&rx.mu);
    CHECK(rc == 0 && rx.accepted_lines == 500 && rx.max_batch == 100,
          "paced push: rc %d, %ld lines, largest batch %ld", rc, rx.accepted_lines, rx.max_batch);
    rx.accepted_lines = 0;
    pthread_mutex_unlock(&rx.mu);

    /* No --count: runs until SIGTERM, then exits 0 with a summary matching what arrived. */
    const char *endless[] = {"--push", url, "--rate", "400", "--seed", "5", NULL};
    int fd;
    pid_t pid = spawn(endless, &fd);
    REQUIRE(pid > 0, "fork");
    long got = 0;
    for (int i = 0; i < 500 && got < 40; i++) { /* bounded wait for the first batches */
        sleep_ms(20);
        pthread_mutex_lock(&rx.mu);
        got = rx.accepted_lines;
        pthread_mutex_unlock(&rx.mu);
    }
    CHECK(got >= 40, "endless push delivered only %ld events", got);
    kill(pid, SIGTERM);
    sb_free(&out);
    read_out(fd, &out, false, 20000);
    close(fd);
    sb_add(&out, "", 0);
    rc = wait_exit(pid, 20000);
    printf("  %s", out.p);
    char summary[64];
    pthread_mutex_lock(&rx.mu);
    snprintf(summary, sizeof summary, "sent %ld events", rx.accepted_lines);
    pthread_mutex_unlock(&rx.mu);
    CHECK(rc == 0 && strstr(out.p, summary), "after SIGTERM: rc %d, \"%s\", want \"%s\"", rc,
          out.p, summary);
    MHD_stop_daemon(d);

    /* Nobody listening: gives up after the allowed retries with status 1. */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ingest", port);
    const char *dead[] = {"--push", url, "--count", "10", "--retries", "1", NULL};
    sb_free(&out);
    rc = run_push(dead, &out);
    CHECK(rc == 1 && strstr(out.p, "sent 0 events"), "dead receiver: rc %d, %s", rc, out.p);
    sb_free(&out);
    sb_free(&rx.lines);
    free(rec);
}
