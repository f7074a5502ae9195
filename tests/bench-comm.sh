#!/bin/sh
# bench-comm.sh: agn-bench-comm with 1, 2 and 3 forked ranks: every row of
# every collective present and checked right, the bandwidth columns equal to
# size / time and to nccl-tests' factors recomputed here, the table and CSV
# agreeing; a corrupted result caught (exit 1, the rank and index named,
# the rows' wrong counts); usage errors (-g: tests/bench-comm-nogpu.sh and
# tests/gpu/bench-comm-gpu.sh).
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

bc=agn-bench-comm
# 8 B .. 1 MiB by 4: 8 32 128 512 2k 8k 32k 128k 512k = 9 sizes (f32)
sweep="-b 8 -e 1M -f 4 -w 1 -i 3"
for n in 1 2 3; do
    "$bc" --cpu -n "$n" $sweep -O all --csv "bw$n.csv" >"table$n" 2>err || { cat err >&2; fail "-n $n exited non-zero"; }
    head -n 1 "bw$n.csv" | grep -qx 'transport,impl,op,world_size,dtype,bytes,count,iters,time_us,time_max_us,algbw_gbs,busbw_gbs,wrong' ||
        fail "-n $n: CSV header: $(head -n 1 "bw$n.csv")"
    want_t=local; [ "$n" -gt 1 ] || want_t=none
    awk -F, -v n="$n" -v tr="$want_t" '
        function fail(m) { print "bw" n ".csv:" NR ": " m > "/dev/stderr"; bad = 1 }
        function abs(x) { return x < 0 ? -x : x }
        NR == 1 { next }
        {
            rows++; seen[$3 "," $6]++
            if ($1 != tr || $2 != "agn" || $4 != n || $5 != "f32") fail("identity " $0)
            if ($7 * 4 != $6 || $8 != 3) fail("count/iters " $0)
            if ($13 != 0) fail("wrong results " $0)
            if ($9 <= 0 || $10 < $9 * 0.999999) fail("times " $0)
            alg = $6 / ($9 * 1e3)   # bytes / us / 1e3 = GB/s
            if (abs($11 - alg) > 1e-6 * alg) fail("algbw " $11 " != " alg)
            f = ($3 == "all-reduce") ? 2 * (n - 1) / n : ($3 == "broadcast") ? 1 : (n - 1) / n
            if (abs($12 - alg * f) > 1e-6 * alg) fail("busbw " $12 " != " alg * f " (" $3 ")")
        }
        END {
            if (rows != 36) fail(rows " rows, expected 9 sizes x 4 collectives")
            for (k in seen) if (seen[k] != 1) fail(k " appears " seen[k] " times")
            exit bad
        }' "bw$n.csv" || fail "-n $n: CSV rows"
    # the table shows the same rows
    t=$(grep -c '^ *[0-9]' "table$n")
    assert_eq "$t" 36 "-n $n: table rows"
    grep -q "transport $want_t, $n rank" "table$n" || fail "-n $n: table header"
    ok "-n $n: 36 rows checked right, bandwidths = nccl-tests' definitions"
done

# the check catches a wrong result on any rank and any collective
for op in all-reduce reduce-scatter all-gather broadcast; do
    expect_fail 1 "wrong result: rank 2: $op of [0-9]+ elements: index [0-9]+ is" \
        "$bc" -n 3 -b 4k -e 16k -w 0 -i 1 -O "$op" --corrupt 2 --csv bad.csv  # 3 sizes
    grep -q 'measurements gave wrong results' "$tmp/.err" || fail "$op: no summary of the wrong rows"
    awk -F, 'NR > 1 && $13 != 1 { bad = 1 } END { exit bad || NR != 4 }' bad.csv ||
        { cat bad.csv >&2; fail "$op: the CSV does not count one wrong element a row"; }
    ok "--corrupt 2, $op: caught, exit 1"
done
# and with f64 on rank 0
expect_fail 1 'wrong result: rank 0: all-reduce' "$bc" -n 2 -d f64 -b 64 -e 64 -i 1 --corrupt 0
# without the check nothing is counted
"$bc" -n 2 -b 64 -e 64 -i 1 -c 0 --corrupt 1 --csv nochk.csv >/dev/null 2>err || { cat err >&2; fail "-c 0 failed"; }
assert_eq "$(sed -n 2p nochk.csv | cut -d, -f13)" -1 "unchecked wrong count"
ok "f64, -c 0"

expect_fail 2 "'allreduce' is not all-reduce" "$bc" -O allreduce
expect_fail 2 'needs the mpi transport' env -u OMPI_COMM_WORLD_RANK -u PMIX_RANK -u PMI_RANK -u SLURM_PROCID "$bc" --mpi-allreduce
expect_fail 2 'max-bytes is below' "$bc" -b 1M -e 1k
expect_fail 2 'no rank 5 of 2' "$bc" -n 2 --corrupt 5
expect_fail 2 'exclude each other' "$bc" -n 2 -g 2
expect_fail 2 'ranks' "$bc" -n 0
[ ! -e nope.csv ] || fail "a CSV was left by a usage error"
ok "usage errors"
