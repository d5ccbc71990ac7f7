/*
 * check.c — pg-sink: what PostgreSQL would store differently from what the record says.
 *
 * pg-sink never changes what it stores and acknowledges: a value a column cannot hold exactly
 * goes to the dead letter with the reason. PostgreSQL itself refuses most such values (a
 * malformed number, an integer out of range, invalid UTF-8) — those come back as a refused row
 * and are bisected out — but some it changes silently: numeric(p,s) rounds to s decimals, a
 * char(n)/varchar(n) drops trailing spaces beyond n, real/double and numeric accept NaN and
 * Infinity, and the host's JSON parser has already cut a string at "\u0000" and turned 1e999
 * into infinity. Those are checked here, before the row is buffered. Also here: the grammar a
 * configured column type (create_tables) must follow, since it is spliced into DDL.
 */
#include "pg-sink.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- column kinds from format_type() ------------------------------------------------- */

/* "numeric(12,2)" -> 12, 2; "character varying(64)" -> 64. Returns how many numbers were read. */
static int typmods(const char *t, int *a, int *b)
{
    const char *p = strchr(t, '(');
    if (!p) return 0;
    return sscanf(p, "(%d,%d)", a, b);
}

void classify_column(column *c)
{
    const char *t = c->sql_type;
    c->kind = CK_OTHER;
    c->prec = c->scale = c->max_chars = -1;
    size_t n = strlen(t);
    if (n >= 2 && !strcmp(t + n - 2, "[]")) return; /* arrays: PostgreSQL parses the literal */
    int a = 0, b = 0, k;
    if (!strcmp(t, "smallint")) c->kind = CK_INT2;
    else if (!strcmp(t, "integer")) c->kind = CK_INT4;
    else if (!strcmp(t, "bigint")) c->kind = CK_INT8;
    else if (!strcmp(t, "real")) c->kind = CK_FLOAT4;
    else if (!strcmp(t, "double precision")) c->kind = CK_FLOAT8;
    else if (!strcmp(t, "bytea")) c->kind = CK_BYTEA;
    else if (!strcmp(t, "json") || !strcmp(t, "jsonb")) c->kind = CK_JSON;
    else if (!strncmp(t, "numeric", 7)) {
        c->kind = CK_NUMERIC;
        k = typmods(t, &a, &b);
        if (k >= 1) c->prec = a, c->scale = k == 2 ? b : 0;
    } else if (!strncmp(t, "character", 9)) { /* character(n), character varying(n) */
        c->kind = CK_TEXT;
        if (typmods(t, &a, &b) == 1) c->max_chars = a;
    } else {
        c->kind = CK_TEXT; /* text, timestamps, boolean, uuid, …: text input PostgreSQL parses */
    }
    c->is_json = c->kind == CK_JSON;
    c->is_time = !strncmp(t, "timestamp", 9) || !strcmp(t, "date");
}

/* ---- text ----------------------------------------------------------------------------- */

/* Valid UTF-8 without NUL (what a PostgreSQL text value can hold); the ASCII fast path takes
 * 8 bytes at a time. */
static bool text_ok(const char *s, size_t n, const char **why)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + n;
    while (p < end) {
        if (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, 8);
            /* no byte >= 0x80 and no zero byte */
            if (!(w & 0x8080808080808080ULL) &&
                !((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL)) {
                p += 8;
                continue;
            }
        }
        unsigned c = *p;
        if (c == 0) {
            *why = "contains a NUL character, which PostgreSQL text cannot hold";
            return false;
        }
        if (c < 0x80) {
            p++;
            continue;
        }
        size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 ? 2 : 0;
        if (c > 0xF4 || len == 0 || (size_t)(end - p) < len) goto bad;
        for (size_t i = 1; i < len; i++)
            if ((p[i] & 0xC0) != 0x80) goto bad;
        /* overlong 3/4-byte forms, surrogates, beyond U+10FFFF */
        if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F) ||
            (c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
            goto bad;
        p += len;
    }
    return true;
bad:
    *why = "is not valid UTF-8";
    return false;
}

/* Cuts a trailing incomplete UTF-8 sequence (a message cut to its buffer's size), so a reason
 * built from server messages stays valid text for a dead-letter table. */
void utf8_clip(char *s)
{
    size_t n = strlen(s), i = n;
    while (i > 0 && n - i < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80) i--;
    if (i == 0) return;
    unsigned char c = (unsigned char)s[i - 1];
    size_t len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (c >= 0x80 && n - (i - 1) < len) s[i - 1] = '\0';
}

/* Characters (code points) of valid UTF-8. */
static size_t utf8_chars(const char *s, size_t n)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

/* Does the raw JSON text hold an escaped NUL ("\u0000") in a string? The host's parser keeps
 * strings as C strings, so such a string reaches the stage cut at the NUL. */
bool json_has_nul_escape(const char *s, size_t n)
{
    const char *p = s, *end = s + n;
    while ((p = memchr(p, '\\', (size_t)(end - p))) != NULL) {
        /* p starts a run of backslashes; an odd run escapes the character after it */
        const char *q = p;
        while (q < end && *q == '\\') q++;
        if (((q - p) & 1) && end - q >= 5 && q[0] == 'u' && !memcmp(q + 1, "0000", 4)) return true;
        p = q;
    }
    return false;
}

/* ---- numbers --------------------------------------------------------------------------- */

/* Does decimal text (sign, digits, point, exponent) fit numeric(prec, scale) without rounding?
 * 1: fits, 0: does not (*why set), -1: not a plain decimal (PostgreSQL decides). */
static int decimal_fits(const char *s, size_t n, int prec, int scale, char *why, size_t wn)
{
    size_t i = 0;
    while (i < n && isspace((unsigned char)s[i])) i++;
    if (i < n && (s[i] == '+' || s[i] == '-')) i++;
    long ndig = 0, point = -1, first_nz = -1, last_nz = -1;
    for (; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9') {
            if (s[i] != '0') {
                if (first_nz < 0) first_nz = ndig;
                last_nz = ndig;
            }
            ndig++;
        } else if (s[i] == '.' && point < 0) {
            point = ndig;
        } else {
            break;
        }
    }
    if (ndig == 0) return -1;
    if (point < 0) point = ndig;
    long exp = 0;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        char *e;
        char tmp[32];
        size_t k = n - i - 1 < sizeof tmp - 1 ? n - i - 1 : sizeof tmp - 1;
        memcpy(tmp, s + i + 1, k);
        tmp[k] = '\0';
        exp = strtol(tmp, &e, 10);
        if (e == tmp) return -1;
        if (exp > 100000) exp = 100000;
        if (exp < -100000) exp = -100000;
        i += 1 + (size_t)(e - tmp);
    }
    while (i < n && isspace((unsigned char)s[i])) i++;
    if (i != n) return -1;
    if (first_nz < 0) return 1; /* zero */
    /* digits from the first to the last non-zero one; the point sits after `point + exp`
     * digits of the original digit string */
    long int_digits = point + exp - first_nz;       /* digits left of the point */
    long frac_digits = (last_nz + 1) - (point + exp); /* digits right of it (may be < 0) */
    if (frac_digits > scale) {
        snprintf(why, wn, "has more than %d decimal%s: numeric(%d,%d) would round it", scale,
                 scale == 1 ? "" : "s", prec, scale);
        return 0;
    }
    if (int_digits > prec - scale) {
        snprintf(why, wn, "is out of range for numeric(%d,%d)", prec, scale);
        return 0;
    }
    return 1;
}

#define MAX_EXACT_INT 9007199254740991.0 /* 2^53 - 1: beyond, a double is not every integer */

/* A JSON number (as the host hands it: a double, already rendered as `text`) for column c.
 * NULL if it is stored exactly, else why not (in why). */
const char *number_fits(const column *c, double d, const char *text, size_t n, char *why,
                        size_t wn)
{
    if (!isfinite(d)) {
        snprintf(why, wn, "is not a finite number (NaN or infinity, e.g. 1e999)");
        return why;
    }
    bool integral = d == floor(d);
    switch (c->kind) {
    case CK_INT2:
    case CK_INT4:
    case CK_INT8: {
        double lo = c->kind == CK_INT2 ? -32768.0 : c->kind == CK_INT4 ? -2147483648.0 : -MAX_EXACT_INT;
        double hi = c->kind == CK_INT2 ? 32767.0 : c->kind == CK_INT4 ? 2147483647.0 : MAX_EXACT_INT;
        if (!integral) {
            snprintf(why, wn, "%.*s is not an integer (%s)", (int)n, text, c->sql_type);
            return why;
        }
        if (d < lo || d > hi) {
            if (c->kind == CK_INT8)
                snprintf(why, wn, "%.*s is beyond 2^53: a JSON number cannot carry it exactly "
                         "(send it as a string)", (int)n, text);
            else
                snprintf(why, wn, "%.*s is out of range for %s", (int)n, text, c->sql_type);
            return why;
        }
        return NULL;
    }
    case CK_NUMERIC: {
        if (integral && fabs(d) > MAX_EXACT_INT) {
            snprintf(why, wn, "%.*s is beyond 2^53: a JSON number cannot carry it exactly "
                     "(send it as a string)", (int)n, text);
            return why;
        }
        if (c->prec < 0) return NULL;
        char tmp[160];
        if (decimal_fits(text, n, c->prec, c->scale, tmp, sizeof tmp) == 0) {
            snprintf(why, wn, "%.*s %s", (int)n, text, tmp);
            return why;
        }
        return NULL;
    }
    case CK_FLOAT4:
        if (fabs(d) > FLT_MAX) {
            snprintf(why, wn, "%.*s is out of range for real", (int)n, text);
            return why;
        }
        return NULL;
    default: return NULL;
    }
}

static bool is_non_finite_word(const char *s, size_t n)
{
    while (n && isspace((unsigned char)*s)) s++, n--;
    while (n && isspace((unsigned char)s[n - 1])) n--;
    if (n && (*s == '+' || *s == '-')) s++, n--;
    return (n == 3 && !strncasecmp(s, "nan", 3)) || (n == 3 && !strncasecmp(s, "inf", 3)) ||
           (n == 8 && !strncasecmp(s, "infinity", 8));
}

/* A text value (a JSON string, a key, a header) for column c. NULL if stored as it is. */
const char *text_fits(const column *c, const char *s, size_t n, char *why, size_t wn)
{
    if (c->kind == CK_BYTEA) return NULL; /* any bytes, written as hex */
    const char *what;
    if (!text_ok(s, n, &what)) {
        snprintf(why, wn, "the value %s", what);
        return why;
    }
    if ((c->kind == CK_NUMERIC || c->kind == CK_FLOAT4 || c->kind == CK_FLOAT8) &&
        is_non_finite_word(s, n)) {
        snprintf(why, wn, "\"%.*s\" is not a finite number", (int)(n < 40 ? n : 40), s);
        return why;
    }
    if (c->kind == CK_NUMERIC && c->prec >= 0) {
        char tmp[160];
        if (decimal_fits(s, n, c->prec, c->scale, tmp, sizeof tmp) == 0) {
            snprintf(why, wn, "\"%.*s\" %s", (int)(n < 60 ? n : 60), s, tmp);
            return why;
        }
    }
    if (c->max_chars >= 0 && utf8_chars(s, n) > (size_t)c->max_chars) {
        /* PostgreSQL would drop trailing spaces beyond the length instead of refusing */
        snprintf(why, wn, "value too long for type %s (%zu characters)", c->sql_type,
                 utf8_chars(s, n));
        return why;
    }
    return NULL;
}

/* ---- the grammar of a configured column type ----------------------------------------- */

/* Type names create_tables accepts; multi-word names as PostgreSQL spells them. */
static const char *const type_names[] = {
    "smallint", "integer", "int", "int2", "int4", "int8", "bigint", "smallserial", "serial",
    "bigserial", "serial2", "serial4", "serial8", "real", "float4", "float8", "float",
    "double precision", "numeric", "decimal", "money", "boolean", "bool", "text", "varchar",
    "character varying", "char", "character", "bpchar", "name", "citext", "bytea", "json",
    "jsonb", "uuid", "xml", "date", "time", "timetz", "time with time zone",
    "time without time zone", "timestamp", "timestamptz", "timestamp with time zone",
    "timestamp without time zone", "interval", "inet", "cidr", "macaddr", "macaddr8", "bit",
    "bit varying", "varbit", "tsvector", "oid", NULL,
};

/* Accepts NAME [ (n [, n]) ] [ with|without time zone ] { [] | [n] }, NAME from the list
 * above (case and runs of spaces free). Anything else — quotes, semicolons, comments,
 * constraints — is refused: the type is spliced into CREATE TABLE. */
bool sql_type_ok(const char *t)
{
    char words[64];
    size_t w = 0;
    const char *p = t;
    while (isspace((unsigned char)*p)) p++;
    /* the name: letters, digits and single spaces, up to '(' '[' or the end */
    while (*p && (isalnum((unsigned char)*p) || *p == ' ')) {
        if (*p == ' ') {
            while (*p == ' ') p++;
            if (!*p || *p == '(' || *p == '[') break;
            if (w + 1 >= sizeof words) return false;
            words[w++] = ' ';
            continue;
        }
        if (w + 1 >= sizeof words) return false;
        words[w++] = (char)tolower((unsigned char)*p++);
    }
    words[w] = '\0';
    /* "timestamp(3) with time zone": the zone words come after the modifier */
    bool found = false;
    for (size_t i = 0; type_names[i] && !found; i++) found = !strcmp(words, type_names[i]);
    if (!found) return false;
    if (*p == '(') {
        p++;
        for (int k = 0; k < 2; k++) {
            while (*p == ' ') p++;
            if (k == 1 && *p == '-') p++;
            if (!isdigit((unsigned char)*p)) return false;
            for (int digits = 0; isdigit((unsigned char)*p); p++)
                if (++digits > 4) return false;
            while (*p == ' ') p++;
            if (*p == ')') break;
            if (*p != ',' || k == 1) return false;
            p++;
        }
        if (*p++ != ')') return false;
        while (*p == ' ') p++;
        size_t zone = !strncasecmp(p, "without time zone", 17) ? 17
                      : !strncasecmp(p, "with time zone", 14)  ? 14
                                                               : 0;
        if (zone && (strncmp(words, "time", 4) != 0 || strchr(words, ' '))) return false;
        p += zone;
    }
    while (*p == ' ') p++;
    while (*p == '[') {
        p++;
        for (int digits = 0; isdigit((unsigned char)*p); p++)
            if (++digits > 9) return false;
        if (*p++ != ']') return false;
        while (*p == ' ') p++;
    }
    return *p == '\0';
}
