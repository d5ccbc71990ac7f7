/* main.c — the sluice command line: run, validate, plugins. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "cfgpolicy.h"
#include "cli.h"
#include "config.h"
#include "loader.h"
#include "log.h"
#include "runtime.h"
#include "state.h"
#include "supervisor.h"
#include "util.h"
#include "web.h"
#ifdef SL_HAVE_EMBEDDED_KAFKA
#include "embedded_kafka.h"
#endif

#ifndef SLUICE_VERSION
#define SLUICE_VERSION "0.0.0"
#endif

static const char usage[] =
    "usage: sluice run [-c sluice.yaml] [--plugin-path DIR]... [--embedded-kafka]\n"
    "                  [--rest ADDR | --no-rest] [--no-auth] [--state-dir DIR] [--pipeline-dir DIR]\n"
    "                  [PIPELINE.yaml | DIR]...\n"
    "       sluice token [-c sluice.yaml] [--state-dir DIR]\n"
    "       sluice tap PIPELINE [STAGE] [--limit N] [--rate R] [--dead-letter] [--json] [--rest ADDR]\n"
    "       sluice top [--rest ADDR]\n"
    "       sluice validate [--plugin-path DIR]... FILE...\n"
    "       sluice plugins [--plugin-path DIR]... [--json]\n"
    "       sluice plugins describe NAME [--json]\n"
    "       sluice --version | --help\n"
    "\n"
    "Runs stream-processing pipelines made of loadable stages (see docs/).\n"
    "Plugins are searched in --plugin-path dirs, $SLUICE_PLUGIN_PATH, the build dir, the install dir.\n"
    "`run` serves the REST API on 127.0.0.1:8083 unless --no-rest ($SLUICE_REST_LISTEN sets the default);\n"
    "calls that change something need 'Authorization: Bearer TOKEN' unless --no-auth; `sluice token`\n"
    "prints TOKEN ($SLUICE_REST_TOKEN, else rest.token, else STATE_DIR/rest.token, made at first start).\n"
    "State dir: --state-dir, else $SLUICE_STATE_DIR, else $XDG_STATE_HOME/sluice, else ~/.local/state/sluice.\n"
    "Exit codes: 0 ok, 1 runtime failure, 2 bad configuration.\n";

typedef struct opts {
    char **files;
    size_t nfiles;
    const char *host_config;
    int json;
    int embedded_kafka;
    const char *rest_listen; /* --rest ADDR */
    int no_rest;
    const char *pipeline_dir;
    const char *state_dir; /* --state-dir DIR */
    int no_auth;
} opts;

static void add_file(opts *o, const char *f)
{
    o->files = xrealloc(o->files, (o->nfiles + 1) * sizeof *o->files);
    o->files[o->nfiles++] = xstrdup(f);
}

static int parse_opts(int argc, char **argv, opts *o)
{
    static const struct option longopts[] = {
        {"plugin-path", required_argument, NULL, 'p'},
        {"config", required_argument, NULL, 'c'},
        {"json", no_argument, NULL, 'j'},
        {"embedded-kafka", no_argument, NULL, 'k'},
        {"rest", required_argument, NULL, 'r'},
        {"no-rest", no_argument, NULL, 'R'},
        {"pipeline-dir", required_argument, NULL, 'd'},
        {"state-dir", required_argument, NULL, 's'},
        {"no-auth", no_argument, NULL, 'A'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "p:c:", longopts, NULL)) != -1) {
        switch (c) {
        case 'p': loader_add_dir(optarg); break;
        case 'c': o->host_config = optarg; break;
        case 'j': o->json = 1; break;
        case 'k': o->embedded_kafka = 1; break;
        case 'r': o->rest_listen = optarg; break;
        case 'R': o->no_rest = 1; break;
        case 'd': o->pipeline_dir = optarg; break;
        case 's': o->state_dir = optarg; break;
        case 'A': o->no_auth = 1; break;
        default: fputs(usage, stderr); return -1;
        }
    }
    for (int i = optind; i < argc; i++) add_file(o, argv[i]);
    return 0;
}

static int scan_plugins(void)
{
    char err[2048];
    loader_add_default_dirs();
    if (loader_scan(err, sizeof err) != 0) {
        fprintf(stderr, "sluice: plugin refused: %s\n", err);
        return -1;
    }
    return 0;
}

/* ---- host config (sluice.yaml: the "worker config") ---------------------------------------- */

typedef struct host_cfg {
    int embedded;
    int brokers, partitions;
    char **topics;
    size_t ntopics;
    /* rest: */
    char *listen;       /* NULL: default; "off" in the file turns REST off */
    int rest_off;
    char *token;
    int token_for_reads;
    char **allowed_hosts;
    size_t nallowed_hosts;
    int64_t max_body;
    char *pipeline_dir;
    char *data_dir;
    int64_t scale_window_ms, scale_interval_ms;
    double scale_lag_low;
} host_cfg;

/* The host config's `rest:` map. */
static int load_rest_config(const ynode *n, const char *path, const char *dir, host_cfg *hc)
{
#define RFAIL(at, ...) do { fprintf(stderr, "sluice: %s:%d:%d: rest: ", path, (at)->line, (at)->col); \
                            fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); return -1; } while (0)
    if (n->kind == YN_SCALAR && (!strcmp(n->str, "off") || !strcmp(n->str, "false"))) {
        hc->rest_off = 1;
        return 0;
    }
    if (n->kind != YN_MAP) RFAIL(n, "expected a map (listen, token, token_for_reads, allowed_hosts, max_body, pipeline_dir, autoscale) or 'off'");
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i]->str;
        const ynode *v = n->items[i];
        if (!strcmp(k, "autoscale")) {
            if (v->kind != YN_MAP) RFAIL(v, "autoscale: expected a map (window, interval, lag_low)");
            for (size_t j = 0; j < v->n; j++) {
                const char *ak = v->keys[j]->str;
                const ynode *av = v->items[j];
                if (av->kind != YN_SCALAR) RFAIL(av, "autoscale.%s must be a scalar", ak);
                if (!strcmp(ak, "window") || !strcmp(ak, "interval")) {
                    int64_t ms;
                    if (sl_parse_duration(av->str, &ms) != SL_OK || ms < 100) RFAIL(av, "autoscale.%s must be a duration >= 100ms", ak);
                    *(ak[0] == 'w' ? &hc->scale_window_ms : &hc->scale_interval_ms) = ms;
                } else if (!strcmp(ak, "lag_low")) {
                    char *end;
                    hc->scale_lag_low = strtod(av->str, &end);
                    if (*end || hc->scale_lag_low < 0) RFAIL(av, "autoscale.lag_low must be a number >= 0");
                } else {
                    RFAIL(v->keys[j], "unknown key 'autoscale.%s' (window, interval, lag_low)", ak);
                }
            }
            continue;
        }
        if (!strcmp(k, "allowed_hosts")) {
            for (size_t j = 0; j < (v->kind == YN_SEQ ? v->n : 1); j++) {
                const ynode *it = v->kind == YN_SEQ ? v->items[j] : v;
                if (it->kind != YN_SCALAR || !*it->str || strpbrk(it->str, ":/ \t[]"))
                    RFAIL(it, "allowed_hosts: expected host names (no port, scheme or path)");
                hc->allowed_hosts = xrealloc(hc->allowed_hosts, (hc->nallowed_hosts + 1) * sizeof *hc->allowed_hosts);
                hc->allowed_hosts[hc->nallowed_hosts++] = xstrdup(it->str);
            }
            continue;
        }
        if (v->kind != YN_SCALAR) RFAIL(v, "'%s' must be a scalar", k);
        if (!strcmp(k, "listen")) {
            free(hc->listen);
            hc->listen = xstrdup(v->str);
            hc->rest_off = !strcmp(v->str, "off");
        } else if (!strcmp(k, "token")) {
            free(hc->token);
            hc->token = xstrdup(v->str);
        } else if (!strcmp(k, "token_for_reads")) {
            if (strcmp(v->str, "true") && strcmp(v->str, "false")) RFAIL(v, "token_for_reads must be true or false");
            hc->token_for_reads = !strcmp(v->str, "true");
        } else if (!strcmp(k, "max_body")) {
            if (sl_parse_size(v->str, &hc->max_body) != SL_OK || hc->max_body < 1024)
                RFAIL(v, "max_body must be a size >= 1KiB (e.g. 1MiB)");
        } else if (!strcmp(k, "data_dir")) {
            free(hc->data_dir);
            hc->data_dir = v->str[0] == '/' ? xstrdup(v->str) : xasprintf("%s/%s", dir, v->str);
        } else if (!strcmp(k, "pipeline_dir")) {
            free(hc->pipeline_dir);
            hc->pipeline_dir = v->str[0] == '/' ? xstrdup(v->str) : xasprintf("%s/%s", dir, v->str);
        } else {
            RFAIL(n->keys[i], "unknown key '%s' (listen, token, token_for_reads, allowed_hosts, max_body, pipeline_dir, data_dir, autoscale)", k);
        }
    }
    return 0;
#undef RFAIL
}

static int load_host_config(const char *path, opts *o, host_cfg *hc)
{
    char err[2048];
    ytree *t = ytree_load(path, NULL, err, sizeof err);
    if (!t) {
        fprintf(stderr, "sluice: %s\n", err);
        return -1;
    }
    static const char *const keys[] = {"pipelines", "plugin_path", "kafka", "http", "rest", "web"};
    const ynode *r = t->root;
    int rc = -1;
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else strcpy(dir, ".");
#define HFAIL(n, ...) do { fprintf(stderr, "sluice: %s:%d:%d: ", path, (n)->line, (n)->col); \
                           fprintf(stderr, __VA_ARGS__); fputc('\n', stderr); goto out; } while (0)
    if (r->kind != YN_MAP) HFAIL(r, "a host config must be a map");
    for (size_t i = 0; i < r->n; i++) {
        size_t j = 0;
        while (j < sizeof keys / sizeof keys[0] && strcmp(keys[j], r->keys[i]->str)) j++;
        if (j == sizeof keys / sizeof keys[0])
            HFAIL(r->keys[i], "unknown key '%s' (known: pipelines, plugin_path, kafka, http, rest, web)", r->keys[i]->str);
    }
    const ynode *n;
    if ((n = ynode_get(r, "plugin_path"))) {
        for (size_t i = 0; i < (n->kind == YN_SEQ ? n->n : 1); i++) {
            const ynode *it = n->kind == YN_SEQ ? n->items[i] : n;
            if (it->kind != YN_SCALAR) HFAIL(it, "plugin_path items must be directory names");
            char *p = it->str[0] == '/' ? xstrdup(it->str) : xasprintf("%s/%s", dir, it->str);
            loader_add_dir(p);
            free(p);
        }
    }
    if ((n = ynode_get(r, "pipelines"))) {
        for (size_t i = 0; i < (n->kind == YN_SEQ ? n->n : 1); i++) {
            const ynode *it = n->kind == YN_SEQ ? n->items[i] : n;
            if (it->kind != YN_SCALAR) HFAIL(it, "pipelines items must be file or directory names");
            char *p = it->str[0] == '/' ? xstrdup(it->str) : xasprintf("%s/%s", dir, it->str);
            add_file(o, p);
            free(p);
        }
    }
    if ((n = ynode_get(r, "kafka"))) {
        const ynode *e = ynode_get(n, "embedded");
        if (n->kind != YN_MAP || (n->n && !e)) HFAIL(n, "kafka: expected a map with 'embedded'");
        if (e) {
            hc->embedded = 1;
            const ynode *b = ynode_get(e, "brokers"), *pa = ynode_get(e, "partitions"), *tp = ynode_get(e, "topics");
            if (b && (b->kind != YN_SCALAR || (hc->brokers = atoi(b->str)) < 1)) HFAIL(b, "brokers must be >= 1");
            if (pa && (pa->kind != YN_SCALAR || (hc->partitions = atoi(pa->str)) < 1)) HFAIL(pa, "partitions must be >= 1");
            for (size_t i = 0; tp && i < (tp->kind == YN_SEQ ? tp->n : 1); i++) {
                const ynode *it = tp->kind == YN_SEQ ? tp->items[i] : tp;
                if (it->kind != YN_SCALAR) HFAIL(it, "topics must be names");
                hc->topics = xrealloc(hc->topics, (hc->ntopics + 1) * sizeof *hc->topics);
                hc->topics[hc->ntopics++] = xstrdup(it->str);
            }
        }
    }
    if ((n = ynode_get(r, "rest")) && load_rest_config(n, path, dir, hc)) goto out;
    if ((n = ynode_get(r, "web"))) {
        char werr[1024];
        if (web_configure(n, dir, werr, sizeof werr)) {
            fprintf(stderr, "sluice: %s\n", werr);
            goto out;
        }
    }
#undef HFAIL
    rc = 0;
out:
    free(dir);
    ytree_free(t);
    return rc;
}

/* ---- commands ---------------------------------------------------------------------------- */

static int cmd_validate(opts *o)
{
    if (!o->nfiles) {
        fputs("sluice validate: no files given\n", stderr);
        return SL_EXIT_CONFIG;
    }
    if (scan_plugins()) return SL_EXIT_CONFIG;
    int rc = 0;
    for (size_t i = 0; i < o->nfiles; i++) {
        char err[4096];
        pipeline_cfg *p = pipeline_load(o->files[i], err, sizeof err);
        if (!p) {
            fprintf(stderr, "%s\n", err);
            rc = SL_EXIT_CONFIG;
            continue;
        }
        printf("%s: ok (pipeline %s: %zu stages, tasks %d", o->files[i], p->name, p->nstages, p->tasks_min);
        if (p->tasks_max != p->tasks_min) printf("..%d", p->tasks_max);
        printf(")\n");
        pipeline_free(p);
    }
    return rc;
}

static void describe_json(const sl_plugin *pl, sl_buf *b)
{
    const sl_stage_desc *d = pl->desc;
    buf_puts(b, "{\"name\":");
    buf_json_str(b, d->name, strlen(d->name));
    buf_printf(b, ",\"kind\":\"%s\",\"version\":", kind_name(d->kind));
    buf_json_str(b, d->version ? d->version : "", d->version ? strlen(d->version) : 0);
    buf_puts(b, ",\"description\":");
    buf_json_str(b, d->description ? d->description : "", d->description ? strlen(d->description) : 0);
    buf_printf(b, ",\"abi\":\"%u.%u\",\"path\":", d->abi_major, d->abi_minor);
    buf_json_str(b, pl->path, strlen(pl->path));
    buf_puts(b, ",\"config\":[");
    for (const sl_config_entry *e = d->config; e && e->key; e++) {
        buf_printf(b, "%s{\"key\":", e == d->config ? "" : ",");
        buf_json_str(b, e->key, strlen(e->key));
        buf_printf(b, ",\"type\":\"%s\",\"required\":%s", type_name(e->type),
                   (e->flags & SL_CFG_REQUIRED) ? "true" : "false");
        if (e->default_value) {
            buf_puts(b, ",\"default\":");
            buf_json_str(b, e->default_value, strlen(e->default_value));
        }
        if (e->flags & SL_CFG_BOUNDED) buf_printf(b, ",\"min\":%.17g,\"max\":%.17g", e->min, e->max);
        if (e->flags & SL_CFG_OPERATOR_ONLY) buf_puts(b, ",\"operator_only\":true");
        if (e->type == SL_T_ENUM || (e->flags & SL_CFG_KEYS_LISTED)) {
            buf_puts(b, e->type == SL_T_ENUM ? ",\"choices\":[" : ",\"keys\":[");
            for (const char *c = e->choices; *c;) {
                size_t l = strcspn(c, "|");
                if (c != e->choices) buf_puts(b, ",");
                buf_json_str(b, c, l);
                c += l;
                if (*c) c++;
            }
            buf_puts(b, "]");
        }
        buf_puts(b, ",\"description\":");
        buf_json_str(b, e->description ? e->description : "", e->description ? strlen(e->description) : 0);
        buf_puts(b, "}");
    }
    buf_puts(b, "]}");
}

/* A SL_CFG_KEYS_LISTED map: the keys never accepted, then the only ones REST pipelines may set. */
static void describe_keys(const char *choices)
{
    for (int never = 1; never >= 0; never--) {
        printf("\n      %s:", never ? "never accepted" : "the only keys a pipeline created over REST may set");
        for (const char *c = choices; *c;) {
            size_t l = strcspn(c, "|");
            if ((*c == '!') == never) printf(" %.*s", (int)(l - (size_t)never), c + never);
            c += l;
            if (*c) c++;
        }
    }
}

static int cmd_plugins(opts *o)
{
    if (scan_plugins()) return SL_EXIT_CONFIG;
    if (o->nfiles >= 1 && !strcmp(o->files[0], "describe")) {
        if (o->nfiles != 2) {
            fputs("usage: sluice plugins describe NAME [--json]\n", stderr);
            return SL_EXIT_CONFIG;
        }
        char err[1024];
        const sl_plugin *pl = loader_find(o->files[1], err, sizeof err);
        if (!pl) {
            fprintf(stderr, "sluice: %s\n", err);
            return SL_EXIT_CONFIG;
        }
        const sl_stage_desc *d = pl->desc;
        if (o->json) {
            sl_buf b = {0};
            describe_json(pl, &b);
            printf("%s\n", buf_cstr(&b));
            buf_free(&b);
            return 0;
        }
        printf("%s %s (%s) — %s\n  from %s\n\n", d->name, d->version ? d->version : "", kind_name(d->kind),
               d->description ? d->description : "", pl->path);
        printf("  %-20s %-9s %-22s %s\n", "key", "type", "default", "description");
        for (const sl_config_entry *e = d->config; e && e->key; e++) {
            char dflt[64];
            snprintf(dflt, sizeof dflt, "%s", (e->flags & SL_CFG_REQUIRED) ? "(required)" : e->default_value ? e->default_value : "-");
            printf("  %-20s %-9s %-22s %s", e->key, type_name(e->type), dflt, e->description ? e->description : "");
            if (e->type == SL_T_ENUM) printf(" [%s]", e->choices);
            if (e->flags & SL_CFG_BOUNDED) printf(" [%g..%g]", e->min, e->max);
            if (e->flags & SL_CFG_OPERATOR_ONLY) printf(" [operator's files only, not over REST]");
            if (e->flags & SL_CFG_KEYS_LISTED) describe_keys(e->choices);
            printf("\n");
        }
        return 0;
    }
    if (o->nfiles) {
        fputs("usage: sluice plugins [describe NAME] [--json]\n", stderr);
        return SL_EXIT_CONFIG;
    }
    if (o->json) {
        sl_buf b = {0};
        buf_puts(&b, "[");
        for (size_t i = 0; i < loader_count(); i++) {
            if (i) buf_puts(&b, ",");
            describe_json(loader_at(i), &b);
        }
        buf_puts(&b, "]");
        printf("%s\n", buf_cstr(&b));
        buf_free(&b);
        return 0;
    }
    for (size_t i = 0; i < loader_count(); i++) {
        const sl_plugin *pl = loader_at(i);
        printf("%-14s %-9s %-8s %s\n", pl->desc->name, kind_name(pl->desc->kind),
               pl->desc->version ? pl->desc->version : "", pl->desc->description ? pl->desc->description : "");
    }
    return 0;
}

/* The child side of the supervisor: run one pipeline in this process. */
static int cmd_pipeline(opts *o)
{
    if (o->nfiles != 1) {
        fputs("usage: sluice __pipeline FILE\n", stderr);
        return SL_EXIT_CONFIG;
    }
    const char *fd = getenv("SLUICE_STATUS_FD");
    char err[1024];
    if (cfg_policy_from_env(err, sizeof err)) { /* the checked text and its policy */
        fprintf(stderr, "sluice: %s\n", err);
        return SL_EXIT_CONFIG;
    }
    return sl_run_pipeline_file(o->files[0], NULL, 0, fd ? atoi(fd) : -1);
}

/* The REST API's token (or --no-auth), checked before anything starts. */
static int setup_auth(const opts *o, const host_cfg *hc, const char *listen, const char *state_dir)
{
    if (o->no_auth) {
        if (!auth_listen_is_loopback(listen)) {
            fprintf(stderr, "sluice: refusing to serve the REST API on %s without a token: anyone who can reach it could "
                            "change pipelines. Bind a loopback address (--rest 127.0.0.1:PORT) or drop --no-auth.\n", listen);
            return -1;
        }
        log_warn("--no-auth: the REST API accepts changes from any local process without a token (Kafka Connect's "
                 "old behaviour); cross-site browser requests are still refused");
        auth_configure(NULL, 0, listen, hc->allowed_hosts, hc->nallowed_hosts);
        return 0;
    }
    char err[1024];
    const char *from = NULL;
    char *token = state_token(state_dir, hc->token, &from, err, sizeof err);
    if (!token) {
        fprintf(stderr, "sluice: REST token: %s\n", err);
        return -1;
    }
    auth_configure(token, hc->token_for_reads, listen, hc->allowed_hosts, hc->nallowed_hosts);
    memset(token, 0, strlen(token));
    free(token);
    log_info("REST API changes need 'Authorization: Bearer TOKEN'; TOKEN from %s (print it with `sluice token`)", from);
    return 0;
}

static int cmd_run(opts *o, const char *exe)
{
    host_cfg hc = {0};
    int rc = SL_EXIT_CONFIG;
    char *state_dir = NULL, *rest_dir = NULL;
    if (o->host_config && load_host_config(o->host_config, o, &hc)) goto done;
    /* REST: --no-rest / --rest ADDR, else the host config, else $SLUICE_REST_LISTEN, else the
     * Kafka Connect default port on loopback. */
    const char *listen = o->rest_listen ? o->rest_listen : hc.listen ? hc.listen : getenv("SLUICE_REST_LISTEN");
    if (!listen || !*listen) listen = "127.0.0.1:8083";
    if (o->no_rest || (!o->rest_listen && hc.rest_off) || !strcmp(listen, "off")) listen = NULL;
    char err[1024];
    state_dir = state_dir_open(o->state_dir, err, sizeof err);
    if (!state_dir) {
        fprintf(stderr, "sluice: state directory: %s\n", err);
        goto done;
    }
    /* Pipeline processes and their stages find it here (e.g. for default offset files). */
    setenv("SLUICE_STATE_DIR", state_dir, 1);
    /* Files of pipelines created over REST: rest.data_dir, else $SLUICE_DATA_DIR, else STATE/data;
     * never the state directory's token, pipelines or offsets. */
    cfg_forbid_around_data(state_dir);
    if (!hc.data_dir && getenv("SLUICE_DATA_DIR") && *getenv("SLUICE_DATA_DIR")) hc.data_dir = xstrdup(getenv("SLUICE_DATA_DIR"));
    if (!hc.data_dir) {
        hc.data_dir = xasprintf("%s/data", state_dir);
        if (mkdir(hc.data_dir, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "sluice: %s: %s\n", hc.data_dir, strerror(errno));
            goto done;
        }
    }
    if (listen && setup_auth(o, &hc, listen, state_dir)) goto done;
    /* Pipelines (and whatever their stages run) have no business with the token. */
    unsetenv("SLUICE_REST_TOKEN");
    /* REST-created pipelines live in the pipeline directory: configured, else the state
     * directory's connectors/ (only with REST: --no-rest runs just the files given). */
    if (listen && !o->pipeline_dir && !hc.pipeline_dir) {
        rest_dir = xasprintf("%s/connectors", state_dir);
        if (mkdir(rest_dir, 0700) != 0 && errno != EEXIST) {
            fprintf(stderr, "sluice: %s: %s\n", rest_dir, strerror(errno));
            goto done;
        }
    }
    const char *pdir = o->pipeline_dir ? o->pipeline_dir : hc.pipeline_dir ? hc.pipeline_dir : rest_dir;
    if (!o->nfiles && !pdir) {
        fputs("sluice run: no pipeline files given (and --no-rest: none can be created over REST)\n", stderr);
        goto done;
    }
    if (o->embedded_kafka) hc.embedded = 1;
#ifdef SL_HAVE_EMBEDDED_KAFKA
    sl_embedded_kafka *ek = NULL;
    if (hc.embedded) {
        static const char *const dflt_topics[] = {"events_raw", "events_dlq"};
        char err[1024];
        ek = sl_embedded_kafka_start(hc.brokers ? hc.brokers : 1, hc.partitions ? hc.partitions : 16,
                                     hc.ntopics ? (const char *const *)hc.topics : dflt_topics,
                                     hc.ntopics ? hc.ntopics : 2, err, sizeof err);
        if (!ek) {
            fprintf(stderr, "sluice: embedded Kafka failed to start: %s\n", err);
            rc = SL_EXIT_RUNTIME;
            goto done;
        }
        setenv("KAFKA_BROKERS", sl_embedded_kafka_bootstrap(ek), 1);
        log_info("embedded Kafka (librdkafka mock cluster, in memory) at %s; KAFKA_BROKERS set",
                 sl_embedded_kafka_bootstrap(ek));
    }
#else
    if (hc.embedded) {
        fputs("sluice: this build has no embedded Kafka\n", stderr);
        goto done;
    }
#endif
    if (!scan_plugins()) {
        /* Children find the same plugins: pass the search path down explicitly. */
        sl_buf path = {0};
        for (size_t i = 0; i < loader_count(); i++) {
            char *d = xstrdup(loader_at(i)->path), *s = strrchr(d, '/');
            if (s) *s = 0;
            if (path.len) buf_puts(&path, ":");
            buf_puts(&path, d);
            free(d);
        }
        if (path.len) setenv("SLUICE_PLUGIN_PATH", buf_cstr(&path), 1);
        buf_free(&path);
        sup_options so = {
            .exe = exe,
            .sources = o->files,
            .nsources = o->nfiles,
            .pipeline_dir = pdir,
            .data_dir = hc.data_dir,
            .rest_listen = listen,
            .max_body = hc.max_body ? (size_t)hc.max_body : 1 << 20,
            .scale_window_ms = hc.scale_window_ms ? hc.scale_window_ms : 30000,
            .scale_interval_ms = hc.scale_interval_ms ? hc.scale_interval_ms : 5000,
            .scale_lag_low = hc.scale_lag_low,
        };
        rc = supervisor_run(&so);
    }
#ifdef SL_HAVE_EMBEDDED_KAFKA
    if (ek) sl_embedded_kafka_stop(ek);
#endif
done:
    for (size_t i = 0; i < hc.ntopics; i++) free(hc.topics[i]);
    free(hc.topics);
    free(hc.listen);
    free(hc.token);
    free(hc.pipeline_dir);
    free(hc.data_dir);
    for (size_t i = 0; i < hc.nallowed_hosts; i++) free(hc.allowed_hosts[i]);
    free(hc.allowed_hosts);
    free(state_dir);
    free(rest_dir);
    web_shutdown();
    auth_shutdown();
    return rc;
}

/* Prints the REST token `sluice run` with the same options uses (creating it on first use). */
static int cmd_token(opts *o)
{
    host_cfg hc = {0};
    int rc = SL_EXIT_CONFIG;
    char err[1024], *dir = NULL, *tok = NULL;
    const char *from;
    if (o->nfiles) fputs("usage: sluice token [-c sluice.yaml] [--state-dir DIR]\n", stderr);
    else if (!o->host_config || !load_host_config(o->host_config, o, &hc)) {
        if (!(dir = state_dir_open(o->state_dir, err, sizeof err))) fprintf(stderr, "sluice: state directory: %s\n", err);
        else if (!(tok = state_token(dir, hc.token, &from, err, sizeof err))) fprintf(stderr, "sluice: REST token: %s\n", err);
        else {
            printf("%s\n", tok);
            rc = 0;
        }
    }
    free(tok);
    free(dir);
    for (size_t i = 0; i < hc.ntopics; i++) free(hc.topics[i]);
    free(hc.topics);
    free(hc.listen);
    free(hc.token);
    free(hc.pipeline_dir);
    for (size_t i = 0; i < hc.nallowed_hosts; i++) free(hc.allowed_hosts[i]);
    free(hc.allowed_hosts);
    web_shutdown();
    return rc;
}

/* A pipeline process the supervisor started dies with it: an orphan would keep consuming, and a
 * restarted supervisor would run a second copy. posix_spawn cannot set PR_SET_PDEATHSIG, so the
 * child sets it first thing (SIGTERM: it drains and commits), then checks that its parent is
 * still the supervisor that started it, which closes the window before prctl. */
static void die_with_supervisor(void)
{
    const char *sp = getenv("SLUICE_SUPERVISOR_PID");
    if (!sp) return;
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != (pid_t)atol(sp)) _exit(1);
    signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the whole group; the supervisor relays SIGTERM */
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "__pipeline")) die_with_supervisor();
    sl_log_init();
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? SL_EXIT_CONFIG : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("sluice %s (stage ABI %d.%d)\n", SLUICE_VERSION, SL_ABI_MAJOR, SL_ABI_MINOR);
        return 0;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        perror("sluice: /proc/self/exe");
        return SL_EXIT_RUNTIME;
    }
    exe[n] = 0;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "tap")) return cmd_tap(argc - 1, argv + 1); /* host/tap_cli.c */
    if (!strcmp(cmd, "top")) return cmd_top(argc - 1, argv + 1); /* host/top.c */
    opts o = {0};
    if (parse_opts(argc - 1, argv + 1, &o)) return SL_EXIT_CONFIG;
    int rc;
    if (!strcmp(cmd, "run")) rc = cmd_run(&o, exe);
    else if (!strcmp(cmd, "validate")) rc = cmd_validate(&o);
    else if (!strcmp(cmd, "plugins")) rc = cmd_plugins(&o);
    else if (!strcmp(cmd, "token")) rc = cmd_token(&o);
    else if (!strcmp(cmd, "__pipeline")) rc = cmd_pipeline(&o);
    else {
        fprintf(stderr, "sluice: unknown command '%s'\n\n%s", cmd, usage);
        rc = SL_EXIT_CONFIG;
    }
    for (size_t i = 0; i < o.nfiles; i++) free(o.files[i]);
    free(o.files);
    return rc;
}
