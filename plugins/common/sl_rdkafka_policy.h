/*
 * sl_rdkafka_policy.h — which librdkafka properties a pipeline may pass through `rdkafka:`.
 *
 * One policy for kafka-source and kafka-sink, written as data the host enforces (the map's
 * config entry carries SL_CFG_KEYS_LISTED and SL_RDKAFKA_KEYS as its `choices`):
 *   - "!" keys are never accepted: they would switch off what sluice's "nothing lost, nothing
 *     counted twice" rests on (manual offset store and commit, acks=all, idempotence, reading
 *     committed data only). Aliases of those names are listed too.
 *   - the plain keys are the only ones a pipeline created over REST may set: harmless tuning
 *     (timeouts, sizes, batching, compression, client id). It is an allow-list because
 *     librdkafka has properties that run commands (sasl.kerberos.kinit.cmd), load code
 *     (plugin.library.paths, ssl.engine.location), or read files (ssl.*.location,
 *     sasl.kerberos.keytab, ssl.ca.location...), and new ones arrive with new versions.
 * The operator's own pipeline files may set any key but the "!" ones.
 */
#ifndef SL_RDKAFKA_POLICY_H
#define SL_RDKAFKA_POLICY_H

#include <string.h>

#define SL_RDKAFKA_NEVER                                                                          \
    "!enable.auto.commit|!auto.commit.enable|!enable.auto.offset.store|!acks|!request.required.acks" \
    "|!enable.idempotence|!isolation.level"

#define SL_RDKAFKA_TUNING                                                                         \
    "client.id|socket.timeout.ms|socket.keepalive.enable|socket.send.buffer.bytes"                \
    "|socket.receive.buffer.bytes|socket.connection.setup.timeout.ms|connections.max.idle.ms"     \
    "|reconnect.backoff.ms|reconnect.backoff.max.ms|retry.backoff.ms|retry.backoff.max.ms"        \
    "|topic.metadata.refresh.interval.ms|metadata.max.age.ms|request.timeout.ms"                 \
    "|session.timeout.ms|heartbeat.interval.ms|max.poll.interval.ms|partition.assignment.strategy" \
    "|fetch.min.bytes|fetch.max.bytes|fetch.wait.max.ms|fetch.error.backoff.ms"                   \
    "|fetch.queue.backoff.ms|max.partition.fetch.bytes|fetch.message.max.bytes"                   \
    "|queued.min.messages|queued.max.messages.kbytes|message.max.bytes|receive.message.max.bytes" \
    "|linger.ms|queue.buffering.max.ms|queue.buffering.max.messages|queue.buffering.max.kbytes"  \
    "|batch.num.messages|batch.size|compression.type|compression.codec|compression.level"        \
    "|message.timeout.ms|delivery.timeout.ms|retries|message.send.max.retries"                   \
    "|sticky.partitioning.linger.ms|statistics.interval.ms|log.connection.close"

/** The `choices` of an `rdkafka:` map entry (with SL_CFG_KEYS_LISTED). */
#define SL_RDKAFKA_KEYS SL_RDKAFKA_NEVER "|" SL_RDKAFKA_TUNING

/** True when `key` may never be overridden (checked again at init: a belt to the host's braces). */
static inline int sl_rdkafka_never(const char *key)
{
    static const char never[] = SL_RDKAFKA_NEVER;
    size_t kl = strlen(key);
    for (const char *c = never; *c;) {
        size_t l = strcspn(c, "|");
        if (l == kl + 1 && !strncmp(c + 1, key, kl)) return 1;
        c += l;
        if (*c == '|') c++;
    }
    return 0;
}

#endif
