"""The public run object of the engine: ``build_run(cfg, criterion=None)`` and its ``fit``,
``step`` and ``evaluate``; the summary line that names the arm and what was read from disk."""

from __future__ import annotations

import json

import pytest
import torch

from clml_lib.losses import CLMLLoss
from clml_lib.seed import reseed, seed_for
from clml_lib.train import TrainConfig
from clml_lib.train.engine import arm_label, build_run, fit

pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: a teaching run of a few seconds (2 epochs: 0, 1)
TINY = dict(dataset="teaching", backbone="tiny_cnn", weights_path="",  # random init
            image_size=32, num_train_images=96,
            batch_size=32, epochs=2, stop_epoch=-1, lr=2e-3, ema_decay=0.9, setting="40left",
            max_eval_batches=2, progress=False, augment=True, seed=0, verbose=False,
            resume=True, start_epoch=0)


def _cfg(tmp_path, name: str, **kw) -> TrainConfig:
    return TrainConfig.from_dict({**TINY, **kw, "out_dir": str(tmp_path / name)})


def test_step_is_the_step_of_fit(tmp_path):
    """Epoch 0 of fit equals the same batches fed to .step by hand: bit-identical weights."""
    cfg = _cfg(tmp_path, "fit", stop_epoch=0)
    with build_run(cfg) as run:
        run.fit()
        fitted = {k: v.clone() for k, v in run.model.state_dict().items()}
        ema = {k: v.clone() for k, v in run.state.ema.module.state_dict().items()}
    with build_run(_cfg(tmp_path, "by_hand", stop_epoch=0)) as run:
        reseed(seed_for(cfg.seed, 0, 0))  # as fit does before each epoch
        before = [g["params"][0].detach().clone() for g in run.state.optimizer.param_groups]
        steps = 0
        for batch in run.train_batches(0):
            parts = run.step(batch, epoch=0)
            assert torch.isfinite(parts.total) and parts.mined.shape == batch[1].shape
            steps += 1
        assert steps == run.n_steps == 3
        assert run.state.epoch == -1 and run.state.history == []  # .step records nothing
        for k, v in run.model.state_dict().items():
            assert torch.equal(v, fitted[k]), k
        for k, v in run.state.ema.module.state_dict().items():
            assert torch.equal(v, ema[k]), k
        after = [g["params"][0].detach() for g in run.state.optimizer.param_groups]
        assert all(not torch.equal(a, b) for a, b in zip(before, after))
    assert not (tmp_path / "by_hand" / "metrics.json").exists()  # nothing written


def test_passed_in_loss_trains_and_names_the_run(tmp_path, capsys):
    calls = []

    class Counting(CLMLLoss):
        def forward_parts(self, logits, features, labels, epoch=0):
            calls.append(epoch)
            return super().forward_parts(logits, features, labels, epoch)

    cfg = _cfg(tmp_path, "passed")
    loss = Counting("BCE", lambda_=2.0)
    with build_run(cfg, criterion=loss, arm="BCE +CLML (lambda 2, mine)") as run:
        assert run.arm == "BCE +CLML (lambda 2, mine)" and isinstance(run.criterion, Counting)
        summary = run.fit()
    assert calls == [0] * 3 + [1] * 3
    assert summary["finished"] and summary["epochs_run"] == 2
    out = capsys.readouterr().out
    assert "| BCE +CLML (lambda 2, mine) | seed 0: 2 epochs trained in" in out
    with build_run(_cfg(tmp_path, "default_name"), criterion=Counting("BCE")) as run:
        assert run.arm == "Counting (loss passed in)"
    with pytest.raises(TypeError, match="forward_parts"):
        build_run(_cfg(tmp_path, "bad"), criterion=torch.nn.BCEWithLogitsLoss())
    assert not (tmp_path / "bad" / ".run.lock").exists()


def test_evaluate_is_the_evaluation_of_fit(tmp_path):
    with build_run(_cfg(tmp_path, "ev")) as run:
        run.fit()
        doc = json.loads((tmp_path / "ev" / "metrics.json").read_text())
        last = doc["epochs"][-1]
        got = run.evaluate("test", "ema", features=True)
        assert got["mAP"] == last["test"]["mAP_ema"]
        assert got["thr"] == last["test_ema_threshold"]
        z = got["features"]
        assert z.shape == (got["n"], run.model.head.in_features) and z.dtype == torch.float32
        assert run.evaluate("val")["mAP"] == last["val"]["mAP"]
        assert "thr" not in run.evaluate("val")
        with pytest.raises(ValueError, match="split must be one of"):
            run.evaluate("train")
        with pytest.raises(ValueError, match="model must be one of"):
            run.evaluate("test", "best")
        with pytest.raises(ValueError, match="batch must be a tuple"):
            run.step(torch.zeros(2, 3, 32, 32))


def test_lock_is_held_until_close(tmp_path):
    cfg = _cfg(tmp_path, "locked")
    run = build_run(cfg)
    with pytest.raises(RuntimeError, match="in use by another run"):
        build_run(cfg)
    run.close()
    run.close()  # idempotent
    assert run.evaluate("val")["n"] > 0  # still usable in memory
    with pytest.raises(RuntimeError, match="is closed"):
        run.fit()
    fit(cfg)  # the folder is free again
    run2 = build_run(cfg)
    del run2  # garbage-collected: the lock goes with it
    import gc

    gc.collect()
    build_run(cfg).close()


def test_summary_line_says_what_was_read_from_disk(tmp_path, capsys):
    cfg = _cfg(tmp_path, "disk", stop_epoch=0)
    fit(cfg)
    assert "| seed 0: 1 epoch trained in " in capsys.readouterr().out
    fit(cfg.replace(stop_epoch=1))
    assert "| seed 0: epoch 0 read from disk, epoch 1 trained in " in capsys.readouterr().out
    fit(cfg.replace(stop_epoch=1))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "| seed 0: epochs 0-1 read from disk, nothing trained; selected epoch" in line
    with build_run(cfg.replace(stop_epoch=1)) as run:
        run.fit()
        capsys.readouterr()
        run.fit()  # a second call trains nothing
    assert "epochs 0-1 read from disk, nothing trained" in capsys.readouterr().out


@pytest.mark.parametrize("fields, label", [
    ({}, "BCE +CLML (lambda 1, correction tau 0.75 from epoch 1)"),
    ({"use_clml": False}, "BCE (no CLML; mining at tau 0.75 counted, not used)"),
    ({"use_clml": False, "use_correction": False}, "BCE (no CLML, no mining)"),
    ({"base_loss": "SPLC", "lambda_": 10.0, "tau": 0.4, "use_correction": False},
     "SPLC +CLML (lambda 10, no correction)"),
    ({"use_clml": False, "correct_base_targets": True},
     "BCE +corrected base targets (correction tau 0.75 from epoch 1)"),
    ({"delta": 2.0, "pairwise_weight": 0.5, "reduction": "mean", "start_epoch": 3},
     "BCE +CLML (lambda 1, correction tau 0.75 from epoch 3, Delta 2) +pairwise 0.5 "
     "(temperature 0.1), reduction mean"),
])
def test_arm_label_names_every_switch(fields, label):
    assert arm_label(TrainConfig.from_dict(fields)) == label
