/* blas.h: which BLAS this process runs, and its threads.
 *
 * configure links the OpenBLAS build it chose (the OpenMP one where both
 * are installed) by its folder and a run path, since Debian's alternatives
 * point the soname libopenblas.so.0 at whichever build has the higher
 * priority (the pthread one).  Yet LD_LIBRARY_PATH, LD_PRELOAD or a copied
 * binary can still bring in another: agn_blas_query says what was loaded,
 * agn_blas_threads sets its threads so that they never fight agn's own
 * OpenMP threads, whatever was loaded. */
#ifndef AGN_BLAS_H
#define AGN_BLAS_H

#include <stddef.h>

enum {
    AGN_BLAS_UNUSED = -3,  /* built with a BLAS, but this program does no matrix products */
    AGN_BLAS_NONE = -2,    /* agn's own loops (built without a BLAS) */
    AGN_BLAS_UNKNOWN = -1, /* a CBLAS that is not OpenBLAS */
    AGN_BLAS_SERIAL = 0,   /* OpenBLAS, single-threaded build */
    AGN_BLAS_PTHREAD = 1,  /* OpenBLAS, its own pthread pool */
    AGN_BLAS_OPENMP = 2,   /* OpenBLAS, OpenMP build: agn's threads and its are one pool */
};

typedef struct {
    int threading;       /* AGN_BLAS_* above */
    char path[512];      /* the file cblas_sgemm was loaded from (symlinks resolved), or "" */
    char config[256];    /* openblas_get_config(), or "" */
    char built_for[256]; /* what configure linked, in words */
    int threads;         /* openblas_get_num_threads(), or 0 */
} agn_blas_info;

/* Fills *BI. */
void agn_blas_query(agn_blas_info *bi);
/* "openmp", "pthread", "serial", "not OpenBLAS", "none". */
const char *agn_blas_threading_name(int threading);

/* 0 if the BLAS loaded is the build configure linked (its folder, its
 * threading); else -1 with the difference as the error message.  A build
 * with --with-blas=LIBS or without a BLAS has nothing to compare: 0. */
int agn_blas_check(void);

/* Before agn's parallel work with NTHREADS OpenMP threads: the OpenMP build
 * of OpenBLAS gets NTHREADS (it runs single-threaded inside agn's parallel
 * regions and on NTHREADS outside them); the pthread build gets 1 thread,
 * as its pool would otherwise spin against agn's threads on every call made
 * from inside a parallel region, and this is said once on stderr when
 * NTHREADS > 1 or the build expected another BLAS. */
void agn_blas_threads(int nthreads);

#endif
