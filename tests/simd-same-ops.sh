#!/bin/sh
# simd-same-ops.sh: the x86 kernels that promise the scalar path's values
# (AdamW's AVX2 and AVX-512 kernels in optim.c: agn(7), AGN_SIMD) must do
# the scalar loop's operations, so their machine code has no fused
# multiply-add: an FMA rounds once where the scalar loop rounds twice.  GCC
# fuses intrinsics wherever the target has FMA, and target("avx512f")
# brings it: the AVX-512 kernel was fused, so on a processor with AVX-512
# tests/simd-paths.sh would find other weights, and on one without it no
# run can show it.  This reads the code of agn-train instead, on any x86-64.
. "${top_srcdir:-$(dirname "$0")/..}/tests/setup.sh"

case $(uname -m) in x86_64) ;; *) skip "the x86 kernels are not built on $(uname -m)" ;; esac
command -v objdump > /dev/null || skip "no objdump (binutils)"
bin=$top_builddir/tools/agn-train
objdump -d --no-show-raw-insn "$bin" > dis || fail "objdump -d $bin"
for f in adamw_avx adamw_avx512; do
    # the function's lines, from its label to the blank line after it
    awk -v f="<$f>:" '$2 == f { on = 1; next } on && /^$/ { exit } on' dis > "$f.s"
    [ -s "$f.s" ] || {
        nm "$bin" 2>/dev/null | grep -q ' adamw_scalar$' || skip "agn-train has no symbols (stripped): cannot find $f"
        fail "no function $f in $bin (renamed? update this test)"
    }
    grep -E '^ *[0-9a-f]+:[[:space:]]+v?f(n)?m(add|sub)' "$f.s" > fma.s && {
        cat fma.s >&2
        fail "$f fuses multiply and add ($(wc -l < fma.s) FMA instructions): its values differ from the scalar loop's"
    }
    n=$(grep -cE '^ *[0-9a-f]+:[[:space:]]+v(mul|add|div|sqrt)ps' "$f.s")
    [ "$n" -ge 5 ] || fail "$f has $n vector multiplies, adds, divides or square roots: not the AdamW kernel?"
    ok "$f: $n vector multiplies, adds, divides and square roots, no FMA"
done
