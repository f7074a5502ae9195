#!/bin/sh
# summarize.sh: agn-summarize on synthetic run directories with known epoch
# times.  Speedups, efficiencies, R, the Amdahl fit and its predictions are
# computed here independently (awk, a fine grid search for the fit) and
# compared with the CSV and JSON output; the Markdown is checked for the
# labels and verdicts the man page promises.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

HEADER=epoch,world_size,backend,transport,device,threads,config,params,global_batch,train_examples,data_id,steps,samples,tokens,epoch_time_s,compute_s,comm_s,optim_s,data_s,samples_per_s,tokens_per_s,train_loss,val_loss,val_acc,val_f1,lr

# mkrun DIR W CONFIG GLOBAL_BATCH "T1 T2 ..." [COMM_FRACTION]: a run whose
# epoch e took Te seconds: compute 0.8 T, exposed communication
# COMM_FRACTION x T (default 0.1) when W > 1, optimizer 0.05 s, data 0.02 s,
# validation accuracy 0.80 + e/100.
mkrun() {
    mkdir -p "$1"
    echo "$HEADER" > "$1/metrics.csv"
    echo "$5" | tr ' ' '\n' | awk -v w="$2" -v cfg="$3" -v gb="$4" -v cf="${6:-0.1}" '
        NF { e++; t = $1; comm = (w > 1) ? cf * t : 0
             printf "%d,%d,cpu,%s,cpu,1,%s,1000000,%d,1000,1a2b3c4d,31,1000,64000,%s,%.6f,%.6f,0.05,0.02,100,6400,1.1,1.0,%.2f,0.8,0.001\n",
                 e, w, (w > 1 ? "local" : "none"), cfg, gb, t, 0.8 * t, comm, 0.80 + e / 100 }' >> "$1/metrics.csv"
}

# near GOT WANT TOL WHAT: |GOT - WANT| <= TOL
near() {
    awk -v g="$1" -v w="$2" -v t="$3" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(g != "" && d <= t) }' ||
        fail "$4: got '$1', expected $2 (tolerance $3)"
}

# csvget FILE CONFIG W COLUMN: one field of agn-summarize's CSV
csvget() {
    awk -F, -v c="$2" -v w="$3" -v col="$4" '
        NR == 1 { for (i = 1; i <= NF; i++) idx[$i] = i; if (!(col in idx)) exit 3; next }
        $idx["config"] == c && $idx["world_size"] == w { print $idx[col]; found = 1 }
        END { if (!found) exit 4 }' "$1" || fail "no $4 for config $2 W=$3 in $1"
}

# amdahl W0 "W:S W:S ...": least-squares serial fraction by a grid of 1e-5
amdahl() {
    awk -v w0="$1" -v pts="$2" 'BEGIN {
        n = split(pts, p, " ")
        for (i = 1; i <= n; i++) { split(p[i], q, ":"); W[i] = q[1]; S[i] = q[2] }
        best = -1
        for (k = 0; k <= 100000; k++) {
            f = k / 100000; a0 = f + (1 - f) / w0; e = 0
            for (i = 1; i <= n; i++) { d = S[i] - a0 / (f + (1 - f) / W[i]); e += d * d }
            if (best < 0 || e < best) { best = e; bf = f }
        }
        printf "%.6f\n", bf }'
}
# eff F W0 W: efficiency the law predicts at W relative to W0
eff() { awk -v f="$1" -v w0="$2" -v w="$3" 'BEGIN { printf "%.6f\n", (f + (1 - f) / w0) / (f + (1 - f) / w) * w0 / w }'; }

# ---- one config at W = 1, 2, 4 ------------------------------------------------------
# Three epochs each, so the first (12, 7, 4 s) is left out: 10, 5.5, 3.2 s.
mkrun small-n1 1 small 32 "12 10 10"
mkrun small-n2 2 small 32 "7 5.5 5.5"
mkrun small-n4 4 small 32 "4 3.2 3.2"

agn-summarize -f csv -o out.csv small-n1 small-n2 small-n4 2>err.txt
[ ! -s err.txt ] || { cat err.txt >&2; fail "notes on stderr for a clean comparison"; }
ls | grep -q 'tmp' && fail "temporary file left beside out.csv"
assert_eq "$(wc -l < out.csv | tr -d ' ')" 4 "csv rows (header + 3 world sizes)"

for w in 1 2 4; do
    case $w in 1) t=10 ;; 2) t=5.5 ;; 4) t=3.2 ;; esac
    s=$(awk -v t="$t" 'BEGIN { printf "%.9f", 10 / t }')
    e=$(awk -v s="$s" -v w="$w" 'BEGIN { printf "%.9f", s / w }')
    near "$(csvget out.csv small $w epoch_time_s)" "$t" 1e-9 "epoch time W=$w"
    near "$(csvget out.csv small $w speedup)" "$s" 1e-8 "speedup W=$w"
    near "$(csvget out.csv small $w efficiency)" "$e" 1e-8 "efficiency W=$w"
    near "$(csvget out.csv small $w final_val_acc)" 0.83 1e-9 "final accuracy W=$w"
    near "$(csvget out.csv small $w best_val_acc)" 0.83 1e-9 "best accuracy W=$w"
    assert_eq "$(csvget out.csv small $w epochs_timed)" 2 "epochs timed W=$w"
    assert_eq "$(csvget out.csv small $w baseline_world_size)" 1 "baseline W=$w"
done
ok "epoch time (first epoch left out), speedup and efficiency at W=1,2,4"

# R = compute / comm = 0.8 / 0.1 for W > 1; undefined (empty) at W = 1
assert_eq "$(csvget out.csv small 1 R)" "" "R at one rank"
near "$(csvget out.csv small 2 R)" 8 1e-6 "R at W=2"
near "$(csvget out.csv small 4 R)" 8 1e-6 "R at W=4"
ok "R per world size"

f=$(amdahl 1 "2:$(awk 'BEGIN { print 10 / 5.5 }') 4:$(awk 'BEGIN { print 10 / 3.2 }')")
near "$(csvget out.csv small 4 serial_fraction)" "$f" 2e-5 "Amdahl serial fraction"
assert_eq "$(csvget out.csv small 4 pred_world_size_2x)" 8 "prediction at 2x the largest W"
assert_eq "$(csvget out.csv small 4 pred_world_size_4x)" 16 "prediction at 4x the largest W"
near "$(csvget out.csv small 4 pred_efficiency_2x)" "$(eff "$f" 1 8)" 1e-4 "predicted efficiency at W=8"
near "$(csvget out.csv small 4 pred_efficiency_4x)" "$(eff "$f" 1 16)" 1e-4 "predicted efficiency at W=16"
ok "Amdahl fit f=$f and its predictions match an independent grid search"

# ---- JSON parses and says the same -------------------------------------------
agn-summarize -f json small-n4 small-n1 small-n2 > out.json
python3 - out.json "$f" <<'EOF' || fail "JSON output"
import json, sys
d = json.load(open(sys.argv[1]))
g = d["groups"]
assert len(g) == 1, g
g = g[0]
ws = [c["world_size"] for c in g["world_sizes"]]
assert ws == [1, 2, 4], ws          # sorted by W whatever the argument order
sp = {c["world_size"]: c["speedup"] for c in g["world_sizes"]}
assert abs(sp[2] - 10 / 5.5) < 1e-8 and abs(sp[4] - 10 / 3.2) < 1e-8, sp
r1 = g["world_sizes"][0]
assert r1["R"] is None and r1["R_text"] == "n/a", r1
assert abs(g["amdahl"]["serial_fraction"] - float(sys.argv[2])) < 2e-5, g["amdahl"]
assert g["amdahl"]["clamped"] == "no"
assert len(g["runs"]) == 3 and g["runs"][0]["val_acc"] == [0.81, 0.82, 0.83], g["runs"][0]
assert "adding ranks pays" in g["verdict"], g["verdict"]
EOF
ok "JSON parses, W sorted, R n/a at one rank"

# ---- Markdown --------------------------------------------------------------------
agn-summarize small-n1 small-n2 small-n4 > out.md
grep -q '^| speedup vs W=1 | 1.000 | 1.818 | 3.125 |$' out.md || { cat out.md >&2; fail "md speedup row"; }
grep -q '^| parallel efficiency | 100.0% | 90.9% | 78.1% |$' out.md || fail "md efficiency row"
grep -q '^| R = compute / comm | n/a | 8.00 | 8.00 |$' out.md || fail "md R row"
grep -q '^\*\*Verdict\.\*\* small: adding ranks pays, with losses: 4 ranks ran 3.12x' out.md ||
    fail "md verdict"
ok "Markdown rows and verdict"

# ---- separate groups, no 1-rank baseline, R = inf, short runs, partial epochs ----
# large: only W=2 and W=4, communication fully hidden at W=4 (comm 0 -> inf)
mkrun large-n2 2 large 128 "30 20 20"
mkrun large-n4 4 large 128 "18 12 12" 0
# small at another global batch: never compared with batch 32
mkrun small-b64-n1 1 small 64 "9 8"
mkrun small-b64-n2 2 small 64 "5 4"
# a run cut short: epoch 3 processed 500 of 1000 examples in 2.75 s -> 5.5 s
mkrun small-n2-short 2 small 32 "7 5.5 2.75"
sed -i '$ s/,1000,64000,/,500,32000,/' small-n2-short/metrics.csv

agn-summarize -f csv -o mixed.csv small-n1 small-n2 small-n4 large-n2 large-n4 \
    small-b64-n1 small-b64-n2 2>err.txt
grep -q "config 'small' differ in global batch (32 vs 64)" err.txt || { cat err.txt >&2; fail "no note on mixed global batches"; }
grep -q "no 1-rank run" err.txt || fail "no note on the missing 1-rank baseline"
assert_eq "$(awk -F, '$1 == "small" && $3 == 64' mixed.csv | wc -l | tr -d ' ')" 2 "batch-64 group rows"
# the batch-64 group has its own baseline: two epochs, none left out, so
# (9 + 8) / 2 s at W=1 over (5 + 4) / 2 s at W=2
s64=$(awk -F, '$1 == "small" && $3 == 64 && $6 == 2 { print $16 }' mixed.csv)
near "$s64" "$(awk 'BEGIN { printf "%.10f", 8.5 / 4.5 }')" 1e-8 "speedup of the batch-64 group (2 epochs, both timed)"
s32=$(awk -F, '$1 == "small" && $3 == 32 && $6 == 2 { print $16 }' mixed.csv)
near "$s32" "$(awk 'BEGIN { printf "%.10f", 10 / 5.5 }')" 1e-8 "batch-32 group unchanged by the batch-64 runs"
assert_eq "$(csvget mixed.csv large 2 baseline_world_size)" 2 "large: baseline is the smallest W"
near "$(csvget mixed.csv large 4 speedup)" 1.666666667 1e-8 "large: speedup vs W=2"
near "$(csvget mixed.csv large 4 efficiency)" 0.833333333 1e-8 "large: efficiency vs W=2"
assert_eq "$(csvget mixed.csv large 4 R)" inf "R with no exposed communication"
fl=$(amdahl 2 "4:$(awk 'BEGIN { print 20 / 12 }')")
near "$(csvget mixed.csv large 4 serial_fraction)" "$fl" 2e-5 "Amdahl fit relative to W=2"
ok "mixed batches grouped apart with a note; baseline W=2 labelled; R=inf"

agn-summarize large-n2 large-n4 > large.md 2>/dev/null
grep -q '^| speedup vs W=2 (no 1-rank run) | 1.000 | 1.667 |$' large.md || { cat large.md >&2; fail "md label without a 1-rank run"; }
agn-summarize -f csv small-n1 small-n2-short > short.csv 2>err.txt
grep -q 'stopped early' err.txt || fail "no note on the scaled partial epoch"
near "$(csvget short.csv small 2 epoch_time_s)" 5.5 1e-9 "partial epoch scaled to a full epoch"
ok "partial epoch scaled to a full one, with a note"

# ---- pooled repeats and a slowdown ----------------------------------------------
mkrun rep-a 2 small 32 "7 5 5"
mkrun rep-b 2 small 32 "7 6 6"
agn-summarize -f csv small-n1 rep-a rep-b > pooled.csv 2>err.txt
grep -q '2 runs pooled' err.txt || fail "no note on pooled runs"
near "$(csvget pooled.csv small 2 epoch_time_s)" 5.5 1e-9 "pooled epoch time"
assert_eq "$(csvget pooled.csv small 2 runs)" 2 "pooled run count"

mkrun slow-n1 1 slow 32 "11 10 10"
mkrun slow-n2 2 slow 32 "25 20 20" 0.6
agn-summarize -f json slow-n1 slow-n2 > slow.json
python3 - slow.json <<'EOF' || fail "slowdown verdict"
import json, sys
g = json.load(open(sys.argv[1]))["groups"][0]
assert abs(g["world_sizes"][1]["speedup"] - 0.5) < 1e-9
assert g["amdahl"]["clamped"] == "1" and g["amdahl"]["serial_fraction"] == 1, g["amdahl"]
v = g["verdict"]
assert "adding ranks costs time" in v and "Communication dominates" in v, v
EOF
ok "pooled repeats; a slowdown is called so, communication blamed, Amdahl clamped at 1"

# more than linear is flagged as suspect, not praised
mkrun fast-n1 1 fast 32 "21 20 20"
mkrun fast-n2 2 fast 32 "7 6 6"
agn-summarize fast-n1 fast-n2 > fast.md
grep -q 'adding ranks pays, beyond linear: 2 ranks ran 3.33x' fast.md || { cat fast.md >&2; fail "superlinear verdict"; }
grep -q 'Measure again on a quiet machine' fast.md || fail "superlinear verdict lacks the advice"
grep -q 'f = 0.0000 (clamped at 0' fast.md || fail "superlinear fit not clamped at 0"
ok "superlinear speedup flagged, fit clamped at 0"

# imbalance_s (newer metrics.csv): carried to every output, and when most of
# the exposed communication is waiting for the slowest rank the verdict says
# so; runs without the column have none (n/a, empty, null)
for w in 1 2; do
    mkdir -p imb-n$w
    echo "$HEADER,imbalance_s" > imb-n$w/metrics.csv
    for e in 1 2 3; do
        awk -v w=$w -v e=$e -v t=$((10 * w)) 'BEGIN { comm = w > 1 ? 0.6 * t : 0; imb = w > 1 ? 0.45 * t : 0
            printf "%d,%d,cpu,%s,cpu,1,imb,1000000,32,1000,1a2b3c4d,31,1000,64000,%s,%.6f,%.6f,0.05,0.02,100,6400,1.1,1.0,0.8,0.8,0.001,%.6f\n",
                e, w, (w > 1 ? "local" : "none"), t, 0.3 * t, comm, imb }' >> imb-n$w/metrics.csv
    done
done
agn-summarize -f csv -o imb.csv imb-n1 imb-n2 small-n1 || fail "agn-summarize with imbalance_s"
near "$(csvget imb.csv imb 2 imbalance_s)" 9 1e-9 "imbalance_s at W=2 (0.45 x 20 s)"
near "$(csvget imb.csv imb 1 imbalance_s)" 0 1e-9 "imbalance_s at W=1"
[ -z "$(csvget imb.csv small 1 imbalance_s)" ] || fail "a run without imbalance_s got a value in the CSV"
agn-summarize -f json imb-n1 imb-n2 small-n1 > imb.json
python3 - imb.json <<'EOF' || fail "imbalance in JSON and the verdict"
import json, sys
d = json.load(open(sys.argv[1]))
g = {x["config"]: x for x in d["groups"]}
w2 = g["imb"]["world_sizes"][1]
assert abs(w2["imbalance_s"] - 9) < 1e-9 and abs(w2["comm_s"] - 12) < 1e-9, w2
assert g["small"]["world_sizes"][0]["imbalance_s"] is None, g["small"]
v = g["imb"]["verdict"]
assert "Communication dominates" in v and "Most of that wait (9 s, 75%) is for the slowest rank" in v, v
runs = {r["label"]: r for r in g["imb"]["runs"]}
assert abs(runs["imb-n2"]["imbalance_s"] - 9) < 1e-9, runs["imb-n2"]
EOF
agn-summarize imb-n1 imb-n2 > imb.md
grep -q '^| of which imbalance (s) | 0.000 | 9.000 |$' imb.md || { cat imb.md >&2; fail "Markdown imbalance row"; }
ok "imbalance_s: CSV, JSON and Markdown; the verdict blames the slowest rank when it is most of the wait"
