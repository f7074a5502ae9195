#!/bin/sh
# project.sh: agn-summarize's projection on a hand-made run (a tiny model
# whose parameter table is written out below), priced by the pcie3 preset
# and by a hand-made measured link, against the model of agn-summarize(1)
# computed here independently in awk: the buckets cut as agn-train cuts
# them, each collective's latency + bytes x bus factor / bandwidth, the
# epoch time, speedup, efficiency and R.  Then the calibration from a
# 2-rank run, ranks sharing devices, --compute-scale, the plots, and every
# bad input: links that are not agn-bench-comm CSVs, a failed check, an
# unknown preset, options without a link, a run without config.yaml.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

# ---- a run: V 100, T 16, D 8, 1 layer, F 16, 4 classes -------------------------------
V=100 T=16 D=8 F=16 C=4
P=$((V * D + T * D + (2 * D + 3 * D * D + 3 * D + D * D + D + 2 * D + F * D + F + D * F + D) + 2 * D + C * D + C))
mkrun() { # DIR W COMPUTE COMM OPTIM IMBALANCE [bucket]
    mkdir -p "$1"
    cat >"$1/config.yaml" <<EOC
# agn-train resolved config
model:
  vocab_size: $V
  max_len: $T
  d_model: $D
  n_heads: 2
  n_layers: 1
  d_ff: $F
  dropout: 0.1
  n_classes: $C
  class_names: ["a", "b", "c", "d"]
train:
  epochs: 3
  global_batch: 16
run:
  config: "tiny"
  world_size: $2
  bucket_bytes: ${7:-1073741824}
EOC
    {
        echo "epoch,world_size,backend,transport,config,params,global_batch,train_examples,data_id,steps,samples,tokens,epoch_time_s,compute_s,comm_s,optim_s,data_s,val_acc,imbalance_s"
        for e in 1 2 3; do
            t=$(awk -v a="$3" -v b="$4" -v c="$5" 'BEGIN { printf "%.6f", a + b + c + 0.01 }')
            echo "$e,$2,cpu,local,tiny,$P,16,1000,abcd,63,1000,$((63 * 40)),$t,$3,$4,$5,0.01,,$6"
        done
    } >"$1/metrics.csv"
}
mkrun n1 1 2.0 0 0.2 0
s() { agn-summarize -q "$@"; }

# the model of agn-summarize(1), computed here: the per-step collectives of
# agn's zero.h for BUCKET bytes, priced at bandwidth BW (GB/s) and latency
# LAT (s) each, one device a rank, nothing hidden
model() { # W BUCKET BW LAT SHARED -> "epoch speedup efficiency R"
    awk -v W="$1" -v bucket="$2" -v bw="$3" -v lat="$4" -v shared="$5" -v V="$V" -v D="$D" -v P="$P" 'BEGIN {
        # tensor sizes from the end of the table (head.bias first), tok_emb last
        n = split("4 32 8 8 8 128 16 128 8 8 8 64 24 192 8 8 128 800", sz, " ")
        want = int(bucket / 4); if (want < 1) want = 1
        acc = 0; nd = 0
        for (i = 1; i <= n; i++) {
            acc += sz[i]
            if (i == n) { if (acc > 800) dense[++nd] = acc - 800 }   # the embedding is cut out
            else if (acc >= want) { dense[++nd] = acc; acc = 0 }
        }
        f_ar = 2 * (W - 1) / W; f_h = (W - 1) / W
        rows = 40; if (rows > V) rows = V
        over = lat + rows * D * 4 * f_ar / bw
        for (i = 1; i <= nd; i++) over += lat + dense[i] * 4 * f_h / bw
        after = lat + 16 * f_ar / bw + lat + 8 * (1 + W) * f_ar / bw
        if (shared) after += lat + 1 * f_ar / bw
        else { after += lat + V * D * 4 * f_h / bw; for (i = 1; i <= nd; i++) after += lat + dense[i] * 4 * f_h / bw }
        if (W == 1) { over = 0; after = 0 }
        N = 63   # ceil(1000 / 16)
        comm = N * (over + after)
        t1 = 2.0 + 0.2 + 0.01
        t = 2.0 / W + 0.2 / W + 0.01 + comm
        printf "%.6g %.6g %.6g %.6g\n", t, t1 / t, t1 / t / W, (W > 1 ? 2.0 / W / comm : -1)
    }'
}
# compare W's row of proj.csv with the model: relative 1e-4
check_row() { # W BUCKET BW LAT SHARED LINK
    row=$(awk -F, -v w="$1" -v l="$6" 'NR > 1 && $5 == w && $4 == l' proj.csv)
    [ -n "$row" ] || fail "no row for W=$1 over $6"
    set -- $(model "$1" "$2" "$3" "$4" "$5") "$1" "$6"
    echo "$row" | awk -F, -v t="$1" -v sp="$2" -v ef="$3" -v R="$4" -v w="$5" -v l="$6" '
        function off(a, b) { d = a - b; if (d < 0) d = -d; return d > 1e-4 * (b < 0 ? -b : b) + 1e-12 }
        { if (off($13, t) || off($14, sp) || off($15, ef) || (R > 0 && off($16, R))) {
              printf "W=%d over %s: epoch %s speedup %s eff %s R %s; expected %s %s %s %s\n", w, l, $13, $14, $15, $16, t, sp, ef, R > "/dev/stderr"; exit 1 } }' ||
        fail "W=$5 over $6 differs from the model"
}

s n1 --preset pcie3 --project 1,2,4,8 --projection-csv proj.csv >out.md 2>err || { cat err >&2; fail "--preset pcie3"; }
for w in 1 2 4 8; do check_row "$w" 1073741824 15.75e9 10e-6 0 pcie3; done
grep -q '^## tiny' out.md && grep -q '^### pcie3' out.md && grep -q '^\*\*Verdict\*\* over pcie3:' out.md ||
    fail "the Markdown lacks the projection's sections"
grep -q "parameters" err && fail "the parameter count of the hand-made table disagrees: $(cat err)"
# a step's communication is the epoch's over its steps
awk -F, 'NR > 1 { d = $11 / $19 - $20; if (d < 0) d = -d; if ($19 != 63 || d > 1e-5 * $20 + 1e-12) bad = 1 } END { exit bad }' proj.csv ||
    fail "comm_step_s is not comm_s / steps (63)"
ok "pcie3, one bucket: W=1,2,4,8 as computed here"

s n1 --preset NVLink3 --project 2,16 --bucket-size 256 --projection-csv proj.csv >/dev/null 2>err || { cat err >&2; fail "--bucket-size 256"; }
for w in 2 16; do check_row "$w" 256 300e9 10e-6 0 nvlink3; done
ok "nvlink3, 256-byte buckets (6 buckets, 5 dense ranges): as computed here"

# --reduction dense: one all-reduce of every gradient (one bucket), nothing after
s n1 --preset pcie3 --reduction dense --project 4 --projection-csv proj.csv >dense.md 2>err || { cat err >&2; fail "--reduction dense"; }
want=$(awk -v P="$P" 'BEGIN { printf "%.6g", 2.0 / 4 + 0.2 / 4 + 0.01 + 63 * (10e-6 + 4 * P * 1.5 / 15.75e9) }')
got=$(awk -F, 'NR > 1 && $5 == 4 { print $13 }' proj.csv)
awk -v g="$got" -v w="$want" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= 1e-4 * w) }' ||
    fail "dense reduction at W=4: epoch $got, expected $want"
grep -q 'dense reduction instead' dense.md || fail "the Markdown does not say the reduction is dense"
ok "--reduction dense: W=4 epoch $got s as computed here"

# a measured link: all-reduce only, linear in size: 20 us + bytes / 1 GB/s at W=2
{
    echo "transport,impl,op,world_size,dtype,bytes,count,iters,time_us,time_max_us,algbw_gbs,busbw_gbs,wrong"
    for b in 8 1024 1048576 16777216; do
        echo "local,agn,all-reduce,2,f32,$b,$((b / 4)),5,$(awk -v b="$b" 'BEGIN { printf "%.6f", 20 + b / 1e3 }'),0,0,0,0"
        echo "mpi,MPI_Allreduce,all-reduce,2,f32,$b,$((b / 4)),5,1,1,0,0,0"
    done
} >lin.csv
# the MPI_Allreduce rows (another transport) are no part of agn's link
grep -v MPI_Allreduce lin.csv >link.csv
s n1 --link link.csv --project 1,2 --projection-csv proj.csv >/dev/null 2>err || { cat err >&2; fail "--link"; }
# at W=2 with only all-reduce measured: t(op) = factor(op)/factor(all-reduce) x (20 us + bytes/1e9);
# this link's latency halves for reduce-scatter and all-gather, so price it here the same way
want=$(awk -v V="$V" -v D="$D" -v P="$P" 'BEGIN {
    ar = 2e-5; bw = 1e9
    over = (ar + 40 * D * 4 / bw) + 0.5 * (ar + (P - V * D) * 4 / bw)
    after = (ar + 16 / bw) + (ar + 8 * 3 / bw) + (ar + 1 / bw)   # loss; norm; shared parameters: a barrier
    printf "%.6g", 2.0 / 2 + 0.2 / 2 + 0.01 + 63 * (over + after) }')
got=$(awk -F, 'NR > 1 && $5 == 2 { print $13 }' proj.csv)
awk -v g="$got" -v w="$want" 'BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= 1e-4 * w) }' ||
    fail "measured link at W=2: epoch $got, expected $want"
ok "measured link (all-reduce only, shared parameters): W=2 epoch $got s as computed here"

# a link of two files: its name is quoted in the CSV
cp link.csv link-b.csv
s n1 --link link.csv,link-b.csv --project 2 --projection-csv proj.csv >/dev/null 2>err && fail "the same points twice were accepted"
awk -F, -v OFS=, 'NR > 1 { $4 = 3 } { print }' link.csv >link3.csv
s n1 --link link.csv,link3.csv --project 2,3 --projection-csv proj.csv >/dev/null 2>err || { cat err >&2; fail "--link a,b"; }
assert_eq "$(sed -n 2p proj.csv | cut -d'"' -f2)" "link.csv,link3.csv" "the quoted link name"
assert_eq "$(python3 -c 'import csv,sys; r=list(csv.reader(open(sys.argv[1]))); print(len({len(x) for x in r}), r[1][3])' proj.csv)" "1 link.csv,link3.csv" "the CSV's shape"

# calibration from a 2-rank run: measured exposed comm 0.5 s of which imbalance 0.1 s
mkrun n2 2 1.1 0.5 0.12 0.1
s n1 n2 --link link.csv --project 1,2,4 --projection-csv proj.csv >cal.md 2>err || { cat err >&2; fail "calibration"; }
grep -q 'Calibrated on the W=2 run: [0-9]*% of the overlappable communication hidden, imbalance 9.1% of compute, optimizer serial part 20%' cal.md ||
    fail "calibration: $(grep -i calibrat cal.md)"
awk -F, 'NR > 1 && $5 == 2 && $17 != "" { found = 1 } END { exit !found }' proj.csv || fail "no measured W=2 beside the projection"
s n1 n2 --link link.csv --calibrate none --project 2 --projection-csv proj.csv >nocal.md 2>err || fail "--calibrate none"
grep -q ' 40 embedding rows' nocal.md || fail "without a log the rows are the tokens a step (40)"
# the rows a step sampled from the run's shards (run.train_data): every
# example holds the tokens a b c, so every batch has 3 distinct ids + the pad
awk 'BEGIN { for (i = 0; i < 40; i++) print (i % 4) "\ta b c a b" }' >s.txt
agn-vocab <s.txt >vocab.txt 2>/dev/null
agn-shard -q -v vocab.txt -L 16 -o sh s.txt
mkrun ns 1 2.0 0 0.2 0
printf '  train_data: ["sh-00000.agns"]\n' >>ns/config.yaml
agn-summarize ns --preset pcie3 --project 2 >ns.md 2>err || { cat err >&2; fail "rows sampled from shards"; }
grep -q ' 4 embedding rows' ns.md || fail "rows sampled from the shards: $(grep 'embedding rows' ns.md)"
grep -q 'tiny: 4 embedding rows a step, the distinct tokens of 200 random batches of 16 examples of sh-00000.agns' err ||
    fail "no note on the sampled rows: $(cat err)"
printf '  train_data: ["gone-00000.agns"]\n' >>n1/config.yaml
s n1 --preset pcie3 --project 2 >gone.md 2>&1 || fail "a missing shard is not an error"
grep -q ' 40 embedding rows' gone.md || fail "a missing shard: the rows are not the tokens a step"
sed -i '/train_data/d' n1/config.yaml

# the rows a step from what a 2-rank run logged it reduced: dense 3120 bytes + 25 rows x 32
echo "epoch 3: gradients reduced 0.00392 MB a step (the embedding's rows of the batch only; 0.0063 MB dense)" >n2/train.log
agn-summarize n1 n2 --preset pcie3 --project 2 >log.md 2>err || fail "rows from train.log"
grep -q ' 25 embedding rows' log.md || fail "rows from train.log: $(grep 'embedding rows' log.md)"
grep -q 'n2: 25 embedding rows a step, from the 0.00392 MB' err || fail "no note on the rows from train.log: $(cat err)"
rm n2/train.log
grep -q 'Not calibrated' nocal.md || fail "--calibrate none still calibrated"
ok "calibration on the W=2 run (imbalance 0.1/1.1, optimizer (0.12/0.2 - 1/2)/(1/2))"

# devices: 3 ranks on 2 devices time-slice them: 1/2 of the compute
s n1 --preset pcie4 --devices 2 --project 1,2,3 --projection-csv proj.csv >/dev/null 2>err || fail "--devices"
c3=$(awk -F, 'NR > 1 && $5 == 3 { print $8 }' proj.csv) c2=$(awk -F, 'NR > 1 && $5 == 2 { print $8 }' proj.csv)
assert_eq "$c3 $c2" "1 1" "compute at W=3 and 2 on 2 devices"
# compute 10x as fast: the compute column is a tenth
s n1 --preset pcie4 --compute-scale 10 --project 1,2 --projection-csv proj.csv >/dev/null 2>err || fail "--compute-scale"
assert_eq "$(awk -F, 'NR > 1 && $5 == 2 { print $8 }' proj.csv)" 0.1 "compute at W=2, 10x"
ok "--devices 2 (1/2 of the compute at W=3), --compute-scale 10"

# plots beside the summary's
s n1 --preset pcie3 --preset nvlink3 --plot plots --no-render >/dev/null 2>&1 || fail "--plot"
for f in projected_speedup projected_efficiency; do
    [ -s "plots/$f.gp" ] && [ -s "plots/$f.dat" ] || fail "plots/$f missing"
done
assert_eq "$(grep -c '^# tiny over' plots/projected_speedup.dat)" 2 "projected lines in the plot data"
if command -v gnuplot >/dev/null 2>&1 || [ -n "${GNUPLOT:-}" ]; then
    s n1 --preset pcie3 --plot rendered >/dev/null 2>err || { cat err >&2; fail "rendering"; }
    [ -s rendered/projected_speedup.png ] && [ -s rendered/projected_efficiency.svg ] || fail "no rendered projection plots"
fi
ok "plots: projected_speedup, projected_efficiency"

# ---- bad input ---------------------------------------------------------------------------
sed 's/,0$/,3/' link.csv >wrong.csv
expect_fail 1 'wrong.csv:2: this measurement.s check failed' agn-summarize n1 --link wrong.csv
sed 's/^transport,/transprt,/' link.csv >nocol.csv
expect_fail 1 "nocol.csv:1: no column 'transport'" agn-summarize n1 --link nocol.csv
awk -F, -v OFS=, 'NR == 3 { $9 = "fast" } { print }' link.csv >nan.csv
expect_fail 1 "nan.csv:3: column 'time_us': 'fast' is not a number" agn-summarize n1 --link nan.csv
head -n 1 link.csv >empty.csv
expect_fail 1 'empty.csv: no measurement' agn-summarize n1 --link empty.csv
: >zero.csv
expect_fail 1 'zero.csv: empty file' agn-summarize n1 --link zero.csv
head -c 130 link.csv >trunc.csv
expect_fail 1 'trunc.csv:2: [0-9]+ fields' agn-summarize n1 --link trunc.csv
s n1 --link lin.csv >/dev/null 2>err || { cat err >&2; fail "MPI_Allreduce rows are skipped"; }
sed '3s/^local,/mpi,/' link.csv >mixed.csv
expect_fail 1 'mixed.csv:3: transport .mpi. after .local.' agn-summarize n1 --link mixed.csv
expect_fail 1 'measured twice' agn-summarize n1 --link link.csv,link.csv
printf 'transport,impl,op,world_size,dtype,bytes,count,iters,time_us,time_max_us,algbw_gbs,busbw_gbs,wrong\nlocal,agn,all-smash,2,f32,8,2,1,1,1,0,0,0\n' >op.csv
expect_fail 1 "op.csv:2: column 'op'" agn-summarize n1 --link op.csv
expect_fail 1 'nope.csv' agn-summarize n1 --link nope.csv
grep -v ',all-reduce,' link.csv | sed 's/^\(local,agn,\)all-reduce/\1broadcast/' >noar.csv
printf 'local,agn,broadcast,2,f32,8,2,1,1,1,0,0,0\n' >>noar.csv
expect_fail 1 'noar.csv: no all-reduce measured' agn-summarize n1 --link noar.csv
expect_fail 2 "'pcie9' is not a link preset \(pcie3, pcie4" agn-summarize n1 --preset pcie9
expect_fail 2 'need a link' agn-summarize n1 --project 1,2
expect_fail 2 'ascending' agn-summarize n1 --preset pcie3 --project 4,2
expect_fail 2 'hidden' agn-summarize n1 --preset pcie3 --hidden 1.5
expect_fail 2 "'ring' is not agn or dense" agn-summarize n1 --preset pcie3 --reduction ring
expect_fail 1 'calibrate 4: no run with 4 ranks' agn-summarize n1 n2 --preset pcie3 --calibrate 4
cp n1/metrics.csv alone.csv
expect_fail 1 "alone.csv.*config.yaml|config.yaml.*alone|config.yaml: No such file" agn-summarize alone.csv --preset pcie3
# a group without a 1-rank run is skipped with a note
s n2 --preset pcie3 >/dev/null 2>err || fail "a 2-rank run alone"
agn-summarize n2 --preset pcie3 2>&1 >/dev/null | grep -q 'no 1-rank run' || fail "no note for a group without a 1-rank run"
s n2 --preset pcie3 --plot noproj --no-render >/dev/null 2>&1 || fail "--plot without anything to project"
[ ! -e noproj/projected_speedup.gp ] || fail "projection plots written with nothing projected"
agn-summarize n1 --preset pcie3 -f csv 2>&1 >/dev/null | grep -q 'projection is written with -f md or --projection-csv' ||
    fail "no note that -f csv leaves the projection out"
[ ! -e proj-bad.csv ] || fail "a projection CSV was written for bad input"
ok "bad links, presets and options refused"
