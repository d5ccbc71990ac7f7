/*
 * bench_jsoncheck — what the strict JSON check (host/jsoncheck.c) costs per record, next to the
 * cJSON parse it precedes on the hot path (api->json): 1,000,000 events like sluice-gen's
 * (~235 bytes, 10 members), best of 5 passes each. Prints figures; never fails on time.
 * Usage: bench_jsoncheck [EVENTS]
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "jsoncheck.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? strtoull(argv[1], NULL, 10) : 1000000;
    static const char *types[] = {"page_view", "add_to_cart", "purchase", "payment_failed", "refund"};
    char **ev = malloc(n * sizeof *ev);
    size_t *len = malloc(n * sizeof *len), bytes = 0;
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
        ev[i] = strdup(buf);
        len[i] = (size_t)k;
        bytes += (size_t)k;
    }
    double best_check = 1e9, best_parse = 1e9;
    size_t bad = 0;
    for (int pass = 0; pass < 5; pass++) {
        double t0 = now_s();
        for (size_t i = 0; i < n; i++)
            bad += sl_json_strict(ev[i], len[i]) != NULL;
        double t1 = now_s();
        for (size_t i = 0; i < n; i++)
            cJSON_Delete(cJSON_ParseWithLength(ev[i], len[i]));
        double t2 = now_s();
        if (t1 - t0 < best_check)
            best_check = t1 - t0;
        if (t2 - t1 < best_parse)
            best_parse = t2 - t1;
    }
    printf("events: %zu, %zu bytes on average, %zu refused\n", n, bytes / n, bad);
    printf("strict check (sl_json_strict):  %8.0f ns/event  %6.0f MB/s\n", best_check / n * 1e9,
           bytes / best_check / 1e6);
    printf("cJSON parse + delete:           %8.0f ns/event  %6.0f MB/s\n", best_parse / n * 1e9,
           bytes / best_parse / 1e6);
    printf("check / parse:                  %8.1f %%\n", 100 * best_check / best_parse);
    for (size_t i = 0; i < n; i++)
        free(ev[i]);
    free(ev);
    free(len);
    return bad ? 1 : 0;
}
