#!/usr/bin/env bash
# Regenerates constraints.txt, the lock of every package version that the README commands install
# (scripts/env.sh and environment.yml both install with `-c constraints.txt`), with a resolver:
# `uv pip compile` reads the dependencies of pyproject.toml (with the dev and book extras) and the
# torch / torchvision pins of scripts/lock_pins.txt, and resolves them on PyPI for CPython 3.11 on
# x86_64 Linux (the CUDA build of torch, its nvidia-* packages included). Versions already in
# constraints.txt are kept where they still fit; UPGRADE=1 asks for the newest that fit.
#   bash scripts/lock.sh && git diff constraints.txt
# uv comes from PATH, or from UV=/path/to/uv, or is installed into a throwaway venv under $TMPDIR.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
UV="${UV:-$(command -v uv || true)}"
if [ -z "$UV" ]; then
    TMP_UV="$(mktemp -d "${TMPDIR:-/tmp}/clml-lock-uv.XXXXXX")"
    trap 'rm -rf "$TMP_UV"' EXIT
    "${PYTHON:-python3}" -m venv "$TMP_UV"
    "$TMP_UV/bin/python" -m pip install -q "uv>=0.5"
    UV="$TMP_UV/bin/uv"
fi
upgrade=()
[ "${UPGRADE:-0}" = 1 ] && upgrade=(--upgrade)
"$UV" pip compile pyproject.toml --extra dev --extra book -c scripts/lock_pins.txt \
    --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --custom-compile-command "bash scripts/lock.sh" --quiet "${upgrade[@]}" -o constraints.txt
for pin in $(grep -E '^[a-z]' scripts/lock_pins.txt); do
    grep -qx "$pin" constraints.txt || { echo "[lock] $pin is not in constraints.txt" >&2; exit 1; }
done
echo "[lock] wrote $ROOT/constraints.txt ($(grep -c '^[A-Za-z0-9]' constraints.txt) packages)"
