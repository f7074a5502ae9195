/* t-commbench.c: the definitions of agn-bench-comm against values computed
 * by hand from nccl-tests' formulas (doc/PERFORMANCE.md of nccl-tests:
 * algbw = S / t; busbw = algbw * 2(n-1)/n for all-reduce, (n-1)/n for
 * reduce-scatter and all-gather, 1 for broadcast), the parsing of the
 * collectives' names, and the check's inputs: integers whose sums are exact
 * in float in any order. */
#include "config.h"
#include "commbench.h"
#include "util.h"

#include <math.h>
#include <stdio.h>

static int failures;

#define CHECK(cond, ...)                                             \
    do {                                                             \
        if (!(cond)) {                                               \
            fprintf(stderr, "t-commbench: %s:%d: ", __FILE__, __LINE__); \
            fprintf(stderr, __VA_ARGS__);                            \
            fputc('\n', stderr);                                     \
            failures++;                                              \
        }                                                            \
    } while (0)

static void bw(agn_bench_op op, int w, double bytes, double sec, double want_alg, double want_bus)
{
    double alg, bus;
    agn_bench_bandwidth(op, w, bytes, sec, &alg, &bus);
    CHECK(fabs(alg - want_alg) <= 1e-12 * want_alg, "%s W=%d %.0f B in %g s: algbw %.15g, expected %.15g",
          agn_bench_op_name(op), w, bytes, sec, alg, want_alg);
    CHECK(fabs(bus - want_bus) <= 1e-12 * (want_bus > 0 ? want_bus : 1),
          "%s W=%d %.0f B in %g s: busbw %.15g, expected %.15g", agn_bench_op_name(op), w, bytes, sec,
          bus, want_bus);
}

int main(void)
{
    /* 1 MiB all-reduced by 4 ranks in 1 ms: 1.048576 GB/s, x 6/4 */
    bw(AGN_BENCH_ALLREDUCE, 4, 1048576, 1e-3, 1.048576, 1.572864);
    /* 8 ranks: the factor nccl-tests' PERFORMANCE.md works through, 1.75 */
    bw(AGN_BENCH_ALLREDUCE, 8, 256e6, 0.1, 2.56, 4.48);
    /* 2 ranks: factor 1; 1 rank: 0 (no traffic) */
    bw(AGN_BENCH_ALLREDUCE, 2, 64e3, 32e-6, 2.0, 2.0);
    bw(AGN_BENCH_ALLREDUCE, 1, 64e3, 32e-6, 2.0, 0.0);
    bw(AGN_BENCH_REDUCE_SCATTER, 3, 3e6, 2e-3, 1.5, 1.0);
    bw(AGN_BENCH_ALLGATHER, 8, 8e9, 1.0, 8.0, 7.0);
    bw(AGN_BENCH_BROADCAST, 5, 5e8, 0.5, 1.0, 1.0);
    CHECK(agn_bench_bus_factor(AGN_BENCH_ALLREDUCE, 3) == 4.0 / 3, "all-reduce factor at 3");
    CHECK(agn_bench_bus_factor(AGN_BENCH_ALLGATHER, 4) == 0.75, "all-gather factor at 4");

    /* names round-trip; anything else is refused */
    for (int i = 0; i < AGN_BENCH_N_OPS; i++) {
        agn_bench_op op;
        CHECK(agn_bench_op_parse(agn_bench_op_name((agn_bench_op)i), &op) == 0 && (int)op == i,
              "op %d does not parse back", i);
    }
    agn_bench_op op;
    CHECK(agn_bench_op_parse("allreduce", &op) == -1, "'allreduce' accepted");
    CHECK(agn_bench_op_parse("", &op) == -1, "'' accepted");

    /* inputs: integers in [-1024, 1024], differing between ranks, and sums
     * of 3 of them the same in float whichever order */
    long differ = 0, lo = 0, hi = 0;
    for (size_t i = 0; i < 100000; i++) {
        double a = agn_bench_input(0, i, 7), b = agn_bench_input(1, i, 7), c = agn_bench_input(2, i, 7);
        CHECK(a == floor(a) && a >= -1024 && a <= 1024, "input(0, %zu) = %g", i, a);
        if (a != b) differ++;
        if (a == -1024) lo++;
        if (a == 1024) hi++;
        float f1 = ((float)a + (float)b) + (float)c, f2 = ((float)c + (float)b) + (float)a;
        CHECK(f1 == f2 && f1 == a + b + c, "sum at %zu depends on order", i);
        CHECK(agn_bench_input(0, i, 8) != a || agn_bench_input(0, i + 1, 8) != agn_bench_input(0, i + 1, 7),
              "the salt changes nothing at %zu", i);
    }
    CHECK(differ > 99000, "ranks 0 and 1 differ at %ld of 100000 indices only", differ);
    CHECK(lo > 0 && hi > 0, "the range's ends never occur (%ld, %ld)", lo, hi);
    if (failures) {
        fprintf(stderr, "t-commbench: %d failure%s\n", failures, failures == 1 ? "" : "s");
        return 1;
    }
    printf("ok - t-commbench: bandwidth definitions, names, check inputs\n");
    return 0;
}
