/* fuzz-tokenize-paths.c: a differential libFuzzer target for the SIMD paths
 * of the tokenizer.  Each input goes through both passes on every path the
 * processor runs: pass 1 (the clean-up) with and without its SSE2 scan,
 * pass 2 (the split) as the byte loop agn_tok_split_ref and as the block
 * loop on the scalar, SSE2, AVX2 and AVX-512 paths; every result must be
 * the byte loop's, byte for byte, with the same token count and the same
 * statistics.  The output buffers are exactly as large as tokenizer.h
 * promises (N bytes for pass 1, 4N for pass 2), so AddressSanitizer sees
 * any write past them, and the block paths' switch to token-by-token
 * copies near the end of the buffer is reached.  AGN_SIMD is ignored: the
 * target calls each path itself (it includes tokenizer.c to reach them).
 * Not part of `make check`.  Build and run from the top of the source tree:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilibcommon -I build/release \
 *       tests/fuzz/fuzz-tokenize-paths.c libcommon/simd.c libcommon/util.c \
 *       -o fuzz-tokenize-paths
 *   ./fuzz-tokenize-paths -max_total_time=60 -max_len=4096
 *
 * (-I names a configured build directory, for config.h.) */
#include "../../libcommon/tokenizer.c"

#include <stdio.h>

typedef size_t clean_func(const char *, size_t, char *);

static void differ(const char *what, const char *path, size_t n)
{
    fprintf(stderr, "fuzz-tokenize-paths: %s: the %s path differs from the reference on %zu bytes\n",
            what, path, n);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pthread_once(&tables_once, init_tables);

    /* pass 1: the byte loop (clean_sse2 0) against the SSE2 scan */
    char *in = malloc(size ? size : 1), *c0 = malloc(size ? size : 1), *c1 = malloc(size ? size : 1);
    if (size) memcpy(in, data, size);
    int saved = clean_sse2;
    clean_sse2 = 0;
    size_t m0 = agn_tok_clean(in, size, c0);
    clean_sse2 = 1;
    size_t m1 = agn_tok_clean(in, size, c1);
    clean_sse2 = saved;
    if (m0 > size) abort();
    if (m1 != m0 || memcmp(c0, c1, m0) != 0) differ("pass 1", "sse2", size);

    /* pass 2 on the raw bytes (what the clean-up leaves is a subset of
     * them), NUL-terminated as tokenizer.h asks */
    size_t n = size;
    char *text = malloc(n + 1);
    if (n) memcpy(text, data, n);
    text[n] = '\0';
    size_t cap = 4 * n;
    char *ref = malloc(cap ? cap : 1), *out = malloc(cap ? cap : 1);
    size_t rt = 0;
    agn_tok_stats rs = {0};
    size_t rm = agn_tok_split_ref(text, n, ref, &rt, &rs);
    if (rm > cap) abort();

    struct {
        const char *name;
        split_func *fn;
        int runs;
    } paths[4] = {{"scalar", split_scalar, 1}};
    int np = 1;
#ifdef AGN_TOK_X86
    __builtin_cpu_init();
    paths[np++] = (typeof(paths[0])){"sse2", split_sse2, 1};
    /* the features of tokenizer.c's AVX2_TARGET and WIDE_TARGET */
    int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("bmi") &&
               __builtin_cpu_supports("bmi2") && __builtin_cpu_supports("popcnt");
    paths[np++] = (typeof(paths[0])){"avx2", split_avx2, avx2};
    paths[np++] = (typeof(paths[0])){"avx512", split_avx512,
                                     avx2 && __builtin_cpu_supports("avx512f") &&
                                         __builtin_cpu_supports("avx512bw") &&
                                         __builtin_cpu_supports("avx512vbmi") &&
                                         __builtin_cpu_supports("avx512vbmi2")};
#endif
    for (int p = 0; p < np; p++) {
        if (!paths[p].runs) continue;
        size_t t = 0;
        agn_tok_stats s = {0};
        size_t m = paths[p].fn(text, n, out, &t, &s);
        if (m != rm || t != rt || memcmp(out, ref, rm) != 0 || s.invalid_utf8 != rs.invalid_utf8 ||
            s.controls != rs.controls)
            differ("pass 2", paths[p].name, n);
    }
    free(in);
    free(c0);
    free(c1);
    free(text);
    free(ref);
    free(out);
    return 0;
}
