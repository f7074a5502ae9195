/* peak.h: the fp32 FMA rate measured on this machine now (peak.c). */
#ifndef AGN_BENCH_PEAK_H
#define AGN_BENCH_PEAK_H

/* The widest FMA path the processor runs (AGN_SIMD does not limit it): "avx512",
 * "avx2" or "generic". */
const char *agn_peak_path(void);

/* GFLOP/s of independent fused multiply-adds on THREADS OpenMP threads at
 * once (all threads' work over the slowest one's time), the best of five
 * tries of about SECONDS / 5 each. */
double agn_peak_gflops(int threads, double seconds);

#endif
