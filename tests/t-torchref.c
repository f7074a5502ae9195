/* t-torchref.c: the C side of tests/torch/crosscheck.py.  Builds the tiny
 * model from a seed (weights scaled up so that the nonlinearities matter),
 * a padded batch, and writes to OUTDIR, in safetensors:
 *   inputs.safetensors   every weight under its checkpoint name, the batch
 *                        (ids [B,T] and labels [B] as I64) and the optimizer
 *                        settings in the metadata;
 *   step0.safetensors    logits [B,C], the mean loss, and every gradient
 *                        ("grad.NAME") of the first backward pass;
 *   final.safetensors    every weight after three AdamW steps with clipping
 *                        and the schedule, the learning rate and the
 *                        pre-clip gradient norm of each step.
 * Dropout is off: PyTorch cannot reproduce agn's masks. */
#include "config.h"
#include "model.h"
#include "safetensors.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 6, T = 8, STEPS = 3 };

static int add_weights(agn_st_writer *w, const agn_model *m, const float *buf, const char *prefix)
{
    char name[96];
    for (int i = 0; i < m->n_tensors; i++) {
        const agn_tensor *t = &m->tensors[i];
        int64_t shape[2] = {t->shape[0], t->shape[1]};
        snprintf(name, sizeof name, "%s%s", prefix, t->name);
        if (agn_st_add_f32(w, name, buf + t->offset, t->ndim, shape) != 0) return -1;
    }
    return 0;
}

static int write_file(agn_st_writer *w, const char *dir, const char *base)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, base);
    int rc = agn_st_write(w, path);
    agn_st_writer_free(w);
    return rc;
}

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    if (argc != 2) {
        fprintf(stderr, "usage: t-torchref OUTDIR\n");
        return 2;
    }
    const char *dir = argv[1];
    agn_model_config cfg = {.vocab_size = 50, .max_len = T, .d_model = 16, .n_heads = 2,
                            .n_layers = 2, .d_ff = 32, .n_classes = 4, .dropout = 0.1f};
    agn_model m;
    if (agn_model_create(&m, &cfg, B) != 0) {
        agn_warn_err();
        return 1;
    }
    agn_model_init_weights(&m, 11);
    /* std 0.02 leaves the model almost linear; std 0.2 and non-trivial
     * LayerNorm gains and biases exercise every term */
    uint64_t s = 99;
    for (int i = 0; i < m.n_tensors; i++) {
        const agn_tensor *t = &m.tensors[i];
        int ln = strstr(t->name, "ln") != NULL;
        for (size_t k = 0; k < t->numel; k++) {
            s = s * 6364136223846793005ULL + 1442695040888963407ULL;
            float u = (float)((double)(s >> 11) / 9007199254740992.0) - 0.5f;
            float *p = &m.params[t->offset + k];
            *p = ln ? *p + 0.4f * u : (*p * 10.0f + (t->ndim == 1 ? 0.2f * u : 0.0f));
        }
    }

    /* a batch padded to T: lengths 8, 5, 3, 1, 6, 2 */
    static const int lens[B] = {8, 5, 3, 1, 6, 2};
    int32_t ids[B * T] = {0}, labels[B] = {0, 1, 2, 3, 1, 2};
    int64_t ids64[B * T], labels64[B];
    uint64_t exi[B];
    for (int r = 0; r < B; r++) {
        exi[r] = (uint64_t)r;
        for (int t = 0; t < lens[r]; t++) ids[r * T + t] = 2 + (r * 11 + t * 7 + t * t) % 48;
    }
    for (int i = 0; i < B * T; i++) ids64[i] = ids[i];
    for (int i = 0; i < B; i++) labels64[i] = labels[i];
    agn_batch b = {.B = B, .T = T, .ids = ids, .labels = labels, .example_index = exi, .seed = 1,
                   .epoch = 0, .train = 0, .loss_scale = 1.0f / B};
    agn_optim_config oc = {.lr = 0.01f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                           .weight_decay = 0.1f, .grad_clip = 0.05f, .warmup_steps = 1,
                           .total_steps = 3};

    agn_st_writer *w = agn_st_writer_new();
    char v[64];
    int rc = add_weights(w, &m, m.params, "");
    rc |= agn_st_add(w, "ids", AGN_ST_I64, 2, (int64_t[]){B, T}, ids64);
    rc |= agn_st_add(w, "labels", AGN_ST_I64, 1, (int64_t[]){B}, labels64);
#define META(k, fmt, x) (snprintf(v, sizeof v, fmt, x), agn_st_add_meta(w, k, v))
    rc |= META("lr", "%.9g", (double)oc.lr);
    rc |= META("beta1", "%.9g", (double)oc.beta1);
    rc |= META("beta2", "%.9g", (double)oc.beta2);
    rc |= META("eps", "%.9g", (double)oc.eps);
    rc |= META("weight_decay", "%.9g", (double)oc.weight_decay);
    rc |= META("grad_clip", "%.9g", (double)oc.grad_clip);
    rc |= META("warmup_steps", "%ld", oc.warmup_steps);
    rc |= META("total_steps", "%ld", oc.total_steps);
    rc |= META("steps", "%d", STEPS);
    rc |= META("n_heads", "%d", cfg.n_heads);
    rc |= META("n_layers", "%d", cfg.n_layers);
#undef META
    if (rc != 0 || write_file(w, dir, "inputs.safetensors") != 0) {
        agn_warn_err();
        return 1;
    }

    float *am = agn_xcalloc(m.n_params, sizeof(float)), *av = agn_xcalloc(m.n_params, sizeof(float));
    float lrs[STEPS], norms[STEPS], loss0 = 0, logits0[B * 4];
    float *grads0 = agn_xmalloc(m.n_params * sizeof(float));
    for (int step = 0; step < STEPS; step++) {
        memset(m.grads, 0, m.n_params * sizeof(float));
        float loss = agn_model_forward(&m, &b) / B;
        agn_model_backward(&m, &b);
        if (step == 0) {
            loss0 = loss;
            memcpy(logits0, m.logits, sizeof logits0);
            memcpy(grads0, m.grads, m.n_params * sizeof(float));
        }
        lrs[step] = agn_lr_at(&oc, step);
        norms[step] = (float)agn_adamw_step(&m, am, av, &oc, step, lrs[step]);
        printf("step %d: loss %.6f lr %.6g grad norm %.6f\n", step, (double)loss, (double)lrs[step],
               (double)norms[step]);
    }

    w = agn_st_writer_new();
    rc = agn_st_add_f32(w, "logits", logits0, 2, (int64_t[]){B, 4});
    rc |= agn_st_add_f32(w, "loss", &loss0, 0, NULL);
    rc |= add_weights(w, &m, grads0, "grad.");
    if (rc != 0 || write_file(w, dir, "step0.safetensors") != 0) {
        agn_warn_err();
        return 1;
    }
    w = agn_st_writer_new();
    rc = add_weights(w, &m, m.params, "");
    rc |= agn_st_add_f32(w, "lr", lrs, 1, (int64_t[]){STEPS});
    rc |= agn_st_add_f32(w, "grad_norm", norms, 1, (int64_t[]){STEPS});
    if (rc != 0 || write_file(w, dir, "final.safetensors") != 0) {
        agn_warn_err();
        return 1;
    }
    free(am);
    free(av);
    free(grads0);
    agn_model_free(&m);
    return 0;
}
