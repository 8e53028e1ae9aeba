"""The training loop: ``fit(cfg) -> summary``.

One epoch = train over the (shuffled) training split, then evaluate the raw and the EMA model on
the held-out validation split and on the test split, write ``checkpoint.pt`` and ``metrics.json``
(both atomically). Per step::

    logits, features = model(x)                      # under autocast (bf16 / fp16) if amp != 'none'
    parts = criterion.forward_parts(logits.float(), features, observed, epoch)  # CLML in float32
    scaler.scale(parts.total).backward(); scaler.step(optimizer); scaler.update()
    scheduler.step(); ema.update(model)

Decisions (documented here and in the report):

* **Determinism / exact resume.** At the start of every epoch the Python, NumPy and torch global
  RNGs are re-seeded from ``(seed, epoch, rank)`` and the training order is a permutation drawn from
  ``(seed, epoch)`` (:class:`~clml_lib.train.distributed.EpochShuffleSampler`); the DataLoader's
  worker seeds come from a generator seeded the same way. An epoch therefore replays identically
  whether the run started at epoch 0 or resumed from the checkpoint of the epoch before (the
  checkpoint also stores every RNG state, for completeness).
* **Scores for mAP** are the logits (float32): the same ranking as the sigmoid probabilities but
  without the float32 saturation of sigmoid to exactly 1.0 (which would create ties). Threshold
  metrics use ``sigmoid(logits) >= 0.5``. Evaluation runs under the same autocast as training
  (the reference validates under autocast).
* **Validation labels** are the full ground truth of the held-out images (a *clean* validation
  split, Protocol B of field.md); classes without a positive in a split are left out of its mAP
  (``empty='skip'``, count reported as ``skipped_classes``).
* **Model selection**: the (epoch, raw|EMA) pair with the highest val mAP (first one on ties, raw
  before EMA); ``test_mAP`` is that model's test mAP. ``best_test_*`` is the reference protocol
  (max over epochs and raw/EMA *on the test set*); ``optimism_gap = best_test_mAP - test_mAP >= 0``.
* **Threshold metrics** (CP ... OF1, ``macro_F1``) in ``epochs[i].test`` are the raw model's; the
  EMA model's are under ``epochs[i].test_ema_threshold``.
* **Non-finite loss** stops training with a RuntimeError naming epoch, step and loss parts
  (checked every 25 steps and on the epoch's sums, to avoid a host sync per step).
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..losses import CLMLLoss
from ..metrics import mean_average_precision, threshold_metrics
from ..models import build_model
from ..paths import resolve
from ..seed import seed_everything
from .checkpoint import CHECKPOINT_FORMAT, atomic_write_json, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .datasets import RunData, build_run_data
from .distributed import (
    DistInfo,
    EpochShuffleSampler,
    ShardSampler,
    all_gather_nograd,
    all_gather_with_grad,
    all_reduce_sum,
    barrier,
    cleanup,
    gather_eval,
    init_distributed,
    seed_for,
)
from .ema import ModelEMA, unwrap
from .optim import build_optimizer, build_scheduler

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
CONFIG_NAME = "config.json"


# ----------------------------------------------------------------------------- small helpers
def _in_notebook() -> bool:
    try:
        from IPython import get_ipython

        ip = get_ipython()
        return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"
    except ImportError:  # pragma: no cover
        return False


def _progress_enabled(cfg: TrainConfig, info: DistInfo) -> bool:
    return bool(cfg.progress and info.is_main and (sys.stderr.isatty() or _in_notebook()))


def _autocast(cfg: TrainConfig, device: torch.device):
    if cfg.amp == "none":
        return nullcontext()
    dtype = torch.bfloat16 if cfg.amp == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def check_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and prove it is writable (write and delete a probe file).

    Raises:
        PermissionError / OSError: with the path in the message.
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write_probe_{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise type(err)(f"out_dir {out_dir} is not writable: {err}") from err


def _rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _seed_epoch(cfg: TrainConfig, epoch: int, rank: int) -> None:
    s = seed_for(cfg.seed, epoch, rank)
    random.seed(s)
    np.random.seed(s % 2**32)
    torch.manual_seed(s)


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: torch.nn.Module, loader: DataLoader, cfg: TrainConfig, info: DistInfo,
            max_batches: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) float32 and targets (N, C) of every item of ``loader`` (all ranks, in order)."""
    model.eval()
    outs, ys = [], []
    for b, (x, y) in enumerate(loader):
        if max_batches and b >= max_batches:
            break
        x = x.to(info.device, non_blocking=True)
        with _autocast(cfg, info.device):
            logits, _ = model(x)
        outs.append(logits.float())  # (B, C)
        ys.append(y.to(info.device))
    logits = gather_eval(torch.cat(outs), info).cpu()  # (N, C)
    targets = gather_eval(torch.cat(ys), info).cpu()  # (N, C)
    return logits, targets


def evaluate(model: torch.nn.Module, loader: DataLoader, cfg: TrainConfig, info: DistInfo,
             thresholds: bool) -> dict[str, Any]:
    """mAP (and threshold metrics when asked) of ``model`` on ``loader`` (see module doc)."""
    logits, targets = predict(model, loader, cfg, info, cfg.max_eval_batches)
    if not torch.isfinite(logits).all():
        raise RuntimeError("the model produced NaN/inf logits during evaluation")
    m, ap = mean_average_precision(logits, targets, empty="skip")
    out: dict[str, Any] = {"mAP": m, "ap": ap.tolist(), "skipped": int(np.isnan(ap).sum()),
                           "n": int(targets.shape[0])}
    if thresholds:
        out["thr"] = threshold_metrics(torch.sigmoid(logits.double()), targets, 0.5, empty="skip")
    return out


# ----------------------------------------------------------------------------- selection
def summarize(history: list[dict[str, Any]], last_epoch: int) -> dict[str, Any]:
    """The ``summary`` block of metrics.json from the per-epoch records (see module doc)."""
    cands = [(e["val"][k], e["test"][k], e["epoch"], "raw" if k == "mAP" else "ema")
             for e in history for k in ("mAP", "mAP_ema")]
    sel = max(cands, key=lambda c: c[0])  # first maximum: earliest epoch, raw before EMA
    best = max(cands, key=lambda c: c[1])
    return {
        "selected_epoch": sel[2], "selected_model": sel[3], "val_mAP": sel[0], "test_mAP": sel[1],
        "best_test_mAP": best[1], "best_test_epoch": best[2], "best_test_model": best[3],
        "optimism_gap": best[1] - sel[1],
        "finished": bool(history) and history[-1]["epoch"] >= last_epoch,
        "epochs_run": len(history),
    }


def _metrics_doc(cfg: TrainConfig, classes: list[str], history: list[dict], per_class: list[dict],
                 data_info: dict) -> dict[str, Any]:
    summary = summarize(history, cfg.last_epoch)
    sel = next(i for i, e in enumerate(history) if e["epoch"] == summary["selected_epoch"])
    return {
        "config": cfg.to_dict(),
        "classes": classes,
        "data": data_info,
        "epochs": history,
        "per_class_ap": {"test": per_class[sel]["test"], "test_ema": per_class[sel]["test_ema"]},
        "summary": summary,
    }


# ----------------------------------------------------------------------------- the loop
def build_criterion(cfg: TrainConfig) -> CLMLLoss:
    """CLMLLoss from the config fields (use_low_rank = use_clml, use_correction = correction)."""
    return CLMLLoss(
        base_loss=cfg.base_loss, lambda_=cfg.lambda_, tau=cfg.tau, start_epoch=cfg.start_epoch,
        delta=cfg.delta, use_low_rank=cfg.use_clml, use_correction=cfg.correction,
        correct_base_targets=cfg.correct_base_targets, pairwise_weight=cfg.pairwise_weight,
        temperature=cfg.temperature, reduction=cfg.reduction,
    )


def _loader(ds, batch_size: int, sampler, cfg: TrainConfig, info: DistInfo, seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=cfg.num_workers,
                      pin_memory=info.device.type == "cuda", drop_last=False, generator=g,
                      persistent_workers=False)


def _train_epoch(model, ema, criterion, optimizer, scheduler, scaler, loader, cfg, info, epoch,
                 n_steps, progress) -> dict[str, Any]:
    model.train()
    dev = info.device
    sums = torch.zeros(4, dtype=torch.float64, device=dev)  # total, base, low_rank, pairwise
    mined = torch.zeros(3, dtype=torch.float64, device=dev)  # count, true, missing
    steps, lr = 0, optimizer.param_groups[0]["lr"]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n_steps, desc=f"epoch {epoch}", leave=False, dynamic_ncols=True)
    for step, (x, observed, truth) in enumerate(loader):
        if step >= n_steps:
            break
        x = x.to(dev, non_blocking=True)
        observed = observed.to(dev, non_blocking=True)
        truth = truth.to(dev, non_blocking=True)
        with _autocast(cfg, dev):
            logits, feats = model(x)  # (n, C), (n, D)
        logits = logits.float()
        if info.distributed and cfg.ddp_gather:
            logits = all_gather_with_grad(logits, info)  # (N, C) global batch
            feats = all_gather_with_grad(feats, info)  # (N, D)
            observed = all_gather_nograd(observed, info)
            truth = all_gather_nograd(truth, info)
        parts = criterion.forward_parts(logits, feats, observed, epoch)
        if (step % 25 == 0 or step == n_steps - 1) and not torch.isfinite(parts.total):
            # checked every 25 steps (a host sync each time); the running sums catch the rest
            raise RuntimeError(
                f"non-finite loss at epoch {epoch} step {step}: total={parts.total.item()} "
                f"base={parts.base.item()} low_rank={parts.low_rank.item()} pairwise={parts.pairwise.item()}"
            )
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(parts.total).backward()
        scaler.step(optimizer)
        scaler.update()
        lr = optimizer.param_groups[0]["lr"]
        if scaler.is_enabled():  # fp16: GradScaler skips overflowing steps (the first few); the
            with warnings.catch_warnings():  # schedule still advances, as in the reference
                warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step")
                scheduler.step()
        else:
            scheduler.step()
        ema.update(model)
        with torch.no_grad():
            sums += torch.stack([parts.total, parts.base, parts.low_rank, parts.pairwise]).detach().double()
            m = parts.mined
            mined += torch.stack([m.sum(), (m & (truth == 1)).sum(),
                                  ((observed != 1) & (truth == 1)).sum()]).double()
        steps += 1
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{parts.total.item():.3f}")
    if bar is not None:
        bar.close()
    if steps == 0:
        raise RuntimeError(f"epoch {epoch} ran no training step (empty training loader?)")
    if not torch.isfinite(sums).all():
        raise RuntimeError(f"non-finite loss during epoch {epoch}: mean parts {(sums / steps).tolist()} "
                           "(total, base, low_rank, pairwise)")
    if info.distributed and not cfg.ddp_gather:
        # local losses and counts: average the losses over ranks, sum the counts (with ddp_gather
        # every rank computed the same global-batch values, nothing to reduce)
        sums = all_reduce_sum(sums, info) / info.world_size
        mined = all_reduce_sum(mined, info)
    s = (sums / steps).tolist()
    count, true, missing = (int(v) for v in mined.tolist())
    return {
        "lr": lr, "steps": steps,
        "train": {"loss": s[0], "base": s[1], "low_rank": s[2], "pairwise": s[3]},
        "mined": {"count": count, "true": true, "missing": missing,
                  "precision": true / count if count else None,
                  "recall": true / missing if missing else None},
    }


def fit(cfg: TrainConfig | dict) -> dict[str, Any]:
    """Train (or resume) one run and return the ``summary`` block of ``metrics.json``.

    Args:
        cfg: a :class:`TrainConfig` or a dict of its fields.

    Everything is validated before the first step: the config values, the out_dir (created,
    writable), the data root layout (the dataset classes raise), the weights file (architecture
    checked key by key), the device, a checkpoint to resume from (format and config).

    Returns:
        dict with ``selected_epoch, selected_model, val_mAP, test_mAP, best_test_mAP,
        best_test_epoch, best_test_model, optimism_gap, finished, epochs_run``.

    Raises:
        ValueError: bad config / data / weights / resume mismatch. FileNotFoundError: missing files.
        OSError: out_dir not writable. RuntimeError: non-finite loss or logits.
    """
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(cfg)
    cfg.validate()
    info = init_distributed(cfg.device)
    try:
        return _fit(cfg, info)
    finally:
        cleanup(info)


def _fit(cfg: TrainConfig, info: DistInfo) -> dict[str, Any]:
    t_start = time.time()
    out_dir = resolve(cfg.out_dir)
    log = print if info.is_main else (lambda *a, **k: None)
    if info.is_main:
        check_out_dir(out_dir)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} (global) is not divisible by the world size "
                         f"{info.world_size}")
    seed_everything(cfg.seed, cfg.deterministic)
    data: RunData = build_run_data(cfg)
    # a relative weights file is taken from the project root, like out_dir (nbval runs in notebooks/)
    weights = cfg.weights_path
    if weights and weights.lower() != "imagenet":
        weights = str(resolve(weights))
    model = build_model(cfg.backbone, len(data.classes), weights).to(info.device)
    ckpt_path = out_dir / CHECKPOINT_NAME
    ckpt = None
    if cfg.resume and ckpt_path.exists():
        ckpt = load_checkpoint(ckpt_path, map_location="cpu")  # states move to their device on load
        old = TrainConfig.from_dict(ckpt["config"])
        diff = old.trajectory_diff(cfg)
        if diff:
            raise ValueError(
                f"cannot resume {ckpt_path}: the config differs from the checkpoint's in "
                f"{'; '.join(diff)}. Use another out_dir, or resume=False to start over"
            )
        if int(ckpt.get("world_size", 1)) != info.world_size:
            raise ValueError(
                f"cannot resume {ckpt_path}: it was written by {ckpt.get('world_size', 1)} process(es), "
                f"this run has {info.world_size} (the data order and steps per epoch would differ)"
            )
    ema = ModelEMA(model, cfg.ema_decay)
    if ckpt is not None:  # weights before the DDP wrapper is built (it broadcasts rank 0's)
        model.load_state_dict(ckpt["model"])
        ema.load_state_dict(ckpt["ema"])
    criterion = build_criterion(cfg)
    ddp_model = model
    if info.distributed:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None)

    per_rank_batch = cfg.batch_size // info.world_size
    train_sampler = EpochShuffleSampler(len(data.train), cfg.seed, info.rank, info.world_size)
    n_steps = -(-len(train_sampler) // per_rank_batch)
    if cfg.max_train_batches:
        n_steps = min(n_steps, cfg.max_train_batches)
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay)
    scheduler = build_scheduler(optimizer, cfg.lr, cfg.epochs, n_steps)
    scaler = torch.amp.GradScaler(info.device.type, enabled=cfg.amp == "fp16")
    eval_bs = max(per_rank_batch, 1) * 2
    val_loader = _loader(data.val, eval_bs, ShardSampler(len(data.val), info.rank, info.world_size),
                         cfg, info, 0)
    test_loader = _loader(data.test, eval_bs, ShardSampler(len(data.test), info.rank, info.world_size),
                          cfg, info, 0)

    history: list[dict[str, Any]] = []
    per_class: list[dict[str, list[float]]] = []
    first_epoch = 0
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])  # rank 0's; each epoch re-seeds per rank anyway
        history = ckpt["metrics"]["epochs"]
        per_class = ckpt["metrics"]["per_class"]
        first_epoch = int(ckpt["epoch"]) + 1
        log(f"[clml] resuming {out_dir} after epoch {ckpt['epoch']}")
    elif ckpt_path.exists() and info.is_main:
        log(f"[clml] resume=False: starting over, {ckpt_path} will be overwritten")
    if info.is_main:
        atomic_write_json(out_dir / CONFIG_NAME, cfg.to_dict())
        log(f"[clml] {cfg.dataset} {cfg.setting}: train {len(data.train)}, val {len(data.val)}, "
            f"test {len(data.test)} images, {len(data.classes)} classes; {cfg.backbone}, "
            f"{n_steps} steps/epoch x {cfg.last_epoch + 1 - first_epoch} epochs on {info.device}"
            f"{f' x {info.world_size} ranks' if info.distributed else ''}")
    barrier(info)
    progress = _progress_enabled(cfg, info)

    for epoch in range(first_epoch, cfg.last_epoch + 1):
        t0 = time.time()
        _seed_epoch(cfg, epoch, info.rank)
        train_sampler.set_epoch(epoch)
        loader = _loader(data.train, per_rank_batch, train_sampler, cfg, info,
                         seed_for(cfg.seed, epoch, info.rank, 0xD1))
        rec = _train_epoch(ddp_model, ema, criterion, optimizer, scheduler, scaler, loader, cfg,
                           info, epoch, n_steps, progress)
        raw, ema_m = unwrap(ddp_model), ema.module
        v_raw = evaluate(raw, val_loader, cfg, info, thresholds=False)
        v_ema = evaluate(ema_m, val_loader, cfg, info, thresholds=False)
        t_raw = evaluate(raw, test_loader, cfg, info, thresholds=True)
        t_ema = evaluate(ema_m, test_loader, cfg, info, thresholds=True)
        entry = {
            "epoch": epoch, "lr": rec["lr"], "steps": rec["steps"], "time_s": time.time() - t0,
            "train": rec["train"], "mined": rec["mined"],
            "val": {"mAP": v_raw["mAP"], "mAP_ema": v_ema["mAP"], "skipped_classes": v_raw["skipped"]},
            "test": {"mAP": t_raw["mAP"], "mAP_ema": t_ema["mAP"], **t_raw["thr"],
                     "skipped_classes": t_raw["skipped"]},
            "test_ema_threshold": t_ema["thr"],
        }
        history.append(entry)
        per_class.append({"test": t_raw["ap"], "test_ema": t_ema["ap"]})
        if info.is_main:
            doc = _metrics_doc(cfg, data.classes, history, per_class, data.info)
            save_checkpoint(ckpt_path, {
                "format": CHECKPOINT_FORMAT, "epoch": epoch, "config": cfg.to_dict(),
                "world_size": info.world_size,
                "model": model.state_dict(), "ema": ema.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(), "rng": _rng_state(),
                "metrics": {"epochs": history, "per_class": per_class},
            })
            atomic_write_json(out_dir / METRICS_NAME, doc)
            m = entry["mined"]
            mined_txt = (f" mined {m['count']} (P {_fmt(m['precision'])} R {_fmt(m['recall'])})"
                         if cfg.correction else "")
            log(f"[clml] epoch {epoch:3d}/{cfg.last_epoch} loss {entry['train']['loss']:.4f} "
                f"(base {entry['train']['base']:.4f} low-rank {entry['train']['low_rank']:.4f})"
                f"{mined_txt} | val mAP {entry['val']['mAP']:.2f}/{entry['val']['mAP_ema']:.2f} "
                f"test mAP {entry['test']['mAP']:.2f}/{entry['test']['mAP_ema']:.2f} (raw/ema) "
                f"| lr {entry['lr']:.2e} {entry['time_s']:.1f}s")
        barrier(info)

    if not history:
        raise ValueError(f"nothing was trained: stop_epoch {cfg.last_epoch} < first epoch {first_epoch}")
    summary = summarize(history, cfg.last_epoch)
    if info.is_main:  # rewrite once more: covers a resume that had nothing left to train
        atomic_write_json(out_dir / METRICS_NAME,
                          _metrics_doc(cfg, data.classes, history, per_class, data.info))
        log(f"[clml] done in {time.time() - t_start:.1f}s: selected epoch {summary['selected_epoch']} "
            f"({summary['selected_model']}) val mAP {summary['val_mAP']:.2f} -> test mAP "
            f"{summary['test_mAP']:.2f}; best-on-test {summary['best_test_mAP']:.2f} "
            f"(epoch {summary['best_test_epoch']}, {summary['best_test_model']}), optimism gap "
            f"{summary['optimism_gap']:.2f}")
    return summary


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"
