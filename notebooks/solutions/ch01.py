"""Solutions to the exercises of notebook 01 (false-negative mining); written solutions in ch01.md.

Each ``solve_<name>()`` returns an answer that ``clml_lib.exercises.ch01.check_<name>`` accepts;
``WRONG`` lists typical wrong answers the checkers must reject (tests/test_solutions.py).
"""

from clml_lib.data import TeachingMultiLabel, simulate_missing


def _truth():
    return TeachingMultiLabel("train", seed=0).labels  # (2000, 12) full labels


def solve_false_negative_rates():
    truth, out = _truth(), {}
    for setting in ("75left", "single"):
        obs = simulate_missing(truth, setting, seed=0)  # (N, C)
        out[setting] = float(((truth == 1) & (obs == 0)).sum() / (obs == 0).sum())
    return out


def solve_bce_minimiser():
    # E[BCE] = -(q log p + (1 - q) log(1 - p)) with q = keep * p_true; its derivative
    # (p - q) / (p (1 - p)) vanishes at p = q
    return lambda p_true, keep: keep * p_true


def solve_keep_rate_by_count():
    truth = _truth()
    obs = simulate_missing(truth, "40left", seed=0)
    m = truth.sum(1).long()  # (N,)
    return {int(k): float(obs[m == k].sum() / truth[m == k].sum()) for k in m.unique().tolist()}


def solve_single_setting_scores():
    return lambda m: 1.0 / m


WRONG = {
    "false_negative_rates": [{"75left": 0.25, "single": 0.66}, {"single": 0.1}],
    "bce_minimiser": [lambda p_true, keep: p_true, lambda p_true, keep: keep],
    "keep_rate_by_count": [{1: 0.4, 2: 0.4, 3: 0.4, 4: 0.4, 5: 0.4}, {1: 1.0}],
    "single_setting_scores": [lambda m: 1.0, lambda m: 0.4],
}
