#!/bin/sh
# hosts-faults.sh: faults of agn-train across test hosts (tests/hosts.sh),
# one rank on each of 3 hosts, started by mpirun over TCP only:
#  - the rank on agnhost2 killed (SIGKILL, mid-epoch): the job exits
#    non-zero within 10 s, naming the host and the rank, and no process is
#    left on any host;
#  - agnhost3's link set down mid-epoch: the ranks still up end in the
#    communication timeout (--comm-timeout 3) with a message saying so and
#    naming the rank and host they waited for (rank 2, agnhost3), the
#    job exits non-zero within 30 s of the link going down, no process is
#    left on any host, and the last checkpoint is intact (agn-eval reads
#    it, CRCs included); --resume from it with the 2 hosts left finishes
#    the run with the weights of an uninterrupted 1-rank run (largest
#    relative difference per tensor printed, fail above 1e-5).
# Skips without MPI or without root (namespaces).
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

need_mpi
. "$top_srcdir/tests/hosts.sh"
. "$top_srcdir/tests/train-fixture.sh"
hosts_make 3

T="$TRAIN -b 7 -e 2 --dropout 0.2 --eval-every 10 --val $VAL"
$T -o full "$SH"

ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }
no_host_leftovers() { # no_host_leftovers WHAT: nothing runs on any host
    for h in 1 2 3; do
        i=0
        while [ -n "$(host_pids "$h")" ]; do
            i=$((i + 1))
            # 10 s: the processes of a job that ended go within milliseconds
            # on an idle machine, but make check runs two tests at once
            [ "$i" -le 200 ] || { ps -o pid,args -p "$(host_pids "$h" | paste -sd, -)" >&2; fail "$1: processes left on agnhost$h"; }
            sleep 0.05
        done
    done
}

# ---- the rank on agnhost2 killed at step 30 (it kills itself at its start,
# after tracing step 29: the clock starts when that line appears)
set +e
hosts_mpirun 3 -x AGN_TEST_TRACE_BATCHES="$PWD/ktrace" -x AGN_TEST_FAIL_RANK=1 -x AGN_TEST_FAIL_STEP=30 \
    -x AGN_TEST_FAIL_MODE=kill $T -o kill "$SH" >out 2>err &
job=$!
set -e
i=0
until [ "$(awk '$1 == 1 && $2 == 29 && $3 == "1:"' ktrace 2>/dev/null | wc -l)" -ge 1 ]; do
    i=$((i + 1))
    [ "$i" -le 1200 ] || { kill "$job"; fail "kill: step 29 not reached in 60 s"; }
    sleep 0.05
done
t0=$(date +%s%N)
set +e
wait "$job"
st=$?
set -e
ms=$(ms_since "$t0")
[ "$st" -ne 0 ] || fail "kill: the job exited 0"
grep -Eq "process rank 1 with PID [0-9]+ on node agnhost2 exited on signal 9" err ||
    { cat err >&2; fail "kill: no message naming rank 1, agnhost2 and the signal"; }
[ "$ms" -lt 10000 ] || fail "kill: the job took $ms ms after rank 1 died"
no_host_leftovers kill
agn-eval -t 1 kill/last.safetensors "$VAL" >/dev/null || fail "kill: the last checkpoint is not readable"
ok "rank 1 killed on agnhost2: mpirun exits $st $ms ms later naming both, nothing left on the hosts"

# ---- agnhost3's link down after step 25 (a checkpoint at step 20)
# rank 0 slowed by 100 ms a step, so that the link goes down mid-epoch
set +e
hosts_mpirun 3 -x AGN_TEST_TRACE_BATCHES="$PWD/trace" -x AGN_TEST_SLOW_RANK=0 -x AGN_TEST_SLOW_MS=100 \
    $T --comm-timeout 3 -o link "$SH" >out 2>err &
job=$!
set -e
i=0
until [ "$(awk '$1 == 1 && $2 >= 25' trace 2>/dev/null | wc -l)" -ge 3 ]; do
    i=$((i + 1))
    [ "$i" -le 600 ] || { kill "$job"; fail "link: step 25 not reached in 60 s"; }
    sleep 0.1
done
host_link 3 down
t0=$(date +%s%N)
set +e
wait "$job"
st=$?
set -e
ms=$(ms_since "$t0")
host_link 3 up
[ "$st" -ne 0 ] || fail "link: the job exited 0"
grep -Eq "agn-train: rank [01] \(agnhost[12]\): [a-z-]+ timed out after 3 s \(see --comm-timeout\): nothing from rank 2 \(agnhost3\)" err ||
    { cat err >&2; fail "link: no rank on agnhost1/2 reports the communication timeout naming rank 2 on agnhost3"; }
[ "$ms" -lt 30000 ] || { cat err >&2; fail "link: the job ended $ms ms after the link went down"; }
no_host_leftovers "link down"
tail -n 1 link/train.log | grep -q "timed out" || fail "link: train.log does not end with the timeout"
agn-eval -t 1 link/last.safetensors "$VAL" >/dev/null || fail "link: the last checkpoint is not readable"
ok "agnhost3's link down: the job over $ms ms after, the checkpoint intact; $(grep -m 1 'timed out' err)"

# ---- resume with the 2 hosts left
hosts_mpirun 2 $T -o link --resume link/last.safetensors "$SH" >out 2>err ||
    { cat err >&2; fail "resume on 2 hosts failed"; }
echo "# resumed on 2 hosts against the uninterrupted 1-rank run, largest relative difference per tensor:"
set +e
"$STDIFF" --tol 1e-5 full/last.safetensors link/last.safetensors >diff.out
st=$?
set -e
sed 's/^/#   /' diff.out
[ "$st" -eq 0 ] || fail "resume on 2 hosts: weights differ from the 1-rank run by more than 1e-5"
ok "resumed on 2 hosts: $(tail -n 1 diff.out)"
