/* comm-input.h: the inputs of the collective tests (t-comm, t-gpucomm):
 * values of widely different magnitudes, so that the order of a sum
 * changes the rounded result and a wrong order is caught.  Value i of
 * rank RANK for the test case SALT, from agn's counter hash. */
#ifndef AGN_TESTS_COMM_INPUT_H
#define AGN_TESTS_COMM_INPUT_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "rng.h"

static inline double comm_test_input(int rank, size_t i, uint64_t salt)
{
    uint64_t h = agn_mix64(salt * 0x9e3779b97f4a7c15ULL ^ ((uint64_t)rank << 48) ^ i);
    double u = (double)(h >> 11) / 9007199254740992.0 * 2 - 1;
    return ldexp(u, (int)(h % 24) - 12);
}

#endif
