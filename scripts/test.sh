#!/usr/bin/env bash
# README command two: every test. Creates .venv on first use, then runs the unit tests, the
# papermill smoke run, the torchrun (gloo) run, the notebook hygiene checks and nbval on every
# committed notebook. Extra arguments go to pytest, e.g. `bash scripts/test.sh -x -k losses`.
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python -m pytest tests notebooks \
    --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
    --nbval-cell-timeout 600 -p no:cacheprovider -q "$@"
