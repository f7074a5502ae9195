/* rng.h: the one counter-based hash behind every random number of agn (the
 * data order, the initial weights, the dropout masks), as inline functions
 * that compile for the host and, under nvcc, for the device, so that the CPU
 * and CUDA backends draw the same masks bit for bit.
 *
 * agn_mix64 is SplitMix64's output function of z + 0x9e3779b97f4a7c15
 * (Steele, Lea and Flood, "Fast splittable pseudorandom number generators",
 * OOPSLA 2014): a bijection of 64-bit words whose outputs for consecutive
 * inputs pass BigCrush.  The dropout mask of DESIGN.md:
 *   key  = mix(mix(mix(seed) ^ epoch) ^ example_index)       per example
 *   u    = mix(key ^ site << 48 ^ position << 24 ^ channel) >> 32
 *   keep = u >= floor(p * 2^32)                                (scaled by 1/(1-p))
 * Sites: 0 the embedding sum, 1 + 2l the attention output of block l,
 * 2 + 2l the MLP output of block l. */
#ifndef AGN_RNG_H
#define AGN_RNG_H

#include <stdint.h>

#if defined(__CUDACC__)
#define AGN_HD __host__ __device__
#else
#define AGN_HD
#endif

static inline AGN_HD uint64_t agn_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The key of one example's masks. */
static inline AGN_HD uint64_t agn_dropout_key(uint64_t seed, uint32_t epoch, uint64_t example_index)
{
    return agn_mix64(agn_mix64(agn_mix64(seed) ^ epoch) ^ example_index);
}

/* floor(p * 2^32), saturated: u >= this keeps the element. */
static inline AGN_HD uint32_t agn_dropout_threshold(float p)
{
    double t = (double)p * 4294967296.0;
    return t >= 4294967295.0 ? 4294967295u : (uint32_t)t;
}

/* The key of one row of a site: channel c of it is kept when
 * agn_dropout_row_keep(row_key, c, threshold). */
static inline AGN_HD uint64_t agn_dropout_row_key(uint64_t key, int site, int position)
{
    return key ^ (uint64_t)site << 48 ^ (uint64_t)position << 24;
}

static inline AGN_HD int agn_dropout_row_keep(uint64_t row_key, int channel, uint32_t threshold)
{
    return (uint32_t)(agn_mix64(row_key ^ (uint64_t)channel) >> 32) >= threshold;
}

#endif
