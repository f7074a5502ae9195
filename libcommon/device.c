/* device.c: the CPU-only side of device.h, used when agn is built without
 * CUDA. */
#include "config.h"
#include "device.h"

#include <stdio.h>

#ifndef HAVE_CUDA
int agn_cuda_device_count(void) { return 0; }

const char *agn_cuda_device_name(int i, char *buf, int n)
{
    (void)i;
    snprintf(buf, (size_t)n, "none (agn was built without CUDA)");
    return buf;
}
#endif
