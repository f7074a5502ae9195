/* t-optim.c: the optimizer pieces of model.h against values worked out by
 * hand from their documentation: the learning-rate schedule (optim.c's
 * table), the global gradient norm, and one AdamW step with and without
 * clipping, with decay only on the tensors whose table entry says so. */
#include "config.h"
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static int failures;

static void near(const char *what, double got, double want, double tol)
{
    int ok = fabs(got - want) <= tol * fmax(fabs(want), 1e-30); /* relative */
    printf("%-44s got %.9g want %.9g%s\n", what, got, want, ok ? "" : "  FAIL");
    if (!ok) failures++;
}

int main(void)
{
    /* schedule: W = 4, S = 10, peak 1 */
    agn_optim_config oc = {.lr = 1.0f, .warmup_steps = 4, .total_steps = 10};
    const double want[12] = {0.25, 0.5, 0.75, 1.0, 1.0, 5.0 / 6, 4.0 / 6, 3.0 / 6, 2.0 / 6, 1.0 / 6, 0, 0};
    char what[64];
    for (int s = 0; s < 12; s++) {
        snprintf(what, sizeof what, "lr W=4 S=10 step %d", s);
        near(what, agn_lr_at(&oc, s), want[s], 1e-6);
    }
    oc.warmup_steps = 0;
    near("lr no warmup, step 0", agn_lr_at(&oc, 0), 1.0, 1e-6);
    near("lr no warmup, step 5", agn_lr_at(&oc, 5), 0.5, 1e-6);
    oc.total_steps = 0;
    near("lr no decay, step 1000", agn_lr_at(&oc, 1000), 1.0, 1e-6);

    /* global norm: 3-4-12-84 has norm 85 */
    float g[4] = {3, 4, 12, 84};
    near("grad norm", agn_grad_norm(g, 4), 85.0, 1e-12);

    /* one AdamW step on the tiny model: check two entries by hand */
    agn_model_config cfg = {.vocab_size = 5, .max_len = 4, .d_model = 4, .n_heads = 2,
                            .n_layers = 1, .d_ff = 8, .n_classes = 2, .dropout = 0};
    agn_model m;
    if (agn_model_create(&m, &cfg, 1) != 0) return 1;
    agn_model_init_weights(&m, 1);
    for (int clip = 0; clip <= 1; clip++) {
        float am[2048] = {0}, av[2048] = {0};
        if (m.n_params > 2048) return 1;
        for (size_t i = 0; i < m.n_params; i++) {
            m.params[i] = 0.5f;
            m.grads[i] = (i % 7 == 3) ? 0.2f : -0.1f;
        }
        double n2 = 0;
        for (size_t i = 0; i < m.n_params; i++) n2 += (double)m.grads[i] * m.grads[i];
        agn_optim_config o = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                              .weight_decay = 0.5f, .grad_clip = clip ? 1.0f : 0.0f};
        double norm = agn_adamw_step(&m, am, av, &o, 0, o.lr);
        near(clip ? "pre-clip norm (clipped)" : "norm", norm, sqrt(n2), 1e-9);
        double c = clip ? 1.0 / (sqrt(n2) + 1e-6) : 1.0;
        /* first step: m^ = g', v^ = g'^2, update = lr * g' / (|g'| + eps) */
        const agn_tensor *w = agn_model_tensor(&m, "tok_emb"), *b = agn_model_tensor(&m, "head.bias");
        size_t iw = w->offset, ib = b->offset;
        double gw = m.grads[iw] * c, gb = m.grads[ib] * c;
        near("decayed entry (tok_emb[0])", m.params[iw],
             0.5 * (1 - 0.01 * 0.5) - 0.01 * gw / (fabs(gw) + 1e-8), 1e-6);
        near("undecayed entry (head.bias[0])", m.params[ib], 0.5 - 0.01 * gb / (fabs(gb) + 1e-8), 1e-6);
        near("first moment", am[iw], 0.1 * gw, 1e-5);
        near("second moment", av[iw], 0.001 * gw * gw, 1e-4); /* 1 - beta2 in float */
        near("gradients untouched by clipping", m.grads[iw], (iw % 7 == 3) ? 0.2f : -0.1f, 0);
    }
    agn_model_free(&m);
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    return 0;
}
