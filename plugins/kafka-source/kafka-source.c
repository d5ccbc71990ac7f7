/*
 * kafka-source — a Kafka consumer-group member that commits only what the host says is done.
 *
 * Auto commit and auto offset store are off. The host hands commit() "the last offset of each
 * partition such that it and all earlier ones are finished"; we commit that + 1 (Kafka's
 * committed offset is the next one to read). So a stop, a crash or a rebalance never commits
 * past an unfinished record: at-least-once.
 *
 * Rebalancing is eager by default (librdkafka's range,roundrobin assignors): on a rebalance
 * every partition is revoked, the host drains the chain and commits synchronously from inside
 * our rebalance callback, then the new assignment comes. With the cooperative-sticky assignor
 * (rdkafka: {partition.assignment.strategy: cooperative-sticky}) only the partitions that move
 * are revoked (the same drain and commit, for them) and added partitions come on top of the
 * ones kept (rd_kafka_incremental_assign/unassign): the others keep flowing while a member
 * joins or leaves. The stages' on_assign/on_revoke are per partition either way. The rebalance
 * callback fires inside rd_kafka_consumer_poll, which we only call from poll(), i.e. in the
 * task thread.
 *
 * On assignment we read the committed offsets, tell the host (api->partitions_assigned) and
 * start each partition where a stage says (a sink that keeps its own offsets may overwrite
 * them), else at the committed offset, else at `start` (set explicitly, not through
 * auto.offset.reset). auto.offset.reset is "error": a committed or current offset the broker
 * no longer has (retention, deleted records, a recreated topic) means records were skipped;
 * that is an error log and the `offset_resets` counter, and the partition goes on at `start`.
 *
 * About once a second poll() hands the host each assigned partition's end (high watermark) with
 * api->report_end_offsets (ABI 1.8), from which it reports consumer lag. The ends come from
 * librdkafka's cache (updated by every fetch response): no broker round trip.
 */
#include <sluice/stage.h>

#include <librdkafka/rdkafka.h>

#include "../common/sl_rdkafka_policy.h"
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct kc_config {
    char *brokers;
    sl_list topics;
    char *group;
    int start; /* 0 earliest, 1 latest */
    sl_map rdkafka;
    int64_t commit_timeout_ms;
} kc_config;

typedef struct kc {
    const sl_api *api;
    sl_ctx *ctx;
    const kc_config *cfg;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue; /* the consumer queue (messages and rebalance events) */
    sl_header *hdrs; /* scratch for one record's headers */
    size_t hdr_cap;
    int paused;
    int in_rebalance; /* commits inside the rebalance callback must be synchronous */
    int closing;      /* close(): the host is gone, the callback only hands partitions back */
    int failed;       /* an assignment could not be set up: the next poll stops the pipeline */
    int cooperative;  /* the group's rebalance protocol is COOPERATIVE (incremental) */
    rd_kafka_topic_partition_list_t *started; /* eager: the last assignment, with start offsets */
    /* Messages whose bytes the host references (api->emit_borrowed): destroyed when the next
     * poll with max > 0 starts (the host is then done with them), or at close. */
    rd_kafka_message_t **lent;
    size_t n_lent, cap_lent;
    int64_t ends_at_ms; /* when the partition ends were last reported (monotonic) */
} kc;

/* ---- helpers ------------------------------------------------------------------------- */

static sl_position *positions_of(const rd_kafka_topic_partition_list_t *l)
{
    sl_position *p = calloc(l->cnt ? (size_t)l->cnt : 1, sizeof(*p));
    if (!p)
        return NULL;
    for (int i = 0; i < l->cnt; i++)
        p[i] = (sl_position){l->elems[i].topic, l->elems[i].partition, -1};
    return p;
}

/* Add (cooperative) or set (eager) the assignment; NULL parts: give everything up. */
static rd_kafka_resp_err_t set_assignment(kc *s, rd_kafka_topic_partition_list_t *parts, int add)
{
    if (!s->cooperative)
        return rd_kafka_assign(s->rk, add ? parts : NULL);
    rd_kafka_error_t *e = add ? rd_kafka_incremental_assign(s->rk, parts)
                              : rd_kafka_incremental_unassign(s->rk, parts);
    rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (e)
        rd_kafka_error_destroy(e);
    return err;
}

static int64_t start_offset(const kc *s)
{
    return s->cfg->start ? RD_KAFKA_OFFSET_END : RD_KAFKA_OFFSET_BEGINNING;
}

static void assigned(kc *s, rd_kafka_topic_partition_list_t *parts)
{
    const sl_api *api = s->api;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    for (int attempt = 0; attempt < 3; attempt++) {
        err = rd_kafka_committed(s->rk, parts, (int)s->cfg->commit_timeout_ms);
        if (!err) break;
        api->log(s->ctx, SL_LOG_WARN, "reading committed offsets: %s%s", rd_kafka_err2str(err),
                 attempt < 2 ? "; retrying" : "");
    }
    if (err) {
        /* Stages restore per-partition state as of the committed offset; telling them a wrong
         * one (or none) would let a replayed duplicate through. Stop instead: the supervisor
         * restarts the pipeline, which asks again. */
        api->log(s->ctx, SL_LOG_ERROR, "cannot read committed offsets: %s; stopping", rd_kafka_err2str(err));
        s->failed = 1;
        /* Cooperative: librdkafka insists the partitions be taken; paused, nothing is read
         * before the pipeline stops (poll drops what comes once failed is set). */
        if (s->cooperative) {
            set_assignment(s, parts, 1);
            rd_kafka_pause_partitions(s->rk, parts);
        } else {
            rd_kafka_assign(s->rk, NULL);
        }
        return;
    }
    sl_position *pos = positions_of(parts);
    if (!pos) {
        api->log(s->ctx, SL_LOG_ERROR, "out of memory on assignment; stopping");
        s->failed = 1;
        set_assignment(s, parts, 1);
        rd_kafka_pause_partitions(s->rk, parts);
        return;
    }
    for (int i = 0; i < parts->cnt; i++) {
        int64_t c = parts->elems[i].offset;
        pos[i].offset = c > 0 ? c - 1 : -1; /* host: last finished offset */
    }
    api->partitions_assigned(s->ctx, pos, (size_t)parts->cnt);
    for (int i = 0; i < parts->cnt; i++) {
        int64_t c = parts->elems[i].offset;
        int64_t told = c > 0 ? c - 1 : -1;
        if (pos[i].offset != told) /* a stage keeps its own offsets: resume after them */
            parts->elems[i].offset = pos[i].offset + 1;
        else if (c < 0)
            parts->elems[i].offset = start_offset(s); /* nothing committed: `start` */
        api->log(s->ctx, SL_LOG_INFO, "assigned %s[%d] from offset %lld%s", parts->elems[i].topic,
                 (int)parts->elems[i].partition, (long long)parts->elems[i].offset,
                 s->cooperative ? " (incremental)" : "");
    }
    free(pos);
    err = set_assignment(s, parts, 1);
    if (err)
        api->log(s->ctx, SL_LOG_ERROR, "assign: %s", rd_kafka_err2str(err));
    if (!s->cooperative) {
        if (s->started)
            rd_kafka_topic_partition_list_destroy(s->started);
        s->started = rd_kafka_topic_partition_list_copy(parts);
    }
    /* librdkafka keeps a partition's pause flag across revoke and re-assignment: a partition
     * paused during a retry, revoked, and assigned again after the resume would never be
     * fetched. Every assignment states the source's pause state explicitly. */
    if (s->paused)
        rd_kafka_pause_partitions(s->rk, parts);
    else
        rd_kafka_resume_partitions(s->rk, parts);
}

static void revoked(kc *s, rd_kafka_topic_partition_list_t *parts)
{
    sl_position *pos = positions_of(parts);
    if (pos) {
        /* The host drains the chain and calls commit() before this returns. */
        s->api->partitions_revoked(s->ctx, pos, (size_t)parts->cnt);
        free(pos);
    }
    for (int i = 0; i < parts->cnt; i++)
        s->api->log(s->ctx, SL_LOG_INFO, "revoked %s[%d]%s", parts->elems[i].topic,
                    (int)parts->elems[i].partition, s->cooperative ? " (incremental)" : "");
    rd_kafka_resp_err_t err = set_assignment(s, parts, 0);
    if (err)
        s->api->log(s->ctx, SL_LOG_ERROR, "unassign: %s", rd_kafka_err2str(err));
}

/* ---- librdkafka callbacks ------------------------------------------------------------ */

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    kc *s = opaque;
    const char *proto = rd_kafka_rebalance_protocol(rk);
    s->cooperative = proto && strcmp(proto, "COOPERATIVE") == 0;
    if (s->closing) {
        set_assignment(s, parts, err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS);
        return;
    }
    s->in_rebalance = 1;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        assigned(s, parts);
    } else {
        if (err != RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS)
            s->api->log(s->ctx, SL_LOG_WARN, "rebalance error: %s", rd_kafka_err2str(err));
        revoked(s, parts);
    }
    s->in_rebalance = 0;
}

static void on_commit(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                      rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    (void)rk;
    (void)offsets;
    kc *s = opaque;
    /* A failed commit is retried with newer positions on the next interval. */
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET && !s->closing)
        s->api->log(s->ctx, SL_LOG_WARN, "commit failed: %s", rd_kafka_err2str(err));
}

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    kc *s = rd_kafka_opaque(rk);
    sl_log_level l = level <= 3 ? SL_LOG_ERROR : level <= 5 ? SL_LOG_WARN : SL_LOG_INFO;
    s->api->log(s->ctx, l, "rdkafka %s: %s", fac, buf);
}

/* ---- stage callbacks ----------------------------------------------------------------- */

static sl_err kc_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const kc_config *cfg = config;
    char errstr[512], client_id[256];
    if (cfg->topics.n == 0) {
        api->log(ctx, SL_LOG_ERROR, "topics: at least one topic is needed");
        return SL_ECONFIG;
    }
    kc *s = calloc(1, sizeof(*s));
    if (!s)
        return SL_ENOMEM;
    s->api = api;
    s->ctx = ctx;
    s->cfg = cfg;

    snprintf(client_id, sizeof(client_id), "sluice-%s-%s-%d", api->pipeline_name(ctx),
             api->stage_name(ctx), api->task_index(ctx));
    const char *defaults[][2] = {
        {"bootstrap.servers", cfg->brokers},
        {"group.id", cfg->group ? cfg->group : api->pipeline_name(ctx)},
        {"client.id", client_id},
        {"enable.auto.commit", "false"},
        {"enable.auto.offset.store", "false"},
        {"auto.offset.reset", "error"}, /* `start` is set explicitly; see the top */
        {"enable.partition.eof", "false"},
    };
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++)
        if (rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], errstr, sizeof(errstr))) {
            api->log(ctx, SL_LOG_ERROR, "%s", errstr);
            goto config_error;
        }
    for (size_t i = 0; i < cfg->rdkafka.n; i++)
        if (sl_rdkafka_never(cfg->rdkafka.keys[i])) {
            api->log(ctx, SL_LOG_ERROR, "rdkafka.%s may not be overridden (sluice sets it)", cfg->rdkafka.keys[i]);
            goto config_error;
        }
    for (size_t i = 0; i < cfg->rdkafka.n; i++)
        if (strcmp(cfg->rdkafka.keys[i], "auto.offset.reset") == 0) {
            /* It would hide skipped records (see the top); `start` says where new ones begin. */
            api->log(ctx, SL_LOG_ERROR, "rdkafka.auto.offset.reset: set by kafka-source (resets "
                     "are reported as errors); use `start: earliest|latest`");
            goto config_error;
        }
    for (size_t i = 0; i < cfg->rdkafka.n; i++)
        if (rd_kafka_conf_set(conf, cfg->rdkafka.keys[i], cfg->rdkafka.values[i], errstr,
                              sizeof(errstr))) {
            api->log(ctx, SL_LOG_ERROR, "rdkafka.%s: %s", cfg->rdkafka.keys[i], errstr);
            goto config_error;
        }
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit);
    rd_kafka_conf_set_log_cb(conf, on_log);

    s->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!s->rk) {
        api->log(ctx, SL_LOG_ERROR, "rdkafka: %s", errstr);
        goto config_error;
    }
    rd_kafka_poll_set_consumer(s->rk);
    s->queue = rd_kafka_queue_get_consumer(s->rk);
    rd_kafka_topic_partition_list_t *subs =
        rd_kafka_topic_partition_list_new((int)cfg->topics.n);
    for (size_t i = 0; i < cfg->topics.n; i++)
        rd_kafka_topic_partition_list_add(subs, cfg->topics.items[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t err = rd_kafka_subscribe(s->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (err) {
        api->log(ctx, SL_LOG_ERROR, "subscribe: %s", rd_kafka_err2str(err));
        rd_kafka_queue_destroy(s->queue);
        rd_kafka_destroy(s->rk);
        free(s);
        return SL_ECONFIG;
    }
    *self = s;
    return SL_OK;
config_error:
    rd_kafka_conf_destroy(conf);
    free(s);
    return SL_ECONFIG;
}

static sl_err emit_message(kc *s, sl_ctx *ctx, const rd_kafka_message_t *m)
{
    sl_record r = {0};
    r.key = m->key;
    r.key_len = m->key_len;
    r.value = m->payload;
    r.value_len = m->len;
    r.topic = rd_kafka_topic_name(m->rkt);
    r.partition = m->partition;
    r.offset = m->offset;
    r.timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    if (r.timestamp_ms < 0)
        r.timestamp_ms = s->api->now_ms(ctx);
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n = rd_kafka_header_cnt(h);
        if (n > s->hdr_cap) {
            sl_header *nh = realloc(s->hdrs, n * sizeof(*nh));
            if (!nh)
                return SL_ENOMEM;
            s->hdrs = nh;
            s->hdr_cap = n;
        }
        for (size_t i = 0; i < n; i++) {
            const char *name;
            const void *val;
            size_t len;
            if (rd_kafka_header_get_all(h, i, &name, &val, &len))
                break;
            s->hdrs[r.n_headers++] = (sl_header){name, val, len};
        }
        r.headers = s->hdrs;
    }
    return s->api->emit_borrowed(ctx, &r);
}

static void return_lent(kc *s)
{
    for (size_t i = 0; i < s->n_lent; i++)
        rd_kafka_message_destroy(s->lent[i]);
    s->n_lent = 0;
}

/* The position of a partition is gone from the broker (auto.offset.reset=error fired): the
 * records between it and the log start were deleted before we read them. Say so loudly and go
 * on at `start`, as librdkafka would have done silently. */
static void offset_reset(kc *s, sl_ctx *ctx, const rd_kafka_message_t *m)
{
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "?";
    s->api->log(ctx, SL_LOG_ERROR, "offset reset on %s[%d]: offset %lld is no longer on the broker "
                "(%s); records before the new position were never read; continuing at %s",
                topic, (int)m->partition, (long long)m->offset, rd_kafka_message_errstr(m),
                s->cfg->start ? "the end (start: latest)" : "the earliest offset (start: earliest)");
    s->api->count(ctx, "offset_resets", 1);
    if (!m->rkt)
        return;
    /* The partition's fetcher stopped on the error and refuses a seek: take the partition out
     * of the assignment and put it back at `start`. Cooperative: incrementally. Eager allows
     * only a whole new assignment: every other partition goes on from its position (the next
     * offset after what poll returned; or, if nothing was returned yet, where it started). */
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_error_t *e = NULL;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (s->cooperative) {
        l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, m->partition)->offset = start_offset(s);
        e = rd_kafka_incremental_unassign(s->rk, l);
        if (!e)
            e = rd_kafka_incremental_assign(s->rk, l);
    } else if (!(err = rd_kafka_assignment(s->rk, &l)) && !(err = rd_kafka_position(s->rk, l))) {
        for (int i = 0; i < l->cnt; i++) {
            rd_kafka_topic_partition_t *p = &l->elems[i];
            if (p->partition == m->partition && strcmp(p->topic, topic) == 0) {
                p->offset = start_offset(s);
            } else if (p->offset < 0) {
                rd_kafka_topic_partition_t *st =
                    s->started ? rd_kafka_topic_partition_list_find(s->started, p->topic, p->partition) : NULL;
                p->offset = st ? st->offset : RD_KAFKA_OFFSET_INVALID;
            }
        }
        err = rd_kafka_assign(s->rk, l);
    }
    if (e) {
        err = rd_kafka_error_code(e);
        rd_kafka_error_destroy(e);
    }
    if (err) {
        s->api->log(ctx, SL_LOG_ERROR, "restarting %s[%d] at start: %s; stopping", topic,
                    (int)m->partition, rd_kafka_err2str(err));
        s->failed = 1;
    } else if (s->paused) {
        rd_kafka_pause_partitions(s->rk, l);
    }
    if (l)
        rd_kafka_topic_partition_list_destroy(l);
}

/* One consumed message or event: emit it, or log / fail on an error event. */
static sl_err handle_message(kc *s, sl_ctx *ctx, rd_kafka_message_t *m, size_t *n)
{
    sl_err ret = SL_OK;
    if (s->failed) {
        ret = SL_FATAL; /* the assignment could not be set up: read nothing */
    } else if (!m->err) {
        if (s->n_lent == s->cap_lent) {
            size_t cap = s->cap_lent ? s->cap_lent * 2 : 1024;
            rd_kafka_message_t **l = realloc(s->lent, cap * sizeof *l);
            if (!l) {
                rd_kafka_message_destroy(m);
                return SL_ENOMEM;
            }
            s->lent = l;
            s->cap_lent = cap;
        }
        ret = emit_message(s, ctx, m);
        if (ret == SL_OK) {
            (*n)++;
            s->lent[s->n_lent++] = m; /* the host references its bytes until the next poll */
            return ret;
        }
    } else if (m->err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_fatal_error(s->rk, buf, sizeof(buf));
        s->api->log(ctx, SL_LOG_ERROR, "fatal consumer error: %s", buf);
        ret = SL_FATAL;
    } else if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET) {
        offset_reset(s, ctx, m);
    } else if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        /* Transport errors, unknown topics...: librdkafka keeps retrying. */
        s->api->log(ctx, SL_LOG_WARN, "kafka: %s", rd_kafka_message_errstr(m));
    }
    rd_kafka_message_destroy(m);
    return ret;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Once a second: the end of every assigned partition whose end librdkafka knows, for the
 * host's consumer-lag figures. A host older than ABI 1.8 has no report_end_offsets. */
static void report_ends(kc *s, sl_ctx *ctx)
{
    const sl_api *api = s->api;
    if (!SL_HAS(api, report_end_offsets))
        return;
    int64_t now = mono_ms();
    if (now - s->ends_at_ms < 1000)
        return;
    s->ends_at_ms = now;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(s->rk, &l) != RD_KAFKA_RESP_ERR_NO_ERROR || !l)
        return;
    sl_position *ends = calloc(l->cnt ? (size_t)l->cnt : 1, sizeof(*ends));
    size_t n = 0;
    for (int i = 0; ends && i < l->cnt; i++) {
        int64_t lo = 0, hi = RD_KAFKA_OFFSET_INVALID;
        if (rd_kafka_get_watermark_offsets(s->rk, l->elems[i].topic, l->elems[i].partition, &lo, &hi) ==
                RD_KAFKA_RESP_ERR_NO_ERROR &&
            hi >= 0)
            ends[n++] = (sl_position){l->elems[i].topic, l->elems[i].partition, hi};
    }
    if (ends)
        api->report_end_offsets(ctx, ends, n);
    free(ends);
    rd_kafka_topic_partition_list_destroy(l);
}

static sl_err kc_poll(void *self, sl_ctx *ctx, size_t max, int timeout_ms)
{
    kc *s = self;
    size_t n = 0;
    sl_err ret = SL_OK;
    if (s->failed)
        return SL_FATAL;
    if (max > 0)
        return_lent(s);
    /* Wait for the first message only; then take what is already fetched, in bulk (one
     * queue lock per batch instead of per message). Both serve the rebalance callback. */
    rd_kafka_message_t *first = rd_kafka_consumer_poll(s->rk, timeout_ms);
    if (first)
        ret = handle_message(s, ctx, first, &n);
    while (first && ret == SL_OK && n < max) {
        rd_kafka_message_t *msgs[256];
        size_t want = max - n < 256 ? max - n : 256;
        ssize_t got = rd_kafka_consume_batch_queue(s->queue, 0, msgs, want);
        if (got <= 0)
            break;
        for (ssize_t i = 0; i < got; i++) {
            if (ret == SL_OK)
                ret = handle_message(s, ctx, msgs[i], &n);
            else
                rd_kafka_message_destroy(msgs[i]);
        }
    }
    if (n)
        s->api->count(ctx, "consumed", n);
    report_ends(s, ctx);
    return ret;
}

static sl_err kc_commit(void *self, sl_ctx *ctx, const sl_position *pos, size_t n)
{
    kc *s = self;
    if (n == 0)
        return SL_OK;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
    for (size_t i = 0; i < n; i++)
        if (pos[i].offset >= 0)
            rd_kafka_topic_partition_list_add(l, pos[i].topic, pos[i].partition)->offset =
                pos[i].offset + 1; /* Kafka commits the next offset to read */
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (l->cnt > 0) {
        /* Synchronous inside a rebalance (the partitions are about to move); asynchronous on
         * the interval (a failure is logged by on_commit and superseded by the next one). */
        err = rd_kafka_commit(s->rk, l, s->in_rebalance ? 0 : 1);
        if (err && s->in_rebalance)
            s->api->log(ctx, SL_LOG_WARN, "commit on revoke failed: %s (records after the last "
                        "commit will be read again)", rd_kafka_err2str(err));
    }
    rd_kafka_topic_partition_list_destroy(l);
    return SL_OK;
}

static sl_err set_paused(kc *s, int paused)
{
    rd_kafka_topic_partition_list_t *parts = NULL;
    rd_kafka_resp_err_t err = rd_kafka_assignment(s->rk, &parts);
    if (!err && parts->cnt > 0)
        err = paused ? rd_kafka_pause_partitions(s->rk, parts)
                     : rd_kafka_resume_partitions(s->rk, parts);
    if (parts)
        rd_kafka_topic_partition_list_destroy(parts);
    if (err) {
        s->api->log(s->ctx, SL_LOG_WARN, "%s: %s", paused ? "pause" : "resume",
                    rd_kafka_err2str(err));
        return SL_RETRY;
    }
    s->paused = paused;
    return SL_OK;
}

static sl_err kc_pause(void *self, sl_ctx *ctx)
{
    (void)ctx;
    return set_paused(self, 1);
}

static sl_err kc_resume(void *self, sl_ctx *ctx)
{
    (void)ctx;
    return set_paused(self, 0);
}

static void kc_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    kc *s = self;
    /* The host committed at shutdown; leaving the group now hands the partitions over. */
    s->closing = 1;
    return_lent(s);
    free(s->lent);
    rd_kafka_queue_destroy(s->queue);
    rd_kafka_consumer_close(s->rk);
    rd_kafka_destroy(s->rk);
    if (s->started)
        rd_kafka_topic_partition_list_destroy(s->started);
    free(s->hdrs);
    free(s);
}

/* ---- config table and descriptor ----------------------------------------------------- */

static const sl_config_entry kc_config_table[] = {
    SL_CFG_STRING("brokers", kc_config, brokers, .flags = SL_CFG_REQUIRED,
        .description = "bootstrap servers, host:port[,host:port...]"),
    SL_CFG_LIST("topics", kc_config, topics, .flags = SL_CFG_REQUIRED,
        .description = "topics to subscribe to"),
    SL_CFG_STRING("group", kc_config, group, .description = "consumer group id; default: the pipeline name"),
    SL_CFG_ENUM("start", kc_config, start, .default_value = "earliest", .choices = "earliest|latest",
        .description = "where a partition without a committed offset starts"),
    SL_CFG_MAP("rdkafka", kc_config, rdkafka, .flags = SL_CFG_KEYS_LISTED, .choices = SL_RDKAFKA_KEYS,
        .description = "librdkafka consumer properties, passed through (they override ours; see docs/security.md for the keys refused)"),
    SL_CFG_DURATION("commit_timeout", kc_config, commit_timeout_ms, .flags = SL_CFG_BOUNDED,
        .default_value = "10s", .min = 100, .max = 600000,
        .description = "how long to wait for committed offsets on assignment"),
    SL_CFG_END,
};

static const sl_stage_desc kc_desc = {
    SL_STAGE_DESC_INIT,
    .name = "kafka-source",
    .version = "1.0.0",
    .kind = SL_KIND_SOURCE,
    .description = "consumes Kafka topics in a consumer group; commits only finished offsets",
    .config = kc_config_table,
    .config_size = sizeof(kc_config),
    .init = kc_init,
    .poll = kc_poll,
    .commit = kc_commit,
    .close = kc_close,
    .pause = kc_pause,
    .resume = kc_resume,
};

SL_STAGE_DEFINE(kc_desc)
