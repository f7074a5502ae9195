/* comm.h: the one small communication interface of data-parallel training
 * (DESIGN.md, Backends): all-reduce sum, broadcast, barrier, abort, and the
 * two halves of an all-reduce (reduce-scatter, all-gather) that the sharded
 * optimizer (zero.h) uses.  One struct holds the distributed state; with
 * one rank every call is a no-op.
 *
 * Transports: "none" (one rank, comm.c), "local" (ranks forked on one host,
 * shared memory), "mpi" (ranks across hosts), "staged" (device buffers over
 * local or mpi, comm_staged.c), and for GPU ranks "nccl" (comm_gpu.h), which
 * wraps local or mpi.  Buffers live
 * where the transport computes: host memory for none/local/mpi, device memory
 * (ordered after the stream given with agn_comm_set_stream) for nccl, which
 * passes host buffers on to the host transport it wraps;
 * counts are in elements, never bytes.
 *
 * Asynchrony: the *_start() calls return at once with a request
 * where the transport can overlap (a communication thread on the CPU, a
 * stream on the GPU); agn_comm_wait() blocks until it is done.  Requests
 * complete in the order they were started.  Every call returns 0, or -1 with
 * a message (a peer died, the job was aborted, a collective timed out).
 * Every rank must issue the same collectives in the same order.
 *
 * Determinism: the local and mpi transports sum in a fixed order, element by
 * element rank 0 + rank 1 + ... + rank W-1 (left to right), whatever the
 * timing, so an all-reduce gives bit-identical results on every rank, from run
 * to run, and between the two transports.  (MPI_Allreduce gives no such
 * promise, so the mpi transport does not use it.)  An NCCL transport would
 * sum in its own order; its results would agree to rounding.
 *
 * Who creates a communicator: agn_launch() (launch.h) for programs; the
 * constructors below for it and for tests. */
#ifndef AGN_COMM_H
#define AGN_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef enum { AGN_F32, AGN_F64, AGN_U8 } agn_dtype;

typedef struct agn_comm agn_comm;
typedef struct agn_comm_req agn_comm_req;

/* What every transport provides (one table per transport). */
typedef struct {
    const char *name;
    int (*allreduce_start)(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req);
    int (*reduce_scatter_start)(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req);
    int (*allgather_start)(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req);
    int (*wait)(agn_comm *c, agn_comm_req *req);
    int (*broadcast)(agn_comm *c, void *buf, size_t count, agn_dtype t, int root);
    int (*barrier)(agn_comm *c);
    void (*abort)(agn_comm *c, const char *why);
    void (*destroy)(agn_comm *c);
    /* may be NULL: the transport shares no memory between ranks */
    int (*shared)(agn_comm *c, size_t bytes, void **ptr);
    /* may be NULL (host transports): the stream whose work a collective on
     * device memory follows (comm_gpu.h) */
    int (*set_stream)(agn_comm *c, void *stream);
    /* may be NULL: the job's abort message and who aborted, else NULL */
    const char *(*aborted)(agn_comm *c, int *rank);
} agn_comm_ops;

struct agn_comm {
    const agn_comm_ops *ops;
    int rank, world;
    int local_rank, local_world; /* on this host */
    double timeout_s;            /* a collective waiting longer fails */
    void *impl;                  /* transport state */
};

/* The one-rank communicator. */
agn_comm *agn_comm_none(void);

int agn_comm_allreduce_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                             agn_comm_req **req);
int agn_comm_wait(agn_comm *c, agn_comm_req *req);
/* Blocking all-reduce: start + wait. */
int agn_comm_allreduce(agn_comm *c, void *buf, size_t count, agn_dtype t);

/* The shard of a buffer of COUNT elements that rank R of W owns in the two
 * calls below: [count*r/W, count*(r+1)/W) (sizes differ by at most one; a
 * transport that needs equal sizes, as NCCL does, pads internally). */
void agn_comm_shard(size_t count, int world, int rank, size_t *lo, size_t *hi);
/* Reduce-scatter: the sum over ranks (same order and bits as the all-reduce)
 * of this rank's shard of BUF ends up in that shard; the rest of BUF is
 * left unspecified.  Half an all-reduce: with agn_comm_allgather_start it
 * lets each rank update only its shard of the parameters (ZeRO-1). */
int agn_comm_reduce_scatter_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                                  agn_comm_req **req);
/* All-gather: every rank's shard of BUF is copied into the others' BUF. */
int agn_comm_allgather_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                             agn_comm_req **req);
int agn_comm_broadcast(agn_comm *c, void *buf, size_t count, agn_dtype t, int root);
int agn_comm_barrier(agn_comm *c);
/* Memory that every rank of the job maps, where the transport has it (local:
 * ranks forked on one host): *PTR is BYTES of it, zero-filled and
 * page-aligned, the same memory in every rank.  Elsewhere (one rank, mpi,
 * nccl) *PTR is NULL and the call succeeds: the caller keeps private copies
 * and moves data with the collectives.  Collective: every rank asks once,
 * for the same size; the memory lives until agn_comm_free.  What a rank
 * writes before a collective (a barrier) the others see after it.  With it
 * the sharded optimizer (zero.h) updates the one copy of the parameters in
 * place, each rank its shard, where it would all-gather private copies. */
int agn_comm_shared(agn_comm *c, size_t bytes, void **ptr);
/* Tells every rank to stop (the others' next call fails with WHY). */
void agn_comm_abort(agn_comm *c, const char *why);
/* Whether the job was aborted (by a rank, or by the supervisor when a rank
 * died): the first abort's message, with *RANK the rank that aborted (-1:
 * the supervisor); NULL if not aborted or the transport cannot tell (mpi:
 * MPI_Abort ends the job instead).  Never blocks. */
const char *agn_comm_aborted(agn_comm *c, int *rank);
/* The GPU transports (comm_gpu.h): STREAM (a cudaStream_t) is the compute
 * stream of the model whose buffers they reduce; each collective on device
 * memory follows the work issued on it.  Call it once the model exists,
 * before the first collective on its buffers.  Host transports: nothing. */
int agn_comm_set_stream(agn_comm *c, void *stream);
void agn_comm_free(agn_comm *c);

size_t agn_dtype_size(agn_dtype t);

/* The default of --comm-timeout, seconds. */
#define AGN_COMM_TIMEOUT_DEFAULT 300.0

/* ---- local: ranks forked on one host (comm_local.c) ----------------------- */

/* A shared-memory segment for WORLD ranks, created by the parent BEFORE it
 * forks them: an anonymous shared mapping, inherited by every child, so it
 * has no name in /dev/shm to leak and vanishes with the last process that
 * maps it.  SLOT_BYTES (0: 4 MiB) is the staging size per rank; longer
 * buffers are reduced in pieces of that size.  It also holds an anonymous
 * memory file (memfd), sized after the fork by agn_comm_shared(). */
typedef struct agn_local_seg agn_local_seg;
agn_local_seg *agn_local_seg_create(int world, size_t slot_bytes);
/* In forked child RANK: a communicator over SEG (taken over on success:
 * agn_comm_free unmaps it); it starts a communication thread. */
agn_comm *agn_comm_local_create(agn_local_seg *seg, int rank, double timeout_s);
/* Marks the job aborted with WHY, by RANK (-1: the supervisor), and wakes
 * every waiter: their calls fail.  The first abort is kept. */
void agn_local_seg_abort(agn_local_seg *seg, int rank, const char *why);
/* The first abort's message and rank, or NULL if the job was not aborted. */
const char *agn_local_seg_aborted(agn_local_seg *seg, int *rank);
void agn_local_seg_free(agn_local_seg *seg);

/* ---- staged: device buffers over a host transport (comm_staged.c) -------- */

/* How the staged transport moves BYTES between the device memory of the
 * caller's buffers and host memory; each copy comes after the device work
 * already queued on those buffers.  0, or -1 with a message. */
typedef struct {
    void *ctx;
    int (*to_host)(void *ctx, void *host, const void *dev, size_t bytes);
    int (*from_host)(void *ctx, void *dev, const void *host, size_t bytes);
} agn_comm_copier;
/* A communicator whose collectives take device buffers and run on HOST
 * (local or mpi) through host staging copies made by CP: CUDA ranks that
 * cannot use NCCL (several on one GPU) still train together.  Same ranks,
 * world and timeout as HOST, which stays the caller's, to free after it. */
agn_comm *agn_comm_staged_create(agn_comm *host, const agn_comm_copier *cp);

/* ---- mpi: one process per rank under mpirun or srun (comm_mpi.c) --------- */

/* 1 if the environment says this process was started by mpirun/mpiexec
 * (Open MPI, MPICH/Hydra, PMIx) or srun, with its rank and world size (a
 * job step of one task is not: it runs alone, without MPI). */
int agn_mpi_launched(int *rank, int *world);
/* Who started this process, in words ("srun", "Open MPI's mpirun", ...),
 * or NULL when agn_mpi_launched() says no. */
const char *agn_mpi_launcher(void);
/* -1 with a message saying how to launch instead, when srun started the
 * tasks of a step with no MPI support (no PMI server: --mpi=none), where
 * MPI_Init would fail or leave each task alone; else 0. */
int agn_mpi_check_launch(void);
/* Initialises MPI on the communication thread; NULL with a message when MPI
 * fails or agn was built without it. */
agn_comm *agn_comm_mpi_create(double timeout_s);

#endif
