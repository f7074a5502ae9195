/* t-layers-cuda.c: every CUDA kernel of layers_cuda.h, matmul_cublaslt.h
 * and optim_cuda.cu against its CPU twin of layers_cpu.h / optim.c, on
 * random inputs, through both paths (the fast kernels and the reference
 * ones, agn_cuda_set_reference), and fast against reference.  Packed
 * shapes include an example of one row, one of max_len rows, an empty one,
 * and (dense) examples with fewer keys than rows.  Each comparison prints
 * its normwise relative error (gputest.h) and fails above 1e-5 in fp32
 * (2e-2 for bf16 products); dropout masks, the embedding gradient's
 * ordered sums and AdamW must match bit for bit.  Skipped (77) without the
 * CUDA backend or a GPU. */
#include "gputest.h"

#ifdef AGN_CUDA_BACKEND
#include <cuda_runtime_api.h>

#include "cuda_plan.h"
#include "layers_cpu.h"
#include "layers_cuda.h"
#include "matmul_cublaslt.h"
#include "model.h"
#include "rng.h"
#include "util.h"

#define TOL 1e-5
#define TOL_BF16 2e-2

static void *dnew(size_t bytes)
{
    void *p = NULL;
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess || cudaMemset(p, 0, bytes ? bytes : 1) != cudaSuccess) {
        printf("FAIL: cudaMalloc of %zu bytes\n", bytes);
        exit(1);
    }
    return p;
}

static void *dcopy(const void *h, size_t bytes)
{
    void *p = dnew(bytes);
    if (cudaMemcpy(p, h, bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
        printf("FAIL: cudaMemcpy to the device\n");
        exit(1);
    }
    return p;
}

static void dget(void *h, const void *d, size_t bytes)
{
    cudaError_t e = cudaDeviceSynchronize();
    if (e == cudaSuccess) e = cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost);
    if (e != cudaSuccess) {
        printf("FAIL: a kernel or the copy back failed: %s\n", cudaGetErrorString(e));
        exit(1);
    }
}

static void dput(void *d, const void *h, size_t bytes)
{
    if (cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) != cudaSuccess) {
        printf("FAIL: cudaMemcpy to the device\n");
        exit(1);
    }
}

#define RUN(call)                                                                                  \
    do {                                                                                           \
        if ((call) != 0) {                                                                         \
            printf("FAIL: %s: %s\n", #call, agn_errmsg());                                        \
            gt_failures++;                                                                         \
        }                                                                                          \
    } while (0)

static float *hnew(size_t n) { return calloc(n ? n : 1, sizeof(float)); }

static const char *path_name(int ref) { return ref ? "reference" : "fast"; }

/* ---- a packed batch --------------------------------------------------------------- */

typedef struct {
    int B, N, T, D, H, dense;
    int *start, *len, *nkey;
    size_t *att_off, att;
    int32_t *ids, *pos, *row_ex;
    /* device copies */
    int *d_start, *d_len, *d_nkey;
    size_t *d_att_off;
    int32_t *d_ids, *d_pos, *d_row_ex;
} batch;

/* lengths: one row, max_len rows, empty, and others; dense: every example
 * has T rows and LENS keys */
static void make_batch(batch *b, int T, int D, int H, int dense, int V)
{
    static const int lens[] = {1, 0, 5, 3, 2, 7};
    b->B = 7;
    b->T = T;
    b->D = D;
    b->H = H;
    b->dense = dense;
    b->start = calloc(b->B, sizeof(int));
    b->len = calloc(b->B, sizeof(int));
    b->nkey = calloc(b->B, sizeof(int));
    b->att_off = calloc(b->B, sizeof(size_t));
    int N = 0;
    size_t att = 0;
    for (int i = 0; i < b->B; i++) {
        int real = i == 1 ? T : lens[i < 1 ? 0 : i - 1] % (T + 1); /* example 1: all T */
        b->start[i] = N;
        b->len[i] = dense ? T : real;
        b->nkey[i] = real;
        b->att_off[i] = att;
        att += (size_t)H * b->len[i] * b->nkey[i];
        N += b->len[i];
    }
    b->N = N;
    b->att = att;
    b->ids = calloc(N + 1, sizeof(int32_t));
    b->pos = calloc(N + 1, sizeof(int32_t));
    b->row_ex = calloc(N + 1, sizeof(int32_t));
    for (int i = 0; i < b->B; i++)
        for (int t = 0; t < b->len[i]; t++) {
            int r = b->start[i] + t;
            b->ids[r] = (int32_t)(1 + (i * 7 + t * 3) % (V - 1)); /* repeats across rows */
            b->pos[r] = t;
            b->row_ex[r] = i;
        }
    b->d_start = dcopy(b->start, b->B * sizeof(int));
    b->d_len = dcopy(b->len, b->B * sizeof(int));
    b->d_nkey = dcopy(b->nkey, b->B * sizeof(int));
    b->d_att_off = dcopy(b->att_off, b->B * sizeof(size_t));
    b->d_ids = dcopy(b->ids, (N + 1) * sizeof(int32_t));
    b->d_pos = dcopy(b->pos, (N + 1) * sizeof(int32_t));
    b->d_row_ex = dcopy(b->row_ex, (N + 1) * sizeof(int32_t));
}

static void free_batch(batch *b)
{
    free(b->start);
    free(b->len);
    free(b->nkey);
    free(b->att_off);
    free(b->ids);
    free(b->pos);
    free(b->row_ex);
    cudaFree(b->d_start);
    cudaFree(b->d_len);
    cudaFree(b->d_nkey);
    cudaFree(b->d_att_off);
    cudaFree(b->d_ids);
    cudaFree(b->d_pos);
    cudaFree(b->d_row_ex);
}

/* ---- the tests ---------------------------------------------------------------------- */

static agn_cuda_ws ws;

static void test_embedding(const batch *b, int V, int T)
{
    int N = b->N, D = b->D;
    float *tok = hnew((size_t)V * D), *pe = hnew((size_t)T * D), *out = hnew((size_t)N * D),
          *got = hnew((size_t)N * D > (size_t)V * D ? (size_t)N * D : (size_t)V * D);
    gt_fill(tok, (size_t)V * D, 1, 0.5f);
    gt_fill(pe, (size_t)T * D, 2, 0.5f);
    float *d_tok = dcopy(tok, (size_t)V * D * 4), *d_pe = dcopy(pe, (size_t)T * D * 4);
    float *d_out = dnew((size_t)N * D * 4);
    agn_embedding_forward_cpu(out, b->ids, b->pos, tok, pe, N, D);
    RUN(agn_embedding_forward_cuda(d_out, b->d_ids, b->d_pos, d_tok, d_pe, N, D, 0));
    dget(got, d_out, (size_t)N * D * 4);
    gt_same("embedding forward", got, out, (size_t)N * D * 4);

    /* backward into non-zero gradients (it adds), rows grouped as the plan does */
    float *dout = hnew((size_t)N * D), *gtok = hnew((size_t)V * D), *gpe = hnew((size_t)T * D);
    gt_fill(dout, (size_t)N * D, 3, 1.0f);
    gt_fill(gtok, (size_t)V * D, 4, 0.1f);
    gt_fill(gpe, (size_t)T * D, 5, 0.1f);
    float *d_dout = dcopy(dout, (size_t)N * D * 4);
    float *d_gtok = dnew((size_t)V * D * 4), *d_gpe = dnew((size_t)T * D * 4);
    int32_t *rows = calloc(N + 1, 4), *gs = calloc(N + 2, 4), *gk = calloc(N + 1, 4);
    int32_t *prows = calloc(N + 1, 4), *pgs = calloc(N + 2, 4), *pgk = calloc(N + 1, 4);
    int *count = calloc((size_t)V + T + 1, sizeof(int));
    int nt = agn_group_rows(b->ids, N, V, rows, gs, gk, count);
    int np = agn_group_rows(b->pos, N, T, prows, pgs, pgk, count);
    agn_emb_segments seg = {dcopy(rows, (N + 1) * 4), dcopy(gs, (N + 2) * 4), dcopy(gk, (N + 1) * 4),
                            dcopy(&nt, 4), dcopy(prows, (N + 1) * 4), dcopy(pgs, (N + 2) * 4),
                            dcopy(pgk, (N + 1) * 4), dcopy(&np, 4)};
    float *want_tok = hnew((size_t)V * D), *want_pe = hnew((size_t)T * D);
    memcpy(want_tok, gtok, (size_t)V * D * 4);
    memcpy(want_pe, gpe, (size_t)T * D * 4);
    agn_embedding_backward_cpu(want_tok, want_pe, dout, b->ids, b->pos, N, D);
    for (int ref = 0; ref <= 1; ref++) {
        agn_cuda_set_reference(ref);
        dput(d_gtok, gtok, (size_t)V * D * 4);
        dput(d_gpe, gpe, (size_t)T * D * 4);
        RUN(agn_embedding_backward_cuda(d_gtok, d_gpe, d_dout, b->d_ids, b->d_pos, N, D, &seg, 0));
        char what[96];
        dget(got, d_gtok, (size_t)V * D * 4);
        snprintf(what, sizeof what, "embedding backward, tokens (%s)", path_name(ref));
        gt_same(what, got, want_tok, (size_t)V * D * 4);
        dget(got, d_gpe, (size_t)T * D * 4);
        snprintf(what, sizeof what, "embedding backward, positions (%s)", path_name(ref));
        gt_same(what, got, want_pe, (size_t)T * D * 4);
    }
    agn_cuda_set_reference(0);
    free(tok), free(pe), free(out), free(got), free(dout), free(gtok), free(gpe);
    free(rows), free(gs), free(gk), free(prows), free(pgs), free(pgk), free(count);
    free(want_tok), free(want_pe);
    cudaFree(d_tok), cudaFree(d_pe), cudaFree(d_out), cudaFree(d_dout), cudaFree(d_gtok), cudaFree(d_gpe);
}

static void test_layernorm(int N, int D)
{
    size_t ND = (size_t)N * D;
    float *x = hnew(ND), *w = hnew(D), *bi = hnew(D), *out = hnew(ND), *mean = hnew(N), *rstd = hnew(N);
    gt_fill(x, ND, 11, 2.0f);
    for (int d = 0; d < D; d++) x[d] += 3.0f; /* a row with an offset */
    gt_fill(w, D, 12, 1.0f);
    gt_fill(bi, D, 13, 0.5f);
    agn_layernorm_forward_cpu(out, mean, rstd, x, w, bi, N, D);
    float *d_x = dcopy(x, ND * 4), *d_w = dcopy(w, D * 4), *d_b = dcopy(bi, D * 4);
    float *d_out = dnew(ND * 4), *d_mean = dnew(N * 4), *d_rstd = dnew(N * 4);
    float *got = hnew(ND), *res[2][3];
    char what[96];
    for (int ref = 0; ref <= 1; ref++) {
        agn_cuda_set_reference(ref);
        RUN(agn_layernorm_forward_cuda(d_out, d_mean, d_rstd, d_x, d_w, d_b, N, D, 0));
        res[ref][0] = hnew(ND), res[ref][1] = hnew(N), res[ref][2] = hnew(N);
        dget(res[ref][0], d_out, ND * 4);
        dget(res[ref][1], d_mean, N * 4);
        dget(res[ref][2], d_rstd, N * 4);
        snprintf(what, sizeof what, "layernorm forward %dx%d out (%s)", N, D, path_name(ref));
        gt_check(what, res[ref][0], out, ND, TOL);
        snprintf(what, sizeof what, "layernorm forward %dx%d mean (%s)", N, D, path_name(ref));
        gt_check(what, res[ref][1], mean, N, TOL);
        snprintf(what, sizeof what, "layernorm forward %dx%d rstd (%s)", N, D, path_name(ref));
        gt_check(what, res[ref][2], rstd, N, TOL);
    }
    gt_check("layernorm forward out, fast vs reference", res[0][0], res[1][0], ND, TOL);

    /* backward: into non-zero dinp, dweight, dbias (they add) */
    float *dout = hnew(ND), *dinp0 = hnew(ND), *dw0 = hnew(D), *db0 = hnew(D);
    gt_fill(dout, ND, 14, 1.0f);
    gt_fill(dinp0, ND, 15, 0.1f);
    gt_fill(dw0, D, 16, 0.1f);
    gt_fill(db0, D, 17, 0.1f);
    float *dinp = hnew(ND), *dw = hnew(D), *db = hnew(D);
    memcpy(dinp, dinp0, ND * 4);
    memcpy(dw, dw0, D * 4);
    memcpy(db, db0, D * 4);
    agn_layernorm_backward_cpu(dinp, dw, db, dout, x, w, mean, rstd, N, D);
    float *d_dout = dcopy(dout, ND * 4), *d_dinp = dnew(ND * 4), *d_dw = dnew(D * 4), *d_db = dnew(D * 4);
    float *d_mean_cpu = dcopy(mean, N * 4), *d_rstd_cpu = dcopy(rstd, N * 4);
    float *gd[2];
    for (int ref = 0; ref <= 1; ref++) {
        agn_cuda_set_reference(ref);
        dput(d_dinp, dinp0, ND * 4);
        dput(d_dw, dw0, D * 4);
        dput(d_db, db0, D * 4);
        RUN(agn_layernorm_backward_cuda(d_dinp, d_dw, d_db, d_dout, d_x, d_w, d_mean_cpu,
                                        d_rstd_cpu, N, D, &ws, 0));
        gd[ref] = hnew(ND);
        dget(gd[ref], d_dinp, ND * 4);
        snprintf(what, sizeof what, "layernorm backward %dx%d dinp (%s)", N, D, path_name(ref));
        gt_check(what, gd[ref], dinp, ND, TOL);
        dget(got, d_dw, D * 4);
        snprintf(what, sizeof what, "layernorm backward %dx%d dweight (%s)", N, D, path_name(ref));
        gt_check(what, got, dw, D, TOL);
        dget(got, d_db, D * 4);
        snprintf(what, sizeof what, "layernorm backward %dx%d dbias (%s)", N, D, path_name(ref));
        gt_check(what, got, db, D, TOL);
    }
    gt_check("layernorm backward dinp, fast vs reference", gd[0], gd[1], ND, TOL);
    agn_cuda_set_reference(0);
    for (int r = 0; r < 2; r++) free(res[r][0]), free(res[r][1]), free(res[r][2]), free(gd[r]);
    free(x), free(w), free(bi), free(out), free(mean), free(rstd), free(got), free(dout);
    free(dinp0), free(dw0), free(db0), free(dinp), free(dw), free(db);
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_b), cudaFree(d_out), cudaFree(d_mean), cudaFree(d_rstd);
    cudaFree(d_dout), cudaFree(d_dinp), cudaFree(d_dw), cudaFree(d_db), cudaFree(d_mean_cpu), cudaFree(d_rstd_cpu);
}

static void test_bias(int N, int D)
{
    /* the two outer thirds of a [N, 3D] gradient, as the qkv bias */
    size_t n = (size_t)N * 3 * D;
    float *dout = hnew(n), *b0 = hnew(3 * D), *want = hnew(3 * D), *got = hnew(3 * D);
    gt_fill(dout, n, 21, 1.0f);
    gt_fill(b0, 3 * D, 22, 0.1f);
    memcpy(want, b0, 3 * D * 4);
    agn_bias_backward2_cpu(want, dout, want + 2 * D, dout + 2 * D, N, D, 3 * D);
    float *d_dout = dcopy(dout, n * 4), *d_b = dnew(3 * D * 4);
    char what[96];
    for (int ref = 0; ref <= 1; ref++) {
        agn_cuda_set_reference(ref);
        dput(d_b, b0, 3 * D * 4);
        RUN(agn_bias_backward_cuda(d_b, d_dout, N, D, 3 * D, &ws, 0));
        RUN(agn_bias_backward_cuda(d_b + 2 * D, d_dout + 2 * D, N, D, 3 * D, &ws, 0));
        dget(got, d_b, 3 * D * 4);
        snprintf(what, sizeof what, "bias backward %d rows, ld 3x%d (%s)", N, D, path_name(ref));
        gt_check(what, got, want, 3 * D, TOL);
        snprintf(what, sizeof what, "bias backward: the key third untouched (%s)", path_name(ref));
        gt_same(what, got + D, b0 + D, (size_t)D * 4);
    }
    agn_cuda_set_reference(0);
    free(dout), free(b0), free(want), free(got);
    cudaFree(d_dout), cudaFree(d_b);
}

static void test_attention(const batch *b)
{
    int N = b->N, D = b->D, H = b->H, B = b->B;
    size_t n3 = (size_t)N * 3 * D, nD = (size_t)N * D, att = b->att;
    float *qkv = hnew(n3), *out = hnew(nD), *P = hnew(att), *got = hnew(n3 > att ? n3 : att);
    gt_fill(qkv, n3, 31, 1.5f);
    const int *nk = b->dense ? b->nkey : NULL;
    agn_attention_forward_cpu(out, P, qkv, b->start, b->len, nk, b->att_off, B, D, H);
    float *d_qkv = dcopy(qkv, n3 * 4), *d_out = dnew(nD * 4), *d_att = dnew(att * 4 + 4);
    const int *d_nk = b->dense ? b->d_nkey : NULL;
    char what[128], tag[64];
    snprintf(tag, sizeof tag, "%d rows D=%d H=%d%s", N, D, H, b->dense ? " dense" : "");
    float *fo[3], *fq[3];
    /* backward inputs */
    float *dout = hnew(nD), *dqkv = hnew(n3), *datt = hnew(att + 1);
    gt_fill(dout, nD, 32, 1.0f);
    agn_attention_backward_to_cpu(dqkv, datt, dout, qkv, P, b->start, b->len, nk, b->att_off, B, D, H);
    float *d_dout = dcopy(dout, nD * 4), *d_dqkv = dnew(n3 * 4), *d_datt = dnew(att * 4 + 4);
    float *d_P = dcopy(P, att * 4 + 4);
    static const char *paths[3] = {"fast", "reference", "unfused"};
    for (int k = 0; k < 3; k++) {
        agn_cuda_set_reference(k == 1);
        agn_cuda_set_unfused(k == 2);
        RUN(agn_attention_forward_cuda(d_out, d_att, d_qkv, b->d_start, b->d_len, d_nk, b->d_att_off, B, D, H, b->T, 0));
        fo[k] = hnew(nD);
        dget(fo[k], d_out, nD * 4);
        snprintf(what, sizeof what, "attention forward %s out (%s)", tag, paths[k]);
        gt_check(what, fo[k], out, nD, TOL);
        dget(got, d_att, att * 4);
        snprintf(what, sizeof what, "attention forward %s probs (%s)", tag, paths[k]);
        gt_check(what, got, P, att, TOL);
        /* backward from the CPU's probabilities */
        RUN(cudaMemset(d_dqkv, 0xff, n3 * 4) != cudaSuccess); /* NaN: every row must be written */
        RUN(agn_attention_backward_to_cuda(d_dqkv, d_datt, d_dout, d_qkv, d_P, b->d_start, b->d_len,
                                           d_nk, b->d_att_off, B, D, H, b->T, 0));
        fq[k] = hnew(n3);
        dget(fq[k], d_dqkv, n3 * 4);
        snprintf(what, sizeof what, "attention backward %s dqkv (%s)", tag, paths[k]);
        gt_check(what, fq[k], dqkv, n3, TOL);
    }
    for (int k = 0; k < 3; k += 2) {
        snprintf(what, sizeof what, "attention %s, %s vs reference out", tag, paths[k]);
        gt_check(what, fo[k], fo[1], nD, TOL);
        snprintf(what, sizeof what, "attention %s, %s vs reference dqkv", tag, paths[k]);
        gt_check(what, fq[k], fq[1], n3, TOL);
    }
    agn_cuda_set_unfused(0);
    agn_cuda_set_reference(0);
    for (int r = 0; r < 3; r++) free(fo[r]), free(fq[r]);
    free(qkv), free(out), free(P), free(got), free(dout), free(dqkv), free(datt);
    cudaFree(d_qkv), cudaFree(d_out), cudaFree(d_att), cudaFree(d_dout), cudaFree(d_dqkv), cudaFree(d_datt), cudaFree(d_P);
}

static void test_elementwise(const batch *b)
{
    int N = b->N, D = b->D;
    size_t n = (size_t)N * D;
    float *x = hnew(n), *y = hnew(n), *want = hnew(n), *got = hnew(n);
    gt_fill(x, n, 41, 4.0f);
    gt_fill(y, n, 42, 1.0f);
    float *d_x = dcopy(x, n * 4), *d_y = dcopy(y, n * 4), *d_o = dnew(n * 4);
    agn_gelu_forward_cpu(want, x, n);
    RUN(agn_gelu_forward_cuda(d_o, d_x, n, 0));
    dget(got, d_o, n * 4);
    gt_check("gelu forward", got, want, n, TOL);
    agn_gelu_backward_to_cpu(want, y, x, n);
    RUN(agn_gelu_backward_to_cuda(d_o, d_y, d_x, n, 0));
    dget(got, d_o, n * 4);
    gt_check("gelu backward", got, want, n, TOL);

    /* dropout: the masks of the CPU (agn_dropout_keep), exactly */
    const float p = 0.3f;
    uint64_t *exk = calloc(b->B, 8);
    for (int i = 0; i < b->B; i++) exk[i] = agn_dropout_key(7, 3, 500 + (uint64_t)i);
    uint64_t *d_exk = dcopy(exk, b->B * 8);
    uint8_t *mask = calloc(n, 1), *gmask = calloc(n, 1);
    uint8_t *d_mask = dnew(n);
    for (int site = 0; site < 3; site++) {
        for (int r = 0; r < N; r++)
            for (int d = 0; d < D; d++)
                mask[(size_t)r * D + d] = (uint8_t)agn_dropout_keep(exk[b->row_ex[r]], site, b->pos[r], d, p);
        agn_dropout_cuda dr = {d_exk, b->d_row_ex, b->d_pos, site, agn_dropout_threshold(p)};
        RUN(agn_dropout_mask_cuda(d_mask, &dr, N, D, 0));
        dget(gmask, d_mask, n);
        char what[64];
        snprintf(what, sizeof what, "dropout mask, site %d", site);
        gt_same(what, gmask, mask, n);
        float scale = 1.0f / (1.0f - p);
        agn_residual_forward_cpu(want, x, y, mask, scale, n);
        RUN(agn_residual_forward_cuda(d_o, d_x, d_y, &dr, scale, N, D, 0));
        dget(got, d_o, n * 4);
        snprintf(what, sizeof what, "residual forward with dropout, site %d", site);
        gt_same(what, got, want, n * 4);
        memcpy(want, x, n * 4);
        agn_dropout_forward_cpu(want, mask, scale, n);
        dput(d_o, x, n * 4);
        RUN(agn_dropout_forward_cuda(d_o, &dr, scale, N, D, 0));
        dget(got, d_o, n * 4);
        snprintf(what, sizeof what, "dropout forward, site %d", site);
        gt_same(what, got, want, n * 4);
        agn_dropout_backward_to_cpu(want, y, mask, scale, n);
        RUN(agn_dropout_backward_to_cuda(d_o, d_y, &dr, scale, N, D, 0));
        dget(got, d_o, n * 4);
        snprintf(what, sizeof what, "dropout backward, site %d", site);
        gt_same(what, got, want, n * 4);
    }
    agn_residual_forward_cpu(want, x, y, NULL, 1.0f, n);
    RUN(agn_residual_forward_cuda(d_o, d_x, d_y, NULL, 1.0f, N, D, 0));
    dget(got, d_o, n * 4);
    gt_same("residual forward without dropout", got, want, n * 4);

    /* pooling over the keys of each example */
    int B = b->B;
    float *pool = hnew((size_t)B * D), *gpool = hnew((size_t)B * D), *d_pool = dnew((size_t)B * D * 4);
    agn_meanpool_forward_cpu(pool, x, b->start, b->nkey, B, D);
    RUN(agn_meanpool_forward_cuda(d_pool, d_x, b->d_start, b->d_nkey, B, D, 0));
    dget(gpool, d_pool, (size_t)B * D * 4);
    gt_check("meanpool forward", gpool, pool, (size_t)B * D, TOL);
    memcpy(want, y, n * 4);
    agn_meanpool_backward_cpu(want, pool, b->start, b->nkey, B, D);
    dput(d_o, y, n * 4);
    dput(d_pool, pool, (size_t)B * D * 4);
    RUN(agn_meanpool_backward_cuda(d_o, d_pool, b->d_start, b->d_nkey, B, D, 0));
    dget(got, d_o, n * 4);
    gt_check("meanpool backward", got, want, n, TOL);

    free(x), free(y), free(want), free(got), free(exk), free(mask), free(gmask), free(pool), free(gpool);
    cudaFree(d_x), cudaFree(d_y), cudaFree(d_o), cudaFree(d_exk), cudaFree(d_mask), cudaFree(d_pool);
}

static void test_crossentropy(int B, int C)
{
    size_t n = (size_t)B * C;
    float *logits = hnew(n), *probs = hnew(n), *losses = hnew(B), *got = hnew(n);
    int32_t *labels = calloc(B, 4);
    gt_fill(logits, n, 51, 8.0f);
    for (int i = 0; i < B; i++) labels[i] = (i * 5) % C;
    logits[0] = 80.0f; /* a confident row */
    float sum = agn_crossentropy_forward_cpu(losses, probs, logits, labels, B, C);
    float *d_l = dcopy(logits, n * 4), *d_p = dnew(n * 4), *d_loss = dnew(B * 4), *d_sum = dnew(4);
    int32_t *d_lab = dcopy(labels, B * 4);
    RUN(agn_crossentropy_forward_cuda(d_loss, d_p, d_l, d_lab, d_sum, B, C, 0));
    dget(got, d_p, n * 4);
    gt_check("crossentropy forward probs", got, probs, n, TOL);
    dget(got, d_loss, B * 4);
    gt_check("crossentropy forward losses", got, losses, B, TOL);
    float gsum;
    dget(&gsum, d_sum, 4);
    gt_check("crossentropy forward loss sum", &gsum, &sum, 1, TOL);
    float *dl = hnew(n);
    gt_fill(dl, n, 52, 0.1f);
    float *want = hnew(n);
    memcpy(want, dl, n * 4);
    agn_crossentropy_backward_cpu(want, probs, labels, 0.125f, B, C);
    float *d_dl = dcopy(dl, n * 4), *d_pc = dcopy(probs, n * 4);
    RUN(agn_crossentropy_backward_cuda(d_dl, d_pc, d_lab, 0.125f, B, C, 0));
    dget(got, d_dl, n * 4);
    gt_check("crossentropy backward", got, want, n, TOL);
    free(logits), free(probs), free(losses), free(got), free(labels), free(dl), free(want);
    cudaFree(d_l), cudaFree(d_p), cudaFree(d_loss), cudaFree(d_sum), cudaFree(d_lab), cudaFree(d_dl), cudaFree(d_pc);
}

static void test_matmul(int N, int IC, int OC, int bf16)
{
    size_t ni = (size_t)N * IC, no = (size_t)N * OC, nw = (size_t)OC * IC;
    float *x = hnew(ni), *w = hnew(nw), *bias = hnew(OC), *out = hnew(no), *got = hnew(ni > nw ? (ni > no ? ni : no) : (nw > no ? nw : no));
    gt_fill(x, ni, 61, 1.0f);
    gt_fill(w, nw, 62, 0.1f);
    gt_fill(bias, OC, 63, 0.5f);
    agn_matmul_forward_cpu(out, x, w, bias, N, IC, OC);
    agn_mm *mm = agn_mm_create(ni > no ? ni : no, bf16);
    if (!mm) {
        printf("FAIL: agn_mm_create: %s\n", agn_errmsg());
        gt_failures++;
        return;
    }
    float *d_x = dcopy(x, ni * 4), *d_w = dcopy(w, nw * 4), *d_b = dcopy(bias, OC * 4), *d_o = dnew(no * 4);
    void *d_w16 = dnew(nw * 2);
    RUN(agn_f32_to_bf16_cuda(d_w16, d_w, nw, 0));
    double tol = bf16 ? TOL_BF16 : TOL;
    char what[96];
    RUN(agn_matmul_forward_cuda(mm, d_o, d_x, d_w, d_w16, d_b, N, IC, OC, 0));
    dget(got, d_o, no * 4);
    snprintf(what, sizeof what, "matmul forward %dx%dx%d %s", N, IC, OC, bf16 ? "bf16" : "fp32");
    gt_check(what, got, out, no, tol);
    float *dout = hnew(no), *dinp = hnew(ni), *dw0 = hnew(nw), *dw = hnew(nw), *db = hnew(OC);
    gt_fill(dout, no, 64, 1.0f);
    gt_fill(dw0, nw, 65, 0.1f);
    memcpy(dw, dw0, nw * 4);
    agn_matmul_backward_to_cpu(dinp, dw, db, dout, x, w, N, IC, OC);
    float *d_dout = dcopy(dout, no * 4), *d_dinp = dnew(ni * 4), *d_dw = dcopy(dw0, nw * 4);
    RUN(agn_matmul_backward_cuda(mm, d_dinp, d_dw, d_dout, d_x, d_w, d_w16, N, IC, OC, 0, 0));
    dget(got, d_dinp, ni * 4);
    snprintf(what, sizeof what, "matmul backward %dx%dx%d %s dinp", N, IC, OC, bf16 ? "bf16" : "fp32");
    gt_check(what, got, dinp, ni, tol);
    dget(got, d_dw, nw * 4);
    snprintf(what, sizeof what, "matmul backward %dx%dx%d %s dweight (+=)", N, IC, OC, bf16 ? "bf16" : "fp32");
    gt_check(what, got, dw, nw, tol);
    /* twice the same product: the same bits */
    float *again = hnew(nw);
    dput(d_dw, dw0, nw * 4);
    RUN(agn_matmul_backward_cuda(mm, d_dinp, d_dw, d_dout, d_x, d_w, d_w16, N, IC, OC, 0, 0));
    dget(again, d_dw, nw * 4);
    snprintf(what, sizeof what, "matmul backward %dx%dx%d %s, run twice", N, IC, OC, bf16 ? "bf16" : "fp32");
    gt_same(what, again, got, nw * 4);
    agn_mm_destroy(mm);
    free(x), free(w), free(bias), free(out), free(got), free(dout), free(dinp), free(dw0), free(dw), free(db), free(again);
    cudaFree(d_x), cudaFree(d_w), cudaFree(d_b), cudaFree(d_o), cudaFree(d_w16), cudaFree(d_dout), cudaFree(d_dinp), cudaFree(d_dw);
}

static void test_optim(void)
{
    /* AdamW: the bits of optim.c over pieces with and without decay */
    agn_tensor pieces[2];
    memset(pieces, 0, sizeof pieces);
    pieces[0].offset = 0;
    pieces[0].numel = 10000;
    pieces[0].decay = 1;
    pieces[1].offset = 10000;
    pieces[1].numel = 3001;
    pieces[1].decay = 0;
    size_t n = 13001;
    float *p = hnew(n), *m = hnew(n), *v = hnew(n), *g = hnew(n), *got = hnew(n);
    gt_fill(p, n, 71, 0.1f);
    gt_fill(g, n, 72, 0.01f);
    float *d_p = dcopy(p, n * 4), *d_m = dcopy(m, n * 4), *d_v = dcopy(v, n * 4), *d_g = dcopy(g, n * 4);
    /* the one-launch form: the pieces in chunks of 4096 (the last short) */
    float *d_p2 = dcopy(p, n * 4), *d_m2 = dcopy(m, n * 4), *d_v2 = dcopy(v, n * 4);
    size_t chunks[3 * 8];
    int nch = 0;
    for (int i = 0; i < 2; i++)
        for (size_t o = 0; o < pieces[i].numel; o += 4096) {
            chunks[3 * nch] = pieces[i].offset + o;
            chunks[3 * nch + 1] = pieces[i].numel - o < 4096 ? pieces[i].numel - o : 4096;
            chunks[3 * nch + 2] = (size_t)pieces[i].decay;
            nch++;
        }
    size_t *d_chunks = dcopy(chunks, sizeof chunks);
    for (long step = 0; step < 3; step++) {
        agn_adam_args a = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                           .weight_decay = 0.01f, .coef = step == 1 ? 0.5f : 1.0f, .step = step};
        agn_adamw_pieces(p, m, v, g, pieces, 2, &a);
        double t = (double)step + 1.0;
        /* optim.c's constants: pow of the float betas in double */
        double bc1 = 1.0 - pow((double)a.beta1, t), bc2 = 1.0 - pow((double)a.beta2, t);
        for (int i = 0; i < 2; i++) {
            float decay = pieces[i].decay ? 1.0f - a.lr * a.weight_decay : 1.0f;
            size_t o = pieces[i].offset;
            RUN(agn_adamw_cuda(d_p + o, d_m + o, d_v + o, d_g + o, pieces[i].numel, a.coef, a.beta1,
                               a.beta2, decay, (float)((double)a.lr / bc1), (float)sqrt(bc2), a.eps, 0));
        }
        RUN(agn_adamw_chunks_cuda(d_p2, d_m2, d_v2, d_g, d_chunks, nch, a.coef, a.beta1, a.beta2,
                                  1.0f - a.lr * a.weight_decay, (float)((double)a.lr / bc1),
                                  (float)sqrt(bc2), a.eps, 0));
    }
    dget(got, d_p, n * 4);
    gt_same("adamw, 3 steps: parameters", got, p, n * 4);
    dget(got, d_m, n * 4);
    gt_same("adamw, 3 steps: first moment", got, m, n * 4);
    dget(got, d_v, n * 4);
    gt_same("adamw, 3 steps: second moment", got, v, n * 4);
    dget(got, d_p2, n * 4);
    gt_same("adamw in chunks, 3 steps: parameters", got, p, n * 4);
    dget(got, d_m2, n * 4);
    gt_same("adamw in chunks, 3 steps: first moment", got, m, n * 4);
    dget(got, d_v2, n * 4);
    gt_same("adamw in chunks, 3 steps: second moment", got, v, n * 4);
    cudaFree(d_p2), cudaFree(d_m2), cudaFree(d_v2), cudaFree(d_chunks);

    /* sum of squares against a long double sum; deterministic */
    size_t big = 3000017;
    float *x = hnew(big);
    gt_fill(x, big, 73, 1.0f);
    long double want = 0;
    for (size_t i = 0; i < big; i++) want += (long double)x[i] * x[i];
    float *d_x = dcopy(x, big * 4);
    double *d_out = dnew(8), *scratch = dnew(agn_sumsq_scratch(big) * 8), s1, s2;
    RUN(agn_sumsq_cuda(d_out, d_x, big, scratch, 0));
    dget(&s1, d_out, 8);
    RUN(agn_sumsq_cuda(d_out, d_x, big, scratch, 0));
    dget(&s2, d_out, 8);
    double rel = fabs(s1 - (double)want) / (double)want;
    printf("%-58s rel %.3e (tol 1e-12)%s\n", "sum of squares of 3000017 floats", rel, rel <= 1e-12 ? "" : "  FAIL");
    if (rel > 1e-12) gt_failures++;
    gt_same("sum of squares, run twice", &s1, &s2, 8);

    /* scale; rows gather, scatter and zero */
    float *y = hnew(big);
    for (size_t i = 0; i < big; i++) y[i] = x[i] * 0.37f;
    RUN(agn_scale_cuda(d_x, big, 0.37f, 0));
    dget(got = realloc(got, big * 4), d_x, big * 4);
    gt_same("scale", got, y, big * 4);
    int32_t rows[5] = {7, 0, 3, 9, 4};
    size_t dim = 33;
    float *tab = hnew(10 * dim), *packed = hnew(5 * dim), *want_p = hnew(5 * dim), *want_t = hnew(10 * dim);
    gt_fill(tab, 10 * dim, 74, 1.0f);
    for (int i = 0; i < 5; i++) memcpy(want_p + i * dim, tab + rows[i] * dim, dim * 4);
    float *d_tab = dcopy(tab, 10 * dim * 4), *d_packed = dnew(5 * dim * 4);
    int32_t *d_rows = dcopy(rows, sizeof rows);
    RUN(agn_rows_cuda(d_packed, d_tab, d_rows, 5, dim, 0, 0));
    dget(packed, d_packed, 5 * dim * 4);
    gt_same("rows gather", packed, want_p, 5 * dim * 4);
    memcpy(want_t, tab, 10 * dim * 4);
    for (int i = 0; i < 5; i++) memset(want_t + rows[i] * dim, 0, dim * 4);
    RUN(agn_rows_cuda(d_tab, NULL, d_rows, 5, dim, 1, 0));
    dget(tab, d_tab, 10 * dim * 4);
    gt_same("rows zero", tab, want_t, 10 * dim * 4);
    for (int i = 0; i < 5; i++) memcpy(want_t + rows[i] * dim, want_p + i * dim, dim * 4);
    RUN(agn_rows_cuda(d_tab, d_packed, d_rows, 5, dim, 1, 0));
    dget(tab, d_tab, 10 * dim * 4);
    gt_same("rows scatter", tab, want_t, 10 * dim * 4);
    free(p), free(m), free(v), free(g), free(got), free(x), free(y), free(tab), free(packed), free(want_p), free(want_t);
    cudaFree(d_p), cudaFree(d_m), cudaFree(d_v), cudaFree(d_g), cudaFree(d_x), cudaFree(d_out), cudaFree(scratch);
    cudaFree(d_tab), cudaFree(d_packed), cudaFree(d_rows);
}

int main(void)
{
    gt_skip_without_gpu("t-layers-cuda");
    if (cudaSetDevice(0) != cudaSuccess) {
        printf("FAIL: cudaSetDevice(0)\n");
        return 1;
    }
    ws.floats = agn_cuda_ws_floats(4096, 1024);
    ws.buf = dnew(ws.floats * 4);
    /* head sizes 8 (a warp's lanes beyond the channels) and 64; max_len
     * 256 with head size 64 needs more than 48 KiB of shared memory in the
     * fused attention kernels (the opt-in path) */
    const int shapes[3][3] = {{16, 32, 4}, {64, 128, 2}, {256, 128, 2}}; /* T, D, H */
    for (int sh = 0; sh < 3; sh++) {
        int T = shapes[sh][0], D = shapes[sh][1], H = shapes[sh][2], V = 40;
        for (int dense = 0; dense <= 1; dense++) {
            batch b;
            make_batch(&b, T, D, H, dense, V);
            printf("-- batch: %d examples, %d rows, T=%d D=%d H=%d%s\n", b.B, b.N, T, D, H,
                   dense ? ", dense (keys < rows)" : "");
            test_attention(&b);
            if (!dense) {
                test_embedding(&b, V, T);
                test_elementwise(&b);
            }
            free_batch(&b);
        }
        test_layernorm(300, D);
    }
    test_layernorm(1, 7);
    test_layernorm(1000, 33);
    test_bias(1000, 48);
    test_bias(3, 5);
    test_crossentropy(300, 4);
    test_crossentropy(1, 2);
    for (int bf16 = 0; bf16 <= 1; bf16++) {
        test_matmul(300, 64, 192, bf16);
        test_matmul(77, 40, 24, bf16);
        test_matmul(1, 64, 4, bf16);
    }
    test_optim();
    cudaFree(ws.buf);
    return gt_finish("t-layers-cuda");
}

#else /* no CUDA backend */

int main(void)
{
    gt_skip_without_gpu("t-layers-cuda");
    return 77;
}

#endif
