/* summary.h: agn-summarize's model of a scaling study.  Runs (one
 * metrics.csv each, as agn-train writes it) are read, grouped by what makes
 * them comparable (config name, parameter count, global batch, corpus id and
 * compute backend), and each group is reduced to one column per world size:
 * epoch time, speedup, efficiency, accuracy, the compute/communication ratio
 * R, an Amdahl fit and a verdict in words.  The writers turn that into
 * Markdown, CSV, JSON, and gnuplot data and scripts.
 *
 * The definitions (which epochs are timed, how the fit is done, what the
 * verdict says when) are documented in man/agn-summarize.1; keep the two in
 * step. */
#ifndef AGN_SUMMARY_H
#define AGN_SUMMARY_H

#include <stdio.h>

/* How R (compute / exposed communication) reads when it is not a number. */
enum { AGN_R_NUM = 0, AGN_R_NA = 1 /* no communication at one rank */, AGN_R_INF = 2 };

typedef struct {
    long epoch;
    double samples, train_examples; /* train_examples: NAN when the column is absent */
    double epoch_time, compute, comm, optim, data;
    double imbalance;               /* of comm, waiting for the slowest rank; NAN when absent */
    double val_acc;                 /* NAN when not recorded */
    long line;                      /* line of metrics.csv */
} agn_sum_epoch;

typedef struct {
    char *path;  /* the file read */
    char *label; /* how the run is named in tables */
    long line;   /* first line of the run in its file */
    /* identity */
    long world_size, params, global_batch, threads; /* threads: -1 if absent */
    char *config, *data_id, *backend, *transport, *device;
    agn_sum_epoch *ep;
    int n_ep;
    /* derived */
    int n_timed, n_scaled;           /* epochs timed; of those, scaled to a full epoch */
    double epoch_time, compute, comm, optim, data; /* means over the timed epochs */
    double imbalance;                /* NAN unless every timed epoch has it */
    double R;
    int r_kind;
    double final_acc, best_acc;      /* NAN if no validation */
} agn_sum_run;

typedef struct {
    long world_size;
    int n_runs;
    int *runs;                       /* indices into agn_summary.runs */
    int n_timed;
    double epoch_time, compute, comm, optim, data; /* pooled over the runs' timed epochs */
    double imbalance;                /* NAN unless every run has it */
    double R;
    int r_kind;
    double speedup, efficiency;
    double final_acc, best_acc;      /* mean of the runs' final; max of their best */
} agn_sum_col;

typedef struct {
    char *config, *data_id, *backend;
    long params, global_batch;
    int *runs;
    int n_runs;
    agn_sum_col *cols;               /* by world size, ascending */
    int n_cols;
    long base_w;                     /* the speedup baseline: 1, else the smallest W */
    /* Amdahl */
    int fit;                         /* 1 if fitted (two or more world sizes) */
    double f, sse;
    int clamped;                     /* -1 at 0, +1 at 1, 0 inside */
    long pred_w[2];
    double pred_eff[2];
    char *verdict;
} agn_sum_group;

typedef struct {
    agn_sum_run *runs;
    int n_runs;
    agn_sum_group *groups;
    int n_groups;
    char **notes;
    int n_notes;
    /* files read so far (device, inode), to refuse one given twice */
    unsigned long long (*seen)[2];
    int n_seen;
} agn_summary;

/* Reads one input: a run directory (its metrics.csv) or a metrics file
 * ("-" is stdin).  Rows whose identity (world size, config, params, global
 * batch, data id, backend) changes within a file start a new run.  -1 with
 * "FILE:LINE: reason" on a missing file or column, a bad number, a file
 * with no rows, or a file already read (the same run given twice would
 * count twice). */
int agn_summary_read(agn_summary *s, const char *path);

/* Groups the runs and derives every figure and the verdicts.  With SINGLE,
 * the runs must form one group: -1 with a message naming the field that
 * differs otherwise. */
int agn_summary_compute(agn_summary *s, int single);

int agn_summary_write_md(const agn_summary *s, FILE *fp);
int agn_summary_write_csv(const agn_summary *s, FILE *fp);
int agn_summary_write_json(const agn_summary *s, FILE *fp);

/* Writes DIR/{epoch_time,speedup,efficiency,val_acc}.{dat,gp} (atomically,
 * creating DIR).  Each script renders NAME.png and NAME.svg beside itself
 * from wherever gnuplot runs; given the gnuplot variable `suffix` (as
 * agn-summarize does) it writes NAME.png.SUFFIX instead, to be renamed. */
int agn_summary_write_plots(const agn_summary *s, const char *dir);
/* The names of the plot scripts, NULL-terminated. */
extern const char *const agn_summary_plot_names[];

/* Amdahl: the least-squares serial fraction in [0,1] for speedups S[i]
 * measured at W[i] against a baseline at W0 (model S = A(W0)/A(W) with
 * A(W) = f + (1-f)/W).  Returns f; *sse gets the residual sum of squares and
 * *clamped -1/0/+1. */
double agn_amdahl_fit(const double *w, const double *S, int n, double w0, double *sse,
                      int *clamped);
/* Efficiency the fitted law predicts at W relative to W0: S(W) * W0 / W. */
double agn_amdahl_eff(double f, double w0, double w);

void agn_summary_free(agn_summary *s);

/* The opening of every gnuplot script agn-summarize writes (its own plots
 * and the projection's): find the folder the script is in, render the plot
 * body once as PNG and once as SVG, with the key at KEY ("top right"). */
void agn_gp_head(FILE *fp, const char *name, const char *what, const char *key);

#endif
