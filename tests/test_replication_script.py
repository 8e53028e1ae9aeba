"""scripts/replication.py: the table of clml_lib.stats.replication_agreement, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from clml_lib.stats import replication_agreement

try:  # tests/ on sys.path (pytest's default rootdir import mode)
    from script_modules import load_script
except ImportError:  # tests imported as a package
    from tests.script_modules import load_script

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rep():
    return load_script("replication")


def test_the_table_holds_the_probabilities_row_by_row(rep, capsys):
    assert rep.main(["--mean", "0", "0.2", "--sd", "0.5", "1.0", "--seeds", "5", "40",
                     "--delta", "0.4"]) == 0
    rows = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("| +")]
    assert len(rows) == 2 * 2 * 2  # means x sds x levels
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in rows]
    for mean, sd, name, *ps in cells:
        level = "verdict" if name == "same verdict" else "size"
        expect = [replication_agreement(float(mean), float(sd), n, 0.4, level=level)
                  for n in (5, 40)]
        assert ps == [f"{p:.2f}" for p in expect]


def test_bad_input_is_named(rep, capsys):
    assert rep.main(["--mean", "0", "--sd", "-0.5"]) == 2
    assert "sd >= 0" in capsys.readouterr().err
    assert rep.main(["--mean", "0", "--sd", "0.5", "--seeds", "1"]) == 2
    assert "n must be an int >= 2" in capsys.readouterr().err


def test_the_table_of_docs_evaluation_is_this_scripts_output(rep, capsys):
    """docs/evaluation.md §9a prints the table of the command it names: it stays that table."""
    doc = (ROOT / "docs/evaluation.md").read_text()
    assert "`python scripts/replication.py --mean 0 0.15 0.3\n--sd 0.5`" in doc
    assert rep.main(["--mean", "0", "0.15", "0.3", "--sd", "0.5"]) == 0
    table = capsys.readouterr().out.split("\n\n", 1)[1].strip()
    assert table in doc
