#!/bin/sh
# cross-aarch64.sh: builds agn for aarch64 (Arm servers, the CPUs of GPU
# nodes such as Grace Hopper) with Debian's cross toolchain and multiarch
# libraries, with warnings as errors (x86-only code must compile out
# cleanly), then runs the C unit tests and a short training run (tokenize,
# vocabulary, shard, two epochs of the tiny model on 2 threads, eval) under
# qemu-user.  Not part of make check: run it by hand from the top of the
# source tree, after autoreconf -fi.
#
#   sh tests/cross-aarch64.sh [--install] [BUILDDIR]   (default build-aarch64)
#
# --install (as root on Debian 12) adds the arm64 architecture and installs
# crossbuild-essential-arm64, qemu-user and the arm64 development packages
# of zlib, libyaml and OpenBLAS.  Without them it exits 77 and says what is
# missing.  The build has no MPI and no CUDA (neither is installed for
# arm64 here).  Exits 0 when every test passed or was skipped with a reason.
# On the 2-core development machine (busy) it took 7 min 13 s, 27 s of it
# building; most of the rest is the unit tests under emulation.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
triplet=aarch64-linux-gnu
pkgs="crossbuild-essential-arm64 qemu-user zlib1g-dev:arm64 libyaml-dev:arm64 libopenblas-dev:arm64 libopenblas-openmp-dev:arm64"
if [ "${1:-}" = --install ]; then
    shift
    dpkg --add-architecture arm64
    apt-get update -qq
    # shellcheck disable=SC2086
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs > /dev/null
fi
build=${1:-$top/build-aarch64}
for t in $triplet-gcc qemu-aarch64; do
    command -v $t > /dev/null || { echo "cross-aarch64.sh: $t is missing; install: $pkgs (or run with --install as root)" >&2; exit 77; }
done
for pc in zlib yaml-0.1 openblas; do
    [ -f /usr/lib/$triplet/pkgconfig/$pc.pc ] ||
        { echo "cross-aarch64.sh: no arm64 $pc.pc; install: $pkgs (or run with --install as root)" >&2; exit 77; }
done
[ -x "$top/configure" ] || { echo "cross-aarch64.sh: run autoreconf -fi first" >&2; exit 1; }

start=$(date +%s)
mkdir -p "$build"
cd "$build"
# pkg-config reads the arm64 .pc files only; no MPI, no CUDA, no PyTorch
PKG_CONFIG=pkg-config PKG_CONFIG_LIBDIR=/usr/lib/$triplet/pkgconfig:/usr/share/pkgconfig \
    "$top/configure" -q --host=$triplet --without-cuda --without-mpi --enable-werror TORCH_PYTHON=none
make -s -j"$(nproc)" all > make.log 2>&1 || { cat make.log >&2; echo "cross-aarch64.sh: the build failed" >&2; exit 1; }
make -s -j"$(nproc)" check TESTS= > make-check.log 2>&1 || { cat make-check.log >&2; echo "cross-aarch64.sh: building the tests failed" >&2; exit 1; }
file tools/agn-train | grep -q 'ARM aarch64' || { file tools/agn-train >&2; echo "cross-aarch64.sh: not an aarch64 binary" >&2; exit 1; }
built=$(date +%s)
echo "cross-aarch64.sh: built for $triplet in $((built - start)) s ($(sed -n 's/^#define AGN_BLAS_DESC "\(.*\)"/\1/p' config.h))"

# the aarch64 loader and libraries are the host's multiarch ones
run() { qemu-aarch64 "$@"; }
pass=0 failn=0 skipn=0
for t in tests/t-*; do
    case $t in *.o | *.log | *.trs) continue ;; esac
    [ -x "$t" ] || continue
    rc=0
    args=
    [ "$t" = tests/t-torchref ] && { mkdir -p tests/torchref.out; args=torchref.out; } # agn's side of the PyTorch cross-check
    # shellcheck disable=SC2086
    (cd tests && run "../$t" $args) > "$t.log" 2>&1 || rc=$?
    case $rc in
    0) pass=$((pass + 1)); echo "PASS: $t" ;;
    77) skipn=$((skipn + 1)); echo "SKIP: $t: $(tail -n 1 "$t.log")" ;;
    *) failn=$((failn + 1)); echo "FAIL: $t (exit $rc)"; tail -n 20 "$t.log" ;;
    esac
done

# a short training run, end to end (the synthetic corpus of the tests)
work=$(mktemp -d "${TMPDIR:-/tmp}/agn-cross.XXXXXX")
trap 'rm -rf "$work"' EXIT
T=$PWD/tools
(
    cd "$work"
    awk 'BEGIN { srand(3); split("world sports business tech", w, " ");
        for (i = 0; i < 400; i++) { c = i % 4; line = (c + 1) ",\"title " w[c + 1] "\",\"";
            for (j = 0; j < 12; j++) line = line (rand() < 0.3 ? w[c + 1] int(rand() * 5) : "filler" int(rand() * 30)) " ";
            print line "\"" } }' > train.csv
    run "$T/agn-tokenize" -q -o train.tok train.csv
    run "$T/agn-vocab" -q -o vocab.txt train.tok
    run "$T/agn-shard" -q -v vocab.txt -L 32 -o shards/train train.tok
    V=$(awk '!h && /^#/ { next } { h = 1; n++ } END { print n }' vocab.txt)
    run "$T/agn-train" -q -t 2 -c "$top/examples/tiny.yaml" -s model.vocab_size="$V" -v vocab.txt -o run shards/train-00000.agns
    run "$T/agn-eval" -t 2 run/last.safetensors shards/train-00000.agns > eval.txt
    run "$T/agn-train" --version > version.txt
) > "$build/train-run.log" 2>&1 && train_ok=1 || train_ok=0
if [ $train_ok = 1 ] && acc=$(sed -n 's/^accuracy *//p' "$work/eval.txt") &&
    awk -v a="$acc" 'BEGIN { exit !(a > 0.9) }'; then
    pass=$((pass + 1))
    echo "PASS: training run (tiny model, 2 threads): train accuracy $acc"
    sed -n 's/^\(cpu\|simd\|blas loaded\): /  \1: /p' "$work/version.txt"
else
    failn=$((failn + 1))
    echo "FAIL: training run"
    cat "$build/train-run.log" "$work/eval.txt" 2>/dev/null | tail -n 20
fi
echo "cross-aarch64.sh: $pass passed, $failn failed, $skipn skipped; $(( $(date +%s) - start )) s in all ($((built - start)) s building)"
[ $failn = 0 ]
