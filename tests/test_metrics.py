"""clml_lib.metrics: mAP vs scikit-learn, hand-computed cases, CF1 definitions, bad input."""

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score

from clml_lib.metrics import (
    average_precision_per_class,
    mean_average_precision,
    mined_label_quality,
    threshold_metrics,
)


def _random_case(n=200, c=7, seed=0):
    rng = np.random.default_rng(seed)
    targets = (rng.random((n, c)) < 0.3).astype(np.float64)
    targets[0] = 1  # every class has a positive
    scores = rng.normal(size=(n, c)) + 1.5 * targets  # continuous: no ties
    return scores, targets


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map_matches_sklearn_without_ties(seed):
    scores, targets = _random_case(seed=seed)
    m, ap = mean_average_precision(scores, targets)
    ref = np.array([average_precision_score(targets[:, c], scores[:, c]) for c in range(7)])
    np.testing.assert_allclose(ap, 100 * ref, rtol=1e-12)
    assert m == pytest.approx(100 * ref.mean(), rel=1e-12)
    # 'first' tie rule equals 'group' when there are no ties
    m2, _ = mean_average_precision(scores, targets, ties="first")
    assert m2 == pytest.approx(m, rel=1e-12)


def test_map_with_ties_group_matches_sklearn_and_is_order_independent():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 4, size=(60, 3)).astype(np.float64)  # many ties
    targets = (rng.random((60, 3)) < 0.4).astype(np.float64)
    targets[0] = 1
    _, ap = mean_average_precision(scores, targets, ties="group")
    ref = np.array([average_precision_score(targets[:, c], scores[:, c]) for c in range(3)])
    np.testing.assert_allclose(ap, 100 * ref, rtol=1e-12)
    perm = rng.permutation(60)
    _, ap_perm = mean_average_precision(scores[perm], targets[perm], ties="group")
    np.testing.assert_allclose(ap_perm, ap, rtol=1e-12)


def test_hand_computed_tiny_cases():
    # one class, ranking: pos, neg, pos, neg -> precisions at positives 1/1 and 2/3
    scores = np.array([[0.9], [0.8], [0.7], [0.1]])
    targets = np.array([[1], [0], [1], [0]])
    m, ap = mean_average_precision(scores, targets)
    assert m == pytest.approx(100 * (1 + 2 / 3) / 2)
    # ties: scores [0.5, 0.5] with targets [0, 1]: 'group' gives 1/2, 'first' (index order:
    # the negative first) gives 1/2 too; with targets [1, 0] 'first' gives 1, 'group' 1/2
    s = np.array([[0.5], [0.5]])
    assert mean_average_precision(s, np.array([[1], [0]]), ties="group")[0] == pytest.approx(50)
    assert mean_average_precision(s, np.array([[1], [0]]), ties="first")[0] == pytest.approx(100)
    assert mean_average_precision(s, np.array([[0], [1]]), ties="first")[0] == pytest.approx(50)
    # torch input, two classes: perfect ranking (AP 1) and worst ranking with one positive (1/3)
    s = torch.tensor([[3.0, 0.0], [2.0, 1.0], [1.0, 2.0]])
    t = torch.tensor([[1.0, 1.0], [0.0, 0.0], [0.0, 0.0]])
    m, ap = mean_average_precision(s, t)
    np.testing.assert_allclose(ap, [100.0, 100 / 3])
    assert m == pytest.approx((100 + 100 / 3) / 2)


def test_empty_class_policies():
    scores = np.array([[0.9, 0.2], [0.1, 0.3]])
    targets = np.array([[1, 0], [0, 0]])
    with pytest.raises(ValueError, match=r"no positive target.*indices \[1\]"):
        mean_average_precision(scores, targets)
    m, ap = mean_average_precision(scores, targets, empty="skip")
    assert m == pytest.approx(100.0) and np.isnan(ap[1])
    ap_s, n_skipped = average_precision_per_class(scores, targets, empty="skip")
    assert n_skipped == 1
    m0, ap0 = mean_average_precision(scores, targets, empty="zero")
    assert m0 == pytest.approx(50.0) and ap0[1] == 0.0
    with pytest.raises(ValueError, match="no class has a positive"):
        mean_average_precision(scores, np.zeros((2, 2)), empty="skip")


def test_threshold_metrics_definitions_against_sklearn():
    rng = np.random.default_rng(5)
    targets = (rng.random((300, 6)) < 0.3).astype(int)
    targets[0] = 1
    probs = np.clip(0.35 * targets + rng.random((300, 6)) * 0.7, 0, 1)
    probs[:, 5] = 0.1  # class 5: never predicted -> precision 0 by convention
    out = threshold_metrics(probs, targets, threshold=0.5)
    pred = (probs >= 0.5).astype(int)
    p_c = precision_score(targets, pred, average=None, zero_division=0)
    r_c = recall_score(targets, pred, average=None, zero_division=0)
    f_c = f1_score(targets, pred, average=None, zero_division=0)
    cp, cr = p_c.mean(), r_c.mean()
    assert out["CP"] == pytest.approx(100 * cp)
    assert out["CR"] == pytest.approx(100 * cr)
    assert out["CF1"] == pytest.approx(100 * 2 * cp * cr / (cp + cr))
    assert out["macro_F1"] == pytest.approx(100 * f_c.mean())
    assert out["CF1"] != pytest.approx(out["macro_F1"])  # the two definitions differ here
    assert out["OP"] == pytest.approx(100 * precision_score(targets.ravel(), pred.ravel()))
    assert out["OR"] == pytest.approx(100 * recall_score(targets.ravel(), pred.ravel()))
    assert out["OF1"] == pytest.approx(100 * f1_score(targets.ravel(), pred.ravel()))


def test_threshold_metrics_hand_case():
    probs = np.array([[0.9, 0.6], [0.4, 0.7], [0.8, 0.2]])
    targets = np.array([[1, 0], [1, 1], [0, 0]])
    out = threshold_metrics(probs, targets)
    # class 0: predicted {0,2}, positives {0,1}: P=1/2 R=1/2
    # class 1: predicted {0,1}, positives {1}: P=1/2 R=1
    assert out["CP"] == pytest.approx(50.0)
    assert out["CR"] == pytest.approx(75.0)
    assert out["CF1"] == pytest.approx(100 * 2 * 0.5 * 0.75 / 1.25)
    assert out["macro_F1"] == pytest.approx(100 * (0.5 + 2 / 3) / 2)
    assert out["OP"] == pytest.approx(50.0) and out["OR"] == pytest.approx(100 * 2 / 3)


def test_mined_label_quality():
    observed = np.array([[1, 0, 0], [0, 1, 0]])
    truth = np.array([[1, 1, 0], [1, 1, 1]])
    mined = np.array([[False, True, True], [False, False, True]])
    q = mined_label_quality(mined, observed, truth)
    assert q == {"count": 3, "true": 2, "missing": 3, "precision": 2 / 3, "recall": 2 / 3}
    q0 = mined_label_quality(np.zeros((2, 3), bool), observed, truth)
    assert q0["precision"] is None and q0["recall"] == 0.0
    # the 1/0/-1 encoding: a known negative (0) and an unknown (-1) hidden positive both count
    # as missing (observed is not 1); the same numbers as the 1/0 matrix above
    ternary = np.array([[1, -1, 0], [-1, 1, -1]])
    assert mined_label_quality(mined, ternary, truth) == q


@pytest.mark.parametrize(
    "mined, observed, truth, match",
    [
        (
            [[1, 0]],
            [[1, 0]],
            [[1, 1]],
            r"mined marks 1 observed positives \(first at row 0, class 0\)",
        ),
        ([[2, 0]], [[0, 0]], [[1, 1]], r"mined must hold only \{0, 1\}, found 2"),
        ([[0, 0]], [[0, 0.5]], [[1, 1]], r"observed must hold only \{-1, 0, 1\}"),
        ([[0, 0]], [[0, 0]], [[1, -1]], r"truth must hold only \{0, 1\}, found -1"),
        ([[0, 0]], [[0, 0, 0]], [[1, 1]], r"must be the same \(N, C\) shape"),
    ],
)
def test_mined_label_quality_refuses(mined, observed, truth, match):
    with pytest.raises(ValueError, match=match):
        mined_label_quality(np.array(mined), np.array(observed), np.array(truth))


@pytest.mark.parametrize(
    "scores, targets, match",
    [
        (np.zeros((3,)), np.zeros((3,)), "2-D"),
        (np.zeros((3, 2)), np.zeros((3, 3)), r"same shape.*\(3, 2\) vs \(3, 3\)"),
        (np.zeros((0, 2)), np.zeros((0, 2)), "at least one sample"),
        (np.array([[np.nan, 0.0]]), np.array([[1, 0]]), "NaN/inf"),
        (
            np.array([[0.1, 0.2]]),
            np.array([[1, -1]]),
            r"targets must hold only \{0, 1\}, found -1 in 1 of 2 entries \(first at"
            r" row 0, class 1\); -1 'unknown'",
        ),
    ],
)
def test_bad_input_raises(scores, targets, match):
    with pytest.raises(ValueError, match=match):
        mean_average_precision(scores, targets)


def test_threshold_metrics_bad_input():
    t = np.array([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        threshold_metrics(np.array([[2.0, -1.0], [0.0, 0.0]]), t)
    with pytest.raises(ValueError, match="threshold must be in"):
        threshold_metrics(np.full((2, 2), 0.5), t, threshold=1.5)
    with pytest.raises(ValueError, match="ties must be"):
        mean_average_precision(np.zeros((2, 2)), t, ties="random")


def test_chance_map_is_the_expected_map_of_random_rankings():
    from clml_lib.metrics import chance_map

    rng = np.random.default_rng(3)
    targets = (rng.random((40, 5)) < np.array([0.05, 0.2, 0.5, 0.8, 0.3])).astype(float)
    targets[0] = 1.0  # every class has a positive
    # exact formula against the mean over random rankings scored by the library's own mAP
    draws = [mean_average_precision(rng.random(targets.shape), targets)[0] for _ in range(4000)]
    mc, se = np.mean(draws), np.std(draws) / np.sqrt(len(draws))
    assert abs(chance_map(targets) - mc) < 4 * se
    # enumeration for a tiny case: N = 3, one positive -> E[AP] = (1 + 1/2 + 1/3) / 3
    one = np.array([[1.0], [0.0], [0.0]])
    assert chance_map(one) == pytest.approx(100 * (1 + 1 / 2 + 1 / 3) / 3, abs=1e-12)
    # a class that is always positive has AP 1 whatever the ranking
    assert chance_map(np.ones((7, 1))) == pytest.approx(100.0, abs=1e-12)
    # classes without a positive are left out, as the engine scores the test split
    assert chance_map(np.c_[one, np.zeros((3, 1))]) == pytest.approx(chance_map(one))
    for bad, msg in ((np.zeros((4, 2)), "no class"), (np.ones((1, 2)), "at least 2"),
                     (np.full((3, 2), 2.0), "only {0, 1}, found 2"), (np.ones(3), "2-D")):
        with pytest.raises(ValueError, match=msg):
            chance_map(bad)
