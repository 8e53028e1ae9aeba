"""Tiny dataset trees in the real on-disk formats, built at test time.

* :func:`make_coco_tree`: ``root/annotations/instances_{train,val}2014.json`` (COCO instances
  format with the 80 real categories and their non-contiguous ids) and
  ``root/{train,val}2014/COCO_{split}2014_<12-digit id>.jpg``. Importable as a plain function
  (the training tests reuse it for their smoke run of the reproduction notebook).
* :func:`write_coco_split`: one split with explicit per-image category ids (exact-label tests).
* :func:`make_voc_tree`: ``root/VOCdevkit/VOC2007/{Annotations,ImageSets/Main,JPEGImages}``.
* :func:`write_jpeg`: a small JPEG with coloured rectangles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from clml_lib.data.classes import COCO_CATEGORIES

__all__ = ["make_coco_tree", "write_coco_split", "make_voc_tree", "write_jpeg", "category_colour"]


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
    ann_file.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "info": {"description": "clml test fixture"},
        "licenses": [],
        "images": json_images,
        "annotations": annotations,
        "categories": categories,
    }
    ann_file.write_text(json.dumps(payload))
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


def make_voc_tree(
    root: str | Path,
    objects: dict[str, Sequence[tuple[str, int]]],
    image_sets: dict[str, Sequence[str]],
    year: str = "2007",
    image_size: int = 40,
) -> Path:
    """Build ``root/VOCdevkit/VOC{year}`` with XML annotations, image sets and JPEGs.

    Args:
        objects: image id -> [(class name, difficult 0/1), ...].
        image_sets: set name -> image ids (written to ``ImageSets/Main/<name>.txt``).

    Returns:
        The ``VOC{year}`` folder.
    """
    voc = Path(root) / "VOCdevkit" / f"VOC{year}"
    (voc / "Annotations").mkdir(parents=True, exist_ok=True)
    (voc / "ImageSets" / "Main").mkdir(parents=True, exist_ok=True)
    for n, (img_id, objs) in enumerate(objects.items()):
        parts = [
            "<annotation>",
            f"  <folder>VOC{year}</folder>",
            f"  <filename>{img_id}.jpg</filename>",
            f"  <size><width>{image_size}</width><height>{image_size}</height>"
            "<depth>3</depth></size>",
        ]
        for name, difficult in objs:
            parts += [
                "  <object>",
                f"    <name>{name}</name>",
                "    <pose>Unspecified</pose>",
                "    <truncated>0</truncated>",
                f"    <difficult>{difficult}</difficult>",
                "    <bndbox><xmin>2</xmin><ymin>3</ymin><xmax>20</xmax><ymax>25</ymax></bndbox>",
                "  </object>",
            ]
        parts.append("</annotation>")
        (voc / "Annotations" / f"{img_id}.xml").write_text("\n".join(parts) + "\n")
        write_jpeg(voc / "JPEGImages" / f"{img_id}.jpg", image_size, seed=n)
    for set_name, ids in image_sets.items():
        (voc / "ImageSets" / "Main" / f"{set_name}.txt").write_text("".join(f"{i}\n" for i in ids))
    return voc
