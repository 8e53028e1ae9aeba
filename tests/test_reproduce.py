"""The reproduction machinery: parameter layers and grids, the notebook's parameters cell equal to
the schema, the grid driver (validation, folder checks before any kernel, unreadable metrics,
skipping, failures, --jobs) and collation (intervals, bootstrap, verdicts, mined labels).

Slow parts (papermill runs start a kernel and train): the ``smoke`` layer on a COCO-format fixture
(1 capped epoch) and a 4-run micro grid run two kernels at a time. Everything else is pure Python.
"""

from __future__ import annotations

import ast
import json
import math
import statistics
from pathlib import Path

import nbformat
import numpy as np
import papermill as pm
import pytest
import torch
import yaml

from clml_lib.paths import NOTEBOOKS, PARAMS, PROJECT_ROOT
from clml_lib.reproduce import (
    NOTEBOOK,
    GridError,
    build_comparisons,
    collate,
    load_grid,
    parse_sets,
    plan,
    render_compact_table,
    run_grid,
)
from clml_lib.reproduce.cli import main
from clml_lib.reproduce.collate import add_bootstrap
from clml_lib.reproduce.grid import execute_run
from clml_lib.stats import paired_t_interval
from clml_lib.train.config import (
    TrainConfig,
    parameters_cell_source,
    parse_value,
    read_layer,
    render_parameters_cell,
)

FIELDS = TrainConfig.field_names()
GRID_FILES = sorted((PARAMS / "grids").glob("*.yaml"))
#: a teaching run small enough for a test (seconds)
TINY = {"epochs": 2, "num_train_images": 96, "batch_size": 32, "max_eval_batches": 2}


def _write_grid(path: Path, **spec) -> Path:
    spec = {"description": "test grid", "layers": ["teaching"], "seeds": [0],
            "timeout_s": 300, **spec}
    path.write_text(yaml.safe_dump(spec))
    return path


# --------------------------------------------------------------------------- notebook = schema
def _cell_source(text: str) -> str:
    start = text.index('# %% tags=["parameters"]\n') + len('# %% tags=["parameters"]\n')
    return text[start:text.index("\n# %%", start)].rstrip("\n")


def test_parameters_cell_is_the_schema_defaults_included():
    py = (NOTEBOOKS / "reproduce.py").read_text(encoding="utf-8")
    assert _cell_source(py) == parameters_cell_source(), (
        "notebooks/reproduce.py parameters cell differs from the schema: run "
        "python -m clml_lib.train --write-notebook, then execute the notebook again")
    assert render_parameters_cell(py) == py
    nb = nbformat.read(NOTEBOOK, as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1 and cells[0].source == parameters_cell_source()
    inspected = pm.inspect_notebook(str(NOTEBOOK))
    assert list(inspected) == FIELDS
    defaults = {n: ast.literal_eval(p["default"]) for n, p in inspected.items()}
    assert TrainConfig.from_dict(defaults) == TrainConfig()


# --------------------------------------------------------------------------- grids
@pytest.mark.parametrize("path", GRID_FILES, ids=lambda p: p.stem)
def test_shipped_grids_validate(path, tmp_path):
    grid = load_grid(path, out=tmp_path, sets=parse_sets(["data_root=/data/x"]))
    assert grid.runs and len({r.run_dir for r in grid.runs}) == len(grid.runs)
    if path.stem == "teaching_ceiling":  # one arm: the full-label ceiling
        assert {r.config.use_clml for r in grid.runs} == {False}
    else:
        assert grid.axes["use_clml"] == [False, True]
    for run in grid.runs:
        assert run.config.seed == run.config.split_seed == run.seed


def test_teaching_grid_expands_settings_clml_and_seeds(tmp_path):
    grid = load_grid("teaching", seeds=[0, 1], out=tmp_path)
    assert grid.axes == {"setting": ["40left", "single"], "base_loss": ["BCE", "SPLC"],
                         "use_clml": [False, True]}
    assert len(grid.runs) == 16 and grid.smallest_effect == 0.5
    assert [r.cell for r in grid.runs[:4]] == ["40left_bce_no_clml"] * 2 + ["40left_bce_clml"] * 2
    teaching = TrainConfig.from_dict(read_layer(PARAMS / "teaching.yaml"))
    run = grid.runs[-1]
    assert run.config == teaching.replace(setting="single", base_loss="SPLC", use_clml=True,
                                          seed=1, split_seed=1, out_dir=run.params["out_dir"])


def test_paper_grids_compose_the_dataset_layers(tmp_path):
    voc = load_grid("voc_table", out=tmp_path, sets={"data_root": "/v"})
    assert {r.config.dataset for r in voc.runs} == {"voc"}
    assert [p.name for p in voc.runs[0].layers] == ["paper.yaml", "voc.yaml"]
    assert {r.config.setting for r in voc.runs} == {"full", "single"}
    assert {r.config.base_loss for r in voc.runs} == {"BCE", "Focal", "Hill", "SPLC"}


def test_papermill_command_is_the_same_composition(tmp_path):
    grid = load_grid("coco_table", out=tmp_path, sets={"data_root": "/data/coco"})
    run = grid.runs[5]
    words = run.papermill_command().split()
    assert words[:3] == ["papermill", "notebooks/reproduce.ipynb", str(run.notebook_path)]
    params: dict = {}
    for flag, value in zip(words[3::2], words[4::2]):
        if flag == "-f":
            params.update(read_layer(PROJECT_ROOT / value))
    rest = words[3:]
    for i, w in enumerate(rest):
        if w == "-p":
            params[rest[i + 1]] = parse_value(rest[i + 1], rest[i + 2])
    assert TrainConfig.from_dict(params) == run.config
    assert run.notebook_parameters() == params


def test_an_axis_layer_adds_a_file(tmp_path):
    grid = load_grid(_write_grid(tmp_path / "g.yaml", layers=["paper"],
                                 axes={"layer": ["voc", "nus"], "use_clml": [False]},
                                 set={"data_root": "/d"}), out=tmp_path)
    assert [r.cell for r in grid.runs] == ["voc_no_clml", "nus_no_clml"]
    assert [r.config.dataset for r in grid.runs] == ["voc", "nus"]


@pytest.mark.parametrize("spec, message", [
    ({"axes": {"lamda_": [1.0]}}, r"unknown TrainConfig key.*did you mean 'lambda_'"),
    ({"axes": {"tau": [0.5, 2.0]}}, r"axis 'tau'.*tau must be in \[0, 1\], got 2.0"),
    ({"axes": {"seed": [1, 2]}}, r"an axis cannot set \['seed'\]"),
    ({"set": {"out_dir": "x"}}, r"set cannot set \['out_dir'\]"),
    ({"set": {"use_clml": "maybe"}}, "use_clml must be true or false"),
    ({"layers": ["teachng"]}, r"unknown parameter file 'teachng'.*did you mean 'teaching'"),
    ({"axes": {"setting": []}}, "must be a non-empty list"),
    ({"cells": []}, r"unknown key\(s\) \['cells'\]"),
    ({"seed_fields": ["sed"]}, r"unknown field 'sed'.*did you mean 'seed'"),
    ({"axes": {"dataset": ["coco"]}}, "needs data_root"),
])
def test_bad_grids_fail_before_anything_runs(tmp_path, spec, message):
    with pytest.raises(GridError, match=message):
        load_grid(_write_grid(tmp_path / "g.yaml", **spec), out=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_bad_sets_and_unknown_grid(tmp_path, capsys):
    with pytest.raises(GridError, match=r"lr must be a number, got 'fast'"):
        parse_sets(["lr=fast"])
    with pytest.raises(GridError, match="key=value"):
        parse_sets(["lr"])
    assert parse_sets(["lr=1e-4", "use_clml=false"]) == {"lr": 1e-4, "use_clml": False}
    assert main(["--grid", "teachng", "--out", str(tmp_path)]) == 2
    assert "did you mean 'teaching'" in capsys.readouterr().err


def test_papermill_parameter_names_are_validated_inside_the_notebook_too(tmp_path):
    """A typo passed straight to papermill (which only logs 'Passed unknown parameter') reaches
    TrainConfig.from_dict inside the notebook and fails there, before any training."""
    out = tmp_path / "typo.ipynb"
    with pytest.raises(pm.PapermillExecutionError, match=r"lamda_.*did you mean 'lambda_'"):
        pm.execute_notebook(str(NOTEBOOK), str(out), parameters={"lamda_": 2.0},
                            kernel_name="python3", progress_bar=False, cwd=str(PROJECT_ROOT),
                            execution_timeout=120)


# --------------------------------------------------------------------------- run folders
def _fake_run(run, test_map, best_map, mined=(0, 0, 10), scores=None, base_mined=None):
    run.run_dir.mkdir(parents=True, exist_ok=True)
    summary = {"selected_epoch": 1, "selected_model": "ema", "val_mAP": 50.0,
               "test_mAP": test_map, "best_test_mAP": best_map, "best_test_epoch": 1,
               "best_test_model": "raw", "optimism_gap": best_map - test_map,
               "finished": True, "epochs_run": 2}
    count, true, missing = mined
    epochs = [{"epoch": e, "mined": {"count": count, "true": true, "missing": missing,
                                     "precision": true / count if count else None,
                                     "recall": true / missing if missing else None}}
              for e in range(2)]
    if base_mined is not None:  # a base loss with its own correction (SPLC)
        bc, bt, bm = base_mined
        for e in epochs:
            e["base_mined"] = {"count": bc, "true": bt, "missing": bm,
                               "precision": bt / bc if bc else None,
                               "recall": bt / bm if bm else None}
    doc = {"config": run.config.to_dict(), "epochs": epochs, "summary": summary}
    run.metrics_path.write_text(json.dumps(doc))
    if scores is not None:
        torch.save({"scores": scores[0], "labels": scores[1], "selected": "ema", "epoch": 1},
                   run.scores_path)


def test_a_folder_with_another_config_fails_before_any_kernel_starts(tmp_path):
    """`--set num_workers=4` on a partly finished grid: every folder is checked first."""
    grid_file = _write_grid(tmp_path / "g.yaml", axes={"use_clml": [False, True]})
    done = load_grid(grid_file, out=tmp_path / "runs")
    _fake_run(done.runs[0], 50.0, 51.0)  # finished with num_workers 0
    done.runs[1].run_dir.mkdir(parents=True)  # interrupted: only config.json so far
    (done.runs[1].run_dir / "config.json").write_text(json.dumps(done.runs[1].config.to_dict()))
    grid = load_grid(grid_file, out=tmp_path / "runs", sets={"num_workers": 4})
    lines: list[str] = []
    outcomes = run_grid(grid, notebook=tmp_path / "no_such_notebook.ipynb", log=lines.append)
    assert [o.status for o in outcomes] == ["failed", "failed"]  # no kernel was started
    for o in outcomes:
        assert "num_workers: on disk 0, requested 4" in o.error
        assert "only stop_epoch, device, out_dir, progress, verbose, resume may differ" in o.error
    assert json.loads(done.runs[0].metrics_path.read_text())["config"]["num_workers"] == 0
    # a bookkeeping change is fine: finished runs are skipped
    again = load_grid(grid_file, out=tmp_path / "runs", sets={"device": "cuda", "verbose": False})
    assert [s for _, s, _ in plan(again, log=lambda _: None)] == ["finished", "partial"]


def test_an_old_schema_folder_is_named(tmp_path):
    grid = load_grid(_write_grid(tmp_path / "g.yaml"), out=tmp_path / "runs")
    run = grid.runs[0]
    run.run_dir.mkdir(parents=True)
    old = {**run.config.to_dict(), "correction": True}
    del old["use_correction"]
    (run.run_dir / "config.json").write_text(json.dumps(old))
    (msg,) = run.config_mismatch()
    assert "'correction' (did you mean 'use_correction'" in msg and "config.json" in msg


def test_a_truncated_metrics_json_is_named_and_rerun_not_a_crash(tmp_path):
    grid_file = _write_grid(tmp_path / "g.yaml", axes={"use_clml": [False, True]})
    grid = load_grid(grid_file, out=tmp_path / "runs")
    _fake_run(grid.runs[0], 50.0, 51.0)
    _fake_run(grid.runs[1], 51.0, 52.0)
    grid.runs[1].metrics_path.write_text('{"config": {"dataset": "teach')  # killed mid-write
    lines: list[str] = []
    checked = plan(grid, log=lines.append)
    assert [s for _, s, _ in checked] == ["finished", "partial"]
    assert any("metrics.json is not valid JSON" in line and "re-run" in line for line in lines)
    comparisons, notes = build_comparisons(grid)
    assert comparisons[0].clml == {} and any("not valid JSON" in n for n in notes)
    text = collate(grid)[2]
    assert "not valid JSON" in text


# --------------------------------------------------------------------------- collation
def test_collation_intervals_verdicts_bootstrap_and_mined_labels(tmp_path):
    grid_file = _write_grid(tmp_path / "g.yaml", axes={"use_clml": [False, True]},
                            seeds=[0, 1, 2])
    grid = load_grid(grid_file, out=tmp_path / "runs")
    rng = np.random.default_rng(0)
    labels = (torch.rand(60, 4, generator=torch.Generator().manual_seed(0)) < 0.3).float()
    base_map = {0: 50.0, 1: 52.0, 2: 54.0}
    gain = {0: 1.0, 1: 1.5, 2: 1.2}
    for run in grid.runs:
        b = base_map[run.seed]
        m = b + gain[run.seed] if run.config.use_clml else b
        noise = torch.from_numpy(rng.normal(size=(60, 4))).float()
        scores = noise + (2.0 if run.config.use_clml else 0.5) * labels
        _fake_run(run, m, m + 1.0, mined=(5, 4, 10) if run.config.use_clml else (0, 0, 10),
                  scores=(scores, labels))
    comparisons, notes = build_comparisons(grid)
    assert len(comparisons) == 1 and not notes
    c = comparisons[0]
    assert c.gains("test_mAP") == pytest.approx({0: 1.0, 1: 1.5, 2: 1.2})
    md, png, text = collate(grid, n_boot=200)
    assert md.is_file() and png.is_file() and png.stat().st_size > 1000
    iv = paired_t_interval([1.0, 1.5, 1.2])
    row = next(line for line in text.splitlines()
               if line.startswith("| teaching / 40left / BCE +CLML"))
    clml = [51.0, 53.5, 55.2]
    assert f"| 3 | 52.00 ± 2.00 | {statistics.fmean(clml):.2f} ± {statistics.stdev(clml):.2f} | " \
        f"{iv.text()} |" in row
    assert iv.lo >= 0.5 and "| better by at least 0.5 |" in row  # the grid's default delta
    add_bootstrap(c, n_boot=200)  # what collate computed (seeded)
    assert c.bootstrap is not None and c.bootstrap.lo < c.bootstrap.mean < c.bootstrap.hi
    assert c.bootstrap.mean > 0  # the +CLML scores separate the labels better
    assert f"[{c.bootstrap.lo:+.2f}, {c.bootstrap.hi:+.2f}]" in row
    assert "5.0 per run at τ = 0.75 (80 % / 40 %)" in row
    assert "epoch 0: 5.0 per run (80 % / 40 %)" in text
    assert render_compact_table(comparisons) in text
    outcomes = run_grid(grid, log=lambda _: None)  # all finished: a second run skips them
    assert [o.status for o in outcomes] == ["skipped"] * 6


def test_collation_without_scores_or_mining_says_so(tmp_path):
    grid = load_grid(_write_grid(tmp_path / "g.yaml", layers=["paper"],
                                 axes={"use_clml": [False, True]}, set={"data_root": "/c"}),
                     out=tmp_path / "runs")
    _fake_run(grid.runs[0], 70.0, 70.5)
    _fake_run(grid.runs[1], 69.0, 72.0)
    text = collate(grid)[2]
    row = next(line for line in text.splitlines() if line.startswith("| coco / full / BCE +CLML"))
    assert "| 1 | 70.00 | 69.00 | -1.00 | n/a (no per-image scores) | n/a (fewer than 2 seeds) |" \
        in row
    assert "| +1.2 (MS-COCO) |" in text
    assert "No label was mined in any epoch at τ = 0.75" in text


def test_collation_reads_the_grid_delta_the_ceiling_the_chance_level_and_splc_mining(tmp_path):
    grid_file = _write_grid(tmp_path / "g.yaml", axes={"use_clml": [False, True]},
                            seeds=[0, 1, 2], smallest_effect=1.5, set={"base_loss": "SPLC"})
    grid = load_grid(grid_file, out=tmp_path / "runs")
    assert grid.smallest_effect == 1.5
    labels = (torch.rand(50, 4, generator=torch.Generator().manual_seed(1)) < 0.4).float()
    labels[0] = 1.0
    for run in grid.runs:  # gains +1.0, +1.5, +1.2: better, not surely by delta = 1.5
        m = 50.0 + run.seed + ({0: 1.0, 1: 1.5, 2: 1.2}[run.seed] if run.config.use_clml else 0)
        _fake_run(run, m, m, mined=(4, 2, 10), base_mined=(20, 15, 30),
                  scores=(torch.randn(50, 4), labels))
    text = collate(grid, n_boot=200)[2]
    row = next(line for line in text.splitlines() if line.startswith("| teaching / 40left / SPLC"))
    iv = paired_t_interval([1.0, 1.5, 1.2])
    assert 0 < iv.lo < 1.5 <= iv.hi
    assert "| better (by more or less than 1.5: undecided) |" in row and "verdict (δ = 1.5)" in text
    assert "20.0 per run (75 % / 50 %) / +CLML arm 20.0 per run (75 % / 50 %)" in row
    assert "the base loss's own correction, baseline arm: epoch 0: 20.0 per run (75 % / 50 %)" \
        in text
    from clml_lib.metrics import chance_map
    assert f"**{chance_map(labels.numpy()):.2f}**" in text
    # a grid without a +CLML arm (the full-label ceiling): its own table, no gain rows
    ceiling = load_grid(_write_grid(tmp_path / "c.yaml", axes={"setting": ["full"]},
                                    set={"use_clml": False}, seeds=[0, 1]),
                        out=tmp_path / "runs")
    for run, v in zip(ceiling.runs, (88.0, 90.0)):
        _fake_run(run, v, v + 0.5)
    md, png, text = collate(ceiling)
    assert png is None and "## Runs without a +CLML arm" in text
    ci = paired_t_interval([88.0, 90.0])
    assert f"| teaching / full / BCE | 2 | 89.00 ± 1.41 | [{ci.lo:.2f}, {ci.hi:.2f}] | " \
        "89.50 ± 1.41 |" in text
    assert "## Result (val-selected)" not in text
    bad = _write_grid(tmp_path / "bad.yaml", smallest_effect=-1)
    with pytest.raises(GridError, match="smallest_effect"):
        load_grid(bad, out=tmp_path / "runs")


# --------------------------------------------------------------------------- papermill runs
def _error_outputs(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.output_type == "error"]


@pytest.mark.slow
def test_smoke_layer_through_papermill_on_a_coco_fixture(tmp_path):
    from data_fixtures import make_coco_tree

    root = make_coco_tree(tmp_path / "coco")
    out_dir = tmp_path / "run"
    params = {**read_layer(PARAMS / "smoke.yaml"), "data_root": str(root),
              "out_dir": str(out_dir)}
    out_nb = tmp_path / "smoke.ipynb"
    pm.execute_notebook(str(NOTEBOOK), str(out_nb), parameters=params, kernel_name="python3",
                        progress_bar=False, cwd=str(PROJECT_ROOT), execution_timeout=300)
    assert not _error_outputs(out_nb)
    metrics = json.loads((out_dir / "metrics.json").read_text())
    assert metrics["config"]["dataset"] == "coco" and metrics["config"]["backbone"] == "resnet18"
    assert len(metrics["classes"]) == len(metrics["per_class_ap"]["test"])
    assert [e["epoch"] for e in metrics["epochs"]] == [0]
    epoch = metrics["epochs"][0]
    assert all(math.isfinite(v) for v in epoch["train"].values())
    for split in ("val", "test"):
        assert 0 <= epoch[split]["mAP"] <= 100 and 0 <= epoch[split]["mAP_ema"] <= 100
    assert metrics["summary"]["finished"] and metrics["summary"]["epochs_run"] == 1
    assert "all checks passed" in out_nb.read_text()


@pytest.mark.slow
def test_micro_grid_dry_run_real_run_with_two_jobs_failure_and_table(tmp_path, capsys):
    grid_file = _write_grid(tmp_path / "micro.yaml", set={**TINY, "data_root":
                                                          str(tmp_path / "no_such_coco")},
                            axes={"dataset": ["teaching", "coco"], "use_clml": [False, True]})
    out = tmp_path / "runs"
    args = ["--grid", str(grid_file), "--out", str(out)]
    assert main(args + ["--dry-run"]) == 0  # validates and prints the plan, writes nothing
    dry = capsys.readouterr().out
    assert "[1/4] micro/teaching_no_clml seed 0: new" in dry and "-f params/teaching.yaml" in dry
    assert not out.exists()
    assert main(args + ["--jobs", "2"]) == 1  # the coco runs fail, the teaching runs finish
    captured = capsys.readouterr()
    assert "coco_no_clml seed 0" in captured.err and "no_such_coco" in captured.err
    broken_nb = out / "micro" / "coco_clml" / "seed0" / "reproduce.ipynb"
    assert broken_nb.is_file(), "the failed run's executed notebook must stay in runs/"
    for cell in ("teaching_no_clml", "teaching_clml"):
        metrics = json.loads((out / "micro" / cell / "seed0" / "metrics.json").read_text())
        assert metrics["summary"]["finished"] and metrics["config"]["epochs"] == 2
    text = (out / "micro" / "results" / "micro.md").read_text()
    assert text in captured.out
    assert "| teaching / 40left / BCE +CLML | 1 |" in text
    assert "FAILED micro" not in text and "FAILED coco_clml seed 0" in text


def _numbers(doc, path=""):
    """Every number of a metrics.json (``path -> value``) but the wall times."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if k != "time_s":
                out.update(_numbers(v, f"{path}.{k}"))
        return out
    if isinstance(doc, list):
        out = {}
        for i, v in enumerate(doc):
            out.update(_numbers(v, f"{path}[{i}]"))
        return out
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        return {path: float(doc)}
    return {}


@pytest.mark.slow
def test_process_runner_matches_papermill_records_failures_and_skips(tmp_path, capsys):
    grid_file = _write_grid(tmp_path / "micro.yaml", set={**TINY, "data_root":
                                                          str(tmp_path / "no_such_coco")},
                            axes={"dataset": ["teaching", "coco"]})
    out = tmp_path / "runs"
    args = ["--grid", str(grid_file), "--out", str(out), "--runner", "process", "--jobs", "2"]
    assert main(args) == 1  # the coco run fails in its worker, the teaching run finishes
    captured = capsys.readouterr()
    coco_log = out / "micro" / "coco" / "seed0" / "run.log"
    assert "coco seed 0" in captured.err and "no_such_coco" in captured.err
    assert str(coco_log) in captured.err  # the failure names where its traceback is
    assert "Traceback" in coco_log.read_text() and "no_such_coco" in coco_log.read_text()
    run_dir = out / "micro" / "teaching" / "seed0"
    for name in ("config.json", "metrics.json", "checkpoint.pt", "test_scores.pt", "run.log"):
        assert (run_dir / name).is_file(), name
    assert "FAILED coco seed 0" in (out / "micro" / "results" / "micro.md").read_text()

    # the same cell through papermill gives the same metrics.json (float tolerance)
    grid = load_grid(grid_file, out=tmp_path / "papermill")
    (run,) = [r for r in grid.runs if r.cell == "teaching"]
    execute_run(run, NOTEBOOK, 300, log_output=False)
    by_process = json.loads((run_dir / "metrics.json").read_text())
    by_papermill = json.loads(run.metrics_path.read_text())
    assert by_process["classes"] == by_papermill["classes"]
    assert by_process["summary"]["selected_model"] == by_papermill["summary"]["selected_model"]
    a, b = _numbers(by_process), _numbers(by_papermill)
    assert a.keys() == b.keys()
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-3), key
    config_a, config_b = by_process["config"], by_papermill["config"]
    assert {k for k in config_a if config_a[k] != config_b[k]} == {"out_dir", "verbose"}

    # run again: the finished run is skipped, the failed one tried again
    assert main(args) == 1
    again = capsys.readouterr().out
    assert "micro/teaching seed 0: finished earlier, skipped" in again
    assert "1 skipped as finished" in again
