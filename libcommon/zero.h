/* zero.h: the gradient reduction and optimizer step of data-parallel
 * training with several ranks, sharded as in ZeRO stage 1 (llm.c's
 * zero.cuh): gradients are reduce-scattered instead of all-reduced, each
 * rank runs AdamW on its own shard of every bucket only, and the updated
 * parameters are all-gathered.  The communication volume is that of one
 * all-reduce; the optimizer's work, a serial part of every step otherwise,
 * is divided by the number of ranks.
 *
 * The token embedding is the largest tensor and the most sparse gradient:
 * only the rows of tokens in the batch are non-zero.  Its rows are reduced
 * sparsely: every rank knows the whole global batch (the data order is a
 * pure function of the seed), so before the forward pass each computes the
 * union of its token ids (agn_batch_token_union) with no collective, and the
 * embedding gradient travels as the rows of that union only, in id order,
 * all-reduced; every other row is 0 on every rank, whose sum is 0.  The
 * values are those of the dense reduction.  The norm and the clipping visit
 * those rows only, too.  The rows are packed into a buffer of fixed address
 * and known size before backward, so a device backend needs no host
 * synchronisation inside backward.
 *
 * Memory: every buffer is the model's backend's (backend.h), reached through
 * its operations; the transport must work on that memory (local and mpi on
 * host memory, nccl on device memory).
 *
 * Same arithmetic as agn_adamw_step() element for element (it is called on
 * a view of the shard); only the global gradient norm is summed in another
 * order (per shard, then across ranks in rank order), which moves the
 * clipping factor by a rounding error.  The Adam moments outside a rank's
 * shard are stale until agn_zero_gather() (before a checkpoint).
 *
 * Shared parameters: where the ranks map one copy of the parameters
 * (agn_comm_shared: ranks forked on one host), each rank updates its shard
 * of that copy in place and a barrier replaces the all-gather; nothing is
 * copied.  The step is safe because the norm's all-reduce, before any
 * update, is reached by a rank only after its backward (the last reader of
 * this step's parameters), and the barrier after the updates comes before
 * any rank's next forward. */
#ifndef AGN_ZERO_H
#define AGN_ZERO_H

#include "comm.h"
#include "model.h"

#include <stdint.h>

typedef struct {
    size_t start, end;  /* elements of the flat buffers */
    int sparse;         /* the token embedding: rows of the batch's tokens only */
    int first, count;   /* its pieces (this rank's shard, cut at tensor boundaries) */
    agn_comm_req *req;
} agn_zero_range;

typedef struct {
    agn_comm *comm;
    agn_model *m;
    int n_buckets, n_ranges;
    int *bucket_first, *bucket_count; /* [n_buckets] ranges of trainer bucket b */
    agn_zero_range *ranges;
    agn_tensor *pieces;
    int n_pieces;
    /* the sparse embedding */
    size_t vocab, dim;      /* rows, row length */
    int32_t *rows;          /* [vocab] this step's union, in id order (host) */
    size_t n_rows;
    const int32_t *next_rows; /* the next step's, adopted by agn_zero_clear_grads */
    size_t n_next_rows;
    float *packed;          /* [vocab * dim] their gradients (backend memory) */
    agn_comm_req *emb_req;
    agn_span *spans;        /* scratch: the spans of the norm and the clipping */
    /* gradient elements reduced, summed over the steps since the last
     * agn_zero_take_volume, and what a dense embedding would have sent */
    double volume, volume_dense;
    long volume_steps;
    int shared_params;      /* m->params is agn_comm_shared() memory: no all-gather */
    /* the caller's per-step numbers, summed over the ranks by the step's
     * norm all-reduce (no collective of their own): [n_stats], the caller
     * sets them before agn_zero_adamw_step and reads the sums after */
    double *stats;          /* norm_buf + 1 */
    size_t n_stats;
    double *norm_buf;       /* [1 + n_stats]: the norm's square, then the stats */
} agn_zero;

/* What a step of the sharded optimizer measured. */
typedef struct {
    double norm;      /* the pre-clip global gradient norm */
    double waited;    /* seconds blocked on collectives */
    double imbalance; /* the slowest rank's compute_s minus the ranks' mean */
} agn_zero_step;

/* Plans the shards of the trainer's N buckets [start[i], end[i]) of M's
 * buffers (any partition of them, in any order); stats get one slot a rank.
 * -1 with a message if the backend cannot allocate its buffer. */
int agn_zero_plan(agn_zero *z, agn_model *m, agn_comm *c, int n, const size_t *start,
                  const size_t *end);
void agn_zero_free(agn_zero *z);
/* Before the forward pass of a step: the union of the token ids of the
 * global batch, ROWS[0 .. N) in id order (kept by the caller until the next
 * agn_zero_clear_grads). */
void agn_zero_begin_step(agn_zero *z, const int32_t *rows, size_t n);
/* Zeroes the gradient buffer for the step: the embedding's rows of the
 * last step's union only (no other row was written), all the rest; then
 * takes the step's union. */
int agn_zero_clear_grads(agn_zero *z);
/* From the backward callback: starts the reduction of trainer bucket B. */
int agn_zero_reduce_start(agn_zero *z, int b);
/* After backward: waits for the reductions, then global-norm clipping and
 * AdamW on this rank's shards (the model's moments), then the all-gather of
 * the parameters (a barrier with shared_params).  COMPUTE_S, this rank's
 * compute time of the step, travels with the norm's all-reduce, so *OUT
 * gets the imbalance of the ranks with no collective of its own.  -1 with a
 * message if a collective failed. */
int agn_zero_adamw_step(agn_zero *z, const agn_optim_config *oc, long step, float lr,
                        double compute_s, agn_zero_step *out);
/* The mean gradient bytes reduced per step since the last call (the
 * buffers handed to the transport; a ring moves 2(W-1)/W of them per rank),
 * with the sparse embedding and as a dense one would; resets the sums. */
void agn_zero_take_volume(agn_zero *z, double *bytes, double *bytes_dense);
/* All-gathers BUF (the Adam moments, before a checkpoint). */
int agn_zero_gather(agn_zero *z, float *buf);

#endif
