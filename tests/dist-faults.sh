#!/bin/sh
# dist-faults.sh: faults of a data-parallel agn-train job, each bounded in
# time.  Faults are injected inside a rank at a chosen step through
# AGN_TEST_FAIL_RANK/STEP/MODE (train.c) so that they land mid-epoch every
# time, however fast the machine:
#  - a rank killed with SIGKILL: exit 1 within 10 s naming the rank and the
#    signal, no process left, nothing new in /dev/shm, the last checkpoint
#    intact (agn-eval reads it, CRC included);
#  - a rank that raises an error: every rank stops, exit 1;
#  - SIGTERM / SIGINT sent to the job: every rank stops after the same step,
#    rank 0 checkpoints it, exit 143 / 130; resuming that checkpoint with
#    the same or another number of ranks ends with the weights of an
#    uninterrupted 1-rank run (largest relative difference <= 1e-5);
#  - a rank stuck before a collective: the others time out (--comm-timeout)
#    with a message naming it, exit 1.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

marker=agn-dist-faults-$$
T="$TRAIN -b 7 -e 2 --dropout 0.2 --eval-every 10 --val $VAL"
watch_leftovers "$marker"

# run NAME 'VAR=X ...' ARGS...: agn-train in run dir NAME-$marker with the
# fault variables; sets $st and $ms
run() {
    name=$1; vars=$2; shift 2
    t0=$(date +%s%N)
    set +e
    # shellcheck disable=SC2086
    timeout -k 5 30 env $vars $T "$@" -o "$name-$marker" "$SH" >out 2>err
    st=$?
    set -e
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}
diff_full() { # diff_full RUN WHAT: weights against the uninterrupted 1-rank run
    "$STDIFF" --tol 1e-5 full/last.safetensors "$1/last.safetensors" >diff.out ||
        { sed 's/^/#   /' diff.out; bad="$bad $2"; echo "not ok - $2: differs from the uninterrupted run by more than 1e-5"; return 0; }
    ok "$2: $(tail -n 1 diff.out)"
}
bad=

$T -o full "$SH"

# ---- a rank killed with SIGKILL in the middle of epoch 1
run kill 'AGN_TEST_FAIL_RANK=1 AGN_TEST_FAIL_STEP=30 AGN_TEST_FAIL_MODE=kill' -n 3
[ "$st" -eq 1 ] || { cat err >&2; fail "SIGKILL: exit $st, expected 1"; }
grep -Eq "rank 1 \(pid [0-9]+\) was killed by SIGKILL" err || { cat err >&2; fail "SIGKILL: no message naming rank 1 and the signal"; }
[ "$ms" -lt 10000 ] || fail "SIGKILL: the job took $ms ms"
no_leftovers "SIGKILL"
agn-eval -t 1 "kill-$marker/last.safetensors" "$VAL" >eval.out || fail "SIGKILL: the last checkpoint is not readable"
grep -q "^rank 0: step 20: val_loss" "kill-$marker/train.log" || fail "SIGKILL: no validation at step 20 in train.log"
ok "rank 1 SIGKILLed at step 30: exit 1 in $ms ms, no leftovers, last checkpoint (step 20) reads: $(grep -i accuracy eval.out | head -n 1)"

# ---- a rank that raises an error
run err 'AGN_TEST_FAIL_RANK=2 AGN_TEST_FAIL_STEP=20' -n 3
[ "$st" -eq 1 ] || { cat err >&2; fail "error: exit $st, expected 1"; }
grep -q "rank 2: step 20: failure injected" err || { cat err >&2; fail "error: rank 2's message is missing"; }
grep -Eq "rank 2 \(pid [0-9]+\) exited with status 1" err || { cat err >&2; fail "error: the supervisor does not name rank 2"; }
[ "$ms" -lt 10000 ] || fail "error: the job took $ms ms"
no_leftovers "error"
ok "rank 2 fails at step 20: all stop, exit 1 in $ms ms"

# ---- SIGTERM to the job (2 ranks), resumed with 2 and with 3 ranks
run term 'AGN_TEST_FAIL_RANK=1 AGN_TEST_FAIL_STEP=25 AGN_TEST_FAIL_MODE=sigterm' -n 2
[ "$st" -eq 143 ] || { cat err >&2; fail "SIGTERM: exit $st, expected 143"; }
grep -q "stopped by SIGTERM" err || { cat err >&2; fail "SIGTERM: no message"; }
no_leftovers "SIGTERM"
line=$(grep "interrupted after" "term-$marker/train.log") || fail "SIGTERM: train.log does not say where it stopped"
step=$(echo "$line" | sed 's/.*interrupted after \([0-9]*\) steps.*/\1/')
[ "$step" -ge 24 ] && [ "$step" -lt 116 ] || fail "SIGTERM: stopped after step $step"
agn-eval -t 1 "term-$marker/last.safetensors" "$VAL" >/dev/null || fail "SIGTERM: the checkpoint is not readable"
ok "SIGTERM at step 25: every rank stops after step $step, checkpoint written, exit 143 in $ms ms"
cp -r "term-$marker" term-copy
$T -n 2 -o "term-$marker" --resume "term-$marker/last.safetensors" "$SH"
diff_full "term-$marker" "SIGTERM, resumed with 2 ranks"
$T -n 3 -o resumed3 --resume term-copy/last.safetensors "$SH"
diff_full resumed3 "SIGTERM, resumed with 3 ranks"

# ---- SIGINT to the job (3 ranks), resumed with 1 rank
run int 'AGN_TEST_FAIL_RANK=0 AGN_TEST_FAIL_STEP=70 AGN_TEST_FAIL_MODE=sigint' -n 3
[ "$st" -eq 130 ] || { cat err >&2; fail "SIGINT: exit $st, expected 130"; }
no_leftovers "SIGINT"
step=$(sed -n 's/.*interrupted after \([0-9]*\) steps.*/\1/p' "int-$marker/train.log")
[ -n "$step" ] && [ "$step" -ge 69 ] || fail "SIGINT: stopped after step '$step'"
$T -o resumed1 --resume "int-$marker/last.safetensors" "$SH"
diff_full resumed1 "SIGINT after step $step (epoch 2), resumed with 1 rank"

# ---- SIGTERM to a single-rank run (no fork): the same stop
run one 'AGN_TEST_FAIL_RANK=0 AGN_TEST_FAIL_STEP=40 AGN_TEST_FAIL_MODE=sigterm' 
[ "$st" -eq 143 ] || { cat err >&2; fail "1 rank SIGTERM: exit $st, expected 143"; }
$T -o resumed-one --resume "one-$marker/last.safetensors" "$SH"
"$STDIFF" --quiet full/last.safetensors resumed-one/last.safetensors >diff.out || { cat diff.out >&2; fail "1 rank: stopped by SIGTERM and resumed differs"; }
ok "1 rank: SIGTERM, checkpoint, resume: identical to the uninterrupted run"

# ---- a stuck rank: the collective times out
run stuck 'AGN_TEST_FAIL_RANK=1 AGN_TEST_FAIL_STEP=10 AGN_TEST_FAIL_MODE=sleep' -n 3 --comm-timeout 1
[ "$st" -eq 1 ] || { cat err >&2; fail "stuck: exit $st, expected 1"; }
grep -q "timed out after 1 s waiting for rank(s) 1" err || { cat err >&2; fail "stuck: no timeout message naming rank 1"; }
[ "$ms" -lt 15000 ] || fail "stuck: the job took $ms ms"
no_leftovers "stuck"
ok "rank 1 stuck at step 10: $(grep -m 1 'timed out' err | sed 's/^agn-train: //'); exit 1 in $ms ms"

[ -z "$bad" ] || fail "weights differ from the uninterrupted run by more than 1e-5:$bad"
