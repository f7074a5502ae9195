/* comm.c: the dispatch of comm.h, the one-rank transport, and the
 * communication thread (comm_impl.h) that the CPU transports share. */
#include "config.h"
#include "comm.h"
#include "comm_impl.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

size_t agn_dtype_size(agn_dtype t)
{
    switch (t) {
    case AGN_F32: return 4;
    case AGN_F64: return 8;
    case AGN_U8: return 1;
    }
    return 0;
}

int agn_comm_allreduce_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                             agn_comm_req **req)
{
    *req = NULL;
    if (c->world == 1) return 0;
    return c->ops->allreduce_start(c, buf, count, t, req);
}

void agn_comm_shard(size_t count, int world, int rank, size_t *lo, size_t *hi)
{
    *lo = count * (size_t)rank / (size_t)world;
    *hi = count * (size_t)(rank + 1) / (size_t)world;
}

int agn_comm_reduce_scatter_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                                  agn_comm_req **req)
{
    *req = NULL;
    if (c->world == 1) return 0;
    return c->ops->reduce_scatter_start(c, buf, count, t, req);
}

int agn_comm_allgather_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                             agn_comm_req **req)
{
    *req = NULL;
    if (c->world == 1) return 0;
    return c->ops->allgather_start(c, buf, count, t, req);
}

int agn_comm_wait(agn_comm *c, agn_comm_req *req)
{
    if (!req) return 0;
    return c->ops->wait(c, req);
}

int agn_comm_allreduce(agn_comm *c, void *buf, size_t count, agn_dtype t)
{
    agn_comm_req *req;
    if (agn_comm_allreduce_start(c, buf, count, t, &req) != 0) return -1;
    return agn_comm_wait(c, req);
}

int agn_comm_broadcast(agn_comm *c, void *buf, size_t count, agn_dtype t, int root)
{
    if (c->world == 1) return 0;
    return c->ops->broadcast(c, buf, count, t, root);
}

int agn_comm_shared(agn_comm *c, size_t bytes, void **ptr)
{
    *ptr = NULL;
    if (c->world <= 1 || !c->ops->shared) return 0;
    return c->ops->shared(c, bytes, ptr);
}

int agn_comm_barrier(agn_comm *c)
{
    if (c->world == 1) return 0;
    return c->ops->barrier(c);
}

void agn_comm_abort(agn_comm *c, const char *why)
{
    if (c->world > 1 && c->ops->abort) c->ops->abort(c, why);
}

const char *agn_comm_aborted(agn_comm *c, int *rank)
{
    if (c->world <= 1 || !c->ops->aborted) return NULL;
    return c->ops->aborted(c, rank);
}

int agn_comm_set_stream(agn_comm *c, void *stream)
{
    if (!c->ops->set_stream) return 0;
    return c->ops->set_stream(c, stream);
}

void agn_comm_free(agn_comm *c)
{
    if (!c) return;
    if (c->ops && c->ops->destroy) c->ops->destroy(c);
    free(c);
}

/* ---- none: one rank ------------------------------------------------------ */

static const agn_comm_ops none_ops = {.name = "none"};

agn_comm *agn_comm_none(void)
{
    agn_comm *c = agn_xcalloc(1, sizeof *c);
    c->ops = &none_ops;
    c->rank = 0;
    c->world = 1;
    c->local_rank = 0;
    c->local_world = 1;
    c->timeout_s = 0;
    return c;
}

/* ---- the communication thread ------------------------------------------- */

const char *agn_op_name(int op)
{
    switch (op) {
    case AGN_OP_ALLREDUCE: return "all-reduce";
    case AGN_OP_REDUCE_SCATTER: return "reduce-scatter";
    case AGN_OP_ALLGATHER: return "all-gather";
    case AGN_OP_BROADCAST: return "broadcast";
    case AGN_OP_BARRIER: return "barrier";
    case AGN_OP_INIT: return "initialisation";
    }
    return "collective";
}

static void *engine_main(void *arg)
{
    agn_engine *e = arg;
    pthread_mutex_lock(&e->lock);
    for (;;) {
        while (!e->head && !e->quit) pthread_cond_wait(&e->work, &e->lock);
        if (!e->head) break; /* quit, queue drained */
        struct agn_comm_req *r = e->head;
        int broken = e->broken;
        pthread_mutex_unlock(&e->lock);

        int st;
        char err[sizeof r->err];
        if (broken) {
            st = -1;
            snprintf(err, sizeof err, "%s", e->err);
        } else {
            st = e->exec(e->comm, r);
            if (st != 0) snprintf(err, sizeof err, "%s", agn_errmsg());
        }

        pthread_mutex_lock(&e->lock);
        if (st != 0) {
            snprintf(r->err, sizeof r->err, "%s", err);
            if (!e->broken) {
                e->broken = 1;
                snprintf(e->err, sizeof e->err, "%s", err);
            }
        }
        e->head = r->next;
        if (!e->head) e->tail = NULL;
        r->status = st;
        r->done = 1;
        pthread_cond_broadcast(&e->done);
    }
    pthread_mutex_unlock(&e->lock);
    if (e->fini) e->fini(e->comm);
    return NULL;
}

int agn_engine_start(agn_engine *e, agn_comm *c, int (*exec)(agn_comm *, struct agn_comm_req *),
                     void (*fini)(agn_comm *))
{
    e->comm = c;
    e->exec = exec;
    e->fini = fini;
    e->head = e->tail = e->live = NULL;
    e->quit = e->broken = 0;
    e->err[0] = '\0';
    pthread_mutex_init(&e->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->work, NULL);
    pthread_cond_init(&e->done, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&e->thread, NULL, engine_main, e);
    if (rc != 0) {
        errno = rc;
        return agn_seterr_errno("cannot start the communication thread");
    }
    e->running = 1;
    return 0;
}

void agn_engine_submit(agn_engine *e, struct agn_comm_req *r)
{
    r->next = NULL;
    r->done = 0;
    r->status = 0;
    r->err[0] = '\0';
    pthread_mutex_lock(&e->lock);
    r->live_next = e->live;
    e->live = r;
    if (e->tail) e->tail->next = r;
    else e->head = r;
    e->tail = r;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->lock);
}

int agn_engine_wait(agn_engine *e, struct agn_comm_req *r, double timeout_s)
{
    /* the thread's own waits time out after timeout_s per step; this guard
     * only catches a thread that stopped answering altogether */
    double limit = (timeout_s > 0 ? 2 * timeout_s : 2 * AGN_COMM_TIMEOUT_DEFAULT) + 10;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += (time_t)limit;
    int rc = 0;
    pthread_mutex_lock(&e->lock);
    while (!r->done && rc != ETIMEDOUT) rc = pthread_cond_timedwait(&e->done, &e->lock, &ts);
    if (!r->done) {
        pthread_mutex_unlock(&e->lock);
        /* the request stays queued and owned by the thread: leak it */
        return agn_seterr("%s: the communication thread did not answer in %.0f s", agn_op_name(r->op),
                          limit);
    }
    for (struct agn_comm_req **p = &e->live; *p; p = &(*p)->live_next)
        if (*p == r) {
            *p = r->live_next;
            break;
        }
    pthread_mutex_unlock(&e->lock);
    int st = r->status;
    if (st != 0) agn_seterr("%s", r->err);
    free(r);
    return st;
}

int agn_engine_run(agn_engine *e, int op, void *buf, size_t count, agn_dtype t, int root,
                   double timeout_s)
{
    struct agn_comm_req *r = agn_xcalloc(1, sizeof *r);
    r->op = op;
    r->buf = buf;
    r->count = count;
    r->type = t;
    r->root = root;
    agn_engine_submit(e, r);
    return agn_engine_wait(e, r, timeout_s);
}

void agn_engine_break(agn_engine *e, const char *why)
{
    pthread_mutex_lock(&e->lock);
    if (!e->broken) {
        e->broken = 1;
        snprintf(e->err, sizeof e->err, "%s", why);
    }
    pthread_mutex_unlock(&e->lock);
}

void agn_engine_stop(agn_engine *e)
{
    if (!e->running) return;
    pthread_mutex_lock(&e->lock);
    e->quit = 1;
    pthread_cond_signal(&e->work);
    pthread_mutex_unlock(&e->lock);
    pthread_join(e->thread, NULL);
    e->running = 0;
    while (e->live) {
        struct agn_comm_req *r = e->live;
        e->live = r->live_next;
        free(r);
    }
    pthread_mutex_destroy(&e->lock);
    pthread_cond_destroy(&e->work);
    pthread_cond_destroy(&e->done);
}

static int engine_start(agn_comm *c, int op, void *buf, size_t count, agn_dtype t,
                        agn_comm_req **req)
{
    struct agn_comm_req *r = agn_xcalloc(1, sizeof *r);
    r->op = op;
    r->buf = buf;
    r->count = count;
    r->type = t;
    agn_engine_submit(AGN_ENGINE(c), r);
    *req = r;
    return 0;
}

int agn_engine_allreduce_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                               agn_comm_req **req)
{
    return engine_start(c, AGN_OP_ALLREDUCE, buf, count, t, req);
}

int agn_engine_reduce_scatter_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                                    agn_comm_req **req)
{
    return engine_start(c, AGN_OP_REDUCE_SCATTER, buf, count, t, req);
}

int agn_engine_allgather_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                               agn_comm_req **req)
{
    return engine_start(c, AGN_OP_ALLGATHER, buf, count, t, req);
}

int agn_engine_wait_op(agn_comm *c, agn_comm_req *req)
{
    return agn_engine_wait(AGN_ENGINE(c), req, c->timeout_s);
}

int agn_engine_broadcast(agn_comm *c, void *buf, size_t count, agn_dtype t, int root)
{
    if (root < 0 || root >= c->world) return agn_seterr("broadcast: root %d out of range", root);
    return agn_engine_run(AGN_ENGINE(c), AGN_OP_BROADCAST, buf, count, t, root, c->timeout_s);
}

int agn_engine_barrier(agn_comm *c)
{
    return agn_engine_run(AGN_ENGINE(c), AGN_OP_BARRIER, NULL, 0, AGN_U8, 0, c->timeout_s);
}
