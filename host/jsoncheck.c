/*
 * jsoncheck.c — the strict JSON check for outside input (see jsoncheck.h for the rules).
 *
 * One pass, no tree: a loop with an explicit stack of open containers. Duplicate keys are
 * found by a seeded hash of each key's unescaped bytes: an object's first 16 keys are compared
 * against each other directly (the common small record), a larger object gets an
 * open-addressing table, so 20,000 keys cost 20,000 probes, not 200 million comparisons.
 * Equal hashes are confirmed by comparing the unescaped keys.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "jsoncheck.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

enum { SMALL_OBJECT = 16, STACK_FRAMES = 256, STACK_KEYS = 64 };

typedef struct jkey {
    uint64_t h;
    size_t off, rawlen; /* the key's text between its quotes */
    size_t dlen;        /* its length unescaped */
} jkey;

typedef struct jframe {
    int obj;
    size_t base, n;   /* this object's keys are keys[base .. base+n) */
    size_t *tab;      /* > SMALL_OBJECT keys: open addressing over key indexes + 1 */
    size_t tabcap;
} jframe;

typedef struct jc {
    const unsigned char *p;
    size_t len;
    char *why;
    size_t whylen;
    uint64_t seed;
    jkey *keys;
    size_t nkeys, capkeys;
    unsigned depth; /* open containers */
    jkey keybuf[STACK_KEYS];
} jc;

static int fail(jc *c, size_t at, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(jc *c, size_t at, const char *fmt, ...)
{
    if (!c->whylen)
        return -1;
    int n = snprintf(c->why, c->whylen, "byte %zu: ", at);
    if (n >= 0 && (size_t)n < c->whylen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(c->why + n, c->whylen - (size_t)n, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* A per-process random seed, so nobody can precompute colliding keys. */
static uint64_t hash_seed(void)
{
    static uint64_t seed;
    uint64_t s = __atomic_load_n(&seed, __ATOMIC_RELAXED);
    if (s)
        return s;
    if (getrandom(&s, sizeof s, GRND_NONBLOCK) != (ssize_t)sizeof s) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        s = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15ULL ^ (uint64_t)(uintptr_t)&seed;
    }
    s |= 1;
    __atomic_store_n(&seed, s, __ATOMIC_RELAXED);
    return s;
}

/* A seeded hash of n bytes, 8 at a time (only keys of objects with more than SMALL_OBJECT keys
 * are hashed). */
static uint64_t hash_bytes(uint64_t h, const unsigned char *b, size_t n)
{
    h ^= n * 0x9E3779B97F4A7C15ULL;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        b += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, b, n);
    h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    return h ^ (h >> 33);
}

static int hexval(unsigned char b)
{
    if (b >= '0' && b <= '9')
        return b - '0';
    if (b >= 'a' && b <= 'f')
        return b - 'a' + 10;
    if (b >= 'A' && b <= 'F')
        return b - 'A' + 10;
    return -1;
}

static int hex4(const unsigned char *p, size_t avail, unsigned *out)
{
    if (avail < 4)
        return -1;
    unsigned v = 0;
    for (int k = 0; k < 4; k++) {
        int x = hexval(p[k]);
        if (x < 0)
            return -1;
        v = v << 4 | (unsigned)x;
    }
    *out = v;
    return 0;
}

static size_t utf8_put(unsigned cp, unsigned char *o)
{
    if (cp < 0x80) {
        o[0] = (unsigned char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (unsigned char)(0xC0 | cp >> 6);
        o[1] = (unsigned char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (unsigned char)(0xE0 | cp >> 12);
        o[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (unsigned char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (unsigned char)(0xF0 | cp >> 18);
    o[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (unsigned char)(0x80 | (cp & 0x3F));
    return 4;
}

/*
 * Length of the valid UTF-8 sequence starting at p[0] (>= 0x80), or 0 with *why set.
 * Follows RFC 3629's table: no overlong forms, no surrogates, nothing above U+10FFFF.
 */
static size_t utf8_seq(const unsigned char *p, size_t avail, const char **why)
{
    unsigned char b = p[0];
    size_t n;
    unsigned char lo = 0x80, hi = 0xBF; /* bounds of the second byte */
    if (b >= 0xC2 && b <= 0xDF)
        n = 2;
    else if (b >= 0xE0 && b <= 0xEF) {
        n = 3;
        if (b == 0xE0)
            lo = 0xA0;
        if (b == 0xED)
            hi = 0x9F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4;
        if (b == 0xF0)
            lo = 0x90;
        if (b == 0xF4)
            hi = 0x8F;
    } else {
        *why = b == 0xC0 || b == 0xC1 ? "invalid UTF-8: overlong encoding"
               : b >= 0xF5            ? "invalid UTF-8: byte 0x%02x never appears in UTF-8"
                                      : "invalid UTF-8: unexpected continuation byte 0x%02x";
        return 0;
    }
    if (avail < 2 || (p[1] & 0xC0) != 0x80) {
        *why = "invalid UTF-8: truncated sequence after 0x%02x";
        return 0;
    }
    if (p[1] < lo || p[1] > hi) {
        *why = b == 0xED   ? "invalid UTF-8: encoded surrogate (U+D800..U+DFFF)"
               : b == 0xF4 ? "invalid UTF-8: code point above U+10FFFF"
                           : "invalid UTF-8: overlong encoding";
        return 0;
    }
    for (size_t k = 2; k < n; k++)
        if (k >= avail || (p[k] & 0xC0) != 0x80) {
            *why = "invalid UTF-8: truncated sequence after 0x%02x";
            return 0;
        }
    return n;
}

/* Unescapes an already checked string body into out (at least rawlen bytes). */
static size_t unescape(const unsigned char *s, size_t rawlen, unsigned char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < rawlen;) {
        if (s[i] != '\\') {
            out[o++] = s[i++];
            continue;
        }
        unsigned char e = s[i + 1];
        i += 2;
        switch (e) {
        case 'b': out[o++] = '\b'; break;
        case 'f': out[o++] = '\f'; break;
        case 'n': out[o++] = '\n'; break;
        case 'r': out[o++] = '\r'; break;
        case 't': out[o++] = '\t'; break;
        case 'u': {
            unsigned cp = 0, lo = 0;
            hex4(s + i, 4, &cp);
            i += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                hex4(s + i + 2, 4, &lo);
                i += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            }
            o += utf8_put(cp, out + o);
            break;
        }
        default: out[o++] = e; /* " \ / */
        }
    }
    return o;
}

static int keys_equal(const jc *c, const jkey *a, const jkey *b)
{
    if (a->dlen != b->dlen)
        return 0;
    if (a->rawlen == a->dlen && b->rawlen == b->dlen) /* no escapes in either */
        return memcmp(c->p + a->off, c->p + b->off, a->dlen) == 0;
    unsigned char *x = malloc(a->rawlen + b->rawlen + 2);
    if (!x)
        return 1; /* cannot tell: refuse rather than let a duplicate through */
    unsigned char *y = x + a->rawlen + 1;
    size_t nx = unescape(c->p + a->off, a->rawlen, x), ny = unescape(c->p + b->off, b->rawlen, y);
    int eq = nx == ny && memcmp(x, y, nx) == 0;
    free(x);
    return eq;
}

/* A printable rendering of a key for reasons: ASCII as is, the rest as \xNN, clamped. */
static void key_text(const jc *c, const jkey *k, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < k->rawlen && o + 5 < cap; i++) {
        unsigned char b = c->p[k->off + i];
        if (b >= 0x20 && b < 0x7F && b != '"')
            out[o++] = (char)b;
        else
            o += (size_t)snprintf(out + o, cap - o, "\\x%02x", b);
    }
    if (o + 5 >= cap && o >= 3)
        memcpy(out + o - 3, "...", 3);
    out[o] = 0;
}

/* The hash of a key's unescaped bytes (computed when its object grows past SMALL_OBJECT). */
static uint64_t key_hash(const jc *c, const jkey *k)
{
    if (k->rawlen == k->dlen)
        return hash_bytes(c->seed, c->p + k->off, k->rawlen);
    unsigned char small[256], *u = k->rawlen <= sizeof small ? small : malloc(k->rawlen);
    if (!u)
        return 0; /* all such keys collide and are compared byte by byte: slow, still right */
    uint64_t h = hash_bytes(c->seed, u, unescape(c->p + k->off, k->rawlen, u));
    if (u != small)
        free(u);
    return h;
}

static int tab_insert(jc *c, jframe *f, size_t idx)
{
    c->keys[idx].h = key_hash(c, &c->keys[idx]);
    size_t m = f->tabcap - 1, at = (size_t)c->keys[idx].h & m;
    while (f->tab[at]) {
        const jkey *o = &c->keys[f->tab[at] - 1];
        if (o->h == c->keys[idx].h && keys_equal(c, o, &c->keys[idx]))
            return -1;
        at = (at + 1) & m;
    }
    f->tab[at] = idx + 1;
    return 0;
}

static int tab_build(jc *c, jframe *f, size_t cap)
{
    size_t *t = calloc(cap, sizeof *t);
    if (!t)
        return -1;
    free(f->tab);
    f->tab = t;
    f->tabcap = cap;
    for (size_t k = f->base; k < f->base + f->n; k++)
        tab_insert(c, f, k); /* no duplicates among them: checked as they came */
    return 0;
}

/* Adds the key just scanned to the innermost object; -1 (reason set) on a duplicate. */
static int add_key(jc *c, jframe *f, jkey k, size_t at)
{
    if (c->nkeys == c->capkeys) {
        size_t cap = c->capkeys * 2;
        jkey *n = c->keys == c->keybuf ? malloc(cap * sizeof *n) : realloc(c->keys, cap * sizeof *n);
        if (!n)
            return fail(c, at, "out of memory checking keys");
        if (c->keys == c->keybuf)
            memcpy(n, c->keybuf, sizeof c->keybuf);
        c->keys = n;
        c->capkeys = cap;
    }
    size_t idx = c->nkeys;
    c->keys[idx] = k;
    int dup = 0;
    if (f->n < SMALL_OBJECT) {
        for (size_t j = f->base; j < idx && !dup; j++) {
            const jkey *o = &c->keys[j];
            /* cheap tests first (most keys differ there); the first byte only without escapes */
            if (o->dlen == k.dlen && (o->rawlen != o->dlen || k.rawlen != k.dlen || c->p[o->off] == c->p[k.off]))
                dup = keys_equal(c, o, &k);
        }
    } else {
        if ((!f->tab || (f->n + 1) * 2 > f->tabcap) && tab_build(c, f, f->tab ? f->tabcap * 2 : 64))
            return fail(c, at, "out of memory checking keys");
        dup = tab_insert(c, f, idx) != 0;
    }
    if (dup) {
        char name[72];
        key_text(c, &k, name, sizeof name);
        return fail(c, at, "duplicate key \"%s\"", name);
    }
    c->nkeys++;
    f->n++;
    return 0;
}

/* Are all 8 bytes at p plain string bytes (0x20..0x7F but '"' and '\\')? Exact as a whole,
 * by the classic has-zero-byte bit trick. */
static inline int plain8(const unsigned char *p)
{
    uint64_t x, q, b;
    memcpy(&x, p, 8);
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    q = x ^ (ones * '"');
    b = x ^ (ones * '\\');
    uint64_t bad = x | ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b);
    return !(bad & high);
}

/* Scans the string whose opening quote is at *pos; leaves *pos after the closing quote. For a
 * key, *k gets its span and unescaped length. */
static int scan_string(jc *c, size_t *pos, jkey *k)
{
    const unsigned char *p = c->p;
    size_t len = c->len, start = *pos, i = start + 1, dlen = 0;
    for (;;) {
        size_t run = i;
        while (i + 8 <= len && plain8(p + i))
            i += 8;
        while (i < len && p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\')
            i++;
        dlen += i - run;
        if (i >= len)
            return fail(c, start, "unterminated string");
        unsigned char b = p[i];
        if (b == '"')
            break;
        if (b == '\\') {
            if (i + 1 >= len)
                return fail(c, start, "unterminated string");
            unsigned char e = p[i + 1], u[4];
            size_t un = 1;
            switch (e) {
            case '"': case '\\': case '/': u[0] = e; break;
            case 'b': u[0] = '\b'; break;
            case 'f': u[0] = '\f'; break;
            case 'n': u[0] = '\n'; break;
            case 'r': u[0] = '\r'; break;
            case 't': u[0] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (hex4(p + i + 2, len - i - 2, &cp))
                    return fail(c, i, "\\u must be followed by four hex digits");
                if (cp == 0)
                    return fail(c, i, "string contains NUL (\\u0000)");
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(c, i, "lone low surrogate escape \\u%04x", cp);
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (i + 7 >= len || p[i + 6] != '\\' || p[i + 7] != 'u' ||
                        hex4(p + i + 8, len - i - 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                        return fail(c, i, "lone high surrogate escape \\u%04x (no low surrogate follows)", cp);
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                    i += 6;
                }
                i += 4;
                un = utf8_put(cp, u);
                break;
            }
            default:
                if (e < 0x20 || e >= 0x7F)
                    return fail(c, i, "invalid escape \\ followed by byte 0x%02x", e);
                return fail(c, i, "invalid escape \\%c", e);
            }
            i += 2;
            dlen += un;
            continue;
        }
        if (b < 0x20) {
            if (b == 0)
                return fail(c, i, "string contains a NUL byte");
            return fail(c, i, "control byte 0x%02x in a string (must be escaped)", b);
        }
        const char *why = NULL;
        size_t n = utf8_seq(p + i, len - i, &why);
        if (!n)
            return fail(c, i, why, b);
        dlen += n;
        i += n;
    }
    if (k)
        *k = (jkey){.off = start + 1, .rawlen = i - start - 1, .dlen = dlen};
    *pos = i + 1;
    return 0;
}

static inline int is_digit(unsigned char b) { return b >= '0' && b <= '9'; }

/* RFC 8259 number grammar; refuses what is not finite as a double, and what cJSON would cut. */
static int scan_number(jc *c, size_t *pos)
{
    const unsigned char *p = c->p;
    size_t len = c->len, start = *pos, i = start;
    long mag = 0; /* decimal exponent of the leading significant digit, before the exponent */
    int zero = 1;
    if (p[i] == '-')
        i++;
    if (i >= len || !is_digit(p[i]))
        return fail(c, start, "invalid number (a digit must follow '-')");
    if (p[i] == '0') {
        i++;
        if (i < len && is_digit(p[i]))
            return fail(c, start, "invalid number (leading zero)");
    } else {
        zero = 0;
        size_t d = i;
        while (i < len && is_digit(p[i]))
            i++;
        mag = (long)(i - d) - 1;
    }
    if (i < len && p[i] == '.') {
        i++;
        if (i >= len || !is_digit(p[i]))
            return fail(c, start, "invalid number (a digit must follow '.')");
        size_t d = i;
        while (i < len && is_digit(p[i])) {
            if (zero && p[i] != '0') {
                zero = 0;
                mag = -(long)(i - d) - 1;
            }
            i++;
        }
    }
    long ex = 0;
    if (i < len && (p[i] == 'e' || p[i] == 'E')) {
        i++;
        int neg = 0;
        if (i < len && (p[i] == '+' || p[i] == '-'))
            neg = p[i++] == '-';
        if (i >= len || !is_digit(p[i]))
            return fail(c, start, "invalid number (a digit must follow the exponent)");
        while (i < len && is_digit(p[i])) {
            if (ex < 100000000)
                ex = ex * 10 + (p[i] - '0');
            i++;
        }
        if (neg)
            ex = -ex;
    }
    if (i - start > SL_JSON_MAX_NUMBER)
        return fail(c, start, "number longer than %d characters", SL_JSON_MAX_NUMBER);
    if (!zero && mag + ex >= 308) { /* near or past DBL_MAX (1.8e308): ask strtod */
        char buf[SL_JSON_MAX_NUMBER + 1];
        memcpy(buf, p + start, i - start);
        buf[i - start] = 0;
        double v = mag + ex > 308 ? INFINITY : strtod(buf, NULL);
        if (isinf(v))
            return fail(c, start, "number %s is not finite as a double", buf);
        /* cJSON prints 15 digits when they read back "equal" by a relative test that infinity
         * passes: 1.7976931348623157e308 would come back as 1.79769313486232e+308 = inf. */
        if (fabs(v) > 1.79769313486231e308)
            return fail(c, start, "number %s is too close to the largest double to be printed back "
                        "finite", buf);
    }
    *pos = i;
    return 0;
}

/* Skips whitespace; other bytes below 0x20 are refused here, with their own reason. */
static inline int skip_ws(jc *c, size_t *pos)
{
    size_t i = *pos;
    while (i < c->len) {
        unsigned char b = c->p[i];
        if (b == ' ' || b == '\n' || b == '\r' || b == '\t') {
            i++;
            continue;
        }
        if (b < 0x20) {
            *pos = i;
            return b ? fail(c, i, "control byte 0x%02x outside a string", b)
                     : fail(c, i, "NUL byte outside a string");
        }
        break;
    }
    *pos = i;
    return 0;
}

static int unexpected(jc *c, size_t i, const char *wanted)
{
    if (i >= c->len)
        return fail(c, i, "unexpected end of input, expected %s", wanted);
    unsigned char b = c->p[i];
    if (b >= 0x20 && b < 0x7F)
        return fail(c, i, "unexpected '%c', expected %s", b, wanted);
    return fail(c, i, "unexpected byte 0x%02x, expected %s", b, wanted);
}

static int check(jc *c, jframe *fr, unsigned max_depth)
{
    const unsigned char *p = c->p;
    size_t i = 0, len = c->len;
    if (skip_ws(c, &i))
        return -1;
    if (i == len)
        return fail(c, i, "empty input, expected a JSON value");
value:
    if (i >= len)
        return unexpected(c, i, "a value");
    switch (p[i]) {
    case '{':
    case '[':
        if (c->depth >= max_depth)
            return fail(c, i, "nesting deeper than %u levels", max_depth);
        fr[c->depth] = (jframe){.obj = p[i] == '{', .base = c->nkeys};
        c->depth++;
        i++;
        if (skip_ws(c, &i))
            return -1;
        if (i < len && p[i] == (fr[c->depth - 1].obj ? '}' : ']')) {
            i++;
            c->depth--;
            goto after;
        }
        if (fr[c->depth - 1].obj)
            goto key;
        goto value;
    case '"':
        if (scan_string(c, &i, NULL))
            return -1;
        goto after;
    case 't':
        if (len - i < 4 || memcmp(p + i, "true", 4))
            return unexpected(c, i, "a value");
        i += 4;
        goto after;
    case 'f':
        if (len - i < 5 || memcmp(p + i, "false", 5))
            return unexpected(c, i, "a value");
        i += 5;
        goto after;
    case 'n':
        if (len - i < 4 || memcmp(p + i, "null", 4))
            return unexpected(c, i, "a value");
        i += 4;
        goto after;
    default:
        if (p[i] == '-' || is_digit(p[i])) {
            if (scan_number(c, &i))
                return -1;
            goto after;
        }
        if (p[i] == 'N' || p[i] == 'I' || (p[i] == '+' && i + 1 < len && p[i + 1] == 'I'))
            return fail(c, i, "NaN and Infinity are not JSON numbers");
        return unexpected(c, i, "a value");
    }
key:
    if (i >= len || p[i] != '"')
        return unexpected(c, i, "a string key");
    {
        jkey k;
        size_t at = i;
        if (scan_string(c, &i, &k) || add_key(c, &fr[c->depth - 1], k, at))
            return -1;
    }
    if (skip_ws(c, &i))
        return -1;
    if (i >= len || p[i] != ':')
        return unexpected(c, i, "':'");
    i++;
    if (skip_ws(c, &i))
        return -1;
    goto value;
after:
    if (skip_ws(c, &i))
        return -1;
    if (c->depth == 0) {
        if (i != len)
            return fail(c, i, "trailing bytes after the JSON value");
        return 0;
    }
    {
        jframe *f = &fr[c->depth - 1];
        if (i < len && p[i] == ',') {
            i++;
            if (skip_ws(c, &i))
                return -1;
            if (f->obj)
                goto key;
            goto value;
        }
        if (i < len && p[i] == (f->obj ? '}' : ']')) {
            i++;
            c->nkeys = f->base;
            free(f->tab);
            f->tab = NULL;
            c->depth--;
            goto after;
        }
        return unexpected(c, i, f->obj ? "',' or '}'" : "',' or ']'");
    }
}

int sl_json_check(const void *p, size_t len, unsigned max_depth, char *why, size_t whylen)
{
    jc c; /* not zeroed as a whole: keybuf is scratch */
    c.p = p;
    c.len = len;
    c.why = why;
    c.whylen = whylen;
    c.seed = hash_seed();
    c.nkeys = 0;
    c.depth = 0;
    c.keys = c.keybuf;
    c.capkeys = STACK_KEYS;
    if (why && whylen)
        why[0] = 0;
    if (!max_depth)
        max_depth = SL_JSON_MAX_DEPTH;
    jframe stackfr[STACK_FRAMES], *fr = stackfr;
    if (max_depth > STACK_FRAMES && !(fr = calloc(max_depth, sizeof *fr)))
        return fail(&c, 0, "out of memory");
    int rc = check(&c, fr, max_depth);
    for (unsigned d = 0; d < c.depth; d++) /* a failure leaves containers open */
        free(fr[d].tab);
    if (c.keys != c.keybuf)
        free(c.keys);
    if (fr != stackfr)
        free(fr);
    return rc;
}

const char *sl_json_strict(const void *p, size_t len)
{
    static __thread char why[200];
    return sl_json_check(p, len, SL_JSON_MAX_DEPTH, why, sizeof why) ? why : NULL;
}
