"""clml_lib.train building blocks: optimiser groups, OneCycle, EMA, atomic checkpoints, samplers,
the one training step, throughput benchmark."""

import json
import math

import pytest
import torch

from clml_lib.atomic import atomic_write_json
from clml_lib.losses import CLMLLoss
from clml_lib.models import build_model
from clml_lib.train.bench import training_throughput
from clml_lib.train.checkpoint import (
    CHECKPOINT_FORMAT,
    REQUIRED_KEYS,
    load_checkpoint,
    save_checkpoint,
)
from clml_lib.train.distributed import EpochShuffleSampler, ShardSampler
from clml_lib.train.ema import ModelEMA
from clml_lib.train.engine import summarize
from clml_lib.train.optim import build_optimizer, build_scheduler, parameter_groups
from clml_lib.train.state import TrainState
from clml_lib.train.step import train_step


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_parameter_groups_no_decay_on_1d():
    model = build_model("tiny_cnn", 5)
    no_decay, decay = parameter_groups(model, 1e-4)
    assert no_decay["weight_decay"] == 0.0 and decay["weight_decay"] == 1e-4
    assert all(p.ndim <= 1 for p in no_decay["params"]) and all(p.ndim > 1 for p in decay["params"])
    ids = {id(p) for g in (no_decay, decay) for p in g["params"]}
    assert ids == {id(p) for p in model.parameters()}
    assert any(p is model.head.bias for p in no_decay["params"])
    assert any(p is model.head.weight for p in decay["params"])


def test_adam_decay_only_touches_weights():
    # zero gradients: Adam with coupled L2 moves decayed weights only
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model, lr=0.1, weight_decay=0.5)
    w0, b0 = model.weight.detach().clone(), model.bias.detach().clone()
    for p in model.parameters():
        p.grad = torch.zeros_like(p)
    opt.step()
    assert torch.equal(model.bias, b0) and not torch.equal(model.weight, w0)


def test_onecycle_matches_reference_shape():
    model = torch.nn.Linear(2, 2)
    opt = build_optimizer(model, 1e-4, 0.0)
    sched = build_scheduler(opt, 1e-4, epochs=80, steps_per_epoch=10)
    lrs = []
    for _ in range(800):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(4e-6)  # max_lr / 25
    assert max(lrs) == pytest.approx(1e-4) and lrs.index(max(lrs)) in (159, 160)  # peak at epoch 16
    # ~94% of max when the reference stops
    assert lrs[26 * 10 - 1] == pytest.approx(9.4e-5, rel=0.01)


def test_ema_updates_params_and_buffers():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = ModelEMA(model, decay=0.9)
    e0 = {k: v.clone() for k, v in ema.module.state_dict().items()}
    model.train()
    model(torch.randn(8, 3))  # changes BN running stats and num_batches_tracked
    with torch.no_grad():
        model[0].weight.add_(1.0)
    ema.update(model)
    m = model.state_dict()
    for k, v in ema.module.state_dict().items():
        if v.dtype.is_floating_point:
            torch.testing.assert_close(v, 0.9 * e0[k] + 0.1 * m[k])
        else:
            assert torch.equal(v, m[k])
    assert not any(p.requires_grad for p in ema.module.parameters())
    with pytest.raises(ValueError, match="decay"):
        ModelEMA(model, 1.0)
    state = ema.state_dict()
    ema2 = ModelEMA(model, 0.9)
    ema2.load_state_dict(state)
    with pytest.raises(ValueError, match="EMA decay in checkpoint"):
        ModelEMA(model, 0.5).load_state_dict(state)


def test_atomic_checkpoint_and_json(tmp_path):
    state = {k: None for k in REQUIRED_KEYS}
    state.update(format=CHECKPOINT_FORMAT, epoch=3, model={"w": torch.ones(2)})
    path = tmp_path / "sub" / "ck.pt"
    save_checkpoint(path, state)
    assert load_checkpoint(path)["epoch"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["ck.pt"]  # no temp file left behind
    with pytest.raises(ValueError, match="lacks keys"):
        save_checkpoint(path, {"format": CHECKPOINT_FORMAT})
    torch.save({"format": "other"}, path)
    with pytest.raises(ValueError, match="not a clml training checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not read checkpoint"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "none.pt")
    atomic_write_json(tmp_path / "m.json", {"a": float("nan"), "b": (1, 2), "c": torch.tensor(2.5)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None, "b": [1, 2], "c": 2.5}


def test_samplers_cover_and_replay():
    s0 = EpochShuffleSampler(10, seed=1, rank=0, world_size=3)
    s1 = EpochShuffleSampler(10, seed=1, rank=1, world_size=3)
    s2 = EpochShuffleSampler(10, seed=1, rank=2, world_size=3)
    for s in (s0, s1, s2):
        s.set_epoch(4)
    parts = [list(s) for s in (s0, s1, s2)]
    assert all(len(p) == 4 for p in parts)
    assert set(sum(parts, [])) == set(range(10))  # all covered (2 padded repeats)
    assert parts == [list(s) for s in (s0, s1, s2)]  # replay
    s0.set_epoch(5)
    assert list(s0) != parts[0]
    single = EpochShuffleSampler(10, seed=1)
    single.set_epoch(0)
    assert sorted(single) == list(range(10))
    assert list(ShardSampler(7, 1, 3)) == [1, 4]


def test_summarize_selection_and_gap():
    hist = [
        {"epoch": 0, "val": {"mAP": 50.0, "mAP_ema": 40.0}, "test": {"mAP": 45.0, "mAP_ema": 41.0}},
        {"epoch": 1, "val": {"mAP": 55.0, "mAP_ema": 57.0}, "test": {"mAP": 52.0, "mAP_ema": 50.0}},
        {"epoch": 2, "val": {"mAP": 56.0, "mAP_ema": 54.0}, "test": {"mAP": 53.0, "mAP_ema": 55.0}},
    ]
    s = summarize(hist, last_epoch=2)
    got = (s["selected_epoch"], s["selected_model"], s["val_mAP"], s["test_mAP"])
    assert got == (1, "ema", 57.0, 50.0)
    assert (s["best_test_epoch"], s["best_test_model"], s["best_test_mAP"]) == (2, "ema", 55.0)
    assert s["optimism_gap"] == pytest.approx(5.0) and s["finished"] and s["epochs_run"] == 3
    assert not summarize(hist[:2], last_epoch=2)["finished"]


def test_training_throughput_cpu():
    ips = training_throughput("resnet18", image_size=64, batch_size=4, amp="none", use_clml=True,
                              steps=2, warmup=1, device="cpu", num_classes=10)
    assert math.isfinite(ips) and ips > 0
    with pytest.raises(ValueError, match="amp must be"):
        training_throughput(amp="fp8", device="cpu")


def test_train_step_equals_the_step_written_out():
    """train_step = forward, CLMLLoss, backward, Adam step, OneCycle step, EMA update."""
    torch.manual_seed(0)
    x = torch.rand(8, 3, 32, 32)
    y = (torch.rand(8, 5) < 0.4).float()
    crit = CLMLLoss("BCE", use_clml=True, use_correction=True, start_epoch=0, tau=0.3)

    def fresh() -> TrainState:
        torch.manual_seed(1)
        return TrainState.create(build_model("tiny_cnn", 5), lr=1e-3, weight_decay=1e-4,
                                 ema_decay=0.5, epochs=1, steps_per_epoch=4, amp="none")

    a, b = fresh(), fresh()
    parts = train_step(a, crit, x, y, epoch=1)
    logits, feats = b.model(x)  # by hand
    total = crit(logits.float(), feats, y, epoch=1)
    b.optimizer.zero_grad()
    total.backward()
    b.optimizer.step()
    b.scheduler.step()
    b.ema.update(b.model)
    assert torch.equal(parts.total.detach(), total.detach())
    for (k, va), vb in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(va, vb), k
    for (k, va), vb in zip(a.ema.module.state_dict().items(), b.ema.module.state_dict().values()):
        assert torch.equal(va, vb), k
    assert a.lr == b.lr != 0
