/* cuda_check.h: error checks for CUDA, cuBLAS(Lt) and NCCL calls in
 * libcommon.  Each macro evaluates its call once and, on failure, records
 * "file:line: what" with agn_seterr() and makes the enclosing function
 * return -1 (libcommon never exits; tools do).  For functions returning a
 * pointer, use the _NULL forms, which return NULL instead.
 *
 *   AGN_CUDA_CHECK(cudaMemsetAsync(p, 0, n, s));
 *   AGN_CUDA_CHECK(cudaGetLastError());      after a kernel launch
 *   AGN_CUBLAS_CHECK(cublasLtMatmul(...));
 *   AGN_NCCL_CHECK(ncclAllReduce(...));      where nccl.h is included */
#ifndef AGN_CUDA_CHECK_H
#define AGN_CUDA_CHECK_H

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif
#include "util.h"
#ifdef __cplusplus
}
#endif

#define AGN_CUDA_FAILED_(call, ret)                                                            \
    do {                                                                                       \
        cudaError_t agn_e_ = (call);                                                           \
        if (agn_e_ != cudaSuccess) {                                                           \
            agn_seterr("%s:%d: %s: %s", __FILE__, __LINE__, #call, cudaGetErrorString(agn_e_)); \
            return ret;                                                                        \
        }                                                                                      \
    } while (0)
#define AGN_CUDA_CHECK(call) AGN_CUDA_FAILED_(call, -1)
#define AGN_CUDA_CHECK_NULL(call) AGN_CUDA_FAILED_(call, NULL)

/* cuBLAS and cuBLASLt share cublasStatus_t; cublasGetStatusString names it. */
#define AGN_CUBLAS_FAILED_(call, ret)                                                          \
    do {                                                                                       \
        cublasStatus_t agn_s_ = (call);                                                        \
        if (agn_s_ != CUBLAS_STATUS_SUCCESS) {                                                 \
            agn_seterr("%s:%d: %s: %s", __FILE__, __LINE__, #call,                            \
                       cublasGetStatusString(agn_s_));                                         \
            return ret;                                                                        \
        }                                                                                      \
    } while (0)
#define AGN_CUBLAS_CHECK(call) AGN_CUBLAS_FAILED_(call, -1)

#define AGN_NCCL_FAILED_(call, ret)                                                            \
    do {                                                                                       \
        ncclResult_t agn_r_ = (call);                                                          \
        if (agn_r_ != ncclSuccess) {                                                           \
            agn_seterr("%s:%d: %s: %s", __FILE__, __LINE__, #call, ncclGetErrorString(agn_r_)); \
            return ret;                                                                        \
        }                                                                                      \
    } while (0)
#define AGN_NCCL_CHECK(call) AGN_NCCL_FAILED_(call, -1)

#endif
