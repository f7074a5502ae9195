#!/bin/sh
# hosts-allreduce.sh: the all-reduce of agn's mpi transport between test
# hosts (tests/hosts.sh: one rank on each, Open MPI's TCP transport only)
# against Open MPI's own MPI_Allreduce of the same bytes, 64 KiB to 16 MiB,
# measured by agn-bench-comm --mpi-allreduce.  Each size's time is the best
# of REPEATS runs (default 5) of ITERS timed calls (default 20): this machine
# is shared, and the best run is the one least disturbed.  Prints a
# Markdown table: size, agn, MPI_Allreduce, agn / MPI.  Needs root and an
# MPI build; run from a build directory:
#   top_srcdir=.. top_builddir=. sh ../tests/bench/hosts-allreduce.sh [HOSTS]
. "${top_srcdir:-$(dirname "$0")/../..}/tests/setup.sh"

need_mpi
. "$top_srcdir/tests/hosts.sh"
n=${1:-2}
hosts_make "$n"
r=0
: >runs
while [ "$r" -lt "${REPEATS:-5}" ]; do
    hosts_mpirun "$n" agn-bench-comm -b 64k -e 16M -f 4 -w 5 -i "${ITERS:-20}" --mpi-allreduce -q \
        --csv "run$r.csv" >/dev/null 2>err || { cat err >&2; fail "agn-bench-comm across $n hosts failed"; }
    tail -n +2 "run$r.csv" >>runs
    r=$((r + 1))
done
echo "All-reduce across $n test hosts (TCP), best of ${REPEATS:-5} runs of ${ITERS:-20} calls, $(date -u +%Y-%m-%d):"
echo
echo "| size | agn (us) | MPI_Allreduce (us) | agn / MPI |"
echo "|---:|---:|---:|---:|"
# transport,impl,op,world_size,dtype,bytes,count,iters,time_us,...,wrong
awk -F, '$3 == "all-reduce" { k = $6 SUBSEP $2; if (!(k in best) || $9 < best[k]) best[k] = $9
                              if ($13 != 0) wrong = 1; sizes[$6] = 1 }
    END {
        if (wrong) { print "wrong results" > "/dev/stderr"; exit 1 }
        for (s in sizes) print s, best[s SUBSEP "agn"], best[s SUBSEP "MPI_Allreduce"]
    }' runs | sort -n | awk '{
        s = $1 >= 1048576 ? ($1 / 1048576) " MiB" : ($1 / 1024) " KiB"
        printf "| %s | %.0f | %.0f | %.2f |\n", s, $2, $3, $2 / $3 }'
