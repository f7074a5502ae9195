#!/bin/sh
# shard-bad.sh: bad input to agn-shard, one function per case: damaged
# shards (truncated in each region, flipped bytes, headers and payloads that
# lie with their CRCs made right again), a shard read with another
# vocabulary, bad streams.  Each case: exit 1, a message naming the file,
# and no shard left under a final name by a failed run.
#
# make check runs each case as its own test through tests/bad/shard-CASE.sh,
# which sources this file; run directly, this file runs every case.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

PY=${TORCH_PYTHON:-}
[ -n "$PY" ] || PY=$(command -v python3 || true)

printf '<pad>\t0\n<unk>\t0\na\t3\nb\t2\nc\t1\n' > v.txt
# 10 examples, 3 tokens each: payload = 8*11 offsets + 16 labels + 2*30 tokens
awk 'BEGIN { for (i = 0; i < 10; i++) printf "%d\ta b c\n", i % 4 }' > s.txt
agn-shard -q -v v.txt -L 8 -o good s.txt
f=good-00000.agns
size=$(wc -c < $f)
assert_eq "$size" "$((64 + 88 + 16 + 60))" "shard size"

both() { # FILE PATTERN: --info and --dump both refuse FILE
    expect_fail 1 "^agn-shard: $1: $2" agn-shard --info "$1"
    expect_fail 1 "^agn-shard: $1: $2" agn-shard --dump -v v.txt "$1"
}

# ---- truncated in each region ----
case_truncated_header() {
    head -c 40 $f > t-header.agns
    both t-header.agns "truncated: the file ends inside the header \\(40 of 64"
    : > t-empty.agns
    both t-empty.agns "truncated: the file ends inside the header \\(0 of 64"
}
case_truncated_offsets() {
    head -c $((64 + 50)) $f > t-offsets.agns
    both t-offsets.agns "truncated: the file ends inside the offsets region"
}
case_truncated_labels() {
    head -c $((64 + 88 + 5)) $f > t-labels.agns
    both t-labels.agns "truncated: the file ends inside the labels region"
}
case_truncated_tokens() {
    head -c $((size - 1)) $f > t-tokens.agns
    both t-tokens.agns "truncated: the file ends inside the tokens region"
}
case_trailing_data() {
    cat $f $f > t-long.agns
    both t-long.agns "228 bytes of trailing data after the payload"
}

# ---- flipped bytes ----
case_payload_crc() { # one flipped byte in each region of the payload
    for at in 70 $((64 + 90)) $((size - 2)); do
        cp $f flip.agns
        b=$(dd if=$f bs=1 skip=$at count=1 2>/dev/null | od -An -tu1 | tr -d ' ')
        printf "$(printf '\\%03o' $(((b + 1) % 256)))" | dd of=flip.agns bs=1 seek=$at conv=notrunc 2>/dev/null
        cmp -s $f flip.agns && fail "byte $at not flipped"
        both flip.agns "payload CRC mismatch"
    done
}
case_header_crc() {
    cp $f hflip.agns
    printf 'Z' | dd of=hflip.agns bs=1 seek=20 conv=notrunc 2>/dev/null
    both hflip.agns "header CRC mismatch"
    printf 'X' | dd of=hflip.agns bs=1 seek=0 conv=notrunc 2>/dev/null
    both hflip.agns "bad magic"
}
case_compressed() {
    agn-shard -q -z -v v.txt -L 8 -o zip s.txt
    z=zip-00000.agns
    zs=$(wc -c < $z)
    head -c $((zs - 3)) $z > zt.agns
    both zt.agns "truncated: the file ends inside the compressed payload"
    cp $z zf.agns
    printf 'Q' | dd of=zf.agns bs=1 seek=$((zs - 5)) conv=notrunc 2>/dev/null
    both zf.agns "payload CRC mismatch"
}

# ---- headers and payloads that lie, their CRCs made right again ----
lie() { # KIND PATTERN
    [ -n "$PY" ] || skip "no python3 to patch the shard"
    cat > patch.py <<'P'
# patch.py IN OUT KIND: rewrite one field, then fix the CRCs so that only the
# semantic checks can catch it
import struct, sys, zlib
src, dst, kind = sys.argv[1:4]
b = bytearray(open(src, "rb").read())
n = struct.unpack_from("<Q", b, 16)[0]
if kind == "examples":   struct.pack_into("<Q", b, 16, n + 5)
elif kind == "tokens":   struct.pack_into("<Q", b, 24, 1 << 63)
elif kind == "version":  struct.pack_into("<I", b, 8, 2)
elif kind == "flags":    struct.pack_into("<I", b, 12, 8)
elif kind == "huge":     struct.pack_into("<Q", b, 16, (1 << 64) - 1)
elif kind == "maxlen":   struct.pack_into("<I", b, 36, 2)
elif kind == "id":       struct.pack_into("<H", b, len(b) - 2, 7)
elif kind == "label":    b[64 + 8 * (n + 1) + 3] = 9
elif kind == "pad":      b[64 + 8 * (n + 1) + n] = 1
elif kind == "offset":   struct.pack_into("<Q", b, 64 + 8 * 2, 3)
elif kind == "decrease": struct.pack_into("<Q", b, 64 + 8 * 3, 2)
elif kind == "end":      struct.pack_into("<Q", b, 64 + 8 * n, 29)
struct.pack_into("<I", b, 56, zlib.crc32(bytes(b[64:])))
struct.pack_into("<I", b, 60, zlib.crc32(bytes(b[:60])))
open(dst, "wb").write(b)
P
    "$PY" patch.py $f "$1.agns" "$1"
    both "$1.agns" "$2"
}
case_more_examples() {
    lie examples "bad header: 15 examples and 30 tokens need [0-9]+ payload bytes, the file holds 164"
    lie huge "bad header: 18446744073709551615 examples"
    lie tokens "bad header: 10 examples and [0-9]+ tokens overflow"
}
case_bad_header_fields() {
    lie version "format version 2"
    lie flags "unknown flags 0x8"
    lie maxlen "example 0 has 3 tokens \\(must be 1..2\\)"
}
case_bad_payload() {
    lie id "token 29 has id 7, outside the vocabulary of 5"
    lie label "example 3 has label 9"
    lie pad "nonzero padding after the labels"
    lie offset "example 1 has 0 tokens"
    lie decrease "offsets decrease at example 2 \\(6, then 2\\)"
    lie end "offsets end at 29, the header says 30 tokens|example 9 has"
}

# ---- read with another vocabulary ----
case_other_vocab() {
    printf '<pad>\t0\n<unk>\t0\na\t3\nc\t2\nb\t1\n' > v2.txt
    expect_fail 1 "^agn-shard: $f: built with another vocabulary \\(size 5, CRC [0-9a-f]{8}\\) than v2.txt" \
        agn-shard --dump -v v2.txt $f
    [ ! -s .out ] || fail "--dump printed examples through the wrong vocabulary"
}

# ---- --info goes on after a bad shard, and says so in its status ----
case_info_continues() {
    head -c $((size - 1)) $f > t-tokens.agns
    set +e
    agn-shard --info t-tokens.agns $f > info.out 2> info.err
    rc=$?
    set -e
    assert_eq "$rc" 1 "--info status with one bad shard"
    grep -q "^$f:" info.out || fail "--info stopped at the bad shard"
    grep -q "^agn-shard: t-tokens.agns: truncated" info.err || fail "--info message"
    expect_fail 1 "^agn-shard: missing.agns: No such file" agn-shard --info missing.agns
}

# ---- bad streams: nothing stays under a final name, even full shards ----
case_stream_notab() {
    printf '0\ta\n1\tb\n2\tc\nno tab\n' > notab.txt
    expect_fail 1 "^agn-shard: notab.txt:4: no tab" agn-shard -n 1 -v v.txt -L 4 -o out/nt notab.txt
    grep -q "no shard written; any earlier set out/nt-NNNNN.agns is unchanged" .err ||
        fail "not said that no shard was written"
    [ -z "$(ls out/ 2>/dev/null)" ] || fail "files left: $(ls out)"
}
case_stream_label() {
    printf '0\ta\n9\tb\n' > lab.txt
    expect_fail 1 "^agn-shard: lab.txt:2: label 9 is not a class 0..3" agn-shard -v v.txt -L 4 -o out/l lab.txt
    [ -z "$(ls out/ 2>/dev/null)" ] || fail "files left for a bad label"
}
case_empty_input() {
    : > empty.txt
    expect_fail 1 "empty input" agn-shard -v v.txt -L 4 -o out/e empty.txt
    : | expect_fail 1 "empty input" agn-shard -v v.txt -L 4 -o out/e
    [ -z "$(ls out/ 2>/dev/null)" ] || fail "files left for an empty input"
}

# ---- dispatch ----
run_cases shard-bad shard- "truncated_header truncated_offsets truncated_labels truncated_tokens trailing_data
payload_crc header_crc compressed more_examples bad_header_fields bad_payload other_vocab
info_continues stream_notab stream_label empty_input"
