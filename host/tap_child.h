/* tap_child.h — the pipeline process's side of `sluice tap` (see host/control/tap.c for the supervisor's).
 *
 * The supervisor sends "T" + a JSON array + "\n" on the control pipe naming the stages to tap and
 * the rate for each ([{"bit":2,"stage":"clean","rate":10}, …]; bit TAP_DEAD for the dead letters;
 * an empty array stops tapping). The task threads test one atomic word per batch: with nobody
 * listening it is 0 and nothing else happens. A tapped batch is sampled (evenly spaced records,
 * at most `rate` per second per stage) into a bounded ring under a mutex; the main thread, which
 * already writes the status line, writes the ring to the status pipe as `{"tap":…}` lines. */
#ifndef SL_HOST_TAP_CHILD_H
#define SL_HOST_TAP_CHILD_H

#include <stdatomic.h>
#include <stdint.h>

#include "runtime_int.h"

#define TAP_DEAD 63 /* the bit for records sent to the dead letter */

extern atomic_uint_fast64_t tap_mask; /* bit i: stage i is tapped */

/** Whether the records leaving stage `i` (TAP_DEAD: rejected ones) are wanted: one relaxed load. */
static inline int tap_wanted(int i)
{
    return i >= 0 && i < 64 && ((atomic_load_explicit(&tap_mask, memory_order_relaxed) >> i) & 1);
}

/** Samples records leaving stage `i` (task thread; only when tap_wanted(i)). */
void tap_records(task *t, int i, const recvec *v);

/** Feeds one control-pipe byte; 1 when it belonged to a tap command (not a pause/resume). */
int tap_control_byte(char c);

/** Writes what was sampled to the status pipe (main thread, like write_status). */
void tap_flush(int status_fd);

#endif
