# expect-dump.awk: what `agn-shard --dump` must print for a token stream,
# computed apart from agn: each token in the vocabulary as itself, any other
# (and the text "<pad>") as <unk>, at most L tokens, an empty example as one
# <unk>.  Usage: awk -v L=LEN -f expect-dump.awk VOCAB STREAM
FNR == NR { if (!body && /^#/) next; body = 1; split($0, f, "\t"); inv[f[1]] = 1; next }
{
    tab = index($0, "\t"); lab = substr($0, 1, tab - 1); k = split(substr($0, tab + 1), t, " ")
    out = ""; m = 0
    for (i = 1; i <= k && m < L; i++) {
        w = (t[i] in inv && t[i] != "<pad>") ? t[i] : "<unk>"
        out = out (m ? " " : "") w; m++
    }
    if (m == 0) { out = "<unk>"; m = 1 }
    print lab "\t" out
}
