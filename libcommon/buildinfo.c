/* buildinfo.c: --version of every program (buildinfo.h). */
#include "config.h"
#include "buildinfo.h"

#include "blas.h"
#include "device.h"
#include "simd.h"
#include "tokenizer.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef HAVE_MPI
#include <mpi.h>
#endif
#ifdef HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#ifdef HAVE_NCCL
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <nccl.h>
#pragma GCC diagnostic pop
#endif

/* The code that GCC's function multiversioning (layers, vocabulary count)
 * runs here: the loader picks it, so AGN_SIMD does not change it. */
static const char *clones_level(void)
{
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && __GNUC__ >= 12
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return "x86-64-v4";
    if (__builtin_cpu_supports("x86-64-v3")) return "x86-64-v3";
    return "x86-64 (baseline)";
#elif defined(__x86_64__)
    return "x86-64 (baseline)";
#else
    return "portable C";
#endif
}

void agn_print_buildinfo(FILE *fp)
{
#if defined(__clang__)
    fprintf(fp, "compiler: clang %s", __clang_version__);
#elif defined(__GNUC__)
    fprintf(fp, "compiler: GCC %s", __VERSION__);
#else
    fprintf(fp, "compiler: unknown");
#endif
    fprintf(fp, ", CFLAGS %s, for %s\n", AGN_BUILD_CFLAGS, AGN_BUILD_HOST);
#ifdef _OPENMP
    fprintf(fp, "openmp: %d, %d threads by default\n", _OPENMP, omp_get_max_threads());
#else
    fprintf(fp, "openmp: no (one thread)\n");
#endif
    agn_blas_info bi;
    agn_blas_query(&bi);
    fprintf(fp, "blas linked: %s\n", bi.built_for);
    if (bi.threading == AGN_BLAS_NONE) {
        fprintf(fp, "blas loaded: none (agn's own loops)\n");
    } else {
        fprintf(fp, "blas loaded: %s, threading %s", bi.path[0] ? bi.path : "(file unknown)",
                agn_blas_threading_name(bi.threading));
        if (bi.config[0]) fprintf(fp, ", %s", bi.config);
        if (agn_blas_check() != 0) fprintf(fp, "; WARNING: %s", agn_errmsg());
        fprintf(fp, "\n");
    }
    char cpu[256];
    fprintf(fp, "cpu: %s, %ld CPUs online, %d usable\n", agn_cpu_name(cpu, sizeof cpu),
            sysconf(_SC_NPROCESSORS_ONLN), agn_cpu_count());
    agn_simd_level top = AGN_SIMD_SCALAR;
    for (int l = AGN_SIMD_SCALAR; l < AGN_SIMD_NLEVELS; l++)
        if (agn_simd_cpu_has((agn_simd_level)l)) top = (agn_simd_level)l;
    const char *env = getenv("AGN_SIMD");
    fprintf(fp, "simd: this processor runs up to %s; AGN_SIMD%s%s; tokenizer %s, AdamW %s, "
                "layers and vocabulary count (compiler's clones) %s\n",
            agn_simd_name(top), env && *env ? "=" : " ", env && *env ? env : "unset",
            agn_tok_split_path(), agn_adamw_path(), clones_level());
#ifdef HAVE_MPI
    char mv[MPI_MAX_LIBRARY_VERSION_STRING];
    int mlen = 0;
    if (MPI_Get_library_version(mv, &mlen) == MPI_SUCCESS) {
        mv[mlen < (int)sizeof mv ? mlen : (int)sizeof mv - 1] = '\0';
        fprintf(fp, "mpi: %.*s (MPI %d.%d headers)\n", (int)strcspn(mv, ",\n"), mv, MPI_VERSION,
                MPI_SUBVERSION);
    } else {
        fprintf(fp, "mpi: built with MPI %d.%d headers\n", MPI_VERSION, MPI_SUBVERSION);
    }
#else
    fprintf(fp, "mpi: no (built without the mpi transport)\n");
#endif
#ifdef HAVE_CUDA
    int rt = 0, drv = 0;
    cudaRuntimeGetVersion(&rt);
    cudaDriverGetVersion(&drv);
    fprintf(fp, "cuda: built with %d.%d, runtime %d.%d, driver %s", CUDART_VERSION / 1000,
            CUDART_VERSION % 1000 / 10, rt / 1000, rt % 1000 / 10, drv ? "" : "none");
    if (drv) fprintf(fp, "%d.%d", drv / 1000, drv % 1000 / 10);
    fprintf(fp, "\n");
#else
    fprintf(fp, "cuda: no (built without CUDA)\n");
#endif
#ifdef HAVE_NCCL
    int nv = 0;
    ncclGetVersion(&nv);
    fprintf(fp, "nccl: built with %d.%d.%d, loaded %d.%d.%d\n", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH,
            nv / 10000, nv / 100 % 100, nv % 100);
#else
    fprintf(fp, "nccl: no\n");
#endif
    int ngpu = agn_cuda_device_count();
    char name[256];
    if (ngpu == 0) {
        fprintf(fp, "gpus: %s\n", agn_cuda_device_name(0, name, sizeof name));
    } else {
        fprintf(fp, "gpus: %d\n", ngpu);
        for (int i = 0; i < ngpu; i++)
            fprintf(fp, "gpu %d: %s\n", i, agn_cuda_device_name(i, name, sizeof name));
    }
}

void agn_print_version(void)
{
    printf("%s (%s) %s\n", agn_progname, PACKAGE_NAME, PACKAGE_VERSION);
    agn_print_buildinfo(stdout);
}
