/* launch.c: forks the ranks of a job on this host and supervises them, or
 * joins an MPI job, or runs alone (launch.h).  The supervisor is a plain
 * loop: signals of interest are blocked and collected with sigtimedwait, and
 * every rank is polled with waitpid(WNOHANG), so there is no handler race and
 * a dead rank is noticed within 50 ms. */
#define _GNU_SOURCE /* sched_setaffinity */
#include "config.h"
#include "launch.h"
#include "util.h"

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define POLL_NS 50000000L

/* ---- signal names ---------------------------------------------------------- */

const char *agn_signal_name(int sig, char *buf, size_t n)
{
    static const struct { int sig; const char *name; } names[] = {
        {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},
        {SIGTRAP, "SIGTRAP"}, {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},
        {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"}, {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"},
        {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"}, {SIGXCPU, "SIGXCPU"},
        {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"},
    };
    for (size_t i = 0; i < AGN_ARRAY_LEN(names); i++)
        if (names[i].sig == sig) return names[i].name;
    snprintf(buf, n, "signal %d", sig);
    return buf;
}

/* ---- stop signals in a rank -------------------------------------------------- */

static volatile sig_atomic_t stop_sig;
static volatile sig_atomic_t stop_sec, stop_nsec; /* monotonic time of the first one */
static const int stop_sigs[] = {SIGINT, SIGTERM, SIGHUP};
static struct sigaction old_actions[AGN_ARRAY_LEN(stop_sigs)];

static void stop_handler(int sig)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (!stop_sig) {
        stop_sec = (sig_atomic_t)ts.tv_sec;
        stop_nsec = (sig_atomic_t)ts.tv_nsec;
        stop_sig = sig;
        return;
    }
    /* A repeat within 2 s is the same stop seen twice (a terminal's ^C
     * reaches the whole process group, and the supervisor forwards it too);
     * a later one means "now": act as if agn had not caught it. */
    if ((double)(ts.tv_sec - stop_sec) + 1e-9 * (double)(ts.tv_nsec - stop_nsec) < AGN_STOP_REPEAT_S)
        return;
    for (size_t i = 0; i < AGN_ARRAY_LEN(stop_sigs); i++)
        if (stop_sigs[i] == sig) {
            struct sigaction *o = &old_actions[i];
            if (!(o->sa_flags & SA_SIGINFO) && o->sa_handler != SIG_DFL && o->sa_handler != SIG_IGN) {
                o->sa_handler(sig);
                return;
            }
            sigaction(sig, o, NULL);
            raise(sig);
        }
}

void agn_catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = stop_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    for (size_t i = 0; i < AGN_ARRAY_LEN(stop_sigs); i++) {
        struct sigaction old;
        if (sigaction(stop_sigs[i], NULL, &old) != 0) continue;
        if (old.sa_handler == SIG_IGN) continue; /* nohup: keep ignoring */
        if (old.sa_handler == stop_handler) continue;
        old_actions[i] = old;
        sigaction(stop_sigs[i], &sa, NULL);
    }
}

int agn_stop_requested(void) { return stop_sig; }
volatile sig_atomic_t *agn_stop_flag(void) { return &stop_sig; }

/* ---- the supervisor ------------------------------------------------------------ */

static void describe(int r, pid_t pid, int st, char *buf, size_t n)
{
    char sb[32];
    if (WIFSIGNALED(st))
        snprintf(buf, n, "rank %d (pid %ld) was killed by %s%s", r, (long)pid,
                 agn_signal_name(WTERMSIG(st), sb, sizeof sb), WCOREDUMP(st) ? " (core dumped)" : "");
    else
        snprintf(buf, n, "rank %d (pid %ld) exited with status %d", r, (long)pid, WEXITSTATUS(st));
}

static void signal_alive(const pid_t *pids, const int *alive, int n, int sig)
{
    for (int r = 0; r < n; r++)
        if (alive[r]) kill(pids[r], sig);
}

static int supervise(agn_local_seg *seg, const pid_t *pids, int n, const agn_launch_opts *o,
                     const sigset_t *set)
{
    double grace = o->grace_s > 0 ? o->grace_s : 3.0;
    double stop_grace = o->stop_grace_s > 0 ? o->stop_grace_s : 30.0;
    int *alive = agn_xcalloc((size_t)n, sizeof *alive);
    int *st_of = agn_xcalloc((size_t)n, sizeof *st_of), first = -1, killed = 0;
    int left = n, stop = 0, failed = 0, status = 0;
    double kill_at = 0, stop_at = 0;
    int stop_inferred = 0; /* the stop came from a rank's exit, not a signal to us */
    char cause[512] = "", note[512] = "", sb[32];
    for (int r = 0; r < n; r++) alive[r] = 1;

    while (left > 0) {
        for (int r = 0; r < n; r++) {
            int st;
            if (!alive[r] || waitpid(pids[r], &st, WNOHANG) != pids[r]) continue;
            alive[r] = 0;
            st_of[r] = st;
            left--;
            int rsig = WIFEXITED(st) && WEXITSTATUS(st) > 128 ? WEXITSTATUS(st) - 128
                       : WIFSIGNALED(st) ? WTERMSIG(st) : 0;
            int stopsig = rsig == SIGINT || rsig == SIGTERM || rsig == SIGHUP;
            /* A stop learnt from the ranks: those that were not signalled
             * themselves exit 130 (they only know that a rank was asked), so
             * the signal of one that was wins over SIGINT. */
            if (stop && stop_inferred && !failed && stopsig && rsig != stop && stop == SIGINT)
                stop = rsig;
            int expected = WIFEXITED(st) && (WEXITSTATUS(st) == 0 ||
                                             (stop && WEXITSTATUS(st) == 128 + stop));
            if (stop && stop_inferred && stopsig) expected = 1;
            if (stop && WIFSIGNALED(st) && WTERMSIG(st) == stop) expected = 1;
            if (expected || failed) continue; /* after a failure, the rest is our doing */
            /* A rank stopped by a stop signal sent to it alone (kill PID of
             * one rank): the job was asked to stop, not failed.  The ranks
             * agree on the step to stop after; the signal goes to the others
             * too, in case one has not seen the request yet. */
            if (!stop && stopsig) {
                stop = rsig;
                stop_inferred = 1;
                stop_at = agn_now();
                signal_alive(pids, alive, n, rsig);
                kill_at = agn_now() + stop_grace;
                continue;
            }
            if (stop) {
                if (!note[0]) describe(r, pids[r], st, note, sizeof note);
                continue;
            }
            failed = 1;
            first = r;
            killed = WIFSIGNALED(st);
            describe(r, pids[r], st, cause, sizeof cause);
            agn_local_seg_abort(seg, -1, cause);
            signal_alive(pids, alive, n, SIGTERM);
            kill_at = agn_now() + grace;
        }
        if (left == 0) break;
        if (kill_at > 0 && agn_now() >= kill_at) {
            signal_alive(pids, alive, n, SIGKILL);
            kill_at = 0;
        }
        struct timespec ts = {0, POLL_NS};
        int sig = sigtimedwait(set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) {
            if (!stop && !failed) {
                stop = sig;
                stop_at = agn_now();
                signal_alive(pids, alive, n, sig);
                kill_at = agn_now() + stop_grace;
            } else if (failed || agn_now() - stop_at >= AGN_STOP_REPEAT_S) {
                signal_alive(pids, alive, n, SIGKILL); /* asked twice: now */
            }
            /* else a repeat within 2 s: the same request (a terminal's ^C
             * reaches every process of the job, a second ^C that quickly is
             * a key held or pressed twice), already forwarded */
        }
    }
    /* The first rank to end badly may only be reacting to another's abort
     * (a rank that failed, or timed out waiting): name the one that started
     * it, with its reason, unless the first was killed by a signal. */
    int ar = -1;
    const char *why = failed && !killed ? agn_local_seg_aborted(seg, &ar) : NULL;
    if (why && ar >= 0 && ar < n) {
        char d[256];
        if (ar == first || WIFEXITED(st_of[ar])) { /* else it was stopped by us */
            describe(ar, pids[ar], st_of[ar], d, sizeof d);
            snprintf(cause, sizeof cause, "%s (%s)", d, why);
        } else {
            snprintf(cause, sizeof cause, "rank %d: %s", ar, why);
        }
    }
    free(alive);
    free(st_of);

    if (failed) {
        agn_seterr("%s; the other ranks were stopped", cause);
        status = AGN_EXIT_ERROR;
    } else if (stop) {
        if (note[0]) agn_seterr("stopped by %s (%s)", agn_signal_name(stop, sb, sizeof sb), note);
        else agn_seterr("stopped by %s", agn_signal_name(stop, sb, sizeof sb));
        status = 128 + stop;
    }
    return status;
}

/* ---- agn_launch ------------------------------------------------------------------ */

static int launch_mpi(const agn_launch_opts *o, int mworld, agn_comm **comm)
{
    if (o->ranks > 1 && o->ranks != mworld)
        return agn_seterr("-n %d, but mpirun/srun started %d processes: each process is one rank "
                          "(drop -n or make them agree)", o->ranks, mworld);
    agn_comm *c = agn_comm_mpi_create(o->timeout_s);
    if (!c) return -1;
    if (o->catch_stop) agn_catch_stop_signals();
    *comm = c;
    return AGN_LAUNCH_RANK;
}

/* ---- binding ---------------------------------------------------------------- */

static int bound_cpus; /* in a bound rank: how many CPUs it was given */
static int forked;     /* in a rank forked by agn_launch */

int agn_launch_bound(void) { return bound_cpus; }

int agn_launch_forked(void) { return forked; }

typedef struct {
    int package, core, cpu;
} cpu_place;

/* /sys/devices/system/cpu/cpuCPU/topology/LEAF, or DFLT */
static int topology(int cpu, const char *leaf, int dflt)
{
    char path[128];
    snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/%s", cpu, leaf);
    FILE *fp = fopen(path, "r");
    int v = dflt;
    if (fp) {
        if (fscanf(fp, "%d", &v) != 1) v = dflt;
        fclose(fp);
    }
    return v;
}

static int place_cmp(const void *a, const void *b)
{
    const cpu_place *x = a, *y = b;
    if (x->package != y->package) return x->package < y->package ? -1 : 1;
    if (x->core != y->core) return x->core < y->core ? -1 : 1;
    return (x->cpu > y->cpu) - (x->cpu < y->cpu);
}

int agn_launch_cpus(int rank, int world, int *cpus, int cap)
{
    cpu_set_t set;
    if (world < 1 || rank < 0 || rank >= world || sched_getaffinity(0, sizeof set, &set) != 0) return 0;
    cpu_place *pl = agn_xcalloc(CPU_SETSIZE, sizeof *pl);
    int n = 0;
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        /* without sysfs every CPU is its own core */
        pl[n].package = topology(c, "physical_package_id", 0);
        pl[n].core = topology(c, "core_id", -1 - c);
        pl[n].cpu = c;
        n++;
    }
    qsort(pl, (size_t)n, sizeof *pl, place_cmp);
    /* the cores, in that order: [first[i], first[i + 1]) of pl */
    int *first = agn_xcalloc((size_t)n + 1, sizeof *first), ncores = 0;
    for (int i = 0; i < n; i++)
        if (i == 0 || pl[i].package != pl[i - 1].package || pl[i].core != pl[i - 1].core) first[ncores++] = i;
    first[ncores] = n;
    int lo, hi; /* positions in pl */
    if (ncores >= world) { /* whole cores */
        lo = first[(long)ncores * rank / world];
        hi = first[(long)ncores * (rank + 1) / world];
    } else if (n >= world) { /* hardware threads */
        lo = (int)((long)n * rank / world);
        hi = (int)((long)n * (rank + 1) / world);
    } else {
        lo = hi = 0; /* fewer CPUs than ranks: the scheduler shares them */
    }
    int k = 0;
    for (int i = lo; i < hi && k < cap; i++) cpus[k++] = pl[i].cpu;
    free(first);
    free(pl);
    return k;
}

/* In forked rank R of W: binds it to its CPUs (agn_launch_cpus); a failure
 * leaves it unbound, which is slower, never wrong. */
static void bind_rank(int r, int w)
{
    int cpus[CPU_SETSIZE];
    int k = agn_launch_cpus(r, w, cpus, CPU_SETSIZE);
    if (k == 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int i = 0; i < k; i++) CPU_SET(cpus[i], &set);
    if (sched_setaffinity(0, sizeof set, &set) == 0) bound_cpus = k;
}

int agn_launch(const agn_launch_opts *o, agn_comm **comm, int *status)
{
    int mrank, mworld;
    *comm = NULL;
    *status = 0;
    if (agn_mpi_launched(&mrank, &mworld)) return launch_mpi(o, mworld, comm);
    if (o->ranks <= 1) {
        agn_comm *c = agn_comm_none();
        c->timeout_s = o->timeout_s > 0 ? o->timeout_s : AGN_COMM_TIMEOUT_DEFAULT;
        if (o->catch_stop) agn_catch_stop_signals();
        *comm = c;
        return AGN_LAUNCH_RANK;
    }

    int n = o->ranks;
    agn_local_seg *seg = agn_local_seg_create(n, o->slot_bytes);
    if (!seg) return -1;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGCHLD);
    /* A stop signal inherited as ignored (nohup, a background job of a
     * script) stays ignored, by the supervisor as by the ranks: a blocked
     * signal would be collected here even though the ranks discard it. */
    static const int stops[] = {SIGINT, SIGTERM, SIGHUP};
    for (size_t i = 0; i < AGN_ARRAY_LEN(stops); i++) {
        struct sigaction cur;
        if (sigaction(stops[i], NULL, &cur) == 0 && cur.sa_handler == SIG_IGN) continue;
        sigaddset(&set, stops[i]);
    }
    sigprocmask(SIG_BLOCK, &set, &old);
    fflush(NULL);

    pid_t parent = getpid();
    pid_t *pids = agn_xcalloc((size_t)n, sizeof *pids);
    for (int r = 0; r < n; r++) {
        pid_t pid = fork();
        if (pid < 0) {
            int e = errno;
            for (int k = 0; k < r; k++) kill(pids[k], SIGKILL);
            for (int k = 0; k < r; k++) waitpid(pids[k], NULL, 0);
            sigprocmask(SIG_SETMASK, &old, NULL);
            free(pids);
            agn_local_seg_free(seg);
            errno = e;
            return agn_seterr_errno("cannot fork rank %d of %d", r, n);
        }
        if (pid == 0) {
            /* the rank: dies with the supervisor, whatever killed it */
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(AGN_EXIT_ERROR);
            forked = 1;
            sigprocmask(SIG_SETMASK, &old, NULL);
            free(pids);
            /* before the communication thread starts: it inherits the set */
            if (o->bind) bind_rank(r, n);
            agn_comm *c = agn_comm_local_create(seg, r, o->timeout_s);
            if (!c) {
                /* the caller, a rank, reports it and exits non-zero */
                agn_local_seg_abort(seg, r, agn_errmsg());
                agn_local_seg_free(seg);
                return agn_adderr("rank %d", r);
            }
            if (o->catch_stop) agn_catch_stop_signals();
            *comm = c;
            return AGN_LAUNCH_RANK;
        }
        pids[r] = pid;
    }

    *status = supervise(seg, pids, n, o, &set);
    free(pids);
    agn_local_seg_free(seg);
    /* a signal still pending would act on the supervisor once unblocked */
    struct timespec zero = {0, 0};
    while (sigtimedwait(&set, NULL, &zero) > 0) {}
    sigprocmask(SIG_SETMASK, &old, NULL);
    return AGN_LAUNCH_DONE;
}

/* ---- what the launcher gave this rank ---------------------------------------- */

/* The CPUs this process may run on: their count, and "0-3,8" into LIST. */
static int allowed_cpus(char *list, size_t n)
{
    cpu_set_t set;
    int count = 0;
    size_t len = 0;
    if (n) list[0] = '\0';
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        long k = sysconf(_SC_NPROCESSORS_ONLN);
        if (n) snprintf(list, n, "?");
        return k > 0 ? (int)k : 1;
    }
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &set)) continue;
        int e = c;
        while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, &set)) e++;
        count += e - c + 1;
        if (len < n) {
            int w = e > c ? snprintf(list + len, n - len, "%s%d-%d", len ? "," : "", c, e)
                          : snprintf(list + len, n - len, "%s%d", len ? "," : "", c);
            len += w > 0 ? (size_t)w : 0;
        }
        c = e;
    }
    return count > 0 ? count : 1;
}

/* SLURM_CPUS_PER_TASK (srun/sbatch -c) in a Slurm job, 0 if unset or bad */
static int slurm_cpus_per_task(void)
{
    const char *v = getenv("SLURM_CPUS_PER_TASK");
    long k;
    if (!v || !getenv("SLURM_JOB_ID") || agn_parse_long(v, 1, 1 << 16, "SLURM_CPUS_PER_TASK", &k) != 0) return 0;
    return (int)k;
}

int agn_launch_threads(const agn_comm *c)
{
    if (bound_cpus) return bound_cpus;
    int allowed = allowed_cpus(NULL, 0);
    int cpt = c && c->world > 1 ? slurm_cpus_per_task() : 0;
    if (cpt > 0) return cpt < allowed ? cpt : allowed;
    int lw = c && c->local_world > 0 ? c->local_world : 1;
    return allowed / lw > 0 ? allowed / lw : 1;
}

const char *agn_launch_describe(const agn_comm *c, char *buf, size_t n)
{
    char host[256] = "?", cpus[256], slurm[256] = "";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    int allowed = allowed_cpus(cpus, sizeof cpus);
    const char *tr = c->ops && c->ops->name ? c->ops->name : "none";
    const char *by = strcmp(tr, "mpi") == 0 ? agn_mpi_launcher() : NULL;
    if (!by) by = strcmp(tr, "local") == 0 ? "agn (-n, forked)" : "nothing (one rank)";
    const char *job = getenv("SLURM_JOB_ID");
    if (job) {
        const char *step = getenv("SLURM_STEP_ID"), *node = getenv("SLURMD_NODENAME");
        const char *ntasks = getenv("SLURM_STEP_NUM_TASKS"), *nnodes = getenv("SLURM_STEP_NUM_NODES");
        const char *cpt = getenv("SLURM_CPUS_PER_TASK");
        snprintf(slurm, sizeof slurm, "; Slurm job %s%s%s%s%s%s%s%s%s%s%s%s%s", job, step ? " step " : "",
                 step ? step : " (no step)", node ? " on node " : "", node ? node : "", ntasks ? ", " : "",
                 ntasks ? ntasks : "", ntasks ? " tasks" : "", nnodes ? " on " : "", nnodes ? nnodes : "",
                 nnodes ? " nodes" : "", cpt ? ", SLURM_CPUS_PER_TASK=" : "", cpt ? cpt : "");
    }
    snprintf(buf, n, "rank %d of %d, local rank %d of %d, on host %s; started by %s; transport %s%s; "
             "CPUs allowed %d (%s)%s", c->rank, c->world, c->local_rank, c->local_world, host, by, tr,
             slurm, allowed, cpus, bound_cpus ? ", bound by agn" : "");
    return buf;
}
