/*
 * bench_json — JSON libraries on the reference events (issue 13): parse one event and visit
 * every member, per event, for
 *   cJSON (malloc/free), cJSON with its hooks on an arena (the host before ABI 1.2), the host's
 *   own parser into an arena (host/json_tree.c), the same after the strict check (what
 *   api->json does per record), jansson 2.14 (json_loadb/json_decref), simdjson 3.0.1 On-Demand
 *   (built for baseline x86-64 and with -march=native) and DOM (C++ behind simdjson_shim.cc).
 * Events like bench/stages' (sluice-gen's shape, ~235 bytes, 10 members). The methods run
 * alternately, PASSES times each; medians are printed (the machine is shared: medians of
 * alternating passes, not one best run). Prints figures; never fails on time.
 * Usage: bench_json [EVENTS (default 500000)] [PASSES (default 7)]
 */
#include <cjson/cJSON.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json_tree.h"
#include "jsoncheck.h"
#include "simdjson_shim.h"
#undef SIMDJSON_SHIM_H
#undef SJ
#define SJ_NATIVE
#include "simdjson_shim.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char **ev;
static size_t *len, n;
static sl_arena arena;
static sj_parser *sj, *sjn;
static volatile double sink;

static double walk_cjson(const cJSON *o)
{
    double s = 0;
    for (const cJSON *m = o ? o->child : NULL; m; m = m->next)
        s += cJSON_IsString(m) ? (double)strlen(m->valuestring) : m->valuedouble;
    return s;
}

static double walk_host(const cJSON *o)
{
    double s = 0;
    for (const cJSON *m = o ? o->child : NULL; m; m = m->next)
        s += cJSON_IsString(m) ? (double)((const jnode *)m)->len : m->valuedouble;
    return s;
}

static void m_cjson(void)
{
    for (size_t i = 0; i < n; i++) {
        cJSON *j = cJSON_ParseWithLength(ev[i], len[i]);
        sink += walk_cjson(j);
        cJSON_Delete(j);
    }
}

static sl_arena *hook_arena;
static void *hook_malloc(size_t sz) { return arena_alloc(hook_arena, sz); }
static void hook_free(void *p) { (void)p; }

static void m_cjson_arena(void)
{
    cJSON_Hooks h = {hook_malloc, hook_free};
    hook_arena = &arena;
    cJSON_InitHooks(&h);
    for (size_t i = 0; i < n; i++) {
        cJSON *j = cJSON_ParseWithLength(ev[i], len[i]);
        sink += walk_cjson(j);
        if (i % 1024 == 1023) arena_reset(&arena); /* a batch */
    }
    arena_reset(&arena);
    cJSON_InitHooks(NULL);
}

static void m_host(void)
{
    for (size_t i = 0; i < n; i++) {
        sink += walk_host(jt_parse(&arena, ev[i], len[i]));
        if (i % 1024 == 1023) arena_reset(&arena);
    }
    arena_reset(&arena);
}

static void m_host_strict(void)
{
    for (size_t i = 0; i < n; i++) {
        if (!sl_json_strict(ev[i], len[i])) sink += walk_host(jt_parse(&arena, ev[i], len[i]));
        if (i % 1024 == 1023) arena_reset(&arena);
    }
    arena_reset(&arena);
}

static void m_strict(void)
{
    for (size_t i = 0; i < n; i++) sink += sl_json_strict(ev[i], len[i]) == NULL;
}

static void m_jansson(void)
{
    for (size_t i = 0; i < n; i++) {
        json_t *j = json_loadb(ev[i], len[i], 0, NULL);
        const char *k;
        json_t *v;
        double s = 0;
        json_object_foreach(j, k, v) s += json_is_string(v) ? (double)json_string_length(v) : json_number_value(v);
        sink += s;
        json_decref(j);
    }
}

static void m_sj_ondemand(void)
{
    for (size_t i = 0; i < n; i++) sink += sj_ondemand(sj, ev[i], len[i]);
}

static void m_sj_dom(void)
{
    for (size_t i = 0; i < n; i++) sink += sj_dom(sj, ev[i], len[i]);
}

static void m_sjn_ondemand(void)
{
    for (size_t i = 0; i < n; i++) sink += sjn_ondemand(sjn, ev[i], len[i]);
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    n = argc > 1 ? strtoull(argv[1], NULL, 10) : 500000;
    int passes = argc > 2 ? atoi(argv[2]) : 7;
    if (passes < 1 || passes > 99) passes = 7;
    static const char *types[] = {"page_view", "add_to_cart", "purchase", "payment_failed", "refund"};
    ev = malloc(n * sizeof *ev);
    len = malloc(n * sizeof *len);
    size_t bytes = 0, pad = sj_padding();
    unsigned long long r = 12345;
    for (size_t i = 0; i < n; i++) {
        char buf[512];
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        int k = snprintf(buf, sizeof buf,
                         "{\"event_id\":\"evt-%012zu\",\"event_type\":\"%s\",\"user_id\":\"user-%05llu\","
                         "\"session_id\":\"sess-%07llu\",\"product_id\":\"sku-%05llu\",\"quantity\":%llu,"
                         "\"amount\":%llu.%02llu,\"currency\":\"USD\",\"payment_method\":\"card\","
                         "\"ts\":\"2026-05-01T10:00:%02llu.%03lluZ\"}",
                         i, types[(r >> 33) % 5], (r >> 20) % 50000, (r >> 13) % 1000000, (r >> 7) % 20000,
                         1 + (r >> 40) % 3, (r >> 30) % 500, (r >> 25) % 100, (r >> 44) % 60, (r >> 50) % 1000);
        ev[i] = calloc(1, (size_t)k + pad + 1);
        memcpy(ev[i], buf, (size_t)k);
        len[i] = (size_t)k;
        bytes += (size_t)k;
    }
    sj = sj_new(4096);
    sjn = sjn_new(4096);
    if (!sj || !sjn) return 1;
    static const struct {
        const char *name;
        void (*fn)(void);
    } m[] = {
        {"cJSON 1.7.15, malloc/free", m_cjson},
        {"cJSON, hooks on an arena (host before)", m_cjson_arena},
        {"host parser (json_tree.c), arena", m_host},
        {"strict check + host parser (api->json)", m_host_strict},
        {"strict check alone", m_strict},
        {"jansson 2.14", m_jansson},
        {"simdjson 3.0.1 On-Demand, x86-64 build", m_sj_ondemand},
        {"simdjson 3.0.1 On-Demand, -march=native", m_sjn_ondemand},
        {"simdjson 3.0.1 DOM (runtime dispatch)", m_sj_dom},
    };
    enum { M = sizeof m / sizeof *m };
    double t[M][99];
    /* BENCH_JSON_NO_NATIVE=1 skips the -march=native build (valgrind does not run AVX-512);
     * under callgrind, each m_* function's inclusive count is that method's instructions. */
    int no_native = getenv("BENCH_JSON_NO_NATIVE") != NULL;
    for (int p = 0; p < passes; p++)
        for (int k = 0; k < M; k++) {
            if (no_native && m[k].fn == m_sjn_ondemand) continue;
            double t0 = now_s();
            m[k].fn();
            t[k][p] = now_s() - t0;
        }
    printf("events: %zu, %zu bytes on average; %d alternating passes, medians\n", n, bytes / n, passes);
    printf("simdjson On-Demand kernels: x86-64 build '%s', native build '%s'\n", sj_kernel(), sjn_kernel());
    double host = 0;
    for (int k = 0; k < M; k++) {
        qsort(t[k], (size_t)passes, sizeof(double), cmp);
        double med = t[k][passes / 2] / (double)n * 1e9;
        if (k == 2) host = med;
        printf("%-42s %7.0f ns/event  %6.0f MB/s", m[k].name, med, (double)bytes / n / med * 1e3);
        if (host) printf("  %5.2fx host parser", med / host);
        printf("\n");
    }
    sj_free(sj);
    sjn_free(sjn);
    for (size_t i = 0; i < n; i++) free(ev[i]);
    free(ev);
    free(len);
    arena_free(&arena);
    return 0;
}
