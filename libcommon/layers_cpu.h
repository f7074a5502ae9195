/* layers_cpu.h: the layers of the transformer classifier on the CPU, one
 * agn_X_forward_cpu / agn_X_backward_cpu pair per layer (the CUDA twins in
 * layers_cuda.h have the same names with _cuda and the same arguments on
 * device memory), in the argument order of llm.c:
 * forward takes its outputs and saved statistics first, then inputs, then
 * weights, then sizes; backward takes the output gradients first and ADDS
 * (+=) into the gradients of inputs and weights.  Matrices are row-major in
 * PyTorch's nn.Linear layout, W [OC, IC].
 *
 * Activations are "packed": the model works on the N = sum of lengths rows
 * of the batch that are real tokens, never on pad positions.  Pad positions
 * cannot reach the loss (pad keys are masked and pooling skips them), so
 * this computes exactly the padded model's loss and gradients, at a cost
 * proportional to real tokens.  A packed row r belongs to example ex[r] at
 * position pos[r]; example b owns rows start[b] .. start[b] + len[b].
 *
 * The agn_X_backward_to_cpu variants WRITE (=) the input gradient instead of adding
 * into it (weight and bias gradients are still added), so the model need
 * not zero an activation-sized buffer first: less memory traffic, one
 * parallel region less.
 *
 * Every function here is deterministic for a given thread count: parallel
 * loops write disjoint outputs, and reductions run in a fixed order. */
#ifndef AGN_LAYERS_CPU_H
#define AGN_LAYERS_CPU_H

#include <stddef.h>
#include <stdint.h>

/* ---- embedding ----------------------------------------------------------
 * out[r,:] = tok_emb[ids[r],:] + pos_emb[pos[r],:] over N packed rows. */
void agn_embedding_forward_cpu(float *out, const int32_t *ids, const int32_t *pos, const float *tok_emb,
                       const float *pos_emb, int N, int D);
void agn_embedding_backward_cpu(float *dtok_emb, float *dpos_emb, const float *dout, const int32_t *ids,
                        const int32_t *pos, int N, int D);

/* ---- layernorm (eps 1e-5) -------------------------------------------------
 * mean, rstd [N] saved for the backward pass. */
void agn_layernorm_forward_cpu(float *out, float *mean, float *rstd, const float *inp,
                       const float *weight, const float *bias, int N, int D);
void agn_layernorm_backward_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, const float *mean,
                        const float *rstd, int N, int D);

/* ---- matmul -----------------------------------------------------------------
 * out[N,OC] = inp[N,IC] . W[OC,IC]^T + bias[OC]  (bias may be NULL).
 * CBLAS sgemm when HAVE_CBLAS, blocked loops otherwise. */
void agn_matmul_forward_cpu(float *out, const float *inp, const float *weight, const float *bias, int N,
                    int IC, int OC);
/* dinp may be NULL (no input gradient wanted); dbias may be NULL. */
void agn_matmul_backward_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                     const float *inp, const float *weight, int N, int IC, int OC);
/* The same, with dinp = dout . W (written, not added). */
void agn_matmul_backward_to_cpu(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int IC, int OC);

/* dbias[c] += sum over rows r of dout[r*ld + c], c < C: the bias part of
 * agn_matmul_backward_cpu, for a slice of the outputs. */
void agn_bias_backward_cpu(float *dbias, const float *dout, int N, int C, int ld);
/* agn_bias_backward_cpu of two slices at once (one parallel loop). */
void agn_bias_backward2_cpu(float *dbias, const float *dout, float *dbias2, const float *dout2, int N,
                    int C, int ld);

/* ---- multi-head attention ----------------------------------------------------
 * qkv [N, 3D]: per row all of Q, then K, then V; head h owns columns
 * h*hd .. (h+1)*hd of each (hd = D/H).  Example b owns the len[b] rows from
 * start[b]; its keys are the first nkey[b] of them (nkey NULL: all; more
 * rows than keys happen only when pad positions are computed, see
 * agn_model.dense).  Per example b and head h:
 * att = softmax(Q K^T / sqrt(hd)) over the keys, out = att V.  att holds the
 * probabilities, H*len[b]*nkey[b] floats per example from att_off[b]
 * (layout [h][i][j]).  Backward uses datt, laid out like att, as scratch.
 * The products are small sgemms (CBLAS) or loops, inside one parallel loop
 * over (example, head). */
void agn_attention_forward_cpu(float *out, float *att, const float *qkv, const int *start,
                       const int *len, const int *nkey, const size_t *att_off, int B, int D,
                       int H);
void agn_attention_backward_cpu(float *dqkv, float *datt, const float *dout, const float *qkv,
                        const float *att, const int *start, const int *len, const int *nkey,
                        const size_t *att_off, int B, int D, int H);
/* The same, writing every row start[b] .. start[b] + len[b] of dqkv (rows
 * outside every example are left as they are). */
void agn_attention_backward_to_cpu(float *dqkv, float *datt, const float *dout, const float *qkv,
                           const float *att, const int *start, const int *len, const int *nkey,
                           const size_t *att_off, int B, int D, int H);

/* ---- GELU, tanh approximation ------------------------------------------------ */
void agn_gelu_forward_cpu(float *out, const float *inp, size_t n);
void agn_gelu_backward_cpu(float *dinp, const float *dout, const float *inp, size_t n);
/* dinp = gelu'(inp) * dout. */
void agn_gelu_backward_to_cpu(float *dinp, const float *dout, const float *inp, size_t n);
/* out = gelu(inp), grad = gelu'(inp), in one pass; then the backward is
 * agn_mul_cpu(dinp, grad, dout): the same values as agn_gelu_forward_cpu
 * and agn_gelu_backward_to_cpu give. */
void agn_gelu_value_grad_cpu(float *out, float *grad, const float *inp, size_t n);
/* y = a * b, elementwise. */
void agn_mul_cpu(float *y, const float *a, const float *b, size_t n);

/* ---- residual with dropout ------------------------------------------------------
 * out = inp + mask * scale * y, where mask [n] is 0/1 (NULL: no dropout). */
void agn_residual_forward_cpu(float *out, const float *inp, const float *y, const uint8_t *mask,
                      float scale, size_t n);
/* dinp += dout; dy += mask * scale * dout. */
void agn_residual_backward_cpu(float *dinp, float *dy, const float *dout, const uint8_t *mask, float scale,
                       size_t n);

/* ---- dropout in place (the embedding site) ---------------------------------------- */
void agn_dropout_forward_cpu(float *x, const uint8_t *mask, float scale, size_t n);
/* dinp += mask * scale * dout. */
void agn_dropout_backward_cpu(float *dinp, const float *dout, const uint8_t *mask, float scale, size_t n);
/* dinp = mask * scale * dout. */
void agn_dropout_backward_to_cpu(float *dinp, const float *dout, const uint8_t *mask, float scale,
                         size_t n);

/* ---- masked mean pooling -------------------------------------------------------------
 * out[b,:] = mean over the len[b] rows from start[b] (0 if len[b] == 0). */
void agn_meanpool_forward_cpu(float *out, const float *inp, const int *start, const int *len, int B, int D);
void agn_meanpool_backward_cpu(float *dinp, const float *dout, const int *start, const int *len, int B,
                       int D);

/* ---- classifier head with softmax cross-entropy -----------------------------------------
 * logits[B,C] = inp[B,D] . W[C,D]^T + b; probs = softmax(logits);
 * losses[b] = -log probs[b, labels[b]].  Returns the sum of losses (0 and
 * losses untouched when labels is NULL). */
float agn_crossentropy_forward_cpu(float *losses, float *probs, const float *logits,
                           const int32_t *labels, int B, int C);
/* dlogits += scale * (probs - onehot(labels)). */
void agn_crossentropy_backward_cpu(float *dlogits, const float *probs, const int32_t *labels, float scale,
                           int B, int C);

#endif
