/* t_model.c — the event model: type mix, determinism by seed, the configured shares. */
#include "gentest.h"

static const char *const type_names[] = {"page_view", "add_to_cart", "purchase", "payment_failed",
                                         "refund"};

/* Emits n events, polls them back and checks the type mix against the expected percents. */
static void check_mix(int port, const double *mix, int n)
{
    struct resp r = {0};
    http_s(port, "GET", "/gen/stats", NULL, &r);
    cJSON *before = json_ok(&r, "stats");
    char body[64];
    snprintf(body, sizeof body, "{\"count\":%d}", n);
    http_s(port, "POST", "/gen/emit", body, &r);
    cJSON *j = json_ok(&r, "emit");
    CHECK(jnum(j, "emitted") == n && jnum(j, "queued") == n, "emit answer %s", r.body.p);
    cJSON_Delete(j);
    http_s(port, "GET", "/gen/stats", NULL, &r);
    cJSON *stats = json_ok(&r, "stats");
    cJSON *a = poll_all(port, &r);
    REQUIRE(cJSON_GetArraySize(a) == n, "polled %d events, want %d", cJSON_GetArraySize(a), n);

    double count[5] = {0};
    int bad = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, a)
    {
        const char *why = schema_check(e);
        if (why && bad++ < 3)
            CHECK(!why, "generated event breaks the schema (%s): %s", why, cJSON_PrintUnformatted(e));
        const char *t = jstr(e, "event_type");
        for (int i = 0; i < 5; i++)
            if (t && !strcmp(t, type_names[i]))
                count[i]++;
    }
    CHECK(bad == 0, "%d of %d events break the schema", bad, n);
    /* Chi-square with 4 degrees of freedom; 18.47 is the p = 0.001 critical value. */
    double chi2 = 0;
    const cJSON *by_type = cJSON_GetObjectItem(stats, "by_type");
    for (int i = 0; i < 5; i++) {
        double expect = n * mix[i] / 100, share = 100 * count[i] / n;
        if (expect > 0)
            chi2 += (count[i] - expect) * (count[i] - expect) / expect;
        else
            CHECK(count[i] == 0, "%s has weight 0 but appeared %.0f times", type_names[i], count[i]);
        CHECK(fabs(share - mix[i]) <= 1.0, "%s: %.2f%%, want %.0f%% +- 1", type_names[i], share,
              mix[i]);
        double stat = jnum(by_type, type_names[i]) -
                      jnum(cJSON_GetObjectItem(before, "by_type"), type_names[i]);
        CHECK(stat == count[i], "stats by_type.%s grew by %g, counted %.0f", type_names[i], stat,
              count[i]);
        printf("  %-15s %6.0f  %6.2f%% (want %g%%)\n", type_names[i], count[i], share, mix[i]);
    }
    printf("  chi-square %.2f (4 df, p=0.001 critical 18.47)\n", chi2);
    CHECK(chi2 < 18.47, "chi-square %.2f too large", chi2);
    cJSON_Delete(a);
    cJSON_Delete(stats);
    cJSON_Delete(before);
    sb_free(&r.body);
    sb_free(&r.hdrs);
}

void t_distribution(void)
{
    struct gen g;
    const char *args[] = {"--stopped", "--seed", "20240501", "--buffer", "200000", "--config",
                          "{\"invalid_pct\":0,\"duplicate_pct\":0,\"late_pct\":0}", NULL};
    gen_start(&g, args);
    const double def[5] = {30, 25, 35, 8, 2};
    check_mix(g.port, def, 100000);

    struct resp r = {0};
    http_s(g.port, "PUT", "/gen/config",
           "{\"mix\":{\"page_view\":10,\"add_to_cart\":0,\"purchase\":60,\"payment_failed\":20,"
           "\"refund\":10}}", &r);
    CHECK(r.status == 200, "PUT mix: %ld %s", r.status, r.body.p);
    const double other[5] = {10, 0, 60, 20, 10};
    check_mix(g.port, other, 100000);
    sb_free(&r.body);
    sb_free(&r.hdrs);
    gen_stop(&g);
}

void t_determinism(void)
{
    char *recs[3];
    sl_gbuf bodies[3] = {{0}};
    sl_gbuf again = {0};
    const char *seeds[3] = {"42", "42", "43"};
    for (int run = 0; run < 3; run++) {
        char name[32];
        snprintf(name, sizeof name, "det%d.ndjson", run);
        recs[run] = tmp_path(name);
        const char *args[] = {"--stopped", "--seed", seeds[run], "--fixed-clock", "1714557600000",
                              "--record", recs[run], "--config",
                              "{\"invalid_pct\":10,\"duplicate_pct\":10,\"late_pct\":10,"
                              "\"rate\":200}", NULL};
        struct gen g;
        gen_start(&g, args);
        struct resp r = {0};
        http_s(g.port, "POST", "/gen/emit", "{\"count\":3000,\"echo\":true}", &r);
        CHECK(r.status == 200, "emit: %ld", r.status);
        sb_add(&bodies[run], r.body.p, r.body.len);
        http_s(g.port, "GET", "/gen/event", NULL, &r);
        CHECK(r.status == 200, "event: %ld", r.status);
        sb_add(&bodies[run], r.body.p, r.body.len);
        if (run == 0) {
            /* Setting the seed again restarts the same sequence, clock included. */
            http_s(g.port, "PUT", "/gen/config", "{\"seed\":42}", &r);
            CHECK(r.status == 200, "PUT seed: %ld %s", r.status, r.body.p);
            http_s(g.port, "POST", "/gen/emit", "{\"count\":3000,\"echo\":true}", &r);
            sb_add(&again, r.body.p, r.body.len);
            http_s(g.port, "GET", "/gen/event", NULL, &r);
            sb_add(&again, r.body.p, r.body.len);
        }
        sb_free(&r.body);
        sb_free(&r.hdrs);
        gen_stop(&g);
    }
    CHECK(bodies[0].len > 100000, "echo body only %zu bytes", bodies[0].len);
    CHECK(bodies[0].len == bodies[1].len && !memcmp(bodies[0].p, bodies[1].p, bodies[0].len),
          "same seed, different events");
    CHECK(again.len == bodies[0].len && !memcmp(again.p, bodies[0].p, again.len),
          "PUT seed did not restart the sequence");
    CHECK(bodies[0].len != bodies[2].len || memcmp(bodies[0].p, bodies[2].p, bodies[0].len),
          "different seeds, same events");
    size_t l0, l1;
    char *f0 = read_file(recs[0], &l0), *f1 = read_file(recs[1], &l1);
    /* Run 0 recorded twice as much (it replayed); its first half must equal run 1's record
     * byte for byte (seq numbers count per process). */
    CHECK(f0 && f1 && l1 > 0 && l0 > l1 && !memcmp(f0, f1, l1), "record files differ");
    /* The fixed clock starts at the given time: the first on-time event carries it. */
    /* The fixed clock starts at 10:00:00 and advances 5 ms per event (rate 200). */
    CHECK(strstr(bodies[0].p, "\"ts\":\"2024-05-01T10:00:00.0") &&
              strstr(bodies[0].p, "\"ts\":\"2024-05-01T10:00:14.9"),
          "fixed clock not used: %.300s", bodies[0].p);
    printf("  3000+1 events, %zu bytes, identical across runs with seed 42\n", bodies[0].len);
    free(f0);
    free(f1);
    for (int i = 0; i < 3; i++) {
        sb_free(&bodies[i]);
        free(recs[i]);
    }
    sb_free(&again);
}

void t_shares(void)
{
    char *rec = tmp_path("shares.ndjson");
    const long long t0 = 1714557600000LL;
    const int n = 100000;
    const char *args[] = {"--stopped", "--seed", "99", "--fixed-clock", "1714557600000",
                          "--buffer", "200000", "--record", rec, "--config",
                          "{\"rate\":1000,\"invalid_pct\":10,\"duplicate_pct\":5,\"late_pct\":20,"
                          "\"late_by\":\"30s\"}", NULL};
    struct gen g;
    gen_start(&g, args);
    struct resp r = {0};
    char body[64];
    snprintf(body, sizeof body, "{\"count\":%d}", n);
    http_s(g.port, "POST", "/gen/emit", body, &r);
    CHECK(r.status == 200, "emit: %ld", r.status);
    http_s(g.port, "GET", "/gen/stats", NULL, &r);
    cJSON *stats = json_ok(&r, "stats");
    gen_stop(&g);

    size_t nr;
    struct rec *v = read_record(rec, &nr);
    REQUIRE(nr == (size_t)n, "record has %zu lines, want %d", nr, n);
    long valid = 0, invalid = 0, dup = 0, late = 0, kinds[8] = {0};
    static const char *const kind_names[] = {"missing_field", "wrong_type", "bad_ts",
                                             "negative_amount", "bad_quantity", "bad_event_type",
                                             "bad_currency", "bad_event_id"};
    int errs = 0;
    for (size_t i = 0; i < nr && errs < 5; i++) {
        const struct rec *x = &v[i];
        const char *why = schema_check(x->event);
        /* At rate 1000 the fixed clock advances 1 ms per event: event seq s happens at
         * t0 + s - 1, so lateness can be checked exactly. */
        long long now = t0 + x->seq - 1, ts = 0;
        const char *tss = jstr(x->event, "ts");
        bool has_ts = tss && parse_ts(tss, &ts);
        if (x->seq != (long long)i + 1)
            { errs++; CHECK(false, "seq %lld at line %zu", x->seq, i + 1); }
        if (!strcmp(x->cls, "valid")) {
            valid++;
            late += x->late;
            if (why)
                { errs++; CHECK(!why, "valid event breaks the schema (%s): %s", why, x->raw); }
            if (!x->late && !(has_ts && ts == now))
                { errs++; CHECK(false, "on-time event %lld: ts %s, now %lld", x->seq, tss, now); }
            if (x->late && !(has_ts && ts < now && ts >= now - 30000))
                { errs++; CHECK(false, "late event %lld: ts %s not within 30 s before %lld", x->seq,
                              tss, now); }
        } else if (!strcmp(x->cls, "invalid")) {
            invalid++;
            if (!why)
                { errs++; CHECK(why, "invalid event (%s) passes the schema: %s", x->reason, x->raw); }
            for (int k = 0; k < 8; k++)
                if (!strncmp(x->reason, kind_names[k], strlen(kind_names[k])))
                    kinds[k]++;
        } else if (!strcmp(x->cls, "duplicate")) {
            dup++;
            /* An exact re-send of an earlier valid event. */
            const struct rec *o = x->dup_of >= 1 && x->dup_of < x->seq ? &v[x->dup_of - 1] : NULL;
            if (!o || strcmp(o->cls, "valid") || strcmp(o->raw, x->raw))
                { errs++; CHECK(false, "duplicate %lld is not a copy of valid event %lld", x->seq,
                              x->dup_of); }
        } else {
            { errs++; CHECK(false, "unknown class %s", x->cls); }
        }
    }
    CHECK(errs == 0, "%d bad records", errs);
    double pct_inv = 100.0 * invalid / n, pct_dup = 100.0 * dup / n, pct_late = 100.0 * late / n;
    printf("  valid %ld (late %ld = %.2f%%), invalid %ld = %.2f%%, duplicates %ld = %.2f%%\n",
           valid, late, pct_late, invalid, pct_inv, dup, pct_dup);
    CHECK(fabs(pct_inv - 10) <= 1, "invalid share %.2f%%, want 10 +- 1", pct_inv);
    CHECK(fabs(pct_dup - 5) <= 1, "duplicate share %.2f%%, want 5 +- 1", pct_dup);
    CHECK(fabs(pct_late - 20) <= 1, "late share %.2f%%, want 20 +- 1", pct_late);
    for (int k = 0; k < 8; k++) {
        printf("  invalid kind %-16s %ld\n", kind_names[k], kinds[k]);
        /* Kinds are drawn uniformly: each about 1/8 of the invalid ones. */
        CHECK(fabs((double)kinds[k] / (double)invalid - 0.125) < 0.02, "kind %s: %ld of %ld",
              kind_names[k], kinds[k], invalid);
    }
    CHECK(jnum(stats, "invalid") == invalid && jnum(stats, "duplicates") == dup &&
              jnum(stats, "late") == late && jnum(stats, "generated") == n,
          "stats disagree with the record");
    cJSON_Delete(stats);
    free_record(v, nr);
    free(rec);
    sb_free(&r.body);
    sb_free(&r.hdrs);
}

/* A PUT that must fail with 400 naming `want_field` (NULL: no field) and change nothing. */
