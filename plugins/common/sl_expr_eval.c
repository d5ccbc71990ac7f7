/* sl_expr_eval.c — runs a compiled program against a record's JSON: a loop over the flat code
 * with a small value stack on the C stack. Missing fields and mismatched types never fail; they
 * give false/null as docs/expressions.md says. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_expr_int.h"

#if defined(__GNUC__)
#define HIDDEN __attribute__((visibility("hidden")))
#else
#define HIDDEN
#endif

static sl_expr_value from_node(const sl_api *api, const sl_json *n)
{
    sl_expr_value v = {.node = n};
    switch (n ? api->json_type(n) : SL_JSON_INVALID) {
    case SL_JSON_NULL: v.type = SL_EXPR_NULL; break;
    case SL_JSON_BOOL: v.type = SL_EXPR_BOOL; v.b = api->json_number(n) != 0; break;
    case SL_JSON_NUMBER:
        v.type = SL_EXPR_NUMBER;
        v.num = api->json_number(n);
        if (!isfinite(v.num)) v.type = SL_EXPR_NULL;
        break;
    case SL_JSON_STRING:
        v.type = SL_EXPR_STRING;
        v.str = api->json_string(n);
        if (!v.str) v.type = SL_EXPR_MISSING;
        break;
    case SL_JSON_ARRAY:
    case SL_JSON_OBJECT: v.type = SL_EXPR_OTHER; break;
    default: v.type = SL_EXPR_MISSING; v.node = NULL; break;
    }
    return v;
}

static const sl_json *walk(const path *pa, const sl_api *api, const sl_json *root)
{
    const sl_json *n = root;
    for (size_t i = 0; n && i < pa->n; i++) {
        const seg *s = &pa->segs[i];
        if (s->key)
            n = api->json_get(n, s->key);
        else
            n = api->json_type(n) == SL_JSON_ARRAY ? api->json_at(n, s->idx) : NULL;
    }
    return n;
}

static int truthy(const sl_expr_value *v) { return v->type == SL_EXPR_BOOL && v->b; }

static int equal(const sl_expr_value *a, const sl_expr_value *b)
{
    if (a->type != b->type || a->type == SL_EXPR_MISSING) return 0;
    switch (a->type) {
    case SL_EXPR_NULL: return 1;
    case SL_EXPR_BOOL: return a->b == b->b;
    case SL_EXPR_NUMBER: return a->num == b->num;
    case SL_EXPR_STRING: return strcmp(a->str, b->str) == 0;
    default: return 0; /* arrays and objects are not compared */
    }
}

/* -2 when the two are not ordered (different types, or not numbers/strings). */
static int order(const sl_expr_value *a, const sl_expr_value *b)
{
    if (a->type == SL_EXPR_NUMBER && b->type == SL_EXPR_NUMBER) return a->num < b->num ? -1 : a->num > b->num;
    if (a->type == SL_EXPR_STRING && b->type == SL_EXPR_STRING) {
        int c = strcmp(a->str, b->str);
        return c < 0 ? -1 : c > 0;
    }
    return -2;
}

static sl_expr_value boolean(int b) { return (sl_expr_value){.type = SL_EXPR_BOOL, .b = b != 0}; }

static sl_expr_value number(double d)
{
    /* Overflow to infinity has no JSON form: it becomes null, like division by zero. */
    return isfinite(d) ? (sl_expr_value){.type = SL_EXPR_NUMBER, .num = d} : (sl_expr_value){.type = SL_EXPR_NULL};
}

static int ends_with(const char *s, const char *suf)
{
    size_t n = strlen(s), m = strlen(suf);
    return m <= n && memcmp(s + n - m, suf, m) == 0;
}

HIDDEN sl_expr_value sl_expr_eval(const sl_expr *e, const sl_api *api, const sl_json *root, const sl_expr_value *vars)
{
    sl_expr_value st[SL_EXPR_MAX_DEPTH + 2];
    int sp = -1; /* index of the top */
    const insn *code = e->code;
    size_t n = e->ncode;
    for (size_t pc = 0; pc < n; pc++) {
        const insn *in = &code[pc];
        sl_expr_value *a, *b;
        switch ((op)in->op) {
        case OP_CONST: st[++sp] = e->consts[in->arg]; break;
        case OP_PATH: st[++sp] = from_node(api, walk(&e->paths[in->arg], api, root)); break;
        case OP_VAR:
            st[++sp] = vars ? vars[in->arg] : (sl_expr_value){.type = SL_EXPR_MISSING};
            break;
        case OP_EXISTS: st[++sp] = boolean(walk(&e->paths[in->arg], api, root) != NULL); break;
        case OP_NOT: st[sp] = boolean(!truthy(&st[sp])); break;
        case OP_TOBOOL: st[sp] = boolean(truthy(&st[sp])); break;
        case OP_EQ:
        case OP_NE:
            b = &st[sp--];
            a = &st[sp];
            *a = boolean(equal(a, b) == (in->op == OP_EQ));
            break;
        case OP_LT:
        case OP_LE:
        case OP_GT:
        case OP_GE: {
            b = &st[sp--];
            a = &st[sp];
            int c = order(a, b);
            int r = c == -2 ? 0
                  : in->op == OP_LT ? c < 0
                  : in->op == OP_LE ? c <= 0
                  : in->op == OP_GT ? c > 0
                                    : c >= 0;
            *a = boolean(r);
            break;
        }
        case OP_ADD:
        case OP_SUB:
        case OP_MUL:
        case OP_DIV:
        case OP_MOD: {
            b = &st[sp--];
            a = &st[sp];
            if (a->type != SL_EXPR_NUMBER || b->type != SL_EXPR_NUMBER) {
                *a = (sl_expr_value){.type = SL_EXPR_NULL};
                break;
            }
            double x = a->num, y = b->num;
            if ((in->op == OP_DIV || in->op == OP_MOD) && y == 0) {
                *a = (sl_expr_value){.type = SL_EXPR_NULL};
                break;
            }
            *a = number(in->op == OP_ADD ? x + y : in->op == OP_SUB ? x - y : in->op == OP_MUL ? x * y
                        : in->op == OP_DIV ? x / y : fmod(x, y));
            break;
        }
        case OP_NEG:
            st[sp] = st[sp].type == SL_EXPR_NUMBER ? number(-st[sp].num) : (sl_expr_value){.type = SL_EXPR_NULL};
            break;
        case OP_IN: {
            const list *l = &e->lists[in->arg];
            int hit = 0;
            for (size_t i = 0; i < l->n && !hit; i++) hit = equal(&st[sp], &e->consts[l->first + i]);
            st[sp] = boolean(hit);
            break;
        }
        case OP_STARTS:
        case OP_ENDS:
        case OP_CONTAINS: {
            b = &st[sp--];
            a = &st[sp];
            int r = 0;
            if (a->type == SL_EXPR_STRING && b->type == SL_EXPR_STRING)
                r = in->op == OP_STARTS ? strncmp(a->str, b->str, strlen(b->str)) == 0
                  : in->op == OP_ENDS   ? ends_with(a->str, b->str)
                                        : strstr(a->str, b->str) != NULL;
            *a = boolean(r);
            break;
        }
        case OP_AND:
            if (!truthy(&st[sp])) {
                st[sp] = boolean(0);
                pc = in->arg - 1;
            } else {
                sp--;
            }
            break;
        case OP_OR:
            if (truthy(&st[sp])) {
                st[sp] = boolean(1);
                pc = in->arg - 1;
            } else {
                sp--;
            }
            break;
        case OP_JF:
            if (!truthy(&st[sp--])) pc = in->arg - 1;
            break;
        case OP_JMP: pc = in->arg - 1; break;
        case OP_ROUND:
            if (st[sp].type == SL_EXPR_NUMBER) {
                static const double pow10[] = {1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12};
                double f = pow10[in->arg], x = st[sp].num;
                /* Beyond 2^52 every double is already whole at this scale; x * f could overflow. */
                if (fabs(x) * f < 4503599627370496.0) st[sp] = number(round(x * f) / f);
            } else {
                st[sp] = (sl_expr_value){.type = SL_EXPR_NULL};
            }
            break;
        case OP_PRESENT:
            if (st[sp].type != SL_EXPR_NULL && st[sp].type != SL_EXPR_MISSING)
                pc = in->arg - 1;
            else
                sp--;
            break;
        }
    }
    return sp == 0 ? st[0] : (sl_expr_value){.type = SL_EXPR_MISSING};
}

HIDDEN int sl_expr_eval_bool(const sl_expr *e, const sl_api *api, const sl_json *root, const sl_expr_value *vars)
{
    sl_expr_value v = sl_expr_eval(e, api, root, vars);
    return truthy(&v);
}

HIDDEN const char *sl_expr_type_name(sl_expr_type t)
{
    switch (t) {
    case SL_EXPR_MISSING: return "missing";
    case SL_EXPR_NULL: return "null";
    case SL_EXPR_BOOL: return "bool";
    case SL_EXPR_NUMBER: return "number";
    case SL_EXPR_STRING: return "string";
    default: return "array/object";
    }
}

HIDDEN int sl_expr_value_format(const sl_expr_value *v, char *buf, size_t len)
{
    if (!len) return 0;
    buf[0] = 0;
    switch (v->type) {
    case SL_EXPR_STRING: snprintf(buf, len, "%s", v->str); return 1;
    case SL_EXPR_BOOL: snprintf(buf, len, "%s", v->b ? "true" : "false"); return 1;
    case SL_EXPR_NULL: snprintf(buf, len, "null"); return 1;
    case SL_EXPR_NUMBER: {
        double d = v->num;
        if (d == floor(d) && fabs(d) < 9007199254740992.0) {
            snprintf(buf, len, "%.0f", d == 0 ? 0.0 : d); /* no "-0" */
            return 1;
        }
        /* The shortest of %.15g..%.17g that reads back as the same double. */
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, len, "%.*g", prec, d);
            if (strtod(buf, NULL) == d) break;
        }
        return 1;
    }
    default: return 0;
    }
}
