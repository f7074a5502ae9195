/* comm.h: the one small communication interface of data-parallel training
 * (DESIGN.md, Backends): all-reduce sum, broadcast, barrier, abort.  One
 * struct holds the distributed state; with one rank every call is a no-op.
 *
 * Transports: "none" (one rank, comm.c), "local" (ranks forked on one host,
 * shared memory), "mpi" (ranks across hosts), and later "nccl".  Buffers live
 * where the transport computes: host memory for none/local/mpi, device memory
 * (on the stream the transport was created with) for nccl; counts are in
 * elements, never bytes.
 *
 * Asynchrony: agn_comm_allreduce_start() returns at once with a request
 * where the transport can overlap (a communication thread on the CPU, a
 * stream on the GPU); agn_comm_wait() blocks until it is done.  Requests
 * complete in the order they were started.  Every call returns 0, or -1 with
 * a message (a peer died, the job was aborted, a collective timed out). */
#ifndef AGN_COMM_H
#define AGN_COMM_H

#include <stddef.h>
#include <stdint.h>

typedef enum { AGN_F32, AGN_F64, AGN_U8 } agn_dtype;

typedef struct agn_comm agn_comm;
typedef struct agn_comm_req agn_comm_req;

/* What every transport provides (one table per transport). */
typedef struct {
    const char *name;
    int (*allreduce_start)(agn_comm *c, void *buf, size_t count, agn_dtype t, agn_comm_req **req);
    int (*wait)(agn_comm *c, agn_comm_req *req);
    int (*broadcast)(agn_comm *c, void *buf, size_t count, agn_dtype t, int root);
    int (*barrier)(agn_comm *c);
    void (*abort)(agn_comm *c, const char *why);
    void (*destroy)(agn_comm *c);
} agn_comm_ops;

struct agn_comm {
    const agn_comm_ops *ops;
    int rank, world;
    int local_rank, local_world; /* on this host */
    double timeout_s;            /* a collective waiting longer fails */
    void *impl;                  /* transport state */
};

/* The one-rank communicator. */
agn_comm *agn_comm_none(void);

int agn_comm_allreduce_start(agn_comm *c, void *buf, size_t count, agn_dtype t,
                             agn_comm_req **req);
int agn_comm_wait(agn_comm *c, agn_comm_req *req);
/* Blocking all-reduce: start + wait. */
int agn_comm_allreduce(agn_comm *c, void *buf, size_t count, agn_dtype t);
int agn_comm_broadcast(agn_comm *c, void *buf, size_t count, agn_dtype t, int root);
int agn_comm_barrier(agn_comm *c);
/* Tells every rank to stop (the others' next call fails with WHY). */
void agn_comm_abort(agn_comm *c, const char *why);
void agn_comm_free(agn_comm *c);

size_t agn_dtype_size(agn_dtype t);

#endif
