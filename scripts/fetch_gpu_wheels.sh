#!/usr/bin/env bash
# Fill .whl/ (gitignored) with the wheels the GPU check needs on the offline device machine:
# papermill, ipykernel and nbformat with their dependencies, for the device's
# python (CPython 3.12, manylinux x86_64; override with PYVER / PLATFORM). Run here, where PyPI
# is reachable, then carry the folder: run(command="bash scripts/gpu_check.sh", carry=[".whl"]).
# pip resolves the whole dependency tree; what the device already has is skipped there at install
# time. The device tool carries at most 64 MiB in all: the script prints the folder's size.
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER="${PYVER:-312}"
PLATFORM="${PLATFORM:-manylinux2014_x86_64}"
PY="${PYTHON:-.venv/bin/python}"
mkdir -p .whl
"$PY" -m pip download -q --dest .whl --only-binary=:all: \
    --python-version "$PYVER" --implementation cp --abi "cp$PYVER" \
    --platform "$PLATFORM" --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    --platform any \
    "papermill>=2.5" "ipykernel>=6.25" "nbformat>=5.9"
# the device image already holds these (docs/performance.md lists the image's packages): dropping
# them keeps the carry small; pip there resolves against the installed copies
for pkg in numpy pyyaml requests tqdm packaging certifi charset_normalizer idna urllib3 click \
           attrs psutil pygments python_dateutil typing_extensions six; do
    rm -f .whl/"$pkg"-[0-9]*.whl
done
echo "[fetch_gpu_wheels] $(ls .whl/*.whl | wc -l) wheels, $(du -sh .whl | cut -f1) in .whl/"
