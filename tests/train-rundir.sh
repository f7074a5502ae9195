#!/bin/sh
# train-rundir.sh: a run directory is one run's alone while it runs
# (agn-train(1), FILES): a second agn-train into it fails at once naming the
# holder's pid, with or without --force, and leaves the first run's files
# alone; the lock goes with the run.  Temporaries of checkpoints whose
# writer was killed (SIGKILL leaves them) are removed by the next run into
# the directory; those of a live process are not touched.  A write error
# on steps.csv, metrics.csv or train.log stops the run, naming the file and
# the cause.  A kill right after a checkpoint, or between an epoch's metrics
# row and its checkpoint, then a resume: every epoch and logged step once.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

marker=agn-train-rundir-$$
watch_leftovers "$marker"
R=run-$marker

# ---- two runs into one directory
# the first run waits at step 3 (until a stop signal) while the others try
AGN_TEST_FAIL_RANK=0 AGN_TEST_FAIL_STEP=3 AGN_TEST_FAIL_MODE=sleep $TRAIN -b 7 -e 1 -o "$R" "$SH" 2>first.err &
first=$!
i=0
while [ ! -s "$R/steps.csv" ]; do
    i=$((i + 1)); [ "$i" -le 200 ] || fail "the first run did not start within 10 s"
    sleep 0.05
done
expect_fail 1 "^agn-train: $R: in use by another agn-train \(pid $first\)" $TRAIN -o "$R" "$SH"
expect_fail 1 "in use by another agn-train \(pid $first\)" $TRAIN -f -o "$R" "$SH"
kill -TERM "$first"
set +e; wait "$first"; st=$?; set -e
[ "$st" -eq 143 ] || { cat first.err >&2; fail "the first run: exit $st, expected 143 (stopped)"; }
[ "$(tail -n 1 "$R/metrics.csv" | cut -d, -f1)" = 1 ] || fail "the first run's metrics.csv lost its row"
agn-eval -t 1 "$R/last.safetensors" "$VAL" >/dev/null || fail "the first run's checkpoint"
$TRAIN -e 1 -f -o "$R" "$SH" || fail "the lock outlived the run"
no_leftovers "two runs"
ok "a second run into a run directory in use fails naming the holder's pid, with or without --force"

# ---- temporaries of killed writers
: > "$R/last.safetensors.tmp.2147483600.AbCdEf"
: > "$R/best.safetensors.tmp.2147483601.xyz123"
sleep 60 &
alive=$!
: > "$R/last.safetensors.tmp.$alive.QwErTy"
$TRAIN -e 2 -o "$R" --resume "$R/last.safetensors" "$SH" 2>resume.err || { cat resume.err >&2; fail "resume"; }
kill "$alive"
[ ! -e "$R/last.safetensors.tmp.2147483600.AbCdEf" ] && [ ! -e "$R/best.safetensors.tmp.2147483601.xyz123" ] ||
    fail "temporaries of dead processes kept: $(ls "$R")"
[ -e "$R/last.safetensors.tmp.$alive.QwErTy" ] || fail "the temporary of a live process was removed"
ok "temporaries of killed runs removed by the next run, a live process's kept"

# ---- write errors of the CSVs and the log (a full disk: /dev/full)
for f in steps.csv metrics.csv train.log; do
    rm -rf full && mkdir full && ln -s /dev/full "full/$f"
    expect_fail 1 "^agn-train: full/$f: No space left on device" $TRAIN -e 1 -f -o full "$SH"
done
ok "a write error on steps.csv, metrics.csv or train.log: exit 1 naming the file and the cause"

# ---- kills around the checkpoints, then resume
T2="$TRAIN -e 2 -b 32 --val $VAL"
$T2 -o ref "$SH"
cols() { # cols FILE COLUMNS...: those columns of the CSV, in order
    f=$1; shift
    awk -F, -v cols="$*" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; n = split(cols, k, " "); next }
        { s = ""; for (j = 1; j <= n; j++) s = s ((k[j] in c) ? $c[k[j]] : "") ","; print s }' "$f"
}
same_rows() { # same_rows DIR WHAT
    cols "$1/metrics.csv" epoch steps samples train_loss val_acc step > got.m
    cols ref/metrics.csv epoch steps samples train_loss val_acc step > want.m
    cmp -s got.m want.m || { diff got.m want.m >&2; fail "$2: metrics.csv"; }
    cols "$1/steps.csv" step epoch loss grad_norm > got.s
    cols ref/steps.csv step epoch loss grad_norm > want.s
    cmp -s got.s want.s || { diff got.s want.s >&2; fail "$2: steps.csv"; }
    "$STDIFF" --quiet ref/last.safetensors "$1/last.safetensors" >/dev/null || fail "$2: weights"
}
AGN_FAULT=trace $T2 -f -o tr "$SH" 2>trace.txt
# the call after epoch 1's checkpoint is renamed into place; epoch 2's
# checkpoint rename (its metrics row written, the checkpoint not yet)
after1=$(awk '$3 == "rename" && $5 ~ /last\.safetensors$/ { print $2 + 1; exit }' trace.txt)
before2=$(awk '$3 == "rename" && $5 ~ /last\.safetensors$/ { if (++k == 2) { print $2; exit } }' trace.txt)
[ -n "$after1" ] && [ -n "$before2" ] || fail "no checkpoint renames in the trace"
for n in $after1 $before2; do
    rm -rf k
    set +e; AGN_FAULT=kill:$n $T2 -o k "$SH" 2>/dev/null; st=$?; set -e
    assert_eq "$st" 137 "killed at call $n"
    $T2 -o k --resume k/last.safetensors "$SH" || fail "resume after the kill at call $n"
    same_rows k "killed at call $n, resumed"
done
ok "killed right after epoch 1's checkpoint, and between epoch 2's row and checkpoint: resumed, every epoch and step once"
