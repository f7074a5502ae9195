#!/bin/sh
# atomic-output.sh: outputs appear whole or not at all, and special files
# (a FIFO, /dev/null) are written in place rather than renamed over.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

printf '0\ta b c\n1\tb c d\n' > in.tok

# A regular file: written whole; no temporary left beside it.
agn-vocab -o vocab.txt in.tok 2>/dev/null
grep -q '^b	2$' vocab.txt || fail "vocab.txt lacks 'b 2'"
[ -z "$(ls | grep '\.tmp\.')" ] || fail "a temporary file was left: $(ls)"
ok "regular file written, no temporary left"

# A failed run leaves an existing output untouched.
cp vocab.txt before.txt
printf 'no tab here\n' > bad.tok
expect_fail 1 'bad.tok:1:' agn-vocab -o vocab.txt bad.tok
cmp -s vocab.txt before.txt || fail "a failed run changed the existing output"
[ -z "$(ls | grep '\.tmp\.')" ] || fail "a failed run left a temporary: $(ls)"
ok "failed run keeps the old output and leaves no temporary"

# A FIFO stays a FIFO and receives the data.
mkfifo pipe
cat pipe > from-pipe &
reader=$!
agn-vocab -o pipe in.tok 2>/dev/null
wait "$reader"
[ -p pipe ] || fail "the FIFO was replaced by a regular file"
cmp -s from-pipe vocab.txt || fail "the FIFO did not carry the vocabulary"
ok "FIFO written in place"

# A directory is refused.
mkdir adir
expect_fail 1 'adir' agn-vocab -o adir in.tok
ok "directory refused"
