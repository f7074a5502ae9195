/* model.c: the transformer classifier of DESIGN.md (Model), backend-neutral:
 * the parameter table (names, shapes, offsets, decay flags in checkpoint
 * order), the checks of configs and batches, the seeded initialisation, and
 * the calls into the backend that computes (backend.h; the CPU reference is
 * model_cpu.c, which documents packing and the layers).
 *
 * Dropout masks are the counter hash of rng.h: the same example gets the
 * same masks whatever the rank count, the batch slicing, the padding or the
 * backend. */
#include "config.h"
#include "model.h"
#include "rng.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Longest sequence the model accepts: attention keeps T x T scores per
 * example and head, which past this is better done another way. */
#define AGN_MAX_POSITIONS 8192

/* ---- configuration and the parameter table ------------------------------------ */

int agn_model_config_check(const agn_model_config *c)
{
    if (c->vocab_size < 2) return agn_seterr("vocab_size must be at least 2 (got %d)", c->vocab_size);
    if (c->max_len < 1 || c->max_len > AGN_MAX_POSITIONS)
        return agn_seterr("max_len must be in 1..%d (got %d)", AGN_MAX_POSITIONS, c->max_len);
    if (c->d_model < 1) return agn_seterr("d_model must be positive (got %d)", c->d_model);
    if (c->n_heads < 1) return agn_seterr("n_heads must be positive (got %d)", c->n_heads);
    if (c->d_model % c->n_heads != 0)
        return agn_seterr("n_heads (%d) must divide d_model (%d)", c->n_heads, c->d_model);
    if (c->n_layers < 1 || c->n_layers > 1000)
        return agn_seterr("n_layers must be in 1..1000 (got %d)", c->n_layers);
    if (c->d_ff < 1) return agn_seterr("d_ff must be positive (got %d)", c->d_ff);
    if (c->n_classes < 2) return agn_seterr("n_classes must be at least 2 (got %d)", c->n_classes);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return agn_seterr("dropout must be in [0, 1) (got %g)", (double)c->dropout);
    /* every size product below must fit comfortably */
    double params = (double)c->vocab_size * c->d_model + (double)c->max_len * c->d_model +
                    (double)c->n_layers * (4.0 * c->d_model * c->d_model + 2.0 * c->d_model * c->d_ff);
    if (params > 4e9) return agn_seterr("model too large (%.3g parameters)", params);
    return 0;
}

static void add_tensor(agn_model *m, const char *name, int ndim, int s0, int s1, int decay)
{
    agn_tensor *t = &m->tensors[m->n_tensors++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    t->shape[0] = s0;
    t->shape[1] = ndim == 2 ? s1 : 1;
    t->numel = (size_t)s0 * (size_t)(ndim == 2 ? s1 : 1);
    t->offset = m->n_params;
    t->decay = decay;
    m->n_params += t->numel;
}

static void build_table(agn_model *m)
{
    const agn_model_config *c = &m->cfg;
    int D = c->d_model, F = c->d_ff;
    char name[48];
    m->tensors = agn_xcalloc((size_t)(4 + 12 * c->n_layers + 4), sizeof(agn_tensor));
    m->n_tensors = 0;
    m->n_params = 0;
    add_tensor(m, "tok_emb", 2, c->vocab_size, D, 1);
    add_tensor(m, "pos_emb", 2, c->max_len, D, 1);
    for (int l = 0; l < c->n_layers; l++) {
#define TENSOR(suffix, nd, a, b, dec)                                                                   \
    snprintf(name, sizeof name, "blocks.%d.%s", l, suffix);                                        \
    add_tensor(m, name, nd, a, b, dec)
        TENSOR("ln1.weight", 1, D, 0, 0);
        TENSOR("ln1.bias", 1, D, 0, 0);
        TENSOR("attn.qkv.weight", 2, 3 * D, D, 1);
        TENSOR("attn.qkv.bias", 1, 3 * D, 0, 0);
        TENSOR("attn.proj.weight", 2, D, D, 1);
        TENSOR("attn.proj.bias", 1, D, 0, 0);
        TENSOR("ln2.weight", 1, D, 0, 0);
        TENSOR("ln2.bias", 1, D, 0, 0);
        TENSOR("mlp.fc1.weight", 2, F, D, 1);
        TENSOR("mlp.fc1.bias", 1, F, 0, 0);
        TENSOR("mlp.fc2.weight", 2, D, F, 1);
        TENSOR("mlp.fc2.bias", 1, D, 0, 0);
#undef TENSOR
    }
    add_tensor(m, "ln_f.weight", 1, D, 0, 0);
    add_tensor(m, "ln_f.bias", 1, D, 0, 0);
    add_tensor(m, "head.weight", 2, c->n_classes, D, 1);
    add_tensor(m, "head.bias", 1, c->n_classes, 0, 0);
}

const agn_tensor *agn_model_tensor(const agn_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0) return &m->tensors[i];
    return NULL;
}

/* ---- creation ------------------------------------------------------------------- */

int agn_model_create(agn_model *m, const agn_model_config *cfg, int max_batch)
{
    return agn_model_create_on(m, cfg, max_batch, &agn_backend_cpu, 0, AGN_PREC_FP32);
}

int agn_model_create_on(agn_model *m, const agn_model_config *cfg, int max_batch,
                        const agn_backend_ops *ops, int device, agn_precision precision)
{
    memset(m, 0, sizeof *m);
    if (!ops) return agn_seterr("no backend");
    if (agn_model_config_check(cfg) != 0) return -1;
    if (max_batch < 1 || max_batch > 1 << 20)
        return agn_seterr("batch size must be in 1..%d (got %d)", 1 << 20, max_batch);
    if ((double)max_batch * cfg->max_len > (double)(1 << 30))
        return agn_seterr("batch size %d times max_len %d is too many positions", max_batch,
                          cfg->max_len);
    m->cfg = *cfg;
    m->max_batch = max_batch;
    m->ops = ops;
    m->device = device;
    m->precision = precision;
    build_table(m);
    m->logits = agn_xcalloc((size_t)max_batch * cfg->n_classes, sizeof(float));
    if (ops->create(m) != 0) {
        agn_model_free(m);
        return -1;
    }
    return 0;
}

int agn_model_alloc_optim(agn_model *m)
{
    if (m->adam_m) return 0;
    return m->ops->alloc_optim(m);
}

int agn_model_use_params(agn_model *m, float *buf)
{
    if (!m->ops->host_memory)
        return agn_seterr("the %s backend keeps its parameters in its own memory", m->ops->name);
    if (!m->params_external) free(m->params);
    m->params = buf;
    m->params_external = 1;
    return 0;
}

void agn_model_free(agn_model *m)
{
    if (m->ops && m->impl) m->ops->destroy(m);
    free(m->tensors);
    free(m->logits);
    memset(m, 0, sizeof *m);
}

int agn_model_download(agn_model *m, float *host, const float *buf)
{
    if (host == buf) return 0;
    return m->ops->to_host(m, host, buf, m->n_params);
}

int agn_model_upload(agn_model *m, float *buf, const float *host)
{
    if (host == buf) return 0;
    return m->ops->from_host(m, buf, host, m->n_params);
}

/* ---- randomness ------------------------------------------------------------------------ */

int agn_dropout_keep(uint64_t key, int site, int position, int channel, float p)
{
    return agn_dropout_row_keep(agn_dropout_row_key(key, site, position), channel,
                                agn_dropout_threshold(p));
}


/* Standard normal numbers as a pure function of (seed, tensor, element):
 * Box-Muller on two 53-bit uniforms from the counter hash. */
static double normal_at(uint64_t key, uint64_t i)
{
    uint64_t a = agn_mix64(key ^ (2 * i)), b = agn_mix64(key ^ (2 * i + 1));
    double u1 = ((double)(a >> 11) + 1.0) / 9007199254740993.0; /* (0, 1] */
    double u2 = (double)(b >> 11) / 9007199254740992.0;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

int agn_model_init_weights(agn_model *m, uint64_t seed)
{
    float *host = m->ops->host_memory ? m->params : agn_xalloc_aligned(m->n_params * sizeof(float));
    memset(host, 0, m->n_params * sizeof(float));
    double std_resid = 0.02 / sqrt(2.0 * m->cfg.n_layers);
    for (int ti = 0; ti < m->n_tensors; ti++) {
        const agn_tensor *t = &m->tensors[ti];
        float *p = host + t->offset;
        const char *dot = strrchr(t->name, '.');
        if (dot && strcmp(dot, ".bias") == 0) continue; /* biases 0 */
        if (strstr(t->name, "ln1.") || strstr(t->name, "ln2.") || strstr(t->name, "ln_f.")) {
            for (size_t i = 0; i < t->numel; i++) p[i] = 1.0f; /* LayerNorm gains */
            continue;
        }
        double std = strstr(t->name, "attn.proj.weight") || strstr(t->name, "mlp.fc2.weight")
                         ? std_resid
                         : 0.02;
        uint64_t key = agn_mix64(agn_mix64(seed ^ 0x5eed5eed5eed5eedULL) ^ (uint64_t)ti);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < t->numel; i++) p[i] = (float)(std * normal_at(key, i));
    }
    int rc = agn_model_upload(m, m->params, host);
    if (host != m->params) free(host);
    return rc;
}

/* ---- forward and backward ------------------------------------------------------------ */

int agn_model_check_batch(const agn_model *m, const agn_batch *b)
{
    if (b->B < 0 || b->B > m->max_batch)
        return agn_seterr("batch of %d rows, model sized for %d", b->B, m->max_batch);
    if (b->T < 1 || b->T > m->cfg.max_len)
        return agn_seterr("batch padded to %d positions, model has %d", b->T, m->cfg.max_len);
    for (size_t i = 0; i < (size_t)b->B * b->T; i++)
        if (b->ids[i] < 0 || b->ids[i] >= m->cfg.vocab_size)
            return agn_seterr("token id %d at row %zu outside the vocabulary (size %d)",
                              (int)b->ids[i], i / (size_t)b->T, m->cfg.vocab_size);
    if (b->labels)
        for (int i = 0; i < b->B; i++)
            if (b->labels[i] < 0 || b->labels[i] >= m->cfg.n_classes)
                return agn_seterr("label %d at row %d outside 0..%d", (int)b->labels[i], i,
                                  m->cfg.n_classes - 1);
    return 0;
}

int agn_model_submit_forward(agn_model *m, const agn_batch *b, int keep)
{
    if (b->B < 0 || b->B > m->max_batch || b->T < 1 || b->T > m->cfg.max_len)
        return agn_seterr("batch of %d x %d does not fit a model sized for %d x %d", b->B, b->T,
                          m->max_batch, m->cfg.max_len);
    return m->ops->forward(m, b, keep);
}

int agn_model_wait(agn_model *m, double *compute_s) { return m->ops->wait(m, compute_s); }

static float forward_wait(agn_model *m, const agn_batch *b, int keep)
{
    if (agn_model_submit_forward(m, b, keep) != 0 || agn_model_wait(m, NULL) != 0) return NAN;
    return (float)m->loss_sum;
}

float agn_model_forward(agn_model *m, const agn_batch *b) { return forward_wait(m, b, 1); }

float agn_model_forward_infer(agn_model *m, const agn_batch *b) { return forward_wait(m, b, 0); }

int agn_model_backward(agn_model *m, const agn_batch *b) { return m->ops->backward(m, b); }
