#!/bin/sh
# bench-comm-nogpu.sh: agn-bench-comm -g N where no GPU is usable (CI, this
# machine): exit 1 within seconds with exactly one line on stderr, naming
# the reason this build gives (a build without CUDA and NCCL: it has no
# nccl transport; a build with them: no usable GPU, and why), nothing on
# stdout, no CSV, no process left behind; the same under mpirun (each
# process one rank).  The option combinations that make no sense with -g
# are usage errors (2).  On a machine with a GPU driver the no-GPU cases
# skip: tests/gpu/bench-comm-gpu.sh measures there.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

bc=agn-bench-comm
expect_fail 2 'exclude each other' "$bc" -g 2 -n 2
expect_fail 2 'exclude each other' "$bc" -g 1 --cpu
expect_fail 2 'mpi-allreduce times MPI_Allreduce on host memory' "$bc" -g 2 --mpi-allreduce
expect_fail 2 'no rank 2 of 2' "$bc" -g 2 --corrupt 2
expect_fail 2 'gpus' "$bc" -g 0
ok "usage errors: -g with -n/--cpu/--mpi-allreduce, --corrupt past -g, -g 0"

[ ! -e /dev/nvidiactl ] || skip "a GPU driver is present: tests/gpu/bench-comm-gpu.sh measures -g there"

if grep -q '^#define HAVE_NCCL 1' "$top_builddir/config.h"; then
    why='no usable GPU: none \(.+\)'
else
    why='this build has no nccl transport \(configure found no CUDA toolkit with NCCL\); measure CPU ranks with --cpu -n N'
fi
marker=agn-nogpu-$$
watch_leftovers "$marker"
for g in 1 2 4; do
    t0=$(date +%s)
    set +e
    timeout -k 5 60 "$bc" -g "$g" -b 8 -e 1M --csv "$marker-$g.csv" >out 2>err
    st=$?
    set -e
    took=$(( $(date +%s) - t0 ))
    [ "$st" -eq 1 ] || { cat err >&2; fail "-g $g: exit $st, expected 1"; }
    assert_eq "$(wc -l <err | tr -d ' ')" 1 "-g $g: lines on stderr"
    grep -Eqx "agn-bench-comm: -g $g: $why" err || { cat err >&2; fail "-g $g: the message is not /$why/"; }
    [ ! -s out ] || { cat out >&2; fail "-g $g: wrote to stdout"; }
    [ ! -e "$marker-$g.csv" ] || fail "-g $g: left a CSV"
    [ "$took" -le 10 ] || fail "-g $g: took $took s"
    no_leftovers "-g $g"
done
ok "-g 1/2/4: exit 1 in seconds, one line ($(cut -c1-70 err)...), no output, nothing left"

if grep -q '^#define HAVE_MPI 1' "$top_builddir/config.h" && command -v "${MPIRUN:-mpirun}" >/dev/null; then
    need_mpi
    expect_fail 2 '-g 3, but mpirun/srun started 2 processes' mpirun -np 2 "$bc" -g 3
    set +e
    mpirun -np 2 "$bc" -g 2 -b 8 -e 1M --csv "$marker-mpi.csv" >out 2>err
    st=$?
    set -e
    [ "$st" -ne 0 ] && [ "$st" -ne 124 ] || { cat err >&2; fail "mpirun -np 2 -g 2: exit $st"; }
    grep -Eq "^agn-bench-comm: -g 2: $why\$" err || { cat err >&2; fail "mpirun -np 2 -g 2: no message"; }
    [ ! -e "$marker-mpi.csv" ] || fail "mpirun -np 2 -g 2: left a CSV"
    no_leftovers "mpirun -np 2 -g 2"
    ok "mpirun -np 2: -g 3 refused naming both counts; -g 2 fails in every rank saying why"
fi
