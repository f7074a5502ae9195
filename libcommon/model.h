/* model.h: the transformer classifier of DESIGN.md (Model), whichever
 * backend computes it (backend.h: the CPU reference, model_cpu.c, or CUDA).
 * Parameters, gradients and the Adam moments are one flat fp32 buffer each,
 * carved by a single table of named tensors in checkpoint order; the
 * all-reduce, the optimizer and the checkpoint all walk that table.
 *
 * Contract with the trainer (train.c) and the data-parallel layer (comm.h):
 *  - agn_model_forward() returns the SUM of per-example cross-entropy losses
 *    over the batch rows; the trainer scales by 1/global_batch.
 *  - agn_model_backward() ADDS to m->grads the gradient of
 *    loss_scale * sum(losses); the caller zeroes grads before a step.
 *  - While backward runs it calls m->on_grad_ready(ctx, offset) each time the
 *    gradients in m->grads[offset .. n_params) have been issued (the table is
 *    in forward order, so backward completes it from the end): on the CPU
 *    they are final then; on a GPU they are final in the compute stream's
 *    order, so a transport that works on that stream (NCCL) may start on
 *    them at once.  The trainer reduces buckets while backward goes on.
 *  - Dropout masks are a pure function of (seed, epoch, example_index, site,
 *    position, channel): the same example gets the same mask for any rank
 *    count or batch slicing. */
#ifndef AGN_MODEL_H
#define AGN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"

typedef struct {
    int vocab_size; /* V, specials included */
    int max_len;    /* T, positions */
    int d_model;    /* D */
    int n_heads;    /* H, divides D */
    int n_layers;   /* L */
    int d_ff;       /* F */
    int n_classes;  /* C */
    float dropout;  /* probability, 0 disables */
} agn_model_config;

/* One named tensor of the parameter table. */
struct agn_tensor {
    char name[48];  /* checkpoint name, e.g. "blocks.0.attn.qkv.weight" */
    int ndim;       /* 1 or 2 */
    int shape[2];   /* PyTorch layout: [out, in] for matrices */
    size_t offset;  /* into params / grads / m / v, in floats */
    size_t numel;
    int decay;      /* 1: AdamW weight decay applies (matrices, embeddings) */
};

/* A batch as the model sees it: B rows padded to T_pad <= max_len, in host
 * memory whatever the backend. */
struct agn_batch {
    int B, T;                        /* rows, padded length of this batch */
    const int32_t *ids;              /* [B*T] token ids, 0 = <pad> */
    const int32_t *labels;           /* [B] classes, or NULL (no loss) */
    const uint64_t *example_index;   /* [B] global example index (dropout masks) */
    uint64_t seed;                   /* run seed (dropout masks) */
    uint32_t epoch;                  /* (dropout masks) */
    int train;                       /* 1: dropout on */
    float loss_scale;                /* backward: d(total)/d(loss_b) = loss_scale */
};

/* Numbers of the products on backends that have a choice (CUDA): bf16
 * inputs with fp32 accumulation, or fp32 throughout (TF32 off).  The CPU
 * computes in fp32 whatever is asked. */
typedef enum { AGN_PREC_FP32 = 0, AGN_PREC_BF16 = 1 } agn_precision;

struct agn_model {
    agn_model_config cfg;
    int n_tensors;
    agn_tensor *tensors; /* table, checkpoint order */
    size_t n_params;
    const agn_backend_ops *ops; /* where it computes (backend.h) */
    void *impl;                 /* the backend's state */
    int device;                 /* the backend's device index (cuda) */
    agn_precision precision;
    /* the backend's memory (backend.h): host for cpu, device for cuda */
    float *params;       /* [n_params] */
    float *grads;        /* [n_params] */
    float *adam_m, *adam_v; /* [n_params] each, after agn_model_alloc_optim; else NULL */
    int max_batch;       /* rows the activations were sized for */
    /* host memory, valid after the forward pass has been waited for */
    float *logits;       /* [max_batch * C] */
    double loss_sum;     /* summed cross-entropy of the last forward */
    /* backward progress callback, may be NULL */
    void (*on_grad_ready)(void *ctx, size_t offset);
    void *on_grad_ready_ctx;
    /* 0 (default): only real tokens become rows, so cost follows the tokens
     * of the batch whatever its padding.  1: every position of the padded
     * batch is computed, as a padded implementation would (pad rows are
     * queries, never keys, never pooled): same loss and gradients, for
     * measuring the implementation apart from the gain of skipping pads. */
    int dense;
    int params_external; /* params belong to the caller (agn_model_use_params) */
};

/* Checks a config (heads divide D, sizes positive, ...); -1 with a message. */
int agn_model_config_check(const agn_model_config *cfg);
/* Allocates parameters, gradients and activations for up to MAX_BATCH rows
 * of max_len on the CPU; parameters zero until agn_model_init_weights(). */
int agn_model_create(agn_model *m, const agn_model_config *cfg, int max_batch);
/* The same on backend OPS, device DEVICE, in PRECISION. */
int agn_model_create_on(agn_model *m, const agn_model_config *cfg, int max_batch,
                        const agn_backend_ops *ops, int device, agn_precision precision);
void agn_model_free(agn_model *m);
/* The Adam moments (m->adam_m, m->adam_v), zero; training only. */
int agn_model_alloc_optim(agn_model *m);
/* Makes BUF (n_params floats, 64-byte aligned, owned by the caller and
 * outliving the model) the parameters instead of the model's own buffer,
 * whose contents are dropped: data-parallel ranks on one host share one copy
 * (comm.h, agn_comm_shared).  Host-memory backends only: -1 otherwise. */
int agn_model_use_params(agn_model *m, float *buf);
/* DESIGN.md init: N(0, 0.02), residual projections N(0, 0.02/sqrt(2L)),
 * biases 0, LayerNorm gains 1; a pure function of SEED, computed on the
 * host and copied to the backend. */
int agn_model_init_weights(agn_model *m, uint64_t seed);
/* Copies one of the model's buffers (m->params, m->adam_m, ...) to or from
 * N floats of host memory; on a host-memory backend to a buffer that is
 * itself, nothing. */
int agn_model_download(agn_model *m, float *host, const float *buf);
int agn_model_upload(agn_model *m, float *buf, const float *host);
/* Checks a batch against the model (B, T, token ids, labels); -1 with a
 * message.  Forward never crashes on an unchecked batch (an out-of-range id
 * becomes <unk>), but callers reading untrusted data should check first. */
int agn_model_check_batch(const agn_model *m, const agn_batch *b);
/* Whether element (site, position, channel) of the example of KEY
 * (agn_dropout_key, rng.h, which documents the hash) is kept. */
int agn_dropout_keep(uint64_t key, int site, int position, int channel, float p);
/* Finds a tensor by name; NULL if absent. */
const agn_tensor *agn_model_tensor(const agn_model *m, const char *name);

/* Forward pass, waited for; fills m->logits [B, C]; returns the summed
 * cross-entropy over the rows when b->labels is set, else 0.  A batch larger
 * than the model was created for (B > max_batch, T > max_len), or a backend
 * failure, returns NaN with a message. */
float agn_model_forward(agn_model *m, const agn_batch *b);
/* The same forward pass for inference (evaluation, prediction): identical
 * logits and loss, but the layers share one set of activation buffers, so
 * memory does not grow with n_layers.  agn_model_backward() after it does
 * nothing. */
float agn_model_forward_infer(agn_model *m, const agn_batch *b);
/* Backward of the last forward (same batch); accumulates into m->grads.
 * The key third of each attn.qkv.bias gradient is exactly 0 analytically
 * (softmax ignores a constant added to every score of a row) and is left at
 * exactly 0 rather than filled with rounding noise.  Issued, not waited
 * for: agn_model_wait() before reading results on a device backend. */
int agn_model_backward(agn_model *m, const agn_batch *b);
/* The trainer's form: issue the forward pass (KEEP as in backend.h) without
 * waiting; m->loss_sum and m->logits are valid after agn_model_wait(). */
int agn_model_submit_forward(agn_model *m, const agn_batch *b, int keep);
/* Waits for what was issued; *compute_s as backend.h's wait(). */
int agn_model_wait(agn_model *m, double *compute_s);

/* ---- optimizer --------------------------------------------------------- */

typedef struct {
    float lr;            /* peak learning rate */
    float beta1, beta2, eps;
    float weight_decay;
    float grad_clip;     /* global norm; 0 disables */
    long warmup_steps;
    long total_steps;    /* for the decay */
} agn_optim_config;

/* The learning rate at STEP (0-based) of the schedule, W = warmup_steps,
 * S = total_steps: lr * (step + 1) / W while step < W (linear warmup, the
 * W-th step at the peak), then lr * (S - step) / (S - W) (linear decay,
 * reaching 0 at S), 0 from S on; S <= 0: no decay.  Exact table in optim.c. */
float agn_lr_at(const agn_optim_config *oc, long step);
/* Global L2 norm of a host gradient buffer, in fixed chunks. */
double agn_grad_norm(const float *grads, size_t n);
/* clip_grad_norm_'s factor for NORM: min(1, grad_clip / (norm + 1e-6)), 1
 * without clipping or for a norm that is not finite. */
float agn_clip_coef(const agn_optim_config *oc, double norm);
/* AdamW over PIECES of host buffers (the CPU backend's adamw). */
void agn_adamw_pieces(float *params, float *adam_m, float *adam_v, const float *grads,
                      const agn_tensor *pieces, int n, const agn_adam_args *a);
/* One AdamW step (t = step + 1 for bias correction) over the parameter table,
 * clipping by the global norm first; returns the pre-clip norm. M and V are
 * the Adam moments, same layout as params. */
double agn_adamw_step(agn_model *m, float *adam_m, float *adam_v, const agn_optim_config *oc,
                      long step, float lr);

#endif
