#!/bin/sh
# eval.sh: agn-eval end to end on the 7,600 examples of the AG News test
# split against PyTorch doing the same job (torch_eval.py: read the
# checkpoint, read the tokens, batches of 64 padded to their longest
# example, inference mode, accuracy), each as one whole process timed by
# its wall clock, at each thread count.  The checkpoint is the small config
# trained for one epoch on 2,048 examples of the train sample (CKPT=FILE to
# give one).  agn is timed on the shard and on the token stream (agn-eval
# -, mapping the tokens itself as PyTorch does); PyTorch 1.13 (Debian) with
# OpenBLAS's OpenMP build and jemalloc (torch-env.sh), and PyTorch 2.x with
# its own MKL when TORCH2_PYTHON names a Python that has it
# (tests/bench/torch2-setup.sh makes one), with torch.compile too when
# TORCH_COMPILE=1.  Both sides must reach the same accuracy (the same
# weights, the same model): the table shows it.
#
# Usage: tests/bench/eval.sh [BUILDDIR]
# Environment: THREADS ("1 2"), REPEAT (3: best of), CKPT, AGN_DATA,
# TORCH_PYTHON (/usr/bin/python3), TORCH2_PYTHON, TORCH_COMPILE (0).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-${top_builddir:-.}}" && pwd)
tools=$build/tools
for p in agn-tokenize agn-vocab agn-shard agn-train agn-eval; do
    [ -x "$tools/$p" ] || { echo "eval.sh: $tools/$p not built" >&2; exit 1; }
done
data=${AGN_DATA:-$here/../../../shared/data/ag_news}
for f in train_sample.csv.gz test.csv.gz; do
    [ -f "$data/$f" ] || { echo "eval.sh: no $data/$f (set AGN_DATA)" >&2; exit 1; }
done
py=${TORCH_PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-1 2}
REPEAT=${REPEAT:-3}
. "$here/machine.sh"
. "$here/torch-env.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/agn-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
"$tools/agn-tokenize" -q "$data/train_sample.csv.gz" > train.tok
"$tools/agn-tokenize" -q "$data/test.csv.gz" > test.tok
"$tools/agn-vocab" -q -n 20000 -o vocab.txt train.tok
"$tools/agn-shard" -q -v vocab.txt -L 128 -o shards/train train.tok
"$tools/agn-shard" -q -v vocab.txt -L 128 -o shards/test test.tok
if [ -n "${CKPT:-}" ]; then
    ckpt=$CKPT
else
    V=$(awk '!h && /^#/ { next } { h = 1; n++ } END { print n }' vocab.txt)
    "$tools/agn-train" -q -c "$here/../../examples/small.yaml" -s model.vocab_size="$V" -s train.epochs=1 \
        -v vocab.txt --max-examples 2048 -o run shards/train-00000.agns
    ckpt=run/last.safetensors
fi
n=$(wc -l < test.tok)

# timed NAME CMD...: best wall time of REPEAT runs; the last run's stdout in NAME.out
: > results
timed() {
    name=$1; shift
    best= i=0
    while [ $i -lt "$REPEAT" ]; do
        t0=$(date +%s%N)
        "$@" > "$name.out" 2> "$name.err" || { echo "eval.sh: $name failed:" >&2; cat "$name.err" >&2; return 0; }
        t1=$(date +%s%N)
        us=$(( (t1 - t0) / 1000 ))
        [ -z "$best" ] || [ $us -lt "$best" ] && best=$us
        i=$((i + 1))
    done
    case $name in
    agn*) acc=$(sed -n 's/^accuracy *//p' "$name.out") rss=- ;;
    *) acc=$(tr ' ' '\n' < "$name.out" | sed -n 's/^accuracy=//p')
       rss=$(tr ' ' '\n' < "$name.out" | sed -n 's/^peak_rss_mb=//p') ;;
    esac
    printf '%s %s %s %s\n' "$name" "$best" "${acc:--}" "${rss:--}" >> results
}

machine_header "$tools" $THREADS
echo "eval.sh: measuring, best of $REPEAT" >&2
torch1=$(torch_env "$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
torch2=
[ -n "${TORCH2_PYTHON:-}" ] && torch2=$("$TORCH2_PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || true)
for t in $THREADS; do
    timed "agn-shard-$t" env OMP_NUM_THREADS=$t "$tools/agn-eval" -t $t "$ckpt" shards/test-00000.agns
    timed "agn-stream-$t" sh -c "OMP_NUM_THREADS=$t '$tools/agn-eval' -t $t '$ckpt' - < test.tok"
    [ -n "$torch1" ] && timed "torch1-$t" torch_env env OMP_NUM_THREADS=$t "$py" "$here/torch_eval.py" "$ckpt" test.tok --threads $t
    if [ -n "$torch2" ]; then
        timed "torch2-$t" env OMP_NUM_THREADS=$t "$TORCH2_PYTHON" "$here/torch_eval.py" "$ckpt" test.tok --threads $t
        [ "${TORCH_COMPILE:-0}" = 1 ] &&
            timed "torch2compile-$t" env OMP_NUM_THREADS=$t "$TORCH2_PYTHON" "$here/torch_eval.py" "$ckpt" test.tok --threads $t --compile
    fi
done

echo "agn-eval end to end on the AG News test split ($n examples), small config, wall clock of the whole process"
awk -v n="$n" -v t1="${torch1:-absent}" -v t2="${torch2:-not run (set TORCH2_PYTHON)}" '
    { name[NR] = $1; us[NR] = $2; acc[NR] = $3; rss[NR] = $4; split($1, p, "-"); th = p[length(p)]
      if ($1 ~ /^agn-shard/) agn[th] = $2; else if ($1 !~ /^agn/ && (!(th in pt) || $2 < pt[th])) pt[th] = $2 }
    END {
        printf "%-22s %4s %9s %10s %9s %9s %12s\n", "system", "thr", "seconds", "samples/s", "accuracy", "peak MiB", "agn(shard)/x"
        for (i = 1; i <= NR; i++) {
            split(name[i], p, "-"); th = p[length(p)]; sys = substr(name[i], 1, length(name[i]) - length(th) - 1)
            if (sys == "agn-shard") sys = "agn-eval (shard)"; else if (sys == "agn-stream") sys = "agn-eval (tokens)"
            else if (sys == "torch1") sys = "PyTorch " t1; else if (sys == "torch2") sys = "PyTorch " t2
            else if (sys == "torch2compile") sys = "PyTorch " t2 " compile"
            printf "%-22s %4s %9.3f %10.0f %9s %9s %11.2fx\n", sys, th, us[i] / 1e6, n / (us[i] / 1e6), acc[i], rss[i], us[i] / agn[th]
        }
        for (th in agn) if (th in pt) printf "threads %s: agn-eval (shard) is %.2fx the fastest PyTorch\n", th, pt[th] / agn[th]
    }' results
echo "PyTorch 1.13: OpenBLAS-openmp + jemalloc (torch-env.sh); PyTorch 2.x: its wheel's MKL and oneDNN."
