#!/bin/sh
# quickstart.sh: the main job of agn, end to end, on a fresh Debian 12
# machine: installs what is missing, builds, then on AG News tokenizes,
# builds the vocabulary, shards, trains the small model on the CPU for a
# bounded number of steps, evaluates it on the official test split and
# classifies a line of raw text.
#
#   sh examples/quickstart.sh [--steps N] [--out DIR]
#
# The corpus comes from $AGN_DATA, else ../shared/data/ag_news beside the
# source tree: train.csv(.gz) when the folder has the full train split, else
# train_sample.csv.gz, and test.csv(.gz).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
steps=300
out=$top/build/quickstart
while [ $# -gt 0 ]; do
    case $1 in
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart: unknown option $1" >&2; exit 2 ;;
    esac
done

data=${AGN_DATA:-$top/../shared/data/ag_news}
pick() { for f in "$@"; do [ -f "$data/$f" ] && { echo "$data/$f"; return; }; done; }
train=$(pick train.csv.gz train.csv train_sample.csv.gz)
test=$(pick test.csv.gz test.csv)
if [ -z "$train" ] || [ -z "$test" ]; then
    cat >&2 <<MSG
quickstart: no AG News corpus in $data.
Get the standard ag_news_csv release (train.csv and test.csv, as distributed
with Zhang, Zhao and LeCun, "Character-level Convolutional Networks for Text
Classification", 2015; torchtext and HuggingFace download the same files),
put them in a folder and run again with AGN_DATA=/that/folder.
MSG
    exit 1
fi
case $train in
*train_sample*) echo "quickstart: using the 5,558-row train sample ($train); the full train.csv is not in $data" >&2 ;;
*) echo "quickstart: using the full train split ($train)" >&2 ;;
esac

# ---- build -------------------------------------------------------------------
sh "$top/tests/install-deps.sh"
cd "$top"
[ -x configure ] || autoreconf -fi >/dev/null
mkdir -p build/release
[ -f build/release/Makefile ] || (cd build/release && ../../configure -q)
make -C build/release -j"$(nproc)" >/dev/null
PATH=$top/build/release/tools:$PATH

# ---- data pipeline ---------------------------------------------------------------
mkdir -p "$out/shards"
cd "$out"
agn-tokenize "$train" > train.tok
agn-tokenize "$test" > test.tok
agn-vocab -n 20000 -o vocab.txt train.tok
agn-shard -v vocab.txt -L 128 -o shards/train train.tok
agn-shard -v vocab.txt -L 128 -o shards/test test.tok
echo "== data"
printf 'train examples  %s\n' "$(wc -l < train.tok)"
printf 'test examples   %s\n' "$(wc -l < test.tok)"
printf 'train tokens    %s\n' "$(cut -f2 train.tok | wc -w)"
# header lines start with '#', but so may a token ('#' itself): count after the header
printf 'vocabulary      %s (with <pad> and <unk>; %s distinct tokens in train)\n' \
    "$(awk '!h && /^#/ { next } { h = 1; n++ } END { print n }' vocab.txt)" \
    "$(cut -f2 train.tok | tr ' ' '\n' | sort -u | wc -l)"
agn-shard --info shards/train-*.agns

# ---- train, evaluate, classify ------------------------------------------------------
echo "== train (small config, $steps steps, CPU)"
agn-train -c "$top/examples/small.yaml" -o run --max-steps "$steps" \
    --val shards/test-00000.agns shards/train-*.agns
echo "== evaluate on the official test split"
agn-eval run/last.safetensors shards/test-*.agns
echo "== classify raw text"
echo "Stocks rally as the Fed cuts rates" | agn-tokenize -f text | agn-eval --predict run/last.safetensors -
