/* libFuzzer target: the YAML config loader on arbitrary bytes, with and without ${VAR}
 * expansion; whatever loads is also rendered as JSON (what GET .../config does). Caps on
 * bytes, nodes (after aliases), depth and keys keep every input bounded. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "yamltree.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    char err[1024];
    for (unsigned flags = 0; flags <= YT_NO_ENV; flags += YT_NO_ENV) {
        ytree *t = ytree_load_opts("fuzz.yaml", text, flags, err, sizeof err);
        if (t) {
            sl_buf b = {0};
            ynode_to_json(t->root, &b);
            buf_free(&b);
            ytree_free(t);
        }
    }
    free(text);
    return 0;
}
