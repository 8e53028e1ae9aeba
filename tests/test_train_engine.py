"""clml_lib.train.fit on the teaching set (CPU): metrics.json schema, validation before training,
and the kill-and-resume test (SIGKILL mid-epoch, resume, final metrics equal an uninterrupted
run's).
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from clml_lib.train import TrainConfig, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")


#: a teaching run of a few seconds
TINY = dict(dataset="teaching", backbone="tiny_cnn", weights_path="",  # random init
            image_size=32, num_train_images=160,
            batch_size=32, epochs=3, stop_epoch=-1, lr=2e-3, ema_decay=0.9, weight_decay=1e-4,
            setting="40left", max_eval_batches=2, progress=False, augment=True, seed=0,
            resume=True)

EPOCH_KEYS = {"epoch", "lr", "steps", "time_s", "train", "mined", "val", "test"}
SUMMARY_KEYS = {"selected_epoch", "selected_model", "val_mAP", "test_mAP", "best_test_mAP",
                "best_test_epoch", "best_test_model", "optimism_gap", "finished", "epochs_run"}


def _check_schema(doc: dict, cfg: TrainConfig) -> None:
    assert doc["config"] == cfg.to_dict()
    C = len(doc["classes"])
    assert C == 12
    assert [e["epoch"] for e in doc["epochs"]] == list(range(cfg.last_epoch + 1))
    for e in doc["epochs"]:
        assert EPOCH_KEYS <= set(e)
        assert isinstance(e["steps"], int) and e["steps"] > 0 and e["lr"] > 0 and e["time_s"] > 0
        assert set(e["train"]) == {"loss", "base", "low_rank", "pairwise"}
        assert all(math.isfinite(v) for v in e["train"].values())
        assert e["train"]["loss"] == pytest.approx(
            e["train"]["base"] + e["train"]["low_rank"] + e["train"]["pairwise"], rel=1e-6)
        m = e["mined"]
        assert isinstance(m["count"], int)
        for k in ("precision", "recall"):
            assert m[k] is None or 0.0 <= m[k] <= 1.0
        for split, keys in (("val", ("mAP", "mAP_ema")),
                            ("test", ("mAP", "mAP_ema", "CP", "CR", "CF1", "OP", "OR", "OF1"))):
            for k in keys:
                assert 0.0 <= e[split][k] <= 100.0, (split, k, e[split][k])
    assert len(doc["per_class_ap"]["test"]) == C and len(doc["per_class_ap"]["test_ema"]) == C
    s = doc["summary"]
    assert set(s) == SUMMARY_KEYS
    assert s["selected_model"] in ("raw", "ema") and s["best_test_model"] in ("raw", "ema")
    assert s["best_test_mAP"] >= s["test_mAP"] and s["optimism_gap"] == pytest.approx(
        s["best_test_mAP"] - s["test_mAP"])
    assert s["finished"] is True and s["epochs_run"] == cfg.last_epoch + 1
    sel = doc["epochs"][s["selected_epoch"]]
    assert s["val_mAP"] == max(max(e["val"]["mAP"], e["val"]["mAP_ema"]) for e in doc["epochs"])
    assert s["test_mAP"] == sel["test"]["mAP" if s["selected_model"] == "raw" else "mAP_ema"]
    assert s["best_test_mAP"] == max(max(e["test"]["mAP"], e["test"]["mAP_ema"])
                                     for e in doc["epochs"])


def test_fit_writes_valid_metrics(tmp_path):
    cfg = TrainConfig.from_dict({**TINY, "epochs": 2, "out_dir": str(tmp_path / "run")})
    summary = fit(cfg)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    _check_schema(doc, cfg)
    assert summary == doc["summary"]
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == cfg.to_dict()
    assert (tmp_path / "run" / "checkpoint.pt").is_file()
    # without CLML the low-rank part is exactly 0 and nothing is mined
    cfg2 = cfg.replace(use_clml=False, use_correction=False, stop_epoch=0,
                       out_dir=str(tmp_path / "base"))
    fit(cfg2)
    doc2 = json.loads((tmp_path / "base" / "metrics.json").read_text())
    assert doc2["epochs"][0]["train"]["low_rank"] == 0.0
    assert doc2["epochs"][0]["mined"]["count"] == 0
    assert doc2["summary"]["finished"] is True and doc2["summary"]["epochs_run"] == 1
    # a later stop_epoch resumes the run and trains only the new epoch
    s3 = fit(cfg2.replace(stop_epoch=1))
    doc3 = json.loads((tmp_path / "base" / "metrics.json").read_text())
    assert doc3["epochs"][0] == doc2["epochs"][0] and s3["epochs_run"] == 2
    # a change of the schedule is refused
    with pytest.raises(ValueError, match=r"config differs.*lr: 0.002 != 0.001"):
        fit(cfg2.replace(lr=1e-3))


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_runs_finite(tmp_path, amp):
    cfg = {**TINY, "epochs": 1, "amp": amp, "max_train_batches": 2, "max_eval_batches": 1,
           "out_dir": str(tmp_path / amp)}
    fit(cfg)
    doc = json.loads((tmp_path / amp / "metrics.json").read_text())
    e = doc["epochs"][0]
    assert e["steps"] == 2 and all(math.isfinite(v) for v in e["train"].values())
    assert e["train"]["low_rank"] > 0  # the CLML term is on and finite under autocast
    ck = torch.load(tmp_path / amp / "checkpoint.pt", weights_only=True)
    assert ck["scaler"].get("scale") is not None if amp == "fp16" else True


def test_cli_print_config_and_errors(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("backbone: tiny_cnn\nepochs: 4\nstop_epoch: -1\n")
    cmd = [sys.executable, "-m", "clml_lib.train", "--config", str(p), "--set", "lr=1e-3",
           "--set", "use_clml=false", "--print-config"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    cfg = json.loads(res.stdout)
    got = (cfg["lr"], cfg["use_clml"], cfg["epochs"], cfg["backbone"])
    assert got == (1e-3, False, 4, "tiny_cnn")
    res = subprocess.run(cmd[:-1] + ["lamda_=2"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and "did you mean 'lambda_'" in res.stderr


def test_errors_before_training(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="not writable"):
        fit({**TINY, "out_dir": str(blocker / "sub")})
    bad = tmp_path / "bad.pth"
    import torchvision

    torch.save(torchvision.models.resnet18().state_dict(), bad)
    with pytest.raises(ValueError, match="missing keys"):
        fit({**TINY, "weights_path": str(bad), "out_dir": str(tmp_path / "w")})
    assert not (tmp_path / "w" / "checkpoint.pt").exists()
    with pytest.raises(ValueError, match="unknown TrainConfig key.*did you mean 'lambda_'"):
        fit({**TINY, "lamda": 1.0})
    with pytest.raises(ValueError, match="needs data_root"):
        fit({**TINY, "dataset": "coco"})


# ----------------------------------------------------------------------------- kill and resume
_RUNNER = textwrap.dedent(
    """
    import json, os, sys, time
    import torch
    torch.set_num_threads(1)
    from clml_lib.train import engine
    cfg = json.loads(sys.argv[1])
    marker = os.environ.get("CLML_TEST_MARKER")
    if marker:  # stall inside epoch 1 (after its 2nd step) so the parent can SIGKILL mid-epoch
        make = engine.build_criterion

        def build(c):
            crit = make(c)
            orig, calls = crit.forward_parts, [0]

            def forward_parts(logits, feats, labels, epoch=0):
                if epoch == 1:
                    calls[0] += 1
                    if calls[0] == 3:
                        open(marker, "w").write("in epoch 1")
                        time.sleep(120)
                return orig(logits, feats, labels, epoch)

            crit.forward_parts = forward_parts
            return crit

        engine.build_criterion = build
    print(json.dumps(engine.fit(cfg)))
    """
)


def _run(cfg: dict, env_extra: dict | None = None, wait: bool = True):
    env = {**os.environ, **(env_extra or {})}
    args = [sys.executable, "-c", _RUNNER, json.dumps(cfg)]
    if wait:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=180)
    return subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _strip_times(doc: dict) -> dict:
    doc = json.loads(json.dumps(doc))
    for e in doc["epochs"]:
        e.pop("time_s")
    doc["config"].pop("out_dir")
    return doc


def test_kill_and_resume_equals_uninterrupted(tmp_path):
    cfg = {**TINY, "epochs": 3}
    full = _run({**cfg, "out_dir": str(tmp_path / "full")}, wait=False)  # runs alongside
    marker = tmp_path / "marker"
    proc = _run({**cfg, "out_dir": str(tmp_path / "killed")}, {"CLML_TEST_MARKER": str(marker)},
                wait=False)
    deadline = time.time() + 150
    while not marker.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.time() < deadline, "the run never reached epoch 1"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    killed = tmp_path / "killed"
    ck = torch.load(killed / "checkpoint.pt", weights_only=True)
    assert ck["epoch"] == 0  # only epoch 0 was saved: epoch 1 was interrupted
    partial = json.loads((killed / "metrics.json").read_text())
    assert partial["summary"]["finished"] is False and partial["summary"]["epochs_run"] == 1

    resumed = _run({**cfg, "out_dir": str(killed)})
    _, full_err = full.communicate(timeout=180)
    assert full.returncode == 0, full_err[-3000:]
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resuming" in resumed.stdout
    a = _strip_times(json.loads((tmp_path / "full" / "metrics.json").read_text()))
    b = _strip_times(json.loads((killed / "metrics.json").read_text()))
    assert a == b  # exact equality: losses, mAPs, per-class AP, selection
    # the final weights are bit-identical too
    wa = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)
    wb = torch.load(killed / "checkpoint.pt", weights_only=True)
    for k, v in wa["model"].items():
        assert torch.equal(v, wb["model"][k]), k
    for k, v in wa["ema"]["module"].items():
        assert torch.equal(v, wb["ema"]["module"][k]), k


# ----------------------------------------------------------------------------- real-format datasets
def test_run_data_coco_label_list_and_voc(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from data_fixtures import make_coco_tree, make_voc_tree

    from clml_lib.data import CocoMultiLabel, write_label_list
    from clml_lib.train.datasets import build_run_data

    root = make_coco_tree(tmp_path / "coco", num_train=20, num_val=6)
    full = CocoMultiLabel(root, "train")
    # a reference-style split file keeping one positive per image (the first class index)
    single = torch.zeros_like(full.labels)
    single[torch.arange(len(full)), full.labels.argmax(1)] = 1
    lst = tmp_path / "coco_single.txt"
    write_label_list(lst, full.names, single)
    base = dict(dataset="coco", data_root=str(root), image_size=32, val_fraction=0.2,
                num_train_images=0,
                out_dir=str(tmp_path))
    data = build_run_data(TrainConfig.from_dict({**base, "label_list": str(lst)}))
    assert len(data.train) == 16 and len(data.val) == 4 and len(data.test) == 6
    assert data.info["setting"] == "label_list:coco_single.txt"
    assert torch.equal(data.observed.sum(1), torch.ones(16))  # one observed positive per image
    assert ((data.observed <= data.truth).all() and (data.truth.sum() > data.observed.sum()))
    img, obs, tru = data.train[0]
    assert img.shape == (3, 32, 32) and obs.sum() == 1 and tru.sum() >= 1
    _, val_y = data.val[0]
    assert torch.equal(val_y, data.val.labels[0]) and val_y.sum() >= 1  # clean val labels
    train_ids = {int(i) for i in data.train.base.indices}
    assert train_ids.isdisjoint(int(i) for i in data.val.indices)
    # simulated 40left on the annotation labels: deterministic in split_seed
    a = build_run_data(TrainConfig.from_dict({**base, "setting": "40left"}))
    b = build_run_data(TrainConfig.from_dict({**base, "setting": "40left"}))
    assert torch.equal(a.observed, b.observed) and (a.observed <= a.truth).all()
    with pytest.raises(FileNotFoundError, match="COCO annotation file not found"):
        build_run_data(TrainConfig.from_dict({**base, "data_root": str(tmp_path)}))
    with pytest.raises(FileNotFoundError, match="label_list not found"):
        build_run_data(TrainConfig.from_dict({**base, "label_list": str(tmp_path / "no.txt")}))

    objects = {f"{i:06d}": [("dog", 0), ("cat", i % 2)] if i % 3 else [("person", 0)]
               for i in range(12)}
    make_voc_tree(tmp_path / "voc", objects,
                  {"trainval": list(objects)[:8], "test": list(objects)[8:]})
    voc = build_run_data(TrainConfig.from_dict(
        {**base, "dataset": "voc", "data_root": str(tmp_path / "voc"), "setting": "single"}))
    assert len(data.classes) == 80 and len(voc.classes) == 20
    assert len(voc.train) + len(voc.val) == 8 and len(voc.test) == 4
    assert (voc.observed.sum(1) == 1).all()


def test_run_data_tensor_input_pipeline(tmp_path):
    """input_pipeline='tensor': photo datasets go through clml_lib.data.tensor_pipeline (same
    sizes and value range as the PIL pipeline, evaluation images within a grey level or two); the
    teaching set refuses it (it is always in-memory tensors)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from data_fixtures import make_coco_tree

    from clml_lib.train.datasets import build_run_data

    root = make_coco_tree(tmp_path / "coco", num_train=10, num_val=4)
    base = dict(dataset="coco", data_root=str(root), image_size=32, val_fraction=0.2,
                num_train_images=0,
                out_dir=str(tmp_path))
    pil = build_run_data(TrainConfig.from_dict(base))
    ten = build_run_data(TrainConfig.from_dict({**base, "input_pipeline": "tensor"}))
    img, obs, tru = ten.train[0]
    assert img.dtype == torch.float32 and img.shape == (3, 32, 32)
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0
    assert torch.equal(obs, pil.train[0][1]) and torch.equal(tru, pil.train[0][2])
    x_pil, _ = pil.test[0]
    x_ten, _ = ten.test[0]
    assert x_ten.shape == x_pil.shape
    close = ((x_ten - x_pil).abs() <= 2.5 / 255).float().mean()
    assert close > 0.95, f"only {close:.3f} of the pixels agree within 2 grey levels"
    with pytest.raises(ValueError, match="input_pipeline='tensor' is for photo datasets"):
        TrainConfig.from_dict({"dataset": "teaching", "input_pipeline": "tensor"})
