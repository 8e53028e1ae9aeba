#!/usr/bin/env bash
# README command two: every test. Creates .venv on first use, then runs the linter (ruff), the unit
# tests, the papermill smoke run, the torchrun (gloo) run, the GPU check's CPU dry run, the static
# book built and checked in headless Chromium, the notebook hygiene checks and the exercise
# solutions; then nbval on every committed notebook, under emulated float kernels. Extra arguments
# go to both pytest runs, e.g. `bash scripts/test.sh -x -k losses`.
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"
# the book's browser test needs Debian's chromium + chromedriver: installed here when we are root;
# otherwise tests/test_book.py says how (and fails under CI=true, skips elsewhere)
if [ "$(id -u)" = 0 ]; then bash scripts/install_browser.sh; else
    command -v chromium >/dev/null || echo "[test] no chromium: sudo bash scripts/install_browser.sh"; fi
echo "[test] ruff check (line length and rules in pyproject.toml)"
ruff check .
# pytest exits 5 when -k/-m selects nothing in one of the two runs: not a failure
run_pytest() { local rc=0; python -m pytest "$@" || rc=$?; [ "$rc" = 5 ] && rc=0; return "$rc"; }
# a failure in the unit tests does not hide the notebooks' results: both runs go, then the worst exit
unit_rc=0
run_pytest tests -p no:cacheprovider -q "$@" || unit_rc=$?
# The notebooks were executed on this kind of CPU's default kernels (scripts/execute_notebooks.sh);
# nbval re-runs them with the generic ATen kernels, oneDNN and MKL capped at AVX2: another CPU's
# float summation order, so an output that depends on the machine fails here, not on a user's.
echo "[test] nbval on every notebook under emulated kernels (ATen default, oneDNN/MKL AVX2)"
ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 \
    run_pytest notebooks --nbval --nbval-current-env --nbval-sanitize-with tests/nbval_sanitize.cfg \
    --nbval-cell-timeout 600 -p no:cacheprovider -q "$@" \
    || { rc=$?; echo "[test] nbval failed (exit $rc)" >&2; exit "$rc"; }
[ "$unit_rc" = 0 ] || { echo "[test] unit tests failed (exit $unit_rc)" >&2; exit "$unit_rc"; }
