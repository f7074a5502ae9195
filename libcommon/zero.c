/* zero.c: the sharded optimizer step (zero.h). */
#include "config.h"
#include "zero.h"

#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void agn_zero_plan(agn_zero *z, const agn_model *m, agn_comm *c, int n, const size_t *start,
                   const size_t *end)
{
    memset(z, 0, sizeof *z);
    z->comm = c;
    z->n_buckets = n;
    z->start = agn_xcalloc((size_t)n, sizeof *z->start);
    z->end = agn_xcalloc((size_t)n, sizeof *z->end);
    z->first = agn_xcalloc((size_t)n, sizeof *z->first);
    z->count = agn_xcalloc((size_t)n, sizeof *z->count);
    z->req = agn_xcalloc((size_t)n, sizeof *z->req);
    z->pieces = agn_xcalloc((size_t)m->n_tensors + (size_t)n, sizeof *z->pieces);
    for (int b = 0; b < n; b++) {
        size_t lo, hi;
        z->start[b] = start[b];
        z->end[b] = end[b];
        agn_comm_shard(end[b] - start[b], c->world, c->rank, &lo, &hi);
        lo += start[b];
        hi += start[b];
        z->first[b] = z->n_pieces;
        for (int i = 0; i < m->n_tensors && lo < hi; i++) {
            const agn_tensor *tn = &m->tensors[i];
            size_t a = tn->offset > lo ? tn->offset : lo;
            size_t e = tn->offset + tn->numel < hi ? tn->offset + tn->numel : hi;
            if (a >= e) continue;
            agn_tensor *p = &z->pieces[z->n_pieces++];
            *p = *tn;
            p->offset = a;
            p->numel = e - a;
        }
        z->count[b] = z->n_pieces - z->first[b];
    }
}

void agn_zero_free(agn_zero *z)
{
    free(z->start);
    free(z->end);
    free(z->first);
    free(z->count);
    free(z->req);
    free(z->pieces);
    memset(z, 0, sizeof *z);
}

/* Waits for the requests of buckets [0, n) that were started. */
static int wait_all(agn_zero *z, double *waited)
{
    double t = agn_now();
    int rc = 0;
    for (int b = 0; b < z->n_buckets; b++) {
        if (agn_comm_wait(z->comm, z->req[b]) != 0 && rc == 0) rc = -1;
        z->req[b] = NULL;
    }
    if (waited) *waited += agn_now() - t;
    return rc;
}

int agn_zero_adamw_step(agn_zero *z, agn_model *m, float *adam_m, float *adam_v,
                        const agn_optim_config *oc, long step, float lr, double *norm, double *waited)
{
    /* the global norm: this rank's pieces in a fixed order, then the ranks */
    double ss = 0;
    for (int i = 0; i < z->n_pieces; i++) {
        const float *g = m->grads + z->pieces[i].offset;
        double s = 0;
        long n = (long)z->pieces[i].numel;
#pragma omp simd reduction(+ : s)
        for (long k = 0; k < n; k++) s += (double)g[k] * g[k];
        ss += s;
    }
    double tw = agn_now();
    if (agn_comm_allreduce(z->comm, &ss, 1, AGN_F64) != 0) return -1;
    if (waited) *waited += agn_now() - tw;
    *norm = sqrt(ss);

    /* clip as agn_adamw_step does (g * coef, rounded once), by scaling the
     * shard first and running the step itself without clipping */
    float coef = 1.0f;
    if (oc->grad_clip > 0.0f && isfinite(*norm)) {
        double c = (double)oc->grad_clip / (*norm + 1e-6);
        if (c < 1.0) coef = (float)c;
    }
    if (coef != 1.0f)
        for (int i = 0; i < z->n_pieces; i++) {
            float *g = m->grads + z->pieces[i].offset;
            long n = (long)z->pieces[i].numel;
            for (long k = 0; k < n; k++) g[k] *= coef;
        }
    agn_optim_config noclip = *oc;
    noclip.grad_clip = 0;

    /* bucket by bucket, the last (the embedding, the largest) first, so that
     * its all-gather runs while the others are updated */
    int rc = 0;
    for (int b = z->n_buckets - 1; b >= 0 && rc == 0; b--) {
        agn_model view = *m;
        view.tensors = z->pieces + z->first[b];
        view.n_tensors = z->count[b];
        view.n_params = 0; /* no norm: clipping is done */
        agn_adamw_step(&view, adam_m, adam_v, &noclip, step, lr);
        rc = agn_comm_allgather_start(z->comm, m->params + z->start[b], z->end[b] - z->start[b],
                                      AGN_F32, &z->req[b]);
    }
    if (wait_all(z, waited) != 0) rc = -1;
    return rc;
}

int agn_zero_gather(agn_zero *z, float *buf)
{
    int rc = 0;
    for (int b = 0; b < z->n_buckets && rc == 0; b++)
        rc = agn_comm_allgather_start(z->comm, buf + z->start[b], z->end[b] - z->start[b], AGN_F32,
                                      &z->req[b]);
    if (wait_all(z, NULL) != 0) rc = -1;
    return rc;
}
