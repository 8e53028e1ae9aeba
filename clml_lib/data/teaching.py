"""The embedded teaching set: procedurally drawn multi-label images of coloured shapes.

No download, no files: the images are drawn with NumPy from a seed, in a few seconds, and cached
in memory per process and on disk (:data:`CACHE_DIR`, ``data/cache/``, not versioned: a
notebook kernel then reads them in a few milliseconds instead of drawing them again). They have
*real pixels*: anti-aliased shapes with colours and fill textures on textured, cluttered, noisy
backgrounds, so a CNN has to learn shape detectors (not colour or pixel counts) to name the
objects.

Classes (``TEACHING_CLASSES``, 12 shapes)::

    disc ring square frame triangle diamond plus star crescent hourglass bar semicircle

Label structure. Every image is first given a hidden *scene* (``TEACHING_SCENES``); each scene
switches on a few classes with high probability (e.g. the ``night`` scene: crescent, star, disc,
ring), every other class appears with a small background probability. Labels therefore
co-occur the way COCO labels do (kitchen objects together, street objects together), and a
model that knows "crescent usually comes with star" can recover a missing star label: the label
dependencies that CLML's per-label low-rank structure is meant to exploit. Images hold 1 to 4
objects, about 2.9 on average (COCO: 2.94), never zero.

Layout. Objects are placed in the cells of a jittered 2 x 2 grid, so they may overlap partially
but an object is never fully hidden; its label is in the image's label vector if and only if
the object is drawn. The renderer also has a ``'centre'`` layout (one larger object per image,
fill texture chosen by the caller), used only by the pretraining source task of
:mod:`clml_lib.data.teaching_source`; the teaching images never use it.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from ..atomic import atomic_torch_save
from ..paths import DATA

#: The 12 class names, in label-index order.
TEACHING_CLASSES: list[str] = [
    "disc",
    "ring",
    "square",
    "frame",
    "triangle",
    "diamond",
    "plus",
    "star",
    "crescent",
    "hourglass",
    "bar",
    "semicircle",
]

#: Hidden scenes: name -> (probability of the scene, {class name: probability in that scene}).
#: Classes not listed appear with probability ``_BACKGROUND_P`` in every scene.
TEACHING_SCENES: dict[str, tuple[float, dict[str, float]]] = {
    "night": (0.25, {"crescent": 0.85, "star": 0.85, "disc": 0.5, "ring": 0.35}),
    "city": (0.25, {"square": 0.85, "frame": 0.7, "bar": 0.6, "plus": 0.4}),
    "garden": (0.25, {"triangle": 0.8, "diamond": 0.75, "hourglass": 0.6, "semicircle": 0.4}),
    "harbour": (0.25, {"semicircle": 0.75, "ring": 0.7, "bar": 0.5, "plus": 0.6}),
}
_BACKGROUND_P = 0.06
_MAX_OBJECTS = 4

#: Default number of images per split.
DEFAULT_SIZES: dict[str, int] = {"train": 2000, "val": 500, "test": 1000}
_SPLIT_CODE = {"train": 0, "val": 1, "test": 2}

# Difficulty knobs (tuned so that a ~100k-parameter CNN trained for about a minute on two CPU
# cores reaches a clearly good but not perfect mAP; see data/README.md for measured numbers).
_RADIUS = (0.17, 0.26)  # object radius as a fraction of the image side
_ROTATION_DEG = 15.0  # shapes are rotated by at most this angle (square vs diamond stays defined)
_NOISE_STD = 0.04  # per-pixel Gaussian noise
_CLUTTER_DOTS = (1, 4)  # number of small distractor dots per image (min, max inclusive)
_CLUTTER_LINES = (0, 1)  # number of thin distractor line segments per image
_CENTRED_RADIUS = (0.28, 0.40)  # object radius of the single-object ('centre') layout
#: fill textures, in the index order of ``_render``'s ``textures``
TEXTURES: tuple[str, ...] = ("plain", "stripes", "shaded")


# --------------------------------------------------------------------------- label sampling
def _scene_tables() -> tuple[np.ndarray, np.ndarray]:
    """Scene probabilities (S,) and per-scene class probabilities (S, C)."""
    index = {name: k for k, name in enumerate(TEACHING_CLASSES)}
    probs = np.full((len(TEACHING_SCENES), len(TEACHING_CLASSES)), _BACKGROUND_P)  # (S, C)
    weights = np.zeros(len(TEACHING_SCENES))  # (S,)
    for s, (w, table) in enumerate(TEACHING_SCENES.values()):
        weights[s] = w
        for name, p in table.items():
            probs[s, index[name]] = p
    return weights / weights.sum(), probs


def _sample_labels(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Scene ids (n,) and 0/1 labels (n, C) with 1..4 positives per image."""
    weights, probs = _scene_tables()
    num_classes = probs.shape[1]
    scene = rng.choice(len(weights), size=n, p=weights)  # (n,)
    labels = rng.random((n, num_classes)) < probs[scene]  # (n, C) bool
    # at least one object: an empty draw gets the scene's most likely class
    empty = ~labels.any(1)
    labels[empty, probs[scene[empty]].argmax(1)] = True
    # at most _MAX_OBJECTS objects: drop a random surplus
    keys = rng.random((n, num_classes)) + (~labels) * 2.0  # positives first, random order
    rank = keys.argsort(1).argsort(1)  # (n, C) rank of each entry among the row
    labels &= rank < _MAX_OBJECTS
    return scene, labels.astype(np.uint8)


# --------------------------------------------------------------------------- shape functions
# Each function maps local coordinates (u, v) (object centre at 0, radius 1, v pointing up) to
# an approximate signed distance f: f < 0 inside the shape, in units of the object radius.
def _triangle(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    # equilateral triangle pointing up, circumradius 1: three half-planes at distance 0.5
    f = -v - 0.5
    for ang in (np.pi / 6, 5 * np.pi / 6):
        f = np.maximum(f, u * np.cos(ang) + v * np.sin(ang) - 0.5)
    return f


def _star(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    r = np.hypot(u, v)
    theta = np.arctan2(v, u) - np.pi / 2
    return r - (0.62 + 0.38 * np.cos(5 * theta))


_SHAPES: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "disc": lambda u, v: np.hypot(u, v) - 0.95,
    "ring": lambda u, v: np.abs(np.hypot(u, v) - 0.72) - 0.26,
    "square": lambda u, v: np.maximum(np.abs(u), np.abs(v)) - 0.8,
    "frame": lambda u, v: np.abs(np.maximum(np.abs(u), np.abs(v)) - 0.66) - 0.2,
    "triangle": _triangle,
    "diamond": lambda u, v: (np.abs(u) + np.abs(v) - 1.0) / np.sqrt(2.0),
    "plus": lambda u, v: np.minimum(
        np.maximum(np.abs(u) - 0.3, np.abs(v) - 1.0), np.maximum(np.abs(v) - 0.3, np.abs(u) - 1.0)
    ),
    "star": _star,
    "crescent": lambda u, v: np.maximum(np.hypot(u, v) - 0.95, 0.78 - np.hypot(u - 0.45, v - 0.25)),
    "hourglass": lambda u, v: np.maximum(
        (np.abs(u) - 0.85 * np.abs(v) - 0.08) / 1.3, np.abs(v) - 0.95
    ),
    "bar": lambda u, v: np.maximum(np.abs(u) - 1.0, np.abs(v) - 0.32),
    "semicircle": lambda u, v: np.maximum(np.hypot(u, v + 0.35) - 1.0, -(v + 0.35)),
}
assert list(_SHAPES) == TEACHING_CLASSES


def _hsv_to_rgb(h: np.ndarray, s: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Vectorised HSV -> RGB; inputs (...,) in [0, 1]; output (..., 3)."""
    i = np.floor(h * 6.0).astype(int) % 6
    f = h * 6.0 - np.floor(h * 6.0)
    p, q, t = v * (1 - s), v * (1 - s * f), v * (1 - s * (1 - f))
    table = np.stack(
        [
            np.stack(c, -1)
            for c in ((v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q))
        ]
    )  # (6, ..., 3)
    return np.take_along_axis(table, i[None, ..., None].repeat(3, -1), 0)[0]


# --------------------------------------------------------------------------- rendering
def _render(
    rng: np.random.Generator,
    labels: np.ndarray,
    size: int,
    layout: str = "grid",
    textures: np.ndarray | None = None,
) -> np.ndarray:
    """Draw the images for a label matrix (n, C) 0/1; returns uint8 (n, 3, size, size).

    ``layout='grid'`` (the teaching set) places the objects in the cells of a jittered 2 x 2
    grid; ``layout='centre'`` (the pretraining source task) draws exactly one larger object per
    image near its centre. ``textures`` (B,) fixes the fill texture of each object (0 plain,
    1 stripes, 2 radial shading; objects in row-major order of the positives); None draws it.

    Everything is vectorised over images (background, clutter) or over objects (shapes), in
    float32; Python loops run only over the few clutter items / object slots per image.
    """
    if layout not in ("grid", "centre"):
        raise ValueError(f"layout must be 'grid' or 'centre', got {layout!r}")
    if layout == "centre" and not (labels.sum(1) == 1).all():
        raise ValueError("layout 'centre' draws exactly one object per image")
    n = labels.shape[0]
    s = size
    f32 = np.float32

    def uni(lo: float, hi: float, shape) -> np.ndarray:
        return rng.uniform(lo, hi, shape).astype(f32)

    def col(x: np.ndarray) -> np.ndarray:  # (m,) -> (m, 1, 1) for broadcasting over pixels
        return x[:, None, None]

    grid = np.arange(s, dtype=f32) + f32(0.5)  # pixel centres
    yy, xx = np.meshgrid(grid, grid, indexing="ij")  # (S, S)

    # background: two-colour linear gradient + low-frequency blotches
    def background_colour() -> np.ndarray:  # (n, 3), muted
        hsv = rng.random(n), rng.uniform(0.1, 0.6, n), rng.uniform(0.25, 0.85, n)
        return _hsv_to_rgb(*hsv).astype(f32)

    c0, c1 = background_colour(), background_colour()
    ang = uni(0, 2 * np.pi, n)
    ramp = (col(np.cos(ang)) * (xx - s / 2) + col(np.sin(ang)) * (yy - s / 2)) / s
    ramp = np.clip(ramp + f32(0.5), 0, 1)[:, None]  # (n, 1, S, S)
    img = c0[:, :, None, None] * (1 - ramp) + c1[:, :, None, None] * ramp  # (n, 3, S, S)
    coarse = torch.from_numpy(rng.normal(0, 0.08, (n, 3, 4, 4)).astype(f32))
    blotch = torch.nn.functional.interpolate(coarse, size=(s, s), mode="bicubic")
    img += blotch.numpy()  # (n, 3, S, S)

    # distractor clutter: small dots and thin line segments (no class); an image without its
    # j-th item gets alpha 0 for it
    n_dots = rng.integers(_CLUTTER_DOTS[0], _CLUTTER_DOTS[1] + 1, n)
    for j in range(_CLUTTER_DOTS[1]):
        cx, cy, rad = uni(0, s, n), uni(0, s, n), uni(0.02, 0.05, n) * s
        d = np.hypot(xx - col(cx), yy - col(cy)) - col(rad)  # (n, S, S)
        a = (np.clip(0.5 - d, 0, 1) * col(n_dots > j))[:, None]  # (n, 1, S, S)
        img += a * (rng.random((n, 3), dtype=f32)[:, :, None, None] - img)
    n_lines = rng.integers(_CLUTTER_LINES[0], _CLUTTER_LINES[1] + 1, n)
    for j in range(_CLUTTER_LINES[1]):
        x0, y0 = uni(0, s, n), uni(0, s, n)
        th, length = uni(0, np.pi, n), uni(0.3, 0.7, n) * s
        dx, dy = col(np.cos(th)), col(np.sin(th))
        px, py = xx - col(x0), yy - col(y0)
        t = np.clip(px * dx + py * dy, 0, col(length))
        d = np.hypot(px - t * dx, py - t * dy) - f32(0.02 * s)
        a = (0.8 * np.clip(0.5 - d, 0, 1) * col(n_lines > j))[:, None]
        img += a * (rng.random((n, 3), dtype=f32)[:, :, None, None] - img)

    # objects: one per positive label, in the cells of a jittered 2 x 2 grid
    rows, cls = np.nonzero(labels)  # (B,), (B,) positives in row-major order
    b = len(rows)
    counts = labels.sum(1).astype(np.int64)  # (n,)
    slot = np.arange(b) - np.repeat(np.cumsum(counts) - counts, counts)  # object index in image
    if layout == "grid":
        perm = rng.random((n, 4)).argsort(1)  # random cell order per image
        cell = perm[rows, slot]  # (B,)
        radius = uni(*_RADIUS, b) * s
        cx = (cell % 2 + 0.5).astype(f32) * s / 2 + uni(-0.13, 0.13, b) * s
        cy = (cell // 2 + 0.5).astype(f32) * s / 2 + uni(-0.13, 0.13, b) * s
    else:  # one object near the centre, object-centred like a photo of a single thing
        radius = uni(*_CENTRED_RADIUS, b) * s
        cx = f32(s / 2) + uni(-0.1, 0.1, b) * s
        cy = f32(s / 2) + uni(-0.1, 0.1, b) * s
    rot = np.deg2rad(uni(-_ROTATION_DEG, _ROTATION_DEG, b))
    dx = (xx[None] - col(cx)) / col(radius)  # (B, S, S)
    dy = -(yy[None] - col(cy)) / col(radius)  # v points up
    cr, sr = col(np.cos(rot)), col(np.sin(rot))
    u, v = cr * dx + sr * dy, -sr * dx + cr * dy  # (B, S, S) local coordinates
    f = np.empty_like(u)
    for k, name in enumerate(TEACHING_CLASSES):
        sel = cls == k
        if sel.any():
            f[sel] = _SHAPES[name](u[sel], v[sel])
    alpha = np.clip(0.5 - f * col(radius), 0.0, 1.0)  # (B, S, S), 1-pixel anti-aliased edge
    # fill: a saturated colour, with one of three textures (plain, stripes, radial shading)
    hsv = rng.random(b), rng.uniform(0.55, 1.0, b), rng.uniform(0.55, 1.0, b)
    fill = _hsv_to_rgb(*hsv).astype(f32)  # (B, 3)
    if textures is None:
        texture = rng.integers(0, 3, b)
    else:
        texture = np.asarray(textures)
        if texture.shape != (b,) or not np.isin(texture, (0, 1, 2)).all():
            raise ValueError(f"textures must be ({b},) with values in {{0, 1, 2}}")
    phase = uni(0, 2 * np.pi, b)
    mod = np.ones_like(u)  # (B, S, S)
    sel = texture == 1  # stripes
    mod[sel] = 1.0 - 0.35 * (np.sin(3.0 * np.pi * (u[sel] + v[sel]) + col(phase[sel])) > 0)
    sel = texture == 2  # radial shading
    mod[sel] = 1.15 - 0.3 * np.clip(np.hypot(u[sel] + 0.3, v[sel] - 0.3), 0, 1.5)
    for j in range(_MAX_OBJECTS):  # paint in object order, later objects on top
        sel = np.nonzero(slot == j)[0]
        a = alpha[sel][:, None]  # (m, 1, S, S)
        obj = fill[sel][:, :, None, None] * mod[sel][:, None]  # (m, 3, S, S)
        img[rows[sel]] += a * (obj - img[rows[sel]])

    img += rng.standard_normal(img.shape, dtype=f32) * f32(_NOISE_STD)
    return np.clip(np.rint(img * 255.0), 0, 255).astype(np.uint8)


#: Version of what the generator draws: part of every disk-cache key. Bump it with any change to
#: the classes, scenes, difficulty knobs, :func:`_sample_labels` or :func:`_render`, so that no
#: cache file drawn by another version is read.
GENERATOR_VERSION = 1
#: Folder of the disk cache of generated splits (gitignored); ``None`` turns the cache off.
CACHE_DIR: Path | None = DATA / "cache" / "teaching"


def cache_path(split: str, num_images: int, image_size: int, seed: int) -> Path | None:
    """The disk-cache file of one generated split, named by every generator argument and
    :data:`GENERATOR_VERSION`; None when the cache is off."""
    if CACHE_DIR is None:
        return None
    return Path(CACHE_DIR) / (f"v{GENERATOR_VERSION}_{split}_n{num_images}_s{image_size}_"
                              f"seed{seed}.pt")


def _read_cache(path: Path, num_images: int, image_size: int):
    """The arrays of a cache file, or None (with a warning naming the file) when it is not a
    readable cache of this shape; it is then drawn again and rewritten."""
    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
        images, labels, scenes = doc["images"], doc["labels"], doc["scenes"]
        n, c = num_images, len(TEACHING_CLASSES)
        ok = (tuple(images.shape) == (n, 3, image_size, image_size)
              and images.dtype == torch.uint8 and tuple(labels.shape) == (n, c)
              and labels.dtype == torch.uint8 and tuple(scenes.shape) == (n,))
        if not ok:
            raise ValueError(f"shapes {tuple(images.shape)}, {tuple(labels.shape)}, "
                             f"{tuple(scenes.shape)} do not match the key")
    except Exception as exc:  # corrupt, truncated or foreign file: draw again, say so
        warnings.warn(f"teaching-set cache {path} is unreadable ({type(exc).__name__}: {exc}); "
                      "drawing the images again and rewriting it", stacklevel=3)
        return None
    return images.numpy(), labels.numpy(), scenes.numpy()


@functools.lru_cache(maxsize=16)
def _generate(split: str, num_images: int, image_size: int, seed: int):
    """Cached generation: (images uint8 (N,3,S,S), labels uint8 (N,C), scenes (N,)).

    Cached in memory per process and on disk (:func:`cache_path`, written atomically, read with
    ``weights_only=True``). A cache folder that cannot be written is skipped with a warning."""
    path = cache_path(split, num_images, image_size, seed)
    if path is not None and path.is_file():
        cached = _read_cache(path, num_images, image_size)
        if cached is not None:
            return cached
    rng = np.random.default_rng(np.random.SeedSequence([seed, _SPLIT_CODE[split]]))
    scene, labels = _sample_labels(rng, num_images)
    images = _render(rng, labels, image_size)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_torch_save(path, {"images": torch.from_numpy(images),
                                     "labels": torch.from_numpy(labels),
                                     "scenes": torch.from_numpy(np.asarray(scene, np.int64))})
        except OSError as exc:
            warnings.warn(f"could not write the teaching-set cache {path} ({exc}); the images "
                          "are drawn again in every process", stacklevel=3)
    return images, labels, scene


class TeachingMultiLabel(Dataset):
    """Procedural multi-label images of coloured shapes (12 classes), deterministic from a seed.

    Each split draws from its own random stream (``SeedSequence([seed, split])``), so train,
    val and test images differ for the same seed, and the same ``(split, num_images,
    image_size, seed)`` always gives the same pixels and labels (in any process on a given
    platform). Generation is vectorised (about 1.5 s of CPU for the 3,500 images of the three
    default splits at 32 px) and cached in memory per process.

    Args:
        split: ``'train'`` | ``'val'`` | ``'test'``.
        num_images: number of images; default ``DEFAULT_SIZES[split]`` (2000 / 500 / 1000).
        image_size: side S of the square images in pixels (>= 16).
        seed: non-negative int.
        transform: callable applied to the image of ``__getitem__``; it receives a float tensor
            (3, S, S) in [0, 1] (``build_transforms`` accepts it too).

    Attributes:
        classes: the 12 class names (``TEACHING_CLASSES``).
        labels: float tensor (N, C) 0/1, the full ground truth (no label is missing).
        images: uint8 tensor (N, 3, S, S), all pixels (handy for fast full-batch training
            without a DataLoader).
        scenes: int64 tensor (N,) hidden scene index into ``list(TEACHING_SCENES)``.

    ``__getitem__(i)`` returns ``(image, labels_i)``: image a float tensor (3, S, S) in [0, 1]
    (or whatever ``transform`` returns), labels a float tensor (C,).

    Raises:
        ValueError: unknown split, non-positive ``num_images``, ``image_size`` < 16, negative
            seed.
    """

    def __init__(
        self,
        split: str = "train",
        num_images: int | None = None,
        image_size: int = 32,
        seed: int = 0,
        transform: Callable | None = None,
    ) -> None:
        if split not in _SPLIT_CODE:
            raise ValueError(f"split must be one of {sorted(_SPLIT_CODE)}, got {split!r}")
        if num_images is None:
            num_images = DEFAULT_SIZES[split]
        if not isinstance(num_images, int) or isinstance(num_images, bool) or num_images < 1:
            raise ValueError(f"num_images must be a positive int, got {num_images!r}")
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 16:
            raise ValueError(f"image_size must be an int >= 16, got {image_size!r}")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise ValueError(f"seed must be a non-negative int, got {seed!r}")
        images, labels, scenes = _generate(split, num_images, image_size, seed)
        self.split, self.seed, self.image_size = split, seed, image_size
        self.transform = transform
        self.classes: list[str] = list(TEACHING_CLASSES)
        self.images = torch.from_numpy(images.copy())  # (N, 3, S, S) uint8, own copy of the cache
        self.labels = torch.from_numpy(labels.astype(np.float32))  # (N, C)
        self.scenes = torch.from_numpy(scenes.astype(np.int64))  # (N,)

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, i: int):
        image = self.images[i].float() / 255.0  # (3, S, S) in [0, 1]
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i].clone()

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All images, float (N, 3, S, S) in [0, 1], and the labels (N, C); no transform."""
        return self.images.float() / 255.0, self.labels.clone()

    def __repr__(self) -> str:
        return (
            f"TeachingMultiLabel(split={self.split!r}, num_images={len(self)}, "
            f"image_size={self.image_size}, seed={self.seed}, classes={len(self.classes)})"
        )

