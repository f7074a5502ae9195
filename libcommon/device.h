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

/* Device memory and a stream for a program that moves buffers but has no
 * model (agn-bench-comm -g; a model's memory goes through its backend,
 * backend.h).  Without CUDA in the build each says so (-1, NULL).  0, or -1
 * with a message (agn_seterr). */
/* Makes DEVICE current in this thread and creates a non-blocking stream on
 * it into *STREAM (a cudaStream_t). */
int agn_cuda_stream_create(int device, void **stream);
void agn_cuda_stream_free(void *stream);
/* Returns once everything issued on STREAM has completed. */
int agn_cuda_stream_sync(void *stream);
/* BYTES of device memory on the current device; NULL with a message. */
void *agn_cuda_malloc(size_t bytes);
void agn_cuda_free(void *p);
/* Copies BYTES between host memory (pageable) and device memory after the
 * work issued on STREAM, and returns once the copy has completed. */
int agn_cuda_to_host(void *host, const void *dev, size_t bytes, void *stream);
int agn_cuda_from_host(void *dev, const void *host, size_t bytes, void *stream);
/* Queues dev[0 .. BYTES) = 0 on STREAM (returns at once). */
int agn_cuda_zero(void *dev, size_t bytes, void *stream);

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
