/* comm_staged.c: the "staged" transport (comm.h): collectives on the
 * buffers of a model that lives in device memory, carried out by a host
 * transport (local or mpi) through host staging buffers.  It lets CUDA ranks
 * that cannot use NCCL (two ranks on one GPU, which NCCL refuses; a machine
 * without NCCL) train together, at the cost of a device-to-host and a
 * host-to-device copy per collective: a correctness path, not a fast one.
 *
 * A collective copies what the host transport needs of the buffer to a
 * staging buffer (after the device's queued work: the copier waits for it),
 * starts the host collective on it, and on wait copies back what the
 * collective produced: the whole buffer after an all-reduce, an all-gather
 * or a broadcast, this rank's shard after a reduce-scatter.  Requests
 * complete in the order they were started, as the host transport's do. */
#include "config.h"
#include "comm.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>

typedef struct stage {
    agn_comm_req *inner; /* the host transport's request, handed to the caller */
    void *dev;           /* the caller's buffer */
    unsigned char *host; /* its staging copy */
    size_t off, bytes;   /* what to copy back on wait */
    struct stage *next;
} stage;

typedef struct {
    agn_comm *host;
    agn_comm_copier cp;
    stage *head, *tail;
    stage *blocking; /* a blocking call's stage (broadcast) */
} staged;

#define S(c) ((staged *)(c)->impl)

static stage *stage_new(agn_comm *c, void *buf, size_t in_off, size_t in_bytes, size_t total)
{
    stage *s = agn_xcalloc(1, sizeof *s);
    s->dev = buf;
    s->host = agn_xalloc_aligned(total ? total : 1);
    if (in_bytes && S(c)->cp.to_host(S(c)->cp.ctx, s->host + in_off, (unsigned char *)buf + in_off, in_bytes) != 0) {
        free(s->host);
        free(s);
        return NULL;
    }
    return s;
}

static void stage_free(stage *s)
{
    free(s->host);
    free(s);
}

/* Starts OP on a staging copy of BUF; the request is the host transport's. */
static int start(agn_comm *c, int op, void *buf, size_t count, agn_dtype t, agn_comm_req **req)
{
    size_t es = agn_dtype_size(t), lo, hi;
    agn_comm_shard(count, c->world, c->rank, &lo, &hi);
    /* what the host collective reads, and what it produces for this rank */
    size_t in_off = 0, in_n = count, out_off = 0, out_n = count;
    if (op == 1) { /* reduce-scatter: every element in, this rank's shard out */
        out_off = lo;
        out_n = hi - lo;
    } else if (op == 2) { /* all-gather: this rank's shard in, every element out */
        in_off = lo;
        in_n = hi - lo;
    }
    stage *s = stage_new(c, buf, in_off * es, in_n * es, count * es);
    if (!s) return -1;
    s->off = out_off * es;
    s->bytes = out_n * es;
    agn_comm *h = S(c)->host;
    int rc = op == 0   ? agn_comm_allreduce_start(h, s->host, count, t, &s->inner)
             : op == 1 ? agn_comm_reduce_scatter_start(h, s->host, count, t, &s->inner)
                       : agn_comm_allgather_start(h, s->host, count, t, &s->inner);
    if (rc != 0) {
        stage_free(s);
        return -1;
    }
    if (S(c)->tail) S(c)->tail->next = s;
    else S(c)->head = s;
    S(c)->tail = s;
    *req = s->inner;
    return 0;
}

static int staged_allreduce(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req)
{
    return start(c, 0, buf, count, t, req);
}

static int staged_reduce_scatter(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req)
{
    return start(c, 1, buf, count, t, req);
}

static int staged_allgather(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req)
{
    return start(c, 2, buf, count, t, req);
}

static int staged_wait(agn_comm *c, agn_comm_req *req)
{
    staged *st = S(c);
    stage *prev = NULL, *s = st->head;
    while (s && s->inner != req) {
        prev = s;
        s = s->next;
    }
    if (!s) return agn_seterr("staged transport: waiting for a request it did not start");
    int rc = agn_comm_wait(st->host, req);
    if (rc == 0 && s->bytes)
        rc = st->cp.from_host(st->cp.ctx, (unsigned char *)s->dev + s->off, s->host + s->off, s->bytes);
    if (prev) prev->next = s->next;
    else st->head = s->next;
    if (st->tail == s) st->tail = prev;
    stage_free(s);
    return rc;
}

static int staged_broadcast(agn_comm *c, void *buf, size_t count, agn_dtype t, int root)
{
    size_t bytes = count * agn_dtype_size(t);
    stage *s = stage_new(c, buf, 0, c->rank == root ? bytes : 0, bytes);
    if (!s) return -1;
    int rc = agn_comm_broadcast(S(c)->host, s->host, count, t, root);
    if (rc == 0 && c->rank != root) rc = S(c)->cp.from_host(S(c)->cp.ctx, buf, s->host, bytes);
    stage_free(s);
    return rc;
}

static int staged_barrier(agn_comm *c) { return agn_comm_barrier(S(c)->host); }

static void staged_abort(agn_comm *c, const char *why) { agn_comm_abort(S(c)->host, why); }

static void staged_destroy(agn_comm *c)
{
    staged *st = S(c);
    while (st->head) {
        stage *n = st->head->next;
        stage_free(st->head);
        st->head = n;
    }
    free(st); /* the host transport is the caller's */
}

static const agn_comm_ops staged_ops = {
    .name = "staged",
    .allreduce_start = staged_allreduce,
    .reduce_scatter_start = staged_reduce_scatter,
    .allgather_start = staged_allgather,
    .wait = staged_wait,
    .broadcast = staged_broadcast,
    .barrier = staged_barrier,
    .abort = staged_abort,
    .destroy = staged_destroy,
    .shared = NULL,
};

agn_comm *agn_comm_staged_create(agn_comm *host, const agn_comm_copier *cp)
{
    agn_comm *c = agn_xcalloc(1, sizeof *c);
    staged *st = agn_xcalloc(1, sizeof *st);
    st->host = host;
    st->cp = *cp;
    c->ops = &staged_ops;
    c->rank = host->rank;
    c->world = host->world;
    c->local_rank = host->local_rank;
    c->local_world = host->local_world;
    c->timeout_s = host->timeout_s;
    c->impl = st;
    return c;
}
