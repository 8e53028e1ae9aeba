"""Timing of the low-rank CLML term's routes, shared by ``benchmarks/bench_loss.py`` and the GPU
check (``scripts/gpu_check.py``).

* :data:`ROUTES`: route name -> ``callable(features (N, D), labels (N, C)) -> 0-dim loss``: the
  batched term (:func:`~clml_lib.losses.low_rank_loss`), the official route
  (:func:`~clml_lib.losses.official.official_route_low_rank`), the float64 reference
  (:func:`~clml_lib.losses.low_rank_loss_reference`) and :func:`naive_autograd`.
* :func:`coco_like_labels`: COCO-like label frequencies (label 0 in ~45 % of the images).
* :func:`time_once`, :func:`time_route`, :func:`interleaved`: forward+backward timings (wall and
  CPU time), the routes interleaved so that machine noise hits them alike.
"""

from __future__ import annotations

import statistics
import time

import torch

from .nuclear import low_rank_loss, low_rank_loss_reference
from .official import official_route_low_rank


def naive_autograd(
    features: torch.Tensor, labels: torch.Tensor, delta: float = 1.0
) -> torch.Tensor:
    """Per-label svdvals with autograd (what a first reimplementation would write)."""
    N = features.shape[0]
    total = features.new_zeros(())
    for k in range(labels.shape[1]):
        Zk = features[labels[:, k] == 1]  # (n_k, D)
        if Zk.shape[0] == 0:
            total = total + delta
            continue
        nk = torch.linalg.svdvals(Zk).sum()
        total = total + torch.clamp(nk, min=delta)
    return (total - torch.linalg.svdvals(features).sum()) / N


#: route -> callable(features (N, D), labels (N, C)) -> 0-dim loss (inputs validated outside)
ROUTES = {
    "batched": lambda z, y: low_rank_loss(z, y, check_inputs=False),
    "official": lambda z, y: official_route_low_rank(z, y, check_inputs=False),
    "reference": low_rank_loss_reference,
    "naive": naive_autograd,
}


def coco_like_labels(N: int, C: int, generator: torch.Generator) -> torch.Tensor:
    """(N, C) float 0/1 labels: label 0 in ~45 % of the rows, the others in 1-8 %, >= 1 per row."""
    freq = torch.empty(C).uniform_(0.01, 0.08, generator=generator)  # (C,)
    freq[0] = 0.45
    Y = (torch.rand(N, C, generator=generator) < freq).float()  # (N, C)
    empty = Y.sum(1) == 0
    Y[empty, torch.randint(0, C, (int(empty.sum()),), generator=generator)] = (
        1.0  # >= 1 label per image
    )
    return Y


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_once(fn, Z: torch.Tensor, Y: torch.Tensor, device: torch.device) -> tuple[float, float]:
    """One forward+backward of ``fn``: (wall seconds, CPU seconds of this process)."""
    Zr = Z.detach().clone().requires_grad_(True)
    synchronize(device)
    c0, t0 = time.process_time(), time.perf_counter()
    fn(Zr, Y).backward()
    synchronize(device)
    return time.perf_counter() - t0, time.process_time() - c0


def time_route(fn, Z: torch.Tensor, Y: torch.Tensor, repeats: int, device: torch.device) -> float:
    """Median wall milliseconds of ``repeats`` forward+backward calls after one warm-up call."""
    time_once(fn, Z, Y, device)
    return 1000.0 * statistics.median(time_once(fn, Z, Y, device)[0] for _ in range(repeats))


def interleaved(
    routes: dict,
    Z: torch.Tensor,
    Y: torch.Tensor,
    repeats: int,
    device: torch.device,
    warmup: int = 2,
) -> dict[str, tuple[float, float]]:
    """Run the routes A B C A B C ... ``warmup + repeats`` times; median (wall ms, CPU ms) each."""
    wall: dict[str, list[float]] = {k: [] for k in routes}
    cpu: dict[str, list[float]] = {k: [] for k in routes}
    for r in range(warmup + repeats):
        for name, fn in routes.items():
            w, c = time_once(fn, Z, Y, device)
            if r >= warmup:
                wall[name].append(1000.0 * w)
                cpu[name].append(1000.0 * c)
    return {k: (statistics.median(wall[k]), statistics.median(cpu[k])) for k in routes}


__all__ = ["ROUTES", "coco_like_labels", "interleaved", "naive_autograd", "synchronize",
           "time_once", "time_route"]
