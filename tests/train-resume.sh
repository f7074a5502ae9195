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

# a run directory written by an agn-train with fewer CSV columns (before
# imbalance_s): resuming into it rewrites its CSVs with the current header,
# the old rows' missing fields empty, and agn-summarize reads the result
$T -o g --max-steps 58 "$SH"
for f in metrics steps; do
    awk -F, -v OFS=, '{ NF-- } 1' g/$f.csv > g/$f.old && mv g/$f.old g/$f.csv
done
head -n 1 g/steps.csv | grep -q 'imbalance_s' && fail "the test did not strip imbalance_s"
$T -o g --resume g/last.safetensors "$SH" 2>err || { cat err >&2; fail "resume into an older run directory"; }
assert_eq "$(head -n 1 g/metrics.csv)" "$(head -n 1 full/metrics.csv)" "migrated metrics.csv header"
assert_eq "$(head -n 1 g/steps.csv)" "$(head -n 1 full/steps.csv)" "migrated steps.csv header"
awk -F, 'NR == 1 { n = NF; next } NF != n { exit 1 } NR == 2 && $NF != "" { exit 1 } END { if ($NF == "") exit 1 }' g/metrics.csv ||
    { cat g/metrics.csv >&2; fail "migrated metrics.csv: fields per row, old rows' imbalance_s empty, new rows' set"; }
agn-summarize g >/dev/null 2>err || { cat err >&2; fail "agn-summarize on a migrated run"; }
# a header that is no prefix of the current one is refused, the file untouched
$T -o h --max-steps 58 "$SH"
sed '1s/^epoch,/epoch_number,/' h/metrics.csv > h/m && mv h/m h/metrics.csv
cp h/metrics.csv h/metrics.before
expect_fail 1 "metrics.csv:1: the header is not the one this agn-train writes" $T -o h --resume h/last.safetensors "$SH"
cmp -s h/metrics.csv h/metrics.before || fail "a refused metrics.csv was changed"
ok "resume into a run directory with fewer CSV columns migrates it; a foreign header is refused"
