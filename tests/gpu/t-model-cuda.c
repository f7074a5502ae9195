/* t-model-cuda.c: the CUDA backend (model_cuda.cu) against the CPU
 * reference on a small model, through the backend table as the trainer
 * uses it:
 *  - logits, loss and the gradient of every tensor of the table, by name,
 *    in fp32 (fast kernels and reference kernels), in bf16, packed and
 *    dense, with dropout;
 *  - inference (agn_model_forward_infer) against the CPU;
 *  - determinism: the same step twice gives the same bits; with CUDA
 *    graphs (direct run, capture, replay) the same bits as without;
 *  - the grad-ready calls: the same offsets in the same order as the CPU,
 *    with and without graphs;
 *  - the buffer operations (zero, sumsq, norm, scale, rows, copies);
 *  - 3 AdamW steps (norm, clipping, adamw) against the CPU: parameters and
 *    both moments, per tensor.
 * Tolerances (normwise relative, gputest.h): 1e-4 in fp32 for the whole
 * model (the kernels are held to 1e-5 one by one in t-layers-cuda; a model
 * compounds them), 5e-2 in bf16, and 1e-3 for the parameters after 3 AdamW
 * steps (eps 1e-6 keeps Adam from turning rounding noise on near-zero
 * gradients into whole steps).  Skipped (77) without the CUDA backend or a
 * GPU. */
#include "gputest.h"

#ifdef AGN_CUDA_BACKEND
#include "backend.h"
#include "layers_cuda.h"
#include "model.h"
#include "model_cuda.h"
#include "util.h"

#define TOL 1e-4
#define TOL_BF16 5e-2
#define TOL_ADAM 1e-3

enum { B = 6, T = 24 };
static const agn_model_config cfg = {.vocab_size = 60, .max_len = T, .d_model = 64, .n_heads = 4,
                                     .n_layers = 2, .d_ff = 128, .n_classes = 4, .dropout = 0.1f};

static int32_t ids[B * T], labels[B] = {0, 3, 1, 2, 1, 0};
static uint64_t exi[B] = {100, 101, 102, 103, 104, 105};

static agn_batch make_batch(int train)
{
    static const int lens[B] = {T, 1, 10, 0, 7, 15}; /* max_len, one token, empty */
    memset(ids, 0, sizeof ids);
    for (int r = 0; r < B; r++)
        for (int t = 0; t < lens[r]; t++) ids[r * T + t] = 2 + (int32_t)((r * 17 + t * 5) % 53);
    agn_batch b = {.B = B, .T = T, .ids = ids, .labels = labels, .example_index = exi,
                   .seed = 9, .epoch = 3, .train = train, .loss_scale = 1.0f / B};
    return b;
}

static int create(agn_model *m, const agn_backend_ops *ops, agn_precision prec)
{
    if (agn_model_create_on(m, &cfg, B, ops, 0, prec) != 0 || agn_model_init_weights(m, 3) != 0 ||
        agn_model_alloc_optim(m) != 0) {
        printf("FAIL: creating the %s model: %s\n", ops->name, agn_errmsg());
        exit(1);
    }
    return 0;
}

/* grad-ready offsets, recorded */
typedef struct {
    size_t off[256];
    int n;
} marks;

static void on_ready(void *ctx, size_t offset)
{
    marks *k = ctx;
    if (k->n < 256) k->off[k->n++] = offset;
}

/* one forward and backward from zero gradients; host copies out */
typedef struct {
    float *logits, *grads;
    double loss;
    marks mk;
} result;

static void run(agn_model *m, const agn_batch *b, result *r)
{
    const agn_backend_ops *o = m->ops;
    r->mk.n = 0;
    m->on_grad_ready = on_ready;
    m->on_grad_ready_ctx = &r->mk;
    if (o->zero(m, m->grads, m->n_params) != 0 || agn_model_submit_forward(m, b, 1) != 0 ||
        agn_model_backward(m, b) != 0 || agn_model_wait(m, NULL) != 0) {
        printf("FAIL: a %s step: %s\n", o->name, agn_errmsg());
        exit(1);
    }
    m->on_grad_ready = NULL;
    r->loss = m->loss_sum;
    r->logits = malloc(sizeof(float) * B * cfg.n_classes);
    memcpy(r->logits, m->logits, sizeof(float) * B * cfg.n_classes);
    r->grads = malloc(m->n_params * sizeof(float));
    if (agn_model_download(m, r->grads, m->grads) != 0) {
        printf("FAIL: download: %s\n", agn_errmsg());
        exit(1);
    }
}

static void free_result(result *r)
{
    free(r->logits);
    free(r->grads);
}

/* logits, loss and each tensor's gradient of GOT against WANT */
static void compare(const char *what, const agn_model *m, const result *got, const result *want,
                    double tol)
{
    char line[160];
    snprintf(line, sizeof line, "%s: logits", what);
    gt_check(line, got->logits, want->logits, (size_t)B * cfg.n_classes, tol);
    float gl = (float)got->loss, wl = (float)want->loss;
    snprintf(line, sizeof line, "%s: loss %.6f vs %.6f", what, got->loss, want->loss);
    gt_check(line, &gl, &wl, 1, tol);
    for (int i = 0; i < m->n_tensors; i++) {
        const agn_tensor *t = &m->tensors[i];
        snprintf(line, sizeof line, "%s: grad %s", what, t->name);
        gt_check(line, got->grads + t->offset, want->grads + t->offset, t->numel, tol);
    }
}

static void same_result(const char *what, const agn_model *m, const result *a, const result *b)
{
    char line[160];
    snprintf(line, sizeof line, "%s: logits", what);
    gt_same(line, a->logits, b->logits, sizeof(float) * B * cfg.n_classes);
    snprintf(line, sizeof line, "%s: gradients", what);
    gt_same(line, a->grads, b->grads, m->n_params * sizeof(float));
    snprintf(line, sizeof line, "%s: loss", what);
    gt_same(line, &a->loss, &b->loss, sizeof a->loss);
}

static void same_marks(const char *what, const marks *a, const marks *b)
{
    int ok = a->n == b->n && memcmp(a->off, b->off, (size_t)a->n * sizeof a->off[0]) == 0;
    printf("%-58s %d calls%s\n", what, a->n, ok ? ", same offsets and order" : "  FAIL");
    if (!ok) gt_failures++;
}

/* three AdamW steps through the table, as train.c's single-rank step */
static void adam_steps(agn_model *m, const agn_batch *b)
{
    agn_optim_config oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-6f,
                           .weight_decay = 0.01f, .grad_clip = 0.5f};
    for (long s = 0; s < 3; s++) {
        double norm = 0;
        const agn_backend_ops *o = m->ops;
        if (o->zero(m, m->grads, m->n_params) != 0 || agn_model_submit_forward(m, b, 1) != 0 ||
            agn_model_backward(m, b) != 0 || o->norm(m, m->grads, m->n_params, &norm) != 0 ||
            o->wait(m, NULL) != 0) {
            printf("FAIL: %s step %ld: %s\n", o->name, s, agn_errmsg());
            exit(1);
        }
        agn_adam_args a = {.lr = agn_lr_at(&oc, s), .beta1 = oc.beta1, .beta2 = oc.beta2,
                           .eps = oc.eps, .weight_decay = oc.weight_decay,
                           .coef = agn_clip_coef(&oc, norm), .step = s};
        if (o->adamw(m, m->tensors, m->n_tensors, &a) != 0 || o->wait(m, NULL) != 0) {
            printf("FAIL: %s adamw %ld: %s\n", o->name, s, agn_errmsg());
            exit(1);
        }
        printf("%s step %ld: loss %.6f, norm %.6f, clip %.6f\n", o->name, s, m->loss_sum, norm, a.coef);
    }
}

static float *host_copy(agn_model *m, const float *buf)
{
    float *h = malloc(m->n_params * sizeof(float));
    if (agn_model_download(m, h, buf) != 0) {
        printf("FAIL: download: %s\n", agn_errmsg());
        exit(1);
    }
    return h;
}

static void test_buffer_ops(agn_model *cpu, agn_model *gpu)
{
    size_t n = gpu->n_params;
    float *h = malloc(n * sizeof(float)), *a = malloc(n * sizeof(float)), *g = malloc(n * sizeof(float));
    gt_fill(h, n, 5, 1.0f);
    const agn_backend_ops *oc = cpu->ops, *og = gpu->ops;
    memcpy(cpu->grads, h, n * sizeof(float));
    if (og->from_host(gpu, gpu->grads, h, n) != 0) printf("FAIL: from_host: %s\n", agn_errmsg()), gt_failures++;
    og->to_host(gpu, g, gpu->grads, n);
    gt_same("from_host then to_host", g, h, n * sizeof(float));
    /* short spans (one launch, a block each) and a long one (its own
     * two-stage sum), disjoint, as zero.c's shards and sparse rows */
    if (n < 70000) printf("FAIL: the test model has %zu parameters, fewer than the spans need\n", n), exit(1);
    agn_span spans[4] = {{0, 1}, {100, 1000}, {2000, 66000}, {n - 777, 777}};
    double sc = 0, sg = 0, nc = 0, ng = 0;
    oc->sumsq(cpu, cpu->grads, spans, 4, &sc);
    og->sumsq(gpu, gpu->grads, spans, 4, &sg);
    oc->norm(cpu, cpu->grads, n, &nc);
    og->norm(gpu, gpu->grads, n, &ng);
    og->wait(gpu, NULL);
    double e1 = fabs(sg - sc) / sc, e2 = fabs(ng - nc) / nc;
    printf("%-58s rel %.3e (tol 1e-12)%s\n", "sumsq of 4 spans", e1, e1 <= 1e-12 ? "" : "  FAIL");
    printf("%-58s rel %.3e (tol 1e-12)%s\n", "norm", e2, e2 <= 1e-12 ? "" : "  FAIL");
    if (e1 > 1e-12 || e2 > 1e-12) gt_failures++;
    oc->scale(cpu, cpu->grads, spans, 4, 0.3f);
    og->scale(gpu, gpu->grads, spans, 4, 0.3f);
    int32_t rows[4] = {5, 0, 17, 3};
    size_t dim = (size_t)cfg.d_model;
    float *pc = malloc(4 * dim * sizeof(float)), *pg = og->alloc(gpu, 4 * dim * sizeof(float));
    if (!pg) printf("FAIL: alloc: %s\n", agn_errmsg()), exit(1);
    oc->rows(cpu, pc, cpu->grads, rows, 4, dim, 0);
    og->rows(gpu, pg, gpu->grads, rows, 4, dim, 0);
    oc->rows(cpu, cpu->grads, NULL, rows, 2, dim, 1);
    og->rows(gpu, gpu->grads, NULL, rows, 2, dim, 1);
    oc->rows(cpu, cpu->grads + 5 * dim, pc, rows + 2, 2, dim, 1);
    og->rows(gpu, gpu->grads + 5 * dim, pg, rows + 2, 2, dim, 1);
    oc->zero(cpu, cpu->grads + 1000, 333);
    og->zero(gpu, gpu->grads + 1000, 333);
    og->wait(gpu, NULL);
    og->to_host(gpu, g, gpu->grads, n);
    gt_same("scale, rows (gather, zero, scatter), zero", g, cpu->grads, n * sizeof(float));
    og->to_host(gpu, a, pg, 4 * dim);
    gt_same("rows gathered into backend memory", a, pc, 4 * dim * sizeof(float));
    og->release(gpu, pg);
    free(pc), free(h), free(a), free(g);
}

int main(void)
{
    gt_skip_without_gpu("t-model-cuda");
    const agn_backend_ops *cuda = agn_backend_find("cuda");
    if (!cuda) {
        printf("FAIL: %s\n", agn_errmsg());
        return 1;
    }
    agn_model cpu, gpu;
    create(&cpu, &agn_backend_cpu, AGN_PREC_FP32);
    create(&gpu, cuda, AGN_PREC_FP32);
    agn_batch b = make_batch(1);
    result rc, rg, rg2, rref;

    /* fp32, fast kernels, no graphs */
    agn_cuda_model_set_graphs(&gpu, 0);
    run(&cpu, &b, &rc);
    run(&gpu, &b, &rg);
    compare("fp32 fast vs cpu", &cpu, &rg, &rc, TOL);
    same_marks("grad-ready calls, cuda vs cpu", &rg.mk, &rc.mk);
    run(&gpu, &b, &rg2);
    same_result("fp32 twice", &gpu, &rg2, &rg);
    free_result(&rg2);

    /* graphs: direct, capture, replay: the bits of the run without */
    agn_cuda_model_set_graphs(&gpu, 1);
    for (int k = 0; k < 3; k++) {
        char what[64];
        snprintf(what, sizeof what, "graphs, run %d of 3", k + 1);
        run(&gpu, &b, &rg2);
        same_result(what, &gpu, &rg2, &rg);
        same_marks(k < 2 ? "grad-ready calls, graphs (direct, capture)" : "grad-ready calls, graph replayed",
                   &rg2.mk, &rc.mk);
        free_result(&rg2);
    }
    int captured;
    long replayed;
    agn_cuda_model_graph_stats(&gpu, &captured, &replayed);
    printf("%-58s %d captured, %ld replayed%s\n", "graphs", captured, replayed,
           captured >= 2 && replayed >= 2 ? "" : "  FAIL");
    if (captured < 2 || replayed < 2) gt_failures++;

    /* reference kernels */
    agn_cuda_model_set_graphs(&gpu, 0);
    agn_cuda_set_reference(1);
    run(&gpu, &b, &rref);
    agn_cuda_set_reference(0);
    compare("fp32 reference vs cpu", &cpu, &rref, &rc, TOL);
    compare("fp32 fast vs reference", &cpu, &rg, &rref, TOL);
    free_result(&rref);
    free_result(&rg);
    free_result(&rc);

    /* dense rows (pad positions computed, never keys) */
    cpu.dense = gpu.dense = 1;
    run(&cpu, &b, &rc);
    run(&gpu, &b, &rg);
    compare("fp32 dense vs cpu", &cpu, &rg, &rc, TOL);
    free_result(&rg);
    free_result(&rc);
    cpu.dense = gpu.dense = 0;

    /* inference */
    agn_batch e = make_batch(0);
    float lc = agn_model_forward_infer(&cpu, &e), lg = agn_model_forward_infer(&gpu, &e);
    float *logc = malloc(sizeof(float) * B * cfg.n_classes);
    memcpy(logc, cpu.logits, sizeof(float) * B * cfg.n_classes);
    gt_check("inference: logits", gpu.logits, logc, (size_t)B * cfg.n_classes, TOL);
    gt_check("inference: loss", &lg, &lc, 1, TOL);
    free(logc);

    /* the buffer operations */
    test_buffer_ops(&cpu, &gpu);

    /* 3 AdamW steps from the same weights */
    agn_model_free(&cpu);
    agn_model_free(&gpu);
    create(&cpu, &agn_backend_cpu, AGN_PREC_FP32);
    create(&gpu, cuda, AGN_PREC_FP32);
    adam_steps(&cpu, &b);
    adam_steps(&gpu, &b);
    double ts = -1;
    agn_model_submit_forward(&gpu, &b, 1);
    agn_model_backward(&gpu, &b);
    agn_model_wait(&gpu, &ts);
    printf("%-58s %.6f s%s\n", "device time of a forward and backward", ts, ts > 0 ? "" : "  FAIL");
    if (!(ts > 0)) gt_failures++;
    const char *names[3] = {"params", "adam_m", "adam_v"};
    float *bc[3] = {cpu.params, cpu.adam_m, cpu.adam_v};
    float *bg[3] = {gpu.params, gpu.adam_m, gpu.adam_v};
    for (int k = 0; k < 3; k++) {
        float *h = host_copy(&gpu, bg[k]);
        for (int i = 0; i < cpu.n_tensors; i++) {
            const agn_tensor *t = &cpu.tensors[i];
            char what[128];
            snprintf(what, sizeof what, "3 adamw steps: %s %s", names[k], t->name);
            gt_check(what, h + t->offset, bc[k] + t->offset, t->numel, k == 0 ? TOL_ADAM : TOL);
        }
        free(h);
    }
    agn_model_free(&gpu);

    /* bf16 products */
    create(&gpu, cuda, AGN_PREC_BF16);
    agn_model_free(&cpu);
    create(&cpu, &agn_backend_cpu, AGN_PREC_FP32);
    run(&cpu, &b, &rc);
    run(&gpu, &b, &rg);
    compare("bf16 vs cpu", &cpu, &rg, &rc, TOL_BF16);
    run(&gpu, &b, &rg2);
    same_result("bf16 twice", &gpu, &rg2, &rg);
    free_result(&rg2);
    free_result(&rg);
    free_result(&rc);
    agn_model_free(&gpu);
    agn_model_free(&cpu);
    return gt_finish("t-model-cuda");
}

#else /* no CUDA backend */

int main(void)
{
    gt_skip_without_gpu("t-model-cuda");
    return 77;
}

#endif
