/* util.h — small helpers shared by the host: durations, sizes, growable buffers, arenas. */
#ifndef SL_HOST_UTIL_H
#define SL_HOST_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "sluice/stage.h"

sl_err sl_parse_duration(const char *text, int64_t *ms);
sl_err sl_parse_size(const char *text, int64_t *bytes);
int64_t sl_now_ms(void);
int64_t sl_monotonic_ms(void);
void sl_sleep_ms(int64_t ms);

/** Levenshtein distance, capped; for "did you mean". */
int sl_edit_distance(const char *a, const char *b);

/** Allocation that aborts on failure: the host has no sane way to go on without memory for
 *  its own bookkeeping, and a clear abort beats a NULL dereference later. */
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/** A bump allocator: many small allocations freed at once (config values, one batch). Reset
 *  rewinds without freeing, so a steady workload stops calling malloc at all. */
typedef struct sl_arena {
    struct arena_chunk *head, *cur; /* chunks in order; allocation happens in cur */
    size_t used;                     /* bytes used in cur */
} sl_arena;
void *arena_alloc(sl_arena *a, size_t n);
char *arena_strdup(sl_arena *a, const char *s);
void *arena_memdup(sl_arena *a, const void *p, size_t n);
/** Does p point into memory of this arena? (For free() hooks that must ignore arena memory.) */
int arena_owns(const sl_arena *a, const void *p);
void arena_reset(sl_arena *a);
void arena_free(sl_arena *a);

/** Growable byte buffer. */
typedef struct sl_buf {
    char *data;
    size_t len, cap;
} sl_buf;
void buf_put(sl_buf *b, const void *p, size_t n);
void buf_puts(sl_buf *b, const char *s);
void buf_printf(sl_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/** Appends s as a JSON string literal (quotes included). */
void buf_json_str(sl_buf *b, const char *s, size_t n);
const char *buf_cstr(sl_buf *b); /* NUL-terminates (not counted in len) */
void buf_free(sl_buf *b);

#endif
