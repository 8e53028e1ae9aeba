#!/usr/bin/env bash
# README command one: the main job, the paper's table in miniature on the CPU. Creates .venv on
# first use, then runs two grids with the grid driver's `process` runner (2 long-lived worker
# processes calling fit(), one thread each, no notebook kernel per run):
#   params/grids/teaching.yaml          BCE and SPLC, each with and without CLML, under 40left and
#                                       single, 10 paired seeds (80 runs)
#   params/grids/teaching_ceiling.yaml  the full-label ceiling, BCE, the same 10 seeds (10 runs)
# on the teaching regime of params/teaching.yaml, and prints for each comparison the baseline and
# +CLML mAP, the paired gain with its 95 % interval, the verdict against the grid's smallest effect
# of interest, the labels mined per epoch (CLML's correction and SPLC's own), the chance level and
# the ceiling. Files land in runs/grids/<grid>/ (finished runs are skipped when it is run again).
# At the end the wall time, versions and CPU are recorded beside the results
# (scripts/publish_results.py record); `python scripts/publish_results.py publish` then puts them in
# docs/results/ and the README, and refuses a job run with extra arguments.
# Extra arguments go to the grid driver for both grids, e.g. `bash scripts/main.sh --seeds 0 1 2`.
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS=1  # one thread per run (the workers pin it too): results do not depend on it
start=$(date +%s)
status=0
for grid in teaching teaching_ceiling; do
    python -m clml_lib.reproduce --grid "$grid" --runner process --jobs 2 --summary "$@" \
        || status=$?
done
wall=$(( $(date +%s) - start ))
echo "main job: ${wall} s wall (set-up excluded), load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo n/a)"
if [ "$status" = 0 ]; then
    # provenance (wall time, versions, CPU, arguments) beside the results; a job run with
    # arguments is recorded as such, and publish refuses it
    python scripts/publish_results.py record --job main --wall-seconds "$wall" \
        --args "$*" \
        || status=$?
fi
exit $status
