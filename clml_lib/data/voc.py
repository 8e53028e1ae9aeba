"""PASCAL VOC (2007 by default) as a multi-label dataset, read from the VOCdevkit XML layout.

Layout (the official ``VOCtrainval_06-Nov-2007.tar`` + ``VOCtest_06-Nov-2007.tar``, unpacked)::

    root/VOCdevkit/VOC2007/Annotations/000005.xml ...
    root/VOCdevkit/VOC2007/ImageSets/Main/{train,val,trainval,test}.txt
    root/VOCdevkit/VOC2007/JPEGImages/000005.jpg ...

``root`` may also be the ``VOCdevkit`` folder or the ``VOC2007`` folder itself.

**Difficult objects.** VOC marks some objects ``<difficult>1</difficult>``. The standard VOC
classification protocol neither rewards nor penalises them: an image whose only instances of a
class are difficult is *excluded* from that class's AP. Policies (``difficult=``):

* ``'positive'`` (default): the class is labelled 1. The object *is* in the image; labelling it 0
  would plant exactly the kind of false negative this project studies, so training labels keep
  it.
* ``'negative'``: only non-difficult objects make a label 1 (difficult-only classes are 0).
* ``'ignore'``: difficult-only classes are -1 (the 1/0/-1 "unknown" encoding, see
  ``missing.py``): for the standard evaluation (skip -1 targets in AP) or for losses with an
  ``unknown`` policy. ``labels`` is then not a 0/1 matrix.

Whatever the policy, ``difficult_mask`` (N, C) marks the difficult-only entries, so an
evaluation can follow the VOC protocol with the default labels too.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..checks import clip
from .classes import VOC_CLASSES
from .images import ImageFileDataset, check_files_exist, image_name_problem

VOC_LAYOUT = (
    "root/VOCdevkit/VOC{year}/{{Annotations/<id>.xml, ImageSets/Main/<image_set>.txt, "
    "JPEGImages/<id>.jpg}} (root may also be the VOCdevkit or the VOC{year} folder)"
)
DIFFICULT_POLICIES = ("positive", "negative", "ignore")


def _read_image_set(set_file: Path) -> list[str]:
    """Image ids of an ``ImageSets/Main/<set>.txt`` file, one per line, each once.

    Raises:
        ValueError: not UTF-8, a line with more than one token (a per-class list such as
            ``aeroplane_train.txt``, whose lines are ``<id> <1|0|-1>``), or an id listed twice;
            each message names ``file:line``.
    """
    ids: list[str] = []
    seen: dict[str, int] = {}
    data = set_file.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{set_file}:{lineno}: not valid UTF-8 (byte 0x{raw[err.start]:02x})"
            ) from None
        if not line:
            continue
        if len(line.split()) != 1:
            raise ValueError(
                f"{set_file}:{lineno}: expected one image id per line, got {clip(line)} (a "
                "per-class list <class>_<set>.txt? use the image set itself, e.g. "
                "image_set='trainval')"
            )
        if "/" in line or "\\" in line or image_name_problem(line):
            raise ValueError(
                f"{set_file}:{lineno}: image id {clip(line)} is not a plain file stem: an id "
                "names Annotations/<id>.xml and JPEGImages/<id>.jpg inside the VOC folder"
            )
        if line in seen:
            raise ValueError(
                f"{set_file}:{lineno}: image id {clip(line)} listed again (first at line "
                f"{seen[line]})"
            )
        seen[line] = lineno
        ids.append(line)
    return ids


def _find_voc_dir(root: Path, year: str) -> Path | None:
    for cand in (root / "VOCdevkit" / f"VOC{year}", root / f"VOC{year}", root):
        if (cand / "Annotations").is_dir() and (cand / "ImageSets" / "Main").is_dir():
            return cand
    return None


class VOCMultiLabel(ImageFileDataset):
    """PASCAL VOC multi-label classification dataset (20 classes, standard order).

    Args:
        root: folder holding ``VOCdevkit`` (or the ``VOCdevkit`` / ``VOC<year>`` folder).
        year: ``'2007'`` (default) or ``'2012'``.
        image_set: a list in ``ImageSets/Main``: ``'trainval'`` (default), ``'train'``,
            ``'val'`` or ``'test'``.
        difficult: ``'positive'`` (default) | ``'negative'`` | ``'ignore'`` (see the module
            docstring).
        transform: applied to the PIL image in ``__getitem__``.
        verify_files: check at construction that every image file exists (default True).

    Attributes:
        classes: ``VOC_CLASSES``.
        ids: image ids (N,), in image-set order.
        names: image file names ``<id>.jpg``.
        paths: image paths.
        labels: float tensor (N, C): 0/1 (-1 for difficult-only entries with ``'ignore'``).
        difficult_mask: bool tensor (N, C): the class is present only as difficult objects.

    ``__getitem__(i)`` -> ``(image, labels_i)``: a PIL RGB image (or ``transform(image)``) and a
    float tensor (C,).

    Raises:
        FileNotFoundError: root or VOC folder missing (message gives the expected layout); image
            set file missing (message lists the available ones); ``MissingFilesError`` listing
            every missing annotation or image file.
        ValueError: unknown difficult policy; an image set that is empty, not UTF-8, has more
            than one token on a line or a duplicated id (file:line); an unparsable XML file, an
            XML whose ``<filename>`` names another image, or an object of an unknown class
            (file named).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        year: str = "2007",
        image_set: str = "trainval",
        difficult: str = "positive",
        transform: Callable | None = None,
        verify_files: bool = True,
    ) -> None:
        if difficult not in DIFFICULT_POLICIES:
            raise ValueError(f"difficult must be one of {DIFFICULT_POLICIES}, got {difficult!r}")
        year = str(year)
        root = Path(root)
        layout = VOC_LAYOUT.format(year=year)
        if not root.is_dir():
            raise FileNotFoundError(f"VOC root not found: {root}; expected layout: {layout}")
        voc = _find_voc_dir(root, year)
        if voc is None:
            raise FileNotFoundError(
                f"no VOC{year} folder with Annotations/ and ImageSets/Main/ under {root}; "
                f"expected layout: {layout}"
            )
        set_file = voc / "ImageSets" / "Main" / f"{image_set}.txt"
        if not set_file.is_file():
            lists = (voc / "ImageSets" / "Main").glob("*.txt")
            available = sorted(p.stem for p in lists if "_" not in p.stem)  # not <class>_<set>
            raise FileNotFoundError(f"VOC image set not found: {set_file}; available: {available}")
        ids = _read_image_set(set_file)
        if not ids:
            raise ValueError(f"{set_file}: empty image set")

        xml_paths = [voc / "Annotations" / f"{i}.xml" for i in ids]
        check_files_exist(xml_paths, f"VOC{year} annotation files", layout)
        index = {name: k for k, name in enumerate(VOC_CLASSES)}
        any_obj = np.zeros((len(ids), len(VOC_CLASSES)), dtype=bool)  # (N, C)
        easy_obj = np.zeros_like(any_obj)  # (N, C) non-difficult objects
        for i, xml_path in enumerate(xml_paths):
            try:
                tree = ET.parse(xml_path)
            except Exception as err:  # ParseError, and what expat raises for odd encodings
                raise ValueError(f"cannot parse VOC annotation {xml_path}: "
                                 f"{type(err).__name__}: {clip(str(err))}") from err
            filename = (tree.getroot().findtext("filename") or "").strip()
            if filename and filename != f"{ids[i]}.jpg":
                raise ValueError(
                    f"{xml_path}: <filename> is {clip(filename)}, but this is the annotation of "
                    f"image {ids[i]!r} ({ids[i]}.jpg): the file describes another image"
                )
            for obj in tree.getroot().iter("object"):
                name = (obj.findtext("name") or "").strip()
                if name not in index:
                    raise ValueError(
                        f"{xml_path}: unknown VOC class {clip(name)} "
                        "(expected one of the 20 VOC_CLASSES)"
                    )
                flag = (obj.findtext("difficult") or "0").strip()
                if flag not in ("0", "1"):
                    raise ValueError(f"{xml_path}: <difficult> must be 0 or 1, got {clip(flag)}")
                any_obj[i, index[name]] = True
                if flag == "0":
                    easy_obj[i, index[name]] = True
        hard_only = any_obj & ~easy_obj  # (N, C)
        if difficult == "positive":
            labels = any_obj.astype(np.float32)
        elif difficult == "negative":
            labels = easy_obj.astype(np.float32)
        else:
            # -1 where a class has only difficult objects
            labels = easy_obj.astype(np.float32) - hard_only.astype(np.float32)

        self.root, self.voc_dir, self.year, self.image_set = root, voc, year, image_set
        self.difficult = difficult
        self.classes: list[str] = list(VOC_CLASSES)
        self.ids = ids
        self.names = [f"{i}.jpg" for i in ids]
        self.paths = [voc / "JPEGImages" / n for n in self.names]
        self.labels = torch.from_numpy(labels)  # (N, C)
        self.difficult_mask = torch.from_numpy(hard_only)  # (N, C) bool
        self.transform = transform
        if verify_files:
            check_files_exist(self.paths, f"VOC{year} image files", layout)

    def __repr__(self) -> str:
        return (
            f"VOCMultiLabel(root={str(self.root)!r}, year={self.year!r}, "
            f"image_set={self.image_set!r}, difficult={self.difficult!r}, images={len(self)})"
        )
