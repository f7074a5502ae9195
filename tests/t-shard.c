/* t-shard.c: unit tests of the shard writer and reader: random examples
 * written with u16 and u32 ids, raw and zlib, read back identical; several
 * shards concatenated by agn_dataset_load; the writer refusing examples the
 * format cannot hold; shards of different vocabularies refused together. */
#include "config.h"
#include "shard.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures;
#define CHECK(c)                                                                   \
    do {                                                                           \
        if (!(c)) {                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            failures++;                                                            \
        }                                                                          \
    } while (0)

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint32_t next_rand(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static char dir[] = "/tmp/t-shard.XXXXXX";

/* Writes EXAMPLES random examples in shards of PER, then reads each back
 * and the set through agn_dataset_load, comparing with what was written. */
static void roundtrip(uint32_t vocab, uint32_t max_len, int zlevel, uint64_t examples,
                      uint64_t per)
{
    agn_shard_writer w;
    agn_shard_writer_init(&w, vocab, max_len, 4, 0xdeadbeef, zlevel);
    uint64_t *off = malloc((examples + 1) * sizeof *off);
    uint8_t *lab = malloc(examples);
    int32_t *tok = malloc(examples * max_len * sizeof *tok);
    int32_t *ids = malloc(max_len * sizeof *ids);
    char path[256], *paths[64];
    int n_paths = 0;
    off[0] = 0;
    for (uint64_t i = 0; i < examples; i++) {
        size_t n = 1 + next_rand(max_len);
        for (size_t k = 0; k < n; k++) ids[k] = (int32_t)next_rand(vocab);
        if (i == 0) ids[0] = (int32_t)(vocab - 1); /* the largest id */
        int label = next_rand(5) == 4 ? AGN_LABEL_UNKNOWN : (int)next_rand(4);
        CHECK(agn_shard_writer_add(&w, label, ids, n) == 0);
        lab[i] = (uint8_t)label;
        memcpy(tok + off[i], ids, n * sizeof *ids);
        off[i + 1] = off[i] + n;
        if (w.n == per || i + 1 == examples) {
            snprintf(path, sizeof path, "%s/s-%d.agns", dir, n_paths);
            CHECK(agn_shard_writer_flush(&w, path) == 0);
            paths[n_paths++] = strdup(path);
        }
    }
    uint64_t first = 0;
    for (int s = 0; s < n_paths; s++) {
        agn_dataset d;
        agn_shard_header h;
        if (agn_shard_read_ex(&d, &h, paths[s]) != 0) {
            fprintf(stderr, "%s\n", agn_errmsg());
            failures++;
            continue;
        }
        CHECK(h.flags == ((vocab > 65536 ? AGN_SHARD_FLAG_U32 : 0) |
                          (zlevel ? AGN_SHARD_FLAG_ZLIB : 0)));
        CHECK(d.vocab_size == vocab && d.max_len == max_len && d.n_classes == 4);
        CHECK(d.vocab_crc == 0xdeadbeef);
        for (uint64_t i = 0; i < d.n; i++) {
            uint64_t g = first + i;
            CHECK(d.labels[i] == lab[g]);
            CHECK(d.offsets[i + 1] - d.offsets[i] == off[g + 1] - off[g]);
        }
        CHECK(memcmp(d.tokens, tok + off[first], d.n_tokens * sizeof *tok) == 0);
        first += d.n;
        agn_dataset_free(&d);
    }
    CHECK(first == examples);
    agn_dataset all;
    CHECK(agn_dataset_load(&all, paths, n_paths) == 0);
    CHECK(all.n == examples && all.n_tokens == off[examples]);
    CHECK(memcmp(all.offsets, off, (examples + 1) * sizeof *off) == 0);
    CHECK(memcmp(all.labels, lab, examples) == 0);
    CHECK(memcmp(all.tokens, tok, off[examples] * sizeof *tok) == 0);
    agn_dataset_free(&all);
    for (int s = 0; s < n_paths; s++) {
        unlink(paths[s]);
        free(paths[s]);
    }
    agn_shard_writer_free(&w);
    free(off), free(lab), free(tok), free(ids);
}

static void test_refusals(void)
{
    agn_shard_writer w;
    agn_shard_writer_init(&w, 10, 3, 4, 1, 0);
    int32_t ids[4] = {1, 2, 3, 4};
    int32_t bad[1] = {10};
    CHECK(agn_shard_writer_add(&w, 0, ids, 0) != 0);  /* empty */
    CHECK(agn_shard_writer_add(&w, 0, ids, 4) != 0);  /* over max_len */
    CHECK(agn_shard_writer_add(&w, 4, ids, 1) != 0);  /* label */
    CHECK(agn_shard_writer_add(&w, 0, bad, 1) != 0);  /* id */
    CHECK(agn_shard_writer_add(&w, AGN_LABEL_UNKNOWN, ids, 3) == 0);
    CHECK(w.n == 1 && w.n_tokens == 3);
    char p1[256], p2[256], p3[256];
    snprintf(p1, sizeof p1, "%s/a.agns", dir);
    CHECK(agn_shard_writer_flush(&w, p1) == 0);
    CHECK(w.n == 0);
    agn_shard_writer_free(&w);

    /* another vocabulary (CRC), another class count */
    agn_shard_writer_init(&w, 10, 3, 4, 2, 0);
    CHECK(agn_shard_writer_add(&w, 1, ids, 2) == 0);
    snprintf(p2, sizeof p2, "%s/b.agns", dir);
    CHECK(agn_shard_writer_flush(&w, p2) == 0);
    agn_shard_writer_free(&w);
    agn_shard_writer_init(&w, 10, 3, 5, 1, 0);
    CHECK(agn_shard_writer_add(&w, 1, ids, 2) == 0);
    snprintf(p3, sizeof p3, "%s/c.agns", dir);
    CHECK(agn_shard_writer_flush(&w, p3) == 0);
    agn_shard_writer_free(&w);
    agn_dataset d;
    char *ab[] = {p1, p2}, *ac[] = {p1, p3}, *aa[] = {p1, p1};
    CHECK(agn_dataset_load(&d, ab, 2) != 0 && strstr(agn_errmsg(), "another vocabulary"));
    CHECK(agn_dataset_load(&d, ac, 2) != 0 && strstr(agn_errmsg(), "classes"));
    CHECK(agn_dataset_load(&d, aa, 2) == 0 && d.n == 2 && d.n_tokens == 6 &&
          d.labels[1] == AGN_LABEL_UNKNOWN && d.offsets[2] == 6);
    agn_dataset_free(&d);
    unlink(p1), unlink(p2), unlink(p3);

    /* a shard with no examples is valid */
    agn_shard_writer_init(&w, 10, 3, 4, 1, 6);
    CHECK(agn_shard_writer_flush(&w, p1) == 0);
    CHECK(agn_shard_read(&d, p1) == 0 && d.n == 0 && d.n_tokens == 0);
    agn_dataset_free(&d);
    agn_shard_writer_free(&w);
    unlink(p1);
    CHECK(agn_shard_read(&d, p1) != 0 && strstr(agn_errmsg(), "a.agns"));
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    roundtrip(20000, 128, 0, 3000, 1000);
    roundtrip(20000, 64, 6, 2500, 700);
    roundtrip(65536, 16, 0, 500, 500);
    roundtrip(70000, 16, 1, 900, 400);
    test_refusals();
    rmdir(dir);
    if (failures) {
        fprintf(stderr, "t-shard: %d check(s) failed\n", failures);
        return 1;
    }
    printf("t-shard: all checks passed\n");
    return 0;
}
