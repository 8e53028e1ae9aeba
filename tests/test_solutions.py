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


# --------------------------------------------------------------------------- non-finite answers
def _leaves(answer, path=()):
    """Paths to every place of ``answer`` that can hold a NaN: numbers, float tensor / array
    entries (as (path, flat index)), dict keys, and functions (their returned values)."""
    import numbers

    import numpy as np
    import torch

    if isinstance(answer, bool):
        return []
    if isinstance(answer, numbers.Number):
        return [(path, None)]
    if isinstance(answer, torch.Tensor):
        return [(path, i) for i in range(answer.numel())] if answer.is_floating_point() else []
    if isinstance(answer, np.ndarray):
        return [(path, i) for i in range(answer.size)] if answer.dtype.kind == "f" else []
    if isinstance(answer, dict):
        out = []
        for k, v in answer.items():
            if isinstance(k, float):
                out.append((path + (("key", k),), None))
            out += _leaves(v, path + (k,))
        return out
    if isinstance(answer, (list, tuple)):
        return [leaf for i, v in enumerate(answer) for leaf in _leaves(v, path + (i,))]
    if isinstance(answer, type) and hasattr(answer, "backward"):  # an autograd.Function
        return [(path, "forward"), (path, "backward")]
    if callable(answer):
        return [(path, "call")]
    return []


def _poison(value, bad: float):
    import numpy as np
    import torch

    if isinstance(value, torch.Tensor) and value.is_floating_point():
        value = value.detach().clone()
        value.view(-1)[0] = bad
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind == "f":
        value = value.copy()
        value.reshape(-1)[0] = bad
        return value
    if isinstance(value, (list, tuple)) and value:
        return type(value)([_poison(value[0], bad), *value[1:]])
    return bad


def _replace(answer, path, index, bad: float):
    if not path:
        if index == "call":
            return lambda *a, **k: _poison(answer(*a, **k), bad)
        if index in ("forward", "backward"):
            def forward(ctx, *args):
                out = answer.forward(ctx, *args)
                return _poison(out, bad) if index == "forward" else out

            def backward(ctx, *grads):
                out = answer.backward(ctx, *grads)
                return _poison(out, bad) if index == "backward" else out

            return type("Poisoned", (answer,), {"forward": staticmethod(forward),
                                                "backward": staticmethod(backward)})
        if index is None:
            return bad
        value = answer.detach().clone() if hasattr(answer, "detach") else answer.copy()
        value.reshape(-1)[index] = bad
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, tuple) and head[0] == "key":
        return {(bad if k == head[1] else k): v for k, v in answer.items()}
    if isinstance(answer, dict):
        return {k: (_replace(v, rest, index, bad) if k == head else v) for k, v in answer.items()}
    items = list(answer)
    items[head] = _replace(items[head], rest, index, bad)
    return type(answer)(items)


@pytest.mark.parametrize("ch, name", CASES, ids=IDS)
def test_a_non_finite_answer_is_never_correct(ch, name):
    """Property: the correct answer with any one number (a scalar, a tensor entry, a dict key,
    a value a function returns, the forward or backward of an autograd Function) set to NaN,
    +inf or -inf is rejected by the checker. An answer without numbers (a name, a set of
    names) is replaced by a NaN as a whole."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    check = _checkers(ch)[name]
    solution = getattr(_solutions(ch), f"solve_{name}")()
    leaves = _leaves(solution) or [((), None)]

    @settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(leaves), st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    def poisoned_is_rejected(leaf, bad):
        with pytest.raises(ExerciseError, match=rf"exercise {ch}\.\d"):
            check(_replace(solution, *leaf, bad))

    poisoned_is_rejected()
