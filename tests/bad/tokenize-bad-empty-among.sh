#!/bin/sh
# One case of tests/tokenize-bad.sh (empty_among), run as a test of its own.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/tokenize-bad.sh"
