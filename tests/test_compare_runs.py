"""scripts/compare_runs.py: the two checks of a result that holds on another machine (same
practical verdict; every mean inside the other run's interval), on synthetic per-seed results."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from clml_lib.reproduce.collate import Comparison, RunResult

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cmp():
    spec = importlib.util.spec_from_file_location("compare_runs", ROOT / "scripts/compare_runs.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _arm(values):
    return {s: RunResult({"test_mAP": v}, [], {}, Path("none")) for s, v in enumerate(values)}


def _comparison(base, gains, label="teaching / 40left / BCE"):
    clml = [b + g for b, g in zip(base, gains)] if gains is not None else []
    return Comparison(label, "+CLML", "teaching", _arm(base), _arm(clml) if clml else {})


BASE = [72.0, 73.0, 72.5, 73.5, 72.8, 73.2]


def _run(cmp, monkeypatch, a, b, delta=0.5):
    roots = {Path("A"): a, Path("B"): b}
    monkeypatch.setattr(cmp, "_load", lambda root, grid: (
        {(c.label, c.variant): c for c in roots[root]}, delta))
    return cmp.compare(Path("A"), Path("B"), ["g"], ("native", "emulated"))


def test_identical_runs_agree(cmp, monkeypatch):
    c = _comparison(BASE, [0.1, 0.2, 0.0, 0.15, 0.05, 0.1])
    text = _run(cmp, monkeypatch, [c], [c])
    assert text.splitlines()[-1].startswith("1 of 1 comparisons with the same practical verdict")
    assert "1 of 1 rows with every mean inside" in text and "**no**" not in text


def test_a_flipped_verdict_and_a_mean_outside_are_reported(cmp, monkeypatch):
    # A: gains tightly around +0.3 (better, by less than δ); B: gains around -0.3 (worse)
    a = _comparison(BASE, [0.28, 0.31, 0.30, 0.29, 0.32, 0.30])
    b = _comparison(BASE, [-0.28, -0.31, -0.30, -0.29, -0.32, -0.30])
    text = _run(cmp, monkeypatch, [a], [b])
    row = next(ln for ln in text.splitlines() if ln.startswith("| teaching"))
    assert "better, by less than 0.5" in row and "worse, by less than 0.5" in row
    assert "| **no** |" in row and "gain +0.30 / -0.30" in row
    assert "0 of 1 comparisons with the same practical verdict" in text
    assert "0 of 1 rows with every mean inside" in text


def test_one_arm_rows_compare_only_the_mean(cmp, monkeypatch):
    a = _comparison(BASE, None, "teaching / full / BCE")
    b = _comparison([v + 5.0 for v in BASE], None, "teaching / full / BCE")
    text = _run(cmp, monkeypatch, [a], [b])
    assert "(one arm)" in text and "**no**: baseline 72.83 / 77.83" in text
    assert "0 of 0 comparisons" in text and "0 of 1 rows" in text


def test_different_experiments_are_refused(cmp, monkeypatch):
    a = _comparison(BASE, [0.1] * 6)
    b = _comparison(BASE, [0.1] * 6, "teaching / single / BCE")
    with pytest.raises(SystemExit, match="different experiments"):
        _run(cmp, monkeypatch, [a], [b])
