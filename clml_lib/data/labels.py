"""Reading and writing the one-line-per-image label lists of the reference splits.

Format (the ``dataset/*.txt`` files of the CLML and Hill/SPLC repositories)::

    COCO_train2014_000000480023.jpg, 0 52
    COCO_train2014_000000196094.jpg,0

one image per line: the image file name, a comma, then the 0-based class indices separated by
spaces (the space after the comma is optional). Indices are positions in the dataset's class
list (``classes.py``). The labels are observed positives: every index not listed is 0 (the
"assume negative" encoding, see ``missing.py``).

Decisions (the reference format leaves them open):

* A trailing-dot integer (``2.``, found once in the released NUS-WIDE lists:
  ``0437_424259217.jpg,2.``) is read as that integer with a ``UserWarning`` naming file:line.
  Any other malformed index (``2.0``, ``-1``, ``x``) is a ``ValueError`` naming file:line.
* A line with a name and a comma but no index (``img.jpg,``) is an image with no positive label;
  this is what ``write_label_list`` writes for an all-zero row.
* Blank lines are skipped (they carry no data); a file with no image line is an error.
* A class index repeated on one line counts once (labels are a set), with one exception below.
* **One meaning per line.** The only accepted format is the index list above. A line made only
  of ``0`` and ``1`` tokens with a repeat (``img.jpg, 0 1 0 0 ... 0``, the 0/1 vector of a
  NUS-WIDE style ``*_labels.txt``) has two readings, "the classes {0, 1}" and "a 0/1 vector"; it is
  refused with ``file:line``, the number of columns, and how to convert it. An index list never
  needs a repeat, so no valid line is refused. (With C = 2 classes the line ``0 1`` is read as
  the indices {0, 1}: the index list is the format.)
* An image name listed twice is an error, also when both lines carry the same labels: a split
  lists each image once, and a duplicate would silently double that image's weight in training.
  Names are compared in normal form (``./a.jpg`` is ``a.jpg``) and returned in it.
* Names stay inside the dataset root: an absolute name or one with a ``..`` component is refused
  with ``file:line`` (:func:`clml_lib.data.images.contained_path`).
* Encoding: UTF-8. A leading byte-order mark (``\ufeff``, written by some Windows editors) is
  removed, never made part of the first image name; a line that is not valid UTF-8 is an error
  naming ``file:line`` and the byte.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..atomic import atomic_write_text
from ..checks import check_label_codes, clip
from .images import image_name_problem, normal_image_name

_INT = re.compile(r"[0-9]+")  # ASCII digits only (\d also matches other scripts' digits)
_BOM = b"\xef\xbb\xbf"
_TRAILING_DOT_INT = re.compile(r"([0-9]+)\.")


def read_label_list(path: str | os.PathLike, num_classes: int) -> tuple[list[str], torch.Tensor]:
    """Read a label list file.

    Args:
        path: the text file (UTF-8).
        num_classes: C, the number of classes; every index must be in ``[0, C)``.

    Returns:
        ``(names, labels)``: the N image names in file order, and a float tensor (N, C) of 0/1.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``num_classes`` < 1; the file holds no image line; a line without a comma,
            with an empty name, or with a malformed index; an index outside ``[0, C)``; a 0/1
            vector line (see the module docstring); an image name listed twice; a line that is
            not valid UTF-8. Every message names ``file:line``.
    Warns:
        UserWarning: a trailing-dot index such as ``2.`` (read as 2), naming ``file:line``.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label list not found: {path}")
    names: list[str] = []
    rows: list[list[int]] = []
    first_line: dict[str, tuple[int, int]] = {}  # name -> (line number, row)
    for lineno, line in _text_lines(path):
        if not line:
            continue
        where = f"{path}:{lineno}"
        if "," not in line:
            raise ValueError(
                f"{where}: malformed line {clip(line)}: expected 'name, idx idx ...' "
                "(a comma after the image name)"
            )
        name, _, rest = line.partition(",")
        name = name.strip()
        if not name:
            raise ValueError(f"{where}: empty image name in line {clip(line)}")
        problem = image_name_problem(name)
        if problem:
            raise ValueError(f"{where}: image name {clip(name)} {problem}")
        spelled, name = name, normal_image_name(name)
        tokens = rest.split()
        _refuse_vector_line(tokens, where, num_classes)
        indices: list[int] = []
        for token in tokens:
            if _INT.fullmatch(token):
                idx = int(token)
            else:
                m = _TRAILING_DOT_INT.fullmatch(token)
                if m is None:
                    raise ValueError(
                        f"{where}: malformed class index {clip(token, 60)} in line {clip(line)}: "
                        "expected a non-negative integer"
                    )
                idx = int(m.group(1))
                warnings.warn(
                    f"{where}: class index {token!r} has a trailing dot; read as {idx}",
                    UserWarning,
                    stacklevel=2,
                )
            if idx >= num_classes:
                raise ValueError(
                    f"{where}: class index {idx} out of range for {num_classes} classes "
                    f"(valid: 0..{num_classes - 1})"
                )
            indices.append(idx)
        if name in first_line:
            prev, prev_row = first_line[name]
            same = set(rows[prev_row]) == set(indices)
            kind = "identical" if same else "conflicting"
            again = "" if spelled == name else f" (as {clip(spelled, 80)})"
            raise ValueError(
                f"{where}: image {clip(name, 80)} is listed again{again} ({kind} labels; first "
                f"listed at line {prev}); a split must list each image once"
            )
        first_line[name] = (lineno, len(names))
        names.append(name)
        rows.append(indices)
    if not names:
        raise ValueError(f"{path}: empty label list (no image line)")
    labels = np.zeros((len(names), num_classes), dtype=np.float32)  # (N, C)
    row_of = np.repeat(np.arange(len(rows)), [len(r) for r in rows])
    labels[row_of, np.fromiter((j for r in rows for j in r), dtype=np.int64)] = 1.0
    return names, torch.from_numpy(labels)


def check_image_names(names: Sequence[str], what: str = "names") -> None:
    """Require image names a label list can hold, each once.

    Raises:
        ValueError: a name that is not a non-empty str, has surrounding spaces, a comma, a line
            break or a byte-order mark, is absolute, has a ``..`` component or is not in normal
            form (``./a.jpg``); a name listed twice (its positions named).
    """
    first: dict[str, int] = {}
    for i, name in enumerate(names):
        if (
            not isinstance(name, str)
            or not name
            or name != name.strip()
            or any(ch in name for ch in ",\n\r\ufeff")
        ):
            raise ValueError(
                f"{what}[{i}]: invalid image name {clip(name)}: names must be non-empty strings, "
                "without surrounding spaces, commas, line breaks or byte-order marks"
            )
        problem = image_name_problem(name)
        if problem:
            raise ValueError(f"{what}[{i}]: image name {clip(name)} {problem}")
        if normal_image_name(name) != name:
            raise ValueError(f"{what}[{i}]: image name {clip(name)} is not in normal form "
                             f"(write {clip(normal_image_name(name))})")
        if name in first:
            raise ValueError(
                f"{what}[{i}]: image name {name!r} appears twice (first at {what}[{first[name]}]); "
                "each image is listed once"
            )
        first[name] = i


def label_list_items(
    label_list: str | os.PathLike | tuple[Sequence[str], torch.Tensor], num_classes: int
) -> tuple[list[str], torch.Tensor, str]:
    """A label list given either as a file (:func:`read_label_list`) or as a ``(names, labels)``
    pair, checked the same way.

    Args:
        label_list: a path, or image names (N,) with their labels (N, C) in 1/0/-1.
        num_classes: C.

    Returns:
        ``(names, labels float32 (N, C), source)``; ``source`` names where the list came from
        (the path, or ``'label_list'``) for the caller's messages.

    Raises:
        FileNotFoundError / ValueError: from :func:`read_label_list` (file:line). ValueError:
            a pair whose labels are not (N, C), hold codes other than 1/0/-1, or whose names are
            duplicated or not image names.
    """
    if isinstance(label_list, (str, os.PathLike)):
        names, labels = read_label_list(label_list, num_classes)
        return names, labels, str(label_list)
    names, labels = label_list
    names, labels = list(names), torch.as_tensor(labels, dtype=torch.float32)
    if labels.shape != (len(names), num_classes):
        raise ValueError(f"label_list labels must be ({len(names)}, {num_classes}), "
                         f"got {tuple(labels.shape)}")
    check_label_codes(labels, "label_list labels", row_names=names)
    check_image_names(names, "label_list names")
    return names, labels, "label_list"


def _text_lines(path: Path):
    """Yield ``(line number, stripped text)`` of a UTF-8 file; a leading BOM is dropped.

    Raises:
        ValueError: a line that is not valid UTF-8 (``file:line``, column and byte named).
    """
    data = path.read_bytes()
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                f"{err.start + 1}: {err.reason}); save the label list as UTF-8"
            ) from None
        if "\ufeff" in text:
            raise ValueError(
                f"{path}:{lineno}: a byte-order mark (U+FEFF) inside the file (two files "
                "concatenated?); only a BOM at the very start is accepted"
            )
        yield lineno, text.strip()


def _refuse_vector_line(tokens: list[str], where: str, num_classes: int) -> None:
    """Refuse a line of 0/1 tokens with a repeat: a 0/1 vector, not an index list."""
    if len(tokens) < 2 or len(set(tokens)) == len(tokens) or not set(tokens) <= {"0", "1"}:
        return
    columns = (
        f"exactly C = {num_classes} columns"
        if len(tokens) == num_classes
        else f"{len(tokens)} columns (C = {num_classes})"
    )
    raise ValueError(
        f"{where}: the line holds {len(tokens)} tokens that are all 0 or 1 ({columns}): it "
        "reads as a 0/1 label vector (NUS-WIDE *_labels.txt style), not as a list of class "
        "indices. A label list gives the 0-based indices of the positive classes "
        "('img.jpg, 3 17'); convert each vector row with numpy.flatnonzero(row) first"
    )


def write_label_list(
    path: str | os.PathLike,
    names: Sequence[str],
    labels: torch.Tensor | np.ndarray,
    *,
    overwrite: bool = False,
) -> Path:
    """Write a label list (the inverse of :func:`read_label_list`), atomically.

    Each row i becomes ``names[i], j k ...`` with the indices j of the 1s of ``labels[i]`` in
    increasing order; an all-zero row becomes ``names[i],``. The file goes through
    :func:`clml_lib.atomic.atomic_write_text` (temporary file in the same folder, then renamed),
    so a crash never leaves half a split and no temporary file stays behind.

    Args:
        path: the output file; its folder is created if needed.
        names: N image names (unique, non-empty, without comma, line break, byte-order mark or
            surrounding spaces).
        labels: (N, C) with values in {0, 1} (observed positives; for the 1/0/-1 encoding
            convert first with ``missing.to_assume_negative``).
        overwrite: replace an existing file (default False: an existing file is never
            overwritten silently).

    Returns:
        The path written.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
        IsADirectoryError / OSError: ``path`` is a folder or cannot be written (nothing is left
            behind).
        ValueError: labels not 2-D; ``len(names) != N``; a value outside {0, 1} (e.g. -1); an
            empty, duplicated or otherwise unwritable name.
    """
    y = torch.as_tensor(labels)
    if y.ndim != 2:
        raise ValueError(f"labels must be (N, C), got shape {tuple(y.shape)}")
    if len(names) != y.shape[0]:
        raise ValueError(f"got {len(names)} names for {y.shape[0]} label rows")
    check_label_codes(
        y,
        "labels",
        row_names=names,
        hint="; a label list cannot store unknown (-1) labels: use to_assume_negative() first",
    )
    check_image_names(names, "names")
    path = Path(path)
    if path.exists() and not path.is_dir() and not overwrite:
        raise FileExistsError(
            f"{path} exists; refusing to overwrite it (pass overwrite=True, or --force on the "
            "command line)"
        )
    y_np = y.detach().cpu().numpy()
    lines = []
    for name, row in zip(names, y_np):
        idx = np.nonzero(row)[0]
        lines.append(f"{name}, {' '.join(map(str, idx))}\n" if len(idx) else f"{name},\n")
    return atomic_write_text(path, "".join(lines))
