/* t-comm.c: unit tests of the communication transports and the launcher.
 *
 *   t-comm                 the local transport, forked with agn_launch():
 *                          W = 1..4 ranks, all-reduce against a serial sum in
 *                          rank order (bit for bit), sizes 1, odd, crossing
 *                          the staging slot, several requests in flight,
 *                          broadcast, barrier, shared memory; the binding of
 *                          ranks to CPUs; then the faults: abort, a rank
 *                          killed, a collective timing out.
 *   t-comm --mpi           the same collectives as one rank of an MPI job
 *                          (run under mpirun by tests/mpi-comm.sh).
 *   t-comm --mpi-timeout   under mpirun: rank 1 sleeps, rank 0 must time out.
 *   t-comm --serve N [--fail-rank R --fail-after K] [--marker WORD]
 *                          N ranks all-reduce in a loop until a stop signal,
 *                          as the trainer does; each writes rank-R.pid in the
 *                          current directory (for tests/dist-launch.sh).
 *
 * Every rank computes every rank's input (a hash of rank and index), so each
 * knows the exact expected sum ((x0 + x1) + x2) + ... without communication.
 * Results of the fault tests travel to the test's parent through a shared
 * page mapped before the fork. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "config.h"
#include "comm-input.h"
#include "comm.h"
#include "launch.h"
#include "util.h"

#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static int failures;
static int exit_code; /* a rank whose collective failed as the test wanted exits 1 */

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "t-comm: %s:%d: ", __FILE__, __LINE__);       \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            failures++;                                                    \
        }                                                                  \
    } while (0)

/* ---- inputs ------------------------------------------------------------------ */

static double input(int rank, size_t i, uint64_t salt) { return comm_test_input(rank, i, salt); }

static void fill_f32(float *x, size_t n, int rank, uint64_t salt)
{
    for (size_t i = 0; i < n; i++) x[i] = (float)input(rank, i, salt);
}

static void serial_f32(float *y, size_t n, int world, uint64_t salt)
{
    for (size_t i = 0; i < n; i++) {
        float s = (float)input(0, i, salt);
        for (int k = 1; k < world; k++) s += (float)input(k, i, salt);
        y[i] = s;
    }
}

/* ---- the collectives, on any transport ---------------------------------------------- */

static int check_allreduce_f32(agn_comm *c, size_t n, uint64_t salt)
{
    float *x = agn_xmalloc((n ? n : 1) * sizeof *x), *y = agn_xmalloc((n ? n : 1) * sizeof *y);
    fill_f32(x, n, c->rank, salt);
    serial_f32(y, n, c->world, salt);
    int rc = agn_comm_allreduce(c, x, n, AGN_F32);
    CHECK(rc == 0, "rank %d: all-reduce of %zu floats: %s", c->rank, n, agn_errmsg());
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) bad += memcmp(&x[i], &y[i], sizeof *x) != 0;
    CHECK(bad == 0, "rank %d W %d: all-reduce of %zu floats: %zu differ from the serial sum", c->rank,
          c->world, n, bad);
    free(x);
    free(y);
    return rc;
}

static void check_allreduce_f64(agn_comm *c, size_t n, uint64_t salt)
{
    double *x = agn_xmalloc(n * sizeof *x);
    for (size_t i = 0; i < n; i++) x[i] = input(c->rank, i, salt);
    CHECK(agn_comm_allreduce(c, x, n, AGN_F64) == 0, "rank %d: f64 all-reduce: %s", c->rank,
          agn_errmsg());
    size_t bad = 0;
    for (size_t i = 0; i < n; i++) {
        double s = input(0, i, salt);
        for (int k = 1; k < c->world; k++) s += input(k, i, salt);
        bad += memcmp(&s, &x[i], sizeof s) != 0;
    }
    CHECK(bad == 0, "rank %d: f64 all-reduce of %zu: %zu differ", c->rank, n, bad);
    free(x);
}

/* Several requests in flight, waited in order or in reverse, with a
 * broadcast between the starts and the waits. */
static void check_inflight(agn_comm *c, int reverse)
{
    enum { K = 6 };
    static const size_t sizes[K] = {1, 5, 4099, 30001, 2, 100003};
    float *x[K], *y[K];
    agn_comm_req *req[K];
    for (int k = 0; k < K; k++) {
        x[k] = agn_xmalloc(sizes[k] * sizeof(float));
        y[k] = agn_xmalloc(sizes[k] * sizeof(float));
        fill_f32(x[k], sizes[k], c->rank, 100 + (uint64_t)k);
        serial_f32(y[k], sizes[k], c->world, 100 + (uint64_t)k);
        CHECK(agn_comm_allreduce_start(c, x[k], sizes[k], AGN_F32, &req[k]) == 0, "start: %s",
              agn_errmsg());
    }
    int32_t b[3] = {0, 0, 0};
    if (c->rank == c->world - 1) b[0] = 7, b[1] = -3, b[2] = c->world;
    CHECK(agn_comm_broadcast(c, b, 12, AGN_U8, c->world - 1) == 0, "broadcast: %s", agn_errmsg());
    CHECK(b[0] == 7 && b[1] == -3 && b[2] == c->world, "rank %d: broadcast between requests: %d %d %d",
          c->rank, b[0], b[1], b[2]);
    for (int j = 0; j < K; j++) {
        int k = reverse ? K - 1 - j : j;
        CHECK(agn_comm_wait(c, req[k]) == 0, "wait %d: %s", k, agn_errmsg());
        CHECK(memcmp(x[k], y[k], sizes[k] * sizeof(float)) == 0,
              "rank %d W %d: in-flight request %d (%zu floats) differs from the serial sum", c->rank,
              c->world, k, sizes[k]);
        free(x[k]);
        free(y[k]);
    }
}

/* Reduce-scatter: this rank's shard equals the serial sum; then an
 * all-gather of those shards gives every rank the whole sum (together, the
 * all-reduce), and an all-gather of rank-tagged data gives each shard from
 * its owner. */
static void check_shards(agn_comm *c, size_t n, uint64_t salt)
{
    float *x = agn_xmalloc((n ? n : 1) * sizeof *x), *y = agn_xmalloc((n ? n : 1) * sizeof *y);
    fill_f32(x, n, c->rank, salt);
    serial_f32(y, n, c->world, salt);
    size_t lo, hi;
    agn_comm_shard(n, c->world, c->rank, &lo, &hi);
    agn_comm_req *req;
    CHECK(agn_comm_reduce_scatter_start(c, x, n, AGN_F32, &req) == 0 && agn_comm_wait(c, req) == 0,
          "reduce-scatter: %s", agn_errmsg());
    CHECK(memcmp(x + lo, y + lo, (hi - lo) * sizeof *x) == 0,
          "rank %d W %d: reduce-scatter of %zu floats: shard [%zu, %zu) differs from the serial sum",
          c->rank, c->world, n, lo, hi);
    CHECK(agn_comm_allgather_start(c, x, n, AGN_F32, &req) == 0 && agn_comm_wait(c, req) == 0,
          "all-gather: %s", agn_errmsg());
    CHECK(memcmp(x, y, n * sizeof *x) == 0, "rank %d W %d: reduce-scatter + all-gather of %zu floats "
          "differs from the serial sum", c->rank, c->world, n);
    for (size_t i = 0; i < n; i++) x[i] = (float)c->rank * 1000 + (float)(i % 997);
    CHECK(agn_comm_allgather_start(c, x, n, AGN_F32, &req) == 0 && agn_comm_wait(c, req) == 0,
          "all-gather: %s", agn_errmsg());
    size_t bad = 0;
    for (int k = 0; k < c->world; k++) {
        agn_comm_shard(n, c->world, k, &lo, &hi);
        for (size_t i = lo; i < hi; i++) bad += x[i] != (float)k * 1000 + (float)(i % 997);
    }
    CHECK(bad == 0, "rank %d W %d: all-gather of %zu floats: %zu not from their owner", c->rank,
          c->world, n, bad);
    free(x);
    free(y);
}

static void check_broadcast(agn_comm *c, size_t n, int root)
{
    float *x = agn_xmalloc(n * sizeof *x), *y = agn_xmalloc(n * sizeof *y);
    fill_f32(y, n, root, 7);
    if (c->rank == root) memcpy(x, y, n * sizeof *x);
    else
        for (size_t i = 0; i < n; i++) x[i] = -1;
    CHECK(agn_comm_broadcast(c, x, n, AGN_F32, root) == 0, "broadcast: %s", agn_errmsg());
    CHECK(memcmp(x, y, n * sizeof *x) == 0, "rank %d: broadcast of %zu from %d differs", c->rank, n,
          root);
    free(x);
    free(y);
}

/* Every rank arrives at a different time; none may leave before all came.
 * COUNTER is shared by the ranks (local: a shared page; mpi: NULL).  Both
 * transports: the arrival times (CLOCK_MONOTONIC, one clock for every
 * process of the host) are gathered afterwards with an all-reduce, and no
 * rank may have left before the last arrival. */
static void check_barrier(agn_comm *c, _Atomic int *counter, int round)
{
    struct timespec ts = {0, 20000000L * c->rank};
    nanosleep(&ts, NULL);
    double *arrivals = agn_xcalloc((size_t)c->world, sizeof *arrivals);
    arrivals[c->rank] = agn_now();
    if (counter) atomic_fetch_add(counter, 1);
    CHECK(agn_comm_barrier(c) == 0, "barrier: %s", agn_errmsg());
    double left = agn_now();
    if (counter)
        CHECK(atomic_load(counter) >= c->world * round, "rank %d left the barrier with %d of %d arrived",
              c->rank, atomic_load(counter), c->world * round);
    CHECK(agn_comm_allreduce(c, arrivals, (size_t)c->world, AGN_F64) == 0, "all-reduce: %s", agn_errmsg());
    for (int k = 0; k < c->world; k++)
        CHECK(left >= arrivals[k], "rank %d left the barrier %.6f s before rank %d arrived", c->rank,
              arrivals[k] - left, k);
    free(arrivals);
}

/* agn_comm_shared: one zero-filled page-aligned memory in every rank of the
 * local transport (what one rank writes before a barrier, every rank reads
 * after it), none elsewhere; a second request fails. */
static void check_shared(agn_comm *c)
{
    int expect = c->world > 1 && strcmp(c->ops->name, "local") == 0;
    size_t n = 3 * 1048576 + 5; /* 12 MB: more than the staging slots */
    float *p = (float *)&n;     /* must be overwritten */
    int rc = agn_comm_shared(c, n * sizeof *p, (void **)&p);
    CHECK(rc == 0, "rank %d: agn_comm_shared: %s", c->rank, agn_errmsg());
    if (rc != 0) return;
    if (!expect) {
        CHECK(p == NULL, "rank %d: %s transport, world %d, gave shared memory", c->rank, c->ops->name, c->world);
        return;
    }
    CHECK(p && (uintptr_t)p % 4096 == 0, "rank %d: shared memory %p is not page-aligned", c->rank, (void *)p);
    if (!p) return;
    size_t lo, hi, bad = 0;
    agn_comm_shard(n, c->world, c->rank, &lo, &hi);
    for (size_t i = lo; i < hi; i++) bad += p[i] != 0.0f;
    CHECK(bad == 0, "rank %d: %zu elements of the shared memory are not 0", c->rank, bad);
    for (size_t i = lo; i < hi; i++) p[i] = (float)input(c->rank, i, 77);
    CHECK(agn_comm_barrier(c) == 0, "rank %d: barrier: %s", c->rank, agn_errmsg());
    for (int k = 0; k < c->world; k++) {
        agn_comm_shard(n, c->world, k, &lo, &hi);
        for (size_t i = lo; i < hi; i++) bad += p[i] != (float)input(k, i, 77);
    }
    CHECK(bad == 0, "rank %d: %zu elements written by the other ranks read back wrong", c->rank, bad);
    CHECK(agn_comm_barrier(c) == 0, "rank %d: barrier: %s", c->rank, agn_errmsg());
    void *q = NULL;
    CHECK(agn_comm_shared(c, 64, &q) != 0, "rank %d: shared memory given twice", c->rank);
}

static void collectives(agn_comm *c, _Atomic int *counter, int big)
{
    static const size_t sizes[] = {1, 2, 3, 7, 17, 1001, 65537};
    for (size_t i = 0; i < AGN_ARRAY_LEN(sizes); i++) check_allreduce_f32(c, sizes[i], 1 + i);
    /* 4.4 MB: crosses the 4 MiB slots, in pieces and in reduce-scatter rounds */
    if (big) check_allreduce_f32(c, 1100003, 99);
    check_allreduce_f64(c, 4097, 5);
    for (size_t i = 0; i < AGN_ARRAY_LEN(sizes); i++) check_shards(c, sizes[i], 50 + i);
    if (big) check_shards(c, 2200009, 98);
    check_inflight(c, 0);
    check_inflight(c, 1);
    check_broadcast(c, 1, 0);
    check_broadcast(c, 12345, c->world - 1);
    if (big) check_broadcast(c, 1500007, c->world / 2);
    check_barrier(c, counter, 1);
    check_barrier(c, counter, 2);
    check_shared(c);
}

/* ---- the local transport: forked ranks ---------------------------------------------- */

typedef struct {
    _Atomic int counter;
    int ok[8];          /* per rank: 1 when its own checks passed */
    double elapsed[8];  /* per rank: seconds its failing call took */
    char msg[8][512];   /* per rank: the error it saw */
    cpu_set_t mask[8];  /* per rank: its CPUs */
    int bound[8];       /* per rank: agn_launch_bound() */
} shared_page;

static shared_page *page;
static int bind_ranks; /* agn_launch_opts.bind of run_ranks */

/* Runs BODY in W forked ranks; returns the launch status, message in ERR. */
static int run_ranks(int world, double timeout_s, size_t slot, void (*body)(agn_comm *), char *err,
                     size_t errlen)
{
    memset(page, 0, sizeof *page);
    agn_launch_opts o = {.ranks = world, .timeout_s = timeout_s, .slot_bytes = slot,
                         .grace_s = 2, .catch_stop = 1, .bind = bind_ranks};
    agn_comm *c;
    int status;
    int rc = agn_launch(&o, &c, &status);
    if (rc == AGN_LAUNCH_RANK) {
        int r = c->rank;
        failures = exit_code = 0;
        body(c);
        agn_comm_free(c);
        page->ok[r] = failures == 0;
        if (world > 1) _exit(failures || exit_code ? 1 : 0);
        return failures ? 1 : 0;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s", agn_errmsg());
        return -1;
    }
    snprintf(err, errlen, "%s", status ? agn_errmsg() : "");
    return status;
}

static void body_collectives(agn_comm *c) { collectives(c, &page->counter, 1); }
static void body_small_slot(agn_comm *c)
{
    /* the smallest slot, 64 bytes a rank: every buffer goes through many pieces */
    check_allreduce_f32(c, 1, 1);
    check_allreduce_f32(c, 33, 2);
    check_allreduce_f32(c, 1001, 3);
    check_allreduce_f64(c, 77, 4);
    check_broadcast(c, 999, c->world - 1);
    check_shards(c, 1, 5);
    check_shards(c, 1003, 6);
    check_inflight(c, 0);
}

/* The staged transport over the local one, with a copier that stands for a
 * device (plain copies, counted): the same checks, results bit-exact. */
static size_t staged_bytes;
static int copy_counted(void *ctx, void *dst, const void *src, size_t n)
{
    (void)ctx;
    memcpy(dst, src, n);
    staged_bytes += n;
    return 0;
}

static void body_staged(agn_comm *c)
{
    agn_comm_copier cp = {.ctx = NULL, .to_host = copy_counted, .from_host = copy_counted};
    agn_comm *s = agn_comm_staged_create(c, &cp);
    static const size_t sizes[] = {1, 3, 17, 1001, 65537};
    for (size_t i = 0; i < AGN_ARRAY_LEN(sizes); i++) check_allreduce_f32(s, sizes[i], 200 + i);
    check_allreduce_f64(s, 4097, 7);
    for (size_t i = 0; i < AGN_ARRAY_LEN(sizes); i++) check_shards(s, sizes[i], 300 + i);
    check_inflight(s, 0);
    check_broadcast(s, 12345, s->world - 1);
    check_barrier(s, &page->counter, 1);
    void *q = (void *)1;
    CHECK(agn_comm_shared(s, 64, &q) == 0 && q == NULL, "rank %d: the staged transport offered shared memory",
          c->rank);
    CHECK(staged_bytes > 0 || c->world == 1, "rank %d: nothing went through the staging copies", c->rank);
    agn_comm_free(s);
}

static void body_affinity(agn_comm *c)
{
    CHECK(sched_getaffinity(0, sizeof page->mask[c->rank], &page->mask[c->rank]) == 0, "rank %d: sched_getaffinity",
          c->rank);
    page->bound[c->rank] = agn_launch_bound();
}

/* Binding: agn_launch_cpus gives each rank a block of the CPUs this process
 * may use, every one of them once, and none when there are fewer CPUs than
 * ranks; forked with bind, each rank runs on its block (all CPUs when
 * unbound), without bind on all of them. */
static void test_bind(void)
{
    cpu_set_t all;
    CHECK(sched_getaffinity(0, sizeof all, &all) == 0, "sched_getaffinity");
    int n = CPU_COUNT(&all), cpus[CPU_SETSIZE];
    for (int w = 1; w <= n + 1 && w <= 64; w++) {
        cpu_set_t seen;
        CPU_ZERO(&seen);
        int total = 0;
        for (int r = 0; r < w; r++) {
            int k = agn_launch_cpus(r, w, cpus, CPU_SETSIZE);
            CHECK(w > n ? k == 0 : k >= 1, "W %d of %d CPUs: rank %d gets %d CPUs", w, n, r, k);
            for (int i = 0; i < k; i++) {
                CHECK(CPU_ISSET(cpus[i], &all) && !CPU_ISSET(cpus[i], &seen),
                      "W %d: rank %d gets CPU %d, not allowed or given twice", w, r, cpus[i]);
                CPU_SET(cpus[i], &seen);
                total++;
            }
        }
        CHECK(w > n || total == n, "W %d: the ranks get %d CPUs of %d", w, total, n);
    }
    char err[1024];
    for (int bind = 0; bind <= 1; bind++)
        for (int w = 2; w <= 3; w++) {
            bind_ranks = bind;
            int st = run_ranks(w, 20, 0, body_affinity, err, sizeof err);
            bind_ranks = 0;
            CHECK(st == 0, "bind %d W %d: status %d: %s", bind, w, st, err);
            for (int r = 0; r < w; r++) {
                int k = bind ? agn_launch_cpus(r, w, cpus, CPU_SETSIZE) : 0;
                cpu_set_t want;
                CPU_ZERO(&want);
                for (int i = 0; i < k; i++) CPU_SET(cpus[i], &want);
                if (k == 0) want = all;
                CHECK(CPU_EQUAL(&want, &page->mask[r]), "bind %d W %d: rank %d runs on %d CPUs, not its %d", bind,
                      w, r, CPU_COUNT(&page->mask[r]), CPU_COUNT(&want));
                CHECK(page->bound[r] == k, "bind %d W %d: rank %d says it is bound to %d CPUs, not %d", bind, w, r,
                      page->bound[r], k);
            }
        }
    printf("ok - binding on %d CPUs: blocks of W = 1..%d ranks cover every CPU once; forked ranks run on their "
           "block, unbound with more ranks than CPUs or without bind\n", n, n < 64 ? n + 1 : 64);
}

static void note_failure(agn_comm *c, int rc, double t0)
{
    page->elapsed[c->rank] = agn_now() - t0;
    if (rc != 0) exit_code = 1;
    snprintf(page->msg[c->rank], sizeof page->msg[c->rank], "%s", rc ? agn_errmsg() : "(no error)");
}

/* The last rank aborts; the others' next all-reduce must fail fast. */
static void body_abort(agn_comm *c)
{
    CHECK(agn_comm_barrier(c) == 0, "barrier: %s", agn_errmsg());
    if (c->rank == c->world - 1) {
        agn_comm_abort(c, "injected by t-comm");
        CHECK(agn_comm_barrier(c) != 0, "the aborting rank's own next call succeeded");
        exit_code = 1; /* as a program that aborts would */
        return;
    }
    float x[100] = {0};
    double t0 = agn_now();
    int rc = agn_comm_allreduce(c, x, 100, AGN_F32);
    note_failure(c, rc, t0);
    /* and every later call fails too, at once */
    CHECK(agn_comm_barrier(c) != 0, "a call after the abort succeeded");
}

/* Rank 1 is killed with SIGKILL; the others wait on it in an all-reduce. */
static void body_killed(agn_comm *c)
{
    CHECK(agn_comm_barrier(c) == 0, "barrier: %s", agn_errmsg());
    if (c->rank == 1) raise(SIGKILL);
    float x[1000] = {0};
    double t0 = agn_now();
    int rc = agn_comm_allreduce(c, x, 1000, AGN_F32);
    note_failure(c, rc, t0);
}

/* Rank 1 is stuck; rank 0 times out (timeout 0.5 s) and the rest follow. */
static void body_stuck(agn_comm *c)
{
    CHECK(agn_comm_barrier(c) == 0, "barrier: %s", agn_errmsg());
    if (c->rank == 1) {
        for (int i = 0; i < 100 && !agn_stop_requested(); i++) {
            struct timespec ts = {0, 50000000L};
            nanosleep(&ts, NULL);
        }
        return;
    }
    float x[10] = {0};
    double t0 = agn_now();
    int rc = agn_comm_allreduce(c, x, 10, AGN_F32);
    note_failure(c, rc, t0);
}

static int test_local(void)
{
    char err[1024];
    page = mmap(NULL, sizeof *page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("t-comm: mmap");
        return 1;
    }
    int small = getenv("AGN_TEST_SANITIZED") != NULL;

    for (int w = 1; w <= 4; w++) {
        double t0 = agn_now();
        int st = run_ranks(w, 20, 0, body_collectives, err, sizeof err);
        CHECK(st == 0, "W %d: collectives: status %d: %s", w, st, err);
        for (int r = 0; r < w; r++) CHECK(page->ok[r], "W %d: rank %d failed its checks", w, r);
        printf("ok - local W=%d: all-reduce and reduce-scatter bit-exact vs serial sum "
               "(sizes 1..1100003), all-gather, in-flight, broadcast, barrier, shared memory (%.2f s)\n", w, agn_now() - t0);
    }
    for (int w = 2; w <= (small ? 2 : 3); w++) {
        int st = run_ranks(w, 20, 64, body_small_slot, err, sizeof err);
        CHECK(st == 0, "W %d: 64-byte slots: status %d: %s", w, st, err);
        for (int r = 0; r < w; r++) CHECK(page->ok[r], "W %d (64-byte slots): rank %d failed", w, r);
        printf("ok - local W=%d: buffers split in pieces of 64 bytes a rank\n", w);
    }

    for (int w = 2; w <= 3; w++) {
        int st = run_ranks(w, 20, 0, body_staged, err, sizeof err);
        CHECK(st == 0, "W %d: staged: status %d: %s", w, st, err);
        for (int r = 0; r < w; r++) CHECK(page->ok[r], "W %d (staged): rank %d failed", w, r);
        printf("ok - staged over local W=%d: all-reduce, reduce-scatter, all-gather, broadcast, barrier through "
               "host staging copies, bit-exact\n", w);
    }

    test_bind();

    /* abort */
    int st = run_ranks(3, 20, 0, body_abort, err, sizeof err);
    CHECK(st == 1 && strstr(err, "rank 2 (pid") && strstr(err, "injected by t-comm"),
          "abort: launch status %d (%s), expected 1 naming rank 2 and its reason", st, err);
    for (int r = 0; r < 2; r++) {
        CHECK(strstr(page->msg[r], "injected by t-comm") && strstr(page->msg[r], "rank 2"),
              "abort: rank %d saw '%s'", r, page->msg[r]);
        CHECK(page->elapsed[r] < 1.0, "abort: rank %d waited %.3f s", r, page->elapsed[r]);
    }
    for (int r = 0; r < 3; r++) CHECK(page->ok[r], "abort: rank %d failed its checks", r);
    printf("ok - abort by rank 2 fails the others' waits in %.1f ms and %.1f ms: %s\n",
           1e3 * page->elapsed[0], 1e3 * page->elapsed[1], page->msg[0]);
    printf("ok - abort: the launcher says: %s\n", err);

    /* a rank killed */
    st = run_ranks(3, 20, 0, body_killed, err, sizeof err);
    CHECK(st == 1, "killed: launch status %d, expected 1", st);
    CHECK(strstr(err, "rank 1") && strstr(err, "SIGKILL"), "killed: launcher said '%s'", err);
    for (int r = 0; r < 3; r += 2) {
        CHECK(strstr(page->msg[r], "rank 1") && strstr(page->msg[r], "SIGKILL"),
              "killed: rank %d saw '%s'", r, page->msg[r]);
        CHECK(page->elapsed[r] < 1.0, "killed: rank %d waited %.3f s", r, page->elapsed[r]);
    }
    printf("ok - rank 1 killed: others fail in %.1f ms and %.1f ms; launcher: %s\n",
           1e3 * page->elapsed[0], 1e3 * page->elapsed[2], err);

    /* a stuck rank: timeout */
    double t0 = agn_now();
    st = run_ranks(3, 0.5, 0, body_stuck, err, sizeof err);
    double total = agn_now() - t0;
    CHECK(st == 1, "stuck: launch status %d, expected 1", st);
    CHECK(strstr(page->msg[0], "timed out") && strstr(page->msg[2], "timed out"),
          "stuck: ranks saw '%s' and '%s'", page->msg[0], page->msg[2]);
    CHECK(strstr(err, "timed out after 0.5 s waiting for rank(s) 1"), "stuck: the launcher said '%s'", err);
    for (int r = 0; r < 3; r += 2)
        CHECK(page->elapsed[r] > 0.4 && page->elapsed[r] < 2.0, "stuck: rank %d failed after %.3f s",
              r, page->elapsed[r]);
    CHECK(total < 3.0, "stuck: the job took %.1f s", total);
    for (int r = 0; r < 3; r++) CHECK(page->ok[r], "stuck: rank %d failed its checks", r);
    printf("ok - stuck rank: timed out after %.3f s: %s (job %.1f s)\n", page->elapsed[0],
           page->msg[0], total);

    munmap(page, sizeof *page);
    return failures ? 1 : 0;
}

/* ---- mpi ------------------------------------------------------------------------ */

static int test_mpi(int stuck)
{
    agn_launch_opts o = {.ranks = 0, .timeout_s = stuck ? 1.0 : 30};
    agn_comm *c;
    int status;
    if (!agn_mpi_launched(NULL, NULL)) {
        fprintf(stderr, "t-comm: --mpi: not started by mpirun\n");
        return 1;
    }
    if (agn_launch(&o, &c, &status) != AGN_LAUNCH_RANK) {
        fprintf(stderr, "t-comm: %s\n", agn_errmsg());
        return 1;
    }
    if (strcmp(c->ops->name, "mpi") != 0 || c->world < 2) {
        fprintf(stderr, "t-comm: transport %s, world %d\n", c->ops->name, c->world);
        return 1;
    }
    if (stuck) {
        if (c->rank == 1) {
            sleep(20); /* mpirun's abort ends this */
            return 0;
        }
        float x[4] = {0};
        double t0 = agn_now();
        if (agn_comm_allreduce(c, x, 4, AGN_F32) == 0) {
            fprintf(stderr, "t-comm: rank 0: the all-reduce with a sleeping rank succeeded\n");
            return 1;
        }
        fprintf(stderr, "t-comm: rank %d: %s (after %.2f s)\n", c->rank, agn_errmsg(), agn_now() - t0);
        agn_comm_abort(c, agn_errmsg());
        return 1;
    }
    collectives(c, NULL, 1);
    printf("%s - mpi rank %d of %d (local %d of %d): all-reduce and reduce-scatter bit-exact vs "
           "serial sum, all-gather, in-flight, broadcast, barrier\n", failures ? "not ok" : "ok", c->rank, c->world, c->local_rank,
           c->local_world);
    agn_comm_free(c);
    return failures ? 1 : 0;
}

/* ---- serve: the trainer's loop, for the launcher's shell test ----------------------- */

static int serve(int n, int fail_rank, long fail_after)
{
    agn_launch_opts o = {.ranks = n, .timeout_s = 10, .grace_s = 2, .stop_grace_s = 10, .catch_stop = 1};
    agn_comm *c;
    int status;
    int rc = agn_launch(&o, &c, &status);
    if (rc < 0) {
        fprintf(stderr, "t-comm: %s\n", agn_errmsg());
        return 1;
    }
    if (rc == AGN_LAUNCH_DONE) {
        if (status) fprintf(stderr, "t-comm: %s\n", agn_errmsg());
        return status;
    }
    char name[64];
    snprintf(name, sizeof name, "rank-%d.pid", c->rank);
    FILE *f = fopen(name, "w");
    if (f) {
        fprintf(f, "%ld\n", (long)getpid());
        fclose(f);
    }
    float x[4096];
    int code = 0;
    for (long it = 0;; it++) {
        if (c->rank == fail_rank && it == fail_after) {
            fprintf(stderr, "t-comm: rank %d: injected failure at iteration %ld\n", c->rank, it);
            agn_comm_free(c);
            return 1;
        }
        for (int i = 0; i < 4096; i++) x[i] = (float)(c->rank + i);
        if (agn_comm_allreduce(c, x, 4096, AGN_F32) != 0) {
            fprintf(stderr, "t-comm: rank %d: %s\n", c->rank, agn_errmsg());
            code = 1;
            break;
        }
        /* stop together: every rank learns at the same iteration */
        float stop = (float)agn_stop_requested();
        if (agn_comm_allreduce(c, &stop, 1, AGN_F32) != 0) {
            fprintf(stderr, "t-comm: rank %d: %s\n", c->rank, agn_errmsg());
            code = 1;
            break;
        }
        if (stop > 0) {
            if (c->rank == 0) printf("stopped at iteration %ld\n", it);
            code = agn_stop_requested() ? 128 + agn_stop_requested() : 0;
            break;
        }
        struct timespec ts = {0, 2000000L};
        nanosleep(&ts, NULL);
    }
    agn_comm_free(c);
    return code;
}

/* ---- launcher detection ------------------------------------------------------------ */

/* agn_mpi_launched() reads what mpirun (Open MPI, PMIx), Hydra and srun set;
 * these are the launchers' documented variables, set here by hand (no
 * launcher needed): each alone, broken values, and none. */
static void test_detect(void)
{
    static const char *const all[] = {"OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "PMIX_RANK",
                                      "PMI_RANK", "PMI_SIZE", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS",
                                      "PMI_FD"};
    static const struct {
        const char *env[4]; /* NAME=VALUE pairs, NULL-terminated */
        int launched, rank, world;
        const char *what;
    } cases[] = {
        {{"OMPI_COMM_WORLD_RANK=1", "OMPI_COMM_WORLD_SIZE=2"}, 1, 1, 2, "Open MPI mpirun"},
        {{"PMIX_RANK=3", "OMPI_COMM_WORLD_SIZE=4"}, 1, 3, 4, "Open MPI with PMIx"},
        {{"PMI_RANK=0", "PMI_SIZE=3"}, 1, 0, 3, "MPICH Hydra"},
        {{"SLURM_PROCID=5", "SLURM_STEP_NUM_TASKS=8"}, 1, 5, 8, "srun"},
        {{"SLURM_PROCID=0"}, 0, 0, 0, "a Slurm batch script (no job step)"},
        {{"SLURM_PROCID=0", "SLURM_STEP_NUM_TASKS=1"}, 0, 0, 0, "a job step of one task"},
        {{"PMI_RANK=2", "PMI_SIZE=2"}, 0, 0, 0, "rank not below the size"},
        {{"OMPI_COMM_WORLD_RANK=x", "OMPI_COMM_WORLD_SIZE=2"}, 0, 0, 0, "a rank that is no number"},
        {{NULL}, 0, 0, 0, "no launcher"},
    };
    for (size_t i = 0; i < AGN_ARRAY_LEN(cases); i++) {
        for (size_t k = 0; k < AGN_ARRAY_LEN(all); k++) unsetenv(all[k]);
        for (int k = 0; k < 4 && cases[i].env[k]; k++) {
            char buf[128];
            snprintf(buf, sizeof buf, "%s", cases[i].env[k]);
            char *eq = strchr(buf, '=');
            *eq = '\0';
            setenv(buf, eq + 1, 1);
        }
        int r = -1, w = -1;
        int got = agn_mpi_launched(&r, &w);
        CHECK(got == cases[i].launched, "%s: agn_mpi_launched says %d", cases[i].what, got);
        if (got && cases[i].launched)
            CHECK(r == cases[i].rank && w == cases[i].world, "%s: rank %d of %d, not %d of %d", cases[i].what, r, w,
                  cases[i].rank, cases[i].world);
    }
    /* srun without a PMI server (--mpi=none): refused, saying how to launch;
     * with one (pmix, pmi2) or under mpirun: accepted */
    static const struct {
        const char *env[4];
        int refused;
        const char *launcher, *what;
    } checks[] = {
        {{"SLURM_PROCID=1", "SLURM_STEP_NUM_TASKS=2"}, 1, "srun", "srun --mpi=none"},
        {{"SLURM_PROCID=1", "SLURM_STEP_NUM_TASKS=2", "PMIX_RANK=1"}, 0, "srun", "srun --mpi=pmix"},
        {{"SLURM_PROCID=1", "SLURM_STEP_NUM_TASKS=2", "PMI_FD=5", "PMI_RANK=1"}, 0, "srun", "srun --mpi=pmi2"},
        {{"OMPI_COMM_WORLD_RANK=0", "OMPI_COMM_WORLD_SIZE=2", "SLURM_PROCID=0", "SLURM_STEP_NUM_TASKS=2"}, 0,
         "Open MPI's mpirun", "mpirun in a Slurm allocation"},
        {{NULL}, 0, NULL, "no launcher"},
    };
    for (size_t i = 0; i < AGN_ARRAY_LEN(checks); i++) {
        for (size_t k = 0; k < AGN_ARRAY_LEN(all); k++) unsetenv(all[k]);
        for (int k = 0; k < 4 && checks[i].env[k]; k++) {
            char buf[128];
            snprintf(buf, sizeof buf, "%s", checks[i].env[k]);
            char *eq = strchr(buf, '=');
            *eq = '\0';
            setenv(buf, eq + 1, 1);
        }
        int rc = agn_mpi_check_launch();
        CHECK(rc == (checks[i].refused ? -1 : 0), "%s: agn_mpi_check_launch returned %d", checks[i].what, rc);
        if (rc != 0)
            CHECK(strstr(agn_errmsg(), "srun started 2 tasks without MPI support") &&
                      strstr(agn_errmsg(), "srun --mpi=pmix") && strstr(agn_errmsg(), "mpirun"),
                  "%s: the message does not say how to launch: %s", checks[i].what, agn_errmsg());
        const char *by = agn_mpi_launcher();
        CHECK(checks[i].launcher ? by && strcmp(by, checks[i].launcher) == 0 : by == NULL,
              "%s: launcher '%s', expected '%s'", checks[i].what, by ? by : "(none)",
              checks[i].launcher ? checks[i].launcher : "(none)");
    }
    for (size_t k = 0; k < AGN_ARRAY_LEN(all); k++) unsetenv(all[k]);
    printf("%s - launcher detection: Open MPI, PMIx, Hydra, srun; none in a batch script, a step of one "
           "task, with a rank out of range or not a number; srun without PMI refused, with pmix/pmi2 "
           "or under mpirun accepted\n", failures ? "not ok" : "ok");
}

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 1) {
        test_detect();
        return test_local();
    }
    if (strcmp(argv[1], "--mpi") == 0) return test_mpi(0);
    if (strcmp(argv[1], "--mpi-timeout") == 0) return test_mpi(1);
    if (strcmp(argv[1], "--serve") == 0 && argc >= 3) {
        long n, fail_rank = -1, fail_after = -1;
        if (agn_parse_long(argv[2], 1, 64, "ranks", &n) != 0) {
            fprintf(stderr, "t-comm: %s\n", agn_errmsg());
            return 2;
        }
        for (int i = 3; i + 1 < argc; i += 2) {
            if (strcmp(argv[i], "--fail-rank") == 0) agn_parse_long(argv[i + 1], 0, 63, "rank", &fail_rank);
            else if (strcmp(argv[i], "--fail-after") == 0)
                agn_parse_long(argv[i + 1], 0, 1L << 30, "iterations", &fail_after);
            /* --marker WORD: only there for pgrep */
        }
        return serve((int)n, (int)fail_rank, fail_after);
    }
    fprintf(stderr, "usage: t-comm [--mpi | --mpi-timeout | --serve N [--fail-rank R --fail-after K] "
                    "[--marker WORD]]\n");
    return 2;
}
