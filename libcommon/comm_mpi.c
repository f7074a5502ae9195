/* comm_mpi.c: the "mpi" transport, one process per rank started by mpirun,
 * mpiexec or srun, on one host or many.  Built when configure finds MPI
 * (HAVE_MPI); without it the constructor says so.
 *
 * Threads: MPI is initialised, used and finalised by the communicator's own
 * thread (comm_impl.h) and by no other, so MPI_THREAD_FUNNELED is enough and
 * backward overlaps the all-reduce as with the local transport.  The thread
 * drives non-blocking operations with MPI_Test (mpi_drive), which gives
 * every wait a deadline (--comm-timeout) that blocking MPI calls could not
 * have.
 *
 * Determinism: MPI_Allreduce may sum in any order (it depends on the
 * library, the algorithm it picks for a size, and the process layout), so
 * agn does not use it.  It reduces as the local transport does: chunk k of
 * every rank's buffer goes to rank k, which sums the W pieces in rank order
 * 0, 1, ..., W-1, and the reduced chunks go back to every rank.  Both halves
 * are point-to-point messages posted at once (mpi_exchange), so that a
 * timeout names the ranks, and hosts, whose bytes never came.  Results are
 * bit-identical on every rank, from run to run, and to the local
 * transport's; MPI only moves bytes.
 *
 * Abort: agn_comm_abort() calls MPI_Abort, which ends every rank of the job
 * (mpirun then exits non-zero); a failed or timed-out collective breaks the
 * communicator, and agn_comm_free() then skips MPI_Finalize, which could
 * hang with a peer gone. */
#include "config.h"
#include "comm.h"
#include "comm_impl.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

/* Which environment variables a launcher sets: Open MPI (and PMIx), MPICH's
 * Hydra (PMI), and srun (SLURM_STEP_NUM_TASKS is set for a job step only,
 * not in the batch script itself).  A step of one task is no job: it runs
 * as the only rank, without MPI. */
static const char *const launch_vars[][3] = {
    {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "Open MPI's mpirun"},
    {"PMIX_RANK", "OMPI_COMM_WORLD_SIZE", "a PMIx launcher"},
    {"PMI_RANK", "PMI_SIZE", "a PMI launcher (MPICH's mpiexec)"},
    {"SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "srun"},
};

static int launched_by(int *rank, int *world)
{
    for (size_t i = 0; i < AGN_ARRAY_LEN(launch_vars); i++) {
        const char *r = getenv(launch_vars[i][0]), *w = getenv(launch_vars[i][1]);
        long rv, wv;
        if (!r || !w) continue;
        if (agn_parse_long(r, 0, 1 << 20, launch_vars[i][0], &rv) != 0) continue;
        if (agn_parse_long(w, 1, 1 << 20, launch_vars[i][1], &wv) != 0 || rv >= wv) continue;
        if (wv == 1 && strcmp(launch_vars[i][0], "SLURM_PROCID") == 0) continue;
        if (rank) *rank = (int)rv;
        if (world) *world = (int)wv;
        return (int)i;
    }
    return -1;
}

int agn_mpi_launched(int *rank, int *world) { return launched_by(rank, world) >= 0; }

const char *agn_mpi_launcher(void)
{
    int i = launched_by(NULL, NULL);
    return i < 0 ? NULL : launch_vars[i][2];
}

int agn_mpi_check_launch(void)
{
    int world = 0;
    int i = launched_by(NULL, &world);
    if (i < 0 || strcmp(launch_vars[i][0], "SLURM_PROCID") != 0) return 0;
    /* srun: MPI can join the tasks only through a PMI server that srun
     * started (--mpi=pmix sets PMIX_RANK, --mpi=pmi2 PMI_FD/PMI_RANK);
     * without one MPI_Init fails in each task, or makes W jobs of one */
    if (getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_FD")) return 0;
    return agn_seterr("srun started %d tasks without MPI support (its --mpi=none, the "
                      "cluster's MpiDefault): run srun --mpi=pmix (srun --mpi=list shows "
                      "what this cluster offers), or start the ranks with mpirun inside the "
                      "allocation, or fork them on one node with agn-train -n N",
                      world);
}

#ifndef HAVE_MPI

agn_comm *agn_comm_mpi_create(double timeout_s)
{
    (void)timeout_s;
    if (agn_mpi_check_launch() != 0) return NULL;
    agn_seterr("started under mpirun/srun, but agn was built without MPI "
               "(install libopenmpi-dev and run configure again)");
    return NULL;
}

#else /* HAVE_MPI */

#include <mpi.h>

#define PIECE_BYTES ((size_t)16 << 20) /* keeps byte counts in an int */
#define HOST_LEN 64

typedef struct {
    agn_engine engine; /* first: AGN_ENGINE() */
    int inited;
    unsigned char *tmp; /* [W * chunk] received chunks */
    size_t tmp_bytes;
    int *scount, *sdispl, *rcount, *rdispl;
    MPI_Request *reqs; /* [2 * W] */
    int *peer;         /* [2 * W]: the rank of each request */
    char *hosts;       /* [W * HOST_LEN]: every rank's hostname, for messages */
} mpi_state;

static int mpi_err(int rc, const char *what)
{
    char s[MPI_MAX_ERROR_STRING];
    int n = 0;
    MPI_Error_string(rc, s, &n);
    return agn_seterr("%s: %s", what, s);
}

/* Drives REQ to completion.  MPI moves the bytes of a non-blocking
 * collective only inside MPI calls (here MPI_Test): with Open MPI's TCP
 * transport each round of the collective's schedule waits for the next
 * test.  So the thread tests back to back for the first SPIN_S seconds,
 * yielding the CPU between tests (a compute thread that wants the core gets
 * it); a collective still waiting then (a peer is late) is tested after
 * sleeps of 20 us growing to 1 ms, so that a long wait leaves the cores
 * alone.  Fails after the communicator's timeout. */
#define SPIN_S 0.05
static int mpi_drive(agn_comm *c, int n, MPI_Request *req, const char *what, int *timed_out)
{
    double start = agn_now(), deadline = start + c->timeout_s;
    long ns = 20000;
    *timed_out = 0;
    for (;;) {
        int flag = 0, rc = MPI_Testall(n, req, &flag, MPI_STATUSES_IGNORE);
        if (rc != MPI_SUCCESS) return mpi_err(rc, what);
        if (flag) return 0;
        double now = agn_now();
        if (now > deadline) {
            *timed_out = 1;
            return agn_seterr("%s timed out after %g s (see --comm-timeout)", what, c->timeout_s);
        }
        if (now - start < SPIN_S) {
            sched_yield();
            continue;
        }
        struct timespec ts = {0, ns};
        nanosleep(&ts, NULL);
        if (ns < 1000000) ns *= 2;
    }
}

static int mpi_complete(agn_comm *c, MPI_Request *req, const char *what)
{
    int timed_out;
    return mpi_drive(c, 1, req, what, &timed_out);
}

static int mpi_init(agn_comm *c, mpi_state *ms)
{
    int provided, rc;
    int inited = 0;
    MPI_Initialized(&inited);
    if (!inited) {
        rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) return mpi_err(rc, "MPI_Init_thread");
        if (provided < MPI_THREAD_FUNNELED)
            return agn_seterr("MPI provides no thread support (level %d)", provided);
        ms->inited = 1;
    }
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &c->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c->world);
    int erank, eworld;
    if (agn_mpi_launched(&erank, &eworld) && (eworld != c->world || erank != c->rank)) {
        /* e.g. an MPI library that does not speak this launcher's PMI:
         * each process initialises alone, as a job of one */
        return agn_seterr("%s started rank %d of %d, but MPI sees rank %d of %d: this MPI "
                          "library cannot join the launcher's processes (with srun, try "
                          "another --mpi=; else start the ranks with this MPI's own mpirun)",
                          agn_mpi_launcher(), erank, eworld, c->rank, c->world);
    }
    MPI_Comm node;
    if (MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) ==
        MPI_SUCCESS) {
        MPI_Comm_rank(node, &c->local_rank);
        MPI_Comm_size(node, &c->local_world);
        MPI_Comm_free(&node);
    } else {
        c->local_rank = c->rank;
        c->local_world = c->world;
    }
    size_t W = (size_t)c->world;
    ms->scount = agn_xcalloc(4 * W, sizeof(int));
    ms->sdispl = ms->scount + W;
    ms->rcount = ms->scount + 2 * W;
    ms->rdispl = ms->scount + 3 * W;
    ms->reqs = agn_xcalloc(2 * W, sizeof *ms->reqs);
    ms->peer = agn_xcalloc(2 * W, sizeof *ms->peer);
    /* every rank's hostname, so that a timeout can say where the ranks it
     * waited for run */
    ms->hosts = agn_xcalloc(W, HOST_LEN);
    char *me = ms->hosts + (size_t)c->rank * HOST_LEN;
    if (gethostname(me, HOST_LEN - 1) != 0) snprintf(me, HOST_LEN, "?");
    MPI_Request req;
    rc = MPI_Iallgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, ms->hosts, HOST_LEN, MPI_CHAR,
                        MPI_COMM_WORLD, &req);
    if (rc != MPI_SUCCESS) return mpi_err(rc, "start-up (MPI_Iallgather)");
    if (mpi_complete(c, &req, "start-up (the ranks' hostnames)") != 0) return -1;
    for (size_t k = 0; k < W; k++) ms->hosts[k * HOST_LEN + HOST_LEN - 1] = '\0';
    return 0;
}

/* OUT[i] = ((c_0[i] + c_1[i]) + c_2[i]) + ... + c_{W-1}[i] for N elements,
 * rank order, where c_R is OWN (this rank's chunk, never sent to itself)
 * and c_k the chunk received from rank k at TMP + k * N elements.  OUT may
 * be OWN: one pass over blocks small enough to stay in cache, each read
 * whole before it is written. */
#define SUM_BLOCK 1024
#define SUM_LOOP(T)                                                                                 \
    do {                                                                                            \
        T acc[SUM_BLOCK];                                                                           \
        const T *c0 = r == 0 ? (const T *)own : (const T *)tmp;                                     \
        for (size_t b = 0; b < n; b += SUM_BLOCK) {                                                 \
            size_t m = n - b < SUM_BLOCK ? n - b : SUM_BLOCK;                                       \
            for (size_t i = 0; i < m; i++) acc[i] = c0[b + i];                                      \
            for (size_t k = 1; k < W; k++) {                                                        \
                const T *ck = k == r ? (const T *)own : (const T *)tmp + k * n;                     \
                for (size_t i = 0; i < m; i++) acc[i] = (T)(acc[i] + ck[b + i]);                    \
            }                                                                                       \
            memcpy((T *)out + b, acc, m * sizeof(T));                                               \
        }                                                                                           \
    } while (0)

static void sum_ranks(unsigned char *out, const unsigned char *own, const unsigned char *tmp, size_t n,
                      size_t W, size_t r, agn_dtype t)
{
    switch (t) {
    case AGN_F32: SUM_LOOP(float); break;
    case AGN_F64: SUM_LOOP(double); break;
    case AGN_U8: SUM_LOOP(uint8_t); break;
    }
}

/* The two halves of agn's reductions, as point-to-point messages posted
 * at once (the library's all-to-all and all-gather would move the same
 * bytes, but a timeout could not say whom it waited for).  Both cut a
 * buffer of N elements into the ranks' shards (agn_comm_shard).
 * SCATTER: rank k's shard of this rank's buffer goes to k, and this rank's
 * shard of every other's comes into TMP (slot k: TMP + k * mine).
 * GATHER: this rank's shard goes to every other, whose shards come into
 * place in the buffer. */
enum { SCATTER, GATHER };
static void plan(mpi_state *ms, int W, int r, size_t n, size_t es, int phase)
{
    size_t lo, hi;
    agn_comm_shard(n, W, r, &lo, &hi);
    size_t mine = hi - lo;
    for (int k = 0; k < W; k++) {
        size_t klo, khi;
        agn_comm_shard(n, W, k, &klo, &khi);
        if (phase == SCATTER) {
            ms->scount[k] = (int)((khi - klo) * es);
            ms->sdispl[k] = (int)(klo * es);
            ms->rcount[k] = (int)(mine * es);
            ms->rdispl[k] = (int)((size_t)k * mine * es);
        } else {
            ms->scount[k] = (int)(mine * es);
            ms->sdispl[k] = (int)(lo * es);
            ms->rcount[k] = (int)((khi - klo) * es);
            ms->rdispl[k] = (int)(klo * es);
        }
    }
}

/* Sends SCOUNT[k] bytes from SBUF + SDISPL[k] to every other rank k and
 * receives RCOUNT[k] into RBUF + RDISPL[k] from it (empty messages are not
 * sent); on a timeout the message names the ranks, and their hosts, whose
 * bytes never came (dead, stuck, or cut off). */
static int mpi_exchange(agn_comm *c, mpi_state *ms, const unsigned char *sbuf, unsigned char *rbuf,
                        int tag, const char *what)
{
    int W = c->world, r = c->rank, n = 0, rc = MPI_SUCCESS;
    for (int k = 0; k < W && rc == MPI_SUCCESS; k++) {
        if (k == r || ms->rcount[k] == 0) continue;
        ms->peer[n] = k;
        rc = MPI_Irecv(rbuf + ms->rdispl[k], ms->rcount[k], MPI_BYTE, k, tag, MPI_COMM_WORLD, &ms->reqs[n++]);
    }
    int nrecv = n;
    for (int k = 0; k < W && rc == MPI_SUCCESS; k++) {
        if (k == r || ms->scount[k] == 0) continue;
        ms->peer[n] = k;
        rc = MPI_Isend((void *)(sbuf + ms->sdispl[k]), ms->scount[k], MPI_BYTE, k, tag, MPI_COMM_WORLD,
                       &ms->reqs[n++]);
    }
    if (rc != MPI_SUCCESS) return mpi_err(rc, what);
    int timed_out;
    if (mpi_drive(c, n, ms->reqs, what, &timed_out) == 0) return 0;
    if (!timed_out) return -1;
    /* which requests are still open: receives first (a send completes
     * locally once the bytes are buffered; the receives say who is late) */
    char who[512] = "";
    size_t len = 0;
    int missing = 0, sends = 0;
    for (int pass = 0; pass < 2 && missing == 0; pass++) {
        for (int i = pass ? nrecv : 0; i < (pass ? n : nrecv); i++) {
            int f = 0;
            if (MPI_Test(&ms->reqs[i], &f, MPI_STATUS_IGNORE) != MPI_SUCCESS || f) continue;
            if (missing++ < 4 && len < sizeof who) {
                int w = snprintf(who + len, sizeof who - len, "%s rank %d (%s)", missing > 1 ? "," : "",
                                 ms->peer[i], ms->hosts + (size_t)ms->peer[i] * HOST_LEN);
                len += w > 0 ? (size_t)w : 0;
            }
        }
        sends = pass;
    }
    if (missing == 0) return -1;
    /* 4 names of at most HOST_LEN + 20 bytes fit in WHO */
    if (missing > 4 && len < sizeof who) snprintf(who + len, sizeof who - len, " and %d more", missing - 4);
    return agn_seterr("%s timed out after %g s (see --comm-timeout): %s%s", what, c->timeout_s,
                      sends ? "nothing delivered to" : "nothing from", who);
}

#define TAG_SCATTER 0x616701
#define TAG_GATHER 0x616702

static void grow_tmp(mpi_state *ms, size_t bytes)
{
    if (bytes <= ms->tmp_bytes) return;
    free(ms->tmp);
    ms->tmp_bytes = bytes;
    ms->tmp = agn_xmalloc(bytes);
}

/* All-reduce: the reduce-scatter and the all-gather below, in pieces that
 * keep byte counts in an int. */
static int mpi_allreduce(agn_comm *c, mpi_state *ms, unsigned char *buf, size_t count, agn_dtype t)
{
    size_t es = agn_dtype_size(t), W = (size_t)c->world, r = (size_t)c->rank;
    size_t per = PIECE_BYTES / es;
    for (size_t done = 0; done < count; done += per) {
        size_t n = count - done < per ? count - done : per, lo, hi;
        unsigned char *p = buf + done * es;
        agn_comm_shard(n, c->world, c->rank, &lo, &hi);
        size_t mine = hi - lo;
        grow_tmp(ms, W * mine * es);
        plan(ms, c->world, c->rank, n, es, SCATTER);
        if (mpi_exchange(c, ms, p, ms->tmp, TAG_SCATTER, "all-reduce") != 0) return -1;
        /* rank order 0, 1, ..., W-1 */
        if (mine > 0) sum_ranks(p + lo * es, p + lo * es, ms->tmp, mine, W, r, t);
        plan(ms, c->world, c->rank, n, es, GATHER);
        if (mpi_exchange(c, ms, p, p, TAG_GATHER, "all-reduce") != 0) return -1;
    }
    return 0;
}

/* Reduce-scatter: owner k's shard of every rank's buffer goes to k, which
 * sums the W copies in rank order into its shard.  All-gather: the shards,
 * in place.  Shards are agn_comm_shard()'s; the byte counts must fit in an
 * int (buckets do: they are megabytes). */
static int mpi_reduce_scatter(agn_comm *c, mpi_state *ms, unsigned char *buf, size_t count, agn_dtype t)
{
    size_t es = agn_dtype_size(t), W = (size_t)c->world, lo, hi;
    if (count * es > (size_t)2147483647)
        return agn_seterr("reduce-scatter of %zu bytes: more than MPI's int counts", count * es);
    agn_comm_shard(count, c->world, c->rank, &lo, &hi);
    size_t mine = hi - lo;
    grow_tmp(ms, W * mine * es);
    plan(ms, c->world, c->rank, count, es, SCATTER);
    if (mpi_exchange(c, ms, buf, ms->tmp, TAG_SCATTER, "reduce-scatter") != 0) return -1;
    if (mine > 0) sum_ranks(buf + lo * es, buf + lo * es, ms->tmp, mine, W, (size_t)c->rank, t);
    return 0;
}

static int mpi_allgather(agn_comm *c, mpi_state *ms, unsigned char *buf, size_t count, agn_dtype t)
{
    size_t es = agn_dtype_size(t);
    if (count * es > (size_t)2147483647)
        return agn_seterr("all-gather of %zu bytes: more than MPI's int counts", count * es);
    plan(ms, c->world, c->rank, count, es, GATHER);
    return mpi_exchange(c, ms, buf, buf, TAG_GATHER, "all-gather");
}

static int mpi_exec(agn_comm *c, struct agn_comm_req *r)
{
    mpi_state *ms = c->impl;
    MPI_Request req;
    int rc;
    switch (r->op) {
    case AGN_OP_INIT: return mpi_init(c, ms);
    case AGN_OP_ALLREDUCE: return mpi_allreduce(c, ms, r->buf, r->count, r->type);
    case AGN_OP_REDUCE_SCATTER: return mpi_reduce_scatter(c, ms, r->buf, r->count, r->type);
    case AGN_OP_ALLGATHER: return mpi_allgather(c, ms, r->buf, r->count, r->type);
    case AGN_OP_BROADCAST: {
        size_t es = agn_dtype_size(r->type), bytes = r->count * es;
        for (size_t done = 0; done < bytes; done += PIECE_BYTES) {
            size_t n = bytes - done < PIECE_BYTES ? bytes - done : PIECE_BYTES;
            rc = MPI_Ibcast((unsigned char *)r->buf + done, (int)n, MPI_BYTE, r->root,
                            MPI_COMM_WORLD, &req);
            if (rc != MPI_SUCCESS) return mpi_err(rc, "broadcast (MPI_Ibcast)");
            if (mpi_complete(c, &req, "broadcast") != 0) return -1;
        }
        return 0;
    }
    case AGN_OP_BARRIER:
        rc = MPI_Ibarrier(MPI_COMM_WORLD, &req);
        if (rc != MPI_SUCCESS) return mpi_err(rc, "barrier (MPI_Ibarrier)");
        return mpi_complete(c, &req, "barrier");
    }
    return agn_seterr("mpi transport: unknown operation %d", r->op);
}

static void mpi_fini(agn_comm *c)
{
    mpi_state *ms = c->impl;
    /* after a failure a peer may be gone or a request pending: finalising
     * could hang; the process exits and mpirun ends the job */
    if (ms->inited && !ms->engine.broken) MPI_Finalize();
}

static void mpi_abort(agn_comm *c, const char *why)
{
    mpi_state *ms = c->impl;
    agn_engine_break(&ms->engine, why);
    /* ends every rank of the job; does not return */
    MPI_Abort(MPI_COMM_WORLD, 1);
}

static void mpi_destroy(agn_comm *c)
{
    mpi_state *ms = c->impl;
    if (!ms) return;
    agn_engine_stop(&ms->engine);
    free(ms->tmp);
    free(ms->scount);
    free(ms->reqs);
    free(ms->peer);
    free(ms->hosts);
    free(ms);
    c->impl = NULL;
}

static const agn_comm_ops mpi_ops = {
    .name = "mpi",
    .allreduce_start = agn_engine_allreduce_start,
    .reduce_scatter_start = agn_engine_reduce_scatter_start,
    .allgather_start = agn_engine_allgather_start,
    .wait = agn_engine_wait_op,
    .broadcast = agn_engine_broadcast,
    .barrier = agn_engine_barrier,
    .abort = mpi_abort,
    .destroy = mpi_destroy,
};

agn_comm *agn_comm_mpi_create(double timeout_s)
{
    if (agn_mpi_check_launch() != 0) return NULL;
    agn_comm *c = agn_xcalloc(1, sizeof *c);
    mpi_state *ms = agn_xcalloc(1, sizeof *ms);
    c->ops = &mpi_ops;
    c->impl = ms;
    c->world = 1;
    c->timeout_s = timeout_s > 0 ? timeout_s : AGN_COMM_TIMEOUT_DEFAULT;
    if (agn_engine_start(&ms->engine, c, mpi_exec, mpi_fini) != 0) {
        free(ms);
        free(c);
        return NULL;
    }
    if (agn_engine_run(&ms->engine, AGN_OP_INIT, NULL, 0, AGN_U8, 0, c->timeout_s) != 0) {
        agn_adderr("mpi transport");
        agn_comm_free(c);
        return NULL;
    }
    return c;
}

#endif /* HAVE_MPI */
