r"""Checkers for the exercises at the end of every notebook.

Layout (one chapter = one notebook ``NN_*.ipynb``):

* ``clml_lib/exercises/chNN.py``: one ``check_<name>(answer)`` per exercise. A checker rebuilds
  the exercise's inputs itself (fixed seeds), computes the expected answer by an independent route
  (usually a float64 computation from the definition, cross-checked against the library), and
  compares. It **prints** one line and returns ``True`` for a correct answer, prints
  "not answered yet" and returns ``False`` for ``None`` (so a notebook runs before the student
  answers), and **raises** :class:`ExerciseError` with a hint for a wrong answer, without
  giving the expected value away. An answer holding a NaN or an infinity (a number, an array or
  tensor entry, a dict key, or a value returned by a function given as the answer) is wrong
  before any comparison: :func:`verdict` rejects it (``nan > 0`` is False, so a test written
  "reject if the loss is above the bound" would otherwise accept a NaN).
* ``notebooks/solutions/chNN.py``: one ``solve_<name>()`` per checker, returning a correct answer,
  and a ``WRONG`` dict of typical wrong answers per exercise (the checker must reject each).
  ``notebooks/solutions/chNN.md`` holds the written solutions (derivations and proofs).
* ``tests/test_solutions.py`` runs every solution through its checker, every wrong answer too, and
  checks that each notebook calls every checker of its chapter.

A new chapter (e.g. notebook 04) adds ``ch04.py`` here, ``ch04.py`` and ``ch04.md`` under
``notebooks/solutions/``, and calls ``check_...`` in its exercise cells; :data:`CHAPTERS` and
the test find them without further registration.
"""

from __future__ import annotations

import functools
import math
import numbers
import pkgutil
from typing import Any, Callable

import numpy as np
import torch

__all__ = ["ExerciseError", "verdict", "close", "non_finite", "CHAPTERS"]

#: chapters that have checkers: every module ``clml_lib.exercises.chNN`` present
CHAPTERS = tuple(
    sorted(
        m.name[2:]
        for m in pkgutil.iter_modules(__path__)
        if m.name.startswith("ch") and m.name[2:].isdigit()
    )
)


class ExerciseError(AssertionError):
    """A wrong answer: the message says what is wrong and gives a hint."""


def verdict(exercise: str, answer: Any, judge: Callable[[Any], str | None], ok: str = "") -> bool:
    """Judge an answer and report.

    Args:
        exercise: short name printed in the report, e.g. ``"01.2 BCE minimiser"``.
        answer: the student's answer; ``None`` means not answered yet.
        judge: returns ``None`` if the answer is right, else a message (what is wrong, a hint).
            Any exception it raises while handling the answer (a wrong type, a shape) is turned
            into an :class:`ExerciseError` naming the exercise.
        ok: extra text printed after "correct".

    Returns:
        True if correct, False if not answered.

    Raises:
        ExerciseError: the answer is wrong (message with a hint).
    """
    if answer is None:
        print(f"exercise {exercise}: not answered yet (replace None by your answer)")
        return False
    where = non_finite(answer)
    if where:
        raise ExerciseError(f"exercise {exercise}: the answer holds {where}: a NaN or an "
                            "infinity is never a correct answer (look for a division by zero, "
                            "a log of 0 or an overflow)")
    try:
        problem = judge(_guard(answer, exercise))
    except ExerciseError:
        raise
    except Exception as err:  # a malformed answer: say so, naming the exercise
        raise ExerciseError(
            f"exercise {exercise}: could not check the answer: {type(err).__name__}: {err}"
        ) from err
    if problem is not None:
        raise ExerciseError(f"exercise {exercise}: {problem}")
    print(f"exercise {exercise}: correct" + (f" ({ok})" if ok else ""))
    return True


def non_finite(answer: Any, where: str = "answer") -> str:
    """Where ``answer`` holds a NaN or an infinity (``"answer[1]['T'] = nan"``), or ``""``.

    Numbers, NumPy arrays and scalars, torch tensors, and the keys and values of lists, tuples,
    sets and dicts are searched; other objects (functions, strings) are not.
    """
    if isinstance(answer, torch.Tensor):
        if answer.is_floating_point() or answer.is_complex():
            bad = ~torch.isfinite(answer.detach())
            if bool(bad.any()):
                first = tuple(int(i) for i in torch.nonzero(bad)[0])
                return f"a non-finite entry in {where} at index {first}"
        return ""
    if isinstance(answer, np.ndarray):
        if answer.dtype.kind in "fc":
            bad = ~np.isfinite(answer)
            if bad.any():
                return f"a non-finite entry in {where} at index {tuple(np.argwhere(bad)[0])}"
        return ""
    if isinstance(answer, (bool, np.bool_)):
        return ""
    if isinstance(answer, numbers.Number):
        value = complex(answer)
        if not (math.isfinite(value.real) and math.isfinite(value.imag)):
            return f"{where} = {answer!r}"
        return ""
    if isinstance(answer, dict):
        for k, v in answer.items():
            found = non_finite(k, f"a key of {where}") or non_finite(v, f"{where}[{k!r}]")
            if found:
                return found
        return ""
    if isinstance(answer, (list, tuple, set, frozenset)):
        for i, v in enumerate(answer):
            found = non_finite(v, f"{where}[{i}]")
            if found:
                return found
    return ""


def _guard(answer: Any, exercise: str) -> Any:
    """``answer`` with every function in it (at the top, or inside a list, tuple or dict)
    wrapped so that a NaN or an infinity it returns is an :class:`ExerciseError`."""
    if callable(answer) and not isinstance(answer, (torch.Tensor, np.ndarray, type)):
        @functools.wraps(answer)
        def checked(*args, **kwargs):
            out = answer(*args, **kwargs)
            where = non_finite(out, "the value returned by your function")
            if where:
                raise ExerciseError(f"exercise {exercise}: {where}: a NaN or an infinity is "
                                    "never a correct answer")
            return out
        return checked
    if isinstance(answer, tuple):
        return tuple(_guard(v, exercise) for v in answer)
    if isinstance(answer, list):
        return [_guard(v, exercise) for v in answer]
    if isinstance(answer, dict):
        return {k: _guard(v, exercise) for k, v in answer.items()}
    return answer


def close(got: Any, expected: float, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """True if ``got`` is a finite real number within ``atol + rtol * |expected|`` of
    ``expected``."""
    try:
        g = float(got)
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(g) and abs(g - float(expected)) <= atol + rtol * abs(float(expected)))
