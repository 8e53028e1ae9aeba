"""scripts/compare_runs.py: the two checks of a result that holds on another machine (same
practical verdict; every mean inside the other run's interval), on synthetic per-seed results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from clml_lib.reproduce.collate import Comparison, RunResult
from clml_lib.stats import replication_agreement

try:  # tests/ on sys.path (pytest's default rootdir import mode)
    from script_modules import load_script
except ImportError:  # tests imported as a package
    from tests.script_modules import load_script


@pytest.fixture(scope="module")
def cmp():
    return load_script("compare_runs")


def _arm(values):
    return {s: RunResult({"test_mAP": v}, [], {}, Path("none")) for s, v in enumerate(values)}


def _comparison(base, gains, label="teaching / 40left / BCE"):
    clml = [b + g for b, g in zip(base, gains)] if gains is not None else []
    return Comparison(label, "+CLML", "teaching", _arm(base), _arm(clml) if clml else {})


BASE = [72.0, 73.0, 72.5, 73.5, 72.8, 73.2]


def _run(cmp, monkeypatch, a, b, delta=0.5):
    roots = {Path("A"): a, Path("B"): b}
    monkeypatch.setattr(cmp, "_load", lambda root, grid, seeds=None: (
        {(c.label, c.variant): c for c in roots[root]}, delta))
    return cmp.compare(Path("A"), Path("B"), ["g"], ("native", "emulated"))


def _summary(text):
    return next(ln for ln in text.splitlines() if " comparisons with the same practical" in ln)


def _noise(text, label="teaching / 40left / BCE +CLML"):
    rows = [ln for ln in text.splitlines() if ln.startswith(f"| {label} |")]
    assert len(rows) == 2  # the verdict table's row, then the noise table's
    return [c.strip() for c in rows[1].strip("|").split("|")]


def test_identical_runs_agree(cmp, monkeypatch):
    c = _comparison(BASE, [0.1, 0.2, 0.0, 0.15, 0.05, 0.1])
    text = _run(cmp, monkeypatch, [c], [c])
    assert _summary(text).startswith("1 of 1 comparisons with the same practical verdict (δ = "
                                     "0.5), 1 of 1 with the same size class")
    assert "1 of 1 rows with every mean inside" in text and "**no**" not in text
    # the same runs twice: no kernel noise; gains sd 0.07 around +0.10 sit far inside ±0.5
    label, sds, same_run, p_verdict, p_size = _noise(text)
    assert sds == "0.07 / 0.07" and same_run == "0.00 (12 runs)"
    assert len(p_verdict.split(" / ")) == 1 + len(cmp.MORE_SEEDS)
    assert all(float(x) == 1.0 for x in p_size.split(" / "))


def test_the_noise_table_measures_the_same_run_difference_and_the_agreement(cmp, monkeypatch):
    # B = A plus a per-run shift: the difference of the same seed and arm has a known sd
    rng = np.random.default_rng(3)
    base = [73.0 + x for x in rng.normal(0, 0.8, 10)]
    gains = list(rng.normal(0.0, 0.5, 10))
    a = _comparison(base, gains)
    shift_b, shift_c = rng.normal(0, 0.4, 10), rng.normal(0, 0.4, 10)
    b = _comparison([v + d for v, d in zip(base, shift_b)],
                    [g + dc - db for g, db, dc in zip(gains, shift_b, shift_c)])
    text = _run(cmp, monkeypatch, [a], [b])
    _, sds, same_run, p_verdict, p_size = _noise(text)
    diffs = np.r_[-shift_b, -shift_c]  # A - B per run, baseline then +CLML
    assert same_run == f"{np.std(diffs, ddof=1):.2f} (20 runs)"
    ga, gb = np.array(gains), np.array(gains) + shift_c - shift_b
    assert sds == f"{np.std(ga, ddof=1):.2f} / {np.std(gb, ddof=1):.2f}"
    pooled = np.r_[ga, gb]
    expect = [replication_agreement(float(pooled.mean()), float(pooled.std(ddof=1)), n, 0.5)
              for n in (10, *cmp.MORE_SEEDS)]
    assert p_verdict == " / ".join(f"{x:.2f}" for x in expect)
    # the size class is coarser than the verdict: it agrees at least as often
    assert all(float(s) >= float(v) for s, v in zip(p_size.split(" / "), p_verdict.split(" / ")))


def test_a_flipped_verdict_and_a_mean_outside_are_reported(cmp, monkeypatch):
    # A: gains tightly around +0.3 (better, by less than δ); B: gains around -0.3 (worse)
    a = _comparison(BASE, [0.28, 0.31, 0.30, 0.29, 0.32, 0.30])
    b = _comparison(BASE, [-0.28, -0.31, -0.30, -0.29, -0.32, -0.30])
    text = _run(cmp, monkeypatch, [a], [b])
    row = next(ln for ln in text.splitlines() if ln.startswith("| teaching"))
    assert "better, by less than 0.5" in row and "worse, by less than 0.5" in row
    assert "| **no** |" in row and "gain +0.30 / -0.30" in row
    assert "0 of 1 comparisons with the same practical verdict" in text
    # opposite directions, but both changes are smaller than δ: the same size class
    assert "1 of 1 with the same size class" in text
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


def test_one_seed_gives_na_not_a_crash(cmp, monkeypatch):
    # a grid run with --seeds 0: no interval, no sd, no probability at n = 1; the rest is shown
    a = _comparison([72.0], [0.1])
    b = _comparison([72.3], [-0.2])
    text = _run(cmp, monkeypatch, [a], [b])
    label, sds, same_run, p_verdict, p_size = _noise(text)
    assert sds == "n/a / n/a" and same_run.endswith("(2 runs)")
    assert p_verdict.split(" / ")[0] == "n/a" and p_size.split(" / ")[0] == "n/a"
    assert all(0.0 <= float(x) <= 1.0 for x in p_verdict.split(" / ")[1:])
