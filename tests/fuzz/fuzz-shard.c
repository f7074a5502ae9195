/* fuzz-shard.c: a libFuzzer target for the shard reader (agn_shard_read_ex
 * and agn_dataset_load), as agn-train, agn-eval and agn-shard --info drive
 * it.  Not part of `make check`.  Build and run from the top of the source
 * tree:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilibcommon -I build/fuzz \
 *       tests/fuzz/fuzz-shard.c libcommon/shard.c libcommon/util.c -lz -lm \
 *       -o fuzz-shard
 *   mkdir -p corpus && agn-shard -v vocab.txt -L 8 -o s train.tok &&
 *       { printf '\3'; cat s-00000.agns; } > corpus/seed
 *   ./fuzz-shard -max_total_time=300 -max_len=4096 corpus
 *
 * (-I names a configured build directory, for config.h.)  The first byte of
 * an input is not part of the shard: its bit 0 asks the target to store the
 * right payload CRC, bit 1 the right header CRC, so that mutations get past
 * the CRCs to the structure behind them (seeds start with '\3').  The shard
 * goes through a memfd, read by its /proc/self/fd path.  A shard that loads
 * must hold what the reader promises its callers: offsets from 0, each
 * example 1..max_len tokens, ids below vocab_size, labels below n_classes or
 * 255; one that fails must say why, naming the file. */
#define _GNU_SOURCE
#include "config.h"

#include "shard.h"
#include "util.h"
#include "fuzz-memfd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include <zlib.h>

static void check_dataset(const agn_dataset *d)
{
    if (d->offsets[0] != 0 || d->offsets[d->n] != d->n_tokens) abort();
    for (uint64_t i = 0; i < d->n; i++) {
        uint64_t len = d->offsets[i + 1] - d->offsets[i];
        if (d->offsets[i + 1] < d->offsets[i] || len < 1 || len > d->max_len) abort();
        if (d->labels[i] != AGN_LABEL_UNKNOWN && d->labels[i] >= d->n_classes) abort();
    }
    for (uint64_t i = 0; i < d->n_tokens; i++)
        if (d->tokens[i] < 0 || (uint32_t)d->tokens[i] >= d->vocab_size) abort();
}

static void check_error(const char *path)
{
    const char *m = agn_errmsg();
    if (!m || strncmp(m, path, strlen(path)) != 0) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    unsigned fix = data[0];
    size--;
    unsigned char *b = malloc(size ? size : 1);
    memcpy(b, data + 1, size);
    if (size >= AGN_SHARD_HEADER_SIZE) {
        if (fix & 1)
            agn_put_u32(b + 56, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b + AGN_SHARD_HEADER_SIZE,
                                                (uInt)(size - AGN_SHARD_HEADER_SIZE)));
        if (fix & 2) agn_put_u32(b + 60, (uint32_t)crc32(crc32(0L, Z_NULL, 0), b, 60));
    }
    char path[64];
    int fd = fuzz_memfd(b, size, path, sizeof path);
    free(b);
    if (fd < 0) return 0;
    agn_dataset d;
    agn_shard_header h;
    if (agn_shard_read_ex(&d, &h, path) == 0) {
        if (h.n_examples != d.n || h.n_tokens != d.n_tokens) abort();
        check_dataset(&d);
        agn_dataset_free(&d);
        /* The same shard twice: the concatenation's offsets must go on. */
        char *paths[2] = {path, path};
        if (agn_dataset_load(&d, paths, 2) != 0) abort();
        if (d.n != 2 * h.n_examples || d.n_tokens != 2 * h.n_tokens) abort();
        check_dataset(&d);
        agn_dataset_free(&d);
    } else {
        check_error(path);
    }
    close(fd);
    return 0;
}
