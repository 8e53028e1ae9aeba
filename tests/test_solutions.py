"""The exercises' solutions, run through their checkers (clml_lib.exercises).

For every chapter ``NN`` in ``clml_lib.exercises.CHAPTERS``:

* every ``check_<name>`` of ``clml_lib.exercises.chNN`` has a ``solve_<name>`` in
  ``notebooks/solutions/chNN.py`` and a written section in ``notebooks/solutions/chNN.md``;
* the checker accepts the solution, rejects every wrong answer listed in the solution module's
  ``WRONG`` (at least one per exercise), and reports ``None`` as "not answered yet";
* notebook ``notebooks/NN_*.py`` calls every checker of its chapter in its exercises.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import re
from pathlib import Path

import pytest

from clml_lib.exercises import CHAPTERS, ExerciseError

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "notebooks" / "solutions"


def _solutions(ch: str):
    path = SOLUTIONS / f"ch{ch}.py"
    spec = importlib.util.spec_from_file_location(f"_solutions_ch{ch}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _checkers(ch: str) -> dict[str, object]:
    module = importlib.import_module(f"clml_lib.exercises.ch{ch}")
    return {
        name[len("check_") :]: fn
        for name, fn in inspect.getmembers(module, inspect.isfunction)
        if name.startswith("check_") and fn.__module__ == module.__name__
    }


CASES = [(ch, name) for ch in CHAPTERS for name in sorted(_checkers(ch))]
IDS = [f"ch{ch}-{name}" for ch, name in CASES]


@pytest.mark.parametrize("ch", CHAPTERS)
def test_chapter_files_exist_and_match(ch):
    checkers = _checkers(ch)
    assert checkers, f"clml_lib/exercises/ch{ch}.py defines no check_ function"
    sol = _solutions(ch)
    solves = {n[len("solve_") :] for n in dir(sol) if n.startswith("solve_")}
    assert solves == set(checkers), (
        f"ch{ch}: checkers without a solution {sorted(set(checkers) - solves)}, "
        f"solutions without a checker {sorted(solves - set(checkers))}"
    )
    md = SOLUTIONS / f"ch{ch}.md"
    assert md.is_file(), f"written solutions {md} missing"
    text = md.read_text()
    numbers = sorted(int(m) for m in re.findall(rf"^## Exercise {ch}\.(\d+)", text, re.M))
    assert numbers == list(range(1, len(checkers) + 1)), (
        f"{md.name}: sections '## Exercise {ch}.k' for k = 1..{len(checkers)} expected, "
        f"got {numbers}"
    )


@pytest.mark.parametrize("ch", CHAPTERS)
def test_notebook_calls_every_checker(ch):
    (py,) = [p for p in (ROOT / "notebooks").glob(f"{ch}_*.py")]
    source = py.read_text()
    assert f"clml_lib.exercises import ch{ch}" in source, f"{py.name} does not import its checkers"
    missing = [n for n in _checkers(ch) if f"check_{n}(" not in source]
    assert not missing, f"{py.name} never calls check_{missing}"


@pytest.mark.parametrize("ch, name", CASES, ids=IDS)
def test_solution_passes_and_wrong_answers_fail(ch, name, capsys):
    check = _checkers(ch)[name]
    sol = _solutions(ch)
    assert check(getattr(sol, f"solve_{name}")()) is True
    assert "correct" in capsys.readouterr().out
    wrong = sol.WRONG.get(name, [])
    assert wrong, f"ch{ch}.WRONG has no wrong answer for {name}: the checker is untested"
    for answer in wrong:
        with pytest.raises(ExerciseError, match=rf"exercise {ch}\."):
            check(answer)


@pytest.mark.parametrize("ch, name", CASES, ids=IDS)
def test_unanswered_is_reported_not_raised(ch, name, capsys):
    assert _checkers(ch)[name](None) is False
    assert "not answered yet" in capsys.readouterr().out
