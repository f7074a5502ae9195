/* t-commbench-mem.c: agn_bench_run with its buffer out of host memory
 * (agn_bench_opts.mem, as agn-bench-comm -g puts it in device memory), on
 * the CPU: a stand-in "device" (a separate heap buffer, reached only
 * through the agn_bench_mem calls, which check the pointers they are given
 * and count themselves), so that the path is tested where no GPU is:
 *  - 2 forked ranks (local transport), every collective, f32 and f64: every
 *    result right (so the collectives ran on the device buffer: the host
 *    buffer holds the input when the result is copied back), one buffer
 *    allocated and released, one copy in and one out a row, the timed
 *    buffer zeroed once a row, a sync before the clock starts and after the
 *    last timed call;
 *  - the check still catches a corrupted result there (--corrupt);
 *  - a failing copy or allocation: -1 with its message, nothing leaked;
 *  - one rank: a transport with collectives (nccl at -g 1) gets every
 *    call (checked + warm-up + timed a row); the none transport none. */
#include "config.h"
#include "commbench.h"
#include "launch.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "t-commbench-mem: %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            failures++;                                                      \
        }                                                                    \
    } while (0)

/* ---- the stand-in device ----------------------------------------------------------- */

typedef struct {
    unsigned char *dev;  /* the one buffer alloc gave */
    size_t dev_bytes;
    long allocs, releases, from, to, zeros, syncs, bad_ptr;
    long fail_to_at;     /* > 0: the fail_to_at-th to_host fails */
    int fail_alloc;
} fake_dev;

static int inside(const fake_dev *f, const void *p, size_t bytes)
{
    const unsigned char *q = p;
    return f->dev && q >= f->dev && q + bytes <= f->dev + f->dev_bytes;
}

/* DEV must be in the device buffer, HOST (may be NULL) outside it */
static int in_dev(fake_dev *f, const void *dev, size_t bytes, const void *host)
{
    int ok = inside(f, dev, bytes) && !(host && inside(f, host, 0));
    if (!ok) f->bad_ptr++;
    return ok;
}

static void *f_alloc(void *ctx, size_t bytes)
{
    fake_dev *f = ctx;
    if (f->fail_alloc) {
        agn_seterr("out of stand-in device memory (%zu bytes)", bytes);
        return NULL;
    }
    f->allocs++;
    f->dev = agn_xmalloc(bytes);
    memset(f->dev, 0xa5, bytes); /* not zero, not the input */
    f->dev_bytes = bytes;
    return f->dev;
}

static void f_release(void *ctx, void *p)
{
    fake_dev *f = ctx;
    if (p != f->dev) f->bad_ptr++;
    f->releases++;
    free(p);
    f->dev = NULL;
}

static int f_from(void *ctx, void *dev, const void *host, size_t bytes)
{
    fake_dev *f = ctx;
    if (!in_dev(f, dev, bytes, host)) return agn_seterr("from_host: bad pointers");
    f->from++;
    memcpy(dev, host, bytes);
    return 0;
}

static int f_to(void *ctx, void *host, const void *dev, size_t bytes)
{
    fake_dev *f = ctx;
    if (f->fail_to_at > 0 && f->to + 1 == f->fail_to_at) return agn_seterr("stand-in copy to the host failed");
    if (!in_dev(f, dev, bytes, host)) return agn_seterr("to_host: bad pointers");
    f->to++;
    memcpy(host, dev, bytes);
    return 0;
}

static int f_zero(void *ctx, void *dev, size_t bytes)
{
    fake_dev *f = ctx;
    if (!in_dev(f, dev, bytes, NULL)) return agn_seterr("zero: bad pointer");
    f->zeros++;
    memset(dev, 0, bytes);
    return 0;
}

static int f_sync(void *ctx)
{
    ((fake_dev *)ctx)->syncs++;
    return 0;
}

static agn_bench_mem fake_mem(fake_dev *f)
{
    memset(f, 0, sizeof *f);
    return (agn_bench_mem){.ctx = f, .alloc = f_alloc, .release = f_release, .from_host = f_from,
                           .to_host = f_to, .zero = f_zero, .sync = f_sync};
}

/* ---- rows --------------------------------------------------------------------------- */

typedef struct {
    long rows, wrong_rows, unchecked;
    char transport[16];
} seen;

static int emit(const agn_bench_row *r, void *ctx)
{
    seen *s = ctx;
    s->rows++;
    if (r->wrong > 0) s->wrong_rows++;
    if (r->wrong < 0) s->unchecked++;
    snprintf(s->transport, sizeof s->transport, "%s", r->transport);
    return 0;
}

static agn_bench_opts opts(agn_dtype t, unsigned ops)
{
    return (agn_bench_opts){.min_bytes = 8, .max_bytes = 64 << 10, .step_factor = 4, .warmup = 2, .iters = 3,
                            .check = 1, .dtype = t, .ops = ops, .corrupt_rank = -1};
}

/* 8 B .. 64 KiB by 4: 8 32 128 512 2k 8k 32k = 7 sizes */
#define SIZES 7
#define ALL_OPS ((1u << AGN_BENCH_N_OPS) - 1)

/* ---- 2 forked ranks ------------------------------------------------------------------ */

static void forked(int corrupt)
{
    agn_launch_opts lo = {.ranks = 2, .timeout_s = 30};
    agn_comm *c = NULL;
    int status = 0;
    int rc = agn_launch(&lo, &c, &status);
    if (rc == AGN_LAUNCH_DONE) {
        CHECK(status == 0, "2 ranks%s: a rank failed: %s", corrupt ? " (corrupt)" : "", agn_errmsg());
        return;
    }
    if (rc < 0) {
        CHECK(0, "agn_launch: %s", agn_errmsg());
        return;
    }
    int bad_before = failures;
    for (int d = 0; d < 2; d++) {
        fake_dev f;
        agn_bench_mem m = fake_mem(&f);
        agn_bench_opts o = opts(d ? AGN_F64 : AGN_F32, ALL_OPS);
        o.mem = &m;
        o.corrupt_rank = corrupt ? 1 : -1;
        seen s = {0};
        const char *dt = d ? "f64" : "f32";
        CHECK(agn_bench_run(c, &o, emit, &s) == 0, "rank %d %s: %s", c->rank, dt, agn_errmsg());
        long rows = SIZES * AGN_BENCH_N_OPS; /* every size holds an element of either type */
        CHECK(f.allocs == 1 && f.releases == 1, "rank %d %s: %ld allocations, %ld releases", c->rank, dt, f.allocs,
              f.releases);
        CHECK(f.bad_ptr == 0, "rank %d %s: %ld calls outside the device buffer", c->rank, dt, f.bad_ptr);
        CHECK(f.from == rows && f.to == rows, "rank %d %s: %ld copies in, %ld out, expected %ld each", c->rank, dt,
              f.from, f.to, rows);
        CHECK(f.zeros == rows, "rank %d %s: timed buffer zeroed %ld times, expected %ld", c->rank, dt, f.zeros, rows);
        CHECK(f.syncs == 2 * rows, "rank %d %s: %ld syncs, expected 2 a row (%ld)", c->rank, dt, f.syncs, 2 * rows);
        if (c->rank == 0) {
            CHECK(s.rows == rows, "%s: %ld rows, expected %ld", dt, s.rows, rows);
            CHECK(strcmp(s.transport, "local") == 0, "%s: transport %s", dt, s.transport);
            CHECK(s.unchecked == 0, "%s: %ld rows unchecked", dt, s.unchecked);
            if (corrupt)
                CHECK(s.wrong_rows == rows, "%s, rank 1 corrupted: %ld of %ld rows count wrong elements", dt,
                      s.wrong_rows, rows);
            else
                CHECK(s.wrong_rows == 0, "%s: %ld rows with wrong results", dt, s.wrong_rows);
        }
    }
    agn_comm_free(c);
    _exit(failures != bad_before ? 1 : 0);
}

/* ---- one rank ------------------------------------------------------------------------ */

static long calls;
static int one_start(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req)
{
    (void)c, (void)buf, (void)count, (void)t;
    *req = NULL; /* done at once: the sum over one rank is the buffer */
    calls++;
    return 0;
}
static int one_wait(agn_comm *c, agn_comm_req *req)
{
    (void)c, (void)req;
    return 0;
}
static int one_bcast(agn_comm *c, void *buf, size_t count, agn_dtype t, int root)
{
    (void)c, (void)buf, (void)count, (void)t, (void)root;
    calls++;
    return 0;
}
static int one_barrier(agn_comm *c)
{
    (void)c;
    return 0;
}
static const agn_comm_ops one_ops = {.name = "one", .allreduce_start = one_start, .reduce_scatter_start = one_start,
                                     .allgather_start = one_start, .wait = one_wait, .broadcast = one_bcast,
                                     .barrier = one_barrier};

static void one_rank(void)
{
    agn_comm *c = agn_xcalloc(1, sizeof *c);
    c->ops = &one_ops;
    c->world = c->local_world = 1;
    fake_dev f;
    agn_bench_mem m = fake_mem(&f);
    agn_bench_opts o = opts(AGN_F32, ALL_OPS);
    o.mem = &m;
    seen s = {0};
    calls = 0;
    CHECK(agn_bench_run(c, &o, emit, &s) == 0, "one rank: %s", agn_errmsg());
    long rows = SIZES * AGN_BENCH_N_OPS, want = rows * (1 + o.warmup + o.iters);
    CHECK(s.rows == rows && s.wrong_rows == 0, "one rank: %ld rows, %ld wrong", s.rows, s.wrong_rows);
    CHECK(calls == want, "one rank with collectives: %ld calls, expected %ld (checked + warm-up + timed a row)",
          calls, want);
    CHECK(strcmp(s.transport, "one") == 0, "one rank: transport %s", s.transport);
    agn_comm_free(c);

    /* the none transport: no collective to call; its rows still come */
    c = agn_comm_none();
    seen s2 = {0};
    agn_bench_opts h = opts(AGN_F32, ALL_OPS);
    CHECK(agn_bench_run(c, &h, emit, &s2) == 0 && s2.rows == rows && s2.wrong_rows == 0 &&
              strcmp(s2.transport, "none") == 0,
          "none: %ld rows, %ld wrong, transport %s: %s", s2.rows, s2.wrong_rows, s2.transport, agn_errmsg());

    /* failures: a copy back to the host (the third), the allocation */
    agn_bench_mem m2 = fake_mem(&f);
    f.fail_to_at = 3;
    o.mem = &m2;
    seen s3 = {0};
    CHECK(agn_bench_run(c, &o, emit, &s3) == -1 && strstr(agn_errmsg(), "stand-in copy to the host failed"),
          "a failed copy: not reported (%s)", agn_errmsg());
    CHECK(s3.rows == 2, "a failed copy at the third row: %ld rows emitted before it, expected 2", s3.rows);
    CHECK(f.releases == 0, "a failed copy: the device buffer was released (the device may still use it)");
    free(f.dev); /* the stand-in's: a real device buffer is left to the process's exit */
    agn_bench_mem m3 = fake_mem(&f);
    f.fail_alloc = 1;
    o.mem = &m3;
    CHECK(agn_bench_run(c, &o, emit, &s3) == -1 && strstr(agn_errmsg(), "device buffer") &&
              strstr(agn_errmsg(), "out of stand-in device memory"),
          "a failed allocation: not reported (%s)", agn_errmsg());
    /* MPI_Allreduce is host memory's */
    o.mem = &m3;
    o.mpi_allreduce = 1;
    CHECK(agn_bench_run(c, &o, emit, &s3) == -1 && strstr(agn_errmsg(), "host memory only"),
          "mpi_allreduce with device memory accepted (%s)", agn_errmsg());
    agn_comm_free(c);
}

int main(void)
{
    agn_set_progname("t-commbench-mem");
    one_rank();
    printf("%s - one rank: every call made with collectives, none without; failures reported\n",
           failures ? "not ok" : "ok");
    int before = failures;
    forked(0);
    printf("%s - 2 ranks, device-side buffer: every row right, one copy in and out a row, two syncs\n",
           failures != before ? "not ok" : "ok");
    before = failures;
    forked(1);
    printf("%s - 2 ranks, device-side buffer, rank 1 corrupted: every row counts it\n",
           failures != before ? "not ok" : "ok");
    return failures ? 1 : 0;
}
