#!/bin/sh
# One case of tests/vocab-bad.sh (stream_label), run as a test of its own.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/vocab-bad.sh"
