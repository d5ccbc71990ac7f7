/* delivered.c — `count_after: durable`: a record counts only once its passthrough copy is durable.
 *
 * process() extracts the record's contribution into its partition's FIFO, holds the input,
 * watches it (api->watch, ABI 1.2) and emits it. When every copy downstream is finished the host
 * calls on_finished(cookie, rejected): the entry is marked, and the FIFO is applied from its
 * head while the head is marked, so contributions are applied in source offset order. A
 * rejected copy (a sink refused the row, it went to the dead letter) is not counted. An applied
 * input joins the partition's ack group (as at process time), so it stays unfinished until the
 * rows of the next cycle are durable too. The partition's window clock (max_ts) moves with what
 * is applied, so windows do not close before the contributions that precede them count. */
#include "window.h"

#include <stdlib.h>
#include <string.h>

#define SEQ_BITS 40

static contrib *entry(const wstage *k, const part *p, size_t i)
{
    return (contrib *)(p->q + ((p->q_head + i) % p->q_cap) * k->contrib_size);
}

contrib *w_queue_push(wstage *k, part *p, uint64_t *cookie)
{
    if (p->q_n == p->q_cap) {
        size_t cap = p->q_cap ? p->q_cap * 2 : 256;
        char *q = malloc(cap * k->contrib_size);
        if (!q)
            return NULL;
        for (size_t i = 0; i < p->q_n; i++) /* unwrap */
            memcpy(q + i * k->contrib_size, entry(k, p, i), k->contrib_size);
        free(p->q);
        p->q = q;
        p->q_cap = cap;
        p->q_head = 0;
    }
    *cookie = p->id << SEQ_BITS | ((p->q_seq0 + p->q_n) & ((1ULL << SEQ_BITS) - 1));
    contrib *c = entry(k, p, p->q_n++);
    c->done = c->rejected = false;
    c->held = NULL;
    return c;
}

sl_err w_finished(wstage *k, sl_ctx *ctx, uint64_t cookie, int rejected)
{
    const sl_api *api = k->api;
    uint64_t id = cookie >> SEQ_BITS, seq = cookie & ((1ULL << SEQ_BITS) - 1);
    part *p = NULL;
    for (size_t i = 0; i < k->n_parts && !p; i++)
        if (k->parts[i]->id == id)
            p = k->parts[i];
    if (!p)
        return SL_OK; /* a partition revoked meanwhile: what it counted comes back by restore */
    uint64_t i = (seq - p->q_seq0) & ((1ULL << SEQ_BITS) - 1);
    if (i >= p->q_n)
        return SL_OK;
    contrib *c = entry(k, p, i);
    c->done = true;
    c->rejected = rejected != 0;
    uint64_t not_counted = 0;
    while (p->q_n && (c = entry(k, p, 0))->done) {
        if (!c->rejected) {
            if (!w_apply(k, p, c))
                return SL_ENOMEM;
            if (c->held) {
                if (!p->group && !(p->group = api->ack_group(ctx)))
                    return SL_ENOMEM;
                api->ack_group_add(p->group, c->held);
            }
        } else {
            not_counted++;
        }
        if (c->held)
            api->release(c->held);
        c->held = NULL;
        p->q_head = (p->q_head + 1) % p->q_cap;
        p->q_n--;
        p->q_seq0++;
    }
    if (not_counted)
        api->count(ctx, "refused_downstream", not_counted);
    return SL_OK;
}
