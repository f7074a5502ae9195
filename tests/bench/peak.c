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

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define ACC 12 /* independent chains: FMA latency 4-5 cycles x 2 units, with room */

__attribute__((target("avx512f"))) static double run_avx512(long iters)
{
    __m512 acc[ACC], m = _mm512_set1_ps(0.9999999f), a = _mm512_set1_ps(1e-7f);
    for (int k = 0; k < ACC; k++) acc[k] = _mm512_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 16
        for (int k = 0; k < ACC; k++) acc[k] = _mm512_fmadd_ps(acc[k], m, a);
    __m512 s = acc[0];
    for (int k = 1; k < ACC; k++) s = _mm512_add_ps(s, acc[k]);
    volatile float sink = _mm512_reduce_add_ps(s);
    (void)sink;
    return (double)iters * ACC * 16 * 2;
}

__attribute__((target("avx2,fma"))) static double run_avx2(long iters)
{
    __m256 acc[ACC], m = _mm256_set1_ps(0.9999999f), a = _mm256_set1_ps(1e-7f);
    for (int k = 0; k < ACC; k++) acc[k] = _mm256_set1_ps((float)k);
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 16
        for (int k = 0; k < ACC; k++) acc[k] = _mm256_fmadd_ps(acc[k], m, a);
    __m256 s = acc[0];
    for (int k = 1; k < ACC; k++) s = _mm256_add_ps(s, acc[k]);
    float out[8];
    _mm256_storeu_ps(out, s);
    volatile float sink = out[0];
    (void)sink;
    return (double)iters * ACC * 8 * 2;
}
#endif

/* Any other processor: 4-wide vectors the compiler maps to what it has
 * (NEON on aarch64, where gnu11's contraction makes them fused, SSE
 * elsewhere); 16 chains, as aarch64 cores such as Neoverse V2 have four
 * 128-bit FMA pipes of latency 4. */
#define GACC 16
typedef float v4 __attribute__((vector_size(16)));
static double run_generic(long iters)
{
    v4 acc[GACC], m = {0.9999999f, 0.9999999f, 0.9999999f, 0.9999999f},
                  a = {1e-7f, 1e-7f, 1e-7f, 1e-7f};
    for (int k = 0; k < GACC; k++) acc[k] = (v4){(float)k, (float)k, (float)k, (float)k};
    for (long i = 0; i < iters; i++)
#pragma GCC unroll 16
        for (int k = 0; k < GACC; k++) acc[k] = acc[k] * m + a;
    v4 s = acc[0];
    for (int k = 1; k < GACC; k++) s += acc[k];
    volatile float sink = s[0] + s[1] + s[2] + s[3];
    (void)sink;
    return (double)iters * GACC * 4 * 2;
}

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
