"""Train / val / test datasets of a run, built from a :class:`TrainConfig` with
:mod:`clml_lib.data`.

* **Training labels.** The observed labels y are either a reference split file (``label_list``,
  one line per training image) or simulated from the full training labels with
  ``simulate_missing(labels, setting, seed=split_seed)``. The hidden full labels stay beside them so
  that the labels mined by correction can be scored. Training items come through
  ``PartialLabelDataset``: ``(image, observed_i, truth_i)``.
* **Validation split.** ``val_fraction`` of the training images (at least one), drawn with a
  permutation seeded by ``split_seed``, are held out *before* training; the missing-label
  simulation runs on the whole training set first, so an image's observed labels do not depend on
  ``val_fraction``. Validation items are ``(image, full labels)`` without augmentation (a clean
  validation split, Protocol B of docs/evaluation.md). ``num_train_images`` (0 = all) first keeps
  a seeded random subset of the training images (the teaching set instead generates that many
  images).
* **Paths.** ``data_root`` and ``label_list`` are read through :meth:`TrainConfig.path` (a
  relative path is taken from the project root, whatever the working directory).
* **Per dataset** (``data_root`` layouts are those of :mod:`clml_lib.data`):

  - ``teaching``: generated ``train`` / ``test`` splits (``label_list`` not supported);
  - ``coco``: train2014 (images with an annotation) / val2014; with ``label_list`` (a reference
    split file such as ``coco_train_0.4left.txt``) the training images and observed labels are the
    file's and the annotations are the hidden truth;
  - ``voc``: VOC 2007 ``trainval`` / ``test``, difficult objects counted as positives;
    ``label_list`` matched by file name (``<id>.jpg``);
  - ``nus``: ``data_root/nus_train_full.txt`` (training images and full labels) /
    ``data_root/nus_val.txt`` (test), images under ``data_root/images/`` or ``data_root/``;
    ``label_list`` (e.g. ``nus_train_singlelabel.txt``) matched by file name.
* **Teaching set** images are generated with the fixed data seed 0 (the same images for every run;
  ``seed`` and ``split_seed`` vary the training and the missing labels, not the data).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch.utils.data import Dataset

from ..data import (
    CocoMultiLabel,
    NusWideMultiLabel,
    PartialLabelDataset,
    TeachingMultiLabel,
    VOCMultiLabel,
    build_transforms,
    read_label_list,
    simulate_missing,
)
from ..data.tensor_pipeline import (
    PILToTensorPipeline,
    build_eval_pipeline,
    build_train_pipeline,
)
from ..seed import seed_for
from .batches import batch_flip

if TYPE_CHECKING:  # the config reads its dataset choices from DATASET_BUILDERS below
    from .config import TrainConfig

#: data seed of the teaching set (fixed: every run sees the same images)
TEACHING_DATA_SEED = 0


class IndexedSubset(Dataset):
    """Rows ``indices`` of a dataset, served with ``labels`` (default: the base's own labels).

    Items are ``(base image, labels[i])``: the base's label vector is replaced, so a dataset whose
    ``.labels`` are partial (e.g. COCO built from a reference split file) can be served with its
    full ground truth.
    """

    def __init__(self, base: Dataset, indices: torch.Tensor, labels: torch.Tensor | None = None):
        self.base = base
        self.indices = indices.long()
        full = base.labels if labels is None else labels
        self.labels = full[self.indices].float()  # (n, C)
        self.classes = list(base.classes)

    def __len__(self) -> int:
        return int(self.indices.numel())

    def __getitem__(self, i: int):
        image, _ = self.base[int(self.indices[i])]
        return image, self.labels[i].clone()


@dataclass
class RunData:
    """Datasets of one run.

    Attributes:
        train: items ``(image, observed (C,), truth (C,))``.
        val, test: items ``(image, truth (C,))``.
        classes: C class names. observed, truth: (N_train, C) float 0/1 of the training items.
        info: sizes and label statistics (written to metrics.json under ``data``).
        tensors: for data generated in memory (the teaching set), the same splits as tensors,
            ``{"train": (images uint8 (n, 3, S, S), observed (n, C), truth (n, C)),
            "val": (images, truth), "test": (images, truth)}``, served without a DataLoader by
            :class:`~clml_lib.train.batches.TensorBatches`; None for file-backed datasets.
        batch_transform: the training augmentation on whole float batches (with ``tensors``).
    """

    train: Dataset
    val: Dataset
    test: Dataset
    classes: list[str]
    observed: torch.Tensor
    truth: torch.Tensor
    info: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, tuple[torch.Tensor, ...]] | None = None
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None


def _split_generator(cfg: TrainConfig, tag: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed_for(cfg.split_seed, tag))


def _teaching(cfg: TrainConfig, train_tf, eval_tf):
    if cfg.label_list:
        raise ValueError("label_list is not supported for the teaching set (its missing labels are "
                         "simulated with `setting`)")
    n = cfg.num_train_images or None
    kw = dict(image_size=cfg.image_size, seed=TEACHING_DATA_SEED)
    train = TeachingMultiLabel("train", num_images=n, transform=train_tf, **kw)
    return (train, TeachingMultiLabel("train", num_images=n, transform=eval_tf, **kw),
            TeachingMultiLabel("test", transform=eval_tf, **kw), train.labels, None)


def _coco(cfg: TrainConfig, train_tf, eval_tf):
    """COCO-2014: train2014 (optionally the images and labels of a reference split file),
    val2014."""
    root, lst = cfg.path("data_root"), cfg.path("label_list")
    if lst is not None and not lst.is_file():
        raise FileNotFoundError(f"label_list not found: {lst}")
    train = CocoMultiLabel(root, "train", label_list=lst, transform=train_tf)
    train_eval = CocoMultiLabel(root, "train", label_list=lst, transform=eval_tf,
                                verify_files=False)
    test = CocoMultiLabel(root, "val", transform=eval_tf)
    if lst is None:
        return train, train_eval, test, train.labels, None
    return train, train_eval, test, train.true_labels, train.labels  # truth, observed


def _voc(cfg: TrainConfig, train_tf, eval_tf):
    """VOC 2007: trainval for training, test for testing (difficult objects count as positive)."""
    kw = dict(year="2007")
    root = cfg.path("data_root")
    train = VOCMultiLabel(root, image_set="trainval", transform=train_tf, **kw)
    train_eval = VOCMultiLabel(root, image_set="trainval", transform=eval_tf,
                               verify_files=False, **kw)
    test = VOCMultiLabel(root, image_set="test", transform=eval_tf, **kw)
    return train, train_eval, test, train.labels, _observed_by_name(cfg, train)


def _nus(cfg: TrainConfig, train_tf, eval_tf):
    """NUS-WIDE: data_root holds nus_train_full.txt (training images, full labels) and
    nus_val.txt (test list), images under data_root/images/ or data_root/."""
    root = cfg.path("data_root")
    lists = {name: root / name for name in ("nus_train_full.txt", "nus_val.txt")}
    for name, path in lists.items():
        if not path.is_file():
            raise FileNotFoundError(
                f"NUS-WIDE list {path} not found: data_root must hold nus_train_full.txt (training "
                "images with their full labels) and nus_val.txt (test images), the images under "
                "data_root/images/ or data_root/")
    train = NusWideMultiLabel(root, lists["nus_train_full.txt"], transform=train_tf)
    train_eval = NusWideMultiLabel(root, (train.names, train.labels), transform=eval_tf,
                                   verify_files=False)
    test = NusWideMultiLabel(root, lists["nus_val.txt"], transform=eval_tf)
    return train, train_eval, test, train.labels, _observed_by_name(cfg, train)


#: The registry of datasets: name (the ``dataset`` field's choices) -> builder of
#: ``(train, train_eval, test, truth, observed or None)`` from a config and the two transforms.
DATASET_BUILDERS: dict[str, Callable[..., tuple]] = {"teaching": _teaching, "coco": _coco,
                                                     "voc": _voc, "nus": _nus}


def _observed_by_name(cfg: TrainConfig, base) -> torch.Tensor | None:
    """Observed labels of ``base``'s images (matched by file name) from ``cfg.label_list``."""
    path = cfg.path("label_list")
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(f"label_list not found: {path}")
    names, labels = read_label_list(path, len(base.classes))
    row = {n: i for i, n in enumerate(names)}
    missing = [n for n in base.names if n not in row]
    if missing:
        raise ValueError(f"{len(missing)} training images are not in label_list {path} "
                         f"(first: {missing[:3]})")
    return torch.as_tensor(labels, dtype=torch.float32)[torch.tensor([row[n] for n in base.names])]


def build_run_data(cfg: TrainConfig) -> RunData:
    """Build the training, validation and test sets of a run (see module doc).

    Raises:
        FileNotFoundError / ValueError: from :mod:`clml_lib.data` when the data root does not have
            the expected layout; a label_list that does not match the training images; a split
            too small to hold out a validation set.
    """
    train_tf, eval_tf = _transforms(cfg)
    base_train, base_eval, test, truth_all, observed_all = DATASET_BUILDERS[cfg.dataset](
        cfg, train_tf, eval_tf)
    classes = list(base_train.classes)
    if list(test.classes) != classes:
        raise ValueError("train and test datasets disagree on the class list")
    truth_all = truth_all.float()  # (N_all, C)
    keep = _kept_images(cfg, truth_all.shape[0])
    observed_all, setting = _observed_labels(cfg, truth_all, observed_all)
    train_idx, val_idx = _carve_validation(cfg, keep)

    train = PartialLabelDataset(IndexedSubset(base_train, train_idx, truth_all),
                                observed_all[train_idx])
    val = IndexedSubset(base_eval, val_idx, truth_all)
    obs, tru = observed_all[train_idx], truth_all[train_idx]
    info = {
        "setting": setting, "num_train": int(train_idx.numel()), "num_val": int(val_idx.numel()),
        "num_test": len(test), "num_classes": len(classes),
        "train_positives_observed": int(obs.sum()), "train_positives_true": int(tru.sum()),
        "train_missing_fraction": float(1 - obs.sum() / tru.sum()) if tru.sum() > 0 else 0.0,
        **cfg.data_fingerprint(),
    }
    tensors, batch_transform = None, None
    if isinstance(base_train, TeachingMultiLabel):  # generated in memory: serve tensors directly
        tensors = {"train": (base_train.images[train_idx], obs, tru),
                   "val": (base_train.images[val_idx], truth_all[val_idx]),
                   "test": (test.images, test.labels.float())}
        batch_transform = batch_flip if cfg.augment else None
    return RunData(train=train, val=val, test=test, classes=classes, observed=obs, truth=tru,
                   info=info, tensors=tensors, batch_transform=batch_transform)


def _transforms(cfg: TrainConfig) -> tuple[Callable | None, Callable | None]:
    """``(training, evaluation)`` transforms of one item: the teaching set's flip (no
    normalisation allowed), or the photo pipeline (PIL ops or the same distribution on uint8
    tensors, ``input_pipeline``)."""
    if cfg.dataset == "teaching":
        if cfg.normalize:
            raise ValueError("normalize=True is for ImageNet-pretrained backbones on real images; "
                             "the teaching set is used without it")
        return (_teaching_augment if cfg.augment else None), None
    size, norm = cfg.image_size, cfg.normalize
    if cfg.input_pipeline == "tensor":
        eval_tf = PILToTensorPipeline(build_eval_pipeline(size, normalize=norm))
        train_tf = (PILToTensorPipeline(build_train_pipeline(size, normalize=norm))
                    if cfg.augment else eval_tf)
        return train_tf, eval_tf
    return (build_transforms(train=cfg.augment, image_size=size, normalize=norm),
            build_transforms(train=False, image_size=size, normalize=norm))


def _kept_images(cfg: TrainConfig, n_all: int) -> torch.Tensor:
    """Indices (sorted) of the training images used: all, or a seeded random subset of
    ``num_train_images`` (the teaching set generates that many instead)."""
    if not cfg.num_train_images or cfg.dataset == "teaching":
        return torch.arange(n_all)
    if cfg.num_train_images > n_all:
        raise ValueError(f"num_train_images={cfg.num_train_images} > {n_all} training images")
    keep = torch.randperm(n_all, generator=_split_generator(cfg, 1))[: cfg.num_train_images]
    return keep.sort().values


def _observed_labels(cfg: TrainConfig, truth_all: torch.Tensor,
                     observed_all: torch.Tensor | None) -> tuple[torch.Tensor, str]:
    """The observed training labels (N_all, C) float32 and the setting's name: the label list's,
    or simulated from the truth with ``setting`` and ``split_seed`` (on every training image, so
    an image's labels do not depend on ``val_fraction``)."""
    if observed_all is not None:
        setting = f"label_list:{Path(cfg.label_list).name}"
    else:
        observed_all = simulate_missing(truth_all, cfg.setting, seed=cfg.split_seed)
        setting = cfg.setting
    observed_all = torch.as_tensor(observed_all, dtype=torch.float32)
    if observed_all.shape != truth_all.shape:
        raise ValueError(f"observed labels {tuple(observed_all.shape)} != truth "
                         f"{tuple(truth_all.shape)}")
    return observed_all, setting


def _carve_validation(cfg: TrainConfig, keep: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train indices, val indices)``, each sorted: ``val_fraction`` of ``keep`` (at least one
    image) drawn with a permutation seeded by ``split_seed``."""
    n = keep.numel()
    n_val = max(1, round(cfg.val_fraction * n))
    if n - n_val < 1:
        raise ValueError(f"{n} training images are too few to hold out "
                         f"val_fraction={cfg.val_fraction}")
    perm = keep[torch.randperm(n, generator=_split_generator(cfg, 2))]
    return perm[n_val:].sort().values, perm[:n_val].sort().values


def check_same_data(recorded: dict[str, Any] | None, info: dict[str, Any], source: str) -> None:
    """Refuse to resume on other input data: the fingerprint recorded with a checkpoint
    (:meth:`TrainConfig.data_fingerprint`, kept in ``info``) must equal the current one.

    Args:
        recorded: the ``data`` block stored with the checkpoint (None: written before
            fingerprints were recorded; nothing to compare).
        info: this run's :attr:`RunData.info`.
        source: the checkpoint, for the message.

    Raises:
        ValueError: a fingerprint differs (the label list was edited since the run started).
    """
    if not isinstance(recorded, dict):
        return
    for key in ("label_list_sha256",):
        if recorded.get(key) != info.get(key):
            raise ValueError(
                f"cannot resume {source}: the label list changed since the run started "
                f"({key} {str(recorded.get(key))[:16]}... then, {str(info.get(key))[:16]}... now)."
                " Restore the file, or use another out_dir (or resume=false) to train on the new "
                "labels")


def _teaching_augment(image: torch.Tensor) -> torch.Tensor:
    """Light augmentation of a teaching image (3, S, S): random horizontal flip (labels invariant).
    The per-item twin of :func:`~clml_lib.train.batches.batch_flip` (same random draws)."""
    if torch.rand(()) < 0.5:
        image = image.flip(-1)
    return image
