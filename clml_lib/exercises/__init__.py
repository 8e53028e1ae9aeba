r"""Checkers for the exercises at the end of every notebook.

Layout (one chapter = one notebook ``NN_*.ipynb``):

* ``clml_lib/exercises/chNN.py``: one ``check_<name>(answer)`` per exercise. A checker rebuilds
  the exercise's inputs itself (fixed seeds), computes the expected answer by an independent route
  (usually a float64 computation from the definition, cross-checked against the library), and
  compares. It **prints** one line and returns ``True`` for a correct answer, prints
  "not answered yet" and returns ``False`` for ``None`` (so a notebook runs before the student
  answers), and **raises** :class:`ExerciseError` with a hint for a wrong answer, without
  giving the expected value away.
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

import pkgutil
from typing import Any, Callable

import numpy as np

__all__ = ["ExerciseError", "verdict", "close", "CHAPTERS"]

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
    try:
        problem = judge(answer)
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


def close(got: Any, expected: float, rtol: float = 1e-6, atol: float = 1e-9) -> bool:
    """True if ``got`` is a finite real number within ``atol + rtol * |expected|`` of
    ``expected``."""
    try:
        g = float(got)
    except (TypeError, ValueError):
        return False
    return bool(np.isfinite(g) and abs(g - float(expected)) <= atol + rtol * abs(float(expected)))
