"""The reproduction machinery: presets, the grid driver (validation, skipping, failures,
collation) and ``notebooks/reproduce.ipynb`` run through papermill.

Slow parts (papermill runs start a kernel and train): the ``smoke`` preset on a COCO-format
fixture (1 capped epoch) and a 3-cell micro grid on the teaching set (two tiny runs and a run
that fails before training). Everything else is pure Python on small files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

from clml_lib.paths import PARAMS, PROJECT_ROOT
from clml_lib.reproduce import (
    NOTEBOOK,
    GridError,
    build_comparisons,
    collate,
    load_grid,
    load_preset,
    notebook_parameters,
    parse_sets,
    preset_table,
    render_preset,
    run_grid,
)
from clml_lib.reproduce.cli import main
from clml_lib.reproduce.presets import grid_table, render_grid
from clml_lib.train import TrainConfig

FIELDS = TrainConfig.field_names()
PRESET_FILES = sorted(PARAMS.glob("*.yaml"))
GRID_FILES = sorted((PARAMS / "grids").glob("*.yaml"))

#: a teaching run small enough for a test (seconds), overriding the teaching preset
TINY = {
    "epochs": 2,
    "num_train_images": 96,
    "batch_size": 32,
    "image_size": 32,
    "max_eval_batches": 2,
}


def _write_grid(path: Path, cells: list[dict], seeds=(0,), timeout_s=300) -> Path:
    path.write_text(yaml.safe_dump({"description": "test grid", "seeds": list(seeds),
                                    "timeout_s": timeout_s, "cells": cells}))
    return path


# --------------------------------------------------------------------------- presets


def test_committed_presets_and_grids_equal_the_generator():
    table = preset_table()
    assert {p.stem for p in PRESET_FILES} == set(table), (
        "params/*.yaml differ from clml_lib/reproduce/presets.py: run "
        "`python -m clml_lib.reproduce --write-presets`"
    )
    for name, (description, params) in table.items():
        expected = render_preset(name, description, params)
        assert (PARAMS / f"{name}.yaml").read_text() == expected, name
    grids = grid_table()
    assert {p.stem for p in GRID_FILES} == set(grids)
    for name, spec in grids.items():
        assert (PARAMS / "grids" / f"{name}.yaml").read_text() == render_grid(name, spec), name


def test_paper_presets_cover_the_paper_grid():
    names = set(preset_table())
    for setting in ("full", "75left", "40left", "single"):
        for loss in ("bce", "focal", "hill", "splc"):
            assert {f"coco_{setting}_{loss}", f"coco_{setting}_{loss}_clml"} <= names
    assert {"nus_full_bce_clml", "nus_single_splc", "voc2007_single_hill_clml"} <= names
    p = load_preset("coco_40left_bce_clml")
    assert (p["backbone"], p["image_size"], p["batch_size"]) == ("resnet101", 448, 64)
    assert p["lr"] == 1e-4
    assert (p["epochs"], p["stop_epoch"], p["ema_decay"], p["use_clml"]) == (80, 25, 0.9997, True)
    assert load_preset("coco_40left_bce")["use_clml"] is False


@pytest.mark.parametrize("path", PRESET_FILES, ids=[p.stem for p in PRESET_FILES])
def test_preset_names_are_notebook_parameters_and_trainconfig_fields(path):
    params = yaml.safe_load(path.read_text())
    nb_names = list(notebook_parameters(NOTEBOOK))
    assert set(params) <= set(nb_names), f"not notebook parameters: {set(params) - set(nb_names)}"
    assert set(params) <= set(FIELDS), f"not TrainConfig fields: {set(params) - set(FIELDS)}"
    assert set(params) == set(FIELDS), f"incomplete preset, lacks {set(FIELDS) - set(params)}"
    if not params["data_root"] and params["dataset"] != "teaching":
        params["data_root"] = "data/fixture"  # smoke: filled in by the test / -p data_root
    cfg = TrainConfig.from_dict(params)  # every value is valid and typed
    assert type(cfg.lr) is float and cfg.out_dir.startswith("runs/")


@pytest.mark.parametrize("path", GRID_FILES, ids=[p.stem for p in GRID_FILES])
def test_shipped_grids_validate(path, tmp_path):
    grid = load_grid(path.stem, out=tmp_path)
    assert grid.runs and all(r.run_dir.is_relative_to(tmp_path) for r in grid.runs)
    assert not any(tmp_path.iterdir()), "validation must not write anything"


def test_teaching_grid_pairs_bce_with_and_without_clml(tmp_path):
    grid = load_grid("teaching", out=tmp_path)
    assert grid.seeds == [0, 1, 2] and len(grid.runs) == 6
    assert sorted({(r.params["use_clml"], r.params["setting"], r.params["base_loss"])
                   for r in grid.runs}) == [(False, "40left", "BCE"), (True, "40left", "BCE")]
    assert {r.params["seed"] for r in grid.runs} == {0, 1, 2}
    assert len({r.params["out_dir"] for r in grid.runs}) == 6


# --------------------------------------------------------------------------- bad input


def test_unknown_preset_is_a_clear_error(tmp_path):
    with pytest.raises(GridError, match=r"unknown preset 'teachng'.*did you mean 'teaching'"):
        load_preset("teachng")
    grid = _write_grid(tmp_path / "g.yaml", [{"preset": "teachng"}])
    with pytest.raises(GridError, match=r"unknown preset 'teachng'"):
        load_grid(grid, out=tmp_path / "runs")
    assert main(["--grid", str(grid), "--out", str(tmp_path / "runs"), "--dry-run"]) == 2
    assert not (tmp_path / "runs").exists()


def test_unknown_grid_is_a_clear_error(capsys):
    assert main(["--grid", "teachin", "--dry-run"]) == 2
    assert "unknown grid 'teachin'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "cell, sets, message",
    [
        ({"preset": "teaching", "overrides": {"lamda_": 2.0}}, {},
         r"unknown parameter\(s\) 'lamda_' \(did you mean 'lambda_'"),
        ({"preset": "teaching"}, {"use_clmll": False},
         r"--set: unknown parameter\(s\) 'use_clmll'"),
        ({"preset": "teaching", "overrides": {"use_clml": "yes"}}, {},
         r"parameter 'use_clml' must be bool, got str 'yes'"),
        ({"preset": "teaching", "overrides": {"lr": "fast"}}, {}, r"'lr' must be float"),
        ({"preset": "teaching", "overrides": {"setting": "50left"}}, {}, r"setting must be one of"),
        ({"preset": "teaching", "overrides": {"seed": 3}}, {}, r"cannot set \['seed'\]"),
        ({"preset": "teaching", "colour": "red"}, {}, r"unknown key\(s\) \['colour'\]"),
    ],
)
def test_bad_parameters_fail_before_anything_runs(tmp_path, cell, sets, message):
    grid = _write_grid(tmp_path / "g.yaml", [cell])
    with pytest.raises(GridError, match=message):
        load_grid(grid, out=tmp_path / "runs", sets=sets)
    assert not (tmp_path / "runs").exists()


def test_incomplete_preset_is_rejected(tmp_path):
    preset = tmp_path / "partial.yaml"
    preset.write_text("dataset: teaching\nepochs: 1\n")
    grid = _write_grid(tmp_path / "g.yaml", [{"preset": str(preset)}])
    with pytest.raises(GridError, match=r"lacks \[.*'data_root'.*presets must list every"):
        load_grid(grid, out=tmp_path / "runs")


def test_set_values_are_typed():
    assert parse_sets(["lr=1e-3", "use_clml=false", "epochs=3", "data_root=", "device=cuda:1"]) == {
        "lr": 1e-3, "use_clml": False, "epochs": 3, "data_root": "", "device": "cuda:1"}
    with pytest.raises(GridError, match="key=value"):
        parse_sets(["lr"])


@pytest.mark.slow
def test_papermill_parameter_names_are_validated_inside_the_notebook_too(tmp_path):
    """A typo passed straight to papermill (which only logs 'Passed unknown parameter') reaches
    TrainConfig.from_dict inside the notebook and fails there, before any training."""
    out = tmp_path / "typo.ipynb"
    with pytest.raises(pm.PapermillExecutionError, match=r"lamda_.*did you mean 'lambda_'"):
        pm.execute_notebook(str(NOTEBOOK), str(out), parameters={"lamda_": 2.0},
                            kernel_name="python3", progress_bar=False, cwd=str(PROJECT_ROOT),
                            execution_timeout=120)
    assert out.is_file()


# --------------------------------------------------------------------------- collation


def _fake_run(run, test_map, best_map):
    run.run_dir.mkdir(parents=True)
    summary = {"selected_epoch": 1, "selected_model": "ema", "val_mAP": 50.0,
               "test_mAP": test_map, "best_test_mAP": best_map, "best_test_epoch": 1,
               "best_test_model": "raw", "optimism_gap": best_map - test_map,
               "finished": True, "epochs_run": 2}
    run.metrics_path.write_text(json.dumps({"config": run.params, "summary": summary}))


def test_collation_pairs_by_seed_and_prints_negative_gains(tmp_path):
    grid_file = _write_grid(tmp_path / "g.yaml", [
        {"name": "base", "preset": "teaching", "overrides": {"use_clml": False}},
        {"name": "clml", "preset": "teaching", "overrides": {"use_clml": True}},
    ], seeds=(0, 1, 2))
    grid = load_grid(grid_file, out=tmp_path / "runs")
    # baseline 50, 52, 54; +CLML 49, 52.5, 53 -> gains -1, +0.5, -1: mean -0.5, std 0.866
    values = {("base", 0): 50.0, ("base", 1): 52.0, ("base", 2): 54.0,
              ("clml", 0): 49.0, ("clml", 1): 52.5, ("clml", 2): 53.0}
    for run in grid.runs:
        v = values[(run.cell, run.seed)]
        _fake_run(run, v, v + 1.0)
    comparisons, notes = build_comparisons(grid)
    assert len(comparisons) == 1 and not notes
    c = comparisons[0]
    assert c.gains("test_mAP") == {0: -1.0, 1: 0.5, 2: -1.0}
    md, png, text = collate(grid, failures=[])
    assert md.is_file() and png.is_file() and png.stat().st_size > 1000
    row = next(line for line in text.splitlines() if "| val-selected |" in line)
    assert "teaching / 40left / BCE" in row
    std_clml, std_gain = math.sqrt(4.75), math.sqrt(0.75)
    assert f"| 52.00 ± 2.00 | 51.50 ± {std_clml:.2f} | -0.50 ± {std_gain:.2f} | 3 |" in row
    assert "n/a (not in the paper)" in row
    best = next(line for line in text.splitlines() if "| best-on-test |" in line)
    assert "| 53.00 ± 2.00 |" in best and "| -0.50 ±" in best
    # every run finished with the same config: a second run of the grid skips all of them
    outcomes = run_grid(grid, log=lambda _: None)
    assert [o.status for o in outcomes] == ["skipped"] * 6


def test_paper_gain_is_shown_next_to_coco_rows(tmp_path):
    grid_file = _write_grid(tmp_path / "g.yaml", [{"preset": "coco_40left_bce"},
                                                  {"preset": "coco_40left_bce_clml"}])
    grid = load_grid(grid_file, out=tmp_path / "runs")
    _fake_run(grid.runs[0], 70.0, 70.5)
    _fake_run(grid.runs[1], 71.0, 72.0)
    text = collate(grid)[2]
    row = next(line for line in text.splitlines() if "| val-selected |" in line)
    assert "coco / 40left / BCE" in row and "| +1.00 | 1 | +1.2 (MS-COCO) |" in row


def test_a_run_folder_with_another_config_is_neither_skipped_nor_overwritten(tmp_path):
    grid_file = _write_grid(tmp_path / "g.yaml", [{"preset": "teaching"}])
    grid = load_grid(grid_file, out=tmp_path / "runs")
    run = grid.runs[0]
    _fake_run(run, 50.0, 51.0)
    stored = json.loads(run.metrics_path.read_text())
    stored["config"]["lr"] = 0.5
    run.metrics_path.write_text(json.dumps(stored))
    outcomes = run_grid(grid, log=lambda _: None)
    wanted = load_preset("teaching")["lr"]
    assert outcomes[0].status == "failed"
    assert f"lr: on disk 0.5, requested {wanted!r}" in outcomes[0].error
    assert json.loads(run.metrics_path.read_text())["config"]["lr"] == 0.5


# --------------------------------------------------------------------------- papermill runs


def _error_outputs(path: Path) -> list[str]:
    nb = nbformat.read(path, as_version=4)
    return [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code"
            for o in c.get("outputs", []) if o.output_type == "error"]


@pytest.mark.slow
def test_smoke_preset_through_papermill_on_a_coco_fixture(tmp_path):
    from data_fixtures import make_coco_tree

    root = make_coco_tree(tmp_path / "coco")
    out_dir = tmp_path / "run"
    params = {**load_preset("smoke"), "data_root": str(root), "out_dir": str(out_dir)}
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
    assert (out_dir / "checkpoint.pt").is_file() and (out_dir / "config.json").is_file()
    text = out_nb.read_text()
    assert "all checks passed" in text


@pytest.mark.slow
def test_micro_grid_dry_run_real_run_failure_and_table(tmp_path, capsys):
    grid_file = _write_grid(tmp_path / "micro.yaml", [
        {"name": "base", "preset": "teaching", "overrides": {**TINY, "use_clml": False}},
        {"name": "clml", "preset": "teaching", "overrides": {**TINY, "use_clml": True}},
        {"name": "broken", "preset": "smoke",
         "overrides": {"data_root": str(tmp_path / "no_such_coco")}},
    ])
    out = tmp_path / "runs"
    args = ["--grid", str(grid_file), "--out", str(out)]
    # dry run: validates and prints the plan, runs and writes nothing
    assert main(args + ["--dry-run"]) == 0
    plan = capsys.readouterr().out
    assert "[1/3] micro/base seed 0: new" in plan and "[3/3] micro/broken seed 0" in plan
    assert not out.exists()
    # real run: the broken cell fails, the others run, the driver exits 1 listing the failure
    assert main(args) == 1
    captured = capsys.readouterr()
    assert "broken seed 0" in captured.err and "FileNotFoundError" in captured.err
    broken_nb = out / "micro" / "broken" / "seed0" / "reproduce.ipynb"
    assert broken_nb.is_file(), "the failed run's executed notebook must stay in runs/"
    assert any("no_such_coco" in e for e in _error_outputs(broken_nb))
    for cell in ("base", "clml"):
        metrics = json.loads((out / "micro" / cell / "seed0" / "metrics.json").read_text())
        assert metrics["summary"]["finished"] and metrics["config"]["epochs"] == 2
    md = out / "micro" / "results" / "micro.md"
    assert md.is_file() and (out / "micro" / "results" / "micro.png").is_file()
    text = md.read_text()
    assert text in captured.out
    assert "| teaching / 40left / BCE | +CLML | val-selected |" in text
    assert "FAILED broken seed 0" in text
