"""Seeding, derived seeds, RNG states and deterministic switches shared by the library, the tests
and the notebooks."""

from __future__ import annotations

import os
import random
from typing import Any

import numpy as np
import torch

from .checks import Range

#: Seeds accepted everywhere (``seed``, ``split_seed``, grid seeds): torch's generators take a
#: signed 64-bit value, so larger integers would fail inside training.
SEED_RANGE = Range(0, 2**63 - 1, integer=True)


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device).

    With ``deterministic=True`` cuDNN autotuning is switched off and torch is asked for
    deterministic kernels where they exist (``warn_only=True``: an op without a
    deterministic kernel warns instead of failing).

    Raises:
        ValueError: ``seed`` is not an int in :data:`SEED_RANGE`.
    """
    seed = SEED_RANGE.check("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)


def seed_for(*parts: int) -> int:
    """A 63-bit seed derived from integers (e.g. ``(seed, epoch, rank)``) through NumPy's
    ``SeedSequence``: well-mixed, and different tuples give independent streams.

    Raises:
        ValueError: a part is not an integer (bools refused) or is negative.
    """
    for p in parts:
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 0:
            raise ValueError(f"seed_for takes non-negative integers, got {parts!r}")
    state = np.random.SeedSequence([int(p) for p in parts]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def reseed(seed: int) -> None:
    """Seed the Python, NumPy and torch global generators from one integer (no determinism
    switches: :func:`seed_everything` sets those once per process)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict[str, Any]:
    """Every global RNG state as plain types and tensors, loadable with
    ``torch.load(weights_only=True)`` (no NumPy objects, no pickled classes).

    Returns:
        ``{"python": [version, [625 ints], gauss], "numpy": {"keys": uint32 (624,) as int64
        tensor, "pos", "has_gauss", "cached_gaussian"}, "torch": uint8 tensor[, "cuda": [...]]}``.
    """
    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    if name != "MT19937":  # pragma: no cover - NumPy's legacy global generator is always MT19937
        raise ValueError(f"unexpected NumPy generator {name!r}")
    state: dict[str, Any] = {
        "python": [int(version), [int(v) for v in internal], gauss],
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the global RNGs from :func:`rng_state`'s dict.

    Raises:
        ValueError: a key is missing or a value has the wrong shape.
    """
    try:
        version, internal, gauss = state["python"]
        np_state = state["numpy"]
        keys = np_state["keys"].numpy().astype(np.uint32)
        if keys.shape != (624,):
            raise ValueError(f"NumPy MT19937 keys must have shape (624,), got {keys.shape}")
        random.setstate((int(version), tuple(int(v) for v in internal), gauss))
        np.random.set_state(("MT19937", keys, int(np_state["pos"]), int(np_state["has_gauss"]),
                             float(np_state["cached_gaussian"])))
        torch.set_rng_state(state["torch"])
    except (KeyError, TypeError, AttributeError) as err:
        raise ValueError(f"malformed RNG state: {type(err).__name__}: {err}") from err
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
