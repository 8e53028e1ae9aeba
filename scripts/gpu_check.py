"""Every GPU check of the project in one call; prints a short table.

    python scripts/gpu_check.py                 # on a CUDA machine
    python scripts/gpu_check.py --device cpu    # dry run of the same checks on the CPU (CI-sized)

Checks:
  1. loss agreement: low_rank_loss / label_contrastive_loss / CLMLLoss on the device (float32,
     bf16 autocast) against the CPU float64 reference: value and gradient relative errors;
  2. loss speed: batched low-rank term vs per-label SVD route, forward+backward, N=64, C=80, D=2048;
  3. training throughput: ResNet-101 at 448 px, batch 64, AMP bf16, synthetic tensors, images/s
     with and without CLML in the same run (target: +CLML >= 97% of the baseline);
  4. a papermill run of the smoke preset on the device (notebooks/reproduce.ipynb).
Each check prints PASS/FAIL; the exit code is non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_loss import coco_like_labels, time_route  # noqa: E402

from clml_lib.losses import CLMLLoss, label_contrastive_loss, low_rank_loss, low_rank_loss_reference  # noqa: E402

RESULTS: list[tuple[str, str, str]] = []


def record(name: str, ok: bool, detail: str) -> None:
    RESULTS.append((name, "PASS" if ok else "FAIL", detail))
    print(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}", flush=True)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check_loss_agreement(device: torch.device) -> None:
    g = torch.Generator().manual_seed(0)
    Y = coco_like_labels(64, 80, g)
    Z = torch.randn(64, 2048, generator=g).relu()
    S = torch.randn(64, 80, generator=g) * 2
    cases = {
        "low_rank_loss": lambda z, y, s: low_rank_loss(z, y),
        "label_contrastive_loss": lambda z, y, s: label_contrastive_loss(z, y, 0.1),
        "CLMLLoss(BCE)": lambda z, y, s: CLMLLoss("BCE", pairwise_weight=0.5)(s, z, y, epoch=1),
    }
    for name, fn in cases.items():
        Z64 = Z.double().requires_grad_()
        ref = fn(Z64, Y.double(), S.double())
        (gref,) = torch.autograd.grad(ref, Z64)
        for mode in ("fp32", "bf16-autocast"):
            Zd = Z.to(device).requires_grad_()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode != "fp32"):
                out = fn(Zd, Y.to(device), S.to(device))
            (gd,) = torch.autograd.grad(out, Zd)
            ev, eg = rel(out, ref), rel(gd, gref)
            tol = 1e-4 if mode == "fp32" else 5e-3  # bf16 autocast leaves the CLML math in float32
            record(f"{name} [{mode}] vs CPU float64", ev < tol and eg < tol * 10, f"value rel {ev:.1e}, grad rel {eg:.1e}")


def check_loss_speed(device: torch.device) -> None:
    g = torch.Generator().manual_seed(1)
    Y = coco_like_labels(64, 80, g).to(device)
    Z = torch.randn(64, 2048, generator=g).relu().to(device)
    t_b = time_route(low_rank_loss, Z, Y, 7, device)
    t_r = time_route(low_rank_loss_reference, Z, Y, 7, device)
    record("low-rank term speed N=64 C=80", t_b < t_r, f"batched {t_b:.2f} ms, per-label SVD {t_r:.2f} ms ({t_r / t_b:.1f}x)")


def check_training(device: torch.device, backbone: str, image_size: int, batch_size: int, steps: int) -> None:
    try:
        from clml_lib.train.bench import training_throughput
    except ImportError as e:  # the engine is part of the project; its absence is a failure
        record("training throughput", False, f"cannot import clml_lib.train.bench: {e}")
        return
    amp = "bf16" if device.type == "cuda" else "none"
    kw = dict(backbone=backbone, image_size=image_size, batch_size=batch_size, amp=amp, steps=steps, device=str(device))
    base = training_throughput(use_clml=False, **kw)
    clml = training_throughput(use_clml=True, **kw)
    ratio = clml / base
    ok = ratio >= 0.97 if device.type == "cuda" else ratio > 0
    record(f"train {backbone}@{image_size} bs{batch_size} {amp}", ok,
           f"baseline {base:.1f} img/s, +CLML {clml:.1f} img/s ({100 * ratio:.1f}% of baseline, target >= 97%)")


def check_papermill(device: torch.device) -> None:
    out = Path(tempfile.mkdtemp(prefix="gpu_smoke_"))
    sys.path.insert(0, str(ROOT / "tests"))
    from data_fixtures import make_coco_tree

    root = make_coco_tree(out / "coco")
    cmd = [
        sys.executable, "-m", "papermill", str(ROOT / "notebooks" / "reproduce.ipynb"), str(out / "smoke.ipynb"),
        "-f", str(ROOT / "params" / "smoke.yaml"), "-p", "data_root", str(root), "-p", "device", str(device),
        "-p", "out_dir", str(out / "run"), "-k", "python3", "--cwd", str(ROOT), "--execution-timeout", "600",
        "--no-progress-bar",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    metrics = out / "run" / "metrics.json"
    ok = proc.returncode == 0 and metrics.exists()
    detail = f"{dt:.0f} s, exit {proc.returncode}"
    if ok:
        summary = json.loads(metrics.read_text())["summary"]
        detail += f", test mAP {summary['test_mAP']:.2f}"
    else:
        detail += " | " + (proc.stderr or proc.stdout)[-400:].replace("\n", " ")
    record("papermill smoke preset", ok, detail)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--skip", nargs="*", default=[], choices=["agree", "speed", "train", "papermill"])
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available; run with --device cpu for a dry run", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch {torch.__version__}")
    gpu = device.type == "cuda"
    if "agree" not in args.skip:
        check_loss_agreement(device)
    if "speed" not in args.skip:
        check_loss_speed(device)
    if "train" not in args.skip:
        if gpu:
            check_training(device, "resnet101", 448, 64, 20)
        else:
            check_training(device, "resnet18", 64, 8, 3)
    if "papermill" not in args.skip:
        check_papermill(device)
    print("\n| check | result | detail |\n|---|---|---|")
    for n, r, d in RESULTS:
        print(f"| {n} | {r} | {d} |")
    return 0 if all(r == "PASS" for _, r, _ in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
