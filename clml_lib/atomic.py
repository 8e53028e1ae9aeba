"""Atomic file writes: the one writer every output of the project goes through.

Each writer puts the new content in a temporary file *in the same folder* as the target
(``.NAME.XXXX.tmp``), flushes and fsyncs it, then moves it over the target with ``os.replace``
(atomic on POSIX and Windows). A crash, a full disk or an exception in the middle therefore
leaves either the old file or the new one, never a half-written file, and the temporary file is
removed on failure (a process killed with ``kill -9`` cannot remove it: :func:`stale_temp_files`
finds such leftovers, and the run lock removes them from a run folder it takes).

* **Symbolic links are never followed.** A target that is a symbolic link is replaced by a
  regular file (``os.replace`` moves over the link itself), so a link planted in a run folder
  cannot redirect a write to a file elsewhere. :func:`open_append` (logs) refuses a link.
* **Modes follow the umask.** A new file gets ``0o666 & ~umask`` (``0o644`` with the usual umask
  022), like a file created with ``open``; a file that is replaced keeps its mode.
* **A full disk is named.** ``ENOSPC`` (and ``EDQUOT``) raise one ``OSError`` saying "No space
  left on device while writing <target>", whatever layer met it (``torch.save`` reports a failed
  write as a ``RuntimeError`` of its C++ writer; the error of the underlying write is kept and
  raised instead).

This module is the bottom layer: it imports nothing from ``clml_lib``.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable

import torch

#: errno values that mean "the disk (or the quota) is full".
_FULL = (errno.ENOSPC, errno.EDQUOT)


def current_umask() -> int:
    """The process umask, read without changing it where the system allows (Linux
    ``/proc/self/status``), else by setting it and putting it back."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _target_mode(path: Path) -> int:
    """The mode the written file gets: an existing regular file's own, else 0o666 & ~umask."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        st = None
    if st is not None and stat.S_ISREG(st.st_mode):
        return stat.S_IMODE(st.st_mode)
    return 0o666 & ~current_umask()


class _Tracked:
    """A binary file that remembers the ``OSError`` of a failed write (torch's writer replaces it
    by a ``RuntimeError`` without the errno)."""

    def __init__(self, fh: BinaryIO):
        self._fh = fh
        self.error: OSError | None = None

    def write(self, data) -> int:
        try:
            return self._fh.write(data)
        except OSError as err:
            self.error = err
            raise

    def __getattr__(self, name: str):
        return getattr(self._fh, name)


def _full_disk(path: Path, err: OSError) -> OSError:
    return OSError(err.errno, f"{os.strerror(err.errno)} while writing {path}; the previous "
                              "file is unchanged: free some space and run again")


def _atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write(fh)`` on a temporary binary file beside ``path``, then move it over ``path``.

    The parent folder is created if needed.

    Raises:
        IsADirectoryError: ``path`` is an existing directory.
        OSError: the folder is not writable, or the disk is full (then the message says "No space
            left on device while writing" ``path``); the target is untouched and the temporary file
            is removed. Any exception raised by ``write`` propagates, with the same clean-up.
    """
    path = Path(path)
    if path.is_dir() and not path.is_symlink():
        raise IsADirectoryError(f"cannot write {path}: it is a directory")
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _target_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    tracked = None
    try:
        with os.fdopen(fd, "wb") as fh:
            tracked = _Tracked(fh)
            write(tracked)
            fh.flush()
            os.fsync(fh.fileno())
            os.fchmod(fh.fileno(), mode)
        os.replace(tmp, path)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        cause = tracked.error if tracked is not None and tracked.error is not None else exc
        if isinstance(cause, OSError) and cause.errno in _FULL:
            raise _full_disk(path, cause) from exc
        raise
    return path


#: Suffix of the writer's temporary files (``.NAME.XXXX.tmp``).
TEMP_SUFFIX = ".tmp"


def stale_temp_files(folder: str | os.PathLike) -> list[Path]:
    """Temporary files of this writer left in ``folder`` (a writer killed mid-write): regular
    files named ``.NAME.XXXX.tmp``. Only the caller knows no writer is running there (the run lock
    does), so this function only lists them."""
    folder = Path(folder)
    out = []
    for p in folder.glob(f".*{TEMP_SUFFIX}"):
        if p.is_file() and not p.is_symlink() and p.name.count(".") >= 3:
            out.append(p)
    return sorted(out)


def open_append(path: str | os.PathLike):
    """Open a log file for appending text (UTF-8), created with the umask's mode; a symbolic
    link or anything but a regular file is refused.

    Raises:
        OSError: ``path`` is a symbolic link (``ELOOP``), a folder or another non-regular file, or
            cannot be created; the message names ``path``.
    """
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as err:
        what = "a symbolic link (not followed)" if err.errno == errno.ELOOP else err.strerror
        raise OSError(err.errno, f"cannot write the log {path}: {what}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"cannot write the log {path}: not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a", encoding="utf-8")


def refuse_overwrite(out: str | os.PathLike, inputs: Iterable[str | os.PathLike] = (),
                     force: bool = False, flag: str = "--out") -> Path:
    """Check an output path of a command before anything is computed.

    Args:
        out: the output file.
        inputs: the files and folders the command reads: ``out`` may be none of them and may not
            lie inside an input folder, even with ``force``.
        force: allow replacing an existing file that is not an input.
        flag: the option's name, for messages.

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: ``out`` is a folder, lies under a file, is (or lies in) an input, or exists
            and ``force`` is False.
    """
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"{flag} {out} is a folder; give the path of a file")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"{flag} {out}: {parent} is a file, not a folder")
            break
    target = out.resolve()
    for item in inputs:
        src = Path(item).resolve()
        if target == src or (src.is_dir() and target.is_relative_to(src)):
            raise ValueError(f"{flag} {out} would overwrite an input of this command ({item}"
                             f"{' holds it' if target != src else ''}); choose another {flag}")
    if out.exists() and not force:
        raise ValueError(f"{flag} {out} exists; choose another {flag}, or pass --force to "
                         "replace it")
    return out


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
           "json_safe", "open_append", "refuse_overwrite", "stale_temp_files", "current_umask",
           "TEMP_SUFFIX"]
