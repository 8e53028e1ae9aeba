r"""``CLMLLoss``: a base multi-label loss plus the CLML term (docs/method.md §2.4).

$$
\mathcal L=\mathcal L_{\text{base}}(\mathbf S,\mathbf y)
+\underbrace{\frac{\lambda}{N}\Big(\sum_k\max\big(\Delta,\lVert\mathbf Z_k\rVert_*\big)-\lVert\mathbf Z\rVert_*\Big)}_{\mathcal L_{\text{CLML}}(\mathbf Z,\hat{\mathbf Y})}
\;\big[+\,w_{\text{pair}}\,\mathcal L_{\text{pair}}(\mathbf Z,\hat{\mathbf Y})\big]
$$

Decisions (docs/method.md §6), each a constructor argument:

* Q1 loss form: default = the boxed nuclear-norm objective on corrected labels (code + figure);
  the explicit pairwise term of the abstract is an option (``pairwise_weight``, default 0).
* Q2 gradients: true (sub)gradients through autograd, so ``GradScaler`` scales them like the base
  loss (the official custom backward does not, docs/method.md §5.5).
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
those are corrected; our reading of that column, docs/method.md §6, Q1) and ``'clml'`` (both).
"""  # noqa: E501 (formulas and a table, kept on one line each)

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch
from torch import Tensor, nn

from ..checks import Range, check_bool, check_choice
from .base import MultiLabelLoss, make_base_loss
from .checks import check_floating, check_matrix, check_pair
from .contrastive import TEMPERATURE_RANGE, label_contrastive_loss
from .correction import START_EPOCH_RANGE, TAU_RANGE, mine_false_negatives
from .nuclear import DELTA_RANGE, low_rank_loss

# Allowed ranges of CLMLLoss's own hyper-parameters, declared once (the training config imports
# them; tau, start_epoch, temperature and delta are declared beside the function that uses them).
#: Weight $\lambda$ of the CLML term: $[0, \infty)$ (0 = off).
LAMBDA_RANGE = Range(0.0, None)
#: Weight of the optional pairwise term: $[0, \infty)$ (0 = off, the reference).
PAIRWISE_WEIGHT_RANGE = Range(0.0, None)
LAMBDA_PLACEMENTS = ("2023", "2022")

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
    mask of labels added by correction (both detached); ``base_mined`` the bool ``(N, C)`` mask of
    observed negatives that the base loss's own correction treated as positive (SPLC), None for a
    base loss without one.
    """

    total: Tensor
    base: Tensor
    low_rank: Tensor
    pairwise: Tensor
    corrected: Tensor
    mined: Tensor
    base_mined: Tensor | None = None


def check_correction_switches(use_correction: bool, correct_base_targets: bool) -> None:
    r"""The rule between the correction switches: the base loss can only be given the corrected
    labels $\hat{\mathbf Y}$ when label correction runs.

    Raises:
        ValueError: ``correct_base_targets`` without ``use_correction``.
    """
    if correct_base_targets and not use_correction:
        raise ValueError("correct_base_targets=True needs use_correction=True "
                         "(it feeds the corrected labels to the base loss)")


class CLMLLoss(nn.Module):
    r"""Base loss + $\lambda\,\mathcal L_{\text{low-rank}}$ on corrected labels (+ optional
    pairwise term).

    Args:
        base_loss: a base-loss module or its registered name (:data:`~.base.BASE_LOSSES`:
            ``'BCE' | 'Focal' | 'ASL' | 'Hill' | 'SPLC'`` and any loss registered since).
        lambda_: $\lambda \ge 0$, weight of the low-rank term.
        tau: label-correction threshold $\tau$ (strict ``>`` on $\sigma(s)$).
        start_epoch: $e_0$, first 0-based epoch with correction.
        delta: floor $\Delta$.
        use_clml: add the low-rank CLML term.
        use_correction: mine false negatives; otherwise $\hat{\mathbf Y}$ = observed positives.
        correct_base_targets: give $\hat{\mathbf Y}$ to the base loss too.
        pairwise_weight: weight of :func:`label_contrastive_loss` (0 = off, the reference).
        temperature: temperature of the pairwise term.
        reduction: base-loss reduction when ``base_loss`` is a name (``'sum'`` = reference).
        base_loss_args: the base loss's own hyper-parameters when ``base_loss`` is a name
            (:func:`~.base.base_loss_defaults` lists them); None or empty keeps its defaults.
        lambda_placement: ``'2023'`` or ``'2022'`` (see module docstring).

    Shapes: ``logits`` $\mathbf S$ ``(N, C)``, ``features`` $\mathbf Z$ ``(N, D)``, ``labels``
    $\mathbf y$ ``(N, C)`` in 1/0 or 1/0/-1. The CLML terms run in float32 (float64 for float64
    features) outside autocast.

    Hyper-parameters are validated here, against the ranges declared once in this package
    (``LAMBDA_RANGE``, ``DELTA_RANGE``, ``PAIRWISE_WEIGHT_RANGE`` here, ``TAU_RANGE`` and
    ``START_EPOCH_RANGE`` in :mod:`.correction`, ``TEMPERATURE_RANGE`` in :mod:`.contrastive`):
    NaN / inf, strings and out-of-range values are refused, and the switches must be real bools
    (the string ``"False"`` is refused rather than read as True).

    Raises:
        ValueError: a bad argument here (the message names it, the value and the allowed
            range), or bad inputs in ``forward`` (shapes, NaN/inf, codes).
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
        base_loss_args: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if isinstance(base_loss, str):
            base_loss = make_base_loss(base_loss, reduction=reduction, **(base_loss_args or {}))
        elif base_loss_args:
            raise ValueError("base_loss_args are for a base loss given by name; a module given as "
                             "base_loss carries its own hyper-parameters")
        if not isinstance(base_loss, nn.Module):
            raise ValueError(
                f"base_loss must be an nn.Module or a name, got {type(base_loss).__name__}"
            )
        self.base_loss = base_loss
        self.lambda_ = LAMBDA_RANGE.check("lambda_", lambda_)
        self.tau = TAU_RANGE.check("tau", tau)
        self.start_epoch = START_EPOCH_RANGE.check("start_epoch", start_epoch)
        self.delta = DELTA_RANGE.check("delta", delta)
        self.use_clml = check_bool("use_clml", use_clml)
        self.use_correction = check_bool("use_correction", use_correction)
        self.correct_base_targets = check_bool("correct_base_targets", correct_base_targets)
        self.pairwise_weight = PAIRWISE_WEIGHT_RANGE.check("pairwise_weight", pairwise_weight)
        self.temperature = TEMPERATURE_RANGE.check("temperature", temperature)
        self.lambda_placement = check_choice(
            "lambda_placement", lambda_placement, LAMBDA_PLACEMENTS
        )
        check_correction_switches(self.use_correction, self.correct_base_targets)

    @classmethod
    def ablation(
        cls, name: str, base_loss: MultiLabelLoss | nn.Module | str = "BCE", **kwargs
    ) -> "CLMLLoss":
        """One column of the paper's t-SNE ablation:
        ``'base' | 'low_rank' | 'correction' | 'clml'``.

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

    def forward_parts(
        self, logits: Tensor, features: Tensor, labels: Tensor, epoch: int = 0
    ) -> LossParts:
        """Compute every part of the loss for one batch.

        Args:
            logits: $\\mathbf S$ ``(N, C)``.
            features: $\\mathbf Z$ ``(N, D)``.
            labels: observed $\\mathbf y$ ``(N, C)`` (1/0 or 1/0/-1).
            epoch: 0-based epoch index $e$.
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
                corrected = (labels == 1).to(
                    torch.float64 if logits.dtype == torch.float64 else torch.float32
                )
                mined = torch.zeros_like(corrected, dtype=torch.bool)
        targets = corrected if self.correct_base_targets else labels
        base_mined = None
        if isinstance(self.base_loss, MultiLabelLoss):  # our losses take the epoch (SPLC uses it)
            base = self.base_loss(logits, targets, epoch, check_inputs=False)
            base_mined = self.base_loss.own_corrections(logits, targets, epoch)  # (N, C) or None
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
        return LossParts(total, base, low_rank, pairwise, corrected, mined, base_mined)

    def extra_repr(self) -> str:
        return (
            f"lambda_={self.lambda_}, tau={self.tau}, start_epoch={self.start_epoch}, "
            f"delta={self.delta}, "
            f"use_clml={self.use_clml}, use_correction={self.use_correction}, "
            f"correct_base_targets={self.correct_base_targets}, "
            f"pairwise_weight={self.pairwise_weight}"
        )
