/* layers_cuda.cu: the layer kernels of layers_cuda.h.  For each layer the
 * reference kernel (names ending in _ref) is the CPU loop with one thread
 * per row, column or (example, head, row); the fast kernel (_fast) gives
 * the same loops a warp or a block.  Both are deterministic: every sum runs
 * in an order fixed by the sizes (serial loops, shuffle trees of fixed
 * shape, partial sums added in index order), never with atomics. */
#include "config.h"
#include "layers_cuda.h"
extern "C" {
#include "cuda_plan.h"
}
#include "cuda_check.h"
#include "layers_row.h"
#include "rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- path selection -------------------------------------------------------- */

static int g_reference = -1;

extern "C" int agn_cuda_reference(void)
{
    if (g_reference < 0) {
        const char *e = getenv("AGN_CUDA_REFERENCE");
        g_reference = e && *e && strcmp(e, "0") != 0;
    }
    return g_reference;
}

extern "C" void agn_cuda_set_reference(int on) { g_reference = on ? 1 : 0; }

static int g_unfused = 0;

extern "C" void agn_cuda_set_unfused(int on) { g_unfused = on ? 1 : 0; }

extern "C" int agn_cuda_unfused(void) { return g_unfused; }

/* ---- launch helpers -------------------------------------------------------------- */

#define THREADS 256
#define WARPS_PER_BLOCK 4
#define CS_ROWS 256 /* rows per partial sum of the fast column sums */
#define CS_TY 8     /* threads per column in a partial sum */

/* blocks for a grid-stride loop over n elements (cuda_plan.c) */
static unsigned grid_for(size_t n, int threads) { return agn_cuda_grid_1d(n, threads); }

static unsigned grid_y(long n) { return (unsigned)(n < 1 ? 1 : n > 65535 ? 65535 : n); }

#define LAUNCHED() AGN_CUDA_CHECK(cudaGetLastError())

__device__ __forceinline__ float warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ int dropout_keep(const agn_dropout_cuda &d, int r, int c)
{
    uint64_t key = agn_dropout_row_key(d.ex_key[d.row_ex[r]], d.site, d.pos[r]);
    return agn_dropout_row_keep(key, c, d.threshold);
}

/* ---- workspace --------------------------------------------------------------------- */

extern "C" size_t agn_cuda_ws_floats(int max_rows, int max_cols)
{
    return agn_cuda_colsum_floats(max_rows, max_cols);
}

/* ---- embedding ------------------------------------------------------------------------ */

__global__ void embedding_forward_kernel(float *out, const int32_t *ids, const int32_t *pos,
                                         const float *tok, const float *pe, int N, int D)
{
    size_t n = (size_t)N * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        size_t r = i / D, d = i % D;
        out[i] = tok[(size_t)ids[r] * D + d] + pe[(size_t)pos[r] * D + d];
    }
}

extern "C" int agn_embedding_forward_cuda(float *out, const int32_t *ids, const int32_t *pos,
                                          const float *tok_emb, const float *pos_emb, int N,
                                          int D, cudaStream_t s)
{
    if (N <= 0) return 0;
    embedding_forward_kernel<<<grid_for((size_t)N * D, THREADS), THREADS, 0, s>>>(
        out, ids, pos, tok_emb, pos_emb, N, D);
    LAUNCHED();
    return 0;
}

/* reference: channel d walks every row in order, as the CPU */
__global__ void embedding_backward_ref(float *dtok, float *dpos, const float *dout,
                                       const int32_t *ids, const int32_t *pos, int N, int D)
{
    int d = blockIdx.x * blockDim.x + threadIdx.x;
    if (d >= D) return;
    for (int r = 0; r < N; r++) {
        float g = dout[(size_t)r * D + d];
        dtok[(size_t)ids[r] * D + d] += g;
        dpos[(size_t)pos[r] * D + d] += g;
    }
}

/* fast: one block per group of rows sharing a token id (y = 0) or a
 * position (y = 1), the rows in ascending order: the CPU's sums exactly */
__global__ void embedding_backward_fast(float *dtok, float *dpos, const float *dout,
                                        agn_emb_segments seg, int D)
{
    const int32_t *rows = blockIdx.y ? seg.pos_rows : seg.tok_rows;
    const int32_t *start = blockIdx.y ? seg.pos_start : seg.tok_start;
    const int32_t *key = blockIdx.y ? seg.pos_key : seg.tok_key;
    int n = *(blockIdx.y ? seg.n_pos : seg.n_tok);
    float *dst = blockIdx.y ? dpos : dtok;
    for (int g = blockIdx.x; g < n; g += gridDim.x) {
        float *o = dst + (size_t)key[g] * D;
        for (int d = threadIdx.x; d < D; d += blockDim.x) {
            float acc = o[d];
            for (int k = start[g]; k < start[g + 1]; k++) acc += dout[(size_t)rows[k] * D + d];
            o[d] = acc;
        }
    }
}

extern "C" int agn_embedding_backward_cuda(float *dtok_emb, float *dpos_emb, const float *dout,
                                           const int32_t *ids, const int32_t *pos, int N, int D,
                                           const agn_emb_segments *seg, cudaStream_t s)
{
    if (N <= 0) return 0;
    if (!seg || agn_cuda_reference()) {
        embedding_backward_ref<<<(D + 127) / 128, 128, 0, s>>>(dtok_emb, dpos_emb, dout, ids, pos,
                                                               N, D);
    } else {
        dim3 grid(grid_y(N), 2);
        embedding_backward_fast<<<grid, D < THREADS ? ((D + 31) / 32) * 32 : THREADS, 0, s>>>(
            dtok_emb, dpos_emb, dout, *seg, D);
    }
    LAUNCHED();
    return 0;
}

/* ---- layernorm ------------------------------------------------------------------------- */

__global__ void layernorm_forward_ref(float *out, float *mean, float *rstd, const float *inp,
                                      const float *w, const float *b, int N, int D)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= N) return;
    const float *x = inp + (size_t)r * D;
    float *o = out + (size_t)r * D;
    float s = 0.0f;
    for (int d = 0; d < D; d++) s += x[d];
    float m = s / (float)D, v = 0.0f;
    for (int d = 0; d < D; d++) v += (x[d] - m) * (x[d] - m);
    float rs = 1.0f / sqrtf(v / (float)D + 1e-5f);
    for (int d = 0; d < D; d++) o[d] = (x[d] - m) * rs * w[d] + b[d];
    mean[r] = m;
    rstd[r] = rs;
}

/* a warp per row */
__global__ void layernorm_forward_fast(float *out, float *mean, float *rstd, const float *inp,
                                       const float *w, const float *b, int N, int D)
{
    int lane = threadIdx.x & 31;
    int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (r >= N) return;
    const float *x = inp + (size_t)r * D;
    float *o = out + (size_t)r * D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32) s += x[d];
    float m = warp_sum(s) / (float)D, v = 0.0f;
    for (int d = lane; d < D; d += 32) v += (x[d] - m) * (x[d] - m);
    float rs = 1.0f / sqrtf(warp_sum(v) / (float)D + 1e-5f);
    for (int d = lane; d < D; d += 32) o[d] = (x[d] - m) * rs * w[d] + b[d];
    if (lane == 0) {
        mean[r] = m;
        rstd[r] = rs;
    }
}

extern "C" int agn_layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                                          const float *weight, const float *bias, int N, int D,
                                          cudaStream_t s)
{
    if (N <= 0) return 0;
    if (agn_cuda_reference())
        layernorm_forward_ref<<<(N + 127) / 128, 128, 0, s>>>(out, mean, rstd, inp, weight, bias, N, D);
    else
        layernorm_forward_fast<<<(N + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK, 32 * WARPS_PER_BLOCK,
                                 0, s>>>(out, mean, rstd, inp, weight, bias, N, D);
    LAUNCHED();
    return 0;
}

__global__ void layernorm_backward_rows_ref(float *dinp, const float *dout, const float *inp,
                                            const float *w, const float *mean, const float *rstd,
                                            int N, int D)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= N) return;
    const float *g = dout + (size_t)r * D, *x = inp + (size_t)r * D;
    float *di = dinp + (size_t)r * D;
    float m = mean[r], rs = rstd[r], a = 0.0f, b = 0.0f;
    for (int d = 0; d < D; d++) {
        float dn = w[d] * g[d];
        a += dn;
        b += dn * (x[d] - m) * rs;
    }
    a /= (float)D;
    b /= (float)D;
    for (int d = 0; d < D; d++) {
        float norm = (x[d] - m) * rs;
        di[d] += (w[d] * g[d] - a - norm * b) * rs;
    }
}

__global__ void layernorm_backward_rows_fast(float *dinp, const float *dout, const float *inp,
                                             const float *w, const float *mean, const float *rstd,
                                             int N, int D)
{
    int lane = threadIdx.x & 31;
    int r = (blockIdx.x * blockDim.x + threadIdx.x) >> 5;
    if (r >= N) return;
    const float *g = dout + (size_t)r * D, *x = inp + (size_t)r * D;
    float *di = dinp + (size_t)r * D;
    float m = mean[r], rs = rstd[r], a = 0.0f, b = 0.0f;
    for (int d = lane; d < D; d += 32) {
        float dn = w[d] * g[d];
        a += dn;
        b += dn * (x[d] - m) * rs;
    }
    a = warp_sum(a) / (float)D;
    b = warp_sum(b) / (float)D;
    for (int d = lane; d < D; d += 32) {
        float norm = (x[d] - m) * rs;
        di[d] += (w[d] * g[d] - a - norm * b) * rs;
    }
}

/* Column sums.  MODE 0: out1[c] += sum_r a[r*ld + c].  MODE 1 (layernorm):
 * out1[c] += sum_r g * (x - mean) * rstd, out2[c] += sum_r g, with
 * g = a[r*ld + c], x = x[r*ld + c]. */
template <int MODE>
__device__ __forceinline__ void cs_terms(const float *a, const float *x, const float *mean,
                                         const float *rstd, int r, int c, int ld, float &t1,
                                         float &t2)
{
    float g = a[(size_t)r * ld + c];
    if (MODE == 0) {
        t1 = g;
        t2 = 0.0f;
    } else {
        t1 = g * (x[(size_t)r * ld + c] - mean[r]) * rstd[r];
        t2 = g;
    }
}

template <int MODE>
__global__ void colsum_ref(float *out1, float *out2, const float *a, const float *x,
                          const float *mean, const float *rstd, int N, int C, int ld)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float s1 = 0.0f, s2 = 0.0f;
    for (int r = 0; r < N; r++) {
        float t1, t2;
        cs_terms<MODE>(a, x, mean, rstd, r, c, ld, t1, t2);
        s1 += t1;
        s2 += t2;
    }
    out1[c] += s1;
    if (MODE == 1) out2[c] += s2;
}

/* stage 1: block (32, CS_TY) sums CS_ROWS rows of 32 columns: thread (tx, ty)
 * rows ty, ty + CS_TY, ... in order, then the CS_TY partials in order */
template <int MODE>
__global__ void colsum_part(float *part, const float *a, const float *x, const float *mean,
                            const float *rstd, int N, int C, int ld)
{
    __shared__ float s1[CS_TY][33], s2[CS_TY][33];
    int c = blockIdx.x * 32 + threadIdx.x, chunk = blockIdx.y;
    int r0 = chunk * CS_ROWS, r1 = r0 + CS_ROWS < N ? r0 + CS_ROWS : N;
    float a1 = 0.0f, a2 = 0.0f;
    if (c < C)
        for (int r = r0 + threadIdx.y; r < r1; r += CS_TY) {
            float t1, t2;
            cs_terms<MODE>(a, x, mean, rstd, r, c, ld, t1, t2);
            a1 += t1;
            a2 += t2;
        }
    s1[threadIdx.y][threadIdx.x] = a1;
    s2[threadIdx.y][threadIdx.x] = a2;
    __syncthreads();
    if (threadIdx.y == 0 && c < C) {
        float t1 = 0.0f, t2 = 0.0f;
        for (int k = 0; k < CS_TY; k++) {
            t1 += s1[k][threadIdx.x];
            t2 += s2[k][threadIdx.x];
        }
        size_t nchunks = gridDim.y;
        part[(size_t)chunk * C + c] = t1;
        if (MODE == 1) part[(nchunks + chunk) * C + c] = t2;
    }
}

/* stage 2: column c adds its chunk partials in order */
template <int MODE>
__global__ void colsum_final(float *out1, float *out2, const float *part, int nchunks, int C)
{
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    float t1 = 0.0f, t2 = 0.0f;
    for (int k = 0; k < nchunks; k++) t1 += part[(size_t)k * C + c];
    out1[c] += t1;
    if (MODE == 1) {
        for (int k = 0; k < nchunks; k++) t2 += part[(size_t)(nchunks + k) * C + c];
        out2[c] += t2;
    }
}

template <int MODE>
static int colsum(float *out1, float *out2, const float *a, const float *x, const float *mean,
                  const float *rstd, int N, int C, int ld, const agn_cuda_ws *ws, cudaStream_t s)
{
    if (N <= 0 || C <= 0) return 0;
    if (agn_cuda_reference() || !ws || !ws->buf) {
        colsum_ref<MODE><<<(C + 127) / 128, 128, 0, s>>>(out1, out2, a, x, mean, rstd, N, C, ld);
        LAUNCHED();
        return 0;
    }
    int nchunks = (N + CS_ROWS - 1) / CS_ROWS;
    if ((size_t)2 * nchunks * C > ws->floats)
        return agn_seterr("column-sum workspace of %zu floats too small for %d x %d", ws->floats, N, C);
    dim3 grid((C + 31) / 32, nchunks), block(32, CS_TY);
    colsum_part<MODE><<<grid, block, 0, s>>>(ws->buf, a, x, mean, rstd, N, C, ld);
    LAUNCHED();
    colsum_final<MODE><<<(C + 127) / 128, 128, 0, s>>>(out1, out2, ws->buf, nchunks, C);
    LAUNCHED();
    return 0;
}

extern "C" int agn_layernorm_backward_cuda(float *dinp, float *dweight, float *dbias,
                                           const float *dout, const float *inp,
                                           const float *weight, const float *mean,
                                           const float *rstd, int N, int D, const agn_cuda_ws *ws,
                                           cudaStream_t s)
{
    if (N <= 0) return 0;
    if (agn_cuda_reference())
        layernorm_backward_rows_ref<<<(N + 127) / 128, 128, 0, s>>>(dinp, dout, inp, weight, mean,
                                                                    rstd, N, D);
    else
        layernorm_backward_rows_fast<<<(N + WARPS_PER_BLOCK - 1) / WARPS_PER_BLOCK,
                                       32 * WARPS_PER_BLOCK, 0, s>>>(dinp, dout, inp, weight,
                                                                     mean, rstd, N, D);
    LAUNCHED();
    return colsum<1>(dweight, dbias, dout, inp, mean, rstd, N, D, D, ws, s);
}

extern "C" int agn_bias_backward_cuda(float *dbias, const float *dout, int N, int C, int ld,
                                      const agn_cuda_ws *ws, cudaStream_t s)
{
    return colsum<0>(dbias, NULL, dout, NULL, NULL, NULL, N, C, ld, ws, s);
}

/* ---- attention ------------------------------------------------------------------------------
 * Grid: y over example x head (strided), x over query rows.  The scores of
 * a row go straight into att (backward needs the probabilities), then the
 * softmax in place, then out = P V. */

struct att_args {
    const int *start, *len, *nkey;
    const size_t *att_off;
    int B, D, H;
};

__global__ void attention_forward_ref(float *out, float *att, const float *qkv, att_args a)
{
    const int hd = a.D / a.H, D3 = 3 * a.D;
    const float scale = 1.0f / sqrtf((float)hd);
    for (long bh = blockIdx.y; bh < (long)a.B * a.H; bh += gridDim.y) {
        int b = (int)(bh / a.H), h = (int)(bh % a.H);
        int n = a.len[b], nk = a.nkey ? a.nkey[b] : n;
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
            float *Y = out + (size_t)(a.start[b] + i) * a.D + h * hd;
            if (nk == 0) {
                for (int d = 0; d < hd; d++) Y[d] = 0.0f;
                continue;
            }
            const float *Q = qkv + (size_t)(a.start[b] + i) * D3 + h * hd;
            const float *K0 = qkv + (size_t)a.start[b] * D3 + a.D + h * hd;
            const float *V0 = K0 + a.D;
            float *P = att + a.att_off[b] + ((size_t)h * n + i) * nk;
            float mx = -INFINITY;
            for (int j = 0; j < nk; j++) {
                const float *K = K0 + (size_t)j * D3;
                float sc = 0.0f;
                for (int d = 0; d < hd; d++) sc += Q[d] * K[d];
                P[j] = scale * sc;
                mx = fmaxf(mx, P[j]);
            }
            float sum = 0.0f;
            for (int j = 0; j < nk; j++) {
                P[j] = agn_expf(P[j] - mx);
                sum += P[j];
            }
            float inv = 1.0f / sum;
            for (int j = 0; j < nk; j++) P[j] *= inv;
            for (int d = 0; d < hd; d++) {
                float acc = 0.0f;
                for (int j = 0; j < nk; j++) acc += P[j] * V0[(size_t)j * D3 + d];
                Y[d] = acc;
            }
        }
    }
}

/* a warp per query row: lanes over keys for the scores, over channels for
 * the output */
__global__ void attention_forward_fast(float *out, float *att, const float *qkv, att_args a)
{
    const int hd = a.D / a.H, D3 = 3 * a.D;
    const float scale = 1.0f / sqrtf((float)hd);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (long bh = blockIdx.y; bh < (long)a.B * a.H; bh += gridDim.y) {
        int b = (int)(bh / a.H), h = (int)(bh % a.H);
        int n = a.len[b], nk = a.nkey ? a.nkey[b] : n;
        for (int i = blockIdx.x * nw + warp; i < n; i += gridDim.x * nw) {
            float *Y = out + (size_t)(a.start[b] + i) * a.D + h * hd;
            if (nk == 0) {
                for (int d = lane; d < hd; d += 32) Y[d] = 0.0f;
                continue;
            }
            const float *Q = qkv + (size_t)(a.start[b] + i) * D3 + h * hd;
            const float *K0 = qkv + (size_t)a.start[b] * D3 + a.D + h * hd;
            const float *V0 = K0 + a.D;
            float *P = att + a.att_off[b] + ((size_t)h * n + i) * nk;
            float mx = -INFINITY;
            for (int j = lane; j < nk; j += 32) {
                const float *K = K0 + (size_t)j * D3;
                float sc = 0.0f;
                for (int d = 0; d < hd; d++) sc += Q[d] * K[d];
                P[j] = scale * sc;
                mx = fmaxf(mx, P[j]);
            }
            mx = warp_max(mx);
            float sum = 0.0f;
            for (int j = lane; j < nk; j += 32) {
                float e = agn_expf(P[j] - mx);
                P[j] = e;
                sum += e;
            }
            float inv = 1.0f / warp_sum(sum);
            for (int j = lane; j < nk; j += 32) P[j] *= inv;
            __syncwarp();
            for (int d = lane; d < hd; d += 32) {
                float acc = 0.0f;
                for (int j = 0; j < nk; j++) acc += P[j] * V0[(size_t)j * D3 + d];
                Y[d] = acc;
            }
            __syncwarp();
        }
    }
}


/* fused: a block per (example, head) and a share of its query rows, with
 * that example-head's keys and values staged in shared memory (rows padded
 * to hd + 1 floats: lanes reading one channel of consecutive rows hit
 * different banks), each warp's scores and query (or output gradient) row
 * in shared memory too; the probabilities still go to att, which the
 * backward pass reads.  Used when MAXK (a bound on every len[b]) fits. */
/* the shared memory a block may have (opt-in maximum), once */
static size_t smem_limit(void)
{
    static int limit = -1;
    if (limit < 0) {
        int dev = 0, v = 48 * 1024;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&v, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess) {
            cudaGetLastError();
            v = 48 * 1024;
        }
        limit = v;
    }
    return (size_t)limit;
}

__device__ __forceinline__ void stage_kv(float *Ks, float *Vs, const float *K0, const float *V0,
                                         int nk, int hd, int D3)
{
    const int hp = hd + 1;
    for (int idx = threadIdx.x; idx < nk * hd; idx += blockDim.x) {
        int j = idx / hd, d = idx % hd;
        Ks[j * hp + d] = K0[(size_t)j * D3 + d];
        Vs[j * hp + d] = V0[(size_t)j * D3 + d];
    }
}

__global__ void attention_forward_fused(float *out, float *att, const float *qkv, att_args a, int maxk)
{
    extern __shared__ float sm[];
    const int hd = a.D / a.H, D3 = 3 * a.D, hp = hd + 1;
    const float scale = 1.0f / sqrtf((float)hd);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float *Ks = sm, *Vs = Ks + (size_t)maxk * hp, *Ps = Vs + (size_t)maxk * hp + (size_t)warp * maxk;
    float *Qs = sm + (size_t)2 * maxk * hp + (size_t)nw * maxk + (size_t)warp * hd;
    for (long bh = blockIdx.y; bh < (long)a.B * a.H; bh += gridDim.y) {
        int b = (int)(bh / a.H), h = (int)(bh % a.H);
        int n = a.len[b], nk = a.nkey ? a.nkey[b] : n;
        if ((int)blockIdx.x * nw >= n) continue; /* no row of this example for this block */
        const float *K0 = qkv + (size_t)a.start[b] * D3 + a.D + h * hd, *V0 = K0 + a.D;
        __syncthreads(); /* the last example-head is done with the staged rows */
        stage_kv(Ks, Vs, K0, V0, nk, hd, D3);
        __syncthreads();
        for (int i = blockIdx.x * nw + warp; i < n; i += gridDim.x * nw) {
            float *Y = out + (size_t)(a.start[b] + i) * a.D + h * hd;
            if (nk == 0) {
                for (int d = lane; d < hd; d += 32) Y[d] = 0.0f;
                continue;
            }
            const float *Q = qkv + (size_t)(a.start[b] + i) * D3 + h * hd;
            float *P = att + a.att_off[b] + ((size_t)h * n + i) * nk;
            for (int d = lane; d < hd; d += 32) Qs[d] = Q[d];
            __syncwarp();
            float mx = -INFINITY;
            for (int j = lane; j < nk; j += 32) {
                float sc = 0.0f;
                for (int d = 0; d < hd; d++) sc += Qs[d] * Ks[j * hp + d];
                sc = scale * sc;
                Ps[j] = sc;
                mx = fmaxf(mx, sc);
            }
            mx = warp_max(mx);
            float sum = 0.0f;
            for (int j = lane; j < nk; j += 32) {
                float e = agn_expf(Ps[j] - mx);
                Ps[j] = e;
                sum += e;
            }
            float inv = 1.0f / warp_sum(sum);
            for (int j = lane; j < nk; j += 32) {
                float pj = Ps[j] * inv;
                Ps[j] = pj;
                P[j] = pj;
            }
            __syncwarp();
            for (int d = lane; d < hd; d += 32) {
                float acc = 0.0f;
                for (int j = 0; j < nk; j++) acc += Ps[j] * Vs[j * hp + d];
                Y[d] = acc;
            }
            __syncwarp();
        }
    }
}

__global__ void attention_backward_q_fused(float *dqkv, float *datt, const float *dout,
                                           const float *qkv, const float *att, att_args a, int maxk)
{
    extern __shared__ float sm[];
    const int hd = a.D / a.H, D3 = 3 * a.D, hp = hd + 1;
    const float scale = 1.0f / sqrtf((float)hd);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float *Ks = sm, *Vs = Ks + (size_t)maxk * hp, *Ss = Vs + (size_t)maxk * hp + (size_t)warp * maxk;
    float *Ys = sm + (size_t)2 * maxk * hp + (size_t)nw * maxk + (size_t)warp * hd;
    for (long bh = blockIdx.y; bh < (long)a.B * a.H; bh += gridDim.y) {
        int b = (int)(bh / a.H), h = (int)(bh % a.H);
        int n = a.len[b], nk = a.nkey ? a.nkey[b] : n;
        if ((int)blockIdx.x * nw >= n) continue; /* no row of this example for this block */
        const float *K0 = qkv + (size_t)a.start[b] * D3 + a.D + h * hd, *V0 = K0 + a.D;
        __syncthreads();
        stage_kv(Ks, Vs, K0, V0, nk, hd, D3);
        __syncthreads();
        for (int i = blockIdx.x * nw + warp; i < n; i += gridDim.x * nw) {
            float *dQ = dqkv + (size_t)(a.start[b] + i) * D3 + h * hd;
            if (nk == 0) {
                for (int d = lane; d < hd; d += 32) dQ[d] = 0.0f;
                continue;
            }
            const float *dY = dout + (size_t)(a.start[b] + i) * a.D + h * hd;
            const float *P = att + a.att_off[b] + ((size_t)h * n + i) * nk;
            float *dS = datt + a.att_off[b] + ((size_t)h * n + i) * nk;
            for (int d = lane; d < hd; d += 32) Ys[d] = dY[d];
            __syncwarp();
            float rowdot = 0.0f;
            for (int j = lane; j < nk; j += 32) {
                float dp = 0.0f;
                for (int d = 0; d < hd; d++) dp += Ys[d] * Vs[j * hp + d];
                Ss[j] = dp;
                rowdot += P[j] * dp;
            }
            rowdot = warp_sum(rowdot);
            for (int j = lane; j < nk; j += 32) {
                float v = P[j] * (Ss[j] - rowdot) * scale;
                Ss[j] = v;
                dS[j] = v;
            }
            __syncwarp();
            for (int d = lane; d < hd; d += 32) {
                float acc = 0.0f;
                for (int j = 0; j < nk; j++) acc += Ss[j] * Ks[j * hp + d];
                dQ[d] = acc;
            }
            __syncwarp();
        }
    }
}

/* part 2, fused: the example-head's queries and output gradients staged in
 * shared memory, a warp per key row j, lanes over channels; P and dS read
 * from global memory (one value per row i, broadcast to the lanes) */
__global__ void attention_backward_kv_fused(float *dqkv, const float *datt, const float *dout,
                                            const float *qkv, const float *att, att_args a, int maxk)
{
    extern __shared__ float sm[];
    const int hd = a.D / a.H, D3 = 3 * a.D, hp = hd + 1;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    float *Qs = sm, *Ys = sm + (size_t)maxk * hp;
    for (long bh = blockIdx.y; bh < (long)a.B * a.H; bh += gridDim.y) {
        int b = (int)(bh / a.H), h = (int)(bh % a.H);
        int n = a.len[b], nk = a.nkey ? a.nkey[b] : n;
        if ((int)blockIdx.x * nw >= n) continue; /* no row of this example for this block */
        const float *Q0 = qkv + (size_t)a.start[b] * D3 + h * hd;
        const float *dY0 = dout + (size_t)a.start[b] * a.D + h * hd;
        __syncthreads(); /* the last example-head is done with the staged rows */
        if (nk > 0)
            for (int idx = threadIdx.x; idx < n * hd; idx += blockDim.x) {
                int i = idx / hd, d = idx % hd;
                Qs[i * hp + d] = Q0[(size_t)i * D3 + d];
                Ys[i * hp + d] = dY0[(size_t)i * a.D + d];
            }
        __syncthreads();
        const float *P = att + a.att_off[b] + (size_t)h * n * nk;
        const float *dS = datt + a.att_off[b] + (size_t)h * n * nk;
        for (int j = blockIdx.x * nw + warp; j < n; j += gridDim.x * nw) {
            float *dK = dqkv + (size_t)(a.start[b] + j) * D3 + a.D + h * hd;
            float *dV = dK + a.D;
            for (int d = lane; d < hd; d += 32) {
                float av = 0.0f, ak = 0.0f;
                if (j < nk)
                    for (int i = 0; i < n; i++) {
                        av += P[(size_t)i * nk + j] * Ys[i * hp + d];
                        ak += dS[(size_t)i * nk + j] * Qs[i * hp + d];
                    }
                dV[d] = av;
                dK[d] = ak;
            }
        }
    }
}

/* whether the fused kernels take this shape; sets their shared memory */
static int fused_ok(int maxk, int D, int H, size_t *bytes)
{
    if (g_unfused || !agn_cuda_attention_fused_fits(maxk, D / H, WARPS_PER_BLOCK, smem_limit())) return 0;
    *bytes = agn_cuda_attention_smem(maxk, D / H, WARPS_PER_BLOCK);
    static size_t set_fwd = 0, set_bwd = 0, set_kv = 0;
    if (*bytes > 48 * 1024 && *bytes > set_kv) {
        if (cudaFuncSetAttribute(attention_backward_kv_fused, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)*bytes) != cudaSuccess) {
            cudaGetLastError();
            return 0;
        }
        set_kv = *bytes;
    }
    if (*bytes > 48 * 1024 && *bytes > set_fwd) {
        if (cudaFuncSetAttribute(attention_forward_fused, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)*bytes) != cudaSuccess) {
            cudaGetLastError();
            return 0;
        }
        set_fwd = *bytes;
    }
    if (*bytes > 48 * 1024 && *bytes > set_bwd) {
        if (cudaFuncSetAttribute(attention_backward_q_fused, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)*bytes) != cudaSuccess) {
            cudaGetLastError();
            return 0;
        }
        set_bwd = *bytes;
    }
    return 1;
}

/* query rows per block of the fused kernels: 8 per warp (cuda_plan.c) */
static unsigned fused_grid_x(int maxk) { return agn_cuda_attention_row_blocks(maxk, WARPS_PER_BLOCK); }

extern "C" int agn_attention_forward_cuda(float *out, float *att, const float *qkv,
                                          const int *start, const int *len, const int *nkey,
                                          const size_t *att_off, int B, int D, int H,
                                          int max_len, cudaStream_t s)
{
    if (B <= 0) return 0;
    att_args a = {start, len, nkey, att_off, B, D, H};
    size_t smem;
    if (!agn_cuda_reference() && fused_ok(max_len, D, H, &smem)) {
        dim3 grid(fused_grid_x(max_len), grid_y((long)B * H));
        attention_forward_fused<<<grid, 32 * WARPS_PER_BLOCK, smem, s>>>(out, att, qkv, a, max_len);
    } else if (agn_cuda_reference()) {
        dim3 grid(4, grid_y((long)B * H));
        attention_forward_ref<<<grid, 64, 0, s>>>(out, att, qkv, a);
    } else {
        dim3 grid(16, grid_y((long)B * H));
        attention_forward_fast<<<grid, 32 * WARPS_PER_BLOCK, 0, s>>>(out, att, qkv, a);
    }
    LAUNCHED();
    return 0;
}

/* backward, part 1, per query row i: dP = dY V^T, dS = P (dP - P.dP) scale
 * (into datt), dQ = dS K */
__global__ void attention_backward_q_ref(float *dqkv, float *datt, const float *dout,
                                         const float *qkv, const float *att, att_args a)
{
    const int hd = a.D / a.H, D3 = 3 * a.D;
    const float scale = 1.0f / sqrtf((float)hd);
    for (long bh = blockIdx.y; bh < (long)a.B * a.H; bh += gridDim.y) {
        int b = (int)(bh / a.H), h = (int)(bh % a.H);
        int n = a.len[b], nk = a.nkey ? a.nkey[b] : n;
        for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
            float *dQ = dqkv + (size_t)(a.start[b] + i) * D3 + h * hd;
            if (nk == 0) {
                for (int d = 0; d < hd; d++) dQ[d] = 0.0f;
                continue;
            }
            const float *dY = dout + (size_t)(a.start[b] + i) * a.D + h * hd;
            const float *K0 = qkv + (size_t)a.start[b] * D3 + a.D + h * hd;
            const float *V0 = K0 + a.D;
            const float *P = att + a.att_off[b] + ((size_t)h * n + i) * nk;
            float *dS = datt + a.att_off[b] + ((size_t)h * n + i) * nk;
            float rowdot = 0.0f;
            for (int j = 0; j < nk; j++) {
                const float *V = V0 + (size_t)j * D3;
                float dp = 0.0f;
                for (int d = 0; d < hd; d++) dp += dY[d] * V[d];
                dS[j] = dp;
                rowdot += P[j] * dp;
            }
            for (int j = 0; j < nk; j++) dS[j] = P[j] * (dS[j] - rowdot) * scale;
            for (int d = 0; d < hd; d++) {
                float acc = 0.0f;
                for (int j = 0; j < nk; j++) acc += dS[j] * K0[(size_t)j * D3 + d];
                dQ[d] = acc;
            }
        }
    }
}

__global__ void attention_backward_q_fast(float *dqkv, float *datt, const float *dout,
                                          const float *qkv, const float *att, att_args a)
{
    const int hd = a.D / a.H, D3 = 3 * a.D;
    const float scale = 1.0f / sqrtf((float)hd);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (long bh = blockIdx.y; bh < (long)a.B * a.H; bh += gridDim.y) {
        int b = (int)(bh / a.H), h = (int)(bh % a.H);
        int n = a.len[b], nk = a.nkey ? a.nkey[b] : n;
        for (int i = blockIdx.x * nw + warp; i < n; i += gridDim.x * nw) {
            float *dQ = dqkv + (size_t)(a.start[b] + i) * D3 + h * hd;
            if (nk == 0) {
                for (int d = lane; d < hd; d += 32) dQ[d] = 0.0f;
                continue;
            }
            const float *dY = dout + (size_t)(a.start[b] + i) * a.D + h * hd;
            const float *K0 = qkv + (size_t)a.start[b] * D3 + a.D + h * hd;
            const float *V0 = K0 + a.D;
            const float *P = att + a.att_off[b] + ((size_t)h * n + i) * nk;
            float *dS = datt + a.att_off[b] + ((size_t)h * n + i) * nk;
            float rowdot = 0.0f;
            for (int j = lane; j < nk; j += 32) {
                const float *V = V0 + (size_t)j * D3;
                float dp = 0.0f;
                for (int d = 0; d < hd; d++) dp += dY[d] * V[d];
                dS[j] = dp;
                rowdot += P[j] * dp;
            }
            rowdot = warp_sum(rowdot);
            for (int j = lane; j < nk; j += 32) dS[j] = P[j] * (dS[j] - rowdot) * scale;
            __syncwarp();
            for (int d = lane; d < hd; d += 32) {
                float acc = 0.0f;
                for (int j = 0; j < nk; j++) acc += dS[j] * K0[(size_t)j * D3 + d];
                dQ[d] = acc;
            }
            __syncwarp();
        }
    }
}

/* part 2, per key row j: dV = P^T dY, dK = dS^T Q; rows past the keys 0 */
__global__ void attention_backward_kv_ref(float *dqkv, const float *datt, const float *dout,
                                          const float *qkv, const float *att, att_args a)
{
    const int hd = a.D / a.H, D3 = 3 * a.D;
    for (long bh = blockIdx.y; bh < (long)a.B * a.H; bh += gridDim.y) {
        int b = (int)(bh / a.H), h = (int)(bh % a.H);
        int n = a.len[b], nk = a.nkey ? a.nkey[b] : n;
        for (int j = blockIdx.x * blockDim.x + threadIdx.x; j < n; j += gridDim.x * blockDim.x) {
            float *dK = dqkv + (size_t)(a.start[b] + j) * D3 + a.D + h * hd;
            float *dV = dK + a.D;
            const float *Q0 = qkv + (size_t)a.start[b] * D3 + h * hd;
            const float *dY0 = dout + (size_t)a.start[b] * a.D + h * hd;
            const float *P = att + a.att_off[b] + (size_t)h * n * nk;
            const float *dS = datt + a.att_off[b] + (size_t)h * n * nk;
            for (int d = 0; d < hd; d++) {
                float av = 0.0f, ak = 0.0f;
                if (j < nk)
                    for (int i = 0; i < n; i++) {
                        av += P[(size_t)i * nk + j] * dY0[(size_t)i * a.D + d];
                        ak += dS[(size_t)i * nk + j] * Q0[(size_t)i * D3 + d];
                    }
                dV[d] = av;
                dK[d] = ak;
            }
        }
    }
}

__global__ void attention_backward_kv_fast(float *dqkv, const float *datt, const float *dout,
                                           const float *qkv, const float *att, att_args a)
{
    const int hd = a.D / a.H, D3 = 3 * a.D;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    for (long bh = blockIdx.y; bh < (long)a.B * a.H; bh += gridDim.y) {
        int b = (int)(bh / a.H), h = (int)(bh % a.H);
        int n = a.len[b], nk = a.nkey ? a.nkey[b] : n;
        for (int j = blockIdx.x * nw + warp; j < n; j += gridDim.x * nw) {
            float *dK = dqkv + (size_t)(a.start[b] + j) * D3 + a.D + h * hd;
            float *dV = dK + a.D;
            const float *Q0 = qkv + (size_t)a.start[b] * D3 + h * hd;
            const float *dY0 = dout + (size_t)a.start[b] * a.D + h * hd;
            const float *P = att + a.att_off[b] + (size_t)h * n * nk;
            const float *dS = datt + a.att_off[b] + (size_t)h * n * nk;
            for (int d = lane; d < hd; d += 32) {
                float av = 0.0f, ak = 0.0f;
                if (j < nk)
                    for (int i = 0; i < n; i++) {
                        av += P[(size_t)i * nk + j] * dY0[(size_t)i * a.D + d];
                        ak += dS[(size_t)i * nk + j] * Q0[(size_t)i * D3 + d];
                    }
                dV[d] = av;
                dK[d] = ak;
            }
        }
    }
}

extern "C" int agn_attention_backward_to_cuda(float *dqkv, float *datt, const float *dout,
                                              const float *qkv, const float *att,
                                              const int *start, const int *len, const int *nkey,
                                              const size_t *att_off, int B, int D, int H,
                                              int max_len, cudaStream_t s)
{
    if (B <= 0) return 0;
    att_args a = {start, len, nkey, att_off, B, D, H};
    size_t smem;
    if (!agn_cuda_reference() && fused_ok(max_len, D, H, &smem)) {
        dim3 grid(fused_grid_x(max_len), grid_y((long)B * H));
        attention_backward_q_fused<<<grid, 32 * WARPS_PER_BLOCK, smem, s>>>(dqkv, datt, dout, qkv, att, a, max_len);
        LAUNCHED();
        /* the queries and output gradients staged take no more than the
         * keys, values and rows of the first kernel */
        attention_backward_kv_fused<<<grid, 32 * WARPS_PER_BLOCK, smem, s>>>(dqkv, datt, dout, qkv, att, a, max_len);
    } else if (agn_cuda_reference()) {
        dim3 grid(4, grid_y((long)B * H));
        attention_backward_q_ref<<<grid, 64, 0, s>>>(dqkv, datt, dout, qkv, att, a);
        LAUNCHED();
        attention_backward_kv_ref<<<grid, 64, 0, s>>>(dqkv, datt, dout, qkv, att, a);
    } else {
        dim3 grid(16, grid_y((long)B * H));
        attention_backward_q_fast<<<grid, 32 * WARPS_PER_BLOCK, 0, s>>>(dqkv, datt, dout, qkv, att, a);
        LAUNCHED();
        attention_backward_kv_fast<<<grid, 32 * WARPS_PER_BLOCK, 0, s>>>(dqkv, datt, dout, qkv, att, a);
    }
    LAUNCHED();
    return 0;
}

/* ---- GELU ---------------------------------------------------------------------------------- */

/* agn_gelu_tanh, agn_gelu_value and agn_gelu_grad: layers_row.h, as the CPU has them */

__global__ void gelu_forward_kernel(float *out, const float *inp, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        out[i] = agn_gelu_value(x, agn_gelu_tanh(x));
    }
}

__global__ void gelu_backward_kernel(float *dinp, const float *dout, const float *inp, size_t n)
{
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float x = inp[i];
        dinp[i] = agn_gelu_grad(x, agn_gelu_tanh(x)) * dout[i];
    }
}

extern "C" int agn_gelu_forward_cuda(float *out, const float *inp, size_t n, cudaStream_t s)
{
    if (n == 0) return 0;
    gelu_forward_kernel<<<grid_for(n, THREADS), THREADS, 0, s>>>(out, inp, n);
    LAUNCHED();
    return 0;
}

extern "C" int agn_gelu_backward_to_cuda(float *dinp, const float *dout, const float *inp,
                                         size_t n, cudaStream_t s)
{
    if (n == 0) return 0;
    gelu_backward_kernel<<<grid_for(n, THREADS), THREADS, 0, s>>>(dinp, dout, inp, n);
    LAUNCHED();
    return 0;
}

/* ---- residual and dropout ------------------------------------------------------------------
 * HAS: whether there is dropout (the struct is passed by value either way) */

__global__ void residual_forward_kernel(float *out, const float *inp, const float *y,
                                        agn_dropout_cuda dr, int has, float scale, int N, int D)
{
    size_t n = (size_t)N * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        if (has) {
            float mk = dropout_keep(dr, (int)(i / D), (int)(i % D)) ? 1.0f : 0.0f;
            out[i] = inp[i] + mk * scale * y[i];
        } else {
            out[i] = inp[i] + y[i];
        }
    }
}

__global__ void dropout_forward_kernel(float *x, agn_dropout_cuda dr, float scale, int N, int D)
{
    size_t n = (size_t)N * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = dropout_keep(dr, (int)(i / D), (int)(i % D)) ? x[i] * scale : 0.0f;
}

__global__ void dropout_backward_kernel(float *dinp, const float *dout, agn_dropout_cuda dr,
                                        float scale, int N, int D)
{
    size_t n = (size_t)N * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        dinp[i] = dropout_keep(dr, (int)(i / D), (int)(i % D)) ? dout[i] * scale : 0.0f;
}

__global__ void dropout_mask_kernel(uint8_t *mask, agn_dropout_cuda dr, int N, int D)
{
    size_t n = (size_t)N * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        mask[i] = (uint8_t)dropout_keep(dr, (int)(i / D), (int)(i % D));
}

extern "C" int agn_residual_forward_cuda(float *out, const float *inp, const float *y,
                                         const agn_dropout_cuda *drop, float scale, int N, int D,
                                         cudaStream_t s)
{
    if (N <= 0) return 0;
    agn_dropout_cuda none;
    memset(&none, 0, sizeof none);
    residual_forward_kernel<<<grid_for((size_t)N * D, THREADS), THREADS, 0, s>>>(
        out, inp, y, drop ? *drop : none, drop != NULL, scale, N, D);
    LAUNCHED();
    return 0;
}

extern "C" int agn_dropout_forward_cuda(float *x, const agn_dropout_cuda *drop, float scale,
                                        int N, int D, cudaStream_t s)
{
    if (N <= 0 || !drop) return 0;
    dropout_forward_kernel<<<grid_for((size_t)N * D, THREADS), THREADS, 0, s>>>(x, *drop, scale, N, D);
    LAUNCHED();
    return 0;
}

extern "C" int agn_dropout_backward_to_cuda(float *dinp, const float *dout,
                                            const agn_dropout_cuda *drop, float scale, int N,
                                            int D, cudaStream_t s)
{
    if (N <= 0) return 0;
    if (!drop) {
        AGN_CUDA_CHECK(cudaMemcpyAsync(dinp, dout, (size_t)N * D * sizeof(float),
                                       cudaMemcpyDeviceToDevice, s));
        return 0;
    }
    dropout_backward_kernel<<<grid_for((size_t)N * D, THREADS), THREADS, 0, s>>>(dinp, dout, *drop,
                                                                                scale, N, D);
    LAUNCHED();
    return 0;
}

extern "C" int agn_dropout_mask_cuda(uint8_t *mask, const agn_dropout_cuda *drop, int N, int D,
                                     cudaStream_t s)
{
    if (N <= 0 || !drop) return 0;
    dropout_mask_kernel<<<grid_for((size_t)N * D, THREADS), THREADS, 0, s>>>(mask, *drop, N, D);
    LAUNCHED();
    return 0;
}

/* ---- pooling: a thread per (example, channel), rows in order ------------------------------------ */

__global__ void meanpool_forward_kernel(float *out, const float *inp, const int *start,
                                        const int *len, int B, int D)
{
    size_t n = (size_t)B * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int b = (int)(i / D), d = (int)(i % D);
        float s = 0.0f;
        for (int k = 0; k < len[b]; k++) s += inp[(size_t)(start[b] + k) * D + d];
        if (len[b] > 0) s *= 1.0f / (float)len[b];
        out[i] = s;
    }
}

__global__ void meanpool_backward_kernel(float *dinp, const float *dout, const int *start,
                                         const int *len, int B, int D)
{
    size_t n = (size_t)B * D;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int b = (int)(i / D), d = (int)(i % D);
        if (len[b] == 0) continue;
        float g = (1.0f / (float)len[b]) * dout[i];
        for (int k = 0; k < len[b]; k++) dinp[(size_t)(start[b] + k) * D + d] += g;
    }
}

extern "C" int agn_meanpool_forward_cuda(float *out, const float *inp, const int *start,
                                         const int *len, int B, int D, cudaStream_t s)
{
    if (B <= 0) return 0;
    meanpool_forward_kernel<<<grid_for((size_t)B * D, THREADS), THREADS, 0, s>>>(out, inp, start, len, B, D);
    LAUNCHED();
    return 0;
}

extern "C" int agn_meanpool_backward_cuda(float *dinp, const float *dout, const int *start,
                                          const int *len, int B, int D, cudaStream_t s)
{
    if (B <= 0) return 0;
    meanpool_backward_kernel<<<grid_for((size_t)B * D, THREADS), THREADS, 0, s>>>(dinp, dout, start, len, B, D);
    LAUNCHED();
    return 0;
}

/* ---- cross-entropy: a thread per example, then one thread sums in order --------------------- */

__global__ void crossentropy_forward_kernel(float *losses, float *probs, const float *logits,
                                            const int32_t *labels, float *loss_sum, int B, int C)
{
    for (int b = threadIdx.x; b < B; b += blockDim.x) {
        float loss = agn_softmax_xent_row(probs + (size_t)b * C, logits + (size_t)b * C, C,
                                          labels ? labels[b] : -1);
        if (labels) losses[b] = loss;
    }
    if (!labels) return;
    __syncthreads();
    if (threadIdx.x == 0) {
        double total = 0.0;
        for (int b = 0; b < B; b++) total += losses[b];
        *loss_sum = (float)total;
    }
}

__global__ void crossentropy_backward_kernel(float *dlogits, const float *probs,
                                             const int32_t *labels, float scale, int B, int C)
{
    size_t n = (size_t)B * C;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        int b = (int)(i / C), c = (int)(i % C);
        dlogits[i] += scale * (probs[i] - (c == labels[b] ? 1.0f : 0.0f));
    }
}

extern "C" int agn_crossentropy_forward_cuda(float *losses, float *probs, const float *logits,
                                             const int32_t *labels, float *loss_sum, int B, int C,
                                             cudaStream_t s)
{
    if (B <= 0) {
        if (labels && loss_sum) AGN_CUDA_CHECK(cudaMemsetAsync(loss_sum, 0, sizeof(float), s));
        return 0;
    }
    crossentropy_forward_kernel<<<1, THREADS, 0, s>>>(losses, probs, logits, labels, loss_sum, B, C);
    LAUNCHED();
    return 0;
}

extern "C" int agn_crossentropy_backward_cuda(float *dlogits, const float *probs,
                                              const int32_t *labels, float scale, int B, int C,
                                              cudaStream_t s)
{
    if (B <= 0) return 0;
    crossentropy_backward_kernel<<<grid_for((size_t)B * C, THREADS), THREADS, 0, s>>>(
        dlogits, probs, labels, scale, B, C);
    LAUNCHED();
    return 0;
}
