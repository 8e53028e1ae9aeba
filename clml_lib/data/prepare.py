"""Command line: verify a dataset's layout, simulate a missing-label split, write it, print stats.

Usage::

    python -m clml_lib.data.prepare --dataset coco --root data/coco --setting 40left --seed 0 \\
        --out data/splits/coco_train_40left_seed0.txt
    python -m clml_lib.data.prepare --dataset voc --root data/voc --setting single --seed 0 \\
        --out data/splits/voc2007_trainval_single_seed0.txt
    python -m clml_lib.data.prepare --dataset nus --root data/nus --label-list nus_train_full.txt \\
        --setting single --seed 0 --out data/splits/nus_single_seed0.txt

Steps: (0) check ``--out`` before any work (below); (1) build the dataset, which checks the
layout (root, annotation files, image set) and that every listed image file exists: all missing
files are printed, then it fails; with ``--decode-images`` every image is also decoded and all
unreadable ones are listed (without it the report says that only presence was checked);
(2) print the counts (and the reference counts for COCO); (3) ``simulate_missing(labels,
setting, seed, recipe)`` (``--recipe per_image``, the default, is the released COCO files' recipe;
``--recipe global_quota`` keeps an exact fraction of all positives, nested across settings unless
``--no-nested``); (4) write the split with ``write_label_list`` (atomic: no temporary file is
left, even on failure); (5) print ``split_stats``. Exit status 0 on success, 1 on a data or
output error (one message on stderr, no traceback), 2 on a usage error.

Outputs never replace inputs. ``--out`` is refused, before anything is read, when it is a folder,
when it is an existing file, and in particular when it is the ``--label-list`` input or an
existing file under ``--root`` (an annotation file, an image set); ``--force`` allows replacing an
existing file (the input is read completely before the output is written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from .coco import COCO2014_ANNOTATED, CocoMultiLabel
from .images import MissingFilesError, load_image
from .labels import write_label_list
from .missing import RECIPES, SplitStats, check_recipe, simulate_missing, split_stats
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


def check_out(
    out: str | Path,
    root: str | Path,
    label_list: str | Path | None = None,
    force: bool = False,
) -> Path:
    """Refuse an ``out`` that would overwrite an input, a dataset file or any existing file.

    Args:
        out: the output file.
        root: the dataset root (its existing files are inputs).
        label_list: the input label list, if any.
        force: allow replacing an existing file (never a folder).

    Returns:
        ``out`` as a Path.

    Raises:
        ValueError: ``out`` is a folder or lies under a file; without ``force``, ``out`` exists
            (the message says whether it is the input label list or a file of the dataset).
    """
    out = Path(out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give the path of the label-list file")
    for parent in out.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ValueError(f"--out {out}: {parent} is a file, not a folder")
            break
    if not out.exists() or force:
        return out
    target = out.resolve()
    is_input = label_list is not None and Path(label_list).exists()
    if is_input and target == Path(label_list).resolve():
        what = f"the input label list (--label-list {label_list}); writing would replace it"
    elif target.is_relative_to(Path(root).resolve()):
        what = f"an existing file of the dataset under --root {root}; writing would replace it"
    else:
        what = "an existing file"
    raise ValueError(f"--out {out} is {what}. Choose another --out, or pass --force to replace it")


def decode_check(ds) -> None:
    """Decode every image of ``ds`` (``ds.paths``) and list all unreadable ones.

    Raises:
        ValueError: at least one image cannot be decoded (each named with PIL's reason; the first
            20 shown, then the count).
    """
    bad = []
    for path in ds.paths:
        try:
            load_image(path)
        except ValueError as err:
            bad.append(str(err))
    if bad:
        shown = "\n  ".join(bad[:20])
        more = f"\n  ... and {len(bad) - 20} more" if len(bad) > 20 else ""
        raise ValueError(
            f"{len(bad)} of {len(ds.paths):,} images cannot be decoded:\n  {shown}{more}"
        )


def layout_report(dataset: str, ds, decoded: bool = False) -> str:
    """A few lines of counts about a built dataset (printed by the CLI).

    ``decoded``: whether every image was decoded (:func:`decode_check`); otherwise the report
    says that only the presence of the files was checked.
    """
    checked = (
        "all image files present and decoded"
        if decoded
        else "all image files present (presence only; --decode-images decodes each one)"
    )
    lines = [f"{dataset}: {len(ds):,} images, {len(ds.classes)} classes, {checked}"]
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
    recipe: str = RECIPES[0],
    nested: bool | None = None,
    verbose: bool = True,
    force: bool = False,
    decode_images: bool = False,
) -> SplitStats:
    """Verify the dataset, simulate the split, write it to ``out``; return its statistics.

    The statistics compare the observed split with the dataset's labels (the annotations, or
    ``label_list`` for COCO/NUS). ``out`` is checked first (:func:`check_out`): it never replaces
    an existing file unless ``force``. ``decode_images`` decodes every image
    (:func:`decode_check`). ``recipe`` and ``nested`` are those of
    :func:`~clml_lib.data.missing.simulate_missing` (checked before any work). Raises the errors
    of :func:`~clml_lib.data.missing.check_recipe`, :func:`check_out`, :func:`build_dataset`,
    :func:`decode_check`, :func:`~clml_lib.data.missing.simulate_missing` and
    :func:`~clml_lib.data.labels.write_label_list`.
    """
    drawn = check_recipe(recipe, nested)  # before any work: whether settings are nested
    out = check_out(out, root, label_list, force)
    ds = build_dataset(dataset, root, label_list, split, year, image_set, difficult)
    if decode_images:
        decode_check(ds)
    if verbose:
        print(layout_report(dataset, ds, decoded=decode_images))
    observed = simulate_missing(ds.labels, setting, seed, recipe=recipe, nested=nested)  # (N, C)
    try:
        path = write_label_list(out, ds.names, observed, overwrite=force)
    except OSError as err:  # folder not writable, disk full, created meanwhile: nothing left
        raise ValueError(f"cannot write --out {out}: {err}") from err
    stats = split_stats(ds.labels, observed, names=ds.classes)
    if verbose:
        print(f"wrote {path} ({setting}, seed {seed}, recipe {recipe}, nested={drawn})")
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
    p.add_argument(
        "--out",
        required=True,
        help="output label list file (never an existing file, unless --force)",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace --out if it exists (also an input or a file of the dataset)",
    )
    p.add_argument(
        "--decode-images",
        action="store_true",
        help="decode every image (slow on full datasets); default: check that each file exists",
    )
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
        "--recipe",
        default=RECIPES[0],
        choices=RECIPES,
        help="per_image (default): the released COCO files' recipe, k(n) of an image's n "
        "positives kept, settings drawn independently; global_quota: round(f*P) positives kept "
        "overall, at least one per image",
    )
    p.add_argument(
        "--nested",
        default=None,
        action=argparse.BooleanOptionalAction,
        help="global_quota only: share the random draws between settings (its default) or not",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status (see the module docstring)."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        check_recipe(args.recipe, args.nested)
    except ValueError:  # the one invalid pair left after argparse: --(no-)nested with per_image
        flag = "--nested" if args.nested else "--no-nested"
        parser.error(
            f"{flag} is an option of --recipe global_quota only (--recipe {args.recipe}, the "
            "released files' recipe, always draws each setting independently)"
        )
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
            recipe=args.recipe,
            nested=args.nested,
            force=args.force,
            decode_images=args.decode_images,
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
    except OSError as err:  # an unreadable input (permissions, I/O error)
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
