/* libFuzzer target for the strict JSON check (host/jsoncheck.c) and http-source's body parser
 * (hs_parse_body in both modes), compiled in with instrumentation.
 * Invariants:
 *   - a refusal has a reason that says where ("byte N: ...");
 *   - what the check accepts, cJSON parses, and printing and re-parsing it gives the same tree
 *     that the check accepts again (so nothing accepted is changed on its way through sluice);
 *   - listen mode: a body is accepted only if every record passes the check; poll mode: a record
 *     is kept clean exactly when it passes the check, else it carries a reason;
 *   - nothing crashes, leaks or reads out of bounds (ASan + UBSan). */
#include "../../host/jsoncheck.h"
#include "../../plugins/http-source/hs.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void check_items(const items *it, int listen)
{
    char why[200];
    for (size_t i = 0; i < it->n; i++) {
        int bad = sl_json_check(it->body + it->off[i], it->len[i], 0, why, sizeof why) != 0;
        int marked = it->why && it->why[i];
        if (listen ? bad : bad != marked) {
            fprintf(stderr, "item %zu: check says %s, parser says %s\n", i, bad ? why : "ok", marked ? it->why[i] : "ok");
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char why[200];
    if (sl_json_check(data, size, 0, why, sizeof why) != 0) {
        if (strncmp(why, "byte ", 5) != 0)
            abort(); /* every reason says where */
    } else {
        cJSON *j = cJSON_ParseWithLength((const char *)data, size);
        if (!j) {
            fprintf(stderr, "accepted by the check, refused by cJSON: %.*s\n", (int)size, (const char *)data);
            abort();
        }
        char *out = cJSON_PrintUnformatted(j);
        if (out) {
            if (sl_json_check(out, strlen(out), 0, why, sizeof why) != 0) {
                fprintf(stderr, "cJSON's own print refused: %s: %s\n", why, out);
                abort();
            }
            cJSON *again = cJSON_Parse(out);
            if (!again || !cJSON_Compare(j, again, 1)) {
                fprintf(stderr, "not the same tree after a round trip: %s\n", out);
                abort();
            }
            cJSON_Delete(again);
            free(out);
        }
        cJSON_Delete(j);
    }
    for (int listen = 0; listen <= 1; listen++) {
        char *body = malloc(size + 1);
        if (!body)
            return 0;
        memcpy(body, data, size);
        items it;
        int rc = hs_parse_body(body, size, listen, &it, why, sizeof why);
        if (rc == 0)
            check_items(&it, listen);
        items_free(&it);
    }
    return 0;
}
