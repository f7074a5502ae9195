/* peak.c: the fp32 multiply-add rate this machine delivers now, measured,
 * for the model FLOP utilisation bench-model prints beside the one against
 * the nominal peak (machine.sh: cores x FMA units x lanes x 2 x the clock
 * /proc/cpuinfo reports).  A virtual machine reports its nominal clock
 * while the core boosts above it, or runs slower when its neighbours are
 * busy; a loop that does nothing but independent fused multiply-adds on
 * the widest vectors the processor runs measures what the FMA units give
 * at the clock of this minute, on as many threads as the model runs. */
#include "peak.h"

#include <stdint.h>

#include "util.h" /* agn_now */

/* FMA_LOOP(NAME, VEC, LANES, CHAINS): a function NAME(iters) that runs
 * CHAINS independent multiply-add chains on LANES-wide GCC vectors of type
 * VEC for ITERS rounds and returns the FLOPs done; gnu11's contraction
 * makes each a*m + a fused where the target has FMA. */
#define FMA_LOOP(NAME, VEC, LANES, CHAINS)                                         \
    static double NAME(long iters)                                                  \
    {                                                                               \
        VEC acc[CHAINS], m = (VEC){0} + 0.9999999f, a = (VEC){0} + 1e-7f;           \
        for (int k = 0; k < CHAINS; k++) acc[k] = (VEC){0} + (float)k;              \
        for (long i = 0; i < iters; i++)                                            \
            _Pragma("GCC unroll 16") for (int k = 0; k < CHAINS; k++)               \
                acc[k] = acc[k] * m + a;                                            \
        VEC s = acc[0];                                                             \
        for (int k = 1; k < CHAINS; k++) s += acc[k];                               \
        float sum = 0;                                                              \
        for (int l = 0; l < LANES; l++) sum += s[l];                                \
        volatile float sink = sum;                                                  \
        (void)sink;                                                                 \
        return (double)iters * CHAINS * LANES * 2;                                  \
    }

/* Any processor: 4-wide vectors the compiler maps to what it has (NEON on
 * aarch64, SSE elsewhere); 16 chains, as aarch64 cores such as Neoverse V2
 * have four 128-bit FMA pipes of latency 4. */
typedef float v4 __attribute__((vector_size(16)));
FMA_LOOP(run_generic, v4, 4, 16)

#if defined(__x86_64__) && defined(__GNUC__)
/* 12 chains: FMA latency 4-5 cycles x 2 units, with room */
typedef float v8 __attribute__((vector_size(32)));
typedef float v16 __attribute__((vector_size(64)));
#pragma GCC push_options
#pragma GCC target("avx2,fma")
FMA_LOOP(run_avx2, v8, 8, 12)
#pragma GCC pop_options
#pragma GCC push_options
#pragma GCC target("avx512f")
FMA_LOOP(run_avx512, v16, 16, 12)
#pragma GCC pop_options
#endif

/* The processor's own widest path, whatever AGN_SIMD says: the peak is the
 * hardware's, and OpenBLAS, which does most of the model's work, picks its
 * kernels by the processor alone. */
const char *agn_peak_path(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return "avx512";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "avx2";
#endif
    return "generic";
}

static double run(const char *path, long iters)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (path[0] == 'a' && path[3] == '5') return run_avx512(iters);
    if (path[0] == 'a') return run_avx2(iters);
#endif
    (void)path;
    return run_generic(iters);
}

double agn_peak_gflops(int threads, double seconds)
{
    const char *path = agn_peak_path();
    if (threads < 1) threads = 1;
    /* size one try to about seconds / 5 on one thread */
    long iters = 1 << 16;
    for (;;) {
        double t0 = agn_now();
        run(path, iters);
        double dt = agn_now() - t0;
        if (dt > 0.01 || iters > (1L << 30)) {
            iters = (long)((double)iters * (seconds / 5) / (dt > 0 ? dt : 1e-3)) + 1;
            break;
        }
        iters *= 4;
    }
    double best = 0;
    for (int tr = 0; tr < 5; tr++) {
        double flop = 0, slowest = 0;
        /* without OpenMP: one thread, whatever THREADS says */
#pragma omp parallel num_threads(threads) reduction(+ : flop) reduction(max : slowest)
        {
#pragma omp barrier
            double t0 = agn_now();
            flop = run(path, iters);
            slowest = agn_now() - t0;
        }
        /* all threads' work over the slowest thread's time */
        double g = slowest > 0 ? flop / slowest / 1e9 : 0;
        if (g > best) best = g;
    }
    return best;
}
