"""Image loading that fails loudly: a missing or unreadable file raises an error naming its path.

The reference loaders (and many others) wrap loading in ``try/except`` and return a blank image
or skip silently; a corrupt file then trains as an all-black image with real labels. Here the
error always reaches the caller.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset


class MissingFilesError(FileNotFoundError):
    """Some files a dataset lists are not on disk.

    Attributes:
        missing: every missing path (the message shows the first 20 and the count).
        what: what is missing (e.g. ``'COCO train2014 image files'``).
        expected: the expected layout, or ``''``.
    """

    def __init__(self, what: str, missing: list[Path], expected: str = "") -> None:
        self.missing = list(missing)
        self.what, self.expected = what, expected
        shown = "\n  ".join(str(p) for p in self.missing[:20])
        more = f"\n  ... and {len(self.missing) - 20} more" if len(self.missing) > 20 else ""
        hint = f"\nexpected layout: {expected}" if expected else ""
        super().__init__(f"{len(self.missing)} {what} missing:\n  {shown}{more}{hint}")


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open an image file and decode it fully as RGB.

    Args:
        path: the image file.

    Returns:
        A ``PIL.Image.Image`` in mode ``'RGB'`` (decoded, the file closed).

    Raises:
        FileNotFoundError: the file does not exist (message names the path).
        ValueError: the file exists but cannot be decoded as an image (not an image, truncated
            or corrupt); the message names the path and PIL's reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()  # force the full decode: a truncated file fails here, not later
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ValueError(f"cannot read image {path}: {err}") from err


def check_files_exist(paths: Iterable[Path], what: str = "image files", expected: str = "") -> None:
    """Raise :class:`MissingFilesError` listing every path of ``paths`` that is not a file."""
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise MissingFilesError(what, missing, expected)


class ImageFileDataset(Dataset):
    """Common item access of the file-backed datasets (COCO, VOC, NUS-WIDE).

    Subclasses set ``paths`` (list of image paths), ``labels`` (float tensor ``(N, C)``) and
    ``transform``. An item is ``(transform(image), labels[i])``; a missing or corrupt file raises
    with its path (:func:`load_image`), never a blank image.
    """

    paths: list
    labels: "object"
    transform: "object"

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        image = load_image(self.paths[i])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.labels[i].clone()
