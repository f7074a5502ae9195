/* agn-eval: scores a checkpoint on shards (accuracy, macro F1, per-class
 * precision, recall and F1, confusion matrix), or with --predict prints one
 * line per example.  Inputs that are not shards (or "-") are read as a token
 * stream and mapped through the vocabulary stored in the checkpoint, so raw
 * text can be classified with the checkpoint alone:
 *     echo "Stocks rally" | agn-tokenize -f text | agn-eval --predict CKPT - */
#include "config.h"

#include "checkpoint.h"
#include "backend.h"
#include "device.h"
#include "evaluate.h"
#include "model.h"
#include "runconfig.h"
#include "shard.h"
#include "stream.h"
#include "train.h"
#include "util.h"
#include "vocab.h"

#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void usage(void)
{
    printf("Usage: %s [OPTION]... CKPT SHARD...\n"
           "       %s --predict [OPTION]... CKPT SHARD...|-\n",
           agn_progname, agn_progname);
    fputs("Evaluate a checkpoint of agn-train on labelled shards: accuracy, macro F1,\n"
          "per-class precision, recall and F1, and the confusion matrix.  With --predict,\n"
          "print one line per example instead: true label (or -), predicted label, its\n"
          "class name and the class probabilities.  An input that is not a shard, or -\n"
          "for stdin, is read as a token stream (agn-tokenize's output) and mapped through\n"
          "the vocabulary stored in the checkpoint.\n"
          "\n"
          "  -p, --predict        per-example predictions\n"
          "  -j, --json           JSON output (one object; with --predict one per line)\n"
          "  -b, --batch N        examples per forward pass (default 64)\n"
          "  -t, --threads N      threads (default: all cores)\n"
          "  -g, --gpu            evaluate on the GPU (CUDA); an error without one\n"
          "      --cpu            evaluate on the CPU (default: the GPU when this build\n"
          "                       has the CUDA backend and one is present)\n"
          "  -h, --help           show this help and exit\n"
          "  -V, --version        show the version and exit\n",
          stdout);
}

static const struct option long_opts[] = {
    {"predict", no_argument, NULL, 'p'},
    {"json", no_argument, NULL, 'j'},
    {"batch", required_argument, NULL, 'b'},
    {"threads", required_argument, NULL, 't'},
    {"gpu", no_argument, NULL, 'g'},
    {"cpu", no_argument, NULL, 'C'},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* ---- the evaluator's state ---------------------------------------------------- */

typedef struct {
    agn_model m;
    agn_config cfg;
    char **names;  /* class names */
    int C, T, cap; /* classes, max_len, rows per batch */
    int json, predict;
    agn_vocab *vocab; /* from the checkpoint, loaded on first use */
    const agn_ckpt_meta *meta;
    const char *ckpt_path;
    /* the batch being filled */
    int32_t *ids;    /* [cap*T] */
    int *len;        /* [cap] */
    int *labels;     /* [cap], -1 unknown */
    int n;
    agn_confusion cm;
    double unlabelled;
    double *prob;    /* [C] */
} evaluator;

/* Runs the pending rows; prints predictions or adds to the confusion matrix. */
static int flush(evaluator *e)
{
    if (e->n == 0) return 0;
    int Tp = 1;
    for (int j = 0; j < e->n; j++)
        if (e->len[j] > Tp) Tp = e->len[j];
    Tp = (Tp + 7) / 8 * 8;
    if (Tp > e->T) Tp = e->T;
    /* compact the rows from stride T to stride Tp (in place, forwards) */
    for (int j = 1; j < e->n; j++) memmove(e->ids + (size_t)j * Tp, e->ids + (size_t)j * e->T, (size_t)Tp * sizeof(int32_t));
    agn_batch b;
    memset(&b, 0, sizeof b);
    b.B = e->n;
    b.T = Tp;
    b.ids = e->ids;
    b.labels = NULL;
    uint64_t *idx = agn_xcalloc((size_t)e->n, sizeof *idx);
    b.example_index = idx;
    b.train = 0;
    b.loss_scale = 1;
    agn_model_forward_infer(&e->m, &b);
    free(idx);
    for (int j = 0; j < e->n; j++) {
        const float *lg = e->m.logits + (size_t)j * e->C;
        int best = 0;
        double mx = lg[0], z = 0;
        for (int c = 1; c < e->C; c++) {
            if (lg[c] > lg[best]) best = c;
            if (lg[c] > mx) mx = lg[c];
        }
        for (int c = 0; c < e->C; c++) z += exp((double)lg[c] - mx);
        for (int c = 0; c < e->C; c++) e->prob[c] = exp((double)lg[c] - mx) / z;
        int y = e->labels[j];
        if (e->predict) {
            if (e->json) {
                fputs("{\"label\": ", stdout);
                if (y >= 0) printf("%d", y); else fputs("null", stdout);
                printf(", \"pred\": %d, \"class\": ", best);
                agn_json_string(stdout, e->names[best]);
                fputs(", \"probs\": [", stdout);
                for (int c = 0; c < e->C; c++) printf("%s%.6f", c ? ", " : "", e->prob[c]);
                fputs("]}\n", stdout);
            } else {
                if (y >= 0) printf("%d", y); else fputs("-", stdout);
                printf("\t%d\t%s\t", best, e->names[best]);
                for (int c = 0; c < e->C; c++) printf("%s%.4f", c ? " " : "", e->prob[c]);
                putchar('\n');
            }
        } else if (y >= 0) {
            agn_confusion_add(&e->cm, y, best);
            e->cm.loss_sum += -((double)lg[y] - mx - log(z));
        } else {
            e->unlabelled += 1;
        }
    }
    e->n = 0;
    if (ferror(stdout)) return agn_seterr_errno("write error on stdout");
    return 0;
}

/* Adds one example (tokens already ids, at most T of them). */
static int push(evaluator *e, const int32_t *ids, int len, int label)
{
    int32_t *row = e->ids + (size_t)e->n * e->T;
    memset(row, 0, (size_t)e->T * sizeof(int32_t));
    if (len == 0) { /* as agn-shard does: an empty example is one <unk> */
        row[0] = AGN_UNK_ID;
        len = 1;
    } else {
        memcpy(row, ids, (size_t)len * sizeof(int32_t));
    }
    e->len[e->n] = len;
    e->labels[e->n] = label;
    e->n++;
    return e->n == e->cap ? flush(e) : 0;
}

static int is_shard(const char *path)
{
    if (strcmp(path, "-") == 0) return 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return 1; /* let the shard reader report it */
    char magic[8];
    size_t n = fread(magic, 1, sizeof magic, fp);
    fclose(fp);
    return n == sizeof magic && memcmp(magic, AGN_SHARD_MAGIC, sizeof magic) == 0;
}

static int eval_shard(evaluator *e, const char *path)
{
    agn_dataset d;
    memset(&d, 0, sizeof d);
    if (agn_shard_read(&d, path) != 0) return -1;
    int rc = 0;
    if (d.vocab_crc != e->meta->vocab_crc)
        rc = agn_seterr("%s: built with another vocabulary (CRC %08x) than the one %s was trained with (CRC %08x); "
                        "rebuild the shards with that vocabulary, or classify text through the checkpoint's own "
                        "vocabulary with a token stream",
                        path, d.vocab_crc, e->ckpt_path, e->meta->vocab_crc);
    else if (d.vocab_size != (uint32_t)e->cfg.vocab_size)
        rc = agn_seterr("%s: vocabulary of %u, the checkpoint's model has %ld", path, d.vocab_size, e->cfg.vocab_size);
    else if (d.n_classes != (uint32_t)e->C)
        rc = agn_seterr("%s: %u classes, the checkpoint's model has %d", path, d.n_classes, e->C);
    for (uint64_t i = 0; rc == 0 && i < d.n; i++) {
        uint64_t len = d.offsets[i + 1] - d.offsets[i];
        if (len > (uint64_t)e->T) len = (uint64_t)e->T;
        int y = d.labels[i] == AGN_LABEL_UNKNOWN ? -1 : d.labels[i];
        if (y >= e->C) {
            rc = agn_seterr("%s: example %llu has label %d, outside the %d classes", path, (unsigned long long)i + 1, y, e->C);
            break;
        }
        rc = push(e, d.tokens + d.offsets[i], (int)len, y);
    }
    if (rc == 0) rc = flush(e);
    agn_dataset_free(&d);
    return rc;
}

static int eval_stream(evaluator *e, const char *path)
{
    if (!e->vocab) {
        if (!e->meta->vocab_text)
            return agn_seterr("%s: %s holds no vocabulary (it was trained without --vocab), so it cannot read a "
                              "token stream; give shards instead",
                              strcmp(path, "-") ? path : "(stdin)", e->ckpt_path);
        e->vocab = agn_vocab_parse(e->meta->vocab_text, e->meta->vocab_len, e->ckpt_path);
        if (!e->vocab) return -1;
        if (agn_vocab_crc(e->vocab) != e->meta->vocab_crc)
            return agn_seterr("%s: the stored vocabulary does not match its CRC", e->ckpt_path);
    }
    agn_stream s;
    if (agn_stream_open(&s, path) != 0) return -1;
    int32_t *ids = agn_xcalloc((size_t)e->T, sizeof *ids);
    agn_stream_line line;
    int rc = 0, r;
    while ((r = agn_stream_next(&s, &line)) == 1) {
        int y = line.label == AGN_STREAM_LABEL_UNKNOWN ? -1 : line.label;
        if (y >= e->C) {
            rc = agn_seterr("%s:%llu: label %d is outside the checkpoint's %d classes", s.name,
                            (unsigned long long)s.lineno, y, e->C);
            break;
        }
        const char *p = line.text, *tok;
        size_t left = line.len, tl;
        int n = 0;
        while (n < e->T && agn_stream_next_token(&p, &left, &tok, &tl))
            ids[n++] = agn_vocab_lookup(e->vocab, tok, tl);
        if ((rc = push(e, ids, n, y)) != 0) break;
    }
    if (r < 0) rc = -1;
    if (rc == 0) rc = flush(e);
    free(ids);
    agn_stream_close(&s);
    return rc;
}

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    int json = 0, predict = 0, gpu = 0, cpu = 0, c;
    long batch = 64, threads = 0;
    while ((c = getopt_long(argc, argv, "pjb:t:ghV", long_opts, NULL)) != -1) {
        switch (c) {
        case 'p': predict = 1; break;
        case 'j': json = 1; break;
        case 'b':
            if (agn_parse_long(optarg, 1, 1 << 16, "--batch", &batch) != 0) return agn_usage_error("%s", agn_errmsg());
            break;
        case 't':
            if (agn_parse_long(optarg, 1, 4096, "--threads", &threads) != 0) return agn_usage_error("%s", agn_errmsg());
            break;
        case 'g': gpu = 1; break;
        case 'C': cpu = 1; break;
        case 'h': usage(); return agn_stdout_status();
        case 'V': agn_print_version(); return agn_stdout_status();
        default: return agn_usage_error("unknown option");
        }
    }
    if (gpu && cpu) return agn_usage_error("--gpu and --cpu exclude each other");
    if (optind >= argc) return agn_usage_error("no checkpoint given");
    if (optind + 1 >= argc) return agn_usage_error("no shards given (or - for a token stream on stdin)");
    if (threads == 0) threads = agn_cpu_count();
    agn_cpu_set_threads((int)threads);

    const char *ckpt = argv[optind];
    evaluator e;
    memset(&e, 0, sizeof e);
    e.json = json;
    e.predict = predict;
    e.ckpt_path = ckpt;
    agn_config_defaults(&e.cfg);
    int status = AGN_EXIT_OK;
    agn_ckpt *ck = agn_checkpoint_load(ckpt);
    if (!ck) {
        agn_warn_err();
        agn_config_free(&e.cfg);
        return AGN_EXIT_ERROR;
    }
    e.meta = agn_checkpoint_meta(ck);
    int model_ok = 0;
    if (agn_config_parse(&e.cfg, e.meta->config_yaml, strlen(e.meta->config_yaml), ckpt) != 0 ||
        agn_config_check(&e.cfg) != 0) {
        agn_adderr("%s: stored config", ckpt);
        goto fail;
    }
    agn_model_config mc = agn_config_model(&e.cfg);
    mc.dropout = 0;
    /* the backend: the GPU when asked for, or when there is one and this
     * build can use it; else the CPU */
    const agn_backend_ops *ops = &agn_backend_cpu;
    if (gpu || (!cpu && agn_backend_cuda && agn_cuda_device_count() > 0)) {
        char why[256];
        if (!(ops = agn_backend_find("cuda"))) goto fail;
        if (agn_cuda_device_count() == 0) {
            agn_seterr("--gpu: no usable GPU: %s", agn_cuda_device_name(0, why, sizeof why));
            goto fail;
        }
    }
    agn_precision prec = strcmp(e.cfg.precision, "fp32") == 0 ? AGN_PREC_FP32
                         : strcmp(e.cfg.precision, "bf16") == 0 || !ops->host_memory ? AGN_PREC_BF16
                                                                                      : AGN_PREC_FP32;
    if (agn_model_create_on(&e.m, &mc, (int)batch, ops, 0, prec) != 0) goto fail;
    model_ok = 1;
    if (ops->host_memory) {
        if (agn_checkpoint_restore(ck, &e.m, NULL, NULL) != 0) goto fail;
    } else { /* into host memory, then to the device */
        agn_model view = e.m;
        view.params = agn_xalloc_aligned(e.m.n_params * sizeof(float));
        int rrc = agn_checkpoint_restore(ck, &view, NULL, NULL);
        if (rrc == 0) rrc = agn_model_upload(&e.m, e.m.params, view.params);
        free(view.params);
        if (rrc != 0) goto fail;
    }
    e.C = (int)e.cfg.n_classes;
    e.T = (int)e.cfg.max_len;
    e.cap = (int)batch;
    e.names = e.meta->n_classes == e.C ? e.meta->class_names : e.cfg.class_names;
    e.ids = agn_xcalloc((size_t)e.cap * (size_t)e.T, sizeof *e.ids);
    e.len = agn_xcalloc((size_t)e.cap, sizeof *e.len);
    e.labels = agn_xcalloc((size_t)e.cap, sizeof *e.labels);
    e.prob = agn_xcalloc((size_t)e.C, sizeof *e.prob);
    agn_confusion_init(&e.cm, e.C);

    for (int i = optind + 1; i < argc; i++) {
        int rc = is_shard(argv[i]) ? eval_shard(&e, argv[i]) : eval_stream(&e, argv[i]);
        if (rc != 0) goto fail;
    }
    if (!predict) {
        if (e.cm.n == 0) {
            agn_seterr("no labelled examples to score (use --predict to classify unlabelled ones)");
            goto fail;
        }
        agn_metrics mt;
        agn_metrics_compute(&mt, &e.cm);
        if (json) agn_metrics_json(stdout, &mt, &e.cm, e.names);
        else agn_metrics_print(stdout, &mt, &e.cm, e.names);
        agn_metrics_free(&mt);
        if (e.unlabelled > 0) agn_warn("%.0f examples without a label were not scored", e.unlabelled);
    }
    if (agn_close_stdout() != 0) goto fail;
    goto out;
fail:
    agn_warn_err();
    status = AGN_EXIT_ERROR;
out:
    free(e.ids);
    free(e.len);
    free(e.labels);
    free(e.prob);
    if (e.cm.confusion) agn_confusion_free(&e.cm);
    if (e.vocab) agn_vocab_free(e.vocab);
    if (model_ok) agn_model_free(&e.m);
    agn_config_free(&e.cfg);
    agn_checkpoint_free(ck);
    return status;
}
