/*
 * bench_stages — figures for SPEC §11, through the real host in this process
 * (sl_run_pipeline_file, sluice_core):
 *   1. file-source -> validator -> dedup -> window-kpi -> null-sink on a pre-generated file of
 *      ~200-byte events like sluice-gen's (5 % duplicates), one task = one core; events/s,
 *      best of 3 (wall time of the whole run: start, read, JSON parse, three stages, acks,
 *      commits, drain). Also cJSON parsing alone on the same events, for scale.
 *   2. dedup memory per key at 10 M distinct keys: file-source -> dedup -> null-sink, heap in
 *      use at the final flush (null-sink's heap_file) minus the same pipeline over 1,000 keys.
 * Usage: bench_stages [EVENTS (default 2000000)] [KEYS (default 10000000)] [RUNS (default 3)]
 * BENCH_KPI=window runs the general window stage (the reference KPIs as YAML) instead of window-kpi.
 * Needs SLUICE_SOURCE_DIR and SLUICE_BUILD_DIR (set by `meson test --benchmark`).
 */
#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tap_child.h"
#include "runtime.h"

static char dir[256];
static const char *plugin_dirs[2];

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng = 12345;
static unsigned long long rnd(void)
{
    rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
    return rng >> 33;
}

/* Events like sluice-gen's: the 30-25-35-8-2 mix, ~200 bytes, time moving ~1 ms per event,
 * 5 % duplicates of a recent event. Returns the number of bytes written. */
static size_t generate(const char *path, size_t n)
{
    static const char *types[] = {"page_view", "add_to_cart", "purchase", "payment_failed", "refund"};
    FILE *f = fopen(path, "w");
    if (!f) {
        perror(path);
        exit(1);
    }
    char recent[64][512];
    int64_t ts = 1714521600000LL;
    size_t id = 0, bytes = 0;
    for (size_t i = 0; i < n; i++) {
        char buf[512];
        if (i > 64 && rnd() % 100 < 5) {
            snprintf(buf, sizeof buf, "%s", recent[rnd() % 64]);
        } else {
            int r = (int)(rnd() % 100), t = r < 30 ? 0 : r < 55 ? 1 : r < 90 ? 2 : r < 98 ? 3 : 4;
            ts += (int64_t)(rnd() % 3);
            time_t sec = (time_t)(ts / 1000);
            struct tm tm;
            gmtime_r(&sec, &tm);
            char tsbuf[40];
            strftime(tsbuf, sizeof tsbuf, "%Y-%m-%dT%H:%M:%S", &tm);
            snprintf(buf, sizeof buf,
                     "{\"event_id\":\"evt-%012zu\",\"event_type\":\"%s\",\"user_id\":\"user-%05llu\","
                     "\"session_id\":\"sess-%07llu\",\"product_id\":\"sku-%05llu\",\"quantity\":%llu,"
                     "\"amount\":%llu.%02llu,\"currency\":\"USD\",\"payment_method\":\"card\","
                     "\"ts\":\"%s.%03lldZ\"}",
                     id++, types[t], rnd() % 50000, rnd() % 1000000, rnd() % 20000, 1 + rnd() % 3,
                     rnd() % 500, rnd() % 100, tsbuf, (long long)(ts % 1000));
            memcpy(recent[i % 64], buf, sizeof buf);
        }
        bytes += (size_t)fprintf(f, "%s\n", buf);
    }
    fclose(f);
    return bytes;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        perror(path);
        exit(1);
    }
}

static double run_pipeline(const char *yaml_path)
{
    double t0 = now_s();
    /* SLUICE_BENCH_TAP=R: a `sluice tap` open on the second stage's output and the dead letters
     * at R records/s, samples written to /dev/null as to the supervisor (tap overhead). */
    static int status_fd = -2;
    if (status_fd == -2) {
        const char *tap = getenv("SLUICE_BENCH_TAP");
        status_fd = tap ? open("/dev/null", O_WRONLY) : -1;
        char cmd[128];
        snprintf(cmd, sizeof cmd, "T[{\"bit\":1,\"rate\":%s},{\"bit\":63,\"rate\":%s}]\n", tap ? tap : "", tap ? tap : "");
        for (const char *c = cmd; tap && *c; c++) tap_control_byte(*c);
    }
    int rc = sl_run_pipeline_file(yaml_path, plugin_dirs, 2, status_fd);
    if (rc) {
        fprintf(stderr, "pipeline %s failed (%d)\n", yaml_path, rc);
        exit(1);
    }
    return now_s() - t0;
}

static void bench_chain(size_t n, int runs)
{
    char in[512], yaml[512], text[8192];
    snprintf(in, sizeof in, "%s/events.ndjson", dir);
    size_t bytes = generate(in, n);
    printf("events: %zu, %.0f bytes on average\n", n, (double)bytes / n);

    /* cJSON parse alone, for scale (lines read back into memory first). */
    FILE *f = fopen(in, "r");
    char *line = NULL;
    size_t cap = 0;
    char **ev = malloc(n * sizeof *ev);
    for (size_t i = 0; i < n && getline(&line, &cap, f) > 0; i++)
        ev[i] = strdup(line);
    fclose(f);
    free(line);
    double best_parse = 1e9;
    for (int r = 0; r < runs; r++) {
        double t0 = now_s();
        for (size_t i = 0; i < n; i++)
            cJSON_Delete(cJSON_Parse(ev[i]));
        double t = now_s() - t0;
        best_parse = t < best_parse ? t : best_parse;
    }
    for (size_t i = 0; i < n; i++)
        free(ev[i]);
    free(ev);
    printf("cJSON parse only:                                 %9.0f events/s (%.0f ns/event)\n", n / best_parse,
           best_parse / n * 1e9);

    const char *src = getenv("SLUICE_SOURCE_DIR");
    /* BENCH_KPI=window: the general `window` stage configured as the reference KPIs
     * (pipelines/ecommerce-analytics-window.yaml) in place of window-kpi. */
    int win = getenv("BENCH_KPI") && !strcmp(getenv("BENCH_KPI"), "window");
    const char *kpi = win ? "window, with: {topic_prefix: kpi_, windows: [1m, 15m, 1h, 24h], aggregates: {"
                            "events: count, page_views: 'count where event_type == \"page_view\"', "
                            "add_to_cart: 'count where event_type == \"add_to_cart\"', "
                            "orders: 'count where event_type == \"purchase\"', "
                            "payment_failed: 'count where event_type == \"payment_failed\"', "
                            "refunds: 'count where event_type == \"refund\"', "
                            "gmv: 'sum(amount) scale 2 where event_type == \"purchase\"', "
                            "refund_amount: 'sum(amount) scale 2 where event_type == \"refund\"', "
                            "avg_order_value: '= gmv / orders scale 2', "
                            "success_rate: '= orders / (orders + payment_failed) decimals 6', "
                            "conversion_rate: '= orders / page_views decimals 6', "
                            "distinct_users: 'distinct(user_id) exact 0 sketch users_hll'},"
                          : "window-kpi, with: {";
    char chain[3][2048];
    static const char *kpi_with[3] = {"passthrough: false", "passthrough: true",
                                      "passthrough: true, count_after: process"};
    for (int pt = 0; pt < 3; pt++)
        snprintf(chain[pt], sizeof chain[pt],
                 "  - {name: v, use: validator, with: {schema: \"%s/pipelines/ecommerce-event.schema.yaml\"}}\n"
                 "  - {name: d, use: dedup, with: {key: event_id, ttl: 10m}}\n"
                 "  - {name: k, use: %s %s}}\n",
                 src ? src : ".", kpi, kpi_with[pt]);
    for (int variant = 0; variant < 4; variant++) {
        /* 0: the source and the sink alone (host floor); 1: the chain, passthrough false;
         * 2: passthrough true (what the analytics pipeline runs: count_after durable, one
         * watched ack group per event); 3: passthrough true, count_after: process. */
        snprintf(yaml, sizeof yaml, "%s/chain%d.yaml", dir, variant);
        snprintf(text, sizeof text,
                 "pipeline: bench-%d\nbatch_size: 1024\nstages:\n"
                 "  - {name: in, use: file-source, with: {path: \"%s\", offset_file: \"\"}}\n"
                 "%s"
                 "  - {name: out, use: null-sink}\n",
                 variant, in, variant == 0 ? "" : chain[variant - 1]);
        write_file(yaml, text);
        double best = 1e9;
        for (int r = 0; r < runs; r++) {
            double t = run_pipeline(yaml);
            best = t < best ? t : best;
        }
        static const char *names[] = {"file-source -> null-sink (host floor)           ",
                                      "... -> validator -> dedup -> window-kpi -> null ",
                                      "same, passthrough: true (count_after: durable)  ",
                                      "same, passthrough: true, count_after: process   "};
        printf("%s %9.0f events/s (%.0f ns/event, best of %d)%s\n", names[variant], n / best, best / n * 1e9, runs,
               variant && win ? " [BENCH_KPI=window: the window stage]" : "");
        fflush(stdout);
    }
    unlink(in);
}

static size_t dedup_heap(size_t keys)
{
    char in[512], yaml[512], heap[512], text[2048];
    snprintf(in, sizeof in, "%s/keys.ndjson", dir);
    snprintf(yaml, sizeof yaml, "%s/dedup.yaml", dir);
    snprintf(heap, sizeof heap, "%s/heap.txt", dir);
    FILE *f = fopen(in, "w");
    for (size_t i = 0; i < keys; i++)
        fprintf(f, "{\"event_id\":\"evt-%012zu\"}\n", i);
    fclose(f);
    snprintf(text, sizeof text,
             "pipeline: bench-dedup\nbatch_size: 4096\nstages:\n"
             "  - {name: in, use: file-source, with: {path: \"%s\", offset_file: \"\"}}\n"
             "  - {name: d, use: dedup, with: {key: event_id, ttl: 1000d, max_keys: %zu}}\n"
             "  - {name: out, use: null-sink, with: {heap_file: \"%s\"}}\n",
             in, keys, heap);
    write_file(yaml, text);
    run_pipeline(yaml);
    unlink(in);
    f = fopen(heap, "r");
    size_t h = 0;
    if (!f || fscanf(f, "%zu", &h) != 1) {
        fprintf(stderr, "no heap figure\n");
        exit(1);
    }
    fclose(f);
    return h;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 2000000;
    size_t keys = argc > 2 ? strtoull(argv[2], NULL, 10) : 10000000;
    int runs = argc > 3 ? atoi(argv[3]) : 3;
    const char *build = getenv("SLUICE_BUILD_DIR");
    static char pdir[2][1024];
    snprintf(pdir[0], sizeof pdir[0], "%s/plugins", build ? build : ".");
    snprintf(pdir[1], sizeof pdir[1], "%s/bench/stages", build ? build : ".");
    plugin_dirs[0] = pdir[0];
    plugin_dirs[1] = pdir[1];
    snprintf(dir, sizeof dir, "/tmp/sluice-bench-XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    setenv("SLUICE_LOG_LEVEL", "warn", 0);
    bench_chain(n, runs);
    if (keys) {
        size_t small = 1000, h0 = dedup_heap(small), h1 = dedup_heap(keys);
        printf("dedup memory: %zu keys, heap +%.1f MiB = %.1f bytes/key (target < 64)\n", keys,
               (double)(h1 - h0) / 1048576.0, (double)(h1 - h0) / (double)(keys - small));
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) ? 1 : 0;
}
