"""Input validation shared by every loss: shapes, label codes, finiteness.

Label codes are checked by the library-wide :func:`clml_lib.checks.check_label_codes`;
hyper-parameters by the ``Range`` constants of each loss module and :mod:`clml_lib.checks`.

Every check raises ``ValueError`` with a message that says what was expected and what
came, so that a wrong call fails at the loss boundary rather than deep inside an SVD.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import check_label_codes


def check_matrix(x: Tensor, name: str, *, rows: int | None = None, cols: int | None = None) -> None:
    """Require a 2-D, non-empty floating tensor, optionally with a given row / column count.

    Raises:
        ValueError: not a tensor, not 2-D, empty, not floating point, or a size mismatch.
    """
    if not isinstance(x, Tensor):
        raise ValueError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, ·), got shape {tuple(x.shape)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is an empty batch (N = 0), shape {tuple(x.shape)}")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has no columns, shape {tuple(x.shape)}")
    if rows is not None and x.shape[0] != rows:
        raise ValueError(
            f"{name} must have N = {rows} rows (the batch size), got shape {tuple(x.shape)}"
        )
    if cols is not None and x.shape[1] != cols:
        raise ValueError(f"{name} must have {cols} columns, got shape {tuple(x.shape)}")


def check_floating(x: Tensor, name: str) -> None:
    """Require a floating-point tensor with only finite values.

    Raises:
        ValueError: integer dtype, or any NaN / inf entry (the message counts them).
    """
    if not torch.is_floating_point(x):
        raise ValueError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    finite = torch.isfinite(x)
    if not bool(finite.all()):
        bad = (~finite).nonzero()
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(torch.isinf(x).sum())
        first = tuple(int(i) for i in bad[0])
        raise ValueError(
            f"{name} contains non-finite values ({n_nan} NaN, {n_inf} inf; first at index {first})"
        )


def check_pair(logits: Tensor, labels: Tensor, *, allow_unknown: bool) -> None:
    """Validate a ``(logits, labels)`` pair of shape (N, C): same shape, finite, valid codes."""
    check_matrix(logits, "logits")
    if not isinstance(labels, Tensor) or tuple(labels.shape) != tuple(logits.shape):
        got = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(
            f"labels must have the shape of logits {tuple(logits.shape)} (N, C), got {got}"
        )
    check_floating(logits, "logits")
    check_label_codes(labels, "labels", allow_unknown=allow_unknown)


def check_features_labels(features: Tensor, labels: Tensor, *, allow_unknown: bool = False) -> None:
    """Validate features Z (N, D) and labels (N, C): same N, finite features, valid codes."""
    check_matrix(features, "features")
    check_matrix(labels, "labels", rows=features.shape[0])
    check_floating(features, "features")
    check_label_codes(labels, "labels", allow_unknown=allow_unknown)
