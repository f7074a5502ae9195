#!/bin/sh
# tokenize-corpus.sh: agn-tokenize on the real AG News files.  The counts
# come from SOURCE.md of the data folder (7,600 test rows, 1,900 per class;
# 5,558 train_sample rows, 1,420/1,335/1,388/1,415).  Then the whole output
# is compared with tests/bench/pytok.py, a second implementation of the same
# rules with Python's csv module and regular expressions.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
need_corpus test.csv.gz train_sample.csv.gz

# class_counts FILE: "N0 N1 N2 N3" from the labels of a token stream.
class_counts() {
    cut -f 1 "$1" | sort | uniq -c | awk '{ n[$2] = $1 } END { printf "%d %d %d %d", n[0], n[1], n[2], n[3] }'
}

agn-tokenize -o test.tok "$AGN_DATA/test.csv.gz"
assert_eq "$(wc -l < test.tok | tr -d ' ')" 7600 "test examples"
assert_eq "$(class_counts test.tok)" "1900 1900 1900 1900" "test class counts"
ok "test.csv.gz: 7,600 examples, 1,900 per class"

agn-tokenize -o train.tok "$AGN_DATA/train_sample.csv.gz"
assert_eq "$(wc -l < train.tok | tr -d ' ')" 5558 "train_sample examples"
assert_eq "$(class_counts train.tok)" "1420 1335 1388 1415" "train_sample class counts"
ok "train_sample.csv.gz: 5,558 examples, 1,420/1,335/1,388/1,415"

# The stream's own invariants: a label, a tab, tokens separated by single
# spaces; every example has tokens; no leftover escape or entity.
bad=$(LC_ALL=C grep -vcE '^[0-3]	[^ 	]+( [^ 	]+)*$' test.tok train.tok | awk -F: '{ s += $2 } END { print s }')
assert_eq "$bad" 0 "malformed stream lines"
# (Tokens are split at punctuation, so an entity left over would show as
# "quot ;" or "# 39 ;", a tag as "< b >" or "< / a >".)
LC_ALL=C grep -q '\\' test.tok train.tok && fail "a backslash left in the tokens"
LC_ALL=C grep -qE '(	| )(quot|amp|lt|gt|nbsp|hellip) ;' test.tok train.tok && fail "an entity left in the tokens"
LC_ALL=C grep -qE '# [0-9]+ ;' test.tok train.tok && fail "a numeric reference left in the tokens"
LC_ALL=C grep -qE '< /? ?(a|b|p|br|font|strong) ' test.tok train.tok && fail "a tag left in the tokens"
# ... and the checks above can fail: the raw corpus has all of these.
gzip -dc "$AGN_DATA/test.csv.gz" | tr 'A-Z' 'a-z' | grep -q 'quot;' || fail "corpus has no quot;?"
ok "stream format, no escapes, entities or tags left"

# Plain and gzip input give the same stream.
gzip -dc "$AGN_DATA/test.csv.gz" > test.csv
agn-tokenize test.csv | cmp - test.tok || fail "plain and gzip input differ"
ok "plain and gzip input agree"

# The same rules implemented in Python (standard library only).
if command -v python3 > /dev/null 2>&1; then
    python3 "$top_srcdir/tests/bench/pytok.py" --stream "$AGN_DATA/test.csv.gz" > py-test.tok
    cmp test.tok py-test.tok || { diff test.tok py-test.tok | head -n 6 >&2; fail "agn-tokenize and pytok.py differ on test.csv.gz"; }
    python3 "$top_srcdir/tests/bench/pytok.py" --stream "$AGN_DATA/train_sample.csv.gz" > py-train.tok
    cmp train.tok py-train.tok || fail "agn-tokenize and pytok.py differ on train_sample.csv.gz"
    ok "agn-tokenize and pytok.py agree on every example"
else
    echo "# python3 not found: the cross-check with pytok.py is left out"
fi
