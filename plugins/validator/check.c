/* check.c — the validator's per-record work: record-level checks on the raw bytes, the schema
 * checks on the parsed tree (collecting normalisations, changing nothing), then applying them. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/sl_time.h"
#include "validator.h"

/* Offset of the first invalid UTF-8 byte, or -1. ASCII is skipped eight bytes at a time. */
static long utf8_invalid_at(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (!(w & 0x8080808080808080ull)) {
                i += 8;
                continue;
            }
        }
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0) lo = 0xA0;         /* no overlong forms */
            if (c == 0xED) hi = 0x9F;         /* no UTF-16 surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0) lo = 0x90;
            if (c == 0xF4) hi = 0x8F;         /* nothing above U+10FFFF */
        } else
            return (long)i;
        if (i + len > n || s[i + 1] < lo || s[i + 1] > hi)
            return (long)i;
        for (size_t k = 2; k < len; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return (long)i;
        i += len;
    }
    return -1;
}

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xC0) != 0x80;
    return n;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

static bool reject_reason(validator *v, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bool reject_reason(validator *v, const char *field, const char *fmt, ...)
{
    /* An unknown key comes from the input: cap it so the reason stays short. */
    int n = snprintf(v->reason, sizeof v->reason, "%.64s: ", field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason + n, sizeof v->reason - (size_t)n, fmt, ap);
    va_end(ap);
    return false;
}

static char *scratch_alloc(validator *v, size_t n)
{
    if (v->arena_used + n > v->arena_size)
        return NULL;
    char *p = v->arena + v->arena_used;
    v->arena_used += n;
    return p;
}

static bool finite_everywhere(const sl_api *api, const sl_json *n, int depth)
{
    sl_json_type t = api->json_type(n);
    if (t == SL_JSON_NUMBER)
        return isfinite(api->json_number(n));
    if ((t != SL_JSON_ARRAY && t != SL_JSON_OBJECT) || depth > 64)
        return true;
    for (const sl_json *c = api->json_at(n, 0); c; c = api->json_next(c))
        if (!finite_everywhere(api, c, depth + 1))
            return false;
    return true;
}

static bool pattern_matches(field *f, const char *s, size_t len)
{
    if (len < RE_CACHE_LEN)
        for (unsigned k = 0; k < RE_CACHE; k++)
            if (f->re_cache_used[k] && !strcmp(f->re_cache[k], s))
                return true;
    if (regexec(&f->re, s, 0, NULL, 0))
        return false;
    if (len < RE_CACHE_LEN) {
        unsigned k = f->re_next++ % RE_CACHE;
        memcpy(f->re_cache[k], s, len + 1);
        f->re_cache_used[k] = true;
    }
    return true;
}

/* Normalise and check a present string value. */
static bool check_string(validator *v, field *f, const char *s, size_t len)
{
    const char *val = s;
    size_t vlen = len;
    if (f->normalize & (N_TRIM | N_LOWER | N_UPPER)) {
        size_t a = 0, b = len;
        if (f->normalize & N_TRIM) {
            while (a < b && is_space(s[a]))
                a++;
            while (b > a && is_space(s[b - 1]))
                b--;
        }
        bool change = a != 0 || b != len;
        for (size_t i = a; i < b && !change; i++)
            change = ((f->normalize & N_LOWER) && s[i] >= 'A' && s[i] <= 'Z') ||
                     ((f->normalize & N_UPPER) && s[i] >= 'a' && s[i] <= 'z');
        if (change) {
            char *p = scratch_alloc(v, b - a + 1);
            if (!p)
                return reject_reason(v, f->name, "value too long to normalise");
            for (size_t i = a; i < b; i++) {
                char c = s[i];
                if ((f->normalize & N_LOWER) && c >= 'A' && c <= 'Z')
                    c = (char)(c + 32);
                if ((f->normalize & N_UPPER) && c >= 'a' && c <= 'z')
                    c = (char)(c - 32);
                p[i - a] = c;
            }
            p[b - a] = 0;
            val = p;
            vlen = b - a;
            v->mut[v->n_mut++] = (mutation){f->name, p, 0, false};
        }
    }
    v->sval[f - v->sc.f] = val;
    if (f->min_len >= 0 || f->max_len >= 0) {
        size_t n = utf8_chars(val);
        if (f->min_len >= 0 && n < (size_t)f->min_len)
            return reject_reason(v, f->name, "shorter than min_length %ld", f->min_len);
        if (f->max_len >= 0 && n > (size_t)f->max_len)
            return reject_reason(v, f->name, "longer than max_length %ld", f->max_len);
    }
    if (f->n_enum) {
        size_t k = 0;
        while (k < f->n_enum && (f->enum_len[k] != vlen || memcmp(f->enums[k], val, vlen)))
            k++;
        if (k == f->n_enum)
            return reject_reason(v, f->name, "not one of %s", f->enum_text);
    }
    if (f->has_re && !pattern_matches(f, val, vlen))
        return reject_reason(v, f->name, "does not match pattern %s", f->pattern);
    return true;
}

static bool check_number(validator *v, field *f, double x)
{
    if (!isfinite(x))
        return reject_reason(v, f->name, "not a finite number");
    if (f->type == FT_INTEGER && (x != floor(x) || fabs(x) > 9007199254740992.0))
        return reject_reason(v, f->name, "expected integer");
    if ((f->normalize & N_ROUND2) && fabs(x) < 1e13) {
        /* Cents as an integer, then back: 2 decimals exactly as printed. Beyond 1e13 the cents
         * no longer fit a double's 53 bits exactly, and rounding would change the value each
         * time it is applied (found by the fuzzer), so such amounts are kept as they are. */
        double r = (double)llround(x * 100.0) / 100.0;
        if (r != x) {
            x = r;
            v->mut[v->n_mut++] = (mutation){f->name, NULL, r, false};
        }
    }
    if (f->has_min && x < f->min)
        return reject_reason(v, f->name, "below min %g", f->min);
    if (f->has_max && x > f->max)
        return reject_reason(v, f->name, "above max %g", f->max);
    return true;
}

static bool check_timestamp(validator *v, field *f, const char *s, size_t len)
{
    int64_t ms = 0;
    switch (sl_ts_parse(s, &ms)) {
    case SL_TS_OK: break;
    case SL_TS_NO_ZONE: return reject_reason(v, f->name, "timestamp without time zone");
    case SL_TS_BEFORE_1970: return reject_reason(v, f->name, "timestamp before 1970");
    case SL_TS_AFTER_9999: return reject_reason(v, f->name, "timestamp after 9999");
    default: return reject_reason(v, f->name, "not an RFC 3339 timestamp");
    }
    /* Already "YYYY-MM-DDTHH:MM:SS.mmmZ"? Then there is nothing to rewrite. */
    bool canonical = len == 24 && s[10] == 'T' && s[19] == '.' && s[23] == 'Z';
    if ((f->normalize & N_UTC_MS) && !canonical) {
        char *p = scratch_alloc(v, 32);
        if (!p)
            return reject_reason(v, f->name, "value too long to normalise");
        sl_ts_format(ms, 1, p);
        v->mut[v->n_mut++] = (mutation){f->name, p, 0, false};
        s = p;
    }
    v->sval[f - v->sc.f] = s;
    if (!v->has_ts) {
        v->has_ts = true;
        v->ts_ms = ms;
    }
    return true;
}

static bool check_present(validator *v, field *f, const sl_json *n)
{
    const sl_api *api = v->api;
    sl_json_type t = api->json_type(n);
    size_t len = 0;
    const char *str = api->json_string_len(n, &len); /* NULL unless a string */
    switch (f->type) {
    case FT_STRING:
        if (t != SL_JSON_STRING)
            return reject_reason(v, f->name, "expected string");
        return check_string(v, f, str, len);
    case FT_INTEGER:
    case FT_NUMBER:
        if (t != SL_JSON_NUMBER)
            return reject_reason(v, f->name, "expected %s", type_names[f->type]);
        return check_number(v, f, api->json_number(n));
    case FT_BOOLEAN:
        if (t != SL_JSON_BOOL)
            return reject_reason(v, f->name, "expected boolean");
        return true;
    case FT_TIMESTAMP:
        if (t != SL_JSON_STRING)
            return reject_reason(v, f->name, "expected timestamp string");
        return check_timestamp(v, f, str, len);
    }
    return true;
}

/* Apply a default to an absent field (queued as a mutation). */
static void apply_default(validator *v, field *f)
{
    size_t i = (size_t)(f - v->sc.f);
    if (f->type == FT_STRING || f->type == FT_TIMESTAMP) {
        v->mut[v->n_mut++] = (mutation){f->name, f->def_str, 0, false};
        v->sval[i] = f->def_str;
        if (f->type == FT_TIMESTAMP && !v->has_ts)
            v->has_ts = sl_ts_parse(f->def_str, &v->ts_ms) == SL_TS_OK;
    } else {
        v->mut[v->n_mut++] = (mutation){f->name, NULL, f->def_num, f->type == FT_BOOLEAN};
    }
}

/* Precomputed member names (hash + length; enum lengths come from schema.c), so the per-record matching
 * compares integers and only then bytes. Called once the schema is loaded. */
void validator_keys_init(validator *v)
{
    for (size_t i = 0; i < v->sc.n; i++) {
        field *f = &v->sc.f[i];
        v->api->json_key_init(&f->key, f->name);
    }
}

/* The schema field member `m` names, if any. Records usually list their members in the
 * schema's order, so the field after the last one matched is tried first. */
static field *find_field(validator *v, const sl_json *m, size_t expect)
{
    schema *sc = &v->sc;
    size_t klen;
    uint64_t h = v->api->json_key_hash(m, &klen);
    if (expect < sc->n && sc->f[expect].key.hash == h && v->api->json_key_is(m, &sc->f[expect].key))
        return &sc->f[expect];
    for (size_t i = 0; i < sc->n; i++)
        if (sc->f[i].key.hash == h && v->api->json_key_is(m, &sc->f[i].key)) return &sc->f[i];
    return NULL;
}

static bool check_size(validator *v, size_t len)
{
    v->n_mut = 0;
    v->arena_used = 0;
    v->has_ts = false;
    if ((int64_t)len > v->conf->max_record_bytes)
        return reject_reason(v, "record", "%zu bytes exceeds max_record_bytes %lld", len,
                             (long long)v->conf->max_record_bytes);
    return true;
}

/* Record-level checks on the raw bytes; true if they pass, else v->reason says why. */
bool check_raw(validator *v, const unsigned char *raw, size_t len)
{
    if (!check_size(v, len))
        return false;
    long bad = utf8_invalid_at(raw, len);
    if (bad >= 0)
        return reject_reason(v, "record", "invalid UTF-8 at byte %ld", bad);
    return true;
}

/* The schema checks on a parsed root (NULL: not JSON, `err` says why). True if valid, with the
 * normalisations queued in v->mut[0..n_mut) and the timestamp in v->ts_ms; else v->reason
 * says why. Nothing is changed here: the caller applies v->mut (see apply_mutations), so a
 * rejected record reaches the dead letter as it arrived. The fuzzer calls this directly. */
bool check_root(validator *v, const sl_json *root, const char *err)
{
    const sl_api *api = v->api;
    v->n_mut = 0;
    v->arena_used = 0;
    v->has_ts = false;
    if (!root)
        return reject_reason(v, "record", "malformed JSON (%s)", err ? err : "parse error");
    if (api->json_type(root) != SL_JSON_OBJECT)
        return reject_reason(v, "record", "not a JSON object");

    schema *sc = &v->sc;
    memset(v->node, 0, sc->n * sizeof v->node[0]);
    memset(v->sval, 0, sc->n * sizeof v->sval[0]);
    /* One pass over the members (json_next: a list walk, not json_at(i) per member). */
    size_t expect = 0;
    for (const sl_json *m = api->json_at(root, 0); m; m = api->json_next(m)) {
        field *f = find_field(v, m, expect);
        if (!f) {
            const char *key = api->json_key(m);
            /* Unknown fields are kept, but a non-finite number would not survive printing. */
            if (!finite_everywhere(api, m, 0))
                return reject_reason(v, key ? key : "?", "not a finite number");
            continue;
        }
        size_t k = (size_t)(f - sc->f);
        expect = k + 1;
        if (v->node[k])
            return reject_reason(v, f->name, "duplicate member");
        v->node[k] = m;
    }
    for (size_t k = 0; k < sc->n; k++) {
        field *f = &sc->f[k];
        const sl_json *n = v->node[k];
        if (n && api->json_type(n) != SL_JSON_NULL) {
            if (!check_present(v, f, n))
                return false;
        } else if (f->required) {
            return reject_reason(v, f->name, "required");
        } else if (f->has_default) {
            apply_default(v, f);
        }
    }
    /* required_when last: the field it tests is normalised by now, wherever it is declared. */
    for (size_t k = 0; k < sc->n; k++) {
        field *f = &sc->f[k];
        if (f->cond_field < 0 || (v->node[k] && api->json_type(v->node[k]) != SL_JSON_NULL))
            continue;
        const char *cv = v->sval[f->cond_field];
        if (!cv)
            continue;
        for (size_t c = 0; c < f->n_cond; c++)
            if (!strcmp(cv, f->cond_values[c]))
                return reject_reason(v, f->name, "required when %s=%s", f->cond_name, cv);
    }
    return true;
}

/* Check one record; true if valid (changes queued in v->mut), else v->reason says why. */
bool validate(validator *v, sl_ctx *ctx, const sl_record *rec)
{
    size_t len;
    const unsigned char *raw = v->api->value(ctx, rec, &len);
    if (!check_size(v, len))
        return false;
    const char *err = NULL;
    const sl_json *root = v->api->json(ctx, rec, &err);
    /* The host's strict check refuses invalid UTF-8 anywhere in a value before it parses it, so
     * scanning the bytes again is needed only to name the bad byte of a value it refused. */
    if (!root && !check_raw(v, raw, len))
        return false;
    return check_root(v, root, err);
}

/* Apply the normalisations check_root queued to a valid record. */
sl_err apply_mutations(validator *v, sl_ctx *ctx, const sl_record *rec)
{
    const sl_api *api = v->api;
    for (size_t m = 0; m < v->n_mut; m++) {
        const mutation *mu = &v->mut[m];
        sl_err e = mu->s ? api->json_set_string(ctx, rec, mu->key, mu->s)
                   : mu->is_bool ? api->json_set_bool(ctx, rec, mu->key, mu->d != 0)
                                 : api->json_set_number(ctx, rec, mu->key, mu->d);
        if (e != SL_OK)
            return e == SL_ENOMEM ? SL_ENOMEM : SL_FATAL;
    }
    return SL_OK;
}
