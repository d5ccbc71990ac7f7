/* libFuzzer target for the transform stage's config reader (texts come from REST pipelines too):
 * the input is handed to t_init as the `ops` JSON text, as the host does with the YAML subtree.
 * Invariants: init either succeeds (and close frees everything) or refuses with SL_ECONFIG and
 * logs exactly one error line naming ops[i]; nothing crashes, leaks or reads out of bounds.
 * transform.c is included, not dlopened, so it is instrumented and its statics are reachable.
 * The API table is the real host's (sl_host_api) with `log` replaced: the host's log needs a
 * running pipeline's ctx, and the fuzzer checks what would be logged. */
#include "../../plugins/transform/transform.c"

#include <stdio.h>

extern const sl_api sl_host_api;

static int nerrors;
static char last[1200];

static void fuzz_log(sl_ctx *ctx, sl_log_level level, const char *fmt, ...)
{
    (void)ctx;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last, sizeof last, fmt, ap);
    va_end(ap);
    if (level == SL_LOG_ERROR) nerrors++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sl_api api;
    if (!api.struct_size) {
        api = sl_host_api;
        api.log = fuzz_log;
    }
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    tconf conf = {.ops = text};
    void *self = NULL;
    nerrors = 0;
    sl_err e = t_init(NULL, &api, &conf, &self);
    if (e == SL_OK) {
        if (!self || nerrors) abort();
        t_close(self, NULL);
    } else {
        if (e != SL_ECONFIG || nerrors != 1 || self) abort();
        if (strncmp(last, "ops[", 4) && strncmp(last, "'ops'", 5)) abort();
    }
    free(text);
    return 0;
}
