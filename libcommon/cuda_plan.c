/* cuda_plan.c: cuda_plan.h, the CUDA backend's host arithmetic. */
#include "config.h"
#include "cuda_plan.h"
#include "rng.h"
#include "util.h"

#include <string.h>

long agn_cuda_bucket_rows(long N, int bucket, long max_rows)
{
    if (bucket <= 0) bucket = AGN_CUDA_ROW_BUCKET;
    if (N < 0 || N > max_rows) return -1;
    long n = (N + bucket - 1) / bucket * bucket;
    if (n < bucket) n = bucket;
    return n > max_rows ? max_rows : n;
}

long agn_cuda_max_rows(int max_batch, int max_len, int bucket)
{
    if (bucket <= 0) bucket = AGN_CUDA_ROW_BUCKET;
    long r = (long)max_batch * max_len;
    r = (r + bucket - 1) / bucket * bucket;
    return r < bucket ? bucket : r;
}

static size_t put(size_t *at, size_t bytes)
{
    size_t o = (*at + 255) / 256 * 256;
    *at = o + bytes;
    return o;
}

void agn_cuda_index_layout_init(agn_cuda_index_layout *l, long R, int BM)
{
    size_t at = 0, r4 = (size_t)R * 4, b4 = (size_t)BM * 4;
    l->ids = put(&at, r4);
    l->pos = put(&at, r4);
    l->row_ex = put(&at, r4);
    l->start = put(&at, b4);
    l->len = put(&at, b4);
    l->nkey = put(&at, b4);
    l->labels = put(&at, b4);
    l->tok_rows = put(&at, r4);
    l->tok_start = put(&at, r4 + 4);
    l->tok_key = put(&at, r4);
    l->pos_rows = put(&at, r4);
    l->pos_start = put(&at, r4 + 4);
    l->pos_key = put(&at, r4);
    l->n_tok = put(&at, 4);
    l->n_pos = put(&at, 4);
    l->att_off = put(&at, (size_t)BM * sizeof(size_t));
    l->ex_key = put(&at, (size_t)BM * 8);
    l->bytes = (at + 255) / 256 * 256;
}

int agn_group_rows(const int32_t *keys, int N, int nkeys, int32_t *rows, int32_t *start,
                   int32_t *key, int *count)
{
    /* counting sort, stable */
    memset(count, 0, ((size_t)nkeys + 1) * sizeof *count);
    for (int r = 0; r < N; r++) count[keys[r] + 1]++;
    int ng = 0;
    for (int k = 0; k < nkeys; k++) {
        if (count[k + 1] > 0) {
            key[ng] = k;
            start[ng] = count[k]; /* the prefix sum so far */
            ng++;
        }
        count[k + 1] += count[k];
    }
    start[ng] = N;
    for (int r = 0; r < N; r++) rows[count[keys[r]]++] = r;
    return ng;
}

#define AT(type, off) ((type *)((char *)block + l->off))

int agn_cuda_plan_batch(agn_cuda_plan *p, void *block, const agn_cuda_index_layout *l, long R,
                        const agn_model *m, const agn_batch *b, int bucket, int *count)
{
    const agn_model_config *c = &m->cfg;
    if (b->B < 0 || b->B > m->max_batch || b->T < 1 || b->T > c->max_len)
        return agn_seterr("batch of %d x %d does not fit a model sized for %d x %d", b->B, b->T,
                          m->max_batch, c->max_len);
    if ((long)b->B * b->T > R)
        return agn_seterr("batch of %d x %d rows exceeds the %ld rows of the activations", b->B,
                          b->T, R);
    int32_t *ids = AT(int32_t, ids), *pos = AT(int32_t, pos), *row_ex = AT(int32_t, row_ex);
    int32_t *start = AT(int32_t, start), *len = AT(int32_t, len), *nkey = AT(int32_t, nkey);
    int32_t *labels = AT(int32_t, labels);
    size_t *att_off = AT(size_t, att_off);
    uint64_t *ex_key = AT(uint64_t, ex_key);
    int N = 0, H = c->n_heads, maxlen = 0;
    size_t att = 0;
    /* the packing of model_cpu.c's pack_batch */
    for (int i = 0; i < b->B; i++) {
        const int32_t *row = b->ids + (size_t)i * b->T;
        start[i] = N;
        if (m->dense) {
            int nk = b->T;
            while (nk > 0 && row[nk - 1] == 0) nk--;
            for (int t = 0; t < b->T; t++) {
                int32_t id = row[t];
                ids[N] = id >= 0 && id < c->vocab_size ? id : 1;
                pos[N] = t;
                row_ex[N] = i;
                N++;
            }
            nkey[i] = nk;
        } else {
            for (int t = 0; t < b->T; t++) {
                int32_t id = row[t];
                if (id == 0) continue;
                if (id < 0 || id >= c->vocab_size) id = 1;
                ids[N] = id;
                pos[N] = t;
                row_ex[N] = i;
                N++;
            }
            nkey[i] = N - start[i];
        }
        len[i] = N - start[i];
        if (len[i] > maxlen) maxlen = len[i];
        att_off[i] = att;
        att += (size_t)H * (size_t)len[i] * (size_t)nkey[i];
        uint64_t ex = b->example_index ? b->example_index[i] : (uint64_t)i;
        ex_key[i] = agn_dropout_key(b->seed, b->epoch, ex);
        labels[i] = b->labels ? b->labels[i] : 0;
    }
    long Npad = agn_cuda_bucket_rows(N, bucket, R);
    for (long r = N; r < Npad; r++) { /* padding rows: token 0 at position 0, example 0 */
        ids[r] = 0;
        pos[r] = 0;
        row_ex[r] = 0;
    }
    p->n_tok = agn_group_rows(ids, N, c->vocab_size, AT(int32_t, tok_rows), AT(int32_t, tok_start),
                              AT(int32_t, tok_key), count);
    p->n_pos = agn_group_rows(pos, N, c->max_len, AT(int32_t, pos_rows), AT(int32_t, pos_start),
                              AT(int32_t, pos_key), count);
    *AT(int32_t, n_tok) = p->n_tok;
    *AT(int32_t, n_pos) = p->n_pos;
    p->B = b->B;
    p->N = N;
    p->Npad = Npad;
    p->att_floats = att;
    p->max_len = maxlen;
    p->dropout_on = b->train && c->dropout > 0.0f;
    p->drop_scale = p->dropout_on ? 1.0f / (1.0f - c->dropout) : 1.0f;
    p->has_labels = b->labels != NULL;
    return 0;
}

unsigned agn_cuda_grid_1d(size_t n, int threads)
{
    if (threads < 1) threads = 1;
    size_t b = (n + (size_t)threads - 1) / (size_t)threads;
    if (b < 1) b = 1;
    if (b > ((size_t)1 << 18)) b = (size_t)1 << 18;
    return (unsigned)b;
}

size_t agn_cuda_attention_smem(int maxk, int hd, int nw)
{
    return ((size_t)2 * maxk * (hd + 1) + (size_t)nw * maxk + (size_t)nw * hd) * sizeof(float);
}

int agn_cuda_attention_fused_fits(int maxk, int hd, int nw, size_t limit)
{
    return maxk >= 1 && maxk <= 256 && hd >= 1 && agn_cuda_attention_smem(maxk, hd, nw) <= limit;
}

unsigned agn_cuda_attention_row_blocks(int maxk, int nw)
{
    int per = nw * 8;
    return maxk < 1 ? 1u : (unsigned)((maxk + per - 1) / per);
}

size_t agn_cuda_colsum_floats(int max_rows, int max_cols)
{
    size_t chunks = ((size_t)(max_rows > 0 ? max_rows : 1) + 255) / 256;
    return 2 * chunks * (size_t)(max_cols > 0 ? max_cols : 1) + 64;
}

agn_cuda_graph_key agn_cuda_graph_key_of(const agn_cuda_plan *p, int keep, int backward,
                                         float loss_scale, int reference)
{
    agn_cuda_graph_key k;
    memset(&k, 0, sizeof k);
    k.Npad = p->Npad;
    k.B = p->B;
    k.keep = keep;
    k.dropout_on = p->dropout_on;
    k.has_labels = p->has_labels;
    k.reference = reference;
    k.backward = backward;
    if (backward) memcpy(&k.loss_scale_bits, &loss_scale, sizeof k.loss_scale_bits);
    return k;
}

int agn_cuda_graph_key_equal(const agn_cuda_graph_key *a, const agn_cuda_graph_key *b)
{
    return a->Npad == b->Npad && a->B == b->B && a->keep == b->keep &&
           a->dropout_on == b->dropout_on && a->has_labels == b->has_labels &&
           a->reference == b->reference && a->backward == b->backward &&
           a->loss_scale_bits == b->loss_scale_bits;
}
