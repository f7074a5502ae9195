/* t-gradcheck.c: finite-difference checks of every layer's backward pass
 * and of the whole model's (tiny config, dropout off and on), so that each
 * analytic gradient is shown to be the derivative of its forward pass.
 *
 * Method and tolerances.  Everything runs in fp32, so the derivative is
 * estimated with the five-point central stencil
 *     f'(x) ~ (8 (f(x+h) - f(x-h)) - (f(x+2h) - f(x-2h))) / 12h,
 * whose truncation error is O(h^4 f^(5)) (about 1e-8 at h = 1e-2 for these
 * smooth functions) while float rounding of f contributes about
 * ulp(f) / h ~ 1e-5 |f|.  Layer losses are sum(out * R) for a fixed random R,
 * accumulated in double.  The error of a tensor is
 *     max_i |analytic_i - numeric_i| / max_i |analytic_i|,
 * and the tolerance 2e-3 sits an order of magnitude above the measured noise
 * (printed) and far below the O(1) error any wrong formula gives (a sign, a
 * missing term or a transposed index).  The whole model is checked with
 * weights drawn at std 0.3 rather than 0.02 so its gradients are not tiny
 * compared to the rounding of the loss.  Under AGN_TEST_SANITIZED only a
 * sample of each tensor's elements is checked. */
#include "config.h"
#include "layers_cpu.h"
#include "model.h"

#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double TOL = 2e-3;
static const float H = 1e-2f;
static int failures;
static size_t stride = 1; /* check every stride-th element */

/* ---- a tiny deterministic RNG --------------------------------------------------- */

static uint64_t rng = 0x1234567;
static float frand(void) /* uniform in [-1, 1) */
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 4503599627370496.0 - 1.0);
}
static void fill(float *x, size_t n, float scale)
{
    for (size_t i = 0; i < n; i++) x[i] = scale * frand();
}

/* ---- the harness ------------------------------------------------------------------ */

typedef struct {
    const char *name;
    float *x, *g; /* value and analytic gradient */
    size_t n;
} var;

typedef double (*loss_fn)(void *ctx);
typedef void (*grad_fn)(void *ctx); /* recompute and fill every var's g (zeroed here) */

static void check(const char *what, void *ctx, loss_fn f, grad_fn gf, var *v, int nv)
{
    for (int k = 0; k < nv; k++) memset(v[k].g, 0, v[k].n * sizeof(float));
    gf(ctx);
    printf("%s\n", what);
    for (int k = 0; k < nv; k++) {
        double maxa = 0, maxd = 0;
        int bad = 0;
        for (size_t i = 0; i < v[k].n; i += stride) {
            float x0 = v[k].x[i];
            double fp[4];
            const float off[4] = {H, -H, 2 * H, -2 * H};
            for (int j = 0; j < 4; j++) {
                v[k].x[i] = x0 + off[j];
                fp[j] = f(ctx);
            }
            v[k].x[i] = x0;
            double num = (8.0 * (fp[0] - fp[1]) - (fp[2] - fp[3])) / (12.0 * H);
            double a = v[k].g[i];
            if (!isfinite(a) || !isfinite(num)) bad = 1;
            if (fabs(a) > maxa) maxa = fabs(a);
            if (fabs(a - num) > maxd) maxd = fabs(a - num);
        }
        double rel = maxa > 0 ? maxd / maxa : maxd;
        int fail = bad || rel > TOL || maxa == 0;
        printf("  %-30s max |grad| %9.3e  max rel err %9.3e%s\n", v[k].name, maxa, rel,
               fail ? "  FAIL" : "");
        if (fail) failures++;
    }
}

static double dotR(const float *out, const float *R, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)out[i] * R[i];
    return s;
}

/* ---- packing used by the layer checks: 3 examples of lengths 3, 5, 1 -------------- */

enum { NB = 3, NR = 9, D = 8, NH = 2, F = 12, V = 7, TP = 6, C = 4 };
static const int start[NB] = {0, 3, 8}, len[NB] = {3, 5, 1};
static size_t att_off[NB];
static const int32_t ids[NR] = {1, 2, 3, 4, 5, 6, 2, 1, 3};
static const int32_t pos[NR] = {0, 1, 2, 0, 1, 2, 3, 4, 0};

/* ---- per-layer contexts -------------------------------------------------------------- */

static struct {
    float inp[NR * 3 * D], w[3 * D * F], b[3 * D * F], out[NR * 3 * D * 4], R[NR * 3 * D * 4];
    float ginp[NR * 3 * D], gw[3 * D * F], gb[3 * D * F];
    float stat1[NR], stat2[NR], att[NH * (9 + 25 + 1)], datt[NH * (9 + 25 + 1)];
    uint8_t mask[NR * D];
    int32_t labels[NB];
} L;

/* embedding: w = tok_emb [V,D], b = pos_emb [TP,D] */
static double emb_f(void *c) { (void)c; agn_embedding_forward_cpu(L.out, ids, pos, L.w, L.b, NR, D); return dotR(L.out, L.R, NR * D); }
static void emb_g(void *c) { (void)c; agn_embedding_backward_cpu(L.gw, L.gb, L.R, ids, pos, NR, D); }

static double ln_f(void *c) { (void)c; agn_layernorm_forward_cpu(L.out, L.stat1, L.stat2, L.inp, L.w, L.b, NR, D); return dotR(L.out, L.R, NR * D); }
static void ln_g(void *c) { ln_f(c); agn_layernorm_backward_cpu(L.ginp, L.gw, L.gb, L.R, L.inp, L.w, L.stat1, L.stat2, NR, D); }

static double mm_f(void *c) { (void)c; agn_matmul_forward_cpu(L.out, L.inp, L.w, L.b, NR, D, F); return dotR(L.out, L.R, NR * F); }
static void mm_g(void *c) { (void)c; agn_matmul_backward_cpu(L.ginp, L.gw, L.gb, L.R, L.inp, L.w, NR, D, F); }

static double att_f(void *c) { (void)c; agn_attention_forward_cpu(L.out, L.att, L.inp, start, len, NULL, att_off, NB, D, NH); return dotR(L.out, L.R, NR * D); }
static void att_g(void *c) { att_f(c); agn_attention_backward_cpu(L.ginp, L.datt, L.R, L.inp, L.att, start, len, NULL, att_off, NB, D, NH); }

/* pad queries: the same rows, but only the first nkey rows of each example
 * are keys (the model's dense mode) */
static const int nkey[NB] = {2, 3, 1};
static size_t att_off_q[NB];
static double attq_f(void *c) { (void)c; agn_attention_forward_cpu(L.out, L.att, L.inp, start, len, nkey, att_off_q, NB, D, NH); return dotR(L.out, L.R, NR * D); }
static void attq_g(void *c) { attq_f(c); agn_attention_backward_cpu(L.ginp, L.datt, L.R, L.inp, L.att, start, len, nkey, att_off_q, NB, D, NH); }

static double gelu_f(void *c) { (void)c; agn_gelu_forward_cpu(L.out, L.inp, NR * D); return dotR(L.out, L.R, NR * D); }
static void gelu_g(void *c) { (void)c; agn_gelu_backward_cpu(L.ginp, L.R, L.inp, NR * D); }

/* residual with dropout: inp and w (as y) */
static double res_f(void *c) { (void)c; agn_residual_forward_cpu(L.out, L.inp, L.w, L.mask, 1.25f, NR * D); return dotR(L.out, L.R, NR * D); }
static void res_g(void *c) { (void)c; agn_residual_backward_cpu(L.ginp, L.gw, L.R, L.mask, 1.25f, NR * D); }

static double drop_f(void *c) { (void)c; memcpy(L.out, L.inp, sizeof(float) * NR * D); agn_dropout_forward_cpu(L.out, L.mask, 1.25f, NR * D); return dotR(L.out, L.R, NR * D); }
static void drop_g(void *c) { (void)c; agn_dropout_backward_cpu(L.ginp, L.R, L.mask, 1.25f, NR * D); }

static double pool_f(void *c) { (void)c; agn_meanpool_forward_cpu(L.out, L.inp, start, len, NB, D); return dotR(L.out, L.R, NB * D); }
static void pool_g(void *c) { (void)c; agn_meanpool_backward_cpu(L.ginp, L.R, start, len, NB, D); }

/* cross-entropy: the loss itself, scale 1 */
static double ce_f(void *c) { (void)c; return agn_crossentropy_forward_cpu(L.stat1, L.out, L.inp, L.labels, NB, C); }
static void ce_g(void *c) { ce_f(c); agn_crossentropy_backward_cpu(L.ginp, L.out, L.labels, 1.0f, NB, C); }

static void layer_checks(void)
{
    size_t o = 0;
    for (int b = 0; b < NB; b++) { att_off[b] = o; o += (size_t)NH * len[b] * len[b]; }
    o = 0;
    for (int b = 0; b < NB; b++) { att_off_q[b] = o; o += (size_t)NH * len[b] * nkey[b]; }
    fill(L.R, sizeof L.R / sizeof(float), 1.0f);
    for (int i = 0; i < NR * D; i++) L.mask[i] = frand() > -0.6f; /* about 80% kept */
    L.labels[0] = 2; L.labels[1] = 0; L.labels[2] = 3;

    fill(L.w, V * D, 0.5f); fill(L.b, TP * D, 0.5f);
    check("embedding", NULL, emb_f, emb_g, (var[]){{"tok_emb", L.w, L.gw, V * D}, {"pos_emb", L.b, L.gb, TP * D}}, 2);

    fill(L.inp, NR * D, 1.0f); fill(L.w, D, 1.0f); fill(L.b, D, 0.5f);
    check("layernorm", NULL, ln_f, ln_g, (var[]){{"inp", L.inp, L.ginp, NR * D}, {"weight", L.w, L.gw, D}, {"bias", L.b, L.gb, D}}, 3);

    fill(L.inp, NR * D, 1.0f); fill(L.w, F * D, 0.5f); fill(L.b, F, 0.5f);
    check("matmul", NULL, mm_f, mm_g, (var[]){{"inp", L.inp, L.ginp, NR * D}, {"weight", L.w, L.gw, F * D}, {"bias", L.b, L.gb, F}}, 3);

    fill(L.inp, NR * 3 * D, 1.0f);
    check("attention (pad keys absent)", NULL, att_f, att_g, (var[]){{"qkv", L.inp, L.ginp, NR * 3 * D}}, 1);
    check("attention (pad queries, fewer keys)", NULL, attq_f, attq_g, (var[]){{"qkv", L.inp, L.ginp, NR * 3 * D}}, 1);

    fill(L.inp, NR * D, 2.0f);
    check("gelu", NULL, gelu_f, gelu_g, (var[]){{"inp", L.inp, L.ginp, NR * D}}, 1);

    fill(L.inp, NR * D, 1.0f); fill(L.w, NR * D, 1.0f);
    check("residual with dropout", NULL, res_f, res_g, (var[]){{"inp", L.inp, L.ginp, NR * D}, {"y", L.w, L.gw, NR * D}}, 2);
    check("dropout", NULL, drop_f, drop_g, (var[]){{"inp", L.inp, L.ginp, NR * D}}, 1);
    check("mean pooling", NULL, pool_f, pool_g, (var[]){{"inp", L.inp, L.ginp, NR * D}}, 1);

    fill(L.inp, NB * C, 2.0f);
    check("softmax cross-entropy", NULL, ce_f, ce_g, (var[]){{"logits", L.inp, L.ginp, NB * C}}, 1);
}

/* ---- the whole model ------------------------------------------------------------------- */

typedef struct {
    agn_model *m;
    agn_batch *b;
} model_ctx;

static double model_f(void *c)
{
    model_ctx *x = c;
    return agn_model_forward(x->m, x->b);
}

static void model_g(void *c)
{
    model_ctx *x = c;
    memset(x->m->grads, 0, x->m->n_params * sizeof(float));
    agn_model_forward(x->m, x->b);
    agn_model_backward(x->m, x->b);
}

static void model_check(int train, int dense)
{
    agn_model_config cfg = {.vocab_size = 50, .max_len = 8, .d_model = 16, .n_heads = 2,
                            .n_layers = 2, .d_ff = 32, .n_classes = 4, .dropout = 0.2f};
    agn_model m;
    if (agn_model_create(&m, &cfg, 4) != 0) { printf("create failed\n"); failures++; return; }
    agn_model_init_weights(&m, 7);
    m.dense = dense;
    for (size_t i = 0; i < m.n_params; i++) m.params[i] *= 15.0f; /* std 0.3, gains 15 */
    /* LayerNorm gains of 15 would be odd; bring them back near 1 */
    for (int t = 0; t < m.n_tensors; t++)
        if (strstr(m.tensors[t].name, "ln"))
            for (size_t i = 0; i < m.tensors[t].numel; i++) m.params[m.tensors[t].offset + i] = 1.0f + 0.3f * frand();
    /* four examples of lengths 8, 3, 5, 1, padded to 8 */
    int32_t bids[4 * 8] = {0};
    const int lens[4] = {8, 3, 5, 1};
    for (int r = 0; r < 4; r++)
        for (int t = 0; t < lens[r]; t++) bids[r * 8 + t] = 1 + (int32_t)((r * 13 + t * 7) % 49);
    int32_t labels[4] = {0, 3, 1, 2};
    uint64_t exi[4] = {10, 11, 12, 13};
    agn_batch b = {.B = 4, .T = 8, .ids = bids, .labels = labels, .example_index = exi,
                   .seed = 42, .epoch = 1, .train = train, .loss_scale = 1.0f};
    model_ctx ctx = {&m, &b};
    var *v = calloc((size_t)m.n_tensors, sizeof *v);
    float *ga = malloc(m.n_params * sizeof(float));
    for (int t = 0; t < m.n_tensors; t++)
        v[t] = (var){m.tensors[t].name, m.params + m.tensors[t].offset, m.grads + m.tensors[t].offset, m.tensors[t].numel};
    char title[96];
    snprintf(title, sizeof title, "whole model, %s%s", train ? "dropout 0.2 (fixed masks)" : "dropout off",
             dense ? ", dense (pad positions computed)" : "");
    check(title, &ctx, model_f, model_g, v, m.n_tensors);
    free(ga);
    free(v);
    agn_model_free(&m);
}

int main(void)
{
    const char *san = getenv("AGN_TEST_SANITIZED");
    if (san && *san && strcmp(san, "0") != 0) stride = 5;
#ifdef _OPENMP
    /* thousands of forward passes of a tiny model: threads would only add
     * their start-up cost (t-padding runs the threaded path) */
    omp_set_num_threads(1);
#endif
    layer_checks();
    model_check(0, 0);
    model_check(1, 0);
    model_check(1, 1);
    if (failures) {
        printf("FAIL: %d tensors above the tolerance %.1e\n", failures, TOL);
        return 1;
    }
    printf("all gradients within %.1e\n", TOL);
    return 0;
}
