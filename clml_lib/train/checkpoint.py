"""Atomic files: checkpoints and JSON written to a temporary file in the same folder, flushed,
fsync'ed, then moved over the target with ``os.replace`` (atomic on POSIX and Windows), so a
crash never leaves a half-written ``checkpoint.pt`` or ``metrics.json``.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = "clml-train-checkpoint-v1"
REQUIRED_KEYS = ("format", "epoch", "config", "model", "ema", "optimizer", "scheduler", "scaler",
                 "rng", "metrics")


def _atomic_write(path: Path, write) -> None:
    path = Path(path)
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


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save(state)`` atomically. ``state`` must hold :data:`REQUIRED_KEYS`.

    Raises:
        ValueError: keys missing. OSError: the folder is not writable (the target is untouched).
    """
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks keys {missing}")
    _atomic_write(Path(path), lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint`.

    Raises:
        FileNotFoundError: missing. ValueError: unreadable, wrong format tag, or keys missing.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as err:
        raise ValueError(f"could not read checkpoint {path}: {type(err).__name__}: {err}") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is not a clml training checkpoint (format {got!r}, expected {CHECKPOINT_FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks keys {missing}")
    return state


def _json_safe(obj: Any) -> Any:
    """NaN / inf floats -> None (strict JSON), tuples -> lists, NumPy / torch scalars -> Python."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as strict JSON (NaN/inf -> null), indented, atomically."""
    text = json.dumps(_json_safe(obj), indent=1, allow_nan=False)
    _atomic_write(Path(path), lambda fh: fh.write((text + "\n").encode()))
