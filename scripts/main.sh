#!/usr/bin/env bash
# README command one: the main job. Creates .venv on first use, then runs the `teaching`
# grid (a base loss with and without CLML on the embedded teaching set, 40left, 3 seeds)
# through papermill on the CPU and prints the comparison table; files land in runs/grids/teaching/.
# Extra arguments go to the grid driver, e.g. `bash scripts/main.sh --seeds 0`.
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
python -m clml_lib.reproduce --grid teaching "$@"
