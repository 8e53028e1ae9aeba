r"""What label correction would mine, at several thresholds $\tau$, with the weights a run ended on.

Label correction (docs/method.md §2.1) adds the unobserved label $k$ of image $i$ when
$\sigma(s_{ik}) > \tau$. Trained on assume-negative labels, a calibrated classifier predicts about
$P(y^{obs}_{ik}=1\mid x_i) \approx \rho\,P(y_{ik}=1\mid x_i)$, with $\rho$ the keep rate (the share
of true positives left observed): at 40left ($\rho\approx0.4$) even an object the model is sure of
scores about 0.4, so $\tau=0.75$ finds nothing. This module measures that on finished runs: it
scores the run's training images with the final raw weights (``checkpoint.pt``, read weights-only),
compares the scores of the hidden positives with $\rho$, and counts what correction would mine at
each $\tau$, with precision and recall against the hidden truth
(:func:`clml_lib.metrics.mined_label_quality`).

``python -m clml_lib.reproduce.mining runs/grids/teaching/40left_clml`` (more cells may follow)
prints the table (a cell folder holds ``seed*/`` runs; a run folder is accepted too) and, with
``--out FILE``, writes it as Markdown (atomically). ``--out`` may not lie in a folder the command
reads (it would replace a run's file) and may not be an existing file unless ``--force``; both
are checked before anything is scored. ``scripts/main.sh`` runs it after the teaching grid.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write_text, refuse_overwrite
from ..losses import mine_false_negatives
from ..mapping_file import read_mapping
from ..metrics import mined_label_quality
from ..models import build_model
from ..train.batches import TensorBatches
from ..train.config import TrainConfig
from ..train.datasets import build_run_data

#: thresholds reported by default: the reference value, then down to below the 40left keep rate
TAUS = (0.75, 0.5, 0.4, 0.3, 0.2)


@dataclass
class RunScores:
    """Logits $\\mathbf S$ ``(n, C)`` of a run's training images with its final raw weights, with
    the observed labels and the hidden truth ``(n, C)`` (0/1)."""

    logits: torch.Tensor
    observed: torch.Tensor
    truth: torch.Tensor


def run_folders(paths: list[str | Path]) -> list[Path]:
    """Run folders (holding ``config.json`` and ``checkpoint.pt``) under the given cell or run
    folders, sorted.

    Raises:
        FileNotFoundError: a path holds no finished run.
    """
    found: list[Path] = []
    for p in map(Path, paths):
        runs = [p] if (p / "checkpoint.pt").is_file() else sorted(
            d for d in p.glob("*") if (d / "checkpoint.pt").is_file())
        if not runs:
            raise FileNotFoundError(f"{p}: no run folder with a checkpoint.pt (run the grid first)")
        found.extend(runs)
    return found


@torch.no_grad()
def score_training_images(run: Path) -> RunScores:
    """Score the training images of a finished run with its final raw weights.

    Raises:
        ValueError: the run's dataset is not held in memory (the teaching set); the config or the
            checkpoint cannot be read (the message names the file).
    """
    cfg_path = run / "config.json"
    cfg = TrainConfig.from_dict(read_mapping(cfg_path, "run config"), source=str(cfg_path))
    data = build_run_data(cfg)
    if data.tensors is None:
        raise ValueError(f"{run}: mining analysis needs an in-memory dataset (teaching), "
                         f"got dataset={cfg.dataset!r}")
    images, observed, truth = data.tensors["train"]  # (n, 3, S, S) uint8, (n, C), (n, C)
    model = build_model(cfg.backbone, len(data.classes), run / "checkpoint.pt").eval()
    batches = TensorBatches(images, (), range(images.shape[0]), batch_size=256)
    logits = torch.cat([model(x)[0].float() for (x,) in batches])  # (n, C)
    return RunScores(logits, observed.float(), truth.float())


def mining_table(runs: list[RunScores], taus: tuple[float, ...] = TAUS) -> dict:
    """Pooled over runs: keep rate $\\rho$, mean score of the true positives and of the hidden
    ones (with its 99th percentile), and per $\\tau$ the labels mined per run, precision, recall."""
    obs = torch.cat([r.observed for r in runs])  # (sum n, C)
    tru = torch.cat([r.truth for r in runs])
    logits = torch.cat([r.logits for r in runs])  # (sum n, C)
    sc = torch.sigmoid(logits)  # (sum n, C) scores
    hidden = (tru == 1) & (obs == 0)  # (sum n, C)
    keep = float((obs == 1).sum() / (tru == 1).sum())
    out = {"runs": len(runs), "keep_rate": keep, "hidden": int(hidden.sum()),
           "true_pos_mean": float(sc[tru == 1].mean()),
           "hidden_mean": float(sc[hidden].mean()) if hidden.any() else None,
           "hidden_q99": float(np.quantile(sc[hidden].numpy(), 0.99)) if hidden.any() else None,
           "taus": []}
    for tau in taus:
        _, mined = mine_false_negatives(logits, obs, tau, epoch=1, start_epoch=0)
        q = mined_label_quality(mined, obs, tru)
        out["taus"].append({"tau": tau, "per_run": q["count"] / len(runs),
                            "precision": q["precision"], "recall": q["recall"]})
    return out


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f} %"


def render(tables: dict[str, dict]) -> str:
    """Markdown: one row per (cell, $\\tau$), then the reading of the keep-rate argument."""
    lines = ["| cell | runs | keep rate ρ | mean score: true positives / hidden positives (q99) | "
             "τ | mined per run | precision | recall |", "|---|---|---|---|---|---|---|---|"]
    for name, t in tables.items():
        hid = ("n/a" if t["hidden_mean"] is None
               else f"{t['true_pos_mean']:.3f} / {t['hidden_mean']:.3f} ({t['hidden_q99']:.3f})")
        for i, row in enumerate(t["taus"]):
            head = (f"| {name} | {t['runs']} | {t['keep_rate']:.3f} | {hid} |" if i == 0
                    else "| | | | |")
            lines.append(f"{head} {row['tau']:g} | {row['per_run']:.1f} | "
                         f"{_pct(row['precision'])} | {_pct(row['recall'])} |")
    lines += ["", "Scores are σ(logit) of the training images with the final raw weights of each "
              "run; precision is the share of mined labels that the simulation had hidden, recall "
              "the share of the hidden positives mined. A classifier trained on assume-negative "
              "labels predicts about ρ · P(true | x), so a hidden positive scores at most about ρ "
              "when the model is calibrated: a threshold τ above ρ can only mine where the model "
              "is over-confident."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="What label correction would mine at several τ, "
                                 "with the final weights of finished runs.")
    ap.add_argument("cells", nargs="+", help="cell folders (holding seed*/ runs) or run folders")
    ap.add_argument("--taus", type=float, nargs="+", default=list(TAUS))
    ap.add_argument("--out", help="also write the table as Markdown to this file (never in a "
                    "folder read by this command; an existing file only with --force)")
    ap.add_argument("--force", action="store_true", help="replace an existing --out file")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    try:
        if args.out:
            refuse_overwrite(args.out, args.cells, force=args.force)
        tables = {}
        for cell in args.cells:
            runs = [score_training_images(r) for r in run_folders([cell])]
            tables[Path(cell).name] = mining_table(runs, tuple(args.taus))
        text = render(tables)
        print("\n## What label correction would mine at other thresholds (final weights)\n")
        print(text)
        if args.out:
            atomic_write_text(args.out, "# What label correction would mine at other "
                              "thresholds\n\n" + text + "\n")
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
