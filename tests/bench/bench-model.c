/* bench-model.c: training and inference throughput of agn's CPU model on
 * real batches, for tests/bench/model.sh.  Loads shards, draws batches from
 * a fixed shuffle, and times whole optimizer steps (zero gradients,
 * forward, backward, AdamW with clipping) or forward passes alone, after a
 * few untimed warm-up steps.  Prints one line of key=value pairs:
 * samples_per_s, tokens_per_s (real tokens), ms_per_step, peak_rss_mb, and
 * gflop_per_s: the model's floating-point work on the real tokens over the
 * time (the matrix products: per example of n tokens and per layer,
 * 2n(4D^2 + 2DF) for the projections and 4n^2 D for attention, plus 2DC
 * for the head; training counts 3 times the forward), for the model FLOP
 * utilisation model.sh prints.  On the CPU backend it also prints
 * peak_gflop_per_s, the fp32 FMA rate the same number of threads measured
 * just before and just after the timed steps (the higher of the two;
 * peak.c), and mfu_measured, gflop_per_s over it: the utilisation against
 * what the cores delivered at the clock of that minute, where the nominal
 * peak model.sh also divides by assumes the clock /proc/cpuinfo reports.
 *
 * --gemm times the config's matrix products alone instead, through the same
 * agn_matmul_forward_cpu and agn_matmul_backward_cpu the model calls, on a
 * batch's worth of rows (the batch times the shards' mean tokens an example,
 * capped at T): one line per product and direction with its GFLOP/s and its
 * share of the measured peak, the ceiling the whole step's MFU sits under.
 *
 *   bench-model [-c small|large] [-t THREADS] [-s STEPS] [-w WARMUP]
 *               [-b BATCH] [--pad-to-max] [--dense] [--infer]
 *               [--backend cpu|cuda] [--precision fp32|bf16] SHARD...
 *
 * --backend cuda runs the model on CUDA device 0 (backend.h); a step then
 * ends with a wait for the device, so the time is the device's; the
 * precision of its products is bf16 unless --precision fp32.
 * --pad-to-max pads every batch to T (the model still skips pad positions);
 * --dense pads to T and sets agn_model.dense, so pad positions are computed
 * as a padded implementation would: the implementation apart from the gain
 * of skipping pads.  With AGN_BENCH_PHASES set in the environment, training
 * also prints a second line with the mean milliseconds per step of each
 * phase (zero, forward, backward, adamw), to see which one fails to scale
 * with the thread count. */
#include "config.h"
#include "blas.h"
#include "model.h"
#include "backend.h"
#include "shard.h"
#include "util.h"
#include "layers_cpu.h"
#include "peak.h"

#include <getopt.h>
#include <math.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/* --gemm: the block's products, forward and backward, each the best of 20 */
static int time_gemms(const agn_model_config *cfg, const agn_dataset *ds, int batch, int threads)
{
    double mean = (double)(ds->offsets[ds->n] - ds->offsets[0]) / (double)ds->n;
    int N = (int)(batch * (mean < cfg->max_len ? mean : cfg->max_len) + 0.5);
    const int D = cfg->d_model, F = cfg->d_ff;
    const struct { const char *name; int ic, oc; } prod[] = {
        {"qkv", D, 3 * D}, {"proj", D, D}, {"fc1", D, F}, {"fc2", F, D}};
    size_t big = (size_t)N * (F > 3 * D ? F : 3 * D);
    float *x = agn_xalloc_aligned(big * sizeof(float)), *y = agn_xalloc_aligned(big * sizeof(float));
    float *dx = agn_xalloc_aligned(big * sizeof(float));
    float *w = agn_xalloc_aligned((size_t)F * 3 * D * sizeof(float));
    float *dw = agn_xalloc_aligned((size_t)F * 3 * D * sizeof(float)), *bias = agn_xalloc_aligned(
                                                                          (size_t)(F + 3 * D) * sizeof(float));
    for (size_t i = 0; i < big; i++) x[i] = y[i] = (float)((i * 7919) % 1000) * 1e-3f - 0.5f;
    for (size_t i = 0; i < (size_t)F * 3 * D; i++) w[i] = (float)((i * 104729) % 1000) * 1e-3f - 0.5f;
    double peak = agn_peak_gflops(threads, 0.25);
    for (size_t k = 0; k < sizeof prod / sizeof prod[0]; k++) {
        for (int dir = 0; dir < 2; dir++) {
            double best = 1e30;
            for (int r = 0; r < 20; r++) {
                double t0 = agn_now();
                if (dir == 0) agn_matmul_forward_cpu(y, x, w, bias, N, prod[k].ic, prod[k].oc);
                else agn_matmul_backward_cpu(dx, dw, bias, y, x, w, N, prod[k].ic, prod[k].oc);
                double dt = agn_now() - t0;
                if (dt < best) best = dt;
            }
            double g = (dir ? 4.0 : 2.0) * N * prod[k].ic * prod[k].oc / best / 1e9;
            printf("gemm=%s dir=%s threads=%d N=%d in=%d out=%d gflop_per_s=%.1f peak_gflop_per_s=%.1f "
                   "of_peak=%.3f\n",
                   prod[k].name, dir ? "backward" : "forward", threads, N, prod[k].ic, prod[k].oc, g,
                   peak, g / peak);
        }
    }
    free(x); free(y); free(dx); free(w); free(dw); free(bias);
    return 0;
}

static void usage(void)
{
    printf("usage: bench-model [-c small|large] [-t THREADS] [-s STEPS] [-w WARMUP] [-b BATCH]\n"
           "                   [--pad-to-max] [--dense] [--infer] [--backend cpu|cuda]\n"
           "                   [--precision fp32|bf16] [--gemm] SHARD...\n");
}

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    const char *cname = "small";
    long threads = 0, steps = 20, warm = 3, batch = 0;
    int pad_to_max = 0, infer = 0, dense = 0, gemm = 0;
    const char *bname = "cpu", *pname = NULL;
    static const struct option opts[] = {{"config", 1, 0, 'c'}, {"threads", 1, 0, 't'},
                                         {"steps", 1, 0, 's'},  {"warmup", 1, 0, 'w'},
                                         {"batch", 1, 0, 'b'},  {"pad-to-max", 0, 0, 'P'},
                                         {"infer", 0, 0, 'I'},  {"help", 0, 0, 'h'},
                                         {"dense", 0, 0, 'D'},  {"backend", 1, 0, 'B'},
                                         {"precision", 1, 0, 'p'},  {"gemm", 0, 0, 'G'},
                                         {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:t:s:w:b:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cname = optarg; break;
        case 't': if (agn_parse_long(optarg, 1, 1024, "-t", &threads)) goto bad; break;
        case 's': if (agn_parse_long(optarg, 1, 1000000, "-s", &steps)) goto bad; break;
        case 'w': if (agn_parse_long(optarg, 0, 1000000, "-w", &warm)) goto bad; break;
        case 'b': if (agn_parse_long(optarg, 1, 1 << 16, "-b", &batch)) goto bad; break;
        case 'P': pad_to_max = 1; break;
        case 'I': infer = 1; break;
        case 'D': dense = pad_to_max = 1; break;
        case 'B': bname = optarg; break;
        case 'p': pname = optarg; break;
        case 'G': gemm = 1; break;
        case 'h': usage(); return 0;
        default: return agn_usage_error("bad option");
        }
    }
    if (optind >= argc) return agn_usage_error("no shards given");
    if (pname && strcmp(pname, "fp32") != 0 && strcmp(pname, "bf16") != 0)
        return agn_usage_error("--precision: fp32 or bf16, not '%s'", pname);
    agn_model_config cfg = {.dropout = 0.1f, .n_heads = 4};
    if (strcmp(cname, "small") == 0) {
        cfg.max_len = 128; cfg.d_model = 128; cfg.n_layers = 2; cfg.d_ff = 512;
        if (!batch) batch = 32;
    } else if (strcmp(cname, "large") == 0) {
        cfg.max_len = 256; cfg.d_model = 256; cfg.n_layers = 4; cfg.d_ff = 1024;
        if (!batch) batch = 128;
    } else {
        return agn_usage_error("-c: small or large, not '%s'", cname);
    }
    agn_dataset ds;
    if (agn_dataset_load(&ds, argv + optind, argc - optind) != 0) {
        agn_warn_err();
        return 1;
    }
    if (ds.n == 0) {
        agn_warn("%s: no examples", argv[optind]);
        agn_dataset_free(&ds);
        return 1;
    }
    cfg.vocab_size = (int)ds.vocab_size;
    cfg.n_classes = (int)ds.n_classes;
#ifdef _OPENMP
    if (threads) omp_set_num_threads((int)threads);
    threads = omp_get_max_threads();
#endif
    agn_blas_threads((int)threads);
    if (gemm) {
        int rc = time_gemms(&cfg, &ds, (int)batch, (int)threads);
        agn_dataset_free(&ds);
        return rc;
    }
    const agn_backend_ops *ops = agn_backend_find(bname);
    if (!ops) {
        agn_warn_err();
        agn_dataset_free(&ds);
        return 1;
    }
    agn_precision prec = ops->host_memory ? AGN_PREC_FP32 : AGN_PREC_BF16;
    if (pname) prec = strcmp(pname, "bf16") == 0 ? AGN_PREC_BF16 : AGN_PREC_FP32;
    agn_model m;
    if (agn_model_create_on(&m, &cfg, (int)batch, ops, 0, prec) != 0 ||
        agn_model_init_weights(&m, 1) != 0 || agn_model_alloc_optim(&m) != 0) {
        agn_warn_err();
        agn_dataset_free(&ds);
        return 1;
    }
    m.dense = dense;
    agn_optim_config oc = {.lr = 1e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f,
                           .weight_decay = 0.01f, .grad_clip = 1.0f, .warmup_steps = 10,
                           .total_steps = 100000};

    /* a fixed shuffle (LCG Fisher-Yates) so every run sees the same batches */
    uint64_t *perm = agn_xmalloc(ds.n * sizeof *perm), s = 12345;
    for (uint64_t i = 0; i < ds.n; i++) perm[i] = i;
    for (uint64_t i = ds.n - 1; i > 0; i--) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        uint64_t j = (s >> 33) % (i + 1), t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    int T = cfg.max_len;
    int32_t *ids = agn_xmalloc((size_t)batch * T * sizeof(int32_t));
    int32_t *labels = agn_xmalloc((size_t)batch * sizeof(int32_t));
    uint64_t *exi = agn_xmalloc((size_t)batch * sizeof(uint64_t)), cursor = 0;
    double t0 = 0, tokens = 0, flop = 0, phase[4] = {0};
    const double D = cfg.d_model, Fd = cfg.d_ff, L = cfg.n_layers, C = cfg.n_classes;
    double peak = ops->host_memory ? agn_peak_gflops((int)threads, 0.25) : 0;
    for (long step = 0; step < warm + steps; step++) {
        if (step == warm) {
            t0 = agn_now();
            tokens = flop = 0;
        }
        /* batch assembly is part of the timed step, as in a trainer */
        int Tb = 1;
        for (long r = 0; r < batch; r++) {
            uint64_t e = perm[(cursor + (uint64_t)r) % ds.n];
            uint64_t n = ds.offsets[e + 1] - ds.offsets[e];
            if (n > (uint64_t)T) n = (uint64_t)T;
            if ((int)n > Tb) Tb = (int)n;
        }
        if (pad_to_max) Tb = T;
        for (long r = 0; r < batch; r++) {
            uint64_t e = perm[(cursor + (uint64_t)r) % ds.n];
            uint64_t n = ds.offsets[e + 1] - ds.offsets[e];
            if (n > (uint64_t)Tb) n = (uint64_t)Tb;
            int32_t *row = ids + (size_t)r * Tb;
            memcpy(row, ds.tokens + ds.offsets[e], n * sizeof(int32_t));
            memset(row + n, 0, ((size_t)Tb - n) * sizeof(int32_t));
            labels[r] = ds.labels[e];
            exi[r] = e;
            tokens += (double)n;
            flop += (infer ? 1 : 3) * (L * (2.0 * n * (4 * D * D + 2 * D * Fd) + 4.0 * n * n * D) + 2 * D * C);
        }
        cursor += (uint64_t)batch;
        agn_batch b = {.B = (int)batch, .T = Tb, .ids = ids, .labels = labels,
                       .example_index = exi, .seed = 1, .epoch = 0, .train = !infer,
                       .loss_scale = 1.0f / (float)batch};
        /* the trainer's single-rank step through the backend table */
        int rc = 0;
        if (infer) {
            rc = isnan(agn_model_forward_infer(&m, &b));
        } else {
            double q0 = agn_now(), norm = 0;
            rc |= ops->zero(&m, m.grads, m.n_params);
            double q1 = agn_now();
            rc |= agn_model_submit_forward(&m, &b, 1);
            double q2 = agn_now();
            rc |= agn_model_backward(&m, &b);
            rc |= ops->wait(&m, NULL);
            double q3 = agn_now();
            rc |= ops->norm(&m, m.grads, m.n_params, &norm);
            rc |= ops->wait(&m, NULL);
            agn_adam_args a = {.lr = agn_lr_at(&oc, step), .beta1 = oc.beta1, .beta2 = oc.beta2,
                               .eps = oc.eps, .weight_decay = oc.weight_decay,
                               .coef = agn_clip_coef(&oc, norm), .step = step};
            rc |= ops->adamw(&m, m.tensors, m.n_tensors, &a);
            rc |= ops->wait(&m, NULL);
            if (step >= warm) {
                phase[0] += q1 - q0;
                phase[1] += q2 - q1;
                phase[2] += q3 - q2;
                phase[3] += agn_now() - q3;
            }
        }
        if (rc != 0) {
            agn_warn_err();
            free(ids); free(labels); free(exi); free(perm);
            agn_model_free(&m);
            agn_dataset_free(&ds);
            return 1;
        }
    }
    double dt = agn_now() - t0;
    if (ops->host_memory) {
        double after = agn_peak_gflops((int)threads, 0.25);
        if (after > peak) peak = after;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("impl=agn backend=%s precision=%s config=%s mode=%s padding=%s threads=%ld batch=%ld "
           "steps=%ld samples_per_s=%.1f tokens_per_s=%.0f ms_per_step=%.2f peak_rss_mb=%.1f "
           "gflop_per_s=%.2f\n",
           ops->name, prec == AGN_PREC_BF16 ? "bf16" : "fp32", cname, infer ? "infer" : "train",
           dense ? "dense" : pad_to_max ? "max" : "dynamic", threads, batch, steps,
           (double)steps * batch / dt, tokens / dt, 1000.0 * dt / steps, ru.ru_maxrss / 1024.0,
           flop / dt / 1e9);
    if (peak > 0)
        printf("peak_gflop_per_s=%.1f peak_path=%s mfu_measured=%.3f\n", peak, agn_peak_path(),
               flop / dt / 1e9 / peak);
    if (getenv("AGN_BENCH_PHASES") && !infer)
        printf("phases_ms_per_step zero=%.2f forward=%.2f backward=%.2f adamw=%.2f "
               "(on a device: forward is the issue, backward the rest up to the wait)\n",
               1000 * phase[0] / steps, 1000 * phase[1] / steps, 1000 * phase[2] / steps,
               1000 * phase[3] / steps);
    free(ids); free(labels); free(exi); free(perm);
    agn_model_free(&m);
    agn_dataset_free(&ds);
    return 0;
bad:
    agn_warn_err();
    return 2;
}
