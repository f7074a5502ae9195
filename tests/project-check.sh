#!/bin/sh
# project-check.sh: the projection checked against measurement, as
# agn-summarize(1) (Projection, The check) promises: the small config
# trained here with 1, 2 and 3 CPU ranks (one thread each) on a subset of
# the corpus, the local transport measured with agn-bench-comm at 2 and 3
# ranks; projected from the 1-rank run over that link (for W=3 also with
# the hidden fraction, imbalance and optimizer split measured at W=2; the
# ranks on this machine's cores), the epoch time of every W up to the
# number of cores must come within 15% of the measured one (on 2 cores W=3
# is time-slicing, whose cost moves with the host: printed, not checked).
#
# The machine is a shared virtual one whose speed drifts by 20% from one
# minute to the next.  So the runs go in rounds (W = 1, 2, 3 one after the
# other, 7 rounds): each round's runs see the same machine, and each round
# is projected on its own (its W=2 and W=3 from its own W=1).  The model
# takes a rank's compute to be the 1-rank compute over W, as on separate
# devices; on this host the two vCPUs sometimes share what is under them
# (a rank's compute per example at W=2 up to 20% slower than at W=1 in the
# same round), and the round's error then follows that slowdown, not the
# model.  So only the rounds whose compute per example at W=2 is within 5%
# of W=1's count, the median of their errors is the one checked, and the
# test skips, saying so, when fewer than 3 rounds qualify, or when two
# busy processes at once run more than 20% slower than one (the best of
# three tries, before and after the runs).
# Needs the corpus.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

need_corpus test.csv.gz train_sample.csv.gz
cores=$(nproc 2>/dev/null || echo 1)
[ "$cores" -ge 2 ] || skip "one core: 2 ranks would share it"
n=512 rounds=7
[ "${AGN_TEST_SANITIZED:-0}" = 1 ] && n=256 rounds=5

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
    for try in 2 3; do
        [ "$slow" -le 20 ] && return 0
        s=$(probe); [ "$s" -lt "$slow" ] && slow=$s
    done
    [ "$slow" -le 20 ] || skip "the machine is too busy for a 15% timing check ($1): two busy processes ran $slow% slower than one (the best of three tries)"
}
idle "before"

agn-tokenize "$AGN_DATA/train_sample.csv.gz" | agn-vocab -n 20000 >vocab.txt 2>/dev/null
agn-tokenize "$AGN_DATA/train_sample.csv.gz" | agn-shard -v vocab.txt -L 128 -o train 2>/dev/null

for w in 2 3; do
    agn-bench-comm -n "$w" -b 8 -e 4M -O all -w 2 -i 10 -q --csv "link$w.csv" 2>err ||
        { cat err >&2; fail "agn-bench-comm -n $w"; }
done
# the mean of a metrics.csv column over the timed epochs (2 and 3) of a run
mean() { awk -F, -v col="$2" 'NR == 1 { for (i = 1; i <= NF; i++) c[$i] = i; next }
                              NR > 2 { s += $c[col]; k++ } END { printf "%.6f", s / k }' "$1/metrics.csv"; }
# a projection CSV's field by name (the link's name, two files, is a quoted
# field with a comma)
field() { # FILE W COLUMN
    python3 -c 'import csv, sys
for r in csv.DictReader(open(sys.argv[1])):
    if r["world_size"] == sys.argv[2]: print(r[sys.argv[3]])' "$@"
}
echo "round  W=1 (s)  W=2 (s)  W=3 (s)  W=2 compute/example vs W=1  W=2 error  W=3 error"
for r in $(seq "$rounds"); do
    for w in 1 2 3; do
        agn-train -c "$top_srcdir/examples/small.yaml" --cpu -n "$w" -t 1 -e 3 --max-examples "$n" \
            -q -o "run$r-n$w" train-00000.agns 2>err || { cat err >&2; fail "agn-train -n $w (round $r)"; }
    done
    # W=2 from this round's 1-rank run and the link alone; W=3 also from
    # the overlap, imbalance and optimizer split measured at W=2
    for cal in none 2; do
        agn-summarize -q "run$r-n1" "run$r-n2" "run$r-n3" --link link2.csv,link3.csv --devices "$cores" \
            --calibrate "$cal" --project 1,2,3,4 --projection-csv "proj$r-$cal.csv" >"summary$r-$cal.md" 2>err ||
            { cat err >&2; fail "agn-summarize --link --calibrate $cal (round $r)"; }
    done
    for wc in 2:none 3:2; do
        w=${wc%%:*} cal=${wc#*:}
        pred=$(field "proj$r-$cal.csv" "$w" epoch_time_s) meas=$(field "proj$r-$cal.csv" "$w" measured_epoch_time_s)
        err=$(field "proj$r-$cal.csv" "$w" error)
        [ -n "$pred" ] || fail "no projection at W=$w (round $r)"
        [ -n "$err" ] || fail "W=$w: no measured epoch time beside the projection (round $r)"
        # the error column is pred/meas - 1: recomputed here
        awk -v p="$pred" -v m="$meas" -v e="$err" 'BEGIN { d = p / m - 1 - e; exit !(d < 1e-4 && d > -1e-4) }' ||
            fail "W=$w: error $err is not $pred/$meas - 1 (round $r)"
        eval "err$w=\$err pred$w=\$pred meas$w=\$meas"
    done
    cont=$(awk -v a="$(mean "run$r-n1" compute_s)" -v b="$(mean "run$r-n2" compute_s)" 'BEGIN { printf "%.4f", 2 * b / a - 1 }')
    echo "$r $(mean "run$r-n1" epoch_time_s) $meas2 $meas3 $cont $err2 $err3 $pred2 $pred3" >>rounds
    awk '{ printf "%5d %8.3f %8.3f %8.3f %+27.1f%% %+9.1f%% %+9.1f%%\n", $1, $2, $3, $4, 100 * $5, 100 * $6, 100 * $7 }' rounds | tail -n 1
done
idle "after the runs"
sed -n '/^# Projection/,$p' "summary1-none.md"

# the rounds whose cores held: compute per example at W=2 within 5% of W=1's
awk '$5 <= 0.05 && $5 >= -0.05' rounds >held
k=$(wc -l <held)
echo "rounds whose compute per example at W=2 is within 5% of W=1's: $k of $rounds"
[ "$k" -ge 3 ] ||
    skip "the host's cores were not independent: in $((rounds - k)) of $rounds rounds a rank's compute per example at W=2 differed from W=1's by more than 5% (shared cores or memory), which a projection for separate devices does not model"

# the median held round by a column (1-based; the lower median for an even count)
median_line() { sort -k"$1","$1"g held | awk -v n="$k" 'NR == int((n + 1) / 2)'; }
for w in 2 3; do
    col=$((w + 4))
    set -- $(median_line "$col")
    e=$(eval echo "\$$col")
    pct=$(awk -v e="$e" 'BEGIN { printf "%+.1f%%", 100 * e }')
    if [ "$w" = 2 ]; then pred=$8 meas=$3; else pred=$9 meas=$4; fi
    # More ranks than cores is time-slicing by the scheduler, whose cost
    # moves with the host from run to run (3 ranks on 2 cores against 1
    # rank: 0.59 and 0.68 of its epoch in two quiet runs of this test): such
    # a W is printed, not held to 15%.
    if [ "$w" -gt "$cores" ]; then
        echo "# W=$w on $cores cores (time-sliced, not checked): median round projected $pred s, measured $meas s ($pct)"
        continue
    fi
    awk -v e="$e" 'BEGIN { exit !(e <= 0.15 && e >= -0.15) }' ||
        fail "W=$w: median round projected $pred s, measured $meas s: off by $pct"
    ok "W=$w: median round projected $pred s an epoch, measured $meas s ($pct)"
done
