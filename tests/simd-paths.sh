#!/bin/sh
# simd-paths.sh: every SIMD path this processor runs (simd.h; AGN_SIMD
# forces the lower ones) gives the same bytes: agn-tokenize on the whole
# test split (gzip; the CSV parser and both passes of the tokenizer),
# agn-vocab on its tokens (the line counter) and a training run of the tiny
# model (the AdamW update), compared byte for byte with the scalar path.  A path the processor lacks
# is skipped, with the reason printed.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

paths=
for l in scalar sse2 avx2 avx512; do
    AGN_SIMD=$l agn-tokenize --version > v
    tok=$(sed -n 's/^simd: .*; tokenizer \([a-z0-9]*\),.*/\1/p' v)
    adam=$(sed -n 's/^simd: .*, AdamW \([a-z0-9]*\),.*/\1/p' v)
    if [ "$tok" != "$l" ] && [ "$adam" != "$l" ]; then
        echo "skip - the $l path: this processor lacks it ($(sed -n 's/^cpu: //p' v); $(sed -n 's/^simd: \(this processor runs up to [a-z0-9]*\).*/\1/p' v))"
        continue
    fi
    paths="$paths $l"
    echo "$l: tokenizer $tok, AdamW $adam"
done
[ -n "$paths" ] || fail "not even the scalar path runs"

have_corpus=0
[ -n "$AGN_DATA" ] && [ -f "$AGN_DATA/test.csv.gz" ] && have_corpus=1
[ $have_corpus = 1 ] || echo "note: no corpus (AGN_DATA): the tokenizer is compared on the fixture's text only"
for l in $paths; do
    if [ $have_corpus = 1 ]; then
        AGN_SIMD=$l agn-tokenize -q -o "tok.$l" "$AGN_DATA/test.csv.gz" || fail "agn-tokenize, AGN_SIMD=$l"
    else
        # text with the items that leave the fast paths: tags, references, UTF-8
        awk 'BEGIN { for (i = 0; i < 3000; i++) printf "%d,\"Title &amp; <b>%d</b>\",\"Caf\303\251 \342\200\224 it\\x27s #39;%d; more words here \302\240 and\\\\there\"\n", i % 4 + 1, i, i }' > in.csv
        AGN_SIMD=$l agn-tokenize -q -o "tok.$l" in.csv || fail "agn-tokenize, AGN_SIMD=$l"
    fi
    AGN_SIMD=$l agn-vocab -q -o "vocab.$l" "tok.$l" || fail "agn-vocab, AGN_SIMD=$l"
    AGN_SIMD=$l $TRAIN -o "run.$l" "$SH" 2> err || { cat err >&2; fail "agn-train, AGN_SIMD=$l"; }
done
[ -s tok.scalar ] || fail "the scalar path wrote nothing"
for l in $paths; do
    cmp "tok.scalar" "tok.$l" || fail "agn-tokenize: the $l path differs from the scalar one"
    cmp "vocab.scalar" "vocab.$l" || fail "agn-vocab: the $l path differs from the scalar one"
    cmp "run.scalar/last.safetensors" "run.$l/last.safetensors" ||
        fail "agn-train: the weights after the $l path's AdamW differ from the scalar one's"
done
ok "the paths$paths: the same tokens ($(wc -l < tok.scalar) lines), vocabulary ($(wc -l < vocab.scalar) lines) and trained weights, byte for byte"
