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


# metadata edited by hand (the data CRC covers the tensors, not these): a
# CRC that is not exactly 8 hex digits, class names cut short.
# edit_meta IN OUT KEY VALUE: IN with one metadata value replaced (VALUE
# with backslash escapes), the header padded to 8 bytes as agn writes it
edit_meta() {
    python3 - "$@" <<'EOF'
import json, struct, sys
src, dst, key, val = sys.argv[1:5]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
h["__metadata__"][key] = val.encode().decode("unicode_escape")
j = json.dumps(h, separators=(",", ":")).encode()
j += b" " * (-len(j) % 8)
open(dst, "wb").write(struct.pack("<Q", len(j)) + j + b[8 + n:])
EOF
}
edit_meta "$CK" same.safetensors vocab_crc "$(python3 -c 'import json,struct,sys; b=open(sys.argv[1],"rb").read(); n=struct.unpack("<Q",b[:8])[0]; print(json.loads(b[8:8+n])["__metadata__"]["vocab_crc"])' "$CK")"
agn-eval same.safetensors "$SH" >/dev/null 2>.err || { cat .err >&2; fail "a checkpoint rewritten by edit_meta unchanged is refused"; }
for bad in "+1234567" " 1234567" "0x123456" "1234567g"; do
    edit_meta "$CK" hex.safetensors vocab_crc "$bad"
    expect_fail 1 "hex\.safetensors: metadata 'vocab_crc' is not 8 hex digits" agn-eval hex.safetensors "$SH"
done
edit_meta "$CK" names.safetensors class_names 'World\nSports\nBusiness\nSci/Tech'
expect_fail 1 "names\.safetensors: metadata 'class_names' does not end in a newline" agn-eval names.safetensors "$SH"
ok "edited metadata: a CRC with a sign, a space, 0x or a non-digit; class names cut short"
