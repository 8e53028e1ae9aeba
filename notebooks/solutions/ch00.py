"""Solutions to the exercises of notebook 00 (overview); written solutions in ch00.md.

Each ``solve_<name>()`` returns an answer that ``clml_lib.exercises.ch00.check_<name>`` accepts;
``WRONG`` lists typical wrong answers the checkers must reject (tests/test_solutions.py).
"""

import torch

from clml_lib.data import TeachingMultiLabel, simulate_missing
from clml_lib.losses import CLMLLoss


def _demo_tensors():
    truth = TeachingMultiLabel("train", num_images=8, seed=0).labels  # (8, 12)
    observed = simulate_missing(truth, "40left", seed=0).double()  # (8, 12)
    g = torch.Generator().manual_seed(0)
    logits = 2.0 * torch.randn(8, 12, generator=g, dtype=torch.float64)  # (8, 12)
    features = torch.randn(8, 16, generator=g, dtype=torch.float64).relu()  # (8, 16)
    return logits, features, observed


def solve_false_negative_share():
    truth = TeachingMultiLabel("train", num_images=8, seed=0).labels
    out = {}
    for setting in ("75left", "single"):
        obs = simulate_missing(truth, setting, seed=0)
        out[setting] = float((truth.sum() - obs.sum()) / (truth.numel() - obs.sum()))
    return out


def solve_epoch_zero():
    logits, features, observed = _demo_tensors()
    crit = CLMLLoss("BCE", lambda_=1.0, tau=0.75, start_epoch=1)
    p0 = crit.forward_parts(logits, features, observed, epoch=0)
    p1 = crit.forward_parts(logits, features, observed, epoch=1)
    base_changed = not torch.equal(p0.base, p1.base)
    low_changed = not torch.equal(p0.low_rank, p1.low_rank)
    changed = {(False, False): "none", (False, True): "low_rank", (True, False): "base"}.get(
        (base_changed, low_changed), "both"
    )
    return {"mined": int(p0.mined.sum()), "changed": changed}


def solve_feature_scale():
    logits, features, observed = _demo_tensors()
    crit = CLMLLoss("BCE", lambda_=1.0, tau=0.75, start_epoch=1)
    small = crit.forward_parts(logits, features, observed, epoch=1).low_rank
    large = crit.forward_parts(logits, 10 * features, observed, epoch=1).low_rank
    return float(large / small)


def solve_equivalent_lambda():
    from clml_lib.losses import equivalent_lambda

    return equivalent_lambda(1.0, batch_size=64, num_classes=80)


WRONG = {
    "false_negative_share": [{"75left": 0.0, "single": 0.0}, {"75left": 0.1}],
    "epoch_zero": [{"mined": 0, "changed": "base"}, {"mined": 3, "changed": "low_rank"}],
    "feature_scale": [10.0, 1.0],
    "equivalent_lambda": [1.0, 1 / 64],
}
