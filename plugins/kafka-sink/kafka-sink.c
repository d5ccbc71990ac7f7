/*
 * kafka-sink — produces records to Kafka with librdkafka's idempotent producer.
 *
 * Acknowledgement: every record is held (api->hold) when it is handed to librdkafka and the
 * token travels as the message opaque. The delivery report gives it back: success → release
 * (durable: acks=all), failure → dead letter with librdkafka's reason, then release.
 * Delivery reports are served by rd_kafka_poll, which we call only from the task thread
 * (process and flush), so the callback may use api->reject: it runs inside our own callback.
 * Everything needed to rebuild the record for the dead letter (value, key, headers, timestamp,
 * topic) is still in the delivered message, so the opaque is just the token.
 *
 * A full local queue is backpressure: process polls and waits until librdkafka has room.
 * message.timeout.ms defaults to 0 (retry for ever), so a broker outage stalls the pipeline
 * instead of sending everything to the dead letter; set it through `rdkafka` to change that.
 */
#include <sluice/stage.h>

#include <librdkafka/rdkafka.h>

#include "../common/sl_rdkafka_policy.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ks_config {
    char *brokers;
    char *topic;
    char *key;
    int compression;
    sl_map rdkafka;
    int64_t drain_timeout_ms;
} ks_config;

static const char *const compression_names[] = {"none", "gzip", "snappy", "lz4", "zstd"};

typedef struct ks_topic {
    char *name;
    rd_kafka_topic_t *rkt;
} ks_topic;

typedef struct ks {
    const sl_api *api;
    sl_ctx *ctx;
    const ks_config *cfg;
    rd_kafka_t *rk;
    ks_topic *topics; /* handles by name; few entries, searched linearly */
    size_t ntopics, cap_topics;
    sl_header *hdr_scratch; /* rebuilding a failed message's headers for the dead letter */
    size_t hdr_cap;
    int64_t last_fail_log_ms; /* delivery failures are logged at most once a second */
    uint64_t fails_unlogged;
    int fatal;   /* the idempotent producer hit a fatal error: the pipeline must restart */
    int closing; /* close(): deliveries no longer reach the host */
} ks;

/* ---- helpers ------------------------------------------------------------------------- */

static rd_kafka_topic_t *topic_handle(ks *s, const char *name)
{
    for (size_t i = 0; i < s->ntopics; i++)
        if (strcmp(s->topics[i].name, name) == 0)
            return s->topics[i].rkt;
    if (s->ntopics == s->cap_topics) {
        size_t cap = s->cap_topics ? s->cap_topics * 2 : 4;
        ks_topic *t = realloc(s->topics, cap * sizeof(*t));
        if (!t)
            return NULL;
        s->topics = t;
        s->cap_topics = cap;
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(s->rk, name, NULL);
    char *copy = strdup(name);
    if (!rkt || !copy) {
        if (rkt)
            rd_kafka_topic_destroy(rkt);
        free(copy);
        return NULL;
    }
    s->topics[s->ntopics++] = (ks_topic){copy, rkt};
    return rkt;
}

/* The message key: the configured JSON field's text, else the record's own key. */
static const void *message_key(ks *s, sl_ctx *ctx, const sl_record *rec, size_t *len, char *num,
                               size_t numlen)
{
    *len = rec->key_len;
    if (!s->cfg->key)
        return rec->key;
    sl_json *root = s->api->json(ctx, rec, NULL);
    sl_json *f = root ? s->api->json_get(root, s->cfg->key) : NULL;
    switch (s->api->json_type(f)) {
    case SL_JSON_STRING: {
        const char *str = s->api->json_string(f);
        *len = strlen(str);
        return str;
    }
    case SL_JSON_NUMBER:
        *len = (size_t)snprintf(num, numlen, "%.17g", s->api->json_number(f));
        return num;
    case SL_JSON_BOOL:
        *len = (size_t)snprintf(num, numlen, "%s", s->api->json_number(f) != 0 ? "true" : "false");
        return num;
    default:
        return rec->key; /* field absent or not a scalar: keep the record key */
    }
}

static rd_kafka_headers_t *message_headers(const sl_record *rec)
{
    if (rec->n_headers == 0)
        return NULL;
    rd_kafka_headers_t *h = rd_kafka_headers_new(rec->n_headers);
    for (size_t i = 0; i < rec->n_headers; i++)
        rd_kafka_header_add(h, rec->headers[i].name, -1, rec->headers[i].value,
                            (ssize_t)rec->headers[i].value_len);
    return h;
}

/* Send a record whose delivery failed to the dead letter; `ack` is our hold on it. */
static void reject_delivered(ks *s, const rd_kafka_message_t *m, sl_ack *ack)
{
    sl_record r = {0};
    r.key = m->key;
    r.key_len = m->key_len;
    r.value = m->payload;
    r.value_len = m->len;
    r.topic = rd_kafka_topic_name(m->rkt);
    r.partition = -1;
    r.offset = -1;
    r.timestamp_ms = rd_kafka_message_timestamp(m, NULL);
    if (r.timestamp_ms < 0) /* not kept for failed messages */
        r.timestamp_ms = s->api->now_ms(s->ctx);
    r.ack = ack;
    rd_kafka_headers_t *h = NULL;
    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        size_t n = rd_kafka_header_cnt(h);
        if (n > s->hdr_cap) {
            sl_header *nh = realloc(s->hdr_scratch, n * sizeof(*nh));
            if (nh) {
                s->hdr_scratch = nh;
                s->hdr_cap = n;
            }
        }
        for (size_t i = 0; i < n && i < s->hdr_cap; i++) {
            const char *name;
            const void *val;
            size_t len;
            if (rd_kafka_header_get_all(h, i, &name, &val, &len))
                break;
            s->hdr_scratch[r.n_headers++] = (sl_header){name, val, len};
        }
        r.headers = s->hdr_scratch;
    }
    s->api->reject(s->ctx, &r, rd_kafka_err2str(m->err));
}

/* ---- librdkafka callbacks (dr_msg and error run in the task thread, via rd_kafka_poll) ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    (void)rk;
    ks *s = opaque;
    sl_ack *ack = m->_private;
    if (s->closing)
        return; /* not acked: the source re-reads it after restart */
    if (m->err) {
        s->api->count(s->ctx, "delivery_failed", 1);
        int64_t now = s->api->monotonic_ms(s->ctx);
        if (now - s->last_fail_log_ms >= 1000) {
            s->api->log(s->ctx, SL_LOG_WARN, "delivery to %s failed: %s (+%llu more since the "
                        "last report); to the dead letter", rd_kafka_topic_name(m->rkt),
                        rd_kafka_err2str(m->err), (unsigned long long)s->fails_unlogged);
            s->last_fail_log_ms = now;
            s->fails_unlogged = 0;
        } else {
            s->fails_unlogged++;
        }
        reject_delivered(s, m, ack);
    } else {
        s->api->count(s->ctx, "delivered", 1);
    }
    s->api->release(ack);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    ks *s = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char buf[512];
        rd_kafka_fatal_error(rk, buf, sizeof(buf));
        s->api->log(s->ctx, SL_LOG_ERROR, "fatal producer error: %s", buf);
        s->fatal = 1;
        return;
    }
    /* Transport errors during an outage are expected: librdkafka retries on its own. */
    s->api->log(s->ctx, SL_LOG_WARN, "kafka: %s", reason);
}

/* librdkafka's own log lines may come from its threads; api->log is thread-safe. */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    ks *s = rd_kafka_opaque(rk);
    sl_log_level l = level <= 3 ? SL_LOG_ERROR : level <= 5 ? SL_LOG_WARN : SL_LOG_INFO;
    s->api->log(s->ctx, l, "rdkafka %s: %s", fac, buf);
}

/* ---- stage callbacks ----------------------------------------------------------------- */

static void ks_close(void *self, sl_ctx *ctx);

static sl_err ks_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const ks_config *cfg = config;
    char errstr[512], client_id[256];
    ks *s = calloc(1, sizeof(*s));
    if (!s)
        return SL_ENOMEM;
    s->api = api;
    s->ctx = ctx;
    s->cfg = cfg;

    snprintf(client_id, sizeof(client_id), "sluice-%s-%s-%d", api->pipeline_name(ctx),
             api->stage_name(ctx), api->task_index(ctx));
    const char *defaults[][2] = {
        {"bootstrap.servers", cfg->brokers},
        {"client.id", client_id},
        {"enable.idempotence", "true"},
        {"acks", "all"},
        {"compression.codec", compression_names[cfg->compression]},
        {"linger.ms", "5"},
        {"message.timeout.ms", "0"}, /* retry for ever: an outage is backpressure */
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
        if (rd_kafka_conf_set(conf, cfg->rdkafka.keys[i], cfg->rdkafka.values[i], errstr,
                              sizeof(errstr))) {
            api->log(ctx, SL_LOG_ERROR, "rdkafka.%s: %s", cfg->rdkafka.keys[i], errstr);
            goto config_error;
        }
    rd_kafka_conf_set_opaque(conf, s);
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
    rd_kafka_conf_set_error_cb(conf, on_error);
    rd_kafka_conf_set_log_cb(conf, on_log);

    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!s->rk) {
        api->log(ctx, SL_LOG_ERROR, "rdkafka: %s", errstr);
        goto config_error;
    }
    if (cfg->topic && !topic_handle(s, cfg->topic)) {
        api->log(ctx, SL_LOG_ERROR, "topic %s: %s", cfg->topic,
                 rd_kafka_err2str(rd_kafka_last_error()));
        ks_close(s, ctx);
        return SL_ECONFIG;
    }
    *self = s;
    return SL_OK;
config_error:
    rd_kafka_conf_destroy(conf);
    free(s);
    return SL_ECONFIG;
}

static sl_err ks_process(void *self, sl_ctx *ctx, const sl_batch *batch)
{
    ks *s = self;
    const sl_api *api = s->api;
    rd_kafka_poll(s->rk, 0); /* serve delivery reports of earlier batches */
    if (s->fatal)
        return SL_FATAL;
    size_t produced = 0;
    for (size_t i = 0; i < batch->n; i++) {
        const sl_record *rec = batch->recs[i];
        const char *topic = s->cfg->topic ? s->cfg->topic : rec->topic;
        if (!topic || !*topic) {
            api->reject(ctx, rec, "no topic: the record has none and `topic` is not set");
            continue;
        }
        rd_kafka_topic_t *rkt = topic_handle(s, topic);
        if (!rkt) {
            api->reject(ctx, rec, rd_kafka_err2str(rd_kafka_last_error()));
            continue;
        }
        char num[64];
        size_t key_len, value_len;
        const void *key = message_key(s, ctx, rec, &key_len, num, sizeof(num));
        const void *value = api->value(ctx, rec, &value_len);
        sl_ack *ack = api->hold(ctx, rec);
        for (;;) {
            rd_kafka_headers_t *h = message_headers(rec);
            rd_kafka_resp_err_t err = rd_kafka_producev(
                s->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                RD_KAFKA_V_VALUE((void *)value, value_len), RD_KAFKA_V_KEY(key, key_len),
                RD_KAFKA_V_HEADERS(h),
                RD_KAFKA_V_TIMESTAMP(rec->timestamp_ms > 0 ? rec->timestamp_ms : 0),
                RD_KAFKA_V_OPAQUE(ack), RD_KAFKA_V_END);
            if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                produced++;
                break;
            }
            if (h)
                rd_kafka_headers_destroy(h); /* not taken on failure */
            if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
                /* Backpressure: wait for deliveries to make room. */
                api->count(ctx, "queue_full_waits", 1);
                rd_kafka_poll(s->rk, 100);
                if (s->fatal)
                    return SL_FATAL;
                continue;
            }
            /* Refused outright (too large, unknown partition, ...): dead letter. */
            api->reject(ctx, rec, rd_kafka_err2str(err));
            api->release(ack);
            break;
        }
    }
    if (produced)
        api->count(ctx, "produced", produced);
    return SL_OK;
}

static sl_err ks_flush(void *self, sl_ctx *ctx, int final)
{
    ks *s = self;
    if (!final) {
        rd_kafka_poll(s->rk, 0);
    } else if (rd_kafka_flush(s->rk, (int)s->cfg->drain_timeout_ms) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        s->api->log(ctx, SL_LOG_WARN,
                    "%d message(s) still undelivered after drain_timeout; they stay unacked",
                    rd_kafka_outq_len(s->rk));
    }
    return s->fatal ? SL_FATAL : SL_OK;
}

static void ks_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    ks *s = self;
    /* Messages still queued now were never acked; the source resends them after restart. */
    s->closing = 1;
    for (size_t i = 0; i < s->ntopics; i++) {
        rd_kafka_topic_destroy(s->topics[i].rkt);
        free(s->topics[i].name);
    }
    rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rd_kafka_poll(s->rk, 0);
    rd_kafka_destroy(s->rk);
    free(s->topics);
    free(s->hdr_scratch);
    free(s);
}

/* ---- config table and descriptor ----------------------------------------------------- */

static const sl_config_entry ks_config_table[] = {
    SL_CFG_STRING("brokers", ks_config, brokers, .flags = SL_CFG_REQUIRED,
        .description = "bootstrap servers, host:port[,host:port...]"),
    SL_CFG_STRING("topic", ks_config, topic,
        .description = "topic to produce to; default: each record's own topic"),
    SL_CFG_STRING("key", ks_config, key,
        .description = "JSON field whose value becomes the message key; default: the record key"),
    SL_CFG_ENUM("compression", ks_config, compression, .default_value = "lz4",
        .choices = "none|gzip|snappy|lz4|zstd", .description = "compression codec of produced batches"),
    SL_CFG_MAP("rdkafka", ks_config, rdkafka, .flags = SL_CFG_KEYS_LISTED, .choices = SL_RDKAFKA_KEYS,
        .description = "librdkafka producer properties, passed through (they override ours; see docs/security.md for the keys refused)"),
    SL_CFG_DURATION("drain_timeout", ks_config, drain_timeout_ms, .flags = SL_CFG_BOUNDED,
        .default_value = "10s", .max = 3600000,
        .description = "at shutdown, how long to wait for outstanding delivery reports"),
    SL_CFG_END,
};

static const sl_stage_desc ks_desc = {
    SL_STAGE_DESC_INIT,
    .name = "kafka-sink",
    .version = "1.0.0",
    .kind = SL_KIND_SINK,
    .description = "produces records to Kafka (idempotent, acks=all; acked on delivery report)",
    .config = ks_config_table,
    .config_size = sizeof(ks_config),
    .init = ks_init,
    .process = ks_process,
    .flush = ks_flush,
    .close = ks_close,
};

SL_STAGE_DEFINE(ks_desc)
