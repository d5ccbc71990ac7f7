/* Unit test of the expression library (plugins/common/sl_expr*): a table of texts evaluated
 * against JSON records through the real host's accessors (sl_host_api from sluice_core; they need
 * no ctx), and a table of texts that must be refused at compile time with a position and reason. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../../plugins/common/sl_expr.h"

extern const sl_api sl_host_api;

static int failures;

/* "true", "false", "null", "missing", "other", "n:<number>", "s:<string>" */
static void describe(const sl_expr_value *v, char *buf, size_t len)
{
    char t[256];
    switch (v->type) {
    case SL_EXPR_BOOL: snprintf(buf, len, "%s", v->b ? "true" : "false"); break;
    case SL_EXPR_NULL: snprintf(buf, len, "null"); break;
    case SL_EXPR_MISSING: snprintf(buf, len, "missing"); break;
    case SL_EXPR_OTHER: snprintf(buf, len, "other"); break;
    case SL_EXPR_NUMBER: sl_expr_value_format(v, t, sizeof t); snprintf(buf, len, "n:%s", t); break;
    case SL_EXPR_STRING: snprintf(buf, len, "s:%s", v->str); break;
    }
}

static const char *REC = "{\"event_type\":\"order\",\"amount\":12.5,\"qty\":3,\"zero\":0,\"user\":{\"id\":\"u-7\","
                         "\"tier\":\"gold\",\"tags\":[\"a\",\"b\"]},\"ok\":true,\"no\":false,\"nil\":null,"
                         "\"items\":[{\"sku\":\"X1\",\"price\":4},{\"sku\":\"Y2\",\"price\":6}],"
                         "\"odd key\":\"spaced\",\"and\":\"kw\",\"url\":\"https://shop.example/cart\"}";

static const struct {
    const char *text;
    const char *want;
} cases[] = {
    /* literals */
    {"1", "n:1"}, {"-2.5", "n:-2.5"}, {"1e3", "n:1000"}, {".5", "n:0.5"}, {"'a'", "s:a"}, {"\"b\\\"c\"", "s:b\"c"},
    {"\"\\u00e9\"", "s:\xc3\xa9"}, {"\"\\ud83d\\ude00\"", "s:\xf0\x9f\x98\x80"}, {"true", "true"}, {"false", "false"},
    {"null", "null"},
    /* fields */
    {"event_type", "s:order"}, {"$.event_type", "s:order"}, {"user.id", "s:u-7"}, {"user.tags[1]", "s:b"},
    {"items[1].sku", "s:Y2"}, {"items[2].sku", "missing"}, {"$[\"odd key\"]", "s:spaced"}, {"$.and", "s:kw"},
    {"nope", "missing"}, {"user.nope.deeper", "missing"}, {"nil", "null"}, {"user", "other"}, {"ok", "true"},
    {"event_type[0]", "missing"}, {"user[\"id\"]", "s:u-7"}, {"$", "other"},
    /* arithmetic */
    {"1 + 2 * 3", "n:7"}, {"(1 + 2) * 3", "n:9"}, {"amount * qty", "n:37.5"}, {"10 / 4", "n:2.5"}, {"7 % 3", "n:1"},
    {"amount / zero", "null"}, {"1 / 0", "null"}, {"5 % 0", "null"}, {"-qty", "n:-3"}, {"- -qty", "n:3"},
    {"qty - 1", "n:2"}, {"qty-1", "n:2"}, {"amount + nope", "null"}, {"amount + event_type", "null"},
    {"1e308 * 10", "null"}, {"0.1 + 0.2", "n:0.30000000000000004"},
    /* comparisons */
    {"qty == 3", "true"}, {"qty != 3", "false"}, {"qty > 2", "true"}, {"qty >= 3", "true"}, {"qty < 3", "false"},
    {"qty <= 2.9", "false"}, {"event_type == 'order'", "true"}, {"event_type != \"order\"", "false"},
    {"event_type < 'p'", "true"}, {"event_type == qty", "false"}, {"event_type > qty", "false"},
    {"nope == 1", "false"}, {"nope != 1", "true"}, {"nope == null", "false"}, {"nil == null", "true"},
    {"ok == true", "true"}, {"no == false", "true"}, {"user == user", "false"}, {"amount / zero == null", "true"},
    /* logic */
    {"ok and qty > 1", "true"}, {"ok && no", "false"}, {"no or ok", "true"}, {"no || no", "false"}, {"not no", "true"},
    {"!ok", "false"}, {"not nope", "true"}, {"nope and ok", "false"}, {"qty > 1 and qty < 5 and ok", "true"},
    {"qty > 5 or qty < 1 or no", "false"}, {"no and 1 / 0 == 1 or ok", "true"}, {"not (ok and no)", "true"},
    {"ok and event_type", "false"}, {"event_type or ok", "true"},
    /* in */
    {"event_type in ['order', 'view']", "true"}, {"event_type in ['view']", "false"}, {"qty in [1, 2, 3]", "true"},
    {"qty not in [1, 2, 3]", "false"}, {"nope in [null]", "false"}, {"nil in [null, 1]", "true"}, {"qty in []", "false"},
    {"user.tier in ['gold','silver'] and not (event_type in ['refund'])", "true"},
    /* exists */
    {"exists(user.id)", "true"}, {"exists(nil)", "true"}, {"exists(nope)", "false"}, {"exists($[\"odd key\"])", "true"},
    {"exists(items[0].price)", "true"}, {"not exists(user.email)", "true"},
    /* strings */
    {"starts_with(url, 'https://')", "true"}, {"ends_with(url, '/cart')", "true"}, {"contains(url, 'shop')", "true"},
    {"contains(url, '')", "true"}, {"starts_with(nope, 'x')", "false"}, {"ends_with('ab', 'abc')", "false"},
    {"starts_with(qty, '3')", "false"}, {"contains(user.id, \"-\")", "true"},
    /* if, coalesce */
    {"if(qty > 2, 'many', 'few')", "s:many"}, {"if(nope, 1, 2)", "n:2"}, {"coalesce(nope, nil, qty)", "n:3"},
    {"coalesce(nope, nil)", "null"}, {"coalesce(amount / zero, 0)", "n:0"}, {"coalesce(event_type, 'x')", "s:order"},
    {"if(ok, coalesce(nope, 1), 2) + 1", "n:2"},
    /* round */
    {"round(2.5)", "n:3"}, {"round(-2.5)", "n:-3"}, {"round(0.908 * 5578966, 3)", "n:5065701.128"},
    {"round(amount / 3, 2)", "n:4.17"}, {"round(nope, 1)", "null"}, {"round(1e300, 12)", "n:1e+300"},
    {"round(amount * 0.1, 0) == 1", "true"},
    /* comments and layout */
    {"qty > 1 # more than one\n and ok", "true"}, {"  \n qty\n", "n:3"},
};

static const struct {
    const char *text;
    int line, col;
    const char *msg; /* a substring of the message */
} errors[] = {
    {"", 1, 1, "empty expression"},
    {"   ", 1, 4, "empty expression"},
    {"qty >", 1, 6, "end of the expression"},
    {"qty = 3", 1, 5, "write '=='"},
    {"(qty > 1", 1, 9, "expected ')'"},
    {"qty > 1)", 1, 8, "unexpected ')'"},
    {"qty > 1 amount", 1, 9, "missing an operator"},
    {"'abc", 1, 1, "unterminated string"},
    {"1 + 'a\\", 1, 5, "unterminated string"},
    {"'a\\\n'", 1, 3, "unknown escape"},
    {"\"a\\qb\"", 1, 3, "unknown escape"},
    {"\"\\u12\"", 1, 2, "bad \\u escape"},
    {"\"\\ud800\"", 1, 2, "surrogate"},
    {"'a' + 1", 1, 1, "'+' needs a number, got a string"},
    {"1 - 'a'", 1, 5, "'-' needs a number, got a string"},
    {"true * 2", 1, 1, "needs a number, got a bool"},
    {"1 == 'a'", 1, 3, "never equal"},
    {"1 < 'a'", 1, 3, "compares a number with a string"},
    {"true < 1", 1, 1, "orders numbers or strings"},
    {"1 and ok", 1, 1, "'and' needs a bool, got a number"},
    {"ok or 'x'", 1, 7, "'or' needs a bool, got a string"},
    {"not 3", 1, 5, "'not' needs a bool"},
    {"a < b < c", 1, 7, "do not chain"},
    {"1 in [1, 'a']", 1, 10, "never equal"},
    {"qty in [amount]", 1, 9, "must be literals"},
    {"qty in 1", 1, 8, "expected '['"},
    {"'a' in [1]", 1, 9, "never equal"},
    {"exists(1)", 1, 8, "takes a field reference"},
    {"starts_with(1, 'a')", 1, 13, "starts_with needs a string"},
    {"contains('a')", 1, 13, "expected ','"},
    {"nosuch(1)", 1, 1, "unknown function 'nosuch'"},
    {"a.", 1, 3, "expected a field name"},
    {"a[x]", 1, 3, "quoted field name or an array index"},
    {"a[\"x\"", 1, 6, "expected ']'"},
    {"and", 1, 1, "unexpected 'and'"},
    {"qty > 1 and\n  event_type ==", 2, 16, "end of the expression"},
    {"1.2.3", 1, 1, "malformed number"},
    {"1e999", 1, 1, "out of range"},
    {"12abc", 1, 3, "after a number"},
    {"qty @ 2", 1, 5, "unexpected '@'"},
    {"if(1, 2, 3)", 1, 4, "if()'s condition needs a bool"},
    {"\x01", 1, 1, "control character"},
    {"round('a')", 1, 7, "round needs a number"},
    {"round(1, 13)", 1, 10, "whole number from 0 to 12"},
    {"round(1, x)", 1, 10, "whole number from 0 to 12"},
    {"round(1, 1.5)", 1, 10, "whole number from 0 to 12"},
    {"round(1, 1e300)", 1, 10, "whole number from 0 to 12"},
    {"round(1, 2, 3)", 1, 11, "expected ')'"},
    {"caf\xc3\xa9 == 1", 1, 4, "unexpected '\xc3\xa9' after"},
    {"\xc3\xa9", 1, 1, "unexpected '\xc3\xa9' (expected a value"},
    {"$[\"caf\xc3\xa9\"] ==", 1, 13, "end of the expression"},
};

static void check_value(const cJSON *root, const char *text, const char *want)
{
    sl_expr_error err;
    sl_expr *e = sl_expr_compile(text, NULL, &err);
    if (!e) {
        printf("FAIL %s: refused at %d:%d: %s\n", text, err.line, err.col, err.msg);
        failures++;
        return;
    }
    sl_expr_value v = sl_expr_eval(e, &sl_host_api, (const sl_json *)root, NULL);
    char got[512];
    describe(&v, got, sizeof got);
    if (strcmp(got, want) != 0) {
        printf("FAIL %s: got %s, want %s\n", text, got, want);
        failures++;
    }
    /* eval_bool agrees with eval */
    if (sl_expr_eval_bool(e, &sl_host_api, (const sl_json *)root, NULL) != !strcmp(want, "true")) {
        printf("FAIL %s: eval_bool disagrees\n", text);
        failures++;
    }
    sl_expr_free(e);
}

static void check_error(const char *text, const sl_expr_opts *o, int line, int col, const char *msg)
{
    sl_expr_error err;
    sl_expr *e = sl_expr_compile(text, o, &err);
    if (e) {
        printf("FAIL %s: compiled, want error %d:%d %s\n", text, line, col, msg);
        failures++;
        sl_expr_free(e);
        return;
    }
    if (err.line != line || err.col != col || !strstr(err.msg, msg)) {
        printf("FAIL %s: got %d:%d %s; want %d:%d ...%s...\n", text, err.line, err.col, err.msg, line, col, msg);
        failures++;
    }
}

static void check_vars(void)
{
    static const char *const cols[] = {"orders", "failed", "gmv"};
    sl_expr_opts o = {.vars = cols, .nvars = 3, .vars_only = 1, .want = SL_EXPR_T_NUMBER};
    sl_expr_error err;
    sl_expr *e = sl_expr_compile("coalesce(orders / (orders + failed), 0)", &o, &err);
    if (!e) {
        printf("FAIL vars: %s\n", err.msg);
        failures++;
        return;
    }
    sl_expr_value v[3] = {{.type = SL_EXPR_NUMBER, .num = 3}, {.type = SL_EXPR_NUMBER, .num = 1},
                          {.type = SL_EXPR_NUMBER, .num = 9}};
    sl_expr_value r = sl_expr_eval(e, NULL, NULL, v);
    if (r.type != SL_EXPR_NUMBER || r.num != 0.75) {
        printf("FAIL vars: ratio %g\n", r.num);
        failures++;
    }
    v[0].num = 0;
    v[1].num = 0;
    r = sl_expr_eval(e, NULL, NULL, v);
    if (r.type != SL_EXPR_NUMBER || r.num != 0) {
        printf("FAIL vars: 0/0 should coalesce to 0\n");
        failures++;
    }
    sl_expr_free(e);
    check_error("orders / nope", &o, 1, 10, "unknown column 'nope' (columns: orders, failed, gmv)");
    check_error("$.x + 1", &o, 1, 1, "only the columns");
    check_error("orders > 1", &o, 1, 1, "a number is expected here, but the expression gives a bool");
    sl_expr_opts cond = {.want = SL_EXPR_T_BOOL};
    check_error("amount * 2", &cond, 1, 1, "a bool is expected");
    check_error("'x'", &cond, 1, 1, "a bool is expected");
    /* a path to a variable name with a dot is a field, not the variable */
    sl_expr_opts mixed = {.vars = cols, .nvars = 3};
    e = sl_expr_compile("orders.x", &mixed, &err);
    if (!e || !sl_expr_is_path(e, NULL)) {
        printf("FAIL mixed: orders.x should be a path\n");
        failures++;
    }
    sl_expr_free(e);
}

static void check_limits(void)
{
    char buf[SL_EXPR_MAX_TEXT + 2];
    /* deep nesting is refused, not a stack overflow */
    size_t n = 0;
    for (int i = 0; i < 200; i++) buf[n++] = '(';
    buf[n++] = '1';
    for (int i = 0; i < 200; i++) buf[n++] = ')';
    buf[n] = 0;
    sl_expr_error err;
    sl_expr *e = sl_expr_compile(buf, NULL, &err);
    if (e || !strstr(err.msg, "too deep") ) {
        printf("FAIL deep parens: %s\n", e ? "compiled" : err.msg);
        failures++;
    }
    sl_expr_free(e);
    n = 0;
    for (int i = 0; i < 200; i++) n += (size_t)sprintf(buf + n, "not ");
    sprintf(buf + n, "ok");
    e = sl_expr_compile(buf, NULL, &err);
    if (e || !strstr(err.msg, "too deep")) {
        printf("FAIL deep not: %s\n", e ? "compiled" : err.msg);
        failures++;
    }
    sl_expr_free(e);
    /* a long flat chain is fine (the stack stays shallow) */
    n = 0;
    for (int i = 0; i < 500; i++) n += (size_t)sprintf(buf + n, "qty > %d or ", i);
    sprintf(buf + n, "ok");
    e = sl_expr_compile(buf, NULL, &err);
    if (!e) {
        printf("FAIL long chain refused: %s\n", err.msg);
        failures++;
    }
    sl_expr_free(e);
    memset(buf, ' ', sizeof buf - 1);
    buf[sizeof buf - 1] = 0;
    e = sl_expr_compile(buf, NULL, &err);
    if (e || !strstr(err.msg, "longer than")) {
        printf("FAIL long text\n");
        failures++;
    }
    sl_expr_free(e);
}

static void check_format(void)
{
    static const struct {
        double d;
        const char *s;
    } f[] = {{3, "3"}, {-0.0, "0"}, {2.5, "2.5"}, {0.1, "0.1"}, {1e21, "1e+21"}, {123456789012, "123456789012"},
             {1.0 / 3, "0.3333333333333333"}};
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        sl_expr_value v = {.type = SL_EXPR_NUMBER, .num = f[i].d};
        char b[64];
        sl_expr_value_format(&v, b, sizeof b);
        if (strcmp(b, f[i].s)) {
            printf("FAIL format %g: %s want %s\n", f[i].d, b, f[i].s);
            failures++;
        }
    }
}

/* `test_expr --bench`: ns per evaluation of a few programs over REC (a figure, never a check). */
static void bench(const cJSON *root)
{
    static const char *const texts[] = {"event_type in ['order', 'refund'] and amount > 0 and ok",
                                        "amount * qty", "user.tier == 'gold'", "starts_with(url, 'https://')"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        sl_expr *e = sl_expr_compile(texts[i], NULL, NULL);
        struct timespec a, b;
        long n = 5000000;
        volatile int sink = 0;
        clock_gettime(CLOCK_MONOTONIC, &a);
        for (long k = 0; k < n; k++) sink += sl_expr_eval(e, &sl_host_api, (const sl_json *)root, NULL).type;
        clock_gettime(CLOCK_MONOTONIC, &b);
        (void)sink; /* read so clang does not call it unused: the loop exists to be timed */
        double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)n;
        printf("%6.1f ns  %s\n", ns, texts[i]);
        sl_expr_free(e);
    }
}

int main(int argc, char **argv)
{
    cJSON *root = cJSON_Parse(REC);
    if (!root) return 99;
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench(root);
        cJSON_Delete(root);
        return 0;
    }
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) check_value(root, cases[i].text, cases[i].want);
    for (size_t i = 0; i < sizeof errors / sizeof *errors; i++)
        check_error(errors[i].text, NULL, errors[i].line, errors[i].col, errors[i].msg);
    check_vars();
    check_limits();
    check_format();
    /* No record at all: every field is missing. */
    sl_expr *e = sl_expr_compile("exists(a) or a == 1 or coalesce(a, 2) == 2", NULL, NULL);
    if (!e || !sl_expr_eval_bool(e, &sl_host_api, NULL, NULL)) {
        printf("FAIL null root\n");
        failures++;
    }
    sl_expr_free(e);
    cJSON_Delete(root);
    printf("%zu value cases, %zu error cases, %d failures\n", sizeof cases / sizeof *cases,
           sizeof errors / sizeof *errors, failures);
    return failures ? 1 : 0;
}
