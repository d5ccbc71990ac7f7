/* sl_partmap.h — per-partition state of a stateful stage, keyed by (topic, partition): the one
 * map dedup and window-kpi keep their partitions in. The values are the stage's own (it frees
 * them); the map owns its copies of the topics. A task owns a few partitions and a batch is
 * mostly one, so the lookup is a remembered last hit, then a scan. Header-only and private to
 * plugins/. */
#ifndef SL_PLUGINS_PARTMAP_H
#define SL_PLUGINS_PARTMAP_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct sl_partmap_ent {
    char *topic; /* NULL when the records carry none (NULL matches only NULL) */
    int32_t partition;
    void *val;
} sl_partmap_ent;

typedef struct sl_partmap {
    sl_partmap_ent *v; /* v[0..n): iterate these for "every partition" */
    size_t n, cap;
    size_t last; /* index of the last hit (valid while < n) */
} sl_partmap;

static inline int sl_partmap_is(const sl_partmap_ent *e, const char *topic, int32_t partition)
{
    return e->partition == partition && (e->topic == topic || (e->topic && topic && strcmp(e->topic, topic) == 0));
}

/* The value of (topic, partition), or NULL. */
static inline void *sl_partmap_find(sl_partmap *m, const char *topic, int32_t partition)
{
    if (m->last < m->n && sl_partmap_is(&m->v[m->last], topic, partition)) return m->v[m->last].val;
    for (size_t i = 0; i < m->n; i++)
        if (sl_partmap_is(&m->v[i], topic, partition)) {
            m->last = i;
            return m->v[i].val;
        }
    return NULL;
}

/* Adds (topic, partition) -> val; the caller has checked it is absent. 0, or -1 out of memory. */
static inline int sl_partmap_add(sl_partmap *m, const char *topic, int32_t partition, void *val)
{
    if (m->n == m->cap) {
        size_t cap = m->cap ? 2 * m->cap : 8;
        sl_partmap_ent *v = (sl_partmap_ent *)realloc(m->v, cap * sizeof *v);
        if (!v) return -1;
        m->v = v;
        m->cap = cap;
    }
    char *t = topic ? strdup(topic) : NULL;
    if (topic && !t) return -1;
    m->v[m->n] = (sl_partmap_ent){t, partition, val};
    m->last = m->n++;
    return 0;
}

/* Takes (topic, partition) out and returns its value for the caller to free; NULL if absent. */
static inline void *sl_partmap_take(sl_partmap *m, const char *topic, int32_t partition)
{
    for (size_t i = 0; i < m->n; i++)
        if (sl_partmap_is(&m->v[i], topic, partition)) {
            void *val = m->v[i].val;
            free(m->v[i].topic);
            m->v[i] = m->v[--m->n];
            return val;
        }
    return NULL;
}

/* Frees the map (not the values: take or iterate them first). */
static inline void sl_partmap_free(sl_partmap *m)
{
    for (size_t i = 0; i < m->n; i++) free(m->v[i].topic);
    free(m->v);
    *m = (sl_partmap){0};
}

#endif
