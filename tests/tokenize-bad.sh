#!/bin/sh
# tokenize-bad.sh: agn-tokenize on bad input, one function per case.  Each
# case checks the exit status, the "agn-tokenize: FILE:LINE: ..." message,
# and that -o leaves neither the output nor a temporary file behind; then
# what --skip-bad makes of the same input.
#
# make check runs each case as its own test through
# tests/bad/tokenize-CASE.sh, which sources this file; run directly, this
# file runs every case.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

GOOD='"1","good","row"'

# no_output: the output named with -o must not exist, nor any temporary.
no_output() {
    [ ! -e out.tok ] || fail "$1: out.tok was written"
    [ -z "$(ls | grep '\.tmp\.' || true)" ] || fail "$1: temporary file left behind"
}

# bad FILE STATUS PATTERN [OPTIONS...]: agn-tokenize -o out.tok must fail.
bad() {
    f=$1; st=$2; pat=$3; shift 3
    expect_fail "$st" "$pat" agn-tokenize "$@" -o out.tok "$f"
    no_output "$f"
}

# skipped FILE N LINES: with --skip-bad, N rows skipped, LINES lines out, exit 0.
skipped() {
    agn-tokenize --skip-bad -o out.tok "$1" 2> skip.err || { cat skip.err >&2; fail "$1: --skip-bad failed"; }
    grep -q "^agn-tokenize: skipped $2 bad rows\{0,1\} of " skip.err || { cat skip.err >&2; fail "$1: count of skipped rows"; }
    assert_eq "$(wc -l < out.tok | tr -d ' ')" "$3" "$1: lines written with --skip-bad"
    rm -f out.tok
}

# ---- unterminated quote at the end of the input -------------------------------------
case_unterminated() {
    printf '%s\n"2","title","never closed\nmore text\n' "$GOOD" > unterminated.csv
    bad unterminated.csv 1 '^agn-tokenize: unterminated\.csv:2: unterminated quoted field'
    skipped unterminated.csv 1 1
}

# ---- 2 or 4 fields -------------------------------------------------------------------
case_fields() {
    printf '%s\n"1","only two"\n%s\n' "$GOOD" "$GOOD" > two.csv
    bad two.csv 1 '^agn-tokenize: two\.csv:2: expected 3 fields \(class,title,description\), found 2'
    skipped two.csv 1 2
    printf '%s\n%s\n"1","a","b","c"\n' "$GOOD" "$GOOD" > four.csv
    bad four.csv 1 '^agn-tokenize: four\.csv:3: expected 3 fields .*found 4'
    skipped four.csv 1 2
}

# ---- class outside 1..4, or not a number -----------------------------------------------
case_class() {
    for cls in 0 5 x 1.5 -1 '' ' 1' 99999999999; do
        printf '%s\n"%s","t","d"\n' "$GOOD" "$cls" > class.csv
        bad class.csv 1 "^agn-tokenize: class\\.csv:2: class '.*' is not a number from 1 to 4"
        skipped class.csv 1 1
    done
    printf '5,unquoted,class\n' > class5.csv
    bad class5.csv 1 "^agn-tokenize: class5\\.csv:1: class '5' is not a number from 1 to 4"
    agn-tokenize -C 5 class5.csv > /dev/null || fail "class 5 with -C 5"
}

# ---- empty title and description ---------------------------------------------------------
case_empty_row() {
    printf '%s\n"1","",""\n"2"," ","  "\n' "$GOOD" > empty-row.csv
    bad empty-row.csv 1 '^agn-tokenize: empty-row\.csv:2: empty title and description'
    skipped empty-row.csv 2 1
    # Fields that hold something but clean up to nothing: a line with no tokens.
    printf '"1","<b></b>","&lt;br&gt;"\n' > tagsonly.csv
    agn-tokenize tagsonly.csv > got.tok
    printf '0\t\n' | cmp - got.tok || fail "a row of tags only must give a line with no tokens"
}

# ---- invalid UTF-8 and NUL inside a field: not fatal -----------------------------------------
case_utf8_nul() {
    # \377 alone, a truncated 3-byte sequence (\342\202) before a space, an
    # overlong \300\257, a surrogate \355\240\200, and a NUL: each invalid
    # maximal subsequence becomes one U+FFFD token; NUL separates.
    printf '"1","caf\377 x\342\202 y","\300\257 \355\240\200 nul\000byte"\n' > utf8.csv
    agn-tokenize -o out.tok utf8.csv 2> utf8.err || { cat utf8.err >&2; fail "invalid UTF-8 must not be fatal"; }
    R=$(printf '\357\277\275')
    printf '0\tcaf %s x %s y %s %s %s %s %s nul byte\n' "$R" "$R" "$R" "$R" "$R" "$R" "$R" > want.tok
    cmp want.tok out.tok || { od -c out.tok >&2; fail "invalid UTF-8 replacement"; }
    grep -q '^agn-tokenize: utf8\.csv:1: warning: 7 invalid UTF-8 sequences replaced by U+FFFD' utf8.err ||
        { cat utf8.err >&2; fail "invalid UTF-8 warning"; }
    grep -q '^agn-tokenize: utf8\.csv:1: warning: 1 control character read as space' utf8.err ||
        { cat utf8.err >&2; fail "NUL warning"; }
    iconv -f UTF-8 -t UTF-8 out.tok > /dev/null 2>&1 || fail "output is not valid UTF-8"
    LC_ALL=C grep -q "$(printf '[\001-\010\013-\037]')" out.tok && fail "control character in the output"
    agn-tokenize -q utf8.csv 2> quiet.err > /dev/null
    [ ! -s quiet.err ] || fail "--quiet still warns"
    rm -f out.tok
}

# ---- a 5 MB field: accepted under the default 8M limit, refused above a smaller one ---------
case_big_field() {
    {
        printf '"2","big","'
        awk 'BEGIN { for (i = 0; i < 625000; i++) printf "%s", "wordy a " }'
        printf '"\n%s\n' "$GOOD"
    } > big.csv
    agn-tokenize big.csv > big.tok || fail "a 5 MB field under the default limit"
    assert_eq "$(wc -l < big.tok | tr -d ' ')" 2 "lines from the 5 MB field"
    assert_eq "$(head -n 1 big.tok | cut -f 2 | tr ' ' '\n' | grep -c '^wordy$')" 625000 "tokens of the 5 MB field"
    bad big.csv 1 '^agn-tokenize: big\.csv:1: record longer than 1048576 bytes' --max-record=1M
    agn-tokenize --skip-bad --max-record=1M big.csv > got.tok 2> skip.err
    printf '0\tgood row\n' | cmp - got.tok || fail "--skip-bad must resume after the long record"
    grep -q 'skipped 1 bad row of 2' skip.err || fail "long record count"
    printf '1\t%s\n' "$(awk 'BEGIN { for (i = 0; i < 3000; i++) printf "x" }')" > long.tsv
    expect_fail 1 '^agn-tokenize: long\.tsv:1: line longer than 1024 bytes' agn-tokenize -f tsv --max-record=1k long.tsv
}

# ---- truncated and corrupt gzip -------------------------------------------------------------------
case_gzip() {
    awk 'BEGIN { for (i = 1; i <= 3000; i++) printf "\"%d\",\"title %d\",\"some description text %d\"\n", i % 4 + 1, i, i }' > many.csv
    gzip -9 -c many.csv > many.csv.gz
    size=$(wc -c < many.csv.gz)
    head -c $((size - 9)) many.csv.gz > trunc.csv.gz      # the trailer cut
    bad trunc.csv.gz 1 '^agn-tokenize: trunc\.csv\.gz: truncated gzip data'
    head -c $((size / 2)) many.csv.gz > half.csv.gz        # the deflate data cut
    bad half.csv.gz 1 '^agn-tokenize: half\.csv\.gz: truncated gzip data'
    bad half.csv.gz 1 'truncated gzip data' --skip-bad   # not a row: --skip-bad does not hide it
    # a flipped byte in the middle: a deflate error or a CRC mismatch
    off=$((size / 2))
    { head -c $off many.csv.gz; head -c $((off + 1)) many.csv.gz | tail -c 1 | tr '\000-\377' '\377\000-\376'; tail -c +$((off + 2)) many.csv.gz; } > flip.csv.gz
    bad flip.csv.gz 1 '^agn-tokenize: flip\.csv\.gz: corrupt gzip data'
    { cat many.csv.gz; printf 'garbage'; } > trail.csv.gz
    bad trail.csv.gz 1 '^agn-tokenize: trail\.csv\.gz: trailing garbage after gzip data'
}

# ---- empty input ------------------------------------------------------------------------------------
case_empty_input() {
    : > empty.csv
    bad empty.csv 1 '^agn-tokenize: empty\.csv:1: no rows \(empty input\)'
    printf '\n\r\n\n' > blank.csv
    bad blank.csv 1 '^agn-tokenize: blank\.csv:1: no rows'
    expect_fail 1 '^agn-tokenize: \(stdin\):1: no rows' agn-tokenize -f text < empty.csv
    gzip -c empty.csv > empty.csv.gz
    bad empty.csv.gz 1 '^agn-tokenize: empty\.csv\.gz:1: no rows'
}

# ---- one empty file among several: the rows of the others are kept --------------------------------
case_empty_among() {
    : > empty.csv
    printf '%s\n' "$GOOD" > one.csv
    agn-tokenize -o out.tok one.csv empty.csv one.csv 2> among.err || { cat among.err >&2; fail "an empty file among others failed"; }
    assert_eq "$(wc -l < out.tok | tr -d ' ')" 2 "rows of the two non-empty files"
    grep -q '^agn-tokenize: empty\.csv: warning: no rows (empty file)$' among.err || { cat among.err >&2; fail "no warning for the empty file"; }
    rm -f out.tok
    bad empty.csv 1 '^agn-tokenize: no rows in any of the 2 inputs \(empty input\)' empty.csv
}

# ---- compressed by a program agn does not read: refused, saying how to feed it --------------------
case_compressed() {
    printf '\3757zXZ\000\000\004\346\326\264F' > x.csv.xz
    bad x.csv.xz 1 '^agn-tokenize: x\.csv\.xz: xz-compressed, which agn does not read; decompress it into a pipe: xz -dc x\.csv\.xz \| agn-tokenize -$'
    printf 'BZh91AY&SY\001\002' > x.csv.bz2
    bad x.csv.bz2 1 'x\.csv\.bz2: bzip2-compressed.*bzip2 -dc x\.csv\.bz2 \| agn-tokenize -$'
    printf '\050\265\057\375\044\000' > x.csv.zst
    bad x.csv.zst 1 'x\.csv\.zst: zstd-compressed.*zstd -dc x\.csv\.zst \| agn-tokenize -$'
    expect_fail 1 '^agn-tokenize: \(stdin\): xz-compressed.*xz -dc FILE \| agn-tokenize -$' agn-tokenize -f text < x.csv.xz
    expect_fail 1 'bzip2-compressed' agn-vocab < x.csv.bz2
    # text that merely starts like bzip2's magic is text
    printf 'BZh9 is a word\n' | agn-tokenize -f text > bz.tok || fail "text starting with BZh9 refused"
    assert_eq "$(cat bz.tok)" "-	bzh9 is a word" "text starting with BZh9"
}

# ---- the output is also an input ---------------------------------------------------------------
case_same_output() {
    printf '%s\n' "$GOOD" > same.csv
    cp same.csv same.orig
    expect_fail 1 '^agn-tokenize: same\.csv: the output is also an input' agn-tokenize -o same.csv same.csv
    cmp -s same.csv same.orig || fail "the input was replaced"
    ln -s same.csv link.csv
    expect_fail 1 'the output is also an input' agn-tokenize -o link.csv same.csv
    cmp -s same.csv same.orig || fail "the input was replaced through a link"
}

# ---- not CSV after a closing quote; a file that is not there ------------------------------------
case_junk() {
    printf '%s\n"1","a"x,"b"\n%s\n' "$GOOD" "$GOOD" > junk.csv
    bad junk.csv 1 "^agn-tokenize: junk\\.csv:2: unexpected 'x' after a closing quote"
    skipped junk.csv 1 2
    bad no-such-file.csv 1 '^agn-tokenize: no-such-file\.csv: No such file or directory'
}

# ---- --skip-bad over a mixture; a bad row after good ones on stdout -------------------------------------
case_skip_bad() {
    {
        printf '%s\n"1","x"\n"7","a","b"\n%s\n"1","",""\n' "$GOOD" "$GOOD"
        i=0; while [ $i -lt 12 ]; do printf '"0","a","b"\n'; i=$((i + 1)); done
    } > mixed.csv
    agn-tokenize --skip-bad mixed.csv > got.tok 2> skip.err
    assert_eq "$(wc -l < got.tok | tr -d ' ')" 2 "good rows of the mixture"
    assert_eq "$(grep -c '(skipped)' skip.err)" 10 "skipped rows shown"
    grep -q 'further bad rows are counted, not shown' skip.err || fail "no note on hidden rows"
    grep -q '^agn-tokenize: skipped 15 bad rows of 17$' skip.err || { cat skip.err >&2; fail "mixture count"; }
    agn-tokenize --skip-bad -q mixed.csv 2> skip.err > /dev/null
    grep -c . skip.err | grep -qx 1 || fail "--quiet --skip-bad prints only the count"
}

# ---- dispatch ----
run_cases tokenize-bad tokenize-bad- "unterminated fields class empty_row utf8_nul big_field gzip empty_input
empty_among compressed same_output junk skip_bad"
