/* train.h: the trainer of agn-train (DESIGN.md, Training semantics and Run
 * directory).  One call trains one rank: every rank of a job calls
 * agn_train() with the same options and its own communicator (comm.h); rank
 * 0 writes the run directory.  With the one-rank communicator every
 * collective is a no-op, so the single-process trainer and the data-parallel
 * one are the same code.
 *
 * Semantics, all of them independent of the number of ranks W and of the
 *    backend (backend.h):
 *  - Data order, slices and padding: batch.h.
 *  - The loss of a step is the sum of the per-example losses divided by the
 *    size of the global batch, so the gradient all-reduce is a plain sum.
 *  - Gradients are reduced in buckets of about bucket_bytes, fixed in advance
 *    from the parameter table (the same on every rank), started from the
 *    model's on_grad_ready callback while backward goes on; then global-norm
 *    clipping and the AdamW step (model.h), identical on every rank.
 *  - Timers per step: data (building the batch), compute (forward and
 *    backward: the host's clock on the CPU, the device's events on a GPU),
 *    comm (time blocked in agn_comm_wait: exposed communication), optim
 *    (clipping and AdamW). */
#ifndef AGN_TRAIN_H
#define AGN_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "batch.h"
#include "backend.h"
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
    const agn_backend_ops *backend; /* where the model computes (NULL: the CPU) */
    int device_index;         /* the backend's device (cuda: the GPU of this rank) */
    const char *launch;       /* how this rank was started (agn_launch_describe), for train.log; may be NULL */
    volatile sig_atomic_t *stop; /* when set (signal handler): checkpoint and return STOPPED */
} agn_train_opts;

int agn_train(const agn_train_opts *o, agn_comm *comm);

#endif
