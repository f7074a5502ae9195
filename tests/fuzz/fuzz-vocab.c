/* fuzz-vocab.c: a libFuzzer target for the vocabulary reader
 * (agn_vocab_parse, which agn_vocab_load calls on a file's bytes), as
 * agn-shard and agn-train read vocab.txt and agn-eval a checkpoint's copy.
 * Not part of `make check`.  Build and run from the top of the source tree:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilibcommon -I build/fuzz \
 *       tests/fuzz/fuzz-vocab.c libcommon/vocab.c libcommon/simd.c libcommon/util.c -lz -lm \
 *       -o fuzz-vocab
 *   mkdir -p corpus && agn-vocab -o corpus/vocab.txt train.tok
 *   ./fuzz-vocab -max_total_time=300 -max_len=4096 corpus
 *
 * (-I names a configured build directory, for config.h.)  A vocabulary that
 * loads must hold what vocab.h promises: "<pad>" and "<unk>" at ids 0 and
 * 1, every other token found again at its own id, the CRC of the token list
 * and the text as given; one that fails must say why, naming the file. */
#define _GNU_SOURCE
#include "config.h"

#include "util.h"
#include "vocab.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    agn_vocab *v = agn_vocab_parse((const char *)data, size, "fuzz.txt");
    if (!v) {
        const char *m = agn_errmsg();
        if (!m || strncmp(m, "fuzz.txt", 8) != 0) abort();
        return 0;
    }
    uint32_t n = agn_vocab_size(v);
    if (n < 2 || strcmp(agn_vocab_token(v, AGN_PAD_ID), AGN_PAD_TOKEN) != 0 ||
        strcmp(agn_vocab_token(v, AGN_UNK_ID), AGN_UNK_TOKEN) != 0)
        abort();
    if (agn_vocab_token(v, -1) || agn_vocab_token(v, (int32_t)n)) abort();
    if (agn_vocab_lookup(v, AGN_PAD_TOKEN, strlen(AGN_PAD_TOKEN)) != AGN_UNK_ID) abort();
    uLong crc = crc32(0L, Z_NULL, 0);
    for (uint32_t id = 0; id < n; id++) {
        const char *t = agn_vocab_token(v, (int32_t)id);
        size_t len = strlen(t);
        if (len == 0 || strpbrk(t, " \t\n\r")) abort();
        if (id > AGN_UNK_ID && agn_vocab_lookup(v, t, len) != (int32_t)id) abort();
        crc = crc32(crc, (const Bytef *)t, (uInt)len);
        crc = crc32(crc, (const Bytef *)"\n", 1);
    }
    if ((uint32_t)crc != agn_vocab_crc(v)) abort();
    size_t tl;
    const char *text = agn_vocab_text(v, &tl);
    if (tl != size || (size && memcmp(text, data, size) != 0)) abort();
    agn_vocab_free(v);
    return 0;
}
