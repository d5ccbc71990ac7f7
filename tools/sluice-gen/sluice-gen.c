/*
 * sluice-gen — the reference application's event generator (the seed's Node.js generator).
 *
 * Serves realistic e-commerce events over HTTP (libmicrohttpd) or pushes them as NDJSON to a
 * sluice http-source in listen mode (libcurl). The events follow
 * pipelines/ecommerce-event.schema.yaml; a configurable share is invalid, duplicated or late.
 * See README.md next to this file for the API.
 *
 * Threads: a small pool of MHD threads serves requests, a clock thread generates `rate`
 * events/s into a bounded buffer, and main waits for SIGINT/SIGTERM. One mutex guards everything
 * shared (the generator, the buffer, the counters and the record file), so there is one global
 * event order: same seed + same config + same requests => same bytes. A large emit takes the
 * mutex in chunks, so other requests and the clock go on meanwhile.
 *
 * The buffer is also a replay window: `GET /gen/events?after=SEQ` reads by cursor without
 * removing anything (the first such request switches the buffer from "drop the newest when
 * full" to "evict the oldest"), and says so (410 + X-Seq-Oldest) when a cursor has fallen out.
 */
#include "gen.h"

/* ---- logging --------------------------------------------------------------------------- */

void logf_(const char *level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char ts[32];
    sl_ts_format(sl_wall_ms(), 1, ts);
    fprintf(stderr, "ts=%s level=%s prog=sluice-gen msg=\"%s\"\n", ts, level, msg);
}

void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        log_error("out of memory");
        abort();
    }
    return p;
}

void sb_add(sl_gbuf *b, const char *s, size_t n)
{
    sl_gbuf_put(b, s, n);
    if (b->oom) {
        log_error("out of memory");
        abort();
    }
}

void sb_adds(sl_gbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- push mode --------------------------------------------------------------------------- */

static volatile sig_atomic_t push_stop;
static void on_push_signal(int sig) { (void)sig, push_stop = 1; }

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
}

/*
 * Posts NDJSON batches to URL at the configured rate (0 = as fast as the receiver takes them)
 * until `count` events are sent or a signal arrives. A failed batch is retried as is (the
 * receiver may have durable acks), giving up after `retries` failures in a row.
 */
static int run_push(struct app *a, const char *url, uint64_t count, size_t batch, int retries)
{
    struct sigaction sa = {.sa_handler = on_push_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    CURL *h = curl_easy_init();
    if (!h)
        return 1;
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);

    double rate = a->gen.cfg.rate;
    /* At low rates send small batches often (~20 a second) rather than one big one a minute. */
    if (rate > 0 && rate / 20 < (double)batch)
        batch = rate / 20 >= 1 ? (size_t)(rate / 20) : 1;

    sl_gbuf body = {0};
    uint64_t sent = 0, batches = 0, failures = 0;
    int streak = 0, rc = 0;
    double t0 = mono_now();
    while (!push_stop && (count == 0 || sent < count)) {
        size_t n = count ? (size_t)fmin((double)batch, (double)(count - sent)) : batch;
        if (rate > 0)
            sleep_s(t0 + (double)sent / rate - mono_now());
        if (push_stop)
            break;
        body.len = 0;
        pthread_mutex_lock(&a->mu);
        for (size_t i = 0; i < n; i++) {
            const struct gen_out *o = produce(a, D_PUSH);
            sb_add(&body, o->json, o->len);
            sb_add(&body, "\n", 1);
        }
        if (a->record)
            fflush(a->record);
        pthread_mutex_unlock(&a->mu);

        for (;;) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.p);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
            CURLcode cc = curl_easy_perform(h);
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            if (cc == CURLE_OK && status >= 200 && status < 300) {
                streak = 0;
                break;
            }
            failures++;
            if (++streak > retries || push_stop) {
                log_error("push to %s failed %d times in a row (last: %s, HTTP %ld); giving up",
                          url, streak, curl_easy_strerror(cc), status);
                rc = 1;
                goto done;
            }
            log_warn("push failed (%s, HTTP %ld); retrying the batch", curl_easy_strerror(cc),
                     status);
            sleep_s(fmin(2.0, 0.1 * (1 << (streak < 5 ? streak - 1 : 4))));
        }
        sent += n;
        batches++;
    }
done:;
    double el = mono_now() - t0;
    printf("sent %" PRIu64 " events in %" PRIu64 " batches in %.3f s: %.0f events/s "
           "(%" PRIu64 " failed requests retried)\n",
           sent, batches, el, el > 0 ? (double)sent / el : 0.0, failures);
    fflush(stdout);
    free(body.p);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return rc;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sluice-gen [options]\n"
            "  --listen ADDR:PORT   serve the HTTP API (default 127.0.0.1:7070; port 0 = any)\n"
            "  --rate N             events/s (default 100; in push mode 0 = unpaced)\n"
            "  --seed N             PRNG seed, 0..2^53-1 (default: from the time, logged)\n"
            "  --config JSON        initial config, same fields as PUT /gen/config\n"
            "  --stopped            start with the clock stopped (running=false)\n"
            "  --buffer N           events /gen/events can hold (default 100000)\n"
            "  --fixed-clock MS     event time starts at MS (epoch ms) and advances 1/rate s\n"
            "                       per event: byte-identical runs for tests\n"
            "  --record FILE        append every event as {\"seq\",\"class\",...,\"event\"}\n"
            "  --cors-origin URL    a dashboard origin allowed to call the API (repeatable; default\n"
            "                       http://127.0.0.1:8083 and http://localhost:8083)\n"
            "  --push URL           push NDJSON batches to URL instead of serving\n"
            "  --count N            push mode: stop after N events (default: until a signal)\n"
            "  --batch N            push mode: events per request (default 1000)\n"
            "  --retries N          push mode: failures in a row before giving up (default 10)\n"
            "  --version, --help\n");
}

static bool arg_num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo && v <= hi)) {
        log_error("%s: expected a number from %.0f to %.0f, got \"%s\"", opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    enum { O_LISTEN = 256, O_RATE, O_SEED, O_CONFIG, O_STOPPED, O_BUFFER, O_FIXED, O_RECORD,
           O_PUSH, O_COUNT, O_BATCH, O_RETRIES, O_CORS, O_VERSION, O_HELP };
    static const struct option opts[] = {
        {"listen", 1, 0, O_LISTEN}, {"rate", 1, 0, O_RATE}, {"seed", 1, 0, O_SEED},
        {"config", 1, 0, O_CONFIG}, {"stopped", 0, 0, O_STOPPED}, {"buffer", 1, 0, O_BUFFER},
        {"fixed-clock", 1, 0, O_FIXED}, {"record", 1, 0, O_RECORD}, {"push", 1, 0, O_PUSH},
        {"count", 1, 0, O_COUNT}, {"batch", 1, 0, O_BATCH}, {"retries", 1, 0, O_RETRIES},
        {"cors-origin", 1, 0, O_CORS}, {"version", 0, 0, O_VERSION}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};

    static struct app app; /* static: large, and zeroed */
    struct app *a = &app;
    a->gen.cfg = config_defaults;
    const char *listen_spec = "127.0.0.1:7070", *record_path = NULL, *push_url = NULL;
    double buffer = 100000, count = 0, batch = 1000, retries = 10, v;
    bool seed_given = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char err[200];
        const char *field;
        bool reseed = false;
        switch (opt) {
        case O_LISTEN: listen_spec = optarg; break;
        case O_RATE:
            if (!arg_num("--rate", optarg, 0, MAX_RATE, &a->gen.cfg.rate))
                return 2;
            break;
        case O_SEED:
            if (!arg_num("--seed", optarg, 0, MAX_SEED, &v) || v != floor(v))
                return 2;
            a->gen.cfg.seed = (uint64_t)v;
            seed_given = true;
            break;
        case O_CONFIG: {
            const char *why = sl_json_strict(optarg, strlen(optarg));
            if (why) {
                log_error("--config: not acceptable JSON: %s", why);
                return 2;
            }
            cJSON *j = cJSON_Parse(optarg);
            bool ok = config_apply(&a->gen.cfg, j, err, sizeof err, &field, &reseed);
            cJSON_Delete(j);
            if (!ok) {
                log_error("--config: %s", j ? err : "not valid JSON");
                return 2;
            }
            seed_given |= reseed;
            break;
        }
        case O_STOPPED: a->gen.cfg.running = false; break;
        case O_BUFFER:
            if (!arg_num("--buffer", optarg, 1, 100000000, &buffer))
                return 2;
            break;
        case O_FIXED:
            if (!arg_num("--fixed-clock", optarg, 0, 253402300799999.0, &v))
                return 2;
            a->gen.fixed = true;
            a->gen.fixed_start_ms = (int64_t)v;
            break;
        case O_RECORD: record_path = optarg; break;
        case O_CORS:
            if (a->n_origins == MAX_ORIGINS || strncmp(optarg, "http", 4) || strchr(optarg, '*')) {
                log_error("--cors-origin: at most %d origins like http://127.0.0.1:8083, no wildcards",
                          MAX_ORIGINS);
                return 2;
            }
            a->origins[a->n_origins++] = optarg;
            break;
        case O_PUSH: push_url = optarg; break;
        case O_COUNT:
            if (!arg_num("--count", optarg, 0, 1e15, &count))
                return 2;
            break;
        case O_BATCH:
            if (!arg_num("--batch", optarg, 1, 1000000, &batch))
                return 2;
            break;
        case O_RETRIES:
            if (!arg_num("--retries", optarg, 0, 1000000, &retries))
                return 2;
            break;
        case O_VERSION: printf("sluice-gen %s\n", GEN_VERSION); return 0;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        log_error("unexpected argument \"%s\"", argv[optind]);
        return 2;
    }
    if (!push_url && count > 0) {
        log_error("--count only applies with --push");
        return 2;
    }
    if (!seed_given) { /* random but reported, so a run can be replayed */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        a->gen.cfg.seed = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                                (uint64_t)getpid()) & ((1ull << 53) - 1);
    }

    if (!a->n_origins) { /* the dashboard at sluice's default REST address */
        a->origins[a->n_origins++] = "http://127.0.0.1:8083";
        a->origins[a->n_origins++] = "http://localhost:8083";
    }
    set_cors_origins(a->origins, a->n_origins);
    a->head_seq = 1;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        char epoch[24];
        snprintf(epoch, sizeof epoch, "%016" PRIx64,
                 mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 12)));
        set_seq_epoch(epoch);
    }
    pthread_mutex_init(&a->mu, NULL);
    a->gen.hist = xrealloc(NULL, sizeof(struct hist) * HIST_CAP);
    gen_reset(&a->gen);
    a->started = mono_now();
    if (record_path) {
        a->record = fopen(record_path, "a");
        if (!a->record) {
            log_error("--record %s: %s", record_path, strerror(errno));
            return 2;
        }
        setvbuf(a->record, NULL, _IOFBF, 1 << 20);
    }
    log_info("seed=%" PRIu64 " rate=%g", a->gen.cfg.seed, a->gen.cfg.rate);

    int rc = 0;
    if (push_url) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = run_push(a, push_url, (uint64_t)count, (size_t)batch, (int)retries);
        curl_global_cleanup();
    } else {
        /* Block the signals before any thread starts, so only main's sigwait sees them. */
        sigset_t sigs;
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);

        a->ring_cap = (size_t)buffer;
        a->ring = calloc(a->ring_cap, sizeof *a->ring);
        a->ring_len = calloc(a->ring_cap, sizeof *a->ring_len);
        char shown[300];
        int fd = listen_on(listen_spec, shown, sizeof shown);
        if (fd < 0 || !a->ring || !a->ring_len)
            return 2;
        /* A thread per connection: a long request (a big emit or poll) holds up only its own
         * connection. (In a pool, each worker serves its connections one handler at a time, so
         * a request that lands on the emit's worker waited for the whole emit.) */
        struct MHD_Daemon *d = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0, NULL,
            NULL, on_request, a,
            MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
            MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, 64u,
            MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
        if (!d) {
            log_error("cannot start the HTTP server on %s", shown);
            return 1;
        }
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&a->cv, &ca);
        pthread_condattr_destroy(&ca);
        clock_rebase(a);
        pthread_t clock_thr;
        pthread_create(&clock_thr, NULL, clock_main, a);

        printf("sluice-gen listening on http://%s\n", shown);
        fflush(stdout);
        log_info("listening on http://%s", shown);

        int sig = 0;
        sigwait(&sigs, &sig);
        log_info("signal %d: stopping", sig);
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(clock_thr, NULL);
        MHD_stop_daemon(d);
        pthread_cond_destroy(&a->cv);
        for (size_t i = 0; i < a->ring_n; i++)
            free(a->ring[(a->ring_head + i) % a->ring_cap]);
        free(a->ring);
        free(a->ring_len);
    }
    log_info("generated=%" PRIu64 " valid=%" PRIu64 " invalid=%" PRIu64 " duplicates=%" PRIu64
             " late=%" PRIu64 " dropped=%" PRIu64 " polled=%" PRIu64,
             a->st.generated, a->st.valid, a->st.invalid, a->st.duplicates, a->st.late,
             a->st.dropped, a->st.polled);
    if (a->record && fclose(a->record)) {
        log_error("--record: %s", strerror(errno));
        rc = 1;
    }
    free(a->gen.hist);
    pthread_mutex_destroy(&a->mu);
    return rc;
}
