/* comm.c: the dispatch of comm.h and the one-rank transport. */
#include "config.h"
#include "comm.h"
#include "util.h"

#include <stdlib.h>

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

int agn_comm_barrier(agn_comm *c)
{
    if (c->world == 1) return 0;
    return c->ops->barrier(c);
}

void agn_comm_abort(agn_comm *c, const char *why)
{
    if (c->world > 1 && c->ops->abort) c->ops->abort(c, why);
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
