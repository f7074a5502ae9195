#!/bin/sh
# pack-device.sh: run HERE (a build machine, no GPU needed) before the device
# check, because the GPU machine reaches no package registry and may lack
# libyaml, OpenBLAS, the autotools or the corpus.  It makes a release build
# of agn in build-dev/ with the programs of make check built but not run:
# --without-mpi (the GPU machine is one host and may have no libmpi) and
# --without-blas (OpenBLAS is 35 MB of the 64 MiB that may travel; the CPU
# runs there are the tiny comparisons of tests/gpu, agn's own loops do), and
# copies under .devcarry/ (added to the repository's info/exclude, so it
# never gets committed):
#   build/   the programs, the tests' programs and config.h, laid out as a
#            build directory (top_builddir for the tests);
#   lib/     every shared library they load that is neither glibc's nor
#            CUDA's own (the GPU machine has CUDA 13, its driver and NCCL);
#   data/    the corpus files the benchmark reads (train_sample, test).
# Then, with the device tool, from the checkout that travels:
#   run(command="sh tests/gpu/device-check.sh", carry=[".devcarry"], timeout_s=560)
set -eu
src=$(cd "$(dirname "$0")/../.." && pwd)
cd "$src"
data=${AGN_DATA:-$src/../shared/data/ag_news}
[ -f "$data/test.csv.gz" ] && [ -f "$data/train_sample.csv.gz" ] || { echo "pack-device.sh: no corpus in $data (set AGN_DATA)" >&2; exit 1; }
ex=$(git rev-parse --git-path info/exclude 2>/dev/null || echo .git/info/exclude)
case $ex in /*) ;; *) ex=$src/$ex ;; esac
mkdir -p "$(dirname "$ex")"
grep -qx '/.devcarry/' "$ex" 2>/dev/null || echo '/.devcarry/' >>"$ex"
grep -qx '/build-dev/' "$ex" 2>/dev/null || echo '/build-dev/' >>"$ex"

[ -x configure ] || autoreconf -fi
mkdir -p build-dev
opts="--without-mpi --without-blas"
[ "$(cat build-dev/.pack-opts 2>/dev/null)" = "$opts" ] || rm -f build-dev/Makefile
(cd build-dev && { [ -f Makefile ] || { ../configure -q $opts CFLAGS='-O2' && echo "$opts" >.pack-opts; }; } &&
    make -j"$(nproc)" >/dev/null && make -j"$(nproc)" check TESTS= >/dev/null)
grep -q '^#define HAVE_CUDA 1' build-dev/config.h || { echo "pack-device.sh: configure found no CUDA here: nothing to check on a GPU" >&2; exit 1; }

rm -rf .devcarry
mkdir -p .devcarry/build/tools .devcarry/build/tests/gpu .devcarry/lib .devcarry/data
cp build-dev/config.h .devcarry/build/
mkdir -p .devcarry/build/tests/bench
for f in build-dev/tools/agn-* build-dev/tests/st-diff build-dev/tests/t-backend build-dev/tests/t-tokenizer build-dev/tests/gpu/* build-dev/tests/bench/bench-model; do
    [ -f "$f" ] && [ -x "$f" ] || continue
    case $f in *.o) continue ;; esac
    cp "$f" ".devcarry/build/${f#build-dev/}"
done
for f in .devcarry/build/tools/* .devcarry/build/tests/st-diff .devcarry/build/tests/t-backend .devcarry/build/tests/t-tokenizer .devcarry/build/tests/gpu/* .devcarry/build/tests/bench/*; do
    [ -x "$f" ] && ldd "$f" 2>/dev/null
done | awk '/=> \// { print $3 }' | sort -u | while read -r l; do
    case $(basename "$l") in
    # glibc's, the compiler runtime's that every machine has in a newer
    # version (an older libstdc++ first on the path would break the GPU
    # machine's CUDA libraries), and CUDA's own
    libc.so* | libm.so* | libpthread.so* | libdl.so* | librt.so* | ld-linux* | libresolv.so* | \
        libstdc++.so* | libgcc_s.so* | \
        libcuda.so* | libnvidia* | libcudart.so* | libcublas.so* | libcublasLt.so* | libnccl.so*) ;;
    *) cp -L "$l" .devcarry/lib/ ;;
    esac
done
cp "$data/test.csv.gz" "$data/train_sample.csv.gz" .devcarry/data/
echo "pack-device.sh: .devcarry is $(du -sh .devcarry | cut -f1) (the limit for what travels is 64 MiB in all):"
ls .devcarry/build/tools .devcarry/build/tests/gpu .devcarry/lib | sed 's/^/  /'
