"""Atomic file writes: the one writer every output of the project goes through.

Each writer puts the new content in a temporary file *in the same folder* as the target
(``.NAME.XXXX.tmp``), flushes and fsyncs it, then moves it over the target with ``os.replace``
(atomic on POSIX and Windows). A crash, a full disk or an exception in the middle therefore
leaves either the old file or the new one, never a half-written file, and the temporary file is
removed on failure. This module is the bottom layer: it imports nothing from ``clml_lib``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable

import torch


def _atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(fh)`` on a temporary binary file beside ``path``, then move it over ``path``.

    The parent folder is created if needed.

    Raises:
        IsADirectoryError: ``path`` is an existing directory.
        OSError: the folder is not writable or the disk is full (the target is untouched and
            the temporary file is removed). Any exception raised by ``write`` propagates, with the
            same clean-up.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path`` as a :class:`~pathlib.Path`.

    Raises:
        TypeError: ``data`` is not bytes-like. IsADirectoryError / OSError: see module docstring.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_write_bytes needs bytes, got {type(data).__name__}")
    return _atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` (encoded with ``encoding``, no newline translation) atomically.

    Raises:
        TypeError: ``text`` is not a str. IsADirectoryError / OSError: see module docstring.
    """
    if not isinstance(text, str):
        raise TypeError(f"atomic_write_text needs a str, got {type(text).__name__}")
    return atomic_write_bytes(path, text.encode(encoding))


def json_safe(obj: Any) -> Any:
    """Strict-JSON form of ``obj``: NaN / inf floats -> ``None``, tuples -> lists, dict keys ->
    str, zero-dimensional NumPy / torch scalars -> Python numbers. Other values pass unchanged
    (``json.dumps`` then refuses what it cannot encode)."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as strict JSON (NaN/inf -> null, indent 1, trailing newline) atomically.

    Raises:
        TypeError: ``obj`` holds a value JSON cannot encode (nothing is written).
        IsADirectoryError / OSError: see module docstring.
    """
    text = json.dumps(json_safe(obj), indent=1, allow_nan=False)
    return atomic_write_text(path, text + "\n")


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> Path:
    """``torch.save(obj)`` atomically.

    Raises:
        IsADirectoryError / OSError: see module docstring. Errors of ``torch.save`` propagate.
    """
    return _atomic_write(path, lambda fh: torch.save(obj, fh))


__all__ = ["atomic_write_bytes", "atomic_write_text", "atomic_write_json", "atomic_torch_save",
           "json_safe"]
