#!/bin/sh
# model.sh: agn's CPU model against PyTorch 1.13 (Debian's) and PyTorch 2.x
# (PyPI's, when TORCH2_PYTHON names a Python that has it:
# tests/bench/torch2-setup.sh makes one) on real AG News batches.
#
# Tokenizes the training sample, builds a 20000-word vocabulary and a shard,
# then measures, for each thread count, training throughput (whole optimizer
# steps: forward, backward, AdamW with clipping, dropout 0.1) of agn with its
# default padding (to the longest example of each batch), agn with every
# batch padded to T (--pad-to-max), agn padded to T computing the pad
# positions too (--dense: what a padded implementation does, so the gain of
# the implementation shows apart from the gain of skipping pads; agn itself
# never computes pads), and PyTorch padding to T as the study did; inference
# throughput; the peak resident memory of each process; and the large config
# for a few dozen steps.  Prints a table with the ratios the issue sets
# targets for (training >= 3x with agn's padding, >= 1.5x padded to T,
# inference >= 3x).
#
# PyTorch is measured at its best: OpenBLAS built for OpenMP, jemalloc told
# to keep the pages it frees (torch-env.sh), OMP_NUM_THREADS and
# torch.set_num_threads at the row's count, one inter-op thread, batches
# assembled before the clock starts.  Each PyTorch row is the best of
# torch_model.py's variants (TORCH_TRAIN_VARIANTS, TORCH_INFER_VARIANTS):
# 'functional' (the model from torch.nn.functional), 'module' (PyTorch's
# nn.TransformerEncoder etc.) and, for inference, 'fastpath' (the modules'
# fused eval kernel, which computes GELU with erf instead of tanh); the
# table's footer says which won and lists them all.
#
# PyTorch 2.x runs as its wheel comes (MKL and oneDNN inside it, jemalloc
# as for 1.13), with AdamW's fused CPU kernel, and with torch.compile too
# when TORCH_COMPILE=1 (variants 'fcompile' and 'mcompile'; compiling takes
# minutes).  The first lines of the output say the machine: processor, the
# SIMD path agn takes, the BLAS agn loaded (the same OpenBLAS build PyTorch
# 1.13 is given) and the peak rate assumed for the model FLOP utilisation
# (MFU: the model's matrix work on the real tokens per second, from
# bench-model, over that peak; machine.sh says how the peak is made).
#
# On a busy machine set OMP_WAIT_POLICY=passive (it applies to both sides):
# spinning OpenMP threads that wait for a descheduled peer distort the
# two-thread figures of agn and PyTorch alike; and REPEAT=N keeps the best of
# N runs of every measurement, agn's and PyTorch's alike, taken in N rounds
# of the whole list (not N runs back to back), so that every cell, agn's
# and PyTorch's, has a try in each stretch of the run: on a shared virtual
# machine whose speed drifts by 20% from one minute to the next, back-to-back
# repeats compare agn's good minutes with PyTorch's bad ones.
#
# MFU is printed twice: against the nominal peak machine.sh assumes (the
# clock /proc/cpuinfo reports, which a virtual machine gives as its nominal
# one) and against the peak bench-model measured on the same threads just
# before and after its steps (peak.c: what the FMA units delivered at the
# clock of that minute, boost included).
#
# Usage: tests/bench/model.sh [BUILDDIR]     (default: $top_builddir or .)
# Environment: THREADS ("1 2"), STEPS (30), TORCH_STEPS (12), INFER_STEPS
# (60), LARGE_STEPS (24), TORCH_LARGE_STEPS (6), LARGE_THREADS ("1 2"),
# SKIP_LARGE (0), REPEAT (1), AGN_DATA (the corpus), TORCH_PYTHON
# (/usr/bin/python3), TORCH_TRAIN_VARIANTS ("functional module"),
# TORCH_INFER_VARIANTS ("functional module fastpath"), TORCH_MALLOC_CONF
# (dirty_decay_ms:-1,muzzy_decay_ms:-1), TORCH2_PYTHON, TORCH2_TRAIN_VARIANTS
# ("functional module"), TORCH2_INFER_VARIANTS ("functional module
# fastpath"), TORCH_COMPILE (0), and machine.sh's FMA_UNITS, FMA_LANES,
# CPU_GHZ.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "${1:-${top_builddir:-.}}" && pwd)
bench=$build/tests/bench/bench-model
[ -x "$bench" ] || { echo "model.sh: $bench not built: run 'make check' (or make tests/bench/bench-model) in $build" >&2; exit 1; }
for p in agn-tokenize agn-vocab agn-shard; do
    [ -x "$build/tools/$p" ] || { echo "model.sh: $build/tools/$p not built" >&2; exit 1; }
done
data=${AGN_DATA:-$here/../../../shared/data/ag_news}
[ -f "$data/train_sample.csv.gz" ] || { echo "model.sh: no $data/train_sample.csv.gz (set AGN_DATA)" >&2; exit 1; }
py=${TORCH_PYTHON:-/usr/bin/python3}
THREADS=${THREADS:-1 2}
STEPS=${STEPS:-30}
TORCH_STEPS=${TORCH_STEPS:-12}
INFER_STEPS=${INFER_STEPS:-60}
LARGE_STEPS=${LARGE_STEPS:-24}
TORCH_LARGE_STEPS=${TORCH_LARGE_STEPS:-6}
LARGE_THREADS=${LARGE_THREADS:-1 2}
SKIP_LARGE=${SKIP_LARGE:-0}
REPEAT=${REPEAT:-1}
TORCH_TRAIN_VARIANTS=${TORCH_TRAIN_VARIANTS:-functional module}
TORCH_INFER_VARIANTS=${TORCH_INFER_VARIANTS:-functional module fastpath}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/agn-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$build/tools/agn-tokenize" "$data/train_sample.csv.gz" > "$tmp/train.tok"
"$build/tools/agn-vocab" -n 20000 < "$tmp/train.tok" > "$tmp/vocab.txt" 2>/dev/null
"$build/tools/agn-shard" -v "$tmp/vocab.txt" -L 256 -o "$tmp/train" < "$tmp/train.tok" 2>/dev/null
shards=$(ls "$tmp"/train-*.agns)

. "$here/torch-env.sh"
. "$here/machine.sh"
have_torch=yes
torch_env "$py" -c 'import torch' 2>/dev/null || have_torch=no
have_torch2=no
if [ -n "${TORCH2_PYTHON:-}" ]; then
    torch2_env "$TORCH2_PYTHON" -c 'import torch' 2>/dev/null && have_torch2=yes ||
        echo "model.sh: TORCH2_PYTHON=$TORCH2_PYTHON cannot import torch: its rows are left out" >&2
fi
TORCH2_TRAIN_VARIANTS=${TORCH2_TRAIN_VARIANTS:-functional module}
TORCH2_INFER_VARIANTS=${TORCH2_INFER_VARIANTS:-functional module fastpath}
if [ "${TORCH_COMPILE:-0}" = 1 ]; then
    TORCH2_TRAIN_VARIANTS="$TORCH2_TRAIN_VARIANTS fcompile mcompile"
    TORCH2_INFER_VARIANTS="$TORCH2_INFER_VARIANTS fcompile mcompile"
fi
machine_header "$build/tools" $THREADS

get() { # get NAME KEY
    [ -s "$tmp/$1" ] && tr ' ' '\n' < "$tmp/$1" | sed -n "s/^$2=//p" || echo "-"
}
faster() { # faster A B: whether the measurement in file A beats the one in file B
    [ -s "$1" ] || return 1
    [ -s "$2" ] || return 0
    awk -v a="$(tr ' ' '\n' < "$1" | sed -n 's/^samples_per_s=//p')" \
        -v b="$(tr ' ' '\n' < "$2" | sed -n 's/^samples_per_s=//p')" 'BEGIN { exit !(a + 0 > b + 0) }'
}
# run NAME CMD...: runs one measurement once; $tmp/NAME keeps the key=value
# lines of the fastest run of NAME so far (the rounds call it again)
run() {
    name=$1; shift
    [ -e "$tmp/$name" ] || : > "$tmp/$name"
    if "$@" > "$tmp/$name.try" 2> "$tmp/$name.err"; then
        sed 's/^/  /' "$tmp/$name.try" >&2
        if faster "$tmp/$name.try" "$tmp/$name"; then cp "$tmp/$name.try" "$tmp/$name"; fi
    else
        echo "model.sh: $name failed (round $round):" >&2; cat "$tmp/$name.err" >&2
    fi
}
# run_torch NAME VARIANTS THREADS ARGS...: runs torch_model.py for each
# variant and keeps the fastest so far in $tmp/NAME; $tmp/NAME.all lists
# each variant's best
# (its variables are apart from run's: sh has no local ones).  The Python
# and its environment: $tpy and $tenv (PyTorch 1.13's unless set).
tpy=$py tenv=torch_env
run_torch() {
    tname=$1; variants=$2; nt=$3; shift 3
    : > "$tmp/$tname"; : > "$tmp/$tname.all"
    for v in $variants; do
        case $v in
        functional) va="--impl functional";;
        module) va="--impl module";;
        fastpath) va="--impl module --fastpath";;
        fcompile) va="--impl functional --compile";;
        mcompile) va="--impl module --compile";;
        *) echo "model.sh: unknown PyTorch variant '$v'" >&2; exit 2;;
        esac
        # shellcheck disable=SC2086
        run "${tname}_$v" $tenv env OMP_NUM_THREADS="$nt" "$tpy" "$here/torch_model.py" $va --threads "$nt" --tokens "$tmp/train.tok" --vocab "$tmp/vocab.txt" "$@"
    done
    for v in $variants; do
        printf ' %s %s' "$v" "$(get "${tname}_$v" samples_per_s)" >> "$tmp/$tname.all"
        if faster "$tmp/${tname}_$v" "$tmp/$tname"; then cp "$tmp/${tname}_$v" "$tmp/$tname"; fi
    done
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b == 0) print "-"; else printf "%.2fx", a / b }'; }

echo "model.sh: measuring in $REPEAT round(s) (each line is one process)" >&2
round=0
while [ $round -lt "$REPEAT" ]; do
    round=$((round + 1))
    echo "model.sh: round $round of $REPEAT, load $(cut -d' ' -f1-3 /proc/loadavg)" >&2
    for t in $THREADS; do
        run agn_dyn_$t  env OMP_NUM_THREADS=$t "$bench" -c small -t $t -s $STEPS $shards
        run agn_max_$t  env OMP_NUM_THREADS=$t "$bench" -c small -t $t -s $STEPS --pad-to-max $shards
        run agn_dense_$t env OMP_NUM_THREADS=$t "$bench" -c small -t $t -s $STEPS --dense $shards
        run agn_inf_$t  env OMP_NUM_THREADS=$t "$bench" -c small -t $t -s $INFER_STEPS --infer $shards
        run agn_dinf_$t env OMP_NUM_THREADS=$t "$bench" -c small -t $t -s $INFER_STEPS --infer --dense $shards
        if [ $have_torch = yes ]; then
            run_torch pt_train_$t "$TORCH_TRAIN_VARIANTS" $t --steps $TORCH_STEPS
            run_torch pt_inf_$t "$TORCH_INFER_VARIANTS" $t --steps $INFER_STEPS --infer
        fi
        if [ $have_torch2 = yes ]; then
            tpy=$TORCH2_PYTHON tenv=torch2_env
            run_torch pt2_train_$t "$TORCH2_TRAIN_VARIANTS" $t --steps $TORCH_STEPS
            run_torch pt2_inf_$t "$TORCH2_INFER_VARIANTS" $t --steps $INFER_STEPS --infer
            tpy=$py tenv=torch_env
        fi
    done
    if [ "$SKIP_LARGE" = 0 ]; then
        for t in $LARGE_THREADS; do
            run agn_large_dyn_$t env OMP_NUM_THREADS=$t "$bench" -c large -t $t -s $LARGE_STEPS -w 2 $shards
            run agn_large_max_$t env OMP_NUM_THREADS=$t "$bench" -c large -t $t -s $LARGE_STEPS -w 2 --dense $shards
            run agn_large_inf_$t env OMP_NUM_THREADS=$t "$bench" -c large -t $t -s $LARGE_STEPS -w 2 --infer $shards
            run agn_large_dinf_$t env OMP_NUM_THREADS=$t "$bench" -c large -t $t -s $LARGE_STEPS -w 2 --infer --dense $shards
            if [ $have_torch = yes ]; then
                run_torch pt_large_train_$t "$TORCH_TRAIN_VARIANTS" $t --config large --steps $TORCH_LARGE_STEPS --warmup 1
                run_torch pt_large_inf_$t "$TORCH_INFER_VARIANTS" $t --config large --steps $TORCH_LARGE_STEPS --warmup 1 --infer
            fi
            if [ $have_torch2 = yes ]; then
                tpy=$TORCH2_PYTHON tenv=torch2_env
                run_torch pt2_large_train_$t "$TORCH2_TRAIN_VARIANTS" $t --config large --steps $TORCH_LARGE_STEPS --warmup 2
                run_torch pt2_large_inf_$t "$TORCH2_INFER_VARIANTS" $t --config large --steps $TORCH_LARGE_STEPS --warmup 2 --infer
                tpy=$py tenv=torch_env
            fi
        done
    fi
done

echo
echo "agn CPU model vs PyTorch $(torch_env "$py" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '(absent)') and $([ $have_torch2 = yes ] && torch2_env "$TORCH2_PYTHON" -c 'import torch; print(torch.__version__)' 2>/dev/null || echo '2.x (not run: set TORCH2_PYTHON)'), AG News train_sample"
echo "host: $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(default)}, best of $REPEAT round(s)"
printf '%-6s %-3s %-6s %-14s %-14s %-14s %-14s %-14s %-9s %-7s %-7s %-7s\n' config thr mode "agn dynamic" "agn to T" "agn dense T" "PyTorch 1.13" "PyTorch 2.x" "MFU n/m" dyn/PT max/PT dense/PT
row() { # row CONFIG THREADS MODE AGN_DYN AGN_MAX AGN_DENSE PT PT2
    cell() { [ -s "$tmp/$1" ] && printf '%s (%s)' "$(get $1 samples_per_s)" "$(get $1 peak_rss_mb | cut -d. -f1)" || printf -- '-'; }
    a=$(get $4 samples_per_s); b=$(get $5 samples_per_s); d=$(get $6 samples_per_s)
    p=$(awk -v x="$(get $7 samples_per_s)" -v y="$(get $8 samples_per_s)" 'BEGIN {
        if (x == "-" && y == "-") print "-"; else if (y == "-" || (x != "-" && x + 0 > y + 0)) print x; else print y }')
    mfu=$(awk -v g="$(get $4 gflop_per_s)" -v pk="$(peak_gflops $2)" -v m="$(get $4 mfu_measured)" 'BEGIN {
        if (g == "-" || pk + 0 == 0) printf "-"; else printf "%.0f%%", 100 * g / pk
        if (m == "-" || m == "") print "/-"; else printf "/%.0f%%\n", 100 * m }')
    printf '%-6s %-3s %-6s %-14s %-14s %-14s %-14s %-14s %-9s %-7s %-7s %-7s\n' $1 $2 $3 "$(cell $4)" "$(cell $5)" "$(cell $6)" "$(cell $7)" "$(cell $8)" \
        "$mfu" "$(ratio $a $p)" "$(ratio $b $p)" "$(ratio $d $p)"
}
for t in $THREADS; do
    row small $t train agn_dyn_$t agn_max_$t agn_dense_$t pt_train_$t pt2_train_$t
    row small $t infer agn_inf_$t none agn_dinf_$t pt_inf_$t pt2_inf_$t
done
if [ "$SKIP_LARGE" = 0 ]; then
    for t in $LARGE_THREADS; do
        row large $t train agn_large_dyn_$t none agn_large_max_$t pt_large_train_$t pt2_large_train_$t
        row large $t infer agn_large_inf_$t none agn_large_dinf_$t pt_large_inf_$t pt2_large_inf_$t
    done
fi
echo "cells: samples/s (peak RSS MiB); ratios against the faster PyTorch; MFU n/m: agn dynamic's model FLOPs/s over the nominal peak / over the peak measured beside it (GFLOP/s:$(for t in $THREADS; do printf ' %s on %s thread(s)' "$(get agn_dyn_$t peak_gflop_per_s)" $t; done))"
echo "'agn to T' pads every batch to T but skips pad positions,"
echo "'agn dense T' computes them as a padded implementation does"
echo "PyTorch: OpenBLAS-openmp, jemalloc MALLOC_CONF=${TORCH_MALLOC_CONF:-(default)}; each row the best variant (samples/s of each):"
ptline() { # ptline LABEL NAME
    [ -s "$tmp/$2" ] && printf '  %-14s best %-20s of%s\n' "$1" "$(get $2 impl | sed 's/^torch-//')" "$(cat "$tmp/$2.all")"
    return 0
}
if [ $have_torch = yes ]; then
    for t in $THREADS; do ptline "small $t train" pt_train_$t; ptline "small $t infer" pt_inf_$t; done
    if [ "$SKIP_LARGE" = 0 ]; then for t in $LARGE_THREADS; do ptline "large $t train" pt_large_train_$t; ptline "large $t infer" pt_large_inf_$t; done; fi
fi
if [ $have_torch2 = yes ]; then
    echo "PyTorch 2.x: its wheel's MKL and oneDNN, jemalloc as above, fused AdamW; each row the best variant:"
    for t in $THREADS; do ptline "small $t train" pt2_train_$t; ptline "small $t infer" pt2_inf_$t; done
    if [ "$SKIP_LARGE" = 0 ]; then for t in $LARGE_THREADS; do ptline "large $t train" pt2_large_train_$t; ptline "large $t infer" pt2_large_inf_$t; done; fi
fi
if [ $have_torch = yes ] || [ $have_torch2 = yes ]; then
    echo "  (fastpath: nn.TransformerEncoderLayer's fused eval kernel; it computes GELU with erf, not tanh)"
fi
echo "targets: train dyn/PT >= 3x on both configs and (dense) padded-to-T/PT >= 1.5x at 1 and 2 threads; infer >= 3x; agn's peak RSS no higher"
echo "MFU goal: small-config training on 2 threads >= 60%"
