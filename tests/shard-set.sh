#!/bin/sh
# shard-set.sh: a shard set is a transaction (agn-formats(5), SHARD SETS).
# A re-shard onto the prefix of an existing set that fails part way, or is
# stopped by SIGTERM, leaves the previous set as it was; readers (agn-shard
# --info and --dump, agn-train, agn-eval through the same reader) refuse an
# incomplete set, a mixed one and a leftover shard, naming the fix.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

# 400 examples; vocabulary from them
awk 'BEGIN { for (i = 0; i < 400; i++) printf "%d\tw%d x%d y%d the\n", i % 4, i % 13, i % 7, i }' > a.tok
agn-vocab -q -o v.txt a.tok

# the previous set: 8 shards of 50
agn-shard -q -v v.txt -L 8 -n 50 -o s/t a.tok
[ -f s/t.agnset ] || fail "no manifest s/t.agnset"
grep -q '^count 8$' s/t.agnset || fail "manifest does not count 8 shards"
mkdir keep && cp s/* keep/
same_as_before() {
    for f in keep/*; do
        cmp -s "$f" "s/${f#keep/}" || fail "$1: s/${f#keep/} changed"
    done
    [ "$(ls s | wc -l)" -eq "$(ls keep | wc -l)" ] || fail "$1: files added: $(ls s)"
    agn-shard --info s/t-*.agns > info.txt || fail "$1: the previous set is refused"
    grep -q '^total of 8 shards:' info.txt || fail "$1: not 8 shards"
    grep -q '^  examples         400$' info.txt || fail "$1: not 400 examples"
}

# 1. a re-shard into smaller shards that fails at the last line (after 7
# of its 20 shards were written) leaves the previous set whole
{ head -n 380 a.tok; printf 'no tab here\n'; } > bad.tok
expect_fail 1 "bad.tok:381: no tab" agn-shard -q -v v.txt -L 8 -n 20 -o s/t bad.tok
grep -q "earlier set s/t-NNNNN.agns is unchanged" .err || fail "not said that the set is unchanged"
same_as_before "failed re-shard"
ok "a re-shard that fails part way leaves the previous set as it was"

# 2. SIGTERM part way: the input is a FIFO that stops after 300 lines
mkfifo in.fifo
{ head -n 300 a.tok; exec sleep 30; } > in.fifo &
feeder=$!
agn-shard -q -v v.txt -L 8 -n 20 -o s/t in.fifo 2>term.err &
pid=$!
i=0
while [ "$(ls s | grep -c '\.tmp\.' || true)" -lt 10 ]; do
    i=$((i + 1)); [ "$i" -le 200 ] || fail "agn-shard did not stage 10 shards in 10 s"
    sleep 0.05
done
kill -TERM "$pid"
set +e; wait "$pid"; rc=$?; set -e
kill "$feeder" 2>/dev/null || true
wait "$feeder" 2>/dev/null || true
assert_eq "$rc" 143 "agn-shard's status after SIGTERM"
same_as_before "SIGTERM"
ok "SIGTERM part way through a re-shard leaves the previous set as it was, no temporary"

# 3. the complete re-shard replaces the set and removes the extra shards
agn-shard -q -v v.txt -L 8 -n 100 -o s/t a.tok
[ "$(ls s)" = "$(printf 't-00000.agns\nt-00001.agns\nt-00002.agns\nt-00003.agns\nt.agnset')" ] ||
    fail "after a re-shard into 4: $(ls s)"
agn-shard --dump -v v.txt s/t-*.agns | cmp -s - a.tok || fail "the new set does not dump to its input"
ok "a complete re-shard replaces the set"

# 4. readers refuse a set that is not whole
agn-shard -q -v v.txt -L 8 -n 100 -o other/t a.tok
printf '0\tw1\n' | agn-shard -q -v v.txt -L 8 -o other/u
cp other/u-00000.agns s/t-00002.agns
expect_fail 1 "mixed shard set: s/t-00002.agns is not the shard the manifest lists.*run agn-shard again" \
    agn-shard --info s/t-*.agns
expect_fail 1 "mixed shard set" agn-shard --info s/t-00000.agns
expect_fail 1 "mixed shard set" agn-shard --dump -v v.txt s/t-00001.agns
# agn-train and agn-eval read shards through the same reader
V=$(grep -vc '^#' v.txt)
TR="agn-train -q -t 1 -c $top_srcdir/examples/tiny.yaml -s model.vocab_size=$V -s model.max_len=8 -s train.epochs=1"
$TR -o good other/t-00000.agns
expect_fail 1 "mixed shard set" $TR -o bad "s/t-*.agns"
expect_fail 1 "mixed shard set" agn-eval -t 1 good/last.safetensors s/t-00002.agns
cp other/t-00002.agns s/t-00002.agns
agn-shard --info s/t-00002.agns >/dev/null || fail "the set made whole again is refused"
rm s/t-00003.agns
expect_fail 1 "incomplete shard set: s/t-00003.agns is missing \(3 of 4 shards present\)" \
    agn-shard --info s/t-*.agns
cp other/t-00003.agns s/
cp other/t-00001.agns s/t-00004.agns
expect_fail 1 "s/t-00004.agns: not a shard of the set s/t.agnset \(4 shards\)" \
    agn-shard --info s/t-*.agns
rm s/t-00004.agns
printf 'agn-shardset 1\ncount 4\nshard t-00000.agns 100 00000000\n' > s/t.agnset
expect_fail 1 "s/t.agnset: truncated manifest" agn-shard --info s/t-00000.agns
ok "readers refuse a mixed set, an incomplete set, a leftover shard and a truncated manifest"

# 5. shards without a manifest (an older agn, or a renamed copy) are read as before
mkdir solo
cp other/t-00000.agns solo/x.agns
cp other/t-00001.agns solo/y-00001.agns
agn-shard --info solo/x.agns solo/y-00001.agns >/dev/null || fail "shards without a set refused"
ok "shards outside a set are read as before"
