/* sl_hll.h — the HyperLogLog sketch of the built-in aggregating stages: 2^10 one-byte registers
 * (1 KiB), standard error 1.04/sqrt(1024) = 3.25 %, linear counting below 2.5 * 1024. Fed with
 * sl_hash_bytes() hashes, so two stages given the same values build the same registers, and a
 * sketch stored as base64 by one can be continued by another. Header-only, private to plugins/. */
#ifndef SL_PLUGINS_HLL_H
#define SL_PLUGINS_HLL_H

#include <math.h>
#include <stdint.h>

#define SL_HLL_P 10
#define SL_HLL_M (1u << SL_HLL_P)

static inline void sl_hll_add(uint8_t *reg, uint64_t h)
{
    unsigned idx = (unsigned)(h >> (64 - SL_HLL_P));
    uint64_t rest = (h << SL_HLL_P) | (1ULL << (SL_HLL_P - 1)); /* the guard bit bounds the rank */
    uint8_t rank = (uint8_t)(__builtin_clzll(rest) + 1);
    if (rank > reg[idx])
        reg[idx] = rank;
}

static inline uint64_t sl_hll_estimate(const uint8_t *reg)
{
    double sum = 0;
    unsigned zeros = 0;
    for (unsigned i = 0; i < SL_HLL_M; i++) {
        sum += ldexp(1.0, -(int)reg[i]); /* exact powers of two: the sum does not depend on how */
        zeros += reg[i] == 0;
    }
    double m = SL_HLL_M, e = 0.7213 / (1 + 1.079 / m) * m * m / sum;
    if (e <= 2.5 * m && zeros)
        e = m * log(m / zeros); /* linear counting for small cardinalities */
    return (uint64_t)llround(e);
}

#endif
