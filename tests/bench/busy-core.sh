#!/bin/sh
# busy-core.sh: agn's CPU training with one core taken by another process,
# against the same machine idle.  agn's threads meet at the end of every
# layer; when another process holds one of the cores they run on, the
# thread that lost its core holds the others up, and OpenMP's default
# spinning wait burns the core that is left.  This measures what that costs
# and what OMP_WAIT_POLICY=passive (or fewer threads) gets back, so that
# agn-train(1)'s advice rests on a figure.
#
# bench-model, small config, whole optimizer steps, in rounds; each round
# measures 1 thread and 2 threads with the default wait policy, with
# OMP_WAIT_POLICY=passive and with GOMP_SPINCOUNT=10000, first idle, then
# with a spinning awk holding a core.  Prints samples/s, the best of the
# rounds per cell, and each cell against 1 thread in the same state.
#
# Usage: tests/bench/busy-core.sh [BUILDDIR]     (default: $top_builddir or .)
# Environment: ROUNDS (2), STEPS (30), AGN_DATA (the corpus).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-${top_builddir:-.}}" && pwd)
bench=$build/tests/bench/bench-model
[ -x "$bench" ] || { echo "busy-core.sh: $bench not built: run 'make check' (or make tests/bench/bench-model) in $build" >&2; exit 1; }
data=${AGN_DATA:-$here/../../../shared/data/ag_news}
[ -f "$data/train_sample.csv.gz" ] || { echo "busy-core.sh: no $data/train_sample.csv.gz (set AGN_DATA)" >&2; exit 1; }
[ "$(nproc)" -ge 2 ] || { echo "busy-core.sh: needs 2 cores" >&2; exit 1; }
ROUNDS=${ROUNDS:-2}
STEPS=${STEPS:-30}
. "$here/machine.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/agn-busy.XXXXXX")
hog=
trap '[ -n "$hog" ] && kill "$hog" 2>/dev/null; rm -rf "$tmp"' EXIT
"$build/tools/agn-tokenize" "$data/train_sample.csv.gz" >"$tmp/train.tok"
"$build/tools/agn-vocab" -n 20000 <"$tmp/train.tok" >"$tmp/vocab.txt" 2>/dev/null
"$build/tools/agn-shard" -v "$tmp/vocab.txt" -L 256 -o "$tmp/train" <"$tmp/train.tok" 2>/dev/null

machine_header "$build/tools" 1 2
# one measurement: STATE CASE THREADS [NAME=VALUE...] (the wait policy
# variables unset unless given)
one() {
    state=$1 case=$2 t=$3
    shift 3
    r=$(env -u OMP_WAIT_POLICY -u GOMP_SPINCOUNT "$@" "$bench" -c small -t "$t" -s "$STEPS" \
            "$tmp"/train-*.agns 2>/dev/null | sed -n 's/.*samples_per_s=\([0-9.]*\).*/\1/p')
    echo "$state $case ${r:-0}" >>"$tmp/cells"
}
for r in $(seq "$ROUNDS"); do
    for state in idle busy; do
        if [ "$state" = busy ]; then
            awk 'BEGIN { for (;;) s++ }' &
            hog=$!
            sleep 0.5
        fi
        one "$state" "1 thread" 1
        one "$state" "2 threads" 2
        one "$state" "2 threads, OMP_WAIT_POLICY=passive" 2 OMP_WAIT_POLICY=passive
        one "$state" "2 threads, GOMP_SPINCOUNT=10000" 2 GOMP_SPINCOUNT=10000
        if [ -n "$hog" ]; then
            kill "$hog"
            wait "$hog" 2>/dev/null || true
            hog=
        fi
    done
done
echo
echo "agn small config, training, samples/s (best of $ROUNDS rounds); busy: a spinning process holds one core"
awk '{ c = $1; k = $2; for (i = 3; i < NF; i++) k = k " " $i; key = c SUBSEP k
       if (!(key in best) || $NF > best[key]) best[key] = $NF
       if (!(k in seen)) { seen[k] = 1; order[++n] = k } }
     END { printf "%-40s %12s %12s %12s %12s\n", "case", "idle", "vs 1 thread", "busy", "vs 1 thread"
           for (i = 1; i <= n; i++) { k = order[i]
               printf "%-40s %12.1f %11.2fx %12.1f %11.2fx\n", k, best["idle" SUBSEP k], best["idle" SUBSEP k] / best["idle" SUBSEP "1 thread"],
                      best["busy" SUBSEP k], best["busy" SUBSEP k] / best["busy" SUBSEP "1 thread"] } }' "$tmp/cells"
