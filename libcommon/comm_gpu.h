/* comm_gpu.h: communication between GPU ranks: the "nccl" transport of
 * comm.h (comm_nccl.cu, built when configure found CUDA and NCCL), one rank
 * per GPU (NCCL refuses two ranks on one device).  CUDA ranks without NCCL,
 * or several on one GPU, use the staged transport of comm.h instead, which
 * the trainer puts over the host transport.
 *
 * The nccl transport wraps the host transport the launcher made (agn_launch:
 * local for forked ranks, mpi under mpirun/srun) and sends every call on
 * HOST memory (the loss, the norm and its stats, the training position,
 * barriers) to it unchanged, so a trainer keeps one agn_comm.
 *
 * Which memory a pointer is: cudaPointerGetAttributes; device and managed
 * memory go to NCCL, host memory (pageable or pinned) to the host transport
 * (agn_gpu_route below is the rule).
 *
 * Ordering: a collective on device memory is ordered after everything
 * issued so far on the COMPUTE stream (the model's, given with
 * agn_comm_set_stream: the *_start records an event there and the
 * communication stream waits for it), and agn_comm_wait() returns once it is
 * complete: work issued on any stream afterwards sees the result.  The waits
 * poll on the host, so the collectives cannot be captured in a CUDA graph.
 *
 * Faults: every wait polls the completion event, NCCL's asynchronous error,
 * the host transport's abort flag (a rank died: the supervisor marks it) and
 * the --comm-timeout deadline (agn_gpu_wait_* below: the state machine, in
 * plain C so that tests/t-commgpu drives it with a fake clock).  A failure
 * aborts the NCCL communicator (ncclCommAbort: its kernels may never end),
 * breaks the transport (every later call fails with the first message) and
 * the caller tells the other ranks (agn_comm_abort).
 *
 * Bootstrap: rank 0 creates the NCCL unique id (ncclGetUniqueId, after the
 * fork: the supervisor of forked ranks makes no CUDA or NCCL call) and
 * broadcasts it over the host transport: through the parent's shared segment
 * for forked ranks, MPI_Ibcast under mpirun/srun.  The message has a fixed
 * layout with rank 0's NCCL version and a CRC (agn_nccl_boot_*). */
#ifndef AGN_COMM_GPU_H
#define AGN_COMM_GPU_H

#include "comm.h"

#include <stddef.h>
#include <stdint.h>

/* ---- choosing the GPUs ------------------------------------------------------ */

/* How many GPUs a child process sees (CUDA_VISIBLE_DEVICES applies) and a
 * one-line description of them or of why there is none, into DESC (N bytes):
 * a forked child asks the CUDA runtime and reports through a pipe, so the
 * caller stays free of CUDA and may fork ranks afterwards (a CUDA context
 * does not survive fork).  -1 with a message if the child cannot be run. */
int agn_gpu_probe(int *count, char *desc, size_t n);

/* The device of local rank LOCAL_RANK of LOCAL_WORLD ranks on this host that
 * sees VISIBLE GPUs: one each (device = local rank) when there are enough,
 * device 0 when the process sees exactly one (srun --gpus-per-task=1 and
 * CUDA_VISIBLE_DEVICES per rank), local_rank % VISIBLE when SHARE (the
 * staged transport may put several ranks on a GPU); else -1 with a
 * message saying so. */
int agn_gpu_pick(int local_rank, int local_world, int visible, int share, int *device);

/* ---- which transport a buffer goes to --------------------------------------- */

/* cudaPointerGetAttributes' answer, as plain C sees it. */
typedef enum { AGN_MEM_HOST = 0, AGN_MEM_PINNED, AGN_MEM_DEVICE, AGN_MEM_MANAGED } agn_mem_kind;
/* 1: the buffer is reduced on the GPU (NCCL or staged), 0: by the host
 * transport.  Device and managed memory go to the GPU, pageable and pinned
 * host memory to the host; a zero count goes to the host (nothing moves). */
int agn_gpu_route(agn_mem_kind kind, size_t count);

/* ---- the NCCL bootstrap ------------------------------------------------------ */

#define AGN_NCCL_ID_BYTES 128 /* NCCL_UNIQUE_ID_BYTES */
#define AGN_NCCL_BOOT_BYTES 512
/* Layout of the message (little-endian, 512 bytes):
 *    0  8  magic "AGNNCCL1"
 *    8  4  world size
 *   12  4  rank 0's NCCL version code (ncclGetVersion)
 *   16  4  status: 0, or 1 when rank 0 could not create the id
 *   20  4  CRC-32 (zlib) of bytes 0..19 and 24..511
 *   24 128 the ncclUniqueId
 *  152 360 status 1: rank 0's message, NUL-terminated; else zeros */

/* Fills MSG: ID when it is not NULL, else status 1 with WHY. */
void agn_nccl_boot_pack(unsigned char msg[AGN_NCCL_BOOT_BYTES], int world, int version,
                        const unsigned char *id, const char *why);
/* Checks MSG of LEN bytes against this rank's WORLD and VERSION and copies
 * the id into ID; -1 with a message (corrupt, another job's, rank 0 failed,
 * NCCL versions whose major.minor differ). */
int agn_nccl_boot_unpack(const unsigned char *msg, size_t len, int world, int version,
                         unsigned char id[AGN_NCCL_ID_BYTES]);
/* "2.28.9" for a version code (2.9 and later: major*10000 + minor*100 + patch). */
const char *agn_nccl_version_str(int code, char *buf, size_t n);

/* Creates the unique id on rank 0 (MAKE_ID, which returns -1 with a message
 * on failure), broadcasts it over HOST, checks it on every rank, then shares
 * every rank's outcome (an all-reduce of one flag per rank), so that all
 * ranks succeed or all fail, naming the ranks that refused.  Collective. */
int agn_nccl_bootstrap(agn_comm *host, int version,
                       int (*make_id)(void *ctx, unsigned char id[AGN_NCCL_ID_BYTES]), void *ctx,
                       unsigned char id[AGN_NCCL_ID_BYTES]);

/* ---- waiting: the timeout and abort state machine ---------------------------- */

/* What one poll saw. */
typedef struct {
    int done;             /* the operation's completion event has fired */
    int error;            /* 0, or NCCL's asynchronous error / CUDA's error */
    const char *error_msg;/* its text */
    const char *aborted;  /* the host transport's abort message, or NULL */
} agn_gpu_poll;

typedef struct {
    int rank;
    char what[96];        /* "all-reduce of 1234 elements" */
    double timeout_s, start, deadline;
    long sleep_ns;        /* the backoff */
    long polls;
} agn_gpu_wait;

enum { AGN_WAIT_DONE = 0, AGN_WAIT_AGAIN = 1, AGN_WAIT_FAILED = -1 };

/* The spin before the first sleep, and the backoff's bounds.  A GPU step of
 * the small model takes well under a millisecond, so a wait polls without
 * sleeping for its first 5 ms (a core of the host, otherwise idle while the
 * rank waits), then sleeps 20 us doubling to 200 us (Linux's timer slack is
 * 50 us: shorter sleeps are not shorter). */
#define AGN_GPU_SPIN_S 5e-3
#define AGN_GPU_SLEEP_MIN_NS 20000L
#define AGN_GPU_SLEEP_MAX_NS 200000L

void agn_gpu_wait_begin(agn_gpu_wait *w, int rank, const char *what, double timeout_s, double now);
/* One step at time NOW after poll P: DONE (the event fired: success, even
 * past the deadline), FAILED with a message (an error; an abort by another
 * rank or the supervisor; the deadline passed), or AGAIN with *SLEEP_NS the
 * time to sleep before the next poll (0 while spinning; it doubles from
 * AGN_GPU_SLEEP_MIN_NS to AGN_GPU_SLEEP_MAX_NS and never passes the
 * deadline).  After FAILED the caller must abort the communicator. */
int agn_gpu_wait_step(agn_gpu_wait *w, const agn_gpu_poll *p, double now, long *sleep_ns);

/* The loop around it: POLL fills P (returns 0), NOW and SLEEP may be NULL
 * (agn_now, nanosleep); tests pass a fake clock.  0 or -1 with a message. */
typedef struct {
    void (*poll)(void *ctx, agn_gpu_poll *p);
    double (*now)(void *ctx);
    void (*sleep)(void *ctx, long ns);
    void *ctx;
} agn_gpu_poller;
int agn_gpu_wait_loop(agn_gpu_wait *w, const agn_gpu_poller *p);

/* ---- NCCL's shards ------------------------------------------------------------ */

/* 1 when the shards of COUNT over WORLD (agn_comm_shard) are equal, so one
 * in-place ncclReduceScatter / ncclAllGather of COUNT / WORLD elements a rank
 * does the job; 0 when they differ by one, and the transport issues one
 * ncclReduce / ncclBroadcast per owner, rooted at it, in a group. */
int agn_nccl_even(size_t count, int world);

/* ---- the transport (comm_nccl.cu; a stub without NCCL) --------------------- */

typedef struct {
    int device;        /* this rank's GPU */
    int wire_bf16;     /* all-reduce / reduce-scatter of fp32 in bf16 on the wire */
    int blocking;      /* 1: a blocking NCCL communicator (also AGN_NCCL_BLOCKING=1) */
} agn_gpu_comm_opts;

/* The nccl transport over HOST (taken over on success: agn_comm_free frees
 * both); collective over HOST's ranks: makes O->device current, the
 * bootstrap, ncclCommInitRankConfig.  NULL with a message naming the rank
 * (HOST is still the caller's: report, agn_comm_abort it, free it). */
agn_comm *agn_comm_nccl_create(agn_comm *host, const agn_gpu_comm_opts *o);
/* 1 if this build has the nccl transport (configure found NCCL). */
int agn_comm_nccl_built(void);

/* ---- GPU ranks of a program ------------------------------------------------------ */

/* Before agn_launch() starts GPUS GPU ranks (-g N; UNDER_MPI: this process
 * is one of them): *VISIBLE, the GPUs this process sees, and DESC (N
 * bytes), their description or why there is none.  When the ranks are to
 * be forked here (GPUS > 1, not UNDER_MPI) a child process asks
 * (agn_gpu_probe): the supervisor of forked ranks makes no CUDA call; else
 * this process asks.  -1 with a message when the probe cannot run, when no
 * GPU is usable ("no usable GPU: ..."), or when ranks forked here need a
 * GPU each (not SHARE) and fewer are visible ("2 GPUs visible (...): NCCL
 * cannot put two ranks on one GPU; give -g 2", *VISIBLE > 0: the caller
 * may add its alternative).  agn-train -g and agn-bench-comm -g. */
int agn_gpu_ranks_check(long gpus, int under_mpi, int share, int *visible, char *desc, size_t n);

/* In a GPU rank, after agn_launch(): this rank's GPU (agn_gpu_pick over
 * the GPUs it sees, SHARE as there) into GO->device and, when NCCL, the
 * nccl transport with GO over *COMM, which then is it.  -1 with a message
 * naming the rank; *COMM is then still the host transport, for the caller
 * to abort (agn_comm_abort) and free. */
int agn_gpu_rank_setup(agn_comm **comm, int share, int nccl, agn_gpu_comm_opts *go);

#endif
