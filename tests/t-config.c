/* t-config.c: unit tests of the run config (runconfig.h) and of the
 * trainer's data order (train.h): YAML reading and its line numbers, the
 * command-line overrides, the resolved config read back to the same values,
 * the permutation (a permutation, reproducible, another per epoch and per
 * seed) and the rank slices (contiguous, covering, sizes within one). */
#include "config.h"

#include "runconfig.h"
#include "train.h"
#include "util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(cond, ...)                                        \
    do {                                                        \
        if (!(cond)) {                                          \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                       \
            fputc('\n', stderr);                                \
            failures++;                                         \
        }                                                       \
    } while (0)

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    if (!fp || fputs(text, fp) < 0 || fclose(fp) != 0) {
        perror(path);
        exit(99);
    }
}

/* Loads TEXT as a config file; returns the status, the message in MSG. */
static int load_text(agn_config *c, const char *path, const char *text)
{
    write_file(path, text);
    agn_config_defaults(c);
    int rc = agn_config_load(c, path);
    if (rc == 0) rc = agn_config_check(c);
    return rc;
}

static void test_yaml(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/my-run.yaml", dir);
    agn_config c;
    int rc = load_text(&c, path,
                       "# a comment\n"
                       "model:\n"
                       "  d_model: 64\n"
                       "  n_heads: 8\n"
                       "  class_names: [a, \"b c\", 'd']\n"
                       "  n_classes: 3\n"
                       "train:\n"
                       "  lr: 3e-4\n"
                       "  seed: 18446744073709551615\n"
                       "  epochs: 1e1\n"
                       "  precision: bf16\n");
    CHECK(rc == 0, "valid config rejected: %s", agn_errmsg());
    CHECK(strcmp(c.name, "my-run") == 0, "name %s", c.name);
    CHECK(c.d_model == 64 && c.n_heads == 8 && c.n_classes == 3, "model values");
    CHECK(c.lr == 3e-4 && c.epochs == 10 && c.seed == UINT64_MAX, "train values");
    CHECK(c.n_class_names == 3 && strcmp(c.class_names[1], "b c") == 0, "class names");
    CHECK(c.line[AGN_K_D_MODEL] == 3 && c.line[AGN_K_LR] == 8 && c.line[AGN_K_MAX_LEN] == 0, "lines");
    CHECK(c.max_len == 128 && c.global_batch == 32, "defaults kept");

    /* overrides, then the resolved config read back gives the same values */
    CHECK(agn_config_set(&c, "train.global_batch", "7", "-b") == 0, "set: %s", agn_errmsg());
    CHECK(agn_config_set(&c, "dropout", "0.25", "--dropout") == 0, "set: %s", agn_errmsg());
    CHECK(agn_config_set(&c, "class_names", "x,y,z", "--set") == 0, "set list");
    CHECK(c.line[AGN_K_GLOBAL_BATCH] == -1, "override origin");
    char w[256];
    CHECK(strcmp(agn_config_where(&c, AGN_K_GLOBAL_BATCH, w, sizeof w), "command line: -b") == 0, "where: %s", w);
    CHECK(agn_config_set(&c, "train.nope", "1", "--set") != 0, "unknown key accepted");
    CHECK(agn_config_set(&c, "epochs", "0", "-e") != 0 && strstr(agn_errmsg(), "-e"), "range: %s", agn_errmsg());
    CHECK(agn_config_set(&c, "dropout", "1", "--dropout") != 0, "dropout 1 accepted");
    CHECK(agn_config_set(&c, "eps", "0", "--set") != 0, "eps 0 accepted");
    CHECK(agn_config_set(&c, "seed", "-1", "--seed") != 0, "negative seed accepted");
    char *text = agn_config_to_string(&c);
    agn_config d;
    agn_config_defaults(&d);
    CHECK(agn_config_parse(&d, text, strlen(text), "resolved") == 0, "resolved config unreadable: %s\n%s",
          agn_errmsg(), text);
    CHECK(d.global_batch == 7 && d.dropout == 0.25 && d.lr == c.lr && d.seed == c.seed && d.epochs == 10 &&
              strcmp(d.precision, "bf16") == 0 && d.n_class_names == 3 && strcmp(d.class_names[2], "z") == 0,
          "round trip");
    char *text2 = agn_config_to_string(&d);
    CHECK(strcmp(text, text2) == 0, "written twice differently:\n%s\n---\n%s", text, text2);
    free(text);
    free(text2);
    agn_config_free(&d);
    agn_config_free(&c);

    /* names holding what YAML takes only escaped (DEL, C1 controls, the
     * line breaks NEL, LS and PS, a BOM, a noncharacter) read back the same */
    rc = load_text(&c, path,
                   "model:\n  class_names: [\"a\\x7f\", \"\\N\\L\\P\\x80\\uFEFF\\uFFFF\\e\"]\n"
                   "  n_classes: 2\n");
    CHECK(rc == 0 && c.n_class_names == 2 && strcmp(c.class_names[0], "a\x7f") == 0, "escaped names: %s",
          agn_errmsg());
    text = agn_config_to_string(&c);
    agn_config_defaults(&d);
    CHECK(agn_config_parse(&d, text, strlen(text), "resolved") == 0, "resolved config unreadable: %s\n%s",
          agn_errmsg(), text);
    CHECK(d.n_class_names == 2 && strcmp(d.class_names[0], c.class_names[0]) == 0 &&
              strcmp(d.class_names[1], c.class_names[1]) == 0,
          "escaped names read back otherwise:\n%s", text);
    free(text);
    agn_config_free(&d);
    agn_config_free(&c);

    /* errors name the file, the line and the key */
    struct { const char *text, *want; } bad[] = {
        {"model:\n  d_model: 64\n  colour: red\n", "my-run.yaml:3: model.colour: unknown key"},
        {"train:\n  lr: quick\n", "my-run.yaml:2: train.lr: 'quick' is not a number"},
        {"train:\n\n  epochs: 2.5\n", "my-run.yaml:3: train.epochs: '2.5' is not an integer"},
        {"train:\n  warmup: -1\n", "my-run.yaml:2: train.warmup: -1 is out of range"},
        {"model:\n  n_heads: 5\n", "my-run.yaml:2: model.n_heads: 5 heads do not divide d_model 128"},
        {"model:\n  n_classes: 3\n", "my-run.yaml:0"}, /* placeholder, replaced below */
        {"- a\n- b\n", "my-run.yaml:1: expected sections"},
        {"train: 3\n", "my-run.yaml:1: train: expected a mapping"},
        {"train:\n  precision: fp8\n", "my-run.yaml:2: train.precision: 'fp8' is not one of"},
        {"model:\n  class_names: x\n", "my-run.yaml:2: model.class_names: expected a list"},
    };
    bad[5].want = "model.class_names (default): 4 names for 3 classes";
    for (size_t i = 0; i < AGN_ARRAY_LEN(bad); i++) {
        agn_config e;
        int r = load_text(&e, path, bad[i].text);
        CHECK(r != 0, "accepted: %s", bad[i].text);
        CHECK(r != 0 && strstr(agn_errmsg(), bad[i].want), "message '%s' lacks '%s'", agn_errmsg(), bad[i].want);
        agn_config_free(&e);
    }

    /* the data checks */
    agn_config_defaults(&c);
    CHECK(c.vocab_size == 0, "vocab_size defaults to auto (0), got %ld", c.vocab_size);
    CHECK(agn_config_check_data(&c, 19999, 128, 4, "the shards") == 0, "auto takes any vocabulary: %s",
          agn_errmsg());
    c.vocab_size = 20000;
    CHECK(agn_config_check_data(&c, 20000, 128, 4, "the shards") == 0, "data ok: %s", agn_errmsg());
    CHECK(agn_config_check_data(&c, 19999, 128, 4, "the shards") != 0 && strstr(agn_errmsg(), "model.vocab_size"),
          "vocab mismatch: %s", agn_errmsg());
    CHECK(agn_config_check_data(&c, 20000, 64, 4, "the shards") != 0 && strstr(agn_errmsg(), "model.max_len"),
          "max_len: %s", agn_errmsg());
    CHECK(agn_config_check_data(&c, 20000, 256, 4, "the shards") == 0, "a shorter max_len is fine");
    agn_config_free(&c);
    unlink(path);
}

static void test_order(void)
{
    enum { N = 1000 };
    static uint64_t p[N], q[N];
    int seen[N];
    agn_train_permutation(p, N, 42, 0);
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        CHECK(p[i] < N && !seen[p[i]], "not a permutation at %d", i);
        if (p[i] < N) seen[p[i]] = 1;
    }
    agn_train_permutation(q, N, 42, 0);
    CHECK(memcmp(p, q, sizeof p) == 0, "permutation not reproducible");
    agn_train_permutation(q, N, 42, 1);
    CHECK(memcmp(p, q, sizeof p) != 0, "same permutation for another epoch");
    agn_train_permutation(q, N, 43, 0);
    CHECK(memcmp(p, q, sizeof p) != 0, "same permutation for another seed");
    /* not the identity, and roughly uniform: element 0 lands in each half about
     * equally often over epochs */
    int fixed = 0, low = 0;
    for (int i = 0; i < N; i++) fixed += p[i] == (uint64_t)i;
    CHECK(fixed < 10, "%d fixed points", fixed);
    for (uint32_t e = 0; e < 400; e++) {
        agn_train_permutation(q, N, 7, e);
        for (int i = 0; i < N; i++)
            if (q[i] == 0) low += i < N / 2;
    }
    CHECK(low > 150 && low < 250, "element 0 in the first half %d times of 400", low);
    agn_train_permutation(q, 1, 1, 0);
    CHECK(q[0] == 0, "n = 1");

    for (long B = 1; B <= 40; B++)
        for (int W = 1; W <= 5; W++) {
            long next = 0, mn = B, mx = 0;
            for (int r = 0; r < W; r++) {
                long s, n;
                agn_train_slice(B, r, W, &s, &n);
                CHECK(s == next, "B=%ld W=%d r=%d starts at %ld, not %ld", B, W, r, s, next);
                next = s + n;
                if (n < mn) mn = n;
                if (n > mx) mx = n;
            }
            CHECK(next == B, "B=%ld W=%d slices cover %ld", B, W, next);
            CHECK(mx - mn <= 1, "B=%ld W=%d sizes %ld..%ld", B, W, mn, mx);
        }

    /* slices by cost: contiguous, in rank order, and cut k at the boundary
     * whose prefix is nearest k/W of the total, the earliest of equals, found
     * here by trying every boundary; costs from 0 (ties) to 2^50 (overflow) */
    uint64_t cost[40], P[41], st = 12345;
    for (int trial = 0; trial < 3000; trial++) {
        long B = 1 + trial % 40;
        int W = 1 + (trial / 40) % 5;
        int kind = trial % 3;
        for (long j = 0; j < B; j++) {
            st = agn_splitmix64(st);
            cost[j] = kind == 0 ? st % 4 : kind == 1 ? 1 + st % 1000 : st >> 14;
        }
        P[0] = 0;
        for (long j = 0; j < B; j++) P[j + 1] = P[j] + cost[j];
        long next = 0;
        for (int r = 0; r < W; r++) {
            long s, n;
            agn_train_slice_cost(cost, B, r, W, &s, &n);
            CHECK(s == next && n >= 0, "by cost: B=%ld W=%d r=%d starts at %ld (count %ld), not %ld", B, W, r, s, n,
                  next);
            if (P[B] > 0 && r > 0) {
                long best = 0;
                long double bd = -1;
                for (long c = 0; c <= B; c++) {
                    long double d = fabsl((long double)W * P[c] - (long double)r * P[B]);
                    if (bd < 0 || d < bd) bd = d, best = c;
                }
                CHECK(s == best, "by cost: B=%ld W=%d cut %d at %ld, the nearest is %ld", B, W, r, s, best);
            }
            next = s + n;
        }
        CHECK(next == B, "by cost: B=%ld W=%d slices cover %ld", B, W, next);
        if (P[B] == 0)
            for (int r = 0; r < W; r++) { /* no cost at all: by count */
                long s, n, s2, n2;
                agn_train_slice_cost(cost, B, r, W, &s, &n);
                agn_train_slice(B, r, W, &s2, &n2);
                CHECK(s == s2 && n == n2, "all costs 0: B=%ld W=%d r=%d not by count", B, W, r);
            }
    }
    /* the model's cost: projections and attention, per unit of D */
    CHECK(agn_train_cost(40, 128, 512) == 40 * (4 * 128 + 2 * 512 + 80), "agn_train_cost(40, 128, 512)");
}

int main(void)
{
    agn_set_progname("t-config");
    char dir[] = "/tmp/t-config.XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 99;
    }
    test_yaml(dir);
    test_order();
    rmdir(dir);
    if (failures) {
        fprintf(stderr, "%d failures\n", failures);
        return 1;
    }
    printf("ok - config and data order\n");
    return 0;
}
