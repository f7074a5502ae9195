/* zero.h: the optimizer step of data-parallel training sharded across ranks
 * (ZeRO stage 1, as llm.c's zero.cuh): gradients are reduce-scattered
 * instead of all-reduced, each rank runs AdamW on its own shard of every
 * gradient bucket only, and the updated parameters are all-gathered.  The
 * communication volume is that of one all-reduce; the optimizer's work, a
 * serial part of every step otherwise, is divided by the number of ranks.
 *
 * Same arithmetic as agn_adamw_step() element for element (it is called on
 * a view of the shard); only the global gradient norm is summed in another
 * order (per shard, then across ranks in rank order), which moves the
 * clipping factor by a rounding error.  The Adam moments outside a rank's
 * shard are stale until agn_zero_gather() (before a checkpoint). */
#ifndef AGN_ZERO_H
#define AGN_ZERO_H

#include "comm.h"
#include "model.h"

typedef struct {
    agn_comm *comm;
    int n_buckets;
    size_t *start, *end;  /* [n_buckets] the gradient buckets (ranges of the flat buffers) */
    agn_tensor *pieces;   /* this rank's shard of every bucket, cut at tensor boundaries */
    int *first, *count;   /* [n_buckets] bucket b's pieces: pieces[first[b] ..+ count[b]) */
    int n_pieces;
    agn_comm_req **req;   /* [n_buckets] */
} agn_zero;

/* Plans the shards of the N buckets [start[i], end[i]) of M's buffers. */
void agn_zero_plan(agn_zero *z, const agn_model *m, agn_comm *c, int n, const size_t *start,
                   const size_t *end);
void agn_zero_free(agn_zero *z);
/* After the reduce-scatter of every bucket of m->grads: global-norm
 * clipping and AdamW on this rank's shards, then the all-gather of the
 * parameters.  *NORM gets the pre-clip norm; the time blocked on the
 * all-gather is added to *WAITED.  -1 with a message if a collective failed. */
int agn_zero_adamw_step(agn_zero *z, agn_model *m, float *adam_m, float *adam_v,
                        const agn_optim_config *oc, long step, float lr, double *norm, double *waited);
/* All-gathers every bucket of BUF (the Adam moments, before a checkpoint). */
int agn_zero_gather(agn_zero *z, float *buf);

#endif
