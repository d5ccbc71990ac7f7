/* libFuzzer target for the expression library: the input's first line is an expression text
 * (compiled with and without variables, as a condition and as a value), the rest a JSON record it
 * is evaluated against through the real host's accessors (sl_host_api from sluice_core).
 * Invariants: a refused text has a message and a position inside the text; a compiled one
 * evaluates without crashing, leaking or reading out of bounds; a condition's eval_bool agrees
 * with eval; the result type agrees with the static type when one is known. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/common/sl_expr.h"

extern const sl_api sl_host_api;

static void check(const sl_expr *e, const cJSON *root, const sl_expr_value *vars)
{
    sl_expr_value v = sl_expr_eval(e, &sl_host_api, (const sl_json *)root, vars);
    int b = sl_expr_eval_bool(e, &sl_host_api, (const sl_json *)root, vars);
    if (b != (v.type == SL_EXPR_BOOL && v.b)) abort();
    switch (sl_expr_result_type(e)) {
    case SL_EXPR_T_BOOL: if (v.type != SL_EXPR_BOOL) abort(); break;
    case SL_EXPR_T_STRING: if (v.type != SL_EXPR_STRING) abort(); break;
    case SL_EXPR_T_NUMBER: if (v.type != SL_EXPR_NUMBER && v.type != SL_EXPR_NULL) abort(); break;
    case SL_EXPR_T_NULL: if (v.type != SL_EXPR_NULL) abort(); break;
    default: break;
    }
    if (v.type == SL_EXPR_STRING && !v.str) abort();
    char buf[64];
    sl_expr_value_format(&v, buf, sizeof buf);
    if (strlen(buf) >= sizeof buf) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t tlen = nl ? (size_t)(nl - data) : size;
    char *text = malloc(tlen + 1);
    memcpy(text, data, tlen);
    text[tlen] = 0;
    /* The rest, if any, is the record; texts may also span lines via "\\n" escapes in YAML, so
     * multi-line texts are covered by replacing '\r' with '\n'. */
    for (size_t i = 0; i < tlen; i++)
        if (text[i] == '\r') text[i] = '\n';
    cJSON *root = nl ? cJSON_ParseWithLength((const char *)nl + 1, size - tlen - 1) : NULL;
    static const char *const cols[] = {"a", "b", "orders"};
    sl_expr_value vars[3] = {{.type = SL_EXPR_NUMBER, .num = 2}, {.type = SL_EXPR_STRING, .str = "x"},
                             {.type = SL_EXPR_NULL}};
    sl_expr_opts opts[] = {{0}, {.want = SL_EXPR_T_BOOL}, {.vars = cols, .nvars = 3},
                           {.vars = cols, .nvars = 3, .vars_only = 1, .want = SL_EXPR_T_NUMBER}};
    for (size_t i = 0; i < sizeof opts / sizeof *opts; i++) {
        sl_expr_error err;
        sl_expr *e = sl_expr_compile(text, &opts[i], &err);
        if (!e) {
            if (!err.msg[0] || err.offset > tlen || err.line < 1 || err.col < 1) abort();
            continue;
        }
        check(e, root, opts[i].nvars ? vars : NULL);
        sl_expr_free(e);
    }
    cJSON_Delete(root);
    free(text);
    return 0;
}
