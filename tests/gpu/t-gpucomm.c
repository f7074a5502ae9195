/* t-gpucomm.c: the GPU transports (comm_gpu.h, comm_staged.c) on a real GPU.  Skips (77)
 * where none is usable.  Every case runs in forked processes, so that this
 * parent never initialises CUDA (it counts GPUs with agn_gpu_probe):
 *
 *  - nccl, one rank: the collectives called through the ops table (comm.c
 *    skips them at W = 1) on device buffers written by the compute stream
 *    just before (the event order is what is tested), sizes 1, 1000 and
 *    2^20 + 3, three requests in flight, the per-owner (grouped) path of
 *    uneven shards, bf16 on the wire (exactly bf16's rounding at W = 1), a
 *    host buffer routed to the host transport, and no compute stream set;
 *  - nccl, a stuck compute stream (a host function that blocks it): the wait
 *    times out after --comm-timeout with a message naming the rank, aborts
 *    NCCL, the transport stays broken, and freeing it returns;
 *  - the staged transport (comm_staged.c: CUDA ranks without NCCL), 2 and 3
 *    ranks sharing the GPUs (round robin), with CUDA copies: every
 *    collective bit for bit against a serial sum in rank order; a rank
 *    that aborts while rank 0 waits: rank 0 fails with its message;
 *  - nccl, W = min(GPUs, 4) ranks when there are 2 GPUs or more: the
 *    collectives (bit for bit at W = 2, where a sum of two is exact
 *    whatever the order; 1e-6 relative above), a rank that sleeps past the
 *    timeout, and a rank killed by SIGKILL (the others stop naming it).
 * Prints one "ok -" line per case and "# skipped: ..." for what this
 * machine cannot run (one GPU: NCCL with two ranks). */
#include "config.h"
#include "comm.h"
#include "comm_gpu.h"
#include "../comm-input.h"
#include "launch.h"
#include "util.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static int failures;

#define CHECK(cond, ...)                                                 \
    do {                                                                 \
        if (!(cond)) {                                                   \
            fprintf(stderr, "t-gpucomm: %s:%d: ", __FILE__, __LINE__);   \
            fprintf(stderr, __VA_ARGS__);                                \
            fputc('\n', stderr);                                         \
            failures++;                                                  \
        }                                                                \
    } while (0)

#define CUDA(call)                                                                          \
    do {                                                                                    \
        cudaError_t e_ = (call);                                                            \
        if (e_ != cudaSuccess) {                                                            \
            fprintf(stderr, "t-gpucomm: %s:%d: %s: %s\n", __FILE__, __LINE__, #call,        \
                    cudaGetErrorString(e_));                                                \
            _exit(3);                                                                       \
        }                                                                                   \
    } while (0)

static int ngpu;

/* ---- inputs (comm-input.h, as t-comm.c) ------------------------------------------ */

static float input(int rank, size_t i, uint64_t salt) { return (float)comm_test_input(rank, i, salt); }

static float bf16_round(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u += 0x7fff + ((u >> 16) & 1); /* round to nearest even (finite inputs) */
    u &= 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

/* ---- driving a transport ---------------------------------------------------------------- */

typedef struct {
    agn_comm *c;
    cudaStream_t compute;
    int exact;      /* compare bit for bit */
    double tol;     /* else: the largest relative difference allowed */
    int bf16;       /* the wire rounds inputs to bf16 (all-reduce, reduce-scatter) */
} ctx;

enum { AR, RS, AG, BC };

static int op_start(agn_comm *c, int op, void *buf, size_t n, agn_dtype t, agn_comm_req **req)
{
    *req = NULL;
    switch (op) {
    case AR: return c->ops->allreduce_start(c, buf, n, t, req);
    case RS: return c->ops->reduce_scatter_start(c, buf, n, t, req);
    default: return c->ops->allgather_start(c, buf, n, t, req);
    }
}

static int op_wait(agn_comm *c, agn_comm_req *r) { return r ? c->ops->wait(c, r) : 0; }

static const char *op_label(int op)
{
    return op == AR ? "all-reduce" : op == RS ? "reduce-scatter" : op == AG ? "all-gather" : "broadcast";
}

/* One collective of N floats against what it must give; the input is
 * written on the compute stream just before the call. */
static void one(ctx *x, int op, size_t n, uint64_t salt)
{
    agn_comm *c = x->c;
    int W = c->world, me = c->rank, root = W - 1;
    float *h = agn_xmalloc(n * sizeof *h), *want = agn_xmalloc(n * sizeof *want), *d;
    size_t lo, hi;
    agn_comm_shard(n, W, me, &lo, &hi);
    for (size_t i = 0; i < n; i++) {
        h[i] = input(me, i, salt);
        if (op == AG) { /* only my shard is mine; the rest is garbage */
            size_t klo, khi;
            int owner = 0;
            for (int k = 0; k < W; k++) {
                agn_comm_shard(n, W, k, &klo, &khi);
                if (i >= klo && i < khi) owner = k;
            }
            want[i] = input(owner, i, salt);
            if (owner != me) h[i] = NAN;
        } else if (op == BC) {
            want[i] = input(root, i, salt);
        } else {
            float s = x->bf16 ? bf16_round(input(0, i, salt)) : input(0, i, salt);
            for (int k = 1; k < W; k++) s += x->bf16 ? bf16_round(input(k, i, salt)) : input(k, i, salt);
            want[i] = s;
        }
    }
    CUDA(cudaMalloc((void **)&d, n * sizeof *d));
    CUDA(cudaMemsetAsync(d, 0xff, n * sizeof *d, x->compute));
    CUDA(cudaMemcpyAsync(d, h, n * sizeof *d, cudaMemcpyHostToDevice, x->compute));
    int rc;
    if (op == BC) {
        rc = c->ops->broadcast(c, d, n, AGN_F32, root);
    } else {
        agn_comm_req *r;
        rc = op_start(c, op, d, n, AGN_F32, &r);
        if (rc == 0) rc = op_wait(c, r);
    }
    CHECK(rc == 0, "rank %d: %s %s of %zu: %s", me, c->ops->name, op_label(op), n, agn_errmsg());
    float *got = agn_xmalloc(n * sizeof *got);
    CUDA(cudaMemcpy(got, d, n * sizeof *got, cudaMemcpyDeviceToHost));
    size_t a = op == RS ? lo : 0, b = op == RS ? hi : n, bad = 0;
    double worst = 0;
    for (size_t i = a; i < b; i++) {
        if (x->exact || op == AG || op == BC) {
            bad += memcmp(&got[i], &want[i], sizeof *got) != 0;
        } else {
            double e = fabs((double)got[i] - want[i]) / fmax(fabs((double)want[i]), 1e-30);
            if (!(e <= x->tol)) bad++;
            if (e > worst) worst = e;
        }
    }
    CHECK(bad == 0, "rank %d W %d: %s %s of %zu floats: %zu of %zu differ (worst relative %.3g)", me, W,
          c->ops->name, op_label(op), n, bad, b - a, worst);
    cudaFree(d);
    free(h);
    free(want);
    free(got);
}

static void collectives(ctx *x)
{
    size_t sizes[] = {1, 1000, ((size_t)1 << 20) + 3};
    for (size_t s = 0; s < AGN_ARRAY_LEN(sizes); s++)
        for (int op = AR; op <= BC; op++) {
            if (x->bf16 && (op == AG || op == BC)) continue;
            one(x, op, sizes[s], 11 + s * 4 + (size_t)op);
        }
}

/* Three all-reduces in flight, then the waits, then a host buffer. */
static void in_flight_and_host(ctx *x)
{
    agn_comm *c = x->c;
    size_t n = 4099;
    float *d[3], *h = agn_xmalloc(n * sizeof *h);
    agn_comm_req *r[3];
    for (int k = 0; k < 3; k++) {
        for (size_t i = 0; i < n; i++) h[i] = input(c->rank, i, 100 + k);
        CUDA(cudaMalloc((void **)&d[k], n * sizeof(float)));
        CUDA(cudaMemcpyAsync(d[k], h, n * sizeof *h, cudaMemcpyHostToDevice, x->compute));
        CUDA(cudaStreamSynchronize(x->compute)); /* h is reused */
        CHECK(op_start(c, AR, d[k], n, AGN_F32, &r[k]) == 0, "start %d: %s", k, agn_errmsg());
    }
    for (int k = 0; k < 3; k++) CHECK(op_wait(c, r[k]) == 0, "wait %d: %s", k, agn_errmsg());
    for (int k = 0; k < 3; k++) {
        CUDA(cudaMemcpy(h, d[k], n * sizeof *h, cudaMemcpyDeviceToHost));
        size_t bad = 0;
        for (size_t i = 0; i < n; i++) {
            float s = 0;
            for (int q = 0; q < c->world; q++) {
                float v = input(q, i, 100 + k);
                s = q ? s + (x->bf16 ? bf16_round(v) : v) : (x->bf16 ? bf16_round(v) : v);
            }
            double e = fabs((double)h[i] - s) / fmax(fabs((double)s), 1e-30);
            bad += x->exact ? memcmp(&h[i], &s, 4) != 0 : !(e <= x->tol);
        }
        CHECK(bad == 0, "rank %d: request %d of 3 in flight: %zu differ", c->rank, k, bad);
        cudaFree(d[k]);
    }
    free(h);
    if (strcmp(c->ops->name, "nccl") != 0) return; /* staged: device buffers only */
    /* host memory goes to the host transport: rank order, exact */
    double v[5];
    for (int i = 0; i < 5; i++) v[i] = input(c->rank, (size_t)i, 7);
    agn_comm_req *hr;
    CHECK(op_start(c, AR, v, 5, AGN_F64, &hr) == 0 && op_wait(c, hr) == 0, "host all-reduce: %s", agn_errmsg());
    for (int i = 0; i < 5; i++) {
        double s = input(0, (size_t)i, 7);
        for (int q = 1; q < c->world; q++) s += input(q, (size_t)i, 7);
        CHECK(memcmp(&s, &v[i], sizeof s) == 0, "host all-reduce element %d", i);
    }
}

/* ---- running ranks ------------------------------------------------------------------------ */

typedef void (*rank_fn)(agn_comm *host, void *arg);

/* W ranks of FN (forked: this process stays free of CUDA); 0 if all exited
 * 0, else the job's status (1: a rank failed). */
static int run_ranks(int W, rank_fn fn, void *arg, double timeout_s)
{
    fflush(NULL);
    if (W == 1) {
        pid_t pid = fork();
        if (pid == 0) {
            agn_comm *c = agn_comm_none();
            c->timeout_s = timeout_s;
            fn(c, arg);
            fflush(NULL);
            _exit(failures ? 1 : 0);
        }
        int st;
        waitpid(pid, &st, 0);
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    agn_launch_opts o = {.ranks = W, .timeout_s = timeout_s, .grace_s = 2, .catch_stop = 1};
    agn_comm *c;
    int status;
    int rc = agn_launch(&o, &c, &status);
    if (rc == AGN_LAUNCH_RANK) {
        fn(c, arg);
        fflush(NULL);
        _exit(failures ? 1 : 0);
    }
    if (rc < 0) {
        fprintf(stderr, "t-gpucomm: launch: %s\n", agn_errmsg());
        return 1;
    }
    if (status) fprintf(stderr, "t-gpucomm: (the job) %s\n", agn_errmsg());
    return status;
}

typedef struct {
    int staged, bf16, grouped, exact;
    double tol;
    int fault; /* 0 none; 1 stuck stream; 2 rank 1 aborts; 3 rank 1 sleeps; 4 rank 1 killed */
} cfg;

/* The staged transport's copies (comm.h), after the work queued on the
 * compute stream, as the trainer's model_to_host does. */
static cudaStream_t copy_stream;
static int to_host(void *unused, void *host, const void *dev, size_t bytes)
{
    (void)unused;
    if (cudaMemcpyAsync(host, dev, bytes, cudaMemcpyDeviceToHost, copy_stream) != cudaSuccess ||
        cudaStreamSynchronize(copy_stream) != cudaSuccess)
        return agn_seterr("staging copy to the host failed");
    return 0;
}
static int from_host(void *unused, void *dev, const void *host, size_t bytes)
{
    (void)unused;
    if (cudaMemcpyAsync(dev, host, bytes, cudaMemcpyHostToDevice, copy_stream) != cudaSuccess ||
        cudaStreamSynchronize(copy_stream) != cudaSuccess)
        return agn_seterr("staging copy to the device failed");
    return 0;
}

static agn_comm *staged_host; /* the staged transport leaves its host transport to us */

static agn_comm *make(agn_comm *host, const cfg *k, cudaStream_t *compute)
{
    agn_gpu_comm_opts o = {.device = host->local_rank % ngpu, .wire_bf16 = k->bf16};
    if (k->grouped) setenv("AGN_TEST_NCCL_GROUPED", "1", 1);
    agn_comm *c;
    if (k->staged) {
        CUDA(cudaSetDevice(o.device));
        CUDA(cudaStreamCreateWithFlags(compute, cudaStreamNonBlocking));
        copy_stream = *compute;
        agn_comm_copier cp = {.ctx = NULL, .to_host = to_host, .from_host = from_host};
        staged_host = host;
        return agn_comm_staged_create(host, &cp);
    }
    c = agn_comm_nccl_create(host, &o);
    if (!c) {
        fprintf(stderr, "t-gpucomm: rank %d: %s\n", host->rank, agn_errmsg());
        agn_comm_abort(host, agn_errmsg());
        agn_comm_free(host);
        _exit(2);
    }
    CUDA(cudaStreamCreateWithFlags(compute, cudaStreamNonBlocking));
    return c;
}

static void unmake(agn_comm *c)
{
    agn_comm_free(c);
    if (staged_host) agn_comm_free(staged_host);
    staged_host = NULL;
}

static void rank_collectives(agn_comm *host, void *arg)
{
    const cfg *k = arg;
    cudaStream_t s;
    agn_comm *c = make(host, k, &s);
    if (!k->staged && c->world == 1) {
        /* before agn_comm_set_stream: refused with a message */
        float *d;
        CUDA(cudaMalloc((void **)&d, 64));
        agn_comm_req *r;
        CHECK(op_start(c, AR, d, 16, AGN_F32, &r) != 0 && strstr(agn_errmsg(), "no compute stream"),
              "no stream: '%s'", agn_errmsg());
        cudaFree(d);
    }
    CHECK(agn_comm_set_stream(c, s) == 0, "set_stream");
    ctx x = {.c = c, .compute = s, .exact = k->exact, .tol = k->tol, .bf16 = k->bf16};
    collectives(&x);
    in_flight_and_host(&x);
    unmake(c);
}

/* Blocks the stream it is queued on until released, or 10 s at most (so
 * that an abort which waits for the stream shows as a slow abort, not a
 * hang). */
static volatile int release_flag;
static void CUDART_CB block_stream(void *p)
{
    (void)p;
    for (int i = 0; i < 10000 && !release_flag; i++) usleep(1000);
}

static void rank_fault(agn_comm *host, void *arg)
{
    const cfg *k = arg;
    cudaStream_t s;
    agn_comm *c = make(host, k, &s);
    agn_comm_set_stream(c, s);
    size_t n = 1 << 16;
    float *d;
    CUDA(cudaMalloc((void **)&d, n * sizeof *d));
    CUDA(cudaMemsetAsync(d, 0, n * sizeof *d, s));
    if (k->fault == 1) CUDA(cudaLaunchHostFunc(s, block_stream, NULL));
    if (k->fault == 2 && c->rank == 1) {
        sleep(1);
        agn_comm_abort(c, "test abort from rank 1");
        unmake(c);
        _exit(0);
    }
    if (k->fault == 3 && c->rank == 1) sleep((unsigned)(c->timeout_s * 3 + 2));
    if (k->fault == 4 && c->rank == 1) {
        sleep(1);
        raise(SIGKILL);
    }
    double t0 = agn_now();
    agn_comm_req *r;
    int rc = op_start(c, AR, d, n, AGN_F32, &r);
    if (rc == 0) rc = op_wait(c, r);
    double took = agn_now() - t0;
    char msg[512];
    snprintf(msg, sizeof msg, "%s", agn_errmsg());
    if (c->rank == 0) {
        CHECK(rc != 0, "fault %d: the all-reduce succeeded", k->fault);
        if (k->fault == 1 || k->fault == 3)
            CHECK(strstr(msg, "rank 0: ") && strstr(msg, "timed out after 2 s"), "fault %d: '%s'", k->fault, msg);
        if (k->fault == 2) CHECK(strstr(msg, "test abort from rank 1"), "abort: '%s'", msg);
        if (k->fault == 4) CHECK(strstr(msg, "rank 1") && strstr(msg, "SIGKILL"), "kill: '%s'", msg);
        CHECK(took < 2 * 2 + 3, "fault %d: took %.1f s", k->fault, took);
        /* broken for good, with the first message */
        rc = op_start(c, AR, d, n, AGN_F32, &r);
        if (rc == 0) rc = op_wait(c, r);
        CHECK(rc != 0 && strcmp(agn_errmsg(), msg) == 0, "after the failure: '%s'", rc ? agn_errmsg() : "success");
        printf("# rank 0 said: %s (%.2f s)\n", msg, took);
        agn_comm_abort(c, msg); /* as agn-train does: the others stop too */
    }
    release_flag = 1;
    double tf = agn_now();
    unmake(c);
    CHECK(agn_now() - tf < 5, "freeing the broken transport took %.1f s", agn_now() - tf);
    fflush(NULL);
    _exit(failures ? 1 : 0); /* rank 0 is done; the job's status is the supervisor's */
}

int main(int argc, char **argv)
{
    (void)argc;
    agn_set_progname(argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);
    char desc[1024];
    if (agn_gpu_probe(&ngpu, desc, sizeof desc) != 0) {
        fprintf(stderr, "t-gpucomm: %s\n", agn_errmsg());
        return 1;
    }
    if (ngpu == 0) {
        printf("SKIP: no usable GPU: %s\n", desc);
        return 77;
    }
    printf("# %d GPU(s): %s\n", ngpu, desc);
    int nccl = agn_comm_nccl_built();
    int st;
    if (nccl) {
        cfg k = {.exact = 1};
        st = run_ranks(1, rank_collectives, &k, 20);
        CHECK(st == 0, "nccl W 1: status %d", st);
        if (st == 0) printf("ok - nccl, 1 rank: collectives through the ops table, sizes 1..2^20+3, in flight, host routing\n");
        cfg g = {.exact = 1, .grouped = 1};
        st = run_ranks(1, rank_collectives, &g, 20);
        CHECK(st == 0, "nccl W 1 grouped: status %d", st);
        if (st == 0) printf("ok - nccl, 1 rank: the per-owner (grouped) path of uneven shards\n");
        cfg b = {.exact = 1, .bf16 = 1};
        st = run_ranks(1, rank_collectives, &b, 20);
        CHECK(st == 0, "nccl W 1 bf16: status %d", st);
        if (st == 0) printf("ok - nccl, 1 rank, bf16 on the wire: exactly bf16's rounding\n");
        cfg f = {.fault = 1};
        st = run_ranks(1, rank_fault, &f, 2);
        CHECK(st == 0, "nccl stuck stream: status %d", st);
        if (st == 0) printf("ok - nccl: a stuck compute stream times out after 2 s, ncclCommAbort, broken, freed\n");
    } else {
        printf("# skipped: nccl (this build has no NCCL)\n");
    }
    for (int W = 2; W <= 3; W++) {
        cfg k = {.staged = 1, .exact = 1};
        st = run_ranks(W, rank_collectives, &k, 20);
        CHECK(st == 0, "staged W %d: status %d", W, st);
        if (st == 0) printf("ok - staged, %d ranks on %d GPU(s): every collective bit for bit in rank order\n", W, ngpu);
    }
    cfg a = {.staged = 1, .fault = 2};
    st = run_ranks(2, rank_fault, &a, 10);
    CHECK(st == 0, "staged abort: status %d", st);
    if (st == 0) printf("ok - staged: rank 1 aborts, rank 0's wait fails with its message\n");
    if (nccl && ngpu >= 2) {
        int W = ngpu < 4 ? ngpu : 4;
        cfg k = {.exact = W == 2, .tol = 1e-6};
        st = run_ranks(W, rank_collectives, &k, 30);
        CHECK(st == 0, "nccl W %d: status %d", W, st);
        if (st == 0) printf("ok - nccl, %d ranks: collectives %s\n", W, W == 2 ? "bit for bit" : "within 1e-6");
        cfg g = {.exact = W == 2, .tol = 1e-6, .grouped = 1};
        st = run_ranks(W, rank_collectives, &g, 30);
        CHECK(st == 0, "nccl W %d grouped: status %d", W, st);
        cfg s3 = {.fault = 3};
        st = run_ranks(2, rank_fault, &s3, 2);
        /* rank 0 exits 0 after checking; rank 1 is stopped by the supervisor */
        CHECK(st != 0 || failures == 0, "nccl sleep: status %d", st);
        printf("ok - nccl, 2 ranks: rank 1 late past the timeout, rank 0 fails naming itself (job status %d)\n", st);
        cfg s4 = {.fault = 4};
        st = run_ranks(2, rank_fault, &s4, 30);
        CHECK(st == 1, "nccl kill: job status %d, expected 1", st);
        printf("ok - nccl, 2 ranks: rank 1 killed, rank 0 stops naming it (job status %d)\n", st);
    } else {
        printf("# skipped: nccl with 2 ranks or more (%s): NCCL refuses two ranks on one GPU\n",
               nccl ? "one GPU" : "no NCCL");
    }
    if (failures) fprintf(stderr, "t-gpucomm: %d failure(s)\n", failures);
    return failures ? 1 : 0;
}
