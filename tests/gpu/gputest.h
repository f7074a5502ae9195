/* gputest.h: what the tests under tests/gpu/ share: the skip (exit 77, with
 * the reason) where the CUDA backend is not built or no GPU is visible,
 * and the comparison of two arrays by their normwise relative error,
 *   max_i |a_i - b_i| / max_i |b_i|   (b the reference; 0/0 counts as 0),
 * printed for every comparison and counted as a failure above TOL or when
 * either side is not finite. */
#ifndef AGN_GPUTEST_H
#define AGN_GPUTEST_H

#include "config.h"
#include "device.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int gt_failures;

static inline void gt_skip_without_gpu(const char *prog)
{
#ifndef AGN_CUDA_BACKEND
    printf("SKIP: %s: the CUDA backend is not built (configure found no nvcc with cuBLASLt)\n", prog);
    exit(77);
#else
    if (agn_cuda_device_count() == 0) {
        char why[200];
        printf("SKIP: %s: no CUDA device (%s)\n", prog, agn_cuda_device_name(0, why, sizeof why));
        exit(77);
    }
    char name[200];
    printf("%s on %s\n", prog, agn_cuda_device_name(0, name, sizeof name));
#endif
}

/* normwise relative error of A against the reference B */
static inline double gt_rel(const float *a, const float *b, size_t n, int *finite)
{
    double maxd = 0, maxb = 0;
    *finite = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) *finite = 0;
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > maxd) maxd = d;
        if (fabs((double)b[i]) > maxb) maxb = fabs((double)b[i]);
    }
    return maxb > 0 ? maxd / maxb : maxd;
}

/* compares and prints one line; returns 1 when it passed */
static inline int gt_check(const char *what, const float *got, const float *want, size_t n, double tol)
{
    int finite;
    double e = gt_rel(got, want, n, &finite);
    int same = memcmp(got, want, n * sizeof(float)) == 0;
    int ok = finite && e <= tol;
    printf("%-58s rel %.3e (tol %.0e)%s%s\n", what, e, tol, same ? " identical" : "",
           ok ? "" : finite ? "  FAIL" : "  FAIL (not finite)");
    if (!ok) gt_failures++;
    return ok;
}

/* bit-for-bit equality, printed */
static inline int gt_same(const char *what, const void *got, const void *want, size_t bytes)
{
    int ok = memcmp(got, want, bytes) == 0;
    size_t first = 0;
    if (!ok)
        while (first < bytes && ((const unsigned char *)got)[first] == ((const unsigned char *)want)[first]) first++;
    if (ok) printf("%-58s identical\n", what);
    else printf("%-58s differ from byte %zu  FAIL\n", what, first);
    if (!ok) gt_failures++;
    return ok;
}

/* uniform in [-1, 1) from a counter */
static inline float gt_rand(uint64_t *s)
{
    *s += 0x9e3779b97f4a7c15ULL;
    uint64_t z = *s;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / 8388608.0 - 1.0);
}

static inline void gt_fill(float *x, size_t n, uint64_t seed, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * gt_rand(&seed);
}

static inline int gt_finish(const char *prog)
{
    if (gt_failures) {
        printf("%s: %d failures\n", prog, gt_failures);
        return 1;
    }
    printf("%s: all checks passed\n", prog);
    return 0;
}

#endif
