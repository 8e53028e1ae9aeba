"""The README's result block is generated (scripts/publish_results.py) from the published main-job
results in docs/results/, never typed: the block between the markers must be exactly what the
generator makes of those files; and the publisher refuses results and provenance that are not one
consistent run of the job, before it writes anything."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from clml_lib.stats import MARGIN_VERDICTS

try:  # tests/ on sys.path (pytest's default rootdir import mode)
    from script_modules import load_script
except ImportError:  # tests imported as a package
    from tests.script_modules import load_script

ROOT = Path(__file__).resolve().parents[1]


def _publisher():
    return load_script("publish_results")


def _published():
    results = {g: (ROOT / f"docs/results/{g}.md").read_text()
               for g in ("teaching", "teaching_ceiling")}
    prov = json.loads((ROOT / "docs/results/provenance.json").read_text())
    return results, prov


def test_readme_block_is_generated_from_docs_results():
    pub = _publisher()
    results, prov = _published()
    readme = (ROOT / "README.md").read_text()
    assert pub.replace_block(readme, pub.readme_block(results, prov)) == readme, (
        "README.md's teaching-results block differs from docs/results/: run "
        "`python scripts/publish_results.py publish` after the main job")
    assert (ROOT / "docs/results/teaching.png").stat().st_size > 0
    # the published set is consistent (the run folders are not in a clone: runs=None)
    pub.check_consistent("main", results, prov, runs=None)


def test_published_table_has_the_main_job_rows_verdicts_and_ceiling():
    pub = _publisher()
    results, prov = _published()
    table = pub.result_table(results["teaching"])
    verdicts = {re.sub(r"[0-9.]+", "δ", v) for v in MARGIN_VERDICTS.values()}
    for setting in ("40left", "single"):
        for loss in ("BCE", "SPLC"):
            row = next(r for r in table.splitlines() if f"/ {setting} / {loss} +CLML" in r)
            cells = [c.strip() for c in row.strip("|").split("|")]
            assert cells[1] == str(len(prov["grids"]["teaching"]["seeds"])) and int(cells[1]) >= 10
            assert re.sub(r"[0-9.]+", "δ", cells[6]) in verdicts, cells[6]
    ceiling = pub.section(results["teaching_ceiling"], pub.SINGLE_HEADING)
    mean = float(ceiling.splitlines()[2].split("|")[3].split("±")[0])
    assert mean >= 85.0, f"the full-label ceiling is {mean}, below 85 mAP"
    assert pub.chance_line(results["teaching"]).startswith("Chance level")


def test_generator_refuses_what_is_not_a_collated_grid():
    pub = _publisher()
    with pytest.raises(ValueError, match="Result"):
        pub.result_table("# something else\n")
    with pytest.raises(ValueError, match="no table"):
        pub.result_table("## Result (val-selected)\n\nno table here\n")
    with pytest.raises(ValueError, match="markers"):
        pub.replace_block("README without markers", "x")


def _fake_job(runs: Path, seeds=(0, 1), n=None, done=None):
    """Collated files and provenance of a fake main job under ``runs`` (no training)."""
    n = len(seeds) if n is None else n
    done = 2 * len(seeds) if done is None else done
    text = {}
    for grid in ("teaching", "teaching_ceiling"):
        res = runs / grid / "results"
        res.mkdir(parents=True, exist_ok=True)
        head = (f"# Grid `{grid}`\n\nRuns with a finished `metrics.json`: {done} of "
                f"{2 * len(seeds)} planned (seeds {', '.join(map(str, seeds))}). Test mAP.\n\n"
                "Chance level (...): **24.00**.\n\n")
        if grid == "teaching":
            body = ("## Result (val-selected)\n\n| experiment | n | baseline mAP | +CLML mAP | "
                    "gain | boot | verdict | mined | own |\n|---|---|---|---|---|---|---|---|---|\n"
                    f"| teaching / 40left / BCE +CLML | {n} | 70 | 70.1 | +0.1 | x | "
                    "within ±0.5 (no change that matters) | 0 | none |\n")
            (res / f"{grid}.png").write_bytes(b"png")
        else:
            body = ("## Runs without a +CLML arm\n\n| experiment | n | test mAP | ci | best |\n"
                    f"|---|---|---|---|---|\n| teaching / full / BCE | {n} | 88.0 | x | 88.1 |\n")
        (res / f"{grid}.md").write_text(head + body)
        text[grid] = head + body
    prov = {"job": "main", "command": "bash scripts/main.sh", "args": [], "wall_seconds": 500.0,
            "finished_utc": "2026-01-01 00:00 UTC", "torch": "2", "torchvision": "0",
            "python": "3.11", "cpu": "cpu", "cores": 2, "threads": "1", "kernels": {},
            "grids": {g: {"seeds": list(seeds), "runs_planned": 2 * len(seeds),
                          "runs_with_metrics": done, "newest_metrics": 0.0}
                      for g in ("teaching", "teaching_ceiling")}}
    (runs / "teaching" / "results" / "provenance.json").write_text(json.dumps(prov))
    return text, prov


@pytest.mark.parametrize("change, message", [
    (lambda t, p: p.update(job="teaching_table"), "is for job"),
    (lambda t, p: p.update(args=["--seeds", "0"]), "extra arguments"),
    (lambda t, p: p["grids"]["teaching"].update(seeds=[0, 1, 2]), "not the same run"),
    (lambda t, p: p["grids"].pop("teaching_ceiling"), "does not cover"),
    (lambda t, p: t.pop("teaching_ceiling"), "no collated results"),
    (lambda t, p: t.update(teaching=t["teaching"].replace("| 2 | 70 |", "| 1 | 70 |")), "n = 1"),
    (lambda t, p: t.update(teaching=t["teaching"].replace("4 of 4", "3 of 4")), "only 3 of 4"),
])
def test_inconsistent_results_and_provenance_are_refused(tmp_path, change, message):
    pub = _publisher()
    text, prov = _fake_job(tmp_path)
    pub.check_consistent("main", text, prov, runs=tmp_path)  # the fake job itself is consistent
    change(text, prov)
    with pytest.raises(pub.PublishError, match=message):
        pub.check_consistent("main", text, prov, runs=tmp_path)


def test_publish_refuses_before_writing_and_a_run_after_the_record_is_caught(tmp_path,
                                                                            monkeypatch, capsys):
    pub = _publisher()
    docs, readme = tmp_path / "docs", tmp_path / "README.md"
    readme.write_text(f"intro\n{pub.BEGIN}\nold\n{pub.END}\n")
    monkeypatch.setattr(pub, "DOCS_RESULTS", docs)
    monkeypatch.setattr(pub, "README", readme)
    runs = tmp_path / "runs"
    _fake_job(runs, seeds=(0, 1), done=3)  # one run did not finish
    assert pub.main(["publish", "--runs", str(runs)]) == 1
    assert "only 3 of 4" in capsys.readouterr().err
    assert not docs.exists() and "old" in readme.read_text()  # nothing written
    # a consistent job is published; then a run that finishes later makes it stale
    _fake_job(runs, seeds=(0, 1))
    assert pub.main(["publish", "--runs", str(runs)]) == 0
    assert (docs / "teaching.md").is_file() and "old" not in readme.read_text()
    run = runs / "teaching" / "40left_clml" / "seed0"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text("{}")
    assert pub.main(["publish", "--runs", str(runs)]) == 1
    assert "finished after provenance.json" in capsys.readouterr().err
