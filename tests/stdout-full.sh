#!/bin/sh
# stdout-full.sh: --help and --version into a full standard output
# (/dev/full) are an error that says so, exit 1, for every program (it was
# exit 1 with no message); and into a working one, exit 0.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
[ -w /dev/full ] || skip "no writable /dev/full"
for p in agn-tokenize agn-vocab agn-shard agn-train agn-eval agn-summarize; do
    for o in --help --version; do
        # shellcheck disable=SC2016
        expect_fail 1 "^$p: write error on stdout: No space left on device$" \
            sh -c 'exec "$0" "$1" > /dev/full' "$p" "$o"
        "$p" "$o" > out.txt || fail "$p $o: exit $?"
        [ -s out.txt ] || fail "$p $o printed nothing"
    done
done
ok "--help and --version: exit 1 with 'write error on stdout' into a full stdout, for all six programs"
