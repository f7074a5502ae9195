#!/bin/sh
# pipeline.sh: the speed of the data pipeline, side by side in one run, on
# the 120,000-row stand-in of the AG News train split (train_sample.csv.gz
# cycled, as SOURCE.md of the data folder describes), plain and gzipped:
#
#   cat, zcat to /dev/null          the floor: reading the bytes
#   agn-tokenize (plain, gzip)      the tokenizer
#   agn-tokenize | agn-vocab        tokenize and count, the job of pytok.py
#   agn-vocab, agn-shard            on the token stream, from a file
#   pybasic.py                      the plain Python baseline: csv module,
#                                   torchtext's basic_english regexes, split,
#                                   dict count (x Python is against this one)
#   pytok.py                        Python doing exactly agn-tokenize's job
#                                   (its AG News clean-up too) and a dict
#                                   count, under the default python3
#
#   agn-tokenize [PATH]             the tokenizer on each SIMD path the
#                                   processor runs (AGN_SIMD=PATH)
#
# and the whole preprocessing of the stand-in and the test split as the
# README runs it (tokenize | vocab; tokenize | shard, twice).  Each step is
# timed best of 3 (BENCH_RUNS); peak memory is GNU time's maximum RSS (n/a
# where /usr/bin/time is missing).  BENCH_PYTHON=0 leaves the Python rows
# out, for the SIMD paths alone (tests/gpu/device-check.sh on a GPU host).
#
# Usage: tests/bench/pipeline.sh        from a build directory (uses ./tools),
#        or with the agn tools on PATH.  AGN_DATA: the corpus folder.
set -eu
LC_ALL=C
export LC_ALL
here=$(cd "$(dirname "$0")" && pwd)
top_srcdir=$(cd "$here/../.." && pwd)
[ -x ./tools/agn-tokenize ] && PATH="$(pwd)/tools:$PATH"
command -v agn-tokenize > /dev/null || { echo "pipeline.sh: agn-tokenize not found: run from a build directory or put the tools on PATH" >&2; exit 1; }
# GNU time gives the peak memory column; without it (a bare machine such as
# the GPU host of tests/gpu/device-check.sh) that column says n/a.
have_time=0; [ -x /usr/bin/time ] && have_time=1
[ $have_time = 1 ] || echo "pipeline.sh: no GNU time (/usr/bin/time, package time): no peak memory column" >&2
if [ -z "${AGN_DATA:-}" ]; then
    for d in "$top_srcdir/../shared/data/ag_news" "$top_srcdir/../../shared/data/ag_news"; do
        [ -d "$d" ] && { AGN_DATA=$(cd "$d" && pwd); break; }
    done
fi
[ -f "${AGN_DATA:-}/train_sample.csv.gz" ] && [ -f "$AGN_DATA/test.csv.gz" ] ||
    { echo "pipeline.sh: the AG News corpus is missing (set AGN_DATA to a folder with train_sample.csv.gz and test.csv.gz)" >&2; exit 1; }
runs=${BENCH_RUNS:-3}
# BENCH_PYTHON=0 leaves out the Python rows (and the x Python column): the
# SIMD paths of the tokenizer against each other, in seconds rather than a
# minute (device-check.sh)
bench_python=${BENCH_PYTHON:-1}
have_vocab=0; command -v agn-vocab > /dev/null && have_vocab=1
have_shard=0; command -v agn-shard > /dev/null && have_shard=1
PY=${PYTHON:-python3}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/agn-bench.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"

# ---- inputs ----------------------------------------------------------------------
gzip -dc "$AGN_DATA/train_sample.csv.gz" > sample.csv
n=$(wc -l < sample.csv)
: > train.csv
while [ "$(wc -l < train.csv)" -lt 120000 ]; do cat sample.csv >> train.csv; done
head -n 120000 train.csv > t && mv t train.csv
gzip -6 -c train.csv > train.csv.gz
agn-tokenize -q -o train.tok train.csv
[ $have_vocab = 1 ] && agn-vocab -q -n 20000 -o vocab.txt train.tok
csv_bytes=$(wc -c < train.csv)
tok_bytes=$(wc -c < train.tok)

# ---- measuring ---------------------------------------------------------------------
# measure NAME BYTES FLOOR CMD...: best wall time of $runs runs of CMD
# (stdin /dev/null, stdout to /dev/null, as the issue times the floor), and the largest peak RSS.  Records
# "NAME BYTES FLOOR SECONDS KB" in results.txt.
: > results.txt
measure() {
    name=$1 bytes=$2 floor=$3; shift 3
    best= kb=0 i=0
    while [ $i -lt "$runs" ]; do
        t0=$(date +%s%N)
        if [ $have_time = 1 ]; then
            /usr/bin/time -f %M -o rss.txt "$@" < /dev/null > /dev/null
        else
            "$@" < /dev/null > /dev/null
        fi
        t1=$(date +%s%N)
        s=$(( (t1 - t0) / 1000 ))
        [ -z "$best" ] || [ $s -lt "$best" ] && best=$s
        if [ $have_time = 1 ]; then
            r=$(tail -n 1 rss.txt)
            [ "$r" -gt $kb ] && kb=$r
        else
            kb=-1
        fi
        i=$((i + 1))
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$name" "$bytes" "$floor" "$best" "$kb" >> results.txt
}

measure "cat train.csv" "$csv_bytes" - cat train.csv
measure "zcat train.csv.gz" "$csv_bytes" - zcat train.csv.gz
measure "cat train.tok" "$tok_bytes" - cat train.tok
measure "agn-tokenize train.csv" "$csv_bytes" "cat train.csv" agn-tokenize -q train.csv
measure "agn-tokenize train.csv.gz" "$csv_bytes" "zcat train.csv.gz" agn-tokenize -q train.csv.gz
# every SIMD path of the tokenizer this processor runs, forced (AGN_SIMD, agn(7))
default_path=$(agn-tokenize --version | sed -n 's/^simd: .*; tokenizer \([a-z0-9]*\),.*/\1/p')
for l in avx512 avx2 sse2 scalar; do
    got=$(AGN_SIMD=$l agn-tokenize --version | sed -n 's/^simd: .*; tokenizer \([a-z0-9]*\),.*/\1/p')
    if [ "$got" != "$l" ]; then
        echo "pipeline.sh: the $l path of agn-tokenize: this processor lacks it" >&2
        continue
    fi
    measure "agn-tokenize [$l]" "$csv_bytes" "cat train.csv" env AGN_SIMD=$l agn-tokenize -q train.csv
done
if [ $have_vocab = 1 ]; then
    measure "agn-tokenize | agn-vocab" "$csv_bytes" "cat train.csv" \
        sh -c 'agn-tokenize -q train.csv | agn-vocab -q -n 20000'
    measure "agn-vocab train.tok" "$tok_bytes" "cat train.tok" agn-vocab -q -n 20000 train.tok
fi
if [ $have_shard = 1 ] && [ $have_vocab = 1 ]; then
    measure "agn-shard train.tok" "$tok_bytes" "cat train.tok" \
        agn-shard -q -v vocab.txt -L 128 -o shards/train train.tok
fi
if [ "$bench_python" != 0 ]; then
    measure "pybasic.py train.csv" "$csv_bytes" "cat train.csv" "$PY" "$here/pybasic.py" train.csv
    measure "pytok.py train.csv" "$csv_bytes" "cat train.csv" "$PY" "$here/pytok.py" train.csv
fi

# ---- the table -----------------------------------------------------------------------
. "$here/machine.sh"
machine_header "$(dirname "$(command -v agn-tokenize)")" 1
echo "agn data pipeline, $(date -u +%Y-%m-%d), $(nproc) CPUs, $(uname -m); best of $runs"
echo "stand-in: 120,000 rows (train_sample cycled), $(awk "BEGIN { printf \"%.1f\", $csv_bytes / 1e6 }") MB CSV, $(awk "BEGIN { printf \"%.1f\", $(wc -c < train.csv.gz) / 1e6 }") MB gzip -6, $(awk "BEGIN { printf \"%.1f\", $tok_bytes / 1e6 }") MB token stream"
awk -F '\t' '
    { name[NR] = $1; bytes[NR] = $2; floor[NR] = $3; us[NR] = $4; kb[NR] = $5; t[$1] = $4 }
    END {
        py = t["pybasic.py train.csv"]
        printf "%-28s %7s %8s %8s %8s %9s %8s\n", "step", "MB in", "seconds", "MB/s", "x floor", "x Python", "peak MB"
        for (i = 1; i <= NR; i++) {
            fl = floor[i] == "-" ? "" : sprintf("%.2f", us[i] / t[floor[i]])
            f2 = py == "" ? "" : sprintf("%.1f", py / us[i])
            mb = kb[i] < 0 ? "n/a" : sprintf("%.1f", kb[i] / 1024)
            printf "%-28s %7.1f %8.3f %8.0f %8s %9s %8s\n", name[i], bytes[i] / 1e6, us[i] / 1e6,
                bytes[i] / us[i], fl, f2, mb
        }
    }' results.txt
echo "MB/s: input bytes (the CSV, uncompressed, for the gzip rows) per second."
echo "x floor: time over the time of cat (zcat for gzip) of the same input; x Python: how many times faster than pybasic.py."
[ "$bench_python" != 0 ] || echo "BENCH_PYTHON=0: no Python rows, no x Python column"
echo "agn-tokenize's default path here: $default_path; [PATH] rows force AGN_SIMD=PATH"
awk -F '\t' '$1 ~ /^agn-tokenize \[/ { t[$1] = $4 } END { if ("agn-tokenize [avx2]" in t && "agn-tokenize [avx512]" in t)
    printf "avx2 path over avx512 path, time: %.2fx (target <= 1.5x)\n", t["agn-tokenize [avx2]"] / t["agn-tokenize [avx512]"] }' results.txt
[ $have_vocab = 1 ] || echo "note: agn-vocab not found: its rows and the whole pipeline are left out"
[ $have_shard = 1 ] || echo "note: agn-shard not found: its rows and the whole pipeline are left out"

# ---- the whole preprocessing ----------------------------------------------------------
if [ $have_vocab = 1 ] && [ $have_shard = 1 ]; then
    cp "$AGN_DATA/test.csv.gz" test.csv.gz
    cat > whole.sh <<'EOT'
agn-tokenize -q train.csv.gz | agn-vocab -q -n 20000 -o vocab.txt
agn-tokenize -q train.csv.gz | agn-shard -q -v vocab.txt -L 128 -o shards/train
agn-tokenize -q test.csv.gz | agn-shard -q -v vocab.txt -L 128 -o shards/test
EOT
    best=
    i=0
    while [ $i -lt "$runs" ]; do
        rm -rf shards
        t0=$(date +%s%N)
        sh -e whole.sh
        t1=$(date +%s%N)
        s=$(( (t1 - t0) / 1000 ))
        [ -z "$best" ] || [ $s -lt "$best" ] && best=$s
        i=$((i + 1))
    done
    echo
    echo "whole preprocessing of the stand-in (gzip) and test.csv.gz, best of $runs: $(awk "BEGIN { printf \"%.2f\", $best / 1e6 }") s"
    sed 's/^/    /' whole.sh
fi
