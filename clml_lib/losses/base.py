r"""Base multi-label losses that CLML is added to (docs/method.md §2.4), written from their
formulas with the reference hyper-parameters.

Notation: logits $s$, $p=\sigma(s)$, targets $y\in\{0,1\}$, summed over batch and classes.

| loss | positives ($y=1$) | negatives ($y=0$) | defaults |
|---|---|---|---|
| BCE | $-\log p$ | $-\log(1-p)$ | $p$ clamped to $\ge10^{-8}$ |
| Focal | $-(1-p)^{\gamma}\log p$ | $-p^{\gamma}\log(1-p)$ | $\gamma=2$, weight without gradient |
| ASL | $-(1-p)^{\gamma_+}\log p$ | $-p_m^{\gamma_-}\log(1-p_m)$, $p_m=\max(p-m,0)$ | $\gamma_+=0,\gamma_-=4,m=0.05$ |
| Hill | $-(1-p^{(m)})^{\gamma}\log p^{(m)}$, $p^{(m)}=\sigma(s-m)$ | $(\lambda_H-p)\,p^2$ | $m=1,\gamma=2,\lambda_H=1.5$ |
| SPLC | focal BCE on $s-m$ | focal BCE; from epoch $e_0$ an unobserved $y$ becomes 1 where $\sigma(s)>\tau_S$ | $m=1,\gamma=2,\tau_S=0.7,e_0=1$ |

Reduction. The reference **sums** (``reduction='sum'``), so the base loss is about $NC\ln2$
($\approx3.5$k for $N=64$, $C=80$) at initialisation while the CLML term is divided by $N$.
``reduction='mean'`` divides by the number of counted entries ($NC$ without unknowns); to keep
the reference's balance, $\lambda$ must then be divided by $NC$ as well:
$\lambda_{\text{mean}}=\lambda_{\text{sum}}/(NC)$ (see :func:`equivalent_lambda`).

Unknown labels. Targets may be 1/0 (assume-negative, the reference) or 1/0/-1. A -1 is handled
by the ``unknown`` policy: ``'negative'`` (default: counted as a negative, the assume-negative
baseline) or ``'ignore'`` (left out of the sum and of the mean's count).
"""  # noqa: E501 (formulas and a table, kept on one line each)

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import Range, check_choice
from .checks import check_pair
from .correction import START_EPOCH_RANGE, TAU_RANGE

REDUCTIONS = ("sum", "mean")
UNKNOWN_POLICIES = ("negative", "ignore")

# Allowed hyper-parameter ranges, declared once (the training config imports them).
#: Probability clamp ``eps`` before the log: $(0, 1)$.
EPS_RANGE = Range(0.0, 1.0, lo_open=True, hi_open=True)
#: Focusing exponents $\gamma$, $\gamma_+$, $\gamma_-$ (Focal, ASL, Hill, SPLC): $[0, \infty)$.
GAMMA_RANGE = Range(0.0, None)
#: ASL probability margin ``clip`` $m$ on negatives: $[0, 1)$ ($m \ge 1$ would zero every negative).
CLIP_RANGE = Range(0.0, 1.0, hi_open=True)
#: Logit margin $m$ of Hill and SPLC positives: $[0, \infty)$.
MARGIN_RANGE = Range(0.0, None)
#: Hill's $\lambda_H$: $[1, \infty)$, so that the negative term $(\lambda_H-p)p^2 \ge 0$ for every
#: $p \in [0, 1]$.
HILL_LAMBDA_RANGE = Range(1.0, None)
#: SPLC's threshold $\tau_S$ and first epoch $e_0$ share the ranges of label correction's
#: $\tau$ and $e_0$ (``TAU_RANGE``, ``START_EPOCH_RANGE`` of :mod:`.correction`).
SPLC_TAU_RANGE = TAU_RANGE


class MultiLabelLoss(nn.Module):
    """Common machinery: validation, unknown-label policy, reduction, float32 computation.

    Every constructor validates its hyper-parameters against the ``*_RANGE`` constants of this
    module (finite numbers only: NaN / inf and strings are refused) and raises ``ValueError``
    naming the parameter, the value and the allowed range.
    """

    def __init__(self, reduction: str = "sum", unknown: str = "negative") -> None:
        super().__init__()
        check_choice("reduction", reduction, REDUCTIONS)
        check_choice("unknown", unknown, UNKNOWN_POLICIES)
        self.reduction = reduction
        self.unknown = unknown

    def elementwise(self, logits: Tensor, targets: Tensor, epoch: int) -> Tensor:
        """Per-entry loss ``(N, C)`` for float32 logits and 0/1 float targets."""
        raise NotImplementedError

    def own_corrections(self, logits: Tensor, targets: Tensor, epoch: int) -> Tensor | None:
        """The bool ``(N, C)`` mask of observed negatives that this loss itself treats as
        positive at ``epoch`` (a loss with its own label correction, e.g. SPLC), detached; None
        for a loss without one (the default). Used to report what the loss mined."""
        return None

    def forward(
        self, logits: Tensor, targets: Tensor, epoch: int = 0, *, check_inputs: bool = True
    ) -> Tensor:
        """Loss of ``logits`` (N, C) against ``targets`` (N, C) in 1/0 or 1/0/-1.

        Returns a 0-dim float32 tensor (float64 for float64 logits), computed outside autocast.

        Raises:
            ValueError: shape mismatch, non-finite logits, or codes outside 1/0/-1.
        """
        if check_inputs:  # False: the caller (CLMLLoss) validated this batch already
            check_pair(logits, targets, allow_unknown=True)
        cd = torch.float64 if logits.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=logits.device.type, enabled=False):
            s = logits.to(cd)  # (N, C)
            t = targets.to(device=logits.device, dtype=cd)  # (N, C)
            counted = (
                torch.ones_like(t) if self.unknown == "negative" else (t != -1).to(cd)
            )  # (N, C)
            y = (t == 1).to(cd)  # (N, C) unknown -> 0 under 'negative'; masked under 'ignore'
            loss = self.elementwise(s, y, epoch) * counted  # (N, C)
            total = loss.sum()
            if self.reduction == "mean":
                total = total / counted.sum().clamp_min(1.0)
        return total


def _log_clamped(p: Tensor, eps: float) -> Tensor:
    return torch.log(p.clamp(min=eps))


class BCELoss(MultiLabelLoss):
    r"""Binary cross-entropy $-\sum[y\log p+(1-y)\log(1-p)]$, probabilities clamped at ``eps``."""

    def __init__(
        self, eps: float = 1e-8, reduction: str = "sum", unknown: str = "negative"
    ) -> None:
        super().__init__(reduction, unknown)
        self.eps = EPS_RANGE.check("eps", eps)

    def elementwise(self, s: Tensor, y: Tensor, epoch: int) -> Tensor:
        p = torch.sigmoid(s)  # (N, C)
        return -(y * _log_clamped(p, self.eps) + (1 - y) * _log_clamped(1 - p, self.eps))


class AsymmetricLoss(MultiLabelLoss):
    r"""ASL (Ridnik et al. 2021): focusing $\gamma_\pm$ and probability margin ``clip`` on
    negatives.

    Focal weights carry no gradient (as in the ASL / Hill / CLML code). ``gamma_pos = gamma_neg``
    and ``clip = 0`` give the Focal loss; all zero gives BCE.
    """

    def __init__(
        self,
        gamma_pos: float = 0.0,
        gamma_neg: float = 4.0,
        clip: float = 0.05,
        eps: float = 1e-8,
        reduction: str = "sum",
        unknown: str = "negative",
    ) -> None:
        super().__init__(reduction, unknown)
        self.gamma_pos = GAMMA_RANGE.check("gamma_pos", gamma_pos)
        self.gamma_neg = GAMMA_RANGE.check("gamma_neg", gamma_neg)
        self.clip = CLIP_RANGE.check("clip", clip)
        self.eps = EPS_RANGE.check("eps", eps)

    def elementwise(self, s: Tensor, y: Tensor, epoch: int) -> Tensor:
        p = torch.sigmoid(s)  # (N, C)
        q = (1 - p + self.clip).clamp(max=1.0) if self.clip > 0 else 1 - p  # (N, C) 1 - p_m
        loss = y * _log_clamped(p, self.eps) + (1 - y) * _log_clamped(q, self.eps)  # (N, C)
        if self.gamma_pos > 0 or self.gamma_neg > 0:
            with torch.no_grad():
                pt = y * p + (1 - y) * q  # (N, C) probability of the target class
                gamma = y * self.gamma_pos + (1 - y) * self.gamma_neg  # (N, C)
                w = torch.pow(1 - pt, gamma)  # (N, C)
            loss = loss * w
        return -loss


class FocalLoss(AsymmetricLoss):
    r"""Focal loss, $\gamma_+=\gamma_-=\gamma=2$, weight without gradient (ASL implementation)."""

    def __init__(
        self,
        gamma: float = 2.0,
        eps: float = 1e-8,
        reduction: str = "sum",
        unknown: str = "negative",
    ) -> None:
        gamma = GAMMA_RANGE.check("gamma", gamma)  # named as the caller wrote it
        super().__init__(gamma, gamma, 0.0, eps, reduction, unknown)
        self.gamma = gamma


class HillLoss(MultiLabelLoss):
    r"""Hill loss (Zhang et al. 2021): margin-focal positives, hill-shaped negatives.

    Positives: $-(1-p^{(m)})^{\gamma}\log p^{(m)}$ with $p^{(m)}=\sigma(s-m)$; negatives:
    $(\lambda_H-p)\,p^2$. The weight is part of the formula (it carries gradient).
    """

    def __init__(
        self,
        lamb: float = 1.5,
        margin: float = 1.0,
        gamma: float = 2.0,
        eps: float = 1e-8,
        reduction: str = "sum",
        unknown: str = "negative",
    ) -> None:
        super().__init__(reduction, unknown)
        self.lamb = HILL_LAMBDA_RANGE.check("lamb", lamb)
        self.margin = MARGIN_RANGE.check("margin", margin)
        self.gamma = GAMMA_RANGE.check("gamma", gamma)
        self.eps = EPS_RANGE.check("eps", eps)

    def elementwise(self, s: Tensor, y: Tensor, epoch: int) -> Tensor:
        pm = torch.sigmoid(s - self.margin)  # (N, C)
        p = torch.sigmoid(s)  # (N, C)
        pos = -torch.pow(1 - pm, self.gamma) * _log_clamped(pm, self.eps)  # (N, C)
        neg = (self.lamb - p) * p * p  # (N, C)
        return y * pos + (1 - y) * neg


class SPLCLoss(MultiLabelLoss):
    r"""Self-paced loss correction (Zhang et al. 2021).

    Observed positives use the logit $s-m$; from epoch ``start_epoch`` an unobserved entry with
    $\sigma(s)>\tau_S$ is treated as positive (with its raw logit). Then focal-weighted BCE,
    $-(1-p_t)^{\gamma}\log p_t$ (the weight carries gradient here, as in the formula).
    """

    def __init__(
        self,
        tau: float = 0.7,
        margin: float = 1.0,
        gamma: float = 2.0,
        start_epoch: int = 1,
        reduction: str = "sum",
        unknown: str = "negative",
    ) -> None:
        super().__init__(reduction, unknown)
        self.tau = SPLC_TAU_RANGE.check("SPLC tau", tau)
        self.margin = MARGIN_RANGE.check("margin", margin)
        self.gamma = GAMMA_RANGE.check("gamma", gamma)
        self.start_epoch = START_EPOCH_RANGE.check("SPLC start_epoch", start_epoch)

    def own_corrections(self, logits: Tensor, targets: Tensor, epoch: int) -> Tensor:
        r"""Bool ``(N, C)``: observed negatives (``targets != 1``) with $\sigma(s) > \tau_S$, from
        ``start_epoch`` on (all False before); detached. Positives keep their label."""
        with torch.no_grad():
            if epoch < self.start_epoch:
                return torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
            return (targets != 1) & (torch.sigmoid(logits.detach()) > self.tau)  # (N, C)

    def elementwise(self, s: Tensor, y: Tensor, epoch: int) -> Tensor:
        mined = self.own_corrections(s, y, epoch)  # (N, C) on the raw logits of negatives
        s = torch.where(y == 1, s - self.margin, s)  # (N, C) margin on observed positives
        y = torch.where(mined, torch.ones_like(y), y)  # (N, C)
        p = torch.sigmoid(s)  # (N, C)
        pt = y * (1 - p) + (1 - y) * p  # (N, C) = 1 - p_t
        ce = -(y * F.logsigmoid(s) + (1 - y) * F.logsigmoid(-s))  # (N, C)
        return torch.pow(pt, self.gamma) * ce


BASE_LOSSES = {
    "BCE": BCELoss,
    "Focal": FocalLoss,
    "ASL": AsymmetricLoss,
    "Hill": HillLoss,
    "SPLC": SPLCLoss,
}


def make_base_loss(
    name: str, reduction: str = "sum", unknown: str = "negative", **kwargs
) -> MultiLabelLoss:
    """Build a base loss by name: ``'BCE' | 'Focal' | 'ASL' | 'Hill' | 'SPLC'`` (case-insensitive).

    Raises:
        ValueError: unknown name (the message lists the choices).
    """
    lookup = {k.lower(): v for k, v in BASE_LOSSES.items()}
    cls = lookup.get(str(name).lower())
    if cls is None:
        raise ValueError(f"unknown base loss {name!r}; choose one of {sorted(BASE_LOSSES)}")
    return cls(reduction=reduction, unknown=unknown, **kwargs)


def equivalent_lambda(lambda_sum: float, batch_size: int, num_classes: int) -> float:
    r"""$\lambda$ for ``reduction='mean'`` that keeps the balance of the reference's
    ``reduction='sum'`` with weight ``lambda_sum``: $\lambda_{\text{sum}}/(NC)$."""
    return float(lambda_sum) / (int(batch_size) * int(num_classes))
