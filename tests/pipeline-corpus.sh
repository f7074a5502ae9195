#!/bin/sh
# pipeline-corpus.sh: agn-tokenize -> agn-vocab (from the train sample) ->
# agn-shard on the real AG News files.  The counts come from SOURCE.md and
# from the CSV itself; the dump must equal the tokenizer's output mapped
# through the vocabulary by awk (unknown tokens as <unk>, truncation at 128).
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

need_corpus test.csv.gz train_sample.csv.gz
command -v agn-tokenize >/dev/null 2>&1 || skip "agn-tokenize is not built"
PY=${TORCH_PYTHON:-}
[ -n "$PY" ] || PY=$(command -v python3 || true)

agn-tokenize "$AGN_DATA/train_sample.csv.gz" > train.tok
agn-tokenize "$AGN_DATA/test.csv.gz" > test.tok
assert_eq "$(wc -l < test.tok)" 7600 "test examples"
assert_eq "$(wc -l < train.tok)" 5558 "train examples"
# class counts of the tokenizer's output, against SOURCE.md and the CSV
classes() { cut -f1 "$1" | sort | uniq -c | awk '{ printf "%s%s", (NR > 1 ? "," : ""), $1 }'; }
csv_classes() { gzip -dc "$1" | cut -c2 | sort | uniq -c | awk '{ printf "%s%s", (NR > 1 ? "," : ""), $1 }'; }
assert_eq "$(classes test.tok)" "1900,1900,1900,1900" "test classes"
assert_eq "$(classes train.tok)" "1420,1335,1388,1415" "train classes (SOURCE.md)"
assert_eq "$(csv_classes "$AGN_DATA/train_sample.csv.gz")" "1420,1335,1388,1415" "train classes in the CSV"
ok "token streams: 7600 and 5558 examples, classes as SOURCE.md says"

agn-vocab -q -o vocab.txt train.tok
# the entries: the lines after the leading '#' header lines ("#" itself is a token)
awk '!body && /^#/ { next } { body = 1; print }' vocab.txt > entries.txt
assert_eq "$(sed -n 1p entries.txt | cut -f1)" "<pad>" "id 0"
assert_eq "$(sed -n 2p entries.txt | cut -f1)" "<unk>" "id 1"
V=$(wc -l < entries.txt)
[ "$V" -le 20000 ] && [ "$V" -gt 1000 ] || fail "vocabulary size $V"
ntrain=$(cut -f2 train.tok | wc -w)
grep -q "input: 5558 examples, $ntrain tokens" vocab.txt || fail "vocabulary header: $(head -n 1 vocab.txt)"
ok "vocabulary of $V entries"

agn-shard -q -v vocab.txt -L 128 -o shards/test test.tok
agn-shard -q -z -v vocab.txt -L 128 -o shards/train train.tok

for split in test train; do
    awk -v L=128 -f "$top_srcdir/tests/expect-dump.awk" vocab.txt $split.tok > $split.want
    agn-shard --dump -v vocab.txt shards/$split-*.agns > $split.got
    cmp -s $split.got $split.want || { diff $split.got $split.want | head >&2; fail "$split: dump round trip"; }
done
# the round trip is exact wherever nothing was unknown or cut
same=$(paste test.tok test.got | awk -F '\t' '$2 == $4' | wc -l)
[ "$same" -gt 0 ] || fail "no test example came back unchanged"
ok "dump round trip of every example ($same of 7600 test examples unchanged)"

ntok=$(cut -f2 test.want | wc -w)
atmax=$(awk -F '\t' 'split($2, t, " ") == 128' test.want | wc -l)
agn-shard --info --json shards/test-*.agns > test.json
agn-shard --info --json shards/train-*.agns > train.json
grep -q "\"examples\":7600,\"tokens\":$ntok,\"vocab_size\":$V,\"max_len\":128,\"n_classes\":4," test.json ||
    { cat test.json >&2; fail "--info of test"; }
grep -q '"classes":\[1900,1900,1900,1900\],"unknown_label":0' test.json || fail "--info test classes"
grep -q "\"at_max_len\":$atmax," test.json || fail "--info at_max_len ($atmax)"
grep -q '"compressed":true' train.json && grep -q '"classes":\[1420,1335,1388,1415\]' train.json ||
    { cat train.json >&2; fail "--info of train"; }
if [ -n "$PY" ]; then
    "$PY" - "$V" vocab.txt shards/test-00000.agns <<'P' || fail "vocab CRC in the shard"
import json, subprocess, sys, zlib
lines = open(sys.argv[2]).read().splitlines()
while lines and lines[0].startswith("#"): lines.pop(0)
toks = [l.split("\t")[0] for l in lines]
assert len(toks) == int(sys.argv[1])
crc = "%08x" % zlib.crc32("".join(t + "\n" for t in toks).encode())
info = json.loads(subprocess.check_output(["agn-shard", "--info", "--json", sys.argv[3]]))
assert info["vocab_crc"] == crc, (info["vocab_crc"], crc)
P
fi
ok "--info agrees: classes, tokens, lengths, vocabulary CRC"
