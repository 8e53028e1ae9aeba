#!/usr/bin/env bash
# README command two: every test. Creates .venv on first use, then runs the linter (ruff), the unit
# tests, the papermill smoke run, the torchrun (gloo) run, the GPU check's CPU dry run, the static
# book built and checked in headless Chromium, the notebook hygiene checks, the exercise solutions
# and nbval on every committed notebook. Extra arguments go to pytest, e.g.
# `bash scripts/test.sh -x -k losses`.
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# the book's browser test needs Debian's chromium + chromedriver: installed here when we are root;
# otherwise tests/test_book.py says how (and fails under CI=true, skips elsewhere)
if [ "$(id -u)" = 0 ]; then bash scripts/install_browser.sh; else
    command -v chromium >/dev/null || echo "[test] no chromium: sudo bash scripts/install_browser.sh"; fi
echo "[test] ruff check (line length and rules in pyproject.toml)"
ruff check .
python -m pytest tests notebooks \
    --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
    --nbval-cell-timeout 600 -p no:cacheprovider -q "$@"
