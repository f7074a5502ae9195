#!/bin/sh
# mpi-train.sh: agn-train started by mpirun: each process is one rank with
# the mpi transport (detected from the environment).  2 ranks on the tiny
# config with dropout and a partial last batch end with the weights of the
# 1-rank run (largest relative difference per tensor printed, fail above
# 1e-5) after training on the same examples in every step; and a rank that
# fails ends the whole job, non-zero, within seconds.  Skips without MPI.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

need_mpi
. "$top_srcdir/tests/train-fixture.sh"

T="$TRAIN -b 7 -e 1 --dropout 0.2 --eval-every 20 --val $VAL"
AGN_TEST_TRACE_BATCHES=$PWD/trace1 $T -o w1 "$SH"
mpirun -np 2 -x AGN_TEST_TRACE_BATCHES="$PWD/trace2" $T -o m2 "$SH" >out 2>err || { cat err >&2; fail "mpirun -np 2 agn-train failed"; }

assert_eq "$(sed -n 2p m2/metrics.csv | cut -d, -f2,4)" "2,mpi" "metrics.csv world_size,transport"
grep -q "^  transport: mpi\$" m2/config.yaml || fail "config.yaml lacks transport: mpi"
# per step, the examples of both ranks sorted = the 1-rank batch sorted
per_step() {
    awk '{ k = $1 " " $2; for (i = 4; i <= NF; i++) print k, $i }' "$1" | sort -n -k1,1 -k2,2 -k3,3
}
per_step trace1 >s1
per_step trace2 >s2
[ "$(wc -l <s1)" -eq 403 ] || fail "1 rank traced $(wc -l <s1) examples, expected 403"
cmp -s s1 s2 || { diff s1 s2 | head >&2; fail "mpi ranks trained on other examples than the 1-rank run"; }
ok "mpirun -np 2: the ranks' examples are the 1-rank batches in all 58 steps"

echo "# mpirun -np 2 against 1 rank, largest relative difference per tensor:"
set +e
"$STDIFF" --tol 1e-5 w1/last.safetensors m2/last.safetensors >diff.out
st=$?
set -e
sed 's/^/#   /' diff.out
[ "$st" -eq 0 ] || fail "mpirun -np 2: weights differ from the 1-rank run by more than 1e-5"
ok "mpirun -np 2: $(tail -n 1 diff.out)"

# a failing rank ends the job
start=$(date +%s)
set +e
mpirun -np 2 -x AGN_TEST_FAIL_RANK=1 -x AGN_TEST_FAIL_STEP=10 $T -o m3 "$SH" >out 2>err
st=$?
set -e
took=$(( $(date +%s) - start ))
[ "$st" -ne 0 ] || fail "mpi: a failing rank, yet the job exited 0"
grep -Eq "rank 1( \([^)]*\))?: step 10: failure injected" err || { cat err >&2; fail "mpi: rank 1's message is missing"; }
[ "$took" -le 20 ] || fail "mpi: the failing job took $took s"
ok "mpirun: rank 1 fails at step 10: job exits $st in ${took}s"
