/* events.c — sluice-gen's PRNG, configuration and events (see README.md, "Events"). */
#include "gen.h"

#include "../../plugins/common/sl_duration.h"

/* ---- PRNG: xoshiro256** seeded by splitmix64 (our own, so sequences never depend on libc) -- */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A stateless hash of one value: used where a value must depend only on (seed, key). */
uint64_t mix64(uint64_t x) { return splitmix64(&x); }

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

const char *const type_names[T_COUNT] = {"page_view", "add_to_cart", "purchase",
                                                "payment_failed", "refund"};

const struct config config_defaults = {
    .rate = 100,
    .running = true,
    .mix = {30, 25, 35, 8, 2},
    .invalid_pct = 2,
    .duplicate_pct = 2,
    .late_pct = 5,
    .late_by_ms = 60000,
    .users = 10000,
    .products = 500,
    .seed = 1,
};

bool is_int_in(const cJSON *v, double lo, double hi)
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
        /* The host's duration syntax and meaning: a bare number is milliseconds. */
        int64_t ms = -1;
        if (cJSON_IsNumber(v))
            ms = v->valuedouble >= 0 && v->valuedouble <= 9e18 ? (int64_t)llround(v->valuedouble) : -1;
        else if (cJSON_IsString(v) && sl_duration_ms(v->valuestring, &ms) != 0)
            ms = -1;
        if (!(ms >= 1 && ms <= 7 * 86400000LL))
            return errf(err, n, "late_by must be a duration (\"90s\", \"5m\"; a bare number is "
                                "milliseconds) from 1ms to 7 days");
        cfg->late_by_ms = ms;
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
bool config_apply(struct config *cfg, const cJSON *obj, char *err, size_t n,
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

cJSON *config_json(const struct config *cfg)
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
    cJSON_AddNumberToObject(o, "late_by", (double)cfg->late_by_ms); /* milliseconds */
    cJSON_AddNumberToObject(o, "users", (double)cfg->users);
    cJSON_AddNumberToObject(o, "products", (double)cfg->products);
    cJSON_AddNumberToObject(o, "seed", (double)cfg->seed);
    return o;
}

/* ---- events ------------------------------------------------------------------------------ */

static const char *const field_names[F_COUNT] = {
    "event_id", "event_type", "user_id", "session_id", "product_id",
    "quantity", "amount", "currency", "payment_method", "ts"};

const char *const kind_names[K_COUNT] = {
    "missing_field", "wrong_type", "bad_ts", "negative_amount", "bad_quantity",
    "bad_event_type", "bad_currency", "bad_event_id"};

const char *const cls_names[] = {"valid", "invalid", "duplicate"};

void gen_reset(struct gen *g)
{
    rng_seed(&g->rng, g->cfg.seed);
    g->vclock_us = (uint64_t)g->fixed_start_ms * 1000;
    g->hist_n = g->hist_next = 0;
}

/* Event time "now": the wall clock, or with --fixed-clock a virtual clock that starts at the
 * given ms and advances 1/rate s per event, so byte-identical runs need no real time at all. */
static int64_t gen_now_ms(struct gen *g)
{
    if (!g->fixed)
        return sl_wall_ms();
    int64_t ms = (int64_t)(g->vclock_us / 1000);
    g->vclock_us += g->cfg.rate > 0 ? (uint64_t)fmax(1, llround(1e6 / g->cfg.rate)) : 1000;
    return ms;
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
    sl_ts_format(now_ms, 1, e->ts);
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
void gen_next(struct gen *g, uint64_t seq, struct gen_out *out)
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
        uint64_t max_ms = (uint64_t)(c->late_by_ms > 0 ? c->late_by_ms : 1);
        sl_ts_format(now_ms - 1 - (int64_t)rng_below(&g->rng, max_ms), 1, e.ts);
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

