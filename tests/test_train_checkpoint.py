"""Atomic writers, weights-only checkpoints (a pickle payload never runs), RNG states as plain
values, TrainState round trip, the run lock, and in-memory batches equal to the DataLoader's."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from clml_lib.atomic import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
)
from clml_lib.seed import rng_state, seed_for, set_rng_state
from clml_lib.train.batches import TensorBatches, batch_flip
from clml_lib.train.checkpoint import (
    CHECKPOINT_FORMAT,
    REQUIRED_KEYS,
    load_checkpoint,
    save_checkpoint,
)
from clml_lib.train.distributed import EpochShuffleSampler
from clml_lib.train.runlock import LOCK_NAME, RunLock
from clml_lib.train.state import TrainState

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Payload:
    """Unpickling this object calls Path.touch(marker): proof that code from the file ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _state(**extra) -> dict:
    state = {k: {} for k in REQUIRED_KEYS}
    state.update(format=CHECKPOINT_FORMAT, epoch=0, model={"body.w": torch.ones(2)}, **extra)
    return state


# ----------------------------------------------------------------------------- atomic writers
def test_atomic_writers_replace_and_clean_up(tmp_path):
    p = tmp_path / "a" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    atomic_write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    atomic_write_json(tmp_path / "m.json", {"a": float("nan"), "b": (1, 2), "c": torch.tensor(2.5)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": None, "b": [1, 2], "c": 2.5}
    # a failure in the middle leaves the old file and no temporary file
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "m.json", {"x": object()})
    assert json.loads((tmp_path / "m.json").read_text())["c"] == 2.5
    with pytest.raises(TypeError, match="needs bytes"):
        atomic_write_bytes(tmp_path / "b.bin", "text")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        atomic_write_text(tmp_path / "a", "x")
    assert sorted(q.name for q in tmp_path.rglob("*")) == ["a", "b.bin", "f.txt", "m.json"]


def test_atomic_write_to_a_readonly_folder_leaves_target(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root ignores folder permissions")
    d = tmp_path / "ro"
    d.mkdir()
    atomic_write_text(d / "f", "old")
    d.chmod(0o500)
    try:
        with pytest.raises(PermissionError):
            atomic_write_text(d / "f", "new")
    finally:
        d.chmod(0o700)
    assert (d / "f").read_text() == "old"


# ----------------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trips_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    state = TrainState.create(model, lr=1e-2, weight_decay=1e-4, ema_decay=0.9, epochs=2,
                              steps_per_epoch=3, amp="none")
    x = torch.randn(4, 3)
    state.model(x).sum().backward()
    state.optimizer.step()
    state.scheduler.step()
    state.ema.update(model)
    state.history.append({"epoch": 0, "val": {"mAP": 1.5}, "mined": {"precision": None}})
    state.per_class.append({"test": [1.0, float("nan")], "test_ema": [0.5, 0.25]})
    state.epoch = 0
    ck = {"format": CHECKPOINT_FORMAT, "config": {"lr": 1e-2, "name": "x"}, "rng": rng_state(),
          **state.state_dict()}
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, ck)
    raw = torch.load(path, weights_only=True)  # the file itself is weights-only loadable
    assert raw["config"] == {"lr": 1e-2, "name": "x"}
    back = load_checkpoint(path)
    fresh = TrainState.create(torch.nn.Linear(3, 2), lr=1e-2, weight_decay=1e-4, ema_decay=0.9,
                              epochs=2, steps_per_epoch=3, amp="none")
    fresh.load_state_dict(back)
    for k, v in model.state_dict().items():
        assert torch.equal(v, fresh.model.state_dict()[k])
    for k, v in state.ema.module.state_dict().items():
        assert torch.equal(v, fresh.ema.module.state_dict()[k])
    assert fresh.optimizer.state_dict()["state"][0]["step"] == state.optimizer.state_dict()[
        "state"][0]["step"]
    assert fresh.scheduler.state_dict() == state.scheduler.state_dict()
    assert fresh.history == state.history and fresh.epoch == 0
    assert fresh.per_class[0]["test_ema"] == [0.5, 0.25]


def test_rng_state_restores_every_generator():
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # leaves a cached Gaussian in NumPy's state
    saved = rng_state()
    a = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    random.seed(9)
    np.random.seed(9)
    torch.manual_seed(9)
    set_rng_state(saved)
    b = (random.random(), np.random.standard_normal(3).tolist(), torch.rand(3).tolist())
    assert a == b
    with pytest.raises(ValueError, match="malformed RNG state"):
        set_rng_state({"python": saved["python"]})


def test_seed_for_is_stable_and_checked():
    assert seed_for(0, 1) == seed_for(0, 1) != seed_for(1, 0)
    assert 0 <= seed_for(5) < 2**63
    for bad in ((-1,), (True,), (1.5,)):
        with pytest.raises(ValueError, match="non-negative integers"):
            seed_for(*bad)


def test_save_refuses_values_that_need_unpickling(tmp_path):
    path = tmp_path / "checkpoint.pt"
    with pytest.raises(ValueError, match=r"state\['rng'\]\['numpy'\]\[1\].*numpy.ndarray"):
        save_checkpoint(path, _state(rng={"numpy": np.random.get_state()}))
    with pytest.raises(ValueError, match="lacks keys"):
        save_checkpoint(path, {"format": CHECKPOINT_FORMAT})
    assert not path.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["top", "nested"])
def test_pickle_payload_is_refused_and_never_runs(tmp_path, where):
    marker = tmp_path / "PAYLOAD_RAN"
    state = _state()
    if where == "top":
        state["config"] = _Payload(marker)
    else:
        state["metrics"] = {"epochs": [{"x": _Payload(marker)}]}
    path = tmp_path / "checkpoint.pt"
    torch.save(state, path)  # written by someone else's code, not by save_checkpoint
    assert not marker.exists()
    with pytest.raises(ValueError, match="as weights only.*refused"):
        load_checkpoint(path)
    assert not marker.exists()
    # the same file through a plain unpickler would run the payload (the test can fail)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_load_checkpoint_messages(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_checkpoint(tmp_path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    path = tmp_path / "ck.pt"
    torch.save({"format": "other"}, path)
    with pytest.raises(ValueError, match="not a clml training checkpoint"):
        load_checkpoint(path)
    path.write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not read checkpoint") as info:
        load_checkpoint(path)
    assert "weights_only=False" not in str(info.value)  # never advise unpickling a foreign file
    atomic_torch_save(path, {"format": CHECKPOINT_FORMAT, "epoch": 1})
    with pytest.raises(ValueError, match="lacks keys"):
        load_checkpoint(path)


# ----------------------------------------------------------------------------- run lock
def test_run_lock_excludes_a_second_run_and_clears_a_stale_one(tmp_path):
    with RunLock(tmp_path):
        info = json.loads((tmp_path / LOCK_NAME).read_text())
        assert info["pid"] == os.getpid()
        code = ("import sys; from clml_lib.train.runlock import RunLock\n"
                "try:\n    RunLock(sys.argv[1]).acquire()\nexcept RuntimeError as e:\n"
                "    print(e); sys.exit(3)\n")
        out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                             text=True, timeout=120)
        assert out.returncode == 3, out.stderr
        assert "in use by another run" in out.stdout and f"pid {os.getpid()}" in out.stdout
    assert not (tmp_path / LOCK_NAME).exists()  # removed at the end
    # a lock file left by a process that died (kill -9): detected, reported, replaced
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, timeout=60)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": int(dead.stdout), "host": "h"}))
    msgs: list[str] = []
    with RunLock(tmp_path, log=msgs.append):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert len(msgs) == 1 and f"stale lock of pid {int(dead.stdout)}" in msgs[0]


# ----------------------------------------------------------------------------- batches
def test_tensor_batches_equal_the_per_item_dataloader():
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (23, 3, 8, 8), dtype=torch.uint8, generator=g)
    labels = torch.randint(0, 2, (23, 5), generator=g).float()

    def item_flip(img):  # the per-item flip of the teaching set
        return img.flip(-1) if torch.rand(()) < 0.5 else img

    class Items(torch.utils.data.Dataset):
        def __len__(self):
            return 23

        def __getitem__(self, i):
            return item_flip(images[i].float() / 255.0), labels[i]

    sampler = EpochShuffleSampler(23, seed=4)
    sampler.set_epoch(2)
    torch.manual_seed(11)
    ref = list(DataLoader(Items(), batch_size=5, sampler=sampler,
                          generator=torch.Generator().manual_seed(1)))
    torch.manual_seed(11)
    new = list(TensorBatches(images, (labels,), sampler, 5, batch_flip))
    assert len(new) == len(ref) == 5
    for (xa, ya), (xb, yb) in zip(ref, new):
        assert torch.equal(xa, xb) and torch.equal(ya, yb)
    plain = list(TensorBatches(images, (labels,), sampler, 5))  # no flip
    assert any(not torch.equal(a[0], b[0]) for a, b in zip(new, plain))  # some images flipped
    ds = TensorDataset(images)
    assert len(TensorBatches(images, (), range(len(ds)), 10)) == 3
    with pytest.raises(ValueError, match="uint8"):
        TensorBatches(images.float(), (), range(23), 5)
    with pytest.raises(ValueError, match="length 4"):
        TensorBatches(images, (labels[:4],), range(23), 5)
