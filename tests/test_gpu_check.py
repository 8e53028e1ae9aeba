"""The GPU check's CPU dry run: `bash scripts/gpu_check.sh --device cpu` runs every check at tiny
sizes, passes, and prints one table with a row per check (the same code that runs on a GPU)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_gpu_check_dry_run_passes_and_prints_one_table():
    env = {**os.environ, "PYTHON": sys.executable, "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "gpu_check.sh"), "--device", "cpu"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    dt = time.perf_counter() - t0
    out = proc.stdout
    assert proc.returncode == 0, f"exit {proc.returncode}\n{out[-3000:]}\n{proc.stderr[-2000:]}"
    table = out[out.index("| check | result | detail |") :].strip().splitlines()[2:]
    names = [row.split("|")[1].strip() for row in table]
    for prefix in (
        "agree low_rank_loss [fp32]",
        "agree official route [fp32]",
        "agree CLMLLoss(BCE) [bf16-autocast]",
        "speed low-rank term",
        "train resnet18@64",
        "input 96x72 -> 48",
        "papermill smoke preset",
    ):
        assert any(n.startswith(prefix) for n in names), (prefix, names)
    assert all(row.split("|")[2].strip() == "PASS" for row in table), table
    print(f"dry run {dt:.0f} s")  # the budget is < 2 min on 2 idle cores


def test_gpu_check_refuses_cuda_without_a_gpu():
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gpu_check.py"), "--device", "cuda"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "CUDA is not available" in proc.stderr
