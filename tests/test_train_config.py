"""clml_lib.train.config: unknown keys with suggestions, type and range errors, YAML + overrides."""

import pytest

from clml_lib.train.config import TrainConfig, load_config, parse_override


def test_defaults_match_contract():
    cfg = TrainConfig()
    assert (cfg.epochs, cfg.stop_epoch, cfg.lr, cfg.ema_decay, cfg.batch_size) == (80, 25, 1e-4, 0.9997, 64)
    assert cfg.last_epoch == 25 and cfg.replace(stop_epoch=-1).last_epoch == 79
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_unknown_key_with_suggestion():
    with pytest.raises(ValueError, match=r"'lamda_' \(did you mean 'lambda_'\?\)"):
        TrainConfig.from_dict({"lamda_": 1.0})
    with pytest.raises(ValueError, match=r"'batchsize' \(did you mean 'batch_size'\?\)"):
        TrainConfig.from_dict({"batchsize": 8})
    with pytest.raises(ValueError, match=r"unknown TrainConfig key\(s\): 'zzz'$"):
        TrainConfig.from_dict({"zzz": 1})


@pytest.mark.parametrize(
    "changes, match",
    [
        ({"dataset": "cocoa"}, r"dataset must be one of .*did you mean 'coco'"),
        ({"setting": "50left"}, "setting must be one of"),
        ({"base_loss": "bce"}, r"did you mean 'BCE'"),
        ({"amp": "fp32"}, "amp must be one of"),
        ({"device": "gpu"}, "device must be"),
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"epochs": 10, "stop_epoch": 10}, r"stop_epoch must be .*\[0, 9\], got 10"),
        ({"lr": 0.0}, "lr must be in > 0"),
        ({"tau": 1.0}, r"tau must be in \(0.0, 1.0\)"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"lambda_": -1.0}, "lambda_ must be >= 0"),
        ({"batch_size": 2.5}, "batch_size must be an int"),
        ({"batch_size": True}, "batch_size must be an int"),
        ({"use_clml": "False"}, "use_clml must be true/false"),  # the reference's type=bool trap
        ({"lr": "fast"}, "lr must be a number"),
        ({"lr": float("nan")}, "lr must be finite"),
        ({"dataset": "coco"}, "needs data_root"),
        ({"out_dir": ""}, "out_dir must not be empty"),
    ],
)
def test_bad_values(changes, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(changes)


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("backbone: tiny_cnn\nlr: 1e-3\nepochs: 5\nstop_epoch: -1\n")
    cfg = load_config(p, ["use_clml=false", "seed=3", "amp=bf16", "weights_path="])
    assert cfg.lr == 1e-3 and cfg.use_clml is False and cfg.seed == 3 and cfg.amp == "bf16"
    assert cfg.last_epoch == 4 and cfg.weights_path == ""
    assert parse_override("tau=0.8") == ("tau", 0.8)
    with pytest.raises(ValueError, match="key=value"):
        parse_override("tau")
    with pytest.raises(FileNotFoundError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    p.write_text("- a\n- b\n")
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_config(p)


def test_trajectory_diff_ignores_resume_free_fields():
    a = TrainConfig()
    b = a.replace(progress=False, stop_epoch=3, out_dir="elsewhere", device="cuda")
    assert a.trajectory_diff(b) == []
    assert a.trajectory_diff(a.replace(lr=2e-4)) == ["lr: 0.0001 != 0.0002"]
