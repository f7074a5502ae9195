/* layers_row.h: per-row math that the CPU and CUDA backends share, as
 * inline functions compiled for the host and, under nvcc, for the device
 * (as rng.h is), so the two backends run the same operations in the same
 * order. */
#ifndef AGN_LAYERS_ROW_H
#define AGN_LAYERS_ROW_H

#include <math.h>
#include <stdint.h>

#include "rng.h" /* AGN_HD */

/* exp(x) in a form the compiler vectorizes (Cephes' expf: x = k ln2 + r,
 * |r| <= ln2/2, a degree-6 polynomial for e^r, 2^k through the exponent
 * bits); within 1 ulp of exp (measured without FMA; FMA builds differ by
 * rounding), inputs clamped to [-87, 88].  The CUDA kernels use it too, so
 * the two backends' softmax and GELU see the same exponential. */
static inline AGN_HD float agn_expf(float x)
{
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    float kf = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round(x / ln2) */
    float r = x - kf * 0.693359375f;
    r = r - kf * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union {
        float f;
        int32_t i;
    } u;
    u.i = ((int32_t)kf + 127) << 23;
    return p * u.f;
}

/* GELU's tanh form: 0.5 x (1 + tanh(GELU_S (x + GELU_C x^3))). */
#define GELU_S 0.7978845608028654f /* sqrt(2 / pi) */
#define GELU_C 0.044715f

/* tanh through one exponential: 1 - 2 / (exp(2u) + 1), within 2e-7 of
 * tanh everywhere (measured 1.8e-7), saturating cleanly (exp clamps). */
static inline AGN_HD float agn_fast_tanh(float u) { return 1.0f - 2.0f / (agn_expf(2.0f * u) + 1.0f); }

/* GELU in three pieces, so that a kernel that needs both the value and the
 * derivative computes the tanh once: t = agn_gelu_tanh(x), then
 * gelu(x) = agn_gelu_value(x, t) and gelu'(x) = agn_gelu_grad(x, t). */
static inline AGN_HD float agn_gelu_tanh(float x) { return agn_fast_tanh(GELU_S * (x + GELU_C * x * x * x)); }
static inline AGN_HD float agn_gelu_value(float x, float t) { return 0.5f * x * (1.0f + t); }
static inline AGN_HD float agn_gelu_grad(float x, float t)
{
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * GELU_S * (1.0f + 3.0f * GELU_C * x * x);
}

/* Softmax of one row of C logits L into P; returns the cross-entropy of
 * class LABEL in log-sum-exp form (exact even when P[label] underflows),
 * or 0 when LABEL < 0. */
static inline AGN_HD float agn_softmax_xent_row(float *p, const float *l, int C, int32_t label)
{
    float mx = l[0];
    for (int c = 1; c < C; c++) mx = l[c] > mx ? l[c] : mx;
    float sum = 0.0f;
    for (int c = 0; c < C; c++) {
        p[c] = expf(l[c] - mx);
        sum += p[c];
    }
    for (int c = 0; c < C; c++) p[c] /= sum;
    return label >= 0 ? logf(sum) + mx - l[label] : 0.0f;
}

#endif
