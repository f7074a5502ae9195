#!/bin/sh
# fault-sweep.sh: crash consistency of every output, by fault injection
# (agn(7), FAULT INJECTION).  For each job below, a run with AGN_FAULT=count
# gives how many writes, fsyncs, renames and allocations it makes; then the
# job runs once for every N up to that count with the Nth call of each kind
# failing (AGN_FAULT=KIND:N) and once killed there (AGN_FAULT=kill:N, N up
# to the total), each from the same previous state, and what is on disk is
# checked after every run:
#  - exit 0: the outputs are exactly those of a run without faults;
#  - a failure: exit 1 (134, an abort, for an allocation), a message naming
#    the file and the cause, the previous outputs untouched (or, for a
#    failure after the last output was committed, the complete new ones),
#    no temporary;
#  - a kill: the previous outputs, or the complete new ones (temporaries a
#    SIGKILL cannot remove may stay: the next run removes those it can tell
#    are dead); for a shard set, also a set readers refuse, naming the fix
#    (a kill between the manifest's rename and the last shard's), which the
#    next agn-shard run repairs; so for a failed rename in that window.
#    Output to stdout (tokenize_stdout) is a shell redirection: a failure
#    must be reported (exit 1, a message); a kill has no promise to keep.
#  - agn-train (a fresh run of two epochs): after a failure or a kill, the
#    run is resumed from its last.safetensors (or started again with -f
#    when there is none), and its metrics.csv and steps.csv must then hold
#    every epoch and logged step exactly once, with the values of a run
#    without faults, and its checkpoint the same weights.
# SWEEP_STRIDE=K takes every Kth N only (1, the default, is every point);
# SWEEP_MAX_POINTS=M at most about M points per job and kind;
# SWEEP_JOBS picks jobs (default: all); SWEEP_KINDS the kinds.  Prints one
# line per job and kind and the number of points in all.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
ulimit -c 0 2>/dev/null || true

STRIDE=${SWEEP_STRIDE:-1}
JOBS=${SWEEP_JOBS:-"tokenize tokenize_stdout vocab shard summarize train"}
MAXP=${SWEEP_MAX_POINTS:-0}
KINDS=${SWEEP_KINDS:-"write fsync rename alloc kill"}
# AddressSanitizer: an injected allocation failure aborts by design (and
# an abort skips the leak check); the failure paths are leak-checked
ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}handle_abort=0"
export ASAN_OPTIONS

# ---- inputs -------------------------------------------------------------------
mkdir in
i=0
while [ $i -lt 120 ]; do
    printf '"%d","Title %d of the wire","Body text %d: stocks &lt;rally&gt; as rates fall #39;s"\n' \
        $((i % 4 + 1)) $i $((i * 7)) >> in/a.csv
    i=$((i + 1))
done
agn-tokenize -q -o in/a.tok in/a.csv
agn-vocab -q -o in/v.txt in/a.tok
for w in 1 2; do
    mkdir -p in/run$w
    echo "epoch,world_size,backend,transport,device,threads,config,params,global_batch,train_examples,data_id,steps,samples,tokens,epoch_time_s,compute_s,comm_s,optim_s,data_s,samples_per_s,tokens_per_s,train_loss,val_loss,val_acc,val_f1,lr" > in/run$w/metrics.csv
    for e in 1 2; do
        echo "$e,$w,cpu,local,cpu,1,small,5000,32,100,00c0ffee,4,100,900,$((12 / w)),1,0.1,0.01,0.01,10,90,1.3,1.2,0.7,0.6,0.001" >> in/run$w/metrics.csv
    done
done

# ---- jobs: setup_J makes prev/ (the state before) and ref/ (a clean run's
# result); run_J runs in w/ (a copy of prev/); outputs_J lists what to compare
setup_tokenize() { mkdir -p prev ref; echo old > prev/out.tok; agn-tokenize -q -o ref/out.tok in/a.csv; }
run_tokenize() { agn-tokenize -q -o w/out.tok in/a.csv; }
setup_tokenize_stdout() { mkdir -p prev ref; agn-tokenize -q in/a.csv > ref/out.tok; }
run_tokenize_stdout() { agn-tokenize -q in/a.csv > w/out.tok; }
setup_vocab() { mkdir -p prev ref; echo old > prev/v.txt; agn-vocab -q -o ref/v.txt in/a.tok; }
run_vocab() { agn-vocab -q -o w/v.txt in/a.tok; }
setup_shard() {
    mkdir -p prev ref
    agn-shard -q -v in/v.txt -L 16 -n 50 -o prev/t in/a.tok
    agn-shard -q -v in/v.txt -L 16 -n 20 -o ref/t in/a.tok
}
run_shard() { agn-shard -q -v in/v.txt -L 16 -n 20 -o w/t in/a.tok; }
setup_summarize() { mkdir -p prev ref; echo old > prev/s.md; agn-summarize -q -o ref/s.md in/run1 in/run2; }
run_summarize() { agn-summarize -q -o w/s.md in/run1 in/run2; }

setup_train() {
    mkdir -p prev ref tr
    (cd tr && . "$top_srcdir/tests/train-fixture.sh" && echo "$V" > V)
    TR="agn-train -q -t 1 -c $top_srcdir/examples/tiny.yaml -s model.vocab_size=$(cat tr/V) -e 2 -b 32 --val tr/shards/val-00000.agns"
    $TR -o ref/run tr/shards/train-00000.agns
}
run_train() { $TR -o w/run tr/shards/train-00000.agns; }
# after a fault: resume (or start again), then the same rows and weights
recover_train() {
    if [ -e w/run/last.safetensors ]; then
        $TR -o w/run --resume w/run/last.safetensors tr/shards/train-00000.agns 2>rec.err
    else
        $TR -f -o w/run tr/shards/train-00000.agns 2>rec.err
    fi || { cat rec.err >&2; return 1; }
    compare_train
}
compare_train() {
    for f in metrics steps; do
        cols="epoch steps samples tokens train_loss val_loss val_acc val_f1 lr step"
        [ $f = steps ] && cols="step epoch loss lr grad_norm"
        for d in w/run ref/run; do
            awk -F, -v cols="$cols" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; n = split(cols, k, " "); next }
                { s = ""; for (j = 1; j <= n; j++) s = s ((k[j] in c) ? $c[k[j]] : "") ","; print s }' "$d/$f.csv" > "$d.$f.cut"
        done
        cmp -s w/run.$f.cut ref/run.$f.cut || { diff w/run.$f.cut ref/run.$f.cut >&2; return 1; }
    done
    "$top_builddir/tests/st-diff" --quiet ref/run/last.safetensors w/run/last.safetensors >/dev/null
}

# same DIR1 DIR2: the same files with the same bytes (temporaries aside)
same() {
    a=$(cd "$1" && ls | grep -v '\.tmp\.' || true); b=$(cd "$2" && ls | grep -v '\.tmp\.' || true)
    [ "$a" = "$b" ] || return 1
    for f in $a; do cmp -s "$1/$f" "$2/$f" || return 1; done
}
tmps() { ls w | grep '\.tmp\.' || true; }

total=0
bad=0
for job in $JOBS; do
    rm -rf prev ref w
    "setup_$job"
    rm -rf w && cp -r prev w
    AGN_FAULT=count "run_$job" 2>count.err || { cat count.err >&2; fail "$job: the clean run failed"; }
    if [ "$job" = train ]; then compare_train || fail "train: the clean run differs from the reference"
    else same w ref || fail "$job: the clean run differs from the reference"
    fi
    for kind in $KINDS; do
        if [ "$kind" = kill ]; then
            n=$(awk '/^agn-fault:/ { s = $4 + $6 + $8 + $10; if (s > m) m = s } END { print m + 0 }' count.err)
        else
            n=$(awk -v k="$kind" '/^agn-fault:/ { for (i = 3; i < NF; i += 2) if ($i == k && $(i + 1) > m) m = $(i + 1) } END { print m + 0 }' count.err)
        fi
        points=0 ok0=0 failed=0 killed_prev=0 killed_new=0 refused=0 recovered=0
        step=$STRIDE
        if [ "$MAXP" -gt 0 ] && [ $(( (n + MAXP - 1) / MAXP )) -gt "$step" ]; then step=$(( (n + MAXP - 1) / MAXP )); fi
        N=1
        while [ "$N" -le "$n" ]; do
            rm -rf w && cp -r prev w
            set +e
            AGN_FAULT=$kind:$N "run_$job" >/dev/null 2>err
            st=$?
            set -e
            points=$((points + 1))
            what="$job $kind:$N"
            if [ "$job" = train ]; then
                if [ "$st" -ne 0 ]; then
                    want=1; [ "$kind" = alloc ] && want=134; [ "$kind" = kill ] && want=137
                    [ "$st" -eq "$want" ] || { bad=$((bad + 1)); echo "not ok - $what: exit $st, expected $want" >&2; cat err >&2; }
                    case $kind in write|fsync|rename)
                        grep -Eq "^agn-train: .*w/run/[a-z.]+.*(No space left on device|Input/output error)" err ||
                            { bad=$((bad + 1)); echo "not ok - $what: no message naming the file and the cause" >&2; cat err >&2; } ;;
                    esac
                    failed=$((failed + 1))
                else
                    ok0=$((ok0 + 1))
                fi
                if recover_train; then recovered=$((recovered + 1))
                else bad=$((bad + 1)); echo "not ok - $what: after resuming, the run differs from one without faults" >&2
                fi
                N=$((N + step))
                continue
            fi
            if [ "$st" -eq 0 ]; then
                same w ref || { bad=$((bad + 1)); echo "not ok - $what: exit 0 but the outputs differ from a clean run" >&2; }
                [ -z "$(tmps)" ] || { bad=$((bad + 1)); echo "not ok - $what: exit 0 and temporaries left: $(tmps)" >&2; }
                ok0=$((ok0 + 1))
            elif [ "$kind" = kill ]; then
                [ "$st" -eq 137 ] || { bad=$((bad + 1)); echo "not ok - $what: exit $st, not killed" >&2; }
                if [ "$job" = tokenize_stdout ]; then : # a shell redirection: no promise
                elif same w prev; then killed_prev=$((killed_prev + 1))
                elif same w ref; then killed_new=$((killed_new + 1))
                elif [ "$job" = shard ] && ! agn-shard --info w/t-*.agns >/dev/null 2>info.err &&
                     grep -q "run agn-shard again" info.err; then
                    refused=$((refused + 1))
                    # the next run repairs it
                    run_shard 2>/dev/null && same w ref ||
                        { bad=$((bad + 1)); echo "not ok - $what: a new agn-shard run does not repair the set" >&2; }
                else
                    bad=$((bad + 1)); echo "not ok - $what: killed, and the outputs are neither the old nor the new" >&2
                fi
            else
                want=1; [ "$kind" = alloc ] && want=134
                [ "$st" -eq "$want" ] || { bad=$((bad + 1)); echo "not ok - $what: exit $st, expected $want" >&2; cat err >&2; }
                grep -Eq "^agn-[a-z]+: .*(No space left on device|Input/output error|out of memory|write error)" err ||
                    { bad=$((bad + 1)); echo "not ok - $what: no message naming the cause" >&2; cat err >&2; }
                if [ "$job" = shard ] && grep -q "is committed but incomplete" err; then
                    # a rename after the commit point failed: refused, repaired by a new run
                    agn-shard --info w/t-*.agns >/dev/null 2>&1 &&
                        { bad=$((bad + 1)); echo "not ok - $what: an incomplete set is accepted" >&2; }
                    refused=$((refused + 1))
                elif [ "$job" != tokenize_stdout ] && ! same w prev && ! same w ref; then
                    # (the complete new outputs: a failure after the last commit)
                    bad=$((bad + 1)); echo "not ok - $what: exit $st and the previous outputs changed" >&2
                fi
                [ "$kind" = alloc ] || [ -z "$(tmps)" ] ||
                    { bad=$((bad + 1)); echo "not ok - $what: temporaries left: $(tmps)" >&2; }
                [ "$kind" != alloc ] || [ -z "$(tmps)" ] ||
                    { bad=$((bad + 1)); echo "not ok - $what: temporaries left after the abort: $(tmps)" >&2; }
                failed=$((failed + 1))
            fi
            N=$((N + step))
        done
        total=$((total + points))
        echo "ok - $job $kind: $points of $n points (exit 0: $ok0, failed cleanly: $failed, killed leaving the old outputs: $killed_prev, the new: $killed_new, a set readers refuse: $refused, resumed to the same run: $recovered)"
    done
done
echo "# $total fault points"
[ "$bad" -eq 0 ] || fail "$bad inconsistent states"
