#!/bin/sh
# run-all.sh: the one command that tests everything on a fresh Debian 12
# machine.  Installs missing packages, builds agn, runs `make check`, then
# builds again under AddressSanitizer and UndefinedBehaviorSanitizer and runs
# the tests there too, and ends with one line: "N passed, N failed, N skipped".
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
jobs=$(nproc 2>/dev/null || echo 2)

sh tests/install-deps.sh
[ -x configure ] || autoreconf -fi >/dev/null

passed=0 failed=0 skipped=0
count() { # count LOG: add automake's summary of a test-suite.log
    for k in PASS FAIL SKIP XFAIL XPASS ERROR; do
        n=$(sed -n "s/^# $k: *\([0-9]*\)$/\1/p" "$1" | head -n 1)
        n=${n:-0}
        case $k in
        PASS|XFAIL) passed=$((passed + n)) ;;
        SKIP) skipped=$((skipped + n)) ;;
        *) failed=$((failed + n)) ;;
        esac
    done
}

status=0
run() { # run DIR CONFIGURE-ARGS...: configure in DIR, build, make check
    dir=$1; shift
    mkdir -p "$dir"
    (cd "$dir" && "$top/configure" -q "$@" >configure.out 2>&1) || { cat "$dir/configure.out"; exit 1; }
    make -C "$dir" -j"$jobs" >"$dir/make.out" 2>&1 || { tail -n 40 "$dir/make.out"; exit 1; }
    if grep -E 'warning:' "$dir/make.out"; then
        echo "run-all: compiler warnings in $dir (see above)"; status=1
    fi
    make -C "$dir" -j"$jobs" check >"$dir/check.out" 2>&1 || status=1
    grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR):' "$dir/check.out" | sed "s|^|[$(basename "$dir")] |" || true
    if [ -f "$dir/test-suite.log" ]; then
        count "$dir/test-suite.log"
        grep -q '^# FAIL: *0$' "$dir/test-suite.log" && grep -q '^# ERROR: *0$' "$dir/test-suite.log" ||
            sed -n '/^FAIL\|^ERROR/,/^$/p' "$dir/test-suite.log" | head -n 200
    else
        tail -n 40 "$dir/check.out"; failed=$((failed + 1))
    fi
}

run "$top/build/release"
# the timing tests, alone on the machine (make check runs two at once)
make -C "$top/build/release" check-timing >"$top/build/release/check-timing.out" 2>&1 || status=1
grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR):' "$top/build/release/check-timing.out" | sed 's|^|[release, alone] |' || true
if [ -f "$top/build/release/test-suite.log" ]; then
    count "$top/build/release/test-suite.log"
    grep -q '^# FAIL: *0$' "$top/build/release/test-suite.log" ||
        sed -n '/^FAIL\|^ERROR/,/^$/p' "$top/build/release/test-suite.log" | head -n 100
else
    failed=$((failed + 1))
fi
# The sanitizer pass: every test again, with AGN_TEST_SANITIZED set so the
# few long training and benchmark-sized tests run on smaller inputs.
export AGN_TEST_SANITIZED=1
run "$top/build/sanitize" --enable-asan --enable-ubsan CFLAGS="-O1 -g"

echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && exit $status
exit 1
