/* rundir.h: the run directory of agn-train (agn-formats(5), Run directory):
 * train.log, metrics.csv, steps.csv and config.yaml, written by rank 0, and
 * the progress line on stderr.  The trainer (train.c) decides what happens;
 * this file decides how it is written down.  Every rank holds an agn_rundir;
 * on ranks other than 0 every call writes nothing. */
#ifndef AGN_RUNDIR_H
#define AGN_RUNDIR_H

#include <stdint.h>
#include <stdio.h>

#include "evaluate.h"
#include "runconfig.h"

typedef struct {
    const char *dir;
    int rank, world, quiet, tty;
    FILE *log, *steps_csv, *metrics_csv;
    int metrics_fd;   /* for the fsync of each metrics row */
    int append;       /* continuing the files of a previous run */
    char *path_last, *path_best;
    double last_progress;
    char err[512];    /* the first failed write, "DIR/FILE: cause"; reported by the next row */
} agn_rundir;

/* What config.yaml's run: section and the fixed columns of metrics.csv say
 * about a run. */
typedef struct {
    const agn_config *cfg;
    int world, threads, bound_cpus;
    const char *transport, *backend, *device;
    char **train_paths, **val_paths;
    int n_train, n_val;
    uint64_t train_examples, total_steps;
    uint32_t data_id;
    long steps_per_epoch, max_steps;
    size_t params;
    int pad_to_max;
    uint64_t bucket_bytes;
    const char *resume;
} agn_run_info;

/* What an epoch (or the part of it a stopped run did) added up to. */
typedef struct {
    long steps;
    double samples, tokens, loss_sum;
    double time, compute, comm, optim, data;
    double imbalance; /* the slowest rank's compute minus the ranks' mean, summed */
    float lr;
    uint64_t end_step; /* the global step count at the end of the row (column step) */
} agn_epoch_stats;

/* One row of steps.csv. */
typedef struct {
    uint64_t step, samples;
    uint32_t epoch; /* 1-based */
    double loss, grad_norm, time, compute, comm, optim, data, imbalance;
    float lr;
} agn_step_row;

/* Opens DIR for a run (rank 0: creates it, refuses a previous run without
 * FORCE unless RESUME is its own last checkpoint, in which case its files are
 * continued, and opens train.log and the CSVs). */
int agn_rundir_open(agn_rundir *rd, const char *dir, const char *resume, int force, int rank,
                    int world, int quiet);
int agn_rundir_write_config(agn_rundir *rd, const agn_run_info *ri);
/* A line for train.log (rank 0) and, TO_STDERR and not quiet, stderr; with
 * several ranks the line carries the rank. */
void agn_rundir_log(agn_rundir *rd, int to_stderr, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The rows: -1 with "DIR/FILE: cause" when this write, or an earlier one of
 * the run directory (train.log included), failed.  A metrics row is fsync'd:
 * the trainer writes it before the checkpoint of the same step, so that a
 * kill between the two leaves a row that agn_rundir_trim removes. */
int agn_rundir_step_row(agn_rundir *rd, const agn_step_row *r);
int agn_rundir_metrics_row(agn_rundir *rd, const agn_run_info *ri, uint32_t epoch,
                           const agn_epoch_stats *a, const agn_metrics *vm, int have_val);
/* The progress line (stderr a terminal, rank 0, not quiet), at most 4 a
 * second; and its erasure before other output. */
void agn_rundir_progress(agn_rundir *rd, const agn_config *cfg, uint64_t epoch, uint64_t step,
                         uint64_t total_steps, double loss, double rate, long steps_left);
void agn_rundir_progress_clear(agn_rundir *rd);
/* Resuming into this directory from a checkpoint at global step STEP: cuts
 * steps.csv and metrics.csv back to their rows up to STEP (and any torn last
 * row), so that the steps and epochs redone after it are in them once. */
int agn_rundir_trim(agn_rundir *rd, uint64_t step);
/* Closes the files; -1 with a message if a close or an earlier write failed. */
int agn_rundir_close(agn_rundir *rd);

#endif
