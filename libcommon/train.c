/* train.c: the trainer (train.h).  Sections: gradient buckets, validation,
 * checkpoints, setup, and the training loop that ties them together.  Every
 * rank runs all of it; only rank 0 writes the run directory (rundir.c).  The
 * model's memory is reached only through its backend (backend.h): this file
 * never touches parameters, gradients or moments itself, so the same loop
 * drives the CPU and the GPU. */
#include "config.h"
#include "train.h"

#include "batch.h"
#include "checkpoint.h"
#include "device.h"
#include "evaluate.h"
#include "launch.h"
#include "model.h"
#include "rundir.h"
#include "shard.h"
#include "util.h"
#include "vocab.h"
#include "zero.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
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
    agn_comm *comm;  /* host buffers (loss, metrics, position); the job's transport */
    agn_comm *gcomm; /* the model's buffers (gradients, weights, moments): comm, or staged over it */
    agn_comm *staged;
    int rank, world;
    agn_dataset train, val;
    int have_val;
    agn_vocab *vocab;
    uint32_t data_id;
    uint64_t epoch_examples; /* per epoch, after --max-examples */
    long steps_per_epoch;
    agn_model m;
    float *host_params, *host_m, *host_v; /* checkpoint mirrors, for a device backend */
    agn_optim_config oc;
    buckets bk;
    agn_zero zero; /* with several ranks: each updates its shard of the parameters */
    uint8_t *union_mark;  /* [vocab] scratch of agn_batch_token_union */
    int32_t *union_rows;  /* [vocab] the token ids of the global batch, in id order */
    agn_batch_buf bb;
    uint64_t *perm;
    agn_train_pos pos;
    char *config_yaml;
    char device[256];
    agn_rundir rd;
    agn_run_info info; /* what config.yaml and metrics.csv say of the run */
    int saved_last; /* a last.safetensors of this run exists */
    long nan_step; /* AGN_TEST_NAN_STEP: make this step's loss NaN (tests) */
    long slow_us;  /* AGN_TEST_SLOW_RANK=r AGN_TEST_SLOW_MS=m: rank r's compute takes m ms more a step */
} trainer;

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
        agn_batch_fill(&t->bb, &t->val, idx, n, T, t->o->pad_to_max);
        t->bb.b.train = 0;
        t->bb.b.seed = t->cfg->seed;
        t->bb.b.epoch = 0;
        t->bb.b.loss_scale = 1;
        /* the inference pass: the same logits, activations shared by the layers */
        float loss = agn_model_forward_infer(&t->m, &t->bb.b);
        if (isnan(loss) && agn_errmsg()[0]) {
            free(idx);
            return agn_adderr("validation");
        }
        cm->loss_sum += loss;
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

/* ---- checkpoints ----------------------------------------------------------------------------- */

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
    /* a device backend's buffers are copied to host mirrors first */
    agn_model view = t->m;
    float *am = t->m.adam_m, *av = t->m.adam_v;
    if (!t->m.ops->host_memory) {
        if (agn_model_download(&t->m, t->host_params, t->m.params) != 0) return -1;
        view.params = t->host_params;
        if (with_optim && (agn_model_download(&t->m, t->host_m, t->m.adam_m) != 0 ||
                           agn_model_download(&t->m, t->host_v, t->m.adam_v) != 0))
            return -1;
        am = t->host_m;
        av = t->host_v;
    }
    return agn_checkpoint_save(path, &view, with_optim ? am : NULL, with_optim ? av : NULL, &meta);
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
    char *d = agn_dir_of(t->o->train_paths[0]);
    char *cands[2];
    cands[0] = agn_path_join(d, "vocab.txt");
    char *up = agn_path_join(d, "..");
    cands[1] = agn_path_join(up, "vocab.txt");
    for (int i = 0; i < 2 && !t->vocab; i++) {
        if (access(cands[i], R_OK) != 0) continue;
        agn_vocab *v = agn_vocab_load(cands[i]);
        if (v && agn_vocab_crc(v) == t->train.vocab_crc) {
            t->vocab = v;
            agn_rundir_log(&t->rd, 0, "vocabulary: %s", cands[i]);
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
    t->data_id = agn_dataset_id(&t->train);
    uint64_t E = t->train.n;
    if (t->cfg->max_examples > 0 && (uint64_t)t->cfg->max_examples < E) E = (uint64_t)t->cfg->max_examples;
    t->epoch_examples = E;
    t->steps_per_epoch = (long)((E + (uint64_t)t->cfg->global_batch - 1) / (uint64_t)t->cfg->global_batch);
    return find_vocab(t);
}

static const char *transport_name(const agn_comm *c)
{
    return c->ops && c->ops->name ? c->ops->name : "none";
}

/* The staged transport's copies (comm.h): after the model's queued work. */
static int model_to_host(void *ctx, void *host, const void *dev, size_t bytes)
{
    agn_model *m = ctx;
    if (bytes % sizeof(float)) return agn_seterr("staged copy of %zu bytes: not whole floats", bytes);
    if (m->ops->wait(m, NULL) != 0) return -1;
    return m->ops->to_host(m, host, dev, bytes / sizeof(float));
}

static int model_from_host(void *ctx, void *dev, const void *host, size_t bytes)
{
    agn_model *m = ctx;
    if (bytes % sizeof(float)) return agn_seterr("staged copy of %zu bytes: not whole floats", bytes);
    return m->ops->from_host(m, dev, host, bytes / sizeof(float));
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
    const agn_backend_ops *ops = t->o->backend ? t->o->backend : &agn_backend_cpu;
    /* precision auto: bf16 products where the backend has them (CUDA) */
    agn_precision prec = strcmp(t->cfg->precision, "fp32") == 0 ? AGN_PREC_FP32
                         : strcmp(t->cfg->precision, "bf16") == 0 ? AGN_PREC_BF16
                         : ops->host_memory ? AGN_PREC_FP32 : AGN_PREC_BF16;
    if (agn_model_create_on(&t->m, &mc, rows, ops, t->o->device_index, prec) != 0) return -1;
    if (agn_model_alloc_optim(&t->m) != 0) return -1;
    /* a transport on device memory (nccl) follows the model's stream */
    if (ops->stream && agn_comm_set_stream(t->comm, ops->stream(&t->m)) != 0) return -1;
    /* The collectives on the model's buffers run where they live: a device
     * backend over a host transport (CUDA ranks without NCCL, or several on
     * one GPU) goes through host staging copies.  AGN_TEST_STAGED forces
     * the staging on the CPU too, so the tests cover it bit for bit. */
    t->gcomm = t->comm;
    const char *ts = getenv("AGN_TEST_STAGED");
    if (t->world > 1 && ((!ops->host_memory && strcmp(transport_name(t->comm), "nccl") != 0) || (ts && *ts))) {
        agn_comm_copier cp = {.ctx = &t->m, .to_host = model_to_host, .from_host = model_from_host};
        t->staged = agn_comm_staged_create(t->comm, &cp);
        t->gcomm = t->staged;
    }
    /* --pad-to-max: compute every padded position as a padded implementation
     * does (same loss and gradients up to rounding), so the gain of skipping
     * pads can be measured apart from the rest */
    t->m.dense = t->o->pad_to_max;
    /* ranks on one host share one copy of the parameters (zero.h): rank 0
     * initialises it, the barrier publishes it */
    void *shared = NULL;
    if (ops->host_memory && agn_comm_shared(t->gcomm, t->m.n_params * sizeof(float), &shared) != 0) return -1;
    if (shared && agn_model_use_params(&t->m, shared) != 0) return -1;
    if ((!shared || t->rank == 0) && agn_model_init_weights(&t->m, t->cfg->seed) != 0) return -1;
    if (shared && agn_comm_barrier(t->gcomm) != 0) return -1;
    if (!ops->host_memory) {
        t->host_params = agn_xalloc_aligned(t->m.n_params * sizeof(float));
        t->host_m = agn_xalloc_aligned(t->m.n_params * sizeof(float));
        t->host_v = agn_xalloc_aligned(t->m.n_params * sizeof(float));
    }
    agn_batch_alloc(&t->bb, rows, (int)t->cfg->max_len);
    buckets_plan(&t->bk, &t->m, t->o->bucket_bytes ? t->o->bucket_bytes : (1u << 20), t->gcomm);
    t->m.on_grad_ready = on_grad_ready;
    if (t->world > 1) {
        t->bk.zero = &t->zero;
        if (agn_zero_plan(&t->zero, &t->m, t->gcomm, t->bk.n, t->bk.start, t->bk.end) != 0) return -1;
        t->zero.shared_params = t->m.params_external;
        t->union_mark = agn_xcalloc((size_t)mc.vocab_size, 1);
        t->union_rows = agn_xcalloc((size_t)mc.vocab_size, sizeof *t->union_rows);
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
        if (rc == 0) {
            /* into the host mirrors of a device backend, then uploaded */
            agn_model view = t->m;
            float *am = t->m.adam_m, *av = t->m.adam_v;
            if (!t->m.ops->host_memory) {
                view.params = t->host_params;
                am = t->host_m;
                av = t->host_v;
            }
            rc = agn_checkpoint_restore(ck, &view, am, av);
            if (rc == 0 && !t->m.ops->host_memory &&
                (agn_model_upload(&t->m, t->m.params, t->host_params) != 0 ||
                 agn_model_upload(&t->m, t->m.adam_m, t->host_m) != 0 ||
                 agn_model_upload(&t->m, t->m.adam_v, t->host_v) != 0))
                rc = -1;
        }
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
    if (!t->m.params_external && agn_comm_broadcast(t->gcomm, t->m.params, t->m.n_params, AGN_F32, 0) != 0)
        return -1;
    if (agn_comm_broadcast(t->gcomm, t->m.adam_m, t->m.n_params, AGN_F32, 0) != 0) return -1;
    if (agn_comm_broadcast(t->gcomm, t->m.adam_v, t->m.n_params, AGN_F32, 0) != 0) return -1;
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

/* ---- the training loop ---------------------------------------------------------------- */

/* Validation, best checkpoint, the metrics row of ROW (if not NULL) for
 * epoch EPOCH, last checkpoint.  *out gets the metrics.  The row goes before
 * the checkpoint: a kill between them leaves a row past the checkpoint,
 * which a resume removes (agn_rundir_trim), never a checkpoint without its
 * row. */
static int eval_and_save(trainer *t, agn_metrics *out, int *have, uint32_t epoch, agn_epoch_stats *row)
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
            if (save_checkpoint(t, t->rd.path_best, 0) != 0) return -1;
        }
    }
    /* the Adam moments are sharded across ranks: rank 0 needs them whole */
    if (t->world > 1 && (agn_zero_gather(&t->zero, t->m.adam_m) != 0 || agn_zero_gather(&t->zero, t->m.adam_v) != 0))
        return -1;
    if (row) {
        row->end_step = t->pos.step;
        if (agn_rundir_metrics_row(&t->rd, &t->info, epoch, row, out, *have) != 0) return -1;
    }
    if (t->rank == 0 && save_checkpoint(t, t->rd.path_last, 1) != 0) return -1;
    t->saved_last = 1;
    return 0;
}

/* What a run stopped by a NaN leaves behind, for its message. */
static const char *last_good(const trainer *t, char *buf, size_t n)
{
    if (t->saved_last) snprintf(buf, n, "The last good checkpoint is %s", t->rd.path_last);
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
    kill(agn_launch_forked() ? getppid() : getpid(), sig);
    return 0;
}

/* One rank's optimizer step: the global norm, clipping and AdamW over the
 * whole table (with several ranks zero.c does this on shards). */
static int optimizer_step(trainer *t, long step, float lr, double *gnorm)
{
    agn_model *m = &t->m;
    if (m->ops->norm(m, m->grads, m->n_params, gnorm) != 0 || m->ops->wait(m, NULL) != 0) return -1;
    agn_adam_args a = {.lr = lr, .beta1 = t->oc.beta1, .beta2 = t->oc.beta2, .eps = t->oc.eps,
                       .weight_decay = t->oc.weight_decay, .coef = agn_clip_coef(&t->oc, *gnorm),
                       .step = step};
    if (m->ops->adamw(m, m->tensors, m->n_tensors, &a) != 0) return -1;
    return m->ops->wait(m, NULL);
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
        agn_epoch_stats acc;
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
                uint64_t len = agn_example_len(&t->train, gidx[j], T);
                tokens += (double)len;
                gcost[j] = agn_train_cost(len, t->cfg->d_model, t->cfg->d_ff);
            }
            /* slices of even cost: the step waits for the slowest rank
             * (padded to T, every example costs the same) */
            if (o->pad_to_max) agn_train_slice(Bk, t->rank, t->world, &start, &count);
            else agn_train_slice_cost(gcost, Bk, t->rank, t->world, &start, &count);
            test_trace_batch(t, gidx + start, count);
            agn_batch_fill(&t->bb, &t->train, gidx + start, (int)count, T, o->pad_to_max);
            /* the rows of the token embedding the step can change: every rank
             * knows the whole global batch, so no collective is needed */
            if (t->world > 1) {
                size_t nr = agn_batch_token_union(&t->train, gidx, Bk, T, t->union_mark, t->union_rows);
                agn_zero_begin_step(&t->zero, t->union_rows, nr);
            }
            t->bb.b.seed = t->cfg->seed;
            t->bb.b.epoch = epoch;
            t->bb.b.train = 1;
            t->bb.b.loss_scale = 1.0f / (float)Bk;
            double t1 = agn_now();

            /* ---- compute: forward, backward; buckets reduce as backward goes */
            int brc = t->world > 1 ? agn_zero_clear_grads(&t->zero) /* the embedding's sparse rows only */
                                   : t->m.ops->zero(&t->m, t->m.grads, t->m.n_params);
            /* [1]: ranks that were asked to stop; all stop after this step */
            double loss_sum[2] = {0, o->stop && *o->stop ? 1 : 0};
            double waited = 0, device_s = -1;
            if (brc == 0 && count > 0) {
                brc = agn_model_submit_forward(&t->m, &t->bb.b, 1);
                if (brc == 0 && t->slow_us > 0) usleep((useconds_t)t->slow_us); /* a slower rank, for the tests */
                if (brc == 0) brc = agn_model_backward(&t->m, &t->bb.b);
            }
            /* the host waits for the device here (a no-op on the CPU) */
            if (brc == 0) brc = agn_model_wait(&t->m, &device_s);
            if (brc != 0) {
                status = -1;
                break;
            }
            if (count > 0) loss_sum[0] = t->m.loss_sum;
            /* every rank issues the same collectives in the same order: the
             * buckets (all started by a backward; a rank with an empty slice
             * starts them here), then the loss */
            buckets_start_from(&t->bk, 0);
            double t2 = agn_now();
            double tw = agn_now();
            int crc = agn_comm_allreduce(t->comm, loss_sum, 2, AGN_F64);
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
                agn_rundir_progress_clear(&t->rd);
                status = agn_seterr("step %ld (epoch %u): the loss is %s; stopping. %s", step + 1, epoch + 1,
                                    isnan(loss) ? "NaN" : "infinite", last_good(t, lg, sizeof lg));
                break;
            }
            float lr = agn_lr_at(&t->oc, step);
            double gnorm = 0, owaited = 0; /* owaited: the all-gather of the parameters */
            /* compute: the device's own time where the backend measures it
             * (CUDA events), else the host's clock less the waits */
            double compute_s = device_s >= 0 ? device_s : (t2 - t1) + (t3 - t2 - waited), imbalance_s = 0;
            agn_zero_step zs;
            if (t->world == 1 ? optimizer_step(t, step, lr, &gnorm) != 0
                              : agn_zero_adamw_step(&t->zero, &t->oc, step, lr, compute_s, &zs) != 0) {
                status = -1;
                break;
            }
            double t4 = agn_now();
            if (t->world > 1) {
                gnorm = zs.norm;
                owaited = zs.waited;
                imbalance_s = zs.imbalance;
            }
            if (!isfinite(gnorm)) {
                agn_rundir_progress_clear(&t->rd);
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
                agn_step_row row = {.step = t->pos.step, .epoch = epoch + 1, .samples = (uint64_t)run_samples,
                                    .loss = loss, .lr = lr, .grad_norm = gnorm, .time = t4 - t0,
                                    .compute = compute_s, .comm = comm_s, .optim = optim_s, .data = data_s,
                                    .imbalance = imbalance_s};
                if (agn_rundir_step_row(&t->rd, &row) != 0) {
                    status = -1;
                    break;
                }
                agn_rundir_log(&t->rd, 0, "epoch %u step %llu loss %.4f lr %.3g grad_norm %.3f", epoch + 1,
                     (unsigned long long)t->pos.step, loss, lr, gnorm);
            }
            double el = agn_now() - run_start;
            long left = (long)t->pos.total_steps - (long)t->pos.step;
            if (o->max_steps > 0 && o->max_steps - (long)t->pos.step < left) left = o->max_steps - (long)t->pos.step;
            agn_rundir_progress(&t->rd, t->cfg, t->pos.epoch, t->pos.step, t->pos.total_steps, loss,
                                el > 0 ? run_samples / el : 0, left);

            /* ---- validation in the middle of an epoch */
            if (t->cfg->eval_every > 0 && t->pos.step % (uint64_t)t->cfg->eval_every == 0 && t->pos.cursor < E) {
                agn_metrics vm;
                int have;
                if (eval_and_save(t, &vm, &have, epoch, NULL) != 0) {
                    status = -1;
                    break;
                }
                if (have) {
                    agn_rundir_progress_clear(&t->rd);
                    agn_rundir_log(&t->rd, 1, "step %llu: val_loss %.4f val_acc %.4f val_f1 %.4f", (unsigned long long)t->pos.step,
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
            agn_rundir_progress_clear(&t->rd);
            if (eval_and_save(t, &vm, &have, epoch, &acc) != 0) {
                status = -1;
                break;
            }
            char val[128] = "";
            if (have) snprintf(val, sizeof val, "  val_loss %.4f  val_acc %.4f  val_f1 %.4f", vm.loss, vm.accuracy, vm.macro_f1);
            agn_rundir_log(&t->rd, 1, "epoch %u%s: %ld steps  %.1f s  %.0f samples/s  train_loss %.4f%s", epoch + 1,
                 epoch_done ? "" : " (partial)", acc.steps, acc.time, acc.time > 0 ? acc.samples / acc.time : 0,
                 acc.samples > 0 ? acc.loss_sum / acc.samples : NAN, val);
            if (have) agn_metrics_free(&vm);
            if (t->world > 1) {
                double vb, vd;
                agn_zero_take_volume(&t->zero, &vb, &vd);
                agn_rundir_log(&t->rd, 0,
                               "epoch %u: gradients reduced %.2f MB a step (the embedding's rows of the batch only; "
                               "%.2f MB dense)", epoch + 1, vb / 1e6, vd / 1e6);
            }
        }
        if (stop_now == 1) {
            agn_rundir_log(&t->rd, 1, "stopped after %llu steps (--max-steps); resume with --resume %s/last.safetensors",
                 (unsigned long long)t->pos.step, o->run_dir);
            break;
        }
        if (stop_now == 2) {
            agn_rundir_log(&t->rd, 1, "interrupted after %llu steps; checkpoint %s/last.safetensors", (unsigned long long)t->pos.step,
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

/* What config.yaml's run: section and metrics.csv's fixed columns say. */
static void fill_info(trainer *t)
{
    const agn_train_opts *o = t->o;
    agn_run_info *ri = &t->info;
    ri->cfg = t->cfg;
    ri->world = t->world;
    ri->threads = o->threads;
    ri->bound_cpus = agn_launch_bound();
    ri->transport = transport_name(t->gcomm);
    ri->backend = t->m.ops->name;
    ri->device = t->device;
    ri->train_paths = o->train_paths;
    ri->n_train = o->n_train;
    ri->val_paths = o->val_paths;
    ri->n_val = o->n_val;
    ri->train_examples = t->epoch_examples;
    ri->total_steps = t->pos.total_steps;
    ri->data_id = t->data_id;
    ri->steps_per_epoch = t->steps_per_epoch;
    ri->max_steps = o->max_steps;
    ri->params = t->m.n_params;
    ri->pad_to_max = o->pad_to_max;
    ri->bucket_bytes = o->bucket_bytes;
    ri->resume = o->resume;
}

int agn_train(const agn_train_opts *o, agn_comm *comm)
{
    trainer tr, *t = &tr;
    memset(t, 0, sizeof *t);
    t->o = o;
    t->cfg = o->cfg;
    t->comm = comm;
    t->rank = comm->rank;
    t->world = comm->world;
    /* until the run directory is open: messages to stderr only */
    t->rd.rank = t->rank;
    t->rd.world = t->world;
    t->rd.quiet = o->quiet;
    snprintf(t->device, sizeof t->device, "%s", o->device ? o->device : "cpu");
    const char *ns = getenv("AGN_TEST_NAN_STEP");
    if (ns && *ns) t->nan_step = strtol(ns, NULL, 10);
    const char *sr = getenv("AGN_TEST_SLOW_RANK"), *sm = getenv("AGN_TEST_SLOW_MS");
    if (sr && *sr && sm && *sm && strtol(sr, NULL, 10) == t->rank) t->slow_us = 1000 * strtol(sm, NULL, 10);
    if (o->threads > 0) agn_cpu_set_threads(o->threads);

    int rc = 0;
    if (agn_config_check(t->cfg) != 0) rc = -1;
    if (rc == 0) rc = setup_data(t);
    if (rc == 0) rc = setup_model(t);
    if (rc == 0 && o->resume) rc = setup_resume(t);
    if (rc == 0) {
        t->config_yaml = agn_config_to_string(t->cfg);
        fill_info(t);
        rc = agn_rundir_open(&t->rd, o->run_dir, o->resume, o->force, t->rank, t->world, o->quiet);
        if (rc == 0 && o->resume) rc = agn_rundir_trim(&t->rd, t->pos.step);
        if (rc == 0) rc = agn_rundir_write_config(&t->rd, &t->info);
    }
    if (rc == 0) {
        if (t->pos.step > 0)
            agn_rundir_log(&t->rd, 1, "resuming %s at epoch %u, step %llu, example %llu of the epoch", o->resume,
                           t->pos.epoch + 1, (unsigned long long)t->pos.step, (unsigned long long)t->pos.cursor);
        agn_rundir_log(&t->rd, 1,
                       "config %s: %zu parameters; %llu training examples%s, %ld steps per epoch of %ld; %llu "
                       "validation examples; %d rank%s x %d threads%s; backend %s (%s)",
                       t->cfg->name, t->m.n_params, (unsigned long long)t->epoch_examples,
                       t->epoch_examples < t->train.n ? " (--max-examples)" : "", t->steps_per_epoch,
                       t->cfg->global_batch, (unsigned long long)(t->have_val ? t->val.n : 0), t->world,
                       t->world > 1 ? "s" : "", o->threads, agn_launch_bound() ? ", each rank on its own CPUs" : "",
                       t->m.ops->name, t->device);
        if (o->launch) agn_rundir_log(&t->rd, 0, "launch: %s", o->launch);
        rc = train_loop(t);
        agn_rundir_progress_clear(&t->rd);
    }
    if (rc < 0 && t->rd.log) {
        fprintf(t->rd.log, "error: %s\n", agn_errmsg());
        fflush(t->rd.log);
    }
    if (agn_rundir_close(&t->rd) != 0 && rc == 0) rc = -1;
    free(t->perm);
    free(t->config_yaml);
    free(t->host_params);
    free(t->host_m);
    free(t->host_v);
    free(t->union_mark);
    free(t->union_rows);
    if (t->m.params) {
        agn_batch_free(&t->bb);
        buckets_free(&t->bk);
        if (t->world > 1) agn_zero_free(&t->zero);
    }
    agn_comm_free(t->staged);
    if (t->m.params) agn_model_free(&t->m);
    if (t->vocab) agn_vocab_free(t->vocab);
    agn_dataset_free(&t->train);
    agn_dataset_free(&t->val);
    return rc;
}
