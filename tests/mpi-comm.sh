#!/bin/sh
# mpi-comm.sh: the mpi transport under mpirun on this host: the collectives
# of tests/t-comm (all-reduce bit-exact against a serial sum in rank order,
# requests in flight, broadcast, barrier) with 2 and 3 processes, and a
# collective that times out because one rank sleeps: the job must end within
# seconds, non-zero, saying so.  Skips without mpirun or an MPI build.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

need_mpi
tc=$top_builddir/tests/t-comm

for np in 2 3; do
    mpirun -np "$np" "$tc" --mpi >out 2>err || { cat out err >&2; fail "mpirun -np $np t-comm --mpi"; }
    n=$(grep -c '^ok - mpi rank' out || true)
    assert_eq "$n" "$np" "ranks that passed with -np $np"
    ok "mpi -np $np: $(head -n 1 out | sed 's/^ok - //')"
done

start=$(date +%s)
set +e
mpirun -np 2 "$tc" --mpi-timeout >out 2>err
st=$?
set -e
took=$(( $(date +%s) - start ))
[ "$st" -ne 0 ] || fail "a stuck collective under mpirun exited 0"
grep -Eq 'all-reduce timed out after 1 s \(see --comm-timeout\): nothing from rank 1 \(' err || { cat err >&2; fail "no timeout message naming rank 1"; }
[ "$took" -le 15 ] || fail "the stuck job took $took s"
ok "mpi: stuck collective times out, job exits $st in ${took}s"
