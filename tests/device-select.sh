#!/bin/sh
# device-select.sh: where agn-eval and agn-train compute when asked for a
# GPU on a machine or build without one: a clear error naming the reason
# (exit 1), never a silent fall back to the CPU; without the option, the CPU
# and the same report as --cpu.  On a machine with a GPU these expectations
# do not hold, and the GPU tests (tests/gpu) take over: skipped there.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    skip "a GPU is present: tests/gpu checks the device paths"
fi

$TRAIN -o run --max-steps 5 "$SH"
CK=run/last.safetensors

set +e
agn-eval -t 1 -g "$CK" "$VAL" >out 2>err
st=$?
set -e
assert_eq "$st" 1 "agn-eval -g without a GPU: exit status"
grep -Eq "CUDA backend is not built|no usable GPU" err || { cat err >&2; fail "agn-eval -g: no reason given"; }
[ -s out ] && fail "agn-eval -g wrote a report without a GPU"

set +e
agn-eval -t 1 -g --cpu "$CK" "$VAL" >out 2>err
st=$?
set -e
assert_eq "$st" 2 "agn-eval -g --cpu: exit status"

agn-eval -t 1 "$CK" "$VAL" >auto.txt
agn-eval -t 1 --cpu "$CK" "$VAL" >cpu.txt
cmp -s auto.txt cpu.txt || fail "agn-eval without -g differs from --cpu on a machine without a GPU"
ok "agn-eval: -g without a GPU is an error naming the reason; the default is the CPU"
