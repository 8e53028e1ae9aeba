"""TrainConfig: the one schema of a training run.

Every field is declared once, below, with its type, default, allowed values, help text and role;
everything else is derived from these declarations:

* validation (:meth:`TrainConfig.validate`, through :mod:`clml_lib.checks`);
* value parsing (:func:`parse_value`: the one parser for ``--set key=value``, papermill ``-p``
  strings and YAML strings such as ``1e-4``, which PyYAML leaves a string);
* the resume check (:meth:`TrainConfig.trajectory_diff`: fields of role ``bookkeeping`` may change
  between a run and its resume, :data:`BOOKKEEPING_FIELDS`);
* the grid driver's folder check and its baseline/+CLML pairing (:data:`EXPERIMENT_FIELDS`,
  :data:`CLML_FIELDS`);
* ``python -m clml_lib.train --help`` and the field table of ``docs/configuration.md``
  (:func:`help_text`, :func:`schema_table_md`);
* the parameters cell of ``notebooks/reproduce.py`` and ``.ipynb`` (:func:`parameters_cell_source`,
  written by ``python -m clml_lib.train --write-notebook``; a test keeps the notebook's cell equal
  to it, defaults included).

Roles: ``experiment`` (changes what a run computes), ``clml`` (used only by the CLML arm: the switch
``use_clml`` and the hyper-parameters of the CLML term and of label correction) and ``bookkeeping``
(where the run is written, how it reports, how far it goes; may change on resume).

The defaults are the teaching regime of the main job (the pretrained small ResNet fine-tuned on
2,500 images of the embedded teaching set, 40 % of the positive labels left, CPU;
docs/teaching_regime.md), so ``python -m clml_lib.train`` alone trains one run of it;
``params/paper.yaml`` lists every field of the reference recipe. Relative path fields are taken
from the project root (:func:`resolve_path`).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import textwrap
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Collection, Iterable, Mapping

from ..checks import Range, check_bool, check_choice, check_int, clip
from ..data.missing import SETTINGS
from ..losses import (
    BASE_LOSSES,
    DELTA_RANGE,
    LAMBDA_RANGE,
    PAIRWISE_WEIGHT_RANGE,
    REDUCTIONS,
    START_EPOCH_RANGE,
    TAU_RANGE,
    TEMPERATURE_RANGE,
    base_loss_defaults,
    check_base_loss_args,
    check_correction_switches,
)
from ..mapping_file import read_mapping
from ..paths import resolve_path
from .datasets import DATASET_BUILDERS as DATASETS
from .step import AMP_DTYPES as AMP_MODES
from ..seed import SEED_RANGE
from .ema import EMA_DECAY_RANGE
from .optim import LR_RANGE, WEIGHT_DECAY_RANGE

# The choices of ``dataset``, ``setting``, ``base_loss``, ``reduction`` and ``amp`` are the
# registries of their owners (imported above, read live: a base loss registered later is a choice).
INPUT_PIPELINES = ("pil", "tensor")
ROLES = ("experiment", "clml", "bookkeeping")
_DEVICE_RE = r"cpu|cuda(:\d+)?"
_NAT = Range(0, None, integer=True)  # 0, 1, 2, ...
#: input side in pixels: the reference recipe uses 224 or 448; 2048 bounds what fits in memory
IMAGE_SIZE_RANGE = Range(8, 2048, integer=True)
_ANY = Range()  # any finite number


@dataclass(frozen=True)
class FieldSpec:
    """What one field allows, besides its type: the schema entry of a :class:`TrainConfig` field.

    Attributes:
        help: one line for ``--help``, the docs and the notebook's parameters cell (no ``=``).
        role: ``experiment`` | ``clml`` | ``bookkeeping`` (see the module docstring).
        group: heading under which the field is listed.
        choices: allowed strings (str fields): a tuple, or the registry mapping whose names are
            the choices (read when checking, so later registrations count).
        range: allowed interval of a number (:class:`clml_lib.checks.Range`); the loss
            hyper-parameters use the constants that the losses validate with.
        pattern: a regular expression a str value must match in full.
        path: a path field, resolved from the project root when relative.
        describe: the allowed values in words, when they are none of the above (a function, so
            that it reads a registry when called).
    """

    help: str
    role: str = "experiment"
    group: str = ""
    choices: Collection[str] | None = None
    range: Range | None = None
    pattern: str | None = None
    path: bool = False
    describe: Callable[[], str] | None = None

    def allowed_text(self) -> str:
        """The allowed values in words (for ``--help`` and the docs)."""
        if self.describe is not None:
            return self.describe()
        if self.choices:
            return " | ".join(self.choices)
        if self.pattern:
            return {_DEVICE_RE: "cpu | cuda | cuda:N"}.get(self.pattern, f"/{self.pattern}/")
        if self.range is None:
            return "any"
        return str(self.range).replace("integers in ", "")


def _f(default: Any, help: str, role: str = "experiment", group: str = "", **spec: Any) -> Any:
    """A dataclass field carrying its :class:`FieldSpec` in ``metadata['spec']`` (a mapping
    default is copied for every instance)."""
    metadata = {"spec": FieldSpec(help, role, group, **spec)}
    if isinstance(default, dict):
        return field(default_factory=lambda: dict(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def _base_loss_args_text() -> str:
    """The own hyper-parameters of every registered base loss, in words (for the docs)."""
    return "; ".join(f"{name}: {', '.join(base_loss_defaults(name)) or 'none'}"
                     for name in BASE_LOSSES)


_DATA, _LOSS, _SCHED, _MODEL, _RUN = ("Data and missing labels", "Loss: base loss plus CLML",
                                      "Schedule and optimiser", "Model",
                                      "Selection, size and machine")


@dataclass
class TrainConfig:
    """A training run: one field per papermill parameter of ``notebooks/reproduce.ipynb``.

    Construction validates (``TrainConfig(**fields)``, :meth:`from_dict`, :meth:`replace`).

    Raises:
        ValueError: a value of the wrong type or out of its range, naming the field, the value and
            what is allowed; :meth:`from_dict` also refuses unknown keys (closest names suggested).
    """

    # --- data and missing labels
    dataset: str = _f("teaching", "dataset to train and test on", group=_DATA, choices=DATASETS)
    data_root: str = _f("", "dataset root folder (unused for teaching)", path=True)
    label_list: str = _f("", "optional training label list (split file); overrides setting",
                         path=True)
    setting: str = _f("40left", "positive labels left in training",
                      choices=SETTINGS)
    split_seed: int = _f(0, "seed of the missing-label draw and of the validation carve-out",
                         range=SEED_RANGE)
    # --- loss
    base_loss: str = _f("BCE", "base multi-label loss",
                        group=_LOSS, choices=BASE_LOSSES)
    base_loss_args: dict = _f({}, "own hyper-parameters of the base loss, e.g. {gamma: 3.0}",
                              describe=_base_loss_args_text)
    use_clml: bool = _f(True, "add lambda_ times the CLML low-rank term", role="clml")
    use_correction: bool = _f(True, "label correction (false-negative mining) for the CLML term",
                              role="clml")
    correct_base_targets: bool = _f(False, "also feed the corrected labels to the base loss")
    lambda_: float = _f(1.0, "weight of the CLML term (lambda)", role="clml",
                     range=LAMBDA_RANGE)
    tau: float = _f(0.75, "correction threshold on sigmoid scores (tau)", role="clml",
                    range=TAU_RANGE)
    start_epoch: int = _f(1, "first epoch index at which correction mines labels (e0)",
                          role="clml", range=START_EPOCH_RANGE)
    delta: float = _f(1.0, "floor of each per-label nuclear norm (Delta)", role="clml",
                    range=DELTA_RANGE)
    pairwise_weight: float = _f(0.0, "weight of the explicit pairwise contrastive term",
                                role="clml", range=PAIRWISE_WEIGHT_RANGE)
    temperature: float = _f(0.1, "temperature of the pairwise contrastive term", role="clml",
                            range=TEMPERATURE_RANGE)
    reduction: str = _f("sum", "base-loss reduction (reference: sum)", choices=REDUCTIONS)
    # --- schedule and optimiser
    epochs: int = _f(6, "OneCycle schedule length in epochs", group=_SCHED,
                 range=Range(1, None, integer=True))
    stop_epoch: int = _f(-1, "last epoch index trained; -1 trains all epochs", role="bookkeeping",
                         range=Range(-1, None, integer=True))
    batch_size: int = _f(64, "images per optimiser step (global under DDP)",
                     range=Range(1, None, integer=True))
    image_size: int = _f(32, "input side in pixels", range=IMAGE_SIZE_RANGE)
    lr: float = _f(1e-2, "peak learning rate of Adam with OneCycle",
                   range=LR_RANGE)
    weight_decay: float = _f(1e-4, "coupled L2 weight decay (none on biases and norms)",
                             range=WEIGHT_DECAY_RANGE)
    ema_decay: float = _f(0.9, "decay of the moving average of the weights (EMA)",
                          range=EMA_DECAY_RANGE)
    amp: str = _f("none", "mixed precision (fp16 uses a GradScaler)",
                  choices=AMP_MODES)
    # --- model
    backbone: str = _f("small_resnet",
                       "torchvision classification model name, small_resnet or tiny_cnn",
                       group=_MODEL)
    weights_path: str = _f("data/teaching_backbone.pt",
                           "empty: random; imagenet; or a weights-only .pt",
                           path=True)
    normalize: bool = _f(False, "ImageNet mean and std normalisation (reference: off)")
    augment: bool = _f(True, "training augmentation (teaching: flips; photos: Cutout+RandAugment)")
    # 'tensor': clml_lib.data.tensor_pipeline, the same augmentation distribution as the PIL ops,
    # experimental until measured on a GPU (docs/performance.md §2); the teaching set keeps 'pil'
    input_pipeline: str = _f("pil", "PIL or tensor augmentation (tensor: experimental)",
                             choices=INPUT_PIPELINES)
    # --- selection, size and machine
    val_fraction: float = _f(0.1, "validation share carved from the training set", group=_RUN,
                             range=Range(0.0, 0.5, lo_open=True, hi_open=True))
    num_train_images: int = _f(2500, "training images (teaching: generated); 0 uses all",
                             range=_NAT)
    num_workers: int = _f(0, "DataLoader worker processes (changes the random stream)",
                          range=_NAT)
    device: str = _f("cpu", "torch device", role="bookkeeping", pattern=_DEVICE_RE)
    seed: int = _f(0, "seed of initialisation, batch order and augmentation", range=SEED_RANGE)
    deterministic: bool = _f(True, "deterministic kernels and no cuDNN autotuning")
    out_dir: str = _f("runs/reproduce", "run folder for metrics.json and checkpoint.pt",
                      role="bookkeeping", path=True)
    progress: bool = _f(False, "tqdm progress bars", role="bookkeeping")
    verbose: bool = _f(True, "one line per epoch (false: one summary line)", role="bookkeeping")
    max_train_batches: int = _f(0, "cap on training batches per epoch; 0 for no cap",
                              range=_NAT)
    max_eval_batches: int = _f(0, "cap on evaluation batches; 0 for no cap",
                             range=_NAT)
    resume: bool = _f(False, "resume from out_dir/checkpoint.pt when present", role="bookkeeping")
    ddp_gather: bool = _f(True, "under torchrun: losses on the batch gathered from every rank")

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ construction
    @classmethod
    def field_names(cls) -> list[str]:
        """Every field, in declaration order."""
        return [f.name for f in fields(cls)]

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None = None, source: str = "", **overrides: Any
                  ) -> "TrainConfig":
        """Build and validate a config from a mapping (papermill parameters, YAML, a checkpoint).

        String values of non-string fields are parsed by :func:`parse_value` (``'1e-4'``,
        ``'false'``); missing fields take their defaults.

        Args:
            d: field -> value. overrides: more fields (win over ``d``).
            source: where ``d`` comes from (e.g. ``"checkpoint runs/x/checkpoint.pt"``), named in
                every error message.

        Raises:
            ValueError: a key that is not a field (closest names suggested), a value of the wrong
                type or out of range.
        """
        where = f" (in {source})" if source else ""
        merged = dict(d or {})
        merged.update(overrides)
        unknown = [k for k in merged if k not in _SPECS]
        if unknown:
            raise ValueError("unknown TrainConfig key(s): "
                             + ", ".join(_unknown_hint(k) for k in unknown) + where)
        try:
            values = {k: parse_value(k, v) for k, v in merged.items()}
            return cls(**values)
        except ValueError as err:
            raise ValueError(f"{err}{where}") from None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "TrainConfig":
        """A validated copy with some fields changed (values parsed like :meth:`from_dict`)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    @property
    def last_epoch(self) -> int:
        """Index of the last epoch trained (``stop_epoch``, or ``epochs - 1`` when it is -1)."""
        return self.epochs - 1 if self.stop_epoch == -1 else self.stop_epoch

    def path(self, name: str) -> Path | None:
        """The path field ``name`` as an absolute path (relative: from the project root), or None
        when it is empty; ``weights_path: imagenet`` is not a path (None).

        Raises:
            ValueError: ``name`` is not a path field.
        """
        spec = _SPECS.get(name)
        if spec is None or not spec.path:
            raise ValueError(f"{name!r} is not a path field; path fields: {', '.join(PATH_FIELDS)}")
        value = getattr(self, name)
        if not value or (name == "weights_path" and value.lower() == "imagenet"):
            return None
        return resolve_path(value)

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Check every field against its declaration, then the rules between fields.

        Raises:
            ValueError: naming the field, the bad value and what is allowed.
        """
        for f in fields(self):
            setattr(self, f.name, check_field(f.name, getattr(self, f.name)))
        if self.dataset != "teaching" and not self.data_root:
            raise ValueError(f"dataset={self.dataset!r} needs data_root (the dataset root folder)")
        if self.dataset == "teaching" and self.input_pipeline != "pil":
            raise ValueError("input_pipeline='tensor' is for photo datasets (coco, voc, nus): the "
                             "teaching set is always served as in-memory tensors; leave it 'pil'")
        if not (self.stop_epoch == -1 or self.stop_epoch < self.epochs):
            raise ValueError(
                f"stop_epoch must be -1 (= epochs - 1) or in [0, epochs - 1] = "
                f"[0, {self.epochs - 1}], got {self.stop_epoch}"
            )
        check_correction_switches(self.use_correction, self.correct_base_targets)
        self.base_loss_args = check_base_loss_args(self.base_loss, self.base_loss_args)
        if not self.out_dir:
            raise ValueError("out_dir must not be empty")
        self._check_weights_outside_out_dir()

    def _check_weights_outside_out_dir(self) -> None:
        """A weights file inside ``out_dir`` would be overwritten by the run's own files
        (``checkpoint.pt`` is a weights file too): refuse it, symbolic links resolved."""
        weights = self.path("weights_path")
        if weights is None:
            return
        run_dir = self.path("out_dir").resolve()
        if weights.resolve().parent == run_dir or weights.parent.resolve() == run_dir:
            raise ValueError(
                f"weights_path {clip(self.weights_path)} lies in out_dir {clip(self.out_dir)}: "
                "the run writes its checkpoint and results there and would overwrite the input "
                "weights; copy them elsewhere or choose another out_dir (to continue a run, use "
                "resume=true)")

    def data_fingerprint(self) -> dict[str, str]:
        """What identifies the run's input files beyond their paths: ``label_list_sha256``, the
        SHA-256 of the label list when one is set. Recorded in ``metrics.json`` (``data``) and the
        checkpoint, and compared on resume and by the grid driver: a label list edited between a
        run and its resume would otherwise resume silently on other labels.

        Raises:
            FileNotFoundError: ``label_list`` is set and missing.
        """
        path = self.path("label_list")
        if path is None:
            return {}
        if not path.is_file():
            raise FileNotFoundError(f"label_list not found: {path}")
        digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        return {"label_list_sha256": digest.hexdigest()}

    def ignored_fields(self) -> dict[str, str]:
        """``field -> why`` for the fields this configuration does not use: a grid whose cells
        differ only in them would run one experiment several times under different names."""
        out = {}
        if self.label_list:
            out["setting"] = "label_list is set: the observed labels are the file's"
        if self.dataset == "teaching":
            out["data_root"] = "the teaching set is generated, it has no data_root"
        return out

    def trajectory_changes(self, other: "TrainConfig") -> dict[str, tuple[Any, Any]]:
        """``name -> (self's value, other's value)`` for the fields outside
        :data:`BOOKKEEPING_FIELDS` that differ: why ``other`` cannot resume this run."""
        a, b = self.to_dict(), other.to_dict()
        return {k: (a[k], b[k]) for k in a if k not in BOOKKEEPING_FIELDS and a[k] != b[k]}

    def trajectory_diff(self, other: "TrainConfig") -> list[str]:
        """:meth:`trajectory_changes` as text: ``name: a != b``."""
        return [f"{k}: {a!r} != {b!r}" for k, (a, b) in self.trajectory_changes(other).items()]


# ---------------------------------------------------------------------- derived from the schema
_FIELDS = {f.name: f for f in fields(TrainConfig)}
_SPECS: dict[str, FieldSpec] = {n: f.metadata["spec"] for n, f in _FIELDS.items()}
_TYPES: dict[str, type] = {
    n: {"str": str, "int": int, "float": float, "bool": bool, "dict": dict}[str(f.type)]
    for n, f in _FIELDS.items()}
#: fields that may change between a run and its resume (they do not change the trajectory)
BOOKKEEPING_FIELDS = tuple(n for n, s in _SPECS.items() if s.role == "bookkeeping")
#: fields used only by the CLML arm (``use_clml`` first): left out when pairing with a baseline
CLML_FIELDS = tuple(n for n, s in _SPECS.items() if s.role == "clml")
#: fields that define what a run computes, CLML arm aside
EXPERIMENT_FIELDS = tuple(n for n, s in _SPECS.items() if s.role == "experiment")
#: path fields (relative values are taken from the project root)
PATH_FIELDS = tuple(n for n, s in _SPECS.items() if s.path)
#: seed fields (range :data:`clml_lib.seed.SEED_RANGE`): the fields a grid seed may set
SEED_FIELDS = tuple(n for n, s in _SPECS.items() if s.range is SEED_RANGE)

for _name, _spec in _SPECS.items():  # the declarations themselves must be consistent
    assert _spec.role in ROLES, (_name, _spec.role)
    assert "=" not in _spec.help, f"{_name}: '=' in the help text breaks papermill's parser"


def _unknown_hint(key: Any) -> str:
    if not isinstance(key, str) or len(key) > 100:
        return clip(key, 100)
    close = difflib.get_close_matches(str(key), list(_SPECS), n=2, cutoff=0.6)
    return f"{key!r}" + (f" (did you mean {' or '.join(map(repr, close))}?)" if close else "")


_INT_RE = re.compile(r"[+-]?\d+")
_FLOAT_RE = re.compile(r"[+-]?((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|inf|infinity|nan)", re.I)
_BOOL_TEXT = {"true": True, "false": False}


def parse_value(name: str, value: Any) -> Any:
    """The one parser: turn a raw value of field ``name`` into its type, then check it.

    A ``str`` given for a ``bool``/``int``/``float`` field is read as text: ``true``/``false``
    (any case), a decimal integer, a decimal or exponent number (``1e-4``, ``.5``); anything else
    is refused; a ``str`` given for a mapping field is read as a YAML flow mapping
    (``{gamma: 3}``; empty text is the empty mapping). A ``str`` field keeps its text as is.
    Non-string values are only checked (an int is accepted for a float field). Used by
    :meth:`TrainConfig.from_dict`, ``--set``, the grid driver and papermill parameters alike.

    Raises:
        ValueError: unknown field, text that is not a value of the field's type, or a value
            outside the field's declaration (see :func:`check_field`).
    """
    if name not in _SPECS:
        raise ValueError(f"unknown TrainConfig key(s): {_unknown_hint(name)}")
    typ = _TYPES[name]
    if isinstance(value, str) and typ is dict:
        value = _parse_mapping(name, value)
    elif isinstance(value, str) and typ is not str:
        text = value.strip()
        if typ is bool and text.lower() in _BOOL_TEXT:
            value = _BOOL_TEXT[text.lower()]
        elif typ is int and _INT_RE.fullmatch(text):
            value = int(text)
        elif typ is float and _FLOAT_RE.fullmatch(text):
            value = float(text)
        else:
            kind = {bool: "true or false", int: "an integer", float: "a number"}[typ]
            raise ValueError(f"{name} must be {kind}, got {clip(value)} (text that is not {kind})")
    return check_field(name, value)


def _parse_mapping(name: str, text: str) -> Any:
    """The text of a mapping field (``{gamma: 3}``) as a value; empty text is ``{}``."""
    import yaml

    try:
        return yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as err:
        raise ValueError(f"{name} must be a mapping such as {{gamma: 3.0}}, got {text!r} "
                         f"(not YAML: {str(err).splitlines()[0]})") from None


_SCALARS = (bool, int, float, str)


def _number_text(value: Any) -> Any:
    """A string that reads as a number (``'1e-6'``, which PyYAML leaves a string) as that
    number; any other value as it is."""
    if isinstance(value, str) and _INT_RE.fullmatch(value.strip()):
        return int(value)
    if isinstance(value, str) and _FLOAT_RE.fullmatch(value.strip()):
        return float(value)
    return value


def check_field(name: str, value: Any) -> Any:
    """Check one typed value against its declaration (type, choices, range, pattern).

    Returns:
        The value (ints of float fields as float).

    Raises:
        ValueError: naming the field, the value and what is allowed.
    """
    spec, typ = _SPECS[name], _TYPES[name]
    if typ is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{name} must be a mapping such as {{gamma: 3.0}}, got {value!r} "
                             f"({type(value).__name__})")
        bad = [f"{k!r}: {v!r}" for k, v in value.items()
               if not (isinstance(k, str) and isinstance(v, _SCALARS))]
        if bad:
            raise ValueError(f"{name} must map names to numbers, booleans or strings; bad "
                             f"entries: {', '.join(bad)}")
        return {k: _number_text(v) for k, v in value.items()}
    if typ is bool:
        return check_bool(name, value)
    if typ is int:
        return spec.range.check(name, value) if spec.range else check_int(name, value)
    if typ is float:
        if isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # an int is a valid number (YAML `lr: 1`)
        return float((spec.range or _ANY).check(name, value))
    if not isinstance(value, str):
        raise ValueError(f"{name} must be a string, got {clip(value)} ({type(value).__name__})"
                         + ("; an empty YAML value is null: write '' for an empty string"
                            if value is None else ""))
    if spec.choices:
        return check_choice(name, value, spec.choices)
    if spec.pattern and not re.fullmatch(spec.pattern, value):
        raise ValueError(f"{name} must be {spec.allowed_text()}, got {clip(value)}")
    return value


def parse_override(item: str) -> tuple[str, Any]:
    """``'key=value'`` -> ``(key, typed value)`` through :func:`parse_value`.

    Raises:
        ValueError: no ``=``, an empty or unknown key, or a bad value.
    """
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override must look like key=value, got {clip(item)}")
    return key.strip(), parse_value(key.strip(), raw)


def read_layer(path: str | Path) -> dict[str, Any]:
    """Fields of one YAML (or JSON) parameter file, parsed and checked field by field.

    The file is read by :func:`clml_lib.mapping_file.read_mapping` (no anchors or aliases, no
    repeated key, a mapping).

    Raises:
        FileNotFoundError: no such file. ValueError: not YAML/JSON, not a mapping, an anchor, a
            repeated key, an unknown key or a bad value; the message names the file.
    """
    p = Path(path)
    data = read_mapping(p, "config file")
    unknown = [k for k in data if k not in _SPECS]
    if unknown:
        raise ValueError("unknown TrainConfig key(s): "
                         + ", ".join(_unknown_hint(k) for k in unknown) + f" (in {p})")
    out = {}
    for k, v in data.items():
        try:
            out[k] = parse_value(k, v)
        except ValueError as err:
            raise ValueError(f"{err} (in {p})") from None
    return out


def compose(layers: Iterable[str | Path] = (), overrides: Iterable[str] = ()) -> dict[str, Any]:
    """Parameter layers composed like papermill's ``-f a.yaml -f b.yaml -p k v``: later files win,
    then ``key=value`` overrides; only the fields that are set (the rest are the defaults)."""
    data: dict[str, Any] = {}
    for layer in layers:
        data.update(read_layer(layer))
    for item in overrides:
        k, v = parse_override(item)
        data[k] = v
    return data


def load_config(path: str | Path | Iterable[str | Path] | None = None,
                overrides: Iterable[str] = ()) -> TrainConfig:
    """A validated config from one or several parameter files (composed in order) and
    ``key=value`` overrides; missing fields take their defaults.

    Raises:
        FileNotFoundError: a file is missing. ValueError: not a mapping, unknown keys, bad values.
    """
    if path is None:
        layers: list[str | Path] = []
    elif isinstance(path, (str, Path)):
        layers = [path]
    else:
        layers = list(path)
    return TrainConfig.from_dict(compose(layers, overrides),
                                 source=", ".join(map(str, layers)) or "")


# ---------------------------------------------------------------------- documentation views
def schema_rows() -> list[dict[str, str]]:
    """One row per field: name, type, default (repr), allowed, role, group, help."""
    rows = []
    for name, f in _FIELDS.items():
        spec = _SPECS[name]
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default
        rows.append({"name": name, "type": _TYPES[name].__name__, "default": _literal(default),
                     "allowed": spec.allowed_text() if _TYPES[name] is not bool else "true | false",
                     "role": spec.role, "group": spec.group, "help": spec.help,
                     "path": "yes" if spec.path else ""})
    return rows


def _literal(value: Any) -> str:
    """A default as a Python literal (strings in double quotes)."""
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _allowed_note(r: dict[str, str]) -> str:
    return "" if r["allowed"] in ("any", "true | false") else f" ({r['allowed']})"


def help_text() -> str:
    """The field list printed by ``python -m clml_lib.train --help``."""
    lines = ["fields (set with --set NAME=VALUE; [default]; role):"]
    for r in schema_rows():
        if r["group"]:
            lines.append(f"  {r['group']}:")
        lines += textwrap.wrap(f"{r['name']}: {r['type']} [{r['default']}] {r['role']}: "
                               f"{r['help']}{_allowed_note(r)}", width=98,
                               initial_indent="    ", subsequent_indent="        ")
    return "\n".join(lines)


def parameters_cell_source() -> str:
    """The parameters cell of ``notebooks/reproduce.py``: ``name: type = default  # help``,
    one line per field, group headings as comments."""
    lines = []
    for r in schema_rows():
        if r["group"]:
            lines.append(f"# {r['group']}")
        note = _allowed_note(r) if r["type"] == "str" else ""  # choices and patterns only
        lines.append(f"{r['name']}: {r['type']} = {r['default']}  # {r['help']}{note}")
    return "\n".join(lines)


#: Markers of the generated table in ``docs/configuration.md``.
DOC_MARKERS = ("<!-- schema table: generated by `python -m clml_lib.train --write-docs` -->",
               "<!-- end of schema table -->")


def schema_table_md() -> str:
    """The field table of ``docs/configuration.md`` (markdown), generated from the schema."""
    rows = ["| field | type | default | allowed | role | meaning |", "|---|---|---|---|---|---|"]
    for r in schema_rows():
        if r["group"]:
            rows.append(f"| **{r['group']}** | | | | | |")
        path = " Relative: from the project root." if r["path"] else ""
        allowed = r["allowed"].replace("|", "\\|")
        rows.append(f"| `{r['name']}` | {r['type']} | `{r['default']}` | {allowed} | {r['role']} | "
                    f"{r['help']}.{path} |")
    return "\n".join(rows)


def render_configuration_md(current: str) -> str:
    """``current`` (the text of ``docs/configuration.md``) with the part between
    :data:`DOC_MARKERS` replaced by :func:`schema_table_md`.

    Raises:
        ValueError: the markers are missing or out of order.
    """
    start, end = DOC_MARKERS
    i, j = current.find(start), current.find(end)
    if i < 0 or j < i:
        raise ValueError(f"docs/configuration.md must hold the markers {start!r} and {end!r}")
    return current[: i + len(start)] + "\n" + schema_table_md() + "\n" + current[j:]


#: The line that opens the parameters cell of ``notebooks/reproduce.py`` (jupytext percent format).
PARAMETERS_CELL_MARKER = '# %% tags=["parameters"]'


def render_parameters_cell(current: str) -> str:
    """``current`` (the text of ``notebooks/reproduce.py``) with the body of its parameters cell
    (from :data:`PARAMETERS_CELL_MARKER` to the next ``# %%`` line) replaced by
    :func:`parameters_cell_source`, one blank line kept before the next cell.

    Raises:
        ValueError: no parameters cell, or none after it (the cell must not end the file).
    """
    start = current.find(PARAMETERS_CELL_MARKER + "\n")
    end = current.find("\n# %%", start + 1) if start >= 0 else -1
    if start < 0 or end < 0:
        raise ValueError(f"notebooks/reproduce.py must hold a {PARAMETERS_CELL_MARKER!r} line "
                         "followed by another cell")
    head = current[: start + len(PARAMETERS_CELL_MARKER) + 1]
    return head + parameters_cell_source() + "\n\n" + current[end + 1:]


__all__ = [
    "TrainConfig", "FieldSpec", "load_config", "compose", "read_layer", "parse_value",
    "parse_override", "check_field", "schema_rows", "help_text", "parameters_cell_source",
    "schema_table_md", "render_configuration_md", "DOC_MARKERS", "PARAMETERS_CELL_MARKER",
    "render_parameters_cell", "DATASETS", "SETTINGS",
    "BASE_LOSSES", "AMP_MODES", "REDUCTIONS", "ROLES", "BOOKKEEPING_FIELDS",
    "CLML_FIELDS", "EXPERIMENT_FIELDS", "PATH_FIELDS", "SEED_FIELDS", "IMAGE_SIZE_RANGE",
]
