/* commbench.h: measuring a transport's collectives the way NVIDIA's
 * nccl-tests does (agn-bench-comm(1)).  For each message size of a doubling
 * sweep and each collective: warm-up calls, then timed calls, the mean time
 * of one call averaged over the ranks, the algorithm bandwidth (bytes / time)
 * and the bus bandwidth (algorithm bandwidth times nccl-tests' factor for the
 * collective and the rank count: the rate each rank's link must sustain, so
 * that figures of different rank counts compare), and a check of the result
 * against what every rank computes on its own.
 *
 * Sizes: BYTES is the whole buffer, as in nccl-tests: all-reduce and
 * broadcast move it whole; reduce-scatter reduces it and leaves each rank
 * one shard (agn_comm_shard); all-gather fills it from the W shards.
 *
 * The rows are also the format of a measured link (agn-formats(5),
 * Bandwidth CSV), which agn-summarize --link reads (project.h). */
#ifndef AGN_COMMBENCH_H
#define AGN_COMMBENCH_H

#include "comm.h"

#include <stdint.h>
#include <stdio.h>

typedef enum {
    AGN_BENCH_ALLREDUCE,
    AGN_BENCH_REDUCE_SCATTER,
    AGN_BENCH_ALLGATHER,
    AGN_BENCH_BROADCAST,
    AGN_BENCH_N_OPS
} agn_bench_op;

/* "all-reduce", "reduce-scatter", "all-gather", "broadcast". */
const char *agn_bench_op_name(agn_bench_op op);
/* The op named S (the names above); -1 with a message otherwise. */
int agn_bench_op_parse(const char *s, agn_bench_op *op);

/* nccl-tests' bus bandwidth factor: 2(W-1)/W for all-reduce, (W-1)/W for
 * reduce-scatter and all-gather, 1 for broadcast. */
double agn_bench_bus_factor(agn_bench_op op, int world);
/* Algorithm bandwidth BYTES / SEC and bus bandwidth, in GB/s (1e9 bytes/s,
 * as nccl-tests). */
void agn_bench_bandwidth(agn_bench_op op, int world, double bytes, double sec, double *algbw,
                         double *busbw);

/* Where the buffer of the collectives lives when it is not host memory:
 * device memory for the nccl transport (agn_bench_cuda_mem).  The checked
 * call's input is written in host memory, copied in (from_host), and its
 * result copied out (to_host) and checked in host memory, outside the
 * timed calls; the timed calls' buffer is zeroed on the device (zero), and
 * sync() (every operation issued has completed) comes before the barrier
 * that starts the clock and before the clock is read after the last timed
 * call.  Each returns 0, or -1 (NULL) with a message. */
typedef struct {
    void *ctx;
    void *(*alloc)(void *ctx, size_t bytes);
    void (*release)(void *ctx, void *p);
    int (*from_host)(void *ctx, void *dev, const void *host, size_t bytes);
    int (*to_host)(void *ctx, void *host, const void *dev, size_t bytes);
    int (*zero)(void *ctx, void *dev, size_t bytes);
    int (*sync)(void *ctx);
} agn_bench_mem;

/* CUDA device memory on the current device, its copies and zeroing on
 * STREAM (a cudaStream_t: the compute stream given to the nccl transport
 * with agn_comm_set_stream, which orders its collectives after them);
 * device.h's agn_cuda_* (each fails saying so in a build without CUDA). */
void agn_bench_cuda_mem(agn_bench_mem *m, void *stream);

typedef struct {
    uint64_t min_bytes, max_bytes; /* the sweep: min, min*factor, ... <= max */
    long step_factor;              /* >= 2 */
    long warmup, iters;            /* calls per size: untimed, then timed */
    int check;                     /* 1: one checked call per size and op */
    agn_dtype dtype;               /* AGN_F32 or AGN_F64 */
    unsigned ops;                  /* bit (1 << op) per collective to run */
    int mpi_allreduce;             /* 1: time MPI_Allreduce too (mpi transport) */
    int corrupt_rank;              /* -1, or a rank whose checked result is altered (tests the check) */
    const agn_bench_mem *mem;      /* NULL: host memory; else where the buffer lives (not with mpi_allreduce) */
    /* called on the rank that found a wrong result, with "rank R: OP of N
     * elements: index I is X, expected Y (K wrong)"; may be NULL */
    void (*on_wrong)(const char *msg);
} agn_bench_opts;

typedef struct {
    const char *transport; /* "local", "mpi", "none", "nccl" */
    const char *impl;      /* "agn", or "MPI_Allreduce" */
    agn_bench_op op;
    int world;
    agn_dtype dtype;
    uint64_t bytes;        /* count * element size */
    size_t count;
    long iters;
    double time_s;         /* mean of one call, averaged over the ranks */
    double time_max_s;     /* the slowest rank's mean */
    double algbw, busbw;   /* GB/s, from time_s */
    long wrong;            /* elements wrong, summed over the ranks; -1: not checked */
} agn_bench_row;

/* Runs the sweep on C; every rank calls it.  A one-rank C whose transport
 * has collectives (nccl at -g 1) runs them, as nccl-tests runs NCCL's
 * one-rank call; the none transport has none (agn_comm_* return at once).
 * EMIT is called on rank 0 only,
 * once per row, as soon as the row is known (it may print); a non-zero
 * return from EMIT stops the sweep (every rank learns it at the next size).
 * Returns 0, or -1 with a message when a collective failed; wrong results
 * are not an error here: the caller reads the rows' wrong counts. */
int agn_bench_run(agn_comm *c, const agn_bench_opts *o,
                  int (*emit)(const agn_bench_row *row, void *ctx), void *ctx);

/* Whether this build can time MPI_Allreduce; and, under mpirun before the
 * transport exists, initialising MPI so that it can (MPI_THREAD_SERIALIZED:
 * the transport's thread and the benchmark's never call MPI at once).  The
 * caller finalises with agn_bench_mpi_finalize after agn_comm_free. */
int agn_bench_have_mpi(void);
int agn_bench_mpi_init(void);
void agn_bench_mpi_finalize(void);

/* The table (nccl-tests' layout) and the CSV. */
void agn_bench_table_header(FILE *fp, const char *transport, int world, const agn_bench_opts *o);
void agn_bench_table_row(FILE *fp, const agn_bench_row *r);
#define AGN_BENCH_CSV_HEADER \
    "transport,impl,op,world_size,dtype,bytes,count,iters,time_us,time_max_us,algbw_gbs,busbw_gbs,wrong"
void agn_bench_csv_row(FILE *fp, const agn_bench_row *r);

/* The value rank R puts at index I of its buffer: an integer in
 * [-1024, 1024] from a hash of (rank, index, salt).  Sums of up to 8192 of
 * them are exact in float in any order, so the check compares exactly
 * whatever order a transport (or MPI, or NCCL) sums in. */
double agn_bench_input(int rank, size_t i, uint32_t salt);

#endif
