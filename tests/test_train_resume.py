"""Honest resume and clear failures of ``fit``: a run folder always describes its own results.

Each test tries one case of the class "resume that lies" or one weak message: a deleted
checkpoint, a lowered stop_epoch, two runs on one folder, a failed restart with resume=False,
a divergence, a checkpoint path that is a directory, a checkpoint whose config this version cannot
read; plus quiet mode and the per-image test scores of the selected model.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from clml_lib.metrics import mean_average_precision
from clml_lib.train import TrainConfig, fit
from clml_lib.train.checkpoint import load_checkpoint, save_checkpoint
from clml_lib.train.runlock import RunLock

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: a teaching run of a few seconds (3 epochs: 0, 1, 2)
TINY = dict(dataset="teaching", backbone="tiny_cnn", weights_path="",  # random init
            image_size=32, num_train_images=96,
            batch_size=32, epochs=3, stop_epoch=-1, lr=2e-3, ema_decay=0.9, setting="40left",
            max_eval_batches=2, progress=False, augment=True, seed=0, verbose=False,
            resume=True)
FILES = ("checkpoint.pt", "metrics.json", "config.json", "test_scores.pt")


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished TINY run (read-only: tests copy it)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    torch.set_num_threads(1)
    fit(TrainConfig.from_dict({**TINY, "out_dir": str(out)}))
    return out


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def test_resume_without_checkpoint_refuses_instead_of_retraining(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    (run / "checkpoint.pt").unlink()  # people delete large checkpoints
    before = _snapshot(run)
    with pytest.raises(FileNotFoundError, match="no checkpoint.pt.*overwrite those results"):
        fit(TrainConfig.from_dict({**TINY, "out_dir": str(run)}))
    assert _snapshot(run) == before
    # the same with only config.json left (a run killed before it wrote metrics.json)
    for name in ("metrics.json", "test_scores.pt"):
        (run / name).unlink()
    with pytest.raises(FileNotFoundError, match="holds config.json but no checkpoint.pt"):
        fit(TrainConfig.from_dict({**TINY, "out_dir": str(run)}))


def test_lower_stop_epoch_on_a_finished_run_is_refused(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    before = _snapshot(run)
    with pytest.raises(ValueError, match="already trained through epoch 2.*left unchanged"):
        fit(TrainConfig.from_dict({**TINY, "stop_epoch": 0, "out_dir": str(run)}))
    assert _snapshot(run) == before
    # the same stop_epoch resumes with nothing left to train and returns the same summary
    again = fit(TrainConfig.from_dict({**TINY, "out_dir": str(run)}))
    assert again["finished"] and again["epochs_run"] == 3


def test_second_run_on_a_locked_folder_fails(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    before = _snapshot(run)
    with RunLock(run):  # another run holds the folder
        with pytest.raises(RuntimeError, match="in use by another run"):
            fit(TrainConfig.from_dict({**TINY, "resume": False, "out_dir": str(run)}))
    assert _snapshot(run) == before


def _nan_weights(folder: Path) -> Path:
    """A tiny_cnn weights file whose head is NaN: the first forward gives NaN logits."""
    from clml_lib.models import build_model

    sd = build_model("tiny_cnn", 12).state_dict()
    sd["head.weight"] = torch.full_like(sd["head.weight"], float("nan"))
    torch.save(sd, folder / "nan.pt")
    return folder / "nan.pt"


def test_failed_restart_keeps_the_folder_consistent(finished, tmp_path):
    """resume=False with a run that fails in its first epoch: config.json and the results stay
    the old run's. The divergence (non-finite logits reach the loss's input check first) names
    its epoch, step and learning rate."""
    run = _copy(finished, tmp_path / "run")
    before = _snapshot(run)
    with pytest.raises(RuntimeError, match=r"diverged at epoch 0 step 0 \(lr [0-9.e+-]+\): "
                                           r".*non-finite.*lower lr"):
        fit(TrainConfig.from_dict({**TINY, "weights_path": str(_nan_weights(tmp_path)),
                                   "resume": False, "out_dir": str(run)}))
    assert _snapshot(run) == before
    with pytest.raises(RuntimeError, match="diverged at epoch 0 step 0"):
        fit(TrainConfig.from_dict({**TINY, "weights_path": str(_nan_weights(tmp_path)),
                                   "out_dir": str(tmp_path / "new")}))
    assert not (tmp_path / "new" / "config.json").exists()  # nothing written before results


def test_large_lr_divergence_names_epoch_and_lr(tmp_path):
    with pytest.raises(RuntimeError, match=r"diverged.*epoch \d+.*\(lr [0-9.e+-]+\).*lower lr"):
        fit(TrainConfig.from_dict({**TINY, "lr": 1e9, "out_dir": str(tmp_path / "run")}))


def test_checkpoint_path_that_is_a_directory(tmp_path):
    (tmp_path / "run" / "checkpoint.pt").mkdir(parents=True)
    with pytest.raises(IsADirectoryError, match="checkpoint.pt is a directory"):
        fit(TrainConfig.from_dict({**TINY, "out_dir": str(tmp_path / "run")}))


def test_unreadable_config_in_checkpoint_names_the_file(finished, tmp_path):
    run = _copy(finished, tmp_path / "run")
    ck = load_checkpoint(run / "checkpoint.pt")
    ck["config"]["old_knob"] = 1  # a key an older/newer version wrote
    save_checkpoint(run / "checkpoint.pt", ck)
    with pytest.raises(ValueError, match=r"config stored in the checkpoint .*checkpoint.pt.*"
                                         r"old_knob"):
        fit(TrainConfig.from_dict({**TINY, "out_dir": str(run)}))


def test_quiet_mode_prints_one_line_and_verbose_one_per_epoch(tmp_path, capsys):
    cfg = {**TINY, "epochs": 2, "max_eval_batches": 1}
    fit(TrainConfig.from_dict({**cfg, "out_dir": str(tmp_path / "q")}))
    quiet = capsys.readouterr().out.strip().splitlines()
    assert len(quiet) == 1
    assert quiet[0].startswith("[clml] teaching 40left | BCE +CLML (lambda 1, correction tau "
                               "0.75 from epoch 1) | seed 0: 2 epochs trained in ")
    fit(TrainConfig.from_dict({**cfg, "verbose": True, "out_dir": str(tmp_path / "v")}))
    loud = capsys.readouterr().out.strip().splitlines()
    assert sum(line.startswith("[clml] epoch") for line in loud) == 2
    assert loud[-1].split(" in ")[0] == quiet[0].split(" in ")[0]  # same summary line


def test_test_scores_are_the_selected_model(finished):
    import json

    doc = json.loads((finished / "metrics.json").read_text())
    sc = torch.load(finished / "test_scores.pt", weights_only=True)
    assert set(sc) == {"scores", "labels", "selected", "epoch"}
    s = doc["summary"]
    assert (sc["epoch"], sc["selected"]) == (s["selected_epoch"], s["selected_model"])
    n = 2 * 2 * TINY["batch_size"]  # max_eval_batches=2 batches of 2 x batch_size
    assert sc["scores"].shape == sc["labels"].shape == (n, 12)
    assert sc["scores"].dtype == sc["labels"].dtype == torch.float32
    m, _ = mean_average_precision(sc["scores"], sc["labels"], empty="skip")
    assert m == pytest.approx(s["test_mAP"], abs=1e-9)
