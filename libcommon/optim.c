/* optim.c: the optimizer of DESIGN.md (Training semantics): AdamW with
 * decoupled weight decay on the tensors whose table entry says decay
 * (matrices and embeddings, not biases or LayerNorm), global-norm gradient
 * clipping, and the learning-rate schedule.  The arithmetic follows
 * torch.optim.AdamW (PyTorch 1.13, single-tensor path) and
 * torch.nn.utils.clip_grad_norm_ step for step, so tests/torch/crosscheck.py
 * can compare weights after several steps. */
#include "config.h"

/* The x86 AdamW kernels below promise the scalar loop's values, which needs
 * the same operations: no multiply and add fused into one FMA.  GCC fuses
 * them across intrinsics too, wherever the target has FMA, and
 * target("avx512f") brings FMA with it: the AVX-512 kernel was fused, and
 * gave other weights than the scalar and AVX2 paths on processors with
 * AVX-512 (tests/simd-same-ops.sh checks the object code on any x86-64).
 * Clang fuses only within one expression, never across intrinsics. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "model.h"
#include "simd.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#define AGN_X86_KERNELS 1
#endif

#include <math.h>

/* ---- schedule --------------------------------------------------------------- */

/* The learning rate of step STEP (0-based; the step that runs with it is
 * step + 1 in Adam's bias correction), with W = warmup_steps, S =
 * total_steps and LR = the peak:
 *   step < W:          LR * (step + 1) / W        (linear warmup; the first
 *                                                  step already moves, the
 *                                                  W-th runs at LR)
 *   W <= step < S:     LR * (S - step) / (S - W)  (linear decay; LR at step W,
 *                                                  LR / (S - W) at the last
 *                                                  step, 0 at S)
 *   step >= S:         0
 * S <= 0 means no decay (LR after the warmup); S <= W means warmup only,
 * with 0 from S on.  Always in [0, LR]. */
float agn_lr_at(const agn_optim_config *oc, long step)
{
    if (step < 0) step = 0;
    long W = oc->warmup_steps > 0 ? oc->warmup_steps : 0, S = oc->total_steps;
    if (S > 0 && step >= S) return 0.0f;
    if (step < W) return (float)((double)oc->lr * (double)(step + 1) / (double)W);
    if (S <= 0 || S <= W) return oc->lr;
    return (float)((double)oc->lr * (double)(S - step) / (double)(S - W));
}

/* ---- clipping ---------------------------------------------------------------- */

/* The sum of squares is taken over fixed chunks in parallel and the chunk
 * sums added in order, so the norm does not depend on the thread count. */
double agn_grad_norm(const float *grads, size_t n)
{
    enum { MAXCHUNKS = 1024 };
    double part[MAXCHUNKS];
    size_t chunk = (n + MAXCHUNKS - 1) / MAXCHUNKS;
    if (chunk < 16384) chunk = 16384;
    long nchunks = (long)((n + chunk - 1) / chunk);
#pragma omp parallel for schedule(static)
    for (long c = 0; c < nchunks; c++) {
        size_t i0 = (size_t)c * chunk, i1 = i0 + chunk < n ? i0 + chunk : n;
        double s = 0.0;
#pragma omp simd reduction(+ : s)
        for (size_t i = i0; i < i1; i++) s += (double)grads[i] * grads[i];
        part[c] = s;
    }
    double s = 0.0;
    for (long c = 0; c < nchunks; c++) s += part[c];
    return sqrt(s);
}

/* ---- AdamW ---------------------------------------------------------------------- */

/* The update of n entries (torch.optim.AdamW, 1.13, single-tensor path):
 *   g = grad * coef;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *   p = p * decay - step_size * m / (sqrt(v) / sqrt(bc2) + eps).
 * The compiler cannot vectorize sqrtf (errno), so the x86 versions below are
 * written with intrinsics: the same operations in the same order (no FMA),
 * hence the same values as the scalar loop. */
typedef struct {
    float coef, b1, b2, omb1, omb2, decay, step_size, bc2_sqrt, eps;
} adam_args;

static void adamw_scalar(float *p, float *mm, float *vv, const float *g, size_t i0, size_t n,
                         const adam_args *a)
{
    for (size_t i = i0; i < n; i++) {
        float gi = g[i] * a->coef;
        float mi = a->b1 * mm[i] + a->omb1 * gi;
        float vi = a->b2 * vv[i] + a->omb2 * gi * gi;
        mm[i] = mi;
        vv[i] = vi;
        p[i] = p[i] * a->decay - a->step_size * mi / (sqrtf(vi) / a->bc2_sqrt + a->eps);
    }
}

#ifdef AGN_X86_KERNELS
__attribute__((target("avx512f"))) static void adamw_avx512(float *p, float *mm, float *vv,
                                                            const float *g, size_t n,
                                                            const adam_args *a)
{
    const __m512 coef = _mm512_set1_ps(a->coef), b1 = _mm512_set1_ps(a->b1),
                 b2 = _mm512_set1_ps(a->b2), omb1 = _mm512_set1_ps(a->omb1),
                 omb2 = _mm512_set1_ps(a->omb2), decay = _mm512_set1_ps(a->decay),
                 ss = _mm512_set1_ps(a->step_size), bc = _mm512_set1_ps(a->bc2_sqrt),
                 eps = _mm512_set1_ps(a->eps);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        __m512 gi = _mm512_mul_ps(_mm512_loadu_ps(g + i), coef);
        __m512 mi = _mm512_add_ps(_mm512_mul_ps(b1, _mm512_loadu_ps(mm + i)), _mm512_mul_ps(omb1, gi));
        __m512 vi = _mm512_add_ps(_mm512_mul_ps(b2, _mm512_loadu_ps(vv + i)),
                                  _mm512_mul_ps(_mm512_mul_ps(omb2, gi), gi));
        _mm512_storeu_ps(mm + i, mi);
        _mm512_storeu_ps(vv + i, vi);
        __m512 den = _mm512_add_ps(_mm512_div_ps(_mm512_sqrt_ps(vi), bc), eps);
        __m512 upd = _mm512_div_ps(_mm512_mul_ps(ss, mi), den);
        _mm512_storeu_ps(p + i, _mm512_sub_ps(_mm512_mul_ps(_mm512_loadu_ps(p + i), decay), upd));
    }
    adamw_scalar(p, mm, vv, g, i, n, a);
}

__attribute__((target("avx"))) static void adamw_avx(float *p, float *mm, float *vv,
                                                     const float *g, size_t n, const adam_args *a)
{
    const __m256 coef = _mm256_set1_ps(a->coef), b1 = _mm256_set1_ps(a->b1),
                 b2 = _mm256_set1_ps(a->b2), omb1 = _mm256_set1_ps(a->omb1),
                 omb2 = _mm256_set1_ps(a->omb2), decay = _mm256_set1_ps(a->decay),
                 ss = _mm256_set1_ps(a->step_size), bc = _mm256_set1_ps(a->bc2_sqrt),
                 eps = _mm256_set1_ps(a->eps);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 gi = _mm256_mul_ps(_mm256_loadu_ps(g + i), coef);
        __m256 mi = _mm256_add_ps(_mm256_mul_ps(b1, _mm256_loadu_ps(mm + i)), _mm256_mul_ps(omb1, gi));
        __m256 vi = _mm256_add_ps(_mm256_mul_ps(b2, _mm256_loadu_ps(vv + i)),
                                  _mm256_mul_ps(_mm256_mul_ps(omb2, gi), gi));
        _mm256_storeu_ps(mm + i, mi);
        _mm256_storeu_ps(vv + i, vi);
        __m256 den = _mm256_add_ps(_mm256_div_ps(_mm256_sqrt_ps(vi), bc), eps);
        __m256 upd = _mm256_div_ps(_mm256_mul_ps(ss, mi), den);
        _mm256_storeu_ps(p + i, _mm256_sub_ps(_mm256_mul_ps(_mm256_loadu_ps(p + i), decay), upd));
    }
    adamw_scalar(p, mm, vv, g, i, n, a);
}
#endif

/* The path of simd.h the update takes (agn_simd_vector_level): avx512,
 * avx2 (the AVX kernel) or scalar; each gives the same values. */
static agn_simd_level adamw_level(void)
{
#ifdef AGN_X86_KERNELS
    return agn_simd_vector_level();
#else
    return AGN_SIMD_SCALAR;
#endif
}

static void adamw_range(float *p, float *mm, float *vv, const float *g, size_t n,
                        const adam_args *a, agn_simd_level level)
{
#ifdef AGN_X86_KERNELS
    if (level == AGN_SIMD_AVX512) {
        adamw_avx512(p, mm, vv, g, n, a);
        return;
    }
    if (level == AGN_SIMD_AVX2) {
        adamw_avx(p, mm, vv, g, n, a);
        return;
    }
#else
    (void)level;
#endif
    adamw_scalar(p, mm, vv, g, 0, n, a);
}

float agn_clip_coef(const agn_optim_config *oc, double norm)
{
    /* clip_grad_norm_: g *= min(1, max_norm / (norm + 1e-6)) */
    if (oc->grad_clip > 0.0f && isfinite(norm)) {
        double c = (double)oc->grad_clip / (norm + 1e-6);
        if (c < 1.0) return (float)c;
    }
    return 1.0f;
}

void agn_adamw_pieces(float *params, float *adam_m, float *adam_v, const float *grads,
                      const agn_tensor *pieces, int n, const agn_adam_args *aa)
{
    double t = (double)aa->step + 1.0;
    double bc1 = 1.0 - pow((double)aa->beta1, t), bc2 = 1.0 - pow((double)aa->beta2, t);
    adam_args a = {.coef = aa->coef, .b1 = aa->beta1, .b2 = aa->beta2, .omb1 = 1.0f - aa->beta1,
                   .omb2 = 1.0f - aa->beta2, .step_size = (float)((double)aa->lr / bc1),
                   .bc2_sqrt = (float)sqrt(bc2), .eps = aa->eps};
    /* one parallel loop over fixed blocks of every piece */
    enum { BLOCK = 8192 };
    agn_simd_level level = adamw_level();
    size_t nblocks = 0;
    for (int ti = 0; ti < n; ti++) nblocks += (pieces[ti].numel + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static)
    for (size_t blk = 0; blk < nblocks; blk++) {
        /* find the piece of this block (a short walk: few pieces) */
        size_t b = blk;
        int ti = 0;
        for (;; ti++) {
            size_t nb = (pieces[ti].numel + BLOCK - 1) / BLOCK;
            if (b < nb) break;
            b -= nb;
        }
        const agn_tensor *tn = &pieces[ti];
        size_t i0 = b * BLOCK, k = tn->numel - i0 < BLOCK ? tn->numel - i0 : BLOCK;
        adam_args ta = a;
        ta.decay = tn->decay ? 1.0f - aa->lr * aa->weight_decay : 1.0f;
        size_t off = tn->offset + i0;
        adamw_range(params + off, adam_m + off, adam_v + off, grads + off, k, &ta, level);
    }
}

double agn_adamw_step(agn_model *m, float *adam_m, float *adam_v, const agn_optim_config *oc,
                      long step, float lr)
{
    double norm = agn_grad_norm(m->grads, m->n_params);
    agn_adam_args a = {.lr = lr, .beta1 = oc->beta1, .beta2 = oc->beta2, .eps = oc->eps,
                       .weight_decay = oc->weight_decay, .coef = agn_clip_coef(oc, norm),
                       .step = step};
    agn_adamw_pieces(m->params, adam_m, adam_v, m->grads, m->tensors, m->n_tensors, &a);
    return norm;
}
