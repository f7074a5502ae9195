/* matmul_cublaslt.h: the matrix products of the model on a GPU through
 * cuBLASLt, row-major in PyTorch's nn.Linear layout as layers_cpu.h:
 *   forward   out[N,OC]  = inp[N,IC] . W[OC,IC]^T + bias[OC]
 *   backward  dinp[N,IC] = dout[N,OC] . W             (written, or added)
 *             dW[OC,IC] += dout^T . inp               (always added: beta 1)
 *             dbias[OC] += column sums of dout        (layers_cuda.h)
 * Two precisions (model.h agn_precision):
 *   fp32  fp32 inputs and outputs, CUBLAS_COMPUTE_32F (TF32 off);
 *   bf16  bf16 inputs, fp32 accumulation and fp32 outputs.  The weights'
 *         bf16 copies are passed in (the model keeps a shadow of its
 *         parameters); fp32 activations are rounded into a bf16 scratch of
 *         the context before each product.
 * Each shape gets its descriptors and its algorithm once (the heuristic's
 * first answer, cached), so the same product runs the same algorithm every
 * time: with the reduction schemes limited to ones without atomics
 * (matmul_cublaslt.cu), results are the same bits run after run.
 *
 * All pointers are device memory; everything is issued on STREAM. */
#ifndef AGN_MATMUL_CUBLASLT_H
#define AGN_MATMUL_CUBLASLT_H

#include <stddef.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct agn_mm agn_mm;

/* A context for products with up to MAX_ELEMS elements in any one operand
 * (sizes the bf16 scratch; 0 for fp32 only) in PRECISION (0 fp32, 1 bf16);
 * NULL with a message on failure.  Device: the current one. */
agn_mm *agn_mm_create(size_t max_elems, int bf16);
void agn_mm_destroy(agn_mm *c);
int agn_mm_bf16(const agn_mm *c);

/* fp32 -> bf16, round to nearest even, n elements. */
int agn_f32_to_bf16_cuda(void *dst, const float *src, size_t n, cudaStream_t s);

/* out = inp . W^T + bias (bias may be NULL).  W16: W in bf16 (bf16 mode;
 * ignored in fp32). */
int agn_matmul_forward_cuda(agn_mm *c, float *out, const float *inp, const float *weight,
                            const void *weight16, const float *bias, int N, int IC, int OC,
                            cudaStream_t s);
/* dinp (=, or += when ACC_DINP; NULL: not wanted) and dweight (+=); the
 * bias gradient is layers_cuda.h's agn_bias_backward_cuda. */
int agn_matmul_backward_cuda(agn_mm *c, float *dinp, float *dweight, const float *dout,
                             const float *inp, const float *weight, const void *weight16, int N,
                             int IC, int OC, int acc_dinp, cudaStream_t s);

/* The general product behind them, column-major as cuBLAS:
 * C[m,n] = op(A)[m,k] op(B)[k,n] + beta C, with A, B fp32 (converted to
 * bf16 in bf16 mode unless A16 / B16 are given) and C fp32. */
int agn_mm_gemm(agn_mm *c, int transa, int transb, int m, int n, int k, const float *A,
                const void *A16, int lda, const float *B, const void *B16, int ldb, float beta,
                float *C, int ldc, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
