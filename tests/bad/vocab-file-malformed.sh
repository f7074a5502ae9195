#!/bin/sh
# One case of tests/vocab-bad.sh (file_malformed), run as a test of its own.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/vocab-bad.sh"
