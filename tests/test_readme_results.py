"""The README's result table is generated (scripts/publish_results.py) from the published main-job
results in docs/results/, never typed: the block between the markers must be exactly what the
generator makes of those files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _publisher():
    path = ROOT / "scripts/publish_results.py"
    spec = importlib.util.spec_from_file_location("publish_results", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_readme_block_is_generated_from_docs_results():
    pub = _publisher()
    results_md = (ROOT / "docs/results/teaching.md").read_text()
    mining_md = (ROOT / "docs/results/mining.md").read_text()
    prov = json.loads((ROOT / "docs/results/provenance.json").read_text())
    readme = (ROOT / "README.md").read_text()
    assert pub.replace_block(readme, pub.readme_block(results_md, mining_md, prov)) == readme, (
        "README.md's teaching-results block differs from docs/results/: run "
        "`python scripts/publish_results.py publish` after the main job")
    assert (ROOT / "docs/results/teaching.png").stat().st_size > 0
    for key in ("torch", "cpu", "wall_seconds", "command"):
        assert prov[key], key


def test_published_table_has_the_main_job_rows():
    pub = _publisher()
    table = pub.result_table((ROOT / "docs/results/teaching.md").read_text())
    for setting in ("40left", "single"):
        row = next(r for r in table.splitlines() if f"/ {setting} /" in r)
        assert "CLML" in row and ("better" in row or "worse" in row or "no difference" in row)


def test_generator_refuses_what_is_not_a_collated_grid():
    pub = _publisher()
    with pytest.raises(ValueError, match="Result"):
        pub.result_table("# something else\n")
    with pytest.raises(ValueError, match="no table"):
        pub.result_table("## Result (val-selected)\n\nno table here\n")
    with pytest.raises(ValueError, match="no table"):
        pub.mining_table("# nothing\n")
    with pytest.raises(ValueError, match="markers"):
        pub.replace_block("README without markers", "x")
