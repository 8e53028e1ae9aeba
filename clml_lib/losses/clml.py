r"""``CLMLLoss``: a base multi-label loss plus the CLML term (paper.md section 2.4).

$$
\mathcal L=\mathcal L_{\text{base}}(\mathbf S,\mathbf y)
+\underbrace{\frac{\lambda}{N}\Big(\sum_k\max\big(\Delta,\lVert\mathbf Z_k\rVert_*\big)-\lVert\mathbf Z\rVert_*\Big)}_{\mathcal L_{\text{CLML}}(\mathbf Z,\hat{\mathbf Y})}
\;\big[+\,w_{\text{pair}}\,\mathcal L_{\text{pair}}(\mathbf Z,\hat{\mathbf Y})\big]
$$

Decisions (paper.md section 6), each a constructor argument:

* Q1 loss form: default = the boxed nuclear-norm objective on corrected labels (code + figure);
  the explicit pairwise term of the abstract is an option (``pairwise_weight``, default 0).
* Q2 gradients: true (sub)gradients through autograd, so ``GradScaler`` scales them like the base
  loss (the official custom backward does not, paper.md 5.5).
* Q3 $\lambda$ placement: ``lambda_placement='2023'`` (default,
  $\lambda(\sum-\lVert\mathbf Z\rVert_*)/N$) or ``'2022'`` ($\lambda(\sum-\lambda\lVert\mathbf Z\rVert_*)/N$);
  identical at $\lambda=1$. The base loss is summed as in the reference; with
  ``reduction='mean'`` divide $\lambda$ by $NC$ for the same balance.
* Q4 $\Delta=1$ floor kept; absent labels add $\Delta$ (constant).
* Q5 representation: the features the model returns (the 2048-d GAP vector, unnormalised).
* Q6 correction: strict ``>``, recomputed each step from the current raw logits, detached,
  from ``start_epoch`` on; it feeds the CLML term only, unless ``correct_base_targets``.

The four columns of the paper's t-SNE ablation figure are :meth:`CLMLLoss.ablation`:
``'base'`` (base loss alone), ``'low_rank'`` (low-rank term on the *observed* labels),
``'correction'`` (label correction alone: it can only act through the base-loss targets, so
those are corrected; our reading of that column, paper.md Q1) and ``'clml'`` (both).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .base import MultiLabelLoss, make_base_loss
from .checks import check_floating, check_matrix, check_pair
from .contrastive import label_contrastive_loss
from .correction import mine_false_negatives
from .nuclear import low_rank_loss

ABLATIONS = {
    "base": dict(use_clml=False, use_correction=False, correct_base_targets=False),
    "low_rank": dict(use_clml=True, use_correction=False, correct_base_targets=False),
    "correction": dict(use_clml=False, use_correction=True, correct_base_targets=True),
    "clml": dict(use_clml=True, use_correction=True, correct_base_targets=False),
}


@dataclass
class LossParts:
    """What one call of :meth:`CLMLLoss.forward_parts` computed.

    ``total = base + low_rank + pairwise`` (``low_rank`` already includes $\\lambda$, ``pairwise``
    its weight); ``corrected`` is $\\hat{\\mathbf Y}$ ``(N, C)`` 0/1, ``mined`` the bool ``(N, C)``
    mask of labels added by correction (both detached).
    """

    total: Tensor
    base: Tensor
    low_rank: Tensor
    pairwise: Tensor
    corrected: Tensor
    mined: Tensor


class CLMLLoss(nn.Module):
    r"""Base loss + $\lambda\,\mathcal L_{\text{low-rank}}$ on corrected labels (+ optional pairwise term).

    Args:
        base_loss: a base-loss module or its name (``'BCE' | 'Focal' | 'ASL' | 'Hill' | 'SPLC'``).
        lambda_: $\lambda \ge 0$, weight of the low-rank term.
        tau: label-correction threshold $\tau$ (strict ``>`` on $\sigma(s)$).
        start_epoch: $e_0$, first 0-based epoch with correction.
        delta: floor $\Delta$.
        use_clml: add the low-rank CLML term (was ``use_low_rank``).
        use_correction: mine false negatives; otherwise $\hat{\mathbf Y}$ = observed positives.
        correct_base_targets: give $\hat{\mathbf Y}$ to the base loss too.
        pairwise_weight: weight of :func:`label_contrastive_loss` (0 = off, the reference).
        temperature: temperature of the pairwise term.
        reduction: base-loss reduction when ``base_loss`` is a name (``'sum'`` = reference).
        lambda_placement: ``'2023'`` or ``'2022'`` (see module docstring).

    Shapes: ``logits`` $\mathbf S$ ``(N, C)``, ``features`` $\mathbf Z$ ``(N, D)``, ``labels``
    $\mathbf y$ ``(N, C)`` in 1/0 or 1/0/-1. The CLML terms run in float32 (float64 for float64
    features) outside autocast.

    Raises:
        ValueError: bad arguments here, or bad inputs in ``forward`` (shapes, NaN/inf, codes).
    """

    def __init__(
        self,
        base_loss: MultiLabelLoss | nn.Module | str = "BCE",
        lambda_: float = 1.0,
        tau: float = 0.75,
        start_epoch: int = 1,
        delta: float = 1.0,
        use_clml: bool = True,
        use_correction: bool = True,
        correct_base_targets: bool = False,
        pairwise_weight: float = 0.0,
        temperature: float = 0.1,
        reduction: str = "sum",
        lambda_placement: str = "2023",
    ) -> None:
        super().__init__()
        if isinstance(base_loss, str):
            base_loss = make_base_loss(base_loss, reduction=reduction)
        if not isinstance(base_loss, nn.Module):
            raise ValueError(f"base_loss must be an nn.Module or a name, got {type(base_loss).__name__}")
        if float(lambda_) < 0 or float(pairwise_weight) < 0:
            raise ValueError(f"lambda_ and pairwise_weight must be >= 0, got {lambda_}, {pairwise_weight}")
        if not 0.0 <= float(tau) <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {tau}")
        if float(delta) < 0:
            raise ValueError(f"delta must be >= 0, got {delta}")
        if int(start_epoch) < 0:
            raise ValueError(f"start_epoch must be >= 0, got {start_epoch}")
        if lambda_placement not in ("2023", "2022"):
            raise ValueError(f"lambda_placement must be '2023' or '2022', got {lambda_placement!r}")
        if correct_base_targets and not use_correction:
            raise ValueError("correct_base_targets=True needs use_correction=True")
        self.base_loss = base_loss
        self.lambda_, self.tau, self.start_epoch, self.delta = float(lambda_), float(tau), int(start_epoch), float(delta)
        self.use_clml, self.use_correction = bool(use_clml), bool(use_correction)
        self.correct_base_targets = bool(correct_base_targets)
        self.pairwise_weight, self.temperature = float(pairwise_weight), float(temperature)
        self.lambda_placement = lambda_placement

    @classmethod
    def ablation(cls, name: str, base_loss: MultiLabelLoss | nn.Module | str = "BCE", **kwargs) -> "CLMLLoss":
        """One column of the paper's t-SNE ablation: ``'base' | 'low_rank' | 'correction' | 'clml'``.

        Raises:
            ValueError: unknown name, or ``kwargs`` that contradict the column's switches.
        """
        if name not in ABLATIONS:
            raise ValueError(f"unknown ablation {name!r}; choose one of {list(ABLATIONS)}")
        clash = set(kwargs) & set(ABLATIONS[name])
        if clash:
            raise ValueError(f"ablation {name!r} fixes {sorted(clash)}; do not pass them")
        return cls(base_loss, **ABLATIONS[name], **kwargs)

    def forward(self, logits: Tensor, features: Tensor, labels: Tensor, epoch: int = 0) -> Tensor:
        """Total loss (0-dim). See :meth:`forward_parts`."""
        return self.forward_parts(logits, features, labels, epoch).total

    def forward_parts(self, logits: Tensor, features: Tensor, labels: Tensor, epoch: int = 0) -> LossParts:
        """Compute every part of the loss for one batch.

        Args:
            logits: $\\mathbf S$ ``(N, C)``; features: $\\mathbf Z$ ``(N, D)``; labels: observed
            $\\mathbf y$ ``(N, C)`` (1/0 or 1/0/-1); epoch: 0-based epoch index $e$.
        """
        # validate the batch once here; the parts below skip their own tensor checks (host syncs)
        check_pair(logits, labels, allow_unknown=True)
        check_matrix(features, "features", rows=logits.shape[0])
        check_floating(features, "features")
        if self.use_correction:
            corrected, mined = mine_false_negatives(
                logits, labels, self.tau, epoch, self.start_epoch, check_inputs=False
            )
        else:
            with torch.no_grad():
                corrected = (labels == 1).to(torch.float64 if logits.dtype == torch.float64 else torch.float32)
                mined = torch.zeros_like(corrected, dtype=torch.bool)
        targets = corrected if self.correct_base_targets else labels
        if isinstance(self.base_loss, MultiLabelLoss):  # our losses take the epoch (SPLC uses it)
            base = self.base_loss(logits, targets, epoch, check_inputs=False)
        else:
            base = self.base_loss(logits, targets)
        zero = base.detach() * 0.0
        low_rank = zero
        if self.use_clml and self.lambda_ > 0:
            gw = self.lambda_ if self.lambda_placement == "2022" else 1.0
            low_rank = self.lambda_ * low_rank_loss(
                features, corrected, self.delta, global_weight=gw, check_inputs=False
            )
        pairwise = zero
        if self.pairwise_weight > 0:
            pairwise = self.pairwise_weight * label_contrastive_loss(
                features, corrected, self.temperature, check_inputs=False
            )
        total = base + low_rank.to(base.dtype) + pairwise.to(base.dtype)
        return LossParts(total, base, low_rank, pairwise, corrected, mined)

    def extra_repr(self) -> str:
        return (
            f"lambda_={self.lambda_}, tau={self.tau}, start_epoch={self.start_epoch}, delta={self.delta}, "
            f"use_clml={self.use_clml}, use_correction={self.use_correction}, "
            f"correct_base_targets={self.correct_base_targets}, pairwise_weight={self.pairwise_weight}"
        )
