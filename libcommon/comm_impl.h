/* comm_impl.h: what the CPU transports (comm_local.c, comm_mpi.c) share, and
 * nothing the trainer needs: the communication thread.  Each communicator
 * owns one thread that runs its collectives one after another, in the order
 * they were submitted, with the transport's blocking implementation; callers
 * submit a request and return (all-reduce) or wait for it (broadcast,
 * barrier).  Backward keeps computing while the thread reduces a bucket.
 *
 * Errors: the transport's exec() reports with agn_seterr() on the
 * communication thread; the engine copies the message into the request, and
 * the first failure breaks the communicator: every later request fails at
 * once with that message, so a dead peer is reported once and clearly. */
#ifndef AGN_COMM_IMPL_H
#define AGN_COMM_IMPL_H

#include "comm.h"

#include <pthread.h>

enum {
    AGN_OP_ALLREDUCE, AGN_OP_REDUCE_SCATTER, AGN_OP_ALLGATHER, AGN_OP_BROADCAST, AGN_OP_BARRIER,
    AGN_OP_INIT
};

struct agn_comm_req {
    int op;
    void *buf;
    size_t count;
    agn_dtype type;
    int root;
    int done;    /* set by the thread under the engine lock */
    int status;  /* 0 or -1 */
    char err[512];
    struct agn_comm_req *next;
    struct agn_comm_req *live_next; /* every request not yet waited */
};

typedef struct {
    agn_comm *comm;
    /* The blocking collective, run on the communication thread. */
    int (*exec)(agn_comm *c, struct agn_comm_req *r);
    /* Called on the thread before it exits (MPI_Finalize), may be NULL. */
    void (*fini)(agn_comm *c);
    pthread_t thread;
    int running;
    pthread_mutex_t lock;
    pthread_cond_t work, done;
    struct agn_comm_req *head, *tail;
    struct agn_comm_req *live; /* freed by agn_engine_stop if never waited */
    int quit;
    int broken;
    char err[512];
} agn_engine;

/* Starts the thread; -1 with a message. */
int agn_engine_start(agn_engine *e, agn_comm *c, int (*exec)(agn_comm *, struct agn_comm_req *),
                     void (*fini)(agn_comm *));
/* Queues a request (taken over until waited). */
void agn_engine_submit(agn_engine *e, struct agn_comm_req *r);
/* Waits for R, frees it; 0 or -1 with its message.  The thread's own waits
 * are bounded by the collective timeout; this one adds a margin as a last
 * guard against a thread that never answers. */
int agn_engine_wait(agn_engine *e, struct agn_comm_req *r, double timeout_s);
/* Submit + wait, for the blocking calls. */
int agn_engine_run(agn_engine *e, int op, void *buf, size_t count, agn_dtype t, int root,
                   double timeout_s);
/* Finishes what is queued, stops and joins the thread, frees requests
 * that were never waited (after an error a caller may give up on them). */
void agn_engine_stop(agn_engine *e);
/* Marks the engine broken with WHY (later requests fail with it). */
void agn_engine_break(agn_engine *e, const char *why);

/* The ops every threaded transport shares. */
int agn_engine_allreduce_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                               agn_comm_req **req);
int agn_engine_reduce_scatter_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                                    agn_comm_req **req);
int agn_engine_allgather_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                               agn_comm_req **req);
int agn_engine_wait_op(agn_comm *c, agn_comm_req *req);
int agn_engine_broadcast(agn_comm *c, void *buf, size_t count, agn_dtype t, int root);
int agn_engine_barrier(agn_comm *c);

/* The engine of a threaded transport is the first member of its impl. */
#define AGN_ENGINE(c) ((agn_engine *)(c)->impl)

/* "all-reduce", "broadcast", ... for messages. */
const char *agn_op_name(int op);

#endif
