/*
 * jsoncheck.h — the strict JSON check for outside input.
 *
 * sluice reads JSON with cJSON, which keeps strings NUL-terminated, numbers as doubles, the
 * first of two equal keys and whatever it can make of bad UTF-8. A value it cannot represent
 * faithfully would reach stages changed (a "\u0000" cuts a string short, so an `enum` or
 * `pattern` check would see a prefix). This check runs before the parse and refuses, with a
 * reason that says where and what:
 *   - NUL (\u0000 or a raw 0 byte) in a string or key;
 *   - invalid UTF-8 (overlong forms, surrogates, code points above U+10FFFF, truncated
 *     sequences) and lone or mismatched surrogate escapes (\ud800);
 *   - control bytes inside strings (JSON forbids them) and outside (only space, tab, CR, LF);
 *   - duplicate keys in any object at any depth (compared after unescaping);
 *   - anything after the value but whitespace;
 *   - numbers that are not finite as doubles (1e999), or longer than cJSON reads (63 chars);
 *   - nesting deeper than `max_depth`;
 *   - and everything that is not JSON (RFC 8259) at all.
 * Linear in the input; allocates only for an object with more than 16 keys.
 *
 * Self-contained (libc only), so stages, sluice-gen and fuzzers compile it in directly.
 */
#ifndef SL_JSONCHECK_H
#define SL_JSONCHECK_H

#include <stddef.h>

#define SL_JSON_MAX_DEPTH 128 /* default nesting limit (cJSON's own is 1000) */
#define SL_JSON_MAX_NUMBER 63 /* longest number text cJSON 1.7 reads whole */

/**
 * Is [p, p+len) exactly one JSON value sluice can represent faithfully (surrounding
 * whitespace allowed)? Returns 0 if so; else -1 and a reason like
 * "byte 17: string contains NUL (\u0000)" in why[0..whylen) (NUL-terminated, truncated).
 */
int sl_json_check(const void *p, size_t len, unsigned max_depth, char *why, size_t whylen);

/** The same with SL_JSON_MAX_DEPTH; NULL when valid, else the reason in a thread-local buffer
 *  that stays valid until the thread's next call. */
const char *sl_json_strict(const void *p, size_t len);

#endif
