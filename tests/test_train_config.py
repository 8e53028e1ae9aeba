"""clml_lib.train.config: the one schema (roles, ranges shared with the losses), the one parser,
unknown keys with suggestions, parameter layers, paths from the project root, --help and docs."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys

import pytest

from clml_lib.losses import (
    DELTA_RANGE,
    LAMBDA_RANGE,
    PAIRWISE_WEIGHT_RANGE,
    START_EPOCH_RANGE,
    TAU_RANGE,
    TEMPERATURE_RANGE,
    CLMLLoss,
)
from clml_lib.paths import PARAMS, PROJECT_ROOT, resolve, resolve_path
from clml_lib.train.__main__ import (
    CONFIGURATION_MD,
    REPRODUCE_IPYNB,
    REPRODUCE_PY,
    main,
    write_notebook_parameters,
)
from clml_lib.train.config import (
    BOOKKEEPING_FIELDS,
    CLML_FIELDS,
    EXPERIMENT_FIELDS,
    PATH_FIELDS,
    TrainConfig,
    compose,
    load_config,
    parse_override,
    parse_value,
    read_layer,
    render_configuration_md,
    render_parameters_cell,
)

FIELDS = TrainConfig.field_names()
SPEC = {f.name: f.metadata["spec"] for f in dataclasses.fields(TrainConfig)}


# ----------------------------------------------------------------------------- the schema
def test_every_field_is_declared_once_with_type_help_and_role():
    for f in dataclasses.fields(TrainConfig):
        spec = f.metadata["spec"]
        assert spec.help and "=" not in spec.help, f.name
        assert spec.role in ("experiment", "clml", "bookkeeping"), f.name
    assert sorted(BOOKKEEPING_FIELDS + CLML_FIELDS + EXPERIMENT_FIELDS) == sorted(FIELDS)
    assert set(BOOKKEEPING_FIELDS) == {"stop_epoch", "device", "out_dir", "progress", "verbose",
                                       "resume"}
    assert "num_workers" in EXPERIMENT_FIELDS  # worker processes change the random stream
    assert CLML_FIELDS[0] == "use_clml" and "use_correction" in CLML_FIELDS
    assert set(PATH_FIELDS) == {"data_root", "label_list", "weights_path", "out_dir"}


def test_defaults_are_the_teaching_regime():
    cfg = TrainConfig()
    assert cfg.dataset == "teaching" and cfg.backbone == "small_resnet" and cfg.device == "cpu"
    # `python -m clml_lib.train` alone trains what the main job trains: every experiment and CLML
    # field of params/teaching.yaml equals its default (only where runs are written may differ)
    regime = load_config(PARAMS / "teaching.yaml")
    differ = {f: (getattr(cfg, f), getattr(regime, f)) for f in FIELDS
              if getattr(cfg, f) != getattr(regime, f)}
    assert set(differ) <= set(BOOKKEEPING_FIELDS), f"defaults differ from the regime: {differ}"
    assert cfg.last_epoch == cfg.epochs - 1 and cfg.replace(stop_epoch=3).last_epoch == 3
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    assert not hasattr(cfg, "correction")  # one name per switch: use_correction


@pytest.mark.parametrize("name, rng", [("lambda_", LAMBDA_RANGE), ("tau", TAU_RANGE),
                                       ("start_epoch", START_EPOCH_RANGE), ("delta", DELTA_RANGE),
                                       ("pairwise_weight", PAIRWISE_WEIGHT_RANGE),
                                       ("temperature", TEMPERATURE_RANGE)])
def test_loss_ranges_are_the_losses_own_constants(name, rng):
    assert SPEC[name].range is rng


@pytest.mark.parametrize("name, value", [("tau", -0.1), ("tau", 1.5), ("tau", math.nan),
                                         ("lambda_", -1.0), ("lambda_", math.inf),
                                         ("delta", -0.5), ("pairwise_weight", -1e-3),
                                         ("temperature", 0.0), ("start_epoch", -1),
                                         ("use_clml", "False"), ("use_correction", 0)])
def test_config_and_loss_refuse_the_same_values(name, value):
    with pytest.raises(ValueError, match=name):
        TrainConfig(**{name: value})
    with pytest.raises(ValueError, match=name):
        CLMLLoss("BCE", **{name: value})


def test_unknown_keys_name_the_closest_field():
    with pytest.raises(ValueError, match=r"'lamda_' \(did you mean 'lambda_'\?\)"):
        TrainConfig.from_dict({"lamda_": 1.0})
    with pytest.raises(ValueError, match=r"unknown TrainConfig key\(s\): 'zzz'$"):
        TrainConfig.from_dict({"zzz": 1})
    with pytest.raises(ValueError, match=r"'correction' \(did you mean 'use_correction' or "
                                         r"'reduction'\?\) \(in checkpoint runs/x/checkpoint.pt\)"):
        TrainConfig.from_dict({"correction": True}, source="checkpoint runs/x/checkpoint.pt")
    with pytest.raises(ValueError, match=r"lr must be in \(0, inf\), got -1.0 \(in metrics.json\)"):
        TrainConfig.from_dict({"lr": -1.0}, source="metrics.json")


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"dataset": "cocoa"}, r"dataset must be one of .*did you mean 'coco'"),
        ({"setting": "50left"}, "setting must be one of"),
        ({"base_loss": "bce"}, r"did you mean 'BCE'"),
        ({"amp": "fp32"}, "amp must be one of"),
        ({"device": "gpu"}, r"device must be cpu \| cuda \| cuda:N, got 'gpu'"),
        ({"epochs": 0}, r"epochs must be in \[1, inf\), got 0"),
        ({"epochs": 10, "stop_epoch": 10}, r"stop_epoch must be .*\[0, 9\], got 10"),
        ({"lr": 0.0}, r"lr must be in \(0, inf\)"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"batch_size": 2.5}, "batch_size must be an integer"),
        ({"batch_size": True}, "batch_size must be an integer"),
        ({"batch_size": "2.5"}, r"batch_size must be an integer, got '2.5'"),
        ({"use_clml": "yes"}, "use_clml must be true or false"),
        ({"use_clml": 1}, "use_clml must be True or False"),
        ({"lr": "fast"}, "lr must be a number"),
        ({"lr": float("nan")}, "lr must be finite"),
        ({"lr": "nan"}, "lr must be finite"),
        ({"data_root": 3}, "data_root must be a string"),
        ({"label_list": None}, "label_list must be a string.*write '' for an empty string"),
        ({"dataset": "coco"}, "needs data_root"),
        ({"out_dir": ""}, "out_dir must not be empty"),
        ({"use_correction": False, "correct_base_targets": True}, "needs use_correction=True"),
    ],
)
def test_bad_values(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(changes)


def test_the_one_parser():
    assert parse_value("lr", "1e-4") == 1e-4 and isinstance(parse_value("lr", "1e-4"), float)
    assert parse_value("lr", 1) == 1.0 and isinstance(parse_value("lr", 1), float)
    assert parse_value("use_clml", "false") is False and parse_value("use_clml", "True") is True
    assert parse_value("seed", "3") == 3 and parse_value("seed", " 4 ") == 4
    assert parse_value("data_root", "123") == "123"  # a str field keeps its text
    assert parse_override("tau=0.8") == ("tau", 0.8)
    assert parse_override("weights_path=") == ("weights_path", "")
    with pytest.raises(ValueError, match="key=value"):
        parse_override("tau")
    with pytest.raises(ValueError, match="did you mean 'tau'"):
        parse_override("tua=0.5")
    # papermill passes strings for -p values it cannot type: the notebook reads them the same way
    assert TrainConfig.from_dict({"lr": "1e-4", "use_clml": "false", "epochs": "3"}) == \
        TrainConfig(lr=1e-4, use_clml=False, epochs=3)


def test_trajectory_diff_ignores_only_bookkeeping_fields():
    a = TrainConfig()
    b = a.replace(progress=True, stop_epoch=3, out_dir="elsewhere", device="cuda", verbose=False,
                  resume=True)
    assert a.trajectory_diff(b) == []
    assert a.trajectory_diff(a.replace(lr=2e-3)) == ["lr: 0.01 != 0.002"]
    assert a.trajectory_changes(a.replace(num_workers=4)) == {"num_workers": (0, 4)}


# ----------------------------------------------------------------------------- layers
def test_layers_compose_in_order(tmp_path):
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("backbone: resnet18\nlr: 1e-3\nepochs: 5\n")
    b.write_text("lr: 2.0e-3\n")
    cfg = load_config([a, b], ["use_clml=false", "seed=3", "amp=bf16"])
    assert (cfg.backbone, cfg.lr, cfg.epochs, cfg.use_clml, cfg.seed, cfg.amp) == \
        ("resnet18", 2e-3, 5, False, 3, "bf16")
    assert compose([a]) == {"backbone": "resnet18", "lr": 1e-3, "epochs": 5}
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    a.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match=f"config file {a} must hold a mapping"):
        load_config(a)
    a.write_text("lr: [1\n")
    with pytest.raises(ValueError, match=f"config file {a}:2: not valid YAML"):
        read_layer(a)
    a.write_text("correction: true\n")
    with pytest.raises(ValueError, match=f"did you mean 'use_correction'.*in {a}"):
        read_layer(a)


def test_shipped_parameter_files():
    for name in ("paper", "teaching_scratch"):  # complete: independent of the defaults
        assert sorted(read_layer(PARAMS / f"{name}.yaml")) == sorted(FIELDS), name
    paper = load_config(PARAMS / "paper.yaml")
    assert (paper.dataset, paper.backbone, paper.image_size, paper.epochs, paper.stop_epoch,
            paper.weights_path) == ("coco", "resnet101", 448, 80, 25, "imagenet")
    for layer, dataset in (("voc", "voc"), ("nus", "nus")):
        assert load_config([PARAMS / "paper.yaml", PARAMS / f"{layer}.yaml"]).dataset == dataset
    # smoke is usable alone (the DDP test, gpu_check) and after paper.yaml with the same result
    alone = load_config(PARAMS / "smoke.yaml", ["data_root=x"]).to_dict()
    stacked = load_config([PARAMS / "paper.yaml", PARAMS / "smoke.yaml"], ["data_root=x"])
    assert stacked.to_dict() == alone
    scratch = load_config(PARAMS / "teaching_scratch.yaml")
    assert (scratch.backbone, scratch.epochs, scratch.ema_decay, scratch.augment,
            scratch.weights_path) == ("tiny_cnn", 10, 0.97, True, "")
    load_config(PARAMS / "teaching.yaml")


# ----------------------------------------------------------------------------- paths
def test_relative_paths_resolve_from_the_project_root(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = TrainConfig(dataset="coco", data_root="data/coco", label_list="lists/x.txt",
                      weights_path="w/b.pth", out_dir="runs/x")
    for name in PATH_FIELDS:
        assert cfg.path(name) == PROJECT_ROOT / getattr(cfg, name), name
    assert TrainConfig(weights_path="imagenet").path("weights_path") is None
    assert TrainConfig().path("label_list") is None
    assert cfg.replace(data_root=str(tmp_path)).path("data_root") == tmp_path
    assert resolve_path("~/x") == resolve_path("~/x").expanduser().absolute()
    assert resolve("a/b") == resolve_path("a/b") == PROJECT_ROOT / "a" / "b"
    with pytest.raises(ValueError, match="'lr' is not a path field"):
        cfg.path("lr")
    with pytest.raises(ValueError, match="empty path"):
        resolve_path("")


def test_paths_from_another_working_directory_in_a_fresh_process(tmp_path):
    code = ("from clml_lib.train.config import load_config; "
            f"c = load_config({str(PARAMS / 'paper.yaml')!r}, ['out_dir=runs/elsewhere']); "
            "print(c.path('data_root')); print(c.path('out_dir'))")
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                         text=True, check=True, env={"PYTHONPATH": str(PROJECT_ROOT),
                                                     "OMP_NUM_THREADS": "1"}).stdout.split()
    assert out == [str(PROJECT_ROOT / "data" / "coco"), str(PROJECT_ROOT / "runs" / "elsewhere")]


# ----------------------------------------------------------------------------- CLI and docs
def test_help_lists_every_field_with_its_default(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    defaults = TrainConfig().to_dict()
    for name in FIELDS:
        value = json.dumps(defaults[name]) if isinstance(defaults[name], str) else \
            repr(defaults[name])
        assert f"    {name}: " in text and f"[{value}]" in text, name


def test_cli_composes_files_and_overrides(capsys):
    assert main(["-f", str(PARAMS / "paper.yaml"), "-f", str(PARAMS / "voc.yaml"),
                 "--set", "lr=1e-3", "setting=single", "--print-config"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert (cfg["dataset"], cfg["lr"], cfg["setting"], cfg["backbone"]) == \
        ("voc", 1e-3, "single", "resnet101")
    with pytest.raises(SystemExit):
        main(["--set", "tau=2", "--print-config"])
    assert "tau must be in [0, 1], got 2.0" in capsys.readouterr().err


def test_configuration_md_table_is_generated_from_the_schema():
    text = CONFIGURATION_MD.read_text(encoding="utf-8")
    assert render_configuration_md(text) == text, (
        "docs/configuration.md is out of date: run python -m clml_lib.train --write-docs")
    for name in FIELDS:
        assert f"| `{name}` |" in text
    with pytest.raises(ValueError, match="markers"):
        render_configuration_md("no markers here")


def test_write_notebook_regenerates_only_the_parameters_cell(tmp_path):
    import nbformat

    py, ipynb = tmp_path / "reproduce.py", tmp_path / "reproduce.ipynb"
    text = REPRODUCE_PY.read_text(encoding="utf-8")
    py.write_text(text.replace('dataset: str = "teaching"', 'dataset: str = "stale"'),
                  encoding="utf-8")
    nb = nbformat.read(str(REPRODUCE_IPYNB), as_version=4)
    (cell,) = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    cell.source = "lr: float = 9.0"
    nbformat.write(nb, str(ipynb))
    write_notebook_parameters(py, ipynb)
    assert py.read_text(encoding="utf-8") == text  # the shipped notebook is in sync
    assert ipynb.read_text(encoding="utf-8") == REPRODUCE_IPYNB.read_text(encoding="utf-8")
    with pytest.raises(ValueError, match="parameters"):
        render_parameters_cell("# %%\nx = 1\n")


# ----------------------------------------------------------------------------- base_loss_args
def test_base_loss_args_are_checked_against_the_registry_entry():
    cfg = load_config(overrides=["base_loss=Focal", "base_loss_args={gamma: 3, eps: 1e-6}"])
    assert cfg.base_loss_args == {"gamma": 3, "eps": 1e-6}  # '1e-6' read as a number
    assert TrainConfig().base_loss_args == {} and TrainConfig().base_loss_args is not \
        TrainConfig().base_loss_args
    with pytest.raises(ValueError, match=r"base_loss_args must name hyper-parameters of base "
                                         r"loss 'BCE' \(with their defaults: eps=1e-08\), got "
                                         r"'gamma'"):
        TrainConfig(base_loss_args={"gamma": 3.0})
    with pytest.raises(ValueError, match=r"base_loss_args of base loss 'Focal': gamma must be "
                                         r"finite, got nan"):
        TrainConfig(base_loss="Focal", base_loss_args={"gamma": float("nan")})
    with pytest.raises(ValueError, match="base_loss_args must be a mapping"):
        parse_override("base_loss_args=[3]")
    with pytest.raises(ValueError, match="bad entries: 'gamma': \\[3\\]"):
        TrainConfig(base_loss="Focal", base_loss_args={"gamma": [3]})
    assert parse_override("base_loss_args=") == ("base_loss_args", {})
    focal = TrainConfig(base_loss="Focal", base_loss_args={"gamma": 1.0})
    assert focal.trajectory_diff(focal.replace(base_loss_args={})) == [
        "base_loss_args: {'gamma': 1.0} != {}"]
