r"""Collate a grid's finished runs into ``results/<grid>.md`` and ``results/<grid>.png``.

Pairing follows the schema's roles (:mod:`clml_lib.train.config`): runs are one *experiment* when
every field of role ``experiment`` agrees, the grid's seed fields aside; within it the *baseline*
has ``use_clml: false`` and each distinct setting of the other ``clml`` fields (``lambda_``,
``tau``, ...) with ``use_clml: true`` is one *+CLML* variant; ``bookkeeping`` fields are ignored.
The baseline and the +CLML run of one seed are paired.

For each comparison and each of the two model-selection protocols

* **val-selected**: test mAP of the epoch and weights chosen on the held-out validation split
  (``summary.test_mAP``, the honest number), and
* **best-on-test**: the best test mAP over all epochs and both weights
  (``summary.best_test_mAP``, the reference script's protocol),

the table gives n paired seeds, the baseline and +CLML means, the mean paired gain with its 95 %
t interval over seeds (:func:`clml_lib.stats.paired_t_interval`), the paired bootstrap interval
over test images (val-selected only, from each run's ``test_scores.pt``,
:func:`clml_lib.stats.paired_bootstrap`) and the verdict that follows from the t interval
read against 0 and the grid's smallest effect of interest δ (:func:`clml_lib.stats.margin_verdict`).
The labels mined by CLML's correction in the +CLML arm, and by a base loss's own correction (SPLC)
in both arms, are listed per epoch (pooled over seeds) from ``metrics.json``. Every table states
the chance level of the test labels (:func:`clml_lib.metrics.chance_map`). Experiments without a
+CLML arm (a full-label ceiling) get a table of their own. The abstract's gains (+1.2 COCO,
+1.6 VOC, +1.3 NUS-WIDE) are printed beside the rows of that dataset; the abstract does not say
over which base loss or setting they hold (docs/method.md §3.1).
"""

from __future__ import annotations

import io
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clml_lib.atomic import atomic_write_bytes, atomic_write_text
from clml_lib.metrics import chance_map
from clml_lib.stats import (
    DEFAULT_SMALLEST_EFFECT, Interval, margin_verdict, paired_bootstrap, paired_t_interval,
)
from clml_lib.train.config import CLML_FIELDS, EXPERIMENT_FIELDS

from .grid import Grid, Run

#: The abstract's headline gains, by ``dataset`` value.
PAPER_GAINS = {"coco": ("MS-COCO", 1.2), "voc": ("VOC", 1.6), "nus": ("NUS-WIDE", 1.3)}
#: The two protocols: (column title, summary key).
PROTOCOLS = (("val-selected", "test_mAP"), ("best-on-test", "best_test_mAP"))
#: Bootstrap replicates of the collated tables.
N_BOOT = 1000
_NO_SCORES = "n/a (no per-image scores)"


@dataclass
class RunResult:
    """What collation reads from one finished run."""

    summary: dict[str, Any]
    epochs: list[dict[str, Any]]
    config: dict[str, Any]
    scores_path: Path


@dataclass
class Comparison:
    """Baseline vs one +CLML variant of one experiment, per seed."""

    label: str
    variant: str
    dataset: str
    baseline: dict[int, RunResult] = field(default_factory=dict)  # seed -> result
    clml: dict[int, RunResult] = field(default_factory=dict)
    tau: float | None = None
    bootstrap: Interval | None = None
    bootstrap_note: str = _NO_SCORES

    def values(self, side: str, key: str) -> list[float]:
        runs = self.baseline if side == "baseline" else self.clml
        return [runs[s].summary[key] for s in sorted(runs)]

    def paired_seeds(self) -> list[int]:
        return sorted(set(self.baseline) & set(self.clml))

    def gains(self, key: str) -> dict[int, float]:
        """Paired gains ``clml - baseline`` for the seeds present on both sides."""
        return {s: self.clml[s].summary[key] - self.baseline[s].summary[key]
                for s in self.paired_seeds()}

    def interval(self, key: str) -> Interval | None:
        """Mean paired gain with its 95 % t interval (None without a paired seed)."""
        gains = list(self.gains(key).values())
        return paired_t_interval(gains) if gains else None

    def mined_per_epoch(self, side: str = "clml", key: str = "mined") -> list[dict[str, Any]]:
        """Labels mined per epoch in one arm, pooled over seeds: ``epoch, runs, count`` (mean per
        run), ``precision`` = sum true / sum mined, ``recall`` = sum true / sum hidden positives
        (None when undefined).

        Args:
            side: ``'clml'`` or ``'baseline'``.
            key: the epoch entry of ``metrics.json``: ``'mined'`` (CLML's label correction at
                τ) or ``'base_mined'`` (a base loss's own correction, e.g. SPLC's at τ_S).
        """
        rows: dict[int, list[dict[str, Any]]] = {}
        for r in (self.clml if side == "clml" else self.baseline).values():
            for e in r.epochs:
                if isinstance(e.get(key), dict):
                    rows.setdefault(int(e["epoch"]), []).append(e[key])
        out = []
        for epoch in sorted(rows):
            ms = rows[epoch]
            count = sum(m.get("count", 0) for m in ms)
            true = sum(m.get("true", 0) for m in ms)
            missing = sum(m.get("missing", 0) for m in ms)
            out.append({"epoch": epoch, "runs": len(ms), "count": count / len(ms),
                        "precision": true / count if count else None,
                        "recall": true / missing if missing else None})
        return out


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


def _differing(dicts: list[dict[str, Any]]) -> list[str]:
    """Names whose values differ between the given dicts."""
    names = sorted({n for d in dicts for n in d})
    return [n for n in names if len({repr(d.get(n)) for d in dicts}) > 1]


def _values_key(cfg: dict[str, Any], names: list[str]) -> tuple:
    """The values of ``names`` in ``cfg`` as a hashable key (a mapping value such as
    ``base_loss_args`` as its sorted JSON text)."""
    return tuple(json.dumps(cfg[n], sort_keys=True) if isinstance(cfg[n], dict) else cfg[n]
                 for n in names)


def _result(run: Run) -> tuple[RunResult | None, str]:
    metrics, problem = run.metrics_or_problem()
    if problem:
        return None, f"{run.cell} seed {run.seed}: {problem}; counted as not finished"
    summary = (metrics or {}).get("summary", {})
    if not summary.get("finished"):
        return None, f"{run.cell} seed {run.seed}: no finished metrics.json in {run.run_dir}"
    return RunResult(summary, metrics.get("epochs", []), metrics.get("config", {}),
                     run.scores_path), ""


def build_comparisons(grid: Grid) -> tuple[list[Comparison], list[str]]:
    """Pair the finished runs of ``grid`` (see the module docstring).

    Returns:
        The comparisons (in grid order) and notes on runs that could not be paired or did
        not finish.
    """
    seed_fields = set(grid.seed_fields)
    key_fields = [f for f in EXPERIMENT_FIELDS if f not in seed_fields]
    variant_fields = [f for f in CLML_FIELDS if f != "use_clml" and f not in seed_fields]
    groups: dict[tuple, dict[str, Any]] = {}
    notes = []
    for run in grid.runs:
        result, note = _result(run)
        if result is None:
            notes.append(note)
            continue
        cfg = run.config.to_dict()
        group = groups.setdefault(_values_key(cfg, key_fields),
                                  {"baseline": {}, "clml": {}, "cfg": cfg})
        if cfg["use_clml"]:
            side = group["clml"].setdefault(_values_key(cfg, variant_fields), {})
        else:
            side = group["baseline"]
        if run.seed in side:
            notes.append(f"{run.cell} seed {run.seed}: a second run of one experiment, ignored")
            continue
        side[run.seed] = result
    label_extra = _differing([dict(zip(key_fields, k)) for k in groups])
    comparisons = []
    for gk, g in groups.items():
        p = g["cfg"]
        observed = (f"label_list:{Path(p['label_list']).name}" if p["label_list"]
                    else p["setting"])
        label = f"{p['dataset']} / {observed} / {p['base_loss']}"
        extra = [f"{n}={dict(zip(key_fields, gk))[n]}" for n in label_extra
                 if n not in ("dataset", "setting", "base_loss")]
        if extra:
            label += " (" + ", ".join(extra) + ")"
        variants = list(g["clml"]) or [None]
        variant_extra = (_differing([dict(zip(variant_fields, v)) for v in variants])
                         if len(variants) > 1 else [])
        for vk in variants:
            name = "+CLML"
            vd = dict(zip(variant_fields, vk)) if vk is not None else {}
            if variant_extra:
                name += " (" + ", ".join(f"{n}={vd[n]}" for n in variant_extra) + ")"
            comparisons.append(Comparison(label, name, p["dataset"], dict(g["baseline"]),
                                          dict(g["clml"].get(vk, {})) if vk is not None else {},
                                          tau=vd.get("tau")))
    return comparisons, notes


def _load_scores(path: Path):
    """``(scores, labels)`` tensors of a ``test_scores.pt`` (weights-only load), or raise
    ValueError naming the file and the problem."""
    import torch

    try:
        doc = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, not a torch file, or holds objects
        raise ValueError(f"{path}: not readable with torch.load(weights_only=True): "
                         f"{type(exc).__name__}: {exc}") from None
    if not isinstance(doc, dict) or not {"scores", "labels"} <= set(doc):
        raise ValueError(f"{path}: expected a dict with 'scores' and 'labels'")
    scores, labels = doc["scores"], doc["labels"]
    if not (torch.is_tensor(scores) and torch.is_tensor(labels)) or scores.dim() != 2 \
            or scores.shape != labels.shape:
        raise ValueError(f"{path}: 'scores' and 'labels' must be tensors of one shape (N, C)")
    return scores.double().numpy(), labels.double().numpy()


def add_bootstrap(c: Comparison, n_boot: int = N_BOOT, seed: int = 0) -> None:
    """Set ``c.bootstrap`` from the paired runs' ``test_scores.pt`` (val-selected model), or
    ``c.bootstrap_note`` saying why it is not available."""
    seeds = c.paired_seeds()
    if not seeds:
        c.bootstrap_note = "n/a (no paired seed)"
        return
    missing = [s for s in seeds
               if not (c.baseline[s].scores_path.is_file() and c.clml[s].scores_path.is_file())]
    if missing:
        c.bootstrap_note = _NO_SCORES
        return
    arms = []
    try:
        for s in seeds:
            sb, yb = _load_scores(c.baseline[s].scores_path)
            sc, yc = _load_scores(c.clml[s].scores_path)
            if yb.shape != yc.shape or (yb != yc).any():
                raise ValueError(f"seed {s}: the two arms were scored on different test labels")
            arms.append((sb, sc, yb))
        c.bootstrap = paired_bootstrap(arms, n_boot=n_boot, seed=seed)
    except ValueError as exc:
        c.bootstrap_note = f"n/a ({exc})"


def _paper(c: Comparison) -> str:
    paper = PAPER_GAINS.get(c.dataset)
    return f"+{paper[1]:.1f} ({paper[0]})" if paper else "n/a (not in the paper)"


def _paired(comparisons: list[Comparison]) -> list[Comparison]:
    """The comparisons with a +CLML arm (a grid without one, e.g. a ceiling, has none)."""
    return [c for c in comparisons if c.clml]


def render_compact_table(comparisons: list[Comparison],
                         delta: float = DEFAULT_SMALLEST_EFFECT) -> str:
    """The compact result table (val-selected protocol), usable verbatim in the README: one row
    per comparison with n, baseline, +CLML, the gain with its 95 % t interval, the bootstrap
    interval, the practical verdict against plus or minus ``delta``
    (:func:`clml_lib.stats.margin_verdict`)
    and the labels mined in the last epoch (CLML's correction; a base loss's own, e.g. SPLC's,
    when it has one)."""
    lines = ["| experiment | n | baseline mAP | +CLML mAP | gain [95 % t CI] | "
             f"bootstrap 95 % CI | verdict (δ = {delta:g}) | mined, last epoch: CLML τ (P / R) | "
             "mined, last epoch: base loss's own (P / R) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in _paired(comparisons):
        iv = c.interval("test_mAP")
        base, clml = c.values("baseline", "test_mAP"), c.values("clml", "test_mAP")
        boot = (f"[{c.bootstrap.lo:+.2f}, {c.bootstrap.hi:+.2f}]" if c.bootstrap is not None
                else c.bootstrap_note)
        mined = c.mined_per_epoch()
        last = _mined_text(mined[-1], c.tau) if mined else "n/a"
        own = c.mined_per_epoch("baseline", "base_mined")
        own_clml = c.mined_per_epoch("clml", "base_mined")
        own_text = (f"{_mined_text(own[-1], None)} / +CLML arm {_mined_text(own_clml[-1], None)}"
                    if own and own_clml else "none (no own correction)")
        lines.append(
            f"| {c.label} {c.variant} | {iv.n if iv else 0} | {fmt(base)} | {fmt(clml)} | "
            f"{iv.text() if iv else 'n/a'} | {boot} | "
            f"{margin_verdict(iv, delta) if iv else 'n/a'} | {last} | {own_text} |")
    return "\n".join(lines)


def render_single_arm_table(comparisons: list[Comparison]) -> str:
    """Experiments with only a baseline arm (e.g. the full-label ceiling): n, test mAP mean ± sd
    and the 95 % t interval of the mean over seeds (val-selected and best-on-test); empty text
    when every experiment is paired."""
    rows = [c for c in comparisons if not c.clml and c.baseline]
    if not rows:
        return ""
    lines = ["| experiment | n | test mAP, val-selected | 95 % t CI of the mean | "
             "best-on-test |", "|---|---|---|---|---|"]
    for c in rows:
        vals = c.values("baseline", "test_mAP")
        iv = paired_t_interval(vals)
        ci = f"[{iv.lo:.2f}, {iv.hi:.2f}]" if iv.lo is not None else "n/a (one seed)"
        lines.append(f"| {c.label} | {len(vals)} | {fmt(vals)} | {ci} | "
                     f"{fmt(c.values('baseline', 'best_test_mAP'))} |")
    return "\n".join(lines)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.0f} %"


def _mined_text(m: dict[str, Any], tau: float | None) -> str:
    at = f" at τ = {tau:g}" if tau is not None else ""
    if m["count"] == 0:
        return f"0{at}"
    return f"{m['count']:.1f} per run{at} ({_pct(m['precision'])} / {_pct(m['recall'])})"


def _mined_line(mined: list[dict[str, Any]]) -> str:
    return "; ".join(f"epoch {m['epoch']}: {_mined_text(m, None)}" for m in mined)


def render_mined(comparisons: list[Comparison]) -> str:
    """The labels mined per epoch, pooled over seeds (count per run, precision and recall against
    the hidden labels): by CLML's correction in each +CLML arm, and by a base loss's own
    correction (SPLC's) in both arms where the base loss has one; as Markdown."""
    lines = ["Per epoch: labels mined per run (observed negatives scored above the threshold), "
             "precision (share of them that the simulation had hidden) and recall (share of the "
             "hidden positives mined).", ""]
    for c in _paired(comparisons):
        mined = c.mined_per_epoch()
        lines.append(f"* **{c.label} {c.variant}**, CLML correction: " + (
            _mined_line(mined) if mined else "no +CLML run finished"))
        if mined and all(m["count"] == 0 for m in mined):
            lines.append(f"  No label was mined in any epoch at τ = {c.tau:g}: no observed "
                         "negative scored above τ." if c.tau is not None else "  None mined.")
        for side, arm in (("baseline", "baseline arm"), ("clml", "+CLML arm")):
            own = c.mined_per_epoch(side, "base_mined")
            if own:
                lines.append(f"* **{c.label} {c.variant}**, the base loss's own correction, "
                             f"{arm}: {_mined_line(own)}")
    return "\n".join(lines)


def chance_level(comparisons: list[Comparison]) -> float | None:
    """The chance mAP (:func:`clml_lib.metrics.chance_map`) of the test labels saved by the first
    run that has ``test_scores.pt``; None when none has."""
    for c in comparisons:
        for r in list(c.baseline.values()) + list(c.clml.values()):
            if r.scores_path.is_file():
                try:
                    _, labels = _load_scores(r.scores_path)
                except ValueError:
                    continue
                return chance_map(labels)
    return None


def render_markdown(grid: Grid, comparisons: list[Comparison], notes: list[str],
                    failures: list[str], plot_name: str | None, n_boot: int = N_BOOT,
                    chance: float | None = None) -> str:
    """The text of ``results/<grid>.md``."""
    delta = grid.smallest_effect
    finished = sum(len(c.baseline) + len(c.clml) for c in comparisons)
    seed_text = " and ".join(f"`{f}`" for f in grid.seed_fields)
    chance_text = (f"Chance level (the expected mAP of scores that carry no information, "
                   f"on these test labels): **{chance:.2f}**." if chance is not None else
                   "Chance level: n/a (no run saved its test scores).")
    paired = _paired(comparisons)
    lines = [
        f"# Grid `{grid.name}`" + (": baseline vs +CLML" if paired else ""),
        "",
        grid.description,
        "",
        f"Runs with a finished `metrics.json`: {finished} of {len(grid.runs)} planned "
        f"(seeds {', '.join(map(str, grid.seeds))}). Test mAP in %. A grid seed sets {seed_text}"
        ": the missing-label draw, the validation carve-out, the initialisation, the batch order "
        "and the augmentation; the baseline and +CLML run of one seed share them (paired).",
        "",
        chance_text,
        "",
    ]
    if paired:
        lines += [
            "* **gain**: +CLML minus baseline, paired by seed; mean with its 95 % Student-t "
            "interval over the n paired seeds.",
            "* **bootstrap**: 95 % percentile interval of the mean gain when the test images of "
            f"every seed are resampled with replacement ({n_boot} replicates, one draw shared by "
            "both arms), each arm's mAP recomputed from its saved per-image test scores.",
            f"* **verdict**: the t interval read against 0 and against the smallest effect of "
            f"interest δ = {delta:g} mAP declared by the grid (`smallest_effect`): *better by at "
            "least δ* (lower bound ≥ δ), *better, by less than δ* (0 < lower, upper < δ), *within "
            "±δ* (the interval holds 0 and lies inside ±δ: no change that matters), *worse ...* "
            "likewise, *inconclusive* (the interval holds 0 and reaches past ±δ: more seeds "
            "needed).",
            "* **val-selected**: the epoch and weights (raw or EMA) chosen on a validation split "
            "carved from the training set, scored once on test (honest).",
            "* **best-on-test**: the best test mAP over all epochs and both weights, as the "
            "reference script reports it (model selection on the test set; optimistic).",
            "* **mined**: labels turned positive by a correction in the last epoch, per run "
            "(precision / recall against the labels the simulation hid): CLML's label correction "
            "at τ in the +CLML arm, and the base loss's own correction (SPLC's, at its τ_S) in "
            "the baseline arm / the +CLML arm.",
            "",
            "## Result (val-selected)",
            "",
            render_compact_table(comparisons, delta),
            "",
        ]
    single = render_single_arm_table(comparisons)
    if single:
        lines += ["## Runs without a +CLML arm", "", single, ""]
    if paired:
        has_paper = any(c.dataset in PAPER_GAINS for c in paired)
        lines += [
            "## Both protocols",
            "",
            "| experiment | variant | protocol | n | baseline | +CLML | gain [95 % t CI] | "
            "verdict |" + (" paper |" if has_paper else ""),
            "|---|---|---|---|---|---|---|---|" + ("---|" if has_paper else ""),
        ]
        for c in paired:
            for protocol, key in PROTOCOLS:
                iv = c.interval(key)
                lines.append(
                    f"| {c.label} | {c.variant} | {protocol} | {iv.n if iv else 0} | "
                    f"{fmt(c.values('baseline', key))} | {fmt(c.values('clml', key))} | "
                    f"{iv.text() if iv else 'n/a'} | {margin_verdict(iv, delta) if iv else 'n/a'} |"
                    + (f" {_paper(c)} |" if has_paper else ""))
        if has_paper:
            lines += ["", "*paper*: the abstract's headline gain for that dataset (+1.2 MS-COCO, "
                      "+1.6 VOC, +1.3 NUS-WIDE); the abstract does not say for which base loss "
                      "or setting."]
        lines += ["", "## Labels mined by correction (pooled over seeds)", "",
                  render_mined(comparisons)]
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
                return f"{run.summary[key]:.2f}" if run else "missing"

            def gain(key):
                return f"{m.summary[key] - b.summary[key]:+.2f}" if (b and m) else "n/a"

            lines.append(
                f"| {c.label} | {c.variant} | {s} | {cell(b, 'test_mAP')} | "
                f"{cell(m, 'test_mAP')} | {gain('test_mAP')} | {cell(b, 'best_test_mAP')} | "
                f"{cell(m, 'best_test_mAP')} | {gain('best_test_mAP')} | "
                f"{cell(b, 'optimism_gap')} / {cell(m, 'optimism_gap')} |"
            )
    if plot_name:
        lines += ["", f"![per-seed gains with their intervals]({plot_name})"]
    if notes or failures:
        lines += ["", "## Missing or failed runs", ""]
        lines += [f"* FAILED {f}" for f in failures] + [f"* {n}" for n in notes]
    return "\n".join(lines) + "\n"


def plot_comparisons(comparisons: list[Comparison], path: Path) -> Path:
    """Per-seed gains (dots) with the mean and its 95 % t interval (bar) and, val-selected, the
    bootstrap interval (thin bar beside it), one panel per protocol; saved as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    width = max(6.0, 1.0 * len(comparisons) + 2)
    fig, axes = plt.subplots(1, 2, figsize=(2 * width, 4.5), squeeze=False)
    for ax, (protocol, key) in zip(axes[0], PROTOCOLS):
        ax.axhline(0.0, color="grey", lw=0.8)
        for x, c in enumerate(comparisons):
            gains = list(c.gains(key).values())
            ax.plot([x - 0.1] * len(gains), gains, "o", color="tab:blue", alpha=0.6, ms=4)
            iv = c.interval(key)
            if iv is not None and iv.lo is not None:
                ax.errorbar(x + 0.05, iv.mean, yerr=[[iv.mean - iv.lo], [iv.hi - iv.mean]],
                            fmt="s", color="black", capsize=4)
            elif iv is not None:
                ax.plot(x + 0.05, iv.mean, "s", color="black")
            if key == "test_mAP" and c.bootstrap is not None:
                b = c.bootstrap
                ax.errorbar(x + 0.2, b.mean, yerr=[[b.mean - b.lo], [b.hi - b.mean]], fmt="none",
                            color="tab:orange", capsize=3, lw=1)
        ax.set_xticks(range(len(comparisons)))
        many = len(comparisons) > 3
        ax.set_xticklabels([f"{c.label}\n{c.variant}" for c in comparisons],
                           rotation=30 if many else 0, ha="right" if many else "center",
                           fontsize=8)
        ax.set_ylabel("gain in test mAP (+CLML - baseline)")
        title = "dots: seeds; black: mean, 95 % t CI"
        if key == "test_mAP":
            title += "; orange: bootstrap CI"
        ax.set_title(f"{protocol}: {title}", fontsize=9)
        ax.set_xlim(-0.6, len(comparisons) - 0.4)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=100, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def collate(grid: Grid, failures: list[str] | None = None, n_boot: int = N_BOOT,
            comparisons: list[Comparison] | None = None) -> tuple[Path, Path | None, str]:
    """Write ``<grid out>/results/<grid>.md`` (and ``.png`` when any run finished), atomically.

    A run whose ``metrics.json`` is unreadable or damaged (a key missing, a mAP that is not a
    number) is left out and named, with the problem, under "Missing or failed runs"; the tables
    hold the runs that are sound.

    Args:
        comparisons: empty list to be filled with the grid's comparisons (bootstrap included),
            for a caller that prints more of them without computing the bootstrap again.

    Returns:
        ``(markdown path, png path or None, markdown text)``.
    """
    built, notes = build_comparisons(grid)
    for c in built:
        add_bootstrap(c, n_boot=n_boot)
    if comparisons is not None:
        comparisons[:] = built
    comparisons = built
    png = None
    if _paired(comparisons):
        png = plot_comparisons(_paired(comparisons), grid.results_dir / f"{grid.name}.png")
    text = render_markdown(grid, comparisons, notes, list(failures or []),
                           png.name if png else None, n_boot, chance=chance_level(comparisons))
    md = atomic_write_text(grid.results_dir / f"{grid.name}.md", text)
    return md, png, text
