/* train.h: the trainer of agn-train (DESIGN.md, Training semantics and Run
 * directory).  One call trains one rank: every rank of a job calls
 * agn_train() with the same options and its own communicator (comm.h); rank
 * 0 writes the run directory.  With the one-rank communicator every
 * collective is a no-op, so the single-process trainer and the data-parallel
 * one are the same code.
 *
 * Semantics, all of them independent of the number of ranks W:
 *  - Data order: epoch e uses the permutation perm_e of the training
 *    examples drawn by a Fisher-Yates shuffle whose random numbers are
 *    SplitMix64(key + i), key = SplitMix64(seed ^ SplitMix64(e + 1)) (see
 *    agn_train_permutation); --max-examples M keeps perm_e[0..M).  Global
 *    batch k is perm_e[kB .. kB+B); the last, partial batch is kept.  Rank r
 *    takes the r-th contiguous slice of it, of B/W or B/W + 1 examples (the
 *    first B mod W ranks take one more).
 *  - Each rank pads its slice to its longest example rounded up to a multiple
 *    of 8 (capped at max_len), or to max_len with pad_to_max; the model masks
 *    pads, so both compute the same function.
 *  - The loss of a step is the sum of the per-example losses divided by the
 *    size of the global batch, so the gradient all-reduce is a plain sum.
 *  - Gradients are reduced in buckets of about bucket_bytes, fixed in advance
 *    from the parameter table (the same on every rank), started from the
 *    model's on_grad_ready callback while backward goes on; then global-norm
 *    clipping and the AdamW step (model.h), identical on every rank.
 *  - Timers per step: data (building the batch), compute (forward and
 *    backward), comm (time blocked in agn_comm_wait: exposed communication),
 *    optim (clipping and AdamW). */
#ifndef AGN_TRAIN_H
#define AGN_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "comm.h"
#include "runconfig.h"

/* agn_train() results besides 0 (done) and -1 (error, message set). */
enum { AGN_TRAIN_STOPPED = 1 }; /* *stop was set: checkpoint written, stopped early */

typedef struct {
    agn_config *cfg;          /* resolved config (command-line overrides applied) */
    const char *run_dir;
    char **train_paths;       /* training shards */
    int n_train;
    char **val_paths;         /* validation shards, may be none */
    int n_val;
    const char *vocab_path;   /* vocabulary to store in checkpoints; NULL: look beside the shards */
    const char *resume;       /* checkpoint to continue from, or NULL */
    long max_steps;           /* stop after this many optimizer steps in all (0: no limit) */
    int pad_to_max;           /* pad every batch to max_len */
    uint64_t bucket_bytes;    /* gradient bucket size */
    int threads;              /* OpenMP/BLAS threads of this rank */
    int quiet;                /* no progress line, no summaries on stderr */
    int force;                /* overwrite an existing run directory */
    const char *device;       /* device description for metrics.csv ("cpu" when NULL) */
    volatile sig_atomic_t *stop; /* when set (signal handler): checkpoint and return STOPPED */
} agn_train_opts;

int agn_train(const agn_train_opts *o, agn_comm *comm);

/* The permutation of [0, n) for (seed, epoch), as described above. */
void agn_train_permutation(uint64_t *perm, uint64_t n, uint64_t seed, uint32_t epoch);
/* The slice [*start, *start + *count) of a batch of B examples that rank R of
 * W takes. */
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
/* SplitMix64 finaliser, the hash behind the permutation. */
uint64_t agn_splitmix64(uint64_t x);

/* The cores this process may run on. */
int agn_cpu_count(void);
/* The CPU model name from /proc/cpuinfo (commas removed), or "cpu". */
const char *agn_cpu_name(char *buf, size_t n);

#endif
