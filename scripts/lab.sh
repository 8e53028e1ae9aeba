#!/usr/bin/env bash
# The course in JupyterLab: bash scripts/lab.sh [extra jupyter-lab options, e.g. --no-browser].
# Creates .venv on first use (scripts/env.sh), then starts JupyterLab on the notebooks folder with
# the project's kernel, the notebooks' .py twins opening as notebooks
# (jupytext pairing of notebooks/jupytext.toml) and nothing fetched from the network (no news,
# no update check, no extension manager): scripts/jupyterlab/jupyter_lab_config.py.
source "$(dirname "$0")/env.sh"
exec python -m jupyterlab --config="$ROOT/scripts/jupyterlab/jupyter_lab_config.py" "$@"
