/* fuzz-safetensors.c: a libFuzzer target for the safetensors reader
 * (agn_st_open_mem) and, on the same bytes, the checkpoint loader
 * (agn_checkpoint_load) with what agn-eval and agn-train --resume do next
 * with a checkpoint's metadata: parse its config (runconfig.c) and its
 * vocabulary (vocab.c).  Not part of `make check`.  Build and run from the
 * top of the source tree:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilibcommon -I build/fuzz \
 *       tests/fuzz/fuzz-safetensors.c libcommon/safetensors.c \
 *       libcommon/checkpoint.c libcommon/runconfig.c libcommon/vocab.c libcommon/simd.c \
 *       libcommon/util.c -lyaml -lz -lm -o fuzz-safetensors
 *   mkdir -p corpus && cp RUN/last.safetensors RUN/best.safetensors corpus/
 *   ./fuzz-safetensors -max_total_time=300 -max_len=16384 corpus
 *
 * (-I names a configured build directory, for config.h; RUN is a run
 * directory of a tiny model, e.g. agn-train with d_model 4 on a few
 * examples, so that a whole checkpoint fits in -max_len.)  The checkpoint
 * loader reads a path: the data goes through a memfd, read by its
 * /proc/self/fd path.  A file that opens must hold what the reader promises:
 * each tensor's size is its dtype's times its shape's, the spans tile the data
 * section, every F32 tensor reads back with its own shape; one that fails
 * must say why, naming the file. */
#define _GNU_SOURCE
#include "config.h"

#include "checkpoint.h"
#include "runconfig.h"
#include "safetensors.h"
#include "util.h"
#include "vocab.h"
#include "fuzz-memfd.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void check_error(const char *path)
{
    const char *m = agn_errmsg();
    if (!m || strncmp(m, path, strlen(path)) != 0) abort();
}

static void check_file(const agn_st_file *f, size_t size)
{
    size_t total = 0;
    for (int i = 0; i < agn_st_count(f); i++) {
        const agn_st_tensor *t = agn_st_tensor_at(f, i);
        if (!t || t->ndim < 0 || t->ndim > AGN_ST_MAX_DIMS) abort();
        size_t numel = 1;
        for (int k = 0; k < t->ndim; k++) numel *= (size_t)t->shape[k];
        if (numel != t->numel || t->nbytes != numel * agn_st_dtype_size(t->dtype)) abort();
        if (agn_st_find(f, t->name) != t) abort();
        total += t->nbytes;
        if (total > size) abort();
        if (t->dtype == AGN_ST_F32) {
            float *dst = malloc(t->nbytes ? t->nbytes : 1);
            if (agn_st_read_f32(f, t->name, dst, t->ndim, t->shape) != 0) abort();
            if (t->nbytes && memcmp(dst, t->data, t->nbytes) != 0) abort();
            free(dst);
        }
    }
    for (int i = 0; i < agn_st_meta_count(f); i++) {
        const char *k, *v;
        agn_st_meta_at(f, i, &k, &v);
        if (agn_st_meta(f, k) != v) abort();
    }
}

/* What agn-eval does with a checkpoint that loaded. */
static void use_checkpoint(const agn_ckpt *ck, const char *path)
{
    const agn_ckpt_meta *m = agn_checkpoint_meta(ck);
    agn_config c;
    agn_config_defaults(&c);
    if (agn_config_parse(&c, m->config_yaml, strlen(m->config_yaml), path) == 0) {
        if (agn_config_check(&c) != 0) check_error(path);
    } else {
        check_error(path);
    }
    agn_config_free(&c);
    if (m->vocab_text) {
        agn_vocab *v = agn_vocab_parse(m->vocab_text, m->vocab_len, path);
        if (v) agn_vocab_free(v);
        else check_error(path);
    }
    for (int i = 0; i < m->n_classes; i++)
        if (!m->class_names[i]) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agn_st_file *f = agn_st_open_mem(data, size, "fuzz");
    if (f) {
        check_file(f, size);
        agn_st_close(f);
    } else {
        check_error("fuzz");
    }
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    agn_ckpt *ck = agn_checkpoint_load(path);
    if (ck) {
        use_checkpoint(ck, path);
        agn_checkpoint_free(ck);
    } else {
        check_error(path);
    }
    close(fd);
    return 0;
}
