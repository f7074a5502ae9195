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
