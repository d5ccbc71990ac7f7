/* t_service.c — the HTTP service: configuration over PUT, polling, overflow, bad requests. */
#include "gentest.h"

static void bad_put(int port, const char *body, const char *want_field)
{
    struct resp r = {0};
    http_s(port, "GET", "/gen/config", NULL, &r);
    char *before = strdup(r.body.p);
    http_s(port, "PUT", "/gen/config", body, &r);
    cJSON *j = cJSON_Parse(r.body.p);
    const char *f = j ? jstr(j, "field") : NULL;
    CHECK(r.status == 400, "PUT %s: HTTP %ld, want 400", body, r.status);
    CHECK(j && jstr(j, "error"), "PUT %s: no JSON error: %s", body, r.body.p);
    CHECK(want_field ? f && !strcmp(f, want_field) : !f, "PUT %s: field %s, want %s", body,
          f ? f : "(none)", want_field ? want_field : "(none)");
    char ct[128];
    CHECK(header(&r, "Content-Type", ct, sizeof ct) && strstr(ct, "application/json"),
          "error without JSON content type");
    http_s(port, "GET", "/gen/config", NULL, &r);
    CHECK(!strcmp(before, r.body.p), "failed PUT %s changed the config", body);
    cJSON_Delete(j);
    free(before);
    sb_free(&r.body);
    sb_free(&r.hdrs);
}

void t_config(void)
{
    struct gen g;
    const char *args[] = {"--stopped", "--seed", "7", NULL};
    gen_start(&g, args);
    struct resp r = {0};
    http_s(g.port, "GET", "/gen/config", NULL, &r);
    cJSON *c = json_ok(&r, "GET config");
    const cJSON *mix = cJSON_GetObjectItem(c, "mix");
    CHECK(jnum(mix, "page_view") == 30 && jnum(mix, "add_to_cart") == 25 &&
              jnum(mix, "purchase") == 35 && jnum(mix, "payment_failed") == 8 &&
              jnum(mix, "refund") == 2, "default mix: %s", r.body.p);
    CHECK(cJSON_IsFalse(cJSON_GetObjectItem(c, "running")) && jnum(c, "seed") == 7,
          "config: %s", r.body.p);
    static const char *const keys[] = {"rate", "invalid_pct", "duplicate_pct", "late_pct",
                                       "late_by", "users", "products"};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++)
        CHECK(!isnan(jnum(c, keys[i])), "config has no %s", keys[i]);
    /* GET's output is a valid PUT body. */
    char *all = strdup(r.body.p);
    http_s(g.port, "PUT", "/gen/config", all, &r);
    CHECK(r.status == 200 && !strcmp(r.body.p, all), "round trip: %ld %s", r.status, r.body.p);
    free(all);
    cJSON_Delete(c);

    http_s(g.port, "PUT", "/gen/config",
           "{\"rate\":250,\"late_by\":\"90s\",\"users\":50,\"products\":20,\"invalid_pct\":0,"
           "\"duplicate_pct\":0,\"mix\":{\"page_view\":33.5,\"add_to_cart\":16.5,"
           "\"purchase\":50}}", &r);
    c = json_ok(&r, "PUT config");
    mix = cJSON_GetObjectItem(c, "mix");
    CHECK(jnum(c, "rate") == 250 && jnum(c, "late_by") == 90000 && jnum(c, "users") == 50 &&
              jnum(mix, "page_view") == 33.5 && jnum(mix, "refund") == 0,
          "PUT result: %s", r.body.p);
    cJSON_Delete(c);
    /* Durations mean what they mean in a pipeline file: a bare number is milliseconds, and
     * the host's compound form is accepted. */
    http_s(g.port, "PUT", "/gen/config", "{\"late_by\":1500}", &r);
    c = json_ok(&r, "PUT late_by 1500");
    CHECK(jnum(c, "late_by") == 1500, "a bare late_by is milliseconds: %s", r.body.p);
    cJSON_Delete(c);
    http_s(g.port, "PUT", "/gen/config", "{\"late_by\":\"1h30m\"}", &r);
    c = json_ok(&r, "PUT late_by 1h30m");
    CHECK(jnum(c, "late_by") == 5400000, "late_by 1h30m: %s", r.body.p);
    cJSON_Delete(c);
    http_s(g.port, "PUT", "/gen/config", "{\"late_by\":\"90s\"}", &r);
    cJSON_Delete(json_ok(&r, "PUT late_by back"));
    /* The new populations are used: ids stay within 50 users and 20 products. */
    http_s(g.port, "POST", "/gen/emit", "{\"count\":500,\"echo\":true}", &r);
    c = json_ok(&r, "emit");
    const cJSON *e;
    int outside = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItem(c, "events"))
    {
        const char *u = jstr(e, "user_id"), *p = jstr(e, "product_id");
        outside += !u || atoi(u + 2) < 1 || atoi(u + 2) > 50;
        outside += p && (atoi(p + 2) < 1 || atoi(p + 2) > 20);
        outside += !strcmp(jstr(e, "event_type"), "refund");
    }
    CHECK(outside == 0, "%d events outside users=50/products=20/no refunds", outside);
    cJSON_Delete(c);

    bad_put(g.port, "{\"mix\":{\"page_view\":30,\"add_to_cart\":25,\"purchase\":35,"
                    "\"payment_failed\":8,\"refund\":1}}", "mix");
    bad_put(g.port, "{\"mix\":{\"page_view\":100,\"checkout\":0}}", "mix");
    bad_put(g.port, "{\"mix\":{\"page_view\":110,\"purchase\":-10}}", "mix");
    bad_put(g.port, "{\"mix\":[30,25,35,8,2]}", "mix");
    bad_put(g.port, "{\"rate\":-1}", "rate");
    bad_put(g.port, "{\"rate\":\"fast\"}", "rate");
    bad_put(g.port, "{\"rate\":1e9}", "rate");
    bad_put(g.port, "{\"running\":\"yes\"}", "running");
    bad_put(g.port, "{\"invalid_pct\":101}", "invalid_pct");
    bad_put(g.port, "{\"duplicate_pct\":-0.5}", "duplicate_pct");
    bad_put(g.port, "{\"late_pct\":null}", "late_pct");
    bad_put(g.port, "{\"invalid_pct\":50,\"duplicate_pct\":30,\"late_pct\":30}", "invalid_pct");
    bad_put(g.port, "{\"late_by\":0}", "late_by");
    bad_put(g.port, "{\"late_by\":\"soon\"}", "late_by");
    bad_put(g.port, "{\"users\":0}", "users");
    bad_put(g.port, "{\"products\":1.5}", "products");
    bad_put(g.port, "{\"seed\":-1}", "seed");
    bad_put(g.port, "{\"seed\":1e300}", "seed");
    bad_put(g.port, "{\"rate\":10,\"colour\":\"blue\"}", "colour");
    bad_put(g.port, "[1,2]", NULL);
    bad_put(g.port, "{\"rate\":", NULL);
    bad_put(g.port, "", NULL);

    /* running=false stops the clock; running=true starts it. */
    http_s(g.port, "GET", "/gen/stats", NULL, &r);
    c = json_ok(&r, "stats");
    double gen0 = jnum(c, "generated");
    cJSON_Delete(c);
    sleep_ms(300);
    http_s(g.port, "GET", "/gen/stats", NULL, &r);
    c = json_ok(&r, "stats");
    CHECK(jnum(c, "generated") == gen0, "stopped generator made events");
    cJSON_Delete(c);
    http_s(g.port, "PUT", "/gen/config", "{\"running\":true,\"rate\":1000}", &r);
    CHECK(r.status == 200, "start: %ld", r.status);
    double now = gen0;
    for (int i = 0; i < 250 && now == gen0; i++) { /* bounded wait, not a timing assertion */
        sleep_ms(20);
        http_s(g.port, "GET", "/gen/stats", NULL, &r);
        c = json_ok(&r, "stats");
        now = jnum(c, "generated");
        cJSON_Delete(c);
    }
    CHECK(now > gen0, "running=true generated nothing");
    sb_free(&r.body);
    sb_free(&r.hdrs);
    gen_stop(&g);
}

void t_poll(void)
{
    char *rec = tmp_path("poll.ndjson");
    const char *args[] = {"--seed", "5", "--rate", "5000", "--buffer", "1000000", "--record", rec,
                          NULL};
    struct gen g;
    gen_start(&g, args);
    struct resp r = {0};
    sl_gbuf polled = {0}, direct = {0};
    long npolled = 0, polls = 0;
    static const char *const paths[] = {"/gen/events?max=1", "/gen/events?max=7",
                                        "/gen/events?max=500", "/gen/events",
                                        "/gen/events?max=0&format=json"};
    /* Poll while the clock runs, mixing in emits and single events. */
    for (int i = 0; i < 40; i++) {
        http_s(g.port, "GET", paths[i % 5], NULL, &r);
        cJSON *a = json_ok(&r, "poll");
        REQUIRE(cJSON_IsArray(a), "not an array");
        char rem[32];
        CHECK(header(&r, "X-Gen-Remaining", rem, sizeof rem), "no X-Gen-Remaining");
        if (i % 5 == 0)
            CHECK(cJSON_GetArraySize(a) <= 1, "max=1 returned %d", cJSON_GetArraySize(a));
        if (i % 5 == 4)
            CHECK(cJSON_GetArraySize(a) == 0, "max=0 returned %d", cJSON_GetArraySize(a));
        const cJSON *e;
        cJSON_ArrayForEach(e, a)
        {
            char *s = cJSON_PrintUnformatted(e);
            sb_add(&polled, s, strlen(s));
            sb_add(&polled, "\n", 1);
            free(s);
            npolled++;
        }
        cJSON_Delete(a);
        polls++;
        if (i % 8 == 3) {
            http_s(g.port, "POST", "/gen/emit", "{\"count\":100}", &r);
            CHECK(r.status == 200, "emit %ld", r.status);
        }
        if (i % 8 == 5) {
            http_s(g.port, "GET", "/gen/event", NULL, &r);
            cJSON *e1 = json_ok(&r, "event");
            char *s = cJSON_PrintUnformatted(e1);
            sb_add(&direct, s, strlen(s));
            sb_add(&direct, "\n", 1);
            free(s);
            cJSON_Delete(e1);
        }
        sleep_ms(40);
    }
    http_s(g.port, "PUT", "/gen/config", "{\"running\":false}", &r);
    CHECK(r.status == 200, "stop: %ld", r.status);
    /* Drain what is left, NDJSON this time. */
    http_s(g.port, "GET", "/gen/events?format=ndjson", NULL, &r);
    char ct[128], rem[32];
    CHECK(r.status == 200 && header(&r, "Content-Type", ct, sizeof ct) &&
              strstr(ct, "application/x-ndjson"), "ndjson poll: %ld", r.status);
    for (char *line = r.body.p, *nl; (nl = strchr(line, '\n')); line = nl + 1) {
        *nl = '\0';
        cJSON *e = cJSON_Parse(line);
        REQUIRE(e, "bad ndjson line %.100s", line);
        char *s = cJSON_PrintUnformatted(e);
        sb_add(&polled, s, strlen(s));
        sb_add(&polled, "\n", 1);
        free(s);
        cJSON_Delete(e);
        npolled++;
    }
    polls++;
    http_s(g.port, "GET", "/gen/events", NULL, &r);
    CHECK(!strcmp(r.body.p, "[]") && header(&r, "X-Gen-Remaining", rem, sizeof rem) &&
              !strcmp(rem, "0"), "buffer not empty after drain: %.100s", r.body.p);
    polls++;
    http_s(g.port, "GET", "/gen/stats", NULL, &r);
    cJSON *stats = json_ok(&r, "stats");
    gen_stop(&g);

    /* What the polls returned is exactly the record's buffered events, in order. */
    size_t nr;
    struct rec *v = read_record(rec, &nr);
    sl_gbuf want = {0}, want_direct = {0};
    long nbuf = 0;
    for (size_t i = 0; i < nr; i++) {
        char *s = cJSON_PrintUnformatted(v[i].event);
        sl_gbuf *dst = !strcmp(v[i].dest, "buffer") ? &want : &want_direct;
        nbuf += dst == &want;
        CHECK(!strcmp(v[i].dest, "buffer") || !strcmp(v[i].dest, "response"), "dest %s",
              v[i].dest);
        sb_add(dst, s, strlen(s));
        sb_add(dst, "\n", 1);
        free(s);
    }
    printf("  %ld events polled in %ld polls; record has %zu lines (%ld buffered)\n", npolled,
           polls, nr, nbuf);
    CHECK(npolled > 1000, "only %ld events polled", npolled);
    CHECK(npolled == nbuf, "polled %ld events, record buffered %ld", npolled, nbuf);
    CHECK(polled.len == want.len && !memcmp(polled.p, want.p, want.len),
          "polled events differ from the record (lost, repeated or reordered)");
    CHECK(direct.len == want_direct.len && !memcmp(direct.p, want_direct.p, direct.len),
          "GET /gen/event answers differ from the record");
    CHECK(jnum(stats, "polled") == npolled && jnum(stats, "dropped") == 0 &&
              jnum(stats, "polls") == polls && jnum(stats, "generated") == (double)nr,
          "stats: %s", r.body.p);
    cJSON_Delete(stats);
    free_record(v, nr);
    sb_free(&want);
    sb_free(&want_direct);
    sb_free(&polled);
    sb_free(&direct);
    sb_free(&r.body);
    sb_free(&r.hdrs);
    free(rec);
}

void t_overflow(void)
{
    char *rec = tmp_path("overflow.ndjson");
    const char *args[] = {"--stopped", "--seed", "11", "--buffer", "100", "--record", rec, NULL};
    struct gen g;
    gen_start(&g, args);
    struct resp r = {0};
    http_s(g.port, "POST", "/gen/emit", "{\"count\":250}", &r);
    cJSON *j = json_ok(&r, "emit");
    CHECK(jnum(j, "emitted") == 250 && jnum(j, "queued") == 100 && jnum(j, "dropped") == 150,
          "emit into a full buffer: %s", r.body.p);
    cJSON_Delete(j);
    http_s(g.port, "GET", "/gen/stats", NULL, &r);
    j = json_ok(&r, "stats");
    CHECK(jnum(j, "dropped") == 150 && jnum(j, "buffered") == 100 &&
              jnum(j, "buffer_capacity") == 100, "stats: %s", r.body.p);
    cJSON_Delete(j);
    cJSON *a = poll_all(g.port, &r);
    int n = cJSON_GetArraySize(a);
    http_s(g.port, "POST", "/gen/emit", "{\"count\":10}", &r);
    j = json_ok(&r, "emit");
    CHECK(jnum(j, "queued") == 10 && jnum(j, "dropped") == 0, "after drain: %s", r.body.p);
    cJSON_Delete(j);
    gen_stop(&g);

    size_t nr;
    struct rec *v = read_record(rec, &nr);
    REQUIRE(nr == 260, "record has %zu lines", nr);
    CHECK(n == 100, "polled %d, want the 100 buffered", n);
    /* The oldest 100 were kept (overflow drops the newest), and the record says which. */
    for (size_t i = 0; i < 250 && n == 100; i++) {
        const char *want = i < 100 ? "buffer" : "dropped";
        CHECK(!strcmp(v[i].dest, want), "record %zu dest %s, want %s", i + 1, v[i].dest, want);
        if (i < 100) {
            char *s = cJSON_PrintUnformatted(cJSON_GetArrayItem(a, (int)i));
            char *t = cJSON_PrintUnformatted(v[i].event);
            CHECK(!strcmp(s, t), "polled event %zu differs from the record", i);
            free(s);
            free(t);
        }
    }
    cJSON_Delete(a);
    free_record(v, nr);
    free(rec);
    sb_free(&r.body);
    sb_free(&r.hdrs);
}

/* A request that must get `status` with a JSON error body (and, without an Origin, no CORS). */
static void expect_error(int port, const char *method, const char *path, const char *body,
                         size_t body_len, long status, const char *want_field)
{
    struct resp r = {0};
    http(port, method, path, body, body_len, &r, NULL);
    cJSON *j = cJSON_Parse(r.body.p);
    char v[256];
    CHECK(r.status == status, "%s %s: HTTP %ld, want %ld", method, path, r.status, status);
    CHECK(j && jstr(j, "error"), "%s %s: no JSON error: %.200s", method, path, r.body.p);
    CHECK(!header(&r, "Access-Control-Allow-Origin", v, sizeof v),
          "%s %s: CORS header without an Origin: %s", method, path, v);
    if (want_field) {
        const char *f = j ? jstr(j, "field") : NULL;
        CHECK(f && !strcmp(f, want_field), "%s %s %.60s: field %s, want %s", method, path,
              body ? body : "", f ? f : "(none)", want_field);
    }
    if (status == 405)
        CHECK(header(&r, "Allow", v, sizeof v), "405 without Allow");
    cJSON_Delete(j);
    sb_free(&r.body);
    sb_free(&r.hdrs);
}

void t_bad_requests(void)
{
    struct gen g;
    const char *args[] = {"--stopped", "--seed", "3", "--cors-origin", "http://127.0.0.1:5173", NULL};
    gen_start(&g, args);
    int p = g.port;
    expect_error(p, "GET", "/nope", NULL, 0, 404, NULL);
    expect_error(p, "GET", "/gen/events/extra", NULL, 0, 404, NULL);
    expect_error(p, "POST", "/gen/event", "{}", 2, 405, NULL);
    expect_error(p, "DELETE", "/gen/config", NULL, 0, 405, NULL);
    expect_error(p, "GET", "/gen/emit", NULL, 0, 405, NULL);
    expect_error(p, "PUT", "/gen/stats", "{}", 2, 405, NULL);
    static const struct { const char *body, *field; } emits[] = {
        {"not json", NULL}, {"[1]", NULL}, {"{\"count\":-1}", "count"},
        {"{\"count\":\"5\"}", "count"}, {"{\"count\":1.5}", "count"},
        {"{\"count\":2000000}", "count"}, {"{\"count\":200000,\"echo\":true}", "count"},
        {"{\"cnt\":5}", "cnt"}, {"{\"echo\":\"yes\"}", "echo"}};
    for (size_t i = 0; i < sizeof emits / sizeof *emits; i++)
        expect_error(p, "POST", "/gen/emit", emits[i].body, strlen(emits[i].body), 400,
                     emits[i].field);
    static const char *const polls[] = {"/gen/events?max=abc", "/gen/events?max=-1",
                                        "/gen/events?max=1.5", "/gen/events?max=",
                                        "/gen/events?format=xml"};
    for (size_t i = 0; i < sizeof polls / sizeof *polls; i++)
        expect_error(p, "GET", polls[i], NULL, 0, 400, NULL);
    /* A body over 1 MiB is refused without being parsed. */
    size_t big = (2u << 20);
    char *huge = malloc(big);
    memset(huge, ' ', big);
    huge[0] = '{';
    huge[big - 1] = '}';
    expect_error(p, "PUT", "/gen/config", huge, big, 413, NULL);
    free(huge);
    /* Raw bytes that are not UTF-8 or JSON. */
    expect_error(p, "PUT", "/gen/config", "\xff\xfe\x00{", 4, 400, NULL);

    /* CORS preflight from a page on another port. */
    struct resp r = {0};
    const char *pre[] = {"Origin: http://127.0.0.1:5173", "Access-Control-Request-Method: PUT",
                         "Access-Control-Request-Headers: content-type", NULL};
    http(p, "OPTIONS", "/gen/config", NULL, 0, &r, pre);
    char v[256];
    CHECK(r.status == 204, "preflight: HTTP %ld", r.status);
    CHECK(header(&r, "Access-Control-Allow-Origin", v, sizeof v) && !strcmp(v, "http://127.0.0.1:5173"),
          "preflight without the configured origin as ACAO");
    CHECK(header(&r, "Access-Control-Allow-Methods", v, sizeof v) && strstr(v, "PUT") &&
              strstr(v, "POST"), "preflight methods: %s", v);
    CHECK(header(&r, "Access-Control-Allow-Headers", v, sizeof v) && strcasestr(v, "content-type"),
          "preflight headers");
    const char *origin[] = {"Origin: http://127.0.0.1:5173", NULL};
    http(p, "GET", "/gen/stats", NULL, 0, &r, origin);
    CHECK(r.status == 200 && header(&r, "Access-Control-Allow-Origin", v, sizeof v) &&
              !strcmp(v, "http://127.0.0.1:5173"), "GET without CORS header");
    /* Still alive and consistent after all that. */
    cJSON *j = json_ok(&r, "stats");
    CHECK(jnum(j, "generated") == 0, "bad requests generated events: %s", r.body.p);
    cJSON_Delete(j);
    http_s(p, "GET", "/", NULL, &r);
    CHECK(r.status == 200 && strstr(r.body.p, "/gen/events"), "index: %ld", r.status);
    sb_free(&r.body);
    sb_free(&r.hdrs);
    gen_stop(&g);
}
