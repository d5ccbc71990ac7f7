#include "yamltree.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* Expands ${VAR} and ${VAR:-default}; "$${" is a literal "${". Returns NULL with err set
 * when a variable is unset and has no default. */
static char *interpolate(sl_arena *a, const char *s, const char *where, char *err, size_t errlen)
{
    if (!strchr(s, '$'))
        return arena_strdup(a, s);
    sl_buf out = {0};
    for (const char *p = s; *p;) {
        if (p[0] == '$' && p[1] == '$' && p[2] == '{') {
            buf_put(&out, "${", 2);
            p += 3;
            continue;
        }
        if (p[0] == '$' && p[1] == '{') {
            const char *end = strchr(p + 2, '}');
            if (!end) {
                snprintf(err, errlen, "%s: unterminated ${ in \"%s\"", where, s);
                buf_free(&out);
                return NULL;
            }
            char *name = xstrndup(p + 2, (size_t)(end - p - 2));
            char *dflt = strstr(name, ":-");
            if (dflt) { *dflt = 0; dflt += 2; }
            const char *val = getenv(name);
            if (!val || (!*val && dflt)) val = dflt;
            if (!val) {
                snprintf(err, errlen, "%s: environment variable %s is not set (use ${%s:-default})",
                         where, name, name);
                free(name);
                buf_free(&out);
                return NULL;
            }
            buf_puts(&out, val);
            free(name);
            p = end + 1;
            continue;
        }
        buf_put(&out, p, 1);
        p++;
    }
    char *r = arena_strdup(a, buf_cstr(&out));
    buf_free(&out);
    return r;
}

static ynode *convert(ytree *t, yaml_document_t *doc, yaml_node_t *yn, int depth, char *err,
                      size_t errlen)
{
    if (depth > 64) {
        snprintf(err, errlen, "%s:%zu:%zu: nesting too deep", t->file, yn->start_mark.line + 1,
                 yn->start_mark.column + 1);
        return NULL;
    }
    ynode *n = arena_alloc(&t->arena, sizeof *n);
    memset(n, 0, sizeof *n);
    n->line = (int)yn->start_mark.line + 1;
    n->col = (int)yn->start_mark.column + 1;
    n->file = t->file;
    char where[512];
    snprintf(where, sizeof where, "%s:%d:%d", t->file, n->line, n->col);
    switch (yn->type) {
    case YAML_SCALAR_NODE:
        n->kind = YN_SCALAR;
        n->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        n->str = interpolate(&t->arena, (const char *)yn->data.scalar.value, where, err, errlen);
        return n->str ? n : NULL;
    case YAML_SEQUENCE_NODE: {
        n->kind = YN_SEQ;
        yaml_node_item_t *it = yn->data.sequence.items.start;
        n->n = (size_t)(yn->data.sequence.items.top - it);
        n->items = arena_alloc(&t->arena, n->n * sizeof *n->items);
        for (size_t i = 0; i < n->n; i++)
            if (!(n->items[i] = convert(t, doc, yaml_document_get_node(doc, it[i]), depth + 1, err, errlen)))
                return NULL;
        return n;
    }
    case YAML_MAPPING_NODE: {
        n->kind = YN_MAP;
        yaml_node_pair_t *pr = yn->data.mapping.pairs.start;
        n->n = (size_t)(yn->data.mapping.pairs.top - pr);
        n->items = arena_alloc(&t->arena, n->n * sizeof *n->items);
        n->keys = arena_alloc(&t->arena, n->n * sizeof *n->keys);
        for (size_t i = 0; i < n->n; i++) {
            yaml_node_t *k = yaml_document_get_node(doc, pr[i].key);
            if (!(n->keys[i] = convert(t, doc, k, depth + 1, err, errlen))) return NULL;
            if (n->keys[i]->kind != YN_SCALAR) {
                snprintf(err, errlen, "%s:%d:%d: a map key must be a plain string", t->file,
                         n->keys[i]->line, n->keys[i]->col);
                return NULL;
            }
            for (size_t j = 0; j < i; j++)
                if (strcmp(n->keys[j]->str, n->keys[i]->str) == 0) {
                    snprintf(err, errlen, "%s:%d:%d: duplicate key '%s' (first at line %d)",
                             t->file, n->keys[i]->line, n->keys[i]->col, n->keys[i]->str,
                             n->keys[j]->line);
                    return NULL;
                }
            if (!(n->items[i] = convert(t, doc, yaml_document_get_node(doc, pr[i].value), depth + 1, err, errlen)))
                return NULL;
        }
        return n;
    }
    default:
        snprintf(err, errlen, "%s: empty YAML node", where);
        return NULL;
    }
}

ytree *ytree_load(const char *path, const char *text, char *err, size_t errlen)
{
    FILE *f = NULL;
    if (!text && !(f = fopen(path, "rb"))) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    if (f) yaml_parser_set_input_file(&parser, f);
    else yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
    ytree *t = xcalloc(1, sizeof *t);
    t->file = xstrdup(path);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_mark_t m = parser.problem_mark;
        snprintf(err, errlen, "%s:%zu:%zu: YAML syntax error: %s%s%s", path, m.line + 1, m.column + 1,
                 parser.problem ? parser.problem : "unknown",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        if (f) fclose(f);
        ytree_free(t);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        snprintf(err, errlen, "%s:1:1: the file is empty", path);
    } else {
        t->root = convert(t, &doc, root, 0, err, errlen);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    if (f) fclose(f);
    if (!t->root) {
        ytree_free(t);
        return NULL;
    }
    return t;
}

void ytree_free(ytree *t)
{
    if (!t) return;
    arena_free(&t->arena);
    free(t->file);
    free(t);
}

ynode *ynode_get(const ynode *map, const char *key)
{
    if (!map || map->kind != YN_MAP) return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->str, key) == 0) return map->items[i];
    return NULL;
}

const char *ynode_kind_name(const ynode *n)
{
    return n->kind == YN_SCALAR ? "a scalar" : n->kind == YN_SEQ ? "a list" : "a map";
}

/* A plain scalar that YAML would read as a number, bool or null keeps that type in JSON. */
static int plain_json_literal(const char *s)
{
    if (!strcmp(s, "true") || !strcmp(s, "false") || !strcmp(s, "null")) return 1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    return *s && !*end && !errno && isfinite(v) && s[0] != '+' && s[0] != '.' &&
           !(s[0] == '0' && s[1] && s[1] != '.') && !(s[0] == '-' && s[1] == '0' && s[2] && s[2] != '.') &&
           strspn(s, "-0123456789.eE+") == strlen(s);
}

void ynode_to_json(const ynode *n, sl_buf *out)
{
    switch (n->kind) {
    case YN_SCALAR:
        if (n->plain && plain_json_literal(n->str)) buf_puts(out, n->str);
        else if (n->plain && (!strcmp(n->str, "~") || !*n->str)) buf_puts(out, "null");
        else buf_json_str(out, n->str, strlen(n->str));
        break;
    case YN_SEQ:
        buf_puts(out, "[");
        for (size_t i = 0; i < n->n; i++) {
            if (i) buf_puts(out, ",");
            ynode_to_json(n->items[i], out);
        }
        buf_puts(out, "]");
        break;
    case YN_MAP:
        buf_puts(out, "{");
        for (size_t i = 0; i < n->n; i++) {
            if (i) buf_puts(out, ",");
            buf_json_str(out, n->keys[i]->str, strlen(n->keys[i]->str));
            buf_puts(out, ":");
            ynode_to_json(n->items[i], out);
        }
        buf_puts(out, "}");
        break;
    }
}
