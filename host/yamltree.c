#include "yamltree.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
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

typedef struct load_ctx {
    ytree *t;
    yaml_document_t *doc;
    unsigned flags;
    size_t nodes;
    char *err;
    size_t errlen;
} load_ctx;

typedef struct key_ref {
    const char *str;
    size_t i;
} key_ref;

static int cmp_key(const void *a, const void *b)
{
    const key_ref *x = a, *y = b;
    int c = strcmp(x->str, y->str);
    return c ? c : x->i < y->i ? -1 : x->i > y->i;
}

/* Duplicate keys of a map, found by sorting (a 20,000-key body must not cost n^2). Reports the
 * duplicate that comes first in the document. */
static int check_duplicates(load_ctx *c, const ynode *n)
{
    if (n->n < 2) return 0;
    key_ref *r = xcalloc(n->n, sizeof *r);
    for (size_t i = 0; i < n->n; i++) r[i] = (key_ref){n->keys[i]->str, i};
    qsort(r, n->n, sizeof *r, cmp_key);
    size_t dup = SIZE_MAX, first = 0;
    for (size_t i = 1; i < n->n; i++)
        if (!strcmp(r[i].str, r[i - 1].str) && r[i].i < dup) {
            size_t j = i - 1;
            while (j > 0 && !strcmp(r[j - 1].str, r[i].str)) j--;
            dup = r[i].i;
            first = r[j].i;
        }
    free(r);
    if (dup == SIZE_MAX) return 0;
    const ynode *k = n->keys[dup];
    snprintf(c->err, c->errlen, "%s:%d:%d: duplicate key '%s' (first at line %d)", c->t->file, k->line, k->col,
             ynode_text(k), n->keys[first]->line);
    return -1;
}

static ynode *convert(load_ctx *c, yaml_node_t *yn, int depth)
{
    ytree *t = c->t;
    char *err = c->err;
    size_t errlen = c->errlen;
    if (!yn) {
        snprintf(err, errlen, "%s: dangling YAML node", t->file);
        return NULL;
    }
    if (depth > YT_MAX_DEPTH) {
        snprintf(err, errlen, "%s:%zu:%zu: nesting deeper than %d levels", t->file, yn->start_mark.line + 1,
                 yn->start_mark.column + 1, YT_MAX_DEPTH);
        return NULL;
    }
    /* Aliases are expanded into copies here: count every copy, so a small alias bomb ends
     * with a message instead of eating memory. */
    if (++c->nodes > YT_MAX_NODES) {
        snprintf(err, errlen, "%s:%zu:%zu: more than %d YAML nodes (after expanding aliases)", t->file,
                 yn->start_mark.line + 1, yn->start_mark.column + 1, YT_MAX_NODES);
        return NULL;
    }
    ynode *n = arena_alloc(&t->arena, sizeof *n);
    memset(n, 0, sizeof *n);
    n->line = (int)yn->start_mark.line + 1;
    n->col = (int)yn->start_mark.column + 1;
    n->file = t->file;
    switch (yn->type) {
    case YAML_SCALAR_NODE: {
        n->kind = YN_SCALAR;
        n->plain = yn->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
        const char *text = (const char *)yn->data.scalar.value;
        if (strlen(text) != yn->data.scalar.length) {
            snprintf(err, errlen, "%s:%d:%d: NUL character in a scalar", t->file, n->line, n->col);
            return NULL;
        }
        if (c->flags & YT_NO_ENV) {
            n->str = arena_strdup(&t->arena, text);
            return n;
        }
        char where[512];
        snprintf(where, sizeof where, "%s:%d:%d", t->file, n->line, n->col);
        n->str = interpolate(&t->arena, text, where, err, errlen);
        if (n->str && strcmp(n->str, text)) n->raw = arena_strdup(&t->arena, text);
        return n->str ? n : NULL;
    }
    case YAML_SEQUENCE_NODE: {
        n->kind = YN_SEQ;
        yaml_node_item_t *it = yn->data.sequence.items.start;
        n->n = (size_t)(yn->data.sequence.items.top - it);
        n->items = arena_alloc(&t->arena, (n->n ? n->n : 1) * sizeof *n->items);
        for (size_t i = 0; i < n->n; i++)
            if (!(n->items[i] = convert(c, yaml_document_get_node(c->doc, it[i]), depth + 1))) return NULL;
        return n;
    }
    case YAML_MAPPING_NODE: {
        n->kind = YN_MAP;
        yaml_node_pair_t *pr = yn->data.mapping.pairs.start;
        n->n = (size_t)(yn->data.mapping.pairs.top - pr);
        if (n->n > YT_MAX_KEYS) {
            snprintf(err, errlen, "%s:%d:%d: a map with %zu keys (at most %d)", t->file, n->line, n->col, n->n,
                     YT_MAX_KEYS);
            return NULL;
        }
        n->items = arena_alloc(&t->arena, (n->n ? n->n : 1) * sizeof *n->items);
        n->keys = arena_alloc(&t->arena, (n->n ? n->n : 1) * sizeof *n->keys);
        for (size_t i = 0; i < n->n; i++) {
            yaml_node_t *k = yaml_document_get_node(c->doc, pr[i].key);
            if (!(n->keys[i] = convert(c, k, depth + 1))) return NULL;
            if (n->keys[i]->kind != YN_SCALAR) {
                snprintf(err, errlen, "%s:%d:%d: a map key must be a plain string", t->file,
                         n->keys[i]->line, n->keys[i]->col);
                return NULL;
            }
        }
        if (check_duplicates(c, n)) return NULL;
        for (size_t i = 0; i < n->n; i++)
            if (!(n->items[i] = convert(c, yaml_document_get_node(c->doc, pr[i].value), depth + 1))) return NULL;
        return n;
    }
    default:
        snprintf(err, errlen, "%s:%d:%d: empty YAML node", t->file, n->line, n->col);
        return NULL;
    }
}

/* Reads a regular file of at most YT_MAX_BYTES without ever blocking: a FIFO or device
 * dropped where a config is expected is refused, not opened for reading. */
static char *read_config_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(err, errlen, "%s: not a regular file", path);
        close(fd);
        return NULL;
    }
    if (st.st_size > (off_t)YT_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes", path, YT_MAX_BYTES);
        close(fd);
        return NULL;
    }
    sl_buf b = {0};
    char chunk[8192];
    ssize_t r;
    while ((r = read(fd, chunk, sizeof chunk)) > 0) {
        buf_put(&b, chunk, (size_t)r);
        if (b.len > YT_MAX_BYTES) break;
    }
    close(fd);
    if (r < 0 || b.len > YT_MAX_BYTES) {
        snprintf(err, errlen, "%s: %s", path, r < 0 ? strerror(errno) : "too large");
        buf_free(&b);
        return NULL;
    }
    buf_cstr(&b);
    return b.data ? b.data : xstrdup("");
}

ytree *ytree_load(const char *path, const char *text, char *err, size_t errlen)
{
    return ytree_load_opts(path, text, 0, err, errlen);
}

ytree *ytree_load_opts(const char *path, const char *text, unsigned flags, char *err, size_t errlen)
{
    char *owned = NULL;
    if (!text && !(text = owned = read_config_file(path, err, errlen))) return NULL;
    size_t len = strlen(text);
    if (len > YT_MAX_BYTES) {
        snprintf(err, errlen, "%s: larger than %u bytes", path, YT_MAX_BYTES);
        free(owned);
        return NULL;
    }
    yaml_parser_t parser;
    yaml_document_t doc;
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    ytree *t = xcalloc(1, sizeof *t);
    t->file = xstrdup(path);
    if (!yaml_parser_load(&parser, &doc)) {
        yaml_mark_t m = parser.problem_mark;
        snprintf(err, errlen, "%s:%zu:%zu: YAML syntax error: %s%s%s", path, m.line + 1, m.column + 1,
                 parser.problem ? parser.problem : "unknown",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        free(owned);
        ytree_free(t);
        return NULL;
    }
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root) {
        snprintf(err, errlen, "%s:1:1: the file is empty", path);
    } else {
        load_ctx c = {.t = t, .doc = &doc, .flags = flags, .err = err, .errlen = errlen};
        t->root = convert(&c, root, 0);
    }
    yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    free(owned);
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

const char *ynode_text(const ynode *n) { return n->raw ? n->raw : n->str ? n->str : ""; }

ynode *ynode_get_key(const ynode *map, const char *key)
{
    if (!map || map->kind != YN_MAP) return NULL;
    for (size_t i = 0; i < map->n; i++)
        if (strcmp(map->keys[i]->str, key) == 0) return map->keys[i];
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
