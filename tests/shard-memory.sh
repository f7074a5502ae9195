#!/bin/sh
# shard-memory.sh: agn-vocab's memory follows the number of distinct tokens,
# agn-shard's stays flat however long the stream is.  Peak RSS from
# /usr/bin/time -f %M, on a 120,000-row stream (the size of AG News' train
# split) and on a stream of a few million rows made by repeating a generated
# block (the memory of a streaming program cannot tell repetition apart).
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

[ -x /usr/bin/time ] || skip "/usr/bin/time is not installed (Debian package time)"
reps=100 # 100 x 30,000 rows = 3,000,000 rows
[ "${AGN_TEST_SANITIZED:-0}" = 1 ] && reps=20

# a block of 30,000 rows, 8 tokens each from an alphabet of 500
awk 'BEGIN { x = 12345; for (i = 0; i < 30000; i++) { s = (i % 4) "\t"
    for (j = 0; j < 8; j++) { x = (x * 69069 + 1) % 4294967296; s = s (j ? " " : "") "t" (int(x / 65536) % 500) }
    print s } }' > block.txt
repeat() { i=0; while [ $i -lt "$1" ]; do cat block.txt; i=$((i + 1)); done; }
rss() { # FILE: peak RSS in kB that /usr/bin/time wrote
    tail -n 1 "$1"
}

# ---- agn-vocab: bounded by the vocabulary ----
repeat 4 | /usr/bin/time -f %M -o m1 agn-vocab -q -o v.txt
repeat $reps | /usr/bin/time -f %M -o m2 agn-vocab -q -o v2.txt
cmp -s v.txt v2.txt && fail "the two vocabularies cannot be equal (counts differ)"
[ "$(grep -vc '^#' v2.txt)" -eq 502 ] || fail "vocabulary of the long stream"
grep -q "input: $((reps * 30000)) examples, $((reps * 240000)) tokens, 500 distinct" v2.txt ||
    fail "long stream header: $(head -n 1 v2.txt)"
awk 'BEGIN { for (i = 0; i < 400000; i++) printf "0\tu%d x%d\n", i, i }' |
    /usr/bin/time -f %M -o m3 agn-vocab -q -n 1000000 -o v3.txt
small=$(rss m1) long=$(rss m2) distinct=$(rss m3)
echo "agn-vocab peak RSS: 120k rows/500 distinct ${small} kB, $((reps * 30))k rows/500 distinct ${long} kB, 400k rows/800k distinct ${distinct} kB"
[ "$long" -le $((small + 8192)) ] || fail "agn-vocab grew with the input: $small -> $long kB"
[ "$distinct" -ge $((long + 8192)) ] ||
    fail "800k distinct tokens should need visibly more memory ($distinct vs $long kB)"
ok "agn-vocab: memory bounded by the vocabulary"

# ---- agn-shard: flat ----
repeat 4 | /usr/bin/time -f %M -o s1 agn-shard -q -n 100000 -v v.txt -L 16 -o small/x
repeat $reps | /usr/bin/time -f %M -o s2 agn-shard -q -n 100000 -v v.txt -L 16 -o long/x
[ "$(ls small | grep -c "\.agns$")" -eq 2 ] || fail "120k rows at 100k per shard: $(ls small | grep -c "\.agns$") shards"
[ "$(ls long | grep -c "\.agns$")" -eq $((reps * 3 / 10)) ] || fail "long stream: $(ls long | grep -c "\.agns$") shards"
n=$(agn-shard --info --json long/*.agns | awk -F '"examples":' '{ split($2, a, ","); s += a[1] } END { print s }')
assert_eq "$n" "$((reps * 30000))" "examples in the long stream's shards"
small=$(rss s1) long=$(rss s2)
echo "agn-shard peak RSS: 120k rows ${small} kB, $((reps * 30))k rows ${long} kB"
[ "$long" -le $((small + small / 4 + 4096)) ] || fail "agn-shard grew with the input: $small -> $long kB"
ok "agn-shard: memory flat"
