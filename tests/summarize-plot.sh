#!/bin/sh
# summarize-plot.sh: agn-summarize --plot.  The gnuplot data and scripts are
# written whether or not gnuplot is there (checked with rendering off and
# with $GNUPLOT pointing nowhere); when gnuplot is installed, every script
# must render a non-empty PNG and SVG, atomically, and also when run by hand
# from another directory.  Skips (77) only the rendering part without gnuplot.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

HEADER=epoch,world_size,backend,transport,device,threads,config,params,global_batch,train_examples,data_id,steps,samples,tokens,epoch_time_s,compute_s,comm_s,optim_s,data_s,samples_per_s,tokens_per_s,train_loss,val_loss,val_acc,val_f1,lr
mkrun() { # mkrun DIR W CONFIG T
    mkdir -p "$1"
    echo "$HEADER" > "$1/metrics.csv"
    for e in 1 2 3; do
        echo "$e,$2,cpu,local,cpu,1,$3,5000,32,100,00c0ffee,4,100,900,$4,$(awk -v t="$4" 'BEGIN { print 0.8 * t }'),0.1,0.01,0.01,10,90,1.3,1.2,0.$((60 + 5 * e)),0.6,0.001" >> "$1/metrics.csv"
    done
}
mkrun s1 1 small 10
mkrun s2 2 small 5.5
mkrun s4 4 small 3.2
mkrun l1 1 "large_v2 'q'" 40
mkrun l2 2 "large_v2 'q'" 24

names="epoch_time speedup efficiency val_acc"

# ---- data and scripts, without rendering ----------------------------------------
agn-summarize -q -o table.md -p plots --no-render s1 s2 s4 l1 l2 2>err.txt
grep -q "render them with: gnuplot plots/\*.gp" err.txt || { cat err.txt >&2; fail "no hint on how to render"; }
for n in $names; do
    [ -s "plots/$n.dat" ] || fail "plots/$n.dat missing or empty"
    [ -s "plots/$n.gp" ] || fail "plots/$n.gp missing or empty"
    [ ! -e "plots/$n.png" ] || fail "--no-render made plots/$n.png"
done
# speedup block of the small config: 10/5.5 and 10/3.2, computed here
awk 'BEGIN { printf "2 %.10g\n4 %.10g\n", 10 / 5.5, 10 / 3.2 }' > want.txt
grep -E '^(2|4) ' plots/speedup.dat | head -n 2 > got.txt
cmp -s want.txt got.txt || { cat plots/speedup.dat >&2; fail "speedup.dat values"; }
# efficiency bars: one row per W, one column per group, '-' where not measured
grep -q '^4 78.125 -$' plots/efficiency.dat || { cat plots/efficiency.dat >&2; fail "efficiency.dat"; }
ls plots | grep -q tmp && fail "temporary files left in plots/"
ok "--no-render writes .dat and .gp only, with the render command on stderr"

# ---- gnuplot named but missing: still data and scripts, exit 0, a hint -----------
GNUPLOT=/nonexistent/gnuplot agn-summarize -q -o /dev/null -p noplot s1 s2 2>err.txt ||
    fail "missing gnuplot must not be an error"
grep -q "GNUPLOT=/nonexistent/gnuplot is not an executable program" err.txt || { cat err.txt >&2; fail "no reason given"; }
grep -q "gnuplot noplot/\*.gp" err.txt || fail "no render command without gnuplot"
for n in $names; do [ -s "noplot/$n.gp" ] && [ -s "noplot/$n.dat" ] || fail "noplot/$n.{gp,dat}"; done
ok "without gnuplot: .dat and .gp written, how to render said on stderr"

# ---- rendering ---------------------------------------------------------------------
gp=${GNUPLOT:-}
[ -n "$gp" ] || gp=$(command -v gnuplot || true)
[ -n "$gp" ] || skip "gnuplot is not installed: PNG and SVG rendering not tested"

agn-summarize -q -o table.md -p plots s1 s2 s4 l1 l2 || fail "--plot with gnuplot"
for n in $names; do
    [ -s "plots/$n.png" ] || fail "plots/$n.png missing or empty"
    [ -s "plots/$n.svg" ] || fail "plots/$n.svg missing or empty"
    head -c 8 "plots/$n.png" | od -An -tx1 | tr -d ' \n' | grep -q '^89504e470d0a1a0a$' ||
        fail "plots/$n.png is not a PNG"
    grep -q '<svg' "plots/$n.svg" || fail "plots/$n.svg is not SVG"
done
ls plots | grep -q tmp && fail "temporary images left in plots/"
# the config name with a quote and an underscore reaches the legend as written
grep -q "large_v2 'q'" plots/speedup.svg || fail "legend text mangled in speedup.svg"
ok "PNG and SVG for each of: $names"

# the scripts render by hand, from any directory
rm plots/speedup.png plots/speedup.svg
(cd / && "$gp" "$tmp/plots/speedup.gp") || fail "gnuplot plots/speedup.gp from /"
[ -s plots/speedup.png ] && [ -s plots/speedup.svg ] || fail "hand-run script wrote no images"
ok "scripts render from another directory"

# a failing gnuplot is an error, and leaves no half-written image
printf '#!/bin/sh\necho broken >&2\nexit 3\n' > badgnuplot
chmod +x badgnuplot
expect_fail 1 "gnuplot failed on bad/epoch_time.gp" env GNUPLOT="$tmp/badgnuplot" agn-summarize -q -o /dev/null -p bad s1 s2
ls bad | grep -qE 'png|svg' && fail "images left after gnuplot failed"
ok "gnuplot failure reported, exit 1"
