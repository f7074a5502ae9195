/* model_cuda.cu: the CUDA backend (backend.h), agn_backend_cuda_ops: the
 * model of model_cpu.c on one GPU, m->device.
 *
 * Memory.  One cudaMalloc per family: parameters, gradients, the two Adam
 * moments, the bf16 shadow of the parameters (bf16 precision), the
 * activations, the index block; each carved by the parameter table or by
 * fixed sizes for max_batch x max_len rows, so every address is fixed for
 * the life of the model (what a CUDA graph needs).  Logits, the loss, the
 * sums of squares and the index block have pinned host copies.
 *
 * A step.  forward() packs the batch on the host exactly as model_cpu.c
 * (cuda_plan.c), uploads the index block, and issues the layers in the
 * CPU's order on the compute stream over Npad rows, the packed row count
 * rounded up to a bucket (cuda_plan.h explains the padding rows);
 * backward() issues the backward pass and calls m->on_grad_ready at the
 * CPU's points.  With graphs on (the default; AGN_CUDA_GRAPHS=0 or
 * agn_cuda_model_set_graphs turn them off), a sequence runs directly the
 * first time its key (bucket, batch size, dropout, labels, loss scale;
 * cuda_plan.h) is seen, is captured the second time and replayed after.
 * The backward pass is captured as one graph per grad-ready point, so a
 * replay launches a segment, makes that point's on_grad_ready call, and
 * launches the next: a transport still starts on each gradient as soon as
 * it has been issued.  wait() synchronises,
 * copies the logits and the loss to m->logits and m->loss_sum, finishes
 * the pending sums of squares, and reports the device time between events
 * recorded around forward and backward.
 *
 * Precision.  AGN_PREC_BF16: the products take bf16 inputs with fp32
 * accumulation (matmul_cublaslt.h); the bf16 copy of the parameters is
 * refreshed from the fp32 master weights at the start of every forward pass
 * (one elementwise pass), which also covers parameters written by anyone
 * else (checkpoint loads, the transport's all-gather).  Everything else is
 * fp32.  AGN_PREC_FP32: fp32 products with TF32 off. */
#include "config.h"
extern "C" {
#include "model.h"
#include "device.h"
#include "cuda_plan.h"
#include "rng.h"
}
#include "model_cuda.h"
#include "cuda_check.h"
#include "layers_cuda.h"
#include "matmul_cublaslt.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define MAX_GRAPHS 64
#define SUMSQ_SLOTS 1024  /* initial; grows */
#define SHORT_SPAN 65536  /* spans up to this long go in one launch, a block each */
#define MAX_PENDING 64

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd, *qkv, *att, *atty, *x1, *ln2, *ln2_mean, *ln2_rstd, *fch, *x2;
} layer_acts;

/* One key's graphs: the forward pass is one segment; the backward pass one
 * segment per grad-ready point, each ending at it (mark[k], a tensor
 * index), so that a replay makes the on_grad_ready calls between segment
 * launches as the direct run does. */
typedef struct {
    agn_cuda_graph_key key;
    int captured;           /* 0: seen once, run directly */
    cudaGraphExec_t *segs;  /* [n_segs] */
    int *mark;              /* [n_segs]: the grad-ready point ending segment k, or -1 */
    int n_segs, cap_segs;
} graph_entry;

typedef struct {
    double *out;
    int slot, n, is_norm;
} pending_sum;

typedef struct {
    cudaStream_t stream;
    cudaEvent_t ev_start, ev_stop, ev_upload, ev_rows;
    int timed; /* ev_start and ev_stop recorded since the last wait */
    agn_mm *mm;
    agn_cuda_ws ws;
    long R; /* rows of the activations */
    int BM;
    /* device families */
    float *moments;   /* adam m then v */
    void *shadow;     /* bf16 [n_params], or NULL */
    float *acts;
    void *d_index, *h_index;
    agn_cuda_index_layout lay;
    int *count; /* host scratch of the row grouping */
    layer_acts *layer;
    float *x0, *tmpD, *tmpF, *lnf, *lnf_mean, *lnf_rstd, *pooled, *logits, *probs, *losses,
        *loss_sum;
    float *dres, *dA, *dB, *dqkv, *datt, *dF1, *dF2, *dpooled, *dlogits;
    float *h_logits, *h_loss; /* pinned */
    int logits_pending;       /* B of a forward whose logits wait() copies */
    int loss_pending;
    /* sums of squares */
    double *d_sums, *h_sums, *sumsq_scratch;
    size_t sumsq_cap; /* elements the scratch serves */
    int n_slots, cap_slots;
    /* span lists uploaded for the one-launch kernels */
    size_t *d_spans, *h_spans;
    size_t spans_cap; /* pairs */
    cudaEvent_t ev_spans;
    pending_sum pending[MAX_PENDING];
    int n_pending;
    /* rows of backend.h's rows() */
    int32_t *d_rows, *h_rows;
    size_t rows_cap;
    /* the last forward */
    agn_cuda_plan plan;
    int kept, have_forward;
    /* graphs */
    int use_graphs, capturing;
    graph_entry *cap;   /* the entry being captured */
    int cap_failed;     /* a segment's capture failed (message set) */
    graph_entry graphs[MAX_GRAPHS];
    int n_graphs;
    long replayed;
    int captured_total;
} cuda_impl;

#define IMPL(m) ((cuda_impl *)(m)->impl)

static int tail_index(const agn_model *m) { return 2 + 12 * m->cfg.n_layers; }

/* ---- creation and destruction ---------------------------------------------------- */

static void free_entry(graph_entry *ge)
{
    for (int k = 0; k < ge->n_segs; k++)
        if (ge->segs[k]) cudaGraphExecDestroy(ge->segs[k]);
    free(ge->segs);
    free(ge->mark);
    memset(ge, 0, sizeof *ge);
}

/* an entry whose capture failed: its segments dropped, the key kept */
static void graph_key_reset(graph_entry *ge)
{
    agn_cuda_graph_key key = ge->key;
    free_entry(ge);
    ge->key = key;
}

static void drop_graphs(cuda_impl *c)
{
    for (int i = 0; i < c->n_graphs; i++) free_entry(&c->graphs[i]);
    c->n_graphs = 0;
}

static void cuda_destroy(agn_model *m)
{
    cuda_impl *c = IMPL(m);
    if (c) {
        if (c->stream) cudaStreamSynchronize(c->stream);
        drop_graphs(c);
        agn_mm_destroy(c->mm);
        cudaFree(c->moments);
        cudaFree(c->shadow);
        cudaFree(c->acts);
        cudaFree(c->d_index);
        cudaFree(c->ws.buf);
        cudaFree(c->d_sums);
        cudaFree(c->sumsq_scratch);
        cudaFree(c->d_rows);
        cudaFree(c->d_spans);
        cudaFreeHost(c->h_spans);
        if (c->ev_spans) cudaEventDestroy(c->ev_spans);
        cudaFreeHost(c->h_index);
        cudaFreeHost(c->h_logits);
        cudaFreeHost(c->h_loss);
        cudaFreeHost(c->h_sums);
        cudaFreeHost(c->h_rows);
        if (c->ev_start) cudaEventDestroy(c->ev_start);
        if (c->ev_stop) cudaEventDestroy(c->ev_stop);
        if (c->ev_upload) cudaEventDestroy(c->ev_upload);
        if (c->ev_rows) cudaEventDestroy(c->ev_rows);
        if (c->stream) cudaStreamDestroy(c->stream);
        free(c->layer);
        free(c->count);
        free(c);
    }
    cudaFree(m->params);
    cudaFree(m->grads);
    m->impl = NULL;
    m->params = m->grads = m->adam_m = m->adam_v = NULL;
}

static float *carve(float **at, size_t n)
{
    float *p = *at;
    *at += (n + 63) / 64 * 64;
    return p;
}

/* lays out (BASE NULL: only measures) the activations; returns floats */
static size_t layout_acts(agn_model *m, cuda_impl *c, float *base)
{
    const agn_model_config *cfg = &m->cfg;
    size_t R = (size_t)c->R, D = (size_t)cfg->d_model, F = (size_t)cfg->d_ff;
    size_t H = (size_t)cfg->n_heads, C = (size_t)cfg->n_classes, T = (size_t)cfg->max_len;
    size_t BM = (size_t)c->BM, att = H * BM * T * T;
    float *at = base ? base : (float *)0;
    float *start = at;
    for (int l = 0; l < cfg->n_layers; l++) {
        layer_acts *la = &c->layer[l];
        la->ln1 = carve(&at, R * D);
        la->ln1_mean = carve(&at, R);
        la->ln1_rstd = carve(&at, R);
        la->qkv = carve(&at, 3 * R * D);
        la->att = carve(&at, att);
        la->atty = carve(&at, R * D);
        la->x1 = carve(&at, R * D);
        la->ln2 = carve(&at, R * D);
        la->ln2_mean = carve(&at, R);
        la->ln2_rstd = carve(&at, R);
        la->fch = carve(&at, R * F);
        la->x2 = carve(&at, R * D);
    }
    c->x0 = carve(&at, R * D);
    c->tmpD = carve(&at, R * D);
    c->tmpF = carve(&at, R * F);
    c->lnf = carve(&at, R * D);
    c->lnf_mean = carve(&at, R);
    c->lnf_rstd = carve(&at, R);
    c->pooled = carve(&at, BM * D);
    c->logits = carve(&at, BM * C);
    c->probs = carve(&at, BM * C);
    c->losses = carve(&at, BM);
    c->loss_sum = carve(&at, 1);
    c->dres = carve(&at, R * D);
    c->dA = carve(&at, R * D);
    c->dB = carve(&at, R * D);
    c->dqkv = carve(&at, 3 * R * D);
    c->datt = carve(&at, att);
    c->dF1 = carve(&at, R * F);
    c->dF2 = carve(&at, R * F);
    c->dpooled = carve(&at, BM * D);
    c->dlogits = carve(&at, BM * C);
    return (size_t)(at - start);
}

static int env_off(const char *name)
{
    const char *e = getenv(name);
    return e && strcmp(e, "0") == 0;
}

static int cuda_create(agn_model *m)
{
    int ndev = agn_cuda_device_count();
    if (ndev == 0) {
        char why[160];
        return agn_seterr("no CUDA device: %s", agn_cuda_device_name(0, why, sizeof why));
    }
    if (m->device < 0 || m->device >= ndev)
        return agn_seterr("CUDA device %d does not exist (%d visible)", m->device, ndev);
    AGN_CUDA_CHECK(cudaSetDevice(m->device));
    cuda_impl *c = (cuda_impl *)calloc(1, sizeof *c);
    if (!c) return agn_seterr("out of memory");
    m->impl = c;
    const agn_model_config *cfg = &m->cfg;
    c->BM = m->max_batch;
    c->R = agn_cuda_max_rows(m->max_batch, cfg->max_len, AGN_CUDA_ROW_BUCKET);
    c->use_graphs = !env_off("AGN_CUDA_GRAPHS");
    c->layer = (layer_acts *)calloc((size_t)cfg->n_layers, sizeof(layer_acts));
    int nkeys = cfg->vocab_size > cfg->max_len ? cfg->vocab_size : cfg->max_len;
    c->count = (int *)malloc(((size_t)nkeys + 1) * sizeof(int));
    if (!c->layer || !c->count) return agn_seterr("out of memory");

    AGN_CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    AGN_CUDA_CHECK(cudaEventCreate(&c->ev_start));
    AGN_CUDA_CHECK(cudaEventCreate(&c->ev_stop));
    AGN_CUDA_CHECK(cudaEventCreateWithFlags(&c->ev_upload, cudaEventDisableTiming));
    AGN_CUDA_CHECK(cudaEventCreateWithFlags(&c->ev_rows, cudaEventDisableTiming));
    AGN_CUDA_CHECK(cudaEventCreateWithFlags(&c->ev_spans, cudaEventDisableTiming));

    size_t P = m->n_params;
    AGN_CUDA_CHECK(cudaMalloc((void **)&m->params, P * sizeof(float)));
    AGN_CUDA_CHECK(cudaMalloc((void **)&m->grads, P * sizeof(float)));
    AGN_CUDA_CHECK(cudaMemset(m->params, 0, P * sizeof(float)));
    AGN_CUDA_CHECK(cudaMemset(m->grads, 0, P * sizeof(float)));
    if (m->precision == AGN_PREC_BF16) AGN_CUDA_CHECK(cudaMalloc(&c->shadow, P * 2));

    size_t nacts = layout_acts(m, c, NULL);
    cudaError_t e = cudaMalloc((void **)&c->acts, nacts * sizeof(float));
    if (e != cudaSuccess)
        return agn_seterr("cannot allocate %.1f MiB of activations on CUDA device %d for %d x %d "
                          "rows: %s",
                          (double)nacts * 4 / 1048576.0, m->device, m->max_batch, cfg->max_len,
                          cudaGetErrorString(e));
    /* zero once: padding rows read only finite values (cuda_plan.h) */
    AGN_CUDA_CHECK(cudaMemset(c->acts, 0, nacts * sizeof(float)));
    layout_acts(m, c, c->acts);

    agn_cuda_index_layout_init(&c->lay, c->R, c->BM);
    AGN_CUDA_CHECK(cudaMalloc(&c->d_index, c->lay.bytes));
    AGN_CUDA_CHECK(cudaMemset(c->d_index, 0, c->lay.bytes));
    AGN_CUDA_CHECK(cudaMallocHost(&c->h_index, c->lay.bytes));
    memset(c->h_index, 0, c->lay.bytes);

    int maxcols = 3 * cfg->d_model > cfg->d_ff ? 3 * cfg->d_model : cfg->d_ff;
    if (cfg->n_classes > maxcols) maxcols = cfg->n_classes;
    c->ws.floats = agn_cuda_ws_floats((int)c->R, maxcols);
    AGN_CUDA_CHECK(cudaMalloc((void **)&c->ws.buf, c->ws.floats * sizeof(float)));

    AGN_CUDA_CHECK(cudaMallocHost((void **)&c->h_logits, (size_t)c->BM * cfg->n_classes * sizeof(float)));
    AGN_CUDA_CHECK(cudaMallocHost((void **)&c->h_loss, sizeof(float)));
    AGN_CUDA_CHECK(cudaMalloc((void **)&c->d_sums, SUMSQ_SLOTS * sizeof(double)));
    AGN_CUDA_CHECK(cudaMallocHost((void **)&c->h_sums, SUMSQ_SLOTS * sizeof(double)));
    c->cap_slots = SUMSQ_SLOTS;
    c->sumsq_cap = P;
    AGN_CUDA_CHECK(cudaMalloc((void **)&c->sumsq_scratch, agn_sumsq_scratch(P) * sizeof(double)));

    /* the largest operand of a product: activations of R rows, up to 3D or
     * F wide (a weight matrix in bf16 comes from the shadow) */
    size_t maxop = (size_t)c->R * (size_t)maxcols;
    c->mm = agn_mm_create(maxop, m->precision == AGN_PREC_BF16);
    if (!c->mm) return -1;
    AGN_CUDA_CHECK(cudaDeviceSynchronize());
    return 0;
}

static int cuda_alloc_optim(agn_model *m)
{
    cuda_impl *c = IMPL(m);
    size_t P = m->n_params;
    AGN_CUDA_CHECK(cudaSetDevice(m->device));
    AGN_CUDA_CHECK(cudaMalloc((void **)&c->moments, 2 * P * sizeof(float)));
    AGN_CUDA_CHECK(cudaMemsetAsync(c->moments, 0, 2 * P * sizeof(float), c->stream));
    m->adam_m = c->moments;
    m->adam_v = c->moments + P;
    AGN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return 0;
}

/* ---- the passes ----------------------------------------------------------------------- */

typedef struct {
    float *ln1w, *ln1b, *qkvw, *qkvb, *projw, *projb, *ln2w, *ln2b, *fc1w, *fc1b, *fc2w, *fc2b;
    const void *qkvw16, *projw16, *fc1w16, *fc2w16;
} block_view;

static const void *w16(const agn_model *m, const float *base, const float *w)
{
    cuda_impl *c = IMPL(m);
    if (!c->shadow) return NULL;
    return (const char *)c->shadow + (size_t)(w - base) * 2;
}

static block_view block_at(const agn_model *m, float *buf, int l)
{
    const agn_tensor *t = &m->tensors[2 + 12 * l];
    block_view v;
    v.ln1w = buf + t[0].offset;
    v.ln1b = buf + t[1].offset;
    v.qkvw = buf + t[2].offset;
    v.qkvb = buf + t[3].offset;
    v.projw = buf + t[4].offset;
    v.projb = buf + t[5].offset;
    v.ln2w = buf + t[6].offset;
    v.ln2b = buf + t[7].offset;
    v.fc1w = buf + t[8].offset;
    v.fc1b = buf + t[9].offset;
    v.fc2w = buf + t[10].offset;
    v.fc2b = buf + t[11].offset;
    v.qkvw16 = w16(m, buf, v.qkvw);
    v.projw16 = w16(m, buf, v.projw);
    v.fc1w16 = w16(m, buf, v.fc1w);
    v.fc2w16 = w16(m, buf, v.fc2w);
    return v;
}

#define DIDX(type, field) ((type *)((char *)c->d_index + c->lay.field))

static agn_dropout_cuda drop_site(const agn_model *m, int site)
{
    cuda_impl *c = IMPL(m);
    agn_dropout_cuda d;
    d.ex_key = DIDX(const uint64_t, ex_key);
    d.row_ex = DIDX(const int32_t, row_ex);
    d.pos = DIDX(const int32_t, pos);
    d.site = site;
    d.threshold = agn_dropout_threshold(m->cfg.dropout);
    return d;
}

#define CK(call)                                                                                   \
    do {                                                                                           \
        if ((call) != 0) return -1;                                                                \
    } while (0)

/* The forward sequence over the current plan (no upload, no copy back). */
static int issue_forward(agn_model *m)
{
    cuda_impl *c = IMPL(m);
    const agn_model_config *cfg = &m->cfg;
    cudaStream_t s = c->stream;
    const agn_cuda_plan *pl = &c->plan;
    int N = (int)pl->Npad, B = pl->B, D = cfg->d_model, F = cfg->d_ff, H = cfg->n_heads,
        C = cfg->n_classes;
    size_t ND = (size_t)N * D;
    float *p = m->params;
    const agn_tensor *tt = m->tensors;
    const int32_t *ids = DIDX(const int32_t, ids), *pos = DIDX(const int32_t, pos);
    const int *start = DIDX(const int, start), *len = DIDX(const int, len),
              *nkey = DIDX(const int, nkey);
    const size_t *att_off = DIDX(const size_t, att_off);
    const int32_t *labels = pl->has_labels ? DIDX(const int32_t, labels) : NULL;
    float scale = pl->drop_scale;

    if (c->shadow) CK(agn_f32_to_bf16_cuda(c->shadow, p, m->n_params, s));

    CK(agn_embedding_forward_cuda(c->x0, ids, pos, p + tt[0].offset, p + tt[1].offset, N, D, s));
    agn_dropout_cuda dr;
    if (pl->dropout_on) {
        dr = drop_site(m, 0);
        CK(agn_dropout_forward_cuda(c->x0, &dr, scale, N, D, s));
    }
    const float *x = c->x0;
    for (int l = 0; l < cfg->n_layers; l++) {
        layer_acts *la = &c->layer[l];
        block_view w = block_at(m, p, l);
        CK(agn_layernorm_forward_cuda(la->ln1, la->ln1_mean, la->ln1_rstd, x, w.ln1w, w.ln1b, N, D, s));
        CK(agn_matmul_forward_cuda(c->mm, la->qkv, la->ln1, w.qkvw, w.qkvw16, w.qkvb, N, D, 3 * D, s));
        AGN_CUDA_CHECK(cudaMemsetAsync(la->atty, 0, ND * sizeof(float), s));
        CK(agn_attention_forward_cuda(la->atty, la->att, la->qkv, start, len, nkey, att_off, B, D, H,
                                      cfg->max_len, s));
        CK(agn_matmul_forward_cuda(c->mm, c->tmpD, la->atty, w.projw, w.projw16, w.projb, N, D, D, s));
        dr = drop_site(m, 1 + 2 * l);
        CK(agn_residual_forward_cuda(la->x1, x, c->tmpD, pl->dropout_on ? &dr : NULL, scale, N, D, s));
        CK(agn_layernorm_forward_cuda(la->ln2, la->ln2_mean, la->ln2_rstd, la->x1, w.ln2w, w.ln2b, N, D, s));
        CK(agn_matmul_forward_cuda(c->mm, la->fch, la->ln2, w.fc1w, w.fc1w16, w.fc1b, N, D, F, s));
        CK(agn_gelu_forward_cuda(c->tmpF, la->fch, (size_t)N * F, s));
        CK(agn_matmul_forward_cuda(c->mm, c->tmpD, c->tmpF, w.fc2w, w.fc2w16, w.fc2b, N, F, D, s));
        dr = drop_site(m, 2 + 2 * l);
        CK(agn_residual_forward_cuda(la->x2, la->x1, c->tmpD, pl->dropout_on ? &dr : NULL, scale, N, D, s));
        x = la->x2;
    }
    int ti = tail_index(m);
    CK(agn_layernorm_forward_cuda(c->lnf, c->lnf_mean, c->lnf_rstd, x, p + tt[ti].offset,
                                  p + tt[ti + 1].offset, N, D, s));
    CK(agn_meanpool_forward_cuda(c->pooled, c->lnf, start, nkey, B, D, s));
    CK(agn_matmul_forward_cuda(c->mm, c->logits, c->pooled, p + tt[ti + 2].offset,
                               w16(m, p, p + tt[ti + 2].offset), p + tt[ti + 3].offset, B, D, C, s));
    CK(agn_crossentropy_forward_cuda(c->losses, c->probs, c->logits, labels, c->loss_sum, B, C, s));
    return 0;
}

/* Ends the segment being captured at grad-ready point MARK (-1: the end of
 * the pass), instantiates and launches it; a capture of the next segment
 * begins unless LAST.  Failures are kept in c->cap_failed (the pass goes on
 * issuing, uncaptured, and run_sequence reports them). */
static void end_segment(agn_model *m, int mark, int last)
{
    cuda_impl *c = IMPL(m);
    graph_entry *ge = c->cap;
    cudaGraph_t graph = NULL;
    cudaError_t e = cudaStreamEndCapture(c->stream, &graph);
    size_t nodes = 0;
    if (e == cudaSuccess && graph) e = cudaGraphGetNodes(graph, NULL, &nodes);
    /* a segment with work, or an empty one that still carries a mark (no
     * launch, only the call) */
    if (e == cudaSuccess && (nodes > 0 || mark >= 0)) {
        if (ge->n_segs == ge->cap_segs) {
            int cap = ge->cap_segs ? 2 * ge->cap_segs : 16;
            cudaGraphExec_t *sg = (cudaGraphExec_t *)realloc(ge->segs, (size_t)cap * sizeof *sg);
            int *mk = sg ? (int *)realloc(ge->mark, (size_t)cap * sizeof *mk) : NULL;
            if (sg) ge->segs = sg;
            if (mk) ge->mark = mk;
            if (!sg || !mk) e = cudaErrorMemoryAllocation;
            else ge->cap_segs = cap;
        }
        cudaGraphExec_t exec = NULL;
        if (e == cudaSuccess && nodes > 0) e = cudaGraphInstantiate(&exec, graph, 0);
        if (e == cudaSuccess) {
            ge->segs[ge->n_segs] = exec;
            ge->mark[ge->n_segs] = mark;
            ge->n_segs++;
            if (exec) e = cudaGraphLaunch(exec, c->stream);
        }
    }
    if (graph) cudaGraphDestroy(graph);
    if (e != cudaSuccess && !c->cap_failed) {
        cudaGetLastError();
        c->cap_failed = 1;
        agn_seterr("capturing a CUDA graph: %s", cudaGetErrorString(e));
    }
    if (mark >= 0 && m->on_grad_ready)
        m->on_grad_ready(m->on_grad_ready_ctx, m->tensors[mark].offset);
    if (!last && !c->cap_failed) {
        e = cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal);
        if (e != cudaSuccess) {
            c->cap_failed = 1;
            agn_seterr("capturing a CUDA graph: %s", cudaGetErrorString(e));
        }
    }
    if (c->cap_failed) c->capturing = 0; /* the rest runs directly */
}

static void grad_ready(agn_model *m, int tensor_index)
{
    cuda_impl *c = IMPL(m);
    if (c->capturing) {
        end_segment(m, tensor_index, 0);
        return;
    }
    if (m->on_grad_ready) m->on_grad_ready(m->on_grad_ready_ctx, m->tensors[tensor_index].offset);
}

static int issue_backward(agn_model *m, float loss_scale)
{
    cuda_impl *c = IMPL(m);
    const agn_model_config *cfg = &m->cfg;
    cudaStream_t s = c->stream;
    const agn_cuda_plan *pl = &c->plan;
    int N = (int)pl->Npad, B = pl->B, D = cfg->d_model, F = cfg->d_ff, H = cfg->n_heads,
        C = cfg->n_classes;
    size_t ND = (size_t)N * D, NF = (size_t)N * F;
    float *p = m->params, *g = m->grads;
    const agn_tensor *tt = m->tensors;
    const int32_t *ids = DIDX(const int32_t, ids), *pos = DIDX(const int32_t, pos);
    const int *start = DIDX(const int, start), *len = DIDX(const int, len),
              *nkey = DIDX(const int, nkey);
    const size_t *att_off = DIDX(const size_t, att_off);
    const int32_t *labels = DIDX(const int32_t, labels);
    float scale = pl->drop_scale;
    const agn_cuda_ws *ws = &c->ws;
    int ti = tail_index(m);
    agn_dropout_cuda dr;

    /* head and pooling */
    AGN_CUDA_CHECK(cudaMemsetAsync(c->dlogits, 0, (size_t)B * C * sizeof(float), s));
    CK(agn_crossentropy_backward_cuda(c->dlogits, c->probs, labels, loss_scale, B, C, s));
    CK(agn_matmul_backward_cuda(c->mm, c->dpooled, g + tt[ti + 2].offset, c->dlogits, c->pooled,
                                p + tt[ti + 2].offset, w16(m, p, p + tt[ti + 2].offset), B, D, C,
                                0, s));
    CK(agn_bias_backward_cuda(g + tt[ti + 3].offset, c->dlogits, B, C, C, ws, s));
    grad_ready(m, ti + 2);
    AGN_CUDA_CHECK(cudaMemsetAsync(c->dA, 0, ND * sizeof(float), s));
    CK(agn_meanpool_backward_cuda(c->dA, c->dpooled, start, nkey, B, D, s));
    AGN_CUDA_CHECK(cudaMemsetAsync(c->dres, 0, ND * sizeof(float), s));
    const float *xL = cfg->n_layers > 0 ? c->layer[cfg->n_layers - 1].x2 : c->x0;
    CK(agn_layernorm_backward_cuda(c->dres, g + tt[ti].offset, g + tt[ti + 1].offset, c->dA, xL,
                                   p + tt[ti].offset, c->lnf_mean, c->lnf_rstd, N, D, ws, s));
    grad_ready(m, ti);

    for (int l = cfg->n_layers - 1; l >= 0; l--) {
        layer_acts *la = &c->layer[l];
        block_view w = block_at(m, p, l), dw = block_at(m, g, l);
        const float *x = l > 0 ? c->layer[l - 1].x2 : c->x0;
        int t0 = 2 + 12 * l;

        /* x2 = x1 + dropout(fc2(gelu(fc1(ln2(x1))))) */
        const float *dy = c->dres;
        if (pl->dropout_on) {
            dr = drop_site(m, 2 + 2 * l);
            CK(agn_dropout_backward_to_cuda(c->dA, c->dres, &dr, scale, N, D, s));
            dy = c->dA;
        }
        CK(agn_gelu_forward_cuda(c->dF2, la->fch, NF, s)); /* fc2's input, recomputed */
        CK(agn_matmul_backward_cuda(c->mm, c->dF1, dw.fc2w, dy, c->dF2, w.fc2w, w.fc2w16, N, F, D, 0, s));
        CK(agn_bias_backward_cuda(dw.fc2b, dy, N, D, D, ws, s));
        grad_ready(m, t0 + 10);
        CK(agn_gelu_backward_to_cuda(c->dF2, c->dF1, la->fch, NF, s));
        CK(agn_matmul_backward_cuda(c->mm, c->dB, dw.fc1w, c->dF2, la->ln2, w.fc1w, w.fc1w16, N, D, F, 0, s));
        CK(agn_bias_backward_cuda(dw.fc1b, c->dF2, N, F, F, ws, s));
        grad_ready(m, t0 + 8);
        CK(agn_layernorm_backward_cuda(c->dres, dw.ln2w, dw.ln2b, c->dB, la->x1, w.ln2w,
                                       la->ln2_mean, la->ln2_rstd, N, D, ws, s));
        grad_ready(m, t0 + 6);

        /* x1 = x + dropout(proj(attention(qkv(ln1(x))))) */
        dy = c->dres;
        if (pl->dropout_on) {
            dr = drop_site(m, 1 + 2 * l);
            CK(agn_dropout_backward_to_cuda(c->dA, c->dres, &dr, scale, N, D, s));
            dy = c->dA;
        }
        CK(agn_matmul_backward_cuda(c->mm, c->dB, dw.projw, dy, la->atty, w.projw, w.projw16, N, D, D, 0, s));
        CK(agn_bias_backward_cuda(dw.projb, dy, N, D, D, ws, s));
        grad_ready(m, t0 + 4);
        /* rows of no example (padding) must hold 0, not the last batch's */
        AGN_CUDA_CHECK(cudaMemsetAsync(c->dqkv, 0, 3 * ND * sizeof(float), s));
        CK(agn_attention_backward_to_cuda(c->dqkv, c->datt, c->dB, la->qkv, la->att, start, len,
                                          nkey, att_off, B, D, H, cfg->max_len, s));
        CK(agn_matmul_backward_cuda(c->mm, c->dA, dw.qkvw, c->dqkv, la->ln1, w.qkvw, w.qkvw16, N, D,
                                    3 * D, 0, s));
        /* the key third of the bias gradient is exactly 0 (model.h) */
        CK(agn_bias_backward_cuda(dw.qkvb, c->dqkv, N, D, 3 * D, ws, s));
        CK(agn_bias_backward_cuda(dw.qkvb + 2 * D, c->dqkv + 2 * D, N, D, 3 * D, ws, s));
        grad_ready(m, t0 + 2);
        CK(agn_layernorm_backward_cuda(c->dres, dw.ln1w, dw.ln1b, c->dA, x, w.ln1w, la->ln1_mean,
                                       la->ln1_rstd, N, D, ws, s));
        grad_ready(m, t0);
    }

    const float *dx = c->dres;
    if (pl->dropout_on) {
        dr = drop_site(m, 0);
        CK(agn_dropout_backward_to_cuda(c->dA, c->dres, &dr, scale, N, D, s));
        dx = c->dA;
    }
    agn_emb_segments seg;
    seg.tok_rows = DIDX(const int32_t, tok_rows);
    seg.tok_start = DIDX(const int32_t, tok_start);
    seg.tok_key = DIDX(const int32_t, tok_key);
    seg.n_tok = DIDX(const int32_t, n_tok);
    seg.pos_rows = DIDX(const int32_t, pos_rows);
    seg.pos_start = DIDX(const int32_t, pos_start);
    seg.pos_key = DIDX(const int32_t, pos_key);
    seg.n_pos = DIDX(const int32_t, n_pos);
    /* the reference path walks all Npad rows: the padding rows add 0 */
    CK(agn_embedding_backward_cuda(g + tt[0].offset, g + tt[1].offset, dx, ids, pos, N, D, &seg, s));
    grad_ready(m, 0);
    return 0;
}

/* The grad-ready points a backward pass makes: 2 + 6 per block + 1. */
static int expected_marks(const agn_model *m) { return 3 + 6 * m->cfg.n_layers; }

/* Runs the forward (BACKWARD 0) or backward sequence: directly when graphs
 * are off or the key is new (which also loads the kernels and picks the
 * products' algorithms outside any capture), captured the second time a key
 * is seen (and run as it is captured, segment by segment), replayed from
 * then on: segment k, then its grad-ready call, in order. */
static int run_sequence(agn_model *m, int backward, float loss_scale)
{
    cuda_impl *c = IMPL(m);
    c->capturing = 0;
    if (!c->use_graphs) return backward ? issue_backward(m, loss_scale) : issue_forward(m);
    /* the kernel choice (reference, unfused attention) is part of the key */
    agn_cuda_graph_key key = agn_cuda_graph_key_of(&c->plan, c->kept, backward, loss_scale,
                                                   agn_cuda_reference() | agn_cuda_unfused() << 1);
    graph_entry *ge = NULL;
    for (int i = 0; i < c->n_graphs; i++)
        if (agn_cuda_graph_key_equal(&c->graphs[i].key, &key)) ge = &c->graphs[i];
    if (!ge) { /* first sight: remember the key, run directly */
        if (c->n_graphs == MAX_GRAPHS) { /* more shapes than expected: start over */
            AGN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
            drop_graphs(c);
        }
        ge = &c->graphs[c->n_graphs++];
        memset(ge, 0, sizeof *ge);
        ge->key = key;
        return backward ? issue_backward(m, loss_scale) : issue_forward(m);
    }
    if (!ge->captured) { /* second sight: capture, segment by segment */
        c->cap = ge;
        c->cap_failed = 0;
        AGN_CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
        c->capturing = 1;
        int rc = backward ? issue_backward(m, loss_scale) : issue_forward(m);
        char why[512];
        snprintf(why, sizeof why, "%s", rc != 0 ? agn_errmsg() : "");
        if (c->capturing) {
            c->capturing = 0;
            end_segment(m, -1, 1);
        }
        if (rc != 0) agn_seterr("%s", why); /* the first failure, not the capture's end */
        c->cap = NULL;
        int marks = 0;
        for (int k = 0; k < ge->n_segs; k++) marks += ge->mark[k] >= 0;
        if (rc == 0 && !c->cap_failed && backward && marks != expected_marks(m))
            rc = agn_seterr("captured backward pass made %d grad-ready points, not %d", marks,
                            expected_marks(m));
        if (rc != 0 || c->cap_failed) {
            /* what was issued has run (directly or as launched segments);
             * the key starts over */
            cudaStreamSynchronize(c->stream);
            graph_key_reset(ge);
            return -1;
        }
        ge->captured = 1;
        c->captured_total++;
        return 0;
    }
    c->replayed++;
    for (int k = 0; k < ge->n_segs; k++) {
        if (ge->segs[k]) AGN_CUDA_CHECK(cudaGraphLaunch(ge->segs[k], c->stream));
        if (ge->mark[k] >= 0 && m->on_grad_ready)
            m->on_grad_ready(m->on_grad_ready_ctx, m->tensors[ge->mark[k]].offset);
    }
    return 0;
}

static int cuda_forward(agn_model *m, const agn_batch *b, int keep)
{
    cuda_impl *c = IMPL(m);
    AGN_CUDA_CHECK(cudaSetDevice(m->device));
    /* the index block's pinned copy may still be read by the last upload */
    AGN_CUDA_CHECK(cudaEventSynchronize(c->ev_upload));
    if (agn_cuda_plan_batch(&c->plan, c->h_index, &c->lay, c->R, m, b, AGN_CUDA_ROW_BUCKET,
                            c->count) != 0)
        return -1;
    c->kept = keep;
    c->have_forward = 1;
    AGN_CUDA_CHECK(cudaMemcpyAsync(c->d_index, c->h_index, c->lay.bytes, cudaMemcpyHostToDevice,
                                   c->stream));
    AGN_CUDA_CHECK(cudaEventRecord(c->ev_upload, c->stream));
    if (!c->timed) AGN_CUDA_CHECK(cudaEventRecord(c->ev_start, c->stream));
    if (run_sequence(m, 0, 0.0f) != 0) return -1;
    AGN_CUDA_CHECK(cudaEventRecord(c->ev_stop, c->stream));
    c->timed = 1;
    int B = c->plan.B, C = m->cfg.n_classes;
    if (B > 0)
        AGN_CUDA_CHECK(cudaMemcpyAsync(c->h_logits, c->logits, (size_t)B * C * sizeof(float),
                                       cudaMemcpyDeviceToHost, c->stream));
    if (c->plan.has_labels && B > 0)
        AGN_CUDA_CHECK(cudaMemcpyAsync(c->h_loss, c->loss_sum, sizeof(float),
                                       cudaMemcpyDeviceToHost, c->stream));
    c->logits_pending = B;
    c->loss_pending = 1;
    return 0;
}

static int cuda_backward(agn_model *m, const agn_batch *b)
{
    cuda_impl *c = IMPL(m);
    if (!b->labels || !c->have_forward || !c->kept) return 0; /* no loss, or inference */
    AGN_CUDA_CHECK(cudaSetDevice(m->device));
    if (!c->timed) AGN_CUDA_CHECK(cudaEventRecord(c->ev_start, c->stream));
    if (run_sequence(m, 1, b->loss_scale) != 0) return -1;
    AGN_CUDA_CHECK(cudaEventRecord(c->ev_stop, c->stream));
    c->timed = 1;
    return 0;
}

/* ---- buffer operations ------------------------------------------------------------------ */

static int cuda_wait(agn_model *m, double *compute_s)
{
    cuda_impl *c = IMPL(m);
    AGN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    if (c->logits_pending > 0)
        memcpy(m->logits, c->h_logits, (size_t)c->logits_pending * m->cfg.n_classes * sizeof(float));
    if (c->loss_pending) m->loss_sum = c->plan.has_labels && c->plan.B > 0 ? (double)*c->h_loss : 0.0;
    c->logits_pending = 0;
    c->loss_pending = 0;
    for (int i = 0; i < c->n_pending; i++) {
        pending_sum *ps = &c->pending[i];
        if (ps->is_norm) {
            *ps->out = sqrt(c->h_sums[ps->slot]);
        } else {
            for (int k = 0; k < ps->n; k++) *ps->out += c->h_sums[ps->slot + k];
        }
    }
    c->n_pending = 0;
    c->n_slots = 0;
    double t = 0;
    if (c->timed) {
        float ms = 0;
        AGN_CUDA_CHECK(cudaEventElapsedTime(&ms, c->ev_start, c->ev_stop));
        t = ms / 1000.0;
    }
    c->timed = 0;
    if (compute_s) *compute_s = t;
    return 0;
}

static int cuda_zero(agn_model *m, float *buf, size_t n)
{
    if (n == 0) return 0;
    AGN_CUDA_CHECK(cudaMemsetAsync(buf, 0, n * sizeof(float), IMPL(m)->stream));
    return 0;
}

/* Uploads the short spans among SPANS (count <= SHORT_SPAN) into
 * c->d_spans as (offset, count, i) triples, i their index in SPANS;
 * *n_short gets how many; IS_SHORT[i] (host, n) says which. */
static int upload_short_spans(cuda_impl *c, const agn_span *spans, int n, int *n_short,
                              char *is_short)
{
    /* the pinned copy of the last list may still be read */
    AGN_CUDA_CHECK(cudaEventSynchronize(c->ev_spans));
    if ((size_t)n > c->spans_cap) {
        AGN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        cudaFree(c->d_spans);
        cudaFreeHost(c->h_spans);
        c->d_spans = c->h_spans = NULL;
        c->spans_cap = 0;
        AGN_CUDA_CHECK(cudaMalloc((void **)&c->d_spans, (size_t)n * 3 * sizeof(size_t)));
        AGN_CUDA_CHECK(cudaMallocHost((void **)&c->h_spans, (size_t)n * 3 * sizeof(size_t)));
        c->spans_cap = (size_t)n;
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        is_short[i] = spans[i].count <= SHORT_SPAN;
        if (!is_short[i]) continue;
        c->h_spans[3 * k] = spans[i].offset;
        c->h_spans[3 * k + 1] = spans[i].count;
        c->h_spans[3 * k + 2] = (size_t)i;
        k++;
    }
    *n_short = k;
    if (k > 0) {
        AGN_CUDA_CHECK(cudaMemcpyAsync(c->d_spans, c->h_spans, (size_t)k * 3 * sizeof(size_t),
                                       cudaMemcpyHostToDevice, c->stream));
        AGN_CUDA_CHECK(cudaEventRecord(c->ev_spans, c->stream));
    }
    return 0;
}

/* sums of squares into slots of d_sums, copied to h_sums, finished by wait:
 * span i's sum lands in slot + i whichever kernel computes it, so wait adds
 * them in the spans' order, as the CPU does */
static int sums_issue(agn_model *m, const float *base, const agn_span *spans, int n, double *out,
                      int is_norm)
{
    cuda_impl *c = IMPL(m);
    if (c->n_pending == MAX_PENDING)
        return agn_seterr("more than %d sums of squares between waits", MAX_PENDING);
    if (c->n_slots + n > c->cap_slots) { /* grow, keeping the slots pending */
        AGN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        int cap = c->cap_slots;
        while (cap < c->n_slots + n) cap *= 2;
        double *d = NULL, *h = NULL;
        AGN_CUDA_CHECK(cudaMalloc((void **)&d, (size_t)cap * sizeof(double)));
        AGN_CUDA_CHECK(cudaMallocHost((void **)&h, (size_t)cap * sizeof(double)));
        memcpy(h, c->h_sums, (size_t)c->n_slots * sizeof(double));
        cudaFree(c->d_sums);
        cudaFreeHost(c->h_sums);
        c->d_sums = d;
        c->h_sums = h;
        c->cap_slots = cap;
    }
    size_t most = 0;
    for (int i = 0; i < n; i++)
        if (spans[i].count > most) most = spans[i].count;
    if (most > c->sumsq_cap) {
        AGN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        AGN_CUDA_CHECK(cudaFree(c->sumsq_scratch));
        c->sumsq_scratch = NULL;
        AGN_CUDA_CHECK(cudaMalloc((void **)&c->sumsq_scratch, agn_sumsq_scratch(most) * sizeof(double)));
        c->sumsq_cap = most;
    }
    int slot = c->n_slots;
    if (n > 1) { /* the short spans in one launch, the long ones a two-stage sum each */
        char *is_short = (char *)malloc((size_t)n);
        int k = 0;
        if (!is_short) return agn_seterr("out of memory");
        int rc = upload_short_spans(c, spans, n, &k, is_short);
        if (rc == 0 && k > 0) rc = agn_sumsq_spans_cuda(c->d_sums + slot, base, c->d_spans, k, c->stream);
        for (int i = 0; rc == 0 && i < n; i++)
            if (!is_short[i])
                rc = agn_sumsq_cuda(c->d_sums + slot + i, base + spans[i].offset, spans[i].count,
                                    c->sumsq_scratch, c->stream);
        free(is_short);
        if (rc != 0) return -1;
    } else if (n == 1) {
        CK(agn_sumsq_cuda(c->d_sums + slot, base + spans[0].offset, spans[0].count,
                          c->sumsq_scratch, c->stream));
    }
    if (n > 0)
        AGN_CUDA_CHECK(cudaMemcpyAsync(c->h_sums + slot, c->d_sums + slot, (size_t)n * sizeof(double),
                                       cudaMemcpyDeviceToHost, c->stream));
    c->n_slots += n;
    pending_sum *ps = &c->pending[c->n_pending++];
    ps->out = out;
    ps->slot = slot;
    ps->n = n;
    ps->is_norm = is_norm;
    return 0;
}

static int cuda_sumsq(agn_model *m, const float *base, const agn_span *spans, int n, double *out)
{
    return sums_issue(m, base, spans, n, out, 0);
}

static int cuda_norm(agn_model *m, const float *buf, size_t n, double *out)
{
    agn_span sp = {0, n};
    return sums_issue(m, buf, &sp, 1, out, 1);
}

/* the spans must not overlap (zero.c's never do): the short ones are scaled
 * by concurrent blocks */
static int cuda_scale(agn_model *m, float *base, const agn_span *spans, int n, float coef)
{
    cuda_impl *c = IMPL(m);
    if (n <= 1) {
        if (n == 1) CK(agn_scale_cuda(base + spans[0].offset, spans[0].count, coef, c->stream));
        return 0;
    }
    /* the short spans in one launch, the long ones a launch each */
    char *is_short = (char *)malloc((size_t)n);
    int k = 0;
    if (!is_short) return agn_seterr("out of memory");
    int rc = upload_short_spans(c, spans, n, &k, is_short);
    if (rc == 0 && k > 0) rc = agn_scale_spans_cuda(base, c->d_spans, k, coef, c->stream);
    for (int i = 0; rc == 0 && i < n; i++)
        if (!is_short[i]) rc = agn_scale_cuda(base + spans[i].offset, spans[i].count, coef, c->stream);
    free(is_short);
    return rc;
}

static int cuda_rows(agn_model *m, float *dst, const float *src, const int32_t *rows, size_t n,
                     size_t dim, int scatter)
{
    cuda_impl *c = IMPL(m);
    if (n == 0) return 0;
    /* the pinned copy of the last row list may still be read */
    AGN_CUDA_CHECK(cudaEventSynchronize(c->ev_rows));
    if (n > c->rows_cap) {
        AGN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        cudaFree(c->d_rows);
        cudaFreeHost(c->h_rows);
        c->d_rows = c->h_rows = NULL;
        c->rows_cap = 0;
        AGN_CUDA_CHECK(cudaMalloc((void **)&c->d_rows, n * sizeof(int32_t)));
        AGN_CUDA_CHECK(cudaMallocHost((void **)&c->h_rows, n * sizeof(int32_t)));
        c->rows_cap = n;
    }
    memcpy(c->h_rows, rows, n * sizeof(int32_t));
    AGN_CUDA_CHECK(cudaMemcpyAsync(c->d_rows, c->h_rows, n * sizeof(int32_t),
                                   cudaMemcpyHostToDevice, c->stream));
    AGN_CUDA_CHECK(cudaEventRecord(c->ev_rows, c->stream));
    return agn_rows_cuda(dst, src, c->d_rows, n, dim, scatter, c->stream);
}

#define ADAM_CHUNK 16384 /* floats per block of the one-launch AdamW */

static int cuda_adamw(agn_model *m, const agn_tensor *pieces, int n, const agn_adam_args *aa)
{
    cuda_impl *c = IMPL(m);
    /* optim.c's agn_adamw_pieces: the same constants, rounded the same way */
    double t = (double)aa->step + 1.0;
    double bc1 = 1.0 - pow((double)aa->beta1, t), bc2 = 1.0 - pow((double)aa->beta2, t);
    float step_size = (float)((double)aa->lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    float decay = 1.0f - aa->lr * aa->weight_decay;
    /* the pieces cut in chunks, (offset, count, decay) triples, one launch */
    size_t nchunks = 0;
    for (int i = 0; i < n; i++) nchunks += (pieces[i].numel + ADAM_CHUNK - 1) / ADAM_CHUNK;
    if (nchunks == 0) return 0;
    if (nchunks > 0x7fffffff) return agn_seterr("AdamW over too many chunks (%zu)", nchunks);
    AGN_CUDA_CHECK(cudaEventSynchronize(c->ev_spans)); /* the staging may still be read */
    if (nchunks > c->spans_cap) {
        AGN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
        cudaFree(c->d_spans);
        cudaFreeHost(c->h_spans);
        c->d_spans = c->h_spans = NULL;
        c->spans_cap = 0;
        AGN_CUDA_CHECK(cudaMalloc((void **)&c->d_spans, nchunks * 3 * sizeof(size_t)));
        AGN_CUDA_CHECK(cudaMallocHost((void **)&c->h_spans, nchunks * 3 * sizeof(size_t)));
        c->spans_cap = nchunks;
    }
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (size_t o = 0; o < pieces[i].numel; o += ADAM_CHUNK) {
            size_t cnt = pieces[i].numel - o < ADAM_CHUNK ? pieces[i].numel - o : ADAM_CHUNK;
            c->h_spans[3 * k] = pieces[i].offset + o;
            c->h_spans[3 * k + 1] = cnt;
            c->h_spans[3 * k + 2] = pieces[i].decay ? 1 : 0;
            k++;
        }
    AGN_CUDA_CHECK(cudaMemcpyAsync(c->d_spans, c->h_spans, nchunks * 3 * sizeof(size_t),
                                   cudaMemcpyHostToDevice, c->stream));
    AGN_CUDA_CHECK(cudaEventRecord(c->ev_spans, c->stream));
    return agn_adamw_chunks_cuda(m->params, m->adam_m, m->adam_v, m->grads, c->d_spans,
                                 (int)nchunks, aa->coef, aa->beta1, aa->beta2, decay, step_size,
                                 bc2_sqrt, aa->eps, c->stream);
}

static int cuda_to_host(agn_model *m, float *host, const float *src, size_t n)
{
    cuda_impl *c = IMPL(m);
    AGN_CUDA_CHECK(cudaMemcpyAsync(host, src, n * sizeof(float), cudaMemcpyDeviceToHost, c->stream));
    AGN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return 0;
}

static int cuda_from_host(agn_model *m, float *dst, const float *host, size_t n)
{
    cuda_impl *c = IMPL(m);
    AGN_CUDA_CHECK(cudaMemcpyAsync(dst, host, n * sizeof(float), cudaMemcpyHostToDevice, c->stream));
    AGN_CUDA_CHECK(cudaStreamSynchronize(c->stream));
    return 0;
}

static void *cuda_alloc(agn_model *m, size_t bytes)
{
    void *p = NULL;
    AGN_CUDA_CHECK_NULL(cudaSetDevice(m->device));
    AGN_CUDA_CHECK_NULL(cudaMalloc(&p, bytes ? bytes : 1));
    AGN_CUDA_CHECK_NULL(cudaMemset(p, 0, bytes ? bytes : 1));
    return p;
}

static void cuda_release(agn_model *m, void *p)
{
    (void)m;
    cudaFree(p);
}

/* ---- model_cuda.h --------------------------------------------------------------------- */

extern "C" void *agn_cuda_model_stream(const agn_model *m)
{
    return m->impl ? (void *)IMPL(m)->stream : NULL;
}

static void *cuda_stream(agn_model *m) { return agn_cuda_model_stream(m); }

extern "C" void agn_cuda_model_set_graphs(agn_model *m, int on)
{
    cuda_impl *c = IMPL(m);
    if (!c) return;
    if (!on && c->n_graphs) {
        cudaStreamSynchronize(c->stream);
        drop_graphs(c);
    }
    c->use_graphs = on;
}

extern "C" void agn_cuda_model_graph_stats(const agn_model *m, int *captured, long *replayed)
{
    cuda_impl *c = IMPL(m);
    *captured = c ? c->captured_total : 0;
    *replayed = c ? c->replayed : 0;
}

extern "C" const agn_backend_ops agn_backend_cuda_ops = {
    "cuda",             /* name */
    0,                  /* host_memory */
    cuda_create,        /* create */
    cuda_destroy,       /* destroy */
    cuda_alloc_optim,   /* alloc_optim */
    cuda_forward,       /* forward */
    cuda_backward,      /* backward */
    cuda_wait,          /* wait */
    cuda_zero,          /* zero */
    cuda_sumsq,         /* sumsq */
    cuda_norm,          /* norm */
    cuda_scale,         /* scale */
    cuda_rows,          /* rows */
    cuda_adamw,         /* adamw */
    cuda_to_host,       /* to_host */
    cuda_from_host,     /* from_host */
    cuda_alloc,         /* alloc */
    cuda_release,       /* release */
    cuda_stream,        /* stream */
};
