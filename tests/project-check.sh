#!/bin/sh
# project-check.sh: the projection checked against measurement, as
# agn-summarize(1) (Projection, The check) promises: the small config
# trained here with 1, 2 and 3 CPU ranks (one thread each) on a subset of
# the corpus, the local transport measured with agn-bench-comm at 2 and 3
# ranks; projected from the 1-rank run over that link (for W=3 also with
# the hidden fraction, imbalance and optimizer split measured at W=2; the
# ranks on this machine's cores), the epoch time of every W up to the
# number of cores must come within 15% of the measured one (on 2 cores W=3
# is time-slicing, whose cost moves with the host: printed, not checked).  The machine is shared and noisy: each W runs 5
# times, interleaved, and the fastest run of each counts (noise only ever
# adds time).  The check needs two idle cores: the test skips, saying so,
# when two busy processes at once run more than 20% slower than one (before
# and after the runs), or when the two fastest runs of a W still differ by
# more than 20%.
# Needs the corpus.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

need_corpus test.csv.gz train_sample.csv.gz
cores=$(nproc 2>/dev/null || echo 1)
[ "$cores" -ge 2 ] || skip "one core: 2 ranks would share it"
n=512 rounds=5
[ "${AGN_TEST_SANITIZED:-0}" = 1 ] && n=256 rounds=3

# Whether this machine has 2 idle cores now: two copies of a fixed piece of
# work at once must take no more than 1.2 times one alone; a core busy with
# other work would make W=2 wait for it, which no model of agn predicts.
probe() {
    t0=$(date +%s%N); awk 'BEGIN { for (i = 0; i < 2e7; i++) s += i }'; t1=$(date +%s%N)
    awk 'BEGIN { for (i = 0; i < 2e7; i++) s += i }' & p1=$!
    awk 'BEGIN { for (i = 0; i < 2e7; i++) s += i }'; wait "$p1"; t2=$(date +%s%N)
    awk -v a=$((t1 - t0)) -v b=$((t2 - t1)) 'BEGIN { printf "%.0f", 100 * (b / a - 1) }'
}
idle() {
    slow=$(probe)
    [ "$slow" -le 20 ] || skip "the machine is too busy for a 15% timing check ($1): two busy processes ran $slow% slower than one"
}
idle "before"

agn-tokenize "$AGN_DATA/train_sample.csv.gz" | agn-vocab -n 20000 >vocab.txt 2>/dev/null
agn-tokenize "$AGN_DATA/train_sample.csv.gz" | agn-shard -v vocab.txt -L 128 -o train 2>/dev/null

for w in 2 3; do
    agn-bench-comm -n "$w" -b 8 -e 4M -O all -w 2 -i 10 -q --csv "link$w.csv" 2>err ||
        { cat err >&2; fail "agn-bench-comm -n $w"; }
done
# mean epoch time of the timed epochs (2 and 3) of a run
etime() { awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
                   NR > 2 { s += $c["epoch_time_s"]; k++ } END { printf "%.6f", s / k }' "$1/metrics.csv"; }
for r in $(seq "$rounds"); do
    for w in 1 2 3; do
        agn-train -c "$top_srcdir/examples/small.yaml" --cpu -n "$w" -t 1 -e 3 --max-examples "$n" \
            -q -o "run$r-n$w" train-00000.agns 2>err || { cat err >&2; fail "agn-train -n $w (round $r)"; }
        echo "$w $(etime "run$r-n$w") run$r-n$w" >>times
    done
done
sort -k1,1n -k2,2g times >times.sorted
best() { awk -v w="$1" '$1 == w { print $3; exit }' times.sorted; }
echo "epoch times (s), W run:"; sed 's/^/  /' times.sorted
idle "after the runs"
# the two fastest runs of each W: how far apart (percent), the worst W
spread=$(awk '{ k[$1]++; if (k[$1] == 1) a[$1] = $2; if (k[$1] == 2) b[$1] = $2 }
              END { m = 0; for (w in b) { d = 100 * (b[w] / a[w] - 1); if (d > m) { m = d; mw = w } }
                    printf "%.0f %s", m, mw }' times.sorted)
[ "${spread% *}" -le 20 ] ||
    skip "the machine is too busy for a 15% timing check: the two fastest W=${spread#* } runs differ by ${spread% *}%"

# W=2 from the 1-rank run and the link alone; W=3 also from the overlap,
# imbalance and optimizer split measured at W=2 (--calibrate 2)
for cal in none 2; do
    agn-summarize -q "$(best 1)" "$(best 2)" "$(best 3)" --link link2.csv,link3.csv --devices "$cores" \
        --calibrate "$cal" --project 1,2,3,4 --projection-csv "proj-$cal.csv" >"summary-$cal.md" 2>err ||
        { cat err >&2; fail "agn-summarize --link --calibrate $cal"; }
    sed -n '/^# Projection/,$p' "summary-$cal.md"
done
# fields by name (the link's name, two files, is a quoted field with a comma)
field() { # FILE W COLUMN
    python3 -c 'import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["world_size"] == sys.argv[2]: print(r[sys.argv[3]])' "$@"
}
for wc in 2:none 3:2; do
    w=${wc%%:*} cal=${wc#*:}
    pred=$(field "proj-$cal.csv" "$w" epoch_time_s) meas=$(field "proj-$cal.csv" "$w" measured_epoch_time_s)
    err=$(field "proj-$cal.csv" "$w" error)
    [ -n "$pred" ] || fail "no projection at W=$w"
    [ -n "$err" ] || fail "W=$w: no measured epoch time beside the projection"
    # the error column is pred/meas - 1: recomputed here
    awk -v p="$pred" -v m="$meas" -v e="$err" 'BEGIN { d = p / m - 1 - e; exit !(d < 1e-4 && d > -1e-4) }' ||
        fail "W=$w: error $err is not $pred/$meas - 1"
    pct=$(awk -v e="$err" 'BEGIN { printf "%+.1f%%", 100 * e }')
    # More ranks than cores is time-slicing by the scheduler, whose cost
    # moves with the host from run to run (3 ranks on 2 cores against 1
    # rank: 0.59 and 0.68 of its epoch in two quiet runs of this test): such
    # a W is printed, not held to 15%.
    if [ "$w" -gt "$cores" ]; then
        echo "# W=$w on $cores cores (time-sliced, not checked): projected $pred s, measured $meas s ($pct)"
        continue
    fi
    awk -v e="$err" 'BEGIN { exit !(e <= 0.15 && e >= -0.15) }' ||
        fail "W=$w (calibration: $cal): projected $pred s, measured $meas s: off by $pct"
    ok "W=$w (calibration: $cal): projected $pred s an epoch, measured $meas s ($pct)"
done
