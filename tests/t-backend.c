/* t-backend.c: the contract of backend.h, checked for one backend against
 * the CPU reference and against values computed here from the contract's
 * words.  `t-backend` checks the CPU backend (make check); `t-backend cuda`
 * the CUDA one, exiting 77 with the reason where it is not built or no GPU
 * is present (tests/gpu runs it on a GPU machine).
 *
 * Checked: initial weights equal the CPU's bit for bit (they are computed on
 * the host); a forward pass (logits, loss) and a backward pass (every
 * gradient) against the CPU within the backend's tolerance; every buffer
 * operation (zero, sumsq, norm, scale, rows gather / scatter / zero, adamw,
 * the copies) against a host computation of what backend.h says it does;
 * two identical runs give identical bits; and agn_batch_token_union against
 * a brute-force union. */
#include "config.h"
#include "batch.h"
#include "device.h"
#include "model.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

static void check(int ok, const char *what, double got)
{
    printf("%-52s %-12.4g%s\n", what, got, ok ? "" : "  FAIL");
    if (!ok) failures++;
}

/* largest |a - b| / max(|b|, floor) over n */
static double max_rel(const float *a, const float *b, size_t n, double floor)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]) / fmax(fabs((double)b[i]), floor);
        if (!(d <= worst)) worst = d; /* NaN wins */
    }
    return worst;
}

static uint64_t rng_state = 12345;
static double urand(void)
{
    rng_state = agn_splitmix64(rng_state);
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

static const agn_model_config CFG = {.vocab_size = 50, .max_len = 16, .d_model = 16, .n_heads = 2,
                                     .n_layers = 2, .d_ff = 32, .n_classes = 4, .dropout = 0.1f};
enum { B = 5, T = 16 };

static void make_batch(agn_batch *b, int32_t *ids, int32_t *labels, uint64_t *index)
{
    const int lens[B] = {1, 16, 7, 12, 3};
    memset(ids, 0, sizeof(int32_t) * B * T);
    for (int i = 0; i < B; i++) {
        for (int t = 0; t < lens[i]; t++) ids[i * T + t] = 1 + (int32_t)(urand() * (CFG.vocab_size - 1));
        labels[i] = i % CFG.n_classes;
        index[i] = 100 + (uint64_t)i * 7;
    }
    memset(b, 0, sizeof *b);
    b->B = B;
    b->T = T;
    b->ids = ids;
    b->labels = labels;
    b->example_index = index;
    b->seed = 7;
    b->epoch = 1;
    b->train = 1;
    b->loss_scale = 1.0f / B;
}

/* forward + backward on M; logits, loss and grads to host copies */
static int run_step(agn_model *m, const agn_batch *b, float *logits, double *loss, float *grads)
{
    if (m->ops->zero(m, m->grads, m->n_params) != 0 || agn_model_submit_forward(m, b, 1) != 0 ||
        agn_model_backward(m, b) != 0 || agn_model_wait(m, NULL) != 0)
        return -1;
    memcpy(logits, m->logits, sizeof(float) * B * CFG.n_classes);
    *loss = m->loss_sum;
    return agn_model_download(m, grads, m->grads);
}

static void test_union(void)
{
    /* 30 examples over a vocabulary of 40, lengths 0..20, truncated at 9 */
    enum { N = 30, V = 40, TT = 9 };
    agn_dataset d;
    memset(&d, 0, sizeof d);
    d.n = N;
    d.offsets = agn_xcalloc(N + 1, sizeof *d.offsets);
    for (int i = 0; i < N; i++) d.offsets[i + 1] = d.offsets[i] + (uint64_t)(urand() * 21);
    d.n_tokens = d.offsets[N];
    d.tokens = agn_xcalloc(d.n_tokens + 1, sizeof *d.tokens);
    for (uint64_t i = 0; i < d.n_tokens; i++) d.tokens[i] = 1 + (int32_t)(urand() * (V - 1));
    uint64_t idx[12];
    for (int j = 0; j < 12; j++) idx[j] = (uint64_t)(urand() * N);
    uint8_t mark[V] = {0}, seen[V] = {0};
    int32_t rows[V];
    size_t k = agn_batch_token_union(&d, idx, 12, TT, mark, rows);
    for (int j = 0; j < 12; j++) {
        uint64_t len = d.offsets[idx[j] + 1] - d.offsets[idx[j]];
        for (uint64_t t = 0; t < len && t < TT; t++) seen[d.tokens[d.offsets[idx[j]] + t]] = 1;
    }
    size_t want = 0;
    int ok = 1;
    for (int v = 0; v < V; v++)
        if (seen[v]) {
            if (want >= k || rows[want] != v) ok = 0;
            want++;
        }
    for (int v = 0; v < V; v++) ok &= mark[v] == 0;
    check(ok && want == k, "token union: ids in order, marks left zero", (double)k);
    free(d.offsets);
    free(d.tokens);
}

int main(int argc, char **argv)
{
    const char *name = argc > 1 ? argv[1] : "cpu";
    const agn_backend_ops *ops = agn_backend_find(name);
    if (!ops) {
        printf("SKIP: %s\n", agn_errmsg());
        return 77;
    }
    if (!ops->host_memory && agn_cuda_device_count() == 0) {
        char buf[256];
        printf("SKIP: the %s backend needs a GPU: %s\n", name, agn_cuda_device_name(0, buf, sizeof buf));
        return 77;
    }
    agn_precision prec = getenv("AGN_TEST_BF16") ? AGN_PREC_BF16 : AGN_PREC_FP32;
    /* tolerances: the CPU must be the CPU bit for bit; a device in fp32
     * rounds differently (1e-5), in bf16 much more (2e-2) */
    double tol = ops == &agn_backend_cpu ? 0 : prec == AGN_PREC_BF16 ? 2e-2 : 1e-5;
    printf("backend %s, precision %s, tolerance %g\n", ops->name, prec == AGN_PREC_BF16 ? "bf16" : "fp32", tol);

    agn_model ref, m;
    if (agn_model_create(&ref, &CFG, B) != 0 || agn_model_create_on(&m, &CFG, B, ops, 0, prec) != 0 ||
        agn_model_alloc_optim(&ref) != 0 || agn_model_alloc_optim(&m) != 0) {
        printf("FAIL: create: %s\n", agn_errmsg());
        return 1;
    }
    size_t n = m.n_params;
    float *h = agn_xalloc_aligned(n * sizeof(float)), *h2 = agn_xalloc_aligned(n * sizeof(float));
    agn_model_init_weights(&ref, 11);
    agn_model_init_weights(&m, 11);
    agn_model_download(&m, h, m.params);
    check(memcmp(h, ref.params, n * sizeof(float)) == 0, "init weights: equal to the CPU's bits", 0);

    /* ---- forward and backward */
    int32_t ids[B * T], labels[B];
    uint64_t index[B];
    agn_batch b;
    make_batch(&b, ids, labels, index);
    float lg_ref[B * 4], lg[B * 4], lg2[B * 4];
    double loss_ref, loss, loss2;
    float *g_ref = agn_xalloc_aligned(n * sizeof(float)), *g = agn_xalloc_aligned(n * sizeof(float));
    float *g2 = agn_xalloc_aligned(n * sizeof(float));
    if (run_step(&ref, &b, lg_ref, &loss_ref, g_ref) != 0 || run_step(&m, &b, lg, &loss, g) != 0 ||
        run_step(&m, &b, lg2, &loss2, g2) != 0) {
        printf("FAIL: step: %s\n", agn_errmsg());
        return 1;
    }
    double d = max_rel(lg, lg_ref, B * 4, 1e-3);
    check(d <= tol, "logits vs CPU (max rel)", d);
    d = fabs(loss - loss_ref) / fabs(loss_ref);
    check(d <= tol, "loss vs CPU (rel)", d);
    for (int ti = 0; ti < m.n_tensors; ti++) {
        const agn_tensor *tn = &m.tensors[ti];
        double dt = max_rel(g + tn->offset, g_ref + tn->offset, tn->numel, 1e-3);
        char what[96];
        snprintf(what, sizeof what, "grad %s vs CPU", tn->name);
        /* gradients compound the forward's rounding through the layers:
         * five times the forward's tolerance on a device */
        check(dt <= (tol ? tol * 5 : 0), what, dt);
    }
    check(memcmp(lg, lg2, sizeof lg) == 0 && loss == loss2 && memcmp(g, g2, n * sizeof(float)) == 0,
          "two identical steps give identical bits", 0);

    /* ---- buffer operations on a known gradient buffer */
    for (size_t i = 0; i < n; i++) h[i] = (float)(urand() * 2 - 1);
    agn_model_upload(&m, m.grads, h);
    agn_span spans[3] = {{3, 40}, {100, 1}, {n - 77, 77}};
    double ss = 0.5, want = 0.5; /* sumsq adds to *out */
    for (int s = 0; s < 3; s++)
        for (size_t k = 0; k < spans[s].count; k++) want += (double)h[spans[s].offset + k] * h[spans[s].offset + k];
    m.ops->sumsq(&m, m.grads, spans, 3, &ss);
    double nrm = 0;
    m.ops->norm(&m, m.grads, n, &nrm);
    m.ops->wait(&m, NULL);
    check(fabs(ss - want) <= 1e-12 * want, "sumsq of 3 spans", ss);
    double nrm_want = agn_grad_norm(h, n);
    check(fabs(nrm - nrm_want) <= (ops == &agn_backend_cpu ? 0 : 1e-12) * nrm_want, "norm vs agn_grad_norm", nrm);

    m.ops->scale(&m, m.grads, spans, 3, 0.25f);
    m.ops->zero(&m, m.grads + 10, 5);
    agn_model_download(&m, h2, m.grads);
    int ok = 1;
    for (size_t i = 0; i < n; i++) {
        float w = h[i];
        for (int s = 0; s < 3; s++)
            if (i >= spans[s].offset && i < spans[s].offset + spans[s].count) w *= 0.25f;
        if (i >= 10 && i < 15) w = 0;
        ok &= h2[i] == w;
    }
    check(ok, "scale 3 spans by 0.25, zero 5 elements", 0);

    /* rows: gather rows {7, 2, 30} of the embedding, scatter them to
     * {1, 4, 9}, zero rows {30} */
    const agn_tensor *emb = agn_model_tensor(&m, "tok_emb");
    size_t D = (size_t)emb->shape[1];
    float *packed = m.ops->alloc(&m, 3 * D * sizeof(float));
    int32_t from[3] = {7, 2, 30}, to[3] = {1, 4, 9}, z[1] = {30};
    agn_model_upload(&m, m.grads, h);
    float *gb = m.grads + emb->offset;
    m.ops->rows(&m, packed, gb, from, 3, D, 0);
    m.ops->rows(&m, gb, packed, to, 3, D, 1);
    m.ops->rows(&m, gb, NULL, z, 1, D, 1);
    agn_model_download(&m, h2, m.grads);
    ok = 1;
    for (size_t r = 0; r < (size_t)emb->shape[0]; r++)
        for (size_t c = 0; c < D; c++) {
            float w = h[emb->offset + r * D + c];
            for (int k = 0; k < 3; k++)
                if ((int)r == to[k]) w = h[emb->offset + (size_t)from[k] * D + c];
            if (r == 30) w = 0;
            ok &= h2[emb->offset + r * D + c] == w;
        }
    check(ok, "rows: gather 3, scatter 3, zero 1", 0);
    m.ops->release(&m, packed);

    /* adamw over two pieces (one decayed) against the host reference */
    agn_tensor pieces[2] = {m.tensors[0], m.tensors[3]};
    pieces[0].numel = 33;
    agn_adam_args a = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.1f,
                       .coef = 0.5f, .step = 4};
    float *hp = agn_xalloc_aligned(n * sizeof(float)), *hm = agn_xalloc_aligned(n * sizeof(float));
    float *hv = agn_xalloc_aligned(n * sizeof(float));
    for (size_t i = 0; i < n; i++) {
        hp[i] = (float)(urand() - 0.5);
        hm[i] = (float)(urand() * 0.1);
        hv[i] = (float)(urand() * 0.01);
    }
    agn_model_upload(&m, m.params, hp);
    agn_model_upload(&m, m.adam_m, hm);
    agn_model_upload(&m, m.adam_v, hv);
    agn_model_upload(&m, m.grads, h);
    m.ops->adamw(&m, pieces, 2, &a);
    agn_adamw_pieces(hp, hm, hv, h, pieces, 2, &a);
    float *dp = agn_xalloc_aligned(n * sizeof(float));
    agn_model_download(&m, dp, m.params);
    d = max_rel(dp, hp, n, 1e-6);
    check(d <= (tol ? 1e-6 : 0), "adamw over 2 pieces vs the host reference", d);
    agn_model_download(&m, dp, m.adam_v);
    d = max_rel(dp, hv, n, 1e-9);
    check(d <= (tol ? 1e-6 : 0), "adamw: second moment", d);

    test_union();

    free(h);
    free(h2);
    free(g);
    free(g2);
    free(g_ref);
    free(hp);
    free(hm);
    free(hv);
    free(dp);
    agn_model_free(&m);
    agn_model_free(&ref);
    printf("%s\n", failures ? "FAILED" : "all passed");
    return failures ? 1 : 0;
}
