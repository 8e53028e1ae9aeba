"""The teaching backbone: its source task, the pretraining command, and the shipped weights."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch

from clml_lib.data import TeachingMultiLabel
from clml_lib.data.teaching_source import SOURCE_CLASSES, source_split
from clml_lib.train.pretrain_teaching import DEFAULT_OUT, main
from clml_lib.models import build_model
from clml_lib.paths import resolve

SHIPPED = resolve(DEFAULT_OUT)


def test_source_task_is_its_own_data():
    x, y = source_split("train", 300, 32, seed=1)
    assert x.shape == (300, 3, 32, 32) and x.dtype == torch.uint8
    assert y.shape == (300,) and y.dtype == torch.int64
    assert len(SOURCE_CLASSES) == 36 and len(set(SOURCE_CLASSES)) == 36
    assert int(y.min()) >= 0 and int(y.max()) < 36 and len(y.unique()) > 30
    x2, y2 = source_split("train", 300, 32, seed=1)
    assert torch.equal(x, x2) and torch.equal(y, y2)  # deterministic
    xt, _ = source_split("test", 300, 32, seed=1)
    assert not torch.equal(x, xt)  # its own test split
    # never one of the teaching set's images (data seed 0, every split)
    for split in ("train", "val", "test"):
        target = TeachingMultiLabel(split, num_images=300, seed=0).images  # (300, 3, 32, 32)
        same = (x.flatten(1)[:, None] == target.flatten(1)[None]).all(-1)  # (300, 300)
        assert not bool(same.any()), split
    with pytest.raises(ValueError, match="source split"):
        source_split("val", 10)
    with pytest.raises(ValueError, match="num_images"):
        source_split("train", 0)


def _load_sd(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_quick_command_end_to_end(tmp_path, capsys):
    out = tmp_path / "sub" / "bb.pt"
    sidecar = main(["--quick", "--out", str(out)])
    assert out.is_file() and out.with_suffix(".json").is_file()
    data = out.read_bytes()
    on_disk = json.loads(out.with_suffix(".json").read_text())
    assert on_disk == sidecar
    assert sidecar["sha256"] == hashlib.sha256(data).hexdigest() and sidecar["bytes"] == len(data)
    assert sidecar["command"] == f"python -m clml_lib.train.pretrain_teaching --quick --out {out}"
    assert sidecar["recipe"]["seed"] == 1 and sidecar["recipe"]["epochs"] == 1
    assert sidecar["torch"] == torch.__version__
    assert 0.0 <= sidecar["source_test"]["map"] <= 100.0
    assert sidecar["source_task"]["classes"] == SOURCE_CLASSES
    sd = _load_sd(out)
    assert all(v.dtype in (torch.float32, torch.int64) for v in sd.values())
    # strict load into the architecture with the source head: nothing dropped, nothing left
    src = build_model("small_resnet", 36)
    src.load_state_dict(sd, strict=True)
    # an existing output is not replaced without --force
    with pytest.raises(SystemExit) as err:
        main(["--quick", "--out", str(out)])
    assert err.value.code == 2 and "--force" in capsys.readouterr().err
    again = main(["--quick", "--out", str(out), "--force"])
    assert again["sha256"] == sidecar["sha256"]  # deterministic: the same bytes
    with pytest.raises(SystemExit):
        main(["--quick", "--out", str(tmp_path / "bb.pth")])
    with pytest.raises(SystemExit):
        main(["--quick", "--epochs", "0", "--out", str(tmp_path / "x.pt")])


def test_shipped_weights_match_sidecar_and_load():
    assert SHIPPED.is_file(), f"{SHIPPED} missing: run python -m clml_lib.train.pretrain_teaching"
    sidecar = json.loads(SHIPPED.with_suffix(".json").read_text(encoding="utf-8"))
    data = SHIPPED.read_bytes()
    assert len(data) < 4_000_000  # a few MB at most
    assert sidecar["sha256"] == hashlib.sha256(data).hexdigest() and sidecar["bytes"] == len(data)
    assert sidecar["command"].startswith("python -m clml_lib.train.pretrain_teaching")
    assert sidecar["backbone"] == "small_resnet" and sidecar["head_classes"] == len(SOURCE_CLASSES)
    for key in ("recipe", "source_task", "source_test", "torch"):
        assert key in sidecar, key
    assert sidecar["source_test"]["map"] > 50.0  # it learned its source task
    sd = _load_sd(SHIPPED)
    src = build_model("small_resnet", sidecar["head_classes"])
    src.load_state_dict(sd, strict=True)  # the architecture, with the source head
    # the fine-tuning model: body from the file, fresh 12-class head, said once
    torch.manual_seed(0)
    with pytest.warns(UserWarning, match="head for 36 classes"):
        model = build_model("small_resnet", 12, SHIPPED)
    for k, v in src.body.state_dict().items():
        assert torch.equal(v, model.body.state_dict()[k]), k
    assert model.head.weight.shape == (12, 64)
