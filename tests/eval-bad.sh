#!/bin/sh
# eval-bad.sh: agn-eval refuses bad checkpoints and mismatched inputs with a
# clear message and exit 1: missing, truncated, a flipped byte (CRC),
# not safetensors, safetensors but not agn, shards of another vocabulary.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

$TRAIN -o run -e 1 --max-steps 5 "$SH"
CK=run/last.safetensors
expect_fail 2 'no shards given' agn-eval "$CK"
expect_fail 2 'no checkpoint given' agn-eval
expect_fail 1 'nothere\.safetensors: No such file' agn-eval nothere.safetensors "$SH"
size=$(wc -c < "$CK")
for cut in 4 100 $((size - 1)); do
    head -c "$cut" "$CK" > trunc.safetensors
    expect_fail 1 '^agn-eval: trunc\.safetensors: ' agn-eval trunc.safetensors "$SH"
done
ok "missing and truncated checkpoints"
cp "$CK" flip.safetensors
printf '\001' | dd of=flip.safetensors bs=1 seek=$((size - 20)) conv=notrunc 2>/dev/null
expect_fail 1 '^agn-eval: flip\.safetensors: .*CRC' agn-eval flip.safetensors "$SH"
ok "flipped byte: $(cat .err)"
expect_fail 1 '^agn-eval: vocab\.txt: ' agn-eval vocab.txt "$SH"
# a valid safetensors file that is not an agn checkpoint
printf '\023\000\000\000\000\000\000\000{"__metadata__":{}}' > plain.safetensors
expect_fail 1 'plain\.safetensors: .*not an agn checkpoint' agn-eval plain.safetensors "$SH"
ok "non-checkpoints"

# shards built with another vocabulary
make_stream 40 9 | sed 's/filler/other/g' > other.tok
agn-vocab -q -o other-vocab.txt other.tok
agn-shard -q -v other-vocab.txt -L 32 -o other/x other.tok
expect_fail 1 'other/x-00000\.agns: built with another vocabulary' agn-eval "$CK" other/x-00000.agns
# a token stream without labels cannot be scored, only predicted
printf -- '-\tworld1\n' > unl.tok
expect_fail 1 'no labelled examples' agn-eval "$CK" unl.tok
printf -- '7\tworld1\n' > badlabel.tok
expect_fail 1 'badlabel\.tok:1: label 7' agn-eval "$CK" badlabel.tok
printf 'notab\n' > notab.tok
expect_fail 1 'notab\.tok:1' agn-eval "$CK" notab.tok
ok "mismatched inputs"
