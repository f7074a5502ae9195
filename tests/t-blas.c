/* t-blas.c: the BLAS this process loads is the one configure linked
 * (blas.h), whatever Debian's alternatives point libopenblas.so.0 at; and,
 * where the other OpenBLAS build is installed, that a binary made to load
 * it (LD_LIBRARY_PATH) is caught by agn_blas_check and has its pool set to
 * one thread by agn_blas_threads, with products still right when agn's
 * OpenMP threads call sgemm side by side. */
#include "config.h"

#include "blas.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef HAVE_CBLAS
#include <cblas.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

extern int openblas_get_num_threads(void) __attribute__((weak));

static int failures;

#define CHECK(c, ...)                                                 \
    do {                                                              \
        if (!(c)) {                                                   \
            fprintf(stderr, "t-blas.c:%d: FAIL: ", __LINE__);         \
            fprintf(stderr, __VA_ARGS__);                             \
            fprintf(stderr, "\n");                                    \
            failures++;                                               \
        }                                                             \
    } while (0)

#ifdef HAVE_CBLAS
/* Four threads each multiply their own 64x64 matrices with sgemm at the
 * same time, as agn's layers do; each result against a plain loop. */
static void products_side_by_side(void)
{
    enum { N = 64, T = 4 };
    static float a[T][N * N], b[T][N * N], c[T][N * N];
    for (int t = 0; t < T; t++)
        for (int i = 0; i < N * N; i++) {
            a[t][i] = (float)((i * 7 + t) % 13) - 6.0f;
            b[t][i] = (float)((i * 5 + 3 * t) % 11) - 5.0f;
        }
    int bad = 0;
#pragma omp parallel for num_threads(T) reduction(+ : bad)
    for (int t = 0; t < T; t++) {
        for (int rep = 0; rep < 20; rep++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, N, N, 1.0f, a[t], N, b[t], N,
                        0.0f, c[t], N);
        for (int i = 0; i < N; i++)
            for (int j = 0; j < N; j++) {
                float s = 0;
                for (int k = 0; k < N; k++) s += a[t][i * N + k] * b[t][k * N + j];
                bad += fabsf(s - c[t][i * N + j]) > 1e-3f;
            }
    }
    CHECK(bad == 0, "%d entries of sgemm called from 4 threads at once are wrong", bad);
}
#endif

int main(int argc, char **argv)
{
#ifndef HAVE_CBLAS
    (void)argc;
    (void)argv;
    printf("SKIP: agn was built without a BLAS (configure --without-blas or none found)\n");
    return 77;
#else
    agn_blas_info bi;
    agn_blas_query(&bi);
    printf("linked: %s\nloaded: %s (%s) %s\n", bi.built_for, bi.path,
           agn_blas_threading_name(bi.threading), bi.config);
    if (argc > 1 && strcmp(argv[1], "--other") == 0) {
        /* run by the parent with the other build first on LD_LIBRARY_PATH */
        CHECK(agn_blas_check() != 0, "the check passed with %s loaded", bi.path);
        if (failures == 0) printf("caught: %s\n", agn_errmsg());
        CHECK(bi.threading == AGN_BLAS_PTHREAD, "loaded %s, threading %s, not the pthread build",
              bi.path, agn_blas_threading_name(bi.threading));
        agn_blas_threads(2);
        CHECK(openblas_get_num_threads && openblas_get_num_threads() == 1,
              "the pthread build kept %d threads under agn's 2",
              openblas_get_num_threads ? openblas_get_num_threads() : -1);
        products_side_by_side();
        return failures ? 1 : 0;
    }
    if (agn_blas_check() != 0) {
        fprintf(stderr, "t-blas.c: FAIL: %s\n", agn_errmsg());
        failures++;
    }
    agn_blas_threads(2);
    if (bi.threading == AGN_BLAS_OPENMP)
        CHECK(openblas_get_num_threads() == 2, "the OpenMP build got %d threads, not 2",
              openblas_get_num_threads());
    products_side_by_side();
#ifdef AGN_BLAS_LIBDIR
    /* the pthread build beside the OpenMP one: Debian's alternatives would
     * pick it for the soname; a process told to load it must notice */
    char other[1024];
    snprintf(other, sizeof other, "%s", AGN_BLAS_LIBDIR);
    char *at = strstr(other, "openblas-openmp");
    if (at) {
        memcpy(at, "openblas-pthread", sizeof "openblas-pthread");
        char so[1100];
        snprintf(so, sizeof so, "%s/libopenblas.so.0", other);
        if (access(so, R_OK) != 0) {
            printf("skip - the other build: %s is not installed\n", so);
        } else {
            fflush(NULL);
            pid_t p = fork();
            if (p == 0) {
                setenv("LD_LIBRARY_PATH", other, 1);
                execl(argv[0], argv[0], "--other", (char *)NULL);
                _exit(126);
            }
            int st = 0;
            pid_t w = p > 0 ? waitpid(p, &st, 0) : -1;
            if (w == p && WIFEXITED(st) && WEXITSTATUS(st) == 126)
                printf("skip - the other build: could not run %s again (exec failed: under "
                       "qemu-user without binfmt_misc?)\n", argv[0]);
            else
                CHECK(w == p && WIFEXITED(st) && WEXITSTATUS(st) == 0,
                      "the run with %s first on LD_LIBRARY_PATH failed", other);
        }
    } else {
        printf("skip - the other build: configure linked %s, not the OpenMP build\n", AGN_BLAS_LIBDIR);
    }
#endif
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("ok - the BLAS loaded is the one linked (%s), sgemm from 4 threads at once\n", bi.path);
    return failures ? 1 : 0;
#endif
}
