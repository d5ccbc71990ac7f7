/* yamltree.h — a YAML document as a small tree that remembers where every node came from,
 * so that every config error can name file:line:column. ${VAR} / ${VAR:-default} are
 * expanded in scalars while loading unless YT_NO_ENV is given; every node keeps the text as
 * written too, so messages never show an expanded value (it may be a secret).
 *
 * Untrusted text (REST bodies) goes through here, so the loader is bounded: at most
 * YT_MAX_BYTES of input, YT_MAX_NODES nodes after alias expansion (a 337-byte alias bomb
 * otherwise expands to hundreds of MB), YT_MAX_DEPTH levels and YT_MAX_KEYS keys per map; the
 * duplicate-key check sorts, so it is O(n log n). */
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
    char *raw;         /* scalar text as written when interpolation changed it, else NULL */
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

#define YT_NO_ENV 0x1u /* leave ${VAR} as written (REST-created text, GET .../config) */
#define YT_MAX_BYTES (1u << 20)
#define YT_MAX_NODES 100000
#define YT_MAX_DEPTH 64
#define YT_MAX_KEYS 10000
/** ytree_load with YT_* flags. */
ytree *ytree_load_opts(const char *path, const char *text, unsigned flags, char *err, size_t errlen);
/** A scalar's text as written (what messages show). */
const char *ynode_text(const ynode *n);
void ytree_free(ytree *t);

/** Map lookup; NULL when absent or n is not a map. */
ynode *ynode_get(const ynode *map, const char *key);
/** The key node of `key` in a map (for messages about the key itself); NULL when absent. */
ynode *ynode_get_key(const ynode *map, const char *key);
const char *ynode_kind_name(const ynode *n);
/** Appends the subtree as JSON text (scalars: plain numbers/true/false/null stay unquoted). */
void ynode_to_json(const ynode *n, sl_buf *out);
#endif
