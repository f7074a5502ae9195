/* optim_cuda.cu: the optimizer and buffer kernels of layers_cuda.h: fused
 * AdamW over fp32 master weights and moments, the deterministic sum of
 * squares, scaling, and the row gather / scatter of the sparse embedding
 * gradient (backend.h's rows).
 *
 * AdamW computes optim.c's scalar loop with the rounding intrinsics
 * (__fmul_rn and friends), which nvcc never contracts into FMAs, so each
 * entry gets the CPU's bits (the CPU's vector paths are the same operations
 * without FMA; optim.c). */
#include "config.h"
#include "layers_cuda.h"
#include "cuda_check.h"

#define THREADS 256
#define SUMSQ_PER_THREAD 16
#define SUMSQ_BLOCK ((size_t)THREADS * SUMSQ_PER_THREAD)

static unsigned grid_for(size_t n)
{
    size_t b = (n + THREADS - 1) / THREADS;
    if (b < 1) b = 1;
    if (b > 65536 * 4) b = 65536 * 4;
    return (unsigned)b;
}

__global__ void adamw_kernel(float *p, float *m, float *v, const float *g, size_t n, float coef,
                             float b1, float b2, float decay, float step_size, float bc2_sqrt,
                             float eps)
{
    const float omb1 = __fsub_rn(1.0f, b1), omb2 = __fsub_rn(1.0f, b2);
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float gi = __fmul_rn(g[i], coef);
        float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(omb1, gi));
        float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(omb2, gi), gi));
        m[i] = mi;
        v[i] = vi;
        float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
        p[i] = __fsub_rn(__fmul_rn(p[i], decay), __fdiv_rn(__fmul_rn(step_size, mi), den));
    }
}

extern "C" int agn_adamw_cuda(float *p, float *m, float *v, const float *g, size_t n, float coef,
                              float beta1, float beta2, float decay, float step_size,
                              float bc2_sqrt, float eps, cudaStream_t s)
{
    if (n == 0) return 0;
    adamw_kernel<<<grid_for(n), THREADS, 0, s>>>(p, m, v, g, n, coef, beta1, beta2, decay,
                                                 step_size, bc2_sqrt, eps);
    AGN_CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* many pieces in one launch: CHUNKS holds triples (offset, count, decay
 * flag); a block per chunk (grid-stride over chunks) */
__global__ void adamw_chunks_kernel(float *p, float *m, float *v, const float *g,
                                    const size_t *chunks, int n, float coef, float b1, float b2,
                                    float decay_on, float step_size, float bc2_sqrt, float eps)
{
    const float omb1 = __fsub_rn(1.0f, b1), omb2 = __fsub_rn(1.0f, b2);
    for (int c = blockIdx.x; c < n; c += gridDim.x) {
        size_t o = chunks[3 * c], cnt = chunks[3 * c + 1];
        float decay = chunks[3 * c + 2] ? decay_on : 1.0f;
        for (size_t k = threadIdx.x; k < cnt; k += blockDim.x) {
            size_t i = o + k;
            float gi = __fmul_rn(g[i], coef);
            float mi = __fadd_rn(__fmul_rn(b1, m[i]), __fmul_rn(omb1, gi));
            float vi = __fadd_rn(__fmul_rn(b2, v[i]), __fmul_rn(__fmul_rn(omb2, gi), gi));
            m[i] = mi;
            v[i] = vi;
            float den = __fadd_rn(__fdiv_rn(__fsqrt_rn(vi), bc2_sqrt), eps);
            p[i] = __fsub_rn(__fmul_rn(p[i], decay), __fdiv_rn(__fmul_rn(step_size, mi), den));
        }
    }
}

extern "C" int agn_adamw_chunks_cuda(float *p, float *m, float *v, const float *g,
                                     const size_t *chunks, int n, float coef, float beta1,
                                     float beta2, float decay, float step_size, float bc2_sqrt,
                                     float eps, cudaStream_t s)
{
    if (n <= 0) return 0;
    adamw_chunks_kernel<<<n < 65535 ? n : 65535, THREADS, 0, s>>>(p, m, v, g, chunks, n, coef, beta1,
                                                                   beta2, decay, step_size,
                                                                   bc2_sqrt, eps);
    AGN_CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* ---- sum of squares ----------------------------------------------------------
 * Block k sums elements [k * SUMSQ_BLOCK, (k + 1) * SUMSQ_BLOCK): thread t
 * those at t, t + THREADS, ... in order, then a shared-memory tree of fixed
 * shape; one block then adds the block sums the same way. */

__device__ double block_tree(double v, double *sh)
{
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int o = THREADS / 2; o > 0; o >>= 1) {
        if ((int)threadIdx.x < o) sh[threadIdx.x] += sh[threadIdx.x + o];
        __syncthreads();
    }
    return sh[0];
}

__global__ void sumsq_part(double *part, const float *x, size_t n)
{
    __shared__ double sh[THREADS];
    size_t i0 = (size_t)blockIdx.x * SUMSQ_BLOCK;
    double s = 0.0;
    for (size_t k = 0; k < SUMSQ_PER_THREAD; k++) {
        size_t i = i0 + k * THREADS + threadIdx.x;
        if (i < n) s += (double)x[i] * (double)x[i];
    }
    double t = block_tree(s, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = t;
}

__global__ void sumsq_final(double *out, const double *part, size_t nparts)
{
    __shared__ double sh[THREADS];
    double s = 0.0;
    for (size_t k = threadIdx.x; k < nparts; k += THREADS) s += part[k];
    double t = block_tree(s, sh);
    if (threadIdx.x == 0) *out = t;
}

extern "C" size_t agn_sumsq_scratch(size_t n) { return (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK + 1; }

extern "C" int agn_sumsq_cuda(double *out, const float *x, size_t n, double *scratch,
                              cudaStream_t s)
{
    if (n == 0) {
        AGN_CUDA_CHECK(cudaMemsetAsync(out, 0, sizeof(double), s));
        return 0;
    }
    size_t nparts = (n + SUMSQ_BLOCK - 1) / SUMSQ_BLOCK;
    if (nparts > 0x7fffffff) return agn_seterr("sum of squares over too many elements (%zu)", n);
    sumsq_part<<<(unsigned)nparts, THREADS, 0, s>>>(scratch, x, n);
    AGN_CUDA_CHECK(cudaGetLastError());
    sumsq_final<<<1, THREADS, 0, s>>>(out, scratch, nparts);
    AGN_CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* ---- many short spans in one launch: a block per span ----------------------------
 * SPANS: device triples (offset, count, index of the result). */

__global__ void sumsq_spans_kernel(double *out, const float *base, const size_t *spans, int n)
{
    __shared__ double sh[THREADS];
    for (int i = blockIdx.x; i < n; i += gridDim.x) {
        const float *x = base + spans[3 * i];
        size_t cnt = spans[3 * i + 1];
        double s = 0.0;
        for (size_t k = threadIdx.x; k < cnt; k += THREADS) s += (double)x[k] * (double)x[k];
        double t = block_tree(s, sh);
        if (threadIdx.x == 0) out[spans[3 * i + 2]] = t;
        __syncthreads(); /* sh is reused by the next span */
    }
}

__global__ void scale_spans_kernel(float *base, const size_t *spans, int n, float coef)
{
    for (int i = blockIdx.x; i < n; i += gridDim.x) {
        float *x = base + spans[3 * i];
        size_t cnt = spans[3 * i + 1];
        for (size_t k = threadIdx.x; k < cnt; k += THREADS) x[k] *= coef;
    }
}

extern "C" int agn_sumsq_spans_cuda(double *out, const float *base, const size_t *spans, int n,
                                    cudaStream_t s)
{
    if (n <= 0) return 0;
    sumsq_spans_kernel<<<n < 65535 ? n : 65535, THREADS, 0, s>>>(out, base, spans, n);
    AGN_CUDA_CHECK(cudaGetLastError());
    return 0;
}

extern "C" int agn_scale_spans_cuda(float *base, const size_t *spans, int n, float coef,
                                    cudaStream_t s)
{
    if (n <= 0) return 0;
    scale_spans_kernel<<<n < 65535 ? n : 65535, THREADS, 0, s>>>(base, spans, n, coef);
    AGN_CUDA_CHECK(cudaGetLastError());
    return 0;
}

/* ---- scale, rows ---------------------------------------------------------------- */

__global__ void scale_kernel(float *x, size_t n, float coef)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] *= coef;
}

extern "C" int agn_scale_cuda(float *x, size_t n, float coef, cudaStream_t s)
{
    if (n == 0) return 0;
    scale_kernel<<<grid_for(n), THREADS, 0, s>>>(x, n, coef);
    AGN_CUDA_CHECK(cudaGetLastError());
    return 0;
}

__global__ void rows_kernel(float *dst, const float *src, const int32_t *rows, size_t n,
                            size_t dim, int scatter)
{
    size_t total = n * dim;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / dim, k = i % dim, big = (size_t)rows[r] * dim + k;
        if (!src) dst[big] = 0.0f;
        else if (scatter) dst[big] = src[i];
        else dst[i] = src[big];
    }
}

extern "C" int agn_rows_cuda(float *dst, const float *src, const int32_t *rows, size_t n,
                             size_t dim, int scatter, cudaStream_t s)
{
    if (n == 0 || dim == 0) return 0;
    rows_kernel<<<grid_for(n * dim), THREADS, 0, s>>>(dst, src, rows, n, dim, scatter);
    AGN_CUDA_CHECK(cudaGetLastError());
    return 0;
}
