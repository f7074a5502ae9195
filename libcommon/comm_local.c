/* comm_local.c: the "local" transport, for ranks forked on one host.  The
 * parent maps one shared segment before it forks (agn_local_seg_create), so
 * every rank inherits it; each rank runs its collectives on a communication
 * thread (comm_impl.h) so that backward overlaps the all-reduce.
 *
 * Segment: a control page (a barrier, the abort flag and its message, a
 * per-rank count of barrier arrivals for diagnostics), then W input slots,
 * one per rank, and two output slots used alternately.  A buffer longer than
 * a slot is processed in pieces of one slot.  Beside it, an anonymous memory
 * file (memfd_create), also made before the fork: the memory of
 * agn_comm_shared(), whose size is known only once the ranks have read
 * their data, so each rank sizes the file (the same size: ftruncate is then
 * idempotent) and maps it.  It has no name either and goes with the last
 * process.
 *
 * Reduce-scatter and all-gather (for the sharded optimizer, zero.h) are
 * described with their code below.
 *
 * All-reduce of one piece, reduce-scatter then all-gather through memory:
 *   1. rank r copies its piece into in[r];             barrier
 *   2. rank r sums chunk r of every in[k], k = 0..W-1 in that order, into
 *      out[p % 2] (chunk r = elements [n*r/W, n*(r+1)/W));  barrier
 *   3. rank r copies the whole out[p % 2] back into its buffer.
 * Each element is (((x0 + x1) + x2) + ...) whatever the timing: the result is
 * deterministic, bit-identical on every rank, and equal to a serial sum in
 * rank order.  Two barriers a piece suffice: in[r] is rewritten only after
 * the barrier that ends every read of it, and the output slots alternate, so
 * the piece p+2 that reuses out[p % 2] starts after the barrier every rank
 * reaches only when done copying piece p out.  Broadcast stages through the
 * same alternating output slots with one barrier a piece.
 *
 * Waiting: a generation barrier on a futex word (a spin of 100 pauses first:
 * longer spins steal the cores from the compute of ranks sharing them), woken
 * by the last arrival, by an abort, and every 100 ms to check the deadline.
 * Every wait times out after the communicator's timeout; a rank that times
 * out or fails aborts the segment, so the others fail at their next wait with
 * the first cause instead of waiting out their own timeout.  The launcher
 * (launch.c) aborts the segment when a rank dies. */
#define _GNU_SOURCE /* memfd_create */
#include "config.h"
#include "comm.h"
#include "comm_impl.h"
#include "util.h"

#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define LOCAL_MAX_WORLD 256
#define SLOT_DEFAULT ((size_t)4 << 20)
#ifndef SPIN_ITERS
#define SPIN_ITERS 100
#endif
#define WAIT_SLICE_NS 100000000L

/* ---- the segment ---------------------------------------------------------- */

typedef struct {
    _Atomic uint32_t gen;     /* futex word: barrier generation */
    _Atomic uint32_t count;   /* arrivals in this generation */
    _Atomic uint32_t aborted; /* 0; 1 while the message is written; 2 */
    int32_t abort_rank;       /* who aborted, -1: the supervisor */
    uint32_t world;
    uint64_t slot_bytes;
    char why[512];
    _Atomic uint64_t arrived[LOCAL_MAX_WORLD]; /* barriers entered per rank */
} seg_ctl;

struct agn_local_seg {
    unsigned char *base;
    size_t bytes;
    seg_ctl *ctl;
    int world;
    size_t slot; /* bytes, multiple of 64 */
    size_t ctl_bytes;
    int memfd;   /* agn_comm_shared(); -1 where memfd_create is missing */
};

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

agn_local_seg *agn_local_seg_create(int world, size_t slot_bytes)
{
    if (world < 1 || world > LOCAL_MAX_WORLD)
        return agn_seterr("local transport: %d ranks (1 to %d)", world, LOCAL_MAX_WORLD), NULL;
    /* at least 64 bytes a rank: reduce-scatter moves slot / W per owner */
    size_t slot = round_up(slot_bytes ? slot_bytes : SLOT_DEFAULT, 64 * (size_t)world);
    size_t ctl_bytes = round_up(sizeof(seg_ctl), 4096);
    size_t bytes = ctl_bytes + ((size_t)world + 2) * slot;
    /* Anonymous and shared: inherited across fork, never named, so nothing
     * can be left in /dev/shm, and not limited by the size of /dev/shm
     * (64 MiB in many containers, where a named segment would SIGBUS). */
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return agn_seterr_errno("local transport: cannot map %zu bytes", bytes), NULL;
    agn_local_seg *s = agn_xcalloc(1, sizeof *s);
    s->base = p;
    s->bytes = bytes;
    s->ctl = p;
    s->world = world;
    s->slot = slot;
    s->ctl_bytes = ctl_bytes;
    s->ctl->world = (uint32_t)world;
    s->ctl->slot_bytes = slot;
    /* without it (a kernel before 3.17, a seccomp filter) ranks keep private
     * copies: slower, not wrong */
    s->memfd = memfd_create("agn-shared", MFD_CLOEXEC);
    return s;
}

void agn_local_seg_free(agn_local_seg *s)
{
    if (!s) return;
    munmap(s->base, s->bytes);
    if (s->memfd >= 0) close(s->memfd);
    free(s);
}

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
    /* not FUTEX_PRIVATE_FLAG: the word is shared between processes */
    return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

void agn_local_seg_abort(agn_local_seg *s, int rank, const char *why)
{
    uint32_t zero = 0;
    if (atomic_compare_exchange_strong(&s->ctl->aborted, &zero, 1)) {
        snprintf(s->ctl->why, sizeof s->ctl->why, "%s", why);
        s->ctl->abort_rank = rank;
        atomic_store(&s->ctl->aborted, 2);
    }
    /* wake every barrier waiter: they see the flag (one that is just about
     * to sleep sees it at the end of its 100 ms slice) */
    futex(&s->ctl->gen, FUTEX_WAKE, INT_MAX, NULL);
}

const char *agn_local_seg_aborted(agn_local_seg *s, int *rank)
{
    if (atomic_load(&s->ctl->aborted) != 2) return NULL;
    if (rank) *rank = s->ctl->abort_rank;
    return s->ctl->why;
}

static unsigned char *slot_in(agn_local_seg *s, int r) { return s->base + s->ctl_bytes + (size_t)r * s->slot; }
static unsigned char *slot_out(agn_local_seg *s, unsigned parity)
{
    return s->base + s->ctl_bytes + ((size_t)s->world + (parity & 1)) * s->slot;
}

/* ---- the communicator ----------------------------------------------------- */

typedef struct {
    agn_engine engine; /* first: AGN_ENGINE() */
    agn_local_seg *seg;
    unsigned parity;   /* output slot of the next piece, same on every rank */
    uint64_t nbarrier; /* barriers this rank entered */
    void *shared;      /* agn_comm_shared() */
    size_t shared_bytes;
} local_state;

static int aborted_err(agn_local_seg *s, const char *what)
{
    uint32_t a = atomic_load(&s->ctl->aborted);
    /* the message is complete once the flag reads 2; 1 lasts a few stores */
    for (int i = 0; a == 1 && i < 1000000; i++) a = atomic_load(&s->ctl->aborted);
    return agn_seterr("%s: %s", what, a == 2 ? s->ctl->why : "the job was aborted");
}

/* The ranks that have entered fewer barriers than MINE: those being waited for. */
static void late_ranks(agn_local_seg *s, uint64_t mine, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int k = 0; k < s->world && len + 16 < n; k++)
        if (atomic_load(&s->ctl->arrived[k]) < mine)
            len += (size_t)snprintf(buf + len, n - len, "%s%d", len ? ", " : "", k);
    if (!len) snprintf(buf, n, "?");
}


/* The spin-wait hint of the processor: PAUSE on x86, YIELD on Arm. */
static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__) || defined(__arm__)
    __asm__ __volatile__("yield");
#endif
}

static int barrier(agn_comm *c, local_state *ls, const char *what)
{
    agn_local_seg *s = ls->seg;
    seg_ctl *ctl = s->ctl;
    if (atomic_load(&ctl->aborted)) return aborted_err(s, what);
    uint64_t mine = ++ls->nbarrier;
    atomic_store(&ctl->arrived[c->rank], mine);
    uint32_t g = atomic_load(&ctl->gen);
    if (atomic_fetch_add(&ctl->count, 1) == (uint32_t)s->world - 1) {
        atomic_store(&ctl->count, 0);
        atomic_fetch_add(&ctl->gen, 1);
        futex(&ctl->gen, FUTEX_WAKE, INT_MAX, NULL);
        return 0;
    }
    for (int i = 0; i < SPIN_ITERS; i++) {
        if (atomic_load_explicit(&ctl->gen, memory_order_acquire) != g) return 0;
        cpu_relax();
    }
    double deadline = agn_now() + (c->timeout_s > 0 ? c->timeout_s : AGN_COMM_TIMEOUT_DEFAULT);
    while (atomic_load(&ctl->gen) == g) {
        if (atomic_load(&ctl->aborted)) return aborted_err(s, what);
        double left = deadline - agn_now();
        if (left <= 0) {
            char late[256], msg[512], others[600];
            late_ranks(s, mine, late, sizeof late);
            snprintf(msg, sizeof msg, "%s timed out after %g s waiting for rank(s) %s (see --comm-timeout)",
                     what, c->timeout_s > 0 ? c->timeout_s : AGN_COMM_TIMEOUT_DEFAULT, late);
            /* the others learn who gave up */
            snprintf(others, sizeof others, "rank %d: %s", c->rank, msg);
            agn_local_seg_abort(s, c->rank, others);
            return agn_seterr("%s", msg);
        }
        long ns = left < 0.1 ? (long)(left * 1e9) + 1 : WAIT_SLICE_NS;
        struct timespec ts = {ns / 1000000000L, ns % 1000000000L};
        futex(&ctl->gen, FUTEX_WAIT, g, &ts);
    }
    return 0;
}

/* DST[0..N) = in[0] + in[1] + ... + in[W-1] (left to right), reading N
 * elements of every input slot from element OFF.  DST may be private
 * memory or an output slot. */
static void sum_slots(agn_local_seg *s, unsigned char *dst, size_t off, size_t n, agn_dtype t)
{
    const size_t blk = 2048; /* elements; keeps the partial sums in L1 */
    for (size_t b = 0; b < n; b += blk) {
        size_t m = n - b < blk ? n - b : blk;
        size_t o = off + b;
        switch (t) {
        case AGN_F32: {
            float *restrict y = (float *)dst + b;
            memcpy(y, (float *)slot_in(s, 0) + o, m * sizeof *y);
            for (int k = 1; k < s->world; k++) {
                const float *restrict x = (const float *)slot_in(s, k) + o;
                for (size_t i = 0; i < m; i++) y[i] += x[i];
            }
            break;
        }
        case AGN_F64: {
            double *restrict y = (double *)dst + b;
            memcpy(y, (double *)slot_in(s, 0) + o, m * sizeof *y);
            for (int k = 1; k < s->world; k++) {
                const double *restrict x = (const double *)slot_in(s, k) + o;
                for (size_t i = 0; i < m; i++) y[i] += x[i];
            }
            break;
        }
        case AGN_U8: {
            uint8_t *restrict y = dst + b;
            memcpy(y, slot_in(s, 0) + o, m);
            for (int k = 1; k < s->world; k++) {
                const uint8_t *restrict x = slot_in(s, k) + o;
                for (size_t i = 0; i < m; i++) y[i] = (uint8_t)(y[i] + x[i]);
            }
            break;
        }
        }
    }
}

static int local_allreduce(agn_comm *c, local_state *ls, unsigned char *buf, size_t count, agn_dtype t)
{
    agn_local_seg *s = ls->seg;
    size_t es = agn_dtype_size(t);
    size_t per = s->slot / es; /* elements a piece */
    int W = s->world, r = c->rank;
    for (size_t done = 0; done < count; done += per) {
        size_t n = count - done < per ? count - done : per;
        unsigned char *out = slot_out(s, ls->parity++);
        memcpy(slot_in(s, r), buf + done * es, n * es);
        if (barrier(c, ls, "all-reduce") != 0) return -1;
        size_t lo = n * (size_t)r / (size_t)W, hi = n * (size_t)(r + 1) / (size_t)W;
        sum_slots(s, out + lo * es, lo, hi - lo, t);
        if (barrier(c, ls, "all-reduce") != 0) return -1;
        memcpy(buf + done * es, out, n * es);
    }
    return 0;
}

/* Reduce-scatter and all-gather move each owner's shard (agn_comm_shard)
 * in rounds: in round j every owner's j-th piece of P = slot / W bytes, so
 * that every rank works in every round.
 * Reduce-scatter, round j: rank k copies piece j of owner r's shard into
 * in[k] at r * P, for every r;  barrier;  owner r sums in[0..W-1] at r * P in
 * rank order straight into its own buffer;  barrier (in[] is rewritten next
 * round).  All-gather, round j: owner r copies its piece j into
 * out[p % 2] at r * P;  barrier;  every rank copies the other pieces out
 * (the output slots alternate, as in broadcast). */
static size_t round_piece(size_t lo, size_t hi, size_t j, size_t per, size_t *off)
{
    *off = lo + j * per;
    return *off >= hi ? 0 : (hi - *off < per ? hi - *off : per);
}

static size_t shard_rounds(size_t count, int W, size_t per)
{
    size_t most = (count + (size_t)W - 1) / (size_t)W;
    return (most + per - 1) / per;
}

static int local_reduce_scatter(agn_comm *c, local_state *ls, unsigned char *buf, size_t count,
                                agn_dtype t)
{
    agn_local_seg *s = ls->seg;
    int W = s->world, r = c->rank;
    size_t es = agn_dtype_size(t), per = s->slot / (size_t)W / es, off, n;
    size_t rounds = shard_rounds(count, W, per);
    for (size_t j = 0; j < rounds; j++) {
        for (int k = 0; k < W; k++) {
            size_t lo, hi;
            agn_comm_shard(count, W, k, &lo, &hi);
            n = round_piece(lo, hi, j, per, &off);
            if (n) memcpy(slot_in(s, r) + (size_t)k * per * es, buf + off * es, n * es);
        }
        if (barrier(c, ls, "reduce-scatter") != 0) return -1;
        size_t lo, hi;
        agn_comm_shard(count, W, r, &lo, &hi);
        n = round_piece(lo, hi, j, per, &off);
        if (n) sum_slots(s, buf + off * es, (size_t)r * per, n, t);
        if (barrier(c, ls, "reduce-scatter") != 0) return -1;
    }
    return 0;
}

static int local_allgather(agn_comm *c, local_state *ls, unsigned char *buf, size_t count,
                           agn_dtype t)
{
    agn_local_seg *s = ls->seg;
    int W = s->world, r = c->rank;
    size_t es = agn_dtype_size(t), per = s->slot / (size_t)W / es, off, n, lo, hi;
    size_t rounds = shard_rounds(count, W, per);
    for (size_t j = 0; j < rounds; j++) {
        unsigned char *out = slot_out(s, ls->parity++);
        agn_comm_shard(count, W, r, &lo, &hi);
        n = round_piece(lo, hi, j, per, &off);
        if (n) memcpy(out + (size_t)r * per * es, buf + off * es, n * es);
        if (barrier(c, ls, "all-gather") != 0) return -1;
        for (int k = 0; k < W; k++) {
            if (k == r) continue;
            agn_comm_shard(count, W, k, &lo, &hi);
            n = round_piece(lo, hi, j, per, &off);
            if (n) memcpy(buf + off * es, out + (size_t)k * per * es, n * es);
        }
    }
    return 0;
}

static int local_broadcast(agn_comm *c, local_state *ls, unsigned char *buf, size_t count,
                           agn_dtype t, int root)
{
    agn_local_seg *s = ls->seg;
    size_t es = agn_dtype_size(t);
    size_t per = s->slot / es;
    for (size_t done = 0; done < count; done += per) {
        size_t n = count - done < per ? count - done : per;
        unsigned char *out = slot_out(s, ls->parity++);
        if (c->rank == root) memcpy(out, buf + done * es, n * es);
        if (barrier(c, ls, "broadcast") != 0) return -1;
        if (c->rank != root) memcpy(buf + done * es, out, n * es);
    }
    return 0;
}

static int local_exec(agn_comm *c, struct agn_comm_req *r)
{
    local_state *ls = c->impl;
    switch (r->op) {
    case AGN_OP_ALLREDUCE: return local_allreduce(c, ls, r->buf, r->count, r->type);
    case AGN_OP_REDUCE_SCATTER: return local_reduce_scatter(c, ls, r->buf, r->count, r->type);
    case AGN_OP_ALLGATHER: return local_allgather(c, ls, r->buf, r->count, r->type);
    case AGN_OP_BROADCAST: return local_broadcast(c, ls, r->buf, r->count, r->type, r->root);
    case AGN_OP_BARRIER: return barrier(c, ls, "barrier");
    }
    return agn_seterr("local transport: unknown operation %d", r->op);
}

static int local_shared(agn_comm *c, size_t bytes, void **ptr)
{
    local_state *ls = c->impl;
    int fd = ls->seg->memfd;
    if (ls->shared) return agn_seterr("local transport: shared memory asked for twice");
    if (fd < 0 || bytes == 0) return 0;
    /* every rank sets the same size, before or after the others: the file
     * is zero-filled once and never shrinks under a rank that mapped it */
    if (ftruncate(fd, (off_t)bytes) != 0)
        return agn_seterr_errno("local transport: cannot size %zu bytes of shared memory", bytes);
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p == MAP_FAILED) return agn_seterr_errno("local transport: cannot map %zu bytes of shared memory", bytes);
    ls->shared = *ptr = p;
    ls->shared_bytes = bytes;
    return 0;
}

static void local_abort(agn_comm *c, const char *why)
{
    local_state *ls = c->impl;
    char msg[512];
    snprintf(msg, sizeof msg, "rank %d aborted: %s", c->rank, why);
    agn_local_seg_abort(ls->seg, c->rank, msg);
    agn_engine_break(&ls->engine, msg);
}

static const char *local_aborted(agn_comm *c, int *rank)
{
    local_state *ls = c->impl;
    return agn_local_seg_aborted(ls->seg, rank);
}

static void local_destroy(agn_comm *c)
{
    local_state *ls = c->impl;
    if (!ls) return;
    agn_engine_stop(&ls->engine);
    if (ls->shared) munmap(ls->shared, ls->shared_bytes);
    agn_local_seg_free(ls->seg);
    free(ls);
    c->impl = NULL;
}

static const agn_comm_ops local_ops = {
    .name = "local",
    .allreduce_start = agn_engine_allreduce_start,
    .reduce_scatter_start = agn_engine_reduce_scatter_start,
    .allgather_start = agn_engine_allgather_start,
    .wait = agn_engine_wait_op,
    .broadcast = agn_engine_broadcast,
    .barrier = agn_engine_barrier,
    .abort = local_abort,
    .destroy = local_destroy,
    .shared = local_shared,
    .aborted = local_aborted,
};

agn_comm *agn_comm_local_create(agn_local_seg *seg, int rank, double timeout_s)
{
    if (rank < 0 || rank >= seg->world) {
        agn_seterr("local transport: rank %d of %d", rank, seg->world);
        return NULL;
    }
    agn_comm *c = agn_xcalloc(1, sizeof *c);
    local_state *ls = agn_xcalloc(1, sizeof *ls);
    ls->seg = seg;
    c->ops = &local_ops;
    c->rank = c->local_rank = rank;
    c->world = c->local_world = seg->world;
    c->timeout_s = timeout_s > 0 ? timeout_s : AGN_COMM_TIMEOUT_DEFAULT;
    c->impl = ls;
    if (agn_engine_start(&ls->engine, c, local_exec, NULL) != 0) {
        free(ls);
        free(c);
        return NULL;
    }
    return c;
}
