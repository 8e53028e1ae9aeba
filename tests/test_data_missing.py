"""Missing-label simulation, encodings and split statistics."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from clml_lib.data import (
    RECIPES,
    UNKNOWN,
    check_recipe,
    keep_counts,
    keep_rate,
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


# ------------------------------------------------------------------ per-image recipe (default)
#: Kept positives of an image with n positives in the released COCO-2014 files, read off them.
RELEASED_COUNTS = {
    "40left": {**dict.fromkeys(range(1, 5), 1), **dict.fromkeys(range(5, 10), 2),
               **dict.fromkeys(range(10, 15), 3), **dict.fromkeys(range(15, 19), 4)},
    "75left": {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 4, 8: 5, 9: 5, 10: 6, 11: 6},
    "single": dict.fromkeys(range(1, 19), 1),
    "full": {n: n for n in range(1, 19)},
}  # fmt: skip


def _rows_with_counts(counts: list[int], c: int, reps: int, seed: int) -> torch.Tensor:
    """A (len(counts) * reps, c) 0/1 matrix: each n of ``counts`` on ``reps`` rows, placed on
    random classes of each row."""
    rng = np.random.default_rng(seed)
    rows = []
    for n in counts:
        for _ in range(reps):
            row = np.zeros(c, dtype=np.float32)
            row[rng.choice(c, size=n, replace=False)] = 1.0
            rows.append(row)
    return torch.from_numpy(np.stack(rows))


@pytest.mark.parametrize("setting", list(RELEASED_COUNTS))
def test_per_image_counts_match_the_released_files(setting):
    table = {0: 0, **RELEASED_COUNTS[setting]}  # an empty image stays empty
    y = _rows_with_counts(sorted(table), c=24, reps=5, seed=1)
    n = y.sum(1).long().tolist()
    assert sorted(set(n)) == sorted(table)
    for seed in (0, 3):
        obs = simulate_missing(y, setting, seed=seed)  # the default recipe
        assert obs.dtype == torch.float32 and obs.shape == y.shape
        assert bool((obs <= y).all())  # only positives removed
        kept = obs.sum(1).long().tolist()
        assert [table[n_i] for n_i in n] == kept


def test_keep_counts_rule_reproduces_both_anchors_up_to_100():
    n = np.arange(0, 101)
    assert keep_counts(n, "40left").tolist() == [0] + [min(m, m // 5 + 1) for m in n[1:]]
    assert keep_counts(n, "75left").tolist() == [0] + [min(m, m // 2 + 1) for m in n[1:]]
    assert keep_counts(n, "single").tolist() == [0] + [1] * 100
    assert keep_counts(n, "full").tolist() == n.tolist()
    assert keep_rate("40left") == Fraction(1, 5) and keep_rate("75left") == Fraction(1, 2)
    assert keep_rate("single") == 0 and keep_rate("full") is None
    assert keep_rate("20left") == Fraction(1, 10) and keep_rate("90left") == Fraction(4, 5)
    # monotone in f for every n, between single and full
    table = np.stack([keep_counts(n, f"{p}left") for p in range(1, 100)])  # (99, 101)
    assert bool((np.diff(table, axis=0) >= 0).all())
    assert bool((table >= keep_counts(n, "single")).all() and (table <= n).all())
    rates = [keep_rate(f"{p}left") for p in range(1, 100)]
    assert all(a < b for a, b in zip(rates, rates[1:]))
    assert keep_counts([3.0, 0.0], "40left").tolist() == [1, 0]  # whole floats are counts


@pytest.mark.parametrize(
    "n_positives, match",
    [
        ([1, -1], "n_positives must hold non-negative integers"),
        ([1.5], "n_positives must hold non-negative integers"),
        (np.ones((2, 2), dtype=int), r"n_positives must be 1-D \(N,\), got shape \(2, 2\)"),
    ],
)
def test_keep_counts_bad_inputs(n_positives, match):
    with pytest.raises(ValueError, match=match):
        keep_counts(n_positives, "40left")


# chi-square 0.999 quantiles (df -> value), for bounds that a correct sampler passes
CHI2_999 = {4: 18.47, 6: 22.46, 9: 27.88, 20: 45.31}


@pytest.mark.parametrize("setting, n, k", [("40left", 7, 2), ("75left", 5, 3), ("single", 10, 1)])
def test_choice_is_uniform_within_an_image(setting, n, k):
    """Many images with the same n positives on the same classes: each position is kept with
    probability k/n (binomial z and chi-square bounds) and, at 40left, each pair of positions
    is the kept pair with probability 1 / C(n, 2)."""
    reps, c = 6000, 16
    where = np.sort(np.random.default_rng(5).choice(c, size=n, replace=False))
    y = torch.zeros(reps, c)
    y[:, torch.from_numpy(where)] = 1.0
    obs = simulate_missing(y, setting, seed=9)[:, torch.from_numpy(where)].numpy()  # (R, n)
    assert bool((obs.sum(1) == k).all())
    kept = obs.sum(0)  # (n,) kept per position
    p = k / n
    z = (kept - reps * p) / np.sqrt(reps * p * (1 - p))
    assert np.abs(z).max() < 4.0, z
    chi2 = float(((kept - reps * p) ** 2 / (reps * p)).sum())
    assert chi2 < CHI2_999[n - 1], chi2  # total fixed: n - 1 degrees of freedom
    if k == 2:  # the kept pair: a uniform choice among the C(n, 2) pairs
        codes = [tuple(np.nonzero(r)[0]) for r in obs]
        pairs = {(a, b): 0 for a in range(n) for b in range(a + 1, n)}
        for code in codes:
            pairs[code] += 1
        expected = reps / len(pairs)
        chi2 = sum((v - expected) ** 2 / expected for v in pairs.values())
        assert chi2 < CHI2_999[20], chi2


def test_per_class_keep_counts_agree_with_a_uniform_choice(coco_like):
    """The check run on the released files: each class's kept count against a uniform choice
    within each image (E = sum of k(n)/n over its images)."""
    for setting in ("40left", "75left"):
        obs = simulate_missing(coco_like, setting, seed=0).numpy()
        y = coco_like.numpy()
        n = y.sum(1).astype(int)
        p = keep_counts(n, setting) / n  # (N,) chance that a given positive is kept
        expected = (y * p[:, None]).sum(0)  # (C,)
        sd = np.sqrt((y * (p * (1 - p))[:, None]).sum(0))
        z = (obs.sum(0) - expected) / np.where(sd > 0, sd, 1)
        assert np.abs(z).max() < 4.5, (setting, np.abs(z).max())


def test_per_image_kept_fraction_on_a_coco_like_matrix(coco_like):
    n = coco_like.sum(1).long().numpy()
    positives = int(n.sum())
    for setting, low, high in (("40left", 0.37, 0.41), ("75left", 0.73, 0.77)):
        obs = simulate_missing(coco_like, setting, seed=0)
        assert int(obs.sum()) == int(keep_counts(n, setting).sum())  # exact per-image counts
        assert low < int(obs.sum()) / positives < high
        assert int((obs.sum(1) == 0).sum()) == 0  # no image left empty
        assert bool((obs <= coco_like).all())
        assert set(obs.unique().tolist()) <= {0.0, 1.0}


def test_per_image_deterministic_per_seed(coco_like):
    a = simulate_missing(coco_like, "40left", seed=7)
    assert torch.equal(a, simulate_missing(coco_like, "40left", seed=7))
    assert torch.equal(a, simulate_missing(coco_like.numpy(), "40left", seed=7))
    assert torch.equal(a, simulate_missing(coco_like, "40left", seed=7, recipe="per_image"))
    b = simulate_missing(coco_like, "40left", seed=8)
    assert not torch.equal(a, b)
    assert torch.equal(a.sum(1), b.sum(1))  # other positives, the same count per image
    # the default is not the global-quota draw
    assert not torch.equal(a, simulate_missing(coco_like, "40left", seed=7, recipe="global_quota"))


def test_per_image_settings_are_drawn_independently(coco_like):
    """Not nested: with n = 4 positives both 'single' and '40left' keep one, which agree in
    about 1/4 of the images (a nested draw would always agree)."""
    sets = {s: simulate_missing(coco_like, s, seed=11) for s in ("single", "40left", "75left")}
    four = coco_like.sum(1) == 4
    same = ((sets["single"] == 1) & (sets["40left"] == 1))[four].any(1).double()
    m = int(four.sum())
    assert m > 5000
    assert abs(float(same.mean()) - 0.25) < 4 * (0.25 * 0.75 / m) ** 0.5
    # many 40left labels absent from the 75left split, as in the released files
    assert int(((sets["40left"] == 1) & (sets["75left"] == 0)).sum()) > 5000
    assert int(((sets["single"] == 1) & (sets["40left"] == 0)).sum()) > 5000


def test_per_image_empty_images_unchanged_and_small_matrix():
    y = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 1], [0, 1, 0, 0]], dtype=torch.float32)
    for setting in ("single", "40left", "75left", "20left", "90left", "full"):
        obs = simulate_missing(y, setting, seed=0)
        assert obs[1].sum() == 0  # nothing invented for the empty image
        assert obs.sum(1).tolist() == keep_counts([3, 0, 3, 1], setting).tolist()
        assert bool((obs <= y).all())
    assert simulate_missing(y, "75left", seed=0).sum(1).tolist() == [2, 0, 2, 1]
    assert simulate_missing(y, "90left", seed=0).sum(1).tolist() == [3, 0, 3, 1]


# ------------------------------------------------------------------ global-quota recipe (option)
GLOBAL = dict(recipe="global_quota")


@pytest.mark.parametrize("setting", ["75left", "40left"])
def test_fraction_kept_no_empty_only_positives_removed(coco_like, setting):
    obs = simulate_missing(coco_like, setting, seed=0, **GLOBAL)
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


@pytest.mark.parametrize("recipe", ["global_quota", "per_image"])
def test_single_and_full(coco_like, recipe):
    single = simulate_missing(coco_like, "single", seed=3, recipe=recipe)
    assert bool((single.sum(1) == 1).all())
    assert bool((single <= coco_like).all())
    full = simulate_missing(coco_like, "full", seed=3, recipe=recipe)
    assert torch.equal(full, coco_like) and full.data_ptr() != coco_like.data_ptr()


def test_deterministic_per_seed(coco_like):
    a = simulate_missing(coco_like, "40left", seed=7, **GLOBAL)
    b = simulate_missing(coco_like, "40left", seed=7, **GLOBAL)
    c = simulate_missing(coco_like, "40left", seed=8, **GLOBAL)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # numpy input gives the same result
    assert torch.equal(simulate_missing(coco_like.numpy(), "40left", seed=7, **GLOBAL), a)


def test_nesting(coco_like):
    sets = {
        s: simulate_missing(coco_like, s, seed=11, **GLOBAL)
        for s in ("single", "40left", "75left", "full")
    }
    assert bool((sets["single"] <= sets["40left"]).all())
    assert bool((sets["40left"] <= sets["75left"]).all())
    assert bool((sets["75left"] <= sets["full"]).all())
    assert torch.equal(
        sets["40left"], simulate_missing(coco_like, "40left", 11, nested=True, **GLOBAL)
    )


def test_not_nested_draws_independently(coco_like):
    single = simulate_missing(coco_like, "single", seed=11, nested=False, **GLOBAL)
    left40 = simulate_missing(coco_like, "40left", seed=11, nested=False, **GLOBAL)
    assert torch.equal(left40, simulate_missing(coco_like, "40left", 11, nested=False, **GLOBAL))
    assert abs(left40.sum() / coco_like.sum() - 0.40) < 0.01
    # independent keys: many single labels are not in the 40left split (as in the reference files)
    assert int(((single == 1) & (left40 == 0)).sum()) > 1000


def test_empty_images_unchanged_and_generic_setting():
    y = torch.tensor([[1, 1, 1, 0], [0, 0, 0, 0], [1, 0, 1, 1], [0, 1, 0, 0]], dtype=torch.float32)
    for setting in ("single", "40left", "75left", "20left"):
        if setting == "20left":  # round(0.2 * 7) = 1 < 3 non-empty images: the floor wins
            with pytest.warns(UserWarning, match="keeps 3/7 = 0.429 of the positives"):
                obs = simulate_missing(y, setting, seed=0, **GLOBAL)
        else:
            obs = simulate_missing(y, setting, seed=0, **GLOBAL)
        assert obs[1].sum() == 0  # nothing invented for the empty image
        assert bool((obs.sum(1)[[0, 2, 3]] >= 1).all())
        assert bool((obs <= y).all())
    assert int(simulate_missing(y, "75left", seed=0, **GLOBAL).sum()) == round(0.75 * 7)


def test_at_least_one_rule_wins_with_a_warning():
    y = torch.eye(5)  # one positive per image: 40% cannot be reached
    with pytest.warns(
        UserWarning, match=r"keeping one positive per image already keeps 5/5 = 1\.000"
    ):
        obs = simulate_missing(y, "40left", seed=0, **GLOBAL)
    assert torch.equal(obs, y)


def test_recipe_and_nested_choices():
    assert RECIPES[0] == "per_image" and set(RECIPES) == {"per_image", "global_quota"}
    assert check_recipe("per_image", None) is False
    assert check_recipe("global_quota", None) is True
    assert check_recipe("global_quota", False) is False


@pytest.mark.parametrize(
    "recipe, nested, match",
    [
        ("per_image", True, r"nested=True is an option of recipe='global_quota' only"),
        ("per_image", False, r"nested=False is an option of recipe='global_quota' only"),
        ("quota", None, r"unknown recipe 'quota': expected one of \['per_image', 'global_quota'\]"),
        ("global_quota", "yes", r"nested must be None, True or False, got 'yes'"),
    ],
)
def test_meaningless_recipe_combinations_are_refused(recipe, nested, match):
    with pytest.raises(ValueError, match=match):
        simulate_missing(torch.eye(3), "40left", 0, recipe=recipe, nested=nested)


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
