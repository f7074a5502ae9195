/* commbench.c: the collective benchmark of commbench.h (agn-bench-comm),
 * after nccl-tests' common.cu: per size, a checked call, warm-up calls, a
 * barrier, then timed calls; times and error counts are gathered from every
 * rank to rank 0, which reports the mean over the ranks (nccl-tests' default,
 * -a 1) and the slowest rank's. */
#include "config.h"
#include "commbench.h"
#include "device.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_MPI
#include <mpi.h>
#endif

/* ---- definitions ------------------------------------------------------------ */

static const char *const op_names[AGN_BENCH_N_OPS] = {
    "all-reduce", "reduce-scatter", "all-gather", "broadcast",
};

const char *agn_bench_op_name(agn_bench_op op)
{
    return op >= 0 && op < AGN_BENCH_N_OPS ? op_names[op] : "?";
}

int agn_bench_op_parse(const char *s, agn_bench_op *op)
{
    for (int i = 0; i < AGN_BENCH_N_OPS; i++)
        if (strcmp(s, op_names[i]) == 0) {
            *op = (agn_bench_op)i;
            return 0;
        }
    return agn_seterr("'%s' is not all-reduce, reduce-scatter, all-gather or broadcast", s);
}

/* nccl-tests, src/all_reduce.cu, reduce_scatter.cu, all_gather.cu,
 * broadcast.cu: *GetBw(). */
double agn_bench_bus_factor(agn_bench_op op, int world)
{
    double n = world;
    switch (op) {
    case AGN_BENCH_ALLREDUCE: return 2 * (n - 1) / n;
    case AGN_BENCH_REDUCE_SCATTER:
    case AGN_BENCH_ALLGATHER: return (n - 1) / n;
    case AGN_BENCH_BROADCAST: return 1;
    default: return NAN;
    }
}

void agn_bench_bandwidth(agn_bench_op op, int world, double bytes, double sec, double *algbw,
                         double *busbw)
{
    *algbw = sec > 0 ? bytes / sec / 1e9 : NAN;
    *busbw = *algbw * agn_bench_bus_factor(op, world);
}

static uint32_t hash32(uint32_t x)
{
    x ^= x >> 16;
    x *= 0x7feb352dU;
    x ^= x >> 15;
    x *= 0x846ca68bU;
    x ^= x >> 16;
    return x;
}

double agn_bench_input(int rank, size_t i, uint32_t salt)
{
    uint32_t h = hash32((uint32_t)i ^ hash32((uint32_t)rank * 0x9e3779b9U ^ salt) ^
                        hash32((uint32_t)(i >> 32)));
    return (double)(int)(h % 2049) - 1024;
}

/* ---- buffers ------------------------------------------------------------------ */

static inline void put(void *buf, agn_dtype t, size_t i, double v)
{
    if (t == AGN_F64) ((double *)buf)[i] = v;
    else ((float *)buf)[i] = (float)v;
}

static inline double get(const void *buf, agn_dtype t, size_t i)
{
    return t == AGN_F64 ? ((const double *)buf)[i] : (double)((const float *)buf)[i];
}

/* What rank R's buffer holds after the collective: the value of index I,
 * or NAN for an index the collective leaves unspecified. */
static double expected(agn_bench_op op, int world, int r, size_t count, size_t i, uint32_t salt)
{
    size_t lo, hi;
    switch (op) {
    case AGN_BENCH_REDUCE_SCATTER:
        agn_comm_shard(count, world, r, &lo, &hi);
        if (i < lo || i >= hi) return NAN;
        /* fall through */
    case AGN_BENCH_ALLREDUCE: {
        double s = 0;
        for (int k = 0; k < world; k++) s += agn_bench_input(k, i, salt);
        return s;
    }
    case AGN_BENCH_ALLGATHER: {
        int owner = (int)(((i + 1) * (size_t)world - 1) / count); /* shard containing i */
        agn_comm_shard(count, world, owner, &lo, &hi);
        while (i < lo) agn_comm_shard(count, world, --owner, &lo, &hi);
        while (i >= hi) agn_comm_shard(count, world, ++owner, &lo, &hi);
        return agn_bench_input(owner, i, salt);
    }
    case AGN_BENCH_BROADCAST: return agn_bench_input(0, i, salt);
    default: return NAN;
    }
}

/* The buffer before the checked call: every rank's input, except where the
 * collective must overwrite (the others' shards of an all-gather, the
 * non-roots of a broadcast), which hold a value the result never has. */
static void fill(agn_bench_op op, int world, int r, void *buf, agn_dtype t, size_t count,
                 uint32_t salt)
{
    size_t lo = 0, hi = count;
    if (op == AGN_BENCH_ALLGATHER) agn_comm_shard(count, world, r, &lo, &hi);
    if (op == AGN_BENCH_BROADCAST && r != 0) hi = 0;
    for (size_t i = 0; i < count; i++)
        put(buf, t, i, i >= lo && i < hi ? agn_bench_input(r, i, salt) : 4096.5);
}

static long check(agn_bench_op op, int world, int r, const void *buf, agn_dtype t, size_t count,
                  uint32_t salt, char *first, size_t n)
{
    long wrong = 0;
    for (size_t i = 0; i < count; i++) {
        double want = expected(op, world, r, count, i, salt);
        if (isnan(want)) continue;
        double got = get(buf, t, i);
        if (got != want) {
            if (wrong == 0)
                snprintf(first, n, "rank %d: %s of %zu elements: index %zu is %.17g, expected %.17g", r,
                         agn_bench_op_name(op), count, i, got, want);
            wrong++;
        }
    }
    return wrong;
}

/* Alters one element of the checked part of the result (--corrupt). */
static void corrupt(agn_bench_op op, int world, int r, void *buf, agn_dtype t, size_t count)
{
    size_t lo = 0, hi = count;
    if (op == AGN_BENCH_REDUCE_SCATTER) agn_comm_shard(count, world, r, &lo, &hi);
    if (hi > lo) put(buf, t, hi - 1, get(buf, t, hi - 1) + 0.5);
}

/* ---- device memory (agn_bench_mem) ------------------------------------------------ */

static void *cuda_alloc(void *ctx, size_t bytes)
{
    (void)ctx;
    return agn_cuda_malloc(bytes);
}

static void cuda_release(void *ctx, void *p)
{
    (void)ctx;
    agn_cuda_free(p);
}

static int cuda_from_host(void *ctx, void *dev, const void *host, size_t bytes)
{
    return agn_cuda_from_host(dev, host, bytes, ctx);
}

static int cuda_to_host(void *ctx, void *host, const void *dev, size_t bytes)
{
    return agn_cuda_to_host(host, dev, bytes, ctx);
}

static int cuda_zero(void *ctx, void *dev, size_t bytes) { return agn_cuda_zero(dev, bytes, ctx); }

static int cuda_sync(void *ctx) { return agn_cuda_stream_sync(ctx); }

void agn_bench_cuda_mem(agn_bench_mem *m, void *stream)
{
    *m = (agn_bench_mem){.ctx = stream, .alloc = cuda_alloc, .release = cuda_release,
                         .from_host = cuda_from_host, .to_host = cuda_to_host, .zero = cuda_zero,
                         .sync = cuda_sync};
}

/* ---- one collective -------------------------------------------------------------- */

static int agn_call(agn_comm *c, agn_bench_op op, void *buf, size_t count, agn_dtype t)
{
    agn_comm_req *req = NULL;
    int rc;
    /* one rank of a transport with collectives (nccl at -g 1): call them,
     * where agn_comm_* return at once at W = 1 (and the none transport has none) */
    if (c->world == 1 && c->ops->allreduce_start) {
        switch (op) {
        case AGN_BENCH_ALLREDUCE: rc = c->ops->allreduce_start(c, buf, count, t, &req); break;
        case AGN_BENCH_REDUCE_SCATTER: rc = c->ops->reduce_scatter_start(c, buf, count, t, &req); break;
        case AGN_BENCH_ALLGATHER: rc = c->ops->allgather_start(c, buf, count, t, &req); break;
        case AGN_BENCH_BROADCAST: return c->ops->broadcast(c, buf, count, t, 0);
        default: return agn_seterr("unknown collective %d", (int)op);
        }
        if (rc != 0) return -1;
        return agn_comm_wait(c, req);
    }
    switch (op) {
    case AGN_BENCH_ALLREDUCE: rc = agn_comm_allreduce_start(c, buf, count, t, &req); break;
    case AGN_BENCH_REDUCE_SCATTER: rc = agn_comm_reduce_scatter_start(c, buf, count, t, &req); break;
    case AGN_BENCH_ALLGATHER: rc = agn_comm_allgather_start(c, buf, count, t, &req); break;
    case AGN_BENCH_BROADCAST: return agn_comm_broadcast(c, buf, count, t, 0);
    default: return agn_seterr("unknown collective %d", (int)op);
    }
    if (rc != 0) return -1;
    return agn_comm_wait(c, req);
}

#ifdef HAVE_MPI
static int mpi_call(void *buf, size_t count, agn_dtype t)
{
    if (count > (size_t)2147483647) return agn_seterr("MPI_Allreduce: %zu elements is too many", count);
    int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)count, t == AGN_F64 ? MPI_DOUBLE : MPI_FLOAT,
                           MPI_SUM, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        char s[MPI_MAX_ERROR_STRING];
        int n = 0;
        MPI_Error_string(rc, s, &n);
        return agn_seterr("MPI_Allreduce: %s", s);
    }
    return 0;
}
#endif

/* One row: the checked call, warm-up, timed calls; on every rank.  NATIVE:
 * MPI_Allreduce instead of the transport.  BUF is host memory; the
 * collectives run on DBUF, o->mem's, when there is one (the checked call's
 * input and result copied through BUF), else on BUF.  *T gets this rank's
 * mean time, *WRONG its error count (-1 unchecked). */
static int measure(agn_comm *c, const agn_bench_opts *o, agn_bench_op op, int native, void *buf,
                   void *dbuf, size_t count, uint32_t salt, double *t, long *wrong)
{
    agn_dtype dt = o->dtype;
    size_t es = agn_dtype_size(dt);
    const agn_bench_mem *m = o->mem;
    void *cbuf = m ? dbuf : buf;
    int (*call)(agn_comm *, agn_bench_op, void *, size_t, agn_dtype) = agn_call;
#ifdef HAVE_MPI
#define CALL() (native ? mpi_call(cbuf, count, dt) : call(c, op, cbuf, count, dt))
#else
#define CALL() (native ? agn_seterr("MPI_Allreduce: not built with MPI") : call(c, op, cbuf, count, dt))
#endif
    *wrong = -1;
    if (o->check) {
        char first[256] = "";
        fill(op, c->world, c->rank, buf, dt, count, salt);
        if (m && m->from_host(m->ctx, dbuf, buf, count * es) != 0) return -1;
        if (CALL() != 0) return -1;
        if (m && m->to_host(m->ctx, buf, dbuf, count * es) != 0) return -1;
        if (c->rank == o->corrupt_rank) corrupt(op, c->world, c->rank, buf, dt, count);
        *wrong = check(op, c->world, c->rank, buf, dt, count, salt, first, sizeof first);
        if (*wrong && o->on_wrong) {
            char msg[400];
            snprintf(msg, sizeof msg, "%s (%ld wrong)%s", first, *wrong, native ? " (MPI_Allreduce)" : "");
            o->on_wrong(msg);
        }
    }
    /* timed calls reduce zeros: the values stay finite however many calls */
    if (m) {
        if (m->zero(m->ctx, dbuf, count * es) != 0) return -1;
    } else {
        memset(buf, 0, count * es);
    }
    for (long i = 0; i < o->warmup; i++)
        if (CALL() != 0) return -1;
    /* the device idle before the clock starts, and done before it is read */
    if (m && m->sync(m->ctx) != 0) return -1;
    if (agn_comm_barrier(c) != 0) return -1;
    double t0 = agn_now();
    for (long i = 0; i < o->iters; i++)
        if (CALL() != 0) return -1;
    if (m && m->sync(m->ctx) != 0) return -1;
    *t = (agn_now() - t0) / (double)o->iters;
#undef CALL
    return 0;
}

/* ---- the sweep -------------------------------------------------------------------- */

int agn_bench_run(agn_comm *c, const agn_bench_opts *o,
                  int (*emit)(const agn_bench_row *row, void *ctx), void *ctx)
{
    agn_dtype dt = o->dtype;
    size_t es = agn_dtype_size(dt);
    int W = c->world;
    if (o->min_bytes < 1 || o->max_bytes < o->min_bytes || o->step_factor < 2 || o->iters < 1 ||
        o->warmup < 0 || (dt != AGN_F32 && dt != AGN_F64))
        return agn_seterr("commbench: bad options");
    if (o->mem && o->mpi_allreduce) return agn_seterr("commbench: MPI_Allreduce is timed on host memory only");
    size_t max_count = (size_t)(o->max_bytes / es);
    void *buf = agn_xalloc_aligned(max_count ? max_count * es : 64), *dbuf = NULL;
    if (o->mem && !(dbuf = o->mem->alloc(o->mem->ctx, max_count ? max_count * es : 64))) {
        free(buf);
        return agn_adderr("rank %d: the benchmark's device buffer", c->rank);
    }
    double *gather = agn_xcalloc(2 * (size_t)W, sizeof *gather); /* [W] (time, wrong) */
    int rc = 0;
    uint32_t salt = 1;
    for (uint64_t b = o->min_bytes; b <= o->max_bytes && rc == 0; ) {
        size_t count = (size_t)(b / es);
        for (int op = 0; op < AGN_BENCH_N_OPS && rc == 0 && count; op++) {
            if (!(o->ops & (1u << op))) continue;
            for (int native = 0; native <= (op == AGN_BENCH_ALLREDUCE && o->mpi_allreduce) && rc == 0; native++) {
                double t;
                long wrong;
                if (measure(c, o, (agn_bench_op)op, native, buf, dbuf, count, salt++, &t, &wrong) != 0) {
                    rc = -1;
                    break;
                }
                gather[2 * c->rank] = t;
                gather[2 * c->rank + 1] = (double)wrong;
                agn_comm_req *req;
                if (agn_comm_allgather_start(c, gather, 2 * (size_t)W, AGN_F64, &req) != 0 ||
                    agn_comm_wait(c, req) != 0) {
                    rc = -1;
                    break;
                }
                double stop = 0;
                if (c->rank == 0) {
                    agn_bench_row r = {
                        .transport = c->ops->name, .impl = native ? "MPI_Allreduce" : "agn",
                        .op = (agn_bench_op)op, .world = W, .dtype = dt, .bytes = (uint64_t)count * es,
                        .count = count, .iters = o->iters, .time_s = 0, .time_max_s = 0, .wrong = 0,
                    };
                    for (int k = 0; k < W; k++) {
                        r.time_s += gather[2 * k] / W;
                        if (gather[2 * k] > r.time_max_s) r.time_max_s = gather[2 * k];
                        if (gather[2 * k + 1] < 0) r.wrong = -1;
                        else if (r.wrong >= 0) r.wrong += (long)gather[2 * k + 1];
                    }
                    agn_bench_bandwidth(r.op, W, (double)r.bytes, r.time_s, &r.algbw, &r.busbw);
                    if (emit(&r, ctx) != 0) stop = 1;
                }
                if (agn_comm_broadcast(c, &stop, 1, AGN_F64, 0) != 0) {
                    rc = -1;
                    break;
                }
                if (stop) {
                    rc = 1;
                    break;
                }
            }
        }
        if (b > UINT64_MAX / (uint64_t)o->step_factor) break;
        b *= (uint64_t)o->step_factor;
    }
    free(gather);
    free(buf);
    /* after a failed collective the device may still use it (an aborted
     * NCCL kernel): left to the process's exit, as the transport leaves its own */
    if (dbuf && rc >= 0) o->mem->release(o->mem->ctx, dbuf);
    return rc < 0 ? -1 : 0;
}

/* ---- MPI ------------------------------------------------------------------------------ */

#ifdef HAVE_MPI
static int mpi_inited_here;

int agn_bench_have_mpi(void) { return 1; }

int agn_bench_mpi_init(void)
{
    int inited = 0, provided = 0;
    MPI_Initialized(&inited);
    if (inited) return 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        return agn_seterr("MPI_Init_thread failed");
    mpi_inited_here = 1;
    if (provided < MPI_THREAD_SERIALIZED)
        return agn_seterr("MPI provides thread level %d, MPI_THREAD_SERIALIZED (%d) is needed", provided,
                          MPI_THREAD_SERIALIZED);
    return 0;
}

void agn_bench_mpi_finalize(void)
{
    int fin = 0;
    if (!mpi_inited_here) return;
    MPI_Finalized(&fin);
    if (!fin) MPI_Finalize();
    mpi_inited_here = 0;
}
#else
int agn_bench_have_mpi(void) { return 0; }
int agn_bench_mpi_init(void) { return agn_seterr("agn was built without MPI"); }
void agn_bench_mpi_finalize(void) {}
#endif

/* ---- output ----------------------------------------------------------------------------- */

static const char *dtype_name(agn_dtype t) { return t == AGN_F64 ? "f64" : "f32"; }

void agn_bench_table_header(FILE *fp, const char *transport, int world, const agn_bench_opts *o)
{
    fprintf(fp, "# agn-bench-comm: transport %s, %d rank%s, %s, %ld warm-up + %ld timed calls a size, check %s\n",
            transport, world, world == 1 ? "" : "s", dtype_name(o->dtype), o->warmup, o->iters,
            o->check ? "on" : "off");
    fprintf(fp, "# time: mean of one call, averaged over the ranks; algbw = size / time; "
                "busbw = algbw * factor (nccl-tests)\n");
    fprintf(fp, "#\n# %12s %12s %-14s %-13s %11s %11s %11s %8s\n", "size(B)", "count", "op", "impl",
            "time(us)", "algbw(GB/s)", "busbw(GB/s)", "#wrong");
}

void agn_bench_table_row(FILE *fp, const agn_bench_row *r)
{
    char wrong[32];
    if (r->wrong < 0) snprintf(wrong, sizeof wrong, "N/A");
    else snprintf(wrong, sizeof wrong, "%ld", r->wrong);
    fprintf(fp, "  %12llu %12zu %-14s %-13s %11.2f %11.3f %11.3f %8s\n", (unsigned long long)r->bytes,
            r->count, agn_bench_op_name(r->op), r->impl, r->time_s * 1e6, r->algbw, r->busbw, wrong);
}

void agn_bench_csv_row(FILE *fp, const agn_bench_row *r)
{
    fprintf(fp, "%s,%s,%s,%d,%s,%llu,%zu,%ld,%.9g,%.9g,%.9g,%.9g,%ld\n", r->transport, r->impl,
            agn_bench_op_name(r->op), r->world, dtype_name(r->dtype), (unsigned long long)r->bytes,
            r->count, r->iters, r->time_s * 1e6, r->time_max_s * 1e6, r->algbw, r->busbw, r->wrong);
}
