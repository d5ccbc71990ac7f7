/* file-sink — writes records as lines to a file or stdout, and acknowledges them only after
 * the bytes are fsync'ed (so "acked" really means "on disk").
 *
 * Plain mode writes each record's value followed by a newline. With `headers: true` each line
 * is a JSON object with the value (as a string), key, headers, topic, partition, offset and
 * timestamp: what a dead-letter file needs to show why a record was rejected.
 * Several tasks may share one file: each write() of a buffer is appended whole (O_APPEND). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sys/stat.h>

#include <sluice/stage.h>

#include "../common/sl_buf.h"
#include "../common/sl_state.h"

typedef struct fk_config {
    char *path;
    int headers;
    int fsync;
    int64_t flush_interval;
    int mode; /* 0 append, 1 truncate */
} fk_config;

typedef struct fk_state {
    const sl_api *api;
    const fk_config *cfg;
    const char *path;    /* cfg->path: absolute, or "-" (a path setting: the host resolved it) */
    int fd;
    sl_gbuf out;         /* lines not yet written */
    sl_ack **held;       /* records written but not yet synced */
    size_t nheld, heldcap;
    int64_t last_flush;
} fk_state;

/* ---- helpers ---- */

static void put_envelope(fk_state *s, sl_ctx *ctx, const sl_record *r)
{
    size_t vlen;
    const char *v = s->api->value(ctx, r, &vlen);
    sl_gbuf *b = &s->out;
    sl_gbuf_puts(b, "{\"value\":");
    sl_gbuf_json_str(b, v, vlen, false);
    if (r->key_len) {
        sl_gbuf_puts(b, ",\"key\":");
        sl_gbuf_json_str(b, r->key, r->key_len, false);
    }
    sl_gbuf_puts(b, ",\"headers\":{");
    for (size_t i = 0; i < r->n_headers; i++) {
        if (i) sl_gbuf_putc(b, ',');
        sl_gbuf_json_str(b, r->headers[i].name, strlen(r->headers[i].name), false);
        sl_gbuf_putc(b, ':');
        sl_gbuf_json_str(b, r->headers[i].value, r->headers[i].value_len, false);
    }
    sl_gbuf_putc(b, '}');
    if (r->topic) {
        sl_gbuf_puts(b, ",\"topic\":");
        sl_gbuf_json_str(b, r->topic, strlen(r->topic), false);
    }
    sl_gbuf_printf(b, ",\"partition\":%" PRId32 ",\"offset\":%" PRId64 ",\"timestamp\":%" PRId64 "}\n",
                   r->partition, r->offset, r->timestamp_ms);
}

/* Writes all n bytes; *done says how many went out (also on failure). */
static int write_all(int fd, const char *p, size_t n, size_t *done)
{
    *done = 0;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        *done += (size_t)w;
    }
    return 0;
}

/* mode: truncate empties the file once, at the pipeline's first start. A marker under the state
 * directory (by pipeline, stage and file) remembers the file it truncated (device and inode):
 * a restart — whose source resumes after what is already in the file — appends instead of
 * throwing committed output away. Returns 1 if the file should be truncated now. */
static int first_start(fk_state *s, sl_ctx *ctx, char *marker, size_t n)
{
    char abs[4096];
    if (s->path[0] == '/') snprintf(abs, sizeof abs, "%s", s->path);
    else if (getcwd(abs, sizeof abs)) snprintf(abs + strlen(abs), sizeof abs - strlen(abs), "/%s", s->path);
    if (sl_state_path(marker, n, "file-sink", s->api->pipeline_name(ctx), s->api->stage_name(ctx), abs,
                      "truncated") != 0) {
        s->api->log(ctx, SL_LOG_WARN, "cannot make the truncation marker's directory (%s): %s", marker, strerror(errno));
        marker[0] = 0;
        return 1;
    }
    struct stat st;
    unsigned long long dev = 0, ino = 0;
    FILE *f = fopen(marker, "r");
    int seen = f && fscanf(f, "%llu %llu", &dev, &ino) == 2;
    if (f) fclose(f);
    if (seen && stat(s->path, &st) == 0 && (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino) {
        s->api->log(ctx, SL_LOG_INFO, "mode truncate: %s was truncated at this pipeline's first start (%s); appending",
                    s->path, marker);
        return 0;
    }
    return 1;
}

static void write_marker(fk_state *s, sl_ctx *ctx, const char *marker)
{
    struct stat st;
    char tmp[4200];
    if (!*marker || fstat(s->fd, &st) != 0) return;
    snprintf(tmp, sizeof tmp, "%s.tmp", marker);
    FILE *f = fopen(tmp, "w");
    int ok = f && fprintf(f, "%llu %llu\n", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino) > 0;
    ok = f && fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    if (f) ok = fclose(f) == 0 && ok;
    if (!ok || rename(tmp, marker) != 0)
        s->api->log(ctx, SL_LOG_WARN, "cannot write the truncation marker %s: %s", marker, strerror(errno));
}

/* ---- callbacks ---- */

static sl_err fk_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const fk_config *cfg = config;
    fk_state *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->cfg = cfg;
    s->path = cfg->path;
    if (strcmp(cfg->path, "-") == 0) {
        s->fd = 1;
    } else {
        char marker[4096] = "";
        int trunc = cfg->mode && first_start(s, ctx, marker, sizeof marker);
        s->fd = open(s->path, O_WRONLY | O_CREAT | O_CLOEXEC | O_APPEND | (trunc ? O_TRUNC : 0), 0644);
        if (s->fd < 0) {
            api->log(ctx, SL_LOG_ERROR, "cannot open %s: %s", s->path, strerror(errno));
            free(s);
            return SL_ECONFIG;
        }
        if (trunc) write_marker(s, ctx, marker);
    }
    s->last_flush = api->monotonic_ms(ctx);
    *self = s;
    return SL_OK;
}

static sl_err fk_process(void *self, sl_ctx *ctx, const sl_batch *b)
{
    fk_state *s = self;
    if (s->nheld + b->n > s->heldcap) {
        size_t cap = s->heldcap ? s->heldcap : 4096;
        while (cap < s->nheld + b->n) cap *= 2;
        sl_ack **h = realloc(s->held, cap * sizeof *h);
        if (!h) return SL_RETRY;
        s->held = h;
        s->heldcap = cap;
    }
    size_t mark = s->out.len;
    for (size_t i = 0; i < b->n && !s->out.oom; i++) {
        const sl_record *r = b->recs[i];
        if (s->cfg->headers) {
            put_envelope(s, ctx, r);
        } else {
            sl_gbuf_put(&s->out, r->value, r->value_len);
            sl_gbuf_putc(&s->out, '\n');
        }
    }
    if (s->out.oom) {
        s->out.len = mark; /* nothing of this batch was taken: retry it whole */
        s->out.oom = false;
        return SL_RETRY;
    }
    for (size_t i = 0; i < b->n; i++) s->held[s->nheld++] = s->api->hold(ctx, b->recs[i]);
    return SL_OK;
}

static sl_err fk_flush(void *self, sl_ctx *ctx, int final)
{
    fk_state *s = self;
    int64_t now = s->api->monotonic_ms(ctx);
    if (!s->nheld || (!final && now - s->last_flush < s->cfg->flush_interval && s->out.len < (8u << 20)))
        return SL_OK;
    off_t start = lseek(s->fd, 0, SEEK_END); /* -1 on pipes and terminals */
    size_t done;
    if (write_all(s->fd, s->out.p, s->out.len, &done) != 0) {
        int e = errno;
        /* Take the partial write back, so the file never holds a torn line; the records stay
         * unacknowledged and are written again after a restart. Only when the file ends where
         * our bytes end: another task appending meanwhile must not lose its lines. */
        struct stat st;
        if (start >= 0 && done && fstat(s->fd, &st) == 0 && st.st_size == start + (off_t)done &&
            ftruncate(s->fd, start) == 0)
            s->api->log(ctx, SL_LOG_ERROR, "write %s: %s; the %zu bytes written of this batch were truncated away",
                        s->path, strerror(e), done);
        else
            s->api->log(ctx, SL_LOG_ERROR, "write %s: %s", s->path, strerror(e));
        return SL_FATAL; /* a partial write cannot be retried without duplicating lines */
    }
    sl_gbuf_reset(&s->out);
    /* fsync fails with EINVAL on pipes and terminals, where there is nothing more to do. */
    if (s->cfg->fsync && fsync(s->fd) != 0 && errno != EINVAL && errno != EROFS) {
        s->api->log(ctx, SL_LOG_ERROR, "fsync %s: %s", s->path, strerror(errno));
        return SL_FATAL;
    }
    for (size_t i = 0; i < s->nheld; i++) s->api->release(s->held[i]);
    s->nheld = 0;
    s->last_flush = now;
    return SL_OK;
}

static void fk_close(void *self, sl_ctx *ctx)
{
    fk_state *s = self;
    if (s->nheld) {
        /* Only reached when the pipeline failed before draining: the records stay unacked. */
        s->api->log(ctx, SL_LOG_WARN, "closing with %zu records not yet synced", s->nheld);
    }
    if (s->fd > 1) close(s->fd);
    sl_gbuf_free(&s->out);
    free(s->held);
    free(s);
}

/* ---- config table and descriptor ---- */

static const sl_config_entry fk_config_table[] = {
    SL_CFG_PATH("path", fk_config, path, .flags = SL_CFG_REQUIRED,
        .description = "file to write (relative to the pipeline file); '-' for stdout"),
    SL_CFG_BOOL("headers", fk_config, headers, .default_value = "false",
        .description = "write a JSON envelope per record (value, key, headers, topic, partition, offset, timestamp)"),
    SL_CFG_BOOL("fsync", fk_config, fsync, .default_value = "true",
        .description = "fsync before acknowledging (turn off only for throwaway output)"),
    SL_CFG_DURATION("flush_interval", fk_config, flush_interval, .flags = SL_CFG_BOUNDED,
        .default_value = "100ms", .max = 3600000,
        .description = "how often buffered lines are written and synced"),
    SL_CFG_ENUM("mode", fk_config, mode, .default_value = "append", .choices = "append|truncate",
        .description = "append to an existing file, or truncate it at the pipeline's first start (restarts append)"),
    SL_CFG_END,
};

static const sl_stage_desc fk_desc = {
    SL_STAGE_DESC_INIT,
    .name = "file-sink",
    .version = "1.0.0",
    .kind = SL_KIND_SINK,
    .description = "writes records as lines (NDJSON) to a file or stdout; acks after fsync",
    .config = fk_config_table,
    .config_size = sizeof(fk_config),
    .init = fk_init,
    .process = fk_process,
    .flush = fk_flush,
    .close = fk_close,
};

SL_STAGE_DEFINE(fk_desc)
