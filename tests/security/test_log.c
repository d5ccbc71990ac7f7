/* The logger: every line is one line of at most 4096 bytes, whatever the pipeline name, stage
 * name or message (a 4 KB stage name used to overflow the line buffer), and no input can forge a
 * line or a field: newlines, control bytes and quotes are escaped. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

static int failures;
#define CHECK(c, ...) do { if (!(c)) { fprintf(stdout, "FAIL: " __VA_ARGS__); fputc('\n', stdout); failures++; } \
                           else printf("ok - %s\n", #c); } while (0)

/* Runs one log call with stderr sent to a file; returns what was written (malloc'd). */
static char *capture(const char *pipeline, const char *stage, const char *msg)
{
    char path[] = "/tmp/sluice-test-log.XXXXXX";
    int fd = mkstemp(path);
    int saved = dup(2);
    dup2(fd, 2);
    sl_log_set_pipeline(pipeline);
    sl_log(SL_LOG_WARN, stage, "%s", msg);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *f = fopen(path, "rb");
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    close(fd);
    unlink(path);
    return buf;
}

static size_t count(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++) n += *s == c;
    return n;
}

int main(void)
{
    sl_log_init();
    char *big = malloc(5000);
    memset(big, 'x', 4999);
    big[4999] = 0;
    char *out = capture(big, big, big);
    CHECK(count(out, '\n') == 1, "a huge pipeline, stage and message give one line (%zu newlines)", count(out, '\n'));
    CHECK(strlen(out) <= 4096, "the line is clamped to 4096 bytes (got %zu)", strlen(out));
    CHECK(out[strlen(out) - 2] == '"', "a clamped message still ends with its closing quote");
    free(out);

    out = capture("p", "st\nlevel=error msg=\"forged\"", "hello\nts=2020 level=error msg=forged\r\x01\x7f \"q\" \\");
    CHECK(count(out, '\n') == 1, "newlines in names and messages do not start a new line: %s", out);
    CHECK(strstr(out, "stage=\"st\\nlevel=error msg=\\\"forged\\\"\"") != NULL, "a stage name with a newline is quoted and escaped: %s", out);
    CHECK(strstr(out, "\\r\\x01\\x7f \\\"q\\\" \\\\\"") != NULL, "control bytes, quotes and backslashes are escaped: %s", out);
    CHECK(strstr(out, " pipeline=p ") != NULL, "a plain name stays bare: %s", out);
    free(out);
    free(big);
    if (failures) return 1;
    puts("all log checks passed");
    return 0;
}
