#!/usr/bin/env bash
# README command one: the main job. Creates .venv on first use, then runs the `teaching` grid
# (params/grids/teaching.yaml: BCE with and without CLML, fine-tuning the pretrained teaching
# backbone, under 40left, single, 75left and full, 10 paired seeds: 80 runs) on the CPU with the
# grid driver's `process` runner (2 long-lived worker processes calling fit(), no notebook kernel
# per run), and prints the collated results, then the compact table and the labels mined per
# epoch, then what label correction would mine at lower τ with the final weights
# (clml_lib.reproduce.mining). Files land in runs/grids/teaching/ (finished runs are skipped when it is run again);
# without extra arguments, the wall time, versions and CPU are then recorded beside the results
# (scripts/publish_results.py record; `publish` puts them in docs/results/ and the README).
# Extra arguments go to the grid driver, e.g. `bash scripts/main.sh --seeds 0 1 2`.
source "$(dirname "$0")/env.sh"
start=$(date +%s)
status=0
python -m clml_lib.reproduce --grid teaching --runner process --jobs 2 --summary "$@" || status=$?
wall=$(( $(date +%s) - start ))
echo "main job: ${wall} s wall (set-up excluded), load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
if [ "$status" = 0 ] && [ $# = 0 ]; then  # the default main job
    # what correction would mine at lower tau, with the final weights (it mines ~nothing at 0.75)
    grid=runs/grids/teaching
    python -m clml_lib.reproduce.mining "$grid/40left_clml" "$grid/single_clml" \
        --out "$grid/results/mining.md" || status=$?
    wall=$(( $(date +%s) - start ))
    echo "main job: ${wall} s wall in all (set-up excluded)"
    # record its provenance (wall time, versions, CPU) beside the results
    python scripts/publish_results.py record --wall-seconds "$wall" || status=$?
fi
exit $status
