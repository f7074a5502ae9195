#!/bin/sh
# One case of tests/shard-bad.sh (info_continues), run as a test of its own.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/shard-bad.sh"
