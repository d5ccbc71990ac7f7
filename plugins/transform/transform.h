/* transform.h — what the two halves of the transform stage share: transform.c (config: the
 * `ops` list parsed and checked at init, the descriptor) and transform_ops.c (applying the
 * operations to one record). */
#ifndef SL_TRANSFORM_H
#define SL_TRANSFORM_H

#include <sluice/stage.h>

#include "../common/sl_expr.h"

typedef enum op_kind {
    T_SET, T_RENAME, T_DROP, T_KEEP, T_CAST, T_TIMESTAMP, T_KEY, T_TOPIC, T_FILTER, T_MASK, T_FLATTEN
} op_kind;

typedef enum cast_to { C_STRING, C_INT, C_FLOAT, C_BOOL, C_TIMESTAMP } cast_to;

/* How a timestamp is read: strings as RFC 3339 or a strptime pattern, numbers as ms or s. */
typedef enum ts_fmt { F_AUTO, F_RFC3339, F_UNIX_MS, F_UNIX_S, F_PATTERN } ts_fmt;

typedef struct top {
    op_kind kind;
    int index;            /* position in `ops`, for messages */
    char *field;          /* set, rename (from), cast, mask (one field) */
    char *to;             /* rename */
    char **fields;        /* drop, keep, mask, flatten */
    size_t nfields;
    sl_expr **paths;      /* key (one per field), timestamp (one) */
    size_t npaths;
    sl_expr *expr;        /* set (expr), topic, filter */
    sl_expr_value value;  /* set (constant) */
    char *value_str;      /* owns value.str */
    int has_value;
    cast_to cast;
    ts_fmt fmt;
    char *pattern;        /* F_PATTERN */
    int required;
    int dead_letter;      /* filter: dead-letter instead of drop */
    int hash;             /* mask: hash (1) or redact (0) */
    char *replacement;    /* mask: redact text */
    char *salt;           /* mask: hash salt */
    char *sep;            /* key, flatten separator */
    char *prefix, *suffix; /* topic */
} top;

typedef struct tconf {
    char *ops; /* JSON text of the `ops` list */
} tconf;

typedef struct transform {
    const sl_api *api;
    top *ops;
    size_t nops;
    char *buf; /* scratch for keys, topics and formatted values */
    size_t bufcap;
    uint64_t filtered, dead;
} transform;

/* transform_ops.c: applies every op to one record; 0 = emit, 1 = dropped by a filter,
 * -1 = rejected (dead-lettered with the reason). SL_ENOMEM-like host failures reject too. */
int tf_apply(transform *t, sl_ctx *ctx, const sl_record *rec);

/* transform_ops.c: a timestamp from a string or number node in the given format; 0 on success,
 * else a static reason. */
const char *tf_parse_time(const sl_api *api, const sl_json *n, ts_fmt fmt, const char *pattern, int64_t *ms);

#endif
