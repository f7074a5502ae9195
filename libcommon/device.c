/* device.c: the CPU side of device.h (the cores this process may use, the
 * CPU's name), and the CUDA queries' stand-ins when agn is built without
 * CUDA. */
#define _GNU_SOURCE /* sched_getaffinity */
#include "config.h"
#include "device.h"
#include "util.h"

#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

#ifndef HAVE_CUDA
int agn_cuda_device_count(void) { return 0; }

const char *agn_cuda_device_name(int i, char *buf, int n)
{
    (void)i;
    snprintf(buf, (size_t)n, "none (agn was built without CUDA)");
    return buf;
}

#define NO_CUDA "agn was built without CUDA"
int agn_cuda_stream_create(int device, void **stream)
{
    (void)device;
    *stream = NULL;
    return agn_seterr(NO_CUDA);
}
void agn_cuda_stream_free(void *stream) { (void)stream; }
int agn_cuda_stream_sync(void *stream)
{
    (void)stream;
    return agn_seterr(NO_CUDA);
}
void *agn_cuda_malloc(size_t bytes)
{
    (void)bytes;
    agn_seterr(NO_CUDA);
    return NULL;
}
void agn_cuda_free(void *p) { (void)p; }
int agn_cuda_to_host(void *host, const void *dev, size_t bytes, void *stream)
{
    (void)host, (void)dev, (void)bytes, (void)stream;
    return agn_seterr(NO_CUDA);
}
int agn_cuda_from_host(void *dev, const void *host, size_t bytes, void *stream)
{
    (void)host, (void)dev, (void)bytes, (void)stream;
    return agn_seterr(NO_CUDA);
}
int agn_cuda_zero(void *dev, size_t bytes, void *stream)
{
    (void)dev, (void)bytes, (void)stream;
    return agn_seterr(NO_CUDA);
}
#endif
