"""MS-COCO 2014 as a multi-label dataset (the CLML / Hill / ASL protocol).

Layout (the official download, unpacked)::

    root/annotations/instances_train2014.json
    root/annotations/instances_val2014.json
    root/train2014/COCO_train2014_000000000009.jpg ...
    root/val2014/COCO_val2014_000000000042.jpg ...

Labels come from the instances annotations: class ``i`` is the ``i``-th category by id
(``classes.COCO_CLASSES``), an image is positive for every category it has an annotation of
(``iscrowd`` annotations included, as in the reference ``CocoDetection``), and only images with at
least one annotation are kept: 82,081 train and 40,137 val images. A reference split file
(``coco_train_0.4left.txt`` ...) given as ``label_list`` overrides the labels.

The instances file is read by :func:`read_coco_instances`, which validates what the labels
depend on: the ``images``, ``categories`` and ``annotations`` lists and their identity columns.
A duplicated image id, image file name, category id, category name or annotation id is refused
with the file and the id (with duplicates, a dictionary keyed by id silently keeps one of them
and shifts or drops labels).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..checks import clip
from .classes import COCO_CATEGORY_IDS
from .images import ImageFileDataset, check_files_exist, image_name_problem, normal_image_name
from .labels import label_list_items

COCO_LAYOUT = (
    "root/annotations/instances_{split}{year}.json and root/{split}{year}/*.jpg "
    "(e.g. root/annotations/instances_train2014.json, "
    "root/train2014/COCO_train2014_000000000009.jpg)"
)
#: Images with at least one annotation in the real COCO-2014 files.
COCO2014_ANNOTATED = {"train": 82_081, "val": 40_137}


@dataclass
class CocoInstances:
    """What the labels need from an instances file (see :func:`read_coco_instances`).

    Attributes:
        categories: ``(id, name)`` of every category, sorted by id.
        file_of: image id -> file name, for every image listed.
        annotations: ``(annotation id or None, image id, category id)`` per annotation.
    """

    categories: list[tuple[int, str]]
    file_of: dict[int, str]
    annotations: list[tuple[int | None, int, int]]


def _duplicates(values: list) -> list:
    seen, dup = set(), []
    for v in values:
        if v in seen and v not in dup:
            dup.append(v)
        seen.add(v)
    return dup


def read_coco_instances(ann_file: str | os.PathLike) -> CocoInstances:
    """Read and validate a COCO ``instances_*.json`` file.

    Required: a JSON object with lists ``images`` (objects with an int ``id`` and a str
    ``file_name``), ``categories`` (int ``id``, str ``name``) and ``annotations`` (int
    ``image_id`` and ``category_id``; ``id`` optional). Every annotation must refer to a listed
    image and category.

    Returns:
        :class:`CocoInstances`.

    Raises:
        ValueError: not UTF-8 or not JSON (file, line and column); a missing or mistyped key
            (file, key and entry index); no category; a duplicated image id, image file name,
            category id, category name or annotation id (file and the duplicated values); an
            annotation of an unknown image or category (file, annotation id).
    """
    ann_file = Path(ann_file)
    try:
        doc = json.loads(ann_file.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{ann_file}: not valid UTF-8 (byte offset {err.start}): {err.reason}")
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{ann_file}:{err.lineno}:{err.colno}: not valid JSON: {err.msg}"
        ) from None
    except RecursionError:
        raise ValueError(f"{ann_file}: not a COCO instances file: JSON nested too deeply") from None
    if not isinstance(doc, dict):
        raise ValueError(
            f"{ann_file}: expected a JSON object with images, categories and "
            f"annotations, got a {type(doc).__name__}"
        )

    def table(key: str) -> list:
        if key not in doc:
            raise ValueError(
                f"{ann_file}: no {key!r} key (a COCO instances file has 'images', 'categories' "
                f"and 'annotations'; found {clip(sorted(doc))})"
            )
        if not isinstance(doc[key], list):
            raise ValueError(f"{ann_file}: {key!r} must be a list, got {type(doc[key]).__name__}")
        return doc[key]

    def field(key: str, k: int, entry, name: str, kind: type, required: bool = True):
        if not isinstance(entry, dict):
            raise ValueError(f"{ann_file}: {key}[{k}] must be an object, got {clip(entry, 80)}")
        if name not in entry:
            if not required:
                return None
            raise ValueError(f"{ann_file}: {key}[{k}] has no {name!r} key: {clip(entry, 120)}")
        value = entry[name]
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ValueError(
                f"{ann_file}: {key}[{k}][{name!r}] must be {kind.__name__}, got {clip(value, 80)}"
            )
        return value

    images, cats, anns = table("images"), table("categories"), table("annotations")
    cat_list = [
        (field("categories", k, c, "id", int), field("categories", k, c, "name", str))
        for k, c in enumerate(cats)
    ]
    if not cat_list:
        raise ValueError(f"{ann_file}: 'categories' is empty")
    img_list = [
        (field("images", k, im, "id", int), _file_name(ann_file, k, im, field))
        for k, im in enumerate(images)
    ]
    ann_list = [
        (
            field("annotations", k, a, "id", int, required=False),
            field("annotations", k, a, "image_id", int),
            field("annotations", k, a, "category_id", int),
        )
        for k, a in enumerate(anns)
    ]
    for what, values in (
        ("category ids", [c for c, _ in cat_list]),
        ("category names", [n for _, n in cat_list]),
        ("image ids", [i for i, _ in img_list]),
        ("image file names", [f for _, f in img_list]),
        ("annotation ids", [a for a, _, _ in ann_list if a is not None]),
    ):
        dup = _duplicates(values)
        if dup:
            raise ValueError(
                f"{ann_file}: " + _list_problem(f"duplicated {what}", dup) + "; each must be unique"
            )
    file_of = dict(img_list)
    cat_ids = {c for c, _ in cat_list}
    for ann_id, img_id, cid in ann_list:
        if img_id not in file_of:
            raise ValueError(f"{ann_file}: annotation {ann_id} refers to unknown image id {img_id}")
        if cid not in cat_ids:
            raise ValueError(f"{ann_file}: annotation {ann_id} has unknown category id {cid}")
    return CocoInstances(sorted(cat_list), file_of, ann_list)


def _file_name(ann_file: Path, k: int, entry, field) -> str:
    """``images[k]['file_name']`` in normal form; a name that leaves the image folder is
    refused."""
    name = field("images", k, entry, "file_name", str)
    problem = image_name_problem(name)
    if problem:
        raise ValueError(f"{ann_file}: images[{k}]['file_name'] {clip(name)} {problem}")
    return normal_image_name(name)


def _list_problem(what: str, items: list[str], limit: int = 20) -> str:
    shown = ", ".join(clip(x, 100) for x in items[:limit])
    more = f" ... and {len(items) - limit} more" if len(items) > limit else ""
    return f"{len(items)} {what}: {shown}{more}"


def _coco_locations(root: Path, split: str, year: str, layout: str) -> tuple[Path, Path]:
    """The annotation file and the image folder of one split; FileNotFoundError (with the
    expected ``layout``) when the root, the file or the folder is missing."""
    if not root.is_dir():
        raise FileNotFoundError(f"COCO root not found: {root}; expected layout: {layout}")
    ann_file = root / "annotations" / f"instances_{split}{year}.json"
    if not ann_file.is_file():
        raise FileNotFoundError(
            f"COCO annotation file not found: {ann_file}; expected layout: {layout}"
        )
    image_dir = root / f"{split}{year}"
    if not image_dir.is_dir():
        raise FileNotFoundError(
            f"COCO image folder not found: {image_dir}; expected layout: {layout}"
        )
    return ann_file, image_dir


def _annotation_labels(inst: CocoInstances, category_ids: list[int]) -> dict[int, set[int]]:
    """image id -> the class indices (positions in ``category_ids``) of its annotations."""
    cat_index = {cid: k for k, cid in enumerate(category_ids)}
    labels: dict[int, set[int]] = {}
    for _, img_id, cid in inst.annotations:
        labels.setdefault(img_id, set()).add(cat_index[cid])
    return labels


def _label_matrix(ann_labels: dict[int, set[int]], img_ids: list[int],
                  num_classes: int) -> torch.Tensor:
    """Float 0/1 labels (N, C) of ``img_ids`` from their annotations (none: all zeros)."""
    y = np.zeros((len(img_ids), num_classes), dtype=np.float32)  # (N, C)
    for i, img_id in enumerate(img_ids):
        y[i, sorted(ann_labels.get(img_id, ()))] = 1.0
    return torch.from_numpy(y)


def _label_list_images(label_list, inst: CocoInstances, ann_file: Path,
                       category_ids: list[int]) -> tuple[list[str], torch.Tensor, list[int]]:
    """``(names, labels (N, C), image ids)`` of a reference label list, matched to the
    annotation file's images by file name; ValueError for other categories than the 80 COCO
    ones or names the file does not list (all of them named)."""
    if category_ids != COCO_CATEGORY_IDS:
        raise ValueError(
            f"{ann_file}: a label list needs the 80 COCO categories (ids "
            f"{COCO_CATEGORY_IDS[0]}..{COCO_CATEGORY_IDS[-1]}), the file has "
            f"{len(category_ids)} categories"
        )
    names, labels, source = label_list_items(label_list, len(category_ids))
    id_of = {name: img_id for img_id, name in inst.file_of.items()}
    unknown = [n for n in names if n not in id_of]
    if unknown:
        raise ValueError(f"{source}: " + _list_problem(f"images not in {ann_file.name}", unknown))
    return names, labels, [id_of[n] for n in names]


class CocoMultiLabel(ImageFileDataset):
    """MS-COCO (2014 layout) multi-label classification dataset.

    Args:
        root: the COCO folder (see the module docstring for the layout).
        split: ``'train'`` or ``'val'`` (``'train2014'``/``'val2014'`` also accepted).
        label_list: optional reference split: a path to a label list (``read_label_list``
            format, indices in ``COCO_CLASSES`` order) or a ``(names, labels (N, C))`` pair.
            Its images, in its order, with its labels, replace the annotation-derived ones; the
            annotation labels of the same images stay available as ``true_labels``.
        transform: applied to the PIL image in ``__getitem__``.
        year: ``'2014'`` (default) or ``'2017'`` (file names then have no ``COCO_`` prefix).
        verify_files: check at construction that every image file exists (default True).

    Attributes:
        classes: the C category names sorted by category id (the 80 ``COCO_CLASSES`` for the
            real files).
        category_ids: the category id of each class (non-contiguous).
        names: image file names, (N,).
        paths: image paths, (N,).
        labels: float tensor (N, C) 0/1, the labels served (the label list's if given).
        true_labels: float tensor (N, C) 0/1, labels from the annotations for the same images.

    ``__getitem__(i)`` -> ``(image, labels_i)``: a PIL RGB image (or ``transform(image)``) and a
    float tensor (C,).

    Raises:
        FileNotFoundError: root, annotation file or image folder missing (the message gives the
            expected layout); ``images.MissingFilesError`` (a FileNotFoundError) listing every
            missing image file.
        ValueError: unknown split; an invalid annotation file (see :func:`read_coco_instances`:
            missing keys, duplicated ids, unknown references, each naming the file); a label
            list with a duplicated image name, whose names are not images of the annotation
            file (all of them are listed), whose class count is not C, or used with category
            ids other than the 80 COCO ones.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        split: str = "train",
        label_list: str | os.PathLike | tuple[list[str], torch.Tensor] | None = None,
        transform: Callable | None = None,
        year: str = "2014",
        verify_files: bool = True,
    ) -> None:
        year = str(year)
        split = split[: -len(year)] if split.endswith(year) else split
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        root = Path(root)
        layout = COCO_LAYOUT.format(split=split, year=year)
        ann_file, image_dir = _coco_locations(root, split, year, layout)

        inst = read_coco_instances(ann_file)
        self.category_ids: list[int] = [cid for cid, _ in inst.categories]
        self.classes: list[str] = [name for _, name in inst.categories]
        ann_labels = _annotation_labels(inst, self.category_ids)
        if label_list is None:
            img_ids = sorted(ann_labels)  # images with at least one annotation, by id
            self.names = [inst.file_of[i] for i in img_ids]
            self.labels = _label_matrix(ann_labels, img_ids, len(self.classes))
            self.true_labels = self.labels
        else:
            self.names, self.labels, img_ids = _label_list_images(label_list, inst, ann_file,
                                                                  self.category_ids)
            self.true_labels = _label_matrix(ann_labels, img_ids, len(self.classes))

        self.root, self.split, self.year = root, split, year
        self.image_dir = image_dir
        self.paths = [image_dir / n for n in self.names]
        self.transform = transform
        if verify_files:
            check_files_exist(self.paths, f"COCO {split}{year} image files", layout)

    def __repr__(self) -> str:
        return (
            f"CocoMultiLabel(root={str(self.root)!r}, split={self.split!r}, images={len(self)}, "
            f"classes={len(self.classes)})"
        )
