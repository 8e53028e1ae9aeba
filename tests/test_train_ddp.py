"""Multi-process training on CPU with gloo: the differentiable gather gives the exact global-batch
gradient, and a ``torchrun --nproc_per_node 2`` run of a tiny teaching config completes."""

from __future__ import annotations

import json
import math
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from clml_lib.losses import CLMLLoss
from clml_lib.paths import PROJECT_ROOT
from clml_lib.train.distributed import (
    DistInfo,
    all_gather_nograd,
    all_gather_with_grad,
    gather_eval,
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class _Net(torch.nn.Module):
    """features = linear(x) (no BatchNorm: per-rank and global batches give the same features)."""

    def __init__(self):
        super().__init__()
        self.body = torch.nn.Linear(6, 4, dtype=torch.float64)
        self.head = torch.nn.Linear(4, 3, dtype=torch.float64)

    def forward(self, x):
        z = self.body(x)
        return self.head(z), z


def _batch():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(8, 6, dtype=torch.float64, generator=g)  # the global batch of 8
    y = (torch.rand(8, 3, generator=g) < 0.5).double()
    y[:, 0] = 1
    return x, y


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    info = DistInfo(rank=rank, world_size=world, owns_group=True)
    torch.manual_seed(0)
    ddp = torch.nn.parallel.DistributedDataParallel(_Net())
    x, y = _batch()
    local = slice(rank * 4, rank * 4 + 4)
    logits, feats = ddp(x[local])  # (4, 3), (4, 4) on each rank
    logits_g = all_gather_with_grad(logits, info)  # (8, 3)
    feats_g = all_gather_with_grad(feats, info)  # (8, 4)
    y_g = all_gather_nograd(y[local], info)
    loss = CLMLLoss("BCE", tau=0.6, start_epoch=0)(logits_g, feats_g, y_g, epoch=1)
    loss.backward()  # DDP averages the parameter gradients over ranks
    grads = [p.grad.clone() for p in ddp.module.parameters()]
    ev = gather_eval(torch.arange(rank, 7, world, dtype=torch.float64).unsqueeze(1), info)
    if rank == 0:
        torch.save({"loss": loss.detach(), "grads": grads, "eval": ev}, out)
    dist.destroy_process_group()


def test_gather_gives_global_batch_gradient(tmp_path):
    out = str(tmp_path / "ddp.pt")
    mp.start_processes(_worker, args=(2, _free_port(), out), nprocs=2, join=True,
                       start_method="fork")
    res = torch.load(out)
    torch.manual_seed(0)
    net = _Net()  # the single-process reference on the whole batch
    x, y = _batch()
    logits, feats = net(x)
    loss = CLMLLoss("BCE", tau=0.6, start_epoch=0)(logits, feats, y, epoch=1)
    loss.backward()
    torch.testing.assert_close(res["loss"], loss.detach())
    for a, p in zip(res["grads"], net.parameters()):
        torch.testing.assert_close(a, p.grad, rtol=1e-10, atol=1e-12)
    assert res["eval"].squeeze(1).tolist() == list(range(7))  # shards put back in order


def _torchrun() -> str:
    found = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    torchrun = found or shutil.which("torchrun")
    assert torchrun, "torchrun not found next to the interpreter"
    return torchrun


@pytest.mark.slow
@pytest.mark.parametrize("gather", ["true", "false"])
def test_torchrun_two_processes(tmp_path, gather):
    out = tmp_path / "ddp_run"
    cmd = [_torchrun(), "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "clml_lib.train",
           "--set", "dataset=teaching", "backbone=tiny_cnn", "weights_path=", "image_size=32",
           "num_train_images=128",
           "batch_size=32", "epochs=2", "stop_epoch=-1", "lr=2e-3", "ema_decay=0.9",
           "max_eval_batches=2", "progress=false", f"ddp_gather={gather}", "start_epoch=0",
           "tau=0.3", f"out_dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=240)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["summary"]["finished"] and doc["summary"]["epochs_run"] == 2
    assert "x 2 ranks" in res.stdout
    # each rank takes ceil(n_train / 2) images in batches of 32 / 2 = 16
    n_train = doc["data"]["num_train"]
    assert doc["epochs"][0]["steps"] == math.ceil(math.ceil(n_train / 2) / 16)
    # mined-label statistics pooled over both ranks' batches (ceil(n/2) images each)
    m = doc["epochs"][0]["mined"]
    assert isinstance(m["count"], int) and m["missing"] > 0
    assert m["recall"] == pytest.approx(m["true"] / m["missing"])


@pytest.mark.slow
def test_torchrun_two_processes_smoke_preset(tmp_path):
    """The documented multi-process command on the `smoke` preset: COCO-format fixture, gloo,
    CPU."""
    from data_fixtures import make_coco_tree

    root = make_coco_tree(tmp_path / "coco")
    out = tmp_path / "smoke_ddp"
    cmd = [_torchrun(), "--nproc_per_node", "2", "--master_port", str(_free_port()),
           "-m", "clml_lib.train",
           "--config", "params/smoke.yaml", "--set", f"data_root={root}", f"out_dir={out}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-4000:]
    doc = json.loads((out / "metrics.json").read_text())
    assert "x 2 ranks" in res.stdout
    assert doc["summary"]["finished"] and doc["config"]["dataset"] == "coco"
    assert all(math.isfinite(doc["epochs"][0]["train"][k]) for k in ("loss", "base", "low_rank"))
    assert 0.0 <= doc["summary"]["test_mAP"] <= 100.0
