"""Every GPU check of the project in one call (at most 8 minutes); prints ONE table.

    python scripts/gpu_check.py --device cuda   # on a CUDA machine (scripts/gpu_check.sh does this)
    python scripts/gpu_check.py --device cpu    # dry run of the same checks, tiny sizes (< 2 min)

``clml_lib`` is imported like any package: installed, or from the working tree through PYTHONPATH
(``scripts/gpu_check.sh`` sets it); the script imports nothing from ``tests/`` or ``benchmarks/``.

Checks (each prints PASS/FAIL; the exit code is non-zero if any check fails):
  agree      loss agreement: low_rank_loss, the official route, label_contrastive_loss and CLMLLoss
             on the device (float32, and bf16 autocast) against the CPU float64 reference: value
             and gradient relative errors;
  speed      the batched low-rank term against the official route (float32 NumPy SVD per label,
             hand gradient) on the device, forward+backward, interleaved, N=64, C=80, D=2048;
  train      ResNet-101 at 448 px, batch 64, bf16 autocast, synthetic tensors: images/s of the
             engine's training step with and without CLML in the same run (target: >= 97 %);
  input      input pipeline images/s: the PIL reference in DataLoader workers on all the
             machine's cores, and the tensor pipeline with GPU decoding and augmentation; PASS
             when one of them feeds the training rate measured by 'train';
  papermill  a papermill run of the smoke preset on the device (notebooks/reproduce.ipynb).
The dry run (--device cpu) runs the same code at tiny sizes; its speed numbers mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from clml_lib.losses import (
    CLMLLoss,
    label_contrastive_loss,
    low_rank_loss,
    low_rank_loss_reference,
)
from clml_lib.losses.official import official_route_low_rank
from clml_lib.losses.timing import ROUTES, coco_like_labels, interleaved

ROOT = Path(__file__).resolve().parents[1]

RESULTS: list[tuple[str, str, str]] = []
FACTS: dict[str, float] = {}  # numbers one check hands to another (training images/s)
CHECKS = ["agree", "speed", "train", "input", "papermill"]


def record(name: str, ok: bool, detail: str) -> None:
    RESULTS.append((name, "PASS" if ok else "FAIL", detail))
    print(f"[{'PASS' if ok else 'FAIL'}] {name}: {detail}", flush=True)


def print_table() -> None:
    print("\n| check | result | detail |\n|---|---|---|")
    for n, r, d in RESULTS:
        print(f"| {n} | {r} | {d} |")
    sys.stdout.flush()


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def check_loss_agreement(device: torch.device, N: int, C: int, D: int) -> None:
    g = torch.Generator().manual_seed(0)
    Y = coco_like_labels(N, C, g)
    Z = torch.randn(N, D, generator=g).relu()
    S = torch.randn(N, C, generator=g) * 2
    # name -> (function on the device, float64 reference on the CPU)
    cases = {
        "low_rank_loss": (lambda z, y, s: low_rank_loss(z, y), None),
        "official route": (
            lambda z, y, s: official_route_low_rank(z, y),
            lambda z, y, s: low_rank_loss_reference(z, y),
        ),
        "label_contrastive_loss": (lambda z, y, s: label_contrastive_loss(z, y, 0.1), None),
        "CLMLLoss(BCE)": (
            lambda z, y, s: CLMLLoss("BCE", pairwise_weight=0.5)(s, z, y, epoch=1),
            None,
        ),
    }
    for name, (fn, ref_fn) in cases.items():
        Z64 = Z.double().requires_grad_()
        ref = (ref_fn or fn)(Z64, Y.double(), S.double())  # CPU float64
        (gref,) = torch.autograd.grad(ref, Z64)
        modes = ("fp32",) if name == "official route" else ("fp32", "bf16-autocast")
        for mode in modes:
            Zd = Z.to(device).requires_grad_()
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mode != "fp32"):
                out = fn(Zd, Y.to(device), S.to(device))
            (gd,) = torch.autograd.grad(out, Zd)
            ev, eg = rel(out, ref), rel(gd, gref)
            tol = 1e-4 if mode == "fp32" else 5e-3  # bf16 autocast leaves the CLML math in float32
            record(
                f"agree {name} [{mode}] vs CPU float64",
                ev < tol and eg < tol * 10,
                f"value rel {ev:.1e}, grad rel {eg:.1e}",
            )


def check_loss_speed(device: torch.device, N: int, C: int, D: int, repeats: int) -> None:
    g = torch.Generator().manual_seed(1)
    Y = coco_like_labels(N, C, g).to(device)
    Z = torch.randn(N, D, generator=g).relu().to(device)
    routes = {k: ROUTES[k] for k in ("batched", "official")}
    res = interleaved(routes, Z, Y, repeats, device)
    (tb, _), (to, _) = res["batched"], res["official"]
    ok = tb < to if device.type == "cuda" else tb > 0 and to > 0  # tiny dry-run sizes: no verdict
    record(
        f"speed low-rank term N={N} C={C} D={D} on {device.type}",
        ok,
        f"batched {tb:.2f} ms, official route {to:.2f} ms ({to / tb:.1f}x), "
        f"median of {repeats} interleaved",
    )


def check_training(
    device: torch.device, backbone: str, image_size: int, batch: int, steps: int
) -> None:
    try:
        from clml_lib.train.bench import training_throughput
    except ImportError as e:  # the engine is part of the project; its absence is a failure
        record("train throughput", False, f"cannot import clml_lib.train.bench: {e}")
        return
    amp = "bf16" if device.type == "cuda" else "none"
    kw = dict(
        backbone=backbone,
        image_size=image_size,
        batch_size=batch,
        amp=amp,
        steps=steps,
        device=str(device),
    )
    base = training_throughput(use_clml=False, **kw)
    clml = training_throughput(use_clml=True, **kw)
    FACTS["train_images_per_s"] = base
    ratio = clml / base
    ok = ratio >= 0.97 if device.type == "cuda" else ratio > 0
    record(
        f"train {backbone}@{image_size} bs{batch} {amp}",
        ok,
        f"baseline {base:.1f} img/s, +CLML {clml:.1f} img/s ({100 * ratio:.1f}% of baseline, "
        f"target >= 97%)",
    )


def _reference_rate(paths: list[Path], size: int, workers: int, batch: int) -> float:
    """images/s of the PIL reference transforms in ``workers`` DataLoader worker processes."""
    from PIL import Image

    from clml_lib.data.transforms import build_transforms

    tf = build_transforms(train=True, image_size=size)

    class Files(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(paths)

        def __getitem__(self, i: int) -> torch.Tensor:
            with Image.open(paths[i]) as im:
                return tf(im.convert("RGB"))

    loader = torch.utils.data.DataLoader(
        Files(),
        batch_size=batch,
        num_workers=workers,
        worker_init_fn=lambda _: torch.set_num_threads(1),
    )
    t0 = time.perf_counter()
    n = sum(x.shape[0] for x in loader)  # worker start-up included, as in an epoch
    return n / (time.perf_counter() - t0)


def _tensor_rate(paths: list[Path], size: int, device: torch.device, batch: int) -> float:
    """images/s of the tensor pipeline (read, decode, resize, Cutout, RandAugment) on ``device``."""
    from torchvision.io import read_file

    from clml_lib.data.tensor_pipeline import build_train_pipeline

    pipe = build_train_pipeline(size, device=device)
    data = [read_file(str(p)) for p in paths]
    pipe(pipe.decode(data[:batch]))  # warm-up (CUDA context, decoder)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    for s in range(0, len(data), batch):
        x = pipe(pipe.decode(data[s : s + batch]))
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    assert x.shape[1:] == (3, size, size)
    return len(data) / (time.perf_counter() - t0)


def check_input(
    device: torch.device, n_images: int, width: int, height: int, size: int, batch: int
) -> None:
    from clml_lib.data.synthetic import coco_like_jpegs

    workers = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="gpu_check_jpegs_") as tmp:
        paths = coco_like_jpegs(Path(tmp), n_images, width, height)
        ref = _reference_rate(paths, size, workers, batch)
        rates = {f"PIL reference, {workers} workers": ref}
        if device.type == "cuda":
            rates["tensor pipeline, GPU decode + augment"] = _tensor_rate(
                paths, size, device, batch
            )
        else:
            rates["tensor pipeline, CPU (dry run)"] = _tensor_rate(paths, size, device, batch)
    need = FACTS.get("train_images_per_s")
    best = max(rates.values())
    detail = ", ".join(f"{k} {v:.0f} img/s" for k, v in rates.items())
    if device.type != "cuda":  # dry run: the code path ran; the rates mean nothing at tiny sizes
        record(f"input {width}x{height} -> {size}", best > 0, detail)
    elif need is None:
        record(
            f"input {width}x{height} -> {size}",
            False,
            detail + "; no training rate to compare (run 'train')",
        )
    else:
        record(
            f"input {width}x{height} -> {size}",
            best >= need,
            detail + f"; training consumes {need:.0f} img/s",
        )


def check_papermill(device: torch.device, timeout_s: int) -> None:
    out = Path(tempfile.mkdtemp(prefix="gpu_smoke_"))
    from clml_lib.data.synthetic import make_coco_tree

    root = make_coco_tree(out / "coco")
    cmd = [
        sys.executable,
        "-m",
        "papermill",
        str(ROOT / "notebooks" / "reproduce.ipynb"),
        str(out / "smoke.ipynb"),
        "-f",
        str(ROOT / "params" / "smoke.yaml"),
        "-p",
        "data_root",
        str(root),
        "-p",
        "device",
        str(device),
        "-p",
        "out_dir",
        str(out / "run"),
        "-k",
        "python3",
        "--cwd",
        str(ROOT),
        "--execution-timeout",
        str(timeout_s),
        "--no-progress-bar",
    ]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s + 60)
        rc, text = proc.returncode, proc.stderr or proc.stdout
    except subprocess.TimeoutExpired:
        rc, text = -1, f"timed out after {timeout_s + 60} s"
    dt = time.perf_counter() - t0
    metrics = out / "run" / "metrics.json"
    ok = rc == 0 and metrics.exists()
    detail = f"{dt:.0f} s, exit {rc}"
    if ok:
        summary = json.loads(metrics.read_text())["summary"]
        detail += f", test mAP {summary['test_mAP']:.2f}"
    else:
        detail += " | " + text[-400:].replace("\n", " ").replace("|", "/")
    record("papermill smoke preset", ok, detail)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--skip", nargs="*", default=[], choices=CHECKS)
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("CUDA is not available; run with --device cpu for a dry run", file=sys.stderr)
        return 2
    # a kill by the outer time limit (gpu_check.sh) still prints the table of what ran
    signal.signal(
        signal.SIGTERM,
        lambda *_: (record("time limit", False, "killed by SIGTERM"), print_table(), os._exit(1)),
    )
    gpu = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if gpu else "cpu (dry run: tiny sizes)"
    print(f"device {name}, torch {torch.__version__}, {os.cpu_count()} CPUs", flush=True)
    if not gpu:
        torch.set_num_threads(min(2, torch.get_num_threads()))
    t0 = time.perf_counter()
    todo = [c for c in CHECKS if c not in args.skip]
    for check in todo:
        ts = time.perf_counter()
        try:
            if check == "agree":
                check_loss_agreement(device, *((64, 80, 2048) if gpu else (16, 10, 64)))
            elif check == "speed":
                check_loss_speed(device, *((64, 80, 2048, 15) if gpu else (16, 10, 64, 3)))
            elif check == "train":
                if gpu:
                    check_training(device, "resnet101", 448, 64, 15)
                else:
                    check_training(device, "resnet18", 64, 8, 2)
            elif check == "input":
                if gpu:
                    check_input(device, 512, 640, 480, 448, 64)
                else:
                    check_input(device, 8, 96, 72, 48, 4)
            elif check == "papermill":
                check_papermill(device, 240)
        except Exception as e:  # one broken check must not hide the others: it is a FAIL row
            record(check, False, f"{type(e).__name__}: {str(e)[:300]}".replace("|", "/"))
        print(f"  ({check}: {time.perf_counter() - ts:.0f} s)", flush=True)
    print(f"total {time.perf_counter() - t0:.0f} s")
    print_table()
    return 0 if RESULTS and all(r == "PASS" for _, r, _ in RESULTS) else 1


if __name__ == "__main__":
    sys.exit(main())
