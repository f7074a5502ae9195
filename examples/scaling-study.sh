#!/bin/sh
# scaling-study.sh: the data-parallel scaling study, reproducible.  From the
# AG News corpus to a report: tokenizes, builds the vocabulary and the
# shards, trains each config (small and large) with 1 rank and with N ranks,
# then runs agn-summarize for the tables (epoch time, speedup, efficiency,
# accuracy, R, Amdahl) and the plots.
#
#   sh examples/scaling-study.sh [OPTION]...
#
#   -n, --ranks N        ranks of the multi-rank runs (default: the number of
#                        cores; with --gpus, of GPUs); 1 runs the 1-rank half
#       --configs LIST   configs from examples/, e.g. "small large" (default)
#   -e, --epochs N       epochs per run (default: the config's); keep 3 or
#                        more so that the first (warm-up) epoch is not timed
#       --max-examples N train on the first N examples of each epoch's order
#       --max-steps N    stop every run after N steps (its last epoch is cut
#                        short; agn-summarize scales it to a full epoch)
#       --val-examples N validate on the first N test examples (default: all)
#   -t, --threads N      threads per rank in every run (default: agn-train's,
#                        the cores divided among the ranks)
#       --gpus           GPU ranks (agn-train -g N) instead of CPU ranks
#       --quick          a bounded run for a small machine (minutes on 2
#                        cores): --epochs 3 --max-examples 512
#                        --val-examples 500 (later options override it)
#   -o, --out DIR        where everything goes (default: build/scaling-study)
#       --bin DIR        the agn programs (default: build/release/tools,
#                        built as quickstart.sh does when missing)
#   -h, --help           show this help
#
# The corpus comes from $AGN_DATA, else ../shared/data/ag_news beside the
# source tree: train.csv(.gz) when there, else train_sample.csv.gz, and
# test.csv(.gz).  Results: DIR/summary.md (also .csv and .json), the plots in
# DIR/plots/ (PNG and SVG when gnuplot is installed, else the gnuplot scripts
# to render), the runs in DIR/runs/CONFIG-nW/.  Data already prepared in
# DIR/data is reused; runs are always redone.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
prog=scaling-study

ranks='' configs='small large' epochs='' max_examples='' max_steps='' val_examples=''
threads='' gpus=0 out=$top/build/scaling-study bin=''
die() { echo "$prog: $*" >&2; exit 1; }
usage_die() { echo "$prog: $*" >&2; echo "Try 'sh $0 --help'." >&2; exit 2; }
need_arg() { [ $# -ge 2 ] || usage_die "$1 needs a value"; }
posint() { case $2 in ''|*[!0-9]*|0) usage_die "$1: '$2' is not a positive integer" ;; esac; }
while [ $# -gt 0 ]; do
    case $1 in
    -n|--ranks) need_arg "$@"; posint "$1" "$2"; ranks=$2; shift 2 ;;
    --configs) need_arg "$@"; configs=$2; shift 2 ;;
    -e|--epochs) need_arg "$@"; posint "$1" "$2"; epochs=$2; shift 2 ;;
    --max-examples) need_arg "$@"; posint "$1" "$2"; max_examples=$2; shift 2 ;;
    --max-steps) need_arg "$@"; posint "$1" "$2"; max_steps=$2; shift 2 ;;
    --val-examples) need_arg "$@"; posint "$1" "$2"; val_examples=$2; shift 2 ;;
    -t|--threads) need_arg "$@"; posint "$1" "$2"; threads=$2; shift 2 ;;
    --gpus) gpus=1; shift ;;
    --quick) epochs=3; max_examples=512; val_examples=500; shift ;;
    -o|--out) need_arg "$@"; out=$2; shift 2 ;;
    --bin) need_arg "$@"; bin=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -eu/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) usage_die "unknown option $1" ;;
    esac
done
[ -n "$configs" ] || usage_die "--configs: empty list"
for c in $configs; do
    [ -f "$top/examples/$c.yaml" ] || usage_die "--configs: no examples/$c.yaml"
done

# ---- the machine -------------------------------------------------------------------
if [ "$gpus" = 1 ]; then
    have=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
    [ "${have:-0}" -gt 0 ] || die "--gpus: no GPU found (nvidia-smi -L lists none)"
    ranks=${ranks:-$have}
    [ "$ranks" -le "$have" ] || die "--ranks $ranks: this machine has $have GPUs"
    what="GPU ranks"
else
    cores=$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)
    ranks=${ranks:-$cores}
    what="CPU ranks on $cores cores"
fi
widths=1
[ "$ranks" -gt 1 ] && widths="1 $ranks"
[ "$ranks" -gt 1 ] || echo "$prog: one rank only (one core, or --ranks 1): nothing to compare; the 1-rank runs alone" >&2

# ---- the programs ------------------------------------------------------------------
if [ -z "$bin" ]; then
    bin=$top/build/release/tools
    if [ ! -x "$bin/agn-train" ] || [ ! -x "$bin/agn-summarize" ]; then
        echo "== build (build/release)" >&2
        sh "$top/tests/install-deps.sh"
        (cd "$top" && { [ -x configure ] || autoreconf -fi >/dev/null; })
        mkdir -p "$top/build/release"
        [ -f "$top/build/release/Makefile" ] || (cd "$top/build/release" && ../../configure -q)
        make -C "$top/build/release" -j"$(nproc 2>/dev/null || echo 2)" >/dev/null
    fi
fi
for p in agn-tokenize agn-vocab agn-shard agn-train agn-summarize; do
    [ -x "$bin/$p" ] || die "$bin/$p is missing (build agn, or give --bin DIR)"
done
bin=$(cd "$bin" && pwd)
PATH=$bin:$PATH

# ---- the corpus --------------------------------------------------------------------
data=${AGN_DATA:-$top/../shared/data/ag_news}
pick() { for f in "$@"; do [ -f "$data/$f" ] && { echo "$data/$f"; return; }; done; }
train=$(pick train.csv.gz train.csv train_sample.csv.gz)
test=$(pick test.csv.gz test.csv)
if [ -z "$train" ] || [ -z "$test" ]; then
    die "no AG News corpus in $data: put train.csv and test.csv (the ag_news_csv release) in a folder and set AGN_DATA to it"
fi

mkdir -p "$out/data" "$out/runs"
out=$(cd "$out" && pwd)
d=$out/data
# prepared data is reused only when made from the same files with the same options
stamp="$train $test val=${val_examples:-all}"
if [ ! -f "$d/stamp" ] || [ "$(cat "$d/stamp")" != "$stamp" ]; then
    echo "== data ($train, $test)" >&2
    rm -rf "$d" && mkdir -p "$d"
    agn-tokenize "$train" > "$d/train.tok.tmp" && mv "$d/train.tok.tmp" "$d/train.tok"
    agn-tokenize "$test" > "$d/test.tok.tmp" && mv "$d/test.tok.tmp" "$d/test.tok"
    if [ -n "$val_examples" ]; then
        head -n "$val_examples" "$d/test.tok" > "$d/val.tok"
    else
        cp "$d/test.tok" "$d/val.tok"
    fi
    agn-vocab -q -n 20000 -o "$d/vocab.txt" "$d/train.tok"
    echo "$stamp" > "$d/stamp"
fi
# shards at each config's max_len, built once
maxlen() { sed -n 's/^ *max_len: *\([0-9][0-9]*\).*/\1/p' "$top/examples/$1.yaml" | head -n 1; }
for c in $configs; do
    L=$(maxlen "$c")
    [ -n "$L" ] || die "examples/$c.yaml has no model.max_len"
    if [ ! -f "$d/L$L/train-00000.agns" ]; then
        agn-shard -q -v "$d/vocab.txt" -L "$L" -o "$d/L$L/train" "$d/train.tok"
        agn-shard -q -v "$d/vocab.txt" -L "$L" -o "$d/L$L/val" "$d/val.tok"
    fi
done
# the vocabulary the shards hold: smaller than the configs' 20,000 on the
# train sample, so the runs are told (and the parameter count shrinks a little)
L=$(maxlen "${configs%% *}")
V=$(agn-shard --info --json "$d/L$L/train-00000.agns" | sed -n 's/.*"vocab_size":\([0-9][0-9]*\).*/\1/p')
[ -n "$V" ] || die "cannot read the vocabulary size of $d/L$L/train-00000.agns"
echo "== corpus: $(wc -l < "$d/train.tok" | tr -d ' ') training examples, $(wc -l < "$d/val.tok" | tr -d ' ') validation examples, vocabulary of $V" >&2
[ "$V" -ge 20000 ] || echo "$prog: the vocabulary has $V entries, fewer than the configs' 20000: training with model.vocab_size=$V" >&2

# ---- the grid ------------------------------------------------------------------------
# (the options are checked integers, so plain word splitting is safe here)
common=
[ -n "$epochs" ] && common="$common --epochs $epochs"
[ -n "$max_examples" ] && common="$common --max-examples $max_examples"
[ -n "$max_steps" ] && common="$common --max-steps $max_steps"
[ -n "$threads" ] && common="$common --threads $threads"
set --
for c in $configs; do
    L=$(maxlen "$c")
    for w in $widths; do
        if [ "$gpus" = 1 ]; then r=runs/$c-g$w; launch="-g $w"
        elif [ "$w" = 1 ]; then r=runs/$c-n1; launch="--cpu"
        else r=runs/$c-n$w; launch="--cpu -n $w"
        fi
        echo "== train $c, $w rank(s) ($what):$common $launch -> $r" >&2
        start=$(date +%s)
        # shellcheck disable=SC2086
        agn-train -q -f -c "$top/examples/$c.yaml" -o "$out/$r" -v "$d/vocab.txt" -s "model.vocab_size=$V" \
            --val "$d/L$L/val-*.agns" $common $launch "$d/L$L/train-*.agns" ||
            die "agn-train failed for $c with $w rank(s); see $out/$r/train.log"
        echo "   $(($(date +%s) - start)) s" >&2
        set -- "$@" "$r"
    done
done

# ---- the report ----------------------------------------------------------------------
echo "== summary" >&2
cd "$out" # so that the tables name the runs runs/CONFIG-nW
agn-summarize -q -o "$out/summary.csv" -f csv "$@"
agn-summarize -q -o "$out/summary.json" -f json "$@"
agn-summarize -o "$out/summary.md" --plot plots "$@"
cat "$out/summary.md"
echo "$prog: table in $out/summary.md (.csv, .json), plots in $out/plots/" >&2
