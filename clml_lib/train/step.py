"""One training step, the single implementation used by the engine and the throughput benchmark::

    logits, features = model(x)                      # under autocast (bf16 / fp16) if amp != 'none'
    [logits, features = gather(logits), gather(features)]      # DDP: the global CLML batch
    parts = criterion.forward_parts(logits.float(), features, observed, epoch)  # float32 loss
    optimizer.zero_grad(); scaler.scale(parts.total).backward(); scaler.step(optimizer)
    scaler.update(); scheduler.step(); ema.update(model)

:func:`train_step` is that sequence; the engine calls it once per batch.
"""

from __future__ import annotations

import warnings
from contextlib import nullcontext
from typing import Callable

import torch
import torch.nn as nn

from ..losses import CLMLLoss
from ..losses.clml import LossParts
from .state import TrainState


#: Mixed-precision modes: ``amp`` name -> autocast dtype (None: full precision).
AMP_DTYPES: dict[str, torch.dtype | None] = {"none": None, "bf16": torch.bfloat16,
                                             "fp16": torch.float16}


def autocast(amp: str, device: torch.device):
    """The forward's autocast context: bf16 / fp16 for ``amp='bf16' | 'fp16'``, none for 'none'
    (:data:`AMP_DTYPES`)."""
    dtype = AMP_DTYPES[amp]
    if dtype is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def train_step(
    state: TrainState,
    criterion: CLMLLoss,
    x: torch.Tensor,
    observed: torch.Tensor,
    epoch: int,
    *,
    amp: str = "none",
    model: nn.Module | None = None,
    gather: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> LossParts:
    """Forward, loss, backward, optimiser / schedule / EMA update on one batch (module doc).

    Args:
        state: the run's :class:`TrainState` (updated in place).
        criterion: the loss; $\\mathcal L = \\mathcal L_{base} + \\mathcal L_{CLML}$.
        x: images ``(n, 3, S, S)`` on the model's device.
        observed: observed labels $\\mathbf y$ ``(N, C)``: ``N = n``, or the global batch when
            ``gather`` is given (the caller gathers the labels, which need no gradient).
        epoch: 0-based epoch $e$ (label correction starts at ``start_epoch``).
        amp: ``'none' | 'bf16' | 'fp16'``.
        model: the module to call (a DDP wrapper of ``state.model``); default ``state.model``.
        gather: differentiable all-gather applied to the logits ``(n, C)`` and the features
            ``(n, D)`` (DDP with the global CLML batch); None on one process.

    Returns:
        :class:`~clml_lib.losses.clml.LossParts` of the batch (``total``, ``base``, ``low_rank``,
        ``pairwise``, ``mined`` (N, C) bool).

    Raises:
        ValueError: from the loss's input checks (e.g. non-finite logits after a divergence);
            the engine adds the epoch, step and learning rate to the message.
    """
    net = state.model if model is None else model
    with autocast(amp, x.device):
        logits, feats = net(x)  # (n, C), (n, D)
    logits = logits.float()
    if gather is not None:
        logits, feats = gather(logits), gather(feats)  # (N, C), (N, D)
    parts = criterion.forward_parts(logits, feats, observed, epoch)
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(parts.total).backward()
    state.scaler.step(state.optimizer)
    state.scaler.update()
    if state.scaler.is_enabled():  # fp16: GradScaler skips overflowing steps (the first few); the
        with warnings.catch_warnings():  # schedule still advances, as in the reference
            warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
            state.scheduler.step()
    else:
        state.scheduler.step()
    state.ema.update(net)
    return parts
