#!/bin/sh
# py-runner.sh: runs a Python test with the interpreter configure found to
# have PyTorch; exits 77 (skip) with the reason when there is none.
if [ -z "${TORCH_PYTHON:-}" ]; then
    echo "SKIP: no Python with PyTorch (install python3-torch and re-run configure)" >&2
    exit 77
fi
exec "$TORCH_PYTHON" "$@"
