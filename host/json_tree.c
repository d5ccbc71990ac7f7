/* json_tree.c — the host's JSON parser and node builders (see json_tree.h). One arena
 * allocation per node (a string's bytes follow its node), no allocator hooks, numbers read
 * without strtod unless the fast path cannot be exact. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "json_tree.h"

#include <limits.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_DEPTH = 1000 }; /* cJSON's own nesting limit; the strict check allows far less */

uint64_t jt_hash(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ n;
    for (; n >= 8; b += 8, n -= 8) {
        uint64_t w;
        memcpy(&w, b, 8);
        h = (h ^ w) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
    }
    if (n) {
        uint64_t w = 0;
        memcpy(&w, b, n);
        h = (h ^ w) * 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 29;
    }
    return h;
}

static jnode *new_node(sl_arena *a, int type, size_t extra)
{
    jnode *n = arena_alloc(a, sizeof *n + extra);
    memset(n, 0, sizeof *n);
    n->c.type = type;
    return n;
}

typedef struct jp {
    const unsigned char *p, *end;
    sl_arena *a;
    int depth;
    int strict; /* jt_parse_strict: refuse (NULL) whatever the strict check might refuse */
} jp;

enum { STRICT_DEPTH = 128, STRICT_NUMBER = 63, STRICT_KEYS = 16 }; /* see jsoncheck.h */

/* Does the 8-byte word hold a byte that ends a plain run of string text: '"', '\\', a control
 * byte (< 0x20) or a non-ASCII byte? (Bit tricks from "Bit Twiddling Hacks".) */
static inline int special8(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t q = w ^ (ones * '"'), b = w ^ (ones * '\\');
    uint64_t hit = ((q - ones) & ~q) | ((b - ones) & ~b) | (w - ones * 0x20) | w;
    return (hit & high) != 0;
}

/* Length of the valid UTF-8 sequence at p (first byte >= 0x80), or 0 (overlong forms,
 * surrogates, above U+10FFFF, truncated). */
static size_t utf8_len(const unsigned char *p, const unsigned char *end)
{
    unsigned c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
    } else
        return 0;
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi) return 0;
    for (size_t k = 2; k < n; k++)
        if ((p[k] & 0xC0) != 0x80) return 0;
    return n;
}

static inline void skip_ws(jp *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\n' || *s->p == '\r' || *s->p == '\t')) s->p++;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    c |= 0x20;
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static long hex4(const unsigned char *r)
{
    long v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(r[i]);
        if (h < 0) return -1;
        v = v << 4 | h;
    }
    return v;
}

static size_t utf8_put(unsigned long cp, char *o)
{
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12);
        o[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18);
    o[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    o[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes the escapes of raw string text r[0..e) into o; returns the length or -1. The output
 * is never longer than the input. */
static long unescape(const unsigned char *r, const unsigned char *e, char *o)
{
    size_t n = 0;
    while (r < e) {
        if (*r != '\\') { o[n++] = (char)*r++; continue; }
        if (e - r < 2) return -1;
        unsigned char c = r[1];
        r += 2;
        switch (c) {
        case '"': o[n++] = '"'; break;
        case '\\': o[n++] = '\\'; break;
        case '/': o[n++] = '/'; break;
        case 'b': o[n++] = '\b'; break;
        case 'f': o[n++] = '\f'; break;
        case 'n': o[n++] = '\n'; break;
        case 'r': o[n++] = '\r'; break;
        case 't': o[n++] = '\t'; break;
        case 'u': {
            long cp = e - r >= 4 ? hex4(r) : -1;
            if (cp < 0) return -1;
            r += 4;
            if (cp >= 0xDC00 && cp <= 0xDFFF) return -1;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                long lo = e - r >= 6 && r[0] == '\\' && r[1] == 'u' ? hex4(r + 2) : -1;
                if (lo < 0xDC00 || lo > 0xDFFF) return -1;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                r += 6;
            }
            n += utf8_put((unsigned long)cp, o + n);
            break;
        }
        default: return -1;
        }
    }
    o[n] = 0;
    return (long)n;
}

/* A string at s->p (the opening quote) into a new node; *out_len its decoded length. */
static jnode *parse_string(jp *s)
{
    const unsigned char *b = ++s->p, *q = b;
    if (s->strict) {
        for (;;) {
            while (s->end - q >= 8 && !special8(q)) q += 8;
            if (q >= s->end) return NULL;
            if (*q == '"' || *q == '\\') break;
            if (*q < 0x20) return NULL; /* control byte or NUL */
            if (*q < 0x80) {
                q++;
                continue;
            }
            size_t n = utf8_len(q, s->end);
            if (!n) return NULL;
            q += n;
        }
    } else {
        while (q < s->end && *q != '"' && *q != '\\') q++;
    }
    if (q >= s->end) return NULL;
    if (*q == '"') { /* no escapes: the common case */
        size_t n = (size_t)(q - b);
        if (n > UINT32_MAX) return NULL;
        jnode *j = new_node(s->a, cJSON_String, n + 1);
        char *o = (char *)(j + 1);
        memcpy(o, b, n);
        o[n] = 0;
        j->c.valuestring = o;
        j->len = (uint32_t)n;
        s->p = q + 1;
        return j;
    }
    const unsigned char *e = q;
    while (e < s->end && *e != '"') {
        if (*e == '\\') {
            if (s->end - e < 2) return NULL;
            e += 2;
        } else if (s->strict && *e < 0x20) {
            return NULL;
        } else if (s->strict && *e >= 0x80) {
            size_t n = utf8_len(e, s->end);
            if (!n) return NULL;
            e += n;
        } else {
            e++;
        }
    }
    if (e >= s->end || (size_t)(e - b) > UINT32_MAX) return NULL;
    jnode *j = new_node(s->a, cJSON_String, (size_t)(e - b) + 1);
    char *o = (char *)(j + 1);
    long n = unescape(b, e, o);
    if (n < 0 || (s->strict && memchr(o, 0, (size_t)n))) return NULL; /* \u0000 */
    j->c.valuestring = o;
    j->len = (uint32_t)n;
    s->p = e + 1;
    return j;
}

static locale_t c_locale;
static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static void c_locale_init(void) { c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0); }

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

static inline int is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

/* A number. Plain decimals with at most 19 significant digits whose mantissa is below 2^53 and
 * whose power of ten is within ±22 are exact as m * 10^e or m / 10^e (both operands exact, one
 * rounding: Clinger's fast path), so they give strtod's result without strtod; anything else
 * goes to strtod in the C locale. */
static jnode *parse_number(jp *s)
{
    const unsigned char *start = s->p, *p = s->p;
    int neg = 0, nd = 0, frac = 0, integer = 1;
    uint64_t m = 0;
    long e10 = 0;
    if (p < s->end && *p == '-') { neg = 1; p++; }
    if (p >= s->end || !is_digit(*p)) return NULL;
    if (*p == '0' && s->end - p > 1 && is_digit(p[1])) return NULL; /* a leading zero */
    for (; p < s->end && is_digit(*p); p++) {
        if (m || *p != '0') nd++;
        if (nd <= 19) m = m * 10 + (uint64_t)(*p - '0');
    }
    if (p < s->end && *p == '.') {
        integer = 0;
        p++;
        if (p >= s->end || !is_digit(*p)) return NULL;
        for (; p < s->end && is_digit(*p); p++) {
            if (m || *p != '0') nd++;
            if (nd <= 19) m = m * 10 + (uint64_t)(*p - '0');
            frac++;
        }
    }
    if (p < s->end && (*p == 'e' || *p == 'E')) {
        integer = 0;
        p++;
        int eneg = 0;
        long ev = 0;
        if (p < s->end && (*p == '+' || *p == '-')) eneg = *p++ == '-';
        if (p >= s->end || !is_digit(*p)) return NULL;
        for (; p < s->end && is_digit(*p); p++)
            if (ev < 100000) ev = ev * 10 + (*p - '0');
        e10 = eneg ? -ev : ev;
    }
    size_t tlen = (size_t)(p - start);
    if (s->strict && tlen > STRICT_NUMBER) return NULL;
    e10 -= frac;
    double d;
    int exact = nd <= 19 && m < (1ULL << 53) && e10 >= -22 && e10 <= 22;
    if (exact) {
        d = (double)m;
        d = e10 < 0 ? d / pow10_exact[-e10] : d * pow10_exact[e10];
        if (neg) d = -d;
    } else {
        char buf[80], *tmp = tlen < sizeof buf ? buf : arena_alloc(s->a, tlen + 1);
        memcpy(tmp, start, tlen);
        tmp[tlen] = 0;
        pthread_once(&c_locale_once, c_locale_init);
        d = c_locale ? strtod_l(tmp, NULL, c_locale) : strtod(tmp, NULL);
        /* the strict check's bound: cJSON prints larger ones back as infinity */
        if (s->strict && !(fabs(d) <= 1.79769313486231e308)) return NULL;
    }
    int keep = !exact && integer; /* an integer the double may round: keep its digits */
    jnode *j = new_node(s->a, cJSON_Number, keep ? tlen + 1 : 0);
    j->c.valuedouble = d;
    j->c.valueint = d >= INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
    if (keep) {
        char *t = (char *)(j + 1);
        memcpy(t, start, tlen);
        t[tlen] = 0;
        j->text = t;
        j->len = (uint32_t)tlen;
    }
    s->p = p;
    return j;
}

static int literal(jp *s, const char *word, size_t n)
{
    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n)) return 0;
    s->p += n;
    return 1;
}

static jnode *parse_value(jp *s);

static jnode *parse_container(jp *s, int object)
{
    if (++s->depth > (s->strict ? STRICT_DEPTH : MAX_DEPTH)) return NULL;
    int members = 0;
    jnode *c = new_node(s->a, object ? cJSON_Object : cJSON_Array, 0);
    cJSON *first = NULL, *last = NULL;
    unsigned char close = object ? '}' : ']';
    s->p++;
    skip_ws(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return c;
    }
    for (;;) {
        jnode *key = NULL;
        if (object) {
            if (s->p >= s->end || *s->p != '"' || !(key = parse_string(s))) return NULL;
            skip_ws(s);
            if (s->p >= s->end || *s->p != ':') return NULL;
            s->p++;
            skip_ws(s);
        }
        jnode *v = parse_value(s);
        if (!v) return NULL;
        if (key) {
            v->c.string = key->c.valuestring; /* the key node itself is not linked anywhere */
            v->klen = key->len;
            v->khash = jt_hash(key->c.valuestring, key->len);
            if (s->strict) { /* duplicate keys: small objects only, larger ones go the long way */
                if (++members > STRICT_KEYS) return NULL;
                for (const cJSON *o = first; o; o = o->next) {
                    const jnode *jo = (const jnode *)o;
                    if (jo->khash == v->khash && jo->klen == v->klen && !memcmp(o->string, v->c.string, v->klen))
                        return NULL;
                }
            }
        }
        if (last) {
            last->next = &v->c;
            v->c.prev = last;
        } else {
            first = &v->c;
        }
        last = &v->c;
        skip_ws(s);
        if (s->p >= s->end) return NULL;
        if (*s->p == ',') {
            s->p++;
            skip_ws(s);
            continue;
        }
        if (*s->p != close) return NULL;
        s->p++;
        break;
    }
    first->prev = last; /* cJSON's convention: the first item's prev is the last item */
    c->c.child = first;
    s->depth--;
    return c;
}

static jnode *parse_value(jp *s)
{
    if (s->p >= s->end) return NULL;
    switch (*s->p) {
    case '"': return parse_string(s);
    case '{': return parse_container(s, 1);
    case '[': return parse_container(s, 0);
    case 't':
        if (!literal(s, "true", 4)) return NULL;
        jnode *t = new_node(s->a, cJSON_True, 0);
        t->c.valueint = 1;
        return t;
    case 'f': return literal(s, "false", 5) ? new_node(s->a, cJSON_False, 0) : NULL;
    case 'n': return literal(s, "null", 4) ? new_node(s->a, cJSON_NULL, 0) : NULL;
    default: return parse_number(s);
    }
}

static cJSON *parse(sl_arena *a, const char *p, size_t len, int strict)
{
    jp s = {(const unsigned char *)p, (const unsigned char *)p + len, a, 0, strict};
    skip_ws(&s);
    jnode *j = parse_value(&s);
    if (!j) return NULL;
    skip_ws(&s);
    return s.p == s.end ? &j->c : NULL;
}

cJSON *jt_parse(sl_arena *a, const char *p, size_t len) { return parse(a, p, len, 0); }

cJSON *jt_parse_strict(sl_arena *a, const char *p, size_t len) { return parse(a, p, len, 1); }

/* ---- building and printing ------------------------------------------------------------- */

cJSON *jt_string(sl_arena *a, const char *str, size_t len)
{
    if (len > UINT32_MAX) return NULL;
    jnode *j = new_node(a, cJSON_String, len + 1);
    char *o = (char *)(j + 1);
    memcpy(o, str, len);
    o[len] = 0;
    j->c.valuestring = o;
    j->len = (uint32_t)len;
    return &j->c;
}

cJSON *jt_number(sl_arena *a, double v)
{
    jnode *j = new_node(a, cJSON_Number, 0);
    j->c.valuedouble = v;
    j->c.valueint = v >= INT_MAX ? INT_MAX : v <= (double)INT_MIN ? INT_MIN : (int)v;
    return &j->c;
}

cJSON *jt_literal(sl_arena *a, int type)
{
    jnode *j = new_node(a, type, 0);
    j->c.valueint = type == cJSON_True;
    return &j->c;
}

cJSON *jt_copy(sl_arena *a, const cJSON *src)
{
    /* Strings, keys and number literals are shared, not copied: they live in the same task
     * arena as the copy and nothing in it is freed before the wave ends. */
    const jnode *s = (const jnode *)src;
    jnode *j;
    switch (src->type & 0xff) {
    case cJSON_String:
        j = new_node(a, cJSON_String, 0);
        j->c.valuestring = src->valuestring;
        j->len = s->len;
        return &j->c;
    case cJSON_Number:
        j = (jnode *)jt_number(a, src->valuedouble);
        j->text = s->text;
        j->len = s->len;
        return &j->c;
    case cJSON_Array:
    case cJSON_Object: {
        j = new_node(a, src->type & 0xff, 0);
        cJSON *last = NULL;
        for (const cJSON *m = src->child; m; m = m->next) {
            jnode *c = (jnode *)jt_copy(a, m);
            if (!c) return NULL;
            c->c.string = m->string;
            c->klen = ((const jnode *)m)->klen;
            c->khash = ((const jnode *)m)->khash;
            if (last) {
                last->next = &c->c;
                c->c.prev = last;
            } else {
                j->c.child = &c->c;
            }
            last = &c->c;
        }
        if (last) j->c.child->prev = last;
        return &j->c;
    }
    default:
        return jt_literal(a, src->type & 0xff);
    }
}

void jt_set(sl_arena *a, cJSON *obj, const char *key, cJSON *item)
{
    size_t kl = strlen(key);
    jnode *it = (jnode *)item;
    uint64_t h = jt_hash(key, kl);
    for (cJSON *m = obj->child; m; m = m->next) {
        jnode *jm = (jnode *)m;
        if (jm->khash == h && jm->klen == kl && !memcmp(m->string, key, kl)) {
            /* take m's place in the list */
            it->c.string = m->string;
            it->klen = jm->klen;
            it->khash = h;
            it->c.next = m->next;
            it->c.prev = m->prev;
            if (obj->child == m) {
                obj->child = item;
                if (m->prev == m) item->prev = item; /* m was the only member */
            } else {
                m->prev->next = item;
            }
            if (m->next) m->next->prev = item;
            else if (obj->child != item) obj->child->prev = item; /* m was the last */
            return;
        }
    }
    it->c.string = arena_memdup(a, key, kl + 1);
    it->klen = (uint32_t)kl;
    it->khash = h;
    if (!obj->child) {
        obj->child = item;
        item->prev = item;
        item->next = NULL;
    } else {
        cJSON *last = obj->child->prev;
        last->next = item;
        item->prev = last;
        item->next = NULL;
        obj->child->prev = item;
    }
}

char *jt_print(sl_arena *a, const cJSON *node, size_t hint, size_t *len)
{
    /* cJSON prints into a buffer it is given without allocating; grow and retry if short. */
    for (size_t cap = hint + 64; cap < ((size_t)1 << 31); cap *= 2) {
        char *buf = arena_alloc(a, cap);
        if (cJSON_PrintPreallocated((cJSON *)node, buf, (int)cap, 0)) {
            if (len) *len = strlen(buf);
            return buf;
        }
    }
    return NULL;
}
