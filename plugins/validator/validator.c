/*
 * validator — UC03 parse & validate, plus normalisation ("clean").
 *
 * Each record must be a JSON object that satisfies a schema file written in YAML:
 *
 *   fields:
 *     amount: {type: number, min: 0, required_when: {event_type: [purchase]}, normalize: [round2]}
 *
 * Valid records are normalised in place (only when a value actually changes, so the host
 * re-serialises as little as possible), get their timestamp from the first timestamp field,
 * and are forwarded. Invalid ones are rejected to the dead letter with "<field>: <rule>"
 * (or dropped and counted, with on_invalid: drop). Unknown fields are kept.
 *
 * The record is checked and normalised in two steps — validate() collects the changes, then
 * they are applied — so a rejected record reaches the dead letter exactly as it arrived.
 */
#include <sluice/stage.h>

#include <math.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "../common/sl_time.h"

#define MAX_FIELDS 64
#define RE_CACHE 4     /* recently matched values per pattern: regexec is the slowest check */
#define RE_CACHE_LEN 24

/* ---- schema ---------------------------------------------------------------------------- */

enum ftype { FT_STRING, FT_INTEGER, FT_NUMBER, FT_BOOLEAN, FT_TIMESTAMP };
static const char *const type_names[] = {"string", "integer", "number", "boolean", "timestamp"};

enum { N_TRIM = 1, N_LOWER = 2, N_UPPER = 4, N_UTC_MS = 8, N_ROUND2 = 16 };

typedef struct field {
    char *name;
    size_t name_len;
    enum ftype type;
    bool required;
    int cond_field;      /* required_when: index of the field tested, or -1 */
    char *cond_name;
    char **cond_values;
    size_t n_cond;
    char **enums;
    size_t n_enum;
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

/* ---- schema loading (libyaml document API) -------------------------------------------- */

typedef struct loader {
    yaml_document_t doc;
    const char *path;
    char *err;
    size_t err_size;
} loader;

static bool fail(loader *L, const yaml_node_t *n, const char *fmt, const char *a, const char *b)
{
    char msg[256];
    snprintf(msg, sizeof msg, fmt, a, b);
    snprintf(L->err, L->err_size, "%s:%zu:%zu: %s", L->path, n ? n->start_mark.line + 1 : 0,
             n ? n->start_mark.column + 1 : 0, msg);
    return false;
}

static const char *scalar(const yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A scalar or a sequence of scalars as a NULL-safe string array. */
static bool string_list(loader *L, yaml_node_t *n, const char *what, char ***out, size_t *nout)
{
    if (n->type == YAML_SCALAR_NODE) {
        *out = calloc(1, sizeof(char *));
        if (!*out || !((*out)[0] = xstrdup(scalar(n))))
            return fail(L, n, "out of memory%s%s", "", "");
        *nout = 1;
        return true;
    }
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(L, n, "%s: expected a list", what, "");
    size_t cnt = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
    *out = calloc(cnt ? cnt : 1, sizeof(char *));
    if (!*out)
        return fail(L, n, "out of memory%s%s", "", "");
    for (size_t i = 0; i < cnt; i++) {
        yaml_node_t *it = yaml_document_get_node(&L->doc, n->data.sequence.items.start[i]);
        if (!scalar(it))
            return fail(L, it, "%s: expected a list of scalars", what, "");
        (*out)[i] = xstrdup(scalar(it));
        (*nout)++;
    }
    return true;
}

static bool number_of(loader *L, yaml_node_t *n, const char *what, double *out)
{
    const char *s = scalar(n);
    char *end;
    if (!s || !*s || (*out = strtod(s, &end), *end) || !isfinite(*out))
        return fail(L, n, "%s: expected a number", what, "");
    return true;
}

static bool bool_of(loader *L, yaml_node_t *n, const char *what, bool *out)
{
    const char *s = scalar(n);
    if (s && (!strcmp(s, "true") || !strcmp(s, "yes")))
        *out = true;
    else if (s && (!strcmp(s, "false") || !strcmp(s, "no")))
        *out = false;
    else
        return fail(L, n, "%s: expected true or false", what, "");
    return true;
}

static bool load_rule(loader *L, field *f, const char *rule, yaml_node_t *v)
{
    if (!strcmp(rule, "type")) {
        const char *s = scalar(v);
        for (int t = 0; t < 5; t++)
            if (s && !strcmp(s, type_names[t])) {
                f->type = (enum ftype)t;
                return true;
            }
        return fail(L, v, "%s: unknown type (string, integer, number, boolean, timestamp)",
                    f->name, "");
    }
    if (!strcmp(rule, "required"))
        return bool_of(L, v, "required", &f->required);
    if (!strcmp(rule, "required_when")) {
        if (v->type != YAML_MAPPING_NODE || v->data.mapping.pairs.top - v->data.mapping.pairs.start != 1)
            return fail(L, v, "%s: required_when takes one {field: [values]}", f->name, "");
        yaml_node_pair_t *p = v->data.mapping.pairs.start;
        f->cond_name = xstrdup(scalar(yaml_document_get_node(&L->doc, p->key)));
        return string_list(L, yaml_document_get_node(&L->doc, p->value), "required_when",
                           &f->cond_values, &f->n_cond);
    }
    if (!strcmp(rule, "enum"))
        return string_list(L, v, "enum", &f->enums, &f->n_enum);
    if (!strcmp(rule, "min"))
        return f->has_min = true, number_of(L, v, "min", &f->min);
    if (!strcmp(rule, "max"))
        return f->has_max = true, number_of(L, v, "max", &f->max);
    if (!strcmp(rule, "min_length") || !strcmp(rule, "max_length")) {
        double d;
        if (!number_of(L, v, rule, &d))
            return false;
        if (d < 0 || d != floor(d))
            return fail(L, v, "%s: expected a non-negative integer", rule, "");
        *(rule[1] == 'i' ? &f->min_len : &f->max_len) = (long)d;
        return true;
    }
    if (!strcmp(rule, "pattern")) {
        if (!scalar(v))
            return fail(L, v, "pattern: expected a string%s%s", "", "");
        f->pattern = xstrdup(scalar(v));
        if (regcomp(&f->re, f->pattern, REG_EXTENDED | REG_NOSUB))
            return fail(L, v, "pattern: not a valid POSIX extended regex: %s%s", f->pattern, "");
        f->has_re = true;
        return true;
    }
    if (!strcmp(rule, "default")) {
        if (!scalar(v))
            return fail(L, v, "default: expected a scalar%s%s", "", "");
        f->has_default = true;
        f->def_str = xstrdup(scalar(v));
        return true;
    }
    if (!strcmp(rule, "normalize")) {
        char **names = NULL;
        size_t n = 0;
        bool ok = string_list(L, v, "normalize", &names, &n);
        static const char *const nn[] = {"trim", "lower", "upper", "utc_ms", "round2"};
        for (size_t i = 0; ok && i < n; i++) {
            size_t k = 0;
            while (k < 5 && strcmp(names[i], nn[k]))
                k++;
            if (k == 5)
                ok = fail(L, v, "normalize: unknown option '%s' (trim, lower, upper, utc_ms, round2)",
                          names[i], "");
            else
                f->normalize |= 1u << k;
        }
        for (size_t i = 0; i < n; i++)
            free(names[i]);
        free(names);
        return ok;
    }
    return fail(L, v, "%s: unknown rule '%s'", f->name, rule);
}

/* Check that rules fit the type, resolve required_when, type the default. */
static bool finish_field(loader *L, schema *sc, field *f, yaml_node_t *n)
{
    bool str = f->type == FT_STRING, num = f->type == FT_INTEGER || f->type == FT_NUMBER;
    if ((f->n_enum || f->has_re || f->min_len >= 0 || f->max_len >= 0) && !str)
        return fail(L, n, "%s: enum, pattern, min_length and max_length need type string", f->name, "");
    if ((f->has_min || f->has_max) && !num)
        return fail(L, n, "%s: min and max need type integer or number", f->name, "");
    if ((f->normalize & (N_TRIM | N_LOWER | N_UPPER)) && !str)
        return fail(L, n, "%s: trim, lower and upper need type string", f->name, "");
    if ((f->normalize & N_UTC_MS) && f->type != FT_TIMESTAMP)
        return fail(L, n, "%s: utc_ms needs type timestamp", f->name, "");
    if ((f->normalize & N_ROUND2) && f->type != FT_NUMBER)
        return fail(L, n, "%s: round2 needs type number", f->name, "");
    if (f->cond_name) {
        f->cond_field = -1;
        for (size_t i = 0; i < sc->n; i++)
            if (!strcmp(sc->f[i].name, f->cond_name))
                f->cond_field = (int)i;
        if (f->cond_field < 0)
            return fail(L, n, "%s: required_when names unknown field '%s'", f->name, f->cond_name);
    }
    if (f->n_enum) {
        size_t len = 1;
        for (size_t i = 0; i < f->n_enum; i++)
            len += strlen(f->enums[i]) + 2;
        f->enum_text = calloc(1, len);
        if (!f->enum_text)
            return fail(L, n, "out of memory%s%s", "", "");
        for (size_t i = 0; i < f->n_enum; i++) {
            if (i)
                strcat(f->enum_text, ", ");
            strcat(f->enum_text, f->enums[i]);
        }
    }
    if (f->has_default) {
        char *end;
        int64_t ms;
        switch (f->type) {
        case FT_INTEGER:
        case FT_NUMBER:
            f->def_num = strtod(f->def_str, &end);
            if (*end || !*f->def_str || !isfinite(f->def_num) ||
                (f->type == FT_INTEGER && f->def_num != floor(f->def_num)))
                return fail(L, n, "%s: default is not a %s", f->name, type_names[f->type]);
            break;
        case FT_BOOLEAN:
            if (strcmp(f->def_str, "true") && strcmp(f->def_str, "false"))
                return fail(L, n, "%s: default is not a boolean%s", f->name, "");
            f->def_num = !strcmp(f->def_str, "true");
            break;
        case FT_TIMESTAMP:
            if (sl_ts_parse(f->def_str, &ms) != SL_TS_OK)
                return fail(L, n, "%s: default is not an RFC 3339 timestamp%s", f->name, "");
            break;
        case FT_STRING:
            break;
        }
    }
    return true;
}

static bool load_fields(loader *L, schema *sc, yaml_node_t *fields)
{
    if (!fields || fields->type != YAML_MAPPING_NODE)
        return fail(L, fields, "'fields' must be a mapping of field name to rules%s%s", "", "");
    for (yaml_node_pair_t *p = fields->data.mapping.pairs.start; p < fields->data.mapping.pairs.top; p++) {
        yaml_node_t *k = yaml_document_get_node(&L->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&L->doc, p->value);
        if (!scalar(k) || !*scalar(k))
            return fail(L, k, "field names must be strings%s%s", "", "");
        if (sc->n == MAX_FIELDS)
            return fail(L, k, "more than 64 fields%s%s", "", "");
        for (size_t i = 0; i < sc->n; i++)
            if (!strcmp(sc->f[i].name, scalar(k)))
                return fail(L, k, "duplicate field '%s'%s", scalar(k), "");
        field *f = &sc->f[sc->n++];
        f->name = xstrdup(scalar(k));
        f->name_len = strlen(f->name);
        f->min_len = f->max_len = -1;
        f->cond_field = -1;
        if (v->type != YAML_MAPPING_NODE)
            return fail(L, v, "%s: expected a mapping of rules", f->name, "");
        bool has_type = false;
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
            const char *rule = scalar(yaml_document_get_node(&L->doc, q->key));
            if (!rule)
                return fail(L, v, "%s: rule names must be strings", f->name, "");
            has_type |= !strcmp(rule, "type");
            if (!load_rule(L, f, rule, yaml_document_get_node(&L->doc, q->value)))
                return false;
        }
        if (!has_type)
            return fail(L, v, "%s: missing 'type'", f->name, "");
    }
    /* Second pass: required_when may name a field declared later. */
    for (yaml_node_pair_t *p = fields->data.mapping.pairs.start; p < fields->data.mapping.pairs.top; p++) {
        field *f = &sc->f[p - fields->data.mapping.pairs.start];
        if (!finish_field(L, sc, f, yaml_document_get_node(&L->doc, p->value)))
            return false;
    }
    return true;
}

static void schema_free(schema *sc)
{
    for (size_t i = 0; i < sc->n; i++) {
        field *f = &sc->f[i];
        for (size_t k = 0; k < f->n_cond; k++)
            free(f->cond_values[k]);
        for (size_t k = 0; k < f->n_enum; k++)
            free(f->enums[k]);
        if (f->has_re)
            regfree(&f->re);
        free(f->name), free(f->cond_name), free(f->cond_values), free(f->enums);
        free(f->enum_text), free(f->pattern), free(f->def_str);
    }
    sc->n = 0;
}

/* Load a schema file; on failure `err` says where and why. Exposed for the tests/fuzzer. */
static bool schema_load(schema *sc, const char *path, char *err, size_t err_size)
{
    loader L = {.path = path, .err = err, .err_size = err_size};
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, err_size, "%s: cannot open: %m", path);
        return false;
    }
    yaml_parser_t parser;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, fp);
    bool ok = yaml_parser_load(&parser, &L.doc);
    if (!ok) {
        snprintf(err, err_size, "%s:%zu:%zu: %s", path, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "YAML error");
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&L.doc);
        yaml_node_t *fields = NULL;
        if (root && root->type == YAML_MAPPING_NODE)
            for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
                const char *k = scalar(yaml_document_get_node(&L.doc, p->key));
                if (k && !strcmp(k, "fields"))
                    fields = yaml_document_get_node(&L.doc, p->value);
                else
                    ok = fail(&L, yaml_document_get_node(&L.doc, p->key),
                              "unknown top-level key '%s' (expected 'fields')", k ? k : "?", "");
            }
        if (ok)
            ok = fields ? load_fields(&L, sc, fields) : fail(&L, root, "missing 'fields'%s%s", "", "");
        yaml_document_delete(&L.doc);
    }
    yaml_parser_delete(&parser);
    fclose(fp);
    if (!ok)
        schema_free(sc);
    return ok;
}

/* ---- checks ------------------------------------------------------------------------------ */

/* Offset of the first invalid UTF-8 byte, or -1. ASCII is skipped eight bytes at a time. */
static long utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;         /* no overlong forms */
            if (c == 0xED) hi = 0x9F;         /* no UTF-16 surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;         /* nothing above U+10FFFF */
        } else
            return (long)i;
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
            return (long)i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)i;
        i += len;
    }
    return -1;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static bool reject_reason(validator *v, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool reject_reason(validator *v, const char *field, const char *fmt, ...)
{
    /* An unknown key comes from the input: cap it so the reason stays short. */
    int n = snprintf(v->reason, sizeof v->reason, "%.64s: ", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason + n, sizeof v->reason - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

static char *arena_alloc(validator *v, size_t n)
{
    if (v->arena_used + n > v->arena_size)
        return NULL;
    char *p = v->arena + v->arena_used;
    v->arena_used += n;
    return p;
}

static bool finite_everywhere(const sl_api *api, const sl_json *n, int depth)
{
    sl_json_type t = api->json_type(n);
    if (t == SL_JSON_NUMBER)
        return isfinite(api->json_number(n));
    if ((t != SL_JSON_ARRAY && t != SL_JSON_OBJECT) || depth > 64)
        return true;
    for (const sl_json *c = api->json_at(n, 0); c; c = api->json_next(c))
        if (!finite_everywhere(api, c, depth + 1))
            return false;
    return true;
}

static bool pattern_matches(field *f, const char *s)
{
    size_t len = strlen(s);
    if (len < RE_CACHE_LEN)
        for (unsigned k = 0; k < RE_CACHE; k++)
            if (f->re_cache_used[k] && !strcmp(f->re_cache[k], s))
                return true;
    if (regexec(&f->re, s, 0, NULL, 0))
        return false;
    if (len < RE_CACHE_LEN) {
        unsigned k = f->re_next++ % RE_CACHE;
        memcpy(f->re_cache[k], s, len + 1);
        f->re_cache_used[k] = true;
    }
    return true;
}

/* Normalise and check a present string value. */
static bool check_string(validator *v, field *f, const char *s)
{
    const char *val = s;
    if (f->normalize & (N_TRIM | N_LOWER | N_UPPER)) {
        size_t len = strlen(s), a = 0, b = len;
        if (f->normalize & N_TRIM) {
            while (a < b && is_space(s[a]))
                a++;
            while (b > a && is_space(s[b - 1]))
                b--;
        }
        bool change = a != 0 || b != len;
        for (size_t i = a; i < b && !change; i++)
            change = ((f->normalize & N_LOWER) && s[i] >= 'A' && s[i] <= 'Z') ||
                     ((f->normalize & N_UPPER) && s[i] >= 'a' && s[i] <= 'z');
        if (change) {
            char *p = arena_alloc(v, b - a + 1);
            if (!p)
                return reject_reason(v, f->name, "value too long to normalise");
            for (size_t i = a; i < b; i++) {
                char c = s[i];
                if ((f->normalize & N_LOWER) && c >= 'A' && c <= 'Z')
                    c = (char)(c + 32);
                if ((f->normalize & N_UPPER) && c >= 'a' && c <= 'z')
                    c = (char)(c - 32);
                p[i - a] = c;
            }
            p[b - a] = 0;
            val = p;
            v->mut[v->n_mut++] = (mutation){f->name, p, 0, false};
        }
    }
    v->sval[f - v->sc.f] = val;
    if (f->min_len >= 0 || f->max_len >= 0) {
        size_t n = utf8_chars(val);
        if (f->min_len >= 0 && n < (size_t)f->min_len)
            return reject_reason(v, f->name, "shorter than min_length %ld", f->min_len);
        if (f->max_len >= 0 && n > (size_t)f->max_len)
            return reject_reason(v, f->name, "longer than max_length %ld", f->max_len);
    }
    if (f->n_enum) {
        size_t k = 0;
        while (k < f->n_enum && strcmp(f->enums[k], val))
            k++;
        if (k == f->n_enum)
            return reject_reason(v, f->name, "not one of %s", f->enum_text);
    }
    if (f->has_re && !pattern_matches(f, val))
        return reject_reason(v, f->name, "does not match pattern %s", f->pattern);
    return true;
}

static bool check_number(validator *v, field *f, double x)
{
    if (!isfinite(x))
        return reject_reason(v, f->name, "not a finite number");
    if (f->type == FT_INTEGER && (x != floor(x) || fabs(x) > 9007199254740992.0))
        return reject_reason(v, f->name, "expected integer");
    if ((f->normalize & N_ROUND2) && fabs(x) < 1e13) {
        /* Cents as an integer, then back: 2 decimals exactly as printed. Beyond 1e13 the cents
         * no longer fit a double's 53 bits exactly, and rounding would change the value each
         * time it is applied (found by the fuzzer), so such amounts are kept as they are. */
        double r = (double)llround(x * 100.0) / 100.0;
        if (r != x) {
            x = r;
            v->mut[v->n_mut++] = (mutation){f->name, NULL, r, false};
        }
    }
    if (f->has_min && x < f->min)
        return reject_reason(v, f->name, "below min %g", f->min);
    if (f->has_max && x > f->max)
        return reject_reason(v, f->name, "above max %g", f->max);
    return true;
}

static bool check_timestamp(validator *v, field *f, const char *s)
{
    int64_t ms = 0;
    switch (sl_ts_parse(s, &ms)) {
    case SL_TS_OK: break;
    case SL_TS_NO_ZONE: return reject_reason(v, f->name, "timestamp without time zone");
    case SL_TS_BEFORE_1970: return reject_reason(v, f->name, "timestamp before 1970");
    case SL_TS_AFTER_9999: return reject_reason(v, f->name, "timestamp after 9999");
    default: return reject_reason(v, f->name, "not an RFC 3339 timestamp");
    }
    /* Already "YYYY-MM-DDTHH:MM:SS.mmmZ"? Then there is nothing to rewrite. */
    size_t len = strlen(s);
    bool canonical = len == 24 && s[10] == 'T' && s[19] == '.' && s[23] == 'Z';
    if ((f->normalize & N_UTC_MS) && !canonical) {
        char *p = arena_alloc(v, 32);
        if (!p)
            return reject_reason(v, f->name, "value too long to normalise");
        sl_ts_format(ms, 1, p);
        v->mut[v->n_mut++] = (mutation){f->name, p, 0, false};
        s = p;
    }
    v->sval[f - v->sc.f] = s;
    if (!v->has_ts) {
        v->has_ts = true;
        v->ts_ms = ms;
    }
    return true;
}

static bool check_present(validator *v, field *f, const sl_json *n)
{
    const sl_api *api = v->api;
    sl_json_type t = api->json_type(n);
    switch (f->type) {
    case FT_STRING:
        if (t != SL_JSON_STRING)
            return reject_reason(v, f->name, "expected string");
        return check_string(v, f, api->json_string(n));
    case FT_INTEGER:
    case FT_NUMBER:
        if (t != SL_JSON_NUMBER)
            return reject_reason(v, f->name, "expected %s", type_names[f->type]);
        return check_number(v, f, api->json_number(n));
    case FT_BOOLEAN:
        if (t != SL_JSON_BOOL)
            return reject_reason(v, f->name, "expected boolean");
        return true;
    case FT_TIMESTAMP:
        if (t != SL_JSON_STRING)
            return reject_reason(v, f->name, "expected timestamp string");
        return check_timestamp(v, f, api->json_string(n));
    }
    return true;
}

/* Apply a default to an absent field (queued as a mutation). */
static void apply_default(validator *v, field *f)
{
    size_t i = (size_t)(f - v->sc.f);
    if (f->type == FT_STRING || f->type == FT_TIMESTAMP) {
        v->mut[v->n_mut++] = (mutation){f->name, f->def_str, 0, false};
        v->sval[i] = f->def_str;
        if (f->type == FT_TIMESTAMP && !v->has_ts)
            v->has_ts = sl_ts_parse(f->def_str, &v->ts_ms) == SL_TS_OK;
    } else {
        v->mut[v->n_mut++] = (mutation){f->name, NULL, f->def_num, f->type == FT_BOOLEAN};
    }
}

static field *find_field(schema *sc, const char *key)
{
    for (size_t i = 0; i < sc->n; i++)
        if (sc->f[i].name[0] == key[0] && !strcmp(sc->f[i].name, key))
            return &sc->f[i];
    return NULL;
}

/* Record-level checks on the raw bytes; true if they pass, else v->reason says why. */
static bool check_raw(validator *v, const unsigned char *raw, size_t len)
{
    v->n_mut = 0;
    v->arena_used = 0;
    v->has_ts = false;
    if ((int64_t)len > v->conf->max_record_bytes)
        return reject_reason(v, "record", "%zu bytes exceeds max_record_bytes %lld", len,
                             (long long)v->conf->max_record_bytes);
    long bad = utf8_invalid_at(raw, len);
    if (bad >= 0)
        return reject_reason(v, "record", "invalid UTF-8 at byte %ld", bad);
    return true;
}

/* The schema checks on a parsed root (NULL: not JSON, `err` says why). True if valid, with the
 * normalisations queued in v->mut[0..n_mut) and the timestamp in v->ts_ms; else v->reason
 * says why. Nothing is changed here: the caller applies v->mut (see apply_mutations), so a
 * rejected record reaches the dead letter as it arrived. The fuzzer calls this directly. */
static bool check_root(validator *v, const sl_json *root, const char *err)
{
    const sl_api *api = v->api;
    v->n_mut = 0;
    v->arena_used = 0;
    v->has_ts = false;
    if (!root)
        return reject_reason(v, "record", "malformed JSON (%s)", err ? err : "parse error");
    if (api->json_type(root) != SL_JSON_OBJECT)
        return reject_reason(v, "record", "not a JSON object");

    schema *sc = &v->sc;
    memset(v->node, 0, sc->n * sizeof v->node[0]);
    memset(v->sval, 0, sc->n * sizeof v->sval[0]);
    /* One pass over the members (json_next: a list walk, not json_at(i) per member). */
    for (const sl_json *m = api->json_at(root, 0); m; m = api->json_next(m)) {
        const char *key = api->json_key(m);
        field *f = key ? find_field(sc, key) : NULL;
        if (!f) {
            /* Unknown fields are kept, but a non-finite number would not survive printing. */
            if (!finite_everywhere(api, m, 0))
                return reject_reason(v, key ? key : "?", "not a finite number");
            continue;
        }
        size_t k = (size_t)(f - sc->f);
        if (v->node[k])
            return reject_reason(v, f->name, "duplicate member");
        v->node[k] = m;
    }
    for (size_t k = 0; k < sc->n; k++) {
        field *f = &sc->f[k];
        const sl_json *n = v->node[k];
        if (n && api->json_type(n) != SL_JSON_NULL) {
            if (!check_present(v, f, n))
                return false;
        } else if (f->required) {
            return reject_reason(v, f->name, "required");
        } else if (f->has_default) {
            apply_default(v, f);
        }
    }
    /* required_when last: the field it tests is normalised by now, wherever it is declared. */
    for (size_t k = 0; k < sc->n; k++) {
        field *f = &sc->f[k];
        if (f->cond_field < 0 || (v->node[k] && api->json_type(v->node[k]) != SL_JSON_NULL))
            continue;
        const char *cv = v->sval[f->cond_field];
        if (!cv)
            continue;
        for (size_t c = 0; c < f->n_cond; c++)
            if (!strcmp(cv, f->cond_values[c]))
                return reject_reason(v, f->name, "required when %s=%s", f->cond_name, cv);
    }
    return true;
}

/* Check one record; true if valid (changes queued in v->mut), else v->reason says why. */
static bool validate(validator *v, sl_ctx *ctx, const sl_record *rec)
{
    size_t len;
    const unsigned char *raw = v->api->value(ctx, rec, &len);
    if (!check_raw(v, raw, len))
        return false;
    const char *err = NULL;
    const sl_json *root = v->api->json(ctx, rec, &err);
    return check_root(v, root, err);
}

/* Apply the normalisations check_root queued to a valid record. */
static sl_err apply_mutations(validator *v, sl_ctx *ctx, const sl_record *rec)
{
    const sl_api *api = v->api;
    for (size_t m = 0; m < v->n_mut; m++) {
        const mutation *mu = &v->mut[m];
        sl_err e = mu->s ? api->json_set_string(ctx, rec, mu->key, mu->s)
                   : mu->is_bool ? api->json_set_bool(ctx, rec, mu->key, mu->d != 0)
                                 : api->json_set_number(ctx, rec, mu->key, mu->d);
        if (e != SL_OK)
            return e == SL_ENOMEM ? SL_ENOMEM : SL_FATAL;
    }
    return SL_OK;
}

/* ---- callbacks ------------------------------------------------------------------------- */

static sl_err v_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const vconf *conf = config;
    validator *v = calloc(1, sizeof *v);
    if (!v)
        return SL_ENOMEM;
    v->api = api;
    v->conf = conf;
    char path[4096], err[8192];
    const char *dir = api->config_dir(ctx);
    if (conf->schema[0] == '/' || !dir || !*dir)
        snprintf(path, sizeof path, "%s", conf->schema);
    else
        snprintf(path, sizeof path, "%s/%s", dir, conf->schema);
    if (!schema_load(&v->sc, path, err, sizeof err)) {
        api->log(ctx, SL_LOG_ERROR, "schema: %s", err);
        free(v);
        return SL_ECONFIG;
    }
    for (size_t i = 0; i < v->sc.n; i++)
        if (v->sc.f[i].has_default && v->sc.f[i].type == FT_BOOLEAN &&
            api->struct_size < offsetof(sl_api, json_set_bool) + sizeof api->json_set_bool) {
            api->log(ctx, SL_LOG_ERROR, "schema: %s: a boolean default needs a newer host (json_set_bool)",
                     v->sc.f[i].name);
            schema_free(&v->sc);
            free(v);
            return SL_ECONFIG;
        }
    /* Normalised strings are never longer than the record; timestamps take 32 bytes each. */
    v->arena_size = (size_t)conf->max_record_bytes + 32 * MAX_FIELDS + 64;
    v->arena = malloc(v->arena_size);
    if (!v->arena) {
        schema_free(&v->sc);
        free(v);
        return SL_ENOMEM;
    }
    api->log(ctx, SL_LOG_INFO, "schema %s: %zu fields", path, v->sc.n);
    *self = v;
    return SL_OK;
}

static sl_err v_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    validator *v = self;
    const sl_api *api = v->api;
    uint64_t invalid = 0;
    for (size_t i = 0; i < batch->n; i++) {
        const sl_record *rec = batch->recs[i];
        if (!validate(v, ctx, rec)) {
            invalid++;
            if (v->conf->on_invalid == 0)
                api->reject(ctx, rec, v->reason);
            else
                api->log(ctx, SL_LOG_DEBUG, "dropped: %s", v->reason);
            continue;
        }
        sl_err e = apply_mutations(v, ctx, rec);
        if (e != SL_OK)
            return e;
        if (v->has_ts && (e = api->set_timestamp(ctx, rec, v->ts_ms)) != SL_OK)
            return e;
        if ((e = api->emit(ctx, rec)) != SL_OK)
            return e;
    }
    if (invalid)
        api->count(ctx, "invalid", invalid);
    return SL_OK;
}

static void v_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    validator *v = self;
    schema_free(&v->sc);
    free(v->arena);
    free(v);
}

/* ---- config table and descriptor ------------------------------------------------------- */

static const sl_config_entry v_config[] = {
    SL_CFG_PATH("schema", vconf, schema, .flags = SL_CFG_REQUIRED,
        .description = "schema YAML file; relative paths are relative to the pipeline file"),
    SL_CFG_SIZE("max_record_bytes", vconf, max_record_bytes, .flags = SL_CFG_BOUNDED,
        .default_value = "64KiB", .min = 16, .max = 1073741824.0,
        .description = "larger records are rejected"),
    SL_CFG_ENUM("on_invalid", vconf, on_invalid, .default_value = "reject", .choices = "reject|drop",
        .description = "reject: to the dead letter with the reason; drop: count and drop"),
    SL_CFG_END,
};

/* Before start (`sluice validate`, REST, hot reload): the schema file must load. */
static sl_err v_check(const void *config, sl_check *c)
{
    const vconf *conf = config;
    if (conf->schema[0] != '/' && !c->config_dir)
        return SL_OK; /* no pipeline file to resolve it against: init will tell */
    char path[4096], err[8192];
    if (conf->schema[0] == '/' || !*c->config_dir)
        snprintf(path, sizeof path, "%s", conf->schema);
    else
        snprintf(path, sizeof path, "%s/%s", c->config_dir, conf->schema);
    schema sc;
    memset(&sc, 0, sizeof sc);
    if (!schema_load(&sc, path, err, sizeof err)) {
        snprintf(c->why, c->why_len, "schema: %s", err);
        snprintf(c->where, c->where_len, "/schema");
        return SL_ECONFIG;
    }
    schema_free(&sc);
    return SL_OK;
}

static const sl_stage_desc v_desc = {
    SL_STAGE_DESC_INIT,
    .name = "validator",
    .version = "1.0.0",
    .kind = SL_KIND_TRANSFORM,
    .description = "validates JSON records against a YAML schema, normalises fields, rejects the rest",
    .config = v_config,
    .config_size = sizeof(vconf),
    .init = v_init,
    .process = v_process,
    .close = v_close,
    .check = v_check,
};

SL_STAGE_DEFINE(v_desc)
