"""TrainConfig: every knob of a training run, one field per papermill parameter.

The field list is the training contract (``.notes/TRAIN_CONTRACT.md``); one field was added:
``ddp_gather`` (how the CLML batch is formed under DistributedDataParallel, see
:mod:`clml_lib.train.distributed`). Defaults are the reference recipe (paper.md section 3.2) except
where a field says otherwise.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Iterable

DATASETS = ("teaching", "coco", "voc", "nus")
SETTINGS = ("full", "75left", "40left", "single")
BASE_LOSSES = ("BCE", "Focal", "ASL", "Hill", "SPLC")
AMP_MODES = ("none", "bf16", "fp16")
REDUCTIONS = ("sum", "mean")

#: fields that may change between a run and its resume (they do not change the trajectory)
RESUME_FREE_FIELDS = ("progress", "resume", "stop_epoch", "out_dir", "device")


@dataclass
class TrainConfig:
    """A training run (field = papermill parameter name; see the training contract).

    Errors: :meth:`from_dict` / :meth:`validate` raise ValueError naming the bad field and value.
    """

    dataset: str = "teaching"  # teaching | coco | voc | nus
    data_root: str = ""  # dataset root folder (unused for teaching)
    label_list: str = ""  # optional training label list (reference split file); overrides `setting`
    setting: str = "40left"  # full | 75left | 40left | single: simulated on the training labels
    split_seed: int = 0  # seed of the missing-label simulation (and of the val carve-out)
    base_loss: str = "BCE"  # BCE | Focal | ASL | Hill | SPLC
    use_clml: bool = True  # add the CLML low-rank term
    correction: bool = True  # label correction (false-negative mining) feeding the CLML term
    correct_base_targets: bool = False  # also feed corrected labels to the base loss
    lambda_: float = 1.0
    tau: float = 0.75
    start_epoch: int = 1
    delta: float = 1.0
    pairwise_weight: float = 0.0  # weight of the explicit pairwise label_contrastive_loss
    temperature: float = 0.1
    reduction: str = "sum"  # base-loss reduction (reference: sum)
    epochs: int = 80  # OneCycle schedule length
    stop_epoch: int = 25  # last epoch index trained (reference 25 -> 26 epochs); -1 = epochs - 1
    batch_size: int = 64
    image_size: int = 448
    lr: float = 1e-4
    weight_decay: float = 1e-4
    ema_decay: float = 0.9997
    amp: str = "none"  # none | bf16 | fp16 (fp16 uses GradScaler)
    backbone: str = "resnet101"  # torchvision classification model name, or tiny_cnn
    weights_path: str = ""  # "" random init | "imagenet" | local .pth path
    normalize: bool = False  # ImageNet mean/std normalisation (reference: off)
    augment: bool = True  # Cutout + RandAugment on training images
    val_fraction: float = 0.1  # held-out validation carved from the training set
    num_train_images: int = 0  # 0 = all
    num_workers: int = 0
    device: str = "cpu"  # cpu | cuda | cuda:N
    seed: int = 0
    deterministic: bool = True
    out_dir: str = "runs/debug"
    progress: bool = True
    max_train_batches: int = 0  # 0 = no cap (smoke runs)
    max_eval_batches: int = 0
    resume: bool = True  # resume from out_dir/checkpoint.pt if present
    ddp_gather: bool = True  # DDP: CLML/base loss on the gathered global batch (reference DataParallel)

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None = None, **overrides: Any) -> "TrainConfig":
        """Build and validate a config from a dict (e.g. papermill parameters or a YAML preset).

        Raises:
            ValueError: a key that is not a field (with the closest field names suggested), a
                value of the wrong type, or a value out of range (see :meth:`validate`).
        """
        merged = dict(d or {})
        merged.update(overrides)
        names = cls.field_names()
        unknown = [k for k in merged if k not in names]
        if unknown:
            msgs = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), names, n=2, cutoff=0.6)
                msgs.append(f"{k!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""))
            raise ValueError(f"unknown TrainConfig key(s): {', '.join(msgs)}")
        cfg = cls(**{k: _coerce(k, v, _FIELD_TYPES[k]) for k, v in merged.items()})
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with some fields changed."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    @property
    def last_epoch(self) -> int:
        """Index of the last epoch trained (``stop_epoch``, or ``epochs - 1`` when it is -1)."""
        return self.epochs - 1 if self.stop_epoch == -1 else self.stop_epoch

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check types and ranges of every field.

        Raises:
            ValueError: naming the field, the bad value and what is allowed.
        """
        for f in fields(self):
            _coerce(f.name, getattr(self, f.name), _FIELD_TYPES[f.name])  # type check
        _choice("dataset", self.dataset, DATASETS)
        _choice("setting", self.setting, SETTINGS)
        _choice("base_loss", self.base_loss, BASE_LOSSES)
        _choice("amp", self.amp, AMP_MODES)
        _choice("reduction", self.reduction, REDUCTIONS)
        if not re.fullmatch(r"cpu|cuda(:\d+)?", self.device):
            raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {self.device!r}")
        if self.dataset != "teaching" and not self.data_root:
            raise ValueError(f"dataset={self.dataset!r} needs data_root (the dataset root folder)")
        _at_least("epochs", self.epochs, 1)
        if not (self.stop_epoch == -1 or 0 <= self.stop_epoch < self.epochs):
            raise ValueError(
                f"stop_epoch must be -1 (= epochs - 1) or in [0, epochs - 1] = [0, {self.epochs - 1}], "
                f"got {self.stop_epoch}"
            )
        _at_least("batch_size", self.batch_size, 1)
        _at_least("image_size", self.image_size, 8)
        _at_least("start_epoch", self.start_epoch, 0)
        for name in ("split_seed", "seed", "num_train_images", "num_workers", "max_train_batches",
                     "max_eval_batches"):
            _at_least(name, getattr(self, name), 0)
        _open_interval("lr", self.lr, 0.0, None)
        _open_interval("temperature", self.temperature, 0.0, None)
        _open_interval("tau", self.tau, 0.0, 1.0)
        _open_interval("val_fraction", self.val_fraction, 0.0, 0.5)
        for name in ("weight_decay", "lambda_", "delta", "pairwise_weight"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not (0.0 <= self.ema_decay < 1.0):
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.correct_base_targets and not self.correction:
            raise ValueError("correct_base_targets=True needs correction=True (it feeds the corrected labels)")
        if not self.out_dir:
            raise ValueError("out_dir must not be empty")

    def trajectory_diff(self, other: "TrainConfig") -> list[str]:
        """Fields (outside :data:`RESUME_FREE_FIELDS`) whose values differ: ``name: a != b``."""
        a, b = self.to_dict(), other.to_dict()
        return [f"{k}: {a[k]!r} != {b[k]!r}" for k in a if k not in RESUME_FREE_FIELDS and a[k] != b[k]]


_FIELD_TYPES: dict[str, type] = {f.name: f.type if isinstance(f.type, type) else
                                 {"str": str, "int": int, "float": float, "bool": bool}[f.type]
                                 for f in fields(TrainConfig)}


def _coerce(name: str, value: Any, typ: type) -> Any:
    """Type-check one value: bool must be bool, int must be int (not bool), float accepts ints."""
    if typ is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name} must be true/false, got {value!r} ({type(value).__name__})")
        return value
    if typ is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} must be an int, got {value!r} ({type(value).__name__})")
        return value
    if typ is float:
        if isinstance(value, str):  # PyYAML reads `1e-4` (no dot) as a string: parse it
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{name} must be a number, got {value!r} (str)") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError(f"{name} must be finite, got {value!r}")
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r} ({type(value).__name__})")
        return value
    raise TypeError(f"unsupported field type {typ} for {name}")  # pragma: no cover


def _choice(name: str, value: str, allowed: Iterable[str]) -> None:
    allowed = tuple(allowed)
    if value not in allowed:
        lower = {a.lower(): a for a in allowed}
        close = [lower[value.lower()]] if value.lower() in lower else difflib.get_close_matches(
            value, allowed, n=1, cutoff=0.5)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}{hint}")


def _at_least(name: str, value: int, lo: int) -> None:
    if value < lo:
        raise ValueError(f"{name} must be >= {lo}, got {value}")


def _open_interval(name: str, value: float, lo: float, hi: float | None) -> None:
    if not (value > lo and (hi is None or value < hi)):
        rng = f"({lo}, {hi})" if hi is not None else f"> {lo}"
        raise ValueError(f"{name} must be in {rng}, got {value}")


def parse_override(item: str) -> tuple[str, Any]:
    """``'key=value'`` -> (key, value) with the value parsed as YAML (``true``, ``1e-4``, ``bf16``).

    Raises:
        ValueError: no ``=`` in the item.
    """
    import yaml

    if "=" not in item:
        raise ValueError(f"override must look like key=value, got {item!r}")
    key, raw = item.split("=", 1)
    value = yaml.safe_load(raw) if raw.strip() else ""
    if value is None:
        value = ""
    return key.strip(), value


def load_config(path: str | Path | None = None, overrides: Iterable[str] = ()) -> TrainConfig:
    """Read a YAML (or JSON) preset and apply ``key=value`` overrides; validated.

    Raises:
        FileNotFoundError: the preset file is missing. ValueError: not a mapping, unknown keys,
        bad values.
    """
    import yaml

    data: dict[str, Any] = {}
    if path:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file not found: {p}")
        text = p.read_text()
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ValueError(f"config file {p} must hold a mapping of TrainConfig fields, got {type(data).__name__}")
    for item in overrides:
        k, v = parse_override(item)
        data[k] = v
    return TrainConfig.from_dict(data)


__all__ = ["TrainConfig", "load_config", "parse_override", "DATASETS", "SETTINGS", "BASE_LOSSES",
           "AMP_MODES", "RESUME_FREE_FIELDS"]
