/* agn-tokenize: AG News CSV (or TSV, or raw text lines) in, the token
 * stream of DESIGN.md out: one example per line, "LABEL<TAB>tok tok ...",
 * LABEL the 0-based class or '-'.  The clean-up and split rules are in
 * libcommon/tokenizer.h and agn-tokenize(1).
 *
 * Streaming: one record, one input block and one output block in memory at
 * a time; output is gathered in a 1 MiB buffer and written in large blocks. */
#include "config.h"

#include "csv.h"
#include "input.h"
#include "tokenizer.h"
#include "util.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { FMT_CSV, FMT_TSV, FMT_TEXT };

#define OUT_FLUSH ((size_t)1 << 20)
#define MAX_SHOWN_BAD 10

typedef struct {
    int format;
    int classes;
    size_t max_record;
    int skip_bad, quiet, progress;
    int several; /* more than one input file */
    agn_out out;
    char *obuf;
    size_t olen, ocap;
    agn_tokenizer *tok;
    uint64_t rows, bad, tokens, bytes_done;
    double t0, last_progress;
} state;

/* ---- usage ------------------------------------------------------------- */

static void usage(void)
{
    printf("Usage: %s [OPTION]... [FILE]...\n"
           "Tokenize AG News CSV files (or TSV, or raw text lines) into the agn token\n"
           "stream: one line per example, LABEL<TAB>tok tok ..., LABEL the 0-based class.\n"
           "FILE may be gzip-compressed (recognised by content); with no FILE, or\n"
           "when FILE is -, read standard input.\n"
           "\n"
           "  -f, --format=FMT      input format: csv (class,title,description; the\n"
           "                        default), tsv (CLASS<TAB>text), text (one text per\n"
           "                        line, label -)\n"
           "  -o, --output=FILE     write to FILE (atomically) instead of standard output\n"
           "  -C, --classes=N       classes are 1..N in the input (default 4)\n"
           "      --max-record=SIZE longest record accepted, e.g. 64M (default 8M)\n"
           "      --skip-bad        skip malformed rows, count them and report the count\n"
           "  -q, --quiet           no progress, no warnings, no skipped-row messages\n"
           "  -h, --help            display this help and exit\n"
           "  -V, --version         output version information and exit\n"
           "\n"
           "Example:\n"
           "  %s train.csv.gz | agn-vocab -n 20000 > vocab.txt\n",
           agn_progname, agn_progname);
}

/* ---- output ------------------------------------------------------------ */

static int flush_out(state *s)
{
    if (s->olen && fwrite(s->obuf, 1, s->olen, s->out.fp) != s->olen)
        return agn_seterr_errno("%s: write error", s->out.path);
    s->olen = 0;
    return 0;
}

/* Room for N more bytes in the output buffer. */
static int reserve(state *s, size_t n)
{
    if (s->ocap - s->olen >= n) return 0;
    if (flush_out(s) < 0) return -1;
    if (s->ocap < n) {
        free(s->obuf);
        s->ocap = n;
        s->obuf = agn_xmalloc(s->ocap);
    }
    return 0;
}

/* Writes one example: LABEL (0-based, or -1 for '-'), tab, tokens, newline. */
static int emit(state *s, int label, int ntexts, const char *const text[], const size_t len[],
                agn_tok_stats *st)
{
    size_t total = 0;
    for (int i = 0; i < ntexts; i++) total += len[i];
    if (reserve(s, AGN_TOKENIZE_BOUND(total, ntexts) + 16) < 0) return -1;
    char *o = s->obuf + s->olen;
    if (label < 0) {
        *o++ = '-';
    } else {
        if (label >= 100) *o++ = (char)('0' + label / 100);
        if (label >= 10) *o++ = (char)('0' + label / 10 % 10);
        *o++ = (char)('0' + label % 10);
    }
    *o++ = '\t';
    size_t ntok;
    o += agn_tokenize(s->tok, ntexts, text, len, o, &ntok, st);
    *o++ = '\n';
    s->olen = (size_t)(o - s->obuf);
    s->rows++;
    s->tokens += ntok;
    if (s->olen >= OUT_FLUSH) return flush_out(s);
    return 0;
}

/* ---- rows ---------------------------------------------------------------- */

static void show_progress(state *s, const agn_input *in, int final)
{
    double now = agn_now();
    if (!final && now - s->last_progress < 1.0) return;
    s->last_progress = now;
    double mb = (double)(s->bytes_done + agn_input_bytes(in)) / 1e6;
    double dt = now - s->t0 > 1e-9 ? now - s->t0 : 1e-9;
    fprintf(stderr, "\r%s: %s: %llu rows, %.1f MB, %.0f MB/s%s", agn_progname, agn_input_name(in),
            (unsigned long long)s->rows, mb, mb / dt, final ? "\n" : "");
}

/* A bad row: skipped and counted with --skip-bad, else the end (-1). */
static int bad_row(state *s)
{
    if (!s->skip_bad) return -1;
    s->bad++;
    if (!s->quiet && s->bad <= MAX_SHOWN_BAD)
        agn_warn("%s (skipped)%s", agn_errmsg(),
                 s->bad == MAX_SHOWN_BAD ? "; further bad rows are counted, not shown" : "");
    return 0;
}

/* A class in 1..CLASSES, from a whole field; -1 if it is not one. */
static int parse_class(const char *p, size_t n, int classes)
{
    if (n == 0 || n > 9) return -1;
    long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        v = v * 10 + (p[i] - '0');
    }
    return v >= 1 && v <= classes ? (int)v : -1;
}

/* The field for a message: at most 24 bytes, printable ASCII only. */
static const char *shown(const char *p, size_t n)
{
    static char buf[64];
    size_t k = 0;
    for (size_t i = 0; i < n && k < 24; i++)
        buf[k++] = p[i] >= 0x20 && p[i] < 0x7f ? p[i] : '?';
    if (n > 24) {
        memcpy(buf + k, "...", 3);
        k += 3;
    }
    buf[k] = '\0';
    return buf;
}

static int blank(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r' && p[i] != '\n') return 0;
    return 1;
}

/* Where the first invalid UTF-8 and control character of a file were. */
typedef struct {
    agn_tok_stats st;
    uint64_t first_bad_utf8, first_control;
} file_stats;

static int emit_row(state *s, uint64_t line, int label, int ntexts, const char *const text[],
                    const size_t len[], file_stats *fs)
{
    agn_tok_stats before = fs->st;
    if (emit(s, label, ntexts, text, len, &fs->st) < 0) return -1;
    if (!fs->first_bad_utf8 && fs->st.invalid_utf8 > before.invalid_utf8) fs->first_bad_utf8 = line;
    if (!fs->first_control && fs->st.controls > before.controls) fs->first_control = line;
    return 0;
}

static int process_csv(state *s, agn_input *in, file_stats *fs, uint64_t *nrows)
{
    const char *name = agn_input_name(in);
    agn_csv *csv = agn_csv_new(in, s->max_record);
    agn_csv_record r;
    int rc = 0, k;
    uint64_t n = 0;
    while ((k = agn_csv_next(csv, &r)) != AGN_CSV_END) {
        if (k == AGN_CSV_ERROR) {
            rc = -1;
            break;
        }
        n++;
        if (s->progress && (n & 0x3fff) == 0) show_progress(s, in, 0);
        if (k == AGN_CSV_BAD) {
            if ((rc = bad_row(s)) < 0) break;
            continue;
        }
        unsigned long long line = (unsigned long long)r.line;
        if (r.nfields != 3) {
            agn_seterr("%s:%llu: expected 3 fields (class,title,description), found %d", name,
                       line, r.nfields);
            if ((rc = bad_row(s)) < 0) break;
            continue;
        }
        int cls = parse_class(r.field[0], r.len[0], s->classes);
        if (cls < 0) {
            agn_seterr("%s:%llu: class '%s' is not a number from 1 to %d", name, line,
                       shown(r.field[0], r.len[0]), s->classes);
            if ((rc = bad_row(s)) < 0) break;
            continue;
        }
        if (blank(r.field[1], r.len[1]) && blank(r.field[2], r.len[2])) {
            agn_seterr("%s:%llu: empty title and description", name, line);
            if ((rc = bad_row(s)) < 0) break;
            continue;
        }
        if ((rc = emit_row(s, r.line, cls - 1, 2, r.field + 1, r.len + 1, fs)) < 0) break;
    }
    agn_csv_free(csv);
    *nrows = n;
    return rc;
}

static int process_lines(state *s, agn_input *in, file_stats *fs, uint64_t *nrows)
{
    const char *name = agn_input_name(in);
    const char *line;
    size_t len;
    int k;
    uint64_t n = 0;
    agn_input_set_max_line(in, s->max_record);
    while ((k = agn_input_getline(in, &line, &len)) != 0) {
        if (k < 0) return -1;
        n++;
        if (s->progress && (n & 0x3fff) == 0) show_progress(s, in, 0);
        if (k == 2) {
            if (bad_row(s) < 0) return -1;
            continue;
        }
        uint64_t lineno = agn_input_lineno(in);
        if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
            line += 3;
            len -= 3;
        }
        int label = -1;
        if (s->format == FMT_TSV) {
            const char *tab = memchr(line, '\t', len);
            if (!tab) {
                agn_seterr("%s:%llu: no tab after the class (expected CLASS<TAB>text)", name,
                           (unsigned long long)lineno);
                if (bad_row(s) < 0) return -1;
                continue;
            }
            size_t ll = (size_t)(tab - line);
            if (!(ll == 1 && line[0] == '-')) {
                int cls = parse_class(line, ll, s->classes);
                if (cls < 0) {
                    agn_seterr("%s:%llu: class '%s' is not a number from 1 to %d or '-'", name,
                               (unsigned long long)lineno, shown(line, ll), s->classes);
                    if (bad_row(s) < 0) return -1;
                    continue;
                }
                label = cls - 1;
            }
            len -= ll + 1;
            line = tab + 1;
            if (blank(line, len)) {
                agn_seterr("%s:%llu: empty text", name, (unsigned long long)lineno);
                if (bad_row(s) < 0) return -1;
                continue;
            }
        }
        const char *text[1] = {line};
        size_t tlen[1] = {len};
        if (emit_row(s, lineno, label, 1, text, tlen, fs) < 0) return -1;
    }
    *nrows = n;
    return 0;
}

static int process_file(state *s, const char *path)
{
    agn_input *in = agn_input_open(path);
    if (!in) return -1;
    file_stats fs;
    memset(&fs, 0, sizeof fs);
    uint64_t nrows = 0;
    int rc = s->format == FMT_CSV ? process_csv(s, in, &fs, &nrows)
                                  : process_lines(s, in, &fs, &nrows);
    /* an empty file among several is not the others' fault: a warning here,
     * an error in main() only when no file had a row */
    if (rc == 0 && nrows == 0 && s->several && !s->quiet)
        agn_warn("%s: warning: no rows (empty file)", agn_input_name(in));
    if (s->progress) show_progress(s, in, 1);
    if (rc == 0 && !s->quiet) {
        if (fs.st.invalid_utf8)
            agn_warn("%s:%llu: warning: %llu invalid UTF-8 sequence%s replaced by U+FFFD "
                     "(the first here)",
                     agn_input_name(in), (unsigned long long)fs.first_bad_utf8,
                     (unsigned long long)fs.st.invalid_utf8, fs.st.invalid_utf8 > 1 ? "s" : "");
        if (fs.st.controls)
            agn_warn("%s:%llu: warning: %llu control character%s read as space%s "
                     "(the first here)",
                     agn_input_name(in), (unsigned long long)fs.first_control,
                     (unsigned long long)fs.st.controls, fs.st.controls > 1 ? "s" : "",
                     fs.st.controls > 1 ? "s" : "");
    }
    s->bytes_done += agn_input_bytes(in);
    agn_input_close(in);
    return rc;
}

/* ---- main ---------------------------------------------------------------- */

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    enum { OPT_MAX_RECORD = 256, OPT_SKIP_BAD };
    static const struct option longopts[] = {
        {"format", required_argument, NULL, 'f'},
        {"output", required_argument, NULL, 'o'},
        {"classes", required_argument, NULL, 'C'},
        {"max-record", required_argument, NULL, OPT_MAX_RECORD},
        {"skip-bad", no_argument, NULL, OPT_SKIP_BAD},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0},
    };
    state s;
    memset(&s, 0, sizeof s);
    s.classes = 4;
    s.max_record = (size_t)8 << 20;
    const char *output = "-";
    int c;
    while ((c = getopt_long(argc, argv, "f:o:C:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'f':
            if (strcmp(optarg, "csv") == 0) s.format = FMT_CSV;
            else if (strcmp(optarg, "tsv") == 0) s.format = FMT_TSV;
            else if (strcmp(optarg, "text") == 0) s.format = FMT_TEXT;
            else return agn_usage_error("--format: '%s' is not csv, tsv or text", optarg);
            break;
        case 'o':
            output = optarg;
            break;
        case 'C': {
            long v;
            if (agn_parse_long(optarg, 1, 255, "--classes", &v) < 0)
                return agn_usage_error("%s", agn_errmsg());
            s.classes = (int)v;
            break;
        }
        case OPT_MAX_RECORD: {
            uint64_t v;
            if (agn_parse_size(optarg, "--max-record", &v) < 0)
                return agn_usage_error("%s", agn_errmsg());
            if (v < 1 || v > ((uint64_t)1 << 32))
                return agn_usage_error("--max-record: %s is out of range [1, 4G]", optarg);
            s.max_record = (size_t)v;
            break;
        }
        case OPT_SKIP_BAD:
            s.skip_bad = 1;
            break;
        case 'q':
            s.quiet = 1;
            break;
        case 'h':
            usage();
            return agn_stdout_status();
        case 'V':
            agn_print_version();
            return agn_stdout_status();
        default:
            return agn_usage_error("invalid option");
        }
    }
    for (int i = optind; i < argc; i++)
        if (strcmp(output, "-") != 0 && agn_same_file(output, argv[i])) {
            agn_warn("%s: the output is also an input: writing it would replace what is read; "
                     "give -o another file", output);
            return AGN_EXIT_ERROR;
        }
    agn_cleanup_on_signals();
    s.progress = !s.quiet && agn_stderr_is_tty();
    s.t0 = s.last_progress = agn_now();
    s.tok = agn_tokenizer_new();
    s.ocap = 2 * OUT_FLUSH;
    s.obuf = agn_xmalloc(s.ocap);
    if (agn_out_open(&s.out, output) < 0) {
        agn_warn_err();
        return AGN_EXIT_ERROR;
    }
    agn_pipe_grow(fileno(s.out.fp));

    int rc = 0;
    s.several = argc - optind > 1;
    if (optind == argc) {
        rc = process_file(&s, "-");
    } else {
        for (int i = optind; i < argc && rc == 0; i++) rc = process_file(&s, argv[i]);
    }
    if (rc == 0 && s.rows + s.bad == 0)
        rc = argc - optind <= 1
                 ? agn_seterr("%s:1: no rows (empty input)",
                              optind == argc || strcmp(argv[optind], "-") == 0 ? "(stdin)" : argv[optind])
                 : agn_seterr("no rows in any of the %d inputs (empty input)", argc - optind);
    if (rc == 0) rc = flush_out(&s);
    if (rc == 0) rc = agn_out_commit(&s.out);
    else agn_out_abort(&s.out);
    if (rc < 0) agn_warn_err();
    if (rc == 0 && s.bad)
        agn_warn("skipped %llu bad row%s of %llu", (unsigned long long)s.bad, s.bad > 1 ? "s" : "",
                 (unsigned long long)(s.bad + s.rows));
    agn_tokenizer_free(s.tok);
    free(s.obuf);
    if (rc == 0 && agn_close_stdout() < 0) {
        agn_warn_err();
        rc = -1;
    }
    return rc < 0 ? AGN_EXIT_ERROR : AGN_EXIT_OK;
}
