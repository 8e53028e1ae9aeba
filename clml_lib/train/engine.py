"""The training loop: ``fit(cfg) -> summary``.

One epoch = train over the (shuffled) training split with :func:`~clml_lib.train.step.train_step`,
then evaluate the raw and the EMA model on the held-out validation split and on the test split,
and write (atomically, in this order) ``test_scores.pt`` when this epoch's model is the selected
one, ``checkpoint.pt``, ``config.json`` and ``metrics.json``.

Decisions:

* **Determinism / exact resume.** At the start of every epoch the Python, NumPy and torch global
  RNGs are re-seeded from ``(seed, epoch, rank)`` and the training order is a permutation drawn from
  ``(seed, epoch)`` (:class:`~clml_lib.train.distributed.EpochShuffleSampler`); the DataLoader's
  worker seeds come from a generator seeded the same way. An epoch therefore replays identically
  whether the run started at epoch 0 or resumed from the checkpoint of the epoch before (the
  checkpoint also stores every RNG state, for completeness).
* **Data in memory** (the generated teaching set) is served by
  :class:`~clml_lib.train.batches.TensorBatches` in the same sampler order, with the augmentation
  applied to whole batches; file-backed datasets go through a DataLoader.
* **Memory layout**: on one CPU process the model and its input batches are ``channels_last``
  (:func:`memory_format`: faster convolutions; the same computation up to float summation order).
* **Scores for mAP** are the logits (float32): the same ranking as the sigmoid probabilities but
  without the float32 saturation of sigmoid to exactly 1.0 (which would create ties). Threshold
  metrics use ``sigmoid(logits) >= 0.5``. Evaluation runs under the same autocast as training
  (the reference validates under autocast).
* **Validation labels** are the full ground truth of the held-out images (a *clean* validation
  split, Protocol B of docs/evaluation.md); classes without a positive in a split are left out of
  its mAP (``empty='skip'``, count reported as ``skipped_classes``).
* **Model selection**: the (epoch, raw|EMA) pair with the highest val mAP (first one on ties, raw
  before EMA); ``test_mAP`` is that model's test mAP. ``best_test_*`` is the reference protocol
  (max over epochs and raw/EMA *on the test set*); ``optimism_gap = best_test_mAP - test_mAP >= 0``.
* **Per-image test scores** of the selected model are in ``test_scores.pt``
  (``torch.load(weights_only=True)``): ``scores`` (N_test, C) float32 logits, ``labels``
  (N_test, C) float32 0/1, ``selected`` ``"raw" | "ema"``, ``epoch`` int.
* **Threshold metrics** (CP ... OF1, ``macro_F1``) in ``epochs[i].test`` are the raw model's; the
  EMA model's are under ``epochs[i].test_ema_threshold``.
* **Non-finite loss** stops training with a RuntimeError naming epoch, step, learning rate and
  loss parts (checked every 25 steps and on the epoch's sums, to avoid a host sync per step; a
  divergence that reaches the logits first is caught by the loss's input check and reported the
  same way).
* **The run folder describes its own results.** One run at a time per folder (a lock,
  :mod:`~clml_lib.train.runlock`). ``config.json`` is written only together with a checkpoint,
  so a run that fails before its first epoch leaves the folder as it was. ``resume=True`` on a
  folder that holds results but no ``checkpoint.pt`` is refused (it would retrain from epoch 0
  and overwrite them), and so is a ``stop_epoch`` below the checkpoint's epoch (the results are
  left unchanged: a metrics.json never lists epochs past its ``stop_epoch``). ``resume=False``
  starts over: the old files are replaced by the new run's when its first epoch ends.
* **Quiet mode** (``verbose=False``): no per-epoch lines, one summary line per run.
"""

from __future__ import annotations

import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..atomic import atomic_torch_save, atomic_write_json
from ..losses import CLMLLoss
from ..metrics import mean_average_precision, mined_label_quality, threshold_metrics
from ..models import build_model
from ..seed import reseed, rng_state, seed_everything, seed_for, set_rng_state
from .batches import TensorBatches
from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .datasets import RunData, build_run_data, check_same_data
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
)
from .ema import unwrap
from .runlock import RunLock
from .state import TrainState
from .step import autocast, train_step

CHECKPOINT_NAME = "checkpoint.pt"
METRICS_NAME = "metrics.json"
CONFIG_NAME = "config.json"
TEST_SCORES_NAME = "test_scores.pt"
RESULT_FILES = (CHECKPOINT_NAME, METRICS_NAME, CONFIG_NAME, TEST_SCORES_NAME)
Batches = Iterable[tuple[torch.Tensor, ...]]


# ----------------------------------------------------------------------------- small helpers
def _in_notebook() -> bool:
    try:
        from IPython import get_ipython
    except ImportError:  # pragma: no cover
        return False
    ip = get_ipython()
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def check_out_dir(out_dir: Path) -> None:
    """Create ``out_dir`` and prove it is writable (write and delete a probe file).

    Raises:
        PermissionError / OSError: with the path in the message (also when ``out_dir`` is a file).
    """
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        probe = out_dir / f".write_probe_{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as err:
        raise type(err)(f"out_dir {out_dir} is not writable: {err}") from err


def _fmt(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2f}"


# ----------------------------------------------------------------------------- memory layout
def memory_format(info: DistInfo) -> torch.memory_format:
    """Layout of the model's weights and of its input batches: ``channels_last`` (NHWC) for a
    run on one CPU process, where oneDNN's convolutions are faster in it (the small ResNet on
    32 px teaching images with one thread: a training step 1.45x, evaluation 1.9x faster), else
    the tensors' own layout. Only float summation order changes, not what is computed."""
    if info.device.type == "cpu" and not info.distributed:
        return torch.channels_last
    return torch.preserve_format


def _to_model_input(x: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """A batch ``(B, 3, S, S)`` on the run's device, in :func:`memory_format`."""
    x = x.to(info.device, non_blocking=True)
    fmt = memory_format(info)
    return x.contiguous(memory_format=fmt) if fmt is not torch.preserve_format else x


# ----------------------------------------------------------------------------- evaluation
@torch.no_grad()
def predict(model: torch.nn.Module, batches: Batches, cfg: TrainConfig, info: DistInfo,
            max_batches: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) float32 and targets (N, C) of every item of ``batches`` (all ranks, in
    dataset order). ``batches`` yields ``(x (B, 3, S, S), y (B, C))``."""
    model.eval()
    outs, ys = [], []
    for b, (x, y) in enumerate(batches):
        if max_batches and b >= max_batches:
            break
        x = _to_model_input(x, info)  # (B, 3, S, S)
        with autocast(cfg.amp, info.device):
            logits, _ = model(x)
        outs.append(logits.float())  # (B, C)
        ys.append(y.to(info.device))
    logits = gather_eval(torch.cat(outs), info).cpu()  # (N, C)
    targets = gather_eval(torch.cat(ys), info).cpu()  # (N, C)
    return logits, targets


def evaluate(model: torch.nn.Module, batches: Batches, cfg: TrainConfig, info: DistInfo,
             thresholds: bool, where: str = "") -> dict[str, Any]:
    """mAP (and threshold metrics when asked) of ``model`` on ``batches`` (see module doc).

    Args:
        where: what is evaluated, for the error message (e.g. ``"the EMA model on val after
            epoch 3 (lr 1e-3)"``).

    Returns:
        ``{"mAP", "ap" (C,), "skipped", "n", ["thr"], "logits" (N, C), "targets" (N, C)}``.

    Raises:
        RuntimeError: NaN/inf logits (the weights diverged).
    """
    logits, targets = predict(model, batches, cfg, info, cfg.max_eval_batches)
    if not torch.isfinite(logits).all():
        raise RuntimeError(f"training diverged: {where or 'the model'} produces NaN/inf logits; "
                           "the learning rate is probably too large for this model and loss; "
                           "lower lr")
    m, ap = mean_average_precision(logits, targets, empty="skip")
    out: dict[str, Any] = {"mAP": m, "ap": ap.tolist(), "skipped": int(np.isnan(ap).sum()),
                           "n": int(targets.shape[0]), "logits": logits, "targets": targets}
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


def _metrics_doc(cfg: TrainConfig, data: RunData, state: TrainState) -> dict[str, Any]:
    summary = summarize(state.history, cfg.last_epoch)
    sel = next(i for i, e in enumerate(state.history) if e["epoch"] == summary["selected_epoch"])
    return {
        "config": cfg.to_dict(),
        "classes": data.classes,
        "data": data.info,
        "epochs": state.history,
        "per_class_ap": {"test": state.per_class[sel]["test"],
                         "test_ema": state.per_class[sel]["test_ema"]},
        "summary": summary,
    }


# ----------------------------------------------------------------------------- building blocks
def build_criterion(cfg: TrainConfig) -> CLMLLoss:
    """CLMLLoss from the config fields (the switches have the same names in both)."""
    return CLMLLoss(
        base_loss=cfg.base_loss, lambda_=cfg.lambda_, tau=cfg.tau, start_epoch=cfg.start_epoch,
        delta=cfg.delta, use_clml=cfg.use_clml, use_correction=cfg.use_correction,
        correct_base_targets=cfg.correct_base_targets, pairwise_weight=cfg.pairwise_weight,
        temperature=cfg.temperature, reduction=cfg.reduction,
    )


def _loader(ds, batch_size: int, sampler, cfg: TrainConfig, info: DistInfo,
            seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=cfg.num_workers,
                      pin_memory=info.device.type == "cuda", drop_last=False, generator=g,
                      persistent_workers=False)


@dataclass
class _Run:
    """What one call of :func:`fit` works with (built once by :func:`_setup`)."""

    cfg: TrainConfig
    info: DistInfo
    data: RunData
    state: TrainState
    criterion: CLMLLoss
    net: torch.nn.Module  # the module called in training (a DDP wrapper of state.model, or it)
    sampler: EpochShuffleSampler
    n_steps: int
    val: Batches
    test: Batches
    out_dir: Path
    log: Callable[..., None]

    def train_batches(self, epoch: int) -> Batches:
        """This rank's training batches of ``epoch`` ``(x, observed, truth)``, in sampler order."""
        self.sampler.set_epoch(epoch)
        per_rank = self.cfg.batch_size // self.info.world_size
        if self.data.tensors is not None:
            images, observed, truth = self.data.tensors["train"]
            return TensorBatches(images, (observed, truth), self.sampler, per_rank,
                                 self.data.batch_transform)
        return _loader(self.data.train, per_rank, self.sampler, self.cfg, self.info,
                       seed_for(self.cfg.seed, epoch, self.info.rank, 0xD1))


def _eval_batches(data: RunData, split: str, batch_size: int, cfg: TrainConfig,
                  info: DistInfo) -> Batches:
    ds = data.val if split == "val" else data.test
    sampler = ShardSampler(len(ds), info.rank, info.world_size)
    if data.tensors is not None:
        images, truth = data.tensors[split]
        return TensorBatches(images, (truth,), sampler, batch_size)
    return _loader(ds, batch_size, sampler, cfg, info, 0)


# ----------------------------------------------------------------------------- resume
def _read_resume_checkpoint(cfg: TrainConfig, out_dir: Path, info: DistInfo) -> dict | None:
    """The checkpoint to resume from, or None to start from epoch 0 (module doc, "The run folder
    describes its own results").

    Raises:
        IsADirectoryError: ``checkpoint.pt`` is a directory.
        FileNotFoundError: resume=True, no checkpoint, but the folder holds results.
        ValueError: the checkpoint's config cannot be read or differs in a field that changes the
            trajectory; another world size; ``stop_epoch`` below the checkpoint's epoch.
    """
    path = out_dir / CHECKPOINT_NAME
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, not a checkpoint file; move it away")
    if not cfg.resume:
        return None
    if not path.exists():
        found = [n for n in RESULT_FILES if (out_dir / n).exists()]
        if found:
            raise FileNotFoundError(
                f"cannot resume {out_dir}: it holds {', '.join(found)} but no {CHECKPOINT_NAME}, "
                "so training would restart from epoch 0 and overwrite those results. Use another "
                "out_dir, or resume=False to start over in this folder")
        return None
    ckpt = load_checkpoint(path, map_location="cpu")  # states move to their device on load
    try:
        old = TrainConfig.from_dict(ckpt["config"], source=f"checkpoint {path}")
    except (ValueError, TypeError) as err:
        raise ValueError(f"cannot resume: the config stored in the checkpoint {path} is not "
                         f"valid for this version of the library: {err}") from err
    diff = old.trajectory_diff(cfg)
    if diff:
        raise ValueError(
            f"cannot resume {path}: the config differs from the checkpoint's in "
            f"{'; '.join(diff)}. Use another out_dir, or resume=False to start over")
    if int(ckpt.get("world_size", 1)) != info.world_size:
        raise ValueError(
            f"cannot resume {path}: it was written by {ckpt.get('world_size', 1)} process(es), "
            f"this run has {info.world_size} (the data order and steps per epoch would differ)")
    if int(ckpt["epoch"]) > cfg.last_epoch:
        raise ValueError(
            f"cannot resume {path} with stop_epoch={cfg.stop_epoch}: the run already trained "
            f"through epoch {ckpt['epoch']} (results in {out_dir / METRICS_NAME} left unchanged). "
            "Read those results, or use another out_dir to train a shorter run")
    return ckpt


# ----------------------------------------------------------------------------- the loop
def fit(cfg: TrainConfig | dict) -> dict[str, Any]:
    """Train (or resume) one run and return the ``summary`` block of ``metrics.json``.

    Args:
        cfg: a :class:`TrainConfig` or a dict of its fields.

    Everything is validated before the first step: the config values, the out_dir (created,
    writable, not used by another run), the data root layout (the dataset classes raise), the
    weights file (architecture checked key by key), the device, a checkpoint to resume from
    (format and config).

    Returns:
        dict with ``selected_epoch, selected_model, val_mAP, test_mAP, best_test_mAP,
        best_test_epoch, best_test_model, optimism_gap, finished, epochs_run``.

    Raises:
        ValueError: bad config / data / weights / resume mismatch. FileNotFoundError: missing
        files, or resume on a folder whose checkpoint was deleted. OSError: out_dir not writable.
        RuntimeError: another run holds out_dir; non-finite loss or logits (a divergence: epoch,
        step and learning rate named).
    """
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(cfg)
    cfg.validate()
    info = init_distributed(cfg.device)
    try:
        out_dir = cfg.path("out_dir")
        if not info.is_main:
            return _fit(cfg, info, out_dir)
        check_out_dir(out_dir)
        with RunLock(out_dir, log=print):
            return _fit(cfg, info, out_dir)
    finally:
        cleanup(info)


def _setup(cfg: TrainConfig, info: DistInfo, out_dir: Path) -> tuple[_Run, dict | None]:
    """Data, model, state (restored from the checkpoint when resuming), loss and batches."""
    log = print if info.is_main and cfg.verbose else (lambda *a, **k: None)
    if cfg.batch_size % info.world_size:
        raise ValueError(f"batch_size {cfg.batch_size} (global) is not divisible by the world "
                         f"size {info.world_size}")
    ckpt = _read_resume_checkpoint(cfg, out_dir, info)
    seed_everything(cfg.seed, cfg.deterministic)
    data = build_run_data(cfg)
    if ckpt is not None:
        check_same_data(ckpt.get("data"), data.info, str(out_dir / CHECKPOINT_NAME))
    path = cfg.path("weights_path")  # None for "" (random init) and "imagenet"
    weights = cfg.weights_path if path is None else str(path)
    model = build_model(cfg.backbone, len(data.classes), weights).to(info.device)
    model = model.to(memory_format=memory_format(info))  # before the EMA copy and the optimiser
    per_rank_batch = cfg.batch_size // info.world_size
    sampler = EpochShuffleSampler(len(data.train), cfg.seed, info.rank, info.world_size)
    n_steps = -(-len(sampler) // per_rank_batch)
    if cfg.max_train_batches:
        n_steps = min(n_steps, cfg.max_train_batches)
    state = TrainState.create(model, lr=cfg.lr, weight_decay=cfg.weight_decay,
                              ema_decay=cfg.ema_decay, epochs=cfg.epochs,
                              steps_per_epoch=n_steps, amp=cfg.amp)
    if ckpt is not None:  # before the DDP wrapper is built (it broadcasts rank 0's weights)
        state.load_state_dict(ckpt)
        set_rng_state(ckpt["rng"])  # rank 0's; each epoch re-seeds per rank anyway
    net: torch.nn.Module = model
    if info.distributed:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[info.device.index] if info.device.type == "cuda" else None)
    eval_bs = max(per_rank_batch, 1) * 2
    run = _Run(cfg=cfg, info=info, data=data, state=state, criterion=build_criterion(cfg),
               net=net, sampler=sampler, n_steps=n_steps,
               val=_eval_batches(data, "val", eval_bs, cfg, info),
               test=_eval_batches(data, "test", eval_bs, cfg, info), out_dir=out_dir, log=log)
    return run, ckpt


def _fit(cfg: TrainConfig, info: DistInfo, out_dir: Path) -> dict[str, Any]:
    t_start = time.time()
    run, ckpt = _setup(cfg, info, out_dir)
    first_epoch = run.state.epoch + 1
    if ckpt is not None:
        run.log(f"[clml] resuming {out_dir} after epoch {ckpt['epoch']}")
    elif (out_dir / CHECKPOINT_NAME).exists():
        run.log(f"[clml] resume=False: starting over, the results in {out_dir} will be "
                "replaced when the first epoch ends")
    run.log(f"[clml] {cfg.dataset} {cfg.setting}: train {len(run.data.train)}, val "
            f"{len(run.data.val)}, test {len(run.data.test)} images, {len(run.data.classes)} "
            f"classes; {cfg.backbone}, {run.n_steps} steps/epoch x "
            f"{cfg.last_epoch + 1 - first_epoch} epochs on {info.device}"
            f"{f' x {info.world_size} ranks' if info.distributed else ''}")
    barrier(info)
    for epoch in range(first_epoch, cfg.last_epoch + 1):
        t0 = time.time()
        reseed(seed_for(cfg.seed, epoch, info.rank))
        rec = _train_epoch(run, epoch)
        entry, scores = _evaluate_epoch(run, epoch, rec)
        entry["time_s"] = time.time() - t0
        run.state.history.append(entry)
        run.state.epoch = epoch
        if info.is_main:
            _write_epoch(run, scores)
            _log_epoch(run, entry)
        barrier(info)

    state = run.state
    summary = summarize(state.history, cfg.last_epoch)
    if info.is_main:  # once more: covers a resume that had nothing left to train
        atomic_write_json(out_dir / METRICS_NAME, _metrics_doc(cfg, run.data, state))
        print(f"[clml] {cfg.dataset} {cfg.setting} {cfg.base_loss}"
              f"{' +CLML' if cfg.use_clml else ''} seed {cfg.seed}: "
              f"{summary['epochs_run']} epochs in {time.time() - t_start:.1f}s; selected epoch "
              f"{summary['selected_epoch']} ({summary['selected_model']}) val mAP "
              f"{summary['val_mAP']:.2f} -> test mAP {summary['test_mAP']:.2f}; best-on-test "
              f"{summary['best_test_mAP']:.2f} (epoch {summary['best_test_epoch']}, "
              f"{summary['best_test_model']}), optimism gap {summary['optimism_gap']:.2f}")
    return summary


def _step_error(err: ValueError, epoch: int, step: int, lr: float) -> Exception:
    """The loss's input check with the place it failed; a non-finite input is a divergence."""
    where = f"epoch {epoch} step {step} (lr {lr:.3g})"
    if "non-finite" in str(err):
        return RuntimeError(f"training diverged at {where}: {err}. The learning rate is probably "
                            "too large for this model and loss; lower lr")
    return ValueError(f"training step failed at {where}: {err}")


def _train_epoch(run: _Run, epoch: int) -> dict[str, Any]:
    """Train one epoch; returns ``{"lr", "steps", "train": loss means, "mined": quality}``."""
    cfg, info, state = run.cfg, run.info, run.state
    run.net.train()
    dev = info.device
    gathering = info.distributed and cfg.ddp_gather
    gather = (lambda t: all_gather_with_grad(t, info)) if gathering else None
    sums = torch.zeros(4, dtype=torch.float64, device=dev)  # total, base, low_rank, pairwise
    mined, seen, truths = [], [], []  # per step: (N, C) bool masks
    bar = None
    if (cfg.progress and cfg.verbose and info.is_main
            and (sys.stderr.isatty() or _in_notebook())):
        from tqdm.auto import tqdm  # optional dependency, only for interactive progress bars

        bar = tqdm(total=run.n_steps, desc=f"epoch {epoch}", leave=False, dynamic_ncols=True)
    steps, lr = 0, state.lr
    for step, (x, observed, truth) in enumerate(run.train_batches(epoch)):
        if step >= run.n_steps:
            break
        x = _to_model_input(x, info)  # (n, 3, S, S)
        observed = observed.to(dev, non_blocking=True)  # (n, C)
        truth = truth.to(dev, non_blocking=True)  # (n, C)
        if gathering:  # the loss sees the global batch (N, C)
            observed, truth = all_gather_nograd(observed, info), all_gather_nograd(truth, info)
        lr = state.lr
        try:
            parts = train_step(state, run.criterion, x, observed, epoch, amp=cfg.amp,
                               model=run.net, gather=gather)
        except ValueError as err:
            raise _step_error(err, epoch, step, lr) from err
        if (step % 25 == 0 or step == run.n_steps - 1) and not torch.isfinite(parts.total):
            # checked every 25 steps (a host sync each time); the running sums catch the rest
            raise RuntimeError(
                f"training diverged at epoch {epoch} step {step} (lr {lr:.3g}): non-finite "
                f"loss total={parts.total.item()} base={parts.base.item()} "
                f"low_rank={parts.low_rank.item()} pairwise={parts.pairwise.item()}; lower lr")
        with torch.no_grad():
            sums += torch.stack([parts.total, parts.base, parts.low_rank,
                                 parts.pairwise]).detach().double()
            mined.append(parts.mined)
            seen.append(observed == 1)
            truths.append(truth == 1)
        steps += 1
        if bar is not None:
            bar.update(1)
            if step % 10 == 0:
                bar.set_postfix(loss=f"{parts.total.item():.3f}")
    if bar is not None:
        bar.close()
    if steps == 0:
        raise RuntimeError(f"epoch {epoch} ran no training step (empty training set?)")
    if not torch.isfinite(sums).all():
        raise RuntimeError(f"training diverged during epoch {epoch} (lr {state.lr:.3g}): mean "
                           f"loss parts {(sums / steps).tolist()} (total, base, low_rank, "
                           "pairwise); lower lr")
    masks = [torch.cat(m) for m in (mined, seen, truths)]  # (steps * N, C) each
    if info.distributed and not gathering:
        # local losses and labels: average the losses over ranks, pool the labels (with ddp_gather
        # every rank computed the same global-batch values, nothing to reduce)
        sums = all_reduce_sum(sums, info) / info.world_size
        masks = [all_gather_nograd(m, info) for m in masks]
    s = (sums / steps).tolist()
    return {
        "lr": lr, "steps": steps,  # the rate of the epoch's last step
        "train": {"loss": s[0], "base": s[1], "low_rank": s[2], "pairwise": s[3]},
        "mined": mined_label_quality(*(m.cpu() for m in masks)),
    }


def _evaluate_epoch(run: _Run, epoch: int, rec: dict) -> tuple[dict, dict | None]:
    """The epoch's metrics record (without time) and, when the epoch's model is the selected
    one, its per-image test scores (else None); appends the per-class APs to the state."""
    cfg, info = run.cfg, run.info
    raw, ema = unwrap(run.net), run.state.ema.module
    after = f"after epoch {epoch} (lr {rec['lr']:.3g})"
    v_raw = evaluate(raw, run.val, cfg, info, False, f"the raw model on val {after}")
    v_ema = evaluate(ema, run.val, cfg, info, False, f"the EMA model on val {after}")
    t_raw = evaluate(raw, run.test, cfg, info, True, f"the raw model on test {after}")
    t_ema = evaluate(ema, run.test, cfg, info, True, f"the EMA model on test {after}")
    entry = {
        "epoch": epoch, "lr": rec["lr"], "steps": rec["steps"], "time_s": 0.0,
        "train": rec["train"], "mined": rec["mined"],
        "val": {"mAP": v_raw["mAP"], "mAP_ema": v_ema["mAP"], "skipped_classes": v_raw["skipped"]},
        "test": {"mAP": t_raw["mAP"], "mAP_ema": t_ema["mAP"], **t_raw["thr"],
                 "skipped_classes": t_raw["skipped"]},
        "test_ema_threshold": t_ema["thr"],
    }
    run.state.per_class.append({"test": t_raw["ap"], "test_ema": t_ema["ap"]})
    summary = summarize(run.state.history + [entry], cfg.last_epoch)
    scores = None
    if summary["selected_epoch"] == epoch:
        pick = t_raw if summary["selected_model"] == "raw" else t_ema
        scores = {"scores": pick["logits"].float().contiguous(),
                  "labels": pick["targets"].float().contiguous(),
                  "selected": summary["selected_model"], "epoch": epoch}
    return entry, scores


def _write_epoch(run: _Run, scores: dict | None) -> None:
    """test_scores.pt (if the selection moved here), checkpoint.pt, config.json, metrics.json."""
    out_dir, cfg, state = run.out_dir, run.cfg, run.state
    if scores is not None:
        atomic_torch_save(out_dir / TEST_SCORES_NAME, scores)
    save_checkpoint(out_dir / CHECKPOINT_NAME, {
        "format": CHECKPOINT_FORMAT, "config": cfg.to_dict(), "world_size": run.info.world_size,
        "rng": rng_state(), "data": run.data.info, **state.state_dict(),
    })
    atomic_write_json(out_dir / CONFIG_NAME, cfg.to_dict())
    atomic_write_json(out_dir / METRICS_NAME, _metrics_doc(cfg, run.data, state))


def _log_epoch(run: _Run, entry: dict) -> None:
    cfg = run.cfg
    m = entry["mined"]
    mined_txt = (f" mined {m['count']} (P {_fmt(m['precision'])} R {_fmt(m['recall'])})"
                 if cfg.use_correction else "")
    run.log(f"[clml] epoch {entry['epoch']:3d}/{cfg.last_epoch} loss "
            f"{entry['train']['loss']:.4f} (base {entry['train']['base']:.4f} low-rank "
            f"{entry['train']['low_rank']:.4f}){mined_txt} | val mAP {entry['val']['mAP']:.2f}/"
            f"{entry['val']['mAP_ema']:.2f} test mAP {entry['test']['mAP']:.2f}/"
            f"{entry['test']['mAP_ema']:.2f} (raw/ema) | lr {entry['lr']:.2e} "
            f"{entry['time_s']:.1f}s")
