"""Validation of scalar settings, shared by every layer (losses, data, metrics, training config).

Each hyper-parameter is validated once, by the object that uses it (a loss checks its own
$\\lambda$, $\\tau$, $\\Delta$, $\\gamma$); :class:`clml_lib.train.config.TrainConfig` reuses these
same functions for its fields, so the library API and the config reject the same values with the
same message. Every function raises ``ValueError`` naming the setting, the value and what is allowed.
"""

from __future__ import annotations

import difflib
import math
from typing import Any, Iterable


def check_bool(name: str, value: Any) -> bool:
    """Require a real ``bool``: the string ``"False"`` or the int ``0`` are refused (``bool("False")``
    is True, the ``type=bool`` trap of argparse).

    Raises:
        ValueError: ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def check_int(name: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    """Require an int (not a bool) in ``[lo, hi]`` (either bound optional, both inclusive).

    Raises:
        ValueError: not an int, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r} ({type(value).__name__})")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise ValueError(f"{name} must be in {_range_text(lo, hi, False, False)}, got {value}")
    return value


def check_number(
    name: str,
    value: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """Require a finite real number in a range; returns it as ``float``.

    ``lo``/``hi`` are optional bounds, closed unless ``lo_open``/``hi_open``. NaN and inf are always
    refused (a NaN weight would silently switch a term off: ``nan > 0`` is False).

    Raises:
        ValueError: not a number (bools and strings included), not finite, or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value!r}")
    below = lo is not None and (value <= lo if lo_open else value < lo)
    above = hi is not None and (value >= hi if hi_open else value > hi)
    if below or above:
        raise ValueError(f"{name} must be in {_range_text(lo, hi, lo_open, hi_open)}, got {value}")
    return value


def check_choice(name: str, value: Any, allowed: Iterable[str]) -> str:
    """Require one of ``allowed`` (exact spelling); the message suggests the closest one.

    Raises:
        ValueError: ``value`` is not in ``allowed``.
    """
    allowed = tuple(allowed)
    if isinstance(value, str) and value in allowed:
        return value
    hint = ""
    if isinstance(value, str):
        lower = {a.lower(): a for a in allowed}
        close = [lower[value.lower()]] if value.lower() in lower else difflib.get_close_matches(
            value, allowed, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"{name} must be one of {allowed}, got {value!r}{hint}")


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    left = "-inf" if lo is None else f"{lo:g}"
    right = "inf" if hi is None else f"{hi:g}"
    return f"{'(' if lo_open or lo is None else '['}{left}, {right}{')' if hi_open or hi is None else ']'}"


__all__ = ["check_bool", "check_int", "check_number", "check_choice"]
