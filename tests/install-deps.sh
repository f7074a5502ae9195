#!/bin/sh
# install-deps.sh: installs the Debian packages agn needs to build, test and
# run its benchmarks, skipping what is already there.  Run as root on Debian
# 12; elsewhere it only says what is missing.  (iproute2 and util-linux make
# the test hosts of tests/hosts.sh; slurm-wlm and munge the test cluster of
# tests/slurm-train.sh, which starts its daemons itself: none is enabled or
# started here.)
#   tests/install-deps.sh          build + test dependencies
#   tests/install-deps.sh --bench  also what the benchmarks compare against
set -eu
pkgs="build-essential autoconf automake pkg-config zlib1g-dev libyaml-dev
libopenblas-dev libopenblas-openmp-dev libopenmpi-dev openmpi-bin gnuplot-nox
mandoc python3-torch python3-numpy time iproute2 util-linux slurm-wlm munge"
[ "${1:-}" = "--bench" ] && pkgs="$pkgs libjemalloc2 fasttext python3-venv"

missing=
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
        missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: missing packages:$missing (install them as root with apt-get)" >&2
    exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
