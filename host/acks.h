/* acks.h — acknowledgement tracking: which source positions may be committed.
 *
 * Every record from a source gets a token (sl_ack) for its (topic, partition, offset). A token
 * is reference-counted: the record in a stage's input holds one, a forwarded copy another, a
 * sink's hold() another. When the count reaches zero the position is finished. Per partition
 * the tokens form a FIFO in emission order; the committable offset is the offset of the last
 * token before the first unfinished one. So acks may arrive in any order, from any thread, and
 * the committed offset never passes an unfinished record.
 *
 * A group token holds references on its members and releases them when it is finished itself,
 * so one aggregate record can stand for many inputs. */
#ifndef SL_HOST_ACKS_H
#define SL_HOST_ACKS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "sluice/stage.h"

typedef struct ack_partition ack_partition;

typedef struct ack_tracker {
    pthread_mutex_t lock;  /* guards the partition table (not the FIFOs) */
    ack_partition **parts;
    size_t nparts;
    ack_partition **detached; /* revoked with tokens still out: freed at destroy */
    size_t ndetached;
} ack_tracker;

void ack_tracker_init(ack_tracker *t);
void ack_tracker_destroy(ack_tracker *t);

/** The partition entry for (topic, partition), created on first use. topic may be NULL. */
ack_partition *ack_partition_get(ack_tracker *t, const char *topic, int32_t partition);

/** Is p the entry of (topic, partition)? */
int ack_partition_is(const ack_partition *p, const char *topic, int32_t partition);

/** A new token for a record at `offset` (offsets must not decrease within a partition);
 *  returned with one reference. */
sl_ack *ack_new(ack_partition *p, int64_t offset);
sl_ack *ack_group_new(ack_tracker *t);
void ack_group_add(sl_ack *group, sl_ack *member);
/** Called (from the thread that finishes the group) when group `g` is finished, before its
 *  members are released; `rejected` is 1 if ack_mark_rejected was called on it. */
typedef void (*ack_watch_fn)(void *arg, void *cookie, int rejected);
void ack_group_watch(sl_ack *g, ack_watch_fn fn, void *arg, void *cookie);
/** A record anchored to `a` went to the dead letter (no-op unless `a` is a group). */
void ack_mark_rejected(sl_ack *a);
void ack_retain(sl_ack *a);
void ack_release(sl_ack *a);

/** Partitions whose committable offset moved since the last call: fills up to `max` positions
 *  (topic strings stay valid while the tracker lives) and returns how many. */
size_t ack_take_commits(ack_tracker *t, sl_position *out, size_t max);
/** Committable offset of one partition, or -1 if nothing finished yet. */
int64_t ack_committed(ack_partition *p);
long ack_pending(ack_tracker *t);

/** After a revoke: takes (topic, partition) out of the tracker. Tokens still out may be released
 *  later (from any thread) but no longer count as pending, never move a commit and never block
 *  a new entry for the same partition (created by the next ack_partition_get, on reassignment).
 *  Returns how many tokens were still unfinished. */
long ack_partition_detach(ack_tracker *t, const char *topic, int32_t partition);

#endif
