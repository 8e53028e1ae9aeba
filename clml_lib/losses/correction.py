r"""Label correction: false-negative mining (docs/method.md §2.1).

$$
\hat y_{ik}=\begin{cases}1,& y_{ik}=1\\
1,& y_{ik}\text{ unobserved}\ \wedge\ e\ge e_0\ \wedge\ \sigma(s_{ik})>\tau\\
0,&\text{otherwise}\end{cases}
$$

Decisions (docs/method.md §6, question 6), all as in the official code:

* strict ``>`` against $\tau$; recomputed from the current logits at every call; detached
  (no gradient flows through $\hat{\mathbf Y}$); correction only ever adds positives;
* $e$ is the 0-based epoch index and correction is active when $e \ge e_0$
  (``start_epoch``, default 1: from the second epoch on);
* the official code's margin shift of observed-positive logits has no effect on the rule
  (observed positives stay 1) and is not reproduced.

Label encodings: ``1/0`` (assume-negative, the reference convention: 0 means "negative or
missing", so every 0 may be mined) and ``1/0/-1`` (``-1`` = unknown; then only the ``-1``
entries may be mined and a ``0`` is a *known* negative that is never flipped).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..checks import Range, check_choice, check_int
from .checks import check_pair

ENCODINGS = ("auto", "assume_negative", "ternary")
#: Allowed label-correction threshold $\tau$ (on $\sigma(s)$, strict ``>``): $[0, 1]$.
TAU_RANGE = Range(0.0, 1.0)
#: Allowed first correction epoch $e_0$ (0-based): integers $\ge 0$.
START_EPOCH_RANGE = Range(0, None, integer=True)


def mine_false_negatives(
    logits: Tensor,
    labels: Tensor,
    tau: float,
    epoch: int,
    start_epoch: int = 1,
    encoding: str = "auto",
    *,
    check_inputs: bool = True,
) -> tuple[Tensor, Tensor]:
    r"""Corrected labels $\hat{\mathbf Y}$ and the mask of mined labels.

    Args:
        logits: $\mathbf S$, shape ``(N, C)``, raw classifier scores $s_{ik}$.
        labels: observed $\mathbf Y$, shape ``(N, C)``, codes 1/0 or 1/0/-1.
        tau: threshold $\tau \in [0, 1]$ on $\sigma(s_{ik})$ (strict ``>``).
        epoch: 0-based epoch index $e$.
        start_epoch: $e_0$; no correction while ``epoch < start_epoch``.
        encoding: ``'assume_negative'`` (every 0 may be mined), ``'ternary'`` (only -1 may be
            mined), or ``'auto'`` (ternary when a -1 is present, else assume-negative). Pass
            ``'ternary'`` for a fully-known 1/0/-1 matrix so that its 0s stay negatives.
        check_inputs: validate the tensors (shapes, codes, NaN/inf; each costs a host sync on a
            GPU).
            ``CLMLLoss`` validates a batch once and passes False.

    Returns:
        ``(corrected, mined)``: $\hat{\mathbf Y}$ as 0/1 floats of shape ``(N, C)`` (float64
        when logits are float64, else float32) and a bool ``(N, C)`` mask of the entries that
        correction turned from unobserved into positive. Both carry no gradient.

    Raises:
        ValueError: shape mismatch, non-finite logits, label codes outside 1/0/-1, tau not a
            finite number in ``TAU_RANGE`` [0, 1], epoch or start_epoch not an int >= 0 (a float
            or a bool is refused), or an unknown encoding.
    """
    if check_inputs:
        check_pair(logits, labels, allow_unknown=True)
    tau = TAU_RANGE.check("tau", tau)
    start_epoch = START_EPOCH_RANGE.check("start_epoch", start_epoch)
    epoch = check_int("epoch", epoch, lo=0)
    check_choice("encoding", encoding, ENCODINGS)
    out_dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
    with torch.no_grad():
        labels = labels.to(logits.device)
        observed = labels == 1  # (N, C)
        has_unknown = bool((labels == -1).any())
        if encoding == "ternary" or (encoding == "auto" and has_unknown):
            candidates = labels == -1  # (N, C) only unknown entries can be mined
        else:
            candidates = ~observed  # (N, C) assume-negative: every 0 is "negative or missing"
        if epoch >= start_epoch:
            # sigma(s_ik) > tau, compared in float32 even for half-precision logits
            confident = torch.sigmoid(logits.detach().float()) > tau  # (N, C)
            mined = candidates & confident  # (N, C)
        else:
            mined = torch.zeros_like(observed)
        corrected = (observed | mined).to(out_dtype)  # (N, C)
    return corrected, mined


def correct_labels(
    logits: Tensor,
    labels: Tensor,
    tau: float,
    epoch: int,
    start_epoch: int = 1,
    encoding: str = "auto",
) -> Tensor:
    r"""Corrected 0/1 labels $\hat{\mathbf Y}$ (docs/method.md §2.1); see
    :func:`mine_false_negatives`.

    Shapes: logits and labels ``(N, C)``; returns ``(N, C)`` 0/1 floats without gradient.
    """
    return mine_false_negatives(logits, labels, tau, epoch, start_epoch, encoding)[0]
