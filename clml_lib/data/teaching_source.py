"""The source task of the teaching backbone: object-centred, single-label images of 36 fine
classes (docs/teaching_regime.md §1).

The paper fine-tunes a ResNet-101 pretrained on ImageNet: single-label, object-centred photos of
1,000 fine classes, none of them COCO's images. The teaching analog, :func:`source_split`:
object-centred images, ONE larger object each (radius 0.28-0.40 of the side instead of
0.17-0.26), on the same kind of textured, cluttered background as the teaching set; **36 fine
classes** = the 12 shapes x 3 fill textures (``disc/plain``, ``disc/stripes``, ``disc/shaded``,
...), single-label (softmax). No scenes, so no label co-occurrence to learn; the images come from
their own random streams (generator seed :data:`SOURCE_SEED` and stream codes 10 / 12, never the
target's streams 0 / 1 / 2), so not one of the teaching set's train / val / test images is seen.
The backbone is pretrained on it by :mod:`clml_lib.train.pretrain_teaching`.
"""

from __future__ import annotations

import numpy as np
import torch

from ..checks import check_int
from .teaching import TEACHING_CLASSES, TEXTURES, _render

#: The 36 fine source classes: shape/texture, index = 3 * shape index + texture index.
SOURCE_CLASSES: list[str] = [f"{s}/{t}" for s in TEACHING_CLASSES for t in TEXTURES]
#: Generator seed of the source images (the teaching set's images use data seed 0).
SOURCE_SEED = 1
#: Random-stream codes of the source splits (the teaching set uses 0 / 1 / 2).
STREAMS = {"train": 10, "test": 12}


def source_split(split: str, num_images: int, image_size: int = 32,
                 seed: int = SOURCE_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and fine labels of the source task (see the module doc).

    Args:
        split: ``'train'`` | ``'test'``. num_images: N >= 1. image_size: S >= 16. seed: >= 0.

    Returns:
        images uint8 (N, 3, S, S); labels int64 (N,) indices into :data:`SOURCE_CLASSES`.

    Raises:
        ValueError: unknown split or a bad size / seed.
    """
    if split not in STREAMS:
        raise ValueError(f"source split must be one of {sorted(STREAMS)}, got {split!r}")
    num_images = check_int("num_images", num_images, lo=1)
    image_size = check_int("image_size", image_size, lo=16)
    seed = check_int("seed", seed, lo=0)
    rng = np.random.default_rng(np.random.SeedSequence([seed, STREAMS[split]]))
    fine = rng.integers(0, len(SOURCE_CLASSES), num_images)  # (N,)
    shape, texture = fine // len(TEXTURES), fine % len(TEXTURES)
    onehot = np.zeros((num_images, len(TEACHING_CLASSES)), np.uint8)  # (N, 12) the drawn shape
    onehot[np.arange(num_images), shape] = 1
    images = _render(rng, onehot, image_size, layout="centre", textures=texture)
    return torch.from_numpy(images), torch.from_numpy(fine.astype(np.int64))


__all__ = ["SOURCE_CLASSES", "SOURCE_SEED", "STREAMS", "source_split"]
