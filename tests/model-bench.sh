#!/bin/sh
# model-bench.sh: the benchmark driver still runs (so tests/bench/model.sh
# does not rot between benchmark runs): a hand-written token stream, a
# vocabulary and a shard, then one training step of each padding mode and
# one inference pass of tests/bench/bench-model on the small config, each
# printing its key=value line with a positive throughput.
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
done
ok "bench-model runs in every mode"
expect_fail 2 "no shards" "$bench" -c small
expect_fail 2 "small or large" "$bench" -c huge train-00000.agns
ok "bench-model usage errors"
