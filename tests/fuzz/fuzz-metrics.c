/* fuzz-metrics.c: a libFuzzer target for the CSV reader (csvread.c) and
 * agn-summarize's reading of a run's metrics.csv (agn_summary_read), with
 * the figures and tables made from it (agn_summary_compute and the
 * Markdown, CSV and JSON writers).  Not part of `make check`.  Build and run
 * from the top of the source tree:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Ilibcommon -I build/fuzz \
 *       tests/fuzz/fuzz-metrics.c libcommon/summary.c libcommon/csvread.c \
 *       libcommon/util.c -lm -o fuzz-metrics
 *   mkdir -p corpus && cp RUN/metrics.csv corpus/
 *   ./fuzz-metrics -max_total_time=300 -max_len=4096 corpus
 *
 * (-I names a configured build directory, for config.h.)  The data goes
 * through a memfd, read by its /proc/self/fd path.  The CSV reader must
 * return records whose fields hold no NUL and whose lines rise; a file the
 * summary refuses must say why, naming the file. */
#define _GNU_SOURCE
#include "config.h"

#include "csvread.h"
#include "summary.h"
#include "util.h"
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

static void read_records(const char *path, size_t size)
{
    agn_csvread *r = agn_csvread_open(path);
    if (!r) abort();
    char **f;
    int n, k;
    long last = 0;
    size_t bytes = 0;
    while ((k = agn_csvread_next(r, &f, &n)) > 0) {
        long line = agn_csvread_line(r);
        if (n < 1 || line <= last) abort();
        last = line;
        for (int i = 0; i < n; i++) bytes += strlen(f[i]) + 1;
        if (bytes > size + 1) abort();
    }
    if (k < 0) check_error(path);
    agn_csvread_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *null;
    if (!null && !(null = fopen("/dev/null", "w"))) abort();
    char path[64];
    int fd = fuzz_memfd(data, size, path, sizeof path);
    if (fd < 0) return 0;
    read_records(path, size);
    agn_summary s = {0};
    if (agn_summary_read(&s, path) == 0) {
        if (s.n_runs < 1) abort();
        if (agn_summary_compute(&s, 0) == 0) {
            agn_summary_write_md(&s, null);
            agn_summary_write_csv(&s, null);
            agn_summary_write_json(&s, null);
        }
    } else {
        check_error(path);
    }
    agn_summary_free(&s);
    close(fd);
    return 0;
}
