/* tap.c — live record samples from pipeline processes to SSE clients (see tap.h). */
#include "tap.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sse.h"
#include "yamltree.h"

#define TAP_DEAD 63 /* as in tap_child.h: the dead letters */

typedef struct listener {
    struct listener *next;
    sse_client *c;
    char *pipeline;
    uint64_t mask;  /* bits: stage indexes, TAP_DEAD */
    double rate, tokens;
    long long last_ms;
    long long limit, sent; /* limit 0: no limit */
} listener;

static listener *listeners;

/* What a pipeline's process is told: the union of its listeners' stages, each at the highest
 * rate asked for it. An empty list stops sampling. */
static void send_taps(sup_pipeline *p)
{
    double rate[64] = {0};
    for (listener *l = listeners; l; l = l->next)
        if (!strcmp(l->pipeline, p->name))
            for (int i = 0; i < 64; i++)
                if ((l->mask >> i) & 1 && l->rate > rate[i]) rate[i] = l->rate;
    sl_buf b = {0};
    buf_puts(&b, "T[");
    int n = 0;
    for (int i = 0; i < 64; i++)
        if (rate[i] > 0) buf_printf(&b, "%s{\"bit\":%d,\"rate\":%g}", n++ ? "," : "", i, rate[i]);
    buf_puts(&b, "]\n");
    /* Short enough to be written whole (PIPE_BUF); a full pipe means the process is stuck and
     * will be told again when it restarts. */
    if (p->ctl_fd >= 0 && write(p->ctl_fd, b.data, b.len) != (ssize_t)b.len)
        log_warn("pipeline %s: cannot send tap request: %s", p->name, strerror(errno));
    buf_free(&b);
}

void tap_child_started(sup_pipeline *p)
{
    for (listener *l = listeners; l; l = l->next)
        if (!strcmp(l->pipeline, p->name)) {
            send_taps(p);
            return;
        }
}

static void closed(sse_client *c, void *arg)
{
    (void)c;
    listener *l = arg;
    for (listener **pp = &listeners; *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    sup_pipeline *p = sup_find(l->pipeline);
    if (p) send_taps(p); /* the last listener gone: the process stops sampling */
    log_debug("tap on %s closed after %lld records", l->pipeline, l->sent);
    free(l->pipeline);
    free(l);
}

int tap_status_line(sup_pipeline *p, const char *line)
{
    if (strncmp(line, "{\"tap\":", 7)) return 0;
    cJSON *j = cJSON_Parse(line);
    const cJSON *bit = cJSON_GetObjectItemCaseSensitive(j, "bit");
    if (cJSON_IsNumber(bit) && bit->valueint >= 0 && bit->valueint < 64) {
        long long now = sl_monotonic_ms();
        for (listener *l = listeners, *next; l; l = next) {
            next = l->next;
            if (strcmp(l->pipeline, p->name) || !((l->mask >> bit->valueint) & 1)) continue;
            /* Each listener gets at most its own rate (another may have asked for more). */
            l->tokens += l->rate * (double)(now - l->last_ms) / 1000.0;
            if (l->tokens > (l->rate < 1 ? 1 : l->rate)) l->tokens = l->rate < 1 ? 1 : l->rate;
            l->last_ms = now;
            if (l->tokens < 1 || (l->limit && l->sent >= l->limit)) continue;
            l->tokens -= 1;
            if (sse_send(l->c, "record", line) == 0 && ++l->sent == l->limit) sse_close(l->c);
        }
    }
    cJSON_Delete(j);
    return 1;
}

/* The stage names of a definition, in chain order (the dead-letter sink is not one). */
int tap_stage_index(const sup_pipeline *p, const char *stage, int *nstages, sl_buf *names)
{
    char err[256];
    ytree *t = p->def ? ytree_load_opts(p->file, p->def, YT_NO_ENV, err, sizeof err) : NULL;
    const ynode *st = t ? ynode_get(t->root, "stages") : NULL;
    int found = -1;
    *nstages = 0;
    for (size_t i = 0; st && st->kind == YN_SEQ && i < st->n; i++) {
        const ynode *nm = ynode_get(st->items[i], "name"), *use = ynode_get(st->items[i], "use");
        const char *name = nm && nm->kind == YN_SCALAR ? nm->str : use && use->kind == YN_SCALAR ? use->str : "";
        if (names->len) buf_puts(names, ", ");
        buf_puts(names, name);
        if (stage && found < 0 && !strcmp(name, stage)) found = (int)i;
        (*nstages)++;
    }
    if (t) ytree_free(t);
    return found;
}

int tap_route(const http_req *q, http_resp *r)
{
    const char *path = q->path;
    if (strncmp(path, "/connectors/", 12)) return 0;
    const char *slash = strchr(path + 12, '/');
    if (!slash || strcmp(slash, "/tap")) return 0;
    if (strcmp(q->method, "GET")) {
        http_error(r, 405, "use GET");
        return 1;
    }
    char name[256];
    size_t l = (size_t)(slash - (path + 12));
    if (!l || l >= sizeof name) {
        http_error(r, 404, "no such resource: %s", path);
        return 1;
    }
    memcpy(name, path + 12, l);
    name[l] = 0;
    sup_pipeline *p = sup_find(name);
    if (!p) {
        http_error(r, 404, "Connector %s not found", name);
        return 1;
    }
    const char *stage = http_query(q, "stage"), *rate_s = http_query(q, "rate"), *limit_s = http_query(q, "limit");
    int dead = http_query_has(q, "dead_letter", "true") || http_query_has(q, "dead_letter", "1");
    double rate = TAP_DEFAULT_RATE;
    long long limit = 0;
    char *end;
    if (rate_s) {
        rate = strtod(rate_s, &end);
        if (*end || !(rate > 0) || rate > TAP_MAX_RATE) {
            http_error(r, 400, "rate must be a number of records per second in (0, %d], not '%s'", TAP_MAX_RATE, rate_s);
            return 1;
        }
    }
    if (limit_s) {
        limit = strtoll(limit_s, &end, 10);
        if (*end || !*limit_s || limit < 0) {
            http_error(r, 400, "limit must be a count of records (0: no limit), not '%s'", limit_s);
            return 1;
        }
    }
    int nstages;
    sl_buf names = {0};
    int idx = tap_stage_index(p, stage, &nstages, &names);
    if (stage && *stage && idx < 0) {
        http_error(r, 404, "pipeline %s has no stage '%s' (its stages: %s; for the dead letters: dead_letter=true)", name,
                   stage, buf_cstr(&names));
        buf_free(&names);
        return 1;
    }
    buf_free(&names);
    if (!nstages) {
        http_error(r, 409, "pipeline %s has no stages to tap", name);
        return 1;
    }
    if (idx >= TAP_DEAD) {
        http_error(r, 400, "only the first %d stages of a pipeline can be tapped", TAP_DEAD);
        return 1;
    }
    listener *ls = xcalloc(1, sizeof *ls);
    ls->pipeline = xstrdup(name);
    /* No stage: the last one (what the sink took); dead_letter alone: only the rejected. */
    if (stage && *stage) ls->mask |= (uint64_t)1 << idx;
    else if (!dead) ls->mask |= (uint64_t)1 << (nstages - 1);
    if (dead) ls->mask |= (uint64_t)1 << TAP_DEAD;
    ls->rate = rate;
    ls->tokens = 1;
    ls->last_ms = sl_monotonic_ms();
    ls->limit = limit;
    ls->c = sse_open(r, closed, ls);
    ls->next = listeners;
    listeners = ls;
    /* The first event says what is tapped, so a client knows the stream is live. */
    sl_buf hello = {0};
    buf_puts(&hello, "{\"pipeline\":");
    buf_json_str(&hello, name, strlen(name));
    buf_puts(&hello, ",\"stage\":");
    buf_json_str(&hello, stage ? stage : "", stage ? strlen(stage) : 0);
    buf_printf(&hello, ",\"dead_letter\":%s,\"rate\":%g,\"limit\":%lld}", dead ? "true" : "false", rate, limit);
    sse_send(ls->c, "tap", buf_cstr(&hello));
    buf_free(&hello);
    send_taps(p);
    return 1;
}
