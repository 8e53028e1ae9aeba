#!/usr/bin/env bash
# Re-execute committed notebooks in place with the project kernel, re-sync their jupytext twins
# (what the hygiene test and nbval compare against) and record each notebook's measured execution
# time in notebooks/run_times.json ({"00_overview": {"seconds": ..., "date": ..., "cpu": ...,
# "cores": ..., "threads": ..., "load_1min": ...}, ...}; the book's run-times page and the
# notebooks' "Runs in" lines read it). Usage:
#   bash scripts/execute_notebooks.sh                   # every notebook in notebooks/
#   bash scripts/execute_notebooks.sh notebooks/03_low_rank_terms.ipynb ...
# The notebooks are executed on the CPU's default float kernels: any emulation setting inherited
# from the shell is removed here. The README test command then checks them with nbval under other
# kernels (scripts/test.sh), so an output that depends on the kernels cannot land.
source "$(dirname "$0")/env.sh"
unset ATEN_CPU_CAPABILITY ONEDNN_MAX_CPU_ISA MKL_ENABLE_INSTRUCTIONS
nbs=("$@")
[ ${#nbs[@]} -gt 0 ] || nbs=(notebooks/*.ipynb)
for nb in "${nbs[@]}"; do
    [ -f "$nb" ] || { echo "[execute] no such notebook: $nb" >&2; exit 2; }
    py="${nb%.ipynb}.py"
    [ -f "$py" ] && jupytext --quiet --update --to ipynb "$py" -o "$nb"
    load=$(cut -d' ' -f1 /proc/loadavg 2>/dev/null || echo null)
    start=$(date +%s.%N)
    log=$(mktemp)
    if ! jupyter nbconvert --to notebook --execute --inplace \
        --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=900 \
        --ExecutePreprocessor.record_timing=False "$nb" 2>"$log"; then
        tail -n 40 "$log"; rm -f "$log"; echo "[execute] $nb failed (its cell error is above)" >&2; exit 1
    fi
    rm -f "$log"
    seconds=$(python -c "import sys; print(round(float(sys.argv[2]) - float(sys.argv[1]), 1))" "$start" "$(date +%s.%N)")
    jupytext --quiet --to py:percent "$nb"
    python - "$nb" "$seconds" "$load" <<'PY'
import datetime, inspect, json, os, platform, re, sys
from pathlib import Path

import nbformat

from clml_lib.nb import setup_notebook

nb, seconds, load = Path(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
# the torch threads the notebook pins: its setup_notebook(..., threads=N) call, else the default
source = "\n".join(c.source for c in nbformat.read(nb, as_version=4).cells if c.cell_type == "code")
m = re.search(r"setup_notebook\([^)]*threads=(\d+)", source)
threads = int(m.group(1)) if m else inspect.signature(setup_notebook).parameters["threads"].default
cpu = platform.processor() or platform.machine()
try:
    cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
except (OSError, StopIteration):
    pass
path = nb.parent / "run_times.json"
times = json.loads(path.read_text()) if path.is_file() else {}
times[nb.stem] = {
    "seconds": seconds,
    "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    "cpu": cpu,
    "cores": os.cpu_count(),
    "threads": threads,
    "load_1min": None if load == "null" else float(load),
}
path.write_text(json.dumps(dict(sorted(times.items())), indent=1) + "\n")
PY
    echo "[executed] $nb in $seconds s"
done
