/* layers_cuda.h: the layers of the transformer classifier on a GPU, the
 * twins of layers_cpu.h: agn_X_forward_cuda / agn_X_backward_cuda take the
 * arguments of agn_X_*_cpu on device memory, then a stream, and return 0 or
 * -1 with a message (agn_seterr).  The matrix products are in
 * matmul_cublaslt.h.  Where the twin differs:
 *  - dropout: no mask arrays; the kernels compute the mask of each element
 *    from rng.h's hash (agn_dropout_cuda below), bit for bit the CPU's;
 *  - crossentropy_forward writes its sum to device memory (*loss_sum);
 *  - layernorm_backward and bias_backward take a workspace for their
 *    deterministic column sums; embedding_backward takes the rows grouped
 *    by token id and by position (agn_emb_segments, built on the host by
 *    cuda_plan.h) for its fast path.
 *
 * Two paths.  Every layer whose fast kernel is more than one thread per
 * element has a plain reference kernel too (one thread per row, column or
 * (example, head, row), loops in the CPU's order): layernorm, bias and
 * layernorm column sums, embedding backward, attention.  The reference path
 * is taken when agn_cuda_set_reference(1) was called or the environment has
 * AGN_CUDA_REFERENCE=1, so that a GPU check compares fast, reference and
 * CPU.  Elementwise layers (embedding forward, GELU, residual, dropout,
 * pooling, cross-entropy) have one kernel, already one thread per element
 * or row.
 *
 * Determinism: no floating-point atomics anywhere; every sum runs in an
 * order fixed by the sizes alone (tree reductions of fixed shape inside a
 * warp or block, then partial sums added in index order). */
#ifndef AGN_LAYERS_CUDA_H
#define AGN_LAYERS_CUDA_H

#include <stddef.h>
#include <stdint.h>
#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Whether the reference kernels are used (see above); set overrides the
 * environment. */
int agn_cuda_reference(void);
void agn_cuda_set_reference(int on);

/* Scratch for the column sums: agn_cuda_ws_floats(max_rows, max_cols)
 * floats of device memory. */
typedef struct {
    float *buf;
    size_t floats;
} agn_cuda_ws;
size_t agn_cuda_ws_floats(int max_rows, int max_cols);

/* The dropout of one site, for elements [r, c] of an [N, D] activation:
 * kept iff agn_dropout_row_keep(agn_dropout_row_key(ex_key[row_ex[r]],
 * site, pos[r]), c, threshold).  ex_key [B], row_ex and pos [N] are device
 * memory.  A NULL agn_dropout_cuda pointer means no dropout. */
typedef struct {
    const uint64_t *ex_key;
    const int32_t *row_ex, *pos;
    int site;
    uint32_t threshold;
} agn_dropout_cuda;

/* The packed rows grouped by token id and by position (cuda_plan.h):
 * group g of tokens holds rows tok_rows[tok_start[g] .. tok_start[g+1]) in
 * ascending order, all with id tok_key[g]; *n_tok groups (device int, so a
 * captured graph reads the count of the batch it replays); same for pos. */
typedef struct {
    const int32_t *tok_rows, *tok_start, *tok_key, *n_tok;
    const int32_t *pos_rows, *pos_start, *pos_key, *n_pos;
} agn_emb_segments;

/* ---- embedding ---------------------------------------------------------- */
int agn_embedding_forward_cuda(float *out, const int32_t *ids, const int32_t *pos,
                               const float *tok_emb, const float *pos_emb, int N, int D,
                               cudaStream_t s);
/* SEG NULL: the reference kernel (one thread per channel, rows in order). */
int agn_embedding_backward_cuda(float *dtok_emb, float *dpos_emb, const float *dout,
                                const int32_t *ids, const int32_t *pos, int N, int D,
                                const agn_emb_segments *seg, cudaStream_t s);

/* ---- layernorm (eps 1e-5) ------------------------------------------------- */
int agn_layernorm_forward_cuda(float *out, float *mean, float *rstd, const float *inp,
                               const float *weight, const float *bias, int N, int D,
                               cudaStream_t s);
int agn_layernorm_backward_cuda(float *dinp, float *dweight, float *dbias, const float *dout,
                                const float *inp, const float *weight, const float *mean,
                                const float *rstd, int N, int D, const agn_cuda_ws *ws,
                                cudaStream_t s);

/* ---- bias gradient: dbias[c] += sum over r of dout[r*ld + c], c < C ------- */
int agn_bias_backward_cuda(float *dbias, const float *dout, int N, int C, int ld,
                           const agn_cuda_ws *ws, cudaStream_t s);

/* ---- attention (layers_cpu.h: layouts of qkv, att, att_off) -----------------
 * start, len, nkey [B] int and att_off [B] size_t are device memory;
 * MAX_LEN bounds every len[b] (the model's max_len).  Three kernels: the
 * reference (a thread per (example, head, row)); for MAX_LEN <= 256 when
 * its keys and values fit in shared memory, the fused one (a block per
 * example-head stages them, scores stay in shared memory until the
 * probabilities are written to att for the backward pass; backward stages
 * keys and values for dQ, then queries and output gradients for dK and
 * dV); else a warp per row reading them from global memory. */
int agn_attention_forward_cuda(float *out, float *att, const float *qkv, const int *start,
                               const int *len, const int *nkey, const size_t *att_off, int B,
                               int D, int H, int max_len, cudaStream_t s);
/* Writes every row of dqkv of every example (the _to form of the CPU). */
int agn_attention_backward_to_cuda(float *dqkv, float *datt, const float *dout, const float *qkv,
                                   const float *att, const int *start, const int *len,
                                   const int *nkey, const size_t *att_off, int B, int D, int H,
                                   int max_len, cudaStream_t s);
/* Forces the warp-per-row kernels even where the fused ones fit (tests
 * compare the three); 0 restores the choice. */
void agn_cuda_set_unfused(int on);
int agn_cuda_unfused(void);

/* ---- GELU, tanh approximation ------------------------------------------------ */
int agn_gelu_forward_cuda(float *out, const float *inp, size_t n, cudaStream_t s);
/* dinp = gelu'(inp) * dout */
int agn_gelu_backward_to_cuda(float *dinp, const float *dout, const float *inp, size_t n,
                              cudaStream_t s);

/* ---- residual and dropout over [N, D] ---------------------------------------------
 * out = inp + keep * scale * y (DROP NULL: out = inp + y) */
int agn_residual_forward_cuda(float *out, const float *inp, const float *y,
                              const agn_dropout_cuda *drop, float scale, int N, int D,
                              cudaStream_t s);
/* x = keep ? x * scale : 0, in place */
int agn_dropout_forward_cuda(float *x, const agn_dropout_cuda *drop, float scale, int N, int D,
                             cudaStream_t s);
/* dinp = keep ? dout * scale : 0 */
int agn_dropout_backward_to_cuda(float *dinp, const float *dout, const agn_dropout_cuda *drop,
                                 float scale, int N, int D, cudaStream_t s);
/* mask[r*D + c] = keep (0/1): the masks themselves, for tests */
int agn_dropout_mask_cuda(uint8_t *mask, const agn_dropout_cuda *drop, int N, int D,
                          cudaStream_t s);

/* ---- masked mean pooling -------------------------------------------------------- */
int agn_meanpool_forward_cuda(float *out, const float *inp, const int *start, const int *len,
                              int B, int D, cudaStream_t s);
/* dinp[rows of b] += dout[b] / len[b] */
int agn_meanpool_backward_cuda(float *dinp, const float *dout, const int *start, const int *len,
                               int B, int D, cudaStream_t s);

/* ---- softmax cross-entropy ---------------------------------------------------------
 * probs = softmax(logits); with labels, losses[b] and *loss_sum = their sum
 * (added in order, in double, rounded to float, as the CPU). */
int agn_crossentropy_forward_cuda(float *losses, float *probs, const float *logits,
                                  const int32_t *labels, float *loss_sum, int B, int C,
                                  cudaStream_t s);
/* dlogits += scale * (probs - onehot(labels)) */
int agn_crossentropy_backward_cuda(float *dlogits, const float *probs, const int32_t *labels,
                                   float scale, int B, int C, cudaStream_t s);

/* ---- optimizer and buffer kernels (optim_cuda.cu) ------------------------------------
 * AdamW over n entries from p, m, v, g (optim.c's formula and operation
 * order, no FMA contraction: the CPU's bits); DECAY is 1 - lr * wd or 1. */
int agn_adamw_cuda(float *p, float *m, float *v, const float *g, size_t n, float coef,
                   float beta1, float beta2, float decay, float step_size, float bc2_sqrt,
                   float eps, cudaStream_t s);
/* The same over many pieces in one launch: CHUNKS (device) holds n triples
 * (offset, count, decay flag) of size_t, offsets into p, m, v and g; a
 * chunk with the flag set uses DECAY, else 1. */
int agn_adamw_chunks_cuda(float *p, float *m, float *v, const float *g, const size_t *chunks,
                          int n, float coef, float beta1, float beta2, float decay,
                          float step_size, float bc2_sqrt, float eps, cudaStream_t s);
/* The sum of squares, in double, of n floats from x, into *out (device
 * double): fixed blocks, each a fixed tree, block sums added in order.
 * SCRATCH: agn_sumsq_scratch(n) doubles of device memory. */
size_t agn_sumsq_scratch(size_t n);
int agn_sumsq_cuda(double *out, const float *x, size_t n, double *scratch, cudaStream_t s);
/* x[0 .. n) *= coef */
int agn_scale_cuda(float *x, size_t n, float coef, cudaStream_t s);
/* Many short spans in one launch, a block per span: SPANS is device memory
 * holding n triples (offset, count, slot) of size_t, spans of BASE.
 * out[slot] (device doubles) = the sum of squares of the span, in double, a
 * fixed tree; or every span *= coef (slot unused).  For long spans (a
 * block each would be slow) use the calls above. */
int agn_sumsq_spans_cuda(double *out, const float *base, const size_t *spans, int n,
                         cudaStream_t s);
int agn_scale_spans_cuda(float *base, const size_t *spans, int n, float coef, cudaStream_t s);
/* gather: dst row i = src row rows[i]; scatter: dst row rows[i] = src row i;
 * src NULL (scatter): dst row rows[i] = 0.  ROWS is device memory. */
int agn_rows_cuda(float *dst, const float *src, const int32_t *rows, size_t n, size_t dim,
                  int scatter, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
