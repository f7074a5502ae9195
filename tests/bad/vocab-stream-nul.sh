#!/bin/sh
# One case of tests/vocab-bad.sh (stream_nul), run as a test of its own.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/vocab-bad.sh"
