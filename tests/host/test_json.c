/*
 * test_json — the host's JSON trees (host/json_tree.c) against cJSON's own parser, the ABI 1.2
 * JSON calls, and a pipeline whose stage keeps its own cJSON tree across batches (the host
 * must not lend cJSON's process-wide allocator its per-batch arena).
 * Usage: test-json (needs TEST_STAGES and SLUICE_PLUGIN_PATH, set by meson).
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "json_tree.h"
#include "jsoncheck.h"
#include "runtime.h"
#include "runtime_int.h"

static int failures;
#define CHECK(cond, ...)                                                                      \
    do {                                                                                      \
        if (!(cond)) {                                                                        \
            failures++;                                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                              \
            fprintf(stderr, __VA_ARGS__);                                                     \
            fputc('\n', stderr);                                                              \
        }                                                                                     \
    } while (0)

/* The same text through both parsers: equal trees (cJSON_Compare is exact on doubles), the
 * same printed text, and the list invariant cJSON relies on (first->prev is the last item). */
static void same_as_cjson(sl_arena *a, const char *text)
{
    cJSON *ref = cJSON_ParseWithLength(text, strlen(text));
    cJSON *got = jt_parse(a, text, strlen(text));
    CHECK(!ref == !got, "parses differ on %s (cJSON %s, ours %s)", text, ref ? "ok" : "no", got ? "ok" : "no");
    if (ref && got) {
        CHECK(cJSON_Compare(ref, got, 1), "trees differ on %s", text);
        char *r = cJSON_PrintUnformatted(ref), *g = jt_print(a, got, 16, NULL);
        CHECK(r && g && !strcmp(r, g), "print differs on %s: %s vs %s", text, r, g ? g : "(null)");
        cJSON_free(r);
    }
    cJSON_Delete(ref);
}

static void numbers(sl_arena *a)
{
    static const char *fixed[] = {"0", "-0", "1", "-1", "0.1", "0.3", "1.5e3", "1E-7", "123456789012345678",
                                  "9007199254740993", "-9223372036854775808", "1e22", "1e23", "1.7976931348623157e308",
                                  "4.9e-324", "2.2250738585072014e-308", "0.000001", "1234.5678", "99.99",
                                  "18446744073709551616", "12345678901234567890123", "3.14159265358979323846"};
    char buf[128];
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        snprintf(buf, sizeof buf, "[%s]", fixed[i]);
        same_as_cjson(a, buf);
    }
    uint64_t r = 42;
    for (int i = 0; i < 200000; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        unsigned kind = (unsigned)(r >> 60) % 4;
        unsigned long long m = (r >> 8) % (kind == 3 ? 100000000000000000ULL : 10000000ULL);
        int e = (int)((r >> 3) % 60) - 30;
        if (kind == 0) snprintf(buf, sizeof buf, "%llu", m);
        else if (kind == 1) snprintf(buf, sizeof buf, "-%llu.%02llu", m / 100, m % 100);
        else snprintf(buf, sizeof buf, "%llue%d", m, e);
        cJSON *ref = cJSON_Parse(buf);
        cJSON *got = jt_parse(a, buf, strlen(buf));
        CHECK(ref && got && memcmp(&ref->valuedouble, &got->valuedouble, sizeof(double)) == 0 &&
                  ref->valueint == got->valueint,
              "number %s: cJSON %.17g, ours %.17g", buf, ref ? ref->valuedouble : NAN, got ? got->valuedouble : NAN);
        cJSON_Delete(ref);
        if (i % 4096 == 0) arena_reset(a);
    }
}

static void documents(sl_arena *a)
{
    static const char *docs[] = {
        "{}", "[]", "  {\"a\" : [ ] , \"b\":{ }}  ", "\"\"", "null", "true", "false",
        "{\"event_id\":\"evt-1\",\"n\":[1,2,{\"x\":null,\"y\":true,\"z\":false}],\"s\":\"a\\\"b\\\\c\\/d\\n\\t\"}",
        "[\"\\u00e9\\u20ac\\ud83d\\ude00\", \"caf\xc3\xa9\", \"\\u0041\"]",
        "{\"k\\u0041y\":1, \"key\":2}",
        "", "{", "[1,]", "{\"a\":}", "[1 2]", "tru", "nul", "-", "\"abc", "[\"\\x\"]", "{\"a\" 1}",
    };
    for (size_t i = 0; i < sizeof docs / sizeof *docs; i++) same_as_cjson(a, docs[i]);
    /* Not JSON, though cJSON reads a prefix or a lone surrogate: refused, as the strict check
     * (which runs first on the hot path) refuses them. */
    static const char *bad[] = {"1.", "01x", "[1]]", "\"\\ud800\"", "\"\\udc00x\"", "[1]x", "-x", "1e", "[tru]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        CHECK(!jt_parse(a, bad[i], strlen(bad[i])) && sl_json_strict(bad[i], strlen(bad[i])),
              "%s is refused", bad[i]);
}

static void set_and_print(sl_arena *a)
{
    static const char *keys[] = {"a", "b", "c", "new"};
    for (size_t k = 0; k < 4; k++) {
        cJSON *o = jt_parse(a, "{\"a\":1,\"b\":2,\"c\":3}", 19);
        jt_set(a, o, keys[k], jt_string(a, "x", 1));
        cJSON *ref = cJSON_Parse("{\"a\":1,\"b\":2,\"c\":3}");
        if (cJSON_GetObjectItemCaseSensitive(ref, keys[k]))
            cJSON_ReplaceItemInObjectCaseSensitive(ref, keys[k], cJSON_CreateString("x"));
        else
            cJSON_AddItemToObject(ref, keys[k], cJSON_CreateString("x"));
        char *r = cJSON_PrintUnformatted(ref), *g = jt_print(a, o, 1, NULL);
        CHECK(!strcmp(r, g), "set %s: %s vs %s", keys[k], r, g);
        CHECK(o->child->prev && o->child->prev->next == NULL, "set %s: first->prev is not the last", keys[k]);
        /* cJSON's own append relies on first->prev being the tail */
        cJSON_AddItemToObjectCS(o, "tail", jt_literal(a, cJSON_NULL)); /* CS: no key copy to free */
        g = jt_print(a, o, 1, NULL);
        CHECK(strstr(g, ",\"tail\":null}") != NULL, "append after set %s: %s", keys[k], g);
        cJSON_free(r);
        cJSON_Delete(ref);
    }
    /* json_set_json's copy (jt_copy): a member replaced by a copy of something inside itself */
    const char *nest = "{\"a\":{\"x\":[1,\"s\",{\"k\":9007199254740993}]},\"b\":2}";
    cJSON *o2 = jt_parse(a, nest, strlen(nest));
    jt_set(a, o2, "a", jt_copy(a, cJSON_GetObjectItemCaseSensitive(o2, "a")->child));
    const char *p2 = jt_print(a, o2, 1, NULL);
    /* (printing goes through cJSON, which prints the double: see the ABI notes on json_int64) */
    CHECK(!strncmp(p2, "{\"a\":[1,\"s\",{\"k\":", 16) && strstr(p2, "}],\"b\":2}"), "dup into its own place: %s", p2);
    sl_json_key kk;
    api_json_key_init(&kk, "k");
    int64_t big = 0;
    sl_json *k2 = api_json_get_key((sl_json *)cJSON_GetArrayItem(o2->child, 2), &kk);
    CHECK(k2 && api_json_int64(k2, &big) == SL_OK && big == 9007199254740993LL, "a copy keeps exact digits and key hashes");
    CHECK(o2->child->prev == o2->child->next, "list invariant after the replace");
    cJSON *one = jt_parse(a, "{\"only\":1}", 10);
    jt_set(a, one, "only", jt_number(a, 2.5));
    CHECK(!strcmp(jt_print(a, one, 1, NULL), "{\"only\":2.5}"), "replace the only member");
    CHECK(one->child->prev == one->child, "only member: prev is itself");
}

static void api_calls(sl_arena *a)
{
    const char *t = "{\"id\":\"abc\",\"big\":9007199254740993,\"neg\":-9223372036854775808,\"over\":9223372036854775808,"
                    "\"frac\":1.5,\"exp\":1e3,\"small\":42,\"s\":\"h\\u00e9\",\"sub\":{\"x\":[1,\"two\"]}}";
    cJSON *o = jt_parse(a, t, strlen(t));
    CHECK(o != NULL, "api doc parses");
    if (!o) return;
    sl_json *root = (sl_json *)o;
    sl_json_key k;
    api_json_key_init(&k, "big");
    sl_json *big = api_json_get_key(root, &k);
    int64_t v = 0;
    CHECK(big && api_json_int64(big, &v) == SL_OK && v == 9007199254740993LL, "int64 beyond 2^53 exact: %lld", (long long)v);
    api_json_key_init(&k, "neg");
    CHECK(api_json_int64(api_json_get_key(root, &k), &v) == SL_OK && v == INT64_MIN, "int64 min");
    api_json_key_init(&k, "over");
    CHECK(api_json_int64(api_json_get_key(root, &k), &v) == SL_EINVAL, "int64 overflow refused");
    api_json_key_init(&k, "frac");
    CHECK(api_json_int64(api_json_get_key(root, &k), &v) == SL_EINVAL, "fraction refused");
    api_json_key_init(&k, "exp");
    CHECK(api_json_int64(api_json_get_key(root, &k), &v) == SL_OK && v == 1000, "1e3 is 1000");
    api_json_key_init(&k, "small");
    CHECK(api_json_int64(api_json_get_key(root, &k), &v) == SL_OK && v == 42, "small int");
    api_json_key_init(&k, "id");
    CHECK(api_json_int64(api_json_get_key(root, &k), &v) == SL_EINVAL, "a string is not an int64");
    size_t len = 0;
    api_json_key_init(&k, "s");
    const char *s = api_json_string_len(api_json_get_key(root, &k), &len);
    CHECK(s && len == 3 && !memcmp(s, "h\xc3\xa9", 3), "string length after unescaping: %zu", len);
    api_json_key_init(&k, "missing");
    CHECK(api_json_get_key(root, &k) == NULL, "absent key");
    api_json_key_init(&k, "i"); /* a prefix of "id" */
    CHECK(api_json_get_key(root, &k) == NULL, "a prefix is not the key");
    api_json_key_init(&k, "sub");
    sl_json *sub = api_json_get_key(root, &k);
    CHECK(sub && api_json_key_is(sub, &k), "key_is");
    size_t kl = 0;
    CHECK(api_json_key_hash(sub, &kl) == k.hash && kl == 3, "key_hash matches key_init");
    CHECK(api_json_key_hash(root, &kl) == 0, "the root is no member");
    char *p = jt_print(a, (cJSON *)sub, 1, &len);
    CHECK(p && !strcmp(p, "{\"x\":[1,\"two\"]}") && len == strlen(p), "print a subtree: %s", p ? p : "(null)");
}

/* The one-pass check-and-parse never accepts what the strict check refuses, and builds the
 * same tree as the plain parse: edge cases of every strict rule, then random mutations. */
static void strict_one(sl_arena *a, const char *t, size_t n, long *accepted, long *fallback)
{
    cJSON *fused = jt_parse_strict(a, t, n);
    const char *bad = sl_json_strict(t, n);
    if (fused) {
        CHECK(!bad, "one pass accepted what the strict check refuses (%s): %.*s", bad, (int)n, t);
        cJSON *plain = jt_parse(a, t, n);
        CHECK(plain && cJSON_Compare(fused, plain, 1), "one pass and plain parse differ: %.*s", (int)n, t);
        ++*accepted;
    } else if (!bad) {
        ++*fallback;
    }
}

static void strict_parse(sl_arena *a)
{
    long acc = 0, fb = 0;
    static const char *edge[] = {
        "{\"a\":1,\"a\":2}", "{\"a\":1,\"\\u0061\":2}", "{\"x\":{\"a\":1},\"y\":{\"a\":1}}",
        "[\"a\\u0000b\"]", "{\"a\\u0000\":1}", "[\"\\ud800\"]", "[\"\\udc00\\ud800\"]", "[\"\\ud83d\\ude00\"]",
        "[\"\xc0\xaf\"]", "[\"\xed\xa0\x80\"]", "[\"\xf4\x90\x80\x80\"]", "[\"\xe2\x82\"]", "[\"\xe2\x82\xac\"]",
        "[\"\x1f\"]", "[\"tab\there\"]", "\x0c[1]", "[1]\x0b", "\xef\xbb\xbf[1]", "[1] x", "[01]", "[-0]", "[0.5e-3]",
        "[1e308]", "[1e309]", "[-1e309]", "[1.7976931348623157e308]", "[1.79769313486231e308]", "[4.9e-324]", "[1e-400]",
        "[123456789012345678901234567890123456789012345678901234567890123]",
        "[1234567890123456789012345678901234567890123456789012345678901234]",
        "{\"k1\":1,\"k2\":1,\"k3\":1,\"k4\":1,\"k5\":1,\"k6\":1,\"k7\":1,\"k8\":1,\"k9\":1,\"k10\":1,"
        "\"k11\":1,\"k12\":1,\"k13\":1,\"k14\":1,\"k15\":1,\"k16\":1,\"k17\":1}",
        "{\"event_id\":\"evt-000000000001\",\"event_type\":\"purchase\",\"user_id\":\"user-00042\",\"amount\":12.34,"
        "\"ts\":\"2026-05-01T10:00:01.123Z\",\"nested\":{\"l\":[true,false,null,\"caf\xc3\xa9 \\\"q\\\"\"]}}",
    };
    for (size_t i = 0; i < sizeof edge / sizeof *edge; i++) strict_one(a, edge[i], strlen(edge[i]), &acc, &fb);
    char deep[600];
    for (int d = 126; d <= 130; d++) {
        memset(deep, '[', (size_t)d);
        memset(deep + d, ']', (size_t)d);
        strict_one(a, deep, (size_t)d * 2, &acc, &fb);
    }
    const char *ref = edge[sizeof edge / sizeof *edge - 1];
    CHECK(jt_parse_strict(a, ref, strlen(ref)) != NULL, "a reference event takes the one-pass path");
    static const unsigned char pick[] = {'"', '\\', 0, 0x1f, 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe2, 0xed, 0xf0, 0xf4,
                                         0xff, 'u', '0', '9', '{', '}', '[', ']', ',', ':', 'e', '-', '.', ' ', 'd', 'a'};
    uint64_t r = 7;
    char buf[512];
    for (int i = 0; i < 300000; i++) {
        const char *seed = edge[i % (sizeof edge / sizeof *edge)];
        size_t n = strlen(seed);
        memcpy(buf, seed, n);
        int edits = 1 + (int)(i % 3);
        for (int e = 0; e < edits; e++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t at = (size_t)(r >> 33) % (n + 1);
            unsigned char c = pick[(r >> 20) % sizeof pick];
            int op = (int)((r >> 10) % 3);
            if (op == 0 && at < n) buf[at] = (char)c;                                 /* replace */
            else if (op == 1 && n < sizeof buf - 1) {                                 /* insert */
                memmove(buf + at + 1, buf + at, n - at);
                buf[at] = (char)c;
                n++;
            } else if (at < n) {                                                      /* delete */
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
            }
        }
        strict_one(a, buf, n, &acc, &fb);
        if (i % 1024 == 0) arena_reset(a);
    }
    printf("one-pass parse: %ld accepted, %ld valid ones left to the strict check\n", acc, fb);
}

/* A stage keeps a cJSON tree of its own across batches (tests/host/stages/keeper.c). */
static void keeper_pipeline(void)
{
    char dir[] = "/tmp/sluice-test-json-XXXXXX";
    if (!mkdtemp(dir)) { perror("mkdtemp"); failures++; return; }
    char in[256], yaml[256], out[256], cmd[600];
    snprintf(in, sizeof in, "%s/in.ndjson", dir);
    snprintf(out, sizeof out, "%s/out.ndjson", dir);
    snprintf(yaml, sizeof yaml, "%s/p.yaml", dir);
    FILE *f = fopen(in, "w");
    for (int i = 0; i < 20000; i++) /* many batches of 64, each filling the arena anew */
        fprintf(f, "{\"n\":%d,\"pad\":\"the same arena bytes get reused batch after batch\",\"l\":[%d,%d]}\n", i, i, i);
    fclose(f);
    f = fopen(yaml, "w");
    fprintf(f, "pipeline: keeper\nbatch_size: 64\nstages:\n"
               "  - {name: in, use: file-source, with: {path: \"%s\", offset_file: \"\"}}\n"
               "  - {name: k, use: keeper}\n"
               "  - {name: out, use: file-sink, with: {path: \"%s\", mode: truncate}}\n", in, out);
    fclose(f);
    const char *dirs[2] = {getenv("SLUICE_PLUGIN_PATH"), getenv("TEST_STAGES")};
    int rc = sl_run_pipeline_file(yaml, dirs, 2, -1);
    CHECK(rc == 0, "a stage's own cJSON tree survives the batches (pipeline rc %d)", rc);
    snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", in, out);
    CHECK(system(cmd) == 0, "records pass the keeper unchanged");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd)) perror("rm");
}

int main(void)
{
    sl_arena a = {0};
    documents(&a);
    numbers(&a);
    set_and_print(&a);
    api_calls(&a);
    strict_parse(&a);
    arena_free(&a);
    keeper_pipeline();
    if (failures) fprintf(stderr, "%d failures\n", failures);
    else printf("ok\n");
    return failures ? 1 : 0;
}
