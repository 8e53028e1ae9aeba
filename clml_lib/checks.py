"""Validation shared by every layer (losses, data, metrics, training config).

* Scalar settings: :func:`check_bool`, :func:`check_int`, :func:`check_number`,
  :func:`check_choice`, and :class:`Range` (an allowed interval, declared once as a constant next
  to the object that uses it, e.g. ``clml_lib.losses.correction.TAU_RANGE``).
* Label matrices: :func:`check_label_codes`, the one check of label codes ({0, 1} or
  {-1, 0, 1}) used by ``clml_lib.data``, ``clml_lib.metrics`` and ``clml_lib.losses``.

Each hyper-parameter is validated once, by the object that uses it (a loss checks its own
$\\lambda$, $\\tau$, $\\Delta$, $\\gamma$); :class:`clml_lib.train.config.TrainConfig` reuses these
same functions for its fields, so the library API and the config reject the same values with the
same message. Every function raises ``ValueError`` naming the setting, the value and what is
allowed.
"""

from __future__ import annotations

import difflib
import math
import numbers
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np
import torch


#: The most characters of a value an error message quotes (:func:`clip`).
CLIP_CHARS = 200


def clip(value: Any, limit: int = CLIP_CHARS) -> str:
    """``repr(value)`` cut to at most ``limit`` characters, for error messages: a value read from a
    file may be huge (a long string, a deeply nested list), and a message must stay one line.

    The repr of a container is built piece by piece and stops early, so even a value that is
    expensive to print in full costs at most about ``limit`` characters of work per level.
    """
    text = _short_repr(value, limit + 1)
    if len(text) <= limit:
        return text
    return text[: limit - 3] + "..."


def _short_repr(value: Any, budget: int, depth: int = 0) -> str:
    """``repr(value)``, or a prefix of it of at least ``budget`` characters."""
    if depth > 20:
        return "..."
    if isinstance(value, dict):
        parts, used = [], 1
        for k, v in value.items():
            piece = f"{_short_repr(k, budget, depth + 1)}: {_short_repr(v, budget, depth + 1)}"
            parts.append(piece)
            used += len(piece) + 2
            if used > budget:
                return "{" + ", ".join(parts)
        return "{" + ", ".join(parts) + "}"
    if isinstance(value, (list, tuple)):
        open_, close = ("[", "]") if isinstance(value, list) else ("(", ")")
        parts, used = [], 1
        for v in value:
            piece = _short_repr(v, budget, depth + 1)
            parts.append(piece)
            used += len(piece) + 2
            if used > budget:
                return open_ + ", ".join(parts)
        return open_ + ", ".join(parts) + close
    if isinstance(value, str) and len(value) > budget:
        return repr(value[:budget])
    return repr(value)


def check_bool(name: str, value: Any) -> bool:
    """Require a real ``bool``: the string ``"False"`` or the int ``0`` are refused
    (``bool("False")`` is True, the ``type=bool`` trap of argparse).

    Raises:
        ValueError: ``value`` is not a bool.
    """
    if not isinstance(value, bool):
        raise ValueError(
            f"{name} must be True or False, got {clip(value)} ({type(value).__name__})")
    return value


def check_int(name: str, value: Any, *, lo: int | None = None, hi: int | None = None) -> int:
    """Require an int (not a bool) in ``[lo, hi]`` (either bound optional, both inclusive).

    NumPy integers are accepted and returned as ``int``; floats (even ``2.0``) are refused.

    Raises:
        ValueError: not an int, or out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise ValueError(f"{name} must be an integer, got {clip(value)} ({type(value).__name__})")
    value = int(value)
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
    refused (a NaN weight would silently switch a term off: ``nan > 0`` is False). NumPy scalars
    are accepted.

    Raises:
        ValueError: not a number (bools and strings included), not finite, or out of range.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a number, got {clip(value)} ({type(value).__name__})")
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
    if isinstance(value, str) and len(value) <= CLIP_CHARS:
        lower = {a.lower(): a for a in allowed}
        close = (
            [lower[value.lower()]]
            if value.lower() in lower
            else difflib.get_close_matches(value, allowed, n=1, cutoff=0.5)
        )
        hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"{name} must be one of {allowed}, got {clip(value)}{hint}")


@dataclass(frozen=True)
class Range:
    """An allowed interval for one hyper-parameter, declared once and used by every entry point.

    ``lo``/``hi`` are optional bounds (``None`` = unbounded), closed unless ``lo_open``/``hi_open``;
    ``integer=True`` requires an int (:func:`check_int`), otherwise a finite real
    (:func:`check_number`: NaN and inf are always refused).

    Example: ``TAU_RANGE = Range(0.0, 1.0)``; ``TAU_RANGE.check("tau", 0.75)`` returns ``0.75``.
    """

    lo: float | None = None
    hi: float | None = None
    lo_open: bool = False
    hi_open: bool = False
    integer: bool = False

    def __post_init__(self) -> None:
        if self.integer and (self.lo_open or self.hi_open):
            raise ValueError("an integer Range takes closed bounds (write lo=1, not lo=0 open)")

    def check(self, name: str, value: Any) -> float | int:
        """Return ``value`` (as float, or int when ``integer``) if it lies in the range.

        Raises:
            ValueError: wrong type (bools and strings included), NaN/inf, or out of range; the
                message names ``name``, the value and the range.
        """
        if self.integer:
            return check_int(name, value, lo=self.lo, hi=self.hi)
        return check_number(
            name, value, lo=self.lo, hi=self.hi, lo_open=self.lo_open, hi_open=self.hi_open
        )

    def __str__(self) -> str:
        text = _range_text(self.lo, self.hi, self.lo_open, self.hi_open)
        return f"integers in {text}" if self.integer else text


def check_label_codes(
    labels: Any,
    name: str = "labels",
    *,
    allow_unknown: bool = False,
    source: str = "",
    row_names: Sequence[str] | None = None,
    hint: str = "",
) -> Any:
    """Require label codes in {0, 1}, or {-1, 0, 1} (-1 = unknown) when ``allow_unknown``.

    The one check of label codes for the whole library (data sets, split files, metrics,
    losses). Only the codes are checked, not the shape: a ``(N, C)`` matrix is the usual input,
    any shape is accepted.

    Args:
        labels: a ``torch.Tensor`` (any device; bool, integer or floating dtype), a NumPy array,
            or anything ``np.asarray`` turns into a numeric array (nested lists).
        name: what ``labels`` is, for the message (e.g. ``'targets'``, ``'observed'``).
        allow_unknown: also accept -1.
        source: where the labels come from (a file, ``file:line``), put in front of the message.
        row_names: optional names of the rows (image names), shown next to the first bad row.
        hint: text appended to the message (what to do instead).

    Returns:
        ``labels``, unchanged.

    Raises:
        ValueError: a value outside the allowed codes (NaN included) or a non-numeric array; the
            message lists up to five distinct offending values, their count, and the index of the
            first one (``row i ('name'), class j`` for a matrix).

    On a GPU tensor the check costs one host synchronisation (the ``all()``), plus a few more only
    when it fails.
    """
    if isinstance(labels, torch.Tensor):
        if labels.dtype == torch.bool:
            return labels
        if labels.is_complex():
            raise ValueError(
                f"{_prefix(source)}{name} must be real label codes, got {labels.dtype}"
            )
        ok = (labels == 0) | (labels == 1)
        if allow_unknown:
            ok |= labels == -1
        if bool(ok.all()):
            return labels
        bad_mask = ~ok
        first = tuple(int(v) for v in torch.nonzero(bad_mask)[0])
        values = labels.detach()[bad_mask].to("cpu", torch.float64).numpy()
        shape = tuple(labels.shape)
    else:
        arr = np.asarray(labels)
        if arr.dtype == np.bool_:
            return labels
        if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
            raise ValueError(
                f"{_prefix(source)}{name} must be numeric label codes, got dtype {arr.dtype}"
            )
        ok = (arr == 0) | (arr == 1)
        if allow_unknown:
            ok |= arr == -1
        if bool(ok.all()):
            return labels
        bad_mask = ~ok
        first = tuple(int(v) for v in np.argwhere(bad_mask)[0])
        values = arr[bad_mask].astype(np.float64)
        shape = arr.shape
    distinct = np.unique(values)  # sorted, NaN last (counted once)
    shown = ", ".join(_code_text(v) for v in distinct[:5])
    more = f", ... ({len(distinct)} distinct)" if len(distinct) > 5 else ""
    codes = "{-1, 0, 1} (-1 = unknown)" if allow_unknown else "{0, 1}"
    if len(shape) == 2:
        row = f"row {first[0]}"
        if row_names is not None and first[0] < len(row_names):
            row += f" ({row_names[first[0]]!r})"
        at = f"{row}, class {first[1]}"
    else:
        at = f"index {first}"
    raise ValueError(
        f"{_prefix(source)}{name} must hold only {codes}, found {shown}{more} in {len(values)} "
        f"of {int(np.prod(shape))} entries (first at {at}){hint}"
    )


def _prefix(source: str) -> str:
    return f"{source}: " if source else ""


def _code_text(v: float) -> str:
    if math.isnan(v):
        return "nan"
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def _bound_text(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _range_text(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    left = "-inf" if lo is None else _bound_text(lo)
    right = "inf" if hi is None else _bound_text(hi)
    opening = "(" if lo_open or lo is None else "["
    closing = ")" if hi_open or hi is None else "]"
    return f"{opening}{left}, {right}{closing}"


__all__ = ["Range", "clip", "CLIP_CHARS", "check_bool", "check_int", "check_number",
           "check_choice", "check_label_codes"]
