#!/bin/sh
# fault-sweep-bounded.sh: the fault sweep of tests/fault-sweep.sh as make
# check runs it: every third fault point of every job and kind (the full
# sweep, every point: sh tests/fault-sweep.sh from the build directory).
SWEEP_STRIDE=${SWEEP_STRIDE:-3}
SWEEP_MAX_POINTS=${SWEEP_MAX_POINTS:-12}
export SWEEP_STRIDE SWEEP_MAX_POINTS
. "${top_srcdir:-$(dirname "$0")/..}/tests/fault-sweep.sh"
