/* backend.h: where the model computes, chosen at run time behind one table
 * of operations, as the transport is (comm.h).  The trainer (train.c), the
 * sharded optimizer (zero.c), evaluation and checkpoints reach parameter,
 * gradient, moment and activation memory only through these operations, so
 * that the same trainer drives the CPU reference and the CUDA backend.
 *
 * Backends: "cpu" (model_cpu.c: fp32, BLAS, OpenMP; the numerical reference)
 * and "cuda" (model_cuda.cu, when configure found CUDA: cuBLASLt products,
 * own kernels, bf16 or fp32).
 *
 * Memory.  m->params, m->grads, m->adam_m and m->adam_v are [n_params]
 * floats each in the backend's memory (host for cpu, device for cuda),
 * carved by the one parameter table (model.h); a pointer into them plus a
 * count of elements is how every operation below names what it works on.
 * ops->host_memory says whether the host may touch them directly.
 *
 * Ordering.  Operations are issued in order and run in order on the
 * backend's compute stream; on the CPU each has finished when it returns.
 * Whatever lands in host memory (m->loss_sum, m->logits, *out of sumsq and
 * norm, to_host) is valid after ops->wait().  Every operation returns 0, or
 * -1 with a message (agn_seterr).
 *
 * Determinism.  Every reduction of a backend (sum of squares, the weight
 * gradients of the products, the embedding's row gradients) runs in a fixed
 * order that depends on neither timing nor, on the CPU, the thread count: no
 * floating-point atomics.  Two runs give the same bits on the same backend. */
#ifndef AGN_BACKEND_H
#define AGN_BACKEND_H

#include <stddef.h>
#include <stdint.h>

typedef struct agn_model agn_model;
typedef struct agn_batch agn_batch;
typedef struct agn_tensor agn_tensor;

/* A run of COUNT elements from OFFSET of one of the model's buffers. */
typedef struct {
    size_t offset, count;
} agn_span;

/* One AdamW step over a list of tensor pieces (optim.c has the formula):
 * the gradient is multiplied by COEF (the clipping factor; 1: none) as it
 * is read; the gradient buffer itself is left as it is. */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay, coef;
    long step; /* 0-based: bias correction uses t = step + 1 */
} agn_adam_args;

typedef struct {
    const char *name; /* "cpu", "cuda" */
    int host_memory;  /* the buffers are host memory the caller may touch */
    /* Allocates the model's buffers for its table, config and max_batch
     * (m->params, m->grads, the activations; the moments by alloc_optim),
     * parameters zero. */
    int (*create)(agn_model *m);
    void (*destroy)(agn_model *m);
    int (*alloc_optim)(agn_model *m); /* m->adam_m, m->adam_v, zeroed */
    /* Forward over batch B: logits into m->logits [B, C] (host) and the
     * summed cross-entropy into m->loss_sum (0 without labels), valid after
     * wait().  KEEP: keep what backward needs (training), else inference
     * (the layers share buffers). */
    int (*forward)(agn_model *m, const agn_batch *b, int keep);
    /* Backward of the last forward: ADDS into m->grads; calls
     * m->on_grad_ready as tensors' gradients are issued (model.h). */
    int (*backward)(agn_model *m, const agn_batch *b);
    /* Waits for everything issued; *compute_s (may be NULL) gets the
     * device time of the forward and backward passes since the last wait,
     * or -1 where the backend does not measure it (the CPU: the caller's
     * clock is the measure). */
    int (*wait)(agn_model *m, double *compute_s);
    /* buf[0 .. n) = 0 */
    int (*zero)(agn_model *m, float *buf, size_t n);
    /* *out += the sum of squares of the spans of BASE, span by span in
     * order (the sparse embedding and the shards of zero.c). */
    int (*sumsq)(agn_model *m, const float *base, const agn_span *spans, int n, double *out);
    /* *out = the L2 norm of buf[0 .. n), in fixed chunks (one rank). */
    int (*norm)(agn_model *m, const float *buf, size_t n, double *out);
    /* base[span] *= coef for every span */
    int (*scale)(agn_model *m, float *base, const agn_span *spans, int n, float coef);
    /* rows[i] of SRC (rows of DIM floats) to packed row i of DST (gather),
     * or packed row i of SRC to rows[i] of DST (scatter); ROWS is host.
     * SRC NULL with SCATTER: zeroes rows[i] of DST. */
    int (*rows)(agn_model *m, float *dst, const float *src, const int32_t *rows, size_t n,
                size_t dim, int scatter);
    /* AdamW over PIECES (offsets into params, grads and the moments;
     * decay as the tensor says). */
    int (*adamw)(agn_model *m, const agn_tensor *pieces, int n, const agn_adam_args *a);
    /* Copies between the backend's memory and the host. */
    int (*to_host)(agn_model *m, float *host, const float *src, size_t n);
    int (*from_host)(agn_model *m, float *dst, const float *host, size_t n);
    /* Memory where the backend computes (communication buffers). */
    void *(*alloc)(agn_model *m, size_t bytes);
    void (*release)(agn_model *m, void *p);
    /* May be NULL (the CPU): the stream (a cudaStream_t) everything the
     * backend issues runs on, in order; a transport on device memory orders
     * its collectives after it (agn_comm_set_stream). */
    void *(*stream)(agn_model *m);
} agn_backend_ops;

extern const agn_backend_ops agn_backend_cpu;
/* NULL when configure did not build the CUDA backend. */
extern const agn_backend_ops *const agn_backend_cuda;

/* The backend named NAME ("cpu", "cuda"), or NULL with a message saying
 * why it is not available. */
const agn_backend_ops *agn_backend_find(const char *name);

#endif
