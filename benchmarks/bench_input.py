"""Throughput of the 448 px training input pipeline: the PIL reference against the tensor pipeline.

Generates COCO-like JPEGs (640 x 480 by default, varied content: gradients, shapes, texture and
noise, quality 90) in a temporary folder, then measures images per second on ONE core (torch and
every BLAS/OpenMP pool pinned to one thread) of

  reference  clml_lib.data.transforms.build_transforms(train=True): PIL open + decode,
             squash-resize 448, Cutout 0.5, RandAugment, ToTensor, one image at a time (what each
             DataLoader worker does today)
  tensor     clml_lib.data.tensor_pipeline.build_train_pipeline: torchvision.io.decode_jpeg,
             resize, then Cutout and RandAugment batched on uint8 tensors
  tensor-cuda  the same with decoding and augmentation on the GPU (only on a CUDA machine)

with the time split into decode / resize / augment for the tensor pipeline, and the number of
CPU cores each needs to feed a target rate (default 500 images/s; one core per DataLoader worker,
the cores scale linearly because images are independent). The routes are interleaved batch by batch.

    python benchmarks/bench_input.py [--images 64] [--batch 32] [--rounds 3] [--target 500]
        [--size 448] [--device cuda]
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image

from clml_lib.data.synthetic import coco_like_jpegs


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_reference(files: list[bytes], size: int) -> dict[str, float]:
    """Wall and CPU seconds for the reference transforms on every file (PIL decode included)."""
    from clml_lib.data.transforms import build_transforms

    tf = build_transforms(train=True, image_size=size)
    c0, t0 = time.process_time(), time.perf_counter()
    for data in files:
        with Image.open(io.BytesIO(data)) as im:
            x = tf(im.convert("RGB"))
    assert x.shape == (3, size, size)
    return {"total": time.perf_counter() - t0, "cpu": time.process_time() - c0}


def run_tensor(
    files: list[torch.Tensor], size: int, batch: int, device: torch.device
) -> dict[str, float]:
    """Wall seconds for the tensor pipeline on every file, split into decode / resize / augment,
    and the process CPU seconds ("cpu")."""
    from clml_lib.data.tensor_pipeline import build_train_pipeline

    pipe = build_train_pipeline(size, device=device)
    parts = {"decode": 0.0, "resize": 0.0, "augment": 0.0}
    c0 = time.process_time()
    for s in range(0, len(files), batch):
        chunk = files[s : s + batch]
        _sync(device)
        t0 = time.perf_counter()
        imgs = pipe.decode(chunk)
        _sync(device)
        t1 = time.perf_counter()
        x = pipe.resize(imgs)
        _sync(device)
        t2 = time.perf_counter()
        x = pipe.augment(x).float().div_(255.0)
        _sync(device)
        t3 = time.perf_counter()
        parts["decode"] += t1 - t0
        parts["resize"] += t2 - t1
        parts["augment"] += t3 - t2
    assert x.shape[1:] == (3, size, size) and x.dtype == torch.float32
    parts["total"] = sum(parts.values())
    parts["cpu"] = time.process_time() - c0
    return parts


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds; medians are reported"
    )
    ap.add_argument("--size", type=int, default=448)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--target", type=float, default=500.0, help="images/s to feed")
    ap.add_argument(
        "--device",
        default="cuda" if torch.cuda.is_available() else "cpu",
        help="device of the extra tensor-cuda route (cpu: the route is skipped)",
    )
    ap.add_argument(
        "--folder", default="", help="where to write the JPEGs (default: a temp folder)"
    )
    args = ap.parse_args(argv)
    if min(args.images, args.batch, args.rounds, args.size) < 1:
        ap.error("--images, --batch, --rounds and --size must be >= 1")
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    _limiter = threadpool_limits(limits=1)
    from torchvision.io import read_file

    tmp = tempfile.TemporaryDirectory(prefix="bench_input_") if not args.folder else None
    folder = Path(args.folder or tmp.name)
    paths = coco_like_jpegs(folder, args.images, args.width, args.height)
    raw = [p.read_bytes() for p in paths]
    tensors = [read_file(str(p)) for p in paths]
    mean_kb = statistics.mean(len(r) for r in raw) / 1024
    device = torch.device(args.device)
    routes = ["reference", "tensor"] + (["tensor-cuda"] if device.type == "cuda" else [])
    load0 = os.getloadavg()[0]
    print(
        f"input pipeline, {args.images} JPEGs {args.width}x{args.height} "
        f"(mean {mean_kb:.0f} KiB) -> {args.size}x{args.size}, "
        "train augmentation (Cutout 0.5, RandAugment 2 ops m=9); one thread; "
        f"torch {torch.__version__}; {os.cpu_count()} CPUs, load average {load0:.2f}"
    )
    run_tensor(tensors[: args.batch], args.size, args.batch, torch.device("cpu"))  # warm-up
    if device.type == "cuda":
        run_tensor(tensors[: args.batch], args.size, args.batch, device)
    runs: dict[str, list[dict]] = {r: [] for r in routes}
    for _ in range(args.rounds):  # interleaved: every route once per round
        runs["reference"].append(run_reference(raw, args.size))
        runs["tensor"].append(run_tensor(tensors, args.size, args.batch, torch.device("cpu")))
        if device.type == "cuda":
            runs["tensor-cuda"].append(run_tensor(tensors, args.size, args.batch, device))
    target = int(args.target)
    print(
        f"\n{'pipeline':<12} {'img/s wall':>10} {'img/s per core (CPU time)':>26} "
        f"{'cores for ' + str(target) + '/s':>16}  split of the wall time per image"
    )
    result = {}
    for r in routes:
        med = {k: statistics.median(p[k] for p in runs[r]) for k in runs[r][0]}
        ips_wall = args.images / med["total"]
        ips_cpu = args.images / med["cpu"]
        cores = args.target / ips_cpu
        if r == "reference":
            split = "PIL decode + resize + Cutout + RandAugment + ToTensor, one image at a time"
        else:
            split = ", ".join(
                f"{k} {1000 * med[k] / args.images:.2f} ms" for k in ("decode", "resize", "augment")
            )
        if r == "tensor-cuda":
            split += " (GPU; the CPU time is the host's share)"
        print(f"{r:<12} {ips_wall:>10.1f} {ips_cpu:>26.1f} {cores:>16.1f}  {split}")
        result[r] = {
            "images_per_s_wall": ips_wall,
            "images_per_s_per_core": ips_cpu,
            "cores_for_target": cores,
        }
    print(
        f"load average at end {os.getloadavg()[0]:.2f}. "
        "Per core = images / process CPU seconds with "
        "one thread (robust when other processes share the cores; wall-clock rates drop with the "
        "load); cores = target / per-core rate (one DataLoader worker per core)."
    )
    if tmp is not None:
        tmp.cleanup()
    return result


if __name__ == "__main__":
    main()
