/* validator.h — the validator's schema and per-record state, shared by schema.c (loading the
 * schema file), check.c (the per-record checks) and validator.c (the stage's callbacks). */
#ifndef SL_VALIDATOR_H
#define SL_VALIDATOR_H

#include <sluice/stage.h>

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_FIELDS 64
#define RE_CACHE 4     /* recently matched values per pattern: regexec is the slowest check */
#define RE_CACHE_LEN 24

/* ---- schema ---------------------------------------------------------------------------- */

enum ftype { FT_STRING, FT_INTEGER, FT_NUMBER, FT_BOOLEAN, FT_TIMESTAMP };
extern const char *const type_names[5];

enum { N_TRIM = 1, N_LOWER = 2, N_UPPER = 4, N_UTC_MS = 8, N_ROUND2 = 16 };

typedef struct field {
    char *name;
    size_t name_len;
    sl_json_key key;     /* name, prepared for the per-record matching */
    enum ftype type;
    bool required;
    int cond_field;      /* required_when: index of the field tested, or -1 */
    char *cond_name;
    char **cond_values;
    size_t n_cond;
    char **enums;
    size_t n_enum;
    size_t *enum_len;    /* their lengths */
    char *enum_text;     /* "a, b, c" for the reason */
    bool has_min, has_max;
    double min, max;
    long min_len, max_len; /* -1: none */
    char *pattern;
    bool has_re;
    regex_t re;
    char re_cache[RE_CACHE][RE_CACHE_LEN];
    bool re_cache_used[RE_CACHE];
    unsigned re_next;
    bool has_default;
    char *def_str;       /* string/timestamp default (normalised at load) */
    double def_num;      /* integer/number/boolean default */
    unsigned normalize;
} field;

typedef struct schema {
    field f[MAX_FIELDS];
    size_t n;
} schema;

typedef struct vconf {
    char *schema;
    int64_t max_record_bytes;
    int on_invalid; /* 0 reject, 1 drop */
} vconf;

/* A change validate() wants applied to a valid record. */
typedef struct mutation {
    const char *key;
    const char *s; /* string value, or NULL for a number or boolean */
    double d;
    bool is_bool;
} mutation;

typedef struct validator {
    const sl_api *api;
    const vconf *conf;
    schema sc;
    /* per record scratch */
    const sl_json *node[MAX_FIELDS];
    const char *sval[MAX_FIELDS]; /* normalised string value, for required_when */
    mutation mut[MAX_FIELDS];
    size_t n_mut;
    char *arena; /* normalised strings of one record; never longer than the record + slack */
    size_t arena_used, arena_size;
    int64_t ts_ms;
    bool has_ts;
    char reason[512];
} validator;

/* schema.c */
bool schema_load(schema *sc, const char *path, char *err, size_t err_size);
void schema_free(schema *sc);

/* check.c */
void validator_keys_init(validator *v);
bool check_raw(validator *v, const unsigned char *raw, size_t len);
bool check_root(validator *v, const sl_json *root, const char *err);
bool validate(validator *v, sl_ctx *ctx, const sl_record *rec);
sl_err apply_mutations(validator *v, sl_ctx *ctx, const sl_record *rec);

#endif
