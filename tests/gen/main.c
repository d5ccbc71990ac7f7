/*
 * Tests for tools/sluice-gen over real HTTP on loopback.
 *
 *   test-gen PATH/TO/sluice-gen SUBTEST
 *
 * Each subtest starts its own sluice-gen on a free port (--listen 127.0.0.1:0), talks to it with
 * libcurl, stops it with SIGTERM and checks it exits 0. Statistical checks use fixed seeds, so a
 * run either always passes or always fails; nothing asserts on time. An alarm bounds every run.
 */
#include "gentest.h"

int main(int argc, char **argv)
{
    static const struct { const char *name; void (*fn)(void); } tests[] = {
        {"distribution", t_distribution}, {"determinism", t_determinism}, {"shares", t_shares},
        {"config", t_config},             {"poll", t_poll},               {"overflow", t_overflow},
        {"bad-requests", t_bad_requests}, {"push", t_push}};
    if (argc != 3) {
        fprintf(stderr, "usage: %s SLUICE_GEN SUBTEST\n", argv[0]);
        return 2;
    }
    gen_bin = argv[1];
    signal(SIGALRM, on_alarm);
    signal(SIGPIPE, SIG_IGN);
    alarm(110);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    bool found = false;
    for (size_t i = 0; i < sizeof tests / sizeof *tests; i++) {
        if (strcmp(argv[2], tests[i].name) && strcmp(argv[2], "all"))
            continue;
        found = true;
        printf("== %s\n", tests[i].name);
        fflush(stdout);
        tests[i].fn();
    }
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    if (!found) {
        fprintf(stderr, "unknown subtest %s\n", argv[2]);
        return 2;
    }
    printf("%s: %d failure(s)\n", argv[2], failures);
    return failures ? 1 : 0;
}
