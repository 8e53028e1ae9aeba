r"""Exercise checkers of notebook 05 (ablations, selection on validation, the "as released" arm).

Solutions: ``notebooks/solutions/ch05.py`` and ``ch05.md``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from . import close, verdict

#: exercise 05.1: {config: {"val": per-seed val mAP, "test": per-seed test mAP}} over 3 seeds
SWEEP = {
    "lambda=1": {"val": (48.1, 44.0, 46.2), "test": (46.9, 42.8, 45.0)},
    "lambda=3": {"val": (48.6, 44.3, 46.0), "test": (46.8, 42.7, 44.9)},
    "lambda=10": {"val": (47.7, 43.9, 46.1), "test": (47.4, 43.3, 45.4)},
}


def check_choose_on_validation(answer) -> bool:
    """Exercise 05.1. ``answer``: the key of :data:`SWEEP` that the validation protocol chooses."""
    chosen = max(SWEEP, key=lambda k: float(np.mean(SWEEP[k]["val"])))
    on_test = max(SWEEP, key=lambda k: float(np.mean(SWEEP[k]["test"])))

    def judge(a):
        if a not in SWEEP:
            return f"answer one of {sorted(SWEEP)}"
        if a == on_test and a != chosen:
            return "that is the best on test: the choice may only read the validation numbers"
        if a != chosen:
            return "average the validation mAP over the seeds and take the largest"
        return None

    return verdict("05.1 choose on validation", answer, judge,
                   ok=f"{chosen}; its test mAP is then reported as it is")


COLUMNS = ("base", "low_rank", "correction", "clml")


def _identical_pairs() -> set[tuple[str, str]]:
    """Pairs of columns with equal loss and equal gradients on a batch with no score > 0.75."""
    from clml_lib.losses import CLMLLoss

    g = torch.Generator().manual_seed(52)
    feats = torch.randn(16, 6, generator=g, dtype=torch.float64).relu() + 0.01  # (16, 6)
    labels = (torch.rand(16, 4, generator=g) < 0.4).double()  # (16, 4)
    logits = torch.randn(16, 4, generator=g, dtype=torch.float64).clamp(max=0.9)  # sigma < 0.72
    out = {}
    for name in COLUMNS:
        s = logits.clone().requires_grad_(True)
        z = feats.clone().requires_grad_(True)
        loss = CLMLLoss.ablation(name, tau=0.75, start_epoch=0)(s, z, labels, 1)
        gs, gz = torch.autograd.grad(loss, (s, z), allow_unused=True)
        out[name] = (loss.detach(), gs, torch.zeros_like(z) if gz is None else gz)
    pairs = set()
    for i, a in enumerate(COLUMNS):
        for b in COLUMNS[i + 1:]:
            if all(torch.allclose(x, y, rtol=1e-12, atol=1e-12) for x, y in zip(out[a], out[b])):
                pairs.add((a, b))
    return pairs


def check_identical_columns(answer) -> bool:
    """Exercise 05.2. ``answer``: a set of pairs ``(column, column)`` of :data:`COLUMNS` that give
    the same loss and gradients when correction mines nothing."""
    expected = _identical_pairs()

    def judge(a):
        got = {tuple(sorted(p, key=COLUMNS.index)) for p in a}
        unknown = {c for p in got for c in p} - set(COLUMNS)
        if unknown:
            return f"unknown column names {sorted(unknown)}; use {list(COLUMNS)}"
        if got - expected:
            return ("a pair you gave differs: the low-rank term is there or not whatever "
                    "correction does")
        if expected - got:
            return "you missed a pair: what does each column do when no label is mined?"
        return None

    return verdict("05.2 identical columns", answer, judge, ok=str(sorted(expected)))


def check_released_factor(answer) -> bool:
    """Exercise 05.3. ``answer``: the factor on lambda that restores the CLML gradient under a
    GradScaler of initial scale 2**16 in the released gradient path."""
    from clml_lib.losses import official_style_low_rank

    g = torch.Generator().manual_seed(53)
    z0 = torch.randn(8, 5, generator=g).relu() + 0.05  # (8, 5)
    y = (torch.rand(8, 3, generator=g) < 0.5).float()  # (8, 3)
    w = torch.nn.Parameter(torch.eye(5))
    opt = torch.optim.SGD([w], lr=0.0)
    scaler = torch.amp.GradScaler("cpu")
    scaler.scale(official_style_low_rank(z0 @ w, y, 1.0, 1.0)).backward()
    scaler.unscale_(opt)
    seen = w.grad.clone()  # what the optimiser sees
    w.grad = None
    official_style_low_rank(z0 @ w, y, 1.0, 1.0).backward()  # no scaler: the intended gradient
    factor = float(w.grad.norm() / seen.norm())

    def judge(a):
        if close(a, 1 / factor, rtol=1e-3):
            return "the gradient is divided by the scale, so lambda must be multiplied by it"
        if not close(a, factor, rtol=1e-3):
            return "the optimiser sees the CLML gradient divided by the loss scale S"
        return None

    return verdict("05.3 released factor", answer, judge, ok=f"S = {factor:.0f}")


def check_seeds_needed(answer) -> bool:
    """Exercise 05.4. ``answer``: the smallest n with t_{0.975, n-1} * 0.23 / sqrt(n) <= 0.3."""
    from scipy import stats as st

    n = 2
    while st.t.ppf(0.975, n - 1) * 0.23 / math.sqrt(n) > 0.3:
        n += 1

    def half(m: int, quantile: float) -> float:
        return quantile * 0.23 / math.sqrt(m)

    def judge(a):
        if int(a) != a or int(a) < 2:
            return "a number of paired seeds is an integer >= 2 (one seed has no interval)"
        m = int(a)
        if m < n and half(m, 1.959963984540054) <= 0.3:
            return "use Student's t with n - 1 degrees of freedom, not the normal quantile"
        if m != n:
            return "evaluate the half-width for n = 2, 3, ... and stop at the first one <= 0.3"
        return None

    return verdict("05.4 seeds needed", answer, judge, ok=f"n = {n}")
