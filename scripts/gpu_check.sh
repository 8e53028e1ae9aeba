#!/usr/bin/env bash
# One call on a lent GPU machine runs every GPU check and prints a short table.
# The device machine starts bare: torch comes with the image there (see
# /work/.library/device/KINDS.md); the project is installed without dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install -q --no-deps --no-build-isolation -e . 2>/dev/null || export PYTHONPATH="$PWD:${PYTHONPATH:-}"
export PYTHONUNBUFFERED=1
python3 scripts/gpu_check.py --device "${1:-cuda}" "${@:2}"
