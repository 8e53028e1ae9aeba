"""Datasets and missing-label protocols (issue 3; see data/README.md).

* Label lists of the reference splits: :func:`read_label_list`, :func:`write_label_list`
  (never overwrites without ``overwrite=True``), :func:`check_image_names`.
* COCO instances files, validated: :func:`read_coco_instances`.
* Missing-label simulation and encodings: :func:`simulate_missing` (recipes :data:`RECIPES`; the
  per-image counts :func:`keep_counts`), :func:`split_stats`,
  :func:`to_unknown_encoding`, :func:`to_assume_negative` (losses take 1/0 observed labels).
* Datasets, each with ``.classes``, ``.labels`` (N, C) and ``(image, labels)`` items:
  :class:`CocoMultiLabel`, :class:`VOCMultiLabel`, :class:`NusWideMultiLabel`,
  :class:`TeachingMultiLabel` (embedded, no download), and :class:`PartialLabelDataset`
  (observed labels next to the hidden truth).
* :func:`build_transforms` (squash-resize, Cutout, RandAugment, optional ImageNet normalisation).
* CLI: ``python -m clml_lib.data.prepare --help``.
"""

from .classes import (
    COCO_CATEGORIES,
    COCO_CATEGORY_IDS,
    COCO_CLASSES,
    NUS_WIDE_CLASSES,
    VOC_CLASSES,
)
from .coco import CocoInstances, CocoMultiLabel, read_coco_instances
from .images import MissingFilesError, load_image
from .labels import check_image_names, read_label_list, write_label_list
from .missing import (
    RECIPES,
    SETTINGS,
    UNKNOWN,
    SplitStats,
    check_recipe,
    keep_counts,
    keep_rate,
    simulate_missing,
    split_stats,
    to_assume_negative,
    to_unknown_encoding,
    unknown_mask,
)
from .nus import NusWideMultiLabel
from .partial import PartialLabelDataset
from .teaching import TEACHING_CLASSES, TEACHING_SCENES, TeachingMultiLabel, colabel_groups
from .transforms import IMAGENET_MEAN, IMAGENET_STD, Cutout, EnsurePIL, build_transforms
from .voc import DIFFICULT_POLICIES, VOCMultiLabel

__all__ = [
    "colabel_groups",
    "COCO_CATEGORIES",
    "COCO_CATEGORY_IDS",
    "COCO_CLASSES",
    "NUS_WIDE_CLASSES",
    "VOC_CLASSES",
    "TEACHING_CLASSES",
    "TEACHING_SCENES",
    "CocoInstances",
    "CocoMultiLabel",
    "read_coco_instances",
    "check_image_names",
    "VOCMultiLabel",
    "NusWideMultiLabel",
    "TeachingMultiLabel",
    "PartialLabelDataset",
    "MissingFilesError",
    "load_image",
    "read_label_list",
    "write_label_list",
    "RECIPES",
    "SETTINGS",
    "UNKNOWN",
    "SplitStats",
    "check_recipe",
    "keep_counts",
    "keep_rate",
    "simulate_missing",
    "split_stats",
    "to_assume_negative",
    "to_unknown_encoding",
    "unknown_mask",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Cutout",
    "EnsurePIL",
    "build_transforms",
    "DIFFICULT_POLICIES",
]
