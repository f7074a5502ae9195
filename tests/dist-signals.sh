#!/bin/sh
# dist-signals.sh: stop signals of a 2-rank job that are not the plain
# "one SIGTERM to the job" of dist-faults.sh (agn-train(1), SIGNALS):
#  - SIGTERM sent to one rank only: every rank stops after the same step,
#    the stop checkpoint is written, the job exits 143 as for a SIGTERM to
#    the job (it exited 1, "rank 1 exited with status 143");
#  - two SIGINTs 20 ms apart to the whole process group (a terminal's ^C,
#    pressed twice quickly): one request, so a clean stop with its
#    checkpoint and exit 130 (the second used to SIGKILL every rank).
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"
command -v setsid >/dev/null || skip "no setsid (util-linux)"
command -v perl >/dev/null || skip "no perl"

marker=agn-dist-signals-$$
watch_leftovers "$marker"
# ~25 ms a step, so that the signals land mid-epoch however fast the host
T="$TRAIN -b 7 -e 2 -n 2"
export AGN_TEST_SLOW_RANK=1 AGN_TEST_SLOW_MS=25

# children PID: the processes whose parent is PID
children() {
    for s in /proc/[0-9]*/stat; do
        awk -v p="$1" '{ sub(/^.*\) /, ""); if ($2 == p) { split(FILENAME, f, "/"); print f[3] } }' "$s" 2>/dev/null
    done
}
# wait_steps DIR N: until DIR/steps.csv has N rows (10 s at most)
wait_steps() {
    i=0
    while [ "$(cat "$1/steps.csv" 2>/dev/null | wc -l)" -le "$2" ]; do
        i=$((i + 1)); [ "$i" -le 200 ] || fail "no $2 logged steps in $1 within 10 s"
        sleep 0.05
    done
}
finish() { # finish PID: waits for it; sets $st
    set +e; wait "$1"; st=$?; set -e
}
stopped_cleanly() { # stopped_cleanly DIR WHAT
    grep -q "interrupted after" "$1/train.log" || { cat err >&2; fail "$2: no stop checkpoint (train.log)"; }
    agn-eval -t 1 "$1/last.safetensors" "$VAL" >/dev/null || fail "$2: the checkpoint is not readable"
    ! grep -q SIGKILL err || { cat err >&2; fail "$2: a rank was SIGKILLed"; }
    no_leftovers "$2"
}

# ---- SIGTERM to rank 1 only
$T -o "one-$marker" "$SH" >out 2>err &
job=$!
wait_steps "one-$marker" 3
ranks=$(children "$job")
[ "$(echo "$ranks" | wc -w)" -eq 2 ] || fail "expected 2 ranks under pid $job, found: $ranks"
kill -TERM "$(echo "$ranks" | sort -n | tail -n 1)"
finish "$job"
[ "$st" -eq 143 ] || { cat err >&2; fail "SIGTERM to one rank: exit $st, expected 143"; }
grep -q "stopped by SIGTERM" err || { cat err >&2; fail "SIGTERM to one rank: no 'stopped by SIGTERM'"; }
stopped_cleanly "one-$marker" "SIGTERM to one rank"
ok "SIGTERM to one rank: every rank stops, checkpoint written, exit 143"

# ---- ^C twice, 20 ms apart, to the process group
rm -f pgid
# shellcheck disable=SC2016
# (perl restores SIGINT, which a shell's background job starts with ignored)
setsid -w perl -e '$SIG{INT} = "DEFAULT"; open(F, ">pgid"); print F "$$\n"; close(F); exec @ARGV' \
    $T -o "twice-$marker" "$SH" >out 2>err &
job=$!
wait_steps "twice-$marker" 3
pg=$(cat pgid)
kill -INT "-$pg"
sleep 0.02
kill -INT "-$pg" 2>/dev/null || true
finish "$job"
[ "$st" -eq 130 ] || { cat err >&2; fail "^C twice: exit $st, expected 130"; }
stopped_cleanly "twice-$marker" "^C twice in 20 ms"
ok "^C twice in 20 ms: one request, a clean stop with its checkpoint, exit 130"
