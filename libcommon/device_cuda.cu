/* device_cuda.cu: device discovery through the CUDA runtime.  A machine with
 * the toolkit but no driver or GPU answers 0 devices, never an error, so the
 * same binary runs on CPU-only hosts.  Also the device memory and stream of
 * device.h for programs without a model. */
#include "config.h"
extern "C" {
#include "device.h"
}
#include "cuda_check.h"

#include <cuda_runtime.h>
#include <stdio.h>

extern "C" int agn_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError(); /* clear the sticky "no driver" error */
        return 0;
    }
    return n;
}

extern "C" const char *agn_cuda_device_name(int i, char *buf, int n)
{
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, i);
    if (e != cudaSuccess) {
        int rt = 0, drv = 0;
        cudaRuntimeGetVersion(&rt);
        cudaDriverGetVersion(&drv); /* 0: no driver library could be loaded */
        if (e == cudaErrorInsufficientDriver && drv == 0)
            snprintf(buf, (size_t)n, "none (no NVIDIA driver on this machine: the CUDA driver library libcuda.so.1 is not there)");
        else if (e == cudaErrorInsufficientDriver)
            snprintf(buf, (size_t)n, "none (the NVIDIA driver supports CUDA %d.%d, this build needs %d.%d)",
                     drv / 1000, drv % 1000 / 10, rt / 1000, rt % 1000 / 10);
        else if (e == cudaErrorNoDevice)
            snprintf(buf, (size_t)n, "none (the NVIDIA driver sees no GPU)");
        else
            snprintf(buf, (size_t)n, "none (%s)", cudaGetErrorString(e));
        cudaGetLastError();
        return buf;
    }
    snprintf(buf, (size_t)n, "%s, %.0f GiB, sm_%d%d", p.name,
             (double)p.totalGlobalMem / (1024.0 * 1024.0 * 1024.0), p.major, p.minor);
    return buf;
}

/* ---- device memory without a model ----------------------------------------- */

extern "C" int agn_cuda_stream_create(int device, void **stream)
{
    *stream = NULL;
    cudaStream_t s;
    AGN_CUDA_CHECK(cudaSetDevice(device));
    AGN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    *stream = (void *)s;
    return 0;
}

extern "C" void agn_cuda_stream_free(void *stream)
{
    if (stream) cudaStreamDestroy((cudaStream_t)stream);
}

extern "C" int agn_cuda_stream_sync(void *stream)
{
    AGN_CUDA_CHECK(cudaStreamSynchronize((cudaStream_t)stream));
    return 0;
}

extern "C" void *agn_cuda_malloc(size_t bytes)
{
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        agn_seterr("cudaMalloc of %zu bytes: %s", bytes, cudaGetErrorString(e));
        cudaGetLastError();
        return NULL;
    }
    return p;
}

extern "C" void agn_cuda_free(void *p)
{
    if (p) cudaFree(p);
}

extern "C" int agn_cuda_to_host(void *host, const void *dev, size_t bytes, void *stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    AGN_CUDA_CHECK(cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, s));
    AGN_CUDA_CHECK(cudaStreamSynchronize(s));
    return 0;
}

extern "C" int agn_cuda_from_host(void *dev, const void *host, size_t bytes, void *stream)
{
    cudaStream_t s = (cudaStream_t)stream;
    AGN_CUDA_CHECK(cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, s));
    AGN_CUDA_CHECK(cudaStreamSynchronize(s));
    return 0;
}

extern "C" int agn_cuda_zero(void *dev, size_t bytes, void *stream)
{
    AGN_CUDA_CHECK(cudaMemsetAsync(dev, 0, bytes, (cudaStream_t)stream));
    return 0;
}
