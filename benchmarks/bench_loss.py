"""Forward+backward time of the low-rank CLML term: the batched route against the official route.

Routes (clml_lib.losses.timing.ROUTES; all compute (1/N)(sum_k max(delta, ||Z_k||_*) - ||Z||_*)
and its gradient):
  batched    clml_lib.losses.low_rank_loss: one float64 N x N Gram, one batched eigh per size
             group (closed form for single-member labels), one N x N by N x D product
  official   clml_lib.losses.official.official_route_low_rank: the anchor as it runs, features to
             NumPy float32, one float32 SVD per label present plus one for the batch, the
             subgradient U_r V_r^T written by hand, the gradient back to torch
  reference  clml_lib.losses.low_rank_loss_reference: one float64 torch SVD per label (optional)
  naive      torch.linalg.svdvals per label with plain autograd (optional)

Timing: every route runs with the same pinned thread count (torch intra-op threads and every
BLAS/OpenMP pool that threadpoolctl finds, NumPy's included), the routes are interleaved
(A B C A B C ...) so that machine noise hits all of them alike, and the table gives medians of
wall time and of CPU time (thread time with one thread: robust when other processes share the
cores) with the ratios official / batched. Label frequencies are COCO-like: label 0 in ~45 % of
the images (COCO's "person"), the others rare (1-8 %). The load average is printed with the table.

Then the cost of the term as a fraction of a training step (forward, BCE, backward, Adam) of
(a) the teaching model (tiny_cnn, 32 px, batch 64, C = 12, D = 96) and (b) ResNet-101 at 448 px
(C = 80, D = 2048), on the same device. On a CPU a ResNet-101 448 px step at batch 64 takes minutes,
so a smaller batch is timed and scaled linearly to 64 (the output says so).

    python benchmarks/bench_loss.py [--device cpu|cuda] [--threads 1] [--repeats 15]
        [--routes batched official reference naive] [--resnet-batch 2] [--no-steps]
Target: batched >= 10x faster than the official route at N=64, C=80, D=2048 on CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from clml_lib.losses.timing import (
    ROUTES,
    coco_like_labels,
    interleaved,
    synchronize,
    time_route,
)
from clml_lib.threads import pin_threads


def step_seconds(
    backbone: str,
    image_size: int,
    batch: int,
    num_classes: int,
    device: torch.device,
    steps: int = 2,
) -> tuple[float, int]:
    """Median seconds of a plain training step (forward, BCE, backward, Adam) on random tensors,
    after one warm-up step; returns (seconds, feature dim D)."""
    from clml_lib.models import build_model

    torch.manual_seed(0)
    model = build_model(backbone, num_classes).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    x = torch.rand(batch, 3, image_size, image_size, device=device)  # (B, 3, S, S)
    y = (torch.rand(batch, num_classes, device=device) < 0.1).float()  # (B, C)
    times = []
    D = 0
    for i in range(steps + 1):
        synchronize(device)
        t0 = time.perf_counter()
        logits, feats = model(x)  # (B, C), (B, D)
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="sum")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        synchronize(device)
        D = feats.shape[1]
        if i > 0:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), D


def loss_ms(N: int, C: int, D: int, device: torch.device, repeats: int) -> float:
    """Median wall ms of the batched term at (N, C, D), COCO-like labels."""
    g = torch.Generator().manual_seed(2)
    Y = coco_like_labels(N, C, g).to(device)
    Z = torch.randn(N, D, generator=g).relu().to(device)
    return time_route(ROUTES["batched"], Z, Y, repeats, device)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=1, help="threads for every route (default 1)")
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--sizes", type=int, nargs="+", default=[16, 64, 128])
    ap.add_argument("--classes", type=int, nargs="+", default=[20, 80])
    ap.add_argument(
        "--routes", nargs="+", default=["batched", "official", "reference"], choices=list(ROUTES)
    )
    ap.add_argument(
        "--resnet-batch", type=int, default=2, help="batch timed for the ResNet-101 step"
    )
    ap.add_argument("--no-steps", action="store_true", help="skip the training-step fractions")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.repeats < 1:
        ap.error(f"--threads and --repeats must be >= 1, got {args.threads}, {args.repeats}")
    if "batched" not in args.routes:
        ap.error("--routes must include 'batched' (the ratios are relative to it)")
    device = torch.device(args.device)
    pools = pin_threads(args.threads, environment=False, blas_pools=True)
    routes = {k: ROUTES[k] for k in args.routes}
    g = torch.Generator().manual_seed(0)
    load0 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    cpu_note = "process CPU time" + (
        " (= thread time at 1 thread)" if args.threads == 1 else " (all threads, spinning included)"
    )
    print(
        f"low-rank CLML term, forward+backward; D={args.dim}, device={device}, "
        f"torch {torch.__version__}, "
        f"{os.cpu_count()} CPUs, threads pinned: {pools}"
    )
    print(
        f"routes interleaved ({' '.join(routes)}) x {args.repeats} after 2 warm-up rounds; "
        f"medians in ms; "
        f"wall and {cpu_note}; load average at start {load0:.2f}"
    )
    cols = [f"{k} wall" for k in routes] + [f"{k} cpu" for k in routes]
    ratio_cols = [f"{k}/batched" for k in routes if k != "batched"]
    header = (
        f"{'N':>4} {'C':>3} {'present':>7} "
        + " ".join(f"{c:>15}" for c in cols)
        + " "
        + " ".join(f"{c + ' wall':>19} {c + ' cpu':>18}" for c in ratio_cols)
    )
    print(header)
    print("-" * len(header))
    rows = []
    for N in args.sizes:
        for C in args.classes:
            Y = coco_like_labels(N, C, g).to(device)
            Z = torch.randn(N, args.dim, generator=g).relu().to(device)  # post-ReLU features
            res = interleaved(routes, Z, Y, args.repeats, device)
            present = int((Y.sum(0) > 0).sum())
            row = dict(N=N, C=C, present=present, **{k: v for k, v in res.items()})
            rows.append(row)
            vals = [res[k][0] for k in routes] + [res[k][1] for k in routes]
            ratios = []
            for k in routes:
                if k != "batched":
                    ratios += [res[k][0] / res["batched"][0], res[k][1] / res["batched"][1]]
            print(
                f"{N:>4} {C:>3} {present:>7} "
                + " ".join(f"{v:>15.2f}" for v in vals)
                + " "
                + " ".join(f"{r:>18.1f}x" for r in ratios)
            )
    load1 = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"load average at end {load1:.2f} "
        "(a load above the CPU count means other processes shared the cores)"
    )
    out = {"rows": rows}
    if not args.no_steps:
        out["fractions"] = step_fractions(device, args.resnet_batch, args.repeats)
    return out


def step_fractions(device: torch.device, resnet_batch: int, repeats: int) -> dict:
    """Print and return the batched term's share of a training step (teaching model, ResNet-101)."""
    print(
        "\ncost of the batched term as a fraction of a training step (forward, BCE, backward, Adam)"
    )
    t_teach, d_teach = step_seconds("tiny_cnn", 32, 64, 12, device)
    l_teach = loss_ms(64, 12, d_teach, device, repeats) / 1000.0
    print(
        f"  teaching model tiny_cnn 32 px batch 64 (C=12, D={d_teach}): "
        f"step {1000 * t_teach:.1f} ms, "
        f"term {1000 * l_teach:.2f} ms = {100 * l_teach / t_teach:.1f} % of the step"
    )
    t_res, d_res = step_seconds("resnet101", 448, resnet_batch, 80, device)
    scaled = t_res * 64 / resnet_batch
    l_res = loss_ms(64, 80, d_res, device, repeats) / 1000.0
    how = (
        "measured"
        if resnet_batch == 64
        else f"batch {resnet_batch} measured ({t_res:.2f} s), scaled linearly to 64"
    )
    print(
        f"  ResNet-101 448 px batch 64 (C=80, D={d_res}): step {scaled:.1f} s ({how}), "
        f"term {1000 * l_res:.2f} ms = {100 * l_res / scaled:.3f} % of the step"
    )
    return {"teaching": l_teach / t_teach, "resnet101_448": l_res / scaled}


if __name__ == "__main__":
    main()
