#!/bin/sh
# train.sh: agn-train on a small synthetic corpus: the run directory and its
# formats, learning, determinism, the config written back, --max-examples
# and the partial last batch, padding to the batch or to max_len.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

$TRAIN -o run1 --val "$VAL" "$SH" 2>err || { cat err >&2; fail "agn-train failed"; }
for f in config.yaml metrics.csv steps.csv train.log last.safetensors best.safetensors; do
    [ -s "run1/$f" ] || fail "run1/$f missing or empty"
done
ls run1 | grep -q tmp && fail "a temporary file was left in the run directory"
ok "run directory complete"

assert_eq "$(head -n 1 run1/metrics.csv)" \
    "epoch,world_size,backend,transport,device,threads,config,params,global_batch,train_examples,data_id,steps,samples,tokens,epoch_time_s,compute_s,comm_s,optim_s,data_s,samples_per_s,tokens_per_s,train_loss,val_loss,val_acc,val_f1,lr,imbalance_s,step" \
    "metrics.csv header"
assert_eq "$(head -n 1 run1/steps.csv)" "step,epoch,samples,loss,lr,grad_norm,step_time_s,compute_s,comm_s,optim_s,data_s,imbalance_s" \
    "steps.csv header"
# tiny.yaml: 2 epochs of batch 8 over 403 examples: 51 steps each, the last of 3
assert_eq "$(awk -F, 'NR > 1' run1/metrics.csv | wc -l | tr -d ' ')" 2 "metrics rows"
awk -F, 'NR > 1 { if ($1 != NR - 1 || $2 != 1 || $3 != "cpu" || $4 != "none" || $6 != 1 || $7 != "tiny" ||
                      $9 != 8 || $10 != 403 || $12 != 51 || $13 != 403 || length($11) != 8 || $11 ~ /[^0-9a-f]/) exit 1 }' run1/metrics.csv ||
    { cat run1/metrics.csv >&2; fail "metrics.csv rows"; }
# the tokens column is the sum of the example lengths (every one under max_len 32)
tokens=$(awk -F'\t' '{ n += split($2, a, " ") } END { print n }' train.tok)
assert_eq "$(awk -F, 'NR == 2 { print $14 }' run1/metrics.csv)" "$tokens" "tokens per epoch"
# the loss falls and the model learns the synthetic task
awk -F, 'NR == 2 { l1 = $22 } NR == 3 { l2 = $22; acc = $24 } END { exit !(l2 < l1 && acc > 0.85) }' run1/metrics.csv ||
    { cat run1/metrics.csv >&2; fail "the model did not learn"; }
# steps.csv: every 5th step (log_every) plus each epoch's last; samples add up
last=$(tail -n 1 run1/steps.csv)
assert_eq "$(echo "$last" | cut -d, -f1-3)" "102,2,806" "last steps.csv row"
ok "metrics.csv and steps.csv"

# config.yaml holds the resolved config (the override included) and a run: section
grep -q "^  vocab_size: $V\$" run1/config.yaml || fail "config.yaml lacks the overridden vocab_size"
grep -q '^run:' run1/config.yaml || fail "config.yaml lacks the run: section"
grep -q '^  world_size: 1$' run1/config.yaml || fail "config.yaml lacks world_size"
# ... and feeds back: the same run from it gives the same weights
agn-train -q -t 1 -c run1/config.yaml -o run1b --val "$VAL" "$SH"
"$STDIFF" --quiet run1/last.safetensors run1b/last.safetensors >diff.out || { cat diff.out >&2; fail "config.yaml does not reproduce the run"; }
assert_eq "$(awk -F, 'NR == 2 { print $7 }' run1b/metrics.csv)" tiny "config name kept from the run: section"
ok "config.yaml reproduces the run"

# determinism: the same seed gives the same bytes, another seed other weights
$TRAIN -o run2 --val "$VAL" "$SH"
"$STDIFF" --quiet run1/last.safetensors run2/last.safetensors >diff.out || { cat diff.out >&2; fail "two runs with one seed differ"; }
$TRAIN -o run3 --seed 2 "$SH"
"$STDIFF" --quiet --params run1/last.safetensors run3/last.safetensors >/dev/null && fail "seed 2 gave the weights of seed 1"
# ... also with two threads (the thread count is part of the promise)
$TRAIN -o run2t -t 2 "$SH"
$TRAIN -o run2u -t 2 "$SH"
"$STDIFF" --quiet run2t/last.safetensors run2u/last.safetensors >diff.out || { cat diff.out >&2; fail "two 2-thread runs differ"; }
ok "deterministic for a seed"

# --max-examples: a prefix of each epoch's order; partial last batch kept
$TRAIN -o run4 --max-examples 50 -b 7 -e 1 "$SH"
assert_eq "$(awk -F, 'NR == 2 { print $10 "," $12 "," $13 }' run4/metrics.csv)" "50,8,50" "max-examples 50, batch 7"
ok "--max-examples and the partial last batch"

# padding to max_len computes the same function: the same loss and weights up
# to rounding
$TRAIN -o run5 --pad-to-max --val "$VAL" "$SH"
"$STDIFF" --tol 1e-4 --params --quiet run1/last.safetensors run5/last.safetensors >diff.out ||
    { cat diff.out >&2; fail "--pad-to-max changed the result"; }
paste -d, run1/steps.csv run5/steps.csv | awk -F, 'NR > 1 { d = $4 - $(4 + NF / 2); if (d < 0) d = -d; if (d > 1e-4 * $4) exit 1 }' ||
    fail "--pad-to-max changed the losses"
ok "padding to the batch and to max_len agree ($(tail -n 1 diff.out))"

# a previous run is not overwritten without --force
expect_fail 1 'holds a previous run' $TRAIN -o run1 "$SH"
$TRAIN -o run1 --force -e 1 "$SH"
assert_eq "$(awk -F, 'NR > 1' run1/metrics.csv | wc -l | tr -d ' ')" 1 "rows after --force"
[ -e run1/best.safetensors ] && fail "--force kept the old best.safetensors (no validation this time)"
ok "--force"

# -g with no GPU here (or no CUDA backend built) says which and why
expect_fail 1 'no usable GPU: none \(.+\)|CUDA backend is not built' $TRAIN_ANY -o run6 -g 1 "$SH"
