/* tap_child.c — sampling records for `sluice tap` inside the pipeline process (tap_child.h). */
#include "tap_child.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "jsoncheck.h"
#include "log.h"

#define RING 256            /* sampled records waiting for the main thread */
#define MAX_VALUE (8 << 10) /* longer values are cut (and marked) */
#define MAX_RATE 1000

atomic_uint_fast64_t tap_mask;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    double rate, tokens; /* a token bucket per tapped stage: records per second */
    int64_t last_ms;
} bucket[64];
static char *ring[RING];
static size_t ring_head, ring_n;
static unsigned long long lost; /* sampled but pushed out of a full ring */

static void put_bytes(sl_buf *b, const void *p, size_t n, int json_ok)
{
    size_t m = n > MAX_VALUE ? MAX_VALUE : n;
    if (json_ok && m == n && n && !sl_json_strict(p, n)) {
        /* A JSON value stays one. A line break in valid JSON is only whitespace between tokens
         * (inside strings it is escaped), and the line must stay one line. */
        size_t at = b->len;
        buf_put(b, p, n);
        for (size_t k = at; k < b->len; k++)
            if (b->data[k] == '\n' || b->data[k] == '\r') b->data[k] = ' ';
    } else {
        buf_json_str(b, p, m);
    }
}

static char *format(task *t, int i, sl_record *r)
{
    sl_buf b = {0};
    hrec *h = as_hrec(t, r);
    if (h && h->dirty) materialize(t, h); /* the value as the next stage would see it */
    const char *stage = i == TAP_DEAD ? "" : t->cfg->stages[i].name;
    buf_puts(&b, "{\"tap\":");
    buf_json_str(&b, stage, strlen(stage));
    buf_printf(&b, ",\"bit\":%d,\"task\":%d,\"rec\":{\"topic\":", i, t->index);
    if (r->topic) buf_json_str(&b, r->topic, strlen(r->topic));
    else buf_puts(&b, "null");
    buf_printf(&b, ",\"partition\":%d,\"offset\":%lld,\"timestamp\":%lld,\"key\":", (int)r->partition,
               (long long)r->offset, (long long)r->timestamp_ms);
    if (r->key) put_bytes(&b, r->key, r->key_len, 0);
    else buf_puts(&b, "null");
    buf_puts(&b, ",\"value\":");
    if (r->value) put_bytes(&b, r->value, r->value_len, 1);
    else buf_puts(&b, "null");
    if (r->value_len > MAX_VALUE) buf_printf(&b, ",\"truncated\":%zu", r->value_len);
    buf_puts(&b, ",\"headers\":{");
    for (size_t k = 0; k < r->n_headers; k++) {
        if (k) buf_puts(&b, ",");
        buf_json_str(&b, r->headers[k].name, strlen(r->headers[k].name));
        buf_puts(&b, ":");
        put_bytes(&b, r->headers[k].value, r->headers[k].value_len, 0);
    }
    buf_puts(&b, "}}");
    if (i == TAP_DEAD && h) {
        const char *by = h->rejected_by && h->rejected_by->cfg ? h->rejected_by->cfg->name : "";
        const char *why = h->reason ? h->reason : "";
        buf_puts(&b, ",\"stage\":");
        buf_json_str(&b, by, strlen(by));
        buf_puts(&b, ",\"reason\":");
        buf_json_str(&b, why, strlen(why));
    }
    buf_puts(&b, "}\n");
    buf_cstr(&b);
    return b.data;
}

void tap_records(task *t, int i, const recvec *v)
{
    if (!v->n || i < 0 || i > TAP_DEAD || (i != TAP_DEAD && (size_t)i >= t->nstages)) return;
    int64_t now = sl_monotonic_ms();
    pthread_mutex_lock(&lock);
    double rate = bucket[i].rate;
    /* Refill; a burst is at most one second's worth (at least one record). */
    double cap = rate < 1 ? 1 : rate;
    bucket[i].tokens += rate * (double)(now - bucket[i].last_ms) / 1000.0;
    if (bucket[i].tokens > cap) bucket[i].tokens = cap;
    bucket[i].last_ms = now;
    size_t take = bucket[i].tokens >= 1 ? (size_t)floor(bucket[i].tokens) : 0;
    if (take > v->n) take = v->n;
    bucket[i].tokens -= (double)take;
    pthread_mutex_unlock(&lock);
    /* Evenly spaced over the batch, so a sample is not just the head of every batch. Formatted
     * outside the lock: only the task thread touches its records. */
    for (size_t k = 0; k < take; k++) {
        char *line = format(t, i, v->v[k * v->n / take]);
        pthread_mutex_lock(&lock);
        if (ring_n == RING) { /* the oldest goes: a tap is a sample, never backpressure */
            free(ring[ring_head]);
            ring_head = (ring_head + 1) % RING;
            ring_n--;
            lost++;
        }
        ring[(ring_head + ring_n++) % RING] = line;
        pthread_mutex_unlock(&lock);
    }
}

/* ---- control: "T[...]\n" ------------------------------------------------------------------ */

static sl_buf cmd;
static int in_cmd;

static void apply(const char *text)
{
    cJSON *j = cJSON_Parse(text);
    uint64_t mask = 0;
    int64_t now = sl_monotonic_ms();
    pthread_mutex_lock(&lock);
    const cJSON *e;
    cJSON_ArrayForEach(e, j)
    {
        const cJSON *bit = cJSON_GetObjectItemCaseSensitive(e, "bit"), *rate = cJSON_GetObjectItemCaseSensitive(e, "rate");
        if (!cJSON_IsNumber(bit) || bit->valueint < 0 || bit->valueint > TAP_DEAD) continue;
        int i = bit->valueint;
        double r = cJSON_IsNumber(rate) ? rate->valuedouble : 10;
        if (!(r > 0)) r = 10;
        if (r > MAX_RATE) r = MAX_RATE;
        if (!((mask >> i) & 1)) bucket[i].tokens = 1; /* the first record shows at once */
        bucket[i].rate = r;
        bucket[i].last_ms = now;
        mask |= (uint64_t)1 << i;
    }
    pthread_mutex_unlock(&lock);
    cJSON_Delete(j);
    uint64_t was = atomic_exchange(&tap_mask, mask);
    /* Said once per change, so an operator (and the tests) can see that sampling stops. */
    if (mask && !was) sl_log(SL_LOG_INFO, NULL, "tap: sampling started");
    else if (!mask && was) sl_log(SL_LOG_INFO, NULL, "tap: sampling stopped (nobody listens)");
}

int tap_control_byte(char c)
{
    if (!in_cmd) {
        if (c != 'T') return 0;
        in_cmd = 1;
        cmd.len = 0;
        return 1;
    }
    if (c == '\n') {
        in_cmd = 0;
        apply(buf_cstr(&cmd));
        return 1;
    }
    if (cmd.len < (64u << 10)) buf_put(&cmd, &c, 1);
    return 1;
}

void tap_flush(int fd)
{
    if (!ring_n && !lost) return; /* unlocked peek: a miss is caught on the next turn */
    char *batch[RING];
    size_t n = 0;
    unsigned long long l;
    pthread_mutex_lock(&lock);
    while (ring_n) {
        batch[n++] = ring[ring_head];
        ring_head = (ring_head + 1) % RING;
        ring_n--;
    }
    l = lost;
    lost = 0;
    pthread_mutex_unlock(&lock);
    for (size_t k = 0; k < n; k++) {
        size_t len = strlen(batch[k]), off = 0;
        while (off < len) {
            ssize_t w = write(fd, batch[k] + off, len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) break;
            off += (size_t)w;
        }
        free(batch[k]);
    }
    if (l) {
        char line[96];
        int m = snprintf(line, sizeof line, "{\"tap\":\"\",\"lost\":%llu}\n", l);
        if (write(fd, line, (size_t)m) < 0) { /* the supervisor is gone; nothing to tell */
        }
    }
}
