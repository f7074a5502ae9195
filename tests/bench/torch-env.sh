# torch-env.sh: sourced by the benchmarks that run PyTorch (model.sh,
# ddp.sh), so that both measure it at its best the same way: OpenBLAS's
# OpenMP build, and jemalloc keeping the pages it frees (MALLOC_CONF
# dirty/muzzy_decay_ms:-1; with its defaults jemalloc hands them back and
# faults them in again every step: ~4x the page faults, ~30% slower).
# Sets TORCH_MALLOC_CONF (unless set; empty: jemalloc's defaults) and
# torch_env CMD...: runs CMD in that environment (agn loads the same
# OpenBLAS build: configure links it with a run path, and --version says
# what was loaded).  torch2_env CMD...: PyTorch 2.x from PyPI, which brings
# its own MKL: jemalloc only.
TORCH_MALLOC_CONF=${TORCH_MALLOC_CONF-dirty_decay_ms:-1,muzzy_decay_ms:-1}
torch_multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
torch_jemalloc=/usr/lib/$torch_multiarch/libjemalloc.so.2
[ -f "$torch_jemalloc" ] || { echo "torch-env.sh: $torch_jemalloc is missing (install libjemalloc2: tests/install-deps.sh --bench); PyTorch runs with glibc's malloc" >&2; torch_jemalloc=; }
torch_env() {
    LD_LIBRARY_PATH=/usr/lib/$torch_multiarch/openblas-openmp \
    LD_PRELOAD=$torch_jemalloc \
    MALLOC_CONF=$TORCH_MALLOC_CONF "$@"
}
torch2_env() {
    LD_PRELOAD=$torch_jemalloc MALLOC_CONF=$TORCH_MALLOC_CONF "$@"
}
