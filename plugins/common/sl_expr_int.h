/* sl_expr_int.h — what the parts of the expression library share (not an interface):
 * sl_expr.c (grammar, type checks, code), sl_expr_lex.c (tokens, strings, paths, errors),
 * sl_expr_eval.c (the evaluator). */
#ifndef SL_PLUGINS_EXPR_INT_H
#define SL_PLUGINS_EXPR_INT_H

#include <stdint.h>

#include "sl_expr.h"

typedef enum op {
    OP_CONST,   /* push consts[arg] */
    OP_PATH,    /* push the value at paths[arg] */
    OP_VAR,     /* push vars[arg] */
    OP_EXISTS,  /* push whether paths[arg] is present */
    OP_NOT,     /* top = top is not true */
    OP_TOBOOL,  /* top = top is true */
    OP_EQ, OP_NE, OP_LT, OP_LE, OP_GT, OP_GE,
    OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_MOD, OP_NEG,
    OP_IN,      /* top = top is one of lists[arg] */
    OP_STARTS, OP_ENDS, OP_CONTAINS,
    OP_AND,     /* if top is not true: top = false, jump arg; else pop */
    OP_OR,      /* if top is true: jump arg (top stays true); else pop */
    OP_JF,      /* pop; jump arg if it was not true */
    OP_JMP,     /* jump arg */
    OP_PRESENT, /* if top is neither null nor missing: jump arg; else pop */
    OP_ROUND    /* top = top rounded to arg decimal places (half away from zero) */
} op;

typedef struct insn {
    uint8_t op;
    uint32_t arg;
} insn;

typedef struct seg {
    char *key;  /* member name, or NULL for an array index */
    size_t idx;
} seg;

typedef struct path {
    seg *segs;
    size_t n;
    char *text; /* dotted form, for messages */
} path;

typedef struct list {
    size_t first, n; /* a range of consts */
} list;

struct sl_expr {
    char *text;
    insn *code;
    size_t ncode, capcode;
    sl_expr_value *consts;
    size_t nconsts, capconsts;
    char **strs; /* owned literal strings */
    size_t nstrs, capstrs;
    path *paths;
    size_t npaths, cappaths;
    list *lists;
    size_t nlists, caplists;
    sl_expr_static type;
};

/* ---- parser state ------------------------------------------------------------------------ */

typedef struct parser {
    const char *s;
    size_t pos;
    sl_expr *e;
    const sl_expr_opts *o;
    sl_expr_error *err;
    int failed;
    int depth;
    int sp, maxsp; /* evaluation stack depth as code is emitted */
} parser;

typedef sl_expr_static T;

static inline int sx_ident_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
/* Bytes of the UTF-8 character at s (for messages that quote it). */
static inline int sx_char_len(const char *s)
{
    unsigned char c = (unsigned char)s[0];
    int n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    for (int i = 1; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) return i;
    return n;
}
static inline int sx_ident(char c) { return sx_ident_start(c) || (c >= '0' && c <= '9'); }

/* sl_expr_lex.c. Functions that fail set p->failed and the first error only. */
void sx_fail(parser *p, size_t at, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
char *sx_own_str(parser *p, char *s);         /* the program owns s from now; NULL on failure */
void sx_ws(parser *p);                        /* skips blanks and # comments */
size_t sx_peek_ident(parser *p, const char **start);
int sx_peek_word(parser *p, const char *w);
int sx_accept_word(parser *p, const char *w);
int sx_accept(parser *p, const char *tok, const char *not_followed);
void sx_expect(parser *p, const char *tok, const char *what);
char *sx_string(parser *p);                   /* a quoted literal, unescaped, malloc'd */
int sx_path(parser *p, path *pa);             /* a field reference */
uint32_t sx_add_path(parser *p, path *pa);    /* moves pa into the program */
void sx_path_free(path *pa);

#define GROW(arr, n, cap)                                                                       \
    do {                                                                                        \
        if ((n) == (cap)) {                                                                     \
            size_t nc_ = (cap) ? (cap) * 2 : 8;                                                 \
            void *np_ = realloc((arr), nc_ * sizeof *(arr));                                    \
            if (!np_) {                                                                         \
                sx_fail(p, p->pos, "out of memory");                                            \
                return 0;                                                                       \
            }                                                                                   \
            (arr) = np_;                                                                        \
            (cap) = nc_;                                                                        \
        }                                                                                       \
    } while (0)

#endif
