"""NUS-WIDE (81 concepts) as a multi-label dataset, with images listed by a label list.

NUS-WIDE has no single canonical image release (the original Flickr URLs have died; papers use
the ASL 70/30 split, Cole et al.'s re-crawl, or the official ``Flickr.zip``: docs/evaluation.md
§5), so the dataset is defined by a label list such as the CLML repository's
``nus_train_full.txt`` / ``nus_val.txt`` (``0001_2124494179.jpg, 13 24``). A NUS-WIDE style
``*_labels.txt`` row of 81 zeros and ones is not a label list: ``read_label_list`` refuses such a
line with ``file:line`` (it would otherwise read as the classes {0, 1}). Layout::

    root/images/<name from the list>      (or root/<name> when root/images does not exist)

Class ``i`` is the ``i``-th concept of ``Concepts81.txt`` (``classes.NUS_WIDE_CLASSES``).
The released lists contain the malformed line ``0437_424259217.jpg,2.``: it is read as class 2
with a warning (see ``labels.read_label_list``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Sequence

import torch

from .classes import NUS_WIDE_CLASSES
from .images import ImageFileDataset, check_files_exist
from .labels import label_list_items

NUS_LAYOUT = "root/images/<name>.jpg (or root/<name>.jpg), names and labels from the label list"


class NusWideMultiLabel(ImageFileDataset):
    """NUS-WIDE multi-label dataset over the images of a label list.

    Args:
        root: folder holding the images (directly or in ``images/``).
        label_list: a path to a label list (``read_label_list`` format) or a ``(names,
            labels (N, C))`` pair.
        transform: applied to the PIL image in ``__getitem__``.
        classes: class names (default the 81 ``NUS_WIDE_CLASSES``); C = ``len(classes)``.
        image_dir: the image folder, overriding the ``root/images`` / ``root`` rule.
        verify_files: check at construction that every image file exists (default True).

    Attributes:
        classes: the C class names.
        names: the N image names (relative paths from the image folder).
        paths: the N image paths.
        labels: float tensor (N, C) of 0/1.

    ``__getitem__(i)`` -> ``(image, labels_i)``: a PIL RGB image (or ``transform(image)``) and a
    float tensor (C,).

    Raises:
        FileNotFoundError: root, image folder or label list missing (message gives the expected
            layout); ``MissingFilesError`` listing every missing image file.
        ValueError: any label-list error of ``read_label_list`` (file:line); labels of the wrong
            shape or not 0/1.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        label_list: str | os.PathLike | tuple[list[str], torch.Tensor],
        transform: Callable | None = None,
        classes: Sequence[str] | None = None,
        image_dir: str | os.PathLike | None = None,
        verify_files: bool = True,
    ) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(
                f"NUS-WIDE root not found: {root}; expected layout: {NUS_LAYOUT}"
            )
        self.classes: list[str] = list(classes) if classes is not None else list(NUS_WIDE_CLASSES)
        if image_dir is None:
            image_dir = root / "images" if (root / "images").is_dir() else root
        image_dir = Path(image_dir)
        if not image_dir.is_dir():
            raise FileNotFoundError(
                f"NUS-WIDE image folder not found: {image_dir}; expected layout: {NUS_LAYOUT}"
            )
        names, labels, _ = label_list_items(label_list, len(self.classes))
        self.root, self.image_dir = root, image_dir
        self.names = names
        self.paths = [image_dir / n for n in names]
        self.labels = labels  # (N, C)
        self.transform = transform
        if verify_files:
            check_files_exist(self.paths, "NUS-WIDE image files", NUS_LAYOUT)

    def __repr__(self) -> str:
        return (
            f"NusWideMultiLabel(root={str(self.root)!r}, images={len(self)}, "
            f"classes={len(self.classes)})"
        )
