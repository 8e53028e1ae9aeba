#!/usr/bin/env bash
# Re-execute committed notebooks in place with the project kernel and re-sync their jupytext
# twins (what the hygiene test and nbval compare against). Usage:
#   bash scripts/execute_notebooks.sh                   # every notebook in notebooks/
#   bash scripts/execute_notebooks.sh notebooks/03_low_rank_terms.ipynb ...
source "$(dirname "$0")/env.sh"
nbs=("$@")
[ ${#nbs[@]} -gt 0 ] || nbs=(notebooks/*.ipynb)
for nb in "${nbs[@]}"; do
    py="${nb%.ipynb}.py"
    [ -f "$py" ] && jupytext --quiet --update --to ipynb "$py" -o "$nb"
    start=$(date +%s)
    jupyter nbconvert --to notebook --execute --inplace \
        --ExecutePreprocessor.kernel_name=python3 --ExecutePreprocessor.timeout=900 --ExecutePreprocessor.record_timing=False "$nb" 2>/dev/null
    jupytext --quiet --to py:percent "$nb"
    echo "[executed] $nb in $(( $(date +%s) - start )) s"
done
