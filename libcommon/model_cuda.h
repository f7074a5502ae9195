/* model_cuda.h: what the CUDA backend (model_cuda.cu, agn_backend_cuda in
 * backend.h) offers besides the operations table, for the transport and
 * the tests.  Only meaningful on a model created on the "cuda" backend. */
#ifndef AGN_MODEL_CUDA_H
#define AGN_MODEL_CUDA_H

#include "model.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The model's compute stream (a cudaStream_t): everything the backend
 * issues runs on it in order, so a transport orders its collectives after
 * a gradient by recording an event on it (backend.h's stream op). */
void *agn_cuda_model_stream(const agn_model *m);
/* CUDA graphs on (1) or off (0) for this model; the default is on unless
 * the environment has AGN_CUDA_GRAPHS=0.  Turning them off drops the
 * captured graphs. */
void agn_cuda_model_set_graphs(agn_model *m, int on);
/* How many graphs were captured and how many launches replayed one, since
 * creation (tests: a second identical step must replay). */
void agn_cuda_model_graph_stats(const agn_model *m, int *captured, long *replayed);

#ifdef __cplusplus
}
#endif

#endif
