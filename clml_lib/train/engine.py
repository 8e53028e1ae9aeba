"""The training loop: ``build_run(cfg) -> Run`` and ``fit(cfg) = build_run(cfg).fit()``.

:func:`build_run` builds everything a run works with (data, model, training state, loss, batches,
the lock of its folder) and returns a :class:`Run`, whose :meth:`Run.fit` is the loop below,
:meth:`Run.step` one training step of it and :meth:`Run.evaluate` one evaluation of it. A caller
that needs another loss passes it (``build_run(cfg, criterion=...)``); one that needs a step
written out compares it with :meth:`Run.step`; neither copies the setup or the loop.

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
* **Quiet mode** (``verbose=False``): no per-epoch lines, one summary line per run. The summary
  line names the run's arm (:func:`arm_label`: base loss, lambda, tau, switches) and says which
  epochs were trained and which were read from disk (a finished run resumed trains nothing).
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import torch
from torch.utils.data import DataLoader

from ..atomic import atomic_torch_save, atomic_write_json
from ..losses import CLMLLoss
from ..losses.clml import LossParts
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
def _predict(model: torch.nn.Module, batches: Batches, cfg: TrainConfig, info: DistInfo,
             max_batches: int, features: bool
             ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`predict`, plus the features Z ``(N, D)`` float32 when ``features`` (else None)."""
    model.eval()
    outs, ys, zs = [], [], []
    for b, (x, y) in enumerate(batches):
        if max_batches and b >= max_batches:
            break
        x = _to_model_input(x, info)  # (B, 3, S, S)
        with autocast(cfg.amp, info.device):
            logits, z = model(x)  # (B, C), (B, D)
        outs.append(logits.float())
        ys.append(y.to(info.device))
        if features:
            zs.append(z.float())
    logits = gather_eval(torch.cat(outs), info).cpu()  # (N, C)
    targets = gather_eval(torch.cat(ys), info).cpu()  # (N, C)
    feats = gather_eval(torch.cat(zs), info).cpu() if features else None  # (N, D)
    return logits, targets, feats


def predict(model: torch.nn.Module, batches: Batches, cfg: TrainConfig, info: DistInfo,
            max_batches: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (N, C) float32 and targets (N, C) of every item of ``batches`` (all ranks, in
    dataset order). ``batches`` yields ``(x (B, 3, S, S), y (B, C))``."""
    logits, targets, _ = _predict(model, batches, cfg, info, max_batches, False)
    return logits, targets


def evaluate(model: torch.nn.Module, batches: Batches, cfg: TrainConfig, info: DistInfo,
             thresholds: bool, where: str = "", features: bool = False) -> dict[str, Any]:
    """mAP (and threshold metrics when asked) of ``model`` on ``batches`` (see module doc).

    Args:
        where: what is evaluated, for the error message (e.g. ``"the EMA model on val after
            epoch 3 (lr 1e-3)"``).
        features: also return the features Z the model computes (its second output).

    Returns:
        ``{"mAP", "ap" (C,), "skipped", "n", ["thr"], "logits" (N, C), "targets" (N, C),
        ["features" (N, D)]}``.

    Raises:
        RuntimeError: NaN/inf logits (the weights diverged).
    """
    logits, targets, feats = _predict(model, batches, cfg, info, cfg.max_eval_batches, features)
    if not torch.isfinite(logits).all():
        raise RuntimeError(f"training diverged: {where or 'the model'} produces NaN/inf logits; "
                           "the learning rate is probably too large for this model and loss; "
                           "lower lr")
    m, ap = mean_average_precision(logits, targets, empty="skip")
    out: dict[str, Any] = {"mAP": m, "ap": ap.tolist(), "skipped": int(np.isnan(ap).sum()),
                           "n": int(targets.shape[0]), "logits": logits, "targets": targets}
    if thresholds:
        out["thr"] = threshold_metrics(torch.sigmoid(logits.double()), targets, 0.5, empty="skip")
    if feats is not None:
        out["features"] = feats
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
    """CLMLLoss from the config fields (the switches have the same names in both); the base loss
    is the registry's entry ``cfg.base_loss`` with ``cfg.base_loss_args``."""
    return CLMLLoss(
        base_loss=cfg.base_loss, lambda_=cfg.lambda_, tau=cfg.tau, start_epoch=cfg.start_epoch,
        delta=cfg.delta, use_clml=cfg.use_clml, use_correction=cfg.use_correction,
        correct_base_targets=cfg.correct_base_targets, pairwise_weight=cfg.pairwise_weight,
        temperature=cfg.temperature, reduction=cfg.reduction, base_loss_args=cfg.base_loss_args,
    )



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



# ----------------------------------------------------------------------------- the arm in words
_DEFAULTS = {f.name: f.default for f in dataclasses.fields(TrainConfig)}


def _num(x: float) -> str:
    return f"{x:g}"


def arm_label(cfg: TrainConfig) -> str:
    """The arm of a run in words, for its summary line and for plot legends.

    The base loss, then what is added to it: the CLML term with its weight lambda and the label
    correction (threshold tau, first epoch) that feeds it, or, without CLML, what the correction
    does (corrects the base targets, or is only counted); then every other loss field that is off
    its schema default (Delta, the pairwise term, the reduction, corrected base targets). E.g.
    ``"BCE +CLML (lambda 1, correction tau 0.75 from epoch 1)"``, ``"SPLC"`` (mining at tau
    counted, not used, is named too).
    """
    extras = []
    if cfg.delta != _DEFAULTS["delta"]:
        extras.append(f"Delta {_num(cfg.delta)}")
    corr = f"correction tau {_num(cfg.tau)} from epoch {cfg.start_epoch}"
    if cfg.use_clml:
        inner = [f"lambda {_num(cfg.lambda_)}" + (" = off" if cfg.lambda_ == 0 else ""),
                 corr if cfg.use_correction else "no correction", *extras]
        text = f"{cfg.base_loss} +CLML ({', '.join(inner)})"
        if cfg.correct_base_targets:
            text += " +corrected base targets"
    elif cfg.use_correction and cfg.correct_base_targets:
        text = f"{cfg.base_loss} +corrected base targets ({corr})"
    elif cfg.use_correction:
        text = f"{cfg.base_loss} (no CLML; mining at tau {_num(cfg.tau)} counted, not used)"
    else:
        text = f"{cfg.base_loss} (no CLML, no mining)"
    if cfg.pairwise_weight > 0:
        text += (f" +pairwise {_num(cfg.pairwise_weight)} (temperature "
                 f"{_num(cfg.temperature)})")
    if cfg.reduction != _DEFAULTS["reduction"]:
        text += f", reduction {cfg.reduction}"
    return text


def _describe(x: Any) -> str:
    return f"of length {len(x)}" if hasattr(x, "__len__") else ""


def _epochs_text(first: int, last: int) -> str:
    return f"epoch {first}" if first == last else f"epochs {first}-{last}"


# ----------------------------------------------------------------------------- the run
def _loader(ds, batch_size: int, sampler, cfg: TrainConfig, info: DistInfo,
            seed: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(ds, batch_size=batch_size, sampler=sampler, num_workers=cfg.num_workers,
                      pin_memory=info.device.type == "cuda", drop_last=False, generator=g,
                      persistent_workers=False)


def _eval_batches(data: RunData, split: str, batch_size: int, cfg: TrainConfig,
                  info: DistInfo) -> Batches:
    ds = data.val if split == "val" else data.test
    sampler = ShardSampler(len(ds), info.rank, info.world_size)
    if data.tensors is not None:
        images, truth = data.tensors[split]
        return TensorBatches(images, (truth,), sampler, batch_size)
    return _loader(ds, batch_size, sampler, cfg, info, 0)


def _release(lock: RunLock | None, info: DistInfo) -> None:
    if lock is not None:
        lock.release()
    cleanup(info)


SPLITS = ("val", "test")
MODELS = ("raw", "ema")


@dataclass(eq=False, repr=False)
class Run:
    """One training run, built by :func:`build_run`: what :meth:`fit` trains, one
    :meth:`step` of it, one :meth:`evaluate` of it.

    Attributes:
        cfg: the run's :class:`TrainConfig`. info: rank, world size, device.
        data: :class:`RunData` (train / val / test sets, observed and true training labels).
        state: :class:`TrainState` (model, EMA, Adam with its two parameter groups, OneCycle,
            history); restored from ``checkpoint.pt`` when the run resumes.
        criterion: the loss: ``forward_parts(logits (N, C), features (N, D), observed (N, C),
            epoch) -> LossParts`` (:func:`build_criterion` of the config unless one was passed).
        net: the module called in training (a DDP wrapper of ``state.model``, or it).
        sampler: the training order (a permutation per epoch from ``(seed, epoch)``).
        n_steps: training steps per epoch. val, test: the evaluation batches.
        out_dir: the run folder (locked by this process until :meth:`close`).
        arm: the arm in words (:func:`arm_label`, or the name given with a passed-in loss).
        epochs_from_disk: epochs restored from the checkpoint when it was built (0: none).
        log: where the run's progress lines go (``print``; a no-op when ``verbose`` is off).

    A run holds its folder's lock from :func:`build_run` until :meth:`close` (also called by
    ``with build_run(cfg) as run:`` on leaving, and when the object is garbage-collected).
    """

    cfg: TrainConfig
    info: DistInfo
    data: RunData
    state: TrainState
    criterion: torch.nn.Module
    net: torch.nn.Module
    sampler: EpochShuffleSampler
    n_steps: int
    val: Batches
    test: Batches
    out_dir: Path
    arm: str
    epochs_from_disk: int = 0
    replaces_results: bool = False  # resume=False on a folder with a checkpoint
    # a factory, not a class attribute: the API reference would document ``print`` as a method
    log: Callable[..., None] = field(default_factory=lambda: print)
    _closer: Any = None  # weakref.finalize releasing the lock (set by build_run)

    def __repr__(self) -> str:
        return (f"Run({self.cfg.dataset} {self.cfg.setting} | {self.arm} | seed {self.cfg.seed}: "
                f"{len(self.state.history)}/{self.cfg.last_epoch + 1} epochs done, "
                f"out_dir {self.out_dir})")

    @property
    def model(self) -> torch.nn.Module:
        """The model being trained (``state.model``; its EMA copy is ``state.ema.module``)."""
        return self.state.model

    # ------------------------------------------------------------------ batches
    def train_batches(self, epoch: int) -> Batches:
        """This rank's training batches of ``epoch`` ``(x (n, 3, S, S), observed (n, C),
        truth (n, C))``, in the sampler's order of that epoch. The augmentation draws from the
        global RNGs, which :meth:`fit` re-seeds from ``(seed, epoch, rank)`` before each epoch."""
        self.sampler.set_epoch(epoch)
        per_rank = self.cfg.batch_size // self.info.world_size
        if self.data.tensors is not None:
            images, observed, truth = self.data.tensors["train"]
            return TensorBatches(images, (observed, truth), self.sampler, per_rank,
                                 self.data.batch_transform)
        return _loader(self.data.train, per_rank, self.sampler, self.cfg, self.info,
                       seed_for(self.cfg.seed, epoch, self.info.rank, 0xD1))

    # ------------------------------------------------------------------ one step
    def step(self, batch: tuple[torch.Tensor, ...], epoch: int | None = None) -> LossParts:
        """One training step of :meth:`fit` on ``batch`` (:func:`~clml_lib.train.step.train_step`):
        forward, loss, backward, Adam (coupled L2 decay on the weights, none on biases and
        BatchNorm), OneCycle, EMA. Updates ``state`` in place; records and writes nothing.

        Args:
            batch: ``(x (n, 3, S, S), observed (n, C)[, truth (n, C)])`` as yielded by
                :meth:`train_batches` (``truth`` is not used by the step).
            epoch: the 0-based epoch the loss sees (label correction starts at ``start_epoch``);
                default: the next epoch to train, ``state.epoch + 1``.

        Returns:
            :class:`~clml_lib.losses.clml.LossParts` of the batch (``total, base, low_rank,
            pairwise, corrected, mined``); under DDP with ``ddp_gather`` the labels are gathered.

        Raises:
            ValueError: ``batch`` is not such a tuple; from the loss's input checks.
        """
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise ValueError("batch must be a tuple (x, observed) or (x, observed, truth), got "
                             f"{type(batch).__name__} {_describe(batch)}")
        epoch = self.state.epoch + 1 if epoch is None else int(epoch)
        x = _to_model_input(batch[0], self.info)  # (n, 3, S, S)
        observed = batch[1].to(self.info.device, non_blocking=True)  # (n, C)
        if self._gathering:  # the loss sees the global batch (N, C)
            observed = all_gather_nograd(observed, self.info)
        return self._train_step(x, observed, epoch)

    @property
    def _gathering(self) -> bool:
        return self.info.distributed and self.cfg.ddp_gather

    def _train_step(self, x: torch.Tensor, observed: torch.Tensor, epoch: int) -> LossParts:
        """:meth:`step` on a batch already on the device (``observed`` gathered under
        ``ddp_gather``): the one call of ``train_step`` of both :meth:`step` and :meth:`fit`."""
        if not self.net.training:
            self.net.train()
        gather = (lambda t: all_gather_with_grad(t, self.info)) if self._gathering else None
        return train_step(self.state, self.criterion, x, observed, epoch, amp=self.cfg.amp,
                          model=self.net, gather=gather)

    # ------------------------------------------------------------------ one evaluation
    def evaluate(self, split: str = "test", model: str = "raw", thresholds: bool | None = None,
                 features: bool = False) -> dict[str, Any]:
        """Evaluate the current raw or EMA model on ``split``, as :meth:`fit` does after each
        epoch (:func:`evaluate`: logits under the run's autocast, mAP over the classes with a
        positive).

        Args:
            split: ``'val' | 'test'``. model: ``'raw' | 'ema'``.
            thresholds: also the threshold metrics at 0.5 (default: for ``'test'``).
            features: also the features Z ``(N, D)`` float32 (e.g. for an embedding plot).

        Returns:
            ``{"mAP", "ap", "skipped", "n", "logits" (N, C), "targets" (N, C), ["thr"],
            ["features"]}``.

        Raises:
            ValueError: unknown split or model. RuntimeError: NaN/inf logits.
        """
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {model!r}")
        module = unwrap(self.net) if model == "raw" else self.state.ema.module
        batches = self.val if split == "val" else self.test
        thr = split == "test" if thresholds is None else thresholds
        where = f"the {model} model on {split} after epoch {self.state.epoch}"
        return evaluate(module, batches, self.cfg, self.info, thr, where, features=features)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> dict[str, Any]:
        """Train the epochs left (``state.epoch + 1`` to ``cfg.last_epoch``), evaluating and
        writing after each (module doc), and return the ``summary`` block of ``metrics.json``
        (see :func:`fit`). Steps taken before with :meth:`step` are part of the state it
        continues from.

        Raises:
            RuntimeError: the run is closed; non-finite loss or logits (epoch, step and learning
                rate named). ValueError: a training step failed (from the loss's checks).
        """
        if self._closer is not None and not self._closer.alive:
            raise RuntimeError(f"the run on {self.out_dir} is closed (its folder lock is "
                               "released); build a new one with build_run to train it")
        cfg, info = self.cfg, self.info
        t_start = time.time()
        first_epoch = self.state.epoch + 1
        if self.epochs_from_disk:
            self.log(f"[clml] resuming {self.out_dir} after epoch {self.epochs_from_disk - 1}")
        elif self.replaces_results:
            self.log(f"[clml] resume=False: starting over, the results in {self.out_dir} will "
                     "be replaced when the first epoch ends")
        self.log(f"[clml] {cfg.dataset} {cfg.setting}: train {len(self.data.train)}, val "
                 f"{len(self.data.val)}, test {len(self.data.test)} images, "
                 f"{len(self.data.classes)} classes; {cfg.backbone}, {self.n_steps} steps/epoch "
                 f"x {cfg.last_epoch + 1 - first_epoch} epochs on {info.device}"
                 f"{f' x {info.world_size} ranks' if info.distributed else ''}; {self.arm}")
        barrier(info)
        for epoch in range(first_epoch, cfg.last_epoch + 1):
            t0 = time.time()
            reseed(seed_for(cfg.seed, epoch, info.rank))
            rec = _train_epoch(self, epoch)
            entry, scores = _evaluate_epoch(self, epoch, rec)
            entry["time_s"] = time.time() - t0
            self.state.history.append(entry)
            self.state.epoch = epoch
            if info.is_main:
                _write_epoch(self, scores)
                _log_epoch(self, entry)
            barrier(info)

        summary = summarize(self.state.history, cfg.last_epoch)
        if info.is_main:  # once more: covers a resume that had nothing left to train
            atomic_write_json(self.out_dir / METRICS_NAME, _metrics_doc(cfg, self.data,
                                                                        self.state))
            print(f"[clml] {cfg.dataset} {cfg.setting} | {self.arm} | seed {cfg.seed}: "
                  f"{self._what_was_done(first_epoch, time.time() - t_start)}; selected epoch "
                  f"{summary['selected_epoch']} ({summary['selected_model']}) val mAP "
                  f"{summary['val_mAP']:.2f} -> test mAP {summary['test_mAP']:.2f}; "
                  f"best-on-test {summary['best_test_mAP']:.2f} (epoch "
                  f"{summary['best_test_epoch']}, {summary['best_test_model']}), optimism gap "
                  f"{summary['optimism_gap']:.2f}")
        return summary

    def _what_was_done(self, first_epoch: int, seconds: float) -> str:
        """``"10 epochs trained in 61.4s"``, ``"epochs 0-4 read from disk, epochs 5-9 trained
        in 20.1s"`` or ``"10 epochs read from disk, nothing trained"``."""
        last, done = self.cfg.last_epoch, len(self.state.history)
        before = min(first_epoch, done)  # epochs that existed before this call
        disk = min(before, self.epochs_from_disk)
        parts = []
        if disk:
            parts.append(f"{_epochs_text(0, disk - 1)} read from disk")
        if before > disk:
            parts.append(f"{_epochs_text(disk, before - 1)} trained earlier in this process")
        if first_epoch <= last:
            trained = last - first_epoch + 1
            what = (f"{trained} epoch{'s' if trained > 1 else ''}" if not parts
                    else _epochs_text(first_epoch, last))
            parts.append(f"{what} trained in {seconds:.1f}s")
        else:
            parts.append("nothing trained")
        return ", ".join(parts)

    # ------------------------------------------------------------------ the folder lock
    def close(self) -> None:
        """Release the folder lock (and a process group this run started). The model, state
        and data stay usable in memory (:meth:`evaluate`, :meth:`step` on one process);
        :meth:`fit` refuses. Idempotent."""
        if self._closer is not None:
            self._closer()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ----------------------------------------------------------------------------- build, fit
def build_run(cfg: TrainConfig | dict, criterion: torch.nn.Module | None = None, *,
              arm: str | None = None) -> Run:
    """Build a run: validate everything, lock the folder, build data, model, training state
    (restored from ``checkpoint.pt`` when resuming), loss and batches, and return the
    :class:`Run` (``.fit()``, ``.step(batch)``, ``.evaluate()``).

    Everything is validated before the first step: the config values, the out_dir (created,
    writable, not used by another run), the data root layout (the dataset classes raise), the
    weights file (architecture checked key by key), the device, a checkpoint to resume from
    (format and config).

    Args:
        cfg: a :class:`TrainConfig` or a dict of its fields.
        criterion: the loss to train with instead of :func:`build_criterion` ``(cfg)``: any
            module with ``forward_parts(logits (N, C), features (N, D), observed (N, C), epoch)
            -> LossParts``. The config's loss fields then only label the run; a run folder (and
            its resume check) knows only the config, so give such a run its own ``out_dir``.
        arm: the run's name in its log lines; default :func:`arm_label` ``(cfg)``, or for a
            passed-in loss its class name.

    Raises:
        ValueError: bad config / data / weights / resume mismatch. TypeError: a ``criterion``
        without ``forward_parts``. FileNotFoundError: missing files, or resume on a folder whose
        checkpoint was deleted. OSError: out_dir not writable. RuntimeError: another run holds
        out_dir.
    """
    cfg = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_dict(cfg)
    cfg.validate()
    if criterion is not None and not callable(getattr(criterion, "forward_parts", None)):
        raise TypeError(f"criterion must have forward_parts(logits, features, observed, epoch) "
                        f"-> LossParts (like CLMLLoss); got {type(criterion).__name__}")
    if arm is None:
        arm = arm_label(cfg) if criterion is None else (
            f"{type(criterion).__name__} (loss passed in)")
    info = init_distributed(cfg.device)
    lock = None
    try:
        out_dir = cfg.path("out_dir")
        if info.is_main:
            check_out_dir(out_dir)
            lock = RunLock(out_dir, log=print)
            lock.acquire()
        run = _setup(cfg, info, out_dir, criterion, arm)
    except BaseException:
        _release(lock, info)
        raise
    run._closer = weakref.finalize(run, _release, lock, info)
    return run


def fit(cfg: TrainConfig | dict) -> dict[str, Any]:
    """Train (or resume) one run and return the ``summary`` block of ``metrics.json``:
    ``build_run(cfg).fit()``, the folder lock released at the end.

    Args:
        cfg: a :class:`TrainConfig` or a dict of its fields.

    Returns:
        dict with ``selected_epoch, selected_model, val_mAP, test_mAP, best_test_mAP,
        best_test_epoch, best_test_model, optimism_gap, finished, epochs_run``.

    Raises:
        as :func:`build_run`, and RuntimeError: non-finite loss or logits (a divergence: epoch,
        step and learning rate named).
    """
    with build_run(cfg) as run:
        return run.fit()


def _setup(cfg: TrainConfig, info: DistInfo, out_dir: Path, criterion: torch.nn.Module | None,
           arm: str) -> Run:
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
    return Run(cfg=cfg, info=info, data=data, state=state,
               criterion=build_criterion(cfg) if criterion is None else criterion,
               net=net, sampler=sampler, n_steps=n_steps,
               val=_eval_batches(data, "val", eval_bs, cfg, info),
               test=_eval_batches(data, "test", eval_bs, cfg, info), out_dir=out_dir, arm=arm,
               epochs_from_disk=0 if ckpt is None else int(ckpt["epoch"]) + 1,
               replaces_results=ckpt is None and (out_dir / CHECKPOINT_NAME).exists(), log=log)


# ----------------------------------------------------------------------------- one epoch
def _step_error(err: ValueError, epoch: int, step: int, lr: float) -> Exception:
    """The loss's input check with the place it failed; a non-finite input is a divergence."""
    where = f"epoch {epoch} step {step} (lr {lr:.3g})"
    if "non-finite" in str(err):
        return RuntimeError(f"training diverged at {where}: {err}. The learning rate is probably "
                            "too large for this model and loss; lower lr")
    return ValueError(f"training step failed at {where}: {err}")


def _train_epoch(run: Run, epoch: int) -> dict[str, Any]:
    """Train one epoch; returns ``{"lr", "steps", "train": loss means, "mined": quality}``."""
    cfg, info, state = run.cfg, run.info, run.state
    run.net.train()
    dev = info.device
    gathering = run._gathering
    sums = torch.zeros(4, dtype=torch.float64, device=dev)  # total, base, low_rank, pairwise
    mined, seen, truths, base_mined = [], [], [], []  # per step: (N, C) bool masks
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
            parts = run._train_step(x, observed, epoch)
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
            if parts.base_mined is not None:  # the base loss's own correction (SPLC)
                base_mined.append(parts.base_mined)
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
    lists = (mined, seen, truths) + ((base_mined,) if base_mined else ())
    masks = [torch.cat(m) for m in lists]  # (steps * N, C) each
    if info.distributed and not gathering:
        # local losses and labels: average the losses over ranks, pool the labels (with ddp_gather
        # every rank computed the same global-batch values, nothing to reduce)
        sums = all_reduce_sum(sums, info) / info.world_size
        masks = [all_gather_nograd(m, info) for m in masks]
    masks = [m.cpu() for m in masks]
    s = (sums / steps).tolist()
    rec = {
        "lr": lr, "steps": steps,  # the rate of the epoch's last step
        "train": {"loss": s[0], "base": s[1], "low_rank": s[2], "pairwise": s[3]},
        "mined": mined_label_quality(*masks[:3]),
    }
    if base_mined:  # what the base loss's own correction treated as positive (SPLC)
        rec["base_mined"] = mined_label_quality(masks[3], masks[1], masks[2])
    return rec


def _evaluate_epoch(run: Run, epoch: int, rec: dict) -> tuple[dict, dict | None]:
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
        **({"base_mined": rec["base_mined"]} if "base_mined" in rec else {}),
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


def _write_epoch(run: Run, scores: dict | None) -> None:
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


def _log_epoch(run: Run, entry: dict) -> None:
    cfg = run.cfg
    m = entry["mined"]
    mined_txt = (f" mined {m['count']} (P {_fmt(m['precision'])} R {_fmt(m['recall'])})"
                 if cfg.use_correction else "")
    if "base_mined" in entry:
        b = entry["base_mined"]
        mined_txt += (f" {cfg.base_loss} mined {b['count']} (P {_fmt(b['precision'])} "
                      f"R {_fmt(b['recall'])})")
    run.log(f"[clml] epoch {entry['epoch']:3d}/{cfg.last_epoch} loss "
            f"{entry['train']['loss']:.4f} (base {entry['train']['base']:.4f} low-rank "
            f"{entry['train']['low_rank']:.4f}){mined_txt} | val mAP {entry['val']['mAP']:.2f}/"
            f"{entry['val']['mAP_ema']:.2f} test mAP {entry['test']['mAP']:.2f}/"
            f"{entry['test']['mAP_ema']:.2f} (raw/ema) | lr {entry['lr']:.2e} "
            f"{entry['time_s']:.1f}s")
