/* simd.h: which SIMD path each hand-written fast path takes, and the
 * environment variable that forces a lower one.
 *
 * The levels, lowest first: scalar (portable C, what a non-x86 machine
 * runs), sse2 (the x86-64 baseline), avx2 (AVX2 with BMI2 and POPCNT:
 * x86-64-v3), avx512 (x86-64-v4; each kernel also asks for the extensions
 * it needs, such as VBMI2 for the tokenizer).  A kernel takes the highest
 * level that both the processor runs and AGN_SIMD allows: AGN_SIMD=avx2 on
 * an AVX-512 machine runs what a machine without AVX-512 runs, so tests can
 * compare every path a machine can run, byte for byte.  agn(7) documents
 * AGN_SIMD. */
#ifndef AGN_SIMD_H
#define AGN_SIMD_H

typedef enum {
    AGN_SIMD_SCALAR = 0,
    AGN_SIMD_SSE2 = 1,
    AGN_SIMD_AVX2 = 2,
    AGN_SIMD_AVX512 = 3,
} agn_simd_level;

#define AGN_SIMD_NLEVELS 4

/* "scalar", "sse2", "avx2", "avx512". */
const char *agn_simd_name(agn_simd_level l);
/* The level named S, or -1. */
int agn_simd_parse(const char *s);

/* The highest level AGN_SIMD allows (AGN_SIMD_AVX512 when it is unset).  An
 * unknown value is reported once on stderr and ignored. */
agn_simd_level agn_simd_limit(void);

/* Whether the processor runs level L as the generic kernels use it: sse2
 * on any x86-64; avx2 with AVX2, FMA, BMI1/2 and POPCNT; avx512 with
 * AVX-512 F, BW, DQ and VL.  Scalar always. */
int agn_simd_cpu_has(agn_simd_level l);

/* min(the highest level the processor has, agn_simd_limit()). */
agn_simd_level agn_simd_level_now(void);

/* The path of the float kernels that have an avx512 and an avx2 version
 * and no sse2 one (AdamW's update, optim.c): agn_simd_level_now() with sse2
 * read as scalar.  (The tokenizer's path, which also needs VBMI2 for
 * avx512, is agn_tok_split_path of tokenizer.h.) */
agn_simd_level agn_simd_vector_level(void);

#endif
