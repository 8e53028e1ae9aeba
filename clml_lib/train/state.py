"""``TrainState``: everything a run changes while it trains, in one object with
``state_dict()`` / ``load_state_dict()`` (what a checkpoint stores besides the config and RNGs).

Members: the model being trained, its EMA copy, the Adam optimiser (weight decay on weights only),
the OneCycle schedule (stepped per batch), the GradScaler (enabled for ``amp='fp16'`` only), the
per-epoch metric records (``history``) and the per-class test APs of each epoch (``per_class``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from .ema import ModelEMA
from .optim import build_optimizer, build_scheduler

STATE_KEYS = ("epoch", "model", "ema", "optimizer", "scheduler", "scaler", "metrics")


@dataclass
class TrainState:
    """The mutable state of one run.

    Attributes:
        model: the model being trained (not a DDP wrapper).
        ema: :class:`ModelEMA` of ``model``.
        optimizer, scheduler, scaler: Adam, OneCycleLR, GradScaler.
        history: one metrics record per finished epoch (the ``epochs`` list of metrics.json).
        per_class: per finished epoch, ``{"test": [C APs], "test_ema": [C APs]}``.
        epoch: index of the last finished epoch (-1 before the first).
    """

    model: nn.Module
    ema: ModelEMA
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    history: list[dict[str, Any]] = field(default_factory=list)
    per_class: list[dict[str, list[float]]] = field(default_factory=list)
    epoch: int = -1

    @classmethod
    def create(cls, model: nn.Module, *, lr: float, weight_decay: float, ema_decay: float,
               epochs: int, steps_per_epoch: int, amp: str) -> "TrainState":
        """Fresh state for ``model`` (already on its device).

        Args:
            lr: peak learning rate of OneCycle. weight_decay: coupled L2 on weights (ndim > 1).
            ema_decay: in [0, 1). epochs, steps_per_epoch: the OneCycle schedule length.
            amp: ``'none' | 'bf16' | 'fp16'`` (GradScaler enabled for fp16 only).

        Raises:
            ValueError: from :func:`build_optimizer`, :func:`build_scheduler`, :class:`ModelEMA`.
        """
        device_type = next(model.parameters()).device.type
        optimizer = build_optimizer(model, lr, weight_decay)
        return cls(
            model=model,
            ema=ModelEMA(model, ema_decay),
            optimizer=optimizer,
            scheduler=build_scheduler(optimizer, lr, epochs, steps_per_epoch),
            scaler=torch.amp.GradScaler(device_type, enabled=amp == "fp16"),
        )

    @property
    def lr(self) -> float:
        """Current learning rate (first parameter group)."""
        return float(self.optimizer.param_groups[0]["lr"])

    def state_dict(self) -> dict[str, Any]:
        """Tensors and plain values only (loadable with ``torch.load(weights_only=True)``)."""
        return {
            "epoch": self.epoch,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "metrics": {"epochs": self.history, "per_class": self.per_class},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from :meth:`state_dict` (strict model keys).

        Raises:
            ValueError: keys missing, or an EMA decay that differs from the configured one.
            RuntimeError: model keys or shapes that do not match (from torch).
        """
        missing = [k for k in STATE_KEYS if k not in state]
        if missing:
            raise ValueError(f"training state lacks keys {missing}")
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        self.history = list(state["metrics"]["epochs"])
        self.per_class = list(state["metrics"]["per_class"])
        self.epoch = int(state["epoch"])
