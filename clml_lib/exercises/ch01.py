r"""Exercise checkers of notebook 01 (false-negative mining).

Solutions: ``notebooks/solutions/ch01.py``.
"""

from __future__ import annotations


import numpy as np

from . import close, verdict


def _teaching(setting: str):
    """Full training labels (2000, 12) of the teaching set and the observed labels (seed 0)."""
    from clml_lib.data import TeachingMultiLabel, simulate_missing

    truth = TeachingMultiLabel("train", seed=0).labels  # (N, C)
    return truth, simulate_missing(truth, setting, seed=0)


def check_false_negative_rates(answer: dict | None) -> bool:
    """Exercise 01.1. ``answer = {"75left": rate, "single": rate}``: over the teaching training set
    (seed 0), the share of assume-negative "negatives" that are missing positives."""

    def judge(a):
        for setting in ("75left", "single"):
            if setting not in a:
                return "give a dict with keys '75left' and 'single'"
            truth, obs = _teaching(setting)
            rate = float(((truth == 1) & (obs == 0)).sum() / (obs == 0).sum())
            if not close(a[setting], rate, rtol=0, atol=5e-4):
                return f"the rate for {setting!r} is off: missing positives / all zeros of y"
        return None

    return verdict("01.1 false-negative rates", answer, judge)


def _expected_bce(p: np.ndarray, q: float) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -(q * np.log(p) + (1 - q) * np.log(1 - p))


def check_bce_minimiser(answer) -> bool:
    """Exercise 01.2. ``answer``: a function ``f(p_true, keep)`` returning the score p that
    minimises the expected BCE of an unobserved-or-observed label, when the label is truly present
    with probability ``p_true`` and a present label is kept (observed) with probability ``keep``."""
    grid = np.linspace(1e-4, 1 - 1e-4, 20001)

    def judge(f):
        for p_true in (0.0, 0.3, 0.9, 1.0):
            for keep in (0.25, 0.4, 0.75, 1.0):
                q = p_true * keep  # P(y_obs = 1 | x)
                numeric = grid[np.argmin(_expected_bce(grid, q))]  # brute-force minimiser
                got = float(f(p_true, keep))
                if not close(got, numeric, rtol=0, atol=2e-4):
                    return (
                        "your minimiser disagrees with a brute-force minimisation of the "
                        f"expected BCE at p_true={p_true}, keep={keep}: "
                        "differentiate q*log p + (1-q)*log(1-p)"
                    )
        return None

    return verdict("01.2 BCE minimiser", answer, judge, ok="the optimum is keep x P(true)")


def check_keep_rate_by_count(answer: dict | None) -> bool:
    """Exercise 01.3. ``answer = {m: keep rate}`` for every label count m of the teaching training
    set under '40left' (seed 0): the share of the true labels of m-label images that stay
    observed."""
    truth, obs = _teaching("40left")
    m = truth.sum(1).long()  # (N,) labels per image
    rates = {int(k): float(obs[m == k].sum() / truth[m == k].sum()) for k in m.unique().tolist()}

    def judge(a):
        if set(int(k) for k in a) != set(rates):
            return f"give a rate for every label count present: {sorted(rates)}"
        for k, r in rates.items():
            if not close(a[k], r, rtol=0, atol=5e-4):
                return f"the keep rate of {k}-label images is off (observed / true labels there)"
        if not close(a[1], 1.0):
            return "an image with a single true label keeps it: its rate must be 1"
        return None

    return verdict("01.3 keep rate by label count", answer, judge, ok="the single-label exception")


def check_single_setting_scores(answer) -> bool:
    """Exercise 01.4. ``answer``: a function ``f(m)`` giving, under the 'single' setting, the BCE
    optimum of the score of a surely present label of an image with ``m`` true labels."""
    truth, obs = _teaching("single")
    m = truth.sum(1).long()

    def judge(f):
        for k in m.unique().tolist():
            measured = float(obs[m == k].sum() / truth[m == k].sum())  # keep rate of m-label images
            if not close(f(int(k)), measured, rtol=0, atol=1e-6):
                return (
                    f"for m={k}: one of the m true labels is kept, at random; the optimum is the "
                    "probability that this label is the one observed"
                )
        if not close(f(7), 1 / 7):
            return "your formula only fits the label counts present; write it for any m"
        return None

    return verdict(
        "01.4 single-setting scores",
        answer,
        judge,
        ok="at the optimum tau = 0.75 mines nothing: 1/m <= 0.5 for m >= 2",
    )
