#!/bin/sh
# bench-comm-mpi.sh: agn-bench-comm as 2 and 3 processes of mpirun (the mpi
# transport), with --mpi-allreduce: agn's all-reduce and MPI_Allreduce rows
# side by side, both checked right; a corrupted result caught.  Skips
# without mpirun or an MPI build.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

need_mpi
bc=$top_builddir/tools/agn-bench-comm
for np in 2 3; do
    mpirun -np "$np" "$bc" -b 64k -e 1M -w 1 -i 3 --mpi-allreduce --csv "mpi$np.csv" >out 2>err ||
        { cat out err >&2; fail "mpirun -np $np"; }
    awk -F, -v n="$np" '
        NR == 1 { next }
        { rows++; impl[$2]++
          if ($1 != "mpi" || $3 != "all-reduce" || $4 != n || $13 != 0 || $9 <= 0) { print > "/dev/stderr"; bad = 1 } }
        END { exit bad || rows != 10 || impl["agn"] != 5 || impl["MPI_Allreduce"] != 5 }' "mpi$np.csv" ||
        { cat "mpi$np.csv" >&2; fail "-np $np: expected 5 sizes x (agn, MPI_Allreduce), all right"; }
    ok "mpi -np $np: agn and MPI_Allreduce, 64 KiB - 1 MiB, checked right"
done
set +e
mpirun -np 2 "$bc" -b 4k -e 4k -i 1 --mpi-allreduce --corrupt 1 >out 2>err
st=$?
set -e
[ "$st" -ne 0 ] || fail "a corrupted result under mpirun exited 0"
grep -q 'wrong result: rank 1: all-reduce' err || { cat err >&2; fail "no message naming rank 1"; }
ok "mpi: corrupted result caught (exit $st)"
