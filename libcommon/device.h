/* device.h: what accelerators this process can see.  Compiled against CUDA
 * when configure found it (device_cuda.cu), else a CPU-only stub, so callers
 * never need an #ifdef to ask. */
#ifndef AGN_DEVICE_H
#define AGN_DEVICE_H

/* Number of CUDA devices usable by this process; 0 without CUDA, without a
 * driver, or without a GPU. */
int agn_cuda_device_count(void);
/* A one-line description of device I ("NVIDIA H200, 139 GiB, sm_90"), or of
 * the reason there is none; BUF of N bytes, returned. */
const char *agn_cuda_device_name(int i, char *buf, int n);

#endif
