/*
 * sluice-gen — the reference application's event generator (the seed's Node.js generator).
 *
 * Serves realistic e-commerce events over HTTP (libmicrohttpd) or pushes them as NDJSON to a
 * sluice http-source in listen mode (libcurl). The events follow
 * pipelines/ecommerce-event.schema.yaml; a configurable share is invalid, duplicated or late.
 * See README.md next to this file for the API.
 *
 * Threads: a small pool of MHD threads serves requests, a clock thread generates `rate`
 * events/s into a bounded buffer, and main waits for SIGINT/SIGTERM. One mutex guards everything
 * shared (the generator, the buffer, the counters and the record file), so there is one global
 * event order: same seed + same config + same requests => same bytes. A large emit takes the
 * mutex in chunks, so other requests and the clock go on meanwhile.
 *
 * The buffer is also a replay window: `GET /gen/events?after=SEQ` reads by cursor without
 * removing anything (the first such request switches the buffer from "drop the newest when
 * full" to "evict the oldest"), and says so (410 + X-Seq-Oldest) when a cursor has fallen out.
 */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../../host/jsoncheck.h" /* the host's strict JSON check, compiled in */

#define GEN_VERSION "0.1.0"
#define EVENT_MAX 512          /* longest event we write is ~330 bytes */
#define HIST_CAP 256           /* duplicates re-send one of the last HIST_CAP valid events */
#define BODY_MAX (1 << 20)     /* request bodies are small JSON objects */
#define MAX_EMIT 1000000       /* per POST /gen/emit */
#define EMIT_CHUNK 4096        /* events generated per turn of the lock during an emit */
#define MAX_ORIGINS 8          /* --cors-origin */
#define HTTP_THREADS 4
#define MAX_ECHO 100000        /* events echoed back by one POST /gen/emit */
#define MAX_RATE 10000000.0
#define MAX_SEED 9007199254740991.0 /* 2^53-1: the largest integer a JSON number holds exactly */

/* ---- logging --------------------------------------------------------------------------- */

static void logf_(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const char *level, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    fprintf(stderr, "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s prog=sluice-gen msg=\"%s\"\n",
            tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
            ts.tv_nsec / 1000000, level, msg);
}
#define log_info(...) logf_("info", __VA_ARGS__)
#define log_warn(...) logf_("warn", __VA_ARGS__)
#define log_error(...) logf_("error", __VA_ARGS__)

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) {
        log_error("out of memory");
        abort();
    }
    return p;
}

/* A growable string for response bodies. */
struct sbuf {
    char *p;
    size_t len, cap;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->p = xrealloc(b->p, cap);
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_adds(struct sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- PRNG: xoshiro256** seeded by splitmix64 (our own, so sequences never depend on libc) -- */

struct rng {
    uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A stateless hash of one value: used where a value must depend only on (seed, key). */
static uint64_t mix64(uint64_t x) { return splitmix64(&x); }

static void rng_seed(struct rng *r, uint64_t seed)
{
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1). */
static double rng_unit(struct rng *r) { return (double)(rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift; the tiny bias is irrelevant here). */
static uint64_t rng_below(struct rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)rng_next(r) * n) >> 64);
}

/* ---- configuration ----------------------------------------------------------------------- */

enum { T_PAGE_VIEW, T_ADD_TO_CART, T_PURCHASE, T_PAYMENT_FAILED, T_REFUND, T_COUNT };
static const char *const type_names[T_COUNT] = {"page_view", "add_to_cart", "purchase",
                                                "payment_failed", "refund"};

struct config {
    double rate;    /* events/s made by the clock (server) or pushed (push mode; 0 = unpaced) */
    bool running;   /* the clock generates only while running */
    double mix[T_COUNT]; /* percent of fresh events per type, sums to 100 */
    double invalid_pct, duplicate_pct, late_pct; /* shares of all events, sum <= 100 */
    double late_by; /* seconds: a late event's ts is up to this far in the past */
    long users, products;
    uint64_t seed;
};

static const struct config config_defaults = {
    .rate = 100,
    .running = true,
    .mix = {30, 25, 35, 8, 2},
    .invalid_pct = 2,
    .duplicate_pct = 2,
    .late_pct = 5,
    .late_by = 60,
    .users = 10000,
    .products = 500,
    .seed = 1,
};

/* Parses "1500ms", "30s", "5m", "2h" or a bare number of seconds. */
static bool parse_duration(const char *s, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || !isfinite(v))
        return false;
    double mult;
    if (!strcmp(end, "") || !strcmp(end, "s"))
        mult = 1;
    else if (!strcmp(end, "ms"))
        mult = 0.001;
    else if (!strcmp(end, "m"))
        mult = 60;
    else if (!strcmp(end, "h"))
        mult = 3600;
    else
        return false;
    *out = v * mult;
    return true;
}

static bool is_int_in(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble) && v->valuedouble >= lo &&
           v->valuedouble <= hi;
}

static bool is_num_in(const cJSON *v, double lo, double hi)
{
    return cJSON_IsNumber(v) && isfinite(v->valuedouble) && v->valuedouble >= lo &&
           v->valuedouble <= hi;
}

/* Formats a message into err and returns false, so checks read `return errf(...)`. */
static bool errf(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static bool errf(char *err, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, n, fmt, ap);
    va_end(ap);
    return false;
}

/*
 * Applies one member of a config object to *cfg. Returns false with a message in err (the field
 * is named by the caller). *reseed is set when the seed was given.
 */
static bool config_set(struct config *cfg, const char *key, const cJSON *v, char *err, size_t n,
                       bool *reseed)
{
    if (!strcmp(key, "rate")) {
        if (!is_num_in(v, 0, MAX_RATE))
            return errf(err, n, "rate must be a number of events/s from 0 to %.0f", MAX_RATE);
        cfg->rate = v->valuedouble;
    } else if (!strcmp(key, "running")) {
        if (!cJSON_IsBool(v))
            return errf(err, n, "running must be true or false");
        cfg->running = cJSON_IsTrue(v);
    } else if (!strcmp(key, "mix")) {
        if (!cJSON_IsObject(v))
            return errf(err, n, "mix must be an object of event type -> percent");
        double mix[T_COUNT] = {0};
        const cJSON *it;
        cJSON_ArrayForEach(it, v)
        {
            int t = 0;
            while (t < T_COUNT && strcmp(it->string, type_names[t]))
                t++;
            if (t == T_COUNT)
                return errf(err, n, "mix: unknown event type \"%.64s\"", it->string);
            if (!is_num_in(it, 0, 100))
                return errf(err, n, "mix.%s must be a number from 0 to 100", it->string);
            mix[t] = it->valuedouble;
        }
        memcpy(cfg->mix, mix, sizeof mix);
    } else if (!strcmp(key, "invalid_pct") || !strcmp(key, "duplicate_pct") ||
               !strcmp(key, "late_pct")) {
        if (!is_num_in(v, 0, 100))
            return errf(err, n, "%s must be a number from 0 to 100", key);
        double *dst = key[0] == 'i' ? &cfg->invalid_pct
                      : key[0] == 'd' ? &cfg->duplicate_pct
                                      : &cfg->late_pct;
        *dst = v->valuedouble;
    } else if (!strcmp(key, "late_by")) {
        double secs = -1;
        if (cJSON_IsNumber(v))
            secs = v->valuedouble;
        else if (cJSON_IsString(v) && !parse_duration(v->valuestring, &secs))
            secs = -1;
        if (!(secs >= 0.001 && secs <= 7 * 86400.0))
            return errf(err, n, "late_by must be seconds (or a duration like \"90s\", \"5m\") "
                                "from 1ms to 7 days");
        cfg->late_by = secs;
    } else if (!strcmp(key, "users")) {
        if (!is_int_in(v, 1, 100000000))
            return errf(err, n, "users must be an integer from 1 to 100000000");
        cfg->users = (long)v->valuedouble;
    } else if (!strcmp(key, "products")) {
        if (!is_int_in(v, 1, 1000000))
            return errf(err, n, "products must be an integer from 1 to 1000000");
        cfg->products = (long)v->valuedouble;
    } else if (!strcmp(key, "seed")) {
        if (!is_int_in(v, 0, MAX_SEED))
            return errf(err, n, "seed must be an integer from 0 to %.0f", MAX_SEED);
        cfg->seed = (uint64_t)v->valuedouble;
        *reseed = true;
    } else {
        return errf(err, n, "unknown field \"%.64s\"", key);
    }
    return true;
}

/* Cross-field rules, checked after all members are applied. */
static bool config_check(const struct config *cfg, char *err, size_t n, const char **field)
{
    double sum = 0;
    for (int t = 0; t < T_COUNT; t++)
        sum += cfg->mix[t];
    if (fabs(sum - 100) > 1e-6) {
        *field = "mix";
        return errf(err, n, "mix must sum to 100 (got %g)", sum);
    }
    double shares = cfg->invalid_pct + cfg->duplicate_pct + cfg->late_pct;
    if (shares > 100 + 1e-9) {
        *field = "invalid_pct";
        return errf(err, n, "invalid_pct + duplicate_pct + late_pct must not exceed 100 (got %g)",
                        shares);
    }
    return true;
}

/*
 * Applies a whole config object: all or nothing. On error *field names the bad field and cfg is
 * untouched.
 */
static bool config_apply(struct config *cfg, const cJSON *obj, char *err, size_t n,
                         const char **field, bool *reseed)
{
    if (!cJSON_IsObject(obj)) {
        *field = NULL;
        return errf(err, n, "config must be a JSON object");
    }
    struct config next = *cfg;
    const cJSON *it;
    cJSON_ArrayForEach(it, obj)
    {
        if (!config_set(&next, it->string, it, err, n, reseed)) {
            *field = it->string;
            return false;
        }
    }
    if (!config_check(&next, err, n, field))
        return false;
    *cfg = next;
    return true;
}

static cJSON *config_json(const struct config *cfg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "rate", cfg->rate);
    cJSON_AddBoolToObject(o, "running", cfg->running);
    cJSON *mix = cJSON_AddObjectToObject(o, "mix");
    for (int t = 0; t < T_COUNT; t++)
        cJSON_AddNumberToObject(mix, type_names[t], cfg->mix[t]);
    cJSON_AddNumberToObject(o, "invalid_pct", cfg->invalid_pct);
    cJSON_AddNumberToObject(o, "duplicate_pct", cfg->duplicate_pct);
    cJSON_AddNumberToObject(o, "late_pct", cfg->late_pct);
    cJSON_AddNumberToObject(o, "late_by", cfg->late_by);
    cJSON_AddNumberToObject(o, "users", (double)cfg->users);
    cJSON_AddNumberToObject(o, "products", (double)cfg->products);
    cJSON_AddNumberToObject(o, "seed", (double)cfg->seed);
    return o;
}

/* ---- events ------------------------------------------------------------------------------ */

enum field {
    F_EVENT_ID, F_EVENT_TYPE, F_USER_ID, F_SESSION_ID, F_PRODUCT_ID, F_QUANTITY, F_AMOUNT,
    F_CURRENCY, F_PAYMENT_METHOD, F_TS, F_COUNT
};
static const char *const field_names[F_COUNT] = {
    "event_id", "event_type", "user_id", "session_id", "product_id",
    "quantity", "amount", "currency", "payment_method", "ts"};
#define BIT(f) (1u << (f))

/* The kinds of invalid event; each breaks exactly one rule of the schema. */
enum kind {
    K_MISSING_FIELD, K_WRONG_TYPE, K_BAD_TS, K_NEGATIVE_AMOUNT, K_BAD_QUANTITY, K_BAD_EVENT_TYPE,
    K_BAD_CURRENCY, K_BAD_EVENT_ID, K_COUNT
};
static const char *const kind_names[K_COUNT] = {
    "missing_field", "wrong_type", "bad_ts", "negative_amount", "bad_quantity",
    "bad_event_type", "bad_currency", "bad_event_id"};

enum cls { C_VALID, C_INVALID, C_DUPLICATE };
static const char *const cls_names[] = {"valid", "invalid", "duplicate"};

struct event {
    unsigned present;          /* BIT(field) for each field written */
    const char *raw[F_COUNT];  /* a JSON token written instead of the field's value (invalid) */
    char rawbuf[128];          /* storage for a raw token built at run time */
    char id[40];
    int type;
    long user, product;
    uint64_t session;
    int quantity;
    long amount_cents;
    const char *currency, *payment_method;
    char ts[80];
};

/* What one call of the generator made. */
struct gen_out {
    char json[EVENT_MAX];
    size_t len;
    int type;
    enum cls cls;
    int kind;          /* enum kind when invalid */
    char reason[64];   /* "missing_field:user_id", ... when invalid */
    bool late;
    uint64_t dup_of;   /* seq of the original when a duplicate */
};

struct hist {
    uint64_t seq;
    int type;
    size_t len;
    char json[EVENT_MAX];
};

struct gen {
    struct config cfg;
    struct rng rng;
    bool fixed;            /* --fixed-clock: event time is virtual, see gen_now_ms */
    int64_t fixed_start_ms;
    uint64_t vclock_us;
    struct hist *hist;     /* ring of the last HIST_CAP valid events */
    size_t hist_n, hist_next;
    int64_t ts_cache_sec;  /* gmtime is the costliest step; cache the formatted second */
    char ts_cache[64];
};

static void gen_reset(struct gen *g)
{
    rng_seed(&g->rng, g->cfg.seed);
    g->vclock_us = (uint64_t)g->fixed_start_ms * 1000;
    g->hist_n = g->hist_next = 0;
}

/* Event time "now": the wall clock, or with --fixed-clock a virtual clock that starts at the
 * given ms and advances 1/rate s per event, so byte-identical runs need no real time at all. */
static int64_t gen_now_ms(struct gen *g)
{
    if (!g->fixed) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
    }
    int64_t ms = (int64_t)(g->vclock_us / 1000);
    g->vclock_us += g->cfg.rate > 0 ? (uint64_t)fmax(1, llround(1e6 / g->cfg.rate)) : 1000;
    return ms;
}

static void gen_fmt_ts(struct gen *g, int64_t ms, char *out, size_t n)
{
    int64_t sec = ms >= 0 ? ms / 1000 : -((-ms + 999) / 1000);
    int frac = (int)(ms - sec * 1000);
    if (sec != g->ts_cache_sec || !g->ts_cache[0]) {
        time_t t = (time_t)sec;
        struct tm tm;
        gmtime_r(&t, &tm);
        snprintf(g->ts_cache, sizeof g->ts_cache, "%04d-%02d-%02dT%02d:%02d:%02d",
                 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        g->ts_cache_sec = sec;
    }
    snprintf(out, n, "%s.%03dZ", g->ts_cache, frac);
}

/* A product's unit price in cents: fixed per (seed, product), shop-like tiers ending in .99. */
static long product_price_cents(uint64_t seed, long product)
{
    uint64_t h = mix64(seed ^ mix64((uint64_t)product));
    unsigned tier = (unsigned)(h % 100);
    long lo = tier < 40 ? 2 : tier < 75 ? 30 : tier < 95 ? 150 : 600;
    long hi = tier < 40 ? 30 : tier < 75 ? 150 : tier < 95 ? 600 : 2000;
    return (lo + (long)((h >> 8) % (uint64_t)(hi - lo))) * 100 + 99;
}

static const char *pick_weighted(struct rng *r, const char *const *names, const int *weights,
                                 int n)
{
    int total = 0;
    for (int i = 0; i < n; i++)
        total += weights[i];
    int x = (int)rng_below(r, (uint64_t)total);
    for (int i = 0; i < n - 1; i++) {
        if (x < weights[i])
            return names[i];
        x -= weights[i];
    }
    return names[n - 1];
}

static const char *const currencies[] = {"USD", "EUR", "GBP"};
static const int currency_w[] = {90, 6, 4};
static const char *const methods[] = {"card", "paypal", "apple_pay", "google_pay",
                                      "bank_transfer", "cod"};
static const int method_w[] = {55, 15, 10, 8, 7, 5};

/* A fresh valid event of a type drawn from the mix, at event time now_ms. */
static void gen_valid(struct gen *g, struct event *e, int64_t now_ms)
{
    struct rng *r = &g->rng;
    memset(e, 0, sizeof *e);
    double u = rng_unit(r) * 100, acc = 0;
    e->type = T_COUNT - 1;
    for (int t = 0; t < T_COUNT; t++) {
        acc += g->cfg.mix[t];
        if (u < acc && g->cfg.mix[t] > 0) {
            e->type = t;
            break;
        }
    }
    while (g->cfg.mix[e->type] <= 0 && e->type > 0) /* rounding fell past the last weight */
        e->type--;

    uint64_t a = rng_next(r), b = rng_next(r); /* a UUID v4 built from the PRNG */
    a = (a & ~0xF000ull) | 0x4000ull;
    b = (b & ~(0xC000ull << 48)) | (0x8000ull << 48);
    snprintf(e->id, sizeof e->id, "%08" PRIx32 "-%04" PRIx32 "-%04" PRIx32 "-%04" PRIx32
             "-%012" PRIx64, (uint32_t)(a >> 32), (uint32_t)(a >> 16) & 0xFFFF,
             (uint32_t)a & 0xFFFF, (uint32_t)(b >> 48), b & UINT64_C(0xFFFFFFFFFFFF));

    e->user = (long)rng_below(r, (uint64_t)g->cfg.users) + 1;
    /* A session is a user's 30-minute slot: repeat visits group the way a real site's do. */
    e->session = mix64(g->cfg.seed ^ mix64((uint64_t)e->user) ^ (uint64_t)(now_ms / 1800000));
    /* Popularity is skewed: low product numbers sell far more (u^2 favours small values). */
    double pu = rng_unit(r);
    e->product = (long)(pu * pu * (double)g->cfg.products) + 1;
    e->present = BIT(F_EVENT_ID) | BIT(F_EVENT_TYPE) | BIT(F_USER_ID) | BIT(F_SESSION_ID) | BIT(F_TS);
    if (e->type == T_PAGE_VIEW) {
        if (rng_below(r, 100) < 80) /* the rest are home/search pages */
            e->present |= BIT(F_PRODUCT_ID);
    } else {
        unsigned q = (unsigned)rng_below(r, 100);
        e->quantity = q < 70 ? 1 : q < 88 ? 2 : q < 95 ? 3 : q < 98 ? 4 : 5;
        e->amount_cents = product_price_cents(g->cfg.seed, e->product) * e->quantity;
        e->currency = pick_weighted(r, currencies, currency_w, 3);
        e->present |= BIT(F_PRODUCT_ID) | BIT(F_QUANTITY) | BIT(F_AMOUNT) | BIT(F_CURRENCY);
        if (e->type != T_ADD_TO_CART) {
            e->payment_method = pick_weighted(r, methods, method_w, 6);
            e->present |= BIT(F_PAYMENT_METHOD);
        }
    }
    gen_fmt_ts(g, now_ms, e->ts, sizeof e->ts);
}

/* Breaks exactly one schema rule of a valid event; writes the kind and detail into out. */
static void gen_corrupt(struct gen *g, struct event *e, struct gen_out *out)
{
    struct rng *r = &g->rng;
    int k = (int)rng_below(r, K_COUNT);
    const char *detail = "";
    out->kind = k;
    switch (k) {
    case K_MISSING_FIELD: {
        int cand[6], n = 0;
        cand[n++] = F_EVENT_ID;
        cand[n++] = F_EVENT_TYPE;
        cand[n++] = F_USER_ID;
        cand[n++] = F_TS;
        if (e->type != T_PAGE_VIEW)
            cand[n++] = F_PRODUCT_ID;
        if (e->type == T_PURCHASE || e->type == T_PAYMENT_FAILED || e->type == T_REFUND)
            cand[n++] = F_AMOUNT;
        int f = cand[rng_below(r, (uint64_t)n)];
        e->present &= ~BIT(f);
        detail = field_names[f];
        break;
    }
    case K_WRONG_TYPE: {
        static const struct { int f; const char *tok; } v[] = {
            {F_QUANTITY, "\"two\""}, {F_QUANTITY, "2.5"}, {F_AMOUNT, "\"N/A\""},
            {F_USER_ID, "{\"id\":42}"}};
        int i = (int)rng_below(r, 4);
        e->present |= BIT(v[i].f);
        e->raw[v[i].f] = v[i].tok;
        detail = field_names[v[i].f];
        break;
    }
    case K_BAD_TS: {
        int i = (int)rng_below(r, 4);
        if (i == 0)
            e->raw[F_TS] = "\"yesterday\"";
        else if (i == 1)
            e->raw[F_TS] = "\"2024-13-45T25:61:00Z\"";
        else { /* the real time without a zone: "2024-05-01 10:00:00" or "2024-05-01T10:00:00" */
            snprintf(e->rawbuf, sizeof e->rawbuf, "\"%.10s%c%.8s\"", e->ts, i == 2 ? ' ' : 'T',
                     e->ts + 11);
            e->raw[F_TS] = e->rawbuf;
        }
        detail = i == 0 ? "not_a_date" : i == 1 ? "out_of_range" : "no_zone";
        break;
    }
    case K_NEGATIVE_AMOUNT: {
        long cents = e->amount_cents ? e->amount_cents : product_price_cents(g->cfg.seed, e->product);
        snprintf(e->rawbuf, sizeof e->rawbuf, "-%ld.%02ld", cents / 100, cents % 100);
        e->raw[F_AMOUNT] = e->rawbuf;
        e->present |= BIT(F_AMOUNT);
        break;
    }
    case K_BAD_QUANTITY:
        e->raw[F_QUANTITY] = rng_below(r, 2) ? "0" : "-1";
        e->present |= BIT(F_QUANTITY);
        break;
    case K_BAD_EVENT_TYPE: {
        static const char *const bad[] = {"\"checkout\"", "\"purchased\"", "\"\""};
        e->raw[F_EVENT_TYPE] = bad[rng_below(r, 3)];
        break;
    }
    case K_BAD_CURRENCY: {
        static const char *const bad[] = {"\"US$\"", "\"EURO\"", "\"12\""};
        e->raw[F_CURRENCY] = bad[rng_below(r, 3)];
        e->present |= BIT(F_CURRENCY);
        break;
    }
    default: /* K_BAD_EVENT_ID: empty, or longer than 64 characters */
        if (rng_below(r, 2)) {
            e->raw[F_EVENT_ID] = "\"\"";
            detail = "empty";
        } else {
            snprintf(e->rawbuf, sizeof e->rawbuf, "\"%s-%s\"", e->id, e->id);
            e->raw[F_EVENT_ID] = e->rawbuf;
            detail = "too_long";
        }
        break;
    }
    snprintf(out->reason, sizeof out->reason, "%s%s%s", kind_names[k], *detail ? ":" : "", detail);
}

struct out {
    char *p;
    size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(o->p + o->len, o->cap - o->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= o->cap - o->len) {
        log_error("event longer than %d bytes (bug)", EVENT_MAX);
        abort();
    }
    o->len += (size_t)n;
}

/* Writes an event as compact JSON, fields in schema order. Returns its length. */
static size_t event_write(const struct event *e, char *buf, size_t cap)
{
    struct out o = {buf, 0, cap};
    put(&o, "{");
    for (int f = 0; f < F_COUNT; f++) {
        if (!(e->present & BIT(f)))
            continue;
        put(&o, "%s\"%s\":", o.len > 1 ? "," : "", field_names[f]);
        if (e->raw[f]) {
            put(&o, "%s", e->raw[f]);
            continue;
        }
        switch (f) {
        case F_EVENT_ID: put(&o, "\"%s\"", e->id); break;
        case F_EVENT_TYPE: put(&o, "\"%s\"", type_names[e->type]); break;
        case F_USER_ID: put(&o, "\"u-%06ld\"", e->user); break;
        case F_SESSION_ID: put(&o, "\"s-%012" PRIx64 "\"", e->session & UINT64_C(0xFFFFFFFFFFFF)); break;
        case F_PRODUCT_ID: put(&o, "\"p-%05ld\"", e->product); break;
        case F_QUANTITY: put(&o, "%d", e->quantity); break;
        case F_AMOUNT: put(&o, "%ld.%02ld", e->amount_cents / 100, e->amount_cents % 100); break;
        case F_CURRENCY: put(&o, "\"%s\"", e->currency); break;
        case F_PAYMENT_METHOD: put(&o, "\"%s\"", e->payment_method); break;
        default: put(&o, "\"%s\"", e->ts); break; /* F_TS */
        }
    }
    put(&o, "}");
    return o.len;
}

/*
 * The next event of the sequence. One roll decides its class, so each share is a share of all
 * events: [0, dup) duplicate, [dup, dup+invalid) invalid, then late_pct late (valid), the rest
 * valid and on time. A duplicate is an exact re-send of one of the last HIST_CAP valid events.
 */
static void gen_next(struct gen *g, uint64_t seq, struct gen_out *out)
{
    const struct config *c = &g->cfg;
    int64_t now_ms = gen_now_ms(g);
    double u = rng_unit(&g->rng) * 100;
    out->cls = C_VALID;
    out->late = false;
    out->dup_of = 0;
    out->reason[0] = '\0';
    out->kind = -1;

    if (u < c->duplicate_pct && g->hist_n > 0) {
        size_t back = (size_t)rng_below(&g->rng, g->hist_n) + 1;
        const struct hist *h = &g->hist[(g->hist_next + HIST_CAP - back) % HIST_CAP];
        memcpy(out->json, h->json, h->len);
        out->len = h->len;
        out->type = h->type;
        out->cls = C_DUPLICATE;
        out->dup_of = h->seq;
        return;
    }
    struct event e;
    gen_valid(g, &e, now_ms);
    if (u >= c->duplicate_pct && u < c->duplicate_pct + c->invalid_pct) {
        out->cls = C_INVALID;
        gen_corrupt(g, &e, out);
    } else if (u >= c->duplicate_pct + c->invalid_pct &&
               u < c->duplicate_pct + c->invalid_pct + c->late_pct) {
        uint64_t max_ms = (uint64_t)fmax(1, llround(c->late_by * 1000));
        gen_fmt_ts(g, now_ms - 1 - (int64_t)rng_below(&g->rng, max_ms), e.ts, sizeof e.ts);
        out->late = true;
    }
    out->type = e.type;
    out->len = event_write(&e, out->json, sizeof out->json);
    if (out->cls == C_VALID) {
        struct hist *h = &g->hist[g->hist_next];
        h->seq = seq;
        h->type = e.type;
        h->len = out->len;
        memcpy(h->json, out->json, out->len);
        g->hist_next = (g->hist_next + 1) % HIST_CAP;
        if (g->hist_n < HIST_CAP)
            g->hist_n++;
    }
}

/* ---- the service: generator + buffer + counters + record, under one mutex --------------- */

struct stats {
    uint64_t generated, by_type[T_COUNT], valid, invalid, by_kind[K_COUNT], duplicates, late;
    uint64_t dropped, polled, polls, evicted;
};

/* Where an event went; written into the record file as "dest". */
enum dest { D_BUFFER, D_RESPONSE, D_PUSH };

struct app {
    pthread_mutex_t mu;
    struct gen gen;
    struct stats st;
    uint64_t seq;
    struct gen_out scratch;
    /* the bounded buffer /gen/events reads: a ring of malloc'd event strings; ring[ring_head]
     * has cursor sequence number head_seq, the next buffered event gets head_seq + ring_n */
    char **ring;
    size_t *ring_len;
    size_t ring_cap, ring_head, ring_n;
    uint64_t head_seq;
    bool cursor_mode;     /* a cursor reader exists: keep what was read, evict the oldest */
    uint64_t legacy_after; /* cursor mode: what plain /gen/events has handed out */
    const char *origins[MAX_ORIGINS]; /* CORS: the dashboard origins allowed */
    int n_origins;
    FILE *record;
    /* clock pacing: events owed = rate * (now - t0) - done */
    double clock_t0;
    uint64_t clock_done;
    bool stop;
    pthread_cond_t cv;
    double started;
};

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
static const struct gen_out *produce(struct app *a, enum dest want)
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

static void clock_rebase(struct app *a)
{
    a->clock_t0 = mono_now();
    a->clock_done = 0;
}

/* The background clock: every 10 ms, generate the events the configured rate owes. */
static void *clock_main(void *arg)
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
    cJSON_AddNumberToObject(o, "buffered", (double)a->ring_n);
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
    struct sbuf body;
    bool too_big;
};

/* This process's stream of cursor numbers: a restarted generator numbers from 1 again, and a
 * reader that kept a cursor must be able to tell (X-Seq-Epoch). Set once in main. */
static char seq_epoch[24];

/* CORS: the dashboard origins allowed to call (set once in main, read-only after). */
static const char *const *cors_origins;
static int n_cors_origins;

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
    while (i < q->body.len && strchr(" \t\r\n", q->body.p[i]))
        i++;
    if (i == q->body.len)
        return cJSON_CreateObject();
    if ((*why = sl_json_strict(q->body.p, q->body.len))) {
        *ok = false;
        return NULL;
    }
    cJSON *o = cJSON_ParseWithLength(q->body.p, q->body.len);
    if (!o || !cJSON_IsObject(o)) {
        cJSON_Delete(o);
        *ok = false;
        return NULL;
    }
    return o;
}

static enum MHD_Result h_event(struct app *a, struct MHD_Connection *c)
{
    pthread_mutex_lock(&a->mu);
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
    struct sbuf events = {0};
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
        /* A mutex is not fair: without a pause the next chunk would take it straight back. */
        if (done < count)
            nanosleep(&(struct timespec){0, 50000}, NULL);
    }

    /* Built by hand: the echoed events must be byte-identical to what was generated. */
    struct sbuf out = {0};
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
    pthread_mutex_lock(&a->mu);
    bool cursor = after_s != NULL;
    if (cursor && !a->cursor_mode) {
        a->cursor_mode = true;
        a->legacy_after = a->head_seq - 1;
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
    a->st.polled += n;
    a->st.polls++;
    size_t remaining = (size_t)(next - from - n);
    pthread_mutex_unlock(&a->mu);

    struct sbuf out = {0};
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
        const char *why = sl_json_strict(q->body.p ? q->body.p : "", q->body.len);
        if (why)
            return reply_error(c, 400, NULL, "body is not acceptable JSON: %s", why);
        in = cJSON_ParseWithLength(q->body.p ? q->body.p : "", q->body.len);
        if (!in || !cJSON_IsObject(in)) {
            cJSON_Delete(in);
            return reply_error(c, 400, NULL, "body must be a JSON object");
        }
    }
    char err[200];
    const char *field = NULL;
    bool reseed = false, ok = true;
    pthread_mutex_lock(&a->mu);
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
    pthread_mutex_lock(&a->mu);
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

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
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
        return MHD_YES;
    }
    if (*upload_size) { /* body chunk: keep up to BODY_MAX, then just swallow the rest */
        if (q->body.len + *upload_size > BODY_MAX)
            q->too_big = true;
        else
            sb_add(&q->body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (q->too_big)
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

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)c, (void)code;
    struct req *q = *con_cls;
    if (q) {
        free(q->body.p);
        free(q);
        *con_cls = NULL;
    }
}

/* Binds ADDR:PORT ("127.0.0.1:7070", "[::1]:0", "localhost:7070"); port 0 picks a free one. */
static int listen_on(const char *spec, char *shown, size_t shown_n)
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

/* ---- push mode --------------------------------------------------------------------------- */

static volatile sig_atomic_t push_stop;
static void on_push_signal(int sig) { (void)sig, push_stop = 1; }

static size_t discard(char *p, size_t size, size_t n, void *ud)
{
    (void)p, (void)ud;
    return size * n;
}

static void sleep_s(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - floor(s)) * 1e9)};
    nanosleep(&ts, NULL); /* a signal cuts it short, which is what we want */
}

/*
 * Posts NDJSON batches to URL at the configured rate (0 = as fast as the receiver takes them)
 * until `count` events are sent or a signal arrives. A failed batch is retried as is (the
 * receiver may have durable acks), giving up after `retries` failures in a row.
 */
static int run_push(struct app *a, const char *url, uint64_t count, size_t batch, int retries)
{
    struct sigaction sa = {.sa_handler = on_push_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    CURL *h = curl_easy_init();
    if (!h)
        return 1;
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/x-ndjson");
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);

    double rate = a->gen.cfg.rate;
    /* At low rates send small batches often (~20 a second) rather than one big one a minute. */
    if (rate > 0 && rate / 20 < (double)batch)
        batch = rate / 20 >= 1 ? (size_t)(rate / 20) : 1;

    struct sbuf body = {0};
    uint64_t sent = 0, batches = 0, failures = 0;
    int streak = 0, rc = 0;
    double t0 = mono_now();
    while (!push_stop && (count == 0 || sent < count)) {
        size_t n = count ? (size_t)fmin((double)batch, (double)(count - sent)) : batch;
        if (rate > 0)
            sleep_s(t0 + (double)sent / rate - mono_now());
        if (push_stop)
            break;
        body.len = 0;
        pthread_mutex_lock(&a->mu);
        for (size_t i = 0; i < n; i++) {
            const struct gen_out *o = produce(a, D_PUSH);
            sb_add(&body, o->json, o->len);
            sb_add(&body, "\n", 1);
        }
        if (a->record)
            fflush(a->record);
        pthread_mutex_unlock(&a->mu);

        for (;;) {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, body.p);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body.len);
            CURLcode cc = curl_easy_perform(h);
            long status = 0;
            curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
            if (cc == CURLE_OK && status >= 200 && status < 300) {
                streak = 0;
                break;
            }
            failures++;
            if (++streak > retries || push_stop) {
                log_error("push to %s failed %d times in a row (last: %s, HTTP %ld); giving up",
                          url, streak, curl_easy_strerror(cc), status);
                rc = 1;
                goto done;
            }
            log_warn("push failed (%s, HTTP %ld); retrying the batch", curl_easy_strerror(cc),
                     status);
            sleep_s(fmin(2.0, 0.1 * (1 << (streak < 5 ? streak - 1 : 4))));
        }
        sent += n;
        batches++;
    }
done:;
    double el = mono_now() - t0;
    printf("sent %" PRIu64 " events in %" PRIu64 " batches in %.3f s: %.0f events/s "
           "(%" PRIu64 " failed requests retried)\n",
           sent, batches, el, el > 0 ? (double)sent / el : 0.0, failures);
    fflush(stdout);
    free(body.p);
    curl_slist_free_all(hdr);
    curl_easy_cleanup(h);
    return rc;
}

/* ---- main -------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: sluice-gen [options]\n"
            "  --listen ADDR:PORT   serve the HTTP API (default 127.0.0.1:7070; port 0 = any)\n"
            "  --rate N             events/s (default 100; in push mode 0 = unpaced)\n"
            "  --seed N             PRNG seed, 0..2^53-1 (default: from the time, logged)\n"
            "  --config JSON        initial config, same fields as PUT /gen/config\n"
            "  --stopped            start with the clock stopped (running=false)\n"
            "  --buffer N           events /gen/events can hold (default 100000)\n"
            "  --fixed-clock MS     event time starts at MS (epoch ms) and advances 1/rate s\n"
            "                       per event: byte-identical runs for tests\n"
            "  --record FILE        append every event as {\"seq\",\"class\",...,\"event\"}\n"
            "  --cors-origin URL    a dashboard origin allowed to call the API (repeatable; default\n"
            "                       http://127.0.0.1:8083 and http://localhost:8083)\n"
            "  --push URL           push NDJSON batches to URL instead of serving\n"
            "  --count N            push mode: stop after N events (default: until a signal)\n"
            "  --batch N            push mode: events per request (default 1000)\n"
            "  --retries N          push mode: failures in a row before giving up (default 10)\n"
            "  --version, --help\n");
}

static bool arg_num(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo && v <= hi)) {
        log_error("%s: expected a number from %.0f to %.0f, got \"%s\"", opt, lo, hi, s);
        return false;
    }
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    enum { O_LISTEN = 256, O_RATE, O_SEED, O_CONFIG, O_STOPPED, O_BUFFER, O_FIXED, O_RECORD,
           O_PUSH, O_COUNT, O_BATCH, O_RETRIES, O_CORS, O_VERSION, O_HELP };
    static const struct option opts[] = {
        {"listen", 1, 0, O_LISTEN}, {"rate", 1, 0, O_RATE}, {"seed", 1, 0, O_SEED},
        {"config", 1, 0, O_CONFIG}, {"stopped", 0, 0, O_STOPPED}, {"buffer", 1, 0, O_BUFFER},
        {"fixed-clock", 1, 0, O_FIXED}, {"record", 1, 0, O_RECORD}, {"push", 1, 0, O_PUSH},
        {"count", 1, 0, O_COUNT}, {"batch", 1, 0, O_BATCH}, {"retries", 1, 0, O_RETRIES},
        {"cors-origin", 1, 0, O_CORS}, {"version", 0, 0, O_VERSION}, {"help", 0, 0, O_HELP}, {0, 0, 0, 0}};

    static struct app app; /* static: large, and zeroed */
    struct app *a = &app;
    a->gen.cfg = config_defaults;
    const char *listen_spec = "127.0.0.1:7070", *record_path = NULL, *push_url = NULL;
    double buffer = 100000, count = 0, batch = 1000, retries = 10, v;
    bool seed_given = false;
    int opt;
    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char err[200];
        const char *field;
        bool reseed = false;
        switch (opt) {
        case O_LISTEN: listen_spec = optarg; break;
        case O_RATE:
            if (!arg_num("--rate", optarg, 0, MAX_RATE, &a->gen.cfg.rate))
                return 2;
            break;
        case O_SEED:
            if (!arg_num("--seed", optarg, 0, MAX_SEED, &v) || v != floor(v))
                return 2;
            a->gen.cfg.seed = (uint64_t)v;
            seed_given = true;
            break;
        case O_CONFIG: {
            const char *why = sl_json_strict(optarg, strlen(optarg));
            if (why) {
                log_error("--config: not acceptable JSON: %s", why);
                return 2;
            }
            cJSON *j = cJSON_Parse(optarg);
            bool ok = config_apply(&a->gen.cfg, j, err, sizeof err, &field, &reseed);
            cJSON_Delete(j);
            if (!ok) {
                log_error("--config: %s", j ? err : "not valid JSON");
                return 2;
            }
            seed_given |= reseed;
            break;
        }
        case O_STOPPED: a->gen.cfg.running = false; break;
        case O_BUFFER:
            if (!arg_num("--buffer", optarg, 1, 100000000, &buffer))
                return 2;
            break;
        case O_FIXED:
            if (!arg_num("--fixed-clock", optarg, 0, 253402300799999.0, &v))
                return 2;
            a->gen.fixed = true;
            a->gen.fixed_start_ms = (int64_t)v;
            break;
        case O_RECORD: record_path = optarg; break;
        case O_CORS:
            if (a->n_origins == MAX_ORIGINS || strncmp(optarg, "http", 4) || strchr(optarg, '*')) {
                log_error("--cors-origin: at most %d origins like http://127.0.0.1:8083, no wildcards",
                          MAX_ORIGINS);
                return 2;
            }
            a->origins[a->n_origins++] = optarg;
            break;
        case O_PUSH: push_url = optarg; break;
        case O_COUNT:
            if (!arg_num("--count", optarg, 0, 1e15, &count))
                return 2;
            break;
        case O_BATCH:
            if (!arg_num("--batch", optarg, 1, 1000000, &batch))
                return 2;
            break;
        case O_RETRIES:
            if (!arg_num("--retries", optarg, 0, 1000000, &retries))
                return 2;
            break;
        case O_VERSION: printf("sluice-gen %s\n", GEN_VERSION); return 0;
        case O_HELP: usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc) {
        log_error("unexpected argument \"%s\"", argv[optind]);
        return 2;
    }
    if (!push_url && count > 0) {
        log_error("--count only applies with --push");
        return 2;
    }
    if (!seed_given) { /* random but reported, so a run can be replayed */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        a->gen.cfg.seed = mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                                (uint64_t)getpid()) & ((1ull << 53) - 1);
    }

    if (!a->n_origins) { /* the dashboard at sluice's default REST address */
        a->origins[a->n_origins++] = "http://127.0.0.1:8083";
        a->origins[a->n_origins++] = "http://localhost:8083";
    }
    cors_origins = a->origins;
    n_cors_origins = a->n_origins;
    a->head_seq = 1;
    {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        snprintf(seq_epoch, sizeof seq_epoch, "%016" PRIx64,
                 mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ ((uint64_t)getpid() << 12)));
    }
    pthread_mutex_init(&a->mu, NULL);
    a->gen.hist = xrealloc(NULL, sizeof(struct hist) * HIST_CAP);
    gen_reset(&a->gen);
    a->started = mono_now();
    if (record_path) {
        a->record = fopen(record_path, "a");
        if (!a->record) {
            log_error("--record %s: %s", record_path, strerror(errno));
            return 2;
        }
        setvbuf(a->record, NULL, _IOFBF, 1 << 20);
    }
    log_info("seed=%" PRIu64 " rate=%g", a->gen.cfg.seed, a->gen.cfg.rate);

    int rc = 0;
    if (push_url) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        rc = run_push(a, push_url, (uint64_t)count, (size_t)batch, (int)retries);
        curl_global_cleanup();
    } else {
        /* Block the signals before any thread starts, so only main's sigwait sees them. */
        sigset_t sigs;
        sigemptyset(&sigs);
        sigaddset(&sigs, SIGINT);
        sigaddset(&sigs, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &sigs, NULL);
        signal(SIGPIPE, SIG_IGN);

        a->ring_cap = (size_t)buffer;
        a->ring = calloc(a->ring_cap, sizeof *a->ring);
        a->ring_len = calloc(a->ring_cap, sizeof *a->ring_len);
        char shown[300];
        int fd = listen_on(listen_spec, shown, sizeof shown);
        if (fd < 0 || !a->ring || !a->ring_len)
            return 2;
        /* A pool of threads: a long request (a big emit or poll) never holds up the others. */
        struct MHD_Daemon *d = MHD_start_daemon(
            MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL, on_request, a,
            MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)HTTP_THREADS,
            MHD_OPTION_PER_IP_CONNECTION_LIMIT, 64u,
            MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_END);
        if (!d) {
            log_error("cannot start the HTTP server on %s", shown);
            return 1;
        }
        pthread_condattr_t ca;
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&a->cv, &ca);
        pthread_condattr_destroy(&ca);
        clock_rebase(a);
        pthread_t clock_thr;
        pthread_create(&clock_thr, NULL, clock_main, a);

        printf("sluice-gen listening on http://%s\n", shown);
        fflush(stdout);
        log_info("listening on http://%s", shown);

        int sig = 0;
        sigwait(&sigs, &sig);
        log_info("signal %d: stopping", sig);
        pthread_mutex_lock(&a->mu);
        a->stop = true;
        pthread_cond_signal(&a->cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(clock_thr, NULL);
        MHD_stop_daemon(d);
        pthread_cond_destroy(&a->cv);
        for (size_t i = 0; i < a->ring_n; i++)
            free(a->ring[(a->ring_head + i) % a->ring_cap]);
        free(a->ring);
        free(a->ring_len);
    }
    log_info("generated=%" PRIu64 " valid=%" PRIu64 " invalid=%" PRIu64 " duplicates=%" PRIu64
             " late=%" PRIu64 " dropped=%" PRIu64 " polled=%" PRIu64,
             a->st.generated, a->st.valid, a->st.invalid, a->st.duplicates, a->st.late,
             a->st.dropped, a->st.polled);
    if (a->record && fclose(a->record)) {
        log_error("--record: %s", strerror(errno));
        rc = 1;
    }
    free(a->gen.hist);
    pthread_mutex_destroy(&a->mu);
    return rc;
}
