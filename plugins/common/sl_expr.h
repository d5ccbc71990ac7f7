/* sl_expr.h — the small expression language of the built-in stages (transform's set/filter/topic,
 * window's `where` and derived columns). Reference: docs/expressions.md.
 *
 * A text is parsed and type-checked once, at init, into a flat postfix program whose field
 * references are pre-split paths; evaluating it per record walks the record's parsed JSON through
 * the host's accessors (api->json_get/json_at/...) and never re-reads the text.
 *
 * Build: add '../common/sl_expr.c' to the stage's shared_module sources (a stage .so cannot link
 * another's symbols, so each stage carries its own copy; the functions are hidden).
 *
 * Threads: a compiled program is read-only; evaluation keeps its stack on the C stack, so one
 * program may be evaluated from several threads at once.
 */
#ifndef SL_PLUGINS_EXPR_H
#define SL_PLUGINS_EXPR_H

#include <stddef.h>

#include <sluice/stage.h>

/** The type of a value at run time. */
typedef enum sl_expr_type {
    SL_EXPR_MISSING = 0, /**< a field reference that found nothing */
    SL_EXPR_NULL,        /**< JSON null, and the result of arithmetic that has no number
                              (division by zero, a non-number operand) */
    SL_EXPR_BOOL,
    SL_EXPR_NUMBER,
    SL_EXPR_STRING,
    SL_EXPR_OTHER /**< an array or object (only a field reference gives one; see .node) */
} sl_expr_type;

/** A value. Strings and nodes are borrowed: from the program (literals) or from the record's
 *  JSON (valid while the record's tree is). */
typedef struct sl_expr_value {
    sl_expr_type type;
    int b;              /**< SL_EXPR_BOOL */
    double num;         /**< SL_EXPR_NUMBER (always finite) */
    const char *str;    /**< SL_EXPR_STRING, NUL-terminated */
    const sl_json *node; /**< the JSON node of a field reference (NULL for computed values) */
} sl_expr_value;

/** What a program's result is known to be after type checking. */
typedef enum sl_expr_static {
    SL_EXPR_T_ANY = 0, /**< depends on the record (a field reference, say) */
    SL_EXPR_T_BOOL,
    SL_EXPR_T_NUMBER, /**< a number, or null where arithmetic has none (x / 0) */
    SL_EXPR_T_STRING,
    SL_EXPR_T_NULL
} sl_expr_static;

typedef struct sl_expr_opts {
    /** Names a bare identifier may refer to as a variable (a window row's columns): `orders`
     *  compiles to variable i when vars[i] is "orders"; evaluation reads vars[i] from the array
     *  passed to sl_expr_eval. Dotted paths and `$` still read the JSON root. May be NULL. */
    const char *const *vars;
    size_t nvars;
    /** 1: an identifier that is not a variable is an error (no JSON root to read from). */
    int vars_only;
    /** The result type required: SL_EXPR_T_ANY (anything), SL_EXPR_T_BOOL (a condition: a
     *  number or string result is an error), SL_EXPR_T_NUMBER (a string or bool is an error). */
    sl_expr_static want;
} sl_expr_opts;

/** Where and why a text was refused. line and col are 1-based within the text (a block scalar
 *  may span lines); offset is the byte offset. */
typedef struct sl_expr_error {
    int line, col;
    size_t offset;
    char msg[240];
} sl_expr_error;

typedef struct sl_expr sl_expr;

/** Limits, enforced at compile time (texts come from untrusted REST pipelines too). */
#define SL_EXPR_MAX_TEXT 16384 /* bytes of text */
#define SL_EXPR_MAX_DEPTH 48   /* nesting of parentheses/operators, and evaluation stack */

/** Parse, type-check and compile `text`. NULL on error (err filled) or out of memory
 *  (err->msg says so). `opts` may be NULL (no variables, any result). */
sl_expr *sl_expr_compile(const char *text, const sl_expr_opts *opts, sl_expr_error *err);
void sl_expr_free(sl_expr *e);

/** The result type known after type checking. */
sl_expr_static sl_expr_result_type(const sl_expr *e);
/** The source text (a copy owned by the program). */
const char *sl_expr_text(const sl_expr *e);
/** 1 if the program is a single field reference (a path such as `a.b`); its dotted form then is
 *  in *path (borrowed). Used by stages that also accept a path where an expression is. */
int sl_expr_is_path(const sl_expr *e, const char **path);

/**
 * Evaluate against `root` (the record's api->json root; may be NULL: every field is missing)
 * and `vars` (may be NULL when the program was compiled without variables).
 * `api` is needed only when the program reads fields. Never fails: see docs/expressions.md for
 * what missing fields, mismatched types and division by zero give.
 */
sl_expr_value sl_expr_eval(const sl_expr *e, const sl_api *api, const sl_json *root, const sl_expr_value *vars);

/** A condition: 1 only when the result is the boolean true (false, null, missing, ... are 0). */
int sl_expr_eval_bool(const sl_expr *e, const sl_api *api, const sl_json *root, const sl_expr_value *vars);

/** Format a scalar value as text into buf (NUL-terminated, truncated to len): strings as they are,
 *  numbers in the shortest form that reads back exactly (integers without ".0"), true/false,
 *  null. Returns 0 for missing and for arrays/objects (buf ""), else 1. */
int sl_expr_value_format(const sl_expr_value *v, char *buf, size_t len);

/** "missing", "null", "bool", "number", "string", "array/object". */
const char *sl_expr_type_name(sl_expr_type t);

#endif
