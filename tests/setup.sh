# tests/setup.sh: sourced by every shell test.  Strict mode, the C locale,
# the built programs first on PATH, a scratch directory removed on exit, the
# corpus location, and helpers to assert and to skip (exit 77).
set -eu
LC_ALL=C
export LC_ALL

: "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${top_builddir:=$top_srcdir}"
PATH="$top_builddir/tools:$PATH"
export PATH top_srcdir top_builddir

# The corpus: $AGN_DATA, else ../shared/data/ag_news beside the source tree.
if [ -z "${AGN_DATA:-}" ]; then
    for d in "$top_srcdir/../shared/data/ag_news" "$top_srcdir/../../shared/data/ag_news"; do
        if [ -d "$d" ]; then AGN_DATA=$(cd "$d" && pwd); break; fi
    done
fi
AGN_DATA=${AGN_DATA:-}
export AGN_DATA

tmp=$(mktemp -d "${TMPDIR:-/tmp}/agn-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

fail() { echo "FAIL: $*" >&2; exit 1; }
skip() { echo "SKIP: $*" >&2; exit 77; }
ok() { echo "ok - $*"; }

# need_corpus FILE...: skip unless each file is in $AGN_DATA.
need_corpus() {
    [ -n "$AGN_DATA" ] || skip "no corpus: set AGN_DATA or put ../shared/data/ag_news beside the source"
    for f in "$@"; do
        [ -f "$AGN_DATA/$f" ] || skip "corpus file $AGN_DATA/$f is missing"
    done
}

# need_mpi: skip unless agn was built with MPI and mpirun is there; then
# mpirun() runs it as root, oversubscribed (more ranks than cores), bounded
# to 60 s, and AddressSanitizer's leak report is off (Open MPI keeps its own
# allocations to the end: thousands of "leaks" in libopen-pal, none in agn).
need_mpi() {
    grep -q '^#define HAVE_MPI 1' "$top_builddir/config.h" ||
        skip "agn was built without MPI (no libopenmpi-dev at configure time)"
    MPIRUN=${MPIRUN:-$(command -v mpirun || true)}
    [ -n "$MPIRUN" ] || skip "no mpirun (install openmpi-bin)"
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
    export ASAN_OPTIONS
    mpirun() { timeout 60 "$MPIRUN" --allow-run-as-root --oversubscribe "$@"; }
}

# run_cases SUITE PREFIX "CASE...": runs case_CASE for every CASE when this
# script is SUITE.sh, or only the case its name gives when it is
# PREFIX<case>.sh (dashes for underscores): tests/bad/ holds one such
# wrapper per case, so that each bad input is a test of its own.
run_cases() {
    rc_only=$(basename "$0" .sh)
    rc_cases=$3
    case $rc_only in
    "$1") ;;
    "$2"*) rc_cases=$(echo "${rc_only#"$2"}" | tr - _) ;;
    *) fail "unknown case $rc_only" ;;
    esac
    for rc_c in $rc_cases; do
        "case_$rc_c"
        ok "$rc_c"
    done
}

# expect_fail STATUS PATTERN CMD...: CMD must exit with STATUS and print a
# line matching the extended regex PATTERN on stderr.
expect_fail() {
    want=$1; pat=$2; shift 2
    set +e
    "$@" >"$tmp/.out" 2>"$tmp/.err"
    got=$?
    set -e
    [ "$got" -eq "$want" ] || { cat "$tmp/.err" >&2; fail "$* exited $got, expected $want"; }
    grep -Eq -- "$pat" "$tmp/.err" || { cat "$tmp/.err" >&2; fail "$*: stderr lacks /$pat/"; }
}

# assert_eq GOT WANT WHAT
assert_eq() {
    [ "$1" = "$2" ] || fail "$3: got '$1', expected '$2'"
}

# Processes that must not outlive a job.  watch_leftovers MARKER: remember
# /dev/shm, and take MARKER (a string in the command line of every process
# the test starts) for: leftovers, which lists those processes still alive
# (pgrep -f without procps; the bracket keeps grep from matching its own
# arguments), and no_leftovers WHAT, which fails unless none is left within
# 2 s and /dev/shm gained no agn entry.
watch_leftovers() {
    leftover_marker=$1
    ls /dev/shm >"$tmp/.shm.before" 2>/dev/null || true
}
leftovers() {
    pat=$(printf '%s' "$leftover_marker" | sed 's/\(.\)$/[\1]/')
    grep -l -a -- "$pat" /proc/[0-9]*/cmdline 2>/dev/null || true
}
no_leftovers() {
    i=0
    while [ -n "$(leftovers)" ]; do
        i=$((i + 1)); [ "$i" -le 40 ] || { leftovers >&2; fail "$1: processes left behind"; }
        sleep 0.05
    done
    ls /dev/shm >"$tmp/.shm.after" 2>/dev/null || true
    new=$(comm -13 "$tmp/.shm.before" "$tmp/.shm.after" | grep -i agn || true)
    [ -z "$new" ] || fail "$1: left in /dev/shm: $new"
}
