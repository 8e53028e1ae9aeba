r"""The official code's CLML gradient path, rebuilt for the audit (docs/method.md §5.5).

The official ``CLLoss`` is a ``torch.autograd.Function`` whose ``backward`` returns the
gradient it precomputed in ``forward`` and **ignores** ``grad_output``. Under
``GradScaler``, ``scaler.scale(loss).backward()`` multiplies every *other* gradient by the
loss scale $S$ and ``scaler.step`` later divides all of them by $S$, so the CLML gradient
ends up divided by $S$ ($S=2^{16}$ at the start). Any outer weight (``0.5 * loss``) is ignored
the same way.

:class:`OfficialStyleLowRank` reproduces exactly that behaviour with our own per-label
subgradient (same value and same ``dX`` as :func:`clml_lib.losses.low_rank_loss_reference`),
so that the effect can be measured (notebook 06, ``tests/test_losses_base_clml.py``) instead of
argued about. Do not train with it.

:func:`official_numpy_value_grad` / :func:`official_route_low_rank` run the official *route*
as it runs: the features go to NumPy as float32, one float32 SVD per label present plus one
for the batch, the subgradient $\mathbf U_r\mathbf V_r^\top$ written by hand, the gradient
back to torch. It is the speed anchor of ``benchmarks/bench_loss.py`` and of the GPU check.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from .checks import check_features_labels
from .nuclear import SVD_EPS, low_rank_loss_reference


class OfficialStyleLowRank(torch.autograd.Function):
    """``forward(ctx, features (N, D), labels (N, C), lambda_, delta) -> 0-dim loss``;
    ``backward`` returns the stored $\\lambda\\,\\partial\\mathcal L/\\partial\\mathbf Z$ and
    ignores ``grad_output`` (the defect)."""

    @staticmethod
    def forward(
        ctx, features: Tensor, labels: Tensor, lambda_: float = 1.0, delta: float = 1.0
    ) -> Tensor:
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


def official_style_low_rank(
    features: Tensor, labels: Tensor, lambda_: float = 1.0, delta: float = 1.0
) -> Tensor:
    """Apply :class:`OfficialStyleLowRank` (audit only: its gradient ignores ``grad_output``)."""
    return OfficialStyleLowRank.apply(features, labels, lambda_, delta)


def official_numpy_value_grad(
    features: Tensor,
    labels: Tensor,
    lambda_: float = 1.0,
    delta: float = 1.0,
    eps: float = SVD_EPS,
    *,
    check_inputs: bool = True,
) -> tuple[float, Tensor]:
    r"""The official route as it runs, for timing and agreement checks (our own code).

    The features go to the host as a float32 NumPy array; each label present in the batch
    gets one float32 ``numpy.linalg.svd`` of $\mathbf Z_k$, the whole batch one more; the
    subgradient $\mathbf U_r\mathbf V_r^\top$ (singular values above ``eps``) of every label above
    the floor is scattered into the gradient rows by hand; the gradient comes back as a tensor.

    Args:
        features: $\mathbf Z$, shape ``(N, D)`` (any float dtype, any device).
        labels: $\hat{\mathbf Y}$, shape ``(N, C)`` in {0, 1}.
        lambda_, delta, eps: $\lambda$, the floor $\Delta$, the singular-value cut-off.
        check_inputs: validate the tensors first (the official code does not; the benchmark
            times both routes without validation).

    Returns:
        ``(value, dX)``: $\lambda\mathcal L_{\text{low-rank}}$ as a Python float and
        $\lambda\,\partial\mathcal L/\partial\mathbf Z$ ``(N, D)`` float32 on the features' device.

    Raises:
        ValueError: bad shapes, non-finite features, labels outside {0, 1}, ``delta < 0``.
    """
    if check_inputs:
        check_features_labels(features, labels)
    if float(delta) < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    X = features.detach().to("cpu", torch.float32).numpy()  # (N, D) host round trip
    Y = labels.detach().to("cpu").numpy() == 1  # (N, C)
    N = X.shape[0]
    dX = np.zeros_like(X)  # (N, D)
    total = 0.0
    for k in range(Y.shape[1]):
        rows = np.flatnonzero(Y[:, k])
        if rows.size == 0:
            total += float(delta)  # absent label: the floor, no gradient
            continue
        U, S, Vt = np.linalg.svd(X[rows], full_matrices=False)  # float32: (n_k, r) (r,) (r, D)
        norm = float(S.sum())
        if norm > float(delta):
            keep = S > eps
            dX[rows] += U[:, keep] @ Vt[keep]  # U_r V_r^T scattered into the label's rows
            total += norm
        else:
            total += float(delta)
    U, S, Vt = np.linalg.svd(X, full_matrices=False)  # the global term
    keep = S > eps
    dX -= U[:, keep] @ Vt[keep]
    total -= float(S.sum())
    scale = float(lambda_) / N
    return total * scale, torch.from_numpy(dX * scale).to(features.device)


class OfficialRouteLowRank(torch.autograd.Function):
    """``forward(ctx, features (N, D), labels (N, C), lambda_, delta) -> 0-dim loss`` through
    :func:`official_numpy_value_grad`; ``backward`` returns the stored gradient and, like the
    official code, ignores ``grad_output``. For the benchmark and the audit only."""

    @staticmethod
    def forward(
        ctx,
        features: Tensor,
        labels: Tensor,
        lambda_: float = 1.0,
        delta: float = 1.0,
        check_inputs: bool = True,
    ) -> Tensor:
        value, dX = official_numpy_value_grad(
            features, labels, lambda_, delta, check_inputs=check_inputs
        )
        ctx.save_for_backward(dX.to(features.dtype))
        return features.new_tensor(value)

    @staticmethod
    def backward(ctx, grad_output: Tensor):  # noqa: ARG004 - ignoring grad_output IS the defect
        (dX,) = ctx.saved_tensors
        return dX, None, None, None, None


def official_route_low_rank(
    features: Tensor,
    labels: Tensor,
    lambda_: float = 1.0,
    delta: float = 1.0,
    *,
    check_inputs: bool = True,
) -> Tensor:
    """Apply :class:`OfficialRouteLowRank`: float32 NumPy SVDs per label and a hand gradient
    (benchmark anchor and audit only: its gradient ignores ``grad_output``). Shapes and errors
    as :func:`official_numpy_value_grad`; returns a 0-dim tensor in the features' dtype."""
    return OfficialRouteLowRank.apply(features, labels, lambda_, delta, check_inputs)
