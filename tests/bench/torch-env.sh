# torch-env.sh: sourced by the benchmarks that run PyTorch (model.sh,
# ddp.sh), so that both measure it at its best the same way: OpenBLAS's
# OpenMP build, and jemalloc keeping the pages it frees (MALLOC_CONF
# dirty/muzzy_decay_ms:-1; with its defaults jemalloc hands them back and
# faults them in again every step: ~4x the page faults, ~30% slower).
# Sets TORCH_MALLOC_CONF (unless set; empty: jemalloc's defaults) and
# torch_env CMD...: runs CMD in that environment.
TORCH_MALLOC_CONF=${TORCH_MALLOC_CONF-dirty_decay_ms:-1,muzzy_decay_ms:-1}
torch_env() {
    LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp \
    LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2 \
    MALLOC_CONF=$TORCH_MALLOC_CONF "$@"
}
