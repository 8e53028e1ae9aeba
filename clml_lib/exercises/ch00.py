r"""Exercise checkers of notebook 00 (overview). Solutions: ``notebooks/solutions/ch00.py``."""

from __future__ import annotations

import torch

from . import close, verdict


def _demo(setting: str = "40left"):
    """The 8-image demo of notebook 00: truth (8, 12) and observed (8, 12) labels."""
    from clml_lib.data import TeachingMultiLabel, simulate_missing

    truth = TeachingMultiLabel("train", num_images=8, seed=0).labels  # (8, 12)
    return truth, simulate_missing(truth, setting, seed=0)


def _demo_tensors():
    """logits (8, 12), features (8, 16), observed (8, 12) of notebook 00 section 2 (float64)."""
    _, observed = _demo()
    g = torch.Generator().manual_seed(0)
    N, C, D = observed.shape[0], observed.shape[1], 16
    logits = 2.0 * torch.randn(N, C, generator=g, dtype=torch.float64)  # (N, C)
    features = torch.randn(N, D, generator=g, dtype=torch.float64).relu()  # (N, D)
    return logits, features, observed.double()


def _low_rank_value(Z: torch.Tensor, Y: torch.Tensor, delta: float = 1.0) -> float:
    """(1/N)(sum_k max(delta, ||Z_k||_*) - ||Z||_*) from singular values, float64."""
    nuc = lambda A: float(torch.linalg.svdvals(A.double()).sum()) if len(A) else 0.0  # noqa: E731
    local = sum(max(delta, nuc(Z[Y[:, k] == 1])) for k in range(Y.shape[1]))
    return (local - nuc(Z)) / Z.shape[0]


def check_false_negative_share(answer: dict | None) -> bool:
    """Exercise 00.1. ``answer = {"75left": share, "single": share}``: for the 8 demo images
    (seed 0), the share of the zeros of the training matrix that are really positives."""

    def judge(a):
        for setting in ("75left", "single"):
            if setting not in a:
                return f"give a value for {setting!r} (a dict with keys '75left' and 'single')"
            truth, obs = _demo(setting)
            share = float((truth.sum() - obs.sum()) / (truth.numel() - obs.sum()))
            if not close(a[setting], share, rtol=0, atol=5e-4):
                return (
                    f"the share for {setting!r} is off: count the zeros of the observed matrix "
                    "(numel - observed positives) and the hidden positives among them"
                )
        return None

    return verdict("00.1 false-negative share", answer, judge)


def check_epoch_zero(answer: dict | None) -> bool:
    """Exercise 00.2. ``answer = {"mined": int, "changed": "base" | "low_rank" | "both" | "none"}``:
    the number of mined labels at ``epoch=0`` and which part of ``forward_parts`` changes from
    ``epoch=1`` to ``epoch=0``."""
    logits, features, observed = _demo_tensors()

    def judge(a):
        p = torch.sigmoid(logits)
        mined1 = (observed == 0) & (p > 0.75)  # epoch 1 >= e0: correction on
        base_same = True  # the base loss sees the observed labels at every epoch
        Yhat1 = ((observed == 1) | mined1).double()
        low_same = (
            abs(_low_rank_value(features, Yhat1) - _low_rank_value(features, observed)) < 1e-12
        )
        expected = {
            (True, True): "none",
            (True, False): "low_rank",
            (False, True): "base",
            (False, False): "both",
        }[(base_same, low_same)]
        if int(a.get("mined", -1)) != 0:
            return "how many labels can be mined before the start epoch e0 = 1?"
        if a.get("changed") != expected:
            return "which labels does the base loss see, and which ones the CLML term?"
        return None

    return verdict("00.2 epoch 0", answer, judge)


def check_feature_scale(answer: float | None) -> bool:
    """Exercise 00.3. ``answer``: the ratio CLML part with ``10 * features`` / CLML part with
    ``features`` (notebook 00 section 2, ``epoch=1``)."""
    logits, features, observed = _demo_tensors()
    Yhat = ((observed == 1) | (torch.sigmoid(logits) > 0.75)).double()
    ratio = _low_rank_value(10 * features, Yhat) / _low_rank_value(features, Yhat)

    def judge(a):
        if close(a, 10.0, rtol=1e-9) and not close(ratio, 10.0, rtol=1e-6):
            return (
                "not exactly 10: which labels sit under the floor Delta before scaling, and after?"
            )
        if not close(a, ratio, rtol=1e-4):
            return "compute both CLML parts with forward_parts (or svdvals) and divide"
        return None

    return verdict("00.3 feature scale", answer, judge, ok="the floor breaks 1-homogeneity")


def check_equivalent_lambda(answer: float | None) -> bool:
    """Exercise 00.4. ``answer``: lambda for ``reduction='mean'`` equivalent to lambda = 1 with a
    summed base loss, at N = 64 and C = 80."""
    expected = 1.0 / (64 * 80)  # a mean divides the summed base loss by N * C

    def judge(a):
        if not close(a, expected, rtol=1e-9):
            return "by what factor does a mean shrink a sum over N * C terms?"
        return None

    return verdict("00.4 equivalent lambda", answer, judge)
