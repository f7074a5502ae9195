/* fuzz-tokenize.c: a libFuzzer target for the input reader, the CSV parser
 * and the tokenizer together, as agn-tokenize drives them.  Not part of
 * `make check`.  Build and run from the top of the source tree:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilibcommon -I build/tokenize \
 *       tests/fuzz/fuzz-tokenize.c libcommon/input.c libcommon/csv.c \
 *       libcommon/tokenizer.c libcommon/simd.c libcommon/util.c -lz -o fuzz-tokenize
 *   ./fuzz-tokenize -max_total_time=60 -max_len=4096
 *
 * (-I names a configured build directory, for config.h.)  The data goes
 * through a memfd, so gzip input (the fuzzer finds the magic quickly) is
 * exercised too; the record limit is small so the too-long path is hit.
 * Every token line must be valid UTF-8 with single spaces between tokens. */
#define _GNU_SOURCE
#include "config.h"

#include "csv.h"
#include "input.h"
#include "tokenizer.h"
#include "util.h"
#include "fuzz-memfd.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

static void check_tokens(const char *o, size_t m)
{
    if (m && (o[0] == ' ' || o[m - 1] == ' ')) abort();
    for (size_t i = 0; i < m; i++) {
        unsigned char c = (unsigned char)o[i];
        if (c < 0x20 || c == 0x7f) abort();
        if (c == ' ' && i + 1 < m && o[i + 1] == ' ') abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = fuzz_memfd(data, size, NULL, 0);
    if (fd < 0) return 0;
    agn_input *in = agn_input_open_fd(fd, "fuzz");
    if (in) {
        agn_csv *c = agn_csv_new(in, 512);
        agn_tokenizer *t = agn_tokenizer_new();
        agn_csv_record r;
        int k;
        while ((k = agn_csv_next(c, &r)) != AGN_CSV_END && k != AGN_CSV_ERROR) {
            if (k != AGN_CSV_RECORD) continue;
            int n = r.nfields < AGN_CSV_MAX_FIELDS ? r.nfields : AGN_CSV_MAX_FIELDS;
            size_t total = 0;
            for (int i = 0; i < n; i++) total += r.len[i];
            char *out = agn_xmalloc(AGN_TOKENIZE_BOUND(total, n));
            size_t m = agn_tokenize(t, n, r.field, r.len, out, NULL, NULL);
            if (m > AGN_TOKENIZE_BOUND(total, n)) abort();
            check_tokens(out, m);
            free(out);
        }
        agn_tokenizer_free(t);
        agn_csv_free(c);
        agn_input_close(in);
    }
    close(fd);
    return 0;
}
