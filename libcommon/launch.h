/* launch.h: how a program becomes the ranks of a data-parallel job
 * (DESIGN.md, Launch).  One call, agn_launch(), picks the case:
 *  - under mpirun/mpiexec/srun (detected from the environment) this process
 *    is one rank, with the mpi transport;
 *  - with ranks > 1 it forks that many ranks on this host, with the local
 *    transport, and the calling process stays behind as their supervisor;
 *  - else it is the only rank (transport "none").
 *
 * The supervisor watches the ranks with waitpid.  When one dies by a signal
 * or exits non-zero, it aborts the shared segment (the others' next wait
 * fails with the cause), sends the others SIGTERM, then SIGKILL after a grace
 * period, and returns status 1 with a message naming the rank and the cause.
 * SIGINT, SIGTERM and SIGHUP sent to it are forwarded to every rank; the
 * ranks are expected to stop at a step boundary (agn_stop_requested()) and
 * the job's status is then 128 + the signal (130, 143, 129); so it is when
 * the signal was sent to one rank only, which then stops with the others.
 * A repeat of the signal within AGN_STOP_REPEAT_S of the first is the same
 * request (a terminal's ^C reaches every process of the job); a later one,
 * or ranks still alive after the stop grace period, get SIGKILL.
 * Ranks get PR_SET_PDEATHSIG(SIGKILL): if the supervisor itself is killed,
 * no rank outlives it.  With bind, each forked rank is bound to its own
 * block of CPUs (agn_launch_cpus). */
#ifndef AGN_LAUNCH_H
#define AGN_LAUNCH_H

#include "comm.h"

#include <signal.h>

typedef struct {
    int ranks;         /* forked ranks (1: no fork); under MPI 0, 1 or the MPI world size */
    double timeout_s;  /* collective timeout; <= 0: AGN_COMM_TIMEOUT_DEFAULT */
    double grace_s;    /* failure: SIGTERM -> SIGKILL delay; <= 0: 3 s */
    double stop_grace_s; /* stop by signal: time given to ranks to checkpoint; <= 0: 30 s */
    size_t slot_bytes; /* local transport staging size; 0: default */
    int catch_stop;    /* 1: ranks catch SIGINT/SIGTERM/SIGHUP (agn_stop_requested) */
    int bind;          /* 1: each forked rank runs on its own CPUs (agn_launch_cpus) */
} agn_launch_opts;

enum { AGN_LAUNCH_RANK = 0, AGN_LAUNCH_DONE = 1 };

/* A stop signal repeated within this many seconds is the same request. */
#define AGN_STOP_REPEAT_S 2.0

/* Becomes a rank or supervises ranks.  Returns AGN_LAUNCH_RANK in every rank
 * with *comm set (free it with agn_comm_free, then exit); AGN_LAUNCH_DONE in
 * the supervisor once every rank has ended, with *status the job's exit
 * status (0, 1, or 128 + a stop signal) and, when it is not 0, a message for
 * agn_errmsg(); -1 with a message if nothing could be started (or, in a
 * forked rank, if its communicator could not: it must exit non-zero).  Call it
 * before any thread exists (OpenMP, BLAS): it forks.  Standard streams are
 * flushed first so no buffered output is duplicated. */
int agn_launch(const agn_launch_opts *o, agn_comm **comm, int *status);

/* The CPUs (at most CAP, into CPUS) that forked rank RANK of WORLD is bound
 * to: the CPUs this process may run on, ordered by package, core and number
 * so that the hardware threads of a core are adjacent, cut into WORLD
 * contiguous blocks of whole cores (of hardware threads when there are
 * fewer cores than ranks); 0 when there are fewer CPUs than ranks (no
 * binding: they must share).  Binding keeps a rank's threads off the
 * others' cores: on a machine with one core per rank the scheduler
 * otherwise sometimes stacks two busy ranks on one core while the other
 * idles, and every step waits for the slower. */
int agn_launch_cpus(int rank, int world, int *cpus, int cap);
/* In a forked rank: the number of CPUs it is bound to, 0 if unbound. */
int agn_launch_bound(void);
/* 1 in a rank forked by agn_launch (its parent supervises the job). */
int agn_launch_forked(void);

/* In a rank started with catch_stop: the stop signal received (SIGINT,
 * SIGTERM, SIGHUP), or 0.  The first one only sets this flag; a second one
 * acts as it would have without agn (the previous handler, or death). */
int agn_stop_requested(void);
/* The flag itself, for code that polls a sig_atomic_t (train.h's stop). */
volatile sig_atomic_t *agn_stop_flag(void);
/* Installs the stop handlers in this process (agn_launch does it in ranks
 * when catch_stop is set). */
void agn_catch_stop_signals(void);

/* "SIGKILL", "SIGSEGV", ... or "signal N" (static or BUF of N bytes). */
const char *agn_signal_name(int sig, char *buf, size_t n);

#endif

/* After agn_launch, in a rank of C: the threads it should run by default:
 * the CPUs agn bound it to; else SLURM_CPUS_PER_TASK in a Slurm job of
 * several ranks (srun/sbatch -c), at most the CPUs it may run on; else the
 * CPUs it may run on shared among the ranks of its host. */
int agn_launch_threads(const agn_comm *c);
/* One line on what this rank found: rank, world size, local rank and size,
 * the hostname, who started it (srun, mpirun, agn's -n, nothing), the
 * transport, the Slurm job, step, node, tasks and nodes of the step and
 * SLURM_CPUS_PER_TASK when in one, and the CPUs it may run on.  Into BUF
 * (N bytes), returned. */
const char *agn_launch_describe(const agn_comm *c, char *buf, size_t n);
