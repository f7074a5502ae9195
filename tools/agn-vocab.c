/* agn-vocab: counts the tokens of a token stream and writes the vocabulary
 * (agn-formats(5)): "<pad>" and "<unk>" first, then the most frequent tokens,
 * count descending and bytes ascending, with a '#' header line recording
 * how the file was made. */
#include "config.h"
#include "stream.h"
#include "util.h"
#include "vocab.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(void)
{
    printf("Usage: %s [OPTION]... [FILE]...\n"
           "Count the tokens of a token stream (LABEL<TAB>tok tok ...) read from the FILEs\n"
           "or standard input, and write the vocabulary: token<TAB>count per line,\n"
           "<pad> (id 0) and <unk> (id 1) first, then count descending, bytes ascending.\n"
           "\n"
           "  -n, --size=N        keep at most N entries, the two specials included\n"
           "                      (default 20000)\n"
           "  -m, --min-count=N   keep only tokens seen at least N times (default 1)\n"
           "  -o, --output=FILE   write to FILE (atomically) instead of standard output\n"
           "  -q, --quiet         no summary on standard error\n"
           "  -h, --help          show this help and exit\n"
           "  -V, --version       show the version and exit\n"
           "\n"
           "With no FILE, or when FILE is -, read standard input.\n",
           agn_progname);
}

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    static const struct option longopts[] = {
        {"size", required_argument, NULL, 'n'},   {"min-count", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    long size = 20000, min_count = 1;
    const char *output = "-";
    int quiet = 0, c;
    while ((c = getopt_long(argc, argv, "n:m:o:qhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'n':
            if (agn_parse_long(optarg, 2, INT32_MAX, "--size", &size) != 0)
                return agn_usage_error("%s", agn_errmsg());
            break;
        case 'm':
            if (agn_parse_long(optarg, 1, LONG_MAX, "--min-count", &min_count) != 0)
                return agn_usage_error("%s", agn_errmsg());
            break;
        case 'o': output = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(); return agn_stdout_status();
        case 'V': agn_print_version(); return agn_stdout_status();
        default: return agn_usage_error("unknown option");
        }
    }
    for (int i = optind; i < argc; i++)
        if (strcmp(output, "-") != 0 && agn_same_file(output, argv[i])) {
            agn_warn("%s: the output is also an input: writing it would replace what is read; "
                     "give -o another file", output);
            return AGN_EXIT_ERROR;
        }
    agn_cleanup_on_signals();

    char *stdin_only[] = {"-"};
    char **files = optind < argc ? argv + optind : stdin_only;
    int n_files = optind < argc ? argc - optind : 1;

    agn_tokcount *tc = agn_tokcount_new();
    uint64_t examples = 0, tokens = 0;
    double t0 = agn_now(), last = t0;
    int tty = !quiet && agn_stderr_is_tty();
    for (int f = 0; f < n_files; f++) {
        agn_stream s;
        agn_stream_line line;
        if (agn_stream_open(&s, files[f]) != 0) goto fail;
        int rc;
        while ((rc = agn_stream_next(&s, &line)) == 1) {
            tokens += agn_tokcount_add_text(tc, line.text, line.len);
            examples++;
            if (tty && (examples & 0xffff) == 0 && agn_now() - last > 0.5) {
                last = agn_now();
                fprintf(stderr, "\r%s: %" PRIu64 " examples, %.1f MB/s ", agn_progname, examples,
                        (double)s.bytes / 1e6 / (last - t0));
            }
        }
        agn_stream_close(&s);
        if (rc < 0) goto fail;
    }
    if (tty) fprintf(stderr, "\r\033[K");
    if (examples == 0) {
        agn_warn("empty input: no examples, no vocabulary written");
        agn_tokcount_free(tc);
        return AGN_EXIT_ERROR;
    }

    size_t distinct;
    agn_tokcount_entry *e = agn_tokcount_take_sorted(tc, &distinct);
    /* A stream token that spells a special maps to the special's id; it
     * takes no second place in the list. */
    uint64_t kept_occ = 0;
    size_t keep = 0, limit = (size_t)size - 2;
    for (size_t i = 0; i < distinct; i++) {
        int special = (e[i].len == 5 && (memcmp(e[i].tok, AGN_PAD_TOKEN, 5) == 0 ||
                                         memcmp(e[i].tok, AGN_UNK_TOKEN, 5) == 0));
        if (special) continue; /* its occurrences count as <unk> below */
        if (keep < limit && e[i].count >= (uint64_t)min_count) {
            e[keep++] = e[i];
            kept_occ += e[i].count;
        }
    }
    uint64_t unk = tokens - kept_occ;
    double coverage = tokens ? (double)kept_occ / (double)tokens : 0.0;

    agn_out o;
    if (agn_out_open(&o, output) != 0) {
        free(e);
        goto fail;
    }
    fprintf(o.fp,
            "# agn-vocab %s: size %zu (limit %ld, min count %ld); input: %" PRIu64
            " examples, %" PRIu64 " tokens, %zu distinct; coverage %.6f (%" PRIu64
            " of %" PRIu64 " token occurrences in the vocabulary)\n",
            PACKAGE_VERSION, keep + 2, size, min_count, examples, tokens, distinct, coverage,
            kept_occ, tokens);
    fprintf(o.fp, "%s\t0\n%s\t%" PRIu64 "\n", AGN_PAD_TOKEN, AGN_UNK_TOKEN, unk);
    for (size_t i = 0; i < keep; i++) {
        fwrite(e[i].tok, 1, e[i].len, o.fp);
        fprintf(o.fp, "\t%" PRIu64 "\n", e[i].count);
    }
    free(e);
    if (agn_out_commit(&o) != 0) goto fail;
    if (!quiet)
        agn_warn("%" PRIu64 " examples, %" PRIu64 " tokens, %zu distinct; vocabulary of %zu "
                 "covers %.2f%% of the tokens",
                 examples, tokens, distinct, keep + 2, 100.0 * coverage);
    agn_tokcount_free(tc);
    if (strcmp(output, "-") == 0 && agn_close_stdout() != 0) {
        agn_warn_err();
        return AGN_EXIT_ERROR;
    }
    return AGN_EXIT_OK;
fail:
    agn_warn_err();
    agn_tokcount_free(tc);
    return AGN_EXIT_ERROR;
}
