#!/bin/sh
# eval.sh: agn-eval on a tiny trained model: the report agrees with the
# per-example predictions and with agn-train's validation, --json, and
# --predict on a token stream mapped through the checkpoint's own vocabulary
# gives the same predictions as the shard.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

$TRAIN -o run --val "$VAL" "$SH"
CK=run/best.safetensors

agn-eval -t 1 "$CK" "$VAL" > report.txt
cat report.txt
agn-eval -t 1 --predict "$CK" "$VAL" > pred.txt
assert_eq "$(wc -l < pred.txt | tr -d ' ')" 120 "prediction lines"
# accuracy recomputed from the predictions
acc=$(awk -F'\t' '{ n++; if ($1 == $2) k++ } END { printf "%.4f", k / n }' pred.txt)
assert_eq "$(awk '$1 == "accuracy" { print $2 }' report.txt)" "$acc" "accuracy vs --predict"
# ... and equal to the best validation accuracy agn-train recorded
best=$(awk -F, 'NR > 1 && $24 > b { b = $24 } END { printf "%.4f", b }' run/metrics.csv)
assert_eq "$acc" "$best" "accuracy vs metrics.csv"
# probabilities sum to 1; the predicted class is the most probable
awk -F'\t' '{ split($4, p, " "); s = 0; m = 1; for (i = 1; i <= 4; i++) { s += p[i]; if (p[i] > p[m]) m = i }
              if (s < 0.999 || s > 1.001 || m - 1 != $2) exit 1 }' pred.txt || fail "bad probabilities"
# per class: names, and the confusion matrix rows sum to the 30 examples of each class
for c in World Sports Business Sci/Tech; do grep -q "^$c " report.txt || fail "no row for $c"; done
awk '/^confusion/ { on = 1; next } on && NF == 5 && $1 != "0" { s = $2 + $3 + $4 + $5; if (s != 30) exit 1; n++ }
     END { exit n != 4 }' report.txt || fail "confusion matrix rows"
# recall of each class recomputed from the predictions
rec=$(awk -F'\t' '$1 == 1 { n++; if ($2 == 1) k++ } END { printf "%.4f", k / n }' pred.txt)
assert_eq "$(awk '$1 == "Sports" && $2 ~ /\./ { print $3 }' report.txt)" "$rec" "recall of Sports"
ok "report consistent with predictions ($acc)"

agn-eval -t 1 --json "$CK" "$VAL" > report.json
grep -q "\"accuracy\": $acc" report.json || fail "--json accuracy"
grep -q '"name": "Sci/Tech"' report.json || fail "--json class names"
if [ -n "${TORCH_PYTHON:-}" ]; then
    "$TORCH_PYTHON" -c 'import json,sys; d=json.load(open("report.json")); assert len(d["confusion"]) == 4' ||
        fail "--json is not valid JSON"
fi
ok "--json"

# a token stream through the checkpoint's vocabulary: the same predictions
agn-eval -t 1 --predict "$CK" - < val.tok > pred-stream.txt
cmp pred.txt pred-stream.txt || fail "token stream and shard predictions differ"
agn-eval -t 1 "$CK" val.tok > report-stream.txt
cmp report.txt report-stream.txt || fail "token stream and shard reports differ"
# unknown labels and out-of-vocabulary tokens
printf -- '-\tsports1 sports2 filler1 neverseen\n' | agn-eval --predict "$CK" - > one.txt
awk -F'\t' 'NF != 4 || $1 != "-" || $2 != 1 || $3 != "Sports" { exit 1 }' one.txt || { cat one.txt; fail "raw example"; }
ok "token stream through the stored vocabulary"

# raw text, when agn-tokenize is built
if command -v agn-tokenize >/dev/null 2>&1; then
    echo "World1 filler3 world2, world4" | agn-tokenize -f text | agn-eval --predict "$CK" - > raw.txt
    awk -F'\t' '$3 != "World" { exit 1 }' raw.txt || { cat raw.txt; fail "raw text"; }
    ok "raw text: $(cat raw.txt)"
fi
