/*
 * embedded_kafka.c — see embedded_kafka.h.
 *
 * librdkafka's mock cluster lives inside an rd_kafka_t handle: we create a throwaway producer
 * handle that never produces, hang the cluster on it, and keep both until stop. The cluster's
 * brokers run on librdkafka's own threads, so the caller needs no event loop.
 */
#include "embedded_kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sl_embedded_kafka {
    rd_kafka_t *rk;               /* owner of the cluster */
    rd_kafka_mock_cluster_t *mc;
    char *bootstrap;              /* our copy: stable for the life of k */
};

sl_embedded_kafka *sl_embedded_kafka_start(int brokers, int partitions, const char *const *topics,
                                           size_t ntopics, char *err, size_t errlen)
{
    char errstr[512];
    if (brokers < 1 || partitions < 1) {
        snprintf(err, errlen, "embedded kafka: brokers and partitions must be >= 1");
        return NULL;
    }
    sl_embedded_kafka *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, errlen, "embedded kafka: out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* The owner handle only hosts the cluster; keep its own logging quiet. */
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    k->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
    if (!k->rk) {
        rd_kafka_conf_destroy(conf);
        snprintf(err, errlen, "embedded kafka: %s", errstr);
        free(k);
        return NULL;
    }
    k->mc = rd_kafka_mock_cluster_new(k->rk, brokers);
    if (!k->mc) {
        snprintf(err, errlen, "embedded kafka: cannot start the mock cluster");
        goto fail;
    }
    int rf = brokers < 3 ? brokers : 3;
    for (size_t i = 0; i < ntopics; i++) {
        rd_kafka_resp_err_t e = rd_kafka_mock_topic_create(k->mc, topics[i], partitions, rf);
        if (e) {
            snprintf(err, errlen, "embedded kafka: topic %s: %s", topics[i], rd_kafka_err2str(e));
            goto fail;
        }
    }
    k->bootstrap = strdup(rd_kafka_mock_cluster_bootstraps(k->mc));
    if (!k->bootstrap) {
        snprintf(err, errlen, "embedded kafka: out of memory");
        goto fail;
    }
    return k;
fail:
    sl_embedded_kafka_stop(k);
    return NULL;
}

const char *sl_embedded_kafka_bootstrap(const sl_embedded_kafka *k)
{
    return k->bootstrap;
}

struct rd_kafka_mock_cluster_s *sl_embedded_kafka_mock(sl_embedded_kafka *k)
{
    return k->mc;
}

void sl_embedded_kafka_stop(sl_embedded_kafka *k)
{
    if (!k)
        return;
    if (k->mc)
        rd_kafka_mock_cluster_destroy(k->mc);
    if (k->rk)
        rd_kafka_destroy(k->rk);
    free(k->bootstrap);
    free(k);
}
