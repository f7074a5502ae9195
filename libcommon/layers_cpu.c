/* layers_cpu.c: forward and backward of every layer of the transformer
 * classifier on the CPU, in fp32, side by side.  The conventions (argument
 * order, packed rows, accumulation into gradients, determinism) are in
 * layers_cpu.h.  Matrix products go through CBLAS sgemm when configure found
 * one, each thread calling it on its own rows or output channels inside one
 * parallel region (OpenBLAS then runs single-threaded; see SPLIT_MIN_MACS);
 * everything else is OpenMP loops over rows, heads or channel blocks whose
 * outputs are disjoint, so no result depends on thread timing.  Every layer
 * may also be called from inside a parallel region on a share of the rows
 * (model.c's forward does): its own loops are then nested and run on the
 * calling thread alone. */
#include "config.h"
#include "layers_cpu.h"

/* Let GCC turn the comparisons of the elementwise loops (the clamp in
 * agn_expf, dropout's select) into vector selects; this changes no value,
 * it only stops treating a float comparison as a possible trap. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif
/* after the pragma: agn_expf is compiled under it */
#include "layers_row.h"

#include <math.h>
#include <string.h>
#ifdef HAVE_CBLAS
#include <cblas.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

/* The hot elementwise kernels are compiled for AVX-512 and AVX2 besides the
 * baseline, and the loader picks the best the CPU has (GCC function
 * multiversioning): a distribution's baseline build still runs everywhere.
 * Each kernel is a plain function over a range; the parallel loops call it
 * on one range per thread or one row at a time. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
#define AGN_KERNEL __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#endif
#ifndef AGN_KERNEL
#define AGN_KERNEL
#endif

/* This thread's share [*i0, *i1) of [0, n), in 16-float aligned pieces. */
static void thread_range(size_t n, size_t *i0, size_t *i1)
{
#ifdef _OPENMP
    size_t t = (size_t)omp_get_thread_num(), nt = (size_t)omp_get_num_threads();
#else
    size_t t = 0, nt = 1;
#endif
    size_t chunk = ((n + nt - 1) / nt + 15) / 16 * 16;
    *i0 = t * chunk < n ? t * chunk : n;
    *i1 = *i0 + chunk < n ? *i0 + chunk : n;
}

/* Reductions over a channel dimension D are done in blocks of CHUNK channels,
 * one block per loop iteration, each walking all rows in order: the sum order
 * is then fixed whatever the number of threads. */
#define CHUNK 64

static inline void axpy(float *y, float a, const float *x, int n)
{
#pragma omp simd
    for (int i = 0; i < n; i++) y[i] += a * x[i];
}

/* cols[0..w) += sum over rows r of a[r*lda + 0..w), w <= CHUNK, rows in order. */
AGN_KERNEL static void colsum_block(float *cols, const float *a, int N, int w, int lda)
{
    float acc[CHUNK] = {0};
    if (w == CHUNK) {
        for (int r = 0; r < N; r++) {
            const float *row = a + (size_t)r * lda;
#pragma omp simd
            for (int c = 0; c < CHUNK; c++) acc[c] += row[c];
        }
    } else {
        for (int r = 0; r < N; r++) {
            const float *row = a + (size_t)r * lda;
            for (int c = 0; c < w; c++) acc[c] += row[c];
        }
    }
    for (int c = 0; c < w; c++) cols[c] += acc[c];
}

/* cols[c] += sum over rows r of a[r*lda + c] for c in [0, C). */
static void colsum_acc(float *cols, const float *a, int N, int C, int lda)
{
    int nblk = (C + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int c0 = blk * CHUNK, w = c0 + CHUNK < C ? CHUNK : C - c0;
        colsum_block(cols + c0, a + c0, N, w, lda);
    }
}

/* ---- embedding ---------------------------------------------------------- */

void agn_embedding_forward_cpu(float *out, const int32_t *ids, const int32_t *pos, const float *tok_emb,
                       const float *pos_emb, int N, int D)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++) {
        const float *te = tok_emb + (size_t)ids[r] * D, *pe = pos_emb + (size_t)pos[r] * D;
        float *o = out + (size_t)r * D;
#pragma omp simd
        for (int d = 0; d < D; d++) o[d] = te[d] + pe[d];
    }
}

void agn_embedding_backward_cpu(float *dtok_emb, float *dpos_emb, const float *dout, const int32_t *ids,
                        const int32_t *pos, int N, int D)
{
    /* Rows sharing a token id or a position add into the same gradient row,
     * so the work is split by channel blocks and each block walks the rows
     * in order. */
    int nblk = (D + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int d0 = blk * CHUNK, d1 = d0 + CHUNK < D ? d0 + CHUNK : D;
        for (int r = 0; r < N; r++) {
            const float *g = dout + (size_t)r * D;
            float *te = dtok_emb + (size_t)ids[r] * D, *pe = dpos_emb + (size_t)pos[r] * D;
#pragma omp simd
            for (int d = d0; d < d1; d++) te[d] += g[d];
#pragma omp simd
            for (int d = d0; d < d1; d++) pe[d] += g[d];
        }
    }
}

/* ---- layernorm ------------------------------------------------------------ */

AGN_KERNEL static void layernorm_row(float *o, float *mean, float *rstd, const float *x,
                                     const float *weight, const float *bias, int D)
{
    float s = 0.0f;
#pragma omp simd reduction(+ : s)
    for (int d = 0; d < D; d++) s += x[d];
    float m = s / (float)D, v = 0.0f;
#pragma omp simd reduction(+ : v)
    for (int d = 0; d < D; d++) v += (x[d] - m) * (x[d] - m);
    float rs = 1.0f / sqrtf(v / (float)D + 1e-5f);
#pragma omp simd
    for (int d = 0; d < D; d++) o[d] = (x[d] - m) * rs * weight[d] + bias[d];
    *mean = m;
    *rstd = rs;
}

void agn_layernorm_forward_cpu(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int D)
{
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++)
        layernorm_row(out + (size_t)r * D, mean + r, rstd + r, inp + (size_t)r * D, weight, bias, D);
}

AGN_KERNEL static void layernorm_backward_row(float *di, const float *g, const float *x,
                                              const float *weight, float m, float rs, int D)
{
    float a = 0.0f, b = 0.0f; /* mean of dnorm, mean of dnorm * norm */
#pragma omp simd reduction(+ : a, b)
    for (int d = 0; d < D; d++) {
        float dn = weight[d] * g[d];
        a += dn;
        b += dn * (x[d] - m) * rs;
    }
    a /= (float)D;
    b /= (float)D;
#pragma omp simd
    for (int d = 0; d < D; d++) {
        float norm = (x[d] - m) * rs;
        di[d] += (weight[d] * g[d] - a - norm * b) * rs;
    }
}

void agn_layernorm_backward_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int D)
{
    /* one region: the rows (dinp) and the channel blocks (dweight, dbias)
     * write disjoint outputs from read-only inputs, so no barrier between */
    int nblk = (D + CHUNK - 1) / CHUNK;
#pragma omp parallel
    {
#pragma omp for schedule(static) nowait
        for (int r = 0; r < N; r++)
            layernorm_backward_row(dinp + (size_t)r * D, dout + (size_t)r * D,
                                   inp + (size_t)r * D, weight, mean[r], rstd[r], D);
#pragma omp for schedule(static) nowait
        for (int blk = 0; blk < nblk; blk++) {
            int d0 = blk * CHUNK, d1 = d0 + CHUNK < D ? d0 + CHUNK : D;
            float aw[CHUNK] = {0}, ab[CHUNK] = {0};
            for (int r = 0; r < N; r++) {
                const float *x = inp + (size_t)r * D, *g = dout + (size_t)r * D;
                float m = mean[r], rs = rstd[r];
#pragma omp simd
                for (int d = 0; d < d1 - d0; d++) {
                    aw[d] += g[d0 + d] * (x[d0 + d] - m) * rs;
                    ab[d] += g[d0 + d];
                }
            }
            for (int d = d0; d < d1; d++) {
                dweight[d] += aw[d - d0];
                dbias[d] += ab[d - d0];
            }
        }
    }
}

/* ---- matmul ----------------------------------------------------------------- */

#ifndef HAVE_CBLAS
/* The fallback without BLAS: one output row at a time, multiversioned. */
AGN_KERNEL static void matmul_row_k(float *o, const float *x, const float *weight,
                                    const float *bias, int IC, int OC)
{
    for (int c = 0; c < OC; c++) {
        const float *w = weight + (size_t)c * IC;
        float s = 0.0f;
#pragma omp simd reduction(+ : s)
        for (int i = 0; i < IC; i++) s += x[i] * w[i];
        o[c] = (bias ? bias[c] : 0.0f) + s;
    }
}

/* y[0..n) += sum over k < K of a[k * as] * rows[k * n + 0..n). */
AGN_KERNEL static void axpy_rows_k(float *y, const float *a, size_t as, const float *rows, int n,
                                   int K)
{
    for (int k = 0; k < K; k++) {
        const float ak = a[(size_t)k * as], *x = rows + (size_t)k * n;
#pragma omp simd
        for (int i = 0; i < n; i++) y[i] += ak * x[i];
    }
}
#endif

#ifdef HAVE_CBLAS
/* Products of at least this many multiply-adds are split over the threads
 * by hand, in one parallel region that also does the bias work, each thread
 * calling sgemm on its own rows (OpenBLAS runs single-threaded inside a
 * parallel region).  Letting OpenBLAS thread each call costs as much
 * compute but one more fork/join per call (plus one for the bias), which
 * with OMP_WAIT_POLICY=passive (threads that sleep between regions, the
 * right setting on a shared machine) is tens of microseconds each.  Each
 * output element is summed in the same order whatever the split. */
#define SPLIT_MIN_MACS ((size_t)1 << 21)
#endif

void agn_matmul_forward_cpu(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int IC, int OC)
{
    if (N <= 0) return;
#ifdef HAVE_CBLAS
#pragma omp parallel if ((size_t)N * IC * OC >= SPLIT_MIN_MACS)
    {
        size_t r0, r1;
        thread_range((size_t)N, &r0, &r1);
        if (bias)
            for (size_t r = r0; r < r1; r++) memcpy(out + r * OC, bias, (size_t)OC * sizeof(float));
        if (r1 > r0)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)(r1 - r0), OC, IC, 1.0f,
                        inp + r0 * IC, IC, weight, IC, bias ? 1.0f : 0.0f, out + r0 * OC, OC);
    }
#else
#pragma omp parallel for schedule(static)
    for (int r = 0; r < N; r++)
        matmul_row_k(out + (size_t)r * OC, inp + (size_t)r * IC, weight, bias, IC, OC);
#endif
}

/* set: dinp is written (beta 0), not added into. */
static void matmul_backward_impl(float *dinp, float *dweight, float *dbias, const float *dout,
                                 const float *inp, const float *weight, int N, int IC, int OC,
                                 int set)
{
    if (N <= 0) return;
#ifdef HAVE_CBLAS
    /* one region: this thread's rows of dinp, its rows (output channels)
     * of dweight, then its blocks of dbias; the three write disjoint
     * outputs from read-only inputs, so no barrier between them */
    int nblk = dbias ? (OC + CHUNK - 1) / CHUNK : 0;
#pragma omp parallel if ((size_t)N * IC * OC >= SPLIT_MIN_MACS)
    {
        size_t r0, r1, c0, c1;
        thread_range((size_t)N, &r0, &r1);
        thread_range((size_t)OC, &c0, &c1);
        if (dinp && r1 > r0) {
            /* set: this thread's rows zeroed here (a memset) rather than by
             * OpenBLAS's slower beta-0 pass; 0 + x is x */
            if (set) memset(dinp + r0 * IC, 0, (r1 - r0) * IC * sizeof(float));
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)(r1 - r0), IC, OC, 1.0f,
                        dout + r0 * OC, OC, weight, IC, 1.0f, dinp + r0 * IC, IC);
        }
        if (c1 > c0)
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)(c1 - c0), IC, N, 1.0f,
                        dout + c0, OC, inp, IC, 1.0f, dweight + c0 * IC, IC);
#pragma omp for schedule(static) nowait
        for (int blk = 0; blk < nblk; blk++) {
            int b0 = blk * CHUNK, w = b0 + CHUNK < OC ? CHUNK : OC - b0;
            colsum_block(dbias + b0, dout + b0, N, w, OC);
        }
    }
    return;
#else
    if (dinp) {
#pragma omp parallel for schedule(static)
        for (int r = 0; r < N; r++) {
            if (set) memset(dinp + (size_t)r * IC, 0, (size_t)IC * sizeof(float));
            axpy_rows_k(dinp + (size_t)r * IC, dout + (size_t)r * OC, 1, weight, IC, OC);
        }
    }
#pragma omp parallel for schedule(static)
    for (int c = 0; c < OC; c++)
        axpy_rows_k(dweight + (size_t)c * IC, dout + c, OC, inp, IC, N);
#endif
    if (dbias) colsum_acc(dbias, dout, N, OC, OC);
}

void agn_matmul_backward_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int IC, int OC)
{
    matmul_backward_impl(dinp, dweight, dbias, dout, inp, weight, N, IC, OC, 0);
}

void agn_matmul_backward_to_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int IC, int OC)
{
    matmul_backward_impl(dinp, dweight, dbias, dout, inp, weight, N, IC, OC, 1);
}

void agn_bias_backward_cpu(float *dbias, const float *dout, int N, int C, int ld)
{
    if (N > 0) colsum_acc(dbias, dout, N, C, ld);
}

void agn_bias_backward2_cpu(float *dbias, const float *dout, float *dbias2, const float *dout2, int N,
                    int C, int ld)
{
    if (N <= 0) return;
    int nblk = (C + CHUNK - 1) / CHUNK;
#pragma omp parallel for schedule(static)
    for (int k = 0; k < 2 * nblk; k++) {
        int blk = k % nblk, c0 = blk * CHUNK, w = c0 + CHUNK < C ? CHUNK : C - c0;
        if (k < nblk) colsum_block(dbias + c0, dout + c0, N, w, ld);
        else colsum_block(dbias2 + c0, dout2 + c0, N, w, ld);
    }
}

/* ---- attention -------------------------------------------------------------------- */

/* C[m,n] = alpha * op(A) op(B) + beta * C for the small per-(example, head)
 * products of attention, called from inside a parallel region (OpenBLAS then
 * runs single-threaded); plain loops without BLAS. */
static void small_gemm(int ta, int tb, int M, int N, int K, float alpha, const float *A, int lda,
                       const float *B, int ldb, float beta, float *C, int ldc)
{
#ifdef HAVE_CBLAS
    /* beta 0 as zeroed rows and beta 1: OpenBLAS runs a separate beta pass
     * over C for any beta but 1, which on these small strided blocks cost
     * 4-5% of a small-config training step (1536 calls a step); the sums
     * are the same, 0 + x being x */
    if (beta == 0.0f) {
        if (ldc == N) memset(C, 0, (size_t)M * N * sizeof(float));
        else
            for (int i = 0; i < M; i++) memset(C + (size_t)i * ldc, 0, (size_t)N * sizeof(float));
        beta = 1.0f;
    }
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, M,
                N, K, alpha, A, lda, B, ldb, beta, C, ldc);
#else
    for (int i = 0; i < M; i++) {
        float *c = C + (size_t)i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof(float));
        else if (beta != 1.0f)
            for (int j = 0; j < N; j++) c[j] *= beta;
        if (!tb) { /* c += alpha * sum_k op(A)[i,k] B[k,:] */
            for (int k = 0; k < K; k++) {
                float a = alpha * (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]);
                axpy(c, a, B + (size_t)k * ldb, N);
            }
        } else { /* c[j] += alpha * op(A)[i,:] . B[j,:] */
            for (int j = 0; j < N; j++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++)
                    s += (ta ? A[(size_t)k * lda + i] : A[(size_t)i * lda + k]) * B[(size_t)j * ldb + k];
                c[j] += alpha * s;
            }
        }
    }
#endif
}

/* p = softmax(p) over n entries, in place. */
AGN_KERNEL static void softmax_row(float *p, int n)
{
    float mx = p[0];
    for (int j = 1; j < n; j++) mx = p[j] > mx ? p[j] : mx;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) {
        p[j] = agn_expf(p[j] - mx);
        sum += p[j];
    }
    float inv = 1.0f / sum;
#pragma omp simd
    for (int j = 0; j < n; j++) p[j] *= inv;
}

/* dp = scale * p * (dp - sum(p * dp)): the softmax's backward, in place. */
AGN_KERNEL static void softmax_backward_row(float *dp, const float *p, int n, float scale)
{
    float rowdot = 0.0f;
#pragma omp simd reduction(+ : rowdot)
    for (int j = 0; j < n; j++) rowdot += p[j] * dp[j];
#pragma omp simd
    for (int j = 0; j < n; j++) dp[j] = p[j] * (dp[j] - rowdot) * scale;
}

void agn_attention_forward_cpu(float *out, float *att, const float *qkv, const int *start,
                       const int *len, const int *nkey, const size_t *att_off, int B, int D,
                       int H)
{
    const int hd = D / H, D3 = 3 * D;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
    /* the output rows zeroed whole, example by example, so that the
     * per-head products below add into them (beta 1) and an example
     * without keys is left at zero */
#pragma omp for schedule(static)
    for (int b = 0; b < B; b++)
        memset(out + (size_t)start[b] * D, 0, (size_t)len[b] * D * sizeof(float));
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const int n = len[b], nk = nkey ? nkey[b] : len[b];
            if (n == 0 || nk == 0) continue; /* nk 0: no key at all, nothing to attend to */
            float *Y = out + (size_t)start[b] * D + h * hd;
            const float *Q = qkv + (size_t)start[b] * D3 + h * hd;
            const float *K = Q + D, *V = Q + 2 * D;
            float *P = att + att_off[b] + (size_t)h * n * nk;
            /* scores S = Q K^T / sqrt(hd), then a softmax per row, in place */
            small_gemm(0, 1, n, nk, hd, scale, Q, D3, K, D3, 0.0f, P, nk);
            for (int i = 0; i < n; i++) softmax_row(P + (size_t)i * nk, nk);
            /* out = P V */
            small_gemm(0, 0, n, hd, nk, 1.0f, P, nk, V, D3, 1.0f, Y, D);
        }
    }
    }
}

/* set: the rows of dqkv of every example are written, not added into. */
static void attention_backward_impl(float *dqkv, float *datt, const float *dout,
                                    const float *qkv, const float *att, const int *start,
                                    const int *len, const int *nkey, const size_t *att_off, int B,
                                    int D, int H, int set)
{
    const int hd = D / H, D3 = 3 * D;
    const float scale = 1.0f / sqrtf((float)hd);
#pragma omp parallel
    {
    /* set: each example's rows of dqkv zeroed whole first, so that the
     * per-head products add into them (beta 1) and the rows they do not
     * reach (no key, or pad keys) are zero */
    if (set) {
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++)
            memset(dqkv + (size_t)start[b] * D3, 0, (size_t)len[b] * D3 * sizeof(float));
    }
#pragma omp for collapse(2) schedule(dynamic, 1)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < H; h++) {
            const int n = len[b], nk = nkey ? nkey[b] : len[b];
            float *dQ = dqkv + (size_t)start[b] * D3 + h * hd;
            float *dK = dQ + D, *dV = dQ + 2 * D;
            if (n == 0 || nk == 0) continue;
            const float *Q = qkv + (size_t)start[b] * D3 + h * hd;
            const float *K = Q + D, *V = Q + 2 * D;
            const float *dY = dout + (size_t)start[b] * D + h * hd;
            const float *P = att + att_off[b] + (size_t)h * n * nk;
            float *dP = datt + att_off[b] + (size_t)h * n * nk;
            /* dV += P^T dY;  dP = dY V^T */
            small_gemm(1, 0, nk, hd, n, 1.0f, P, nk, dY, D, 1.0f, dV, D3);
            small_gemm(0, 1, n, nk, hd, 1.0f, dY, D, V, D3, 0.0f, dP, nk);
            /* softmax backward, with the 1/sqrt(hd) of the scores folded in */
            for (int i = 0; i < n; i++)
                softmax_backward_row(dP + (size_t)i * nk, P + (size_t)i * nk, nk, scale);
            /* dQ += dS K;  dK += dS^T Q */
            small_gemm(0, 0, n, hd, nk, 1.0f, dP, nk, K, D3, 1.0f, dQ, D3);
            small_gemm(1, 0, nk, hd, n, 1.0f, dP, nk, Q, D3, 1.0f, dK, D3);
        }
    }
    }
}

void agn_attention_backward_cpu(float *dqkv, float *datt, const float *dout, const float *qkv,
                        const float *att, const int *start, const int *len, const int *nkey,
                        const size_t *att_off, int B, int D, int H)
{
    attention_backward_impl(dqkv, datt, dout, qkv, att, start, len, nkey, att_off, B, D, H, 0);
}

void agn_attention_backward_to_cpu(float *dqkv, float *datt, const float *dout, const float *qkv,
                           const float *att, const int *start, const int *len, const int *nkey,
                           const size_t *att_off, int B, int D, int H)
{
    attention_backward_impl(dqkv, datt, dout, qkv, att, start, len, nkey, att_off, B, D, H, 1);
}

/* ---- GELU ---------------------------------------------------------------------------- */


AGN_KERNEL static void gelu_forward_k(float *out, const float *inp, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) out[i] = agn_gelu_value(inp[i], agn_gelu_tanh(inp[i]));
}

/* d gelu(x) / dx */
static inline float gelu_grad(float x) { return agn_gelu_grad(x, agn_gelu_tanh(x)); }

/* out = gelu(inp) and grad = gelu'(inp), the tanh once for both: what the
 * backward needs of the MLP (fc2's input again, and the derivative), in one
 * pass where separate ones would evaluate the exponential twice */
AGN_KERNEL static void gelu_value_grad_k(float *out, float *grad, const float *inp, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) {
        float x = inp[i], t = agn_gelu_tanh(x);
        out[i] = agn_gelu_value(x, t);
        grad[i] = agn_gelu_grad(x, t);
    }
}

AGN_KERNEL static void mul_k(float *y, const float *a, const float *b, size_t n)
{
#pragma omp simd
    for (size_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

AGN_KERNEL static void gelu_backward_k(float *dinp, const float *dout, const float *inp, size_t n,
                                       int set)
{
    if (set) {
#pragma omp simd
        for (size_t i = 0; i < n; i++) dinp[i] = gelu_grad(inp[i]) * dout[i];
        return;
    }
#pragma omp simd
    for (size_t i = 0; i < n; i++) dinp[i] += gelu_grad(inp[i]) * dout[i];
}

void agn_gelu_forward_cpu(float *out, const float *inp, size_t n)
{
#pragma omp parallel
    {
        size_t i0, i1;
        thread_range(n, &i0, &i1);
        gelu_forward_k(out + i0, inp + i0, i1 - i0);
    }
}

void agn_gelu_backward_cpu(float *dinp, const float *dout, const float *inp, size_t n)
{
#pragma omp parallel
    {
        size_t i0, i1;
        thread_range(n, &i0, &i1);
        gelu_backward_k(dinp + i0, dout + i0, inp + i0, i1 - i0, 0);
    }
}

void agn_gelu_value_grad_cpu(float *out, float *grad, const float *inp, size_t n)
{
#pragma omp parallel
    {
        size_t i0, i1;
        thread_range(n, &i0, &i1);
        gelu_value_grad_k(out + i0, grad + i0, inp + i0, i1 - i0);
    }
}

void agn_mul_cpu(float *y, const float *a, const float *b, size_t n)
{
#pragma omp parallel
    {
        size_t i0, i1;
        thread_range(n, &i0, &i1);
        mul_k(y + i0, a + i0, b + i0, i1 - i0);
    }
}

void agn_gelu_backward_to_cpu(float *dinp, const float *dout, const float *inp, size_t n)
{
#pragma omp parallel
    {
        size_t i0, i1;
        thread_range(n, &i0, &i1);
        gelu_backward_k(dinp + i0, dout + i0, inp + i0, i1 - i0, 1);
    }
}

/* ---- residual and dropout ---------------------------------------------------------------- */

void agn_residual_forward_cpu(float *out, const float *inp, const float *y, const uint8_t *mask,
                      float scale, size_t n)
{
    if (mask) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = inp[i] + (float)mask[i] * scale * y[i];
    } else {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) out[i] = inp[i] + y[i];
    }
}

void agn_residual_backward_cpu(float *dinp, float *dy, const float *dout, const uint8_t *mask, float scale,
                       size_t n)
{
    if (mask) {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) {
            dinp[i] += dout[i];
            dy[i] += mask[i] ? dout[i] * scale : 0.0f;
        }
    } else {
#pragma omp parallel for simd schedule(static)
        for (size_t i = 0; i < n; i++) {
            dinp[i] += dout[i];
            dy[i] += dout[i];
        }
    }
}

void agn_dropout_forward_cpu(float *x, const uint8_t *mask, float scale, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) x[i] = mask[i] ? x[i] * scale : 0.0f;
}

void agn_dropout_backward_cpu(float *dinp, const float *dout, const uint8_t *mask, float scale, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] += mask[i] ? dout[i] * scale : 0.0f;
}

void agn_dropout_backward_to_cpu(float *dinp, const float *dout, const uint8_t *mask, float scale,
                         size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++) dinp[i] = mask[i] ? dout[i] * scale : 0.0f;
}

/* ---- pooling ------------------------------------------------------------------------------- */

void agn_meanpool_forward_cpu(float *out, const float *inp, const int *start, const int *len, int B, int D)
{
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * D;
        memset(o, 0, (size_t)D * sizeof(float));
        for (int i = 0; i < len[b]; i++) axpy(o, 1.0f, inp + (size_t)(start[b] + i) * D, D);
        if (len[b] > 0) {
            float inv = 1.0f / (float)len[b];
            for (int d = 0; d < D; d++) o[d] *= inv;
        }
    }
}

void agn_meanpool_backward_cpu(float *dinp, const float *dout, const int *start, const int *len, int B,
                       int D)
{
#pragma omp parallel for schedule(static)
    for (int b = 0; b < B; b++) {
        if (len[b] == 0) continue;
        float inv = 1.0f / (float)len[b];
        for (int i = 0; i < len[b]; i++)
            axpy(dinp + (size_t)(start[b] + i) * D, inv, dout + (size_t)b * D, D);
    }
}

/* ---- softmax cross-entropy ------------------------------------------------------------------ */

float agn_crossentropy_forward_cpu(float *losses, float *probs, const float *logits,
                           const int32_t *labels, int B, int C)
{
    double total = 0.0;
    for (int b = 0; b < B; b++) {
        float loss = agn_softmax_xent_row(probs + (size_t)b * C, logits + (size_t)b * C, C,
                                          labels ? labels[b] : -1);
        if (labels) {
            losses[b] = loss;
            total += losses[b];
        }
    }
    return (float)total;
}

void agn_crossentropy_backward_cpu(float *dlogits, const float *probs, const int32_t *labels, float scale,
                           int B, int C)
{
    for (int b = 0; b < B; b++)
        for (int c = 0; c < C; c++)
            dlogits[(size_t)b * C + c] +=
                scale * (probs[(size_t)b * C + c] - (c == labels[b] ? 1.0f : 0.0f));
}
