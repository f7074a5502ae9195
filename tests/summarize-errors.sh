#!/bin/sh
# summarize-errors.sh: agn-summarize on bad input and bad usage.  Each case
# must fail with the documented status and a message naming the file (and
# line where there is one), and must not leave an output file behind.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

HEADER=epoch,world_size,backend,transport,device,threads,config,params,global_batch,train_examples,data_id,steps,samples,tokens,epoch_time_s,compute_s,comm_s,optim_s,data_s,samples_per_s,tokens_per_s,train_loss,val_loss,val_acc,val_f1,lr
row() { # row EPOCH W GLOBAL_BATCH TIME [VAL_ACC]
    echo "$1,$2,cpu,local,cpu,1,small,1000,$3,100,0badf00d,4,100,900,$4,1,0.1,0.01,0.01,10,90,1.3,1.2,${5-0.5},0.4,0.001"
}
good() { mkdir -p "$1"; { echo "$HEADER"; row 1 "$2" "${3:-32}" 2; row 2 "$2" "${3:-32}" 2; } > "$1/metrics.csv"; }

good ok1 1
good ok2 2

# line ends: LF, CRLF and bare CR read alike, blank lines of each skipped
mkdir crlf cr
{ echo "$HEADER"; echo; row 1 2 32 2; row 2 2 32 2; echo; } | sed 's/$/\r/' > crlf/metrics.csv
{ echo "$HEADER"; echo; row 1 2 32 2; row 2 2 32 2; echo; } | tr '\n' '\r' > cr/metrics.csv
agn-summarize -q -f csv ok2 > lf.csv || fail "LF metrics.csv"
for d in crlf cr; do
    agn-summarize -q -f csv $d > $d.csv 2>err.txt || { cat err.txt >&2; fail "$d line ends"; }
    cmp -s lf.csv $d.csv || { diff lf.csv $d.csv >&2; fail "$d line ends read otherwise than LF"; }
done
ok "LF, CRLF and bare CR line ends, with blank lines"

# ---- usage -------------------------------------------------------------------------
expect_fail 2 "no run directories" agn-summarize
expect_fail 2 "Try 'agn-summarize --help'" agn-summarize --bogus ok1
expect_fail 2 "--format: 'xml' is not md, csv or json" agn-summarize -f xml ok1
expect_fail 2 "--no-render needs --plot" agn-summarize --no-render ok1
agn-summarize --help | grep -q '^Usage: agn-summarize' || fail "--help"
agn-summarize --version | grep -q '^agn-summarize' || fail "--version"
ok "usage errors exit 2; --help and --version on stdout"

# ---- missing and malformed input -----------------------------------------------------
expect_fail 1 "nope: not an agn-train run directory|nope: No such file" agn-summarize nope
mkdir emptydir
expect_fail 1 "emptydir: not an agn-train run directory" agn-summarize emptydir ok1

mkdir nocol
echo "$HEADER" | sed 's/,comm_s,/,comm_wait_s,/' > nocol/metrics.csv
row 1 1 32 2 >> nocol/metrics.csv
expect_fail 1 "nocol/metrics.csv:1: no column 'comm_s'" agn-summarize ok1 nocol

mkdir nan
{ echo "$HEADER"; row 1 1 32 2; row 2 1 32 abc; } > nan/metrics.csv
expect_fail 1 "nan/metrics.csv:3: column 'epoch_time_s': 'abc' is not a number" agn-summarize nan

mkdir neg
{ echo "$HEADER"; row 1 1 32 -2; } > neg/metrics.csv
expect_fail 1 "neg/metrics.csv:2: column 'epoch_time_s': -2 is out of range" agn-summarize neg

mkdir acc
{ echo "$HEADER"; row 1 1 32 2 1.5; } > acc/metrics.csv
expect_fail 1 "acc/metrics.csv:2: column 'val_acc': 1.5 is out of range" agn-summarize acc

mkdir short
{ echo "$HEADER"; row 1 1 32 2 | cut -d, -f1-20; } > short/metrics.csv
expect_fail 1 "short/metrics.csv:2: 20 fields, the header has 26" agn-summarize short

mkdir empty
: > empty/metrics.csv
expect_fail 1 "empty/metrics.csv: empty file" agn-summarize empty

mkdir header
echo "$HEADER" > header/metrics.csv
expect_fail 1 "header/metrics.csv: a header but no rows" agn-summarize header

mkdir quote
{ echo "$HEADER"; row 1 1 32 2 | sed 's/,small,/,"small,/'; } > quote/metrics.csv
expect_fail 1 "quote/metrics.csv:2: quoted field not closed" agn-summarize quote

mkdir frac
{ echo "$HEADER"; row 1 1.5 32 2; } > frac/metrics.csv
expect_fail 1 "frac/metrics.csv:2: column 'world_size': '1.5' is not a whole number" agn-summarize frac
expect_fail 1 "ok1/metrics.csv: given twice" agn-summarize ok1 ok2 ok1/
ok "missing file or column, bad number, empty file, no rows, short row, open quote, a run given twice"

# every bad input is reported in one pass, and no table is written
expect_fail 1 "2 of 4 inputs unreadable: no summary written" agn-summarize -o out.md ok1 nan ok2 empty
grep -q "nan/metrics.csv:3" .err || fail "first bad input not named"
grep -q "empty/metrics.csv" .err || fail "second bad input not named"
[ ! -e out.md ] || fail "a summary was written despite a bad input"
ls | grep -q 'out.md.tmp' && fail "temporary output left behind"
ok "all bad inputs named in one pass; no partial output"

# ---- a valid but unusual file: columns reordered, extra ones, empty val_acc ----------
mkdir odd
{ echo "$HEADER" | awk -F, '{ for (i = NF; i >= 1; i--) printf "%s,", $i; print "extra" }'
  { row 1 1 32 3 ""; row 2 1 32 3 nan; } | awk -F, '{ for (i = NF; i >= 1; i--) printf "%s,", $i; print "x" }'
} > odd/metrics.csv
agn-summarize -f csv odd ok2 > odd.csv || fail "reordered columns with an extra one"
awk -F, 'NR == 3 && $16 == 1.5' odd.csv | grep -q . || { cat odd.csv >&2; fail "speedup from reordered columns"; }
awk -F, 'NR == 2 && $18 == "" && $19 == ""' odd.csv | grep -q . || fail "empty val_acc should be blank"
ok "columns found by name; extra columns ignored; missing accuracy left blank"

# a zero epoch time (a run too short to time) gives n/a, never nan or inf
mkdir zero
{ echo "$HEADER"; row 1 2 32 0; } > zero/metrics.csv
agn-summarize ok1 zero > zero.md || fail "a zero epoch time is not an error"
grep -q '^| speedup vs W=1 | 1.000 | n/a |$' zero.md || { cat zero.md >&2; fail "speedup with a zero epoch time"; }
grep -qwi 'nan\|inf' zero.md && fail "nan or inf in the table"
ok "zero epoch time reads n/a"

# ---- mixed global batches: apart by default, refused with --single -----------------
good b64 2 64
agn-summarize -f csv ok1 ok2 b64 > groups.csv 2>err.txt
assert_eq "$(tail -n +2 groups.csv | wc -l | tr -d ' ')" 3 "rows for two groups"
grep -q "differ in global batch (32 vs 64)" err.txt || fail "no note on the batch difference"
expect_fail 1 "ok1 and b64 differ in global batch \(32 vs 64\)" agn-summarize --single -o single.md ok1 ok2 b64
[ ! -e single.md ] || fail "--single wrote a summary"
agn-summarize --single ok1 ok2 > /dev/null || fail "--single on one group"
ok "mixed global batches grouped apart with a note, refused under --single"

# groups of one config apart: a note for each after the first, not for every
# pair (300 parameter counts made 44850 notes; 2000 a 390 MB summary)
mkdir many
{ echo "$HEADER"; row 1 1 32 2 | awk -F, -v OFS=, '{ for (p = 1; p <= 300; p++) { $8 = p; print } }'; } > many/metrics.csv
agn-summarize -o many.md many 2>err.txt || fail "300 groups of one config"
assert_eq "$(grep -c "differ in parameter count" err.txt)" 299 "notes on 300 groups of one config"
ok "one note for each group of a config after its first"

# many runs, each its own group: groups found by hash, not by a search through
# those before (100000 rows of distinct configs took 56 s, now under 1 s),
# and arrays grown by doubling (one element a time took over 10 minutes
# under the sanitizers, whose realloc always copies; now 2 s there)
mkdir manycfg
{ echo "$HEADER"; row 1 1 32 2 | awk -F, -v OFS=, '{ for (i = 1; i <= 100000; i++) { $7 = "c" i; print } }'; } > manycfg/metrics.csv
timeout 30 agn-summarize -q -f csv -o manycfg.csv manycfg || fail "100000 groups not summarized within 30 s"
assert_eq "$(wc -l < manycfg.csv | tr -d ' ')" 100001 "rows for 100000 groups"
rm -r manycfg manycfg.csv
ok "100000 groups summarized in time"
