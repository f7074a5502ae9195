#!/bin/sh
# vocab.sh: agn-vocab on hand-written token streams.  The expected order and
# counts come from sort/uniq over the same stream, not from agn-vocab.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

printf '0\tthe cat sat on the mat\n1\tthe dog ate the cat .\n2\t\n-\tzebra a ab b\n3\t  a   ab\tthe  \n0\ta\r\n1\tdog' > s.txt

# expected: every token with its count, count descending then bytes ascending
tr -d '\r' < s.txt | cut -f2- | tr ' \t' '\n\n' | grep -v '^$' | sort | uniq -c |
    awk '{ print $2 "\t" $1 }' | sort -t "$(printf '\t')" -k2,2nr -k1,1 > want.txt
ntok=$(awk -F '\t' '{ s += $2 } END { print s }' want.txt)
ndist=$(wc -l < want.txt)

agn-vocab -q -n 100 -o v.txt s.txt
head -n 1 v.txt | grep -q '^# ' || fail "no header line"
sed -n 2p v.txt | grep -q "^<pad>	0$" || fail "id 0 is not <pad>"
sed -n 3p v.txt | grep -q "^<unk>	0$" || fail "id 1 is not <unk> with count 0"
tail -n +4 v.txt > got.txt
cmp -s got.txt want.txt || { diff got.txt want.txt >&2; fail "vocabulary order or counts"; }
grep -q "7 examples, $ntok tokens, $ndist distinct; coverage 1.000000" v.txt ||
    { head -n 1 v.txt >&2; fail "header counts"; }
ok "full vocabulary: order, counts, header"

# -n caps the size, specials included; <unk> counts what fell out
agn-vocab -q -n 5 s.txt > v5.txt
[ "$(grep -vc '^#' v5.txt)" -eq 5 ] || fail "-n 5 gave $(grep -vc '^#' v5.txt) entries"
head -n 3 want.txt > want3.txt
tail -n +4 v5.txt | cmp -s - want3.txt || fail "-n 5 did not keep the 3 most frequent"
kept=$(awk -F '\t' '{ s += $2 } END { print s }' want3.txt)
sed -n 3p v5.txt | grep -q "^<unk>	$((ntok - kept))$" || fail "<unk> count with -n 5"
cov=$(awk -v k="$kept" -v n="$ntok" 'BEGIN { printf "%.6f", k / n }')
grep -q "coverage $cov ($kept of $ntok" v5.txt || { head -n 1 v5.txt >&2; fail "coverage $cov"; }
ok "-n caps the size and the header gives the coverage"

# --min-count
agn-vocab -q --min-count 2 s.txt | tail -n +4 > vm.txt
awk -F '\t' '$2 >= 2' want.txt | cmp -s - vm.txt || fail "--min-count 2"
ok "--min-count"

# deterministic: line order, file splitting and stdin do not matter
tail -n +4 v.txt > a.txt
sort -r s.txt > r2.txt
agn-vocab -q r2.txt | tail -n +4 | cmp -s - a.txt || fail "order of lines changed the vocabulary"
head -n 3 s.txt > p1.txt; tail -n +4 s.txt > p2.txt
agn-vocab -q p1.txt - < p2.txt | tail -n +4 | cmp -s - a.txt || fail "two inputs (file and stdin)"
gzip -c s.txt > s.txt.gz
agn-vocab -q s.txt.gz | tail -n +4 | cmp -s - a.txt || fail "gzip token stream"
ok "same vocabulary whatever the line order, the input split, gzip"

# ties broken by bytes, a prefix first
printf '0\tb ab a aa abc ab b a\n' > t.txt
agn-vocab -q t.txt | tail -n +4 | cut -f1 | tr '\n' ' ' > ties.txt
assert_eq "$(cat ties.txt)" "a ab b aa abc " "tie order"
ok "ties in byte order"

# a stream token spelling a special does not get a second entry
printf '0\t<unk> <pad> x <unk>\n' > sp.txt
agn-vocab -q sp.txt > vsp.txt
[ "$(grep -c '^<unk>	' vsp.txt)" -eq 1 ] && [ "$(grep -c '^<pad>	' vsp.txt)" -eq 1 ] ||
    fail "specials duplicated"
sed -n 3p vsp.txt | grep -q "^<unk>	3$" || fail "literal specials are not counted as <unk>"
ok "literal specials"

# many distinct tokens: the table grows and keeps every count
awk 'BEGIN { for (i = 0; i < 50000; i++) { printf "0\tt%d t%d\n", i, i % 1000 } }' > big.txt
agn-vocab -q -n 60000 big.txt > vb.txt
[ "$(grep -vc '^#' vb.txt)" -eq 50002 ] || fail "50000 distinct tokens: $(grep -vc '^#' vb.txt) entries"
sed -n 4p vb.txt | grep -q "^t0	51$" || fail "most frequent token"
grep -q "^t999	51$" vb.txt && grep -q "^t1000	1$" vb.txt || fail "counts after growth"
ok "50000 distinct tokens"

# options and usage
agn-vocab --help | grep -q -- '--min-count' || fail "--help"
agn-vocab --version | grep -q '^agn-vocab (agn) ' || fail "--version"
expect_fail 2 "Try 'agn-vocab --help'" agn-vocab --bogus
expect_fail 2 "size" agn-vocab -n 1 s.txt
expect_fail 2 "min-count" agn-vocab --min-count x s.txt
expect_fail 1 "nonexistent.txt: No such file" agn-vocab nonexistent.txt
ok "options"
