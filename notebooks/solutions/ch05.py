"""Solutions to the exercises of notebook 05 (ablations); written solutions in ch05.md.

Each ``solve_<name>()`` returns an answer that ``clml_lib.exercises.ch05.check_<name>`` accepts;
``WRONG`` lists typical wrong answers the checkers must reject (tests/test_solutions.py).
"""

import math

import numpy as np
from scipy import stats

from clml_lib.exercises.ch05 import SWEEP


def solve_choose_on_validation():
    return max(SWEEP, key=lambda k: np.mean(SWEEP[k]["val"]))


def solve_identical_columns():
    # no label mined: corrected labels == observed labels, so correction changes nothing
    return {("base", "correction"), ("low_rank", "clml")}


def solve_released_factor():
    return 2.0**16  # GradScaler's default init_scale


def solve_seeds_needed():
    n = 2
    while stats.t.ppf(0.975, n - 1) * 0.23 / math.sqrt(n) > 0.3:
        n += 1
    return n


WRONG = {
    "choose_on_validation": ["lambda=10", "lambda=1"],
    "identical_columns": [
        {("base", "correction")},
        {("base", "low_rank"), ("correction", "clml")},
        {("base", "correction"), ("low_rank", "clml"), ("base", "clml")},
    ],
    "released_factor": [1.0, 2.0**-16, 2.0**15],
    "seeds_needed": [3, 4, 10],
}
