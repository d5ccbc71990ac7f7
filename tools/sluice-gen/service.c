/* service.c — sluice-gen's service: the generator, the buffer / replay window, the counters and
 * the record file under one mutex, the clock thread, and the HTTP API (see README.md). */
#include "gen.h"

#include "../../plugins/common/sl_httpd.h"

/* ---- the service: generator + buffer + counters + record, under one mutex --------------- */

static void record_line(struct app *a, uint64_t seq, const struct gen_out *o, const char *dest,
                        uint64_t cursor)
{
    char extra[128] = "";
    if (o->cls == C_INVALID)
        snprintf(extra, sizeof extra, ",\"reason\":\"%s\"", o->reason);
    else if (o->cls == C_DUPLICATE)
        snprintf(extra, sizeof extra, ",\"dup_of\":%" PRIu64, o->dup_of);
    if (cursor) /* the buffered event's cursor sequence number (GET /gen/events?after=) */
        snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ",\"cursor\":%" PRIu64, cursor);
    fprintf(a->record, "{\"seq\":%" PRIu64 ",\"class\":\"%s\"%s,\"late\":%s,\"dest\":\"%s\","
            "\"event\":%.*s}\n", seq, cls_names[o->cls], extra, o->late ? "true" : "false", dest,
            (int)o->len, o->json);
}

/* Generates one event (caller holds a->mu). The result lives in a->scratch until the next call. */
const struct gen_out *produce(struct app *a, enum dest want)
{
    struct gen_out *o = &a->scratch;
    uint64_t seq = ++a->seq;
    gen_next(&a->gen, seq, o);

    struct stats *s = &a->st;
    s->generated++;
    s->by_type[o->type]++;
    if (o->cls == C_VALID)
        s->valid++;
    else if (o->cls == C_INVALID) {
        s->invalid++;
        s->by_kind[o->kind]++;
    } else
        s->duplicates++;
    if (o->late)
        s->late++;

    const char *dest = want == D_PUSH ? "push" : "response";
    uint64_t cursor = 0;
    if (want == D_BUFFER) {
        if (a->ring_n == a->ring_cap && a->cursor_mode) {
            /* A replay window slides: the oldest event leaves (a cursor behind it gets 410). */
            free(a->ring[a->ring_head]);
            a->ring[a->ring_head] = NULL;
            a->ring_head = (a->ring_head + 1) % a->ring_cap;
            a->ring_n--;
            a->head_seq++;
            s->evicted++;
        }
        /* Without cursor readers, overflow drops the newest event: what is buffered stays a
         * contiguous run of what was not yet polled. */
        if (a->ring_n == a->ring_cap) {
            s->dropped++;
            dest = "dropped";
        } else {
            size_t i = (a->ring_head + a->ring_n++) % a->ring_cap;
            a->ring[i] = xrealloc(NULL, o->len);
            memcpy(a->ring[i], o->json, o->len);
            a->ring_len[i] = o->len;
            dest = "buffer";
            cursor = a->head_seq + a->ring_n - 1;
        }
    }
    if (a->record)
        record_line(a, seq, o, dest, cursor);
    return o;
}

void clock_rebase(struct app *a)
{
    a->clock_t0 = mono_now();
    a->clock_done = 0;
}

/* The background clock: every 10 ms, generate the events the configured rate owes. */
/* A request's turn at the lock: counted, so a long emit waits for it between chunks. */
static void app_lock(struct app *a)
{
    atomic_fetch_add(&a->waiting, 1);
    pthread_mutex_lock(&a->mu);
    atomic_fetch_sub(&a->waiting, 1);
}

void *clock_main(void *arg)
{
    struct app *a = arg;
    pthread_mutex_lock(&a->mu);
    while (!a->stop) {
        struct timespec dl;
        clock_gettime(CLOCK_MONOTONIC, &dl);
        dl.tv_nsec += 10 * 1000000;
        if (dl.tv_nsec >= 1000000000) {
            dl.tv_sec++;
            dl.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&a->cv, &a->mu, &dl);
        if (a->stop)
            break;
        const struct config *c = &a->gen.cfg;
        if (!c->running || c->rate <= 0) {
            clock_rebase(a);
            continue;
        }
        double target = c->rate * (mono_now() - a->clock_t0);
        if (target - (double)a->clock_done > c->rate + 1) {
            /* More than a second behind (a long emit held the lock, or the machine is too
             * slow): do not burst to catch up; the rate is a target, not a debt. */
            clock_rebase(a);
            continue;
        }
        while ((double)a->clock_done + 1 <= target) {
            produce(a, D_BUFFER);
            a->clock_done++;
        }
        if (a->record)
            fflush(a->record);
    }
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

static cJSON *stats_json(struct app *a)
{
    const struct stats *s = &a->st;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "generated", (double)s->generated);
    cJSON *bt = cJSON_AddObjectToObject(o, "by_type");
    for (int t = 0; t < T_COUNT; t++)
        cJSON_AddNumberToObject(bt, type_names[t], (double)s->by_type[t]);
    cJSON_AddNumberToObject(o, "valid", (double)s->valid);
    cJSON_AddNumberToObject(o, "invalid", (double)s->invalid);
    cJSON *bk = cJSON_AddObjectToObject(o, "invalid_by_kind");
    for (int k = 0; k < K_COUNT; k++)
        cJSON_AddNumberToObject(bk, kind_names[k], (double)s->by_kind[k]);
    cJSON_AddNumberToObject(o, "duplicates", (double)s->duplicates);
    cJSON_AddNumberToObject(o, "late", (double)s->late);
    cJSON_AddNumberToObject(o, "dropped", (double)s->dropped);
    cJSON_AddNumberToObject(o, "polled", (double)s->polled);
    cJSON_AddNumberToObject(o, "polls", (double)s->polls);
    /* Waiting to be read: in cursor mode, what follows the newest event handed out. */
    uint64_t newest = a->head_seq + a->ring_n - 1, read = a->read_upto > a->head_seq - 1 ? a->read_upto : a->head_seq - 1;
    cJSON_AddNumberToObject(o, "buffered", (double)(a->cursor_mode ? newest - read : a->ring_n));
    cJSON_AddNumberToObject(o, "window", (double)a->ring_n);
    cJSON_AddNumberToObject(o, "evicted", (double)s->evicted);
    cJSON_AddNumberToObject(o, "oldest_seq", (double)a->head_seq);
    cJSON_AddNumberToObject(o, "newest_seq", (double)(a->head_seq + a->ring_n - 1));
    cJSON_AddNumberToObject(o, "buffer_capacity", (double)a->ring_cap);
    cJSON_AddBoolToObject(o, "running", a->gen.cfg.running);
    cJSON_AddNumberToObject(o, "rate", a->gen.cfg.rate);
    cJSON_AddNumberToObject(o, "uptime_s", round((mono_now() - a->started) * 1000) / 1000);
    return o;
}

/* ---- HTTP -------------------------------------------------------------------------------- */

struct req {
    sl_body body; /* ../../plugins/common/sl_httpd.h */
};

/* This process's stream of cursor numbers: a restarted generator numbers from 1 again, and a
 * reader that kept a cursor must be able to tell (X-Seq-Epoch). Set once in main. */
static char seq_epoch[24];

/* CORS: the dashboard origins allowed to call (set once in main, read-only after). */
static const char *const *cors_origins;
static int n_cors_origins;

void set_cors_origins(const char *const *origins, int n)
{
    cors_origins = origins;
    n_cors_origins = n;
}

void set_seq_epoch(const char *epoch)
{
    snprintf(seq_epoch, sizeof seq_epoch, "%s", epoch);
}

/* The request's Origin if it is an allowed one, else NULL. */
static const char *allowed_origin(struct MHD_Connection *c)
{
    const char *o = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    for (int i = 0; o && i < n_cors_origins; i++)
        if (!strcmp(o, cors_origins[i]))
            return o;
    return NULL;
}

static enum MHD_Result reply2(struct MHD_Connection *c, unsigned status, const char *type, char *body,
                              size_t len, const char *extra_name, const char *extra_val,
                              const char *const *more, int n_more)
{
    struct MHD_Response *r =
        body ? MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE)
             : MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    if (type)
        MHD_add_response_header(r, "Content-Type", type);
    const char *origin = allowed_origin(c);
    if (origin) { /* only the configured dashboard origins, never "*" */
        MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
        MHD_add_response_header(r, "Access-Control-Expose-Headers",
                                "X-Gen-Remaining, X-Seq-First, X-Seq-Last, X-Seq-Oldest, X-Seq-Epoch");
    }
    MHD_add_response_header(r, "Vary", "Origin");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (extra_name)
        MHD_add_response_header(r, extra_name, extra_val);
    for (int i = 0; i + 1 < n_more; i += 2)
        MHD_add_response_header(r, more[i], more[i + 1]);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *body, size_t len, const char *extra_name, const char *extra_val)
{
    return reply2(c, status, type, body, len, extra_name, extra_val, NULL, 0);
}

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, cJSON *o)
{
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (!s)
        return MHD_NO;
    return reply(c, status, "application/json", s, strlen(s), NULL, NULL);
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *field,
                                   const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *field,
                                   const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", msg);
    if (field)
        cJSON_AddStringToObject(o, "field", field);
    return reply_json(c, status, o);
}

/* Strict non-negative integer parse of a whole string. */
static bool parse_count(const char *s, double hi, uint64_t *out)
{
    if (!s || !*s)
        return false;
    for (const char *p = s; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    unsigned long long v = strtoull(s, NULL, 10);
    if (errno || (double)v > hi)
        return false;
    *out = v;
    return true;
}

/* Parses a request body as a JSON object; an empty body is an empty object. The strict check
 * (host/jsoncheck.h) comes first: NUL, bad UTF-8, duplicate keys, trailing bytes, 1e999 ...
 * are refused with *why set, not guessed at. */
static cJSON *parse_body(const struct req *q, bool *ok, const char **why)
{
    *ok = true;
    *why = NULL;
    size_t i = 0;
    while (i < q->body.len && strchr(" \t\r\n", q->body.data[i]))
        i++;
    if (i == q->body.len)
        return cJSON_CreateObject();
    if ((*why = sl_json_strict(q->body.data, q->body.len))) {
        *ok = false;
        return NULL;
    }
    cJSON *o = cJSON_ParseWithLength(q->body.data, q->body.len);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        *ok = false;
        return NULL;
    }
    return o;
}

static enum MHD_Result h_event(struct app *a, struct MHD_Connection *c)
{
    app_lock(a);
    const struct gen_out *o = produce(a, D_RESPONSE);
    char *body = xrealloc(NULL, o->len);
    memcpy(body, o->json, o->len);
    size_t len = o->len;
    if (a->record)
        fflush(a->record);
    pthread_mutex_unlock(&a->mu);
    return reply(c, 200, "application/json", body, len, NULL, NULL);
}

static enum MHD_Result h_emit(struct app *a, struct MHD_Connection *c, const struct req *q)
{
    bool ok;
    const char *why;
    cJSON *in = parse_body(q, &ok, &why);
    if (!ok && why)
        return reply_error(c, 400, NULL, "body is not acceptable JSON: %s", why);
    if (!ok)
        return reply_error(c, 400, NULL, "body must be a JSON object like {\"count\":10}");
    uint64_t count = 1;
    bool echo = false;
    char field[80] = "", msg[120] = "";
    const cJSON *it;
    cJSON_ArrayForEach(it, in)
    {
        if (!strcmp(it->string, "count") && is_int_in(it, 0, MAX_EMIT))
            count = (uint64_t)it->valuedouble;
        else if (!strcmp(it->string, "echo") && cJSON_IsBool(it))
            echo = cJSON_IsTrue(it);
        else if (!strcmp(it->string, "count"))
            snprintf(msg, sizeof msg, "count must be an integer from 0 to %d", MAX_EMIT);
        else if (!strcmp(it->string, "echo"))
            snprintf(msg, sizeof msg, "echo must be true or false");
        else
            snprintf(msg, sizeof msg, "unknown field \"%.64s\"", it->string);
        if (msg[0]) {
            snprintf(field, sizeof field, "%s", it->string);
            break;
        }
    }
    cJSON_Delete(in);
    if (msg[0])
        return reply_error(c, 400, field, "%s", msg);
    if (echo && count > MAX_ECHO)
        return reply_error(c, 400, "count", "count must be at most %d with echo", MAX_ECHO);

    /* In chunks: the lock is given up between them, so the clock and other requests go on
     * while a million events are made (their events may interleave with ours). */
    sl_gbuf events = {0};
    uint64_t dropped = 0;
    for (uint64_t done = 0; done < count;) {
        uint64_t n = count - done < EMIT_CHUNK ? count - done : EMIT_CHUNK;
        pthread_mutex_lock(&a->mu);
        uint64_t dropped_before = a->st.dropped;
        for (uint64_t i = done; i < done + n; i++) {
            const struct gen_out *o = produce(a, D_BUFFER);
            if (echo) {
                sb_add(&events, i ? "," : "[", 1);
                sb_add(&events, o->json, o->len);
            }
        }
        dropped += a->st.dropped - dropped_before;
        if (a->record)
            fflush(a->record);
        pthread_mutex_unlock(&a->mu);
        done += n;
        /* A mutex is not fair: without a pause the next chunk would take it straight back.
         * Let every request already waiting have its turn first (bounded: 100 ms a chunk). */
        for (int i = 0; done < count && (i == 0 || (atomic_load(&a->waiting) > 0 && i < 2000)); i++)
            nanosleep(&(struct timespec){0, 50000}, NULL);
    }

    /* Built by hand: the echoed events must be byte-identical to what was generated. */
    sl_gbuf out = {0};
    char head[160];
    snprintf(head, sizeof head, "{\"emitted\":%" PRIu64 ",\"queued\":%" PRIu64
             ",\"dropped\":%" PRIu64, count, count - dropped, dropped);
    sb_adds(&out, head);
    if (echo) {
        sb_adds(&out, ",\"events\":");
        if (count)
            sb_add(&out, events.p, events.len);
        sb_adds(&out, count ? "]" : "[]");
    }
    sb_adds(&out, "}");
    free(events.p);
    return reply(c, 200, "application/json", out.p, out.len, NULL, NULL);
}

static enum MHD_Result h_events(struct app *a, struct MHD_Connection *c)
{
    const char *max_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "max");
    const char *fmt = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "format");
    const char *after_s = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
    uint64_t max = UINT64_MAX, after = 0;
    if (max_s && !parse_count(max_s, 1e12, &max))
        return reply_error(c, 400, "max", "max must be a non-negative integer");
    if (after_s && !parse_count(after_s, MAX_SEED, &after))
        return reply_error(c, 400, "after", "after must be a non-negative integer (a sequence number)");
    bool ndjson = false;
    if (fmt && !(ndjson = !strcmp(fmt, "ndjson")) && strcmp(fmt, "json"))
        return reply_error(c, 400, "format", "format must be json or ndjson");

    /* Take the events under the lock; build the (possibly large) body outside it. A cursor
     * read (after=) copies and leaves them in the window; a plain read takes them out (or, once
     * a cursor reader exists, reads on from where the previous plain read stopped). */
    app_lock(a);
    bool cursor = after_s != NULL;
    if (cursor && !a->cursor_mode) {
        a->cursor_mode = true;
        a->legacy_after = a->read_upto = a->head_seq - 1;
    }
    uint64_t oldest = a->head_seq, next = a->head_seq + a->ring_n;
    if (cursor && after + 1 < oldest) {
        pthread_mutex_unlock(&a->mu);
        char o[32], *body = NULL;
        snprintf(o, sizeof o, "%" PRIu64, oldest);
        if (asprintf(&body, "{\"error\":\"cursor %" PRIu64 " has fallen out of the replay window: the "
                     "oldest event still held is %" PRIu64 "\",\"oldest\":%" PRIu64 "}", after, oldest,
                     oldest) < 0)
            return MHD_NO;
        const char *more[] = {"X-Seq-Epoch", seq_epoch};
        return reply2(c, 410, "application/json", body, strlen(body), "X-Seq-Oldest", o, more, 2);
    }
    if (cursor && after >= next && after != 0) {
        pthread_mutex_unlock(&a->mu);
        char *body = NULL, o[32];
        snprintf(o, sizeof o, "%" PRIu64, oldest);
        if (asprintf(&body, "{\"error\":\"cursor %" PRIu64 " is ahead of the newest event (%" PRIu64
                     "): was sluice-gen restarted?\",\"field\":\"after\"}", after, next - 1) < 0)
            return MHD_NO;
        const char *more[] = {"X-Seq-Epoch", seq_epoch};
        return reply2(c, 409, "application/json", body, strlen(body), "X-Seq-Oldest", o, more, 2);
    }
    uint64_t from = cursor ? after + 1 : a->cursor_mode ? a->legacy_after + 1 : a->head_seq;
    if (from < oldest)
        from = oldest;
    size_t n = next - from < max ? (size_t)(next - from) : (size_t)max;
    char **items = xrealloc(NULL, (n ? n : 1) * sizeof *items);
    size_t *lens = xrealloc(NULL, (n ? n : 1) * sizeof *lens);
    size_t at = (a->ring_head + (size_t)(from - oldest)) % a->ring_cap;
    for (size_t k = 0; k < n; k++, at = (at + 1) % a->ring_cap) {
        lens[k] = a->ring_len[at];
        if (a->cursor_mode) {
            items[k] = xrealloc(NULL, lens[k]);
            memcpy(items[k], a->ring[at], lens[k]);
        } else { /* plain reads only: hand the event over */
            items[k] = a->ring[at];
            a->ring[at] = NULL;
        }
    }
    if (!a->cursor_mode) {
        a->ring_head = (a->ring_head + n) % a->ring_cap;
        a->ring_n -= n;
        a->head_seq += n;
    } else if (!cursor) {
        a->legacy_after = from + n - 1;
    }
    if (a->cursor_mode && n && from + n - 1 > a->read_upto) {
        a->read_upto = from + n - 1;
    }
    a->st.polled += n;
    a->st.polls++;
    size_t remaining = (size_t)(next - from - n);
    pthread_mutex_unlock(&a->mu);

    sl_gbuf out = {0};
    sb_adds(&out, ndjson ? "" : "[");
    for (size_t k = 0; k < n; k++) {
        if (!ndjson && k)
            sb_add(&out, ",", 1);
        sb_add(&out, items[k], lens[k]);
        if (ndjson)
            sb_add(&out, "\n", 1);
        free(items[k]);
    }
    sb_adds(&out, ndjson ? "" : "]");
    free(items);
    free(lens);

    char rem[32], first[32], last[32], old[32];
    snprintf(rem, sizeof rem, "%zu", remaining);
    snprintf(first, sizeof first, "%" PRIu64, from);
    snprintf(last, sizeof last, "%" PRIu64, from + n - 1);
    snprintf(old, sizeof old, "%" PRIu64, oldest);
    const char *more[] = {"X-Seq-First", first, "X-Seq-Last", last, "X-Seq-Oldest", old,
                          "X-Seq-Epoch", seq_epoch};
    return reply2(c, 200, ndjson ? "application/x-ndjson" : "application/json", out.p, out.len,
                  "X-Gen-Remaining", rem, more, 8);
}

static enum MHD_Result h_config(struct app *a, struct MHD_Connection *c, bool put,
                                const struct req *q)
{
    cJSON *in = NULL;
    if (put) {
        const char *why = sl_json_strict(q->body.data ? q->body.data : "", q->body.len);
        if (why)
            return reply_error(c, 400, NULL, "body is not acceptable JSON: %s", why);
        in = cJSON_ParseWithLength(q->body.data ? q->body.data : "", q->body.len);
        if (!in || !cJSON_IsObject(in)) {
            cJSON_Delete(in);
            return reply_error(c, 400, NULL, "body must be a JSON object");
        }
    }
    char err[200];
    const char *field = NULL;
    bool reseed = false, ok = true;
    app_lock(a);
    struct config before = a->gen.cfg;
    if (put && (ok = config_apply(&a->gen.cfg, in, err, sizeof err, &field, &reseed))) {
        if (reseed)
            gen_reset(&a->gen); /* same seed => the same sequence again from here */
        if (before.rate != a->gen.cfg.rate || before.running != a->gen.cfg.running)
            clock_rebase(a);
    }
    cJSON *out = ok ? config_json(&a->gen.cfg) : NULL;
    pthread_mutex_unlock(&a->mu);
    if (!ok) {
        char f[80];
        snprintf(f, sizeof f, "%s", field ? field : "");
        cJSON_Delete(in);
        return reply_error(c, 400, field ? f : NULL, "%s", err);
    }
    if (put) {
        char *s = cJSON_PrintUnformatted(in);
        log_info("config changed: %s", s ? s : "?");
        free(s);
    }
    cJSON_Delete(in);
    return reply_json(c, 200, out);
}

static enum MHD_Result h_stats(struct app *a, struct MHD_Connection *c)
{
    app_lock(a);
    cJSON *o = stats_json(a);
    pthread_mutex_unlock(&a->mu);
    return reply_json(c, 200, o);
}

static enum MHD_Result h_index(struct MHD_Connection *c)
{
    static const char body[] =
        "{\"service\":\"sluice-gen\",\"version\":\"" GEN_VERSION "\",\"endpoints\":["
        "\"GET /gen/event\",\"POST /gen/emit\",\"GET /gen/events?max=N\",\"GET /gen/events?after=SEQ&max=N\","
        "\"GET /gen/config\",\"PUT /gen/config\",\"GET /gen/stats\"]}";
    char *s = strdup(body);
    return s ? reply(c, 200, "application/json", s, strlen(s), NULL, NULL) : MHD_NO;
}

static enum MHD_Result wrong_method(struct MHD_Connection *c, const char *allow)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "error", "method not allowed");
    cJSON_AddStringToObject(o, "allow", allow);
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s ? reply(c, 405, "application/json", s, strlen(s), "Allow", allow) : MHD_NO;
}

enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload,
                                  size_t *upload_size, void **con_cls)
{
    (void)version;
    struct app *a = cls;
    struct req *q = *con_cls;
    if (!q) { /* first call: headers only */
        q = calloc(1, sizeof *q);
        if (!q)
            return MHD_NO;
        *con_cls = q;
        sl_body_begin(&q->body, MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length"), BODY_MAX);
        if (!q->body.too_big)
            return MHD_YES;
    }
    if (*upload_size && !q->body.too_big) { /* body chunk: keep up to BODY_MAX, then just swallow the rest */
        if (sl_body_add(&q->body, upload, *upload_size, BODY_MAX) != 0)
            return MHD_NO;
        *upload_size = 0;
        return MHD_YES;
    }
    *upload_size = 0;
    if (q->body.too_big)
        return reply_error(c, 413, NULL, "request body larger than %d bytes", BODY_MAX);

    bool get = !strcmp(method, "GET"), post = !strcmp(method, "POST"), put = !strcmp(method, "PUT");
    /* A browser sends Origin on every cross-origin call; one that is not the configured
     * dashboard may not change anything here (a form POST needs no preflight), nor preflight. */
    const char *origin = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Origin");
    if (origin && !allowed_origin(c) && !get)
        return reply_error(c, 403, NULL, "origin %.100s is not allowed (see --cors-origin)", origin);
    if (!strcmp(method, "OPTIONS")) { /* CORS preflight, for the configured origins only */
        struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"",
                                                                 MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        if (origin) {
            MHD_add_response_header(r, "Access-Control-Allow-Origin", origin);
            MHD_add_response_header(r, "Vary", "Origin");
        }
        MHD_add_response_header(r, "Access-Control-Allow-Methods", "GET, POST, PUT, OPTIONS");
        MHD_add_response_header(r, "Access-Control-Allow-Headers", "Content-Type");
        MHD_add_response_header(r, "Access-Control-Max-Age", "86400");
        enum MHD_Result ret = MHD_queue_response(c, 204, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (!strcmp(url, "/gen/event"))
        return get ? h_event(a, c) : wrong_method(c, "GET, OPTIONS");
    if (!strcmp(url, "/gen/emit"))
        return post ? h_emit(a, c, q) : wrong_method(c, "POST, OPTIONS");
    if (!strcmp(url, "/gen/events"))
        return get ? h_events(a, c) : wrong_method(c, "GET, OPTIONS");
    if (!strcmp(url, "/gen/config"))
        return get || put ? h_config(a, c, put, q) : wrong_method(c, "GET, PUT, OPTIONS");
    if (!strcmp(url, "/gen/stats"))
        return get ? h_stats(a, c) : wrong_method(c, "GET, OPTIONS");
    if (!strcmp(url, "/") || !strcmp(url, "/gen") || !strcmp(url, "/gen/"))
        return get ? h_index(c) : wrong_method(c, "GET, OPTIONS");
    return reply_error(c, 404, NULL, "no such endpoint: %.100s", url);
}

void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)c, (void)code;
    struct req *q = *con_cls;
    if (q) {
        sl_body_free(&q->body);
        free(q);
        *con_cls = NULL;
    }
}

/* Binds ADDR:PORT ("127.0.0.1:7070", "[::1]:0", "localhost:7070"); port 0 picks a free one. */
int listen_on(const char *spec, char *shown, size_t shown_n)
{
    char host[256];
    const char *colon = strrchr(spec, ':');
    if (!colon || (size_t)(colon - spec) >= sizeof host || !colon[1]) {
        log_error("--listen wants ADDR:PORT, got \"%s\"", spec);
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        memmove(host, host + 1, strlen(host));
        host[strlen(host) - 1] = '\0';
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV}, *res;
    int rc = getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res);
    if (rc) {
        log_error("--listen %s: %s", spec, gai_strerror(rc));
        return -1;
    }
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, res->ai_protocol);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, res->ai_addr, res->ai_addrlen) || listen(fd, 128)) {
        log_error("--listen %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, ip, sizeof ip);
        port = ntohs(s6->sin6_port);
        snprintf(shown, shown_n, "[%s]:%d", ip, port);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, sizeof ip);
        port = ntohs(s4->sin_port);
        snprintf(shown, shown_n, "%s:%d", ip, port);
    }
    return fd;
}

