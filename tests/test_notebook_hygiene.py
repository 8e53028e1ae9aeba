"""Hygiene of every committed notebook (notebooks/**/*.ipynb) and of the nbval sanitizer.

For each notebook: kernelspec python3; the paired jupytext ``.py:percent`` file exists and is
exactly what jupytext writes from the ``.ipynb``; the notebook is committed executed, in order
(execution counts 1, 2, 3, ...), without error outputs, SVG figures or papermill residue.
For ``reproduce.ipynb``: exactly one ``parameters`` cell, literal-only (papermill injects new
values as literals after it; an expression there would be evaluated before the override), whose
names are the ``TrainConfig`` fields (a lost or renamed parameter would let a notebook default win
silently).
"""

from __future__ import annotations

import ast
import dataclasses
import re
import typing
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted(
    p for p in (ROOT / "notebooks").rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts
)
IDS = [str(p.relative_to(ROOT / "notebooks")) for p in NOTEBOOKS]
SANITIZE = ROOT / "tests" / "nbval_sanitize.cfg"
# jupytext writes its own and its format's version into the header: an upgrade (or a .py written
# by hand without them) must not fail the pairing check; every other byte must match
_VERSION_LINE = re.compile(r"^#\s+(?:jupytext_version|format_version): .*\n", re.MULTILINE)


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_kernelspec_is_python3(path):
    spec = _read(path).metadata.get("kernelspec", {})
    assert spec.get("name") == "python3", f"{path.name}: kernelspec {spec!r}, expected python3"
    assert spec.get("language", "python") == "python", f"{path.name}: {spec!r}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_paired_py_percent_is_in_sync(path):
    py = path.with_suffix(".py")
    assert py.is_file(), f"{path.name}: paired jupytext file {py.name} is missing"
    expected = jupytext.writes(jupytext.read(path), fmt="py:percent")
    actual = py.read_text()
    if _VERSION_LINE.sub("", expected) != _VERSION_LINE.sub("", actual):
        import difflib

        diff = "".join(
            difflib.unified_diff(
                actual.splitlines(True), expected.splitlines(True), py.name, f"{path.name} -> py"
            )
        )
        pytest.fail(
            f"{py.name} differs from `jupytext --to py:percent {path.name}` (edit the .py, then "
            f"regenerate and re-execute the .ipynb, then regenerate the .py):\n{diff[:4000]}"
        )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_executed_in_order_without_errors(path):
    nb = _read(path)
    counts = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        assert cell.get("execution_count") is not None, (
            f"{path.name} cell {i} was not executed (empty cells are not executed: remove them)"
        )
        counts.append(cell.execution_count)
        for out in cell.get("outputs", []):
            assert out.output_type != "error", (
                f"{path.name} cell {i} has an error output: {out.get('ename')}: {out.get('evalue')}"
            )
            assert "image/svg+xml" not in out.get("data", {}), (
                f"{path.name} cell {i}: SVG figure (use PNG: setup_notebook does)"
            )
    assert counts, f"{path.name} has no code cells"
    assert counts[0] == 1 and all(b > a for a, b in zip(counts, counts[1:])), (
        f"{path.name}: execution counts {counts} are not strictly increasing from 1 "
        "(re-execute from a fresh kernel: jupyter nbconvert --to notebook --execute --inplace)"
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_no_papermill_residue(path):
    nb = _read(path)
    assert "papermill" not in nb.metadata, f"{path.name}: papermill was run in place"
    for i, cell in enumerate(nb.cells):
        tags = cell.get("metadata", {}).get("tags", [])
        assert "injected-parameters" not in tags, f"{path.name} cell {i}: injected parameters"
        assert "papermill-error-cell-tag" not in tags, f"{path.name} cell {i}: papermill error"


def _parameters_cells(nb):
    return [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]


def test_reproduce_has_one_literal_parameters_cell_equal_to_trainconfig():
    from clml_lib.train import TrainConfig

    path = ROOT / "notebooks" / "reproduce.ipynb"
    nb = _read(path)
    cells = _parameters_cells(nb)
    assert len(cells) == 1, f"reproduce.ipynb has {len(cells)} cells tagged 'parameters'"
    assert cells[0].cell_type == "code"
    types = typing.get_type_hints(TrainConfig)
    names = []
    for line in cells[0].source.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = re.fullmatch(r"(\w+): (str|int|float|bool|dict) = (.+?)  # (\S.*)", line)
        assert m, f"parameters line not `name: type = literal  # help`: {line!r}"
        name, typ, literal, help_text = m.groups()
        assert "=" not in help_text, f"{name}: '=' in the help comment breaks papermill's parser"
        value = ast.literal_eval(literal)  # literal-only: papermill can override it
        assert types[name].__name__ == typ, f"{name}: annotated {typ}, field is {types[name]}"
        assert type(value).__name__ == typ, f"{name}: default {value!r} is not a {typ}"
        names.append(name)
    fields = [f.name for f in dataclasses.fields(TrainConfig)]
    assert names == fields, (
        f"parameters cell names differ from TrainConfig fields: missing "
        f"{sorted(set(fields) - set(names))}, extra {sorted(set(names) - set(fields))} "
        "(or a different order)"
    )
    import papermill as pm

    assert list(pm.inspect_notebook(str(path))) == fields, "papermill reads other names"
    # the defaults form a valid configuration (a quick teaching run)
    inspected = pm.inspect_notebook(str(path))
    defaults = {n: ast.literal_eval(p["default"]) for n, p in inspected.items()}
    cfg = TrainConfig.from_dict(defaults)
    assert cfg.dataset == "teaching" and cfg.device == "cpu"


# ----------------------------------------------------------------- the nbval sanitizer file


def _rules():
    from nbval.plugin import get_sanitize_patterns

    return get_sanitize_patterns(SANITIZE.read_text())


def _sanitize(text: str) -> str:
    for regex, replace in _rules():
        text = re.sub(regex, replace, text)
    return text


def test_every_sanitizer_rule_parses():
    text = SANITIZE.read_text()
    n_regex = len(re.findall(r"^regex: ", text, flags=re.MULTILINE))
    rules = _rules()
    assert len(rules) == n_regex, "a rule was silently dropped (blank line or bare `replace:`)"
    assert len({r for r, _ in rules}) == len(rules), "duplicate regex: nbval keeps only one"
    for regex, replace in rules:
        re.compile(regex)
        assert replace.strip(), f"empty replacement for {regex!r}"


@pytest.mark.parametrize(
    "raw, clean",
    [
        ("<Foo object at 0x7f3a2b1c4d50>", "<Foo object at MEMORY_ADDRESS>"),
        ("<function f at 0x7f3a2b1c4d50>", "<function f at MEMORY_ADDRESS>"),
        ("<Figure size 640x480 with 1 Axes>", "<Figure size WIDTHxHEIGHT with 1 Axes>"),
        ("<Figure size 1500x400 with 3 Axes>", "<Figure size WIDTHxHEIGHT with 3 Axes>"),
        ("epoch 3 took 1.2 s", "epoch 3 took ELAPSED"),
        ("done in 12.3s, eval 850 ms", "done in ELAPSED, eval ELAPSED"),
        ("train: 40%|####      | 4/10 [00:01<00:02,  2.99it/s]", "train: PROGRESS"),
        ("100%|##########| 10/10 [00:12<00:00,  1.21s/it]", "PROGRESS"),
        ("started 2025-01-31T12:34:56.789", "started TIMESTAMP"),
        ("on 2025-01-31 at 12:34:56", "on DATE at CLOCK"),
        ("wrote /home/ci/clml/runs/quick/metrics.json", "wrote PROJECT/runs/quick/metrics.json"),
        ("/tmp/pytest-of-ci/pytest-3/run0/metrics.json", "TMP_PATH"),
        ("12 seeds, 3 samples, test mAP 51.20", "12 seeds, 3 samples, test mAP 51.20"),
        ("runs/reproduce/quick", "runs/reproduce/quick"),
    ],
)
def test_sanitizer_rules(raw, clean):
    assert _sanitize(raw) == clean
