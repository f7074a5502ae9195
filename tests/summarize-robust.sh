#!/bin/sh
# summarize-robust.sh: agn-summarize on what a hostile world gives it:
#  - a metrics.csv saved with a UTF-8 byte-order mark (a spreadsheet's "CSV
#    UTF-8") reads as without it (it was "no column 'epoch'");
#  - rank imbalance measured longer than the wait it explains is "all of
#    that wait", never more than 100% of it;
#  - --plot when gnuplot's write fails: gnuplot exits 0 leaving a truncated
#    image (a full disk), which must not appear under its final name, and
#    the error says the image is incomplete and points to the disk.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

HEADER=epoch,world_size,backend,transport,device,threads,config,params,global_batch,train_examples,data_id,steps,samples,tokens,epoch_time_s,compute_s,comm_s,optim_s,data_s,samples_per_s,tokens_per_s,train_loss,val_loss,val_acc,val_f1,lr,imbalance_s
mkrun() { # mkrun DIR W EPOCH_TIME COMM IMBALANCE
    mkdir -p "$1"
    echo "$HEADER" > "$1/metrics.csv"
    for e in 1 2 3; do
        echo "$e,$2,cpu,local,cpu,1,imb,5000,32,100,00c0ffee,4,100,900,$3,1,$4,0.01,0.01,10,90,1.3,1.2,0.7,0.6,0.001,$5" >> "$1/metrics.csv"
    done
}
mkrun n1 1 10 0 0
mkrun n2 2 8 3 4.5

# ---- byte-order mark
agn-summarize -q -f csv n1 n2 > plain.csv
mkdir bom
{ printf '\357\273\277'; cat n2/metrics.csv; } > bom/metrics.csv
agn-summarize -q -f csv n1 bom > bom.csv 2>err.txt || { cat err.txt >&2; fail "metrics.csv with a BOM refused"; }
sed 's/bom/n2/g' bom.csv | cmp -s - plain.csv || { diff bom.csv plain.csv >&2; fail "a BOM changed the summary"; }
ok "metrics.csv with a UTF-8 byte-order mark reads as without it"

# ---- imbalance longer than the wait
agn-summarize -q n1 n2 > imb.md
grep -q "All of that wait is for the slowest rank" imb.md || { cat imb.md >&2; fail "no 'all of that wait'"; }
! grep -Eq "[0-9]{3,}%\) is for the slowest rank" imb.md || { cat imb.md >&2; fail "over 100% of the wait"; }
ok "imbalance (4.5 s) longer than the wait (3 s): all of the wait, not 150%"

# ---- gnuplot that exits 0 after a failed write
cat > fakegp <<'G'
#!/bin/sh
# a gnuplot whose writes fail half way (a full disk), exit status 0 as gnuplot's
suffix=$(printf '%s' "$2" | sed "s/^suffix='\(.*\)'$/\1/")
base=${3%.gp}
printf '\211PNG\r\n\032\n\000\000\000\rIHDR' > "$base.png$suffix"
printf '<?xml version="1.0"?>\n<svg width="960"' > "$base.svg$suffix"
exit 0
G
chmod +x fakegp
GNUPLOT=$PWD/fakegp expect_fail 1 "plots/[a-z_]+\.(png|svg): gnuplot's image is incomplete.*(disk is full|is the disk full)" \
    agn-summarize -q -o /dev/null -p plots n1 n2
[ -z "$(ls plots | grep -E '\.(png|svg)')" ] || fail "truncated images left: $(ls plots)"
ok "gnuplot exiting 0 after a failed write: refused, nothing truncated under a final name"
if command -v gnuplot >/dev/null; then
    agn-summarize -q -o /dev/null -p real n1 n2 || fail "a real gnuplot's images refused"
    ok "a real gnuplot's images pass the completeness check"
fi
