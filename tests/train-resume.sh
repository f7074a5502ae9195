#!/bin/sh
# train-resume.sh: --resume continues exactly.  Runs stopped with --max-steps
# at an epoch boundary and in the middle of an epoch, then resumed, end with
# the same bytes in every tensor (weights and Adam moments) as an
# uninterrupted run, with dropout on and a partial last batch.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

# 403 examples in batches of 7: 58 steps per epoch, the last of 4; 3 epochs
T="$TRAIN -b 7 -e 3 --dropout 0.2 --val $VAL"
$T -o full "$SH"

# stopped at the end of epoch 1, resumed in the same run directory
$T -o a --max-steps 58 "$SH"
grep -q '^1,' a/metrics.csv || fail "no metrics row for epoch 1"
$T -o a --resume a/last.safetensors "$SH"
"$STDIFF" --quiet full/last.safetensors a/last.safetensors >diff.out || { cat diff.out >&2; fail "resume at an epoch boundary differs"; }
assert_eq "$(cut -d, -f1 a/metrics.csv | tr '\n' ' ')" "epoch 1 2 3 " "metrics rows after resume"
ok "resume at an epoch boundary: identical ($(tail -n 1 diff.out))"

# stopped in the middle of epoch 2, resumed into another directory, twice
$T -o b --max-steps 75 "$SH"
$T -o c --max-steps 140 --resume b/last.safetensors "$SH"
$T -o d --resume c/last.safetensors "$SH"
"$STDIFF" --quiet full/last.safetensors d/last.safetensors >diff.out || { cat diff.out >&2; fail "resume mid-epoch differs"; }
ok "resume in the middle of epochs: identical ($(tail -n 1 diff.out))"

# the best checkpoint holds no optimizer state and cannot be resumed
expect_fail 1 'no optimizer state' $T -o e --resume full/best.safetensors "$SH"
# a checkpoint of another model is refused
expect_fail 1 "model.d_model 16, the config 32" $T -s d_model=32 -o f --resume full/last.safetensors "$SH"
ok "resume refuses what it cannot continue"
