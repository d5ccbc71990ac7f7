/* sl_expr.c — grammar, type checker and code generator of the expression language (sl_expr.h,
 * docs/expressions.md); tokens are in sl_expr_lex.c, the evaluator in sl_expr_eval.c.
 *
 * One pass of recursive descent emits postfix code as it parses; each parse function returns the
 * static type of what it emitted, so type errors are found at compile time with the position of
 * the operator. `and`/`or`/`if`/`coalesce` compile to jumps, so they short-circuit. */
#include "sl_expr_int.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__GNUC__)
#define HIDDEN __attribute__((visibility("hidden")))
#else
#define HIDDEN
#endif

static const char *tname(T t)
{
    switch (t) {
    case SL_EXPR_T_BOOL: return "bool";
    case SL_EXPR_T_NUMBER: return "number";
    case SL_EXPR_T_STRING: return "string";
    case SL_EXPR_T_NULL: return "null";
    default: return "any";
    }
}

/* Emit one instruction; `delta` is its effect on the stack depth. Returns its index + 1 (0 on
 * failure), so jumps can be patched. */
static size_t emit(parser *p, op o, uint32_t arg, int delta)
{
    if (p->failed) return 0;
    sl_expr *e = p->e;
    GROW(e->code, e->ncode, e->capcode);
    e->code[e->ncode] = (insn){(uint8_t)o, arg};
    p->sp += delta;
    if (p->sp > p->maxsp) p->maxsp = p->sp;
    if (p->maxsp > SL_EXPR_MAX_DEPTH)
        sx_fail(p, p->pos, "expression too deep (more than %d nested values)", SL_EXPR_MAX_DEPTH);
    return ++e->ncode;
}

static void patch(parser *p, size_t at)
{
    if (!p->failed && at) p->e->code[at - 1].arg = (uint32_t)p->e->ncode;
}

static size_t add_const(parser *p, sl_expr_value v)
{
    sl_expr *e = p->e;
    if (p->failed) return 0;
    GROW(e->consts, e->nconsts, e->capconsts);
    e->consts[e->nconsts] = v;
    return e->nconsts++;
}

/* ---- grammar ----------------------------------------------------------------------------- */

static T parse_or(parser *p);

static int enter(parser *p)
{
    if (++p->depth > SL_EXPR_MAX_DEPTH) {
        sx_fail(p, p->pos, "expression nested too deeply (more than %d levels)", SL_EXPR_MAX_DEPTH);
        return 0;
    }
    return 1;
}

static void need(parser *p, T got, T want, size_t at, const char *what)
{
    if (got == SL_EXPR_T_ANY || got == want) return;
    sx_fail(p, at, "%s needs a %s, got a %s", what, tname(want), tname(got));
}

static T parse_literal_value(parser *p, sl_expr_value *v)
{
    sx_ws(p);
    size_t at = p->pos;
    char c = p->s[p->pos];
    memset(v, 0, sizeof *v);
    if (c == '"' || c == '\'') {
        char *s = sx_own_str(p, sx_string(p));
        if (!s) return SL_EXPR_T_ANY;
        v->type = SL_EXPR_STRING;
        v->str = s;
        return SL_EXPR_T_STRING;
    }
    int neg = 0;
    if (c == '-' && ((p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9') || p->s[p->pos + 1] == '.')) {
        neg = 1;
        p->pos++;
        c = p->s[p->pos];
    }
    if ((c >= '0' && c <= '9') || (c == '.' && p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9')) {
        const char *s = p->s + p->pos;
        size_t n = 0;
        while ((s[n] >= '0' && s[n] <= '9') || s[n] == '.') n++;
        if (s[n] == 'e' || s[n] == 'E') {
            size_t m = n + 1;
            if (s[m] == '+' || s[m] == '-') m++;
            if (s[m] >= '0' && s[m] <= '9') {
                n = m;
                while (s[n] >= '0' && s[n] <= '9') n++;
            }
        }
        char buf[64];
        if (n >= sizeof buf) {
            sx_fail(p, at, "number literal too long");
            return SL_EXPR_T_ANY;
        }
        memcpy(buf, s, n);
        buf[n] = 0;
        char *end;
        double d = strtod(buf, &end);
        if (*end || memchr(buf, '.', n) != memrchr(buf, '.', n)) {
            sx_fail(p, at, "malformed number '%s'", buf);
            return SL_EXPR_T_ANY;
        }
        if (!isfinite(d)) {
            sx_fail(p, at, "number '%s' is out of range", buf);
            return SL_EXPR_T_ANY;
        }
        if (sx_ident(s[n])) {
            sx_fail(p, at + n + (size_t)neg, "unexpected '%c' after a number", s[n]);
            return SL_EXPR_T_ANY;
        }
        p->pos += n;
        v->type = SL_EXPR_NUMBER;
        v->num = neg ? -d : d;
        return SL_EXPR_T_NUMBER;
    }
    if (neg) p->pos--;
    if (sx_accept_word(p, "true") || sx_accept_word(p, "false")) {
        v->type = SL_EXPR_BOOL;
        v->b = p->s[at] == 't';
        return SL_EXPR_T_BOOL;
    }
    if (sx_accept_word(p, "null")) {
        v->type = SL_EXPR_NULL;
        return SL_EXPR_T_NULL;
    }
    return SL_EXPR_T_ANY; /* not a literal: v->type stays MISSING */
}

static const char *const keywords[] = {"and", "or", "not", "in", "true", "false", "null", NULL};

static int is_keyword(const char *s, size_t n)
{
    for (int i = 0; keywords[i]; i++)
        if (strlen(keywords[i]) == n && !memcmp(keywords[i], s, n)) return 1;
    return 0;
}

/* f(args): exists, starts_with, ends_with, contains, if, coalesce. */
static T parse_call(parser *p, const char *name, size_t at)
{
    sx_expect(p, "(", "after the function name");
    if (p->failed) return SL_EXPR_T_ANY;
    if (!strcmp(name, "exists")) {
        path pa;
        sx_ws(p);
        size_t pat = p->pos;
        const char *s;
        size_t n = sx_peek_ident(p, &s);
        if (p->s[p->pos] != '$' && (!n || is_keyword(s, n))) {
            sx_fail(p, pat, "exists() takes a field reference such as a.b or $[\"x\"]");
            return SL_EXPR_T_ANY;
        }
        if (!sx_path(p, &pa)) return SL_EXPR_T_ANY;
        uint32_t k = sx_add_path(p, &pa);
        sx_expect(p, ")", "to close exists(");
        emit(p, OP_EXISTS, k, 1);
        return SL_EXPR_T_BOOL;
    }
    if (!strcmp(name, "starts_with") || !strcmp(name, "ends_with") || !strcmp(name, "contains")) {
        for (int i = 0; i < 2 && !p->failed; i++) {
            sx_ws(p);
            size_t aat = p->pos;
            T t = parse_or(p);
            need(p, t, SL_EXPR_T_STRING, aat, name);
            if (i == 0) sx_expect(p, ",", "between the arguments");
        }
        sx_expect(p, ")", "after the second argument");
        emit(p, name[0] == 's' ? OP_STARTS : name[0] == 'e' ? OP_ENDS : OP_CONTAINS, 0, -1);
        return SL_EXPR_T_BOOL;
    }
    if (!strcmp(name, "if")) {
        sx_ws(p);
        size_t cat = p->pos;
        T c = parse_or(p);
        need(p, c, SL_EXPR_T_BOOL, cat, "if()'s condition");
        sx_expect(p, ",", "after if()'s condition");
        size_t jf = emit(p, OP_JF, 0, -1);
        T a = parse_or(p);
        sx_expect(p, ",", "between if()'s values");
        size_t jend = emit(p, OP_JMP, 0, 0);
        patch(p, jf);
        p->sp--; /* only one branch runs */
        T b = parse_or(p);
        patch(p, jend);
        sx_expect(p, ")", "after if()'s last argument");
        return a == b ? a : SL_EXPR_T_ANY;
    }
    if (!strcmp(name, "round")) {
        sx_ws(p);
        size_t aat = p->pos;
        T t = parse_or(p);
        need(p, t, SL_EXPR_T_NUMBER, aat, "round");
        uint32_t digits = 0;
        if (sx_accept(p, ",", NULL)) {
            sl_expr_value v;
            sx_ws(p);
            size_t dat = p->pos;
            T dt = parse_literal_value(p, &v);
            if (!p->failed && (dt != SL_EXPR_T_NUMBER || !(v.num >= 0 && v.num <= 12) || v.num != floor(v.num)))
                sx_fail(p, dat, "round()'s digits must be a whole number from 0 to 12");
            digits = p->failed ? 0 : (uint32_t)v.num;
        }
        sx_expect(p, ")", "after round()'s arguments");
        emit(p, OP_ROUND, digits, 0);
        return SL_EXPR_T_NUMBER;
    }
    if (!strcmp(name, "coalesce")) {
        size_t j = 0; /* chained like 'and': a present value jumps from test to test to the end */
        T r = SL_EXPR_T_NULL;
        int first = 1;
        for (;;) {
            T t = parse_or(p);
            if (p->failed) return SL_EXPR_T_ANY;
            r = first ? t : (r == t ? r : SL_EXPR_T_ANY);
            first = 0;
            patch(p, j);
            if (!sx_accept(p, ",", NULL)) break;
            j = emit(p, OP_PRESENT, 0, -1);
        }
        sx_expect(p, ")", "after coalesce()'s arguments");
        return r;
    }
    sx_fail(p, at, "unknown function '%s' (known: exists, starts_with, ends_with, contains, if, coalesce, round)", name);
    return SL_EXPR_T_ANY;
}

static T parse_primary(parser *p)
{
    sx_ws(p);
    size_t at = p->pos;
    char c = p->s[p->pos];
    if (!c) {
        sx_fail(p, at, "expected a value, found the end of the expression");
        return SL_EXPR_T_ANY;
    }
    if (c == '(') {
        p->pos++;
        T t = parse_or(p);
        sx_expect(p, ")", "to close '('");
        return t;
    }
    sl_expr_value v;
    T t = parse_literal_value(p, &v);
    if (p->failed) return SL_EXPR_T_ANY;
    if (v.type != SL_EXPR_MISSING) {
        emit(p, OP_CONST, (uint32_t)add_const(p, v), 1);
        return t;
    }
    if (c == '$') {
        path pa;
        if (!sx_path(p, &pa)) return SL_EXPR_T_ANY;
        if (p->o && p->o->vars_only) {
            sx_path_free(&pa);
            sx_fail(p, at, "no record fields here: only the columns can be used");
            return SL_EXPR_T_ANY;
        }
        emit(p, OP_PATH, sx_add_path(p, &pa), 1);
        return SL_EXPR_T_ANY;
    }
    const char *s;
    size_t n = sx_peek_ident(p, &s);
    if (!n) {
        sx_fail(p, at, "unexpected '%.*s' (expected a value: a number, a string, a field, a function or '(')",
                sx_char_len(p->s + at), p->s + at);
        return SL_EXPR_T_ANY;
    }
    if (is_keyword(s, n)) {
        sx_fail(p, at, "unexpected '%.*s' (expected a value; a field with this name is written $.%.*s)", (int)n, s,
                (int)n, s);
        return SL_EXPR_T_ANY;
    }
    /* A function call: name directly followed by '(' (after optional blanks). */
    size_t after = p->pos + n;
    while (p->s[after] == ' ' || p->s[after] == '\t') after++;
    if (p->s[after] == '(') {
        char name[32];
        if (n >= sizeof name) n = sizeof name - 1;
        memcpy(name, s, n);
        name[n] = 0;
        p->pos = after;
        if (!enter(p)) return SL_EXPR_T_ANY;
        T r = parse_call(p, name, at);
        p->depth--;
        return r;
    }
    /* A variable (a window row's column) or a field path. */
    if (p->o && p->o->nvars && p->s[p->pos + n] != '.' && p->s[p->pos + n] != '[') {
        for (size_t i = 0; i < p->o->nvars; i++) {
            if (strlen(p->o->vars[i]) == n && !memcmp(p->o->vars[i], s, n)) {
                p->pos += n;
                emit(p, OP_VAR, (uint32_t)i, 1);
                return SL_EXPR_T_ANY;
            }
        }
    }
    if (p->o && p->o->vars_only) {
        char list[160] = "";
        size_t w = 0;
        for (size_t i = 0; i < p->o->nvars && w < sizeof list - 1; i++)
            w += (size_t)snprintf(list + w, sizeof list - w, "%s%s", i ? ", " : "", p->o->vars[i]);
        sx_fail(p, at, "unknown column '%.*s' (columns: %s)", (int)n, s, p->o->nvars ? list : "none");
        return SL_EXPR_T_ANY;
    }
    path pa;
    if (!sx_path(p, &pa)) return SL_EXPR_T_ANY;
    emit(p, OP_PATH, sx_add_path(p, &pa), 1);
    return SL_EXPR_T_ANY;
}

static T parse_unary(parser *p)
{
    sx_ws(p);
    size_t at = p->pos;
    if (p->s[p->pos] == '-' && !(p->s[p->pos + 1] >= '0' && p->s[p->pos + 1] <= '9') && p->s[p->pos + 1] != '.') {
        p->pos++;
        if (!enter(p)) return SL_EXPR_T_ANY;
        T t = parse_unary(p);
        p->depth--;
        need(p, t, SL_EXPR_T_NUMBER, at, "'-'");
        emit(p, OP_NEG, 0, 0);
        return SL_EXPR_T_NUMBER;
    }
    return parse_primary(p);
}

static T parse_mul(parser *p)
{
    sx_ws(p);
    size_t lat = p->pos;
    T l = parse_unary(p);
    for (;;) {
        sx_ws(p);
        size_t at = p->pos;
        op o;
        if (sx_accept(p, "*", NULL)) o = OP_MUL;
        else if (sx_accept(p, "/", NULL)) o = OP_DIV;
        else if (sx_accept(p, "%", NULL)) o = OP_MOD;
        else return l;
        const char *sym = o == OP_MUL ? "'*'" : o == OP_DIV ? "'/'" : "'%'";
        need(p, l, SL_EXPR_T_NUMBER, lat, sym);
        sx_ws(p);
        size_t rat = p->pos;
        T r = parse_unary(p);
        need(p, r, SL_EXPR_T_NUMBER, rat, sym);
        (void)at;
        emit(p, o, 0, -1);
        l = SL_EXPR_T_NUMBER; /* or null: division by zero, a non-number operand */
        if (p->failed) return l;
    }
}

static T parse_add(parser *p)
{
    sx_ws(p);
    size_t lat = p->pos;
    T l = parse_mul(p);
    for (;;) {
        op o;
        if (sx_accept(p, "+", NULL)) o = OP_ADD;
        else if (sx_accept(p, "-", NULL)) o = OP_SUB;
        else return l;
        const char *sym = o == OP_ADD ? "'+'" : "'-'";
        need(p, l, SL_EXPR_T_NUMBER, lat, sym);
        sx_ws(p);
        size_t rat = p->pos;
        T r = parse_mul(p);
        need(p, r, SL_EXPR_T_NUMBER, rat, sym);
        emit(p, o, 0, -1);
        l = SL_EXPR_T_NUMBER;
        if (p->failed) return l;
    }
}

static T parse_in_list(parser *p, T left, size_t lat)
{
    sx_expect(p, "[", "after 'in' (a list such as [\"a\", \"b\"])");
    if (p->failed) return SL_EXPR_T_BOOL;
    list l = {p->e->nconsts, 0};
    sx_ws(p);
    if (!sx_accept(p, "]", NULL)) {
        for (;;) {
            sl_expr_value v;
            sx_ws(p);
            size_t at = p->pos;
            T t = parse_literal_value(p, &v);
            if (p->failed) return SL_EXPR_T_BOOL;
            if (v.type == SL_EXPR_MISSING) {
                sx_fail(p, at, "the items of an 'in' list must be literals (numbers, strings, true, false, null)");
                return SL_EXPR_T_BOOL;
            }
            if (left != SL_EXPR_T_ANY && t != SL_EXPR_T_NULL && t != left) {
                sx_fail(p, at, "a %s is never equal to a %s (the left side of 'in' at column %zu)", tname(t), tname(left),
                        lat + 1);
                return SL_EXPR_T_BOOL;
            }
            add_const(p, v);
            l.n++;
            if (sx_accept(p, "]", NULL)) break;
            sx_expect(p, ",", "or ']' in the list");
            if (p->failed) return SL_EXPR_T_BOOL;
        }
    }
    sl_expr *e = p->e;
    if (e->nlists == e->caplists) {
        size_t nc = e->caplists ? e->caplists * 2 : 4;
        list *np = realloc(e->lists, nc * sizeof *np);
        if (!np) {
            sx_fail(p, p->pos, "out of memory");
            return SL_EXPR_T_BOOL;
        }
        e->lists = np;
        e->caplists = nc;
    }
    e->lists[e->nlists] = l;
    emit(p, OP_IN, (uint32_t)e->nlists++, 0);
    return SL_EXPR_T_BOOL;
}

static T parse_cmp(parser *p)
{
    sx_ws(p);
    size_t lat = p->pos;
    T l = parse_add(p);
    if (p->failed) return l;
    sx_ws(p);
    size_t at = p->pos;
    op o;
    if (sx_accept(p, "==", NULL)) o = OP_EQ;
    else if (sx_accept(p, "!=", NULL)) o = OP_NE;
    else if (sx_accept(p, "<=", NULL)) o = OP_LE;
    else if (sx_accept(p, ">=", NULL)) o = OP_GE;
    else if (sx_accept(p, "<", NULL)) o = OP_LT;
    else if (sx_accept(p, ">", NULL)) o = OP_GT;
    else if (sx_accept(p, "=", "=")) {
        sx_fail(p, at, "'=' is not an operator: write '==' to compare");
        return SL_EXPR_T_BOOL;
    } else if (sx_accept_word(p, "in")) {
        return parse_in_list(p, l, lat);
    } else if (sx_peek_word(p, "not")) {
        size_t save = p->pos;
        sx_accept_word(p, "not");
        if (!sx_accept_word(p, "in")) {
            p->pos = save;
            return l;
        }
        parse_in_list(p, l, lat);
        emit(p, OP_NOT, 0, 0);
        return SL_EXPR_T_BOOL;
    } else {
        return l;
    }
    static const char *const syms[] = {[OP_EQ] = "==", [OP_NE] = "!=", [OP_LT] = "<", [OP_LE] = "<=", [OP_GT] = ">",
                                       [OP_GE] = ">="};
    sx_ws(p);
    size_t rat = p->pos;
    T r = parse_add(p);
    if (p->failed) return SL_EXPR_T_BOOL;
    if (o == OP_EQ || o == OP_NE) {
        if (l != SL_EXPR_T_ANY && r != SL_EXPR_T_ANY && l != r && l != SL_EXPR_T_NULL && r != SL_EXPR_T_NULL)
            sx_fail(p, at, "'%s' compares a %s with a %s: they are never equal", syms[o], tname(l), tname(r));
    } else {
        if (l == SL_EXPR_T_BOOL || l == SL_EXPR_T_NULL)
            sx_fail(p, lat, "'%s' orders numbers or strings, not a %s", syms[o], tname(l));
        else if (r == SL_EXPR_T_BOOL || r == SL_EXPR_T_NULL)
            sx_fail(p, rat, "'%s' orders numbers or strings, not a %s", syms[o], tname(r));
        else if (l != SL_EXPR_T_ANY && r != SL_EXPR_T_ANY && l != r)
            sx_fail(p, at, "'%s' compares a %s with a %s", syms[o], tname(l), tname(r));
    }
    emit(p, o, 0, -1);
    sx_ws(p);
    const char *c = p->s + p->pos;
    if ((c[0] == '<' || c[0] == '>' || c[0] == '!' ) || (c[0] == '=' && c[1] == '='))
        sx_fail(p, p->pos, "comparisons do not chain: write a < b and b < c");
    return SL_EXPR_T_BOOL;
}

static T parse_not(parser *p)
{
    sx_ws(p);
    size_t at = p->pos;
    if (sx_accept_word(p, "not") || sx_accept(p, "!", "=")) {
        if (!enter(p)) return SL_EXPR_T_BOOL;
        sx_ws(p);
        size_t oat = p->pos;
        T t = parse_not(p);
        p->depth--;
        need(p, t, SL_EXPR_T_BOOL, oat, "'not'");
        (void)at;
        emit(p, OP_NOT, 0, 0);
        return SL_EXPR_T_BOOL;
    }
    return parse_cmp(p);
}

static T parse_and(parser *p)
{
    sx_ws(p);
    size_t lat = p->pos;
    T l = parse_not(p);
    if (!(sx_peek_word(p, "and") || (sx_ws(p), !strncmp(p->s + p->pos, "&&", 2)))) return l;
    need(p, l, SL_EXPR_T_BOOL, lat, "'and'");
    /* Each jump lands after its right operand; a false there jumps on at the next 'and'. */
    while (!p->failed && (sx_accept_word(p, "and") || sx_accept(p, "&&", NULL))) {
        size_t j = emit(p, OP_AND, 0, -1);
        sx_ws(p);
        size_t rat = p->pos;
        T r = parse_not(p);
        need(p, r, SL_EXPR_T_BOOL, rat, "'and'");
        emit(p, OP_TOBOOL, 0, 0);
        patch(p, j);
    }
    return SL_EXPR_T_BOOL;
}

static T parse_or(parser *p)
{
    if (!enter(p)) return SL_EXPR_T_ANY;
    sx_ws(p);
    size_t lat = p->pos;
    T l = parse_and(p);
    if (sx_peek_word(p, "or") || (sx_ws(p), !strncmp(p->s + p->pos, "||", 2))) {
        need(p, l, SL_EXPR_T_BOOL, lat, "'or'");
        while (!p->failed && (sx_accept_word(p, "or") || sx_accept(p, "||", NULL))) {
            size_t j = emit(p, OP_OR, 0, -1);
            sx_ws(p);
            size_t rat = p->pos;
            T r = parse_and(p);
            need(p, r, SL_EXPR_T_BOOL, rat, "'or'");
            emit(p, OP_TOBOOL, 0, 0);
            patch(p, j);
        }
        l = SL_EXPR_T_BOOL;
    }
    p->depth--;
    return l;
}

/* ---- public: compile --------------------------------------------------------------------- */

HIDDEN void sl_expr_free(sl_expr *e)
{
    if (!e) return;
    for (size_t i = 0; i < e->nstrs; i++) free(e->strs[i]);
    for (size_t i = 0; i < e->npaths; i++) sx_path_free(&e->paths[i]);
    free(e->strs);
    free(e->paths);
    free(e->consts);
    free(e->lists);
    free(e->code);
    free(e->text);
    free(e);
}

HIDDEN sl_expr *sl_expr_compile(const char *text, const sl_expr_opts *opts, sl_expr_error *err)
{
    sl_expr_error dummy;
    if (!err) err = &dummy;
    memset(err, 0, sizeof *err);
    sl_expr_opts none = {0};
    parser p = {.s = text ? text : "", .o = opts ? opts : &none, .err = err};
    size_t len = strlen(p.s);
    if (len > SL_EXPR_MAX_TEXT) {
        sx_fail(&p, 0, "expression longer than %d bytes", SL_EXPR_MAX_TEXT);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p.s[i];
        if (c < 0x20 && c != '\n' && c != '\t' && c != '\r') {
            sx_fail(&p, i, "control character 0x%02x in the expression", c);
            return NULL;
        }
    }
    sx_ws(&p);
    if (!p.s[p.pos]) {
        sx_fail(&p, p.pos, "empty expression");
        return NULL;
    }
    p.e = calloc(1, sizeof *p.e);
    if (!p.e || !(p.e->text = strdup(p.s))) {
        free(p.e);
        snprintf(err->msg, sizeof err->msg, "out of memory");
        return NULL;
    }
    T t = parse_or(&p);
    sx_ws(&p);
    if (!p.failed && p.s[p.pos]) {
        const char *s;
        size_t n = sx_peek_ident(&p, &s);
        if (n)
            sx_fail(&p, p.pos, "unexpected '%.*s' after a complete expression (missing an operator such as 'and'?)",
                    (int)n, s);
        else
            sx_fail(&p, p.pos, "unexpected '%.*s' after a complete expression", sx_char_len(p.s + p.pos), p.s + p.pos);
    }
    if (!p.failed && p.o->want != SL_EXPR_T_ANY && t != SL_EXPR_T_ANY && t != p.o->want &&
        !(p.o->want == SL_EXPR_T_NUMBER && t == SL_EXPR_T_NULL))
        sx_fail(&p, 0, "a %s is expected here, but the expression gives a %s", tname(p.o->want), tname(t));
    if (p.failed) {
        sl_expr_free(p.e);
        return NULL;
    }
    p.e->type = t;
    return p.e;
}

HIDDEN sl_expr_static sl_expr_result_type(const sl_expr *e) { return e->type; }
HIDDEN const char *sl_expr_text(const sl_expr *e) { return e->text; }

HIDDEN int sl_expr_is_path(const sl_expr *e, const char **pathtext)
{
    if (e->ncode != 1 || e->code[0].op != OP_PATH) return 0;
    if (pathtext) *pathtext = e->paths[e->code[0].arg].text;
    return 1;
}

