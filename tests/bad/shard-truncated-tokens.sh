#!/bin/sh
# One case of tests/shard-bad.sh (truncated_tokens), run as a test of its own.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/shard-bad.sh"
