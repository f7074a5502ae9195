#!/bin/sh
# manlint.sh: every man page must pass mandoc's linter (or groff -ww) without
# a warning.  Skips when neither linter is installed.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

pages=$(ls "$top_srcdir"/man/*.[157] 2>/dev/null || true)
[ -n "$pages" ] || fail "no man pages under $top_srcdir/man"
n=0
if [ -n "${MANDOC:-}" ] || command -v mandoc >/dev/null 2>&1; then
    m=${MANDOC:-mandoc}
    for p in $pages; do
        out=$("$m" -Tlint -Wwarning "$p" 2>&1 || true)
        [ -z "$out" ] || { echo "$out" >&2; fail "$(basename "$p") has lint warnings"; }
        n=$((n + 1))
    done
elif [ -n "${GROFF:-}" ] || command -v groff >/dev/null 2>&1; then
    g=${GROFF:-groff}
    for p in $pages; do
        out=$("$g" -ww -z -mandoc "$p" 2>&1 || true)
        [ -z "$out" ] || { echo "$out" >&2; fail "$(basename "$p") has warnings"; }
        n=$((n + 1))
    done
else
    skip "neither mandoc nor groff is installed"
fi
ok "$n man pages lint clean"
