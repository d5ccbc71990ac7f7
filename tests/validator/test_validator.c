/* Table-driven validator test: one row per rule and per kind of bad input, each asserting the
 * exact reason (or, for valid records, the exact normalised value and timestamp). */
#include "mockhost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            failures++;                                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                              \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fprintf(stderr, "\n");                                                            \
        }                                                                                     \
    } while (0)

typedef struct row {
    const char *in;
    const char *reason;   /* expected reason; NULL = valid */
    const char *out;      /* valid: expected value after normalisation (NULL: unchanged) */
    long long ts;         /* valid: expected record timestamp, -1 = don't check */
} row;

#define BASE_OK "\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"2024-05-01T08:00:00.000Z\""
#define PV "{\"event_type\":\"page_view\"," BASE_OK

static const row ecommerce[] = {
    /* valid, with every normalisation */
    {"{\"event_id\":\"e1\",\"event_type\":\" Purchase \",\"user_id\":\"u1\",\"product_id\":\"p1\","
     "\"quantity\":2,\"amount\":19.999,\"currency\":\" usd \",\"ts\":\"2024-05-01T10:00:00+02:00\","
     "\"extra\":{\"a\":[1,2]}}",
     NULL,
     "{\"event_id\":\"e1\",\"event_type\":\"purchase\",\"user_id\":\"u1\",\"product_id\":\"p1\","
     "\"quantity\":2,\"amount\":20,\"currency\":\"USD\",\"ts\":\"2024-05-01T08:00:00.000Z\","
     "\"extra\":{\"a\":[1,2]}}",
     1714550400000LL},
    /* valid and already clean: defaults only */
    {PV "}", NULL, PV ",\"quantity\":1,\"currency\":\"USD\"}", 1714550400000LL},
    {PV ",\"ts\":\"2024-05-01T08:00:00.1234567z\"}", "ts: duplicate member", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"2024-05-01t08:00:00.1234567z\"}",
     NULL,
     "{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"2024-05-01T08:00:00.123Z\","
     "\"quantity\":1,\"currency\":\"USD\"}",
     1714550400123LL},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"1970-01-01T00:00:00Z\",\"quantity\":null}",
     NULL,
     "{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"1970-01-01T00:00:00.000Z\",\"quantity\":1,"
     "\"currency\":\"USD\"}",
     0},
    /* bad input kinds */
    {"{\"event_id\":", "record: malformed JSON", NULL, -1},
    {"", "record: malformed JSON", NULL, -1},
    {"{\"amount\":NaN}", "record: malformed JSON", NULL, -1},
    {"{\"amount\":Infinity}", "record: malformed JSON", NULL, -1},
    {"{} trailing", "record: malformed JSON", NULL, -1},
    {"[1,2]", "record: not a JSON object", NULL, -1},
    {"42", "record: not a JSON object", NULL, -1},
    {"\"text\"", "record: not a JSON object", NULL, -1},
    {"null", "record: not a JSON object", NULL, -1},
    {"{\"event_id\":\"\xff\"}", "record: invalid UTF-8 at byte 13", NULL, -1},
    {"{\"event_id\":\"a\xc0\xaf\"}", "record: invalid UTF-8 at byte 14", NULL, -1},      /* overlong */
    {"{\"event_id\":\"\xed\xa0\x80\"}", "record: invalid UTF-8 at byte 13", NULL, -1},    /* surrogate */
    {"{\"event_id\":\"\xf4\x90\x80\x80\"}", "record: invalid UTF-8 at byte 13", NULL, -1}, /* > U+10FFFF */
    {"{\"event_id\":\"\xe2\x82\"}", "record: invalid UTF-8 at byte 13", NULL, -1},        /* truncated */
    {"{\"x\":1e999," BASE_OK ",\"event_type\":\"page_view\"}", "x: not a finite number", NULL, -1},
    {"{\"x\":[1,{\"y\":-1e400}]}", "x: not a finite number", NULL, -1},
    /* required and required_when */
    {"{\"event_type\":\"page_view\",\"user_id\":\"u1\",\"ts\":\"2024-05-01T08:00:00Z\"}", "event_id: required", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"ts\":\"2024-05-01T08:00:00Z\"}", "user_id: required", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\"}", "ts: required", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":null}", "ts: required", NULL, -1},
    {"{" BASE_OK "}", "event_type: required", NULL, -1},
    {"{\"event_type\":\"add_to_cart\"," BASE_OK "}", "product_id: required when event_type=add_to_cart", NULL, -1},
    {"{\"event_type\":\"purchase\",\"product_id\":\"p\"," BASE_OK "}", "amount: required when event_type=purchase", NULL, -1},
    {"{\"event_type\":\" REFUND\",\"product_id\":\"p\"," BASE_OK "}", "amount: required when event_type=refund", NULL, -1},
    /* types */
    {"{\"event_type\":\"page_view\",\"event_id\":5,\"user_id\":\"u1\",\"ts\":\"2024-05-01T08:00:00Z\"}", "event_id: expected string", NULL, -1},
    {PV ",\"quantity\":\"2\"}", "quantity: expected integer", NULL, -1},
    {PV ",\"quantity\":1.5}", "quantity: expected integer", NULL, -1},
    {PV ",\"amount\":\"12.00\"}", "amount: expected number", NULL, -1},
    {PV ",\"amount\":true}", "amount: expected number", NULL, -1},
    {PV ",\"amount\":1e999}", "amount: not a finite number", NULL, -1},
    {PV ",\"amount\":-1e999}", "amount: not a finite number", NULL, -1},
    {PV ",\"session_id\":{}}", "session_id: expected string", NULL, -1},
    /* bounds, lengths, enum, pattern */
    {PV ",\"quantity\":0}", "quantity: below min 1", NULL, -1},
    {PV ",\"amount\":-0.01}", "amount: below min 0", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"\",\"user_id\":\"u1\",\"ts\":\"2024-05-01T08:00:00Z\"}",
     "event_id: shorter than min_length 1", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"0123456789012345678901234567890123456789012345678901234567890123x\","
     "\"user_id\":\"u1\",\"ts\":\"2024-05-01T08:00:00Z\"}", "event_id: longer than max_length 64", NULL, -1},
    {"{\"event_type\":\"checkout\"," BASE_OK "}",
     "event_type: not one of page_view, add_to_cart, purchase, payment_failed, refund", NULL, -1},
    {PV ",\"currency\":\"EURO\"}", "currency: does not match pattern ^[A-Z]{3}$", NULL, -1},
    {PV ",\"currency\":\"U5D\"}", "currency: does not match pattern ^[A-Z]{3}$", NULL, -1},
    /* timestamps */
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"2024-05-01T08:00:00\"}",
     "ts: timestamp without time zone", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"1969-12-31T23:59:59.999Z\"}",
     "ts: timestamp before 1970", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"1970-01-01T00:30:00+01:00\"}",
     "ts: timestamp before 1970", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"10000-01-01T00:00:00Z\"}",
     "ts: timestamp after 9999", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"9999-12-31T23:00:00-05:00\"}",
     "ts: timestamp after 9999", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"2023-02-29T00:00:00Z\"}",
     "ts: not an RFC 3339 timestamp", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":\"yesterday\"}",
     "ts: not an RFC 3339 timestamp", NULL, -1},
    {"{\"event_type\":\"page_view\",\"event_id\":\"e1\",\"user_id\":\"u1\",\"ts\":1714550400000}",
     "ts: expected timestamp string", NULL, -1},
};

static const row rules[] = {
    {"{}", NULL, "{\"flag\":false}", -1},
    {"{\"flag\":true,\"name\":\"h\xc3\xa9\",\"code\":\"abc-12\",\"n\":-3,\"score\":10}", NULL,
     "{\"flag\":true,\"name\":\"H\xc3\xa9\",\"code\":\"abc-12\",\"n\":-3,\"score\":10}", -1},
    {"{\"flag\":\"yes\"}", "flag: expected boolean", NULL, -1},
    {"{\"score\":10.5}", "score: above max 10", NULL, -1},
    {"{\"n\":6}", "n: above max 5", NULL, -1},
    {"{\"n\":1e300}", "n: expected integer", NULL, -1},
    {"{\"name\":\"h\xc3\xa9ll\"}", "name: longer than max_length 3", NULL, -1},
    {"{\"code\":\"abc\"}", "code: does not match pattern ^[a-z]+-[0-9]+$", NULL, -1},
    {"{\"code\":\"abc-1\"}", NULL, NULL, -1},
    {"{\"code\":\"abc-1 \"}", "code: does not match pattern ^[a-z]+-[0-9]+$", NULL, -1},
    {"{\"at\":\"2024-01-01T00:00:00.5+00:00\"}", NULL, "{\"at\":\"2024-01-01T00:00:00.5+00:00\",\"flag\":false}", 1704067200500LL},
};

static void run_table(mh_stage *st, const row *t, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        mh_list out = {0}, dlq = {0};
        mh_rec *in = mh_input(t[i].in, strlen(t[i].in), 0, (int64_t)i);
        mh_stage *chain[] = {st};
        sl_err e = mh_process(chain, 1, &in, 1, &out, &dlq);
        CHECK(e == SL_OK, "row %zu: process returned %d", i, e);
        if (t[i].reason) {
            CHECK(out.n == 0 && dlq.n == 1, "row %zu (%s): expected a reject, got out=%zu dlq=%zu", i,
                  t[i].in, out.n, dlq.n);
            if (dlq.n == 1) {
                const char *got = dlq.v[0]->reason;
                bool prefix = !strcmp(t[i].reason, "record: malformed JSON");
                bool ok = prefix ? !strncmp(got, t[i].reason, strlen(t[i].reason)) : !strcmp(got, t[i].reason);
                CHECK(ok, "row %zu: reason \"%s\", expected \"%s\"", i, got, t[i].reason);
                CHECK(!strcmp(mh_value(dlq.v[0]), t[i].in), "row %zu: dead letter changed: %s", i,
                      mh_value(dlq.v[0]));
            }
        } else {
            CHECK(out.n == 1 && dlq.n == 0, "row %zu (%s): expected valid, got out=%zu dlq=%zu (%s)", i,
                  t[i].in, out.n, dlq.n, dlq.n ? dlq.v[0]->reason : "");
            if (out.n == 1) {
                const char *want = t[i].out ? t[i].out : t[i].in;
                CHECK(!strcmp(mh_value(out.v[0]), want), "row %zu: value\n  got  %s\n  want %s", i,
                      mh_value(out.v[0]), want);
                if (t[i].ts >= 0)
                    CHECK(out.v[0]->r.timestamp_ms == t[i].ts, "row %zu: timestamp %lld, want %lld", i,
                          (long long)out.v[0]->r.timestamp_ms, t[i].ts);
            }
        }
        mh_list_free(&out);
        mh_list_free(&dlq);
        CHECK(mh_input_finished(in), "row %zu: input not finished", i);
        mh_rec_free(in);
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f)) {
        perror(path);
        exit(1);
    }
}

int main(void)
{
    const char *src = getenv("SLUICE_SOURCE_DIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/pipelines", src ? src : ".");
    const char *so = mh_plugin_path("validator");

    const char *kv1[] = {"schema", "ecommerce-event.schema.yaml", NULL};
    mh_stage *st = mh_open(NULL, so, "v", dir, kv1);
    CHECK(st != NULL, "open validator with the e-commerce schema");
    if (!st)
        return 1;
    run_table(st, ecommerce, sizeof ecommerce / sizeof ecommerce[0]);
    CHECK(mh_counter(st, "invalid") > 40, "invalid counter %llu", (unsigned long long)mh_counter(st, "invalid"));
    mh_close(st);

    snprintf(dir, sizeof dir, "%s/tests/validator", src ? src : ".");
    const char *kv2[] = {"schema", "rules.schema.yaml", NULL};
    st = mh_open(NULL, so, "v", dir, kv2);
    CHECK(st != NULL, "open validator with rules.schema.yaml");
    if (st) {
        run_table(st, rules, sizeof rules / sizeof rules[0]);
        mh_close(st);
    }

    /* Size limit, and on_invalid: drop. */
    const char *kv3[] = {"schema", "rules.schema.yaml", "max_record_bytes", "1KiB", "on_invalid", "drop", NULL};
    st = mh_open(NULL, so, "v", dir, kv3);
    CHECK(st != NULL, "open with max_record_bytes");
    if (st) {
        char big[2001];
        memset(big, ' ', 2000);
        big[0] = '{', big[1999] = '}', big[2000] = 0;
        const char *small = "{\"n\":7}";
        mh_rec *in[2] = {mh_input(big, 2000, 0, 0), mh_input(small, strlen(small), 0, 1)};
        mh_list out = {0}, dlq = {0};
        mh_process(&st, 1, in, 2, &out, &dlq);
        CHECK(out.n == 0 && dlq.n == 0, "drop mode: out=%zu dlq=%zu", out.n, dlq.n);
        CHECK(mh_counter(st, "invalid") == 2, "drop mode counts invalid: %llu",
              (unsigned long long)mh_counter(st, "invalid"));
        CHECK(mh_input_finished(in[0]) && mh_input_finished(in[1]), "dropped inputs are finished");
        mh_rec_free(in[0]);
        mh_rec_free(in[1]);
        mh_close(st);
    }
    const char *kv4[] = {"schema", "rules.schema.yaml", "max_record_bytes", "1KiB", NULL};
    st = mh_open(NULL, so, "v", dir, kv4);
    if (st) {
        char big[1026];
        memset(big, ' ', 1025);
        big[0] = '{', big[1024] = '}', big[1025] = 0;
        mh_rec *in = mh_input(big, 1025, 0, 0);
        mh_list out = {0}, dlq = {0};
        mh_process(&st, 1, &in, 1, &out, &dlq);
        CHECK(dlq.n == 1 && !strcmp(dlq.v[0]->reason, "record: 1025 bytes exceeds max_record_bytes 1024"),
              "size reason: %s", dlq.n ? dlq.v[0]->reason : "(none)");
        mh_list_free(&dlq);
        mh_list_free(&out);
        mh_rec_free(in);
        mh_close(st);
    }

    /* Bad schema files are configuration errors. */
    static const char *const bad[] = {
        "fields:\n  a: {type: strin}\n",
        "fields:\n  a: {type: string, frobnicate: 1}\n",
        "fields:\n  a: {type: integer, pattern: \"x\"}\n",
        "fields:\n  a: {type: string, pattern: \"([\"}\n",
        "fields:\n  a: {type: string, required_when: {b: [x]}}\n",
        "fields:\n  a: {type: integer, default: abc}\n",
        "fields:\n  a: {required: true}\n",
        "fieldz: {}\n",
        "fields: [\n",
    };
    char path[1100];
    snprintf(path, sizeof path, "/tmp/sluice-validator-test-%d.yaml", (int)getpid());
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i]);
        const char *kv[] = {"schema", path, NULL};
        mh_stage *b = mh_open(NULL, so, "v", "/", kv);
        CHECK(!b && mh_last_init_err == SL_ECONFIG, "bad schema %zu accepted", i);
        mh_close(b);
    }
    remove(path);
    const char *kv5[] = {"schema", "/nonexistent/schema.yaml", NULL};
    CHECK(!mh_open(NULL, so, "v", "/", kv5) && mh_last_init_err == SL_ECONFIG, "missing schema file");

    if (failures)
        fprintf(stderr, "%d failure(s)\n", failures);
    else
        printf("validator: all rows pass\n");
    return failures ? 1 : 0;
}
