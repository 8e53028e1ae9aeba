"""The embedded teaching set: rendering, determinism, label structure, and a few training steps."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn as nn

from clml_lib.data import (
    TEACHING_CLASSES,
    PartialLabelDataset,
    TeachingMultiLabel,
    build_transforms,
    simulate_missing,
)
from clml_lib.data import teaching as teaching_module


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test of this module draws into its own disk cache, from an empty memory cache."""
    monkeypatch.setattr(teaching_module, "CACHE_DIR", tmp_path / "cache")
    teaching_module._generate.cache_clear()
    yield
    teaching_module._generate.cache_clear()


def test_renders_real_images():
    ds = TeachingMultiLabel("train", num_images=300, image_size=32, seed=0)
    assert len(ds) == 300 and ds.classes == TEACHING_CLASSES and 10 <= len(ds.classes) <= 20
    image, y = ds[0]
    assert image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert 0.0 <= float(image.min()) and float(image.max()) <= 1.0
    assert y.shape == (12,) and torch.equal(y, ds.labels[0])
    images, labels = ds.tensors()
    assert images.shape == (300, 3, 32, 32) and labels.shape == (300, 12)
    # real pixels: every image has structure (not constant, not pure noise around one colour)
    per_image_std = images.flatten(1).std(1)  # (N,)
    assert float(per_image_std.min()) > 0.05
    # labels: 0/1, 1..4 objects per image, ~2-3.5 on average
    assert set(labels.unique().tolist()) == {0.0, 1.0}
    per_image = labels.sum(1)
    assert int(per_image.min()) >= 1 and int(per_image.max()) <= 4
    assert 2.0 < float(per_image.mean()) < 3.5
    assert bool((labels.sum(0) > 0).all())  # every class occurs


def test_deterministic_and_split_streams():
    a = TeachingMultiLabel("val", num_images=200, seed=3)
    teaching_module._generate.cache_clear()  # regenerate from scratch, not from the caches
    teaching_module.CACHE_DIR = None
    b = TeachingMultiLabel("val", num_images=200, seed=3)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert a.images.data_ptr() != b.images.data_ptr()  # each dataset owns its pixels
    test = TeachingMultiLabel("test", num_images=200, seed=3)
    other_seed = TeachingMultiLabel("val", num_images=200, seed=4)
    assert not torch.equal(a.images, test.images) and not torch.equal(a.labels, test.labels)
    assert not torch.equal(a.images, other_seed.images)


def test_label_cooccurrence_structure():
    ds = TeachingMultiLabel("train", seed=0)
    y = ds.labels  # (N, C)
    c = TEACHING_CLASSES.index
    p_star = y[:, c("star")].mean()
    p_star_given_crescent = y[y[:, c("crescent")] == 1, c("star")].mean()
    p_star_given_square = y[y[:, c("square")] == 1, c("star")].mean()
    assert p_star_given_crescent > 2 * p_star  # labels that go together
    assert p_star_given_square < 0.5 * p_star  # labels that rarely meet


def test_generation_is_fast():
    teaching_module._generate.cache_clear()
    t0 = time.process_time()  # CPU time: robust to a machine shared with other jobs
    for split in ("train", "val", "test"):
        TeachingMultiLabel(split, seed=123)
    assert time.process_time() - t0 < 10.0  # ~1.5 s of CPU for the 3,500 default images


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"split": "training"}, r"split must be one of \['test', 'train', 'val'\], got 'training'"),
        ({"num_images": 0}, "num_images must be a positive int, got 0"),
        ({"image_size": 8}, "image_size must be an int >= 16, got 8"),
        ({"seed": -2}, "seed must be a non-negative int, got -2"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        TeachingMultiLabel(**kwargs)


def test_transforms_and_partial_labels():
    torch.manual_seed(0)
    ds = TeachingMultiLabel("train", num_images=64, transform=build_transforms(True, image_size=40))
    x, _ = ds[0]
    assert x.shape == (3, 40, 40)
    base = TeachingMultiLabel("train", num_images=64)
    observed = simulate_missing(base.labels, "40left", seed=0)
    partial = PartialLabelDataset(base, observed)
    image, obs, truth = partial[5]
    assert torch.equal(image, base[5][0]) and torch.equal(truth, base.labels[5])
    assert bool((obs <= truth).all()) and obs.sum() >= 1


def test_tiny_model_trains_a_few_steps():
    torch.manual_seed(0)
    ds = TeachingMultiLabel("train", num_images=256, seed=0)
    observed = simulate_missing(ds.labels, "40left", seed=0)
    loader = torch.utils.data.DataLoader(PartialLabelDataset(ds, observed), batch_size=64,
                                         shuffle=True)
    model = nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, len(ds.classes)),
    )  # fmt: skip
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(3):  # 3 epochs x 4 steps
        for x, obs, _truth in loader:
            loss = nn.functional.binary_cross_entropy_with_logits(model(x), obs)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-3:]) / 3 < 0.8 * sum(losses[:3]) / 3


def test_centred_layout_and_fixed_textures():
    """The source-task layout: one object per image near the centre, with the texture asked for."""
    import numpy as np

    n, s = 40, 32
    labels = np.zeros((n, 12), np.uint8)
    labels[np.arange(n), np.arange(n) % 12] = 1

    def draw(texture: int) -> np.ndarray:
        rng = np.random.default_rng(7)
        return teaching_module._render(rng, labels, s, layout="centre",
                                       textures=np.full(n, texture))

    plain, stripes = draw(0), draw(1)
    assert plain.shape == (n, 3, s, s) and plain.dtype == np.uint8
    diff = np.abs(plain.astype(int) - stripes.astype(int)).sum(1) > 0  # (n, S, S) object pixels
    assert diff.any(1).any(1).all()  # every image has its object re-textured
    yy, xx = np.mgrid[0:s, 0:s] + 0.5
    r = np.hypot(xx - s / 2, yy - s / 2)  # (S, S) distance from the centre
    # the object lies within 0.1 s (jitter) + 0.4 s (radius) * sqrt(2) of the centre, never in
    # the corners
    assert not (diff & (r > 0.72 * s)[None]).any()
    assert np.array_equal(draw(0), plain)  # deterministic
    with pytest.raises(ValueError, match="exactly one object"):
        teaching_module._render(np.random.default_rng(0), np.ones((2, 12), np.uint8), s,
                                layout="centre")
    with pytest.raises(ValueError, match="layout must be"):
        teaching_module._render(np.random.default_rng(0), labels, s, layout="ring")
    with pytest.raises(ValueError, match="textures must be"):
        teaching_module._render(np.random.default_rng(0), labels, s, layout="centre",
                                textures=np.full(n, 3))


def test_disk_cache_is_keyed_read_back_and_replaces_a_bad_file(tmp_path, monkeypatch):
    a = TeachingMultiLabel("test", num_images=40, image_size=24, seed=5)
    path = teaching_module.cache_path("test", 40, 24, 5)
    assert path.is_file() and path.parent == tmp_path / "cache"
    assert f"v{teaching_module.GENERATOR_VERSION}_" in path.name
    keys = {teaching_module.cache_path(*k) for k in [("test", 40, 24, 5), ("val", 40, 24, 5),
                                                     ("test", 41, 24, 5), ("test", 40, 32, 5),
                                                     ("test", 40, 24, 6)]}
    assert len(keys) == 5  # every generator argument is in the key
    doc = torch.load(path, weights_only=True)
    assert doc["images"].dtype == torch.uint8 and doc["labels"].dtype == torch.uint8

    def no_drawing(*args, **kwargs):
        raise AssertionError("drew the images although a valid cache file exists")

    teaching_module._generate.cache_clear()
    with monkeypatch.context() as m:
        m.setattr(teaching_module, "_render", no_drawing)
        b = TeachingMultiLabel("test", num_images=40, image_size=24, seed=5)  # from disk
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    assert torch.equal(a.scenes, b.scenes)

    for bad in (b"truncated", None):  # a corrupt file, then a file of another shape
        if bad is None:
            torch.save({"images": doc["images"][:3], "labels": doc["labels"][:3],
                        "scenes": doc["scenes"][:3]}, path)
        else:
            path.write_bytes(bad)
        teaching_module._generate.cache_clear()
        with pytest.warns(UserWarning, match=r"teaching-set cache .* is unreadable"):
            c = TeachingMultiLabel("test", num_images=40, image_size=24, seed=5)
        assert torch.equal(a.images, c.images)
        assert torch.equal(torch.load(path, weights_only=True)["images"], doc["images"])


def test_an_unwritable_cache_folder_is_named_not_fatal(tmp_path, monkeypatch):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setattr(teaching_module, "CACHE_DIR", blocker / "cache")
    with pytest.warns(UserWarning, match="could not write the teaching-set cache"):
        ds = TeachingMultiLabel("val", num_images=20, seed=1)
    assert len(ds) == 20
