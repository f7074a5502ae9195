#!/bin/sh
# tokenize.sh: agn-tokenize on hand-written rows.  The expected token lines
# were worked out by hand from the rules in agn-tokenize(1), not copied from
# the program: the AG News clean-up (backslashes, bare and full HTML
# references, tags), CSV details (doubled quotes, newlines in quotes, CRLF,
# BOM, unquoted fields), -f text and -f tsv, gzip input, several files,
# stdin, -o, and the options.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

TAB=$(printf '\t')

# ---- clean-up and split ------------------------------------------------------
{
    printf '%s\n' '"3","Wall St. Bears Claw Back (Reuters)","Reuters - Short-sellers, Wall Street'"'"'s dwindling\band of ultra-cynics, are seeing green again."'
    printf '%s\n' '"1","Oil #36;50 a barrel","Prices rose \$2.5 to  #36;50 amp; more quot;fast quot; &lt;b&gt;today&lt;/b&gt; AT&amp;T"'
    printf '%s\n' '"4","He said ""hi""","line one'
    printf '%s\n' 'line two <a href=""http://x.com/"">link</a> <MSFT.O>"'
    printf '%s\n' '"2","Hello","#151;dash and &#8212; em &hellip;"'
    printf '%s\n' '"2","xamp; 3#39;s","#5; &#5; &amp;lt; &#x41;B"'
} > rows.csv
cat > want.tok <<EOT
2${TAB}wall st . bears claw back ( reuters ) reuters - short - sellers , wall street ' s dwindling band of ultra - cynics , are seeing green again .
0${TAB}oil \$ 50 a barrel prices rose \$ 2 . 5 to \$ 50 & more " fast " today at & t
3${TAB}he said " hi " line one line two link < msft . o >
1${TAB}hello - dash and - em . . .
1${TAB}xamp ; 3 ' s # 5 ; & lt ; ab
EOT
agn-tokenize rows.csv > got.tok
diff want.tok got.tok || fail "clean-up and split differ from the hand-derived tokens"
ok "clean-up and split of hand-written rows"

# ---- CSV details: BOM, CRLF, unquoted fields, blank lines, no final newline -----
printf '\357\273\2773,Title one,Desc one\r\n"1","T2","D2"\r\n\r\n\n4,a,b' > crlf.csv
printf '2\ttitle one desc one\n0\tt2 d2\n3\ta b\n' > want.tok
agn-tokenize crlf.csv > got.tok
cmp want.tok got.tok || { od -c got.tok >&2; fail "BOM/CRLF/blank lines"; }
ok "BOM, CRLF, unquoted fields, blank lines, missing final newline"

# A newline and a CRLF inside quotes are white space in the text; the next
# record keeps its own line number (checked through an error on line 5).
printf '"1","a\r\nb","c\nd"\n"2","e","f"\n"9","g","h"\n' > nl.csv
expect_fail 1 '^agn-tokenize: nl\.csv:5: class' agn-tokenize nl.csv
agn-tokenize --skip-bad -q nl.csv > got.tok 2>/dev/null
printf '0\ta b c d\n1\te f\n' > want.tok
cmp want.tok got.tok || fail "newlines inside quotes"
ok "newlines inside quotes, line numbers after them"

# ---- non-ASCII ---------------------------------------------------------------------
# é stays in its word; À is lower-cased; ’ becomes '; € is a token; a
# no-break space separates; a soft hyphen vanishes inside its word.
printf '"1","Caf\303\251 \303\200B","it\342\200\231s 5\342\202\254 a\302\240b co\302\255op"\n' > u.csv
printf '0\tcaf\303\251 \303\240b it '"'"' s 5 \342\202\254 a b coop\n' > want.tok
agn-tokenize u.csv > got.tok
cmp want.tok got.tok || { od -c got.tok >&2; fail "non-ASCII handling"; }
ok "UTF-8 letters, quotes, signs, spaces"

# ---- -f text and -f tsv ------------------------------------------------------------
printf 'Stocks rally as the Fed cuts rates\n\nA&amp;B\n' | agn-tokenize -f text > got.tok
printf -- '-\tstocks rally as the fed cuts rates\n-\t\n-\ta & b\n' > want.tok
cmp want.tok got.tok || fail "-f text"
ok "-f text: one line out per line in, label -"

printf '3\tTitle\twith tab\n-\tunknown one\r\n1\tx\n' | agn-tokenize -f tsv > got.tok
printf -- '2\ttitle with tab\n-\tunknown one\n0\tx\n' > want.tok
cmp want.tok got.tok || fail "-f tsv"
expect_fail 1 '^agn-tokenize: \(stdin\):2: no tab' sh -c 'printf "1\tok\nnotab\n" | agn-tokenize -f tsv'
expect_fail 1 '^agn-tokenize: \(stdin\):1: class .0. is not a number from 1 to 4' \
    sh -c 'printf "0\tzero\n" | agn-tokenize -f tsv'
ok "-f tsv: CLASS<TAB>text, 1-based, - for unknown"

# ---- gzip, several files, stdin, -o ----------------------------------------------------
agn-tokenize rows.csv > plain.tok
gzip -c rows.csv > rows.gz           # no .gz-looking name needed: magic decides
agn-tokenize rows.gz > gz.tok
cmp plain.tok gz.tok || fail "gzip input differs from plain"
agn-tokenize - < rows.gz > gzstdin.tok
cmp plain.tok gzstdin.tok || fail "gzip on stdin differs"
printf '"2","second","file"\n' > other.csv
gzip -c other.csv > other.csv.gz
cat rows.gz other.csv.gz > two.gz    # two gzip members
agn-tokenize two.gz > two.tok
{ agn-tokenize rows.csv; agn-tokenize other.csv; } > want.tok
cmp want.tok two.tok || fail "concatenated gzip members"
agn-tokenize rows.csv other.csv.gz > files.tok
cmp want.tok files.tok || fail "several files"
agn-tokenize - other.csv < rows.csv > mixed.tok
cmp want.tok mixed.tok || fail "stdin as - among files"
agn-tokenize -o out.tok rows.csv other.csv
cmp want.tok out.tok || fail "-o"
[ -z "$(ls | grep '\.tmp\.' || true)" ] || fail "temporary file left behind"
ok "gzip by magic, concatenated members, several files, stdin, -o"

# ---- options -----------------------------------------------------------------------------
agn-tokenize --help > help.out
grep -q '^Usage: agn-tokenize' help.out || fail "--help"
agn-tokenize --version | grep -q '^agn-tokenize (agn) ' || fail "--version"
expect_fail 2 "Try 'agn-tokenize --help'" agn-tokenize --bogus
expect_fail 2 "format" agn-tokenize -f xml rows.csv
expect_fail 2 "classes" agn-tokenize -C 0 rows.csv
expect_fail 2 "max-record" agn-tokenize --max-record=12Q rows.csv
printf '"7","seven","classes"\n' > seven.csv
agn-tokenize -C 7 seven.csv > got.tok
printf '6\tseven classes\n' > want.tok
cmp want.tok got.tok || fail "-C 7"
ok "--help, --version, usage errors, --classes"

# ---- a write error is an error ---------------------------------------------------------------
if [ -w /dev/full ]; then
    expect_fail 1 '^agn-tokenize: .*write error.*No space left on device' sh -c 'agn-tokenize rows.csv > /dev/full'
    ok "a full disk is reported, exit 1"
fi
