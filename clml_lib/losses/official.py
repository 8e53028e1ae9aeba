r"""The official code's CLML gradient path, rebuilt for the audit (paper.md 5.5).

The official ``CLLoss`` is a ``torch.autograd.Function`` whose ``backward`` returns the
gradient it precomputed in ``forward`` and **ignores** ``grad_output``. Under
``GradScaler``, ``scaler.scale(loss).backward()`` multiplies every *other* gradient by the
loss scale $S$ and ``scaler.step`` later divides all of them by $S$, so the CLML gradient
ends up divided by $S$ ($S=2^{16}$ at the start). Any outer weight (``0.5 * loss``) is ignored
the same way.

:class:`OfficialStyleLowRank` reproduces exactly that behaviour with our own per-label
subgradient (same value and same ``dX`` as :func:`clml_lib.losses.low_rank_loss_reference`),
so that the effect can be measured (notebook 06, ``tests/test_losses_amp.py``) instead of
argued about. Do not train with it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .nuclear import low_rank_loss_reference


class OfficialStyleLowRank(torch.autograd.Function):
    """``forward(ctx, features (N, D), labels (N, C), lambda_, delta) -> 0-dim loss``;
    ``backward`` returns the stored $\\lambda\\,\\partial\\mathcal L/\\partial\\mathbf Z$ and ignores
    ``grad_output`` (the defect)."""

    @staticmethod
    def forward(ctx, features: Tensor, labels: Tensor, lambda_: float = 1.0, delta: float = 1.0) -> Tensor:
        with torch.enable_grad():
            Z = features.detach().requires_grad_(True)  # (N, D)
            value = float(lambda_) * low_rank_loss_reference(Z, labels, delta)
            (dX,) = torch.autograd.grad(value, Z)  # (N, D)
        ctx.save_for_backward(dX)
        return value.detach()

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # noqa: ARG004 - ignoring grad_output IS the defect
        (dX,) = ctx.saved_tensors
        return dX, None, None, None


def official_style_low_rank(features: Tensor, labels: Tensor, lambda_: float = 1.0, delta: float = 1.0) -> Tensor:
    """Apply :class:`OfficialStyleLowRank` (audit only: its gradient ignores ``grad_output``)."""
    return OfficialStyleLowRank.apply(features, labels, lambda_, delta)
