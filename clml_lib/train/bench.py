"""Training-throughput benchmark on synthetic tensors (no data loading): images/s of full training
steps (forward under autocast, CLMLLoss, GradScaler backward, Adam step, OneCycle step, EMA update),
through :func:`~clml_lib.train.step.train_step`, the step the engine runs.
"""

from __future__ import annotations

import time

import torch

from ..checks import check_choice
from ..losses import CLMLLoss
from ..models import build_model
from .state import TrainState
from .step import AMP_DTYPES, train_step


def training_throughput(
    backbone: str = "resnet101",
    image_size: int = 448,
    batch_size: int = 64,
    amp: str = "bf16",
    use_clml: bool = True,
    steps: int = 20,
    device: str = "cuda",
    warmup: int = 3,
    num_classes: int = 80,
    seed: int = 0,
) -> float:
    """Images per second of training steps on random images and COCO-like random labels.

    Args:
        backbone, image_size, batch_size: the model and the synthetic batch (N, 3, S, S).
        amp: ``'none' | 'bf16' | 'fp16'`` (fp16 uses GradScaler).
        use_clml: add the CLML low-rank term with label correction (``CLMLLoss`` defaults, BCE).
        steps: timed steps, after ``warmup`` untimed ones (cuDNN autotuning, allocator warm-up).
        device: ``'cuda'``, ``'cuda:N'`` or ``'cpu'``.

    Returns:
        images / second over the timed steps (CUDA synchronised before and after timing).

    Raises:
        ValueError: bad amp / steps / batch size, or CUDA requested but missing.
    """
    check_choice("amp", amp, AMP_DTYPES)
    if steps < 1 or warmup < 0 or batch_size < 1:
        raise ValueError(f"need steps >= 1, warmup >= 0, batch_size >= 1; got {steps}, {warmup}, "
                         f"{batch_size}")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available")
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = build_model(backbone, num_classes).to(dev).train()
    state = TrainState.create(model, lr=1e-4, weight_decay=1e-4, ema_decay=0.9997, epochs=1,
                              steps_per_epoch=steps + warmup + 1, amp=amp)
    criterion = CLMLLoss("BCE", use_clml=use_clml, use_correction=use_clml, start_epoch=0)
    x = torch.rand(batch_size, 3, image_size, image_size, generator=g).to(dev)
    freq = torch.full((num_classes,), 0.03)
    freq[0] = 0.45  # COCO-like: one frequent label ("person"), the rest rare
    y = (torch.rand(batch_size, num_classes, generator=g) < freq).float().to(dev)

    def step() -> None:
        train_step(state, criterion, x, y, epoch=1, amp=amp)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(warmup):
        step()
    sync()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return steps * batch_size / (time.perf_counter() - t0)
