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
* A class index repeated on one line counts once (labels are a set).
* An image name listed twice is an error, also when both lines carry the same labels: a split
  lists each image once, and a duplicate would silently double that image's weight in training.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

_INT = re.compile(r"\d+")
_TRAILING_DOT_INT = re.compile(r"(\d+)\.")


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
            with an empty name, or with a malformed index; an index outside ``[0, C)``; an image
            name listed twice. Every message names ``file:line``.
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
    with open(path, encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            line = raw.strip()
            if not line:
                continue
            where = f"{path}:{lineno}"
            if "," not in line:
                raise ValueError(
                    f"{where}: malformed line {line!r}: expected 'name, idx idx ...' "
                    "(a comma after the image name)"
                )
            name, _, rest = line.partition(",")
            name = name.strip()
            if not name:
                raise ValueError(f"{where}: empty image name in line {line!r}")
            indices: list[int] = []
            for token in rest.split():
                if _INT.fullmatch(token):
                    idx = int(token)
                else:
                    m = _TRAILING_DOT_INT.fullmatch(token)
                    if m is None:
                        raise ValueError(
                            f"{where}: malformed class index {token!r} in line {line!r}: "
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
                raise ValueError(
                    f"{where}: image {name!r} is listed again ({kind} labels; first listed at "
                    f"line {prev}); a split must list each image once"
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


def write_label_list(
    path: str | os.PathLike, names: Sequence[str], labels: torch.Tensor | np.ndarray
) -> Path:
    """Write a label list (the inverse of :func:`read_label_list`), atomically.

    Each row i becomes ``names[i], j k ...`` with the indices j of the 1s of ``labels[i]`` in
    increasing order; an all-zero row becomes ``names[i],``. The file is written to a
    temporary name in the same folder and then renamed, so a crash never leaves half a split.

    Args:
        path: the output file; its folder is created if needed.
        names: N image names (unique, non-empty, without comma or line break).
        labels: (N, C) with values in {0, 1} (observed positives; for the 1/0/-1 encoding
            convert first with ``missing.to_assume_negative``).

    Returns:
        The path written.

    Raises:
        ValueError: labels not 2-D; ``len(names) != N``; a value outside {0, 1} (e.g. -1); an
            empty, duplicated or comma/newline-holding name.
    """
    y = torch.as_tensor(labels)
    if y.ndim != 2:
        raise ValueError(f"labels must be (N, C), got shape {tuple(y.shape)}")
    if len(names) != y.shape[0]:
        raise ValueError(f"got {len(names)} names for {y.shape[0]} label rows")
    bad = ~((y == 0) | (y == 1))
    if bad.any():
        i, j = (int(v) for v in torch.nonzero(bad)[0])
        raise ValueError(
            f"labels must be 0/1, got {y[i, j].item()!r} at row {i} ({names[i]!r}), class {j}; "
            "a label list cannot store unknown (-1) labels: use to_assume_negative() first"
        )
    seen: set[str] = set()
    for name in names:
        if not name or name != name.strip() or "," in name or "\n" in name or "\r" in name:
            raise ValueError(
                f"invalid image name {name!r}: names must be non-empty, without surrounding "
                "spaces, commas or line breaks"
            )
        if name in seen:
            raise ValueError(f"image name {name!r} appears twice")
        seen.add(name)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    y_np = y.detach().cpu().numpy()
    with open(tmp, "w", encoding="utf-8") as fh:
        for name, row in zip(names, y_np):
            idx = np.nonzero(row)[0]
            fh.write(f"{name}, {' '.join(map(str, idx))}\n" if len(idx) else f"{name},\n")
    os.replace(tmp, path)
    return path
