/*
 * mock-kafka — a test tool: starts the embedded broker (host/embedded_kafka.c), prints its
 * bootstrap address as the first line of stdout, then obeys one command per stdin line and
 * answers each with a line "ok ..." or "error ...":
 *
 *   down ID                 rd_kafka_mock_broker_set_down(ID)
 *   up ID                   rd_kafka_mock_broker_set_up(ID)
 *   err N APIKEY ERRCODE    the next N requests of APIKEY (0 = Produce, 8 = OffsetCommit, ...)
 *                           fail with ERRCODE (e.g. 6 NOT_LEADER_FOR_PARTITION, 7 REQUEST_TIMED_OUT)
 *   committed GROUP TOPIC   "ok P=OFFSET P=OFFSET ..." — the group's committed offsets
 *   end TOPIC               "ok P=HIGH P=HIGH ..." — each partition's high watermark
 *   quit                    (or end of input) stop the cluster and exit 0
 *
 * usage: mock-kafka [-b BROKERS] [-p PARTITIONS] TOPIC...
 *        mock-kafka -B BOOTSTRAP     no mock: only `committed`, `end` and `quit`, against a real
 *                                    cluster (scripts/kafka.sh); partition counts from metadata
 */
#include "../../host/embedded_kafka.h"

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int partitions = 4;
static int real; /* -B: a real cluster, ask it how many partitions a topic has */

static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    if (!real)
        return partitions;
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    int n = -1;
    if (t && rd_kafka_metadata(rk, 0, t, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    if (t)
        rd_kafka_topic_destroy(t);
    return n;
}

/* A short-lived consumer handle (never subscribes) for offset queries. */
static rd_kafka_t *query_handle(const char *bootstrap, const char *group)
{
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, NULL, 0);
    rd_kafka_conf_set(conf, "group.id", group, NULL, 0);
    rd_kafka_conf_set(conf, "log_level", "3", NULL, 0);
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        printf("error %s\n", errstr);
    }
    return rk;
}

static void cmd_committed(const char *bootstrap, const char *group, const char *topic)
{
    rd_kafka_t *rk = query_handle(bootstrap, group);
    if (!rk)
        return;
    int np = topic_partitions(rk, topic);
    if (np < 0) {
        printf("error no metadata for %s\n", topic);
        rd_kafka_destroy(rk);
        return;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(np);
    for (int p = 0; p < np; p++)
        rd_kafka_topic_partition_list_add(l, topic, p);
    rd_kafka_resp_err_t e = rd_kafka_committed(rk, l, 10000);
    if (e) {
        printf("error %s\n", rd_kafka_err2str(e));
    } else {
        printf("ok");
        for (int i = 0; i < l->cnt; i++)
            printf(" %d=%lld", (int)l->elems[i].partition, (long long)l->elems[i].offset);
        printf("\n");
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

static void cmd_end(const char *bootstrap, const char *topic)
{
    rd_kafka_t *rk = query_handle(bootstrap, "mock-kafka-query");
    if (!rk)
        return;
    int np = topic_partitions(rk, topic);
    if (np < 0) {
        printf("error no metadata for %s\n", topic);
        rd_kafka_destroy(rk);
        return;
    }
    printf("ok");
    for (int p = 0; p < np; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000);
        printf(" %d=%lld", p, e ? -1LL : (long long)hi);
    }
    printf("\n");
    rd_kafka_destroy(rk);
}

int main(int argc, char **argv)
{
    int brokers = 1, opt;
    const char *bootstrap = NULL;
    while ((opt = getopt(argc, argv, "b:p:B:")) != -1) {
        if (opt == 'B')
            bootstrap = optarg;
        else if (opt == 'b')
            brokers = atoi(optarg);
        else if (opt == 'p')
            partitions = atoi(optarg);
        else {
            fprintf(stderr, "usage: mock-kafka [-b BROKERS] [-p PARTITIONS] TOPIC...\n"
                            "       mock-kafka -B BOOTSTRAP\n");
            return 2;
        }
    }
    char err[512];
    sl_embedded_kafka *k = NULL;
    rd_kafka_mock_cluster_t *mc = NULL;
    if (bootstrap) {
        real = 1;
    } else {
        k = sl_embedded_kafka_start(brokers, partitions, (const char *const *)argv + optind,
                                    (size_t)(argc - optind), err, sizeof(err));
        if (!k) {
            fprintf(stderr, "mock-kafka: %s\n", err);
            return 1;
        }
        bootstrap = sl_embedded_kafka_bootstrap(k);
        mc = sl_embedded_kafka_mock(k);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (!real)
        printf("%s\n", bootstrap);

    char line[1024];
    while (fgets(line, sizeof(line), stdin)) {
        char a[256] = "", b[256] = "";
        int id = 0, n = 0, apikey = 0, code = 0;
        if (!mc && strncmp(line, "committed ", 10) && strncmp(line, "end ", 4) &&
            strncmp(line, "quit", 4)) {
            printf("error not a mock cluster\n");
        } else if (sscanf(line, "down %d", &id) == 1) {
            rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_down(mc, id);
            printf(e ? "error %s\n" : "ok%.0s\n", rd_kafka_err2str(e));
        } else if (sscanf(line, "up %d", &id) == 1) {
            rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_up(mc, id);
            printf(e ? "error %s\n" : "ok%.0s\n", rd_kafka_err2str(e));
        } else if (sscanf(line, "err %d %d %d", &n, &apikey, &code) == 3 && n > 0) {
            rd_kafka_resp_err_t *errs = calloc((size_t)n, sizeof(*errs));
            for (int i = 0; i < n; i++)
                errs[i] = (rd_kafka_resp_err_t)code;
            rd_kafka_mock_push_request_errors_array(mc, (int16_t)apikey, (size_t)n, errs);
            free(errs);
            printf("ok\n");
        } else if (sscanf(line, "committed %255s %255s", a, b) == 2) {
            cmd_committed(bootstrap, a, b);
        } else if (sscanf(line, "end %255s", a) == 1) {
            cmd_end(bootstrap, a);
        } else if (strncmp(line, "quit", 4) == 0) {
            break;
        } else {
            printf("error unknown command\n");
        }
    }
    if (k)
        sl_embedded_kafka_stop(k);
    return 0;
}
