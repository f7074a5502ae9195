/* blas.c: the BLAS of blas.h, found out at run time. */
#define _GNU_SOURCE
#include "config.h"
#include "blas.h"

#include "util.h"

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* OpenBLAS' own functions, when the BLAS linked is OpenBLAS. */
extern int openblas_get_parallel(void) __attribute__((weak));
extern char *openblas_get_config(void) __attribute__((weak));
extern int openblas_get_num_threads(void) __attribute__((weak));
extern void openblas_set_num_threads(int n) __attribute__((weak));
#ifdef HAVE_CBLAS
#include <cblas.h>
/* Weak, so that a program without matrix products (agn-tokenize, ...)
 * does not load the BLAS for its --version: there it is NULL. */
#pragma weak cblas_sgemm
#endif

const char *agn_blas_threading_name(int threading)
{
    switch (threading) {
    case AGN_BLAS_OPENMP: return "openmp";
    case AGN_BLAS_PTHREAD: return "pthread";
    case AGN_BLAS_SERIAL: return "serial";
    case AGN_BLAS_UNKNOWN: return "not OpenBLAS";
    case AGN_BLAS_UNUSED: return "not loaded by this program";
    default: return "none";
    }
}

void agn_blas_query(agn_blas_info *bi)
{
    memset(bi, 0, sizeof *bi);
    snprintf(bi->built_for, sizeof bi->built_for, "%s", AGN_BLAS_DESC);
#ifdef HAVE_CBLAS
    void (*sgemm)(void) = (void (*)(void))cblas_sgemm;
    if (!sgemm) {
        bi->threading = AGN_BLAS_UNUSED;
        return;
    }
    bi->threading = AGN_BLAS_UNKNOWN;
    Dl_info di;
    void *addr;
    memcpy(&addr, &sgemm, sizeof addr);
    if (dladdr(addr, &di) && di.dli_fname) {
        char real[PATH_MAX];
        snprintf(bi->path, sizeof bi->path, "%.511s",
                 realpath(di.dli_fname, real) ? real : di.dli_fname);
    }
    if (openblas_get_parallel) {
        int p = openblas_get_parallel();
        bi->threading = p == 2 ? AGN_BLAS_OPENMP : p == 1 ? AGN_BLAS_PTHREAD : AGN_BLAS_SERIAL;
    }
    if (openblas_get_config) {
        const char *c = openblas_get_config();
        snprintf(bi->config, sizeof bi->config, "%s", c ? c : "");
        size_t n = strlen(bi->config);
        while (n && bi->config[n - 1] == ' ') bi->config[--n] = '\0';
    }
    if (openblas_get_num_threads) bi->threads = openblas_get_num_threads();
#else
    bi->threading = AGN_BLAS_NONE;
#endif
}

int agn_blas_check(void)
{
#if defined(HAVE_CBLAS) && defined(AGN_BLAS_LIBDIR)
    agn_blas_info bi;
    agn_blas_query(&bi);
    if (bi.threading == AGN_BLAS_UNUSED) return 0;
    char want[PATH_MAX], dir[sizeof bi.path];
    if (!realpath(AGN_BLAS_LIBDIR, want)) snprintf(want, sizeof want, "%s", AGN_BLAS_LIBDIR);
    snprintf(dir, sizeof dir, "%s", bi.path);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    if (strcmp(dir, want) != 0)
        return agn_seterr("the BLAS loaded is %s, not the build configure linked, %s "
                          "(LD_LIBRARY_PATH or LD_PRELOAD?)",
                          bi.path[0] ? bi.path : "of unknown origin", AGN_BLAS_DESC);
#ifdef AGN_BLAS_THREADING
    if (strcmp(agn_blas_threading_name(bi.threading), AGN_BLAS_THREADING) != 0)
        return agn_seterr("the BLAS loaded (%s) is the %s build, configure linked the %s one",
                          bi.path, agn_blas_threading_name(bi.threading), AGN_BLAS_THREADING);
#endif
#endif
    return 0;
}

void agn_blas_threads(int nthreads)
{
    if (!openblas_set_num_threads || !openblas_get_parallel) return;
    if (openblas_get_parallel() != 1) {
        openblas_set_num_threads(nthreads > 0 ? nthreads : 1);
        return;
    }
    openblas_set_num_threads(1);
    static int said;
    int expected = 0;
#ifdef AGN_BLAS_THREADING
    expected = strcmp(AGN_BLAS_THREADING, "pthread") == 0;
#endif
    if (!said && (nthreads > 1 || !expected)) {
        said = 1;
        agn_blas_info bi;
        agn_blas_query(&bi);
        agn_warn("the BLAS loaded (%s) is OpenBLAS's pthread build%s: it runs on 1 thread inside "
                 "agn's %d; the OpenMP build is faster on more than one", bi.path,
                 expected ? "" : ", not the build configure linked", nthreads);
    }
}
