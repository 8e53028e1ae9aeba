#!/usr/bin/env bash
# README command one: the main job. Creates .venv on first use, then runs the `teaching` grid
# (params/grids/teaching.yaml: BCE with and without CLML, fine-tuning the pretrained teaching
# backbone, under 40left, single, 75left and full, 10 paired seeds: 80 runs) on the CPU with the
# grid driver's `process` runner (2 long-lived worker processes calling fit(), no notebook kernel
# per run), and prints the collated results, then the compact table and the labels mined per
# epoch. Files land in runs/grids/teaching/ (finished runs are skipped when it is run again).
# Extra arguments go to the grid driver, e.g. `bash scripts/main.sh --seeds 0 1 2`.
source "$(dirname "$0")/env.sh"
start=$(date +%s)
status=0
python -m clml_lib.reproduce --grid teaching --runner process --jobs 2 --summary "$@" || status=$?
echo "main job: $(( $(date +%s) - start )) s wall (set-up excluded), load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
exit $status
