/* sl_expr_lex.c — tokens, string literals, field paths and error positions of the expression
 * language (see sl_expr.c). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sl_expr_int.h"

void sx_fail(parser *p, size_t at, const char *fmt, ...)
{
    if (p->failed) return;
    p->failed = 1;
    int line = 1, col = 1;
    for (size_t i = 0; i < at && p->s[i]; i++) {
        if (p->s[i] == '\n') {
            line++;
            col = 1;
        } else if (((unsigned char)p->s[i] & 0xC0) != 0x80) {
            col++; /* columns count characters, not UTF-8 continuation bytes */
        }
    }
    p->err->line = line;
    p->err->col = col;
    p->err->offset = at;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->err->msg, sizeof p->err->msg, fmt, ap);
    va_end(ap);
}


char *sx_own_str(parser *p, char *s)
{
    sl_expr *e = p->e;
    if (!s || p->failed) {
        free(s);
        if (!s) sx_fail(p, p->pos, "out of memory");
        return NULL;
    }
    if (e->nstrs == e->capstrs) {
        size_t nc = e->capstrs ? e->capstrs * 2 : 8;
        char **np = realloc(e->strs, nc * sizeof *np);
        if (!np) {
            free(s);
            sx_fail(p, p->pos, "out of memory");
            return NULL;
        }
        e->strs = np;
        e->capstrs = nc;
    }
    e->strs[e->nstrs++] = s;
    return s;
}

/* ---- lexing ------------------------------------------------------------------------------ */

void sx_ws(parser *p)
{
    for (;;) {
        char c = p->s[p->pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
            p->pos++;
        } else if (c == '#') { /* a comment runs to the end of the line */
            while (p->s[p->pos] && p->s[p->pos] != '\n') p->pos++;
        } else {
            return;
        }
    }
}


/* The identifier at pos (after whitespace), or length 0. */
size_t sx_peek_ident(parser *p, const char **start)
{
    sx_ws(p);
    const char *s = p->s + p->pos;
    size_t n = 0;
    if (sx_ident_start(s[0]))
        while (sx_ident(s[n])) n++;
    *start = s;
    return n;
}

int sx_peek_word(parser *p, const char *w)
{
    const char *s;
    size_t n = sx_peek_ident(p, &s);
    return n == strlen(w) && !memcmp(s, w, n);
}

int sx_accept_word(parser *p, const char *w)
{
    if (!sx_peek_word(p, w)) return 0;
    p->pos += strlen(w);
    return 1;
}

/* Accepts a punctuation token; `not_followed` rules out a longer token ("=" in "<="). */
int sx_accept(parser *p, const char *tok, const char *not_followed)
{
    sx_ws(p);
    size_t n = strlen(tok);
    if (strncmp(p->s + p->pos, tok, n) != 0) return 0;
    if (not_followed && p->s[p->pos + n] && strchr(not_followed, p->s[p->pos + n])) return 0;
    p->pos += n;
    return 1;
}

void sx_expect(parser *p, const char *tok, const char *what)
{
    if (p->failed) return;
    if (!sx_accept(p, tok, NULL)) {
        sx_ws(p);
        if (!p->s[p->pos])
            sx_fail(p, p->pos, "expected '%s' %s, found the end of the expression", tok, what);
        else
            sx_fail(p, p->pos, "expected '%s' %s", tok, what);
    }
}

static void put_utf8(char *out, size_t *o, unsigned cp)
{
    if (cp < 0x80) {
        out[(*o)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*o)++] = (char)(0xC0 | (cp >> 6));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xE0 | (cp >> 12));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*o)++] = (char)(0xF0 | (cp >> 18));
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4(const char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        char c = s[i];
        unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0') : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
                   : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16u;
        if (d == 16) return 0;
        *v = *v * 16 + d;
    }
    return 1;
}

/* A quoted string at pos ('..' or ".."), unescaped into a new owned buffer; NULL on error. */
char *sx_string(parser *p)
{
    size_t start = p->pos;
    char q = p->s[p->pos++];
    size_t cap = 16, o = 0;
    char *out = malloc(cap);
    if (!out) {
        sx_fail(p, start, "out of memory");
        return NULL;
    }
    for (;;) {
        if (o + 5 > cap) {
            char *n = realloc(out, cap *= 2);
            if (!n) {
                free(out);
                sx_fail(p, start, "out of memory");
                return NULL;
            }
            out = n;
        }
        char c = p->s[p->pos];
        if (!c || c == '\n') {
            free(out);
            sx_fail(p, start, "unterminated string (a string ends with %c on the same line)", q);
            return NULL;
        }
        p->pos++;
        if (c == q) break;
        if (c != '\\') {
            out[o++] = c;
            continue;
        }
        size_t esc = p->pos - 1;
        c = p->s[p->pos];
        if (!c) { /* never step past the text's end: the caller goes on reading from pos */
            free(out);
            sx_fail(p, start, "unterminated string (a string ends with %c on the same line)", q);
            return NULL;
        }
        p->pos++;
        switch (c) {
        case '"': case '\'': case '\\': case '/': out[o++] = c; break;
        case 'n': out[o++] = '\n'; break;
        case 't': out[o++] = '\t'; break;
        case 'r': out[o++] = '\r'; break;
        case 'u': {
            unsigned cp;
            if (!hex4(p->s + p->pos, &cp)) {
                free(out);
                sx_fail(p, esc, "bad \\u escape (four hex digits expected)");
                return NULL;
            }
            p->pos += 4;
            if (cp >= 0xD800 && cp <= 0xDBFF) {
                unsigned lo;
                if (p->s[p->pos] != '\\' || p->s[p->pos + 1] != 'u' || !hex4(p->s + p->pos + 2, &lo) || lo < 0xDC00 ||
                    lo > 0xDFFF) {
                    free(out);
                    sx_fail(p, esc, "unpaired UTF-16 surrogate in \\u escape");
                    return NULL;
                }
                p->pos += 6;
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                free(out);
                sx_fail(p, esc, "unpaired UTF-16 surrogate in \\u escape");
                return NULL;
            }
            if (cp == 0) {
                free(out);
                sx_fail(p, esc, "\\u0000 is not allowed in a string");
                return NULL;
            }
            put_utf8(out, &o, cp);
            break;
        }
        default:
            free(out);
            sx_fail(p, esc, "unknown escape '\\%.*s' (known: \\\" \\' \\\\ \\/ \\n \\t \\r \\uXXXX)",
                    c ? sx_char_len(p->s + esc + 1) : 0, p->s + esc + 1);
            return NULL;
        }
    }
    out[o] = 0;
    return out;
}

/* ---- paths ------------------------------------------------------------------------------- */

static int path_add(parser *p, path *pa, char *key, size_t idx)
{
    seg *n = realloc(pa->segs, (pa->n + 1) * sizeof *n);
    if (!n) {
        free(key);
        sx_fail(p, p->pos, "out of memory");
        return 0;
    }
    pa->segs = n;
    pa->segs[pa->n++] = (seg){key, idx};
    return 1;
}

void sx_path_free(path *pa)
{
    for (size_t i = 0; i < pa->n; i++) free(pa->segs[i].key);
    free(pa->segs);
    free(pa->text);
}

/* Parses the rest of a path after its first segment (already in pa): .name, ["name"], [0]. */
static void path_rest(parser *p, path *pa)
{
    for (;;) {
        if (p->failed) return;
        /* No whitespace inside a path: `a . b` is refused as a likely typo. */
        char c = p->s[p->pos];
        if (c == '.') {
            p->pos++;
            const char *s = p->s + p->pos;
            size_t n = 0;
            if (sx_ident_start(s[0]))
                while (sx_ident(s[n])) n++;
            if (!n) {
                sx_fail(p, p->pos, "expected a field name after '.' (use [\"...\"] for other names)");
                return;
            }
            if (!path_add(p, pa, strndup(s, n), 0)) return;
            if (!pa->segs[pa->n - 1].key) {
                sx_fail(p, p->pos, "out of memory");
                return;
            }
            p->pos += n;
        } else if (c == '[') {
            size_t at = p->pos++;
            sx_ws(p);
            c = p->s[p->pos];
            if (c == '"' || c == '\'') {
                char *k = sx_string(p);
                if (!k) return;
                if (!path_add(p, pa, k, 0)) return;
            } else if (c >= '0' && c <= '9') {
                size_t v = 0;
                while (p->s[p->pos] >= '0' && p->s[p->pos] <= '9') {
                    v = v * 10 + (size_t)(p->s[p->pos++] - '0');
                    if (v > 100000000) {
                        sx_fail(p, at, "array index too large");
                        return;
                    }
                }
                if (!path_add(p, pa, NULL, v)) return;
            } else {
                sx_fail(p, p->pos, "expected a quoted field name or an array index inside [ ]");
                return;
            }
            sx_ws(p);
            if (p->s[p->pos] != ']') {
                sx_fail(p, p->pos, "expected ']'");
                return;
            }
            p->pos++;
        } else {
            return;
        }
    }
}

static char *path_text(const path *pa)
{
    size_t len = 2;
    for (size_t i = 0; i < pa->n; i++) len += (pa->segs[i].key ? strlen(pa->segs[i].key) + 5 : 24);
    char *t = malloc(len), *w = t;
    if (!t) return NULL;
    *w = 0;
    if (!pa->n) {
        strcpy(t, "$");
        return t;
    }
    for (size_t i = 0; i < pa->n; i++) {
        const seg *s = &pa->segs[i];
        if (s->key) {
            int plain = sx_ident_start(s->key[0]);
            for (const char *c = s->key; *c && plain; c++) plain = sx_ident(*c);
            if (plain)
                w += sprintf(w, "%s%s", i ? "." : "", s->key);
            else
                w += sprintf(w, "%s[\"%s\"]", i ? "" : "$", s->key);
        } else {
            w += sprintf(w, "%s[%zu]", i ? "" : "$", s->idx);
        }
    }
    return t;
}

uint32_t sx_add_path(parser *p, path *pa)
{
    sl_expr *e = p->e;
    if (p->failed) {
        sx_path_free(pa);
        return 0;
    }
    pa->text = path_text(pa);
    if (!pa->text || e->npaths == e->cappaths) {
        size_t nc = e->cappaths ? e->cappaths * 2 : 4;
        path *np = pa->text ? realloc(e->paths, nc * sizeof *np) : NULL;
        if (!np) {
            sx_path_free(pa);
            sx_fail(p, p->pos, "out of memory");
            return 0;
        }
        e->paths = np;
        e->cappaths = nc;
    }
    e->paths[e->npaths] = *pa;
    return (uint32_t)e->npaths++;
}

/* A path starting at pos: `$`, `$.a`, `$["a"]`, or an identifier `a` already known not to be a
 * keyword or a function; first/firstlen give that identifier. */
int sx_path(parser *p, path *pa)
{
    memset(pa, 0, sizeof *pa);
    sx_ws(p);
    if (p->s[p->pos] == '$') {
        p->pos++;
    } else {
        const char *s;
        size_t n = sx_peek_ident(p, &s);
        if (!n) {
            sx_fail(p, p->pos, "expected a field reference");
            return 0;
        }
        char *k = strndup(s, n);
        if (!k) {
            sx_fail(p, p->pos, "out of memory");
            return 0;
        }
        p->pos += n;
        if (!path_add(p, pa, k, 0)) return 0;
    }
    path_rest(p, pa);
    if (p->failed) {
        sx_path_free(pa);
        return 0;
    }
    return 1;
}

