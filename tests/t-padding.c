/* t-padding.c: padding invariance of the model.  The same examples padded
 * to their longest length and to max_len must give the same logits, loss
 * and gradients (relative difference below 1e-6, everything finite), with
 * dropout off and on; pad positions must get exactly zero gradient (the pad
 * token's embedding row, and position rows no example reaches); and two
 * runs of the same batch must agree bit for bit (determinism for a given
 * thread count). */
#include "config.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL: " __VA_ARGS__);                                                          \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

enum { B = 5, TMAX = 16 };
static const int lens[B] = {9, 3, 7, 1, 4}; /* longest 9 */

static double rel_diff(const float *a, const float *b, size_t n, int *finite)
{
    double maxd = 0, maxa = 0;
    *finite = 1;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) *finite = 0;
        double d = fabs((double)a[i] - b[i]);
        if (d > maxd) maxd = d;
        if (fabs(a[i]) > maxa) maxa = fabs(a[i]);
    }
    return maxa > 0 ? maxd / maxa : maxd;
}

/* Runs forward and backward with the batch padded to T; copies logits and
 * grads out and returns the loss. */
static float run(agn_model *m, int T, int train, float *logits, float *grads)
{
    int32_t ids[B * TMAX], labels[B] = {0, 3, 1, 2, 1};
    uint64_t exi[B] = {100, 101, 102, 103, 104};
    memset(ids, 0, sizeof ids);
    for (int r = 0; r < B; r++)
        for (int t = 0; t < lens[r]; t++) ids[r * T + t] = 2 + (int32_t)((r * 17 + t * 5) % 47);
    agn_batch b = {.B = B, .T = T, .ids = ids, .labels = labels, .example_index = exi,
                   .seed = 9, .epoch = 3, .train = train, .loss_scale = 1.0f / B};
    if (agn_model_check_batch(m, &b) != 0) {
        printf("FAIL: batch rejected\n");
        failures++;
    }
    memset(m->grads, 0, m->n_params * sizeof(float));
    float loss = agn_model_forward(m, &b);
    agn_model_backward(m, &b);
    memcpy(logits, m->logits, B * 4 * sizeof(float));
    memcpy(grads, m->grads, m->n_params * sizeof(float));
    return loss;
}

int main(void)
{
    agn_model_config cfg = {.vocab_size = 50, .max_len = TMAX, .d_model = 16, .n_heads = 2,
                            .n_layers = 2, .d_ff = 32, .n_classes = 4, .dropout = 0.25f};
    agn_model m;
    if (agn_model_create(&m, &cfg, B) != 0) {
        printf("FAIL: create\n");
        return 1;
    }
    agn_model_init_weights(&m, 3);
    float *g1 = malloc(m.n_params * sizeof(float)), *g2 = malloc(m.n_params * sizeof(float));
    float *g3 = malloc(m.n_params * sizeof(float));
    float l1[B * 4], l2[B * 4], l3[B * 4];
    const agn_tensor *tok = agn_model_tensor(&m, "tok_emb"), *pos = agn_model_tensor(&m, "pos_emb");

    for (int train = 0; train <= 1; train++) {
        float a = run(&m, 9, train, l1, g1);
        float b = run(&m, TMAX, train, l2, g2);
        float c = run(&m, TMAX, train, l3, g3);
        int fin;
        double dl = fabs((double)a - b) / fabs((double)a);
        printf("dropout %s: loss %.7f (pad to 9) %.7f (pad to %d), rel diff %.2e\n",
               train ? "on " : "off", (double)a, (double)b, TMAX, dl);
        EXPECT(isfinite(a) && isfinite(b) && a > 0, "loss not finite and positive");
        EXPECT(dl < 1e-6, "loss differs by %.2e", dl);
        double dlog = rel_diff(l1, l2, B * 4, &fin);
        EXPECT(dlog < 1e-6 && fin, "logits differ by %.2e (finite %d)", dlog, fin);
        double worst = 0;
        for (int t = 0; t < m.n_tensors; t++) {
            const agn_tensor *tn = &m.tensors[t];
            double d = rel_diff(g1 + tn->offset, g2 + tn->offset, tn->numel, &fin);
            if (d > worst) worst = d;
            EXPECT(d < 1e-6 && fin, "dropout %d: gradient of %s differs by %.2e (finite %d)", train,
                   tn->name, d, fin);
            int nonzero = 0;
            for (size_t i = 0; i < tn->numel; i++) nonzero |= g1[tn->offset + i] != 0.0f;
            EXPECT(nonzero, "gradient of %s is all zero", tn->name);
        }
        printf("  largest relative gradient difference over %d tensors: %.2e\n", m.n_tensors, worst);
        EXPECT(b == c, "two identical runs give losses %.9g and %.9g", (double)b, (double)c);
        EXPECT(memcmp(g2, g3, m.n_params * sizeof(float)) == 0 && memcmp(l2, l3, sizeof l2) == 0,
               "two identical runs differ");
        /* pad never reaches the loss: zero gradient for the pad row and for
         * positions beyond the longest example */
        for (int d = 0; d < cfg.d_model; d++)
            EXPECT(g2[tok->offset + d] == 0.0f, "pad embedding row has gradient");
        for (int t = 9; t < TMAX; t++)
            for (int d = 0; d < cfg.d_model; d++)
                EXPECT(g2[pos->offset + (size_t)t * cfg.d_model + d] == 0.0f,
                       "position %d (beyond every example) has gradient", t);
    }
    /* dense mode (pad positions computed) gives the same results up to
     * summation order: the weight-gradient sgemms then sum over more rows
     * (the pad rows add exact zeros, but the BLAS blocks the sums
     * differently), hence 1e-5 rather than 1e-6 */
    for (int train = 0; train <= 1; train++) {
        float a = run(&m, 9, train, l1, g1);
        m.dense = 1;
        float b = run(&m, TMAX, train, l2, g2);
        m.dense = 0;
        int fin;
        double dl = fabs((double)a - b) / fabs((double)a), worst = 0;
        EXPECT(dl < 1e-5, "dense mode: loss differs by %.2e", dl);
        for (int t = 0; t < m.n_tensors; t++) {
            const agn_tensor *tn = &m.tensors[t];
            double d = rel_diff(g1 + tn->offset, g2 + tn->offset, tn->numel, &fin);
            if (d > worst) worst = d;
            EXPECT(d < 1e-5 && fin, "dense mode: gradient of %s differs by %.2e", tn->name, d);
        }
        printf("dense mode (pad positions computed, T=%d), dropout %s: loss rel diff %.2e, largest "
               "gradient rel diff %.2e\n", TMAX, train ? "on" : "off", dl, worst);
    }
    /* the inference forward gives the same logits and loss, and backward
     * after it leaves the gradients alone */
    {
        float a = run(&m, 9, 0, l1, g1);
        int32_t ids[B * TMAX] = {0}, labels[B] = {0, 3, 1, 2, 1};
        for (int r = 0; r < B; r++)
            for (int t = 0; t < lens[r]; t++) ids[r * TMAX + t] = 2 + (int32_t)((r * 17 + t * 5) % 47);
        agn_batch b = {.B = B, .T = TMAX, .ids = ids, .labels = labels, .loss_scale = 1.0f};
        memset(m.grads, 0, m.n_params * sizeof(float));
        float c = agn_model_forward_infer(&m, &b);
        agn_model_backward(&m, &b);
        int zero = 1;
        for (size_t i = 0; i < m.n_params; i++) zero &= m.grads[i] == 0.0f;
        EXPECT(a == c && memcmp(l1, m.logits, sizeof l1) == 0,
               "inference forward: loss %.9g vs %.9g or logits differ", (double)c, (double)a);
        EXPECT(zero, "backward after an inference forward changed the gradients");
        printf("inference forward: same loss and logits (%.7f)\n", (double)c);
    }
    /* dropout must change something, and an unlabelled forward gives logits */
    {
        float a = run(&m, 9, 0, l1, g1), b = run(&m, 9, 1, l2, g2);
        EXPECT(a != b, "dropout on and off give the same loss");
    }

    /* a row with no real token (never produced by agn-shard, which stores an
     * empty example as <unk>) must not produce NaN: it pools to 0 */
    {
        int32_t ids[2 * 4] = {5, 6, 7, 0, 0, 0, 0, 0}, labels[2] = {1, 2};
        agn_batch b = {.B = 2, .T = 4, .ids = ids, .labels = labels, .train = 1, .loss_scale = 0.5f};
        memset(m.grads, 0, m.n_params * sizeof(float));
        float loss = agn_model_forward(&m, &b);
        agn_model_backward(&m, &b);
        int fin = isfinite(loss);
        for (size_t i = 0; i < m.n_params; i++) fin &= isfinite(m.grads[i]) != 0;
        EXPECT(fin, "an all-pad row gives a non-finite loss or gradient");
    }
    /* an empty slice (a rank with no rows of a small last batch) */
    {
        int32_t ids[1] = {0}, labels[1] = {0};
        agn_batch b = {.B = 0, .T = 1, .ids = ids, .labels = labels, .train = 1, .loss_scale = 1.0f};
        memset(m.grads, 0, m.n_params * sizeof(float));
        float loss = agn_model_forward(&m, &b);
        agn_model_backward(&m, &b);
        int zero = loss == 0.0f;
        for (size_t i = 0; i < m.n_params; i++) zero &= m.grads[i] == 0.0f;
        EXPECT(zero, "an empty batch gives a loss or gradient other than 0");
    }
    /* batches that do not fit are refused, with a NaN loss and a message */
    {
        int32_t ids[1] = {3}, labels[1] = {0};
        agn_batch b = {.B = 1, .T = TMAX + 1, .ids = ids, .labels = labels};
        EXPECT(agn_model_check_batch(&m, &b) != 0, "T > max_len accepted");
        EXPECT(isnan(agn_model_forward(&m, &b)), "T > max_len: forward did not return NaN");
        b.T = 1;
        ids[0] = 50;
        EXPECT(agn_model_check_batch(&m, &b) != 0, "token id = vocab_size accepted");
        ids[0] = 3;
        labels[0] = 4;
        EXPECT(agn_model_check_batch(&m, &b) != 0, "label = n_classes accepted");
    }

    free(g1);
    free(g2);
    free(g3);
    agn_model_free(&m);
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("padding invariance holds\n");
    return 0;
}
