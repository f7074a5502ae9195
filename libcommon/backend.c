/* backend.c: finding a backend by name (backend.h). */
#include "config.h"
#include "backend.h"
#include "util.h"

#include <string.h>

#ifdef AGN_CUDA_BACKEND
extern const agn_backend_ops agn_backend_cuda_ops;
const agn_backend_ops *const agn_backend_cuda = &agn_backend_cuda_ops;
#else
const agn_backend_ops *const agn_backend_cuda = NULL;
#endif

const agn_backend_ops *agn_backend_find(const char *name)
{
    if (strcmp(name, "cpu") == 0) return &agn_backend_cpu;
    if (strcmp(name, "cuda") == 0) {
        if (agn_backend_cuda) return agn_backend_cuda;
        agn_seterr("the CUDA backend is not built (configure found no CUDA toolkit with cuBLASLt)");
        return NULL;
    }
    agn_seterr("no backend '%s' (cpu, cuda)", name);
    return NULL;
}
