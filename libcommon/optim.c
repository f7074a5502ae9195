/* optim.c: the optimizer of DESIGN.md (Training semantics): AdamW with
 * decoupled weight decay on the tensors whose table entry says decay
 * (matrices and embeddings, not biases or LayerNorm), global-norm gradient
 * clipping, and the learning-rate schedule.  The arithmetic follows
 * torch.optim.AdamW (PyTorch 1.13, single-tensor path) and
 * torch.nn.utils.clip_grad_norm_ step for step, so tests/torch/crosscheck.py
 * can compare weights after several steps. */
#include "config.h"
#include "model.h"

/* sqrtf without errno and comparisons without traps, so that the update
 * loop vectorizes; no value changes (the arguments are never negative). */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-math-errno", "no-trapping-math")
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

double agn_adamw_step(agn_model *m, float *adam_m, float *adam_v, const agn_optim_config *oc,
                      long step, float lr)
{
    double norm = agn_grad_norm(m->grads, m->n_params);
    /* clip_grad_norm_: g *= min(1, max_norm / (norm + 1e-6)); the gradient
     * buffer itself is left as it is */
    float coef = 1.0f;
    if (oc->grad_clip > 0.0f && isfinite(norm)) {
        double c = (double)oc->grad_clip / (norm + 1e-6);
        if (c < 1.0) coef = (float)c;
    }
    double t = (double)step + 1.0;
    double bc1 = 1.0 - pow((double)oc->beta1, t), bc2 = 1.0 - pow((double)oc->beta2, t);
    const float step_size = (float)((double)lr / bc1);
    const float bc2_sqrt = (float)sqrt(bc2);
    const float b1 = oc->beta1, b2 = oc->beta2, eps = oc->eps;
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const agn_tensor *tn = &m->tensors[ti];
        float *p = m->params + tn->offset, *mm = adam_m + tn->offset, *vv = adam_v + tn->offset;
        const float *g = m->grads + tn->offset;
        const float decay = tn->decay ? 1.0f - lr * oc->weight_decay : 1.0f;
        long n = (long)tn->numel;
#pragma omp parallel for simd schedule(static)
        for (long i = 0; i < n; i++) {
            float gi = g[i] * coef;
            float mi = b1 * mm[i] + (1.0f - b1) * gi;
            float vi = b2 * vv[i] + (1.0f - b2) * gi * gi;
            mm[i] = mi;
            vv[i] = vi;
            p[i] = p[i] * decay - step_size * mi / (sqrtf(vi) / bc2_sqrt + eps);
        }
    }
    return norm;
}
