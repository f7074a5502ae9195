/* st-diff: compares the tensors of two safetensors files (the metadata is
 * ignored: checkpoints carry a training position and a config that may
 * legitimately differ).  For each tensor of A it prints the largest relative
 * difference to the same tensor of B, max |a-b| / max(max |a|, tiny), and
 * fails when one exceeds --tol (default 0: the bytes must be identical) or
 * when the two files do not hold the same tensors with the same shapes.
 * --prefix P compares only tensors whose name starts with P; --params skips
 * the optimizer moments (optim.*).  Used by the resume and rank tests. */
#include "config.h"

#include "safetensors.h"
#include "util.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
    agn_set_progname(argv[0]);
    double tol = 0;
    int params_only = 0, quiet = 0;
    const char *prefix = "";
    int i = 1;
    for (; i < argc && argv[i][0] == '-' && argv[i][1] == '-'; i++) {
        if (strcmp(argv[i], "--tol") == 0 && i + 1 < argc) {
            if (agn_parse_double(argv[++i], 0, 1e30, "--tol", &tol) != 0) {
                agn_warn_err();
                return 2;
            }
        } else if (strcmp(argv[i], "--params") == 0) {
            params_only = 1;
        } else if (strcmp(argv[i], "--quiet") == 0) {
            quiet = 1;
        } else if (strcmp(argv[i], "--prefix") == 0 && i + 1 < argc) {
            prefix = argv[++i];
        } else {
            fprintf(stderr, "usage: st-diff [--tol X] [--params] [--prefix P] [--quiet] A B\n");
            return 2;
        }
    }
    if (argc - i != 2) {
        fprintf(stderr, "usage: st-diff [--tol X] [--params] [--prefix P] [--quiet] A B\n");
        return 2;
    }
    agn_st_file *a = agn_st_open(argv[i]), *b = a ? agn_st_open(argv[i + 1]) : NULL;
    if (!a || !b) {
        agn_warn_err();
        agn_st_close(a);
        return 2;
    }
    int bad = 0, compared = 0;
    double worst = 0;
    for (int k = 0; k < agn_st_count(a); k++) {
        const agn_st_tensor *ta = agn_st_tensor_at(a, k);
        if (strncmp(ta->name, prefix, strlen(prefix)) != 0) continue;
        if (params_only && strncmp(ta->name, "optim.", 6) == 0) continue;
        const agn_st_tensor *tb = agn_st_find(b, ta->name);
        if (!tb || tb->dtype != ta->dtype || tb->ndim != ta->ndim || tb->nbytes != ta->nbytes) {
            printf("%-40s missing or of another dtype/shape in %s\n", ta->name, argv[i + 1]);
            bad = 1;
            continue;
        }
        compared++;
        double rel;
        if (ta->dtype == AGN_ST_F32) {
            double maxd = 0, maxa = 0;
            for (size_t e = 0; e < ta->numel; e++) {
                float x, y;
                memcpy(&x, ta->data + 4 * e, 4);
                memcpy(&y, tb->data + 4 * e, 4);
                double d = fabs((double)x - (double)y);
                if (isnan(d)) d = INFINITY;
                if (d > maxd) maxd = d;
                if (fabs(x) > maxa) maxa = fabs(x);
            }
            rel = maxd / (maxa > 1e-30 ? maxa : 1e-30);
            if (tol == 0 && memcmp(ta->data, tb->data, ta->nbytes) != 0 && rel == 0) rel = 1e-300;
        } else {
            rel = memcmp(ta->data, tb->data, ta->nbytes) == 0 ? 0 : INFINITY;
        }
        if (rel > worst) worst = rel;
        int fail = tol == 0 ? memcmp(ta->data, tb->data, ta->nbytes) != 0 : rel > tol;
        if (fail) bad = 1;
        if (!quiet || fail) printf("%-40s max_rel_diff %.3e%s\n", ta->name, rel, fail ? "  FAIL" : "");
    }
    for (int k = 0; k < agn_st_count(b); k++) {
        const agn_st_tensor *tb = agn_st_tensor_at(b, k);
        if (strncmp(tb->name, prefix, strlen(prefix)) != 0) continue;
        if (params_only && strncmp(tb->name, "optim.", 6) == 0) continue;
        if (!agn_st_find(a, tb->name)) {
            printf("%-40s missing in %s\n", tb->name, argv[i]);
            bad = 1;
        }
    }
    if (compared == 0) {
        printf("no tensors compared\n");
        bad = 1;
    }
    printf("%d tensors, largest relative difference %.3e (%s)\n", compared, worst,
           tol == 0 ? "bytes must be identical" : "tolerance given");
    agn_st_close(a);
    agn_st_close(b);
    return bad;
}
