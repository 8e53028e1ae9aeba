r"""The explicit, pairwise reading of the abstract (docs/method.md §2.2): a per-label
supervised contrastive loss.

For an anchor $i$ and each label $k$ it carries after correction ($\hat y_{ik}=1$):

* positives $\mathcal P_k\setminus\{i\}$: the other images carrying $k$ (observed positives and
  mined false negatives);
* negatives $\mathcal N_k=\{j:\hat y_{jk}=0\}$ (the "true negatives" of label $k$; with an explicit
  ``negatives`` mask, only the entries marked there).

With L2-normalised features $\tilde{\mathbf z}_i$ and temperature $T$,
$a_{ij}=\tilde{\mathbf z}_i^\top\tilde{\mathbf z}_j/T$, the InfoNCE / SupCon term is

$$
\ell_{ik}=-\frac{1}{|\mathcal P_k\setminus\{i\}|}\sum_{p\in\mathcal P_k\setminus\{i\}}
\log\frac{\exp(a_{ip})}{\sum_{j\in(\mathcal P_k\setminus\{i\})\cup\mathcal N_k}\exp(a_{ij})},
\qquad
\mathcal L_{\text{pair}}=\frac{1}{|\mathcal V|}\sum_{(i,k)\in\mathcal V}\ell_{ik},
$$

with $\mathcal V$ the (anchor, label) pairs that have at least one positive. This term is not in
the official code (docs/method.md §5.1); it is offered as a teaching object and an ablation option
(``CLMLLoss(pairwise_weight=...)``).

Numerical guards (as in SupContrast): the row maximum is subtracted before ``exp``; self-pairs are
masked; anchors without positives are skipped (their $|\mathcal P|=0$ would give 0/0 = NaN); a batch
with no valid pair returns 0 (connected to the graph, so ``backward`` still works).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import Range, check_label_codes
from .checks import check_features_labels

#: Allowed temperature $T$ of the pairwise term: $(0, \infty)$.
TEMPERATURE_RANGE = Range(0.0, None, lo_open=True)


def label_contrastive_loss(
    features: Tensor,
    labels: Tensor,
    temperature: float = 0.1,
    negatives: Tensor | None = None,
    *,
    check_inputs: bool = True,
) -> Tensor:
    r"""Per-label supervised contrastive loss $\mathcal L_{\text{pair}}$ (module docstring).

    Args:
        features: $\mathbf Z$, shape ``(N, D)``; L2-normalised inside.
        labels: corrected $\hat{\mathbf Y}$, shape ``(N, C)``, 0/1.
        temperature: $T > 0$.
        negatives: optional bool/0-1 mask ``(N, C)`` of entries that may serve as negatives
            (e.g. known negatives of a 1/0/-1 matrix); default: every $\hat y_{jk}=0$.
        check_inputs: validate the tensors (shapes, codes, NaN/inf; each costs a host sync on a
            GPU).
            ``CLMLLoss`` validates a batch once and passes False.

    Returns:
        0-dim tensor, float32 (float64 for float64 features), computed outside autocast.

    Raises:
        ValueError: bad shapes, non-finite features, labels not in {0, 1}, ``temperature`` not a
            finite number in ``TEMPERATURE_RANGE`` (0, inf),
            or a ``negatives`` mask that overlaps the positives or has the wrong shape.
    """
    if check_inputs:
        check_features_labels(features, labels)
    temperature = TEMPERATURE_RANGE.check("temperature", temperature)
    N = features.shape[0]
    cd = torch.float64 if features.dtype == torch.float64 else torch.float32
    with torch.autocast(device_type=features.device.type, enabled=False):
        Y = labels.to(device=features.device, dtype=cd)  # (N, C)
        if negatives is None:
            Neg = 1.0 - Y  # (N, C)
        else:
            if tuple(negatives.shape) != tuple(labels.shape):
                raise ValueError(
                    f"negatives must have the shape of labels {tuple(labels.shape)}, "
                    f"got {tuple(negatives.shape)}"
                )
            check_label_codes(negatives, "negatives")
            Neg = negatives.to(device=features.device, dtype=cd)  # (N, C)
            if bool(((Neg > 0) & (Y > 0)).any()):
                raise ValueError(
                    "negatives overlaps labels: an entry cannot be both positive and negative"
                )
        Zn = F.normalize(features.to(cd), dim=1)  # (N, D) unit rows (all-zero rows stay 0)
        A = Zn @ Zn.T / temperature  # (N, N) a_ij
        A = A - A.max(dim=1, keepdim=True).values.detach()  # (N, N) row max for stability
        not_self = 1.0 - torch.eye(N, dtype=cd, device=features.device)  # (N, N)
        E = torch.exp(A) * not_self  # (N, N) exp(a_ij), self-pairs removed
        cand = Y + Neg  # (N, C) members of P_k or N_k
        denom = E @ cand  # (N, C) sum over candidates j != i of exp(a_ij)
        n_pos = (Y.sum(0, keepdim=True) - 1.0) * Y  # (N, C) |P_k \ {i}| for anchors carrying k
        valid = n_pos > 0  # (N, C) anchor-label pairs with at least one positive
        # sum_p a_ip - |P| log(denominator), for every anchor i and label k
        sum_pos = (A * not_self) @ Y  # (N, C)
        log_denom = torch.log(torch.where(valid, denom, torch.ones_like(denom)))  # (N, C)
        ell = -(sum_pos - n_pos * log_denom) / torch.where(
            valid, n_pos, torch.ones_like(n_pos)
        )  # (N, C)
        n_valid = valid.sum()
        if int(n_valid) == 0:
            return (A * 0.0).sum()  # no anchor has a positive: zero, still differentiable
        return (ell * valid).sum() / n_valid
