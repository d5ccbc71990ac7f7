/* tap_cli.c — `sluice tap PIPELINE [STAGE] [--limit N] [--rate R] [--dead-letter] [--json]`:
 * prints records leaving a stage of a running pipeline, live, from GET /connectors/NAME/tap. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_http.h"

static const char tap_usage[] =
    "usage: sluice tap PIPELINE [STAGE] [--limit N] [--rate R] [--dead-letter] [--json]\n"
    "                  [--rest ADDR] [--state-dir DIR]\n"
    "Prints a live sample of the records leaving STAGE (default: what the sink took) of a pipeline\n"
    "running in `sluice run`, at most R per second (default 10, at most 1000), until N were shown\n"
    "or Ctrl-C. --dead-letter adds the records the pipeline rejects, with the stage and reason (alone,\n"
    "without STAGE, it shows only those). --json prints each as one JSON object per line.\n";

typedef struct tap_out {
    int json;
    long long limit, shown;
} tap_out;

static void print_compact(const cJSON *v)
{
    char *s = cJSON_PrintUnformatted(v);
    fputs(s ? s : "null", stdout);
    free(s);
}

static int on_event(const char *event, const char *data, void *arg)
{
    tap_out *o = arg;
    if (strcmp(event, "record")) return 0;
    if (o->json) {
        puts(data);
    } else {
        cJSON *j = cJSON_Parse(data);
        const cJSON *tap = cJSON_GetObjectItemCaseSensitive(j, "tap"), *rec = cJSON_GetObjectItemCaseSensitive(j, "rec");
        const cJSON *why = cJSON_GetObjectItemCaseSensitive(j, "reason"), *by = cJSON_GetObjectItemCaseSensitive(j, "stage");
        const cJSON *key = cJSON_GetObjectItemCaseSensitive(rec, "key"), *val = cJSON_GetObjectItemCaseSensitive(rec, "value");
        const cJSON *topic = cJSON_GetObjectItemCaseSensitive(rec, "topic");
        if (cJSON_IsString(why))
            printf("[dead letter from %s: %s] ", cJSON_IsString(by) ? by->valuestring : "?", why->valuestring);
        else
            printf("[%s] ", cJSON_IsString(tap) ? tap->valuestring : "?");
        if (cJSON_IsString(topic)) printf("%s ", topic->valuestring);
        if (key && !cJSON_IsNull(key)) {
            fputs("key=", stdout);
            print_compact(key);
            fputs(" ", stdout);
        }
        if (val) print_compact(val);
        putchar('\n');
        cJSON_Delete(j);
    }
    fflush(stdout);
    return o->limit && ++o->shown >= o->limit;
}

int cmd_tap(int argc, char **argv)
{
    static const struct option longs[] = {{"limit", required_argument, 0, 'n'}, {"rate", required_argument, 0, 'r'},
                                          {"dead-letter", no_argument, 0, 'd'}, {"json", no_argument, 0, 'j'},
                                          {"rest", required_argument, 0, 'a'},  {"state-dir", required_argument, 0, 's'},
                                          {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *rest = NULL, *state = NULL, *rate = NULL;
    int dead = 0, c;
    tap_out o = {0};
    optind = 1;
    while ((c = getopt_long(argc, argv, "n:r:djh", longs, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'n':
            o.limit = strtoll(optarg, &end, 10);
            if (*end || o.limit < 1) {
                fprintf(stderr, "sluice tap: --limit wants a count of records, not '%s'\n", optarg);
                return 2;
            }
            break;
        case 'r': rate = optarg; break;
        case 'd': dead = 1; break;
        case 'j': o.json = 1; break;
        case 'a': rest = optarg; break;
        case 's': state = optarg; break;
        case 'h': fputs(tap_usage, stdout); return 0;
        default: fputs(tap_usage, stderr); return 2;
        }
    }
    if (optind >= argc || argc - optind > 2) {
        fputs(tap_usage, stderr);
        return 2;
    }
    const char *pipeline = argv[optind], *stage = argc - optind == 2 ? argv[optind + 1] : NULL;
    cli_conn conn;
    if (cli_conn_init(&conn, rest, state)) return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    CURL *e = curl_easy_init();
    sl_buf path = {0};
    char *p = curl_easy_escape(e, pipeline, 0);
    buf_printf(&path, "/connectors/%s/tap?", p);
    curl_free(p);
    if (stage) {
        p = curl_easy_escape(e, stage, 0);
        buf_printf(&path, "stage=%s&", p);
        curl_free(p);
    }
    if (rate) {
        p = curl_easy_escape(e, rate, 0);
        buf_printf(&path, "rate=%s&", p);
        curl_free(p);
    }
    if (o.limit) buf_printf(&path, "limit=%lld&", o.limit);
    if (dead) buf_puts(&path, "dead_letter=true&");
    path.len--; /* the last & or ? */
    curl_easy_cleanup(e);
    cli_sse s = {.fn = on_event, .arg = &o};
    struct curl_slist *hd;
    CURL *h = cli_sse_handle(&conn, buf_cstr(&path), &s, &hd);
    CURLcode rc = curl_easy_perform(h);
    int ret = 0;
    if (s.status != 200 && s.status > 1) {
        cli_print_error("tap", s.status, &s.error);
        ret = 1;
    } else if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && s.stop)) {
        fprintf(stderr, "sluice tap: %s%s: %s\n", conn.base, buf_cstr(&path), curl_easy_strerror(rc));
        ret = 1;
    }
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
    buf_free(&path);
    buf_free(&s.pending);
    buf_free(&s.error);
    curl_global_cleanup();
    return ret;
}
