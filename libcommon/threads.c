/* threads.c: agn_cpu_set_threads of device.h, apart from device.c and
 * blas.c so that what asks those about the CPU or the BLAS (every
 * program's --version) does not load OpenMP. */
#include "config.h"
#include "device.h"

#include "blas.h"

#ifdef _OPENMP
#include <omp.h>
#endif

void agn_cpu_set_threads(int n)
{
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    agn_blas_threads(n); /* one thread for OpenBLAS's pthread build, if that is what was loaded */
}
