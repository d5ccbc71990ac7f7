/* Unit tests of the config primitives: durations, sizes, interpolation, did-you-mean, names,
 * duplicate keys and the confinement of untrusted paths. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"
#include "cfgpolicy.h"
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

    /* Untrusted text: no ${VAR}; the text as written is what messages show. */
    t = ytree_load_opts("rest.yaml", "a: ${SL_T_A}\n", YT_NO_ENV, err, sizeof err);
    CHECK(t && !strcmp(ynode_get(t->root, "a")->str, "${SL_T_A}"), "YT_NO_ENV keeps ${...}");
    ytree_free(t);
    t = ytree_load("op.yaml", "a: ${SL_T_A}\n", err, sizeof err);
    CHECK(t && !strcmp(ynode_text(ynode_get(t->root, "a")), "${SL_T_A}"), "ynode_text shows the text as written");
    ytree_free(t);
    /* Duplicate keys, found by sorting: the first duplicate in document order is named. */
    t = ytree_load("dup.yaml", "b: 1\na: 2\nc: 3\na: 4\nb: 5\n", err, sizeof err);
    CHECK(!t && strstr(err, "dup.yaml:4:1: duplicate key 'a' (first at line 2)"), "duplicate: %s", err);

    /* Names. */
    CHECK(cfg_valid_name("a") && cfg_valid_name("A.b_c-9") && !cfg_valid_name("") && !cfg_valid_name("-a") &&
          !cfg_valid_name(".a") && !cfg_valid_name("a b") && !cfg_valid_name("a\nb") && !cfg_valid_name("a/b"),
          "name rule");
    char n64[66];
    memset(n64, 'n', 65);
    n64[64] = 0;
    CHECK(cfg_valid_name(n64), "64 characters are a name");
    n64[64] = 'n';
    n64[65] = 0;
    CHECK(!cfg_valid_name(n64), "65 characters are not");

    /* Paths of untrusted pipelines stay in the data directory. */
    char dd[] = "/tmp/sluice-cfgtest.XXXXXX";
    CHECK(mkdtemp(dd) != NULL, "mkdtemp");
    char real[4096];
    CHECK(realpath(dd, real) != NULL, "realpath");
    cfg_policy pol = {.untrusted = 1, .data_dir = real};
    char why[256], *r;
    r = cfg_resolve_path(&pol, "/ignored", "in/x.ndjson", why, sizeof why);
    CHECK(r && !strncmp(r, real, strlen(real)) && strstr(r, "/in/x.ndjson"), "relative: %s", r ? r : why);
    free(r);
    CHECK(!cfg_resolve_path(&pol, NULL, "../x", why, sizeof why), "..");
    CHECK(!cfg_resolve_path(&pol, NULL, "a/../../x", why, sizeof why), "inner ..");
    CHECK(!cfg_resolve_path(&pol, NULL, "/etc/passwd", why, sizeof why), "absolute outside");
    CHECK(!cfg_resolve_path(&pol, NULL, "-", why, sizeof why), "stdin/stdout");
    char link[4200];
    snprintf(link, sizeof link, "%s/out", real);
    CHECK(symlink("/etc", link) == 0, "symlink");
    CHECK(!cfg_resolve_path(&pol, NULL, "out/passwd", why, sizeof why), "symlink out: %s", why);
    cfg_policy none = {.untrusted = 1};
    CHECK(!cfg_resolve_path(&none, NULL, "x", why, sizeof why) && strstr(why, "data directory"), "no data dir");
    r = cfg_resolve_path(NULL, "/base", "rel/x", why, sizeof why);
    CHECK(r && !strcmp(r, "/base/rel/x"), "trusted relative: %s", r);
    free(r);
    unlink(link);
    rmdir(dd);
    if (failures) return 1;
    printf("config units passed\n");
    return 0;
}
