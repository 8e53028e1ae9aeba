#!/usr/bin/env bash
# Every GPU check in one call of at most 8 minutes, printing one table (scripts/gpu_check.py).
#
#   bash scripts/gpu_check.sh                 # on the lent CUDA machine (default --device cuda)
#   bash scripts/gpu_check.sh --device cpu    # dry run here: tiny sizes, < 2 min on 2 cores
#
# The device machine starts bare and offline: python3 there holds torch and torchvision (and
# numpy, pandas, matplotlib, scikit-learn, pyyaml, pillow, threadpoolctl), not papermill,
# ipykernel or nbformat. Those come as wheels in .whl/ (gitignored), filled here
# beforehand by `bash scripts/fetch_gpu_wheels.sh` and sent with the device tool's carry:
#   run(command="bash scripts/gpu_check.sh", carry=[".whl"], timeout_s=540)
# This script installs the missing ones with `pip install --no-index --find-links .whl` (no
# network) and runs the project from the working tree (PYTHONPATH, no install of the project).
# PYTHON picks the interpreter (default python3). Extra arguments go to gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
missing=()
for mod in papermill ipykernel nbformat; do
    "$PY" -c "import $mod" 2>/dev/null || missing+=("$mod")
done
if ((${#missing[@]})); then
    if compgen -G ".whl/*.whl" >/dev/null; then
        echo "[gpu_check] installing from .whl/: ${missing[*]}"
        "$PY" -m pip install -q --no-index --find-links .whl "${missing[@]}"
    else
        echo "[gpu_check] missing ${missing[*]} and no wheels in .whl/ (run scripts/fetch_gpu_wheels.sh" \
             "and carry .whl); the checks that need them will FAIL" >&2
    fi
fi
# 8 minutes in all: SIGTERM at 470 s makes gpu_check.py print the table of what has run
exec timeout --signal=TERM --kill-after=10 470 "$PY" scripts/gpu_check.py "$@"
