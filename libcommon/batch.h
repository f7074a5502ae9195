/* batch.h: the data order and the batches of DESIGN.md (Training
 * semantics), independent of the number of ranks W and of the backend:
 *  - Data order: epoch e uses the permutation perm_e of the training
 *    examples drawn by a Fisher-Yates shuffle whose random numbers are
 *    SplitMix64(key + i), key = SplitMix64(seed ^ SplitMix64(e + 1)) (see
 *    agn_train_permutation); --max-examples M keeps perm_e[0..M).  Global
 *    batch k is perm_e[kB .. kB+B); the last, partial batch is kept.
 *  - Rank r takes the r-th contiguous slice of it, cut for even cost
 *    (agn_train_slice_cost; the cost model is agn_train_cost), or with every
 *    example padded to max_len of B/W or B/W + 1 examples (agn_train_slice).
 *  - Each rank pads its slice to its longest example rounded up to a multiple
 *    of 8 (capped at max_len), or to max_len with pad_to_max; the model masks
 *    pads, so both compute the same function. */
#ifndef AGN_BATCH_H
#define AGN_BATCH_H

#include <stddef.h>
#include <stdint.h>

#include "model.h"
#include "shard.h"

/* The permutation of [0, n) for (seed, epoch), as described above. */
void agn_train_permutation(uint64_t *perm, uint64_t n, uint64_t seed, uint32_t epoch);
/* The slice [*start, *start + *count) of a batch of B examples that rank R of
 * W takes when every example costs the same: B/W or B/W + 1 examples (the
 * first B mod W ranks take one more). */
void agn_train_slice(long B, int r, int W, long *start, long *count);
/* The same for examples of costs COST[0..B) (agn_train_cost): contiguous
 * slices in rank order, cut where the running cost is nearest to k/W of the
 * total (k = 1..W-1; the earlier boundary on a tie), so that the ranks get
 * even work rather than even counts.  Falls back to agn_train_slice when
 * every cost is 0.  Every rank computes the same cuts: the sums are exact. */
void agn_train_slice_cost(const uint64_t *cost, long B, int r, int W, long *start, long *count);
/* The relative cost of training on an example of LEN tokens in a model of
 * width D and feed-forward width F: the multiply-adds per layer,
 * LEN * (4D + 2F) * D for the projections and 2 * LEN^2 * D for attention,
 * divided by D. */
uint64_t agn_train_cost(uint64_t len, long D, long F);
/* SplitMix64's output function (rng.h's agn_mix64), the hash behind the
 * permutation. */
uint64_t agn_splitmix64(uint64_t x);

/* A rank's batch: its slice of the global batch, padded (host memory). */
typedef struct {
    int cap_rows, cap_T;
    int32_t *ids;      /* [cap_rows * cap_T] */
    int32_t *labels;   /* [cap_rows] */
    uint64_t *index;   /* [cap_rows] */
    agn_batch b;
} agn_batch_buf;

void agn_batch_alloc(agn_batch_buf *bb, int rows, int T);
void agn_batch_free(agn_batch_buf *bb);
/* The length of example I of D truncated to T. */
uint64_t agn_example_len(const agn_dataset *d, uint64_t i, int T);
/* Fills BB with examples idx[0..n) of D, padded to their longest rounded up
 * to a multiple of 8 (or to T with pad_to_max). */
void agn_batch_fill(agn_batch_buf *bb, const agn_dataset *d, const uint64_t *idx, int n, int T,
                    int pad_to_max);
/* The distinct token ids of examples idx[0..n) of D (truncated to T), in
 * id order, into ROWS; returns their count.  MARK is [vocab_size] bytes of
 * zeros, left zero. */
size_t agn_batch_token_union(const agn_dataset *d, const uint64_t *idx, long n, int T, uint8_t *mark,
                             int32_t *rows);
/* CRC-32 identifying a dataset's content (offsets, labels, tokens). */
uint32_t agn_dataset_id(const agn_dataset *d);

#endif
