#!/bin/sh
# shard.sh: agn-shard on hand-written streams.  What the shards must hold is
# computed independently: awk maps the stream through the vocabulary
# (unknown -> <unk>, truncation, empty -> <unk>), and a small Python reader
# parses every byte of the file as agn-formats(5) describes it.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

PY=${TORCH_PYTHON:-}
[ -n "$PY" ] || PY=$(command -v python3 || true)

cat > vocab.txt <<'V'
# a vocabulary written by hand
<pad>	0
<unk>	0
the	9
cat	4
sat	3
on	2
mat	1
.	1
#	1
V
printf '0\tthe cat sat on the mat .\n1\tthe dog sat\n-\t\n3\tthe the the the the the the the the the cat\n2\tzebra\n0\t<pad> on\n3\tmat #\n' > s.txt
L=5

awk -v L=$L -f "$top_srcdir/tests/expect-dump.awk" vocab.txt s.txt > want.txt

agn-shard -q -v vocab.txt -L $L -o out/s s.txt
[ -f out/s-00000.agns ] && [ ! -e out/s-00001.agns ] || fail "expected exactly one shard"
agn-shard --dump -v vocab.txt out/s-00000.agns > got.txt
cmp -s got.txt want.txt || { diff got.txt want.txt >&2; fail "dump differs from the expectation"; }
grep -q '^3	mat #$' want.txt || fail "the token '#' is not in the expectation"
ok "dump round trip: unknown tokens, <pad>, '#', truncation, empty example"

# --info agrees with the stream
agn-shard --info out/s-00000.agns > info.txt
ntok=$(awk -F '\t' '{ n += split($2, t, " ") } END { print n }' want.txt)
grep -q "^  examples         7$" info.txt || fail "--info examples"
grep -q "^  tokens           $ntok$" info.txt || fail "--info tokens ($ntok)"
grep -q "^  vocab size       9$" info.txt || fail "--info vocab size"
grep -q "^  max len          5$" info.txt || fail "--info max len"
grep -q " 0: 2 (28.57%) 1: 1 (14.29%) 2: 1 (14.29%) 3: 2 (28.57%)  -: 1$" info.txt ||
    { cat info.txt >&2; fail "--info class balance"; }
grep -q "max 5$" info.txt && grep -q "^  at max len       2 " info.txt || fail "--info lengths"
ok "--info"

# every byte, read by an independent parser
if [ -n "$PY" ]; then
cat > check.py <<'P'
import struct, sys, zlib
path, vocab, want = sys.argv[1], sys.argv[2], sys.argv[3]
lines = open(vocab).read().splitlines()
while lines and lines[0].startswith("#"): lines.pop(0)
toks = [l.split("\t")[0] for l in lines]
b = open(path, "rb").read()
magic, ver, flags, n, nt, V, L, C, vcrc, pb, pcrc, hcrc = struct.unpack("<8sIIQQIIIIQII", b[:64])
assert magic == b"AGNSHRD1" and ver == 1, (magic, ver)
assert hcrc == zlib.crc32(b[:60]), "header crc"
assert vcrc == zlib.crc32("".join(t + "\n" for t in toks).encode()), "vocab crc"
assert V == len(toks), (V, len(toks))
assert pb == len(b) - 64 and pcrc == zlib.crc32(b[64:]), "payload size/crc"
p = zlib.decompress(b[64:]) if flags & 2 else b[64:]
w = 4 if flags & 1 else 2
assert (w == 4) == (V > 65536)
off = struct.unpack("<%dQ" % (n + 1), p[:8 * (n + 1)])
lab = p[8 * (n + 1):8 * (n + 1) + n]
lb = (n + 7) // 8 * 8
assert p[8 * (n + 1) + n:8 * (n + 1) + lb] == bytes(lb - n)
tk = struct.unpack("<%d%s" % (nt, "I" if w == 4 else "H"), p[8 * (n + 1) + lb:])
assert len(p) == 8 * (n + 1) + lb + w * nt and off[0] == 0 and off[n] == nt
lines = []
for i in range(n):
    l = "-" if lab[i] == 255 else str(lab[i])
    lines.append(l + "\t" + " ".join(toks[t] for t in tk[off[i]:off[i + 1]]))
assert lines == open(want).read().splitlines(), "examples differ"
print(n, nt, C, L, "zlib" if flags & 2 else "raw", w)
P
    r=$("$PY" check.py out/s-00000.agns vocab.txt want.txt) || fail "independent parser rejects the shard"
    assert_eq "$r" "7 $ntok 4 5 raw 2" "independent parser"
    ok "every byte as agn-formats(5) says"
fi

# several shards, compression: same examples
agn-shard -q -z -n 2 -v vocab.txt -L $L -o out/z s.txt
[ "$(ls out/z-*.agns | wc -l)" -eq 4 ] || fail "-n 2 over 7 examples should give 4 shards"
agn-shard --dump -v vocab.txt out/z-*.agns | cmp -s - want.txt || fail "dump of compressed shards"
agn-shard --info out/z-00003.agns | grep -q "^  compression      zlib$" || fail "zlib flag"
agn-shard --info out/z-00003.agns | grep -q "^  examples         1$" || fail "last shard holds the rest"
if [ -n "$PY" ]; then
    awk 'NR <= 2' want.txt > want01.txt
    r=$("$PY" check.py out/z-00000.agns vocab.txt want01.txt) || fail "parser on a compressed shard"
    assert_eq "$r" "2 $(awk -F '\t' 'NR <= 2 { n += split($2, t, " ") } END { print n }' want.txt) 4 5 zlib 2" "compressed shard"
fi
ok "several compressed shards"

# a shorter rerun removes the stale shards of the longer run
agn-shard -q -n 4 -v vocab.txt -L $L -o out/z s.txt
[ -f out/z-00001.agns ] && [ ! -e out/z-00002.agns ] && [ ! -e out/z-00003.agns ] ||
    fail "stale shards left"
agn-shard --dump -v vocab.txt out/z-*.agns | cmp -s - want.txt || fail "after rerun"
ok "stale shards removed"

# --info on several shards ends with their total
agn-shard --info out/z-*.agns > zinfo.txt
grep -q "^total of 2 shards:$" zinfo.txt || fail "--info total"
sed -n '/^total/,$p' zinfo.txt > ztotal.txt
grep -q "^  examples         7$" ztotal.txt && grep -q "^  tokens           $ntok$" ztotal.txt &&
    grep -q " 0: 2 (28.57%) 1: 1 (14.29%) 2: 1 (14.29%) 3: 2 (28.57%)  -: 1$" ztotal.txt ||
    { cat ztotal.txt >&2; fail "--info total counts"; }
ok "--info total"

# from stdin, several inputs
head -n 3 s.txt > a.txt; tail -n +4 s.txt > b.txt
agn-shard -q -v vocab.txt -L $L -o out/m a.txt - < b.txt
agn-shard --dump -v vocab.txt out/m-00000.agns | cmp -s - want.txt || fail "file + stdin"
ok "several inputs"

# a vocabulary above 65536 entries: u32 ids
awk 'BEGIN { print "<pad>\t0"; print "<unk>\t0"; for (i = 0; i < 70000; i++) print "w" i "\t1" }' > big.txt
printf '1\tw0 w69999 w65534 nope w65535\n-\tw12345\n' > bs.txt
awk -v L=8 -f "$top_srcdir/tests/expect-dump.awk" big.txt bs.txt > bwant.txt
agn-shard -q -v big.txt -L 8 -o out/b bs.txt
agn-shard --info out/b-00000.agns | grep -q "^  token ids        u32$" || fail "u32 ids"
agn-shard --dump -v big.txt out/b-00000.agns | cmp -s - bwant.txt || fail "u32 round trip"
[ -z "$PY" ] || "$PY" check.py out/b-00000.agns big.txt bwant.txt > /dev/null || fail "u32 parse"
ok "u32 token ids"

# --classes
printf '5\ta\n' > c5.txt
expect_fail 1 "c5.txt:1: label 5 is not a class 0..3" agn-shard -q -v vocab.txt -L 4 -o out/c c5.txt
agn-shard -q -C 6 -v vocab.txt -L 4 -o out/c c5.txt
agn-shard --info out/c-00000.agns | grep -q "^  classes          6$" || fail "-C 6"
ok "--classes"

# --json
agn-shard --info --json out/s-00000.agns > j.txt
if [ -n "$PY" ]; then
    "$PY" -c 'import json,sys; d=json.loads(open(sys.argv[1]).read()); assert d["examples"]==7 and d["classes"]==[2,1,1,2] and d["unknown_label"]==1, d' j.txt ||
        fail "--json"
fi
ok "--json"

# usage
agn-shard --help | grep -q -- '--per-shard' || fail "--help"
agn-shard --version | grep -q '^agn-shard (agn) ' || fail "--version"
expect_fail 2 "-v VOCAB is required" agn-shard -L 4 -o out/u s.txt
expect_fail 2 "-L LEN is required" agn-shard -v vocab.txt -o out/u s.txt
expect_fail 2 "-o PREFIX is required" agn-shard -v vocab.txt -L 4 s.txt
expect_fail 2 "max-len" agn-shard -v vocab.txt -L 0 -o out/u s.txt
expect_fail 2 "--dump needs the vocabulary" agn-shard --dump out/s-00000.agns
expect_fail 2 "Try 'agn-shard --help'" agn-shard --bogus
ok "usage errors"

# the worked example of agn-formats(5), byte for byte
printf '<pad>\t0\n<unk>\t0\na\t2\nb\t1\n' > exv.txt
printf '0\ta b\n-\tb\n' > exs.txt
agn-shard -q -v exv.txt -L 8 -o ex exs.txt
od -A d -t x1 ex-00000.agns | grep '^[0-9]\{7\} ' > ex.od
grep '^[0-9]\{7\} ' "$top_srcdir/man/agn-formats.5" > man.od
[ -s man.od ] || fail "no dump in agn-formats.5"
cmp -s ex.od man.od || { diff ex.od man.od >&2; fail "agn-formats(5) example differs from the shard"; }
ok "the example of agn-formats(5) is what agn-shard writes"
