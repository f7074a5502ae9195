/* device.h: the CPUs and the accelerators this process can see.  Compiled against CUDA
 * when configure found it (device_cuda.cu), else a CPU-only stub, so callers
 * never need an #ifdef to ask. */
#ifndef AGN_DEVICE_H
#define AGN_DEVICE_H

#include <stddef.h>

/* Number of CUDA devices usable by this process; 0 without CUDA, without a
 * driver, or without a GPU. */
int agn_cuda_device_count(void);
/* A one-line description of device I ("NVIDIA H200, 139 GiB, sm_90"), or of
 * the reason there is none; BUF of N bytes, returned. */
const char *agn_cuda_device_name(int i, char *buf, int n);

/* The cores this process may run on. */
int agn_cpu_count(void);
/* N threads for OpenMP and the BLAS of this process (agn_blas_threads of
 * blas.h: one for OpenBLAS's pthread build, which would fight OpenMP).
 * Defined in threads.c, so that what asks device.c about the CPU does not
 * load OpenMP. */
void agn_cpu_set_threads(int n);
/* The CPU model name from /proc/cpuinfo (commas removed), or "cpu". */
const char *agn_cpu_name(char *buf, size_t n);

#endif
