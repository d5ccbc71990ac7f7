/* file-source — reads NDJSON (one record per line) from a file or stdin.
 *
 * A record's offset is the byte position just after its line, so "committed offset X" means
 * "resume reading at byte X". Committed positions are kept in a small offset file, written
 * atomically (write, fsync, rename), so a restart resumes after the last finished record. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sluice/stage.h>

#include "../common/sl_state.h"

typedef struct fs_config {
    char *path;
    int follow;
    char *topic;
    char *offset_file;
    int64_t max_line;
} fs_config;

typedef struct fs_state {
    const sl_api *api;
    const fs_config *cfg;
    const char *path;    /* cfg->path: absolute, or "-" (a path setting: the host resolved it) */
    int fd;
    char *offset_path;   /* NULL: positions are not persisted */
    char *buf;
    size_t cap, start, end;  /* unread data is buf[start..end) */
    int64_t base;        /* file offset of buf[0] */
    int eof;
    int skipping;        /* inside an over-long line being discarded */
    char *long_head;     /* its first 1 KiB, rejected once the line's end is known */
    size_t long_len;
    int64_t committed;
} fs_state;

/* ---- helpers ---- */

/* Emits one line [p, p+len) that ends at file offset `end_off`. */
static void emit_line(fs_state *s, sl_ctx *ctx, const char *p, size_t len, int64_t end_off)
{
    if (len && p[len - 1] == '\r') len--;
    if (!len) return; /* blank lines carry nothing */
    sl_record r = {0};
    r.value = p;
    r.value_len = len;
    r.topic = s->cfg->topic;
    r.partition = 0;
    r.offset = end_off;
    s->api->emit(ctx, &r);
}

/* The over-long line being skipped ended at `end_off`: its head goes to the dead letter. */
static void reject_long(fs_state *s, sl_ctx *ctx, int64_t end_off)
{
    sl_record r = {.value = s->long_head, .value_len = s->long_len, .topic = s->cfg->topic, .partition = 0,
                   .offset = end_off};
    char why[128];
    snprintf(why, sizeof why, "line longer than max_line (%" PRId64 " bytes); first 1 KiB kept", s->cfg->max_line);
    s->api->reject(ctx, &r, why);
    s->skipping = 0;
}

/* ---- callbacks ---- */

static sl_err fs_init(sl_ctx *ctx, const sl_api *api, const void *config, void **self)
{
    const fs_config *cfg = config;
    fs_state *s = calloc(1, sizeof *s);
    if (!s) return SL_ENOMEM;
    s->api = api;
    s->cfg = cfg;
    s->committed = -1;
    s->path = cfg->path; /* a path setting: the host made it absolute (or "-") */
    int is_stdin = strcmp(cfg->path, "-") == 0;
    s->fd = is_stdin ? 0 : open(s->path, O_RDONLY | O_CLOEXEC);
    if (s->fd < 0) {
        int e = errno;
        api->log(ctx, SL_LOG_ERROR, "cannot open %s: %s", s->path, strerror(e));
        free(s);
        return e == ENOENT ? SL_ECONFIG : SL_FATAL;
    }
    if (!is_stdin) {
        if (!cfg->offset_file) {
            /* Keyed by pipeline, stage and input under the state directory: two pipelines
             * reading one file each keep their own position. */
            char abs[4096], p[4096];
            if (!realpath(s->path, abs)) snprintf(abs, sizeof abs, "%s", s->path);
            if (sl_state_path(p, sizeof p, "file-source", api->pipeline_name(ctx), api->stage_name(ctx), abs,
                              "offset") != 0) {
                api->log(ctx, SL_LOG_ERROR, "cannot make the offset file's directory (%s): %s", p, strerror(errno));
                close(s->fd);
                        free(s);
                return SL_FATAL;
            }
            s->offset_path = strdup(p);
        } else if (*cfg->offset_file) {
            s->offset_path = strdup(cfg->offset_file);
        }
    }
    if (s->offset_path) {
        int64_t off = sl_offset_read(s->offset_path, NULL, 0);
        if (off > 0) {
            if (lseek(s->fd, off, SEEK_SET) < 0) {
                api->log(ctx, SL_LOG_ERROR, "cannot seek %s to committed offset %" PRId64 ": %s",
                         s->path, off, strerror(errno));
                close(s->fd);
                free(s->offset_path);
                        free(s);
                return SL_FATAL;
            }
            s->base = off;
            s->committed = off;
            api->log(ctx, SL_LOG_INFO, "resuming %s at byte %" PRId64 " (from %s)", s->path, off, s->offset_path);
        }
    }
    s->cap = (int64_t)(1 << 20) < cfg->max_line ? (size_t)1 << 20 : (size_t)cfg->max_line; /* max_line applies below 1 MiB too */
    s->buf = malloc(s->cap);
    s->long_head = malloc(1024);
    if (!s->buf || !s->long_head) {
        free(s->buf);
        free(s->long_head);
        if (!is_stdin) close(s->fd);
        free(s->offset_path);
        free(s);
        return SL_ENOMEM;
    }
    *self = s;
    return SL_OK;
}

static sl_err fs_poll(void *self, sl_ctx *ctx, size_t max, int timeout_ms)
{
    fs_state *s = self;
    size_t emitted = 0;
    while (emitted < max) {
        char *nl = memchr(s->buf + s->start, '\n', s->end - s->start);
        if (nl) {
            size_t len = (size_t)(nl - (s->buf + s->start));
            int64_t end_off = s->base + (int64_t)(nl - s->buf) + 1;
            if (s->skipping) {
                reject_long(s, ctx, end_off);
            } else {
                emit_line(s, ctx, s->buf + s->start, len, end_off);
                emitted++;
            }
            s->start += len + 1;
            continue;
        }
        if (s->eof) break;
        /* Need more data: compact, grow up to max_line, read. */
        if (s->start) {
            memmove(s->buf, s->buf + s->start, s->end - s->start);
            s->base += (int64_t)s->start;
            s->end -= s->start;
            s->start = 0;
        }
        if (s->end == s->cap) {
            if ((int64_t)s->cap >= s->cfg->max_line) {
                /* An over-long line: keep its head and skip the rest. It goes to the dead letter
                 * once its end is found, with the end as its offset: a committed position is
                 * always a line's end, never the middle of one. */
                if (!s->skipping) {
                    s->long_len = s->end > 1024 ? 1024 : s->end;
                    memcpy(s->long_head, s->buf, s->long_len);
                }
                s->base += (int64_t)s->end;
                s->end = 0;
                s->skipping = 1;
            } else {
                size_t ncap = s->cap * 2;
                if ((int64_t)ncap > s->cfg->max_line) ncap = (size_t)s->cfg->max_line;
                char *nb = realloc(s->buf, ncap);
                if (!nb) return SL_ENOMEM;
                s->buf = nb;
                s->cap = ncap;
            }
        }
        ssize_t r = read(s->fd, s->buf + s->end, s->cap - s->end);
        if (r < 0) {
            if (errno == EINTR) continue;
            s->api->log(ctx, SL_LOG_ERROR, "read %s: %s", s->path, strerror(errno));
            return SL_FATAL;
        }
        if (r == 0) {
            if (s->cfg->follow) {
                /* Tail: wait for more, but hand back what we have so the chain keeps moving. */
                if (!emitted) usleep((useconds_t)(timeout_ms > 50 ? 50 : timeout_ms) * 1000);
                return SL_OK;
            }
            s->eof = 1;
            break;
        }
        s->end += (size_t)r;
    }
    if (s->eof && s->skipping) { /* the over-long line ends at EOF */
        reject_long(s, ctx, s->base + (int64_t)s->end);
        s->start = s->end;
    }
    if (s->eof && emitted < max && s->start == s->end) return SL_DONE;
    if (s->eof && emitted < max && s->start < s->end) {
        /* The last line has no newline: it is still a record. */
        size_t len = s->end - s->start;
        emit_line(s, ctx, s->buf + s->start, len, s->base + (int64_t)s->end);
        s->start = s->end;
        return SL_DONE;
    }
    return SL_OK;
}

static sl_err fs_commit(void *self, sl_ctx *ctx, const sl_position *pos, size_t n)
{
    fs_state *s = self;
    for (size_t i = 0; i < n; i++)
        if (pos[i].partition == 0 && pos[i].offset > s->committed) s->committed = pos[i].offset;
    if (!s->offset_path || s->committed < 0) return SL_OK;
    if (sl_offset_write(s->offset_path, s->committed, "") != 0) {
        s->api->log(ctx, SL_LOG_WARN, "cannot write offset file %s: %s", s->offset_path, strerror(errno));
        return SL_RETRY;
    }
    return SL_OK;
}

static void fs_close(void *self, sl_ctx *ctx)
{
    (void)ctx;
    fs_state *s = self;
    if (s->fd > 0) close(s->fd);
    free(s->buf);
    free(s->long_head);
    free(s->offset_path);
    free(s);
}

/* ---- config table and descriptor ---- */

static const sl_config_entry fs_config_table[] = {
    SL_CFG_PATH("path", fs_config, path, .flags = SL_CFG_REQUIRED,
        .description = "file to read, one record per line (relative to the pipeline file); '-' for stdin"),
    SL_CFG_BOOL("follow", fs_config, follow, .default_value = "false",
        .description = "keep reading as the file grows (like tail -f) instead of ending at EOF"),
    SL_CFG_STRING("topic", fs_config, topic, .description = "topic (stream name) given to every record"),
    SL_CFG_PATH("offset_file", fs_config, offset_file,
        .description = "where committed positions are kept (default: under the state directory, by pipeline, stage and input; \"\" disables resuming)"),
    SL_CFG_SIZE("max_line", fs_config, max_line, .flags = SL_CFG_BOUNDED, .default_value = "16MiB",
        .min = 1024, .max = 1073741824.0,
        .description = "longer lines go to the dead letter (their first 1 KiB)"),
    SL_CFG_END,
};

static const sl_stage_desc fs_desc = {
    SL_STAGE_DESC_INIT,
    .flags = SL_STAGE_SINGLE_TASK,
    .name = "file-source",
    .version = "1.0.0",
    .kind = SL_KIND_SOURCE,
    .description = "reads NDJSON records from a file or stdin, resuming after the last committed line",
    .config = fs_config_table,
    .config_size = sizeof(fs_config),
    .init = fs_init,
    .poll = fs_poll,
    .commit = fs_commit,
    .close = fs_close,
};

SL_STAGE_DEFINE(fs_desc)
