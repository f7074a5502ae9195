#!/bin/sh
# bench-comm-gpu.sh: agn-bench-comm -g N on GPUs, the nccl transport
# measured as bench-comm.sh measures the local one: with -g 1 (NCCL's
# one-rank call) and -g 2 when 2 GPUs are visible, a small sweep of every
# collective (8 B .. 2 MiB by 4), f32 and f64:
#  - every row present once and checked right (0 wrong elements, on device
#    buffers copied back to the host), the transport nccl, the world size;
#  - algbw = size / time and busbw = algbw x nccl-tests' factor (2(n-1)/n,
#    (n-1)/n, 1), recomputed here from the CSV's own columns with awk;
#  - the table shows the same rows;
#  - a corrupted result on the last rank is caught (exit 1, the rank named);
#  - agn-summarize --link accepts the -g 2 CSV (its verdict names agn's
#    nccl transport); a -g 1 CSV alone it refuses, saying that it holds no
#    measurement of 2 ranks or more.
# The tables are printed (the figures of this GPU, for the reader).
# Exits 77 where the build has no nccl transport or no GPU is usable.
. "${top_srcdir:-$(dirname "$0")/../..}/tests/setup.sh"

bc=agn-bench-comm
set +e
"$bc" -g 1 -b 8 -e 8 -w 0 -i 1 >probe.out 2>probe.err
st=$?
set -e
if [ "$st" -ne 0 ]; then
    grep -q 'no nccl transport' probe.err && skip "$(head -n 1 probe.err)"
    grep -q 'no usable GPU' probe.err && skip "$(head -n 1 probe.err)"
    cat probe.err >&2
    fail "agn-bench-comm -g 1 failed on a machine with a GPU"
fi
ngpu=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
if [ -n "${CUDA_VISIBLE_DEVICES:-}" ]; then
    ngpu=$(echo "$CUDA_VISIBLE_DEVICES" | tr ',' '\n' | grep -c . || true)
fi
echo "# $ngpu GPU(s) visible"
worlds=1
[ "$ngpu" -ge 2 ] && worlds="1 2"

# rows N DTYPE SIZES FILE: every row of FILE checked against its own columns
rows() {
    awk -F, -v n="$1" -v dt="$2" -v sizes="$3" -v es="$( [ "$2" = f64 ] && echo 8 || echo 4)" '
        function fail(m) { print FILENAME ":" NR ": " m > "/dev/stderr"; bad = 1 }
        function abs(x) { return x < 0 ? -x : x }
        NR == 1 { if ($0 != "transport,impl,op,world_size,dtype,bytes,count,iters,time_us,time_max_us,algbw_gbs,busbw_gbs,wrong") fail("header " $0); next }
        {
            rows++; seen[$3 "," $6]++
            if ($1 != "nccl" || $2 != "agn" || $4 != n || $5 != dt) fail("identity " $0)
            if ($7 * es != $6 || $8 != 5) fail("count/iters " $0)
            if ($13 != 0) fail("wrong results " $0)
            if ($9 <= 0 || $10 < $9 * 0.999999) fail("times " $0)
            alg = $6 / ($9 * 1e3)   # bytes / us / 1e3 = GB/s
            if (abs($11 - alg) > 1e-6 * alg) fail("algbw " $11 " != " alg)
            f = ($3 == "all-reduce") ? 2 * (n - 1) / n : ($3 == "broadcast") ? 1 : (n - 1) / n
            if (abs($12 - alg * f) > 1e-6 * alg) fail("busbw " $12 " != " alg * f " (" $3 ")")
        }
        END {
            if (rows != 4 * sizes) fail(rows " rows, expected " sizes " sizes x 4 collectives")
            for (k in seen) if (seen[k] != 1) fail(k " appears " seen[k] " times")
            exit bad
        }' "$4"
}

for n in $worlds; do
    # 8 B .. 2 MiB by 4: 10 sizes; f64 from 8 B: the same 10
    for dt in f32 f64; do
        "$bc" -g "$n" -b 8 -e 2M -f 4 -w 2 -i 5 -O all -d "$dt" --csv "g$n-$dt.csv" >"table$n-$dt" 2>err ||
            { cat err >&2; fail "-g $n $dt exited non-zero"; }
        sed 's/^/#   /' "table$n-$dt"
        rows "$n" "$dt" 10 "g$n-$dt.csv" || fail "-g $n $dt: CSV rows"
        assert_eq "$(grep -c '^ *[0-9]' "table$n-$dt")" 40 "-g $n $dt: table rows"
        grep -q "transport nccl, $n rank" "table$n-$dt" || fail "-g $n $dt: table header"
        ok "-g $n $dt: 40 rows checked right on device buffers, bandwidths = nccl-tests' definitions"
    done
    last=$((n - 1))
    expect_fail 1 "wrong result: rank $last: all-reduce of [0-9]+ elements: index [0-9]+ is" \
        "$bc" -g "$n" -b 4k -e 16k -w 0 -i 1 -O all --corrupt "$last" --csv bad.csv
    grep -q 'measurements gave wrong results' "$tmp/.err" || fail "-g $n --corrupt: no summary of the wrong rows"
    awk -F, 'NR > 1 && $13 < 1 { bad = 1 } END { exit bad || NR != 13 }' bad.csv ||
        { cat bad.csv >&2; fail "-g $n --corrupt: the CSV does not count the wrong elements of every row"; }
    ok "-g $n --corrupt $last: caught in every collective, exit 1"
done

# agn-summarize --link reads the CSV (a tiny CPU run to project)
. "$top_srcdir/tests/train-fixture.sh"
$TRAIN -o run --max-steps 5 "$SH"
if [ "$ngpu" -ge 2 ]; then
    agn-summarize -q run --link g2-f32.csv --project 1,2,4 --projection-csv proj.csv >proj.md 2>err ||
        { cat err >&2; fail "agn-summarize --link refused the -g 2 CSV"; }
    grep -q "measured: agn's nccl transport, agn-bench-comm at W = 2" proj.md ||
        { cat proj.md >&2; fail "the projection does not name the measured nccl link"; }
    assert_eq "$(awk -F, 'NR > 1 && $4 == "g2-f32.csv" { n++ } END { print n + 0 }' proj.csv)" 3 \
        "projected rows over the -g 2 link"
    ok "agn-summarize --link reads the -g 2 CSV: $(grep -m 1 "measured: agn's nccl" proj.md)"
else
    expect_fail 1 "g1-f32.csv: no measurement of agn's transport with 2 or more ranks" \
        agn-summarize -q run --link g1-f32.csv
    ok "agn-summarize --link: a -g 1 CSV alone refused (no 2-rank measurement; one GPU here)"
fi
