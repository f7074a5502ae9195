#!/bin/sh
# vocab-bad.sh: bad token streams given to agn-vocab, and bad vocabulary
# files given to agn-shard, one function per case.  Each case: exit 1, a
# message naming FILE:LINE (or FILE), and no output under the final name.
#
# make check runs each case as its own test through tests/bad/vocab-CASE.sh,
# which sources this file; run directly, this file runs every case.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

no_output() { # WHAT
    [ ! -e v.txt ] || fail "output written for $1"
    ! ls v.txt.tmp.* >/dev/null 2>&1 || fail "temporary file left behind for $1"
}

# ---- token streams ----
case_stream_notab() {
    printf '0\tgood line\n1\talso good\nno tab here\n' > notab.txt
    expect_fail 1 "^agn-vocab: notab.txt:3: no tab" agn-vocab -o v.txt notab.txt
    no_output "a stream line without a tab"
    printf '0\ta\n\n' > blank.txt
    expect_fail 1 "^agn-vocab: blank.txt:2: no tab" agn-vocab -o v.txt blank.txt
    no_output "a blank line"
}
case_stream_label() {
    printf '0\tx\n7x\ty\n' > badlabel.txt
    expect_fail 1 "badlabel.txt:2: bad label '7x'" agn-vocab -o v.txt badlabel.txt
    printf '0\tx\n1000\ty\n' > biglabel.txt
    expect_fail 1 "biglabel.txt:2: bad label" agn-vocab -o v.txt biglabel.txt
    printf '\tx\n' > nolabel.txt
    expect_fail 1 "nolabel.txt:1: bad label" agn-vocab -o v.txt nolabel.txt
    no_output "a bad label"
}
case_stream_nul() {
    printf '0\tx\n1\ta\000b\n' > nul.txt
    expect_fail 1 "nul.txt:2: NUL byte" agn-vocab -o v.txt nul.txt
    no_output "a NUL byte"
}
case_stream_gzip() {
    awk 'BEGIN { for (i = 0; i < 20000; i++) printf "%d\tw%d x y z\n", i % 4, i }' | gzip -c > full.gz
    [ "$(wc -c < full.gz)" -gt 30000 ] || fail "gzip stream too small to cut"
    head -c 20000 full.gz > cut.gz
    expect_fail 1 "^agn-vocab: cut.gz: " agn-vocab -o v.txt cut.gz
    no_output "a truncated gzip stream"
}
case_stream_empty() {
    : > empty.txt
    expect_fail 1 "empty input" agn-vocab -o v.txt empty.txt
    : | expect_fail 1 "empty input" agn-vocab -o v.txt
    no_output "an empty input"
}

# ---- vocabulary files (read by agn-shard) ----
printf '0\ta b\n' > s.txt
badvocab() { # NAME PATTERN: agn-shard must refuse vocabulary NAME
    expect_fail 1 "$2" agn-shard -q -v "$1" -L 8 -o out/x s.txt
    [ ! -e out/x-00000.agns ] || fail "$1: shard written"
}
case_file_duplicate() {
    printf '# made by hand\n<pad>\t0\n<unk>\t0\na\t5\nb\t3\na\t1\n' > dup.txt
    badvocab dup.txt "dup.txt:6: duplicate token 'a' \\(first at id 2\\)"
    printf '<pad>\t0\n<unk>\t0\n<unk>\t1\n' > dup2.txt
    badvocab dup2.txt "dup2.txt:3: duplicate token '<unk>'"
}
case_file_count() {
    printf '<pad>\t0\n<unk>\t0\na\tfive\n' > count1.txt
    badvocab count1.txt "count1.txt:3: bad count 'five'"
    printf '<pad>\t0\n<unk>\t0\na\t-5\n' > count2.txt
    badvocab count2.txt "count2.txt:3: bad count '-5'"
    printf '<pad>\t0\n<unk>\t0\na\t\n' > count3.txt
    badvocab count3.txt "count3.txt:3: missing count"
    printf '<pad>\t0\n<unk>\t0\na\t99999999999999999999999\n' > count4.txt
    badvocab count4.txt "count4.txt:3: bad count"
    printf '<pad>\t0\n<unk>\t0\na\t3 \n' > count5.txt
    badvocab count5.txt "count5.txt:3: bad count"
}
case_file_specials() {
    printf 'a\t5\nb\t3\n' > nospecial.txt
    badvocab nospecial.txt "nospecial.txt:1: id 0 must be '<pad>'"
    printf '<unk>\t0\n<pad>\t0\na\t1\n' > swapped.txt
    badvocab swapped.txt "swapped.txt:1: id 0 must be '<pad>'"
    printf '<pad>\t0\n' > short.txt
    badvocab short.txt "short.txt: no '<pad>' and '<unk>'"
    : > emptyvocab.txt
    badvocab emptyvocab.txt "emptyvocab.txt: no '<pad>' and '<unk>'"
}
case_file_malformed() {
    printf '<pad>\t0\n<unk>\t0\na 5\n' > notab.v
    badvocab notab.v "notab.v:3: no tab"
    printf '<pad>\t0\n<unk>\t0\n\t5\n' > emptytok.v
    badvocab emptytok.v "emptytok.v:3: empty token"
    printf '<pad>\t0\n<unk>\t0\na b\t5\n' > space.v
    badvocab space.v "space.v:3: token holds a space"
    badvocab missing.v "missing.v: No such file"
}

case_file_crlf() {
    printf '<pad>\t0\r\n<unk>\t0\r\na\t5\r\n' > crlf.v
    badvocab crlf.v "crlf.v:1: the line ends in CR LF .*dos2unix"
    ! grep -q "$(printf '\r')" .err || fail "the message holds a raw CR"
}
# a line over the readers' limit (64 MiB): no advice to use --max-record,
# which only agn-tokenize has
case_stream_long() {
    { printf '0\t'; head -c 67108870 /dev/zero | tr '\0' a; printf '\n'; } > long.tok
    expect_fail 1 "long.tok:1: line longer than 67108864 bytes \(the longest line it reads\)" \
        agn-vocab -o v.txt long.tok
    ! grep -q -- "--max-record" .err || fail "agn-vocab points to --max-record"
    no_output "a line too long"
    rm -f long.tok
}

# ---- dispatch ----
run_cases vocab-bad vocab- "stream_notab stream_label stream_nul stream_gzip stream_empty stream_long
file_duplicate file_count file_specials file_malformed file_crlf"
