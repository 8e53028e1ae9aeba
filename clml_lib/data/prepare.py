"""Command line: verify a dataset's layout, simulate a missing-label split, write it, print stats.

Usage::

    python -m clml_lib.data.prepare --dataset coco --root data/coco --setting 40left --seed 0 \\
        --out data/splits/coco_train_40left_seed0.txt
    python -m clml_lib.data.prepare --dataset voc --root data/voc --setting single --seed 0 \\
        --out data/splits/voc2007_trainval_single_seed0.txt
    python -m clml_lib.data.prepare --dataset nus --root data/nus --label-list nus_train_full.txt \\
        --setting single --seed 0 --out data/splits/nus_single_seed0.txt

Steps: (1) build the dataset, which checks the layout (root, annotation files, image set) and
that every listed image file exists: all missing files are printed, then it fails; (2) print the
counts (and the reference counts for COCO); (3) ``simulate_missing(labels, setting, seed)``;
(4) write the split with ``write_label_list``; (5) print ``split_stats``. Exit status 0 on
success, 1 on a data error (message on stderr), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .coco import COCO2014_ANNOTATED, CocoMultiLabel
from .images import MissingFilesError
from .labels import write_label_list
from .missing import SplitStats, simulate_missing, split_stats
from .nus import NusWideMultiLabel
from .voc import VOCMultiLabel

DATASETS = ("coco", "voc", "nus")


def build_dataset(
    dataset: str,
    root: str | Path,
    label_list: str | Path | None = None,
    split: str | None = None,
    year: str | None = None,
    image_set: str = "trainval",
    difficult: str = "positive",
):
    """Build (and so verify) one of the file datasets with the CLI's defaults.

    Raises:
        ValueError: unknown dataset; ``nus`` without ``label_list``; ``difficult='ignore'``
            (a split file cannot store -1); plus every error of the dataset classes.
        FileNotFoundError: see the dataset classes.
    """
    if dataset == "coco":
        return CocoMultiLabel(
            root, split=split or "train", label_list=label_list, year=year or "2014"
        )
    if dataset == "voc":
        if difficult == "ignore":
            raise ValueError("difficult='ignore' gives -1 labels, which a split file cannot store")
        return VOCMultiLabel(root, year=year or "2007", image_set=image_set, difficult=difficult)
    if dataset == "nus":
        if label_list is None:
            raise ValueError("--dataset nus needs --label-list (the list defines the images)")
        return NusWideMultiLabel(root, label_list)
    raise ValueError(f"unknown dataset {dataset!r}: expected one of {DATASETS}")


def layout_report(dataset: str, ds) -> str:
    """A few lines of counts about a built dataset (printed by the CLI)."""
    lines = [f"{dataset}: {len(ds):,} images, {len(ds.classes)} classes, all image files present"]
    if dataset == "coco":
        folder = sum(1 for _ in ds.image_dir.glob("*.jpg"))
        lines.append(f"  {ds.image_dir.name}/: {folder:,} .jpg files on disk")
        ref = COCO2014_ANNOTATED.get(ds.split)
        if ds.year == "2014" and ref is not None and len(ds) != ref:
            lines.append(
                f"  note: the real COCO-2014 {ds.split} set has {ref:,} images with annotations; "
                f"this one has {len(ds):,} (a subset or a fixture?)"
            )
    if dataset == "voc":
        lines.append(
            f"  VOC{ds.year} {ds.image_set}: difficult policy {ds.difficult!r}, "
            f"{int(ds.difficult_mask.sum()):,} difficult-only labels"
        )
    return "\n".join(lines)


def prepare(
    dataset: str,
    root: str | Path,
    setting: str,
    seed: int,
    out: str | Path,
    label_list: str | Path | None = None,
    split: str | None = None,
    year: str | None = None,
    image_set: str = "trainval",
    difficult: str = "positive",
    nested: bool = True,
    verbose: bool = True,
) -> SplitStats:
    """Verify the dataset, simulate the split, write it to ``out``; return its statistics.

    The statistics compare the observed split with the dataset's labels (the annotations, or
    ``label_list`` for COCO/NUS). Raises the errors of :func:`build_dataset`,
    :func:`~clml_lib.data.missing.simulate_missing` and
    :func:`~clml_lib.data.labels.write_label_list`.
    """
    ds = build_dataset(dataset, root, label_list, split, year, image_set, difficult)
    if verbose:
        print(layout_report(dataset, ds))
    observed = simulate_missing(ds.labels, setting, seed, nested=nested)  # (N, C)
    path = write_label_list(out, ds.names, observed)
    stats = split_stats(ds.labels, observed, names=ds.classes)
    if verbose:
        print(f"wrote {path} ({setting}, seed {seed}, nested={nested})")
        print(stats)
    return stats


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m clml_lib.data.prepare",
        description="Verify a dataset layout, simulate a missing-label split, write it and "
        "print its statistics.",
    )
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--root", required=True, help="dataset root folder (see data/README.md)")
    p.add_argument("--setting", required=True, help="full | 75left | 40left | single (or NNleft)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True, help="output label list file")
    p.add_argument(
        "--label-list", default=None, help="label list (required for nus; base labels for coco)"
    )
    p.add_argument("--split", default=None, help="coco: train (default) or val")
    p.add_argument("--year", default=None, help="coco: 2014 (default); voc: 2007 (default)")
    p.add_argument("--image-set", default="trainval", help="voc: ImageSets/Main list")
    p.add_argument(
        "--difficult", default="positive", choices=("positive", "negative"), help="voc policy"
    )
    p.add_argument(
        "--no-nested", dest="nested", action="store_false", help="independent draws per setting"
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (see the module docstring)."""
    args = _parser().parse_args(argv)
    try:
        prepare(
            args.dataset,
            args.root,
            args.setting,
            args.seed,
            args.out,
            label_list=args.label_list,
            split=args.split,
            year=args.year,
            image_set=args.image_set,
            difficult=args.difficult,
            nested=args.nested,
        )
    except MissingFilesError as err:
        print(f"error: {len(err.missing)} {err.what} missing:", file=sys.stderr)
        for path in err.missing:
            print(f"  {path}", file=sys.stderr)
        hint = f"; expected layout: {err.expected}" if err.expected else ""
        print(f"error: {len(err.missing)} {err.what} missing{hint}", file=sys.stderr)
        return 1
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
