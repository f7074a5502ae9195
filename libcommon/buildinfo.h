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

/* The processor's model name ("AMD EPYC 7763 64-Core Processor"; the
 * machine's architecture where the system does not say), in BUF of N
 * bytes; returned. */
const char *agn_cpu_model(char *buf, size_t n);

#endif
