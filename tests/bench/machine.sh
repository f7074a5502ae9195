# machine.sh: sourced by the benchmarks to print, in their first lines, the
# machine their figures come from: the processor, the SIMD path each of
# agn's kernels takes, the BLAS agn loaded and its threading (from
# agn-train --version), the CPUs, the load, and OMP_WAIT_POLICY; and the
# peak floating-point rate it assumes for model FLOP utilisation.
#   machine_header TOOLS_DIR [THREADS...]   prints the lines
#   peak_gflops THREADS                     prints the assumed peak, GFLOP/s
# The peak is THREADS cores x FMA units x fp32 lanes x 2 x the clock:
# FMA_UNITS (default 2, as Zen 2-4 and Intel's server cores have), lanes 8
# for AVX2 and 16 for AVX-512 (Zen 4 runs AVX-512 as two halves: set
# FMA_LANES=8 there), CPU_GHZ (default: the highest "cpu MHz" of
# /proc/cpuinfo; a virtual machine reports its nominal clock, and boost
# clocks run higher, so utilisation is an upper bound).
machine_simd() { "$1/agn-train" --version 2>/dev/null | sed -n 's/^simd: this processor runs up to \([a-z0-9]*\).*/\1/p'; }
peak_gflops() {
    lanes=${FMA_LANES:-}
    if [ -z "$lanes" ]; then
        case $(machine_simd "$machine_tools") in avx512) lanes=16 ;; avx2) lanes=8 ;; sse2) lanes=4 ;; *) lanes=4 ;; esac
    fi
    ghz=${CPU_GHZ:-$(awk -F: '/^cpu MHz/ { if ($2 > m) m = $2 } END { if (m) printf "%.3f", m / 1000 }' /proc/cpuinfo 2>/dev/null)}
    [ -n "$ghz" ] || ghz=2.0
    awk -v t="$1" -v u="${FMA_UNITS:-2}" -v l="$lanes" -v g="$ghz" 'BEGIN { printf "%.1f", t * u * l * 2 * g }'
}
peak_words() {
    lanes=${FMA_LANES:-}
    [ -n "$lanes" ] || case $(machine_simd "$machine_tools") in avx512) lanes=16 ;; avx2) lanes=8 ;; *) lanes=4 ;; esac
    ghz=${CPU_GHZ:-$(awk -F: '/^cpu MHz/ { if ($2 > m) m = $2 } END { if (m) printf "%.3f", m / 1000 }' /proc/cpuinfo 2>/dev/null)}
    echo "cores x ${FMA_UNITS:-2} FMA units x $lanes fp32 lanes x 2 FLOP x ${ghz:-2.0} GHz = $(peak_gflops 1) GFLOP/s a core"
}
machine_header() {
    machine_tools=$1; shift
    v=$("$machine_tools/agn-train" --version 2>&1) || v=
    echo "machine: $(echo "$v" | sed -n 's/^cpu: //p'), $(uname -m), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "agn: $(echo "$v" | sed -n 's/^simd: //p')"
    echo "agn BLAS: $(echo "$v" | sed -n 's/^blas loaded: //p')"
    echo "threads: ${*:-(default)}; OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-(default)}; model FLOP utilisation against $(peak_words)"
}
