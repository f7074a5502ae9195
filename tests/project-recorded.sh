#!/bin/sh
# project-recorded.sh: the projection against runs recorded on a quiet
# machine, so that the check does not depend on how busy this one is.  The
# 1- and 2-rank runs are the scaling study of the README (doc/scaling/
# summary.csv, 2026-11-29: the small config at batch 32 and the large at 128,
# 2048 examples an epoch, one thread a rank, the local transport; each run's
# means of its timed epochs, written back as a metrics.csv); the link is the
# local transport at 2 ranks as agn-bench-comm measured it (2026-12-03, a
# few of its sizes).  Projected from the 1-rank run alone (no calibration),
# the 2-rank epoch time must come within 15% of the recorded one (it came
# within 2%).
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

# config D L F T batch params | W epoch compute comm optim data (s)
while read -r cfg D L F T B P W1 E1 C1 M1 O1 D1 W2 E2 C2 M2 O2 D2; do
    for w in 1 2; do
        mkdir -p "$cfg-n$w"
        cat >"$cfg-n$w/config.yaml" <<EOC
model:
  vocab_size: 19012
  max_len: $T
  d_model: $D
  n_heads: 4
  n_layers: $L
  d_ff: $F
  n_classes: 4
train:
  global_batch: $B
run:
  world_size: $w
  bucket_bytes: 1048576
EOC
        if [ "$w" = 1 ]; then set -- "$E1" "$C1" "$M1" "$O1" "$D1"; tr=none; else set -- "$E2" "$C2" "$M2" "$O2" "$D2"; tr=local; fi
        {
            echo "epoch,world_size,backend,transport,config,params,global_batch,train_examples,data_id,steps,samples,tokens,epoch_time_s,compute_s,comm_s,optim_s,data_s,val_acc"
            for e in 1 2 3; do echo "$e,$w,cpu,$tr,$cfg,$P,$B,2048,study,$((2048 / B)),2048,90000,$1,$2,$3,$4,$5,"; done
        } >"$cfg-n$w/metrics.csv"
    done
done <<'EOF_RUNS'
small 128 2 512 128 32 2847236 1 3.3054 3.14315 0 0.16185 0.00045 2 1.7421 1.59325 0.07585 0.07125 0.00175
large 256 4 1024 256 128 8093188 1 21.4829 21.36375 0 0.1188 0.0003 2 10.95195 10.84385 0.0457 0.06175 0.0006
EOF_RUNS

{
    echo "transport,impl,op,world_size,dtype,bytes,count,iters,time_us,time_max_us,algbw_gbs,busbw_gbs,wrong"
    while read -r op b t; do echo "local,agn,$op,2,f32,$b,$((b / 4)),20,$t,$t,0,0,0"; done <<'EOF_LINK'
all-reduce 8 51.226
all-reduce 1024 48.807
all-reduce 65536 69.539
all-reduce 1048576 487.857
all-reduce 16777216 24431.148
reduce-scatter 8 48.061
reduce-scatter 1024 48.709
reduce-scatter 65536 55.820
reduce-scatter 1048576 365.709
reduce-scatter 16777216 14815.713
all-gather 8 23.695
all-gather 1024 22.738
all-gather 65536 35.246
all-gather 1048576 189.902
all-gather 16777216 7844.760
EOF_LINK
} >link.csv

# the embedding rows a step: distinct tokens of a batch of the train sample
# (706 at 32 examples, 2077 at 128; doc/projection.md)
for c in small:706 large:2077; do
    cfg=${c%%:*}
    agn-summarize -q "$cfg-n1" "$cfg-n2" --link link.csv --calibrate none --emb-rows "${c#*:}" \
        --project 1,2 --projection-csv "$cfg.csv" >"$cfg.md" 2>err || { cat err >&2; fail "$cfg: agn-summarize"; }
    row=$(awk -F, 'NR > 1 && $5 == 2' "$cfg.csv")
    pred=$(echo "$row" | cut -d, -f13) meas=$(echo "$row" | cut -d, -f17) err=$(echo "$row" | cut -d, -f18)
    assert_eq "$meas" "$(awk 'BEGIN { printf "%.6g", '"$(sed -n 2p "$cfg-n2/metrics.csv" | cut -d, -f13)"' }')" "$cfg: measured epoch time"
    awk -v e="$err" 'BEGIN { exit !(e <= 0.15 && e >= -0.15) }' ||
        fail "$cfg W=2: projected $pred s, recorded $meas s ($err)"
    ok "$cfg W=2: projected $pred s an epoch from W=1, recorded $meas s ($(awk -v e="$err" 'BEGIN { printf "%+.1f%%", 100 * e }'))"
done
