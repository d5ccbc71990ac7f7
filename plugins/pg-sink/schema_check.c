/*
 * schema_check.c — pg-sink: `check_schema: FILE` on a table spec names the validator schema
 * whose records reach that table. At start, every numeric field of the schema that feeds a
 * column must be bounded (min and max) within what the column stores exactly, so every value
 * the validator passes — and a later KPI stage counts — is one the sink will store. A mismatch
 * refuses to start, naming the field, its bounds and the column. The per-row checks of
 * check.c stay in force (a schema is only as good as its bounds).
 */
#include "pg-sink.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

typedef struct vfield {
    char *name;
    int type; /* VF_OTHER, VF_INTEGER, VF_NUMBER */
    bool has_min, has_max, round2;
    double min, max;
    unsigned long line;
} vfield;

enum { VF_OTHER, VF_INTEGER, VF_NUMBER };

struct schema_bounds {
    char *path;
    vfield *f;
    size_t n;
};

static const char *scalar(yaml_node_t *n)
{
    return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

static bool number(yaml_node_t *n, double *out)
{
    const char *s = scalar(n);
    char *end;
    if (!s || !*s) return false;
    *out = strtod(s, &end);
    return *end == '\0' && isfinite(*out);
}

void schema_bounds_free(schema_bounds *sb)
{
    if (!sb) return;
    for (size_t i = 0; i < sb->n; i++) free(sb->f[i].name);
    free(sb->f);
    free(sb->path);
    free(sb);
}

/* Reads the numeric rules of the validator schema at `path`. NULL on error (why in err). */
schema_bounds *schema_bounds_load(const char *path, char *err, size_t en)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, en, "check_schema: cannot open %s", path);
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, fp);
    bool loaded = yaml_parser_load(&parser, &doc);
    fclose(fp);
    if (!loaded) {
        snprintf(err, en, "check_schema: %s:%zu: %s", path, parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "YAML error");
        yaml_parser_delete(&parser);
        return NULL;
    }
    yaml_parser_delete(&parser);
    schema_bounds *sb = calloc(1, sizeof *sb);
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    yaml_node_t *fields = NULL;
    if (root && root->type == YAML_MAPPING_NODE) {
        for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
            const char *k = scalar(yaml_document_get_node(&doc, p->key));
            if (k && !strcmp(k, "fields")) fields = yaml_document_get_node(&doc, p->value);
        }
    }
    if (!sb || !(sb->path = strdup(path)) || !fields || fields->type != YAML_MAPPING_NODE) {
        snprintf(err, en, "check_schema: %s: expected a validator schema (a map with `fields`)", path);
        yaml_document_delete(&doc);
        schema_bounds_free(sb);
        return NULL;
    }
    size_t cap = (size_t)(fields->data.mapping.pairs.top - fields->data.mapping.pairs.start);
    sb->f = calloc(cap ? cap : 1, sizeof *sb->f);
    bool ok = sb->f != NULL;
    for (yaml_node_pair_t *p = fields->data.mapping.pairs.start; ok && p < fields->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
        yaml_node_t *rules = yaml_document_get_node(&doc, p->value);
        vfield *f = &sb->f[sb->n];
        if (!scalar(kn) || !rules || rules->type != YAML_MAPPING_NODE) continue;
        *f = (vfield){.name = strdup(scalar(kn)), .line = kn->start_mark.line + 1};
        ok = f->name != NULL;
        sb->n++;
        for (yaml_node_pair_t *r = rules->data.mapping.pairs.start; ok && r < rules->data.mapping.pairs.top; r++) {
            const char *rule = scalar(yaml_document_get_node(&doc, r->key));
            yaml_node_t *v = yaml_document_get_node(&doc, r->value);
            if (!rule) continue;
            if (!strcmp(rule, "type")) {
                const char *t = scalar(v);
                f->type = t && !strcmp(t, "integer") ? VF_INTEGER : t && !strcmp(t, "number") ? VF_NUMBER : VF_OTHER;
            } else if (!strcmp(rule, "min") || !strcmp(rule, "max")) {
                bool is_min = rule[1] == 'i';
                if (!number(v, is_min ? &f->min : &f->max)) {
                    snprintf(err, en, "check_schema: %s:%lu: %s of %s is not a number", path,
                             (unsigned long)v->start_mark.line + 1, rule, f->name);
                    ok = false;
                }
                *(is_min ? &f->has_min : &f->has_max) = true;
            } else if (!strcmp(rule, "normalize") && v && v->type == YAML_SEQUENCE_NODE) {
                for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top; it++) {
                    const char *nm = scalar(yaml_document_get_node(&doc, *it));
                    if (nm && !strcmp(nm, "round2")) f->round2 = true;
                }
            }
        }
    }
    yaml_document_delete(&doc);
    if (!ok) {
        if (!err[0]) snprintf(err, en, "out of memory");
        schema_bounds_free(sb);
        return NULL;
    }
    return sb;
}

/* The closed range a column stores exactly; false if it has none worth checking. */
static bool column_range(const column *c, double *lo, double *hi, int *scale)
{
    *scale = -1; /* any number of decimals */
    switch (c->kind) {
    case CK_INT2: *lo = -32768, *hi = 32767, *scale = 0; return true;
    case CK_INT4: *lo = -2147483648.0, *hi = 2147483647.0, *scale = 0; return true;
    case CK_INT8: *lo = -9007199254740991.0, *hi = 9007199254740991.0, *scale = 0; return true;
    case CK_FLOAT4: *lo = -FLT_MAX, *hi = FLT_MAX; return true;
    case CK_NUMERIC:
        if (c->prec < 0) {
            *lo = -9007199254740991.0, *hi = 9007199254740991.0;
            return true;
        }
        *hi = pow(10, c->prec - c->scale) - pow(10, -c->scale);
        *lo = -*hi;
        *scale = c->scale;
        return true;
    default: return false;
    }
}

/* Compares the schema's numeric fields with spec t's columns (catalog loaded). NULL if they
 * fit, else the first mismatch (in why). */
const char *schema_bounds_check(const schema_bounds *sb, const table_spec *t, char *why, size_t wn)
{
    for (size_t c = 0; c < t->ncols; c++) {
        const column *col = &t->cols[c];
        if (col->src != SRC_FIELD) continue;
        const vfield *f = NULL;
        for (size_t i = 0; i < sb->n && !f; i++)
            if (!strcmp(sb->f[i].name, col->arg)) f = &sb->f[i];
        double lo, hi;
        int scale;
        if (!f || f->type == VF_OTHER || !column_range(col, &lo, &hi, &scale)) continue;
        const char *problem = NULL;
        if (!f->has_min || !f->has_max) problem = f->has_min ? "it has no max" : "it has no min";
        else if (f->min < lo || f->max > hi) problem = "its bounds exceed the column's range";
        else if (scale == 0 && f->type == VF_NUMBER) problem = "type number allows fractions";
        else if (scale > 0 && f->type == VF_NUMBER && !(f->round2 && scale >= 2))
            problem = "type number allows more decimals than the column keeps (normalize: "
                      "[round2] keeps 2)";
        if (!problem) continue;
        char mn[32] = "none", mx[32] = "none";
        if (f->has_min) snprintf(mn, sizeof mn, "%.15g", f->min);
        if (f->has_max) snprintf(mx, sizeof mx, "%.15g", f->max);
        snprintf(why, wn,
                 "check_schema %s:%lu: field %s (%s, min %s, max %s) does not fit column "
                 "%s.%s %s [%.15g, %.15g]: %s",
                 sb->path, f->line, f->name, f->type == VF_INTEGER ? "integer" : "number", mn,
                 mx, t->table, col->name, col->sql_type, lo, hi, problem);
        return why;
    }
    return NULL;
}
