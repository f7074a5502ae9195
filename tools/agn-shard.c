/* agn-shard: maps a token stream through a vocabulary into binary shards
 * (.agns, agn-formats(5)), one shard's worth of examples in memory at a
 * time; --info and --dump read shards back. */
#include "config.h"
#include "shard.h"
#include "stream.h"
#include "util.h"
#include "vocab.h"

#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_PER_SHARD 1000000L
#define DEFAULT_CLASSES 4L

typedef unsigned long long ull;

static void usage(void)
{
    printf("Usage: %s -v VOCAB -L LEN -o PREFIX [OPTION]... [FILE]...\n"
           "  or:  %s --info [--json] SHARD...\n"
           "  or:  %s --dump -v VOCAB SHARD...\n"
           "Map a token stream (LABEL<TAB>tok tok ...) read from the FILEs or standard\n"
           "input through the vocabulary VOCAB into shards PREFIX-00000.agns,\n"
           "PREFIX-00001.agns, ...; print what shards hold (--info), or print them back\n"
           "as a token stream (--dump).\n"
           "\n"
           "  -v, --vocab=FILE      the vocabulary (from agn-vocab)\n"
           "  -L, --max-len=LEN     keep the first LEN tokens of each example\n"
           "  -o, --output=PREFIX   shard names: PREFIX-NNNNN.agns (folders are made)\n"
           "  -n, --per-shard=N     examples per shard (default %ld)\n"
           "  -C, --classes=N       number of classes; labels must be 0..N-1 or - (default %ld)\n"
           "  -z, --compress        zlib-compress the payload of each shard\n"
           "  -i, --info            print header, class balance and length distribution\n"
           "      --json            with --info: one JSON object per shard\n"
           "  -d, --dump            print the examples of the shards as a token stream\n"
           "  -q, --quiet           no progress or summary on standard error\n"
           "  -h, --help            show this help and exit\n"
           "  -V, --version         show the version and exit\n"
           "\n"
           "With no FILE, or when FILE is -, read standard input.\n",
           agn_progname, agn_progname, agn_progname, DEFAULT_PER_SHARD, DEFAULT_CLASSES);
}

/* ---- building shards ----------------------------------------------------- */

typedef struct {
    const char *vocab_path, *prefix;
    long max_len, per_shard, classes;
    int compress, quiet;
} build_opts;

static int build(const build_opts *op, char **files, int n_files)
{
    agn_vocab *v = agn_vocab_load(op->vocab_path);
    if (!v) {
        agn_warn_err();
        return AGN_EXIT_ERROR;
    }
    /* the folder of PREFIX, made when missing */
    const char *slash = strrchr(op->prefix, '/');
    if (slash && slash != op->prefix) {
        char *dir = agn_xmalloc((size_t)(slash - op->prefix) + 1);
        memcpy(dir, op->prefix, (size_t)(slash - op->prefix));
        dir[slash - op->prefix] = '\0';
        int rc = agn_mkdir_p(dir);
        free(dir);
        if (rc != 0) {
            agn_warn_err();
            agn_vocab_free(v);
            return AGN_EXIT_ERROR;
        }
    }

    agn_shardset set;
    agn_shardset_begin(&set, op->prefix);
    agn_shard_writer w;
    agn_shard_writer_init(&w, agn_vocab_size(v), (uint32_t)op->max_len, (uint32_t)op->classes,
                          agn_vocab_crc(v), op->compress ? 6 : 0);
    int32_t *ids = agn_xmalloc((size_t)op->max_len * sizeof *ids);
    unsigned long shards = 0;
    uint64_t examples = 0, tokens = 0, kept = 0, truncated = 0, empty = 0, unk = 0;
    int tty = !op->quiet && agn_stderr_is_tty();
    double t0 = agn_now(), last = t0;
    int status = AGN_EXIT_OK;

    for (int f = 0; f < n_files && status == AGN_EXIT_OK; f++) {
        agn_stream s;
        agn_stream_line line;
        if (agn_stream_open(&s, files[f]) != 0) {
            status = AGN_EXIT_ERROR;
            break;
        }
        int rc;
        while ((rc = agn_stream_next(&s, &line)) == 1) {
            if (line.label != AGN_STREAM_LABEL_UNKNOWN && line.label >= op->classes) {
                agn_seterr("%s:%llu: label %d is not a class 0..%ld (see --classes)", s.name,
                           (ull)s.lineno, line.label, op->classes - 1);
                rc = -1;
                break;
            }
            const char *p = line.text, *tok;
            size_t left = line.len, len, n = 0;
            uint64_t all = 0;
            while (agn_stream_next_token(&p, &left, &tok, &len)) {
                all++;
                if (n < (size_t)op->max_len) {
                    int32_t id = agn_vocab_lookup(v, tok, len); /* "<pad>" -> <unk> */
                    if (id == AGN_UNK_ID) unk++;
                    ids[n++] = id;
                }
            }
            tokens += all;
            if (all > (uint64_t)op->max_len) truncated++;
            if (n == 0) {
                ids[n++] = AGN_UNK_ID;
                empty++;
            }
            kept += n;
            if (agn_shard_writer_add(&w, line.label, ids, n) != 0) {
                agn_adderr("%s:%llu", s.name, (ull)s.lineno);
                rc = -1;
                break;
            }
            examples++;
            if (w.n == (uint64_t)op->per_shard) {
                if (agn_shardset_add(&set, &w) != 0) {
                    rc = -1;
                    break;
                }
                shards++;
            }
            if (tty && (examples & 0xffff) == 0 && agn_now() - last > 0.5) {
                last = agn_now();
                fprintf(stderr, "\r%s: %" PRIu64 " examples, %lu shards, %.1f MB/s ",
                        agn_progname, examples, shards, (double)s.bytes / 1e6 / (last - t0));
            }
        }
        agn_stream_close(&s);
        if (rc < 0) status = AGN_EXIT_ERROR;
    }
    if (tty) fprintf(stderr, "\r\033[K");
    if (status == AGN_EXIT_OK && examples == 0) {
        agn_seterr("empty input: no examples, no shard written");
        status = AGN_EXIT_ERROR;
    }
    if (status == AGN_EXIT_OK && w.n > 0) {
        if (agn_shardset_add(&set, &w) != 0) status = AGN_EXIT_ERROR;
        else shards++;
    }
    unsigned long stale = 0;
    int crc = status == AGN_EXIT_OK ? agn_shardset_commit(&set, &stale) : 0;
    if (crc != 0) {
        agn_warn_err();
        if (crc == -1)
            agn_warn("no shard written; any earlier set %s-NNNNN.agns is unchanged", op->prefix);
        status = AGN_EXIT_ERROR;
    } else if (status != AGN_EXIT_OK) {
        agn_warn_err();
        /* nothing of a failed run replaces the previous set */
        agn_shardset_abort(&set);
        agn_warn("no shard written; any earlier set %s-NNNNN.agns is unchanged", op->prefix);
    } else if (!op->quiet) {
        agn_warn("%lu shard(s) %s-NNNNN.agns: %" PRIu64 " examples, %" PRIu64
                 " tokens kept of %" PRIu64 "; %" PRIu64 " examples truncated to %ld, %" PRIu64
                 " empty (stored as <unk>); %.2f%% of kept tokens are <unk>",
                 shards, op->prefix, examples, kept, tokens, truncated, op->max_len, empty,
                 kept ? 100.0 * (double)unk / (double)kept : 0.0);
        if (stale)
            agn_warn("removed %lu stale shard(s) of an earlier run from %s-%05lu.agns on", stale,
                     op->prefix, shards);
    }
    free(ids);
    agn_shard_writer_free(&w);
    agn_vocab_free(v);
    return status;
}

/* ---- --info ---------------------------------------------------------------- */

/* What --info reports of one shard, or of all of them together. */
typedef struct {
    uint64_t n, n_tokens, unk, at_max, maxlen;
    uint64_t cls[256];
    uint64_t *hist; /* [hist_len] examples by length */
    uint64_t hist_len;
    uint32_t n_classes;
} info_stats;

static void stats_add(info_stats *t, const info_stats *s)
{
    t->n += s->n;
    t->n_tokens += s->n_tokens;
    t->unk += s->unk;
    t->at_max += s->at_max;
    if (s->maxlen > t->maxlen) t->maxlen = s->maxlen;
    for (int c = 0; c < 256; c++) t->cls[c] += s->cls[c];
    if (s->hist_len > t->hist_len) {
        t->hist = agn_xrealloc(t->hist, s->hist_len * sizeof *t->hist);
        memset(t->hist + t->hist_len, 0, (s->hist_len - t->hist_len) * sizeof *t->hist);
        t->hist_len = s->hist_len;
    }
    for (uint64_t l = 0; l < s->hist_len; l++) t->hist[l] += s->hist[l];
    if (s->n_classes > t->n_classes) t->n_classes = s->n_classes;
}

/* Nearest-rank percentile of the length histogram. */
static uint64_t percentile(const info_stats *s, double p)
{
    uint64_t rank = (uint64_t)(p * (double)s->n + 0.999999999);
    if (rank < 1) rank = 1;
    uint64_t acc = 0;
    for (uint64_t l = 0; l < s->hist_len; l++) {
        acc += s->hist[l];
        if (acc >= rank) return l;
    }
    return s->maxlen;
}

static void print_json_string(const char *str)
{
    putchar('"');
    for (const char *c = str; *c; c++) {
        if (*c == '"' || *c == '\\') printf("\\%c", *c);
        else if ((unsigned char)*c < 0x20) printf("\\u%04x", *c);
        else putchar(*c);
    }
    putchar('"');
}

/* Prints S; H is the shard's header, or NULL for the total of K shards. */
static void print_stats(const char *path, const agn_shard_header *h, const info_stats *s,
                        int json, int k)
{
    double mean = s->n ? (double)s->n_tokens / (double)s->n : 0.0;
    uint64_t p50 = percentile(s, 0.50), p90 = percentile(s, 0.90), p99 = percentile(s, 0.99);
    double at_max_share = s->n ? (double)s->at_max / (double)s->n : 0.0;
    double unk_share = s->n_tokens ? (double)s->unk / (double)s->n_tokens : 0.0;
    if (json) {
        printf("{\"file\":");
        print_json_string(path);
        printf(",\"version\":%u,\"flags\":%u,\"token_bytes\":%d,\"compressed\":%s,"
               "\"examples\":%llu,\"tokens\":%llu,\"vocab_size\":%u,\"max_len\":%u,"
               "\"n_classes\":%u,\"vocab_crc\":\"%08x\",\"payload_bytes\":%llu,"
               "\"payload_crc\":\"%08x\",\"header_crc\":\"%08x\",\"classes\":[",
               h->version, h->flags, (h->flags & AGN_SHARD_FLAG_U32) ? 4 : 2,
               (h->flags & AGN_SHARD_FLAG_ZLIB) ? "true" : "false", (ull)h->n_examples,
               (ull)h->n_tokens, h->vocab_size, h->max_len, h->n_classes, h->vocab_crc,
               (ull)h->payload_bytes, h->payload_crc, h->header_crc);
        for (uint32_t c = 0; c < s->n_classes; c++) printf("%s%llu", c ? "," : "", (ull)s->cls[c]);
        printf("],\"unknown_label\":%llu,\"length\":{\"mean\":%.4f,\"p50\":%llu,\"p90\":%llu,"
               "\"p99\":%llu,\"max\":%llu},\"at_max_len\":%llu,\"at_max_len_share\":%.6f,"
               "\"unk_tokens\":%llu,\"unk_share\":%.6f}\n",
               (ull)s->cls[AGN_LABEL_UNKNOWN], mean, (ull)p50, (ull)p90, (ull)p99,
               (ull)s->maxlen, (ull)s->at_max, at_max_share, (ull)s->unk, unk_share);
        return;
    }
    if (h) {
        printf("%s:\n", path);
        printf("  format version   %u\n", h->version);
        printf("  token ids        %s\n", (h->flags & AGN_SHARD_FLAG_U32) ? "u32" : "u16");
        printf("  compression      %s\n", (h->flags & AGN_SHARD_FLAG_ZLIB) ? "zlib" : "none");
        printf("  examples         %llu\n", (ull)h->n_examples);
        printf("  tokens           %llu\n", (ull)h->n_tokens);
        printf("  vocab size       %u\n", h->vocab_size);
        printf("  vocab crc        %08x\n", h->vocab_crc);
        printf("  max len          %u\n", h->max_len);
        printf("  classes          %u\n", h->n_classes);
        printf("  payload bytes    %llu\n", (ull)h->payload_bytes);
        printf("  payload crc      %08x\n", h->payload_crc);
        printf("  header crc       %08x\n", h->header_crc);
    } else {
        printf("total of %d shards:\n", k);
        printf("  examples         %llu\n", (ull)s->n);
        printf("  tokens           %llu\n", (ull)s->n_tokens);
    }
    printf("  class balance   ");
    for (uint32_t c = 0; c < s->n_classes; c++)
        printf(" %u: %llu (%.2f%%)", c, (ull)s->cls[c],
               s->n ? 100.0 * (double)s->cls[c] / (double)s->n : 0.0);
    printf("  -: %llu\n", (ull)s->cls[AGN_LABEL_UNKNOWN]);
    printf("  length           mean %.2f  p50 %llu  p90 %llu  p99 %llu  max %llu\n", mean,
           (ull)p50, (ull)p90, (ull)p99, (ull)s->maxlen);
    if (h)
        printf("  at max len       %llu (%.2f%%; truncated, or exactly %u tokens long)\n",
               (ull)s->at_max, 100.0 * at_max_share, h->max_len);
    else
        printf("  at max len       %llu (%.2f%%)\n", (ull)s->at_max, 100.0 * at_max_share);
    printf("  <unk> tokens     %llu (%.2f%%)\n", (ull)s->unk, 100.0 * unk_share);
}

static int info(const char *path, int json, info_stats *total)
{
    agn_dataset d;
    agn_shard_header h;
    if (agn_shard_read_ex(&d, &h, path) != 0) return -1;
    info_stats s;
    memset(&s, 0, sizeof s);
    s.n = d.n;
    s.n_tokens = d.n_tokens;
    s.n_classes = h.n_classes;
    for (uint64_t i = 0; i < d.n; i++) {
        uint64_t l = d.offsets[i + 1] - d.offsets[i];
        if (l > s.maxlen) s.maxlen = l;
        if (l == h.max_len) s.at_max++;
    }
    s.hist_len = s.maxlen + 1;
    s.hist = agn_xcalloc(s.hist_len, sizeof *s.hist);
    for (uint64_t i = 0; i < d.n; i++) s.hist[d.offsets[i + 1] - d.offsets[i]]++;
    for (uint64_t i = 0; i < d.n_tokens; i++) s.unk += d.tokens[i] == AGN_UNK_ID;
    for (uint64_t i = 0; i < d.n; i++) s.cls[d.labels[i]]++;
    print_stats(path, &h, &s, json, 1);
    stats_add(total, &s);
    free(s.hist);
    agn_dataset_free(&d);
    return 0;
}

/* ---- --dump ---------------------------------------------------------------- */

static int dump(const char *path, const agn_vocab *v, const char *vocab_path)
{
    agn_dataset d;
    if (agn_shard_read(&d, path) != 0) return -1;
    if (d.vocab_size != agn_vocab_size(v) || d.vocab_crc != agn_vocab_crc(v)) {
        agn_seterr("%s: built with another vocabulary (size %u, CRC %08x) than %s (size %u, "
                   "CRC %08x); give -v the vocabulary the shard was built with",
                   path, d.vocab_size, d.vocab_crc, vocab_path, agn_vocab_size(v),
                   agn_vocab_crc(v));
        agn_dataset_free(&d);
        return -1;
    }
    for (uint64_t i = 0; i < d.n; i++) {
        if (d.labels[i] == AGN_LABEL_UNKNOWN) fputs("-\t", stdout);
        else printf("%u\t", d.labels[i]);
        for (uint64_t t = d.offsets[i]; t < d.offsets[i + 1]; t++) {
            if (t > d.offsets[i]) putchar(' ');
            fputs(agn_vocab_token(v, d.tokens[t]), stdout);
        }
        putchar('\n');
    }
    agn_dataset_free(&d);
    if (ferror(stdout)) return agn_seterr_errno("write error on stdout");
    return 0;
}

/* ---- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    enum { OPT_JSON = 256 };
    static const struct option longopts[] = {
        {"vocab", required_argument, NULL, 'v'},   {"max-len", required_argument, NULL, 'L'},
        {"output", required_argument, NULL, 'o'},  {"per-shard", required_argument, NULL, 'n'},
        {"classes", required_argument, NULL, 'C'}, {"compress", no_argument, NULL, 'z'},
        {"info", no_argument, NULL, 'i'},          {"json", no_argument, NULL, OPT_JSON},
        {"dump", no_argument, NULL, 'd'},          {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {"version", no_argument, NULL, 'V'},
        {NULL, 0, NULL, 0}};
    build_opts op = {NULL, NULL, 0, DEFAULT_PER_SHARD, DEFAULT_CLASSES, 0, 0};
    int mode_info = 0, mode_dump = 0, json = 0, c;
    while ((c = getopt_long(argc, argv, "v:L:o:n:C:zidqhV", longopts, NULL)) != -1) {
        switch (c) {
        case 'v': op.vocab_path = optarg; break;
        case 'L':
            if (agn_parse_long(optarg, 1, 1L << 24, "--max-len", &op.max_len) != 0)
                return agn_usage_error("%s", agn_errmsg());
            break;
        case 'o': op.prefix = optarg; break;
        case 'n':
            if (agn_parse_long(optarg, 1, 1L << 32, "--per-shard", &op.per_shard) != 0)
                return agn_usage_error("%s", agn_errmsg());
            break;
        case 'C':
            if (agn_parse_long(optarg, 1, 255, "--classes", &op.classes) != 0)
                return agn_usage_error("%s", agn_errmsg());
            break;
        case 'z': op.compress = 1; break;
        case 'i': mode_info = 1; break;
        case OPT_JSON: json = 1; break;
        case 'd': mode_dump = 1; break;
        case 'q': op.quiet = 1; break;
        case 'h': usage(); return agn_stdout_status();
        case 'V': agn_print_version(); return agn_stdout_status();
        default: return agn_usage_error("unknown option");
        }
    }
    char **files = argv + optind;
    int n_files = argc - optind;
    if (mode_info && mode_dump) return agn_usage_error("--info and --dump exclude each other");
    if (json && !mode_info) return agn_usage_error("--json goes with --info");

    if (mode_info || mode_dump) {
        if (n_files == 0) return agn_usage_error("no shard given");
        if (mode_dump && !op.vocab_path)
            return agn_usage_error("--dump needs the vocabulary the shards were built with (-v)");
        agn_vocab *v = NULL;
        if (mode_dump && !(v = agn_vocab_load(op.vocab_path))) {
            agn_warn_err();
            return AGN_EXIT_ERROR;
        }
        int status = AGN_EXIT_OK, good = 0;
        info_stats total;
        memset(&total, 0, sizeof total);
        for (int f = 0; f < n_files; f++) {
            int rc = mode_info ? info(files[f], json, &total) : dump(files[f], v, op.vocab_path);
            if (rc != 0) {
                fflush(stdout);
                agn_warn_err();
                status = AGN_EXIT_ERROR;
                if (mode_dump) break; /* a partial stream is worse than none */
            } else {
                good++;
            }
        }
        if (mode_info && !json && good > 1) print_stats(NULL, NULL, &total, 0, good);
        free(total.hist);
        agn_vocab_free(v);
        if (agn_close_stdout() != 0) {
            agn_warn_err();
            status = AGN_EXIT_ERROR;
        }
        return status;
    }

    if (!op.vocab_path) return agn_usage_error("-v VOCAB is required");
    if (!op.max_len) return agn_usage_error("-L LEN is required (the truncation length, e.g. 128)");
    if (!op.prefix) return agn_usage_error("-o PREFIX is required");
    agn_cleanup_on_signals();
    char *stdin_only[] = {"-"};
    return build(&op, n_files ? files : stdin_only, n_files ? n_files : 1);
}
