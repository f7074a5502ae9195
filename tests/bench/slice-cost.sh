#!/bin/sh
# slice-cost.sh: agn's cost model for cutting a batch between ranks
# (agn_train_cost, agn-train(1) Ranks) against measured times: for the small
# and the large config, forward + backward per token for examples of
# n = 16 .. max_len tokens, and the attention weight the measurements imply
# (the model counts multiply-adds: 2).  A weight far from 2 on a machine
# would show as imbalance_s in its 2-rank runs.
#
# Usage: tests/bench/slice-cost.sh [BUILDDIR]   (default: $top_builddir or .)
# Environment: THREADS (1), BATCH (16), REPEATS (3).
set -eu
build=$(cd "${1:-${top_builddir:-.}}" && pwd)
b=$build/tests/bench/bench-cost
[ -x "$b" ] || { echo "slice-cost.sh: $b not built (make check builds it)" >&2; exit 1; }
for c in small large; do
    echo "== $c (threads ${THREADS:-1}, batch ${BATCH:-16})"
    "$b" -c "$c" -t "${THREADS:-1}" -b "${BATCH:-16}" -r "${REPEATS:-3}"
done
