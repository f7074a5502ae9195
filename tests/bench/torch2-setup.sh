#!/bin/sh
# torch2-setup.sh: installs PyTorch 2.x from PyPI, as a user would today,
# into a virtual environment for the benchmarks (model.sh, eval.sh), never
# into the system, and prints the line to use it:
#   TORCH2_PYTHON=DIR/bin/python
#
#   tests/bench/torch2-setup.sh [DIR]   (default: $HOME/.cache/agn/torch2)
#
# TORCH2_VERSION picks the release (default: 2.15.0, the one measured).
# PyPI's Linux wheel depends on the CUDA libraries (nvidia-* and
# cuda-toolkit packages) and does not import without them, even on a
# machine without a GPU: the whole install is about 5.4 GB (a 539 MB wheel
# plus the CUDA libraries), a few minutes on a fast link.  It needs
# Debian's python3-venv.
set -eu
dir=${1:-${HOME:-/root}/.cache/agn/torch2}
ver=${TORCH2_VERSION:-2.15.0}
py=${PYTHON:-/usr/bin/python3}
if [ -x "$dir/bin/python" ] && "$dir/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$ver')" 2>/dev/null; then
    echo "TORCH2_PYTHON=$dir/bin/python"
    exit 0
fi
"$py" -m venv "$dir" || { echo "torch2-setup.sh: $py -m venv failed (install python3-venv)" >&2; exit 1; }
echo "torch2-setup.sh: installing torch==$ver from PyPI into $dir (about 5.4 GB with its CUDA libraries)" >&2
"$dir/bin/pip" install -q "torch==$ver" numpy >&2
"$dir/bin/python" -c 'import torch; print("torch2-setup.sh: torch", torch.__version__, "imports", file=__import__("sys").stderr)'
echo "TORCH2_PYTHON=$dir/bin/python"
