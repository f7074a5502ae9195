#!/bin/sh
# train-bad.sh: bad inputs to agn-train each stop it with a clear message
# and exit 1 (2 for usage errors), and leave no checkpoint: missing,
# truncated, corrupted and empty shards, a validation shard of another
# vocabulary, a wrong --vocab, and bad --resume checkpoints.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

expect_fail 2 'no training shards given' $TRAIN -o r
expect_fail 2 'no run directory given' agn-train -c "$CFG" "$SH"
expect_fail 1 'nothere\.agns' $TRAIN -o r nothere.agns
expect_fail 1 "'shards/none-\*\.agns': no file matches|shards/none-\*\.agns: no file matches" $TRAIN -o r 'shards/none-*.agns'
ok "missing shards"

# a glob is expanded by agn-train itself
$TRAIN -o glob -e 1 --val 'shards/val-*.agns' 'shards/train-*.agns'
grep -q 'train-00000.agns' glob/config.yaml || fail "the glob was not expanded"
ok "quoted globs"

# a truncated shard and a flipped byte
size=$(wc -c < "$SH")
head -c $((size - 10)) "$SH" > trunc.agns
expect_fail 1 'trunc\.agns' $TRAIN -o r trunc.agns
cp "$SH" flip.agns
printf '\377' | dd of=flip.agns bs=1 seek=$((size - 5)) conv=notrunc 2>/dev/null
expect_fail 1 'flip\.agns.*CRC|CRC.*flip\.agns' $TRAIN -o r flip.agns
[ -e r ] && [ -e r/last.safetensors ] && fail "a checkpoint was written"
ok "damaged shards"

# a shard without examples
: > empty.tok
agn-shard -q -v vocab.txt -L 32 -o shards/empty empty.tok 2>/dev/null || true
if [ -e shards/empty-00000.agns ]; then
    expect_fail 1 'no examples' $TRAIN -o r shards/empty-00000.agns
    ok "empty shard"
fi

# unlabelled examples cannot be trained on
printf -- '-\tworld1 filler2\n0\tworld2\n' > unl.tok
agn-shard -q -v vocab.txt -L 32 -o shards/unl unl.tok
expect_fail 1 'example 1 has no label' $TRAIN -o r shards/unl-00000.agns
ok "unlabelled shard"

# validation shards built with another vocabulary
make_stream 40 9 | sed 's/filler/other/g' > other.tok
agn-vocab -q -o other-vocab.txt other.tok
agn-shard -q -v other-vocab.txt -L 32 -o other/val other.tok
expect_fail 1 'other/val-00000\.agns: built with another vocabulary' $TRAIN -o r --val other/val-00000.agns "$SH"
expect_fail 1 'other-vocab\.txt: not the vocabulary the training shards were built with' $TRAIN -o r -v other-vocab.txt "$SH"
ok "another vocabulary"

# bad checkpoints for --resume
$TRAIN -o good -e 1 "$SH"
expect_fail 1 'nothere\.safetensors' $TRAIN -o r --resume nothere.safetensors "$SH"
head -c 1000 good/last.safetensors > trunc.safetensors
expect_fail 1 'trunc\.safetensors' $TRAIN -o r --resume trunc.safetensors "$SH"
cp good/last.safetensors flip.safetensors
size=$(wc -c < flip.safetensors)
printf '\001' | dd of=flip.safetensors bs=1 seek=$((size - 100)) conv=notrunc 2>/dev/null
expect_fail 1 'flip\.safetensors.*CRC|CRC.*flip\.safetensors' $TRAIN -o r --resume flip.safetensors "$SH"
expect_fail 1 'vocab\.txt' $TRAIN -o r --resume vocab.txt "$SH"
ok "bad checkpoints refused"
