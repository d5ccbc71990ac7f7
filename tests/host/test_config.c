/* Unit tests of the config primitives: durations, sizes, interpolation, did-you-mean. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"
#include "yamltree.h"

static int failures;
#define CHECK(c, ...) do { if (!(c)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); } } while (0)

static void dur(const char *s, int ok, int64_t want)
{
    int64_t v = -1;
    sl_err rc = sl_parse_duration(s, &v);
    CHECK((rc == SL_OK) == ok && (!ok || v == want), "duration '%s': rc %d v %lld", s, rc, (long long)v);
}

static void size(const char *s, int ok, int64_t want)
{
    int64_t v = -1;
    sl_err rc = sl_parse_size(s, &v);
    CHECK((rc == SL_OK) == ok && (!ok || v == want), "size '%s': rc %d v %lld", s, rc, (long long)v);
}

int main(void)
{
    dur("500ms", 1, 500); dur("10s", 1, 10000); dur("5m", 1, 300000); dur("1h30m", 1, 5400000);
    dur("2d", 1, 172800000); dur("250", 1, 250); dur("1.5s", 1, 1500); dur("", 0, 0);
    dur("10 parsecs", 0, 0); dur("-5s", 0, 0); dur("5x", 0, 0); dur("1h30", 0, 0);
    size("64KiB", 1, 65536); size("8MiB", 1, 8388608); size("100kB", 1, 100000); size("512", 1, 512);
    size("1GiB", 1, 1073741824); size("1 MB", 1, 1000000); size("lots", 0, 0); size("-1KiB", 0, 0);

    char err[512];
    setenv("SL_T_A", "alpha", 1);
    unsetenv("SL_T_UNSET");
    setenv("SL_T_EMPTY", "", 1);
    ytree *t = ytree_load("inline.yaml", "a: ${SL_T_A}\nb: x-${SL_T_UNSET:-dflt}-y\nc: $${literal}\nd: ${SL_T_EMPTY:-e}\n", err, sizeof err);
    CHECK(t != NULL, "load failed: %s", err);
    if (t) {
        CHECK(!strcmp(ynode_get(t->root, "a")->str, "alpha"), "a = %s", ynode_get(t->root, "a")->str);
        CHECK(!strcmp(ynode_get(t->root, "b")->str, "x-dflt-y"), "b = %s", ynode_get(t->root, "b")->str);
        CHECK(!strcmp(ynode_get(t->root, "c")->str, "${literal}"), "c = %s", ynode_get(t->root, "c")->str);
        CHECK(!strcmp(ynode_get(t->root, "d")->str, "e"), "d = %s", ynode_get(t->root, "d")->str);
        CHECK(ynode_get(t->root, "b")->line == 2 && ynode_get(t->root, "b")->col == 4, "marks of b");
        ytree_free(t);
    }
    t = ytree_load("inline.yaml", "a: 1\nb: ${SL_T_UNSET}\n", err, sizeof err);
    CHECK(!t && strstr(err, "inline.yaml:2:4: environment variable SL_T_UNSET is not set"), "unset: %s", err);

    t = ytree_load("j.yaml", "{n: 12, s: '12', b: true, l: [1, x], m: {k: v}, z: 007}", err, sizeof err);
    CHECK(t != NULL, "json tree: %s", err);
    if (t) {
        sl_buf b = {0};
        ynode_to_json(t->root, &b);
        CHECK(!strcmp(buf_cstr(&b), "{\"n\":12,\"s\":\"12\",\"b\":true,\"l\":[1,\"x\"],\"m\":{\"k\":\"v\"},\"z\":\"007\"}"),
              "json: %s", buf_cstr(&b));
        buf_free(&b);
        ytree_free(t);
    }
    CHECK(sl_edit_distance("folow", "follow") == 1, "edit distance");
    CHECK(sl_edit_distance("abc", "xyz") == 3, "edit distance 3");
    if (failures) return 1;
    printf("config units passed\n");
    return 0;
}
