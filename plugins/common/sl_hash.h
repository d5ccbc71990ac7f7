/* sl_hash.h — the 64-bit hash the built-in stages share (dedup keys, window-kpi's distinct-user
 * sketch). Header-only and private to plugins/: a stage .so cannot link another's symbols. */
#ifndef SL_PLUGINS_HASH_H
#define SL_PLUGINS_HASH_H

#include <stdint.h>
#include <string.h>

/* The murmur3 finaliser: every input bit affects every output bit. */
static inline uint64_t sl_mix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Hash of n bytes, 8 at a time; `seed` chains several fields into one hash. */
static inline uint64_t sl_hash_bytes(uint64_t seed, const void *data, size_t n)
{
    const unsigned char *p = data;
    uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ULL);
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        h = (h ^ sl_mix64(w)) * 0x9E3779B97F4A7C15ULL;
        h = (h << 27) | (h >> 37);
        p += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, p, n);
    h ^= sl_mix64(w ^ ((uint64_t)n << 56));
    return sl_mix64(h);
}

#endif
