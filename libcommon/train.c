/* train.c: the trainer (train.h).  Sections: data order and batches,
 * gradient buckets, validation, the run directory (logs, CSV files,
 * checkpoints), and the training loop that ties them together.  Every rank
 * runs all of it; only rank 0 touches the run directory. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "config.h"
#include "train.h"

#include "checkpoint.h"
#include "evaluate.h"
#include "launch.h"
#include "model.h"
#include "shard.h"
#include "util.h"
#include "vocab.h"
#include "zero.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

/* OpenBLAS' own thread count, when the BLAS linked is OpenBLAS. */
extern void openblas_set_num_threads(int n) __attribute__((weak));

/* ---- data order and batches ------------------------------------------------ */

uint64_t agn_splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void agn_train_permutation(uint64_t *perm, uint64_t n, uint64_t seed, uint32_t epoch)
{
    uint64_t key = agn_splitmix64(seed ^ agn_splitmix64((uint64_t)epoch + 1));
    for (uint64_t i = 0; i < n; i++) perm[i] = i;
    /* Fisher-Yates from the top: swap i with j uniform in [0, i] (the
     * multiply-shift bias is below 2^-40 for any n that fits in memory) */
    for (uint64_t i = n; i > 1; i--) {
        uint64_t r = agn_splitmix64(key + i);
        uint64_t j = (uint64_t)(((unsigned __int128)r * i) >> 64);
        uint64_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
}

void agn_train_slice(long B, int r, int W, long *start, long *count)
{
    long base = B / W, rem = B % W;
    *count = base + (r < rem);
    *start = (long)r * base + (r < rem ? r : rem);
}

uint64_t agn_train_cost(uint64_t len, long D, long F)
{
    return len * ((uint64_t)(4 * D + 2 * F) + 2 * len);
}

void agn_train_slice_cost(const uint64_t *cost, long B, int r, int W, long *start, long *count)
{
    /* integer costs: every rank adds the same integers, exactly */
    uint64_t total = 0;
    for (long j = 0; j < B; j++) total += cost[j];
    if (total == 0 || W <= 1) {
        agn_train_slice(B, r, W, start, count);
        return;
    }
    /* cut k (k = 1..W-1) is the boundary whose prefix sum is nearest k/W of
     * the total (the earlier on a tie), never before cut k-1; rank r runs
     * from cut r to cut r+1 */
    long cut = 0, prev = 0, lo = 0, hi = B;
    uint64_t prefix = 0;
    for (int k = 1; k <= r + 1 && k < W; k++) {
        /* target k * total / W, compared exactly: W * prefix against k * total */
        unsigned __int128 goal = (unsigned __int128)total * (unsigned)k;
        if ((unsigned __int128)prefix * (unsigned)W < goal) { /* else cut k-1 is already past it */
            while (cut < B && (unsigned __int128)(prefix + cost[cut]) * (unsigned)W < goal) prefix += cost[cut++];
            if (cut < B) { /* prefix * W < goal <= (prefix + cost) * W: the nearer side */
                unsigned __int128 below = goal - (unsigned __int128)prefix * (unsigned)W;
                unsigned __int128 above = (unsigned __int128)(prefix + cost[cut]) * (unsigned)W - goal;
                if (above < below) prefix += cost[cut++];
            }
            while (cut > prev && cost[cut - 1] == 0) cut--; /* as near, and earlier */
        }
        prev = cut;
        if (k == r) lo = cut;
        if (k == r + 1) hi = cut;
    }
    *start = lo;
    *count = hi - lo;
}

int agn_cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

const char *agn_cpu_name(char *buf, size_t n)
{
    snprintf(buf, n, "cpu");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp) return buf;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10) != 0) continue;
        char *p = strchr(line, ':');
        if (!p) break;
        p++;
        while (*p == ' ' || *p == '\t') p++;
        size_t k = 0;
        for (; *p && *p != '\n' && k + 1 < n; p++) {
            if (*p == ',' || *p == '"') continue;
            if (*p == ' ' && k > 0 && buf[k - 1] == ' ') continue;
            buf[k++] = *p;
        }
        buf[k] = '\0';
        break;
    }
    fclose(fp);
    return buf;
}

/* A rank's batch: its slice of the global batch, padded. */
typedef struct {
    int cap_rows, cap_T;
    int32_t *ids;      /* [cap_rows * cap_T] */
    int32_t *labels;   /* [cap_rows] */
    uint64_t *index;   /* [cap_rows] */
    agn_batch b;
} batch_buf;

static void batch_alloc(batch_buf *bb, int rows, int T)
{
    memset(bb, 0, sizeof *bb);
    bb->cap_rows = rows > 0 ? rows : 1;
    bb->cap_T = T;
    bb->ids = agn_xalloc_aligned((size_t)bb->cap_rows * (size_t)T * sizeof(int32_t));
    bb->labels = agn_xcalloc((size_t)bb->cap_rows, sizeof(int32_t));
    bb->index = agn_xcalloc((size_t)bb->cap_rows, sizeof(uint64_t));
}

static void batch_free(batch_buf *bb)
{
    free(bb->ids);
    free(bb->labels);
    free(bb->index);
}

static uint64_t ex_len(const agn_dataset *d, uint64_t i, int T)
{
    uint64_t len = d->offsets[i + 1] - d->offsets[i];
    return len < (uint64_t)T ? len : (uint64_t)T;
}

/* Fills BB with examples idx[0..n) of D, padded to their longest rounded up
 * to a multiple of 8 (or to T with pad_to_max). */
static void batch_fill(batch_buf *bb, const agn_dataset *d, const uint64_t *idx, int n, int T, int pad_to_max)
{
    int Tp = 1;
    for (int j = 0; j < n; j++) {
        int len = (int)ex_len(d, idx[j], T);
        if (len > Tp) Tp = len;
    }
    Tp = pad_to_max ? T : (Tp + 7) / 8 * 8;
    if (Tp > T) Tp = T;
    memset(bb->ids, 0, (size_t)n * (size_t)Tp * sizeof(int32_t));
    for (int j = 0; j < n; j++) {
        uint64_t i = idx[j];
        int len = (int)ex_len(d, i, T);
        memcpy(bb->ids + (size_t)j * Tp, d->tokens + d->offsets[i], (size_t)len * sizeof(int32_t));
        bb->labels[j] = d->labels[i];
        bb->index[j] = i;
    }
    bb->b.B = n;
    bb->b.T = Tp;
    bb->b.ids = bb->ids;
    bb->b.labels = bb->labels;
    bb->b.example_index = bb->index;
}

/* CRC-32 identifying a dataset's content (offsets, labels, tokens). */
static uint32_t data_id_of(const agn_dataset *d)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    const unsigned char *p;
    size_t left;
#define CRC_BUF(ptr, bytes)                                                         \
    for (p = (const unsigned char *)(ptr), left = (bytes); left > 0;) {             \
        uInt k = left > (1u << 30) ? (1u << 30) : (uInt)left;                       \
        crc = crc32(crc, p, k);                                                     \
        p += k;                                                                     \
        left -= k;                                                                  \
    }
    CRC_BUF(d->offsets, (d->n + 1) * sizeof *d->offsets);
    CRC_BUF(d->labels, d->n);
    CRC_BUF(d->tokens, d->n_tokens * sizeof *d->tokens);
#undef CRC_BUF
    return (uint32_t)crc;
}

/* ---- gradient buckets ------------------------------------------------------ */

/* The buckets are ranges of the gradient buffer cut at tensor boundaries,
 * from the end of the table (where backward finishes first), each at least
 * bucket_bytes unless it is the last.  They depend only on the table and the
 * bucket size, so every rank cuts the same ones whatever order or granularity
 * the model reports progress in. */
typedef struct {
    agn_comm *comm;
    float *grads;
    int n;                /* buckets */
    size_t *start, *end;  /* [n], bucket 0 is the LAST range of the buffer */
    agn_comm_req **req;   /* [n] */
    int next;             /* first bucket not yet started */
    int failed;           /* a start failed: message in errbuf */
    agn_zero *zero;       /* several ranks: reduced by zero.h (sharded optimizer), not all-reduced */
    char errbuf[512];
} buckets;

static void buckets_plan(buckets *bk, const agn_model *m, uint64_t bucket_bytes, agn_comm *comm)
{
    memset(bk, 0, sizeof *bk);
    bk->comm = comm;
    bk->grads = m->grads;
    size_t cap = (size_t)m->n_tensors + 1;
    bk->start = agn_xcalloc(cap, sizeof(size_t));
    bk->end = agn_xcalloc(cap, sizeof(size_t));
    bk->req = agn_xcalloc(cap, sizeof(agn_comm_req *));
    size_t want = bucket_bytes / sizeof(float);
    if (want == 0) want = 1;
    size_t end = m->n_params;
    for (int t = m->n_tensors - 1; t >= 0; t--) {
        size_t s = m->tensors[t].offset;
        if (end - s >= want || t == 0) {
            if (t == 0) s = 0;
            bk->start[bk->n] = s;
            bk->end[bk->n] = end;
            bk->n++;
            end = s;
        }
    }
}

static void buckets_free(buckets *bk)
{
    free(bk->start);
    free(bk->end);
    free(bk->req);
}

/* Starts every bucket whose range lies wholly in [offset, n_params). */
static void buckets_start_from(buckets *bk, size_t offset)
{
    while (bk->next < bk->n && bk->start[bk->next] >= offset && !bk->failed) {
        int i = bk->next;
        if (bk->zero ? agn_zero_reduce_start(bk->zero, i)
                     : agn_comm_allreduce_start(bk->comm, bk->grads + bk->start[i], bk->end[i] - bk->start[i],
                                                AGN_F32, &bk->req[i])) {
            bk->failed = 1;
            snprintf(bk->errbuf, sizeof bk->errbuf, "%s", agn_errmsg());
            return;
        }
        bk->next++;
    }
}

static void on_grad_ready(void *ctx, size_t offset) { buckets_start_from(ctx, offset); }

/* Starts what is left and waits for all; the time blocked is returned in
 * *waited.  -1 with a message when a collective failed. */
static int buckets_finish(buckets *bk, double *waited)
{
    buckets_start_from(bk, 0);
    double t = agn_now();
    int rc = 0;
    for (int i = 0; i < bk->next; i++) {
        if (agn_comm_wait(bk->comm, bk->req[i]) != 0 && rc == 0) rc = -1;
        bk->req[i] = NULL;
    }
    *waited += agn_now() - t;
    if (bk->failed) rc = agn_seterr("%s", bk->errbuf);
    bk->next = 0;
    bk->failed = 0;
    return rc;
}

/* ---- the trainer's state ---------------------------------------------------------- */

typedef struct {
    const agn_train_opts *o;
    agn_config *cfg;
    agn_comm *comm;
    int rank, world;
    agn_dataset train, val;
    int have_val;
    agn_vocab *vocab;
    uint32_t data_id;
    uint64_t epoch_examples; /* per epoch, after --max-examples */
    long steps_per_epoch;
    agn_model m;
    float *adam_m, *adam_v;
    agn_optim_config oc;
    buckets bk;
    agn_zero zero; /* with several ranks: each updates its shard of the parameters */
    batch_buf bb;
    uint64_t *perm;
    agn_train_pos pos;
    char *config_yaml;
    char device[256];
    /* run directory, rank 0 */
    FILE *log, *steps_csv, *metrics_csv;
    char *path_last, *path_best;
    int saved_last; /* a last.safetensors of this run exists */
    int tty;
    double last_progress;
    long nan_step; /* AGN_TEST_NAN_STEP: make this step's loss NaN (tests) */
    long slow_us;  /* AGN_TEST_SLOW_RANK=r AGN_TEST_SLOW_MS=m: rank r's compute takes m ms more a step */
} trainer;

static void tlog(trainer *t, int to_stderr, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A line for train.log (rank 0) and, unless quiet, stderr.  With several
 * ranks the line carries the rank. */
static void tlog(trainer *t, int to_stderr, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char prefix[32] = "";
    if (t->world > 1) snprintf(prefix, sizeof prefix, "rank %d: ", t->rank);
    if (t->log) {
        fprintf(t->log, "%s%s\n", prefix, msg);
        fflush(t->log);
    }
    if (to_stderr && !t->o->quiet) {
        if (t->tty && t->last_progress > 0) fputs("\r\033[K", stderr);
        fprintf(stderr, "%s: %s%s\n", agn_progname, prefix, msg);
    }
}

/* ---- validation -------------------------------------------------------------------------- */

/* Evaluates the validation set, this rank's contiguous share of it, and sums
 * the confusion matrices and losses of all ranks. */
static int validate(trainer *t, agn_confusion *cm)
{
    agn_confusion_reset(cm);
    long start, count;
    agn_train_slice((long)t->val.n, t->rank, t->world, &start, &count);
    int T = (int)t->cfg->max_len, C = (int)t->cfg->n_classes;
    uint64_t *idx = agn_xcalloc((size_t)t->bb.cap_rows, sizeof *idx);
    for (long done = 0; done < count;) {
        int n = (int)(count - done < t->bb.cap_rows ? count - done : t->bb.cap_rows);
        for (int j = 0; j < n; j++) idx[j] = (uint64_t)(start + done + j);
        batch_fill(&t->bb, &t->val, idx, n, T, t->o->pad_to_max);
        t->bb.b.train = 0;
        t->bb.b.seed = t->cfg->seed;
        t->bb.b.epoch = 0;
        t->bb.b.loss_scale = 1;
        cm->loss_sum += agn_model_forward(&t->m, &t->bb.b);
        for (int j = 0; j < n; j++) {
            const float *lg = t->m.logits + (size_t)j * C;
            int best = 0;
            for (int c = 1; c < C; c++)
                if (lg[c] > lg[best]) best = c;
            agn_confusion_add(cm, t->bb.labels[j], best);
        }
        done += n;
    }
    free(idx);
    /* one all-reduce: the matrix, the loss sum and the count */
    size_t k = (size_t)C * C;
    double *buf = agn_xcalloc(k + 2, sizeof *buf);
    memcpy(buf, cm->confusion, k * sizeof *buf);
    buf[k] = cm->loss_sum;
    buf[k + 1] = cm->n;
    int rc = agn_comm_allreduce(t->comm, buf, k + 2, AGN_F64);
    memcpy(cm->confusion, buf, k * sizeof *buf);
    cm->loss_sum = buf[k];
    cm->n = buf[k + 1];
    free(buf);
    return rc;
}

/* ---- the run directory --------------------------------------------------------------------- */

static const char metrics_header[] =
    "epoch,world_size,backend,transport,device,threads,config,params,global_batch,train_examples,data_id,"
    "steps,samples,tokens,epoch_time_s,compute_s,comm_s,optim_s,data_s,samples_per_s,tokens_per_s,"
    "train_loss,val_loss,val_acc,val_f1,lr,imbalance_s";
static const char steps_header[] =
    "step,epoch,samples,loss,lr,grad_norm,step_time_s,compute_s,comm_s,optim_s,data_s,imbalance_s";

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = agn_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

/* Opens a CSV for appending; writes HEADER when the file is new or empty. */
/* A CSV continued by a resume whose header is not HEADER: when it is a
 * prefix of HEADER (a run of an agn-train that wrote fewer columns, new ones
 * being added at the end), rewrites it with HEADER and the missing fields
 * empty on every row; anything else is refused. */
static int migrate_csv(const char *p, const char *header)
{
    FILE *in = fopen(p, "r");
    if (!in) return agn_seterr_errno("%s", p);
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, in);
    int rc = 0;
    if (n <= 0) goto done; /* empty: the header is written on open */
    if (line[n - 1] == '\n') line[--n] = '\0';
    if (strcmp(line, header) == 0) goto done;
    size_t hl = strlen(header);
    if ((size_t)n >= hl || strncmp(line, header, (size_t)n) != 0 || header[n] != ',') {
        rc = agn_seterr("%s:1: the header is not the one this agn-train writes; resume into a new run "
                        "directory, or move the file away", p);
        goto done;
    }
    int missing = 0;
    for (const char *c = header + n; *c; c++) missing += *c == ',';
    agn_out o;
    if (agn_out_open(&o, p) != 0) {
        rc = -1;
        goto done;
    }
    fprintf(o.fp, "%s\n", header);
    while ((n = getline(&line, &cap, in)) > 0) {
        if (line[n - 1] == '\n') line[--n] = '\0';
        fputs(line, o.fp);
        for (int k = 0; k < missing; k++) fputc(',', o.fp);
        fputc('\n', o.fp);
    }
    rc = ferror(in) ? agn_seterr_errno("%s", p) : 0;
    if (rc == 0) rc = agn_out_commit(&o);
    else agn_out_abort(&o);
done:
    free(line);
    fclose(in);
    return rc;
}

static FILE *open_csv(const char *dir, const char *name, const char *header, int truncate)
{
    char *p = path_join(dir, name);
    if (!truncate && access(p, F_OK) == 0 && migrate_csv(p, header) != 0) {
        free(p);
        return NULL;
    }
    FILE *fp = fopen(p, truncate ? "w" : "a");
    if (!fp) {
        agn_seterr_errno("%s", p);
        free(p);
        return NULL;
    }
    if (ftell(fp) == 0) fprintf(fp, "%s\n", header);
    fflush(fp);
    free(p);
    return fp;
}

static void yaml_list(FILE *fp, const char *key, char **items, int n)
{
    fprintf(fp, "  %s: [", key);
    for (int i = 0; i < n; i++) {
        if (i) fputs(", ", fp);
        agn_yaml_quote(fp, items[i]);
    }
    fputs("]\n", fp);
}

static int write_config_yaml(trainer *t)
{
    char *p = path_join(t->o->run_dir, "config.yaml");
    agn_out out;
    if (agn_out_open(&out, p) != 0) {
        free(p);
        return -1;
    }
    free(p);
    FILE *fp = out.fp;
    fprintf(fp, "# agn-train resolved config: feed it back with agn-train -c (the run: section is ignored)\n");
    agn_config_write(t->cfg, fp);
    fprintf(fp, "run:\n  config: ");
    agn_yaml_quote(fp, t->cfg->name);
    fprintf(fp, "\n  config_file: ");
    agn_yaml_quote(fp, t->cfg->path);
    fprintf(fp, "\n  world_size: %d\n  transport: %s\n  backend: cpu\n  device: ", t->world,
            t->comm->ops && t->comm->ops->name ? t->comm->ops->name : "none");
    agn_yaml_quote(fp, t->device);
    fprintf(fp, "\n  threads: %d\n  bound_cpus: %d\n", t->o->threads, agn_launch_bound());
    yaml_list(fp, "train_data", t->o->train_paths, t->o->n_train);
    yaml_list(fp, "val_data", t->o->val_paths, t->o->n_val);
    fprintf(fp, "  train_examples: %llu\n  data_id: \"%08x\"\n", (unsigned long long)t->epoch_examples, t->data_id);
    fprintf(fp, "  steps_per_epoch: %ld\n  total_steps: %llu\n", t->steps_per_epoch,
            (unsigned long long)t->pos.total_steps);
    fprintf(fp, "  params: %zu\n  pad_to_max: %s\n  bucket_bytes: %llu\n", t->m.n_params,
            t->o->pad_to_max ? "true" : "false", (unsigned long long)t->o->bucket_bytes);
    if (t->o->max_steps) fprintf(fp, "  max_steps: %ld\n", t->o->max_steps);
    if (t->o->resume) {
        fprintf(fp, "  resume: ");
        agn_yaml_quote(fp, t->o->resume);
        fputc('\n', fp);
    }
    if (ferror(fp)) {
        agn_seterr_errno("%s", out.path);
        agn_out_abort(&out);
        return -1;
    }
    return agn_out_commit(&out);
}

static int save_checkpoint(trainer *t, const char *path, int with_optim)
{
    agn_ckpt_meta meta;
    memset(&meta, 0, sizeof meta);
    meta.config_yaml = t->config_yaml;
    meta.class_names = t->cfg->class_names;
    meta.n_classes = t->cfg->n_class_names;
    meta.vocab_crc = t->train.vocab_crc;
    if (t->vocab) meta.vocab_text = (char *)agn_vocab_text(t->vocab, &meta.vocab_len);
    meta.has_pos = 1;
    meta.pos = t->pos;
    return agn_checkpoint_save(path, &t->m, with_optim ? t->adam_m : NULL, with_optim ? t->adam_v : NULL, &meta);
}

/* ---- setup ----------------------------------------------------------------------------- */

static int check_labels(const agn_dataset *d, long C, const char *what)
{
    for (uint64_t i = 0; i < d->n; i++)
        if (d->labels[i] >= C)
            return agn_seterr("%s: example %llu has %s (label %u); training and validation need labelled shards",
                              what, (unsigned long long)i + 1,
                              d->labels[i] == AGN_LABEL_UNKNOWN ? "no label" : "a label out of range", d->labels[i]);
    return 0;
}

static char *dir_of(const char *path)
{
    const char *s = strrchr(path, '/');
    if (!s) return agn_xstrdup(".");
    size_t n = (size_t)(s - path);
    if (n == 0) n = 1;
    char *d = agn_xmalloc(n + 1);
    memcpy(d, path, n);
    d[n] = '\0';
    return d;
}

/* The vocabulary to store in checkpoints: --vocab, else vocab.txt beside the
 * first training shard or in the folder above; it must be the one the shards
 * were built with. */
static int find_vocab(trainer *t)
{
    const char *given = t->o->vocab_path;
    if (given) {
        t->vocab = agn_vocab_load(given);
        if (!t->vocab) return -1;
        if (agn_vocab_crc(t->vocab) != t->train.vocab_crc)
            return agn_seterr("%s: not the vocabulary the training shards were built with (CRC %08x, shards %08x)",
                              given, agn_vocab_crc(t->vocab), t->train.vocab_crc);
        return 0;
    }
    char *d = dir_of(t->o->train_paths[0]);
    char *cands[2];
    cands[0] = path_join(d, "vocab.txt");
    char *up = path_join(d, "..");
    cands[1] = path_join(up, "vocab.txt");
    for (int i = 0; i < 2 && !t->vocab; i++) {
        if (access(cands[i], R_OK) != 0) continue;
        agn_vocab *v = agn_vocab_load(cands[i]);
        if (v && agn_vocab_crc(v) == t->train.vocab_crc) {
            t->vocab = v;
            tlog(t, 0, "vocabulary: %s", cands[i]);
        } else {
            agn_vocab_free(v);
        }
    }
    if (!t->vocab && t->rank == 0 && !t->o->quiet)
        agn_warn("no vocabulary found (give --vocab FILE): checkpoints will classify shards but not raw text");
    free(cands[0]);
    free(cands[1]);
    free(up);
    free(d);
    return 0;
}

static int setup_data(trainer *t)
{
    const agn_train_opts *o = t->o;
    if (o->n_train < 1) return agn_seterr("no training shards given");
    if (agn_dataset_load(&t->train, o->train_paths, o->n_train) != 0) return -1;
    if (t->train.n == 0) return agn_seterr("%s: the training shards hold no examples", o->train_paths[0]);
    if (check_labels(&t->train, t->cfg->n_classes, "training shards") != 0) return -1;
    if (agn_config_check_data(t->cfg, t->train.vocab_size, t->train.max_len, t->train.n_classes,
                              "the training shards") != 0)
        return -1;
    if (t->cfg->vocab_size == 0) t->cfg->vocab_size = t->train.vocab_size; /* vocab_size: auto */
    if (o->n_val > 0) {
        if (agn_dataset_load(&t->val, o->val_paths, o->n_val) != 0) return -1;
        if (t->val.vocab_crc != t->train.vocab_crc || t->val.vocab_size != t->train.vocab_size)
            return agn_seterr("%s: built with another vocabulary than the training shards (CRC %08x, training %08x)",
                              o->val_paths[0], t->val.vocab_crc, t->train.vocab_crc);
        if (t->val.n_classes != t->train.n_classes)
            return agn_seterr("%s: %u classes, the training shards have %u", o->val_paths[0], t->val.n_classes,
                              t->train.n_classes);
        if (check_labels(&t->val, t->cfg->n_classes, "validation shards") != 0) return -1;
        t->have_val = t->val.n > 0;
    }
    t->data_id = data_id_of(&t->train);
    uint64_t E = t->train.n;
    if (t->cfg->max_examples > 0 && (uint64_t)t->cfg->max_examples < E) E = (uint64_t)t->cfg->max_examples;
    t->epoch_examples = E;
    t->steps_per_epoch = (long)((E + (uint64_t)t->cfg->global_batch - 1) / (uint64_t)t->cfg->global_batch);
    return find_vocab(t);
}

static int setup_model(trainer *t)
{
    agn_model_config mc = agn_config_model(t->cfg);
    if (agn_model_config_check(&mc) != 0) return agn_adderr("%s", t->cfg->path);
    long B = t->cfg->global_batch;
    /* slices are cut by cost, not count (agn_train_slice_cost): a rank may
     * take up to the whole batch (the activations are reserved, not
     * touched, beyond what a step uses) */
    int rows = (int)(t->o->pad_to_max ? (B + t->world - 1) / t->world : B);
    if (agn_model_create(&t->m, &mc, rows) != 0) return -1;
    /* --pad-to-max: compute every padded position as a padded implementation
     * does (same loss and gradients up to rounding), so the gain of skipping
     * pads can be measured apart from the rest */
    t->m.dense = t->o->pad_to_max;
    /* ranks on one host share one copy of the parameters (zero.h): rank 0
     * initialises it, the barrier publishes it */
    void *shared = NULL;
    if (agn_comm_shared(t->comm, t->m.n_params * sizeof(float), &shared) != 0) return -1;
    if (shared) agn_model_use_params(&t->m, shared);
    if (!shared || t->rank == 0) agn_model_init_weights(&t->m, t->cfg->seed);
    if (shared && agn_comm_barrier(t->comm) != 0) return -1;
    t->adam_m = agn_xalloc_aligned(t->m.n_params * sizeof(float));
    t->adam_v = agn_xalloc_aligned(t->m.n_params * sizeof(float));
    batch_alloc(&t->bb, rows, (int)t->cfg->max_len);
    buckets_plan(&t->bk, &t->m, t->o->bucket_bytes ? t->o->bucket_bytes : (1u << 20), t->comm);
    t->m.on_grad_ready = on_grad_ready;
    if (t->world > 1) {
        t->bk.zero = &t->zero;
        agn_zero_plan(&t->zero, &t->m, t->comm, t->bk.n, t->bk.start, t->bk.end);
        t->zero.shared_params = t->m.params_external;
    }
    t->m.on_grad_ready_ctx = &t->bk;

    t->oc.lr = (float)t->cfg->lr;
    t->oc.beta1 = (float)t->cfg->beta1;
    t->oc.beta2 = (float)t->cfg->beta2;
    t->oc.eps = (float)t->cfg->eps;
    t->oc.weight_decay = (float)t->cfg->weight_decay;
    t->oc.grad_clip = (float)t->cfg->grad_clip;
    t->oc.warmup_steps = t->cfg->warmup;
    t->oc.total_steps = (long)t->cfg->epochs * t->steps_per_epoch;

    memset(&t->pos, 0, sizeof t->pos);
    t->pos.seed = t->cfg->seed;
    t->pos.total_steps = (uint64_t)t->oc.total_steps;
    t->pos.epoch_examples = t->epoch_examples;
    t->pos.best_val_acc = -1;
    t->pos.data_id = t->data_id;
    t->pos.world_size = t->world;
    return 0;
}

/* Continues from a checkpoint: rank 0 reads it, every rank receives the
 * weights (or shares them), the moments and the position. */
static int setup_resume(trainer *t)
{
    const char *path = t->o->resume;
    int rc = 0;
    agn_train_pos pos;
    memset(&pos, 0, sizeof pos);
    if (t->rank == 0) {
        agn_ckpt *ck = agn_checkpoint_load(path);
        if (!ck) return -1;
        const agn_ckpt_meta *meta = agn_checkpoint_meta(ck);
        agn_config old;
        agn_config_defaults(&old);
        if (!meta->has_pos || !agn_checkpoint_has_optim(ck)) {
            rc = agn_seterr("%s: holds no optimizer state or training position (best.safetensors cannot be resumed; use last.safetensors)", path);
        } else if (!meta->config_yaml || agn_config_parse(&old, meta->config_yaml, strlen(meta->config_yaml), path) != 0) {
            rc = agn_adderr("%s: config", path);
        } else {
            const long a[] = {old.vocab_size, old.max_len, old.d_model, old.n_heads, old.n_layers, old.d_ff, old.n_classes};
            const long b[] = {t->cfg->vocab_size, t->cfg->max_len, t->cfg->d_model, t->cfg->n_heads,
                              t->cfg->n_layers, t->cfg->d_ff, t->cfg->n_classes};
            const int k[] = {AGN_K_VOCAB_SIZE, AGN_K_MAX_LEN, AGN_K_D_MODEL, AGN_K_N_HEADS,
                             AGN_K_N_LAYERS, AGN_K_D_FF, AGN_K_N_CLASSES};
            for (size_t i = 0; i < AGN_ARRAY_LEN(a) && rc == 0; i++)
                if (a[i] != b[i])
                    rc = agn_seterr("%s: the checkpoint's model has %s %ld, the config %ld", path,
                                    agn_config_key_name(k[i]), a[i], b[i]);
        }
        if (rc == 0 && meta->vocab_crc != t->train.vocab_crc)
            rc = agn_seterr("%s: trained on shards with another vocabulary (CRC %08x, these shards %08x)", path,
                            meta->vocab_crc, t->train.vocab_crc);
        if (rc == 0 && meta->pos.data_id != t->data_id)
            agn_warn("%s: trained on other data (data_id %08x, now %08x): continuing, but not an exact resume", path,
                     meta->pos.data_id, t->data_id);
        if (rc == 0 && meta->pos.seed != t->cfg->seed)
            agn_warn("%s: trained with seed %llu, now %llu: the data order changes", path,
                     (unsigned long long)meta->pos.seed, (unsigned long long)t->cfg->seed);
        if (rc == 0 && meta->pos.epoch_examples != t->epoch_examples)
            agn_warn("%s: epochs of %llu examples, now %llu: not an exact resume", path,
                     (unsigned long long)meta->pos.epoch_examples, (unsigned long long)t->epoch_examples);
        if (rc == 0) rc = agn_checkpoint_restore(ck, &t->m, t->adam_m, t->adam_v);
        if (rc == 0) pos = meta->pos;
        agn_config_free(&old);
        agn_checkpoint_free(ck);
    }
    /* share the outcome first, so that no rank waits on a broadcast that
     * will not come */
    double ok = rc == 0 ? 1 : 0, all = ok;
    if (agn_comm_allreduce(t->comm, &all, 1, AGN_F64) != 0) return -1;
    if (rc != 0) return -1;
    if (all < t->world) return agn_seterr("rank 0 could not read %s", path);
    if (agn_comm_broadcast(t->comm, &pos, sizeof pos, AGN_U8, 0) != 0) return -1;
    /* shared parameters: rank 0 restored the one copy, before the all-reduce above */
    if (!t->m.params_external && agn_comm_broadcast(t->comm, t->m.params, t->m.n_params, AGN_F32, 0) != 0)
        return -1;
    if (agn_comm_broadcast(t->comm, t->adam_m, t->m.n_params, AGN_F32, 0) != 0) return -1;
    if (agn_comm_broadcast(t->comm, t->adam_v, t->m.n_params, AGN_F32, 0) != 0) return -1;
    t->pos.epoch = pos.epoch;
    t->pos.step = pos.step;
    t->pos.cursor = pos.cursor;
    t->pos.best_val_acc = pos.best_val_acc;
    if (pos.epoch_examples == t->epoch_examples && pos.cursor >= t->epoch_examples) {
        t->pos.epoch++;
        t->pos.cursor = 0;
    }
    return 0;
}

static int setup_rundir(trainer *t)
{
    const agn_train_opts *o = t->o;
    if (t->rank != 0) return 0;
    if (agn_mkdir_p(o->run_dir) != 0) return -1;
    t->path_last = path_join(o->run_dir, "last.safetensors");
    t->path_best = path_join(o->run_dir, "best.safetensors");
    char *pm = path_join(o->run_dir, "metrics.csv");
    struct stat st;
    int exists = stat(t->path_last, &st) == 0 || stat(pm, &st) == 0;
    free(pm);
    /* resuming into the run directory the checkpoint came from continues its
     * files; anything else starts them afresh, and will not overwrite a
     * previous run without --force */
    int append = 0;
    if (exists && o->resume) {
        char *a = realpath(o->resume, NULL), *b = realpath(o->run_dir, NULL);
        char *ad = a ? dir_of(a) : NULL;
        append = ad && b && strcmp(ad, b) == 0;
        free(a);
        free(b);
        free(ad);
    }
    if (exists && !append && !o->force)
        return agn_seterr("%s: holds a previous run (use --force to overwrite it, or --resume %s/last.safetensors)",
                          o->run_dir, o->run_dir);
    char *pl = path_join(o->run_dir, "train.log");
    t->log = fopen(pl, append ? "a" : "w");
    if (!t->log) {
        agn_seterr_errno("%s", pl);
        free(pl);
        return -1;
    }
    free(pl);
    if (!append) {
        unlink(t->path_best);
        if (!o->resume) unlink(t->path_last);
    }
    t->steps_csv = open_csv(o->run_dir, "steps.csv", steps_header, !append);
    if (!t->steps_csv) return -1;
    t->metrics_csv = open_csv(o->run_dir, "metrics.csv", metrics_header, !append);
    if (!t->metrics_csv) return -1;
    return write_config_yaml(t);
}

/* ---- the training loop ---------------------------------------------------------------- */

typedef struct {
    long steps;
    double samples, tokens, loss_sum;
    double time, compute, comm, optim, data;
    double imbalance; /* the slowest rank's compute minus the ranks' mean, summed */
    float lr;
} epoch_acc;

static void fmt_eta(double s, char *buf, size_t n)
{
    if (!isfinite(s) || s < 0) snprintf(buf, n, "?");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

static void progress(trainer *t, double loss, double rate, long steps_left)
{
    if (!t->tty || t->o->quiet || t->rank != 0) return;
    double now = agn_now();
    if (now - t->last_progress < 0.25 && steps_left > 0) return;
    t->last_progress = now;
    char eta[32];
    fmt_eta(rate > 0 ? (double)steps_left * (double)t->cfg->global_batch / rate : NAN, eta, sizeof eta);
    fprintf(stderr, "\r\033[Kepoch %u/%ld  step %llu/%llu  loss %.4f  %.0f samples/s  ETA %s", t->pos.epoch + 1,
            t->cfg->epochs, (unsigned long long)t->pos.step, (unsigned long long)t->pos.total_steps, loss, rate, eta);
    fflush(stderr);
}

static void progress_clear(trainer *t)
{
    if (t->tty && !t->o->quiet && t->rank == 0 && t->last_progress > 0) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    t->last_progress = 0;
}

/* Validation, best checkpoint, last checkpoint.  *out gets the metrics. */
static int eval_and_save(trainer *t, agn_metrics *out, int *have)
{
    *have = 0;
    if (t->have_val) {
        agn_confusion cm;
        agn_confusion_init(&cm, (int)t->cfg->n_classes);
        if (validate(t, &cm) != 0) {
            agn_confusion_free(&cm);
            return -1;
        }
        agn_metrics_compute(out, &cm);
        agn_confusion_free(&cm);
        *have = 1;
        if (t->rank == 0 && out->accuracy > t->pos.best_val_acc) {
            t->pos.best_val_acc = out->accuracy;
            if (save_checkpoint(t, t->path_best, 0) != 0) return -1;
        }
    }
    /* the Adam moments are sharded across ranks: rank 0 needs them whole */
    if (t->world > 1 && (agn_zero_gather(&t->zero, t->adam_m) != 0 || agn_zero_gather(&t->zero, t->adam_v) != 0))
        return -1;
    if (t->rank == 0 && save_checkpoint(t, t->path_last, 1) != 0) return -1;
    t->saved_last = 1;
    return 0;
}

static void write_metrics_row(trainer *t, uint32_t epoch, const epoch_acc *a, const agn_metrics *vm, int have_val)
{
    if (t->rank != 0 || !t->metrics_csv) return;
    FILE *fp = t->metrics_csv;
    fprintf(fp, "%u,%d,cpu,%s,%s,%d,%s,%zu,%ld,%llu,%08x,%ld,%.0f,%.0f,%.4f,%.4f,%.4f,%.4f,%.4f,%.2f,%.1f,%.6f,",
            epoch + 1, t->world, t->comm->ops && t->comm->ops->name ? t->comm->ops->name : "none", t->device,
            t->o->threads, t->cfg->name, t->m.n_params, t->cfg->global_batch, (unsigned long long)t->epoch_examples,
            t->data_id, a->steps, a->samples, a->tokens, a->time, a->compute, a->comm, a->optim, a->data,
            a->time > 0 ? a->samples / a->time : 0, a->time > 0 ? a->tokens / a->time : 0,
            a->samples > 0 ? a->loss_sum / a->samples : NAN);
    if (have_val) fprintf(fp, "%.6f,%.6f,%.6f,", vm->loss, vm->accuracy, vm->macro_f1);
    else fprintf(fp, ",,,");
    fprintf(fp, "%.6g,%.4f\n", a->lr, a->imbalance);
    fflush(fp);
    fsync(fileno(fp));
}

/* What a run stopped by a NaN leaves behind, for its message. */
static const char *last_good(const trainer *t, char *buf, size_t n)
{
    if (t->saved_last) snprintf(buf, n, "The last good checkpoint is %s", t->path_last);
    else if (t->o->resume) snprintf(buf, n, "The last good checkpoint is still %s", t->o->resume);
    else snprintf(buf, n, "No checkpoint was written before it (the first is written at the first validation)");
    return buf;
}

/* ---- test hooks (environment variables kept for the tests) ------------------------------ */

/* AGN_TEST_TRACE_BATCHES=FILE: every rank appends one line per step,
 * "EPOCH STEP RANK: I I ...", the global indices of the examples it trains
 * on; the union over ranks must be the one-rank batch. */
static void test_trace_batch(const trainer *t, const uint64_t *idx, long n)
{
    static int fd = -2;
    if (fd == -2) {
        const char *p = getenv("AGN_TEST_TRACE_BATCHES");
        fd = p && *p ? open(p, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644) : -1;
    }
    if (fd < 0) return;
    size_t cap = 64 + (size_t)n * 21, len;
    char *line = agn_xmalloc(cap);
    len = (size_t)snprintf(line, cap, "%u %llu %d:", t->pos.epoch + 1, (unsigned long long)t->pos.step + 1,
                           t->rank);
    for (long j = 0; j < n; j++) len += (size_t)snprintf(line + len, cap - len, " %llu", (unsigned long long)idx[j]);
    line[len++] = '\n';
    /* one write with O_APPEND: lines of concurrent ranks do not interleave */
    if (write(fd, line, len) < 0) {}
    free(line);
}

/* AGN_TEST_FAIL_RANK=R AGN_TEST_FAIL_STEP=S [AGN_TEST_FAIL_MODE=M]: rank R,
 * at the start of step S (1-based), fails: M = error (default: returns an
 * error), kill (SIGKILL itself), sleep (sleeps 60 s or until a stop signal,
 * so the others' collective times out), sigterm / sigint (sends the signal
 * to the job: the supervisor of forked ranks, else this process). */
static int test_fault(const trainer *t)
{
    const char *r = getenv("AGN_TEST_FAIL_RANK"), *st = getenv("AGN_TEST_FAIL_STEP");
    const char *mode = getenv("AGN_TEST_FAIL_MODE");
    if (!r || !st || atol(r) != t->rank || atol(st) != (long)t->pos.step + 1) return 0;
    if (!mode || !*mode || strcmp(mode, "error") == 0)
        return agn_seterr("step %s: failure injected by AGN_TEST_FAIL_RANK", st);
    if (strcmp(mode, "kill") == 0) raise(SIGKILL);
    if (strcmp(mode, "sleep") == 0) {
        for (int i = 0; i < 600 && !(t->o->stop && *t->o->stop); i++) usleep(100000);
        return 0;
    }
    int sig = strcmp(mode, "sigterm") == 0 ? SIGTERM : strcmp(mode, "sigint") == 0 ? SIGINT : 0;
    if (!sig) return agn_seterr("AGN_TEST_FAIL_MODE=%s: not error, kill, sleep, sigterm or sigint", mode);
    int forked = t->comm->ops && t->comm->ops->name && strcmp(t->comm->ops->name, "local") == 0;
    kill(forked ? getppid() : getpid(), sig);
    return 0;
}

static int train_loop(trainer *t)
{
    const agn_train_opts *o = t->o;
    const long B = t->cfg->global_batch;
    const int T = (int)t->cfg->max_len;
    const uint64_t E = t->epoch_examples;
    t->perm = agn_xcalloc((size_t)t->train.n, sizeof *t->perm);
    uint64_t *gidx = agn_xcalloc((size_t)B, sizeof *gidx);
    uint64_t *gcost = agn_xcalloc((size_t)B, sizeof *gcost);
    double run_start = agn_now(), run_samples = 0;
    int status = 0;
    char lg[1024];

    while (status == 0 && t->pos.epoch < (uint64_t)t->cfg->epochs) {
        uint32_t epoch = t->pos.epoch;
        agn_train_permutation(t->perm, t->train.n, t->cfg->seed, epoch);
        epoch_acc acc;
        memset(&acc, 0, sizeof acc);
        int stop_now = 0;
        while (t->pos.cursor < E) {
            if (o->max_steps > 0 && (long)t->pos.step >= o->max_steps) {
                stop_now = 1;
                break;
            }
            /* with several ranks the stop is agreed on below, with the loss */
            if (o->stop && *o->stop && t->world == 1) {
                stop_now = 2;
                break;
            }
            if (test_fault(t) != 0) {
                status = -1;
                break;
            }
            double t0 = agn_now();
            /* ---- data: this rank's slice of global batch perm[cursor .. cursor+Bk) */
            long Bk = (long)(E - t->pos.cursor < (uint64_t)B ? E - t->pos.cursor : (uint64_t)B);
            long start, count;
            double tokens = 0;
            for (long j = 0; j < Bk; j++) {
                gidx[j] = t->perm[t->pos.cursor + (uint64_t)j];
                uint64_t len = ex_len(&t->train, gidx[j], T);
                tokens += (double)len;
                gcost[j] = agn_train_cost(len, t->cfg->d_model, t->cfg->d_ff);
            }
            /* slices of even cost: the step waits for the slowest rank
             * (padded to T, every example costs the same) */
            if (o->pad_to_max) agn_train_slice(Bk, t->rank, t->world, &start, &count);
            else agn_train_slice_cost(gcost, Bk, t->rank, t->world, &start, &count);
            test_trace_batch(t, gidx + start, count);
            batch_fill(&t->bb, &t->train, gidx + start, (int)count, T, o->pad_to_max);
            if (t->world > 1 && agn_zero_begin_step(&t->zero, t->bb.b.ids, (size_t)t->bb.b.B * (size_t)t->bb.b.T) != 0) {
                status = -1;
                break;
            }
            t->bb.b.seed = t->cfg->seed;
            t->bb.b.epoch = epoch;
            t->bb.b.train = 1;
            t->bb.b.loss_scale = 1.0f / (float)Bk;
            double t1 = agn_now();

            /* ---- compute: forward, backward; buckets reduce as backward goes */
            if (t->world > 1) agn_zero_clear_grads(&t->zero); /* the embedding's sparse rows only */
            else memset(t->m.grads, 0, t->m.n_params * sizeof(float));
            /* [1]: ranks that were asked to stop; all stop after this step */
            double loss_sum[2] = {0, o->stop && *o->stop ? 1 : 0};
            double waited = 0;
            agn_comm_req *loss_req = NULL;
            if (count > 0) {
                loss_sum[0] = agn_model_forward(&t->m, &t->bb.b);
                if (agn_comm_allreduce_start(t->comm, loss_sum, 2, AGN_F64, &loss_req) != 0) {
                    status = -1;
                    break;
                }
                if (t->slow_us > 0) usleep((useconds_t)t->slow_us); /* a slower rank, for the tests */
                agn_model_backward(&t->m, &t->bb.b);
            } else if (agn_comm_allreduce_start(t->comm, loss_sum, 2, AGN_F64, &loss_req) != 0) {
                status = -1;
                break;
            }
            double t2 = agn_now();
            double tw = agn_now();
            int crc = agn_comm_wait(t->comm, loss_req);
            waited += agn_now() - tw;
            if (buckets_finish(&t->bk, &waited) != 0 || crc != 0) {
                status = -1;
                break;
            }
            double t3 = agn_now();

            /* ---- optimizer */
            double loss = loss_sum[0] / (double)Bk;
            long step = (long)t->pos.step;
            if (t->nan_step > 0 && step + 1 == t->nan_step) loss = NAN;
            if (!isfinite(loss)) {
                progress_clear(t);
                status = agn_seterr("step %ld (epoch %u): the loss is %s; stopping. %s", step + 1, epoch + 1,
                                    isnan(loss) ? "NaN" : "infinite", last_good(t, lg, sizeof lg));
                break;
            }
            float lr = agn_lr_at(&t->oc, step);
            double gnorm, owaited = 0; /* owaited: the all-gather of the parameters */
            double compute_s = (t2 - t1) + (t3 - t2 - waited), imbalance_s = 0;
            if (t->world > 1) { /* every rank's compute time travels with the gradient norm */
                memset(t->zero.stats, 0, t->zero.n_stats * sizeof *t->zero.stats);
                t->zero.stats[t->rank] = compute_s;
            }
            if (t->world == 1) {
                gnorm = agn_adamw_step(&t->m, t->adam_m, t->adam_v, &t->oc, step, lr);
            } else if (agn_zero_adamw_step(&t->zero, t->adam_m, t->adam_v, &t->oc, step, lr, &gnorm, &owaited) != 0) {
                status = -1;
                break;
            }
            double t4 = agn_now();
            if (t->world > 1) {
                double most = 0, sum = 0;
                for (int r = 0; r < t->world; r++) {
                    sum += t->zero.stats[r];
                    if (t->zero.stats[r] > most) most = t->zero.stats[r];
                }
                imbalance_s = most - sum / t->world;
            }
            if (!isfinite(gnorm)) {
                progress_clear(t);
                status = agn_seterr("step %ld (epoch %u): the gradient norm is %s; stopping (lower the learning rate?). %s",
                                    step + 1, epoch + 1, isnan(gnorm) ? "NaN" : "infinite", last_good(t, lg, sizeof lg));
                break;
            }
            t->pos.step++;
            t->pos.cursor += (uint64_t)Bk;

            double data_s = t1 - t0, comm_s = waited + owaited, optim_s = t4 - t3 - owaited;
            acc.steps++;
            acc.samples += (double)Bk;
            acc.tokens += tokens;
            acc.loss_sum += loss_sum[0];
            acc.time += t4 - t0;
            acc.data += data_s;
            acc.compute += compute_s;
            acc.comm += comm_s;
            acc.optim += optim_s;
            acc.imbalance += imbalance_s;
            acc.lr = lr;
            run_samples += (double)Bk;

            if (t->rank == 0 && (t->pos.step % (uint64_t)t->cfg->log_every == 0 || t->pos.cursor >= E)) {
                fprintf(t->steps_csv, "%llu,%u,%llu,%.6f,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f,%.6f\n",
                        (unsigned long long)t->pos.step, epoch + 1, (unsigned long long)(run_samples), loss, lr, gnorm,
                        t4 - t0, compute_s, comm_s, optim_s, data_s, imbalance_s);
                fflush(t->steps_csv);
                tlog(t, 0, "epoch %u step %llu loss %.4f lr %.3g grad_norm %.3f", epoch + 1,
                     (unsigned long long)t->pos.step, loss, lr, gnorm);
            }
            double el = agn_now() - run_start;
            long left = (long)t->pos.total_steps - (long)t->pos.step;
            if (o->max_steps > 0 && o->max_steps - (long)t->pos.step < left) left = o->max_steps - (long)t->pos.step;
            progress(t, loss, el > 0 ? run_samples / el : 0, left);

            /* ---- validation in the middle of an epoch */
            if (t->cfg->eval_every > 0 && t->pos.step % (uint64_t)t->cfg->eval_every == 0 && t->pos.cursor < E) {
                agn_metrics vm;
                int have;
                if (eval_and_save(t, &vm, &have) != 0) {
                    status = -1;
                    break;
                }
                if (have) {
                    progress_clear(t);
                    tlog(t, 1, "step %llu: val_loss %.4f val_acc %.4f val_f1 %.4f", (unsigned long long)t->pos.step,
                         vm.loss, vm.accuracy, vm.macro_f1);
                    agn_metrics_free(&vm);
                }
            }
            if (loss_sum[1] > 0) { /* a rank was asked to stop: all stop here */
                stop_now = 2;
                break;
            }
        }
        if (status != 0) break;
        int epoch_done = t->pos.cursor >= E;
        if (epoch_done) {
            t->pos.epoch++;
            t->pos.cursor = 0;
        }
        if (acc.steps > 0 || epoch_done) {
            agn_metrics vm;
            memset(&vm, 0, sizeof vm);
            int have = 0;
            progress_clear(t);
            if (eval_and_save(t, &vm, &have) != 0) {
                status = -1;
                break;
            }
            write_metrics_row(t, epoch, &acc, &vm, have);
            char val[128] = "";
            if (have) snprintf(val, sizeof val, "  val_loss %.4f  val_acc %.4f  val_f1 %.4f", vm.loss, vm.accuracy, vm.macro_f1);
            tlog(t, 1, "epoch %u%s: %ld steps  %.1f s  %.0f samples/s  train_loss %.4f%s", epoch + 1,
                 epoch_done ? "" : " (partial)", acc.steps, acc.time, acc.time > 0 ? acc.samples / acc.time : 0,
                 acc.samples > 0 ? acc.loss_sum / acc.samples : NAN, val);
            if (have) agn_metrics_free(&vm);
        }
        if (stop_now == 1) {
            tlog(t, 1, "stopped after %llu steps (--max-steps); resume with --resume %s/last.safetensors",
                 (unsigned long long)t->pos.step, o->run_dir);
            break;
        }
        if (stop_now == 2) {
            tlog(t, 1, "interrupted after %llu steps; checkpoint %s/last.safetensors", (unsigned long long)t->pos.step,
                 o->run_dir);
            status = AGN_TRAIN_STOPPED;
            break;
        }
    }
    free(gidx);
    free(gcost);
    return status;
}

/* ---- entry ------------------------------------------------------------------------------ */

int agn_train(const agn_train_opts *o, agn_comm *comm)
{
    trainer tr, *t = &tr;
    memset(t, 0, sizeof *t);
    t->o = o;
    t->cfg = o->cfg;
    t->comm = comm;
    t->rank = comm->rank;
    t->world = comm->world;
    t->tty = agn_stderr_is_tty();
    snprintf(t->device, sizeof t->device, "%s", o->device ? o->device : "cpu");
    const char *ns = getenv("AGN_TEST_NAN_STEP");
    if (ns && *ns) t->nan_step = strtol(ns, NULL, 10);
    const char *sr = getenv("AGN_TEST_SLOW_RANK"), *sm = getenv("AGN_TEST_SLOW_MS");
    if (sr && *sr && sm && *sm && strtol(sr, NULL, 10) == t->rank) t->slow_us = 1000 * strtol(sm, NULL, 10);
    if (o->threads > 0) {
#ifdef _OPENMP
        omp_set_num_threads(o->threads);
#endif
        if (openblas_set_num_threads) openblas_set_num_threads(o->threads);
    }

    int rc = 0;
    if (agn_config_check(t->cfg) != 0) rc = -1;
    if (rc == 0) rc = setup_data(t);
    if (rc == 0) rc = setup_model(t);
    if (rc == 0 && o->resume) rc = setup_resume(t);
    if (rc == 0) {
        t->config_yaml = agn_config_to_string(t->cfg);
        rc = setup_rundir(t);
    }
    if (rc == 0) {
        if (t->pos.step > 0)
            tlog(t, 1, "resuming %s at epoch %u, step %llu, example %llu of the epoch", o->resume, t->pos.epoch + 1,
                 (unsigned long long)t->pos.step, (unsigned long long)t->pos.cursor);
        tlog(t, 1, "config %s: %zu parameters; %llu training examples%s, %ld steps per epoch of %ld; %llu validation examples; %d rank%s x %d threads%s",
             t->cfg->name, t->m.n_params, (unsigned long long)t->epoch_examples,
             t->epoch_examples < t->train.n ? " (--max-examples)" : "", t->steps_per_epoch, t->cfg->global_batch,
             (unsigned long long)(t->have_val ? t->val.n : 0), t->world, t->world > 1 ? "s" : "", o->threads,
             agn_launch_bound() ? ", each rank on its own CPUs" : "");
        rc = train_loop(t);
        progress_clear(t);
    }
    if (rc < 0 && t->log) {
        fprintf(t->log, "error: %s\n", agn_errmsg());
        fflush(t->log);
    }

    if (t->log) fclose(t->log);
    if (t->steps_csv && fclose(t->steps_csv) != 0 && rc == 0) rc = agn_seterr_errno("%s/steps.csv", o->run_dir);
    if (t->metrics_csv && fclose(t->metrics_csv) != 0 && rc == 0) rc = agn_seterr_errno("%s/metrics.csv", o->run_dir);
    free(t->path_last);
    free(t->path_best);
    free(t->perm);
    free(t->config_yaml);
    free(t->adam_m);
    free(t->adam_v);
    if (t->m.params) {
        batch_free(&t->bb);
        buckets_free(&t->bk);
        if (t->world > 1) agn_zero_free(&t->zero);
        agn_model_free(&t->m);
    }
    if (t->vocab) agn_vocab_free(t->vocab);
    agn_dataset_free(&t->train);
    agn_dataset_free(&t->val);
    return rc;
}
