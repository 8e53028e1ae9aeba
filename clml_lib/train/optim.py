"""Optimiser and learning-rate schedule of the reference recipe (docs/method.md section 3.2).

* Adam with weight decay applied through parameter groups: every parameter with more than one
  dimension (conv / linear weights) gets ``weight_decay``; biases and other 1-D parameters
  (BatchNorm scales and shifts) get none. Adam's own ``weight_decay`` is the *coupled* L2 term added
  to the gradient, exactly as the reference (``torch.optim.Adam`` with per-group decay, the ASL
  ``add_weight_decay`` helper); it is not AdamW's decoupled decay.
* ``OneCycleLR(max_lr=lr, epochs, steps_per_epoch, pct_start=0.2)``, stepped once per batch. With
  the reference's 80-epoch schedule and ``stop_epoch=25`` training ends before the annealing phase.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..checks import Range

#: Peak learning rate: > 0.
LR_RANGE = Range(0.0, None, lo_open=True)
#: Coupled L2 weight decay: >= 0.
WEIGHT_DECAY_RANGE = Range(0.0, None)
#: Share of the OneCycle schedule spent warming up.
PCT_START_RANGE = Range(0.0, 1.0, lo_open=True, hi_open=True)


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Split trainable parameters into a decayed group (ndim > 1) and an undecayed one (ndim <= 1).

    Returns:
        ``[{'params': no_decay, 'weight_decay': 0.0}, {'params': decay, 'weight_decay': wd}]``.

    Raises:
        ValueError: negative weight decay, or a model without trainable parameters.
    """
    weight_decay = WEIGHT_DECAY_RANGE.check("weight_decay", weight_decay)
    decay, no_decay = [], []
    for _, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (no_decay if p.ndim <= 1 else decay).append(p)
    if not decay and not no_decay:
        raise ValueError("the model has no trainable parameters")
    return [{"params": no_decay, "weight_decay": 0.0},
            {"params": decay, "weight_decay": weight_decay}]


def build_optimizer(model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Adam:
    """Adam(lr) over :func:`parameter_groups` (coupled L2 decay on weights only)."""
    lr = LR_RANGE.check("lr", lr)
    return torch.optim.Adam(parameter_groups(model, weight_decay), lr=lr, weight_decay=0.0)


def build_scheduler(
    optimizer: torch.optim.Optimizer, lr: float, epochs: int, steps_per_epoch: int,
    pct_start: float = 0.2,
) -> torch.optim.lr_scheduler.OneCycleLR:
    """OneCycleLR as the reference: max_lr = lr, cosine warm-up over ``pct_start`` of the schedule.

    Starts at lr / 25 (OneCycle's default ``div_factor``), ends at lr / 25e4 after ``epochs``.

    torch places the end of the warm-up at step ``pct_start * total - 1``; when that is exactly 0
    (``epochs * steps_per_epoch = 5`` at ``pct_start = 0.2``) its first step divides 0 by 0. That
    schedule is taken as its limit (a warm-up that ends at step 0: the first step is at ``lr``),
    by moving ``pct_start`` down by one unit in the last place, so every step count trains.

    Raises:
        ValueError: epochs or steps_per_epoch < 1, ``pct_start`` outside (0, 1).
    """
    if epochs < 1 or steps_per_epoch < 1:
        raise ValueError(f"need epochs >= 1 and steps_per_epoch >= 1, got {epochs}, "
                         f"{steps_per_epoch}")
    pct_start = PCT_START_RANGE.check("pct_start", pct_start)
    if float(pct_start * epochs * steps_per_epoch) - 1 == 0:
        pct_start = math.nextafter(pct_start, 0.0)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=lr, epochs=epochs, steps_per_epoch=steps_per_epoch, pct_start=pct_start
    )
