#!/bin/sh
# train-gpu-cli.sh: agn-train's GPU options where no GPU is usable (CI, this
# machine): -g N exits 1 naming the reason (no CUDA backend in the build, or
# no usable GPU and why) without touching the run directory; the option
# combinations that make no sense are usage errors (2); without -g, -n or
# --cpu training falls back to the CPU and says why; under mpirun, -g must
# match the number of processes.  On a machine with a GPU the no-GPU cases
# skip (tests/gpu/ covers it there).
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

expect_fail 2 'transport is for GPU ranks' $TRAIN -o r --transport local "$SH"
expect_fail 2 "wire is for GPU ranks" $TRAIN -o r --wire bf16 "$SH"
expect_fail 2 "--wire: 'fp16' is not fp32 or bf16" $TRAIN_ANY -o r -g 2 --wire fp16 "$SH"
expect_fail 2 "--transport: 'gloo' is not nccl or local" $TRAIN_ANY -o r -g 2 --transport gloo "$SH"
expect_fail 2 "wire bf16 is NCCL's" $TRAIN_ANY -o r -g 2 --transport local --wire bf16 "$SH"
expect_fail 2 'exclude each other' $TRAIN_ANY -o r -g 2 -n 2 "$SH"
expect_fail 2 'exclude each other' $TRAIN_ANY -o r -g 1 --cpu "$SH"
[ ! -e r ] || fail "a usage error created the run directory"
ok "usage errors: --transport/--wire without -g, bad values, -g with -n/--cpu"

if [ -e /dev/nvidiactl ]; then
    echo "# a GPU driver is present: the no-GPU cases are tests/gpu/'s"
else
    why='(the CUDA backend is not built|no usable GPU: none \(.+\))'
    for g in 1 2 4; do
        expect_fail 1 "^agn-train: -g $g: $why" $TRAIN_ANY -o r -g "$g" "$SH"
        expect_fail 1 "^agn-train: -g $g: $why" $TRAIN_ANY -o r -g "$g" --transport local "$SH"
    done
    [ ! -e r ] || fail "a failed -g created the run directory"
    ok "-g 1/2/4 without a usable GPU: exit 1, $(sed 's/^agn-train: -g 4: //' "$tmp/.err" | cut -c1-60)"

    agn-train -t 1 -c "$CFG" -s model.vocab_size="$V" -o run -e 1 "$SH" 2>err || { cat err >&2; fail "default run"; }
    grep -Eq '^agn-train: training on the CPU \(1 threads\): (this build has no CUDA backend|no usable GPU: .+)$' err ||
        { cat err >&2; fail "the fallback to the CPU does not say why"; }
    assert_eq "$(awk -F, 'NR == 2 { print $3 }' run/metrics.csv)" cpu "backend of the default run"
    ok "no flag: the CPU, saying why ($(sed -n 's/^agn-train: training on the CPU (1 threads): //p' err))"
    agn-train -t 1 -c "$CFG" -s model.vocab_size="$V" -o run2 -e 1 -n 2 "$SH" 2>err || { cat err >&2; fail "-n 2"; }
    grep -q '^agn-train: training on the CPU (1 threads): -n gives CPU ranks' err || { cat err >&2; fail "-n 2: no reason"; }
    $TRAIN -o run3 -e 1 "$SH" 2>err || fail "--cpu"
    ! grep -q 'training on' err || fail "--cpu still explains the CPU"
    ok "-n 2 says CPU ranks; --cpu says nothing"
fi

if grep -q '^#define HAVE_MPI 1' "$top_builddir/config.h" && command -v "${MPIRUN:-mpirun}" >/dev/null; then
    need_mpi
    set +e
    mpirun -np 2 agn-train -q -t 1 -c "$CFG" -s model.vocab_size="$V" -o rm -g 3 "$SH" >out 2>err
    st=$?
    set -e
    [ "$st" -ne 0 ] || fail "mpirun -np 2 agn-train -g 3 exited 0"
    grep -q -- '-g 3, but mpirun/srun started 2 processes' err || { cat err >&2; fail "-g 3 under mpirun -np 2: no message"; }
    ok "mpirun -np 2 with -g 3: refused, naming both counts"
fi
