#!/bin/sh
# dist-launch.sh: the launcher's faults, with `t-comm --serve N` standing in
# for the trainer (ranks all-reduce in a loop and agree to stop):
#  - a rank killed with SIGKILL: the job exits 1 within 10 s naming the rank
#    and the signal; no process left; nothing left in /dev/shm;
#  - a rank that fails (exits 1): the others are stopped, the job exits 1;
#  - SIGTERM / SIGINT to the supervisor: every rank stops, status 143 / 130;
#  - the supervisor killed with SIGKILL: no rank outlives it.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

tc=$top_builddir/tests/t-comm
marker=agn-dist-launch-$$
watch_leftovers "$marker"

# wait_file FILE: up to 10 s
wait_file() {
    i=0
    while [ ! -s "$1" ]; do
        i=$((i + 1)); [ "$i" -le 200 ] || { cat err >&2; fail "$1 never appeared"; }
        kill -0 "$job" 2>/dev/null || { cat err >&2; fail "the job ended before writing $1"; }
        sleep 0.05
    done
}
# start ARGS...: t-comm --serve in the background, pid in $job
start() {
    rm -f rank-*.pid
    # `env --default-signal`: a background job of a script starts with SIGINT
    # ignored, and the launcher keeps an inherited "ignore"
    env --default-signal=INT "$tc" --serve "$@" --marker "$marker" >out 2>err &
    job=$!
}
# finish: waits for $job (30 s at most), sets $st and $ms (milliseconds
# since $t0)
finish() {
    i=0
    while kill -0 "$job" 2>/dev/null; do
        i=$((i + 1))
        [ "$i" -le 600 ] || { kill -KILL "$job"; fail "the job did not end within 30 s"; }
        sleep 0.05
    done
    set +e; wait "$job"; st=$?; set -e
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
}

# a rank killed with SIGKILL
start 3
wait_file rank-1.pid; wait_file rank-0.pid; wait_file rank-2.pid
sleep 0.2
t0=$(date +%s%N)
kill -KILL "$(cat rank-1.pid)"
finish
[ "$st" -eq 1 ] || { cat err >&2; fail "rank killed: status $st, expected 1"; }
grep -Eq "rank 1 \(pid [0-9]+\) was killed by SIGKILL" err || { cat err >&2; fail "rank killed: no message naming rank 1 and SIGKILL"; }
[ "$ms" -lt 10000 ] || fail "rank killed: the job took $ms ms"
no_leftovers "rank killed"
ok "rank 1 SIGKILLed: exit 1 after $ms ms: $(grep 'SIGKILL' err | head -n 1)"

# a rank that fails on its own
t0=$(date +%s%N)
start 3 --fail-rank 2 --fail-after 30
finish
[ "$st" -eq 1 ] || { cat err >&2; fail "failing rank: status $st"; }
grep -Eq "rank 2 \(pid [0-9]+\) exited with status 1" err || { cat err >&2; fail "failing rank: no message naming rank 2"; }
grep -q "injected failure" err || fail "failing rank: its own message is missing"
[ "$ms" -lt 10000 ] || fail "failing rank: the job took $ms ms"
no_leftovers "failing rank"
ok "rank 2 exits 1: the job stops, exit 1 after $ms ms"

# SIGTERM and SIGINT to the supervisor
for sig in TERM INT; do
    start 2
    wait_file rank-0.pid; wait_file rank-1.pid
    sleep 0.2
    t0=$(date +%s%N)
    kill -"$sig" "$job"
    finish
    want=143; [ "$sig" = INT ] && want=130
    [ "$st" -eq "$want" ] || { cat err >&2; fail "SIG$sig: status $st, expected $want"; }
    grep -q "stopped at iteration" out || fail "SIG$sig: rank 0 did not stop at an iteration boundary"
    grep -q "stopped by SIG$sig" err || { cat err >&2; fail "SIG$sig: no message"; }
    no_leftovers "SIG$sig"
    ok "SIG$sig to the supervisor: ranks stop together, exit $st after $ms ms"
done

# ^C at a terminal: SIGINT to the whole process group, supervisor and ranks
# at once (each rank then sees it twice: from the terminal and forwarded)
rm -f rank-*.pid
setsid -w env --default-signal=INT "$tc" --serve 2 --marker "$marker" >out 2>err &
job=$!
wait_file rank-0.pid; wait_file rank-1.pid
sleep 0.2
pgid=$(cut -d' ' -f5 "/proc/$(cat rank-0.pid)/stat")
t0=$(date +%s%N)
kill -INT -- "-$pgid"
finish
[ "$st" -eq 130 ] || { cat err >&2; fail "SIGINT to the process group: status $st, expected 130"; }
grep -q "stopped at iteration" out || fail "SIGINT to the process group: no clean stop"
no_leftovers "SIGINT to the process group"
ok "SIGINT to the whole process group (^C): ranks stop together, exit 130 after $ms ms"

# a stop signal inherited as ignored is ignored by the whole job (had the
# supervisor taken it, the SIGTERM after it would be a second stop signal,
# answered with SIGKILL and status 130)
( trap '' INT; exec "$tc" --serve 2 --marker "$marker-ign" ) >out2 2>err2 &
ign=$!
i=0
while [ "$(grep -l -a -- "$(echo "$marker-ign" | sed 's/launch/launc[h]/')" /proc/[0-9]*/cmdline 2>/dev/null | wc -l)" -lt 3 ]; do
    i=$((i + 1)); [ "$i" -le 200 ] || fail "the job with SIGINT ignored did not start"
    sleep 0.05
done
kill -INT "$ign"
sleep 0.3
kill -0 "$ign" 2>/dev/null || fail "SIGINT, inherited as ignored, stopped the job"
kill -TERM "$ign"
set +e; wait "$ign"; st=$?; set -e
[ "$st" -eq 143 ] || { cat err2 >&2; fail "SIGTERM after an ignored SIGINT: status $st"; }
no_leftovers "ignored SIGINT"
ok "SIGINT inherited as ignored: the job ignores it, SIGTERM still stops it"

# the supervisor itself killed: the ranks die with it
start 3
wait_file rank-0.pid; wait_file rank-1.pid; wait_file rank-2.pid
t0=$(date +%s%N)
kill -KILL "$job"
finish
no_leftovers "supervisor killed"
ok "supervisor SIGKILLed: no rank left"
