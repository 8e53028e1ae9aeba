"""Synthetic images and COCO-2014 trees in the real on-disk formats, for the tests, the benchmarks
and the GPU check's smoke run.

* :func:`make_coco_tree`: ``root/annotations/instances_{train,val}2014.json`` (COCO instances
  format with the 80 real categories and their non-contiguous ids) and
  ``root/{train,val}2014/COCO_{split}2014_<12-digit id>.jpg``.
* :func:`write_coco_split`: one split with explicit per-image category ids (exact-label tests).
* :func:`write_jpeg`: a small JPEG with coloured rectangles; :func:`category_colour`: the fixed
  colour of a category, so that a model can learn something from the images.
* :func:`coco_like_jpegs`: photo-sized JPEGs with varied content (input-pipeline timings).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..atomic import atomic_write_text
from .classes import COCO_CATEGORIES


def category_colour(category_id: int) -> tuple[int, int, int]:
    """A fixed colour per category id (so a model can learn something from the fixture)."""
    rng = np.random.default_rng(1000 + int(category_id))
    return tuple(int(v) for v in rng.integers(30, 256, 3))


def write_jpeg(
    path: Path,
    size: int,
    boxes: Sequence[tuple[int, int, int, int, tuple[int, int, int]]] = (),
    seed: int = 0,
) -> Path:
    """Write a size x size JPEG: a noisy grey background plus filled boxes (x0, y0, x1, y1, rgb)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(90, 160, (size, size, 3), dtype=np.uint8)
    img = Image.fromarray(pixels, "RGB")
    draw = ImageDraw.Draw(img)
    for x0, y0, x1, y1, colour in boxes:
        draw.rectangle([x0, y0, x1, y1], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format="JPEG", quality=90)
    return path


def write_coco_split(
    root: Path,
    split: str,
    images: Sequence[tuple[int, Sequence[int]]],
    image_size: int = 48,
    year: str = "2014",
    seed: int = 0,
    crowd: Sequence[tuple[int, int]] = (),
) -> Path:
    """Write ``root/annotations/instances_{split}{year}.json`` and the JPEGs of one split.

    Args:
        root: COCO root folder.
        split: ``'train'`` or ``'val'``.
        images: ``(image_id, [category ids of its annotations])``; an empty list makes an image
            without annotation (listed in the JSON, excluded by ``CocoMultiLabel``). A category
            id may repeat (several instances).
        image_size: side of the JPEGs.
        crowd: extra ``(image_id, category_id)`` annotations with ``iscrowd=1``.

    Returns:
        The annotation file path.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    json_images, annotations = [], []
    ann_id = 1
    for img_id, cats in images:
        file_name = f"{img_id:012d}.jpg"
        if year == "2014":
            file_name = f"COCO_{split}{year}_{file_name}"
        json_images.append(
            {"id": int(img_id), "file_name": file_name, "width": image_size, "height": image_size}
        )
        boxes = []
        all_cats = [(c, 0) for c in cats] + [(c, 1) for i, c in crowd if i == img_id]
        for cat, is_crowd in all_cats:
            w, h = (int(v) for v in rng.integers(image_size // 5, image_size // 2, 2))
            x, y = (int(v) for v in rng.integers(0, image_size - max(w, h), 2))
            boxes.append((x, y, x + w, y + h, category_colour(cat)))
            annotations.append(
                {
                    "id": ann_id,
                    "image_id": int(img_id),
                    "category_id": int(cat),
                    "bbox": [x, y, w, h],
                    "area": float(w * h),
                    "iscrowd": is_crowd,
                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]],
                }
            )
            ann_id += 1
        write_jpeg(root / f"{split}{year}" / file_name, image_size, boxes, seed=int(img_id))
    categories = [
        {"id": cid, "name": name, "supercategory": "thing"} for cid, name in COCO_CATEGORIES
    ]
    ann_file = root / "annotations" / f"instances_{split}{year}.json"
    payload = {
        "info": {"description": "clml test fixture"},
        "licenses": [],
        "images": json_images,
        "annotations": annotations,
        "categories": categories,
    }
    atomic_write_text(ann_file, json.dumps(payload))
    return ann_file


def make_coco_tree(
    root: str | Path, num_train: int = 16, num_val: int = 8, image_size: int = 48, seed: int = 0
) -> Path:
    """Build a tiny COCO-2014 tree under ``root`` and return ``root``.

    ``num_train`` / ``num_val`` images *with* annotations (1 to 4 random categories each, drawn
    from the 80 real non-contiguous category ids, so category 90 -> class 79 etc.), plus one
    extra image per split without annotations (in the JSON and on disk, excluded by
    ``CocoMultiLabel`` as in the real protocol). Deterministic in ``seed``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    ids = [cid for cid, _ in COCO_CATEGORIES]
    next_id = 1
    for split, count in (("train", num_train), ("val", num_val)):
        images = []
        for _ in range(count):
            k = int(rng.integers(1, 5))
            images.append((next_id, [int(c) for c in rng.choice(ids, size=k, replace=False)]))
            next_id += int(rng.integers(1, 50))  # non-contiguous image ids too
        images.append((next_id, []))  # one image without annotations
        next_id += 1
        write_coco_split(root, split, images, image_size=image_size, seed=seed)
    return root


def coco_like_jpegs(
    folder: Path, n: int, width: int = 640, height: int = 480, seed: int = 0, quality: int = 90
) -> list[Path]:
    """Write ``n`` varied RGB JPEGs (gradient background, 3-12 filled shapes, a textured patch,
    sensor-like noise, a mild blur) to ``folder``; return their paths."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    paths = []
    for i in range(n):
        a, b = rng.uniform(-1, 1, 2)
        base = rng.uniform(0, 255, 3)
        slope = rng.uniform(-80, 80, 3)
        grad = (a * xx / width + b * yy / height)[..., None] * slope + base  # (H, W, 3)
        img = Image.fromarray(np.clip(grad, 0, 255).astype(np.uint8), "RGB")
        draw = ImageDraw.Draw(img)
        for _ in range(int(rng.integers(3, 13))):
            x0, y0 = rng.uniform(0, width), rng.uniform(0, height)
            w, h = rng.uniform(20, width / 2), rng.uniform(20, height / 2)
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            box = [x0, y0, x0 + w, y0 + h]
            if rng.random() < 0.5:
                draw.ellipse(box, fill=colour)
            else:
                draw.rectangle(box, fill=colour)
        arr = np.asarray(img).astype(np.int16)
        th, tw = height // 4, width // 4  # a textured patch
        ty, tx = int(rng.integers(0, height - th + 1)), int(rng.integers(0, width - tw + 1))
        arr[ty : ty + th, tx : tx + tw] += rng.integers(-60, 60, (th, tw, 1), dtype=np.int16)
        arr += rng.normal(0, 6, arr.shape).astype(np.int16)  # sensor noise
        img = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB").filter(
            ImageFilter.GaussianBlur(0.6)
        )
        p = folder / f"{i:012d}.jpg"
        img.save(p, "JPEG", quality=quality)
        paths.append(p)
    return paths


__all__ = ["category_colour", "coco_like_jpegs", "make_coco_tree", "write_coco_split",
           "write_jpeg"]
