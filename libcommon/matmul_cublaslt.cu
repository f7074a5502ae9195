/* matmul_cublaslt.cu: matmul_cublaslt.h on cuBLASLt.
 *
 * Row-major to cuBLAS's column-major: a row-major X[N,IC] is the
 * column-major Xc[IC,N] (ld IC), so
 *   out = X W^T        is  out_c[OC,N]  = Wc^T Xc       (A = W, transposed)
 *   dinp = dout W      is  dinp_c[IC,N] = Wc doutc
 *   dW += dout^T X     is  dW_c[IC,OC] += Xc doutc^T
 *
 * Determinism: cuBLAS gives the same bits run after run for the same
 * problem, algorithm and workspace on the same GPU, except through
 * split-K reductions that add with atomics; the preference below allows
 * only the reduction schemes NONE, COMPUTE_TYPE and OUTPUT_TYPE (partial
 * results in the workspace, reduced by a separate kernel in a fixed order)
 * and not INPLACE.  The algorithm of each shape is chosen once and kept. */
#include "config.h"
#include "matmul_cublaslt.h"
#include "cuda_check.h"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MM_CACHE 256
#define MM_WORKSPACE ((size_t)32 << 20)

typedef struct {
    int transa, transb, m, n, k, lda, ldb, ldc, beta_nonzero;
    int align_a, align_b, align_c; /* bytes the pointers are aligned to (<= 256) */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
} mm_entry;

struct agn_mm {
    cublasLtHandle_t lt;
    int bf16;
    void *workspace;
    size_t max_elems;
    __nv_bfloat16 *scratch_a, *scratch_b; /* bf16 copies of fp32 operands */
    mm_entry cache[MM_CACHE];
    int n_cache;
};

extern "C" agn_mm *agn_mm_create(size_t max_elems, int bf16)
{
    agn_mm *c = (agn_mm *)calloc(1, sizeof *c);
    if (!c) {
        agn_seterr("out of memory");
        return NULL;
    }
    c->bf16 = bf16;
    c->max_elems = max_elems;
    cublasStatus_t st = cublasLtCreate(&c->lt);
    if (st != CUBLAS_STATUS_SUCCESS) {
        agn_seterr("cublasLtCreate: %s", cublasGetStatusString(st));
        free(c);
        return NULL;
    }
    cudaError_t e = cudaMalloc(&c->workspace, MM_WORKSPACE);
    if (e == cudaSuccess && bf16 && max_elems) {
        e = cudaMalloc((void **)&c->scratch_a, max_elems * sizeof(__nv_bfloat16));
        if (e == cudaSuccess) e = cudaMalloc((void **)&c->scratch_b, max_elems * sizeof(__nv_bfloat16));
    }
    if (e != cudaSuccess) {
        agn_seterr("cannot allocate the cuBLASLt workspace and bf16 scratch (%.1f MiB): %s",
                   (double)(MM_WORKSPACE + 2 * max_elems * 2) / 1048576.0, cudaGetErrorString(e));
        agn_mm_destroy(c);
        return NULL;
    }
    return c;
}

extern "C" void agn_mm_destroy(agn_mm *c)
{
    if (!c) return;
    for (int i = 0; i < c->n_cache; i++) {
        mm_entry *e = &c->cache[i];
        cublasLtMatrixLayoutDestroy(e->la);
        cublasLtMatrixLayoutDestroy(e->lb);
        cublasLtMatrixLayoutDestroy(e->lc);
        cublasLtMatmulDescDestroy(e->op);
    }
    cudaFree(c->workspace);
    cudaFree(c->scratch_a);
    cudaFree(c->scratch_b);
    if (c->lt) cublasLtDestroy(c->lt);
    free(c);
}

extern "C" int agn_mm_bf16(const agn_mm *c) { return c->bf16; }

/* ---- fp32 -> bf16 ---------------------------------------------------------- */

__global__ void f32_to_bf16_kernel(__nv_bfloat16 *dst, const float *src, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += stride) dst[i] = __float2bfloat16_rn(src[i]);
}

extern "C" int agn_f32_to_bf16_cuda(void *dst, const float *src, size_t n, cudaStream_t s)
{
    if (n == 0) return 0;
    size_t blocks = (n + 255) / 256;
    if (blocks > 65536) blocks = 65536;
    f32_to_bf16_kernel<<<(unsigned)blocks, 256, 0, s>>>((__nv_bfloat16 *)dst, src, n);
    AGN_CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* ---- descriptors, one set per shape -------------------------------------------- */

/* the alignment of P in bytes, a power of two, at most 256 */
static int align_of(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    int al = 1;
    while (al < 256 && (a & (uintptr_t)(2 * al - 1)) == 0) al *= 2;
    return al;
}

static int mm_lookup(agn_mm *c, int transa, int transb, int m, int n, int k, int lda, int ldb,
                     int ldc, int beta_nonzero, int align_a, int align_b, int align_c,
                     mm_entry **out)
{
    for (int i = 0; i < c->n_cache; i++) {
        mm_entry *e = &c->cache[i];
        if (e->transa == transa && e->transb == transb && e->m == m && e->n == n && e->k == k &&
            e->lda == lda && e->ldb == ldb && e->ldc == ldc && e->beta_nonzero == beta_nonzero &&
            e->align_a == align_a && e->align_b == align_b && e->align_c == align_c) {
            *out = e;
            return 0;
        }
    }
    if (c->n_cache == MM_CACHE) /* more shapes than any model has: start over */
    {
        for (int i = 0; i < c->n_cache; i++) {
            cublasLtMatrixLayoutDestroy(c->cache[i].la);
            cublasLtMatrixLayoutDestroy(c->cache[i].lb);
            cublasLtMatrixLayoutDestroy(c->cache[i].lc);
            cublasLtMatmulDescDestroy(c->cache[i].op);
        }
        c->n_cache = 0;
    }
    mm_entry *e = &c->cache[c->n_cache];
    memset(e, 0, sizeof *e);
    e->transa = transa;
    e->transb = transb;
    e->m = m;
    e->n = n;
    e->k = k;
    e->lda = lda;
    e->ldb = ldb;
    e->ldc = ldc;
    e->beta_nonzero = beta_nonzero;
    e->align_a = align_a;
    e->align_b = align_b;
    e->align_c = align_c;
    cudaDataType_t in = c->bf16 ? CUDA_R_16BF : CUDA_R_32F;
    AGN_CUBLAS_CHECK(cublasLtMatmulDescCreate(&e->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    AGN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    AGN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(e->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    /* stored shapes: op(A) is m x k, so A is k x m when transposed */
    AGN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->la, in, transa ? k : m, transa ? m : k, lda));
    AGN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->lb, in, transb ? n : k, transb ? k : n, ldb));
    AGN_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&e->lc, CUDA_R_32F, m, n, ldc));

    cublasLtMatmulPreference_t pref;
    AGN_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    size_t ws = MM_WORKSPACE;
    uint32_t schemes = CUBLASLT_REDUCTION_SCHEME_NONE | CUBLASLT_REDUCTION_SCHEME_COMPUTE_TYPE |
                       CUBLASLT_REDUCTION_SCHEME_OUTPUT_TYPE;
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    cublasStatus_t st = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK,
                                                  &schemes, sizeof schemes);
    /* the heuristic assumes 256-byte aligned pointers unless told */
    uint32_t al[3] = {(uint32_t)align_a, (uint32_t)align_b, (uint32_t)align_c};
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES,
                                                  &al[0], sizeof al[0]);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
                                                  &al[1], sizeof al[1]);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES,
                                                  &al[2], sizeof al[2]);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES,
                                                  &al[2], sizeof al[2]);
    if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatmulAlgoGetHeuristic(c->lt, e->op, e->la, e->lb, e->lc, e->lc, pref, 1, &res,
                                            &found);
    cublasLtMatmulPreferenceDestroy(pref);
    if (st != CUBLAS_STATUS_SUCCESS || found < 1) {
        cublasLtMatrixLayoutDestroy(e->la);
        cublasLtMatrixLayoutDestroy(e->lb);
        cublasLtMatrixLayoutDestroy(e->lc);
        cublasLtMatmulDescDestroy(e->op);
        return agn_seterr("cuBLASLt has no algorithm for %s %c%c m=%d n=%d k=%d: %s",
                          c->bf16 ? "bf16" : "fp32", transa ? 'T' : 'N', transb ? 'T' : 'N', m,
                          n, k, st != CUBLAS_STATUS_SUCCESS ? cublasGetStatusString(st) : "none found");
    }
    e->algo = res.algo;
    c->n_cache++;
    *out = e;
    return 0;
}

extern "C" int agn_mm_gemm(agn_mm *c, int transa, int transb, int m, int n, int k,
                           const float *A, const void *A16, int lda, const float *B,
                           const void *B16, int ldb, float beta, float *C, int ldc,
                           cudaStream_t s)
{
    if (m <= 0 || n <= 0) return 0;
    if (k <= 0) { /* an empty sum: C = beta C */
        if (beta == 0.0f) {
            for (int j = 0; j < n; j++)
                AGN_CUDA_CHECK(cudaMemsetAsync(C + (size_t)j * ldc, 0, (size_t)m * sizeof(float), s));
        }
        return 0;
    }
    const void *a = A, *b = B;
    if (c->bf16) {
        /* the operands as stored: A is (transa ? k : m) x (transa ? m : k), ld lda */
        size_t na = (size_t)lda * (size_t)(transa ? m : k), nb = (size_t)ldb * (size_t)(transb ? k : n);
        if (!A16) {
            if (na > c->max_elems) return agn_seterr("bf16 scratch of %zu elements too small for %zu", c->max_elems, na);
            if (agn_f32_to_bf16_cuda(c->scratch_a, A, na, s) != 0) return -1;
            A16 = c->scratch_a;
        }
        if (!B16) {
            if (nb > c->max_elems) return agn_seterr("bf16 scratch of %zu elements too small for %zu", c->max_elems, nb);
            if (agn_f32_to_bf16_cuda(c->scratch_b, B, nb, s) != 0) return -1;
            B16 = c->scratch_b;
        }
        a = A16;
        b = B16;
    }
    mm_entry *e;
    if (mm_lookup(c, transa, transb, m, n, k, lda, ldb, ldc, beta != 0.0f, align_of(a), align_of(b),
                  align_of(C), &e) != 0)
        return -1;
    const float alpha = 1.0f;
    AGN_CUBLAS_CHECK(cublasLtMatmul(c->lt, e->op, &alpha, a, e->la, b, e->lb, &beta, C, e->lc, C,
                                    e->lc, &e->algo, c->workspace, MM_WORKSPACE, s));
    return 0;
}

/* ---- the layer's products ------------------------------------------------------ */

/* out[r, :] = bias, for the product to add onto (beta 1), as the CPU does */
__global__ void bias_fill_kernel(float *out, const float *bias, int N, int OC)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x, n = (size_t)N * OC;
    for (; i < n; i += stride) out[i] = bias[i % OC];
}

extern "C" int agn_matmul_forward_cuda(agn_mm *c, float *out, const float *inp,
                                       const float *weight, const void *weight16,
                                       const float *bias, int N, int IC, int OC, cudaStream_t s)
{
    if (N <= 0) return 0;
    if (bias) {
        size_t n = (size_t)N * OC, blocks = (n + 255) / 256;
        if (blocks > 65536) blocks = 65536;
        bias_fill_kernel<<<(unsigned)blocks, 256, 0, s>>>(out, bias, N, OC);
        AGN_CUDA_CHECK(cudaGetLastError());
    }
    /* out_c[OC,N] = Wc^T Xc */
    return agn_mm_gemm(c, 1, 0, OC, N, IC, weight, c->bf16 ? weight16 : NULL, IC, inp, NULL, IC,
                       bias ? 1.0f : 0.0f, out, OC, s);
}

extern "C" int agn_matmul_backward_cuda(agn_mm *c, float *dinp, float *dweight,
                                        const float *dout, const float *inp, const float *weight,
                                        const void *weight16, int N, int IC, int OC, int acc_dinp,
                                        cudaStream_t s)
{
    if (N <= 0) return 0;
    /* dinp_c[IC,N] = Wc doutc */
    if (dinp && agn_mm_gemm(c, 0, 0, IC, N, OC, weight, c->bf16 ? weight16 : NULL, IC, dout, NULL,
                            OC, acc_dinp ? 1.0f : 0.0f, dinp, IC, s) != 0)
        return -1;
    /* dW_c[IC,OC] += Xc doutc^T */
    return agn_mm_gemm(c, 0, 1, IC, OC, N, inp, NULL, IC, dout, NULL, OC, 1.0f, dweight, IC, s);
}
