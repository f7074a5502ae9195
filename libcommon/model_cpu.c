/* model_cpu.c: the CPU backend (backend.h), the numerical reference of agn:
 * the activations, the forward and backward passes that call the layers of
 * layers_cpu.c in order, and the buffer operations of the trainer and the
 * sharded optimizer on host memory.  fp32 throughout; BLAS sgemm for the
 * products; OpenMP threads, with results independent of their count.
 *
 * Packing.  A batch arrives padded to T columns; forward keeps only the real
 * tokens (id != 0) as rows of the activations, so every layer costs in
 * proportion to the tokens of the batch, not to B*T.  Pad positions cannot
 * change the loss (pad keys are masked, pooling skips pads), so the loss and
 * every gradient are exactly those of the padded model, and do not depend on
 * T; tests/t-padding.c and tests/torch/crosscheck.py check both.
 * agn_model.dense = 1 computes every position instead (pad rows as queries,
 * never as keys, never pooled): the same results at the cost of a padded
 * implementation, for benchmarks that separate the two gains.
 *
 * Dropout masks: rng.h (sites: 0 the embedding sum, 1 + 2l the attention
 * output of block l, 2 + 2l the MLP output of block l). */
#include "config.h"
#include "model.h"
#include "layers_cpu.h"
#include "rng.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* ---- activations ----------------------------------------------------------- */

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd; /* [N,D], [N], [N] */
    float *qkv;                       /* [N,3D] */
    float *att;                       /* [H * sum_b len_b * nkey_b] softmax probabilities */
    float *atty;                      /* [N,D] attention output before the projection */
    float *x1;                        /* [N,D] residual after attention */
    float *ln2, *ln2_mean, *ln2_rstd; /* [N,D], [N], [N] */
    float *fch;                       /* [N,F] fc1 output, GELU input */
    float *x2;                        /* [N,D] residual after the MLP: the block's output */
    uint8_t *mask_attn, *mask_mlp;    /* [N,D] dropout keep masks, or NULL */
} layer_acts;

typedef struct {
    /* the arena: mapped once at the worst-case size, carved per batch so
     * that only the part a batch needs is ever touched */
    float *arena;
    size_t arena_floats, used;
    uint8_t *mask_arena;
    size_t mask_bytes;
    /* packing of the current batch */
    int B, N;
    int32_t *ids, *pos, *row_ex; /* [max rows] */
    int *start, *len, *nkey;     /* [max_batch] rows, real tokens (keys) */
    size_t *att_off;             /* [max_batch] */
    int dropout_on;
    float drop_scale;
    int kept; /* the last forward kept what backward needs */
    /* forward state */
    float *x0;                 /* [N,D] embeddings (after dropout) */
    /* Forward temporaries that backward does not need, shared by the
     * layers: the attention projection and the MLP output (the residual
     * backward needs only the masks), and GELU's output (backward recomputes
     * it from fch, one elementwise pass, rather than keeping F floats per
     * token and layer: the largest activation; that same pass leaves GELU's
     * derivative in tmpF for the layer's backward). */
    float *tmpD;               /* [N,D] */
    float *tmpF;               /* [N,F] */
    uint8_t *mask_emb;         /* [N,D] or NULL */
    layer_acts *layer;         /* [L] */
    float *lnf, *lnf_mean, *lnf_rstd; /* [N,D], [N], [N] */
    float *pooled;             /* [B,D] */
    float *probs, *losses;     /* [B,C], [B] */
    /* backward scratch */
    float *dres, *dA, *dB;     /* [N,D] */
    float *dqkv;               /* [N,3D] */
    float *datt;               /* like one layer's att */
    float *dF1, *dF2;          /* [N,F] */
    float *dpooled, *dlogits;  /* [B,D], [B,C] */
} agn_model_acts;

#define ACTS(m) ((agn_model_acts *)(m)->impl)


/* The parameter tensors of block l (or the others), as pointers into BUF. */
typedef struct {
    float *ln1w, *ln1b, *qkvw, *qkvb, *projw, *projb, *ln2w, *ln2b, *fc1w, *fc1b, *fc2w, *fc2b;
} block_view;

static block_view block_at(const agn_model *m, float *buf, int l)
{
    const agn_tensor *t = &m->tensors[2 + 12 * l];
    block_view v = {buf + t[0].offset, buf + t[1].offset,  buf + t[2].offset,  buf + t[3].offset,
                    buf + t[4].offset, buf + t[5].offset,  buf + t[6].offset,  buf + t[7].offset,
                    buf + t[8].offset, buf + t[9].offset, buf + t[10].offset, buf + t[11].offset};
    return v;
}

/* index of the first tensor after the blocks (ln_f.weight) */
static int tail_index(const agn_model *m) { return 2 + 12 * m->cfg.n_layers; }


/* ---- creation ------------------------------------------------------------------- */

static void *map_zeroed(size_t bytes)
{
    void *p = mmap(NULL, bytes ? bytes : 1, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return NULL;
    agn_advise_huge(p, bytes); /* only the touched part is ever backed */
    return p;
}

static void cpu_destroy(agn_model *m)
{
    agn_model_acts *a = ACTS(m);
    if (a) {
        if (a->arena) munmap(a->arena, a->arena_floats * sizeof(float));
        if (a->mask_arena) munmap(a->mask_arena, a->mask_bytes);
        free(a->ids);
        free(a->pos);
        free(a->row_ex);
        free(a->start);
        free(a->len);
        free(a->nkey);
        free(a->att_off);
        free(a->layer);
        free(a);
    }
    m->impl = NULL;
    if (!m->params_external) free(m->params);
    free(m->grads);
    free(m->adam_m);
    free(m->adam_v);
    m->params = m->grads = m->adam_m = m->adam_v = NULL;
}

static int cpu_create(agn_model *m)
{
    const agn_model_config *cfg = &m->cfg;
    m->params = agn_xalloc_aligned(m->n_params * sizeof(float));
    m->grads = agn_xalloc_aligned(m->n_params * sizeof(float));
    agn_model_acts *a = agn_xcalloc(1, sizeof *a);
    m->impl = a;
    size_t L = (size_t)cfg->n_layers, D = (size_t)cfg->d_model, F = (size_t)cfg->d_ff;
    size_t H = (size_t)cfg->n_heads, C = (size_t)cfg->n_classes, T = (size_t)cfg->max_len;
    size_t R = (size_t)m->max_batch * T, Bm = (size_t)m->max_batch;
    size_t regions = L * 20 + 40; /* each region is rounded up to 16 floats */
    a->arena_floats = L * (R * (8 * D + F + 4) + H * Bm * T * T)        /* layers */
                      + R * (3 * D + F + 2)                             /* x0, tmp, lnf */
                      + R * (6 * D + 2 * F) + H * Bm * T * T            /* backward scratch */
                      + Bm * (2 * D + 3 * C + 1) + regions * 16;
    a->arena = map_zeroed(a->arena_floats * sizeof(float));
    a->mask_bytes = (2 * L + 1) * (R * D + 64);
    a->mask_arena = map_zeroed(a->mask_bytes);
    if (!a->arena || !a->mask_arena)
        return agn_seterr_errno("cannot map %.1f MiB of activations",
                                (double)(a->arena_floats * sizeof(float) + a->mask_bytes) / 1048576.0);
    a->ids = agn_xmalloc(R * sizeof(int32_t));
    a->pos = agn_xmalloc(R * sizeof(int32_t));
    a->row_ex = agn_xmalloc(R * sizeof(int32_t));
    a->start = agn_xcalloc(Bm, sizeof(int));
    a->len = agn_xcalloc(Bm, sizeof(int));
    a->nkey = agn_xcalloc(Bm, sizeof(int));
    a->att_off = agn_xcalloc(Bm, sizeof(size_t));
    a->layer = agn_xcalloc(L, sizeof(layer_acts));
    return 0;
}

static int cpu_alloc_optim(agn_model *m)
{
    /* agn_xalloc_aligned zeroes them */
    m->adam_m = agn_xalloc_aligned(m->n_params * sizeof(float));
    m->adam_v = agn_xalloc_aligned(m->n_params * sizeof(float));
    return 0;
}

/* One row of a mask; the loop vectorizes (64-bit multiplies) in the AVX-512
 * build that the loader picks where the CPU has it. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__has_attribute)
#if __has_attribute(target_clones)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
#endif
static void mask_row(uint8_t *mr, uint64_t key, int D, uint32_t thresh)
{
#pragma omp simd
    for (int d = 0; d < D; d++) mr[d] = (uint8_t)agn_dropout_row_keep(key, d, thresh);
}

/* The masks of rows [r0, r1) of one site (no parallel loop: the caller's
 * thread does them all). */
static void make_mask_rows(uint8_t *mask, const agn_model *m, const agn_batch *b, int site,
                           int r0, int r1)
{
    const agn_model_acts *a = ACTS(m);
    int D = m->cfg.d_model;
    uint32_t thresh = agn_dropout_threshold(m->cfg.dropout);
    for (int r = r0; r < r1; r++) {
        uint64_t ex = b->example_index ? b->example_index[a->row_ex[r]] : (uint64_t)a->row_ex[r];
        uint64_t key = agn_dropout_row_key(agn_dropout_key(b->seed, b->epoch, ex), site, a->pos[r]);
        mask_row(mask + (size_t)r * D, key, D, thresh);
    }
}

/* ---- forward -------------------------------------------------------------------------- */

static float *carve(agn_model_acts *a, size_t n)
{
    float *p = a->arena + a->used;
    a->used += (n + 15) / 16 * 16;
    if (a->used > a->arena_floats) { /* a sizing bug in agn_model_create, never data */
        fprintf(stderr, "model.c: activation arena too small (%zu > %zu floats)\n", a->used,
                a->arena_floats);
        abort();
    }
    return p;
}

/* Packs the real tokens of the batch into rows and carves the arena. */
static void pack_batch(agn_model *m, const agn_batch *b, int keep)
{
    agn_model_acts *a = ACTS(m);
    const agn_model_config *c = &m->cfg;
    int N = 0, H = c->n_heads;
    size_t att = 0;
    for (int i = 0; i < b->B; i++) {
        const int32_t *row = b->ids + (size_t)i * b->T;
        a->start[i] = N;
        if (m->dense) {
            /* every position is a row; the keys are the real tokens, which
             * lead the row (pad only trails in a batch) */
            int nk = b->T;
            while (nk > 0 && row[nk - 1] == 0) nk--;
            for (int t = 0; t < b->T; t++) {
                int32_t id = row[t];
                a->ids[N] = id >= 0 && id < c->vocab_size ? id : 1;
                a->pos[N] = t;
                a->row_ex[N] = i;
                N++;
            }
            a->nkey[i] = nk;
        } else {
            for (int t = 0; t < b->T; t++) {
                int32_t id = row[t];
                if (id == 0) continue;
                if (id < 0 || id >= c->vocab_size) id = 1; /* unchecked batch: <unk>, never a crash */
                a->ids[N] = id;
                a->pos[N] = t;
                a->row_ex[N] = i;
                N++;
            }
            a->nkey[i] = N - a->start[i];
        }
        a->len[i] = N - a->start[i];
        a->att_off[i] = att;
        att += (size_t)H * (size_t)a->len[i] * (size_t)a->nkey[i];
    }
    a->B = b->B;
    a->N = N;
    a->dropout_on = b->train && c->dropout > 0.0f;
    a->drop_scale = a->dropout_on ? 1.0f / (1.0f - c->dropout) : 1.0f;

    size_t D = (size_t)c->d_model, F = (size_t)c->d_ff, C = (size_t)c->n_classes, n = (size_t)N;
    size_t Bn = (size_t)b->B;
    a->used = 0;
    size_t mused = 0;
#define MASK() (a->dropout_on ? (mused += (n * D + 63) / 64 * 64, a->mask_arena + mused - (n * D + 63) / 64 * 64) : NULL)
    a->x0 = carve(a, n * D);
    a->tmpD = carve(a, n * D);
    a->tmpF = carve(a, n * F);
    a->mask_emb = MASK();
    for (int l = 0; l < c->n_layers; l++) {
        layer_acts *la = &a->layer[l];
        if (!keep && l > 0) { /* inference: every layer reuses layer 0's buffers */
            *la = a->layer[0];
            continue;
        }
        la->ln1 = carve(a, n * D);
        la->ln1_mean = carve(a, n);
        la->ln1_rstd = carve(a, n);
        la->qkv = carve(a, 3 * n * D);
        la->att = carve(a, att);
        la->atty = carve(a, n * D);
        la->x1 = carve(a, n * D);
        la->ln2 = carve(a, n * D);
        la->ln2_mean = carve(a, n);
        la->ln2_rstd = carve(a, n);
        la->fch = carve(a, n * F);
        la->x2 = carve(a, n * D);
        la->mask_attn = MASK();
        la->mask_mlp = MASK();
    }
#undef MASK
    a->lnf = carve(a, n * D);
    a->lnf_mean = carve(a, n);
    a->lnf_rstd = carve(a, n);
    a->pooled = carve(a, Bn * D);
    a->probs = carve(a, Bn * C);
    a->losses = carve(a, Bn);
    a->kept = keep;
    if (!keep) return;
    a->dres = carve(a, n * D);
    a->dA = carve(a, n * D);
    a->dB = carve(a, n * D);
    a->dqkv = carve(a, 3 * n * D);
    a->datt = carve(a, att);
    a->dF1 = carve(a, n * F);
    a->dF2 = carve(a, n * F);
    a->dpooled = carve(a, Bn * D);
    a->dlogits = carve(a, Bn * C);
}

/* This thread's share of the batch: whole examples [*b0, *b1), about one
 * thread's fraction of the rows, and their rows [*r0, *r1). */
static void example_share(const agn_model_acts *a, int *b0, int *b1, int *r0, int *r1)
{
#ifdef _OPENMP
    int t = omp_get_thread_num(), nt = omp_get_num_threads();
#else
    int t = 0, nt = 1;
#endif
    int B = a->B, N = a->N, e[2];
    for (int k = 0; k < 2; k++) { /* the first example starting at or past the target row */
        long target = (long)N * (t + k) / nt;
        int lo = 0, hi = B;
        while (lo < hi) {
            int mid = (lo + hi) / 2;
            if (a->start[mid] < target) lo = mid + 1;
            else hi = mid;
        }
        e[k] = t + k == nt ? B : lo;
    }
    *b0 = e[0];
    *b1 = e[1];
    *r0 = e[0] < B ? a->start[e[0]] : N;
    *r1 = e[1] < B ? a->start[e[1]] : N;
}

/* The row-local part of forward for rows [r0, r1), stage l: the second half
 * of block l - 1 (projection of the attention output, residual, layernorm,
 * MLP, residual) or, for l = 0, the embeddings; then the first half of
 * block l (its dropout masks, layernorm, QKV product) or, after the last
 * block, the final layernorm. */
static void rows_forward(agn_model *m, const agn_batch *b, int l, int r0, int r1)
{
    const agn_model_config *c = &m->cfg;
    agn_model_acts *a = ACTS(m);
    int n = r1 - r0, D = c->d_model, F = c->d_ff;
    size_t o = (size_t)r0 * D, oF = (size_t)r0 * F, nD = (size_t)n * D;
    float *p = m->params;
    const agn_tensor *tt = m->tensors;
    const float *x;
    if (l == 0) {
        agn_embedding_forward_cpu(a->x0 + o, a->ids + r0, a->pos + r0, p + tt[0].offset,
                          p + tt[1].offset, n, D);
        if (a->dropout_on) {
            make_mask_rows(a->mask_emb, m, b, 0, r0, r1);
            agn_dropout_forward_cpu(a->x0 + o, a->mask_emb + o, a->drop_scale, nD);
        }
        x = a->x0;
    } else {
        layer_acts *la = &a->layer[l - 1];
        block_view w = block_at(m, p, l - 1);
        const float *xin = l > 1 ? a->layer[l - 2].x2 : a->x0;
        const uint8_t *ma = la->mask_attn ? la->mask_attn + o : NULL;
        const uint8_t *mm = la->mask_mlp ? la->mask_mlp + o : NULL;
        agn_matmul_forward_cpu(a->tmpD + o, la->atty + o, w.projw, w.projb, n, D, D);
        agn_residual_forward_cpu(la->x1 + o, xin + o, a->tmpD + o, ma, a->drop_scale, nD);
        agn_layernorm_forward_cpu(la->ln2 + o, la->ln2_mean + r0, la->ln2_rstd + r0, la->x1 + o, w.ln2w,
                          w.ln2b, n, D);
        agn_matmul_forward_cpu(la->fch + oF, la->ln2 + o, w.fc1w, w.fc1b, n, D, F);
        agn_gelu_forward_cpu(a->tmpF + oF, la->fch + oF, (size_t)n * F);
        agn_matmul_forward_cpu(a->tmpD + o, a->tmpF + oF, w.fc2w, w.fc2b, n, F, D);
        agn_residual_forward_cpu(la->x2 + o, la->x1 + o, a->tmpD + o, mm, a->drop_scale, nD);
        x = la->x2;
    }
    if (l < c->n_layers) {
        layer_acts *la = &a->layer[l];
        block_view w = block_at(m, p, l);
        if (a->dropout_on) {
            make_mask_rows(la->mask_attn, m, b, 1 + 2 * l, r0, r1);
            make_mask_rows(la->mask_mlp, m, b, 2 + 2 * l, r0, r1);
        }
        agn_layernorm_forward_cpu(la->ln1 + o, la->ln1_mean + r0, la->ln1_rstd + r0, x + o, w.ln1w,
                          w.ln1b, n, D);
        agn_matmul_forward_cpu(la->qkv + (size_t)r0 * 3 * D, la->ln1 + o, w.qkvw, w.qkvb, n, D, 3 * D);
    } else {
        int ti = tail_index(m);
        agn_layernorm_forward_cpu(a->lnf + o, a->lnf_mean + r0, a->lnf_rstd + r0, x + o,
                          p + tt[ti].offset, p + tt[ti + 1].offset, n, D);
    }
}

static int cpu_forward(agn_model *m, const agn_batch *b, int keep)
{
    const agn_model_config *c = &m->cfg;
    agn_model_acts *a = ACTS(m);
    pack_batch(m, b, keep);
    int B = b->B, D = c->d_model, H = c->n_heads, C = c->n_classes;
    float *p = m->params;
    const agn_tensor *tt = m->tensors;

    /* Every layer but attention works row by row, and attention within an
     * example, so each thread takes whole examples (about its fraction of
     * the rows) through the whole forward pass up to pooling: one parallel
     * region and no barrier, and a row's data stays in its thread's cache.
     * The layers called inside run on that share alone (their own parallel
     * loops are nested, hence one thread; OpenBLAS runs single-threaded
     * inside a parallel region); no result depends on the split. */
#pragma omp parallel
    {
        int b0, b1, r0, r1;
        example_share(a, &b0, &b1, &r0, &r1);
        for (int l = 0; l <= c->n_layers; l++) {
            if (l > 0 && b1 > b0) {
                layer_acts *la = &a->layer[l - 1];
                agn_attention_forward_cpu(la->atty, la->att, la->qkv, a->start + b0, a->len + b0,
                                  a->nkey + b0, a->att_off + b0, b1 - b0, D, H);
            }
            if (r1 > r0) rows_forward(m, b, l, r0, r1);
        }
        if (b1 > b0)
            agn_meanpool_forward_cpu(a->pooled + (size_t)b0 * D, a->lnf, a->start + b0, a->nkey + b0,
                             b1 - b0, D);
    }
    int ti = tail_index(m);
    agn_matmul_forward_cpu(m->logits, a->pooled, p + tt[ti + 2].offset, p + tt[ti + 3].offset, B, D, C);
    m->loss_sum = agn_crossentropy_forward_cpu(a->losses, a->probs, m->logits, b->labels, B, C);
    return 0;
}

/* ---- backward --------------------------------------------------------------------------- */

static void grad_ready(agn_model *m, int tensor_index)
{
    if (m->on_grad_ready) m->on_grad_ready(m->on_grad_ready_ctx, m->tensors[tensor_index].offset);
}

/* memset of activation-sized buffers, split over the threads */
static void zero(float *p, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= 65536)
    for (size_t i = 0; i < n; i += 16384) memset(p + i, 0, (n - i < 16384 ? n - i : 16384) * sizeof(float));
}


static int cpu_backward(agn_model *m, const agn_batch *b)
{
    const agn_model_config *c = &m->cfg;
    agn_model_acts *a = ACTS(m);
    if (!b->labels || !a->kept) return 0; /* no loss, or an inference forward */
    int N = a->N, B = a->B, D = c->d_model, F = c->d_ff, H = c->n_heads, C = c->n_classes;
    size_t ND = (size_t)N * D, NF = (size_t)N * F;
    float *p = m->params, *g = m->grads;
    const agn_tensor *tt = m->tensors;
    int ti = tail_index(m);

    /* head and pooling */
    zero(a->dlogits, (size_t)B * C);
    agn_crossentropy_backward_cpu(a->dlogits, a->probs, b->labels, b->loss_scale, B, C);
    agn_matmul_backward_to_cpu(a->dpooled, g + tt[ti + 2].offset, g + tt[ti + 3].offset, a->dlogits,
                       a->pooled, p + tt[ti + 2].offset, B, D, C);
    grad_ready(m, ti + 2);
    zero(a->dA, ND);
    agn_meanpool_backward_cpu(a->dA, a->dpooled, a->start, a->nkey, B, D);
    zero(a->dres, ND);
    const float *xL = c->n_layers > 0 ? a->layer[c->n_layers - 1].x2 : a->x0;
    agn_layernorm_backward_cpu(a->dres, g + tt[ti].offset, g + tt[ti + 1].offset, a->dA, xL,
                       p + tt[ti].offset, a->lnf_mean, a->lnf_rstd, N, D);
    grad_ready(m, ti);

    /* blocks, last to first; dres holds d loss / d (block output) */
    for (int l = c->n_layers - 1; l >= 0; l--) {
        layer_acts *la = &a->layer[l];
        block_view w = block_at(m, p, l), dw = block_at(m, g, l);
        const float *x = l > 0 ? a->layer[l - 1].x2 : a->x0;
        int t0 = 2 + 12 * l;

        /* x2 = x1 + dropout(fc2(gelu(fc1(ln2(x1))))) */
        /* without dropout the branch's output gradient is dres itself; it
         * is read before agn_layernorm_backward_cpu adds into dres below */
        const float *dy = a->dres;
        if (la->mask_mlp) {
            agn_dropout_backward_to_cpu(a->dA, a->dres, la->mask_mlp, a->drop_scale, ND);
            dy = a->dA;
        }
        /* fc2's input recomputed, and GELU's derivative beside it in tmpF
         * (a forward temporary, free during backward) */
        agn_gelu_value_grad_cpu(a->dF2, a->tmpF, la->fch, NF);
        agn_matmul_backward_to_cpu(a->dF1, dw.fc2w, dw.fc2b, dy, a->dF2, w.fc2w, N, F, D);
        grad_ready(m, t0 + 10);
        agn_mul_cpu(a->dF2, a->tmpF, a->dF1, NF);
        agn_matmul_backward_to_cpu(a->dB, dw.fc1w, dw.fc1b, a->dF2, la->ln2, w.fc1w, N, D, F);
        grad_ready(m, t0 + 8);
        agn_layernorm_backward_cpu(a->dres, dw.ln2w, dw.ln2b, a->dB, la->x1, w.ln2w, la->ln2_mean,
                           la->ln2_rstd, N, D);
        grad_ready(m, t0 + 6);

        /* x1 = x + dropout(proj(attention(qkv(ln1(x))))) */
        dy = a->dres;
        if (la->mask_attn) {
            agn_dropout_backward_to_cpu(a->dA, a->dres, la->mask_attn, a->drop_scale, ND);
            dy = a->dA;
        }
        agn_matmul_backward_to_cpu(a->dB, dw.projw, dw.projb, dy, la->atty, w.projw, N, D, D);
        grad_ready(m, t0 + 4);
        agn_attention_backward_to_cpu(a->dqkv, a->datt, a->dB, la->qkv, la->att, a->start, a->len, a->nkey,
                           a->att_off, B, D, H);
        agn_matmul_backward_to_cpu(a->dA, dw.qkvw, NULL, a->dqkv, la->ln1, w.qkvw, N, D, 3 * D);
        /* The key bias adds q_i . b_k to every score of row i, which the
         * softmax ignores: its gradient is exactly 0, and computing it would
         * only feed rounding noise to Adam (whose m / (sqrt(v) + eps) turns
         * noise into steps).  Only the Q and V parts are accumulated. */
        agn_bias_backward2_cpu(dw.qkvb, a->dqkv, dw.qkvb + 2 * D, a->dqkv + 2 * D, N, D, 3 * D);
        grad_ready(m, t0 + 2);
        agn_layernorm_backward_cpu(a->dres, dw.ln1w, dw.ln1b, a->dA, x, w.ln1w, la->ln1_mean,
                           la->ln1_rstd, N, D);
        grad_ready(m, t0);
    }

    /* embeddings */
    const float *dx = a->dres;
    if (a->mask_emb) {
        agn_dropout_backward_to_cpu(a->dA, a->dres, a->mask_emb, a->drop_scale, ND);
        dx = a->dA;
    }
    agn_embedding_backward_cpu(g + tt[0].offset, g + tt[1].offset, dx, a->ids, a->pos, N, D);
    grad_ready(m, 0);
    return 0;
}


/* ---- buffer operations -------------------------------------------------------------- */

static int cpu_wait(agn_model *m, double *compute_s)
{
    (void)m;
    if (compute_s) *compute_s = -1; /* the caller's clock measures the CPU */
    return 0;
}

static int cpu_zero(agn_model *m, float *buf, size_t n)
{
    (void)m;
    zero(buf, n); /* split over the threads: one core's stores alone do not fill the memory bus */
    return 0;
}

static int cpu_sumsq(agn_model *m, const float *base, const agn_span *spans, int n, double *out)
{
    (void)m;
    for (int i = 0; i < n; i++) {
        const float *g = base + spans[i].offset;
        double s = 0;
#pragma omp simd reduction(+ : s)
        for (size_t k = 0; k < spans[i].count; k++) s += (double)g[k] * g[k];
        *out += s;
    }
    return 0;
}

static int cpu_norm(agn_model *m, const float *buf, size_t n, double *out)
{
    (void)m;
    *out = agn_grad_norm(buf, n);
    return 0;
}

static int cpu_scale(agn_model *m, float *base, const agn_span *spans, int n, float coef)
{
    (void)m;
    for (int i = 0; i < n; i++) {
        float *g = base + spans[i].offset;
#pragma omp simd
        for (size_t k = 0; k < spans[i].count; k++) g[k] *= coef;
    }
    return 0;
}

static int cpu_rows(agn_model *m, float *dst, const float *src, const int32_t *rows, size_t n,
                    size_t dim, int scatter)
{
    (void)m;
    for (size_t i = 0; i < n; i++) {
        if (!src) memset(dst + (size_t)rows[i] * dim, 0, dim * sizeof(float));
        else if (scatter) memcpy(dst + (size_t)rows[i] * dim, src + i * dim, dim * sizeof(float));
        else memcpy(dst + i * dim, src + (size_t)rows[i] * dim, dim * sizeof(float));
    }
    return 0;
}

static int cpu_adamw(agn_model *m, const agn_tensor *pieces, int n, const agn_adam_args *a)
{
    agn_adamw_pieces(m->params, m->adam_m, m->adam_v, m->grads, pieces, n, a);
    return 0;
}

static int cpu_copy(agn_model *m, float *dst, const float *src, size_t n)
{
    (void)m;
    if (dst != src) memmove(dst, src, n * sizeof(float));
    return 0;
}

static void *cpu_alloc(agn_model *m, size_t bytes)
{
    (void)m;
    return agn_xalloc_aligned(bytes ? bytes : 1);
}

static void cpu_release(agn_model *m, void *p)
{
    (void)m;
    free(p);
}

const agn_backend_ops agn_backend_cpu = {
    .name = "cpu",
    .host_memory = 1,
    .create = cpu_create,
    .destroy = cpu_destroy,
    .alloc_optim = cpu_alloc_optim,
    .forward = cpu_forward,
    .backward = cpu_backward,
    .wait = cpu_wait,
    .zero = cpu_zero,
    .sumsq = cpu_sumsq,
    .norm = cpu_norm,
    .scale = cpu_scale,
    .rows = cpu_rows,
    .adamw = cpu_adamw,
    .to_host = cpu_copy,
    .from_host = cpu_copy,
    .alloc = cpu_alloc,
    .release = cpu_release,
};
