/* json_tree.h — the host's JSON trees: cJSON nodes built in an arena by the host's own parser.
 *
 * Why not cJSON_Parse: cJSON allocates through process-wide hooks, so pointing them at a task's
 * arena (as the host once did) also hands arena memory to any stage that keeps its own cJSON
 * tree past a batch. This parser allocates from the arena it is given and nothing else, reads
 * plain decimals without strtod, and records each member's key length and hash so stages can
 * look members up without strcmp. The nodes are ordinary cJSON nodes (cJSON's read and print
 * functions work on them); they are never freed one by one, only with their arena.
 */
#ifndef SL_JSON_TREE_H
#define SL_JSON_TREE_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

typedef struct jnode {
    cJSON c;           /* first: a jnode * is a cJSON * */
    uint64_t khash;    /* member of an object: jt_hash of its key */
    uint32_t klen;     /* ... and the key's length */
    uint32_t len;      /* string: the value's length; number: length of `text`, if kept */
    const char *text;  /* number: its literal when the double may not hold it exactly (an
                          integer of 2^53 or more, or a form the fast path does not read) */
} jnode;

/** The key hash the nodes carry (stages get it via api->json_key_init). Not seeded: it is
 *  for comparing keys quickly, never for tables that untrusted keys can fill. */
uint64_t jt_hash(const void *p, size_t n);

/** Parses [p, p+len) (one JSON value, whitespace around it allowed) into `a`; NULL if it is
 *  not JSON. Meant for text that passed sl_json_strict, but safe on any input. */
cJSON *jt_parse(sl_arena *a, const char *p, size_t len);

/** Parses and checks in one pass: a tree only for text sl_json_strict accepts, built as
 *  jt_parse builds it. NULL may also mean "not decided here" (an object of more than 16
 *  members, say): then run sl_json_strict for the verdict and its reason, and jt_parse. */
cJSON *jt_parse_strict(sl_arena *a, const char *p, size_t len);

/** New nodes in `a` (strings copied). */
cJSON *jt_string(sl_arena *a, const char *s, size_t len);
cJSON *jt_number(sl_arena *a, double v);
cJSON *jt_literal(sl_arena *a, int cjson_type); /* cJSON_NULL, cJSON_True, cJSON_False */

/** A deep copy of `src` (a node of a tree built here) in `a`; its strings are shared. */
cJSON *jt_copy(sl_arena *a, const cJSON *src);

/** Sets member `key` of object `obj` to `item` (replacing an existing one in place, else
 *  appending); the key is copied into `a`. Nothing is freed. */
void jt_set(sl_arena *a, cJSON *obj, const char *key, cJSON *item);

/** The text of `node` (unformatted, NUL-terminated) in `a`; NULL if it cannot be printed. */
char *jt_print(sl_arena *a, const cJSON *node, size_t size_hint, size_t *len);

#endif
