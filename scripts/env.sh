# Sourced by scripts/main.sh and scripts/test.sh: creates .venv on first use and
# installs clml_lib with its dev and book extras, every version pinned by constraints.txt (the lock:
# torch 2.14.1, torchvision 0.29.1, ...; regenerate it with scripts/lock.sh). Re-installs when
# pyproject.toml or constraints.txt changes.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3}"
if [ ! -x "$VENV/bin/python" ]; then
    echo "[env] creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.clml_installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ] || [ "$ROOT/constraints.txt" -nt "$STAMP" ]; then
    echo "[env] installing clml_lib[dev,book] into $VENV (first run: several minutes, torch is large)"
    LOG="$VENV/install.log"
    if ! { "$VENV/bin/python" -m pip install --upgrade pip && "$VENV/bin/python" -m pip install -c "$ROOT/constraints.txt" -e "$ROOT[dev,book]"; } >"$LOG" 2>&1; then
        tail -n 40 "$LOG"; echo "[env] pip install failed; full log: $LOG" >&2; exit 1
    fi
    "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (ipykernel)" >/dev/null
    touch "$STAMP"
fi
export PATH="$VENV/bin:$PATH"
export MPLBACKEND=Agg
cd "$ROOT"
