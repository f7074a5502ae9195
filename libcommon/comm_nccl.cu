/* comm_nccl.cu: the "nccl" transport of comm_gpu.h.
 *
 * It holds the host transport it wraps (local or mpi) and sends every call
 * on host memory to it.  A call on device memory records an event on the
 * compute stream (agn_comm_set_stream), makes the communication stream wait
 * for it, and issues the NCCL call there (ncclGroupStart/End around the
 * per-owner calls of uneven shards); the request is an event recorded after
 * it.  fp32 travels as fp32, or with wire_bf16 an all-reduce or
 * reduce-scatter of fp32 is converted to bf16 in a scratch buffer, reduced
 * in bf16 and converted back (the all-gather of parameters always stays
 * fp32: ranks must agree on them).
 *
 * agn_comm_wait() polls the request's event, NCCL's asynchronous error, the
 * host transport's abort flag and the deadline (comm_gpu.c's state machine);
 * on a failure it calls ncclCommAbort, so that no kernel is left waiting for
 * a peer that is gone, and the transport stays broken: every later call
 * fails with the first message.
 *
 * The communicator is non-blocking (config.blocking = 0) unless
 * AGN_NCCL_BLOCKING=1: its initialisation and every call that answers
 * ncclInProgress are polled the same way, so a peer that never arrives ends
 * in a timeout instead of a hang inside NCCL.
 *
 * CUDA ranks without NCCL, or several on one GPU, use the staged transport
 * (comm_staged.c) instead, which the trainer puts over the host transport.
 *
 * Everything here runs on the caller's thread (the trainer's); the device
 * is the one made current by the constructor.  Built when configure found
 * NCCL; without it comm_gpu.c's constructor says so. */
#include "config.h"
extern "C" {
#include "comm.h"
#include "comm_gpu.h"
#include "util.h"
}

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#ifdef HAVE_NCCL
#include <nccl.h>
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { REQ_HOST, REQ_DEVICE };
enum { OP_ALLREDUCE, OP_REDUCE_SCATTER, OP_ALLGATHER, OP_BROADCAST };

static const char *op_name(int op)
{
    switch (op) {
    case OP_ALLREDUCE: return "all-reduce";
    case OP_REDUCE_SCATTER: return "reduce-scatter";
    case OP_ALLGATHER: return "all-gather";
    case OP_BROADCAST: return "broadcast";
    }
    return "collective";
}

typedef struct pool_buf {
    void *p;
    size_t cap;
    struct pool_buf *next;
} pool_buf;

typedef struct {
    int kind;
    agn_comm_req *inner; /* REQ_HOST: the host transport's request */
    cudaEvent_t ev;      /* REQ_DEVICE: fires when the NCCL call is done */
    int op;
    void *buf;
    size_t count;
    agn_dtype type;
    pool_buf *scratch;   /* the bf16 copy (device memory) */
    char what[96];
} gpu_req;

typedef struct {
    agn_comm *host;
    int device;
    int wire_bf16;
    int grouped_test; /* AGN_TEST_NCCL_GROUPED=1: the per-owner path always */
    cudaStream_t compute;
    int have_compute;
    cudaStream_t stream; /* communication */
    cudaEvent_t ready;   /* recorded on the compute stream at each start */
#ifdef HAVE_NCCL
    ncclComm_t nccl;
#endif
    cudaEvent_t *events; /* free completion events */
    int n_events, cap_events;
    pool_buf *free_dev;
    int broken;
    char err[512];
    unsigned long started;
} gpu_state;

/* ---- errors ------------------------------------------------------------------------ */

/* Marks the transport broken with the current message (the first is kept),
 * aborting NCCL: a collective whose peer is gone never ends by itself. */
static int breakit(agn_comm *c)
{
    gpu_state *gs = (gpu_state *)c->impl;
    if (!gs->broken) {
        gs->broken = 1;
        snprintf(gs->err, sizeof gs->err, "%s", agn_errmsg());
    }
#ifdef HAVE_NCCL
    if (gs->nccl) {
        ncclCommAbort(gs->nccl);
        gs->nccl = NULL;
    }
#endif
    return agn_seterr("%s", gs->err);
}

static int cuda_err(agn_comm *c, cudaError_t e, const char *what)
{
    agn_seterr("rank %d: %s on GPU %d: %s", c->rank, what, ((gpu_state *)c->impl)->device, cudaGetErrorString(e));
    return breakit(c);
}

#define CU(c, call, what)                                       \
    do {                                                        \
        cudaError_t e_ = (call);                                \
        if (e_ != cudaSuccess) return cuda_err((c), e_, (what)); \
    } while (0)

static int check_usable(agn_comm *c)
{
    gpu_state *gs = (gpu_state *)c->impl;
    if (gs->broken) return agn_seterr("%s", gs->err);
    if (!gs->have_compute)
        return agn_seterr("%s transport: no compute stream (agn_comm_set_stream was not called after the "
                          "model was created)", c->ops->name);
    return 0;
}

#ifdef HAVE_NCCL
static const char *nccl_text(ncclComm_t comm, ncclResult_t r, char *buf, size_t n)
{
    const char *last = ncclGetLastError(comm);
    snprintf(buf, n, "%s%s%s", ncclGetErrorString(r), last && *last ? ": " : "", last ? last : "");
    return buf;
}
#endif

/* ---- polling ------------------------------------------------------------------------- */

typedef struct {
    agn_comm *c;
    cudaEvent_t ev; /* poll this event, or (NULL) the NCCL state alone */
    char msg[512];
} poll_ctx;

static void poll_fn(void *ctx, agn_gpu_poll *p)
{
    poll_ctx *pc = (poll_ctx *)ctx;
    gpu_state *gs = (gpu_state *)pc->c->impl;
    if (pc->ev) {
        cudaError_t e = cudaEventQuery(pc->ev);
        if (e == cudaSuccess) {
            p->done = 1;
        } else if (e != cudaErrorNotReady) {
            snprintf(pc->msg, sizeof pc->msg, "CUDA: %s", cudaGetErrorString(e));
            p->error = (int)e;
            p->error_msg = pc->msg;
            return;
        }
    }
#ifdef HAVE_NCCL
    if (gs->nccl) {
        ncclResult_t r = ncclSuccess;
        ncclResult_t q = ncclCommGetAsyncError(gs->nccl, &r);
        if (q != ncclSuccess) r = q;
        if (!pc->ev && r == ncclSuccess) p->done = 1;
        if (r != ncclSuccess && r != ncclInProgress) {
            char t[400];
            snprintf(pc->msg, sizeof pc->msg, "NCCL: %s", nccl_text(gs->nccl, r, t, sizeof t));
            p->error = (int)r;
            p->error_msg = pc->msg;
            return;
        }
    }
#else
    if (!pc->ev) p->done = 1;
#endif
    p->aborted = agn_comm_aborted(gs->host, NULL);
}

/* Waits for EV (or, EV NULL, for NCCL's state to leave ncclInProgress);
 * breaks the transport on a failure. */
static int wait_for(agn_comm *c, cudaEvent_t ev, const char *what)
{
    poll_ctx pc;
    pc.c = c;
    pc.ev = ev;
    pc.msg[0] = '\0';
    agn_gpu_wait w;
    agn_gpu_wait_begin(&w, c->rank, what, c->timeout_s, agn_now());
    agn_gpu_poller p = {poll_fn, NULL, NULL, &pc};
    if (agn_gpu_wait_loop(&w, &p) != 0) return breakit(c);
    return 0;
}

#ifdef HAVE_NCCL
/* After an NCCL call: its result, polled to the end when it is in progress
 * (a non-blocking communicator enqueues asynchronously). */
static int settle(agn_comm *c, ncclResult_t r, const char *what)
{
    gpu_state *gs = (gpu_state *)c->impl;
    if (r == ncclInProgress) return wait_for(c, NULL, what);
    if (r != ncclSuccess) {
        char t[400];
        agn_seterr("rank %d: %s: NCCL: %s", c->rank, what, nccl_text(gs->nccl, r, t, sizeof t));
        return breakit(c);
    }
    return 0;
}

static ncclDataType_t nccl_type(agn_dtype t)
{
    switch (t) {
    case AGN_F32: return ncclFloat32;
    case AGN_F64: return ncclFloat64;
    case AGN_U8: return ncclUint8;
    }
    return ncclFloat32;
}
#endif

/* ---- resources ---------------------------------------------------------------------- */

static int get_event(agn_comm *c, cudaEvent_t *ev)
{
    gpu_state *gs = (gpu_state *)c->impl;
    if (gs->n_events > 0) {
        *ev = gs->events[--gs->n_events];
        return 0;
    }
    CU(c, cudaEventCreateWithFlags(ev, cudaEventDisableTiming), "cudaEventCreate");
    return 0;
}

static void put_event(gpu_state *gs, cudaEvent_t ev)
{
    if (gs->n_events == gs->cap_events) {
        gs->cap_events = gs->cap_events ? 2 * gs->cap_events : 16;
        gs->events = (cudaEvent_t *)agn_xrealloc(gs->events, (size_t)gs->cap_events * sizeof *gs->events);
    }
    gs->events[gs->n_events++] = ev;
}

/* A device buffer of at least BYTES from the free list, reused once the
 * request that held it is done. */
static int get_buf(agn_comm *c, size_t bytes, pool_buf **out)
{
    gpu_state *gs = (gpu_state *)c->impl;
    for (pool_buf **pp = &gs->free_dev; *pp; pp = &(*pp)->next)
        if ((*pp)->cap >= bytes) {
            *out = *pp;
            *pp = (*pp)->next;
            return 0;
        }
    pool_buf *b = (pool_buf *)agn_xcalloc(1, sizeof *b);
    b->cap = bytes < 4096 ? 4096 : bytes;
    cudaError_t e = cudaMalloc(&b->p, b->cap);
    if (e != cudaSuccess) {
        free(b);
        return cuda_err(c, e, "cudaMalloc (bf16 scratch)");
    }
    *out = b;
    return 0;
}

static void put_buf(gpu_state *gs, pool_buf *b)
{
    if (!b) return;
    b->next = gs->free_dev;
    gs->free_dev = b;
}

static void free_bufs(pool_buf *b)
{
    while (b) {
        pool_buf *n = b->next;
        cudaFree(b->p);
        free(b);
        b = n;
    }
}

/* ---- bf16 on the wire ---------------------------------------------------------------- */

__global__ void k_to_bf16(const float *x, __nv_bfloat16 *y, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __float2bfloat16_rn(x[i]);
}

__global__ void k_from_bf16(const __nv_bfloat16 *x, float *y, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        y[i] = __bfloat162float(x[i]);
}

static unsigned grid_for(size_t n)
{
    size_t g = (n + 255) / 256;
    return (unsigned)(g < 1 ? 1 : g > 4096 ? 4096 : g);
}

/* ---- which memory ---------------------------------------------------------------------- */

static agn_mem_kind mem_kind(const void *p)
{
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError(); /* not a CUDA pointer: host */
        return AGN_MEM_HOST;
    }
    switch (a.type) {
    case cudaMemoryTypeDevice: return AGN_MEM_DEVICE;
    case cudaMemoryTypeManaged: return AGN_MEM_MANAGED;
    case cudaMemoryTypeHost: return AGN_MEM_PINNED;
    default: return AGN_MEM_HOST;
    }
}

/* ---- collectives on device memory ------------------------------------------------------ */

/* Orders the communication stream after the work issued so far on the
 * compute stream. */
static int follow_compute(agn_comm *c)
{
    gpu_state *gs = (gpu_state *)c->impl;
    CU(c, cudaEventRecord(gs->ready, gs->compute), "cudaEventRecord (compute stream)");
    CU(c, cudaStreamWaitEvent(gs->stream, gs->ready, 0), "cudaStreamWaitEvent");
    return 0;
}

#ifdef HAVE_NCCL
static int nccl_issue(agn_comm *c, gpu_req *r, int root)
{
    gpu_state *gs = (gpu_state *)c->impl;
    size_t es = agn_dtype_size(r->type), count = r->count;
    unsigned char *p = (unsigned char *)r->buf;
    ncclDataType_t dt = nccl_type(r->type);
    int W = c->world, me = c->rank;
    int bf16 = gs->wire_bf16 && r->type == AGN_F32 && (r->op == OP_ALLREDUCE || r->op == OP_REDUCE_SCATTER);
    if (bf16) {
        if (get_buf(c, count * sizeof(__nv_bfloat16), &r->scratch) != 0) return -1;
        k_to_bf16<<<grid_for(count), 256, 0, gs->stream>>>((const float *)p, (__nv_bfloat16 *)r->scratch->p, count);
        CU(c, cudaGetLastError(), "bf16 conversion kernel");
        p = (unsigned char *)r->scratch->p;
        dt = ncclBfloat16;
        es = sizeof(__nv_bfloat16);
    }
    int even = agn_nccl_even(count, W) && !gs->grouped_test;
    ncclResult_t res = ncclSuccess;
    switch (r->op) {
    case OP_ALLREDUCE: res = ncclAllReduce(p, p, count, dt, ncclSum, gs->nccl, gs->stream); break;
    case OP_BROADCAST: res = ncclBroadcast(p, p, count, dt, root, gs->nccl, gs->stream); break;
    case OP_REDUCE_SCATTER:
    case OP_ALLGATHER:
        if (even) {
            size_t n = count / (size_t)W;
            unsigned char *mine = p + (size_t)me * n * es;
            /* in place: NCCL's layout, rank r's block at r * n */
            res = r->op == OP_REDUCE_SCATTER ? ncclReduceScatter(p, mine, n, dt, ncclSum, gs->nccl, gs->stream)
                                             : ncclAllGather(mine, p, n, dt, gs->nccl, gs->stream);
            break;
        }
        /* shards of two sizes: one rooted call per owner, in one group */
        res = ncclGroupStart();
        for (int k = 0; k < W && res == ncclSuccess; k++) {
            size_t lo, hi;
            agn_comm_shard(count, W, k, &lo, &hi);
            if (hi == lo) continue;
            unsigned char *q = p + lo * es;
            res = r->op == OP_REDUCE_SCATTER ? ncclReduce(q, q, hi - lo, dt, ncclSum, k, gs->nccl, gs->stream)
                                             : ncclBroadcast(q, q, hi - lo, dt, k, gs->nccl, gs->stream);
        }
        {
            ncclResult_t e = ncclGroupEnd();
            if (res == ncclSuccess) res = e;
        }
        break;
    }
    if (settle(c, res, r->what) != 0) return -1;
    if (bf16) {
        size_t lo = 0, hi = count;
        if (r->op == OP_REDUCE_SCATTER) agn_comm_shard(count, W, me, &lo, &hi);
        if (hi > lo) {
            k_from_bf16<<<grid_for(hi - lo), 256, 0, gs->stream>>>((const __nv_bfloat16 *)r->scratch->p + lo,
                                                                   (float *)r->buf + lo, hi - lo);
            CU(c, cudaGetLastError(), "bf16 conversion kernel");
        }
    }
    if (get_event(c, &r->ev) != 0) return -1;
    CU(c, cudaEventRecord(r->ev, gs->stream), "cudaEventRecord (communication stream)");
    return 0;
}
#endif

static int dev_start(agn_comm *c, int op, void *buf, size_t count, agn_dtype t, int root, gpu_req **out)
{
    gpu_state *gs = (gpu_state *)c->impl;
    *out = NULL;
    if (check_usable(c) != 0) return -1;
    gpu_req *r = (gpu_req *)agn_xcalloc(1, sizeof *r);
    r->kind = REQ_DEVICE;
    r->op = op;
    r->buf = buf;
    r->count = count;
    r->type = t;
    snprintf(r->what, sizeof r->what, "%s %s #%lu of %zu elements", c->ops->name, op_name(op), ++gs->started, count);
    int rc = follow_compute(c);
#ifdef HAVE_NCCL
    if (rc == 0) rc = nccl_issue(c, r, root);
#else
    (void)root;
    if (rc == 0) rc = agn_seterr("no NCCL in this build");
#endif
    if (rc != 0) {
        free(r); /* its buffers may still be in use by the device: not reused */
        return -1;
    }
    *out = r;
    return 0;
}

static int dev_finish(agn_comm *c, gpu_req *r)
{
    gpu_state *gs = (gpu_state *)c->impl;
    if (wait_for(c, r->ev, r->what) != 0) return -1;
    put_event(gs, r->ev);
    put_buf(gs, r->scratch);
    r->scratch = NULL;
    return 0;
}

/* ---- the ops ---------------------------------------------------------------------------- */

static int start(agn_comm *c, int op, void *buf, size_t count, agn_dtype t, agn_comm_req **req)
{
    gpu_state *gs = (gpu_state *)c->impl;
    *req = NULL;
    if (gs->broken) return agn_seterr("%s", gs->err);
    if (!agn_gpu_route(mem_kind(buf), count)) {
        agn_comm_req *inner = NULL;
        int rc = op == OP_ALLREDUCE        ? agn_comm_allreduce_start(gs->host, buf, count, t, &inner)
                 : op == OP_REDUCE_SCATTER ? agn_comm_reduce_scatter_start(gs->host, buf, count, t, &inner)
                                           : agn_comm_allgather_start(gs->host, buf, count, t, &inner);
        if (rc != 0) return -1;
        if (!inner) return 0;
        gpu_req *r = (gpu_req *)agn_xcalloc(1, sizeof *r);
        r->kind = REQ_HOST;
        r->inner = inner;
        *req = (agn_comm_req *)r;
        return 0;
    }
    gpu_req *r;
    if (dev_start(c, op, buf, count, t, 0, &r) != 0) return -1;
    *req = (agn_comm_req *)r;
    return 0;
}

static int gpu_allreduce_start(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req)
{
    return start(c, OP_ALLREDUCE, buf, count, t, req);
}

static int gpu_reduce_scatter_start(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req)
{
    return start(c, OP_REDUCE_SCATTER, buf, count, t, req);
}

static int gpu_allgather_start(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req)
{
    return start(c, OP_ALLGATHER, buf, count, t, req);
}

static int gpu_wait(agn_comm *c, agn_comm_req *req)
{
    gpu_state *gs = (gpu_state *)c->impl;
    gpu_req *r = (gpu_req *)req;
    int rc;
    if (r->kind == REQ_HOST) {
        rc = agn_comm_wait(gs->host, r->inner);
        if (rc != 0 && !gs->broken) {
            gs->broken = 1;
            snprintf(gs->err, sizeof gs->err, "%s", agn_errmsg());
        }
    } else {
        rc = dev_finish(c, r);
    }
    free(r);
    return rc;
}

static int gpu_broadcast(agn_comm *c, void *buf, size_t count, agn_dtype t, int root)
{
    gpu_state *gs = (gpu_state *)c->impl;
    if (gs->broken) return agn_seterr("%s", gs->err);
    if (root < 0 || root >= c->world) return agn_seterr("broadcast: root %d out of range", root);
    if (!agn_gpu_route(mem_kind(buf), count)) return agn_comm_broadcast(gs->host, buf, count, t, root);
    gpu_req *r;
    if (dev_start(c, OP_BROADCAST, buf, count, t, root, &r) != 0) return -1;
    int rc = dev_finish(c, r);
    free(r);
    return rc;
}

static int gpu_barrier(agn_comm *c)
{
    gpu_state *gs = (gpu_state *)c->impl;
    if (gs->broken) return agn_seterr("%s", gs->err);
    return agn_comm_barrier(gs->host);
}

static void gpu_abort(agn_comm *c, const char *why)
{
    gpu_state *gs = (gpu_state *)c->impl;
    agn_seterr("%s", why);
    breakit(c);
    /* the others' next wait sees it (local), or the job ends (mpi) */
    agn_comm_abort(gs->host, why);
}

static const char *gpu_aborted(agn_comm *c, int *rank)
{
    gpu_state *gs = (gpu_state *)c->impl;
    return agn_comm_aborted(gs->host, rank);
}

static int gpu_set_stream(agn_comm *c, void *stream)
{
    gpu_state *gs = (gpu_state *)c->impl;
    gs->compute = (cudaStream_t)stream;
    gs->have_compute = 1;
    return 0;
}

static void gpu_destroy(agn_comm *c)
{
    gpu_state *gs = (gpu_state *)c->impl;
    if (!gs) return;
    if (!gs->broken && gs->stream) {
        /* what is still queued ends first (bounded by the timeout) */
        cudaEvent_t ev;
        if (get_event(c, &ev) == 0 && cudaEventRecord(ev, gs->stream) == cudaSuccess) {
            if (wait_for(c, ev, "the last collectives") == 0) put_event(gs, ev);
        }
    }
#ifdef HAVE_NCCL
    if (gs->nccl) {
        if (!gs->broken && settle(c, ncclCommFinalize(gs->nccl), "ncclCommFinalize") == 0)
            ncclCommDestroy(gs->nccl);
        else if (gs->nccl)
            ncclCommAbort(gs->nccl);
        gs->nccl = NULL;
    }
#endif
    if (!gs->broken) {
        for (int i = 0; i < gs->n_events; i++) cudaEventDestroy(gs->events[i]);
        free_bufs(gs->free_dev);
        if (gs->ready) cudaEventDestroy(gs->ready);
        if (gs->stream) cudaStreamDestroy(gs->stream);
    }
    /* broken: the device may still use them; the process is about to exit */
    free(gs->events);
    if (gs->host) agn_comm_free(gs->host);
    free(gs);
    c->impl = NULL;
}

static const agn_comm_ops nccl_ops = {
    "nccl",
    gpu_allreduce_start,
    gpu_reduce_scatter_start,
    gpu_allgather_start,
    gpu_wait,
    gpu_broadcast,
    gpu_barrier,
    gpu_abort,
    gpu_destroy,
    NULL, /* shared */
    gpu_set_stream,
    gpu_aborted,
};

/* ---- construction ------------------------------------------------------------------------ */

/* Frees C after a failed construction, keeping the message; the host
 * transport stays the caller's (it reports, aborts the job, frees it). */
static agn_comm *fail_free(agn_comm *c)
{
    char keep[512];
    snprintf(keep, sizeof keep, "%s", agn_errmsg());
    gpu_state *gs = (gpu_state *)c->impl;
    if (!gs->broken) {
        gs->broken = 1; /* nothing is drained or finalised */
        snprintf(gs->err, sizeof gs->err, "%s", keep);
    }
#ifdef HAVE_NCCL
    if (gs->nccl) ncclCommAbort(gs->nccl);
    gs->nccl = NULL;
#endif
    gs->host = NULL;
    agn_comm_free(c);
    agn_seterr("%s", keep);
    return NULL;
}

/* The communicator around HOST with its stream and event on O->device;
 * NULL (HOST freed) with a message. */
static agn_comm *gpu_new(agn_comm *host, const agn_gpu_comm_opts *o)
{
    agn_comm *c = (agn_comm *)agn_xcalloc(1, sizeof *c);
    gpu_state *gs = (gpu_state *)agn_xcalloc(1, sizeof *gs);
    c->ops = &nccl_ops;
    c->rank = host->rank;
    c->world = host->world;
    c->local_rank = host->local_rank;
    c->local_world = host->local_world;
    c->timeout_s = host->timeout_s > 0 ? host->timeout_s : AGN_COMM_TIMEOUT_DEFAULT;
    c->impl = gs;
    gs->host = host;
    gs->device = o->device;
    gs->wire_bf16 = o->wire_bf16;
    const char *g = getenv("AGN_TEST_NCCL_GROUPED");
    gs->grouped_test = g && strcmp(g, "1") == 0;
    cudaError_t e = cudaSetDevice(o->device);
    if (e == cudaSuccess) e = cudaFree(0); /* the context, now: its errors are reported here */
    int least = 0, greatest = 0;
    if (e == cudaSuccess) e = cudaDeviceGetStreamPriorityRange(&least, &greatest);
    /* the highest priority: a reduction is not queued behind the next layer's kernels */
    if (e == cudaSuccess) e = cudaStreamCreateWithPriority(&gs->stream, cudaStreamNonBlocking, greatest);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&gs->ready, cudaEventDisableTiming);
    if (e != cudaSuccess) {
        agn_seterr("rank %d: GPU %d: %s", c->rank, o->device, cudaGetErrorString(e));
        return fail_free(c);
    }
    return c;
}

#ifdef HAVE_NCCL
static int make_id(void *ctx, unsigned char id[AGN_NCCL_ID_BYTES])
{
    (void)ctx;
    ncclUniqueId u;
    ncclResult_t r = ncclGetUniqueId(&u);
    if (r != ncclSuccess) {
        char t[400];
        return agn_seterr("ncclGetUniqueId: %s", nccl_text(NULL, r, t, sizeof t));
    }
    static_assert(sizeof u.internal == AGN_NCCL_ID_BYTES, "ncclUniqueId size");
    memcpy(id, u.internal, AGN_NCCL_ID_BYTES);
    return 0;
}

agn_comm *agn_comm_nccl_create(agn_comm *host, const agn_gpu_comm_opts *o)
{
    agn_comm *c = gpu_new(host, o);
    if (!c) return NULL;
    gpu_state *gs = (gpu_state *)c->impl;
    int version = 0;
    ncclGetVersion(&version);
    unsigned char id[AGN_NCCL_ID_BYTES];
    if (agn_nccl_bootstrap(host, version, make_id, NULL, id) != 0) {
        agn_adderr("rank %d", c->rank);
        return fail_free(c);
    }
    ncclUniqueId u;
    memcpy(u.internal, id, AGN_NCCL_ID_BYTES);
    ncclConfig_t cfg = NCCL_CONFIG_INITIALIZER;
    const char *b = getenv("AGN_NCCL_BLOCKING");
    cfg.blocking = (o->blocking || (b && strcmp(b, "1") == 0)) ? 1 : 0;
    char what[96];
    snprintf(what, sizeof what, "ncclCommInitRankConfig (%d ranks, GPU %d)", c->world, o->device);
    ncclResult_t r = ncclCommInitRankConfig(&gs->nccl, c->world, u, c->rank, &cfg);
    if (r != ncclSuccess && r != ncclInProgress) {
        char t[400];
        agn_seterr("rank %d: %s: %s", c->rank, what, nccl_text(gs->nccl, r, t, sizeof t));
        return fail_free(c);
    }
    if (settle(c, r, what) != 0) return fail_free(c);
    return c;
}

int agn_comm_nccl_built(void) { return 1; }
#endif
