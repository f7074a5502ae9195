#!/bin/sh
# version.sh: --version of every program prints its name and version, then
# the build and the machine a bug report needs (buildinfo.h): compiler,
# OpenMP, the BLAS linked and the one loaded with its threading, the
# processor and the SIMD path of each kernel (which AGN_SIMD changes), MPI,
# CUDA, NCCL, GPUs.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "$top_builddir/config.h")
[ -n "$version" ] || fail "no PACKAGE_VERSION in config.h"
for p in agn-tokenize agn-vocab agn-shard agn-train agn-eval agn-summarize; do
    $p --version > out 2> err || fail "$p --version exited $?"
    [ -s err ] && { cat err >&2; fail "$p --version wrote to stderr"; }
    assert_eq "$(head -n 1 out)" "$p (agn) $version" "$p --version, first line"
    for key in compiler openmp "blas linked" "blas loaded" cpu simd mpi cuda nccl gpus; do
        grep -q "^$key: ." out || { cat out >&2; fail "$p --version has no '$key:' line"; }
    done
    grep -q WARNING out && { cat out >&2; fail "$p --version warns"; }
done
ok "--version of the six programs: name, version and ten lines of build and machine"

# what configure chose is what --version says was linked, and what
# agn-train loads (the others do no matrix products and load no BLAS)
agn-train --version > out
desc=$(sed -n 's/^#define AGN_BLAS_DESC "\(.*\)"$/\1/p' "$top_builddir/config.h")
assert_eq "$(sed -n 's/^blas linked: //p' out)" "$desc" "blas linked"
if grep -q '^#define AGN_BLAS_THREADING' "$top_builddir/config.h"; then
    want=$(sed -n 's/^#define AGN_BLAS_THREADING "\(.*\)"$/\1/p' "$top_builddir/config.h")
    grep -q "^blas loaded: .*, threading $want" out || { cat out >&2; fail "the BLAS loaded is not the $want build"; }
    dir=$(sed -n 's/^#define AGN_BLAS_LIBDIR "\(.*\)"$/\1/p' "$top_builddir/config.h")
    loaded=$(sed -n 's/^blas loaded: \([^,]*\),.*/\1/p' out)
    [ "$(cd "$(dirname "$loaded")" && pwd -P)" = "$(cd "$dir" && pwd -P)" ] ||
        fail "agn-train loaded $loaded, not from $dir"
    ok "the BLAS loaded is the $want build configure linked"
fi

# AGN_SIMD moves every kernel down to the path asked for
AGN_SIMD=scalar agn-tokenize --version > out
grep -q '^simd: .*AGN_SIMD=scalar; tokenizer scalar, AdamW scalar' out ||
    { cat out >&2; fail "AGN_SIMD=scalar: not every kernel on its scalar path"; }
AGN_SIMD=bogus agn-tokenize --version > out 2> err
grep -q "AGN_SIMD='bogus' is not one of scalar, sse2, avx2, avx512: ignored" err ||
    { cat err >&2; fail "AGN_SIMD=bogus: no warning"; }
ok "AGN_SIMD=scalar takes the scalar paths, an unknown AGN_SIMD is reported"
