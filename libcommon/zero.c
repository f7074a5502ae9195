/* zero.c: the sharded gradient reduction and optimizer step (zero.h). */
#include "config.h"
#include "zero.h"

#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- plan ------------------------------------------------------------------- */

static void add_range(agn_zero *z, const agn_model *m, size_t start, size_t end, int sparse)
{
    agn_zero_range *r = &z->ranges[z->n_ranges++];
    size_t lo, hi;
    r->start = start;
    r->end = end;
    r->sparse = sparse;
    agn_comm_shard(end - start, z->comm->world, z->comm->rank, &lo, &hi);
    lo += start;
    hi += start;
    r->first = z->n_pieces;
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
    r->count = z->n_pieces - r->first;
}

void agn_zero_plan(agn_zero *z, agn_model *m, agn_comm *c, int n, const size_t *start,
                   const size_t *end)
{
    memset(z, 0, sizeof *z);
    z->comm = c;
    z->m = m;
    z->n_buckets = n;
    z->bucket_first = agn_xcalloc((size_t)n, sizeof *z->bucket_first);
    z->bucket_count = agn_xcalloc((size_t)n, sizeof *z->bucket_count);
    /* a bucket is one range, or up to three around the embedding */
    z->ranges = agn_xcalloc((size_t)n + 2, sizeof *z->ranges);
    z->pieces = agn_xcalloc((size_t)m->n_tensors + (size_t)n + 2, sizeof *z->pieces);
    z->n_stats = (size_t)c->world;
    z->norm_buf = agn_xcalloc(z->n_stats + 1, sizeof *z->norm_buf);
    z->stats = z->norm_buf + 1; /* reduced in place with the norm */
    const agn_tensor *emb = agn_model_tensor(m, "tok_emb");
    size_t e0 = emb ? emb->offset : 0, e1 = emb ? emb->offset + emb->numel : 0;
    if (emb && emb->ndim == 2) {
        z->vocab = (size_t)emb->shape[0];
        z->dim = (size_t)emb->shape[1];
        z->mask = agn_xcalloc(z->vocab, 1);
        z->rows = agn_xcalloc(z->vocab, sizeof *z->rows);
    }
    for (int b = 0; b < n; b++) {
        z->bucket_first[b] = z->n_ranges;
        size_t s = start[b], e = end[b];
        if (z->mask && s <= e0 && e1 <= e) { /* the embedding, alone in its range */
            if (s < e0) add_range(z, m, s, e0, 0);
            add_range(z, m, e0, e1, 1);
            if (e1 < e) add_range(z, m, e1, e, 0);
        } else {
            add_range(z, m, s, e, 0);
        }
        z->bucket_count[b] = z->n_ranges - z->bucket_first[b];
    }
}

void agn_zero_free(agn_zero *z)
{
    free(z->bucket_first);
    free(z->bucket_count);
    free(z->ranges);
    free(z->pieces);
    free(z->mask);
    free(z->rows);
    free(z->packed);
    free(z->norm_buf);
    memset(z, 0, sizeof *z);
}

/* ---- reduction ------------------------------------------------------------------ */

int agn_zero_begin_step(agn_zero *z, const int32_t *ids, size_t n)
{
    if (!z->mask) return 0;
    memset(z->mask, 0, z->vocab);
    for (size_t i = 0; i < n; i++)
        if (ids[i] >= 0 && (size_t)ids[i] < z->vocab) z->mask[ids[i]] = 1;
    /* a sum of 0/1 in a byte: 256 ranks could wrap to 0 */
    if (z->comm->world > 255) return agn_seterr("sparse embedding reduction: more than 255 ranks");
    return agn_comm_allreduce_start(z->comm, z->mask, z->vocab, AGN_U8, &z->mask_req);
}

void agn_zero_clear_grads(agn_zero *z)
{
    float *g = z->m->grads;
    for (int i = 0; i < z->n_ranges; i++) {
        const agn_zero_range *r = &z->ranges[i];
        if (!r->sparse) {
            memset(g + r->start, 0, (r->end - r->start) * sizeof *g);
            continue;
        }
        for (size_t k = 0; k < z->n_rows; k++)
            memset(g + r->start + (size_t)z->rows[k] * z->dim, 0, z->dim * sizeof *g);
    }
}

static int sparse_start(agn_zero *z, agn_zero_range *r)
{
    if (agn_comm_wait(z->comm, z->mask_req) != 0) {
        z->mask_req = NULL;
        return -1;
    }
    z->mask_req = NULL;
    size_t k = 0;
    for (size_t v = 0; v < z->vocab; v++)
        if (z->mask[v]) z->rows[k++] = (int32_t)v;
    z->n_rows = k;
    z->packed = agn_xrealloc(z->packed, (k ? k : 1) * z->dim * sizeof *z->packed);
    const float *g = z->m->grads + r->start;
    for (size_t i = 0; i < k; i++)
        memcpy(z->packed + i * z->dim, g + (size_t)z->rows[i] * z->dim, z->dim * sizeof(float));
    return agn_comm_allreduce_start(z->comm, z->packed, k * z->dim, AGN_F32, &z->emb_req);
}

int agn_zero_reduce_start(agn_zero *z, int b)
{
    for (int i = 0; i < z->bucket_count[b]; i++) {
        agn_zero_range *r = &z->ranges[z->bucket_first[b] + i];
        int rc = r->sparse ? sparse_start(z, r)
                           : agn_comm_reduce_scatter_start(z->comm, z->m->grads + r->start,
                                                           r->end - r->start, AGN_F32, &r->req);
        if (rc != 0) return -1;
    }
    return 0;
}

/* Waits for every request of the step (the sparse rows scattered back). */
static int wait_all(agn_zero *z, double *waited)
{
    double t = agn_now();
    int rc = 0;
    if (agn_comm_wait(z->comm, z->mask_req) != 0) rc = -1;
    z->mask_req = NULL;
    for (int i = 0; i < z->n_ranges; i++) {
        agn_zero_range *r = &z->ranges[i];
        if (agn_comm_wait(z->comm, r->req) != 0 && rc == 0) rc = -1;
        r->req = NULL;
    }
    if (z->emb_req) {
        int erc = agn_comm_wait(z->comm, z->emb_req);
        z->emb_req = NULL;
        if (erc != 0 && rc == 0) rc = -1;
        for (int i = 0; i < z->n_ranges && rc == 0; i++) {
            if (!z->ranges[i].sparse) continue;
            float *g = z->m->grads + z->ranges[i].start;
            for (size_t k = 0; k < z->n_rows; k++)
                memcpy(g + (size_t)z->rows[k] * z->dim, z->packed + k * z->dim, z->dim * sizeof(float));
        }
    }
    if (waited) *waited += agn_now() - t;
    return rc;
}

/* ---- the optimizer step ------------------------------------------------------------- */

/* Calls FN on the parts of this rank's shard of range R that can be
 * non-zero: all of it, or for the sparse embedding the rows of the step's
 * union only (every other row is 0 and stays 0 under scaling). */
static void shard_parts(agn_zero *z, const agn_zero_range *r, void (*fn)(float *g, long n, void *ctx),
                        void *ctx)
{
    float *grads = z->m->grads;
    if (!r->sparse) {
        for (int i = r->first; i < r->first + r->count; i++)
            fn(grads + z->pieces[i].offset, (long)z->pieces[i].numel, ctx);
        return;
    }
    size_t lo, hi;
    agn_comm_shard(r->end - r->start, z->comm->world, z->comm->rank, &lo, &hi);
    lo += r->start;
    hi += r->start;
    for (size_t k = 0; k < z->n_rows; k++) {
        size_t a = r->start + (size_t)z->rows[k] * z->dim, e = a + z->dim;
        if (a < lo) a = lo;
        if (e > hi) e = hi;
        if (a < e) fn(grads + a, (long)(e - a), ctx);
    }
}

static void add_squares(float *g, long n, void *ctx)
{
    double s = 0;
#pragma omp simd reduction(+ : s)
    for (long k = 0; k < n; k++) s += (double)g[k] * g[k];
    *(double *)ctx += s;
}

static void scale(float *g, long n, void *ctx)
{
    const float coef = *(const float *)ctx;
#pragma omp simd
    for (long k = 0; k < n; k++) g[k] *= coef;
}

int agn_zero_adamw_step(agn_zero *z, float *adam_m, float *adam_v, const agn_optim_config *oc,
                        long step, float lr, double *norm, double *waited)
{
    agn_model *m = z->m;
    if (wait_all(z, waited) != 0) return -1;

    /* the global norm: this rank's shards in a fixed order, then the ranks */
    double ss = 0;
    for (int i = 0; i < z->n_ranges; i++) shard_parts(z, &z->ranges[i], add_squares, &ss);
    double tw = agn_now();
    z->norm_buf[0] = ss; /* the stats after it travel along */
    if (agn_comm_allreduce(z->comm, z->norm_buf, 1 + z->n_stats, AGN_F64) != 0) return -1;
    if (waited) *waited += agn_now() - tw;
    *norm = sqrt(z->norm_buf[0]);

    /* clip as agn_adamw_step does (g * coef, rounded once), by scaling the
     * shard first and running the step itself without clipping */
    float coef = 1.0f;
    if (oc->grad_clip > 0.0f && isfinite(*norm)) {
        double c = (double)oc->grad_clip / (*norm + 1e-6);
        if (c < 1.0) coef = (float)c;
    }
    if (coef != 1.0f)
        for (int i = 0; i < z->n_ranges; i++) shard_parts(z, &z->ranges[i], scale, &coef);
    agn_optim_config noclip = *oc;
    noclip.grad_clip = 0;

    /* range by range, the embedding (the largest) first, so that its
     * all-gather runs while the others are updated */
    int rc = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++)
        for (int i = z->n_ranges - 1; i >= 0 && rc == 0; i--) {
            agn_zero_range *r = &z->ranges[i];
            if ((pass == 0) != (r->sparse == 1)) continue;
            agn_model view = *m;
            view.tensors = z->pieces + r->first;
            view.n_tensors = r->count;
            view.n_params = 0; /* no norm: clipping is done */
            agn_adamw_step(&view, adam_m, adam_v, &noclip, step, lr);
            if (!z->shared_params)
                rc = agn_comm_allgather_start(z->comm, m->params + r->start, r->end - r->start, AGN_F32,
                                              &r->req);
        }
    if (wait_all(z, waited) != 0) rc = -1;
    if (rc == 0 && z->shared_params) { /* every shard is updated: publish */
        double tb = agn_now();
        rc = agn_comm_barrier(z->comm);
        if (waited) *waited += agn_now() - tb;
    }
    return rc;
}

int agn_zero_gather(agn_zero *z, float *buf)
{
    int rc = 0;
    for (int i = 0; i < z->n_ranges && rc == 0; i++) {
        agn_zero_range *r = &z->ranges[i];
        rc = agn_comm_allgather_start(z->comm, buf + r->start, r->end - r->start, AGN_F32, &r->req);
    }
    if (wait_all(z, NULL) != 0) rc = -1;
    return rc;
}
