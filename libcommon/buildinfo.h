/* buildinfo.h: what a bug report needs to know about this build and this
 * machine, printed by every program's --version: the version, the
 * compiler and its flags, OpenMP, the BLAS linked and the one loaded with
 * its threading, the processor and the SIMD path each hand-written kernel
 * takes on it, MPI, CUDA and NCCL, and the GPUs seen.  (agn_print_version,
 * declared in util.h, prints the program's line and then this.) */
#ifndef AGN_BUILDINFO_H
#define AGN_BUILDINFO_H

#include <stdio.h>

/* "KEY: value" lines, one per part. */
void agn_print_buildinfo(FILE *fp);

#endif
