#!/bin/sh
# tokenize-memory.sh: agn-tokenize's memory does not grow with its input.
# Peak RSS (GNU time's %M) for the 120,000-row stand-in of the train split
# and for about 3 million rows, both generated on the fly by cycling a
# sample (the corpus's train_sample, or a synthetic one without the corpus)
# through a pipe, must agree within 2 MB.  Same for gzip input, the small
# test split against the gzipped 120,000 rows.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
[ -x /usr/bin/time ] || skip "GNU time (/usr/bin/time, package time) is not installed"

if [ -n "$AGN_DATA" ] && [ -f "$AGN_DATA/train_sample.csv.gz" ]; then
    gzip -dc "$AGN_DATA/train_sample.csv.gz" > sample.csv
else
    awk 'BEGIN { for (i = 0; i < 5558; i++)
        printf "\"%d\",\"Title number %d (Reuters)\",\"Reuters - some words #39;s and more\\words, %d here &lt;b&gt;x&lt;/b&gt;.\"\n", i % 4 + 1, i, i }' > sample.csv
fi
rows=$(wc -l < sample.csv)

# cycle N: the sample N times over, on stdout.
cycle() {
    i=0
    while [ $i -lt "$1" ]; do cat sample.csv; i=$((i + 1)); done
}
# peak_kb N: peak RSS of agn-tokenize over N cycles from a pipe; checks the row count.
peak_kb() {
    cycle "$1" | /usr/bin/time -f %M -o rss.txt agn-tokenize -q - | wc -l > lines.txt
    assert_eq "$(tr -d ' ' < lines.txt)" $(($1 * rows)) "rows out of $1 cycles"
    tail -n 1 rss.txt
}

small=$(( (120000 + rows - 1) / rows ))  # the stand-in: 120,000 rows or a little more
big=540                                   # about 3 million rows of AG News
[ "${AGN_TEST_SANITIZED:-0}" = 1 ] && big=90
a=$(peak_kb $small)
b=$(peak_kb $big)
echo "# peak RSS: $a kB for $((small * rows)) rows, $b kB for $((big * rows)) rows"
[ $((b - a)) -le 2048 ] || fail "memory grew with the input: $a kB -> $b kB"
ok "memory flat from $((small * rows)) to $((big * rows)) rows ($a kB, $b kB)"

# gzip: a small file against the 120,000 rows gzipped.
head -n 2000 sample.csv | gzip -1 > small.gz
cycle $small | gzip -1 > big.gz
/usr/bin/time -f %M -o rss.txt agn-tokenize -q small.gz > /dev/null
a=$(tail -n 1 rss.txt)
/usr/bin/time -f %M -o rss.txt agn-tokenize -q big.gz > /dev/null
b=$(tail -n 1 rss.txt)
[ $((b - a)) -le 2048 ] || fail "memory grew with gzip input: $a kB -> $b kB"
ok "memory flat on gzip input ($a kB, $b kB)"
