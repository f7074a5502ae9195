/* batch.c: the data order and the batches of DESIGN.md (Training
 * semantics), pure and backend-free: the permutation of an epoch, the slices
 * of a global batch that the ranks take, and the padded batch a rank builds
 * from its slice (batch.h). */
#include "config.h"
#include "batch.h"
#include "rng.h"
#include "util.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

uint64_t agn_splitmix64(uint64_t x) { return agn_mix64(x); }

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

void agn_train_permutation(uint64_t *perm, uint64_t n, uint64_t seed, uint32_t epoch)
{
    uint64_t key = agn_mix64(seed ^ agn_mix64((uint64_t)epoch + 1));
    for (uint64_t i = 0; i < n; i++) perm[i] = i;
    /* Fisher-Yates from the top: swap i with j uniform in [0, i] (the
     * multiply-shift bias is below 2^-40 for any n that fits in memory) */
    for (uint64_t i = n; i > 1; i--) {
        uint64_t r = agn_mix64(key + i);
        uint64_t j = (uint64_t)(((unsigned __int128)r * i) >> 64);
        uint64_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

void agn_train_slice(long B, int r, int W, long *start, long *count)
{
    long base = B / W, rem = B % W;
    *count = base + (r < rem);
    *start = (long)r * base + (r < rem ? r : rem);
}

uint64_t agn_train_cost(uint64_t len, long D, long F)
{
    return len * ((uint64_t)(4 * D + 2 * F) + 2 * len);
}

void agn_train_slice_cost(const uint64_t *cost, long B, int r, int W, long *start, long *count)
{
    /* integer costs: every rank adds the same integers, exactly */
    uint64_t total = 0;
    for (long j = 0; j < B; j++) total += cost[j];
    if (total == 0 || W <= 1) {
        agn_train_slice(B, r, W, start, count);
        return;
    }
    /* cut k (k = 1..W-1) is the boundary whose prefix sum is nearest k/W of
     * the total (the earlier on a tie), never before cut k-1; rank r runs
     * from cut r to cut r+1 */
    long cut = 0, prev = 0, lo = 0, hi = B;
    uint64_t prefix = 0;
    for (int k = 1; k <= r + 1 && k < W; k++) {
        /* target k * total / W, compared exactly: W * prefix against k * total */
        unsigned __int128 goal = (unsigned __int128)total * (unsigned)k;
        if ((unsigned __int128)prefix * (unsigned)W < goal) { /* else cut k-1 is already past it */
            while (cut < B && (unsigned __int128)(prefix + cost[cut]) * (unsigned)W < goal) prefix += cost[cut++];
            if (cut < B) { /* prefix * W < goal <= (prefix + cost) * W: the nearer side */
                unsigned __int128 below = goal - (unsigned __int128)prefix * (unsigned)W;
                unsigned __int128 above = (unsigned __int128)(prefix + cost[cut]) * (unsigned)W - goal;
                if (above < below) prefix += cost[cut++];
            }
            while (cut > prev && cost[cut - 1] == 0) cut--; /* as near, and earlier */
        }
        prev = cut;
        if (k == r) lo = cut;
        if (k == r + 1) hi = cut;
    }
    *start = lo;
    *count = hi - lo;
}

void agn_batch_alloc(agn_batch_buf *bb, int rows, int T)
{
    memset(bb, 0, sizeof *bb);
    bb->cap_rows = rows > 0 ? rows : 1;
    bb->cap_T = T;
    bb->ids = agn_xalloc_aligned((size_t)bb->cap_rows * (size_t)T * sizeof(int32_t));
    bb->labels = agn_xcalloc((size_t)bb->cap_rows, sizeof(int32_t));
    bb->index = agn_xcalloc((size_t)bb->cap_rows, sizeof(uint64_t));
}

void agn_batch_free(agn_batch_buf *bb)
{
    free(bb->ids);
    free(bb->labels);
    free(bb->index);
}

uint64_t agn_example_len(const agn_dataset *d, uint64_t i, int T)
{
    uint64_t len = d->offsets[i + 1] - d->offsets[i];
    return len < (uint64_t)T ? len : (uint64_t)T;
}

void agn_batch_fill(agn_batch_buf *bb, const agn_dataset *d, const uint64_t *idx, int n, int T, int pad_to_max)
{
    int Tp = 1;
    for (int j = 0; j < n; j++) {
        int len = (int)agn_example_len(d, idx[j], T);
        if (len > Tp) Tp = len;
    }
    Tp = pad_to_max ? T : (Tp + 7) / 8 * 8;
    if (Tp > T) Tp = T;
    memset(bb->ids, 0, (size_t)n * (size_t)Tp * sizeof(int32_t));
    for (int j = 0; j < n; j++) {
        uint64_t i = idx[j];
        int len = (int)agn_example_len(d, i, T);
        memcpy(bb->ids + (size_t)j * Tp, d->tokens + d->offsets[i], (size_t)len * sizeof(int32_t));
        bb->labels[j] = d->labels[i];
        bb->index[j] = i;
    }
    bb->b.B = n;
    bb->b.T = Tp;
    bb->b.ids = bb->ids;
    bb->b.labels = bb->labels;
    bb->b.example_index = bb->index;
}

uint32_t agn_dataset_id(const agn_dataset *d)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *p;
    size_t left;
#define CRC_BUF(ptr, bytes)                                                         \
    for (p = (const unsigned char *)(ptr), left = (bytes); left > 0;) {             \
        uInt k = left > (1u << 30) ? (1u << 30) : (uInt)left;                       \
        crc = crc32(crc, p, k);                                                     \
        p += k;                                                                     \
        left -= k;                                                                  \
    }
    CRC_BUF(d->offsets, (d->n + 1) * sizeof *d->offsets);
    CRC_BUF(d->labels, d->n);
    CRC_BUF(d->tokens, d->n_tokens * sizeof *d->tokens);
#undef CRC_BUF
    return (uint32_t)crc;
}

size_t agn_batch_token_union(const agn_dataset *d, const uint64_t *idx, long n, int T, uint8_t *mark,
                             int32_t *rows)
{
    size_t k = 0;
    for (long j = 0; j < n; j++) {
        const int32_t *tok = d->tokens + d->offsets[idx[j]];
        uint64_t len = agn_example_len(d, idx[j], T);
        for (uint64_t i = 0; i < len; i++)
            if (!mark[tok[i]]) {
                mark[tok[i]] = 1;
                rows[k++] = (int32_t)tok[i];
            }
    }
    /* in id order (a batch has about a thousand distinct ids: sorting them
     * beats a pass over the whole vocabulary), and the marks left zero */
    for (size_t i = 0; i < k; i++) mark[rows[i]] = 0;
    qsort(rows, k, sizeof *rows, cmp_i32);
    return k;
}
