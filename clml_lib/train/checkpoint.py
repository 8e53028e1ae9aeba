"""Training checkpoints: written atomically (:mod:`clml_lib.atomic`), read with
``torch.load(weights_only=True)`` only.

**What is trusted.** A checkpoint holds tensors and plain Python values only (dicts, lists,
tuples, str, int, float, bool, None): the model, EMA, optimizer, scheduler and scaler state dicts,
the config as a dict of plain values, the metrics history, and the RNG states converted by
:func:`clml_lib.seed.rng_state`. :func:`save_checkpoint` refuses anything else, so every file it
writes loads with ``weights_only=True``; :func:`load_checkpoint` never unpickles arbitrary objects
(a file carrying a pickled object is refused before the object is built, so its code never runs).
The checkpoint is a dict with key ``"model"`` (``body.*`` / ``head.*``), so it can also be read
as a weights file by :func:`clml_lib.models.build_model`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..atomic import atomic_torch_save

CHECKPOINT_FORMAT = "clml-train-checkpoint-v2"
REQUIRED_KEYS = ("format", "epoch", "config", "model", "ema", "optimizer", "scheduler", "scaler",
                 "rng", "metrics")
_PLAIN = (str, int, float, bool, type(None), torch.Tensor, torch.Size, torch.dtype, torch.device)


def _first_unsafe(obj: Any, where: str) -> str | None:
    """Path in ``obj`` of the first value that ``weights_only=True`` refuses (None: all plain)."""
    if isinstance(obj, _PLAIN):
        return None
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not isinstance(k, (str, int)):
                return f"{where} (key {k!r} of type {type(k).__name__})"
            bad = _first_unsafe(v, f"{where}[{k!r}]")
            if bad:
                return bad
        return None
    if isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            bad = _first_unsafe(v, f"{where}[{i}]")
            if bad:
                return bad
        return None
    return f"{where} (type {type(obj).__module__}.{type(obj).__name__})"


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> None:
    """``torch.save(state)`` atomically; ``state`` must hold :data:`REQUIRED_KEYS` and only
    tensors and plain Python values (see module doc).

    Raises:
        ValueError: keys missing, or a value that ``weights_only=True`` could not load (its path
            in the dict is named). OSError: the folder is not writable (the target is untouched).
    """
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint state lacks keys {missing}")
    bad = _first_unsafe(state, "state")
    if bad:
        raise ValueError(f"checkpoint value {bad} is not a tensor or plain Python value: it could "
                         "not be loaded with torch.load(weights_only=True)")
    atomic_torch_save(path, state)


def load_checkpoint(path: str | os.PathLike,
                    map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint written by :func:`save_checkpoint`, with
    ``torch.load(weights_only=True)`` (no code from the file runs).

    Raises:
        FileNotFoundError: missing. IsADirectoryError: ``path`` is a directory.
        ValueError: unreadable or not loadable as weights only (e.g. a pickled object inside),
            wrong format tag, or keys missing.
    """
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"checkpoint path {path} is a directory, not a checkpoint file")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        # torch's message advises weights_only=False: never do that for a file from elsewhere
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        raise ValueError(
            f"could not read checkpoint {path} as weights only ({type(err).__name__}: {first}). "
            "Checkpoints of this library hold tensors and plain values only; a file that needs "
            "unpickling of other objects is refused (it could run code). A checkpoint written by "
            "an older version of this library (format v1, NumPy RNG states inside) cannot be "
            "resumed: start over with resume=False or use another out_dir") from err
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        got = state.get("format") if isinstance(state, dict) else type(state).__name__
        raise ValueError(f"{path} is not a clml training checkpoint (format {got!r}, expected "
                         f"{CHECKPOINT_FORMAT!r})")
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise ValueError(f"checkpoint {path} lacks keys {missing}")
    return state
