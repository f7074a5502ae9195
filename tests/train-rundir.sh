#!/bin/sh
# train-rundir.sh: a run directory is one run's alone while it runs
# (agn-train(1), FILES): a second agn-train into it fails at once naming the
# holder's pid, with or without --force, and leaves the first run's files
# alone; the lock goes with the run.  Temporaries of checkpoints whose
# writer was killed (SIGKILL leaves them) are removed by the next run into
# the directory; those of a live process are not touched.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

marker=agn-train-rundir-$$
watch_leftovers "$marker"
R=run-$marker

# ---- two runs into one directory
AGN_TEST_SLOW_RANK=0 AGN_TEST_SLOW_MS=20 $TRAIN -b 7 -e 1 -o "$R" "$SH" 2>first.err &
first=$!
i=0
while [ ! -s "$R/steps.csv" ]; do
    i=$((i + 1)); [ "$i" -le 200 ] || fail "the first run did not start within 10 s"
    sleep 0.05
done
expect_fail 1 "^agn-train: $R: in use by another agn-train \(pid $first\)" $TRAIN -o "$R" "$SH"
expect_fail 1 "in use by another agn-train \(pid $first\)" $TRAIN -f -o "$R" "$SH"
wait "$first" || { cat first.err >&2; fail "the first run failed"; }
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
