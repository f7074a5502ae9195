/* bench-cost.c: what an example of n tokens costs agn's CPU model to train
 * on, against the cost model that cuts the ranks' slices
 * (agn_train_cost: n (4D + 2F + 2n), the multiply-adds per unit of D of the
 * projections and of attention).  For n = 16, 32, ... max_len it times a
 * forward and backward pass over a batch of examples all n tokens long
 * (random ids; the best of R repeats), prints the time per token, and fits
 * time per token = a + b n by least squares: the attention weight the
 * measurement implies is w = (4D + 2F) b / a, against the 2 of the model.
 * For tests/bench/slice-cost.sh.
 *
 *   bench-cost [-c small|large] [-t THREADS] [-b BATCH] [-r REPEATS] */
#include "config.h"
#include "model.h"
#include "train.h"
#include "util.h"

#include <getopt.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    agn_set_progname("bench-cost");
    const char *cname = "small";
    long threads = 1, batch = 16, reps = 3;
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "c:t:b:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c': cname = optarg; break;
        case 't': if (agn_parse_long(optarg, 1, 1024, "-t", &threads)) return agn_usage_error("%s", agn_errmsg()); break;
        case 'b': if (agn_parse_long(optarg, 1, 4096, "-b", &batch)) return agn_usage_error("%s", agn_errmsg()); break;
        case 'r': if (agn_parse_long(optarg, 1, 1000, "-r", &reps)) return agn_usage_error("%s", agn_errmsg()); break;
        case 'h': puts("usage: bench-cost [-c small|large] [-t THREADS] [-b BATCH] [-r REPEATS]"); return 0;
        default: return agn_usage_error("bad option");
        }
    }
    agn_model_config cfg = {.vocab_size = 20000, .n_heads = 4, .n_classes = 4, .dropout = 0.1f};
    if (strcmp(cname, "small") == 0) {
        cfg.max_len = 128; cfg.d_model = 128; cfg.n_layers = 2; cfg.d_ff = 512;
    } else if (strcmp(cname, "large") == 0) {
        cfg.max_len = 256; cfg.d_model = 256; cfg.n_layers = 4; cfg.d_ff = 1024;
    } else {
        return agn_usage_error("-c: small or large, not '%s'", cname);
    }
#ifdef _OPENMP
    omp_set_num_threads((int)threads);
#endif
    agn_model m;
    if (agn_model_create(&m, &cfg, (int)batch) != 0) {
        agn_warn_err();
        return 1;
    }
    agn_model_init_weights(&m, 1);
    int T = cfg.max_len, B = (int)batch;
    int32_t *ids = agn_xcalloc((size_t)B * (size_t)T, sizeof *ids);
    int32_t *labels = agn_xcalloc((size_t)B, sizeof *labels);
    uint64_t *index = agn_xcalloc((size_t)B, sizeof *index), s = 12345;
    double sn = 0, sy = 0, snn = 0, sny = 0;
    int pts = 0;
    printf("%-6s %-12s %-14s %-14s\n", "n", "ms/batch", "us/token", "model cost/n");
    for (int n = 16; n <= T; n *= 2) {
        for (int b = 0; b < B; b++) {
            labels[b] = b % cfg.n_classes;
            index[b] = (uint64_t)b;
            for (int i = 0; i < n; i++) {
                s = agn_splitmix64(s);
                ids[(size_t)b * (size_t)n + (size_t)i] = 2 + (int32_t)(s % (uint64_t)(cfg.vocab_size - 2));
            }
        }
        agn_batch bt = {.B = B, .T = n, .ids = ids, .labels = labels, .example_index = index, .seed = 1,
                        .train = 1, .loss_scale = 1.0f / (float)B};
        double best = 1e30;
        for (long r = 0; r <= reps; r++) { /* the first is a warm-up */
            memset(m.grads, 0, m.n_params * sizeof(float));
            double t0 = agn_now();
            agn_model_forward(&m, &bt);
            agn_model_backward(&m, &bt);
            double t = agn_now() - t0;
            if (r > 0 && t < best) best = t;
        }
        double per = best * 1e6 / ((double)B * n);
        printf("%-6d %-12.3f %-14.3f %-14llu\n", n, best * 1e3, per,
               (unsigned long long)(agn_train_cost((uint64_t)n, cfg.d_model, cfg.d_ff) / (uint64_t)n));
        sn += n; sy += per; snn += (double)n * n; sny += n * per;
        pts++;
    }
    double bfit = (pts * sny - sn * sy) / (pts * snn - sn * sn), afit = (sy - bfit * sn) / pts;
    double P = 4.0 * cfg.d_model + 2.0 * cfg.d_ff;
    printf("fit: us/token = %.3f + %.5f n; attention weight measured %.2f, in agn_train_cost 2\n", afit, bfit,
           P * bfit / afit);
    free(ids);
    free(labels);
    free(index);
    agn_model_free(&m);
    return 0;
}
