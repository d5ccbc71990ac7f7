/* record.c — host records: a stage sees the public sl_record, the host keeps parse state and
 * marks next to it. Records of one wave live in the task's slab and arena until the wave ends. */
#include <stdlib.h>
#include <string.h>

#include "json_tree.h"
#include "runtime_int.h"

/* ---- record vectors and the record slab ---------------------------------------------- */

void vec_push(recvec *v, sl_record *r)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? v->cap * 2 : 256;
        v->v = xrealloc(v->v, v->cap * sizeof *v->v);
    }
    v->v[v->n++] = r;
}

hrec *hrec_new(task *t)
{
    if (!t->slab_head || t->slab_head->used == SLAB_CHUNK) {
        slab_chunk *c = t->slab_free;
        if (c) t->slab_free = c->next;
        else c = xmalloc(sizeof *c);
        c->used = 0;
        c->next = t->slab_head;
        t->slab_head = c;
    }
    hrec *h = &t->slab_head->recs[t->slab_head->used++];
    memset(h, 0, sizeof *h);
    h->magic = HREC_MAGIC;
    return h;
}

/* Is `r` one of this wave's host records (as opposed to one a stage built)? The slab chunks
 * bound every host record, so a pointer test suffices. */
hrec *as_hrec(task *t, const sl_record *r)
{
    for (slab_chunk *c = t->slab_head; c; c = c->next) {
        const char *lo = (const char *)&c->recs[0], *hi = (const char *)&c->recs[c->used];
        if ((const char *)r >= lo && (const char *)r < hi &&
            ((size_t)((const char *)r - lo)) % sizeof(hrec) == 0) {
            hrec *h = (hrec *)r;
            return h->magic == HREC_MAGIC ? h : NULL;
        }
    }
    return NULL;
}

/* End of a wave: recycle the record slab and the arena (records, parsed JSON, values). */
void wave_end(task *t)
{
    for (slab_chunk *c = t->slab_head, *n; c; c = n) {
        n = c->next;
        c->next = t->slab_free;
        t->slab_free = c;
    }
    t->slab_head = NULL;
    arena_reset(&t->arena);
    t->wave_now = 0;
}

/* Copies a stage-built record into a host record of this wave. */
hrec *copy_record(task *t, const sl_record *src, sl_ack *ack)
{
    hrec *h = hrec_new(t);
    sl_record *r = &h->r;
    r->key = src->key_len ? arena_memdup(&t->arena, src->key, src->key_len) : NULL;
    r->key_len = src->key_len;
    r->value = arena_memdup(&t->arena, src->value ? src->value : "", src->value_len);
    r->value_len = src->value_len;
    if (src->n_headers) {
        sl_header *hd = arena_alloc(&t->arena, src->n_headers * sizeof *hd);
        for (size_t i = 0; i < src->n_headers; i++) {
            hd[i].name = arena_strdup(&t->arena, src->headers[i].name ? src->headers[i].name : "");
            hd[i].value = arena_memdup(&t->arena, src->headers[i].value ? src->headers[i].value : "",
                                       src->headers[i].value_len);
            hd[i].value_len = src->headers[i].value_len;
        }
        r->headers = hd;
        r->n_headers = src->n_headers;
    }
    r->timestamp_ms = src->timestamp_ms;
    r->topic = arena_strdup(&t->arena, src->topic);
    r->partition = src->partition;
    r->offset = src->offset;
    r->ack = ack;
    return h;
}

/* A source record whose bytes the source keeps valid until the wave is over (emit_borrowed):
 * only the header array is copied (the source may reuse it); key, value, header bytes and
 * topic are referenced. */
hrec *borrow_record(task *t, const sl_record *src, sl_ack *ack)
{
    hrec *h = hrec_new(t);
    h->r = *src;
    if (src->n_headers) {
        sl_header *hd = arena_memdup(&t->arena, src->headers, src->n_headers * sizeof *hd);
        for (size_t i = 0; i < src->n_headers; i++)
            if (!hd[i].name) hd[i].name = "";
        h->r.headers = hd;
    }
    if (!h->r.value) h->r.value = "";
    h->r.ack = ack;
    return h;
}

void materialize(task *t, hrec *h)
{
    if (!h->dirty) return;
    size_t len;
    char *s = jt_print(&t->arena, h->json, h->r.value_len + 64, &len); /* like the tree */
    if (!s) return; /* cannot happen short of a 2 GiB value: the old bytes stay */
    h->r.value = s;
    h->r.value_len = len;
    h->dirty = 0;
}
