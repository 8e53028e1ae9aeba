"""Missing-label simulation, encodings and split statistics."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clml_lib.data import (
    UNKNOWN,
    simulate_missing,
    split_stats,
    to_assume_negative,
    to_unknown_encoding,
    unknown_mask,
)

TARGETS = {"75left": 0.75, "40left": 0.40}


@pytest.fixture(scope="module")
def coco_like() -> torch.Tensor:
    """A COCO-sized label matrix: 82,081 x 80, ~2.94 positives per image, class 0 ('person')
    in ~45% of the images, a long tail of rare classes, every image with >= 1 positive."""
    rng = np.random.default_rng(2014)
    n, c = 82_081, 80
    tail = 1.0 / np.arange(1, c) ** 0.9  # Zipf-like frequencies of the other 79 classes
    tail *= (2.94 - 0.45) / tail.sum()
    freq = np.concatenate([[0.45], tail])  # (C,), sums to 2.94
    y = rng.random((n, c)) < freq  # (N, C)
    empty = ~y.any(1)
    y[np.nonzero(empty)[0], rng.choice(c, size=int(empty.sum()), p=freq / freq.sum())] = True
    return torch.from_numpy(y.astype(np.float32))


def test_fixture_is_coco_sized(coco_like):
    stats = split_stats(coco_like)
    assert stats.images == 82_081 and stats.empty_images == 0
    assert 2.85 < stats.positives_per_image < 3.05
    assert 0.43 < stats.per_class["0"] / stats.images < 0.48


@pytest.mark.parametrize("setting", ["75left", "40left"])
def test_fraction_kept_no_empty_only_positives_removed(coco_like, setting):
    obs = simulate_missing(coco_like, setting, seed=0)
    assert obs.shape == coco_like.shape and obs.dtype == torch.float32
    positives = int(coco_like.sum())
    kept = int(obs.sum())
    assert kept == round(TARGETS[setting] * positives)  # the exact count the recipe promises
    assert abs(kept / positives - TARGETS[setting]) < 0.01
    assert int((obs.sum(1) == 0).sum()) == 0  # no image left empty
    assert bool((obs <= coco_like).all())  # only positives removed, nothing invented
    assert set(obs.unique().tolist()) <= {0.0, 1.0}
    # every class keeps roughly its share (uniform dropping, not whole classes lost)
    per_class = obs.sum(0) / coco_like.sum(0)  # (C,)
    frequent = coco_like.sum(0) > 2000
    assert float(per_class[frequent].min()) > TARGETS[setting] - 0.1


def test_single_and_full(coco_like):
    single = simulate_missing(coco_like, "single", seed=3)
    assert bool((single.sum(1) == 1).all())
    assert bool((single <= coco_like).all())
    full = simulate_missing(coco_like, "full", seed=3)
    assert torch.equal(full, coco_like) and full.data_ptr() != coco_like.data_ptr()


def test_deterministic_per_seed(coco_like):
    a = simulate_missing(coco_like, "40left", seed=7)
    b = simulate_missing(coco_like, "40left", seed=7)
    c = simulate_missing(coco_like, "40left", seed=8)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # numpy input gives the same result
    assert torch.equal(simulate_missing(coco_like.numpy(), "40left", seed=7), a)


def test_nesting(coco_like):
    sets = {
        s: simulate_missing(coco_like, s, seed=11) for s in ("single", "40left", "75left", "full")
    }
    assert bool((sets["single"] <= sets["40left"]).all())
    assert bool((sets["40left"] <= sets["75left"]).all())
    assert bool((sets["75left"] <= sets["full"]).all())


def test_not_nested_draws_independently(coco_like):
    single = simulate_missing(coco_like, "single", seed=11, nested=False)
    left40 = simulate_missing(coco_like, "40left", seed=11, nested=False)
    assert torch.equal(left40, simulate_missing(coco_like, "40left", seed=11, nested=False))
    assert abs(left40.sum() / coco_like.sum() - 0.40) < 0.01
    # independent keys: many single labels are not in the 40left split (as in the reference files)
    assert int(((single == 1) & (left40 == 0)).sum()) > 1000


def test_empty_images_unchanged_and_generic_setting():
    y = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 1], [0, 1, 0, 0]], dtype=torch.float32)
    for setting in ("single", "40left", "75left", "20left"):
        if setting == "20left":  # round(0.2 * 7) = 1 < 3 non-empty images: the floor wins
            with pytest.warns(UserWarning, match="keeps 3/7 = 0.429 of the positives"):
                obs = simulate_missing(y, setting, seed=0)
        else:
            obs = simulate_missing(y, setting, seed=0)
        assert obs[1].sum() == 0  # nothing invented for the empty image
        assert bool((obs.sum(1)[[0, 2, 3]] >= 1).all())
        assert bool((obs <= y).all())
    assert int(simulate_missing(y, "75left", seed=0).sum()) == round(0.75 * 7)


def test_at_least_one_rule_wins_with_a_warning():
    y = torch.eye(5)  # one positive per image: 40% cannot be reached
    with pytest.warns(
        UserWarning, match=r"keeping one positive per image already keeps 5/5 = 1\.000"
    ):
        obs = simulate_missing(y, "40left", seed=0)
    assert torch.equal(obs, y)


@pytest.mark.parametrize(
    "labels, setting, seed, error, match",
    [
        (
            torch.tensor([[1.0, -1.0]]),
            "40left",
            0,
            ValueError,
            r"labels must hold only \{0, 1\}, found -1 in 1 of 2 entries \(first at "
            r"row 0, class 1\) \(simulate_missing needs",
        ),
        (
            torch.ones(4),
            "40left",
            0,
            ValueError,
            r"must be a 2-D \(N, C\) matrix, got shape \(4,\)",
        ),
        (torch.ones(2, 2), "50%", 0, ValueError, r"unknown missing-label setting '50%'"),
        (torch.ones(2, 2), "100left", 0, ValueError, r"unknown missing-label setting '100left'"),
        (torch.ones(2, 2), "single", -1, ValueError, r"seed must be a non-negative int, got -1"),
        (torch.ones(2, 2), "single", 1.5, ValueError, r"seed must be a non-negative int, got 1\.5"),
    ],
)
def test_simulate_missing_bad_inputs(labels, setting, seed, error, match):
    with pytest.raises(error, match=match):
        simulate_missing(labels, setting, seed)


def test_encodings_roundtrip_and_errors():
    obs = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    signed = to_unknown_encoding(obs)
    assert torch.equal(signed, torch.tensor([[1.0, -1.0, -1.0], [-1.0, 1.0, -1.0]]))
    known = torch.tensor([[False, True, False], [False, False, False]])
    signed2 = to_unknown_encoding(obs, known_negatives=known)
    assert torch.equal(signed2, torch.tensor([[1.0, 0.0, -1.0], [-1.0, 1.0, -1.0]]))
    assert torch.equal(to_assume_negative(signed2), obs)
    assert torch.equal(to_assume_negative(obs), obs)
    assert torch.equal(unknown_mask(signed2), signed2 == UNKNOWN)
    with pytest.raises(
        ValueError,
        match=(
            r"labels must hold only \{-1, 0, 1\} \(-1 = unknown\), found 2 in 1 of \d"
            r"+ entries \(first at row 0, class 1\)"
        ),
    ):
        to_assume_negative(torch.tensor([[1.0, 2.0]]))
    with pytest.raises(ValueError, match=r"observed must hold only \{0, 1\}, found -1"):
        to_unknown_encoding(signed)
    with pytest.raises(
        ValueError, match=r"known_negatives must have the shape of observed \(2, 3\), got \(3,\)"
    ):
        to_unknown_encoding(obs, known_negatives=torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="known_negatives marks an observed positive"):
        to_unknown_encoding(obs, known_negatives=obs.bool())


def test_split_stats_exact_counts():
    y = torch.tensor([[1, 1, 0], [0, 0, 0], [1, 0, 1], [1, 1, 1]], dtype=torch.float32)
    obs = torch.tensor([[1, 0, 0], [0, 0, 0], [0, 0, 1], [1, -1, 0]], dtype=torch.float32)
    s = split_stats(y, obs, names=["a", "b", "c"])
    assert (s.images, s.positives, s.empty_images) == (4, 7, 1)
    assert s.positives_per_image == pytest.approx(7 / 4)
    assert s.per_class == {"a": 3, "b": 2, "c": 2}
    assert (s.observed_positives, s.observed_empty_images, s.invented, s.unknown) == (3, 1, 0, 1)
    assert s.kept_fraction == pytest.approx(3 / 7)
    assert s.observed_per_class == {"a": 2, "b": 0, "c": 1}
    text = str(s)
    assert "positives per image  1.750" in text and "kept fraction 0.4286" in text
    assert s.to_dict()["per_class"] == {"a": 3, "b": 2, "c": 2}
    invented = split_stats(y, torch.ones_like(y))
    assert invented.invented == 5


def test_split_stats_bad_inputs():
    y = torch.eye(3)
    with pytest.raises(ValueError, match="got 2 class names for 3 classes"):
        split_stats(y, names=["a", "b"])
    with pytest.raises(
        ValueError, match=r"observed must have the shape of labels \(3, 3\), got \(3, 2\)"
    ):
        split_stats(y, torch.zeros(3, 2))
    with pytest.raises(
        ValueError,
        match=(
            r"observed must hold only \{-1, 0, 1\} \(-1 = unknown\), found 0.5 in \d"
            r"+ of \d+ entries \(first at row 0, class 0\)"
        ),
    ):
        split_stats(y, torch.full((3, 3), 0.5))
    with pytest.raises(ValueError, match=r"labels must hold only \{0, 1\}, found 2"):
        split_stats(2 * y)
