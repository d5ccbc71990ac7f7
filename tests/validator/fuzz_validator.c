/* libFuzzer target for the validator's parse path, without any stand-in host: raw bytes ->
 * the validator's record-level checks (size, UTF-8) -> the host's strict JSON check and its
 * parser (host/json_tree.c, as api->json does: a refused value reaches the validator as NULL with the reason) ->
 * the validator's schema checks, reading the tree through the real host's JSON accessors
 * (sl_host_api from sluice_core; they need no ctx) -> the normalisations applied to the tree.
 * validator.c (with schema.c and check.c) is included, not dlopened, so it is instrumented and its statics are reachable.
 * Invariants: a rejected input has a "<field>: <rule>" reason; an accepted one is a JSON object
 * after normalisation that validates again with nothing left to change (normalisation is
 * idempotent); nothing crashes, leaks or reads out of bounds. */
#include "../../plugins/validator/schema.c"
#include "../../plugins/validator/check.c"
#include "../../plugins/validator/validator.c"

#include <cjson/cJSON.h>

#include "../../host/json_tree.h"
#include "../../host/jsoncheck.h"

/* From host/runtime.h. */
extern const sl_api sl_host_api;

static sl_arena trees; /* the host builds records' trees in the task's arena; here, per input */

#ifndef FUZZ_SCHEMA
#define FUZZ_SCHEMA "pipelines/ecommerce-event.schema.yaml"
#endif

static validator *v;
static vconf conf = {.schema = FUZZ_SCHEMA, .max_record_bytes = 4096};

static void setup(void)
{
    char err[8192];
    v = calloc(1, sizeof *v);
    v->api = &sl_host_api;
    v->conf = &conf;
    if (!schema_load(&v->sc, conf.schema, err, sizeof err)) {
        fprintf(stderr, "%s\n", err);
        abort();
    }
    validator_keys_init(v);
    v->arena_size = (size_t)conf.max_record_bytes + 32 * MAX_FIELDS + 64;
    v->arena = malloc(v->arena_size);
}

/* What api->json_set_* do to a record's tree. */
static void apply(cJSON *root)
{
    for (size_t m = 0; m < v->n_mut; m++) {
        const mutation *mu = &v->mut[m];
        cJSON *item = mu->s ? jt_string(&trees, mu->s, strlen(mu->s))
                      : mu->is_bool ? jt_literal(&trees, mu->d != 0 ? cJSON_True : cJSON_False)
                                    : jt_number(&trees, mu->d);
        jt_set(&trees, root, mu->key, item);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!v)
        setup();
    cJSON *root = NULL;
    bool ok = check_raw(v, data, size);
    if (ok) {
        const char *bad = sl_json_strict(data, size);
        root = bad ? NULL : jt_parse(&trees, (const char *)data, size);
        if (!bad && !root)
            abort(); /* the strict check accepted what the host's parser cannot parse */
        ok = check_root(v, (const sl_json *)root, bad ? bad : "parse error");
    }
    if (!ok) {
        if (!strstr(v->reason, ": "))
            abort(); /* every reason names a field (or "record") and a rule */
        arena_reset(&trees);
        return 0;
    }
    apply(root);
    char *out = jt_print(&trees, root, size, NULL);
    cJSON *again = out ? jt_parse(&trees, out, strlen(out)) : NULL;
    if (!cJSON_IsObject(again))
        abort(); /* a forwarded record is a JSON object after normalisation */
    if (!check_root(v, (const sl_json *)again, NULL) || v->n_mut != 0) {
        fprintf(stderr, "not idempotent: %.*s -> %s (%s, %zu changes)\n", (int)size, (const char *)data, out, v->reason, v->n_mut);
        abort();
    }
    arena_reset(&trees);
    return 0;
}
