#!/bin/sh
# train-nan.sh: a NaN or infinite loss stops the run with a message naming
# the step, exit 1, and leaves the last good checkpoint in place.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

# 51 steps per epoch: a NaN injected at step 60 (AGN_TEST_NAN_STEP, for tests)
export AGN_TEST_NAN_STEP=60
expect_fail 1 'step 60 \(epoch 2\): the loss is NaN' $TRAIN -o nan "$SH"
unset AGN_TEST_NAN_STEP
grep -q 'nan/last.safetensors' .err || fail "the message does not name the last checkpoint"
# the checkpoint left is the one of the end of epoch 1, intact
$TRAIN -o ref --max-steps 51 "$SH"
"$STDIFF" --quiet ref/last.safetensors nan/last.safetensors >diff.out || { cat diff.out >&2; fail "last.safetensors is not the epoch-1 one"; }
ls nan | grep -q tmp && fail "a temporary file was left behind"
ok "injected NaN: stopped at step 60, epoch-1 checkpoint intact"

# an absurd learning rate blows the weights up for real
expect_fail 1 'step [0-9]+ \(epoch 1\): the (loss|gradient norm) is (NaN|infinite)' $TRAIN -o lr --lr 1e9 -s grad_clip=0 "$SH"
ok "absurd learning rate: stopped with the step named"
