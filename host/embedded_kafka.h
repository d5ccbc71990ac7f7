/*
 * embedded_kafka — librdkafka's mock cluster (rdkafka_mock.h) as a local broker for demos and
 * tests. It speaks the real Kafka protocol on loopback ports, keeps everything in memory and is
 * gone when the process exits. See docs/embedded-kafka.md for its limits (retention!).
 */
#ifndef SLUICE_EMBEDDED_KAFKA_H
#define SLUICE_EMBEDDED_KAFKA_H

#include <stddef.h>

struct rd_kafka_mock_cluster_s; /* rdkafka_mock.h's rd_kafka_mock_cluster_t */

typedef struct sl_embedded_kafka sl_embedded_kafka;

/* Starts a mock cluster with `brokers` brokers (ids 1..brokers) and creates `topics` with
 * `partitions` partitions each (replication factor min(brokers, 3)). Returns NULL and fills
 * err on failure. */
sl_embedded_kafka *sl_embedded_kafka_start(int brokers, int partitions, const char *const *topics,
                                           size_t ntopics, char *err, size_t errlen);

/* "127.0.0.1:PORT,127.0.0.1:PORT,..." — valid until stop. */
const char *sl_embedded_kafka_bootstrap(const sl_embedded_kafka *k);

/* The underlying rd_kafka_mock_cluster_t, for tests that inject faults
 * (rd_kafka_mock_broker_set_down, rd_kafka_mock_push_request_errors, ...). */
struct rd_kafka_mock_cluster_s *sl_embedded_kafka_mock(sl_embedded_kafka *k);

/* Stops the brokers and frees everything; the data is gone. NULL is a no-op. */
void sl_embedded_kafka_stop(sl_embedded_kafka *k);

#endif
