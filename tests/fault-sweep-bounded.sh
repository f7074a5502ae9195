#!/bin/sh
# fault-sweep-bounded.sh: the fault sweep of tests/fault-sweep.sh as make
# check runs it: every third fault point of every job and kind, at most 12
# per job and kind (4 in a sanitizer build, where each run costs ten times
# more); the full sweep, every point: sh tests/fault-sweep.sh from the build
# directory.
max=12
grep -q 'fsanitize=address' "${top_builddir:-.}/Makefile" 2>/dev/null && max=4
SWEEP_STRIDE=${SWEEP_STRIDE:-3}
SWEEP_MAX_POINTS=${SWEEP_MAX_POINTS:-$max}
export SWEEP_STRIDE SWEEP_MAX_POINTS
. "${top_srcdir:-$(dirname "$0")/..}/tests/fault-sweep.sh"
