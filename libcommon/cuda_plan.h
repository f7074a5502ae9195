/* cuda_plan.h: the host side of the CUDA backend that needs no GPU, in
 * plain C so that the CPU tests (tests/t-cuda-plan.c) check it on every
 * machine: the packing of a batch into rows (the same as model_cpu.c's),
 * the row count rounded up to a graph bucket, the layout of the index
 * buffers uploaded with each batch, the rows grouped by token id and by
 * position for the deterministic embedding gradient, and the key that
 * picks a captured CUDA graph.
 *
 * Padding rows.  A batch of N packed rows runs on Npad = agn_cuda_bucket_rows
 * (N) rows, so that one captured graph serves every batch of a bucket.  The
 * rows N .. Npad belong to no example: token 0 at position 0, never a key,
 * never pooled, and left out of the embedding's row groups, so they reach
 * neither the loss nor a gradient (model_cuda.cu zeroes their output
 * gradients). */
#ifndef AGN_CUDA_PLAN_H
#define AGN_CUDA_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"

#define AGN_CUDA_ROW_BUCKET 256

/* N rounded up to a multiple of BUCKET (AGN_CUDA_ROW_BUCKET when 0), at
 * least one bucket, at most MAX_ROWS (itself a multiple of the bucket, from
 * agn_cuda_max_rows); -1 when N > MAX_ROWS or N < 0. */
long agn_cuda_bucket_rows(long N, int bucket, long max_rows);
/* Rows the activations are sized for: max_batch * max_len rounded up. */
long agn_cuda_max_rows(int max_batch, int max_len, int bucket);

/* Byte offsets of the arrays in the index block (one pinned host copy, one
 * device copy, one upload per batch); R rows, BM examples at most. */
typedef struct {
    size_t ids, pos, row_ex;              /* int32 [R] */
    size_t start, len, nkey, labels;      /* int32 [BM] */
    size_t tok_rows, tok_start, tok_key;  /* int32 [R], [R + 1], [R] */
    size_t pos_rows, pos_start, pos_key;  /* int32 [R], [R + 1], [R] */
    size_t n_tok, n_pos;                  /* int32 [1] */
    size_t att_off;                       /* size_t [BM] */
    size_t ex_key;                        /* uint64 [BM] */
    size_t bytes;                         /* the whole block */
} agn_cuda_index_layout;
void agn_cuda_index_layout_init(agn_cuda_index_layout *l, long R, int BM);

/* The plan of one batch: the index block filled in, and its sizes. */
typedef struct {
    int B, N;            /* examples, real packed rows */
    long Npad;           /* rows computed (bucket) */
    size_t att_floats;   /* H * sum_b len_b * nkey_b */
    int max_len;         /* the longest example's rows */
    int dropout_on;
    float drop_scale;
    int has_labels;
    int n_tok, n_pos;    /* row groups */
} agn_cuda_plan;

/* Packs batch B for model M (its cfg, max_batch and dense flag) into the
 * index block BLOCK laid out by L for R rows: rows, examples, attention
 * offsets, dropout keys (agn_dropout_key of each example), labels, and the
 * row groups; COUNT is scratch of max(vocab_size, max_len) + 1 ints.  -1
 * with a message if the batch does not fit (more rows than R, B over
 * max_batch). */
int agn_cuda_plan_batch(agn_cuda_plan *p, void *block, const agn_cuda_index_layout *l, long R,
                        const agn_model *m, const agn_batch *b, int bucket, int *count);

/* Groups the N keys (each in 0 .. nkeys) by value: rows[] lists 0 .. N-1
 * sorted by key, ties in ascending order; group g holds rows[start[g] ..
 * start[g+1]) of key key[g], groups in ascending key order; returns the
 * group count.  COUNT: nkeys + 1 ints of scratch. */
int agn_group_rows(const int32_t *keys, int N, int nkeys, int32_t *rows, int32_t *start,
                   int32_t *key, int *count);

/* ---- launch arithmetic of the kernels (layers_cuda.cu) ---------------------- */

/* Blocks of THREADS for a grid-stride loop over N elements: at least 1, at
 * most 2^18 (each thread then loops). */
unsigned agn_cuda_grid_1d(size_t n, int threads);
/* Bytes of shared memory of the fused attention kernels: keys and values of
 * MAXK rows of HD floats padded to HD + 1, plus a score row of MAXK and a
 * query row of HD per warp (NW warps). */
size_t agn_cuda_attention_smem(int maxk, int hd, int nw);
/* Whether the fused attention kernels take MAXK keys of head size HD with
 * NW warps per block, given LIMIT bytes of shared memory per block. */
int agn_cuda_attention_fused_fits(int maxk, int hd, int nw, size_t limit);
/* Blocks per example-head of the fused kernels: 8 query rows per warp. */
unsigned agn_cuda_attention_row_blocks(int maxk, int nw);
/* Floats of the column-sum workspace for up to MAX_ROWS x MAX_COLS: two
 * sums per column per 256-row chunk. */
size_t agn_cuda_colsum_floats(int max_rows, int max_cols);

/* What a captured graph depends on besides addresses; equal keys replay. */
typedef struct {
    long Npad;
    int B, keep, dropout_on, has_labels, reference, backward;
    uint32_t loss_scale_bits;
} agn_cuda_graph_key;
/* REFERENCE: the kernel choice, any flags (model_cuda.cu: 1 reference
 * kernels, 2 unfused attention). */
agn_cuda_graph_key agn_cuda_graph_key_of(const agn_cuda_plan *p, int keep, int backward,
                                         float loss_scale, int reference);
int agn_cuda_graph_key_equal(const agn_cuda_graph_key *a, const agn_cuda_graph_key *b);

#endif
