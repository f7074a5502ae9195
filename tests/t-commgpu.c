/* t-commgpu.c: the parts of the GPU transports (comm_gpu.h) that need no
 * GPU, on the CPU:
 *
 *   t-commgpu            the bootstrap message (round trip; every byte of it
 *                        corrupted in turn; wrong sizes, magic, status, world
 *                        and NCCL versions; an unterminated message), the
 *                        NCCL id exchange over the local transport with
 *                        W = 1..4 forked ranks (every rank gets rank 0's id;
 *                        rank 0 failing to make one; one rank with another
 *                        NCCL version), the wait state machine on a fake
 *                        clock (done, timeout, abort, error, backoff), the
 *                        choice of device, the routing rule, the shards,
 *                        and the GPU probe in a child process.
 *   t-commgpu --mpi [fail]
 *                        the id exchange as one rank of an MPI job (run under
 *                        mpirun by tests/commgpu-mpi.sh); with fail, rank 0
 *                        cannot make the id and every rank must say so.
 *
 * The fake NCCL id is a hash of a salt, so every rank knows what it must
 * receive. */
#include "config.h"
#include "comm.h"
#include "comm_gpu.h"
#include "launch.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                  \
    do {                                                                  \
        if (!(cond)) {                                                    \
            fprintf(stderr, "t-commgpu: %s:%d: ", __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
            failures++;                                                   \
        }                                                                 \
    } while (0)

#define NCCL_V 22809 /* 2.28.9 */

static void fake_id(unsigned char id[AGN_NCCL_ID_BYTES], uint64_t salt)
{
    uint64_t x = salt;
    for (int i = 0; i < AGN_NCCL_ID_BYTES; i++) {
        x = x * 6364136223846793005ULL + 1442695040888963407ULL;
        id[i] = (unsigned char)(x >> 56);
    }
}

typedef struct {
    int fail;      /* make_id fails */
    uint64_t salt;
} maker;

static int make_id(void *ctx, unsigned char id[AGN_NCCL_ID_BYTES])
{
    maker *m = ctx;
    if (m->fail) return agn_seterr("ncclGetUniqueId: injected failure");
    fake_id(id, m->salt);
    return 0;
}

/* ---- the message ------------------------------------------------------------------ */

static void test_message(void)
{
    unsigned char msg[AGN_NCCL_BOOT_BYTES], id[AGN_NCCL_ID_BYTES], got[AGN_NCCL_ID_BYTES];
    fake_id(id, 7);
    agn_nccl_boot_pack(msg, 4, NCCL_V, id, NULL);
    CHECK(agn_nccl_boot_unpack(msg, sizeof msg, 4, NCCL_V, got) == 0, "round trip: %s", agn_errmsg());
    CHECK(memcmp(id, got, sizeof id) == 0, "round trip: the id differs");
    /* another patch level of NCCL is accepted, another minor is not */
    CHECK(agn_nccl_boot_unpack(msg, sizeof msg, 4, NCCL_V + 1, got) == 0, "patch level: %s", agn_errmsg());
    CHECK(agn_nccl_boot_unpack(msg, sizeof msg, 4, 22703, got) != 0 &&
              strstr(agn_errmsg(), "NCCL 2.27.3 here, 2.28.9 on rank 0"),
          "version mismatch: '%s'", agn_errmsg());
    CHECK(agn_nccl_boot_unpack(msg, sizeof msg, 3, NCCL_V, got) != 0 && strstr(agn_errmsg(), "rank 0 has 4 ranks"),
          "world mismatch: '%s'", agn_errmsg());
    size_t sizes[] = {0, 1, AGN_NCCL_BOOT_BYTES - 1, AGN_NCCL_BOOT_BYTES + 1};
    for (size_t i = 0; i < AGN_ARRAY_LEN(sizes); i++)
        CHECK(agn_nccl_boot_unpack(msg, sizes[i], 4, NCCL_V, got) != 0 && strstr(agn_errmsg(), "bytes"),
              "a message of %zu bytes was accepted", sizes[i]);
    /* every byte corrupted in turn: refused (magic or CRC), never a wrong id */
    int bad = 0;
    for (size_t i = 0; i < sizeof msg; i++) {
        unsigned char c[AGN_NCCL_BOOT_BYTES];
        memcpy(c, msg, sizeof c);
        c[i] ^= (unsigned char)(1 + i % 255);
        if (agn_nccl_boot_unpack(c, sizeof c, 4, NCCL_V, got) == 0) bad++;
    }
    CHECK(bad == 0, "%d single-byte corruptions were accepted", bad);
    memset(msg, 0, sizeof msg);
    CHECK(agn_nccl_boot_unpack(msg, sizeof msg, 4, NCCL_V, got) != 0 && strstr(agn_errmsg(), "magic"),
          "zeros: '%s'", agn_errmsg());
    /* rank 0's failure travels with its message */
    agn_nccl_boot_pack(msg, 2, NCCL_V, NULL, "no network interface");
    CHECK(agn_nccl_boot_unpack(msg, sizeof msg, 2, NCCL_V, got) != 0 &&
              strcmp(agn_errmsg(), "rank 0 could not create the NCCL unique id: no network interface") == 0,
          "failure message: '%s'", agn_errmsg());
    /* adversarial, with a valid CRC: an unterminated message, a status of 2,
     * status 0 with text (the CRC is recomputed by packing a template) */
    char longwhy[1000];
    memset(longwhy, 'x', sizeof longwhy - 1);
    longwhy[sizeof longwhy - 1] = '\0';
    agn_nccl_boot_pack(msg, 2, NCCL_V, NULL, longwhy);
    CHECK(agn_nccl_boot_unpack(msg, sizeof msg, 2, NCCL_V, got) != 0 && strlen(agn_errmsg()) < 512,
          "a long message: '%.80s...'", agn_errmsg());
    printf("ok - bootstrap message: round trip, versions, world, sizes, %zu corruptions refused, failures\n",
           sizeof msg);
}

/* ---- the exchange over forked ranks ------------------------------------------------------ */

#define MAXW 4
typedef struct {
    int rc[MAXW];
    char err[MAXW][512];
    unsigned char id[MAXW][AGN_NCCL_ID_BYTES];
} boot_page;

/* W ranks exchange the id; rank FAIL_RANK's make_id fails (only rank 0
 * makes one); rank VRANK runs another NCCL minor version. */
static int boot_forked(int W, int fail0, int vrank, boot_page *page)
{
    memset(page, 0, sizeof *page);
    agn_launch_opts o = {.ranks = W, .timeout_s = 20};
    agn_comm *c;
    int status;
    int rc = agn_launch(&o, &c, &status);
    if (rc == AGN_LAUNCH_RANK) {
        maker m = {.fail = fail0, .salt = 99};
        int r = c->rank;
        int version = r == vrank ? NCCL_V - 100 : NCCL_V;
        page->rc[r] = agn_nccl_bootstrap(c, version, make_id, &m, page->id[r]);
        snprintf(page->err[r], sizeof page->err[r], "%s", page->rc[r] ? agn_errmsg() : "");
        agn_comm_free(c);
        if (W == 1) return 0; /* no fork: this is the test itself */
        fflush(NULL);
        _exit(0);
    }
    if (rc != AGN_LAUNCH_DONE || status != 0) {
        CHECK(0, "W %d: the ranks did not all exit 0 (%s)", W, agn_errmsg());
        return -1;
    }
    return 0;
}

static void test_exchange(void)
{
    boot_page *page = mmap(NULL, sizeof *page, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("t-commgpu: mmap");
        exit(99);
    }
    unsigned char want[AGN_NCCL_ID_BYTES];
    fake_id(want, 99);
    for (int W = 1; W <= MAXW; W++) {
        if (boot_forked(W, 0, -1, page) != 0) continue;
        for (int r = 0; r < W; r++) {
            CHECK(page->rc[r] == 0, "W %d rank %d: %s", W, r, page->err[r]);
            CHECK(memcmp(page->id[r], want, sizeof want) == 0, "W %d rank %d: not rank 0's id", W, r);
        }
    }
    printf("ok - the id reaches every rank through the shared segment, W = 1..%d\n", MAXW);

    if (boot_forked(3, 1, -1, page) == 0)
        for (int r = 0; r < 3; r++)
            CHECK(page->rc[r] != 0 && strcmp(page->err[r], "rank 0 could not create the NCCL unique id: "
                                                            "ncclGetUniqueId: injected failure") == 0,
                  "rank 0 fails: rank %d said '%s'", r, page->err[r]);
    printf("ok - rank 0 failing to make the id: every rank fails with its message\n");

    if (boot_forked(3, 0, 2, page) == 0) {
        CHECK(page->rc[2] != 0 && strstr(page->err[2], "NCCL 2.27.9 here, 2.28.9 on rank 0"),
              "version: rank 2 said '%s'", page->err[2]);
        for (int r = 0; r < 2; r++)
            CHECK(page->rc[r] != 0 && strcmp(page->err[r], "NCCL bootstrap failed on rank 2 (see its message)") == 0,
                  "version: rank %d said '%s'", r, page->err[r]);
    }
    printf("ok - a rank with another NCCL version: it says why, the others name it\n");
    munmap(page, sizeof *page);
}

/* ---- the wait state machine, on a fake clock ------------------------------------------------ */

typedef struct {
    double t;          /* the fake clock */
    double done_at, error_at, abort_at;
    long polls, sleeps, max_sleep, zero_sleeps_after_spin;
    double slept;
} fake;

static void f_poll(void *ctx, agn_gpu_poll *p)
{
    fake *f = ctx;
    f->polls++;
    f->t += 1e-6; /* a poll costs a microsecond */
    if (f->t >= f->done_at) p->done = 1;
    if (f->t >= f->error_at) {
        p->error = 6;
        p->error_msg = "NCCL: remote process exited or there was a network error";
    }
    if (f->t >= f->abort_at) p->aborted = "rank 1 (pid 42) was killed by SIGKILL";
}
static double f_now(void *ctx) { return ((fake *)ctx)->t; }
static void f_sleep(void *ctx, long ns)
{
    fake *f = ctx;
    f->sleeps++;
    if (ns > f->max_sleep) f->max_sleep = ns;
    f->t += ns * 1e-9;
    f->slept += ns * 1e-9;
}

static int run_fake(fake *f, double timeout, const char *what)
{
    agn_gpu_wait w;
    agn_gpu_wait_begin(&w, 3, what, timeout, f->t);
    agn_gpu_poller p = {f_poll, f_now, f_sleep, f};
    return agn_gpu_wait_loop(&w, &p);
}

static void test_wait(void)
{
    fake f = {.done_at = 0.0005, .error_at = 1e9, .abort_at = 1e9};
    CHECK(run_fake(&f, 2, "all-reduce") == 0, "done: %s", agn_errmsg());
    CHECK(f.t >= 0.0005 && f.t < 0.0005 + AGN_GPU_SLEEP_MAX_NS * 1e-9 + 1e-5, "done at 0.5 ms noticed at %g s", f.t);
    CHECK(f.max_sleep <= AGN_GPU_SLEEP_MAX_NS, "slept %ld ns at once", f.max_sleep);

    fake g = {.done_at = 1e9, .error_at = 1e9, .abort_at = 1e9};
    CHECK(run_fake(&g, 2, "nccl all-reduce #5 of 100 elements") != 0 &&
              strcmp(agn_errmsg(), "rank 3: nccl all-reduce #5 of 100 elements timed out after 2 s (see "
                                   "--comm-timeout)") == 0,
          "timeout: '%s'", agn_errmsg());
    CHECK(g.t >= 2 && g.t <= 2 + 1e-5, "the timeout of 2 s fired at %.6f s", g.t);
    CHECK(g.max_sleep == AGN_GPU_SLEEP_MAX_NS, "longest sleep %ld ns", g.max_sleep);
    /* the spin, then the sleeps fill the time: a bounded number of polls */
    CHECK(g.polls < 2 / (AGN_GPU_SLEEP_MAX_NS * 1e-9) + AGN_GPU_SPIN_S / 1e-6 + 200, "%ld polls in 2 s", g.polls);

    fake a = {.done_at = 1e9, .error_at = 1e9, .abort_at = 1.0};
    CHECK(run_fake(&a, 300, "reduce-scatter") != 0 &&
              strcmp(agn_errmsg(), "rank 3: reduce-scatter aborted: rank 1 (pid 42) was killed by SIGKILL") == 0,
          "abort: '%s'", agn_errmsg());
    CHECK(a.t >= 1.0 && a.t < 1.0 + AGN_GPU_SLEEP_MAX_NS * 1e-9 + 1e-5, "abort at 1 s noticed at %g s", a.t);

    fake e = {.done_at = 1e9, .error_at = 0.1, .abort_at = 1e9};
    CHECK(run_fake(&e, 300, "all-gather") != 0 &&
              strcmp(agn_errmsg(), "rank 3: all-gather failed: NCCL: remote process exited or there was a "
                                   "network error") == 0,
          "error: '%s'", agn_errmsg());

    /* completion wins over a deadline passed at the same poll, an error over completion */
    agn_gpu_wait w;
    long ns;
    agn_gpu_wait_begin(&w, 0, "x", 1, 0);
    agn_gpu_poll p = {.done = 1};
    CHECK(agn_gpu_wait_step(&w, &p, 5, &ns) == AGN_WAIT_DONE, "done past the deadline");
    p.error = 1;
    p.error_msg = "boom";
    CHECK(agn_gpu_wait_step(&w, &p, 0.5, &ns) == AGN_WAIT_FAILED, "an error with done");
    /* the backoff: spin, then doubling from the least sleep to the most,
     * never past the deadline */
    agn_gpu_wait_begin(&w, 0, "x", 1, 0);
    agn_gpu_poll idle = {0};
    CHECK(agn_gpu_wait_step(&w, &idle, 0, &ns) == AGN_WAIT_AGAIN && ns == 0, "spin first: %ld", ns);
    CHECK(agn_gpu_wait_step(&w, &idle, AGN_GPU_SPIN_S / 2, &ns) == AGN_WAIT_AGAIN && ns == 0, "still spinning: %ld", ns);
    long want = AGN_GPU_SLEEP_MIN_NS;
    for (int i = 0; i < 12; i++) {
        CHECK(agn_gpu_wait_step(&w, &idle, AGN_GPU_SPIN_S + 0.001, &ns) == AGN_WAIT_AGAIN && ns == want,
              "backoff step %d: %ld ns, expected %ld", i, ns, want);
        want = want * 2 > AGN_GPU_SLEEP_MAX_NS ? AGN_GPU_SLEEP_MAX_NS : want * 2;
    }
    CHECK(want == AGN_GPU_SLEEP_MAX_NS, "the backoff never reached its bound");
    CHECK(agn_gpu_wait_step(&w, &idle, 1 - 1e-6, &ns) == AGN_WAIT_AGAIN && ns <= 1001, "near the deadline: %ld ns", ns);
    /* a timeout <= 0 is the default */
    agn_gpu_wait_begin(&w, 0, "x", 0, 10);
    CHECK(w.deadline == 10 + AGN_COMM_TIMEOUT_DEFAULT, "default timeout: deadline %g", w.deadline);
    printf("ok - wait: done, timeout at 2 s (%ld polls), abort, NCCL error, precedence, backoff\n", g.polls);
}

/* ---- devices, routing, shards ------------------------------------------------------------ */

static void test_pick(void)
{
    struct { int lr, lw, vis, share, want; } t[] = {
        {0, 1, 1, 0, 0}, {0, 1, 8, 0, 0}, {3, 4, 4, 0, 3}, {3, 4, 8, 0, 3},
        {1, 2, 1, 0, 0},   /* one GPU a process (srun --gpus-per-task=1) */
        {2, 3, 2, 0, -1},  /* three ranks, two GPUs, NCCL: refused */
        {2, 3, 2, 1, 0},   /* staged: shared round robin */
        {1, 2, 1, 1, 0},   {0, 1, 0, 0, -1}, {0, 1, 0, 1, -1}, {2, 2, 2, 0, -1},
    };
    for (size_t i = 0; i < AGN_ARRAY_LEN(t); i++) {
        int dev = 42;
        int rc = agn_gpu_pick(t[i].lr, t[i].lw, t[i].vis, t[i].share, &dev);
        CHECK((t[i].want < 0) == (rc != 0) && dev == t[i].want, "pick(%d of %d, %d GPUs, share %d): rc %d device %d, "
              "expected %d", t[i].lr, t[i].lw, t[i].vis, t[i].share, rc, dev, t[i].want);
    }
    int dev;
    CHECK(agn_gpu_pick(2, 3, 2, 0, &dev) != 0 && strstr(agn_errmsg(), "NCCL cannot put two ranks on one GPU") &&
              strstr(agn_errmsg(), "--transport local"),
          "the refusal says why and what to do: '%s'", agn_errmsg());
    CHECK(agn_gpu_pick(0, 1, 0, 0, &dev) != 0 && strstr(agn_errmsg(), "no usable GPU"), "no GPU: '%s'", agn_errmsg());

    CHECK(agn_gpu_route(AGN_MEM_DEVICE, 10) == 1 && agn_gpu_route(AGN_MEM_MANAGED, 10) == 1, "device memory to NCCL");
    CHECK(agn_gpu_route(AGN_MEM_HOST, 10) == 0 && agn_gpu_route(AGN_MEM_PINNED, 10) == 0, "host memory to the host");
    CHECK(agn_gpu_route(AGN_MEM_DEVICE, 0) == 0, "nothing to move: the host");

    /* the even case is exactly where agn_comm_shard cuts NCCL's blocks */
    for (int W = 1; W <= 8; W++)
        for (size_t n = 0; n < 100; n++) {
            int even = 1;
            for (int r = 0; r < W; r++) {
                size_t lo, hi;
                agn_comm_shard(n, W, r, &lo, &hi);
                if (lo != (size_t)r * (n / (size_t)W) || hi - lo != n / (size_t)W) even = 0;
            }
            CHECK(agn_nccl_even(n, W) == even, "even(%zu, %d) = %d, the shards say %d", n, W, agn_nccl_even(n, W), even);
        }
    printf("ok - device choice, routing rule, NCCL's even shards\n");
}

static void test_probe(void)
{
    int count = -1;
    char desc[1024];
    CHECK(agn_gpu_probe(&count, desc, sizeof desc) == 0, "probe: %s", agn_errmsg());
    CHECK(count >= 0 && desc[0], "probe: count %d, '%s'", count, desc);
    /* without the driver's device nodes there is no GPU to find */
    if (access("/dev/nvidiactl", F_OK) != 0)
        CHECK(count == 0 && strncmp(desc, "none (", 6) == 0, "no /dev/nvidiactl, yet the probe found %d GPU(s): %s",
              count, desc);
    printf("ok - GPU probe in a child process: %d GPU(s): %s\n", count, desc);
}

/* ---- under mpirun ----------------------------------------------------------------------------- */

static int test_mpi(int fail0)
{
    agn_comm *c = agn_comm_mpi_create(20);
    if (!c) {
        fprintf(stderr, "t-commgpu: %s\n", agn_errmsg());
        return 1;
    }
    maker m = {.fail = fail0, .salt = 5};
    unsigned char id[AGN_NCCL_ID_BYTES], want[AGN_NCCL_ID_BYTES];
    fake_id(want, 5);
    int rc = agn_nccl_bootstrap(c, NCCL_V, make_id, &m, id);
    if (fail0)
        CHECK(rc != 0 && strcmp(agn_errmsg(), "rank 0 could not create the NCCL unique id: ncclGetUniqueId: "
                                              "injected failure") == 0,
              "mpi rank %d: '%s'", c->rank, rc ? agn_errmsg() : "success");
    else
        CHECK(rc == 0 && memcmp(id, want, sizeof id) == 0, "mpi rank %d: %s", c->rank, rc ? agn_errmsg() : "wrong id");
    int rank = c->rank, world = c->world;
    agn_comm_free(c);
    if (failures == 0) printf("ok - mpi rank %d of %d: NCCL bootstrap%s\n", rank, world, fail0 ? " failure reported" : "");
    return failures ? 1 : 0;
}

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc >= 2 && strcmp(argv[1], "--mpi") == 0) return test_mpi(argc >= 3 && strcmp(argv[2], "fail") == 0);
    if (argc != 1) {
        fprintf(stderr, "usage: t-commgpu [--mpi [fail]]\n");
        return 2;
    }
    test_message();
    test_wait();
    test_pick();
    test_probe();
    test_exchange();
    if (failures) fprintf(stderr, "t-commgpu: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
