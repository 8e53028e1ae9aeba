#!/usr/bin/env bash
# Build the course as a static website into runs/book/ (open runs/book/index.html from disk).
# Renders the committed executed notebooks (never re-runs them), the README, the method notes,
# the results and the API reference; no network at build or view time. See book/build.py.
# Extra arguments go to book/build.py (e.g. --jobs 2).
source "$(dirname "$0")/env.sh"
if ! python -c "import sphinx, myst_nb, sphinx_book_theme, mathjax" 2>/dev/null; then
    echo "[book] installing the book extra: pip install -e '.[book]'"
    python -m pip install -e "$ROOT[book]" >"$VENV/install_book.log" 2>&1 || {
        tail -n 20 "$VENV/install_book.log"
        echo "[book] pip install -e '.[book]' failed; log: $VENV/install_book.log" >&2
        exit 1
    }
fi
python book/build.py "$@"
echo "[book] open file://$ROOT/runs/book/index.html"
