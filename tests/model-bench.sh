#!/bin/sh
# model-bench.sh: the benchmark driver still runs (so tests/bench/model.sh
# does not rot between benchmark runs): a hand-written token stream, a
# vocabulary and a shard, then one training step of each padding mode and
# one inference pass of tests/bench/bench-model on the small config, each
# printing its key=value line with a positive throughput, and the FMA peak
# it measures beside its steps (peak.c) within bounds; --backend cuda
# runs where a GPU is and otherwise exits 1 naming the reason.
. "${top_srcdir:-.}/tests/setup.sh"
bench=$top_builddir/tests/bench/bench-model
[ -x "$bench" ] || skip "tests/bench/bench-model not built"
i=0
while [ $i -lt 40 ]; do
    printf '%d\tstocks rally as the fed cuts rates again %d\n' $((i % 4)) $i
    printf '%d\tthe team wins the final match in overtime\n' $(((i + 1) % 4))
    i=$((i + 1))
done > train.tok
agn-vocab < train.tok > vocab.txt 2>/dev/null
agn-shard -v vocab.txt -L 128 -o train < train.tok 2>/dev/null
for mode in "" --pad-to-max --dense --infer "--infer --dense"; do
    # shellcheck disable=SC2086
    "$bench" -c small -t 1 -s 1 -w 0 -b 8 $mode train-00000.agns > out.txt || fail "bench-model $mode failed"
    grep -Eq 'samples_per_s=[0-9]*[1-9]' out.txt || { cat out.txt; fail "bench-model $mode: no throughput"; }
    grep -Eq 'gflop_per_s=[0-9]*\.[0-9]*[1-9]' out.txt || { cat out.txt; fail "bench-model $mode: no model FLOP rate"; }
done
ok "bench-model runs in every mode"
# the measured peak beside the CPU figures (peak.c): a path, a rate no core
# can be below or above (0.5 to 400 GFLOP/s a thread: 64 FLOP a cycle at
# 6 GHz), and the utilisation against it
"$bench" -c small -t 1 -s 1 -w 0 -b 8 train-00000.agns > out.txt || fail "bench-model failed"
peak=$(sed -n 's/.*peak_gflop_per_s=\([0-9.]*\).*/\1/p' out.txt)
[ -n "$peak" ] || { cat out.txt; fail "bench-model: no measured peak"; }
awk -v p="$peak" 'BEGIN { exit !(p >= 0.5 && p <= 400) }' || { cat out.txt; fail "bench-model: measured peak $peak GFLOP/s a thread is not a processor's"; }
grep -Eq 'peak_path=(avx512|avx2|generic) mfu_measured=[0-9]*\.[0-9]*[1-9]' out.txt || { cat out.txt; fail "bench-model: no path or measured MFU"; }
ok "bench-model measures the FMA peak: $peak GFLOP/s on 1 thread ($(sed -n 's/.*peak_path=\([a-z0-9]*\).*/\1/p' out.txt))"
# --gemm: the four products of a block, forward and backward, a line each
"$bench" -c small -t 1 -b 8 --gemm train-00000.agns > out.txt || fail "bench-model --gemm failed"
[ "$(awk '/^gemm=(qkv|proj|fc1|fc2) dir=(forward|backward) / {
        for (i = 1; i <= NF; i++) if ($i ~ /^gflop_per_s=/ && substr($i, 13) + 0 > 0) n++ } END { print n + 0 }' out.txt)" = 8 ] ||
    { cat out.txt; fail "bench-model --gemm: not the 8 products with their rates"; }
ok "bench-model --gemm times the block's 8 products"
"$bench" -c small -t 1 -s 1 -w 0 -b 8 --backend cpu --precision fp32 train-00000.agns > out.txt ||
    fail "bench-model --backend cpu failed"
grep -q 'backend=cpu precision=fp32 ' out.txt || { cat out.txt; fail "bench-model: no backend in its line"; }
# the CUDA backend: a throughput where a GPU is, else exit 1 saying why
set +e
"$bench" -c small -s 1 -w 0 -b 8 --backend cuda train-00000.agns > out.txt 2> err.txt
rc=$?
set -e
if [ $rc -eq 0 ]; then
    grep -Eq 'backend=cuda precision=bf16 .*samples_per_s=[0-9]*[1-9]' out.txt ||
        { cat out.txt; fail "bench-model --backend cuda: no throughput"; }
    ok "bench-model runs on the CUDA backend"
else
    [ $rc -eq 1 ] || { cat err.txt >&2; fail "bench-model --backend cuda exited $rc, expected 0 or 1"; }
    grep -Eq 'CUDA (device|backend)' err.txt || { cat err.txt >&2; fail "bench-model --backend cuda: no reason given"; }
    ok "bench-model --backend cuda without a GPU: $(cat err.txt)"
fi
expect_fail 2 "no shards" "$bench" -c small
expect_fail 2 "small or large" "$bench" -c huge train-00000.agns
expect_fail 2 "fp32 or bf16" "$bench" --precision fp16 train-00000.agns
ok "bench-model usage errors"
