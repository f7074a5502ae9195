/* simd.c: the SIMD levels of simd.h. */
#include "config.h"
#include "simd.h"

#include "util.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[AGN_SIMD_NLEVELS] = {"scalar", "sse2", "avx2", "avx512"};

const char *agn_simd_name(agn_simd_level l)
{
    return (unsigned)l < AGN_SIMD_NLEVELS ? names[l] : "?";
}

int agn_simd_parse(const char *s)
{
    for (int i = 0; i < AGN_SIMD_NLEVELS; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

static agn_simd_level limit = AGN_SIMD_AVX512;
static pthread_once_t limit_once = PTHREAD_ONCE_INIT;

static void read_limit(void)
{
    const char *e = getenv("AGN_SIMD");
    if (!e || !*e) return;
    int l = agn_simd_parse(e);
    if (l < 0) {
        agn_warn("AGN_SIMD='%s' is not one of scalar, sse2, avx2, avx512: ignored", e);
        return;
    }
    limit = (agn_simd_level)l;
}

agn_simd_level agn_simd_limit(void)
{
    pthread_once(&limit_once, read_limit);
    return limit;
}

int agn_simd_cpu_has(agn_simd_level l)
{
    switch (l) {
    case AGN_SIMD_SCALAR:
        return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    case AGN_SIMD_SSE2:
        return 1;
    case AGN_SIMD_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
               __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
               __builtin_cpu_supports("popcnt");
    case AGN_SIMD_AVX512:
        __builtin_cpu_init();
        return agn_simd_cpu_has(AGN_SIMD_AVX2) && __builtin_cpu_supports("avx512f") &&
               __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vl");
#endif
    default:
        return 0;
    }
}

agn_simd_level agn_simd_level_now(void)
{
    agn_simd_level l = agn_simd_limit();
    while (l > AGN_SIMD_SCALAR && !agn_simd_cpu_has(l)) l--;
    return l;
}

agn_simd_level agn_simd_vector_level(void)
{
    agn_simd_level l = agn_simd_level_now();
    return l == AGN_SIMD_SSE2 ? AGN_SIMD_SCALAR : l;
}
