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

/* What only some programs load is referred to weakly, so that printing the
 * build does not make every program load OpenMP, MPI, CUDA and NCCL (with
 * the linker's --as-needed, a weak reference does not); where a program
 * does not have it, the line says so and what it was built with. */
#pragma weak agn_cuda_device_count
#pragma weak agn_cuda_device_name
#ifdef _OPENMP
#pragma weak omp_get_max_threads
#endif
#ifdef HAVE_MPI
#pragma weak MPI_Get_library_version
#endif
#ifdef HAVE_CUDA
#pragma weak cudaRuntimeGetVersion
#pragma weak cudaDriverGetVersion
#endif
#ifdef HAVE_NCCL
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wstrict-prototypes"
#include <nccl.h>
#pragma GCC diagnostic pop
#pragma weak ncclGetVersion
#endif

static const char not_here[] = "not loaded by this program (agn-train --version shows it)";

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
    if (omp_get_max_threads)
        fprintf(fp, "openmp: %d, %d threads by default\n", _OPENMP, omp_get_max_threads());
    else
        fprintf(fp, "openmp: %d, this program runs one thread\n", _OPENMP);
#else
    fprintf(fp, "openmp: no (one thread)\n");
#endif
    agn_blas_info bi;
    agn_blas_query(&bi);
    fprintf(fp, "blas linked: %s\n", bi.built_for);
    if (bi.threading == AGN_BLAS_NONE) {
        fprintf(fp, "blas loaded: none (agn's own loops)\n");
    } else if (bi.threading == AGN_BLAS_UNUSED) {
        fprintf(fp, "blas loaded: %s\n", not_here);
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
            agn_tok_split_path(), agn_simd_name(agn_simd_vector_level()), clones_level());
#ifdef HAVE_MPI
    char mv[MPI_MAX_LIBRARY_VERSION_STRING];
    int mlen = 0;
    if (MPI_Get_library_version && MPI_Get_library_version(mv, &mlen) == MPI_SUCCESS) {
        mv[mlen < (int)sizeof mv ? mlen : (int)sizeof mv - 1] = '\0';
        fprintf(fp, "mpi: %.*s (MPI %d.%d headers)\n", (int)strcspn(mv, ",\n"), mv, MPI_VERSION,
                MPI_SUBVERSION);
    } else {
        fprintf(fp, "mpi: built with MPI %d.%d headers; the library is %s\n", MPI_VERSION,
                MPI_SUBVERSION, not_here);
    }
#else
    fprintf(fp, "mpi: no (built without the mpi transport)\n");
#endif
#ifdef HAVE_CUDA
    fprintf(fp, "cuda: built with %d.%d", CUDART_VERSION / 1000, CUDART_VERSION % 1000 / 10);
    int rt = 0, drv = 0;
    if (cudaRuntimeGetVersion && cudaDriverGetVersion) {
        cudaRuntimeGetVersion(&rt);
        cudaDriverGetVersion(&drv);
        fprintf(fp, ", runtime %d.%d, driver ", rt / 1000, rt % 1000 / 10);
        if (drv) fprintf(fp, "%d.%d\n", drv / 1000, drv % 1000 / 10);
        else fprintf(fp, "none\n");
    } else {
        fprintf(fp, "; the runtime is %s\n", not_here);
    }
#else
    fprintf(fp, "cuda: no (built without CUDA)\n");
#endif
#ifdef HAVE_NCCL
    fprintf(fp, "nccl: built with %d.%d.%d", NCCL_MAJOR, NCCL_MINOR, NCCL_PATCH);
    int nv = 0;
    if (ncclGetVersion && ncclGetVersion(&nv) == ncclSuccess)
        fprintf(fp, ", loaded %d.%d.%d\n", nv / 10000, nv / 100 % 100, nv % 100);
    else
        fprintf(fp, "; the library is %s\n", not_here);
#else
    fprintf(fp, "nccl: no\n");
#endif
    char name[256];
    if (!agn_cuda_device_count || !agn_cuda_device_name) {
        fprintf(fp, "gpus: %s\n", not_here);
        return;
    }
    int ngpu = agn_cuda_device_count();
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
