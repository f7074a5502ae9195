#!/bin/sh
# config-bad.sh: each kind of config error stops agn-train with exit 1 and
# a message naming FILE:LINE and the key: unknown key, wrong type,
# out-of-range value, heads not dividing d_model, max_len above the shards',
# vocab_size other than the shards'; and bad overrides are usage errors.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"
. "$top_srcdir/tests/train-fixture.sh"

# write_cfg LINE...: a valid tiny config for the fixture with the lines given
# appended to the model: section (before train:)
write_cfg() {
    {
        echo "model:"
        echo "  vocab_size: $V"
        echo "  max_len: 32"
        echo "  d_model: 16"
        echo "  n_heads: 2"
        for l in "$@"; do echo "$l"; done
        echo "train:"
        echo "  epochs: 1"
    } > bad.yaml
}
run_bad() { # run_bad PATTERN: agn-train on bad.yaml must fail with PATTERN
    expect_fail 1 "$1" agn-train -q -c bad.yaml -o run "$SH"
    [ -e run/last.safetensors ] && fail "a checkpoint was written for a bad config"
    ok "rejected: $(head -n 1 .err)"
}

write_cfg "  n_layer: 1"
run_bad '^agn-train: bad\.yaml:6: model\.n_layer: unknown key$'
write_cfg "  d_ff: lots"
run_bad "^agn-train: bad\.yaml:6: model\.d_ff: 'lots' is not an integer"
write_cfg "  dropout: [0.1]"
run_bad '^agn-train: bad\.yaml:6: model\.dropout: expected a single value'
write_cfg "  dropout: 1.5"
run_bad '^agn-train: bad\.yaml:6: model\.dropout: 1\.5 is out of range'
write_cfg "  n_layers: 0"
run_bad '^agn-train: bad\.yaml:6: model\.n_layers: 0 is out of range'
write_cfg "  epochs: 3"
run_bad '^agn-train: bad\.yaml:6: model\.epochs: unknown key \(it belongs in the train: section\)'
write_cfg "  class_names: [a, b, c]"
run_bad '^agn-train: bad\.yaml:6: model\.class_names: 3 names for 4 classes'
# heads that do not divide d_model: the n_heads line
write_cfg && sed -i 's/n_heads: 2/n_heads: 3/' bad.yaml
run_bad '^agn-train: bad\.yaml:5: model\.n_heads: 3 heads do not divide d_model 16'
# max_len above what the shards were built with (-L 32)
write_cfg && sed -i 's/max_len: 32/max_len: 64/' bad.yaml
run_bad '^agn-train: bad\.yaml:3: model\.max_len: 64 is above the length 32'
# vocab_size other than the shards'
write_cfg && sed -i "s/vocab_size: $V/vocab_size: 20000/" bad.yaml
run_bad "^agn-train: bad\.yaml:2: model\.vocab_size: 20000, but the training shards were built with a vocabulary of $V"
# a duplicate key, a YAML syntax error, an unknown section
write_cfg "  d_model: 32"
run_bad '^agn-train: bad\.yaml:6: model\.d_model: given twice \(first at line 4\)'
write_cfg "  d_ff: [1, 2"
run_bad '^agn-train: bad\.yaml:[0-9]+: YAML syntax error'
# a section given twice: the second model: would override d_model silently
write_cfg && printf 'model:\n  d_model: 32\n' >> bad.yaml
run_bad '^agn-train: bad\.yaml:8: model: section given twice \(first at line 1\)'
printf 'model:\n  d_model: 16\nrunx:\n  a: 1\n' > bad.yaml
run_bad '^agn-train: bad\.yaml:3: runx: unknown section'
# nesting and anchors beyond any config's (libyaml's loader takes time
# quadratic in both: a 200 KB line of '[' took a minute)
awk 'BEGIN { printf "model:\n  class_names: "; for (i = 0; i < 5000; i++) printf "["; print "" }' > bad.yaml
run_bad '^agn-train: bad\.yaml:2: lists and mappings nested more than 32 deep$'
awk 'BEGIN { printf "run:\n  x: [&a0 x"; for (i = 1; i < 2000; i++) printf ", *a0"; print "]" }' > bad.yaml
run_bad '^agn-train: bad\.yaml:2: more than 1000 anchors and aliases$'
# a missing file
expect_fail 1 '^agn-train: nothere\.yaml: No such file' agn-train -c nothere.yaml -o run "$SH"

# overrides: a bad value or key is a usage error naming the option
write_cfg
expect_fail 2 "command line: --lr: 'fast' is not a number" agn-train -c bad.yaml -o run --lr fast "$SH"
expect_fail 2 "unknown config key 'model.nope'" agn-train -c bad.yaml -o run -s model.nope=1 "$SH"
# an override that breaks a relation names the command line
expect_fail 1 'command line: --set: 3 heads do not divide' agn-train -c bad.yaml -o run -s n_heads=3 "$SH"
ok "overrides checked"
