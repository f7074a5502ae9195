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

int agn_zero_plan(agn_zero *z, agn_model *m, agn_comm *c, int n, const size_t *start,
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
        z->rows = agn_xcalloc(z->vocab, sizeof *z->rows);
        /* the packed rows at a fixed address, sized for the whole vocabulary
         * (a device backend captures it in a graph) */
        z->packed = m->ops->alloc(m, z->vocab * z->dim * sizeof(float));
        if (!z->packed) return agn_seterr("cannot allocate the sparse embedding buffer");
    }
    /* the spans of the norm and the clipping: at most one per piece and one
     * per row of the embedding shard */
    z->spans = agn_xcalloc((size_t)m->n_tensors + (size_t)n + 2 + z->vocab, sizeof *z->spans);
    for (int b = 0; b < n; b++) {
        z->bucket_first[b] = z->n_ranges;
        size_t s = start[b], e = end[b];
        if (z->rows && s <= e0 && e1 <= e) { /* the embedding, alone in its range */
            if (s < e0) add_range(z, m, s, e0, 0);
            add_range(z, m, e0, e1, 1);
            if (e1 < e) add_range(z, m, e1, e, 0);
        } else {
            add_range(z, m, s, e, 0);
        }
        z->bucket_count[b] = z->n_ranges - z->bucket_first[b];
    }
    return 0;
}

void agn_zero_free(agn_zero *z)
{
    free(z->bucket_first);
    free(z->bucket_count);
    free(z->ranges);
    free(z->pieces);
    free(z->rows);
    free(z->spans);
    if (z->packed) z->m->ops->release(z->m, z->packed);
    free(z->norm_buf);
    memset(z, 0, sizeof *z);
}

/* ---- reduction ------------------------------------------------------------------ */

void agn_zero_begin_step(agn_zero *z, const int32_t *rows, size_t n)
{
    if (!z->rows) return;
    /* the rows written last step are cleared by agn_zero_clear_grads first */
    z->next_rows = rows;
    z->n_next_rows = n;
}

int agn_zero_clear_grads(agn_zero *z)
{
    agn_model *m = z->m;
    float *g = m->grads;
    for (int i = 0; i < z->n_ranges; i++) {
        const agn_zero_range *r = &z->ranges[i];
        if (!r->sparse) {
            if (m->ops->zero(m, g + r->start, r->end - r->start) != 0) return -1;
            continue;
        }
        /* the rows of the last step's union: no other row was written */
        if (z->n_rows && m->ops->rows(m, g + r->start, NULL, z->rows, z->n_rows, z->dim, 1) != 0)
            return -1;
    }
    if (z->next_rows) {
        memcpy(z->rows, z->next_rows, z->n_next_rows * sizeof *z->rows);
        z->n_rows = z->n_next_rows;
        z->next_rows = NULL;
    }
    return 0;
}

static int sparse_start(agn_zero *z, agn_zero_range *r)
{
    agn_model *m = z->m;
    if (m->ops->rows(m, z->packed, m->grads + r->start, z->rows, z->n_rows, z->dim, 0) != 0) return -1;
    z->volume += (double)(z->n_rows * z->dim);
    z->volume_dense += (double)(r->end - r->start);
    return agn_comm_allreduce_start(z->comm, z->packed, z->n_rows * z->dim, AGN_F32, &z->emb_req);
}

int agn_zero_reduce_start(agn_zero *z, int b)
{
    for (int i = 0; i < z->bucket_count[b]; i++) {
        agn_zero_range *r = &z->ranges[z->bucket_first[b] + i];
        int rc = r->sparse ? sparse_start(z, r)
                           : agn_comm_reduce_scatter_start(z->comm, z->m->grads + r->start,
                                                           r->end - r->start, AGN_F32, &r->req);
        if (rc != 0) return -1;
        if (!r->sparse) {
            z->volume += (double)(r->end - r->start);
            z->volume_dense += (double)(r->end - r->start);
        }
        if (b == z->n_buckets - 1 && i == z->bucket_count[b] - 1) z->volume_steps++;
    }
    return 0;
}

/* Waits for every request of the step (the sparse rows scattered back). */
static int wait_all(agn_zero *z, double *waited)
{
    agn_model *m = z->m;
    double t = agn_now();
    int rc = 0;
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
            if (m->ops->rows(m, m->grads + z->ranges[i].start, z->packed, z->rows, z->n_rows, z->dim, 1) != 0)
                rc = -1;
        }
    }
    if (waited) *waited += agn_now() - t;
    return rc;
}

/* ---- the optimizer step ------------------------------------------------------------- */

/* The spans of this rank's shard of range R that can be non-zero: all of
 * it, or for the sparse embedding the rows of the step's union only (every
 * other row is 0 and stays 0 under scaling); appended to z->spans. */
static int shard_spans(agn_zero *z, const agn_zero_range *r, int n)
{
    if (!r->sparse) {
        for (int i = r->first; i < r->first + r->count; i++)
            z->spans[n++] = (agn_span){z->pieces[i].offset, z->pieces[i].numel};
        return n;
    }
    size_t lo, hi;
    agn_comm_shard(r->end - r->start, z->comm->world, z->comm->rank, &lo, &hi);
    lo += r->start;
    hi += r->start;
    for (size_t k = 0; k < z->n_rows; k++) {
        size_t a = r->start + (size_t)z->rows[k] * z->dim, e = a + z->dim;
        if (a < lo) a = lo;
        if (e > hi) e = hi;
        if (a < e) z->spans[n++] = (agn_span){a, e - a};
    }
    return n;
}

int agn_zero_adamw_step(agn_zero *z, const agn_optim_config *oc, long step, float lr,
                        double compute_s, agn_zero_step *out)
{
    agn_model *m = z->m;
    out->norm = 0;
    out->waited = 0;
    out->imbalance = 0;
    if (wait_all(z, &out->waited) != 0) return -1;

    /* the global norm: this rank's shards in a fixed order, then the ranks */
    int ns = 0;
    for (int i = 0; i < z->n_ranges; i++) ns = shard_spans(z, &z->ranges[i], ns);
    double ss = 0;
    if (m->ops->sumsq(m, m->grads, z->spans, ns, &ss) != 0 || m->ops->wait(m, NULL) != 0) return -1;
    double tw = agn_now();
    /* every rank's compute time travels with the norm: no collective of its own */
    memset(z->norm_buf, 0, (1 + z->n_stats) * sizeof *z->norm_buf);
    z->norm_buf[0] = ss;
    z->stats[z->comm->rank] = compute_s;
    if (agn_comm_allreduce(z->comm, z->norm_buf, 1 + z->n_stats, AGN_F64) != 0) return -1;
    out->waited += agn_now() - tw;
    out->norm = sqrt(z->norm_buf[0]);
    double most = 0, sum = 0;
    for (size_t r = 0; r < z->n_stats; r++) {
        sum += z->stats[r];
        if (z->stats[r] > most) most = z->stats[r];
    }
    out->imbalance = most - sum / (double)z->n_stats;

    /* clip as agn_adamw_step does (g * coef, rounded once), by scaling the
     * shard first and running the step itself without clipping */
    float coef = agn_clip_coef(oc, out->norm);
    if (coef != 1.0f && m->ops->scale(m, m->grads, z->spans, ns, coef) != 0) return -1;
    agn_adam_args a = {.lr = lr, .beta1 = oc->beta1, .beta2 = oc->beta2, .eps = oc->eps,
                       .weight_decay = oc->weight_decay, .coef = 1.0f, .step = step};

    /* range by range, the embedding (the largest) first, so that its
     * all-gather runs while the others are updated */
    int rc = 0;
    for (int pass = 0; pass < 2 && rc == 0; pass++)
        for (int i = z->n_ranges - 1; i >= 0 && rc == 0; i--) {
            agn_zero_range *r = &z->ranges[i];
            if ((pass == 0) != (r->sparse == 1)) continue;
            rc = m->ops->adamw(m, z->pieces + r->first, r->count, &a);
            /* the all-gather must see the update: on a device, stream order */
            if (rc == 0 && !z->shared_params) rc = m->ops->wait(m, NULL);
            if (rc == 0 && !z->shared_params)
                rc = agn_comm_allgather_start(z->comm, m->params + r->start, r->end - r->start, AGN_F32,
                                              &r->req);
        }
    if (rc == 0) rc = m->ops->wait(m, NULL);
    if (wait_all(z, &out->waited) != 0) rc = -1;
    if (rc == 0 && z->shared_params) { /* every shard is updated: publish */
        double tb = agn_now();
        rc = agn_comm_barrier(z->comm);
        out->waited += agn_now() - tb;
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

void agn_zero_take_volume(agn_zero *z, double *bytes, double *bytes_dense)
{
    double steps = z->volume_steps > 0 ? (double)z->volume_steps : 1;
    *bytes = z->volume * sizeof(float) / steps;
    *bytes_dense = z->volume_dense * sizeof(float) / steps;
    z->volume = z->volume_dense = 0;
    z->volume_steps = 0;
}
