/* layers_row.h: per-row math that the CPU and CUDA backends share, as
 * inline functions compiled for the host and, under nvcc, for the device
 * (as rng.h is), so the two backends run the same operations in the same
 * order. */
#ifndef AGN_LAYERS_ROW_H
#define AGN_LAYERS_ROW_H

#include <math.h>
#include <stdint.h>

#include "rng.h" /* AGN_HD */

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
