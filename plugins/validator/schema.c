/* schema.c — the validator's schema file (YAML, libyaml's document API) into a `schema`:
 * field types and rules, checked against each other, with file:line:column on errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "../common/sl_time.h"
#include "validator.h"

const char *const type_names[5] = {"string", "integer", "number", "boolean", "timestamp"};

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

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A scalar or a sequence of scalars as a NULL-safe string array. */
static bool string_list(loader *L, yaml_node_t *n, const char *what, char ***out, size_t *nout)
{
    if (n->type == YAML_SCALAR_NODE) {
        *out = calloc(1, sizeof(char *));
        if (!*out || !((*out)[0] = dup_or_null(scalar(n))))
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
        (*out)[i] = dup_or_null(scalar(it));
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
        f->cond_name = dup_or_null(scalar(yaml_document_get_node(&L->doc, p->key)));
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
        f->pattern = dup_or_null(scalar(v));
        if (regcomp(&f->re, f->pattern, REG_EXTENDED | REG_NOSUB))
            return fail(L, v, "pattern: not a valid POSIX extended regex: %s%s", f->pattern, "");
        f->has_re = true;
        return true;
    }
    if (!strcmp(rule, "default")) {
        if (!scalar(v))
            return fail(L, v, "default: expected a scalar%s%s", "", "");
        f->has_default = true;
        f->def_str = dup_or_null(scalar(v));
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
        f->enum_len = calloc(f->n_enum, sizeof *f->enum_len);
        if (!f->enum_text || !f->enum_len)
            return fail(L, n, "out of memory%s%s", "", "");
        for (size_t i = 0; i < f->n_enum; i++) {
            if (i)
                strcat(f->enum_text, ", ");
            strcat(f->enum_text, f->enums[i]);
            f->enum_len[i] = strlen(f->enums[i]);
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
        f->name = dup_or_null(scalar(k));
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

void schema_free(schema *sc)
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
        free(f->enum_text), free(f->enum_len), free(f->pattern), free(f->def_str);
    }
    sc->n = 0;
}

/* Load a schema file; on failure `err` says where and why. Exposed for the tests/fuzzer. */
bool schema_load(schema *sc, const char *path, char *err, size_t err_size)
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
