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


# ------------------------------------------------- threads, prose, run times and the test command

# The notebooks whose prose and thread pinning are checked below (the course chapters whose text
# has been brought to these rules; add a notebook here once its text follows them).
PROSE_CHECKED = [
    "00_overview",
    "01_false_negative_mining",
    "02_contrastive_loss",
    "03_low_rank_terms",
    "06_official_code_audit",
    "reproduce",
]
MAX_SENTENCE_WORDS = 60
_SETUP_CALL = re.compile(r"setup_notebook\(([^)]*)\)")


def _pinned_threads(nb) -> int:
    """The torch threads a notebook's setup_notebook call pins (explicit or the default)."""
    import inspect

    from clml_lib.nb import setup_notebook

    source = "\n".join(c.source for c in _code_cells(nb))
    calls = _SETUP_CALL.findall(source)
    assert len(calls) == 1, f"expected one setup_notebook(...) call, found {len(calls)}"
    m = re.search(r"threads=(\d+)", calls[0])
    default = inspect.signature(setup_notebook).parameters["threads"].default
    return int(m.group(1)) if m else default


@pytest.mark.parametrize("name", PROSE_CHECKED)
def test_notebook_pins_one_torch_thread(name):
    nb = _read(ROOT / "notebooks" / f"{name}.ipynb")
    assert _pinned_threads(nb) == 1, f"{name}: setup_notebook must pin threads=1"
    source = "\n".join(c.source for c in _code_cells(nb))
    assert not re.search(r"set_num_threads\((?!1\))", source), f"{name}: another thread count"


def _sentences(markdown: str) -> list[str]:
    """Prose sentences of a markdown cell: maths, code and list markers neutralised."""
    text = re.sub(r"\$\$.*?\$\$", "\n\nEQUATION\n\n", markdown, flags=re.S)
    text = re.sub(r"```.*?```", "\n\nCODE\n\n", text, flags=re.S)
    text = re.sub(r"\$[^$]*\$", "x", text)  # inline maths: one word
    text = re.sub(r"`[^`]*`", "code", text)
    # list items, headings and table rows start a new sentence
    text = re.sub(r"^\s*(?:[*\-]|\d+\.|#+|\|)\s", "\n\n", text, flags=re.M)
    parts = re.split(r"(?<=[.!?])\s+|\n\s*\n", text)
    return [p.strip() for p in parts if p.strip()]


def test_sentence_splitter():
    md = "One two. Three $a+b=c$ four: five\n\n* item one\n* item `x y z` two\n$$\nA=B\n$$\nend"
    assert [len(s.split()) for s in _sentences(md)] == [2, 4, 2, 3, 1, 1]


@pytest.mark.parametrize("name", PROSE_CHECKED)
def test_no_sentence_of_60_words(name):
    nb = _read(ROOT / "notebooks" / f"{name}.ipynb")
    long = [
        (i, len(s.split()), s[:80])
        for i, c in enumerate(nb.cells)
        if c.cell_type == "markdown"
        for s in _sentences(c.source)
        if len(s.split()) >= MAX_SENTENCE_WORDS
    ]
    assert not long, f"{name}: sentences of {MAX_SENTENCE_WORDS}+ words (cell, words, start) {long}"


RUN_TIMES = ROOT / "notebooks" / "run_times.json"


def test_run_times_file_is_flat_and_names_notebooks():
    import json

    times = json.loads(RUN_TIMES.read_text())
    names = {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    for name, rec in times.items():
        assert name in names, f"run_times.json: {name!r} is not a notebook in notebooks/"
        assert set(rec) == {"seconds", "date", "cpu", "cores", "threads", "load_1min"}, rec
        assert isinstance(rec["seconds"], float) and rec["seconds"] > 0, (name, rec)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", rec["date"]), (name, rec)
    missing = [n for n in PROSE_CHECKED if n not in times]
    assert not missing, f"run_times.json lacks {missing}: run scripts/execute_notebooks.sh"


_RUNS_IN = re.compile(
    r"\*\*Runs in\*\* about (\d+(?:\.\d+)?)(?:[–-](\d+(?:\.\d+)?))? (s|minutes?)\b"
)


@pytest.mark.parametrize("name", PROSE_CHECKED)
def test_runs_in_line_matches_measured_time(name):
    """The 'Runs in about ...' line of a notebook agrees with its measured time within a factor
    of 2 (machines and load vary; a stale claim is usually off by more)."""
    import json

    nb = _read(ROOT / "notebooks" / f"{name}.ipynb")
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    m = _RUNS_IN.search(text)
    assert m, f"{name}: no '**Runs in** about N s|minutes' line"
    lo, hi, unit = float(m.group(1)), float(m.group(2) or m.group(1)), m.group(3)
    scale = 1.0 if unit == "s" else 60.0
    rec = json.loads(RUN_TIMES.read_text())[name]
    # a machine busier than its cores slows a one-thread notebook about in proportion
    slowdown = max(1.0, (rec["load_1min"] or 0.0) / rec["cores"])
    assert lo * scale / 2 <= rec["seconds"] <= hi * scale * 2 * slowdown, (
        f"{name}: {m.group(0)!r} but measured {rec['seconds']:.0f} s at load "
        f"{rec['load_1min']} on {rec['cores']} cores (notebooks/run_times.json)"
    )


def test_test_command_runs_nbval_under_emulated_kernels():
    """scripts/test.sh runs nbval on every notebook with other float kernels than the ones the
    notebooks were executed with (scripts/execute_notebooks.sh unsets them)."""
    test_sh = (ROOT / "scripts" / "test.sh").read_text()
    nbval = re.search(r"^(ATEN_CPU_CAPABILITY=\S+ .*\\\n(?:.*\\\n)*.*)$", test_sh, re.M)
    assert nbval, "scripts/test.sh: no command prefixed with the emulated-kernel variables"
    cmd = nbval.group(1)
    for var in ("ATEN_CPU_CAPABILITY=default", "ONEDNN_MAX_CPU_ISA=AVX2",
                "MKL_ENABLE_INSTRUCTIONS=AVX2"):
        assert var in cmd, f"scripts/test.sh: the nbval command lacks {var}"
    assert "--nbval " in cmd and " notebooks " in cmd and "nbval_sanitize.cfg" in cmd
    execute = (ROOT / "scripts" / "execute_notebooks.sh").read_text()
    assert "unset ATEN_CPU_CAPABILITY ONEDNN_MAX_CPU_ISA MKL_ENABLE_INSTRUCTIONS" in execute


def test_written_solution_02_3_matches_the_toy_batch():
    """Its numbers are the computed weights, and it calls image 1 what the labels make it."""
    import importlib.util

    from clml_lib.exercises.ch02 import TOY_LABELS

    spec = importlib.util.spec_from_file_location("_ch02", ROOT / "notebooks/solutions/ch02.py")
    ch02 = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ch02)
    text = (ROOT / "notebooks" / "solutions" / "ch02.md").read_text()
    section = text[text.index("## Exercise 02.3") :]
    weights = ch02.solve_push_weights()
    for T, (j, q) in weights.items():
        assert j == 1 and f"$q_{{01}}={q:.3f}$ at $T={T:g}$" in section, (T, j, q)
    assert TOY_LABELS[1][0] == TOY_LABELS[0][0] == 1  # image 1 shares label A with anchor 0
    assert "*positive* of anchor 0" in section and "hard negative" not in section


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_nbval_markers_are_bare_lines(path):
    """nbval honours a marker only as a whole comment line (`# NBVAL_IGNORE_OUTPUT`): a marker
    followed by more text on its line is silently ignored and the cell compared after all."""
    from nbval.plugin import comment_markers

    for i, cell in enumerate(_code_cells(_read(path))):
        for line in cell.source.splitlines():
            if "NBVAL_" in line and line.strip().startswith("#"):
                marker = line.strip().lstrip("#").strip()
                assert marker in comment_markers, (
                    f"{path.name} code cell {i}: {line.strip()!r} is not a bare nbval marker "
                    "(put the explanation on the next line)"
                )
