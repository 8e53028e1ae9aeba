"""clml_lib.stats against scipy.stats and against a direct (slow) bootstrap built on
clml_lib.metrics.mean_average_precision, on known data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from clml_lib.metrics import mean_average_precision
from clml_lib.stats import (
    MARGIN_VERDICTS, SIZE_CLASSES, SIZE_OF_VERDICT, VERDICTS, Interval, margin_code,
    margin_verdict, paired_bootstrap, paired_t_interval, replication_agreement, verdict,
)
from clml_lib.stats import _SortedScores


# ----------------------------------------------------------------------------- t interval
@pytest.mark.parametrize("base, clml", [
    ([50.0, 52.0, 54.0], [49.0, 52.5, 53.0]),
    ([61.2, 63.9, 60.4, 62.2, 64.8], [62.0, 64.1, 61.9, 62.0, 66.1]),
    (list(np.linspace(40, 60, 12)), list(np.linspace(40, 60, 12) + np.sin(np.arange(12)))),
])
def test_t_interval_equals_scipy_paired_t(base, clml):
    gains = np.subtract(clml, base)
    iv = paired_t_interval(gains)
    ci = sps.ttest_rel(clml, base).confidence_interval(0.95)
    assert iv.n == len(base) and iv.mean == pytest.approx(gains.mean(), abs=1e-12)
    assert iv.lo == pytest.approx(ci.low, abs=1e-10) and iv.hi == pytest.approx(ci.high, abs=1e-10)
    ci90 = sps.ttest_1samp(gains, 0.0).confidence_interval(0.90)
    iv90 = paired_t_interval(gains, confidence=0.90)
    assert (iv90.lo, iv90.hi) == pytest.approx((ci90.low, ci90.high), abs=1e-10)


def test_t_interval_by_hand_and_edge_cases():
    # gains -1, +0.5, -1: mean -0.5, s = sqrt(0.75), t_{0.975, 2} = 4.302652729911275
    iv = paired_t_interval([-1.0, 0.5, -1.0])
    half = 4.302652729911275 * math.sqrt(0.75) / math.sqrt(3)
    assert (iv.lo, iv.hi) == pytest.approx((-0.5 - half, -0.5 + half), abs=1e-9)
    one = paired_t_interval([0.3])
    assert (one.mean, one.lo, one.hi, one.n) == (0.3, None, None, 1)
    assert verdict(one) == VERDICTS[3] and one.text() == "+0.30"
    with pytest.raises(ValueError, match="at least one"):
        paired_t_interval([])
    with pytest.raises(ValueError, match="finite"):
        paired_t_interval([0.1, math.nan])
    with pytest.raises(ValueError, match="confidence"):
        paired_t_interval([0.1, 0.2], confidence=1.0)


def test_verdict_follows_the_interval():
    assert verdict(Interval(0.5, 0.1, 0.9, 5)) == "CLML better"
    assert verdict(Interval(-0.5, -0.9, -0.1, 5)) == "CLML worse"
    assert verdict(Interval(0.1, -0.2, 0.4, 5)) == "no difference detected"
    assert verdict(Interval(0.1, 0.0, 0.4, 5)) == "no difference detected"  # 0 inside: undecided
    assert Interval(0.25, -0.05, 0.55, 3).text() == "+0.25 [-0.05, +0.55]"


@pytest.mark.parametrize("lo, hi, code", [
    (0.6, 1.2, "better_big"), (0.5, 0.9, "better_big"),  # lower bound at or past +delta
    (0.1, 0.4, "better_small"), (0.1, 0.7, "better"),
    (-1.2, -0.6, "worse_big"), (-0.9, -0.5, "worse_big"),
    (-0.4, -0.1, "worse_small"), (-0.7, -0.1, "worse"),
    (-0.3, 0.4, "within"), (0.0, 0.45, "within"), (-0.45, 0.0, "within"),
    (-0.2, 0.6, "inconclusive"), (-0.8, 0.1, "inconclusive"), (-1.0, 1.0, "inconclusive"),
])
def test_margin_verdict_reads_the_interval_against_zero_and_delta(lo, hi, code):
    iv = Interval((lo + hi) / 2, lo, hi, 10)
    assert margin_code(iv, 0.5) == code
    assert margin_verdict(iv, 0.5) == MARGIN_VERDICTS[code].replace("δ", "0.5")
    # the sign-only verdict never contradicts the practical one
    sign = verdict(iv)
    if code.startswith("better"):
        assert sign == "CLML better"
    elif code.startswith("worse"):
        assert sign == "CLML worse"
    else:
        assert sign == "no difference detected"


def test_margin_verdict_scales_with_delta_and_refuses_bad_delta():
    iv = Interval(0.3, 0.1, 0.5, 10)
    assert margin_code(iv, 0.05) == "better_big" and margin_code(iv, 1.0) == "better_small"
    assert margin_code(Interval(0.3, None, None, 1), 0.5) == "na"
    within = margin_verdict(Interval(0.0, -0.1, 0.1, 4), 0.25)
    assert within == "within ±0.25 (no change that matters)"
    for bad in (0, -0.5, math.nan, math.inf, "0.5", True):
        with pytest.raises(ValueError, match="smallest effect of interest"):
            margin_code(iv, bad)


# ----------------------------------------------------------------------------- replication
def test_every_verdict_has_a_size_class():
    assert set(SIZE_OF_VERDICT) == set(MARGIN_VERDICTS)
    assert set(SIZE_OF_VERDICT.values()) == set(SIZE_CLASSES)
    # the size class keeps exactly what the verdict says about δ
    for code, size in SIZE_OF_VERDICT.items():
        if code.endswith("_big"):
            assert size == code
        elif code in ("better_small", "worse_small", "within"):
            assert size == "below"


def _agreement_by_hand(mean, sd, n, delta, draws, seed, level):
    """The same simulation, one replication at a time through the public scalar functions."""
    g = mean + sd * np.random.default_rng(seed).standard_normal((2, draws, n))
    same = 0
    for i in range(draws):
        a, b = (margin_code(paired_t_interval(g[k, i]), delta) for k in (0, 1))
        if level == "size":
            a, b = SIZE_OF_VERDICT[a], SIZE_OF_VERDICT[b]
        same += a == b
    return same / draws


@pytest.mark.parametrize("mean, sd, n, level", [
    (0.15, 0.5, 10, "verdict"), (0.15, 0.5, 30, "size"), (-0.4, 0.8, 6, "verdict"),
    (0.5, 0.3, 40, "verdict"), (0.0, 1.0, 12, "size"),
])
def test_replication_agreement_equals_the_scalar_functions(mean, sd, n, level):
    fast = replication_agreement(mean, sd, n, 0.5, draws=400, seed=7, level=level)
    assert fast == _agreement_by_hand(mean, sd, n, 0.5, 400, 7, level)


def test_replication_agreement_at_its_limits():
    # no noise: the verdict is always the same
    assert replication_agreement(0.1, 0.0, 10) == 1.0
    # far from every boundary, with many seeds: always the same verdict
    assert replication_agreement(2.0, 0.5, 50) == 1.0
    # no effect at all, many seeds: the interval holds 0 with probability 0.95 ("within ±δ"),
    # else it excludes 0 on either side ("better/worse, by less than δ", 0.025 each); the size
    # class ("changes by less than δ") is then always the same
    assert replication_agreement(0.0, 0.5, 100) == pytest.approx(0.95**2 + 2 * 0.025**2, abs=0.01)
    assert replication_agreement(0.0, 0.5, 100, level="size") == 1.0
    # a true gain on the boundary +δ with a tiny interval: the mean falls on either side, the
    # interval straddles δ in between ("better, size undecided"): two independent replications
    # agree with probability sum_k p_k^2, p_k computed from the sampling distribution of the mean
    n, sd = 400, 0.4
    half = sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n)
    z = half / (sd / math.sqrt(n))  # lo >= δ  <=>  mean >= δ + half
    p_big = p_small = sps.norm.sf(z)
    p_mid = 1 - p_big - p_small
    expect = p_big ** 2 + p_small ** 2 + p_mid ** 2
    assert replication_agreement(0.5, sd, n, draws=20000) == pytest.approx(expect, abs=0.01)
    # the size class is coarser: it agrees at least as often, draw by draw
    for args in ((0.15, 0.5, 10), (0.15, 0.5, 30), (0.3, 1.0, 20)):
        assert replication_agreement(*args, level="size") >= replication_agreement(*args)


def test_replication_agreement_refuses_bad_arguments():
    for kwargs, match in [
        (dict(mean=math.nan, sd=0.5, n=10), "finite"), (dict(mean=0.0, sd=-1.0, n=10), "sd >= 0"),
        (dict(mean=0.0, sd=0.5, n=1), "n must be"), (dict(mean=0.0, sd=0.5, n=10.0), "n must be"),
        (dict(mean=0.0, sd=0.5, n=10, draws=10), "draws"),
        (dict(mean=0.0, sd=0.5, n=10, delta=0.0), "smallest effect"),
        (dict(mean=0.0, sd=0.5, n=10, confidence=1.0), "confidence"),
        (dict(mean=0.0, sd=0.5, n=10, level="sign"), "level"),
    ]:
        with pytest.raises(ValueError, match=match):
            replication_agreement(**kwargs)


# ----------------------------------------------------------------------------- weighted mAP
def test_weighted_map_equals_the_metric_on_the_resampled_images():
    rng = np.random.default_rng(1)
    for _ in range(150):
        n = int(rng.integers(4, 50))
        scores = np.round(rng.normal(size=(n, 5)), int(rng.integers(0, 3)))  # many ties
        labels = (rng.random((n, 5)) < 0.3).astype(float)
        sorted_scores = _SortedScores(scores, labels)
        idx = rng.integers(0, n, size=n)
        weights = np.bincount(idx, minlength=n)[:, None].astype(float)  # (N, 1)
        got = sorted_scores.weighted_map(weights)[0]
        if labels[idx].sum() == 0:
            assert math.isnan(got)
            continue
        want = mean_average_precision(scores[idx], labels[idx], empty="skip")[0]
        assert got == pytest.approx(want, abs=1e-9)
        full = sorted_scores.weighted_map(np.ones((n, 1)))[0]
        if labels.sum():
            assert full == pytest.approx(mean_average_precision(scores, labels,
                                                                empty="skip")[0], abs=1e-9)


# ----------------------------------------------------------------------------- bootstrap
def _arms(rng, seeds=3, n=40, c=4, shift=0.0):
    arms = []
    for _ in range(seeds):
        labels = (rng.random((n, c)) < 0.3).astype(float)
        base = rng.normal(size=(n, c)) + labels
        clml = rng.normal(size=(n, c)) + (1.0 + shift) * labels
        arms.append((base, clml, labels))
    return arms


def _direct_bootstrap(arms, n_boot, seed):
    """The same resamples, each arm's mAP computed by the metric on the resampled images."""
    rng = np.random.default_rng(seed)
    reps = np.zeros(n_boot)
    for base, clml, labels in arms:
        n = labels.shape[0]
        idx = rng.integers(0, n, size=(n, n_boot))
        for b in range(n_boot):
            i = idx[:, b]
            reps[b] += (mean_average_precision(clml[i], labels[i], empty="skip")[0]
                        - mean_average_precision(base[i], labels[i], empty="skip")[0])
    reps /= len(arms)
    observed = np.mean([mean_average_precision(c, y, empty="skip")[0]
                        - mean_average_precision(b, y, empty="skip")[0] for b, c, y in arms])
    return observed, np.quantile(reps, [0.025, 0.975])


def test_bootstrap_equals_a_direct_computation():
    arms = _arms(np.random.default_rng(2))
    iv = paired_bootstrap(arms, n_boot=200, seed=7, chunk=200)
    observed, (lo, hi) = _direct_bootstrap(arms, 200, seed=7)
    assert iv.n == 3 and iv.mean == pytest.approx(observed, abs=1e-9)
    assert (iv.lo, iv.hi) == pytest.approx((lo, hi), abs=1e-9)
    assert paired_bootstrap(arms, n_boot=200, seed=7, chunk=200) == iv  # seeded


def test_bootstrap_sees_a_real_gain_and_no_gain():
    rng = np.random.default_rng(3)
    same = [(b, b.copy(), y) for b, _, y in _arms(rng)]
    iv = paired_bootstrap(same, n_boot=200)
    assert (iv.mean, iv.lo, iv.hi) == (0.0, 0.0, 0.0)
    better = paired_bootstrap(_arms(rng, n=120, shift=2.0), n_boot=300)
    assert better.lo > 0 and better.lo <= better.mean <= better.hi


def test_bootstrap_refuses_bad_input():
    rng = np.random.default_rng(4)
    (b, c, y), = _arms(rng, seeds=1)
    with pytest.raises(ValueError, match="at least one seed"):
        paired_bootstrap([])
    with pytest.raises(ValueError, match=r"seed 0 \+CLML scores has shape \(39, 4\)"):
        paired_bootstrap([(b, c[:-1], y)])
    with pytest.raises(ValueError, match=r"seed 0 labels must .*\{0, 1\}"):
        paired_bootstrap([(b, c, y * 2)])
    with pytest.raises(ValueError, match="non-finite"):
        paired_bootstrap([(b, np.full_like(c, np.nan), y)])
    with pytest.raises(ValueError, match="n_boot"):
        paired_bootstrap([(b, c, y)], n_boot=10)
