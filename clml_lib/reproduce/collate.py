r"""Collate a grid's finished runs into ``results/<grid>.md`` and ``results/<grid>.png``.

Runs are paired *baseline* (``use_clml: false``) vs *+CLML* (``use_clml: true``) when every
other parameter that changes the baseline's result agrees (the CLML-only parameters
:data:`CLML_ONLY` and the bookkeeping ones :data:`IGNORED` are left out of the pairing key).
For each pair and each of the two model-selection protocols

* **val-selected**: test mAP of the epoch and weights chosen on the held-out validation split
  (``summary.test_mAP``, the honest number), and
* **best-on-test**: the best test mAP over all epochs and both weights
  (``summary.best_test_mAP``, the reference script's protocol),

the table gives the baseline and the +CLML mAP as mean ± sample std over seeds, and the gain
$g_s = \mathrm{mAP}^{+CLML}_s - \mathrm{mAP}^{base}_s$ paired by seed, as mean ± sample std
(ddof 1; no std for one seed). The abstract's gains (+1.2 COCO, +1.6 VOC, +1.3 NUS-WIDE,
arXiv 2209.01314) are printed beside the rows of that dataset; the abstract does not say over
which base loss or setting they hold (paper.md 3.1). Negative gains are printed as negative.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .grid import Grid

#: Parameters used only by the CLML term: they do not change a baseline run.
CLML_ONLY = (
    "lambda_",
    "tau",
    "start_epoch",
    "delta",
    "correction",
    "pairwise_weight",
    "temperature",
)
#: Parameters that do not define the experiment (per-run bookkeeping, speed switches).
IGNORED = ("use_clml", "seed", "out_dir", "progress", "resume", "num_workers", "device",
           "deterministic")
#: The abstract's headline gains, by ``dataset`` value.
PAPER_GAINS = {"coco": ("MS-COCO", 1.2), "voc": ("VOC", 1.6), "nus": ("NUS-WIDE", 1.3)}
#: The two protocols: (column title, summary key).
PROTOCOLS = (("val-selected", "test_mAP"), ("best-on-test", "best_test_mAP"))


@dataclass
class Comparison:
    """Baseline vs one +CLML variant of one experiment, per seed."""

    label: str
    variant: str
    dataset: str
    baseline: dict[int, dict[str, Any]] = field(default_factory=dict)  # seed -> summary
    clml: dict[int, dict[str, Any]] = field(default_factory=dict)

    def values(self, side: str, key: str) -> list[float]:
        runs = self.baseline if side == "baseline" else self.clml
        return [runs[s][key] for s in sorted(runs)]

    def gains(self, key: str) -> dict[int, float]:
        """Paired gains ``clml - baseline`` for the seeds present on both sides."""
        return {
            s: self.clml[s][key] - self.baseline[s][key]
            for s in sorted(set(self.baseline) & set(self.clml))
        }


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for fewer than two values).

    Raises:
        ValueError: ``values`` is empty.
    """
    if not values:
        raise ValueError("mean_std of no values")
    std = statistics.stdev(values) if len(values) > 1 else None
    return statistics.fmean(values), std


def fmt(values: list[float], signed: bool = False) -> str:
    """``"55.12 ± 0.40"`` (``"+0.89 ± 0.20"`` when ``signed``); ``"n/a"`` for no values."""
    if not values:
        return "n/a"
    mean, std = mean_std(values)
    text = f"{mean:+.2f}" if signed else f"{mean:.2f}"
    return text + (f" ± {std:.2f}" if std is not None else "")


def _key(params: dict[str, Any], drop: tuple[str, ...]) -> tuple:
    return tuple(sorted((k, v) for k, v in params.items() if k not in drop))


def _differing(keys: list[tuple]) -> list[str]:
    """Parameter names whose values differ between the given keys."""
    dicts = [dict(k) for k in keys]
    names = sorted({n for d in dicts for n in d})
    return [n for n in names if len({repr(d.get(n)) for d in dicts}) > 1]


def build_comparisons(grid: Grid) -> tuple[list[Comparison], list[str]]:
    """Pair the finished runs of ``grid``.

    Returns:
        The comparisons (in grid order) and notes on runs that could not be paired or did
        not finish.
    """
    groups: dict[tuple, dict[str, Any]] = {}
    notes = []
    for run in grid.runs:
        metrics = run.read_metrics()
        summary = (metrics or {}).get("summary", {})
        if not summary.get("finished"):
            notes.append(f"{run.cell} seed {run.seed}: no finished metrics.json in {run.run_dir}")
            continue
        group_key = _key(run.params, IGNORED + CLML_ONLY)
        group = groups.setdefault(group_key, {"baseline": {}, "clml": {}, "params": run.params})
        if run.params["use_clml"]:
            variant_key = tuple((k, run.params[k]) for k in CLML_ONLY if k in run.params)
            side = group["clml"].setdefault(variant_key, {})
        else:
            side = group["baseline"]
        if run.seed in side:
            notes.append(f"{run.cell} seed {run.seed}: a second run of one experiment, ignored")
            continue
        side[run.seed] = summary
    group_keys = list(groups)
    label_extra = _differing(group_keys)
    comparisons = []
    for gk in group_keys:
        g = groups[gk]
        p = g["params"]
        label = f"{p['dataset']} / {p['setting']} / {p['base_loss']}"
        extra = [f"{n}={dict(gk).get(n)}" for n in label_extra
                 if n not in ("dataset", "setting", "base_loss")]
        if extra:
            label += " (" + ", ".join(extra) + ")"
        variants = list(g["clml"]) or [None]
        variant_extra = _differing(variants) if len(variants) > 1 else []
        for vk in variants:
            name = "+CLML"
            if vk is not None and variant_extra:
                name += " (" + ", ".join(f"{n}={dict(vk)[n]}" for n in variant_extra) + ")"
            comparisons.append(
                Comparison(label, name, p["dataset"], dict(g["baseline"]),
                           dict(g["clml"].get(vk, {})) if vk is not None else {})
            )
    return comparisons, notes


def render_markdown(grid: Grid, comparisons: list[Comparison], notes: list[str],
                    failures: list[str], plot_name: str | None) -> str:
    """The text of ``results/<grid>.md``."""
    finished = sum(len(c.baseline) + len(c.clml) for c in comparisons)
    lines = [
        f"# Grid `{grid.name}`: baseline vs +CLML",
        "",
        grid.description,
        "",
        f"Runs with a finished `metrics.json`: {finished} of {len(grid.runs)} planned "
        f"(seeds {', '.join(map(str, grid.seeds))}). Test mAP in %. *gain* = +CLML minus "
        "baseline, paired by seed; mean ± sample std over seeds (n = number of paired seeds).",
        "",
        "* **val-selected**: the epoch and weights (raw or EMA) chosen on a validation split "
        "carved from the training set, scored once on test (honest).",
        "* **best-on-test**: the best test mAP over all epochs and both weights, as the "
        "reference script reports it (model selection on the test set; optimistic).",
        "* **paper**: the abstract's headline gain for that dataset (+1.2 MS-COCO, +1.6 VOC, "
        "+1.3 NUS-WIDE); the abstract does not say for which base loss or setting.",
        "",
        "| experiment | variant | protocol | baseline | +CLML | gain | n | paper |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        paper = PAPER_GAINS.get(c.dataset)
        paper_text = f"+{paper[1]:.1f} ({paper[0]})" if paper else "n/a (not in the paper)"
        for protocol, key in PROTOCOLS:
            gains = list(c.gains(key).values())
            lines.append(
                f"| {c.label} | {c.variant} | {protocol} | {fmt(c.values('baseline', key))} | "
                f"{fmt(c.values('clml', key))} | {fmt(gains, signed=True)} | {len(gains)} | "
                f"{paper_text} |"
            )
    lines += [
        "",
        "## Per seed",
        "",
        "| experiment | variant | seed | baseline val-sel. | +CLML val-sel. | gain val-sel. | "
        "baseline best-on-test | +CLML best-on-test | gain best-on-test | "
        "optimism gap base / +CLML |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        for s in sorted(set(c.baseline) | set(c.clml)):
            b, m = c.baseline.get(s), c.clml.get(s)

            def cell(run, key):
                return f"{run[key]:.2f}" if run else "missing"

            def gain(key):
                return f"{m[key] - b[key]:+.2f}" if (b and m) else "n/a"

            lines.append(
                f"| {c.label} | {c.variant} | {s} | {cell(b, 'test_mAP')} | "
                f"{cell(m, 'test_mAP')} | {gain('test_mAP')} | {cell(b, 'best_test_mAP')} | "
                f"{cell(m, 'best_test_mAP')} | {gain('best_test_mAP')} | "
                f"{cell(b, 'optimism_gap')} / {cell(m, 'optimism_gap')} |"
            )
    if plot_name:
        lines += ["", f"![baseline vs +CLML per seed]({plot_name})"]
    if notes or failures:
        lines += ["", "## Missing or failed runs", ""]
        lines += [f"* FAILED {f}" for f in failures] + [f"* {n}" for n in notes]
    return "\n".join(lines) + "\n"


def plot_comparisons(comparisons: list[Comparison], path: Path) -> Path:
    """Dot plot of baseline (circles) and +CLML (triangles) test mAP per seed, joined per
    seed, one panel per protocol; saved as a PNG at ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    seeds = sorted({s for c in comparisons for s in set(c.baseline) | set(c.clml)})
    colours = {s: plt.get_cmap("tab10")(i % 10) for i, s in enumerate(seeds)}
    width = max(6.0, 1.2 * len(comparisons) + 2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * width, 4.5), squeeze=False)
    for ax, (protocol, key) in zip(axes[0], PROTOCOLS):
        for x, c in enumerate(comparisons):
            for s in seeds:
                b = c.baseline.get(s, {}).get(key)
                m = c.clml.get(s, {}).get(key)
                if b is not None and m is not None:
                    ax.plot([x - 0.15, x + 0.15], [b, m], color=colours[s], lw=1)
                if b is not None:
                    ax.plot(x - 0.15, b, "o", color=colours[s])
                if m is not None:
                    ax.plot(x + 0.15, m, "^", color=colours[s])
        ax.set_xticks(range(len(comparisons)))
        many = len(comparisons) > 3
        ax.set_xticklabels([f"{c.label}\nbaseline -> {c.variant}" for c in comparisons],
                           rotation=30 if many else 0, ha="right" if many else "center",
                           fontsize=8)
        ax.set_ylabel("test mAP (%)")
        ax.set_title(f"{protocol}: baseline (o) vs +CLML (^), one colour per seed")
        ax.set_xlim(-0.6, len(comparisons) - 0.4)
    handles = [plt.Line2D([], [], color=colours[s], marker="o", ls="-", label=f"seed {s}")
               for s in seeds]
    if handles:
        axes[0][1].legend(handles=handles, fontsize=8, loc="best")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def collate(grid: Grid, failures: list[str] | None = None) -> tuple[Path, Path | None, str]:
    """Write ``<grid out>/results/<grid>.md`` (and ``.png`` when any run finished).

    Returns:
        ``(markdown path, png path or None, markdown text)``.
    """
    comparisons, notes = build_comparisons(grid)
    grid.results_dir.mkdir(parents=True, exist_ok=True)
    png = None
    if comparisons:
        png = plot_comparisons(comparisons, grid.results_dir / f"{grid.name}.png")
    text = render_markdown(grid, comparisons, notes, list(failures or []),
                           png.name if png else None)
    md = grid.results_dir / f"{grid.name}.md"
    md.write_text(text)
    return md, png, text

