/* yamltree.h — a YAML document as a small tree that remembers where every node came from,
 * so that every config error can name file:line:column. ${VAR} / ${VAR:-default} are
 * expanded in scalars while loading. */
#ifndef SL_HOST_YAMLTREE_H
#define SL_HOST_YAMLTREE_H

#include <stddef.h>

#include "util.h"

typedef enum { YN_SCALAR, YN_SEQ, YN_MAP } yn_kind;

typedef struct ynode {
    yn_kind kind;
    int line, col;     /* 1-based */
    const char *file;  /* borrowed from the tree */
    char *str;         /* scalar text, after interpolation */
    int plain;         /* scalar was unquoted (so `123` is a number in JSON output) */
    size_t n;          /* seq items or map pairs */
    struct ynode **items; /* seq: items; map: values */
    struct ynode **keys;  /* map: keys (scalars) */
} ynode;

typedef struct ytree {
    ynode *root;
    char *file;
    sl_arena arena;
} ytree;

/** Loads `path` (or `text` when not NULL, reported as `path`). On error returns NULL and
 *  writes "file:line:col: message" into err. */
ytree *ytree_load(const char *path, const char *text, char *err, size_t errlen);
void ytree_free(ytree *t);

/** Map lookup; NULL when absent or n is not a map. */
ynode *ynode_get(const ynode *map, const char *key);
const char *ynode_kind_name(const ynode *n);
/** Appends the subtree as JSON text (scalars: plain numbers/true/false/null stay unquoted). */
void ynode_to_json(const ynode *n, sl_buf *out);
#endif
