/* t-csv.c: the input reader and the CSV parser at every block edge.
 *
 * The same hand-written CSV (BOM, CRLF, doubled quotes, newlines in quotes,
 * empty fields, blank lines, a bad record, an unterminated quote at the end)
 * is parsed from a plain and a gzip file with reads of 1, 2, 3, 5, 7, 64
 * bytes and the default, and the records, as a transcript, must equal the
 * transcript written here by hand.  Then the line reader, the same way. */
#include "config.h"

#include "csv.h"
#include "input.h"
#include "util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static int failures;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: FAIL: ", __FILE__, __LINE__);             \
            fprintf(stderr, __VA_ARGS__);                                    \
            fputc('\n', stderr);                                             \
            failures++;                                                      \
        }                                                                    \
    } while (0)

static const char CSV[] =
    "\xEF\xBB\xBF"
    "\"1\",\"plain\",\"text\"\r\n"
    "\"2\",\"say \"\"hi\"\"\",\"two\nlines\"\n"
    "\n"
    "3,unquoted,\"mixed\"\r\n"
    "\r\n"
    "\"4\",,\"\"\n"
    "\"1\",\"a\"x,\"b\"\n"
    "\"2\",\"after\",\"bad\"\n"
    "\"3\",\"open\",\"never closed\nat all\n";

/* Each record as "LINE:[f1|f2|f3]", bad ones as "BAD:message", then "END". */
static const char WANT[] =
    "1:[1|plain|text]\n"
    "2:[2|say \"hi\"|two\nlines]\n"
    "5:[3|unquoted|mixed]\n"
    "7:[4||]\n"
    "BAD:F:8: unexpected 'x' after a closing quote\n"
    "9:[2|after|bad]\n"
    "BAD:F:10: unterminated quoted field at end of input\n"
    "END\n";

static void write_file(const char *path, const char *data, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        gzwrite(f, data, (unsigned)n);
        gzclose(f);
    } else {
        FILE *f = fopen(path, "wb");
        fwrite(data, 1, n, f);
        fclose(f);
    }
}

static char *transcript(const char *path, size_t block)
{
    static char buf[4096];
    size_t n = 0;
    agn_input *in = agn_input_open_block(path, block);
    if (!in) return strcpy(buf, agn_errmsg());
    agn_csv *c = agn_csv_new(in, 1 << 20);
    agn_csv_record r;
    int k;
    while ((k = agn_csv_next(c, &r)) != AGN_CSV_END && n < sizeof buf - 200) {
        if (k == AGN_CSV_ERROR) {
            n += (size_t)snprintf(buf + n, sizeof buf - n, "ERROR:%s\n", agn_errmsg());
            break;
        }
        if (k == AGN_CSV_BAD) {
            const char *m = agn_errmsg(), *colon = strchr(m, ':');
            n += (size_t)snprintf(buf + n, sizeof buf - n, "BAD:F%s\n", colon ? colon : m);
            continue;
        }
        n += (size_t)snprintf(buf + n, sizeof buf - n, "%llu:[", (unsigned long long)r.line);
        for (int i = 0; i < r.nfields; i++)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%.*s", i ? "|" : "", (int)r.len[i],
                                  r.field[i]);
        n += (size_t)snprintf(buf + n, sizeof buf - n, "]\n");
    }
    if (k == AGN_CSV_END) n += (size_t)snprintf(buf + n, sizeof buf - n, "END\n");
    agn_csv_free(c);
    agn_input_close(in);
    return buf;
}

static void test_csv(const char *dir)
{
    static const size_t blocks[] = {1, 2, 3, 5, 7, 64, 0};
    char path[512];
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, sizeof path, "%s/t.csv%s", dir, gz ? ".gz" : "");
        write_file(path, CSV, sizeof CSV - 1, gz);
        for (size_t i = 0; i < AGN_ARRAY_LEN(blocks); i++) {
            const char *got = transcript(path, blocks[i]);
            CHECK(strcmp(got, WANT) == 0, "%s, block %zu:\n%s--- want:\n%s", gz ? "gzip" : "plain",
                  blocks[i], got, WANT);
        }
    }
    /* a partial BOM is data, not a mark */
    snprintf(path, sizeof path, "%s/bom.csv", dir);
    write_file(path, "\xEF\xBB" "x,y\n", 6, 0);
    for (size_t b = 1; b < 4; b++)
        CHECK(strcmp(transcript(path, b), "1:[\xEF\xBBx|y]\nEND\n") == 0, "partial BOM, block %zu", b);
    /* a record over the limit is bad, and parsing resumes after it */
    snprintf(path, sizeof path, "%s/long.csv", dir);
    write_file(path, "\"1\",\"0123456789abcdef\"\n2,ok\n", 27, 0);
    agn_input *in = agn_input_open_block(path, 3);
    agn_csv *c = agn_csv_new(in, 8);
    agn_csv_record r;
    CHECK(agn_csv_next(c, &r) == AGN_CSV_BAD && strstr(agn_errmsg(), "longer than 8 bytes"),
          "record limit: %s", agn_errmsg());
    CHECK(agn_csv_next(c, &r) == AGN_CSV_RECORD && r.nfields == 2 && r.line == 2,
          "resume after a long record");
    CHECK(agn_csv_next(c, &r) == AGN_CSV_END, "end after a long record");
    agn_csv_free(c);
    agn_input_close(in);
}

static void test_gzip_errors(const char *dir)
{
    char path[512], big[20000];
    for (size_t i = 0; i < sizeof big; i++) big[i] = (char)('a' + (i * 7919 % 26));
    snprintf(path, sizeof path, "%s/e.gz", dir);
    write_file(path, big, sizeof big, 1);
    FILE *f = fopen(path, "rb");
    static unsigned char gz[40000];
    size_t n = fread(gz, 1, sizeof gz, f);
    fclose(f);
    /* cut anywhere, the reader must say "truncated", never end quietly */
    for (size_t cut = 10; cut < n; cut += n / 37 + 1) {
        write_file(path, (const char *)gz, cut, 0);
        agn_input *in = agn_input_open_block(path, 1000);
        const char *b;
        ssize_t k, total = 0;
        while ((k = agn_input_read(in, &b)) > 0) total += k;
        CHECK(k < 0 && strstr(agn_errmsg(), "truncated gzip data"), "cut at %zu of %zu: %s", cut,
              n, k < 0 ? agn_errmsg() : "no error");
        CHECK(total <= (ssize_t)sizeof big, "cut at %zu: too much data", cut);
        agn_input_close(in);
    }
}

static void test_lines(const char *dir)
{
    static const char TEXT[] = "one\r\ntwo\n\nthree without end";
    static const char *const want[] = {"one", "two", "", "three without end"};
    char path[512];
    for (int gz = 0; gz < 2; gz++) {
        snprintf(path, sizeof path, "%s/l.txt%s", dir, gz ? ".gz" : "");
        write_file(path, TEXT, sizeof TEXT - 1, gz);
        for (size_t block = 1; block < 9; block++) {
            agn_input *in = agn_input_open_block(path, block);
            const char *line;
            size_t len;
            int k, i = 0;
            while ((k = agn_input_getline(in, &line, &len)) == 1) {
                CHECK(i < 4 && len == strlen(want[i]) && memcmp(line, want[i], len) == 0,
                      "line %d, block %zu: '%.*s'", i + 1, block, (int)len, line);
                CHECK(agn_input_lineno(in) == (uint64_t)i + 1, "line number");
                i++;
            }
            CHECK(k == 0 && i == 4, "lines read: %d (k %d), block %zu", i, k, block);
            agn_input_close(in);
        }
        /* a line over the limit is dropped with a message, and reading goes on */
        agn_input *in = agn_input_open_block(path, 2);
        agn_input_set_max_line(in, 4);
        const char *line;
        size_t len;
        CHECK(agn_input_getline(in, &line, &len) == 1 && len == 3, "short line");
        CHECK(agn_input_getline(in, &line, &len) == 1 && len == 3, "short line");
        CHECK(agn_input_getline(in, &line, &len) == 1 && len == 0, "empty line");
        CHECK(agn_input_getline(in, &line, &len) == 2 && strstr(agn_errmsg(), ":4: line longer"),
              "long line: %s", agn_errmsg());
        CHECK(agn_input_getline(in, &line, &len) == 0, "end after a long line");
        agn_input_close(in);
    }
}

int main(void)
{
    char dir[] = "/tmp/agn-t-csv.XXXXXX";
    if (!mkdtemp(dir)) return 99;
    test_csv(dir);
    test_gzip_errors(dir);
    test_lines(dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    if (failures) fprintf(stderr, "%d check(s) failed\n", failures);
    else printf("ok - CSV and line reader at every block edge, plain and gzip\n");
    return failures ? 1 : 0;
}
