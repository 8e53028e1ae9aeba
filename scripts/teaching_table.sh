#!/usr/bin/env bash
# The paper's whole table on the teaching regime: the grid params/grids/teaching_table.yaml (the
# four missing-label settings x the five base losses, each with and without CLML, 10 paired
# seeds: 400 runs of about 12 CPU-seconds each, one thread per run), then its provenance (wall
# time, versions, CPU) recorded beside the results for `python scripts/publish_results.py publish
# --job teaching_table`, which copies them to docs/results/.
#
#   bash scripts/teaching_table.sh                       # here: .venv, 2 workers (~45 min on 2 cores)
#   JOBS=14 NO_VENV=1 bash scripts/teaching_table.sh     # a many-core machine whose python3 has
#                                                        # torch, PyYAML, pandas, scipy, matplotlib
#                                                        # and papermill (the project runs from the
#                                                        # working tree through PYTHONPATH)
# Extra arguments go to the grid driver (e.g. --seeds 0 1 2); a run with arguments is recorded as
# such and publish_results.py refuses to publish it.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${NO_VENV:-}" ]; then
    source scripts/env.sh
    PY=python
else
    PY="${PYTHON:-python3}"
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" MPLBACKEND=Agg
fi
export OMP_NUM_THREADS=1
jobs="${JOBS:-2}"
start=$(date +%s)
status=0
"$PY" -m clml_lib.reproduce --grid teaching_table --runner process --jobs "$jobs" --summary "$@" \
    || status=$?
wall=$(( $(date +%s) - start ))
echo "teaching_table: ${wall} s wall with ${jobs} workers on $(nproc) cores"
if [ "$status" = 0 ]; then
    "$PY" scripts/publish_results.py record --job teaching_table --wall-seconds "$wall" \
        --args "$*" || status=$?
fi
exit $status
