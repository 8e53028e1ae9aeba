"""Draw sample images of the teaching set with their label names, and its label co-occurrence.

Usage (from the repository root)::

    .venv/bin/python scripts/plot_teaching_samples.py [--out data/teaching_samples.png] [--seed 0]

Left: the first 18 training images (seed 0, 32 px, shown enlarged) titled with their labels.
Right: P(label j | label i) over the training split, the co-occurrence structure that the hidden
scenes create (rows: the given label i).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from clml_lib.data import TeachingMultiLabel  # noqa: E402
from clml_lib.paths import DATA  # noqa: E402


def plot(out: Path, seed: int = 0, rows: int = 3, cols: int = 6) -> Path:
    ds = TeachingMultiLabel("train", seed=seed)
    fig = plt.figure(figsize=(cols * 1.6 + 5.2, rows * 1.75), dpi=100)
    grid = fig.add_gridspec(rows, cols + 4, wspace=0.15, hspace=0.5)
    for k in range(rows * cols):
        ax = fig.add_subplot(grid[k // cols, k % cols])
        image, labels = ds[k]
        ax.imshow(image.permute(1, 2, 0).numpy(), interpolation="nearest")
        names = [ds.classes[j] for j in np.flatnonzero(labels.numpy())]
        title = ",\n".join(", ".join(names[i : i + 2]) for i in range(0, len(names), 2))
        ax.set_title(title, fontsize=7)
        ax.axis("off")
    y = ds.labels.numpy()  # (N, C)
    cond = (y.T @ y) / np.maximum(y.sum(0), 1)[:, None]  # (C, C): P(j | i), row i
    ax = fig.add_subplot(grid[:, cols + 1 :])
    im = ax.imshow(cond, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(ds.classes)), ds.classes, rotation=90, fontsize=7)
    ax.set_yticks(range(len(ds.classes)), ds.classes, fontsize=7)
    ax.set_title("P(label j | label i), train split", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.suptitle(
        f"TeachingMultiLabel: {len(ds.classes)} classes, "
        f"{ds.labels.sum(1).mean():.2f} labels per image "
        f"(train, seed {seed}, {ds.image_size} px)",
        fontsize=9,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight")
    plt.close(fig)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA / "teaching_samples.png")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"wrote {plot(args.out, args.seed)}")


if __name__ == "__main__":
    main()
