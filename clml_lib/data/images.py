"""Image loading that fails loudly: a missing or unreadable file raises an error naming its path.

The reference loaders (and many others) wrap loading in ``try/except`` and return a blank image
or skip silently; a corrupt file then trains as an all-black image with real labels. Here the
error always reaches the caller, as a ``ValueError`` naming the file for every problem PIL meets
(decompression bombs included: an image of more than ``PIL.Image.MAX_IMAGE_PIXELS`` x 2 pixels is
refused before it is decoded).

**Bit depth.** Images are served as 8-bit RGB. A 16-bit image (PNG ``I;16`` grayscale, or a PNG
PIL opens as 32-bit ``I``) is scaled to 8 bits, ``round(v * 255 / 65535)``, never clipped
(PIL's own ``convert("RGB")`` would saturate every value above 255). Other 32-bit integer and
float images (``I``, ``F``: TIFF and the like) have no known range and are refused with the file
and the mode.

**Names stay inside the dataset.** :func:`contained_path` joins a dataset root and a name taken
from a data file (a label list, a COCO ``file_name``, a VOC image id) and refuses a name that
could leave the root: an absolute path, a ``..`` component, an empty name.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Iterable

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

#: 16-bit modes PIL gives 16-bit PNG / TIFF grayscale images.
_SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")


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
    """Open an image file and decode it fully as 8-bit RGB (see the module docstring for 16-bit
    images).

    Args:
        path: the image file.

    Returns:
        A ``PIL.Image.Image`` in mode ``'RGB'`` (decoded, the file closed).

    Raises:
        FileNotFoundError: the file does not exist (message names the path).
        ValueError: the file exists but cannot be decoded as an image (not an image, truncated,
            corrupt, a decompression bomb, a float or 32-bit image); the message names the path
            and the reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with Image.open(path) as img:
            img.load()  # force the full decode: a truncated file fails here, not later
            return _to_rgb8(img, path)
    except ValueError as err:
        if str(path) in str(err):
            raise
        raise ValueError(f"cannot read image {path}: {err}") from err
    except Exception as err:  # PIL raises many types (OSError, SyntaxError, DecompressionBomb...)
        raise ValueError(f"cannot read image {path}: {type(err).__name__}: {err}") from err


def _to_rgb8(img: Image.Image, path: Path) -> Image.Image:
    """8-bit RGB, 16-bit values scaled (never clipped); float / 32-bit refused."""
    if img.mode in _SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG"):
        values = np.asarray(img, dtype=np.int64)
        if values.size and (values.min() < 0 or values.max() > 65535):
            raise ValueError(f"cannot read image {path}: values outside 0..65535 in a 16-bit "
                             "image")
        eight = ((values * 255 + 32767) // 65535).astype(np.uint8)
        return Image.fromarray(eight, mode="L").convert("RGB")
    if img.mode in ("I", "F") or img.mode.startswith("I;"):
        raise ValueError(f"cannot read image {path}: mode {img.mode!r} ({img.format or 'unknown'}"
                         " format) has no known value range; save it as an 8- or 16-bit image")
    return img.convert("RGB")


def contained_path(root: str | os.PathLike, name: str, source: str = "") -> Path:
    """``root / name`` for a ``name`` read from a data file, refusing names that leave ``root``.

    Args:
        root: the folder the names are relative to.
        name: the relative name (``/`` separates folders).
        source: where the name comes from (``file:line``, ``file``), put in the message.

    Raises:
        ValueError: ``name`` is empty, absolute (``/x``, ``C:\\x``, ``\\\\server``) or has a
            ``..`` component.
    """
    problem = image_name_problem(name)
    if problem:
        raise ValueError(f"{source + ': ' if source else ''}image name {name[:200]!r} {problem}")
    return Path(root) / name


def image_name_problem(name: str) -> str:
    """Why ``name`` cannot name a file inside a dataset root ('' when it can)."""
    if not isinstance(name, str) or not name:
        return "is empty"
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor:
        return "is an absolute path: names are relative to the dataset root"
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        return "has a '..' component: names may not leave the dataset root"
    if not parts:
        return "names the dataset folder itself, not a file"
    return ""


def normal_image_name(name: str) -> str:
    """``name`` in normal form: ``./a.jpg`` and ``sub//a.jpg`` become ``a.jpg`` and
    ``sub/a.jpg`` (two spellings of one file are then one name)."""
    return str(PurePosixPath(name))


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
