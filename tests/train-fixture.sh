# train-fixture.sh: sourced by the train and eval tests after setup.sh.
# Writes a small synthetic corpus in the scratch directory: four classes
# whose examples mix class words (world0..world4, ...) with shared filler
# words, so a tiny model can learn it in a few hundred steps; builds its
# vocabulary and shards, and sets:
#   V       the vocabulary size        SH   the training shard
#   VAL     the validation shard       CFG  the tiny config
#   TRAIN   agn-train with the tiny config, the vocabulary size, one thread,
#           on the CPU (TRAIN_ANY: the same with the device left to agn-train)
# make_stream N SEED > FILE writes N more examples.
make_stream() {
    awk -v n="$1" -v seed="$2" 'BEGIN {
        srand(seed); split("world sports business tech", w, " ");
        for (i = 0; i < n; i++) {
            c = i % 4; line = c "\t"; k = 4 + int(rand() * 24);
            for (j = 0; j < k; j++) {
                if (rand() < 0.3) t = w[c + 1] int(rand() * 5); else t = "filler" int(rand() * 30);
                line = line (j ? " " : "") t;
            }
            print line;
        }
    }'
}
make_stream 403 3 > train.tok
make_stream 120 4 > val.tok
agn-vocab -q -o vocab.txt train.tok
agn-shard -q -v vocab.txt -L 32 -o shards/train train.tok
agn-shard -q -v vocab.txt -L 32 -o shards/val val.tok
cp vocab.txt shards/vocab.txt
V=$(awk '!h && /^#/ { next } { h = 1; n++ } END { print n }' vocab.txt)
SH=shards/train-00000.agns
VAL=shards/val-00000.agns
CFG=$top_srcdir/examples/tiny.yaml
# TRAIN_ANY leaves the device to agn-train (tests of -g and of its choice);
# TRAIN is on the CPU, as the tests expect on a machine with a GPU too
TRAIN_ANY="agn-train -q -t 1 -c $CFG -s model.vocab_size=$V"
TRAIN="$TRAIN_ANY --cpu"
STDIFF=$top_builddir/tests/st-diff
[ -x "$STDIFF" ] || fail "tests/st-diff is not built"
