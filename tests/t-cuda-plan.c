/* t-cuda-plan.c: the CUDA backend's host arithmetic (cuda_plan.h), which
 * runs on the CPU and so is tested on every machine: row buckets, the index
 * block's layout (aligned, disjoint, inside the block), the packing of a
 * batch against an independent walk of its tokens (packed and dense, empty
 * rows, rows of one token and of max_len tokens, out-of-range ids), the
 * row groups of the embedding gradient (every real row exactly once, keys
 * ascending, rows ascending inside a group, padding rows in none), the
 * dropout keys (rng.h), the graph keys, and the launch arithmetic (grids,
 * the fused attention's shared memory and when it fits). */
#include "config.h"
#include "cuda_plan.h"
#include "model.h"
#include "rng.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

#define EXPECT(cond, ...)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("FAIL: " __VA_ARGS__);                                                          \
            printf("\n");                                                                          \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

static void test_buckets(void)
{
    long R = agn_cuda_max_rows(3, 100, 256); /* 300 rows -> 512 */
    EXPECT(R == 512, "max rows of 3 x 100 in buckets of 256: %ld, want 512", R);
    EXPECT(agn_cuda_max_rows(1, 1, 256) == 256, "max rows of 1 x 1: at least one bucket");
    EXPECT(agn_cuda_bucket_rows(0, 256, R) == 256, "0 rows: one bucket");
    EXPECT(agn_cuda_bucket_rows(1, 256, R) == 256, "1 row: one bucket");
    EXPECT(agn_cuda_bucket_rows(256, 256, R) == 256, "256 rows: 256");
    EXPECT(agn_cuda_bucket_rows(257, 256, R) == 512, "257 rows: 512");
    EXPECT(agn_cuda_bucket_rows(512, 256, R) == 512, "512 rows: 512");
    EXPECT(agn_cuda_bucket_rows(513, 256, R) == -1, "more rows than R: -1");
    EXPECT(agn_cuda_bucket_rows(-1, 256, R) == -1, "negative rows: -1");
    EXPECT(agn_cuda_bucket_rows(300, 0, R) == 512, "bucket 0 means the default (256)");
    for (long n = 0; n <= R; n += 7) {
        long b = agn_cuda_bucket_rows(n, 256, R);
        EXPECT(b >= n && b % 256 == 0 && b - n < 256 + (n == 0 ? 1 : 0) && b <= R,
               "bucket of %ld rows is %ld", n, b);
    }
}

static void test_layout(void)
{
    agn_cuda_index_layout l;
    long R = 1024;
    int BM = 7;
    agn_cuda_index_layout_init(&l, R, BM);
    struct {
        size_t off, bytes;
        const char *name;
    } f[] = {{l.ids, R * 4, "ids"},          {l.pos, R * 4, "pos"},
             {l.row_ex, R * 4, "row_ex"},    {l.start, BM * 4, "start"},
             {l.len, BM * 4, "len"},         {l.nkey, BM * 4, "nkey"},
             {l.labels, BM * 4, "labels"},   {l.tok_rows, R * 4, "tok_rows"},
             {l.tok_start, R * 4 + 4, "tok_start"}, {l.tok_key, R * 4, "tok_key"},
             {l.pos_rows, R * 4, "pos_rows"}, {l.pos_start, R * 4 + 4, "pos_start"},
             {l.pos_key, R * 4, "pos_key"},  {l.n_tok, 4, "n_tok"},
             {l.n_pos, 4, "n_pos"},          {l.att_off, BM * sizeof(size_t), "att_off"},
             {l.ex_key, BM * 8, "ex_key"}};
    int n = (int)(sizeof f / sizeof f[0]);
    for (int i = 0; i < n; i++) {
        EXPECT(f[i].off % 256 == 0, "index block: %s at %zu is not 256-byte aligned", f[i].name, f[i].off);
        EXPECT(f[i].off + f[i].bytes <= l.bytes, "index block: %s ends past the block", f[i].name);
        for (int j = 0; j < i; j++)
            EXPECT(f[i].off >= f[j].off + f[j].bytes || f[j].off >= f[i].off + f[i].bytes,
                   "index block: %s overlaps %s", f[i].name, f[j].name);
    }
}

static void test_group_rows(void)
{
    int32_t keys[12] = {5, 1, 5, 0, 9, 1, 1, 5, 3, 9, 0, 2};
    int32_t rows[12], start[13], key[12];
    int count[11];
    int ng = agn_group_rows(keys, 12, 10, rows, start, key, count);
    EXPECT(ng == 6, "groups of 12 keys: %d, want 6 (0 1 2 3 5 9)", ng);
    const int want_key[6] = {0, 1, 2, 3, 5, 9};
    const int want_rows[12] = {3, 10, 1, 5, 6, 11, 8, 0, 2, 7, 4, 9};
    const int want_start[7] = {0, 2, 5, 6, 7, 10, 12};
    for (int g = 0; g < ng && g < 6; g++) EXPECT(key[g] == want_key[g], "group %d key %d", g, key[g]);
    for (int g = 0; g <= ng && g <= 6; g++)
        EXPECT(start[g] == want_start[g], "group %d start %d, want %d", g, start[g], want_start[g]);
    for (int i = 0; i < 12; i++) EXPECT(rows[i] == want_rows[i], "row %d: %d, want %d", i, rows[i], want_rows[i]);
    EXPECT(agn_group_rows(keys, 0, 10, rows, start, key, count) == 0 && start[0] == 0,
           "no rows: no group");
}

/* one batch, checked against a direct walk of its tokens */
static void check_batch(const agn_model *m, const int32_t *ids, int B, int T, int dense,
                        int train, const char *what)
{
    agn_model mm = *m;
    mm.dense = dense;
    long R = agn_cuda_max_rows(m->max_batch, m->cfg.max_len, 256);
    agn_cuda_index_layout l;
    agn_cuda_index_layout_init(&l, R, m->max_batch);
    char *block = calloc(1, l.bytes);
    int *count = malloc(sizeof(int) * (size_t)(m->cfg.vocab_size + m->cfg.max_len + 1));
    int32_t labels[64];
    uint64_t exi[64];
    for (int i = 0; i < B; i++) {
        labels[i] = i % m->cfg.n_classes;
        exi[i] = 1000 + 7 * (uint64_t)i;
    }
    agn_batch b = {.B = B, .T = T, .ids = ids, .labels = labels, .example_index = exi,
                   .seed = 42, .epoch = 2, .train = train, .loss_scale = 1.0f};
    agn_cuda_plan p;
    int rc = agn_cuda_plan_batch(&p, block, &l, R, &mm, &b, 256, count);
    EXPECT(rc == 0, "%s: plan failed", what);
    if (rc != 0) {
        free(block);
        free(count);
        return;
    }
#define A(type, f) ((type *)(block + l.f))
    int32_t *rid = A(int32_t, ids), *rpos = A(int32_t, pos), *rex = A(int32_t, row_ex);
    int32_t *st = A(int32_t, start), *ln = A(int32_t, len), *nk = A(int32_t, nkey);
    size_t *ao = A(size_t, att_off);
    uint64_t *ek = A(uint64_t, ex_key);
    int N = 0, maxlen = 0;
    size_t att = 0;
    int H = m->cfg.n_heads, V = m->cfg.vocab_size;
    for (int i = 0; i < B; i++) {
        EXPECT(st[i] == N, "%s: example %d starts at %d, want %d", what, i, st[i], N);
        int real = 0, last = 0;
        for (int t = 0; t < T; t++)
            if (ids[i * T + t] != 0) {
                real++;
                last = t + 1;
            }
        int want_len = dense ? T : real, want_nk = dense ? last : real;
        EXPECT(ln[i] == want_len, "%s: example %d has %d rows, want %d", what, i, ln[i], want_len);
        EXPECT(nk[i] == want_nk, "%s: example %d has %d keys, want %d", what, i, nk[i], want_nk);
        EXPECT(ao[i] == att, "%s: example %d att_off %zu, want %zu", what, i, ao[i], att);
        att += (size_t)H * want_len * want_nk;
        EXPECT(ek[i] == agn_dropout_key(42, 2, exi[i]), "%s: example %d dropout key", what, i);
        EXPECT(A(int32_t, labels)[i] == labels[i], "%s: example %d label", what, i);
        for (int t = 0, k = 0; t < T; t++) {
            int32_t id = ids[i * T + t];
            if (!dense && id == 0) continue;
            int32_t want = id < 0 || id >= V ? 1 : id;
            int r = st[i] + k++;
            EXPECT(rid[r] == want && rpos[r] == t && rex[r] == i,
                   "%s: row %d is (%d, %d, %d), want (%d, %d, %d)", what, r, rid[r], rpos[r],
                   rex[r], want, t, i);
        }
        N += want_len;
        if (want_len > maxlen) maxlen = want_len;
    }
    EXPECT(p.N == N, "%s: %d rows, want %d", what, p.N, N);
    EXPECT(p.Npad == agn_cuda_bucket_rows(N, 256, R), "%s: Npad %ld", what, p.Npad);
    EXPECT(p.att_floats == att, "%s: %zu attention floats, want %zu", what, p.att_floats, att);
    EXPECT(p.max_len == maxlen, "%s: longest example %d, want %d", what, p.max_len, maxlen);
    EXPECT(p.dropout_on == (train && m->cfg.dropout > 0), "%s: dropout flag", what);
    for (long r = N; r < p.Npad; r++)
        EXPECT(rid[r] == 0 && rpos[r] == 0 && rex[r] == 0, "%s: padding row %ld not (0, 0, 0)", what, r);
    /* groups: each real row exactly once, under its own key */
    for (int which = 0; which < 2; which++) {
        const int32_t *rows = which ? A(int32_t, pos_rows) : A(int32_t, tok_rows);
        const int32_t *gs = which ? A(int32_t, pos_start) : A(int32_t, tok_start);
        const int32_t *gk = which ? A(int32_t, pos_key) : A(int32_t, tok_key);
        const int32_t *keyof = which ? rpos : rid;
        int ng = which ? *A(int32_t, n_pos) : *A(int32_t, n_tok);
        EXPECT(ng == (which ? p.n_pos : p.n_tok), "%s: group count in the block", what);
        char *seen = calloc((size_t)N + 1, 1);
        EXPECT(gs[0] == 0 && gs[ng] == N, "%s: %s groups span [%d, %d), want [0, %d)", what,
               which ? "position" : "token", gs[0], gs[ng], N);
        for (int g = 0; g < ng; g++) {
            EXPECT(g == 0 || gk[g] > gk[g - 1], "%s: group keys not ascending at %d", what, g);
            EXPECT(gs[g + 1] > gs[g], "%s: empty group %d", what, g);
            for (int k = gs[g]; k < gs[g + 1]; k++) {
                int r = rows[k];
                EXPECT(r >= 0 && r < N, "%s: group row %d outside the real rows", what, r);
                if (r < 0 || r >= N) continue;
                EXPECT(!seen[r], "%s: row %d in two groups", what, r);
                seen[r] = 1;
                EXPECT(keyof[r] == gk[g], "%s: row %d (key %d) in group of key %d", what, r, keyof[r], gk[g]);
                EXPECT(k == gs[g] || rows[k - 1] < r, "%s: rows not ascending in group %d", what, g);
            }
        }
        for (int r = 0; r < N; r++) EXPECT(seen[r], "%s: row %d in no group", what, r);
        free(seen);
    }
#undef A
    free(block);
    free(count);
}

static void test_plan(void)
{
    agn_model_config cfg = {.vocab_size = 30, .max_len = 8, .d_model = 8, .n_heads = 2,
                            .n_layers = 1, .d_ff = 16, .n_classes = 3, .dropout = 0.1f};
    agn_model m;
    if (agn_model_create(&m, &cfg, 6) != 0) {
        printf("FAIL: create\n");
        failures++;
        return;
    }
    /* rows: full (len = T), one token, empty, trailing pad, out-of-range ids */
    enum { B = 6, T = 8 };
    int32_t ids[B * T] = {
        3, 4, 5, 6, 7, 8, 9, 10,  /* len T */
        11, 0, 0, 0, 0, 0, 0, 0,  /* len 1 */
        0, 0, 0, 0, 0, 0, 0, 0,   /* empty */
        3, 3, 3, 12, 0, 0, 0, 0,  /* repeated token */
        29, 99, -4, 2, 2, 0, 0, 0, /* out of range -> <unk> (1) */
        5, 6, 0, 0, 0, 0, 0, 0};
    check_batch(&m, ids, B, T, 0, 1, "packed");
    check_batch(&m, ids, B, T, 1, 1, "dense");
    check_batch(&m, ids, B, T, 0, 0, "packed, eval");
    check_batch(&m, ids, 0, T, 0, 1, "no example");
    check_batch(&m, ids + T, 1, 1, 0, 1, "one row of one token");
    /* a batch larger than the model */
    long R = agn_cuda_max_rows(6, 8, 256);
    agn_cuda_index_layout l;
    agn_cuda_index_layout_init(&l, R, 6);
    char *block = calloc(1, l.bytes);
    int count[64];
    agn_cuda_plan p;
    agn_batch big = {.B = 7, .T = T, .ids = ids};
    EXPECT(agn_cuda_plan_batch(&p, block, &l, R, &m, &big, 256, count) == -1, "7 rows > max_batch 6 accepted");
    agn_batch longb = {.B = 1, .T = 9, .ids = ids};
    EXPECT(agn_cuda_plan_batch(&p, block, &l, R, &m, &longb, 256, count) == -1, "T 9 > max_len 8 accepted");
    free(block);
    agn_model_free(&m);
}

static void test_graph_keys(void)
{
    agn_cuda_plan p = {.B = 4, .N = 100, .Npad = 256, .dropout_on = 1, .has_labels = 1};
    agn_cuda_graph_key a = agn_cuda_graph_key_of(&p, 1, 1, 0.25f, 0);
    agn_cuda_graph_key b = agn_cuda_graph_key_of(&p, 1, 1, 0.25f, 0);
    EXPECT(agn_cuda_graph_key_equal(&a, &b), "equal plans give unequal keys");
    p.N = 200; /* same bucket: same graph */
    b = agn_cuda_graph_key_of(&p, 1, 1, 0.25f, 0);
    EXPECT(agn_cuda_graph_key_equal(&a, &b), "rows in the same bucket give another graph");
    agn_cuda_plan q = p;
    q.Npad = 512;
    b = agn_cuda_graph_key_of(&q, 1, 1, 0.25f, 0);
    EXPECT(!agn_cuda_graph_key_equal(&a, &b), "another bucket replays the same graph");
    q = p;
    q.B = 3;
    b = agn_cuda_graph_key_of(&q, 1, 1, 0.25f, 0);
    EXPECT(!agn_cuda_graph_key_equal(&a, &b), "another batch size replays the same graph");
    b = agn_cuda_graph_key_of(&p, 1, 1, 0.5f, 0);
    EXPECT(!agn_cuda_graph_key_equal(&a, &b), "another loss scale replays the same backward");
    agn_cuda_graph_key f1 = agn_cuda_graph_key_of(&p, 1, 0, 0.25f, 0);
    agn_cuda_graph_key f2 = agn_cuda_graph_key_of(&p, 1, 0, 0.5f, 0);
    EXPECT(agn_cuda_graph_key_equal(&f1, &f2), "the loss scale changes the forward's key");
    EXPECT(!agn_cuda_graph_key_equal(&a, &f1), "forward and backward share a key");
    b = agn_cuda_graph_key_of(&p, 1, 1, 0.25f, 1);
    EXPECT(!agn_cuda_graph_key_equal(&a, &b), "reference and fast paths share a graph");
    q = p;
    q.dropout_on = 0;
    b = agn_cuda_graph_key_of(&q, 1, 1, 0.25f, 0);
    EXPECT(!agn_cuda_graph_key_equal(&a, &b), "dropout on and off share a graph");
}

static void test_launch(void)
{
    EXPECT(agn_cuda_grid_1d(0, 256) == 1, "grid of 0 elements: 1 block");
    EXPECT(agn_cuda_grid_1d(256, 256) == 1, "grid of 256: 1 block");
    EXPECT(agn_cuda_grid_1d(257, 256) == 2, "grid of 257: 2 blocks");
    EXPECT(agn_cuda_grid_1d((size_t)1 << 40, 256) == 1u << 18, "grid capped at 2^18 blocks");
    /* fused attention: 2 x 256 x 65 + 4 x 256 + 4 x 64 floats at hd 64, T 256 */
    EXPECT(agn_cuda_attention_smem(256, 64, 4) == (size_t)(2 * 256 * 65 + 1024 + 256) * 4,
           "shared memory of the fused attention: %zu bytes", agn_cuda_attention_smem(256, 64, 4));
    const size_t h100 = 232448; /* opt-in shared memory per block, sm_90 */
    EXPECT(agn_cuda_attention_fused_fits(256, 64, 4, h100), "T 256, hd 64 fits sm_90");
    EXPECT(!agn_cuda_attention_fused_fits(256, 128, 4, h100), "T 256, hd 128 (264 KiB) fits sm_90");
    EXPECT(agn_cuda_attention_fused_fits(128, 128, 4, h100), "T 128, hd 128 does not fit sm_90");
    EXPECT(!agn_cuda_attention_fused_fits(257, 8, 4, h100), "T 257 takes the fused kernel");
    EXPECT(!agn_cuda_attention_fused_fits(0, 8, 4, h100), "T 0 takes the fused kernel");
    EXPECT(agn_cuda_attention_fused_fits(128, 32, 4, 48 * 1024), "T 128, hd 32 needs no opt-in");
    EXPECT(agn_cuda_attention_row_blocks(256, 4) == 8 && agn_cuda_attention_row_blocks(1, 4) == 1 &&
               agn_cuda_attention_row_blocks(33, 4) == 2,
           "row blocks of the fused attention");
    /* column sums: 2 sums x ceil(rows / 256) chunks x columns */
    EXPECT(agn_cuda_colsum_floats(512, 10) >= 2 * 2 * 10 && agn_cuda_colsum_floats(513, 10) >= 2 * 3 * 10,
           "column-sum workspace too small");
}

int main(void)
{
    test_launch();
    test_buckets();
    test_layout();
    test_group_rows();
    test_plan();
    test_graph_keys();
    if (failures) {
        printf("%d failures\n", failures);
        return 1;
    }
    printf("cuda plan: all checks passed\n");
    return 0;
}
