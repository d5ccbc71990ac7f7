/* The supervisor's view of a child's status line: parsed once into sup_status, and the
 * per-pipeline /metrics series made from it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor.h"

static int failures;
#define CHECK(c, ...)                                                                                                  \
    do {                                                                                                               \
        if (!(c)) {                                                                                                    \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                                       \
            fprintf(stderr, __VA_ARGS__);                                                                              \
            fputc('\n', stderr);                                                                                       \
            failures++;                                                                                                \
        }                                                                                                              \
    } while (0)

static const char *line =
    "{\"pipeline\":\"x\",\"state\":\"RUNNING\",\"pid\":1,\"tasks\":2,\"le\":[0.1,1],"
    "\"task_states\":[\"RUNNING\",\"DONE\"],"
    "\"stages\":[{\"name\":\"in\",\"use\":\"kafka-source\",\"in\":0,\"out\":42,\"rejected\":0,\"dropped\":0,"
    "\"retries\":0,\"counters\":[],\"per_task\":[[0,40,0,0],[0,2,0,0]],"
    "\"batch\":{\"name\":\"batch\",\"buckets\":[1,0,0],\"count\":1,\"sum\":0.01},\"hists\":[]}],"
    /* partition 0 moved from task 0 to task 1 in a rebalance: both list it */
    "\"offsets\":[{\"task\":0,\"topic\":\"t\",\"partition\":0,\"offset\":100},"
    "{\"task\":1,\"topic\":\"t\",\"partition\":0,\"offset\":150},"
    "{\"task\":1,\"topic\":\"t\",\"partition\":1,\"offset\":7}],"
    "\"assigned\":[{\"task\":1,\"topic\":\"t\",\"partition\":0},{\"task\":1,\"topic\":\"t\",\"partition\":1}],"
    "\"e2e\":{\"name\":\"e2e\",\"buckets\":[0,0,0],\"count\":0,\"sum\":0},\"error\":\"boom \\\"quoted\\\"\"}";

int main(void)
{
    sup_pipeline p = {.name = "x", .state = SUP_RUNNING, .tasks = 2, .status = {.tasks = -1, .nassigned = -1}};
    CHECK(sup_status_parse(line, &p.status) == 0, "status line parses");
    CHECK(p.status.valid && p.status.tasks == 2, "tasks %d", p.status.tasks);
    CHECK(p.status.ntask_states == 2 && !strcmp(p.status.task_states[1], "DONE"), "task states");
    CHECK(p.status.nstages == 1 && p.status.stages[0].out == 42 && !strcmp(p.status.stages[0].use, "kafka-source"),
          "stage totals");
    CHECK(p.status.noffsets == 3 && p.status.offsets[1].offset == 150 && p.status.offsets[1].task == 1, "offsets");
    CHECK(p.status.nassigned == 2, "assigned %d", p.status.nassigned);
    CHECK(p.status.error && !strcmp(p.status.error, "boom \"quoted\""), "error unescaped: %s", p.status.error);

    /* A line that is not JSON changes nothing. */
    CHECK(sup_status_parse("{\"pipeline\":", &p.status) == -1 && p.status.valid && p.status.tasks == 2,
          "bad line keeps the previous status");

    sl_metrics m = {0};
    sup_pipeline_series(&p, &m);
    sl_buf out = {0};
    metrics_render(&m, &out);
    const char *text = buf_cstr(&out);
    /* The committed offset is a position, never a sum of the tasks that listed it. */
    CHECK(strstr(text, "sluice_committed_offset{pipeline=\"x\",topic=\"t\",partition=\"0\"} 150\n"),
          "committed offset of partition 0 is the furthest (150), not the sum:\n%s", text);
    CHECK(strstr(text, "sluice_committed_offset{pipeline=\"x\",topic=\"t\",partition=\"1\"} 7\n"), "partition 1");
    CHECK(strstr(text, "sluice_records_out_total{pipeline=\"x\",stage=\"in\",task=\"0\"} 40\n"), "per-task counters");
    metrics_free(&m);
    buf_free(&out);
    sup_status_free(&p.status);
    if (failures) return 1;
    puts("ok");
    return 0;
}
