#!/bin/sh
# commgpu-mpi.sh: the NCCL bootstrap over the mpi transport, as GPU ranks
# under mpirun or srun do it (comm_gpu.h): rank 0's id reaches every rank
# with 2 and 3 processes, and when rank 0 cannot make one every rank fails
# with its message and the job exits non-zero.  Needs no GPU (the id is a
# stand-in); skips without mpirun or an MPI build.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

need_mpi
t=$top_builddir/tests/t-commgpu

for np in 2 3; do
    mpirun -np "$np" "$t" --mpi >out 2>err || { cat out err >&2; fail "mpirun -np $np t-commgpu --mpi"; }
    assert_eq "$(grep -c '^ok - mpi rank' out || true)" "$np" "ranks that received the id with -np $np"
    ok "mpi -np $np: every rank has rank 0's id"
done

mpirun -np 3 "$t" --mpi fail >out 2>err || { cat out err >&2; fail "mpirun -np 3 t-commgpu --mpi fail"; }
assert_eq "$(grep -c '^ok - mpi rank .* failure reported' out || true)" 3 "ranks that reported rank 0's failure"
ok "mpi: rank 0 cannot make the id: all 3 ranks say so"
