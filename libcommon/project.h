/* project.h: agn-summarize's projection of a run to W devices over a link
 * (agn-summarize(1), Projection).  From a 1-rank run's measured time per
 * epoch (compute, optimizer, data), the model's gradient bytes and bucket
 * layout (its config.yaml), and a link (a measured agn-bench-comm CSV or a
 * named preset), it predicts per epoch the communication, the part of it
 * exposed, the epoch time, speedup, efficiency and R for each W, and says
 * where adding devices stops paying and why.
 *
 * The communication of one step is agn's (zero.h): the mask of the batch's
 * tokens all-reduced (V bytes), the embedding's rows of those tokens
 * all-reduced, every other bucket reduce-scattered (these overlap backward),
 * the gradient norm all-reduced, then the parameters all-gathered, or a
 * barrier where the ranks share them (the local transport).  Each collective
 * costs what the link says for its bytes at W.  A measured run at W > 1
 * (calibration) gives the fraction of the overlappable communication hidden
 * behind backward, the imbalance and the optimizer's serial part; without
 * one they are 0, 0 and 0. */
#ifndef AGN_PROJECT_H
#define AGN_PROJECT_H

#include "commbench.h"
#include "summary.h"

#include <stdio.h>

/* ---- links ----------------------------------------------------------------- */

typedef struct {
    agn_bench_op op;
    int world;
    double bytes, time_s;
} agn_link_pt;

typedef struct {
    char *name;        /* preset name, or the CSV's file name */
    char *desc;        /* one line: what it is and its figures */
    int measured;      /* 1: points from agn-bench-comm */
    double busbw;      /* preset: bus bandwidth, GB/s (one direction of the link) */
    double latency_s;  /* preset: time of a collective of no bytes */
    int shared;        /* ranks share parameter memory (local transport) */
    agn_link_pt *pts;  /* measured: sorted by op, world, bytes */
    int n_pts;
} agn_link;

typedef struct {
    const char *name, *what;
    double busbw_gbs, latency_us;
    const char *source;
} agn_link_preset_info;
/* The presets, NULL-terminated by name (agn-summarize(1) cites each). */
extern const agn_link_preset_info agn_link_presets[];

/* A preset by name; -1 with a message listing the names otherwise. */
int agn_link_preset(agn_link *l, const char *name);
/* An agn-bench-comm CSV; -1 with "FILE:LINE: reason" on a missing column,
 * a bad number, a row whose check failed (wrong > 0), or no usable row. */
int agn_link_read(agn_link *l, const char *path);
void agn_link_free(agn_link *l);
/* Seconds for one collective OP of BYTES among WORLD ranks: a preset's
 * latency + bytes x busbw factor / busbw; a measured link's time
 * interpolated linearly between the measured sizes of OP (all-reduce's,
 * halved, for an op not measured), at the measured world size nearest
 * WORLD, scaled by the ratio of the bus factors (busbw assumed the same at
 * every W).  0 for WORLD 1. */
double agn_link_time(const agn_link *l, agn_bench_op op, double bytes, int world);

/* ---- the projection ------------------------------------------------------- */

typedef struct {
    long *worlds;          /* to project */
    int n_worlds;
    long devices;          /* ranks share this many devices; 0: one each */
    double compute_scale;  /* compute, optimizer and data this much faster (1) */
    double emb_rows;       /* embedding rows a step; <= 0: min(V, tokens a step) */
    double hidden;         /* < 0: from the calibration run */
    long calibrate;        /* W of the calibration run; 0: the smallest W > 1 measured; -1: none */
    double backward_share; /* of compute, the part communication can hide behind (2/3) */
    uint64_t bucket_bytes; /* 0: the run's */
    int dense;             /* 1: price a dense all-reduce of every bucket instead (PyTorch DDP) */
} agn_proj_opts;

typedef struct {
    long world;
    double compute, optim, data;   /* per epoch, s */
    double comm_total, comm_exposed, comm_latency; /* per epoch, s; latency: of the exposed part */
    double epoch_time, speedup, efficiency, R;
    double measured, error;        /* measured epoch time at this W and pred/meas - 1; NAN */
} agn_proj_pt;

typedef struct {
    const agn_link *link;
    agn_proj_pt *pts;
    int n_pts;
    agn_proj_pt base;              /* W = 1, the speedups' baseline */
    char *verdict;
} agn_proj_link;

typedef struct {
    int group;                     /* index into agn_summary.groups */
    char *config_path;
    /* the model's communication, per step */
    long vocab, dim, n_params;
    double emb_rows, tokens_per_step, steps;
    double dense_bytes, emb_bytes, param_bytes; /* reduce-scattered, all-reduced, all-gathered */
    int n_buckets, n_msgs_overlap, n_msgs_after;
    int dense;                     /* agn_proj_opts.dense */
    uint64_t bucket_bytes;
    /* calibration */
    long calib_w;                  /* 0: none */
    double hidden, imbalance, optim_serial;
    agn_proj_link *links;
    int n_links;
} agn_proj_group;

typedef struct {
    agn_proj_opts o;
    agn_proj_group *groups;
    int n_groups;
    char **notes;
    int n_notes;
} agn_projection;

/* Projects every group of S that has a 1-rank run over each of the N links.
 * Reads each such group's config.yaml (beside its 1-rank run's metrics.csv)
 * and metrics.csv again for the tokens per step.  -1 with a message when a
 * config cannot be read; a group without a 1-rank run is skipped with a
 * note. */
int agn_project(agn_projection *p, const agn_summary *s, const agn_link *links, int n,
                const agn_proj_opts *o);
void agn_projection_free(agn_projection *p);

int agn_projection_write_md(const agn_projection *p, const agn_summary *s, FILE *fp);
int agn_projection_write_csv(const agn_projection *p, const agn_summary *s, FILE *fp);
/* DIR/projected_{speedup,efficiency}.{dat,gp}, in the style of the
 * summary's plots: one line per link and config, measured points beside. */
int agn_projection_write_plots(const agn_projection *p, const agn_summary *s, const char *dir);
extern const char *const agn_projection_plot_names[];

#endif
