r"""Statistics of a paired comparison (baseline vs +CLML over seeds), for the grid tables.

A *seed* of a grid sets both ``seed`` and ``split_seed`` (see ``docs/configuration.md``): it draws
which positive labels are hidden and which training images form the validation split, and it
seeds the initialisation, the batch order and the augmentation. The baseline and the +CLML run of
one seed share all of these, so their difference $g_s = \mathrm{mAP}^{+CLML}_s -
\mathrm{mAP}^{base}_s$ is a paired observation, and the test images are the same for every seed.

* :func:`paired_t_interval`: mean gain $\bar g$ and the 95 % Student-t interval
  $\bar g \pm t_{0.975,\,n-1}\, s_g / \sqrt n$ over the $n$ paired seeds (it states how much the
  gain varies with the seed: labels hidden, initialisation, data order).
* :func:`paired_bootstrap`: a paired bootstrap over test images pooled over seeds: in each replicate
  the test images of every seed are resampled with replacement (one draw shared by both arms of that
  seed), each arm's mAP is recomputed from the saved per-image scores, and the replicate's gain is
  the mean over seeds of the paired differences; the interval is the percentile interval. It
  states how much the gain depends on which test images were drawn.
* :func:`verdict`: follows from the t interval: "CLML better" (lower bound > 0), "CLML worse"
  (upper bound < 0), else "no difference detected".
* :func:`margin_verdict`: the practical verdict, from the same interval read against 0 and against
  a smallest effect of interest $\delta$ declared before the runs (a grid's
  ``smallest_effect``): is the change large enough to matter, and in which direction
  (:data:`MARGIN_VERDICTS`; docs/evaluation.md explains the categories).

The mAP recomputed here is :func:`clml_lib.metrics.mean_average_precision` with
``ties='group'`` and ``empty='skip'`` (as the engine scores the test split), computed for many
resamples at once with per-image weights (a resample = how many times each image was drawn).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .checks import check_label_codes

#: Verdict texts, in the order better / worse / undecided / too few seeds.
VERDICTS = ("CLML better", "CLML worse", "no difference detected", "n/a (fewer than 2 seeds)")


#: Smallest effect of interest $\delta$ in mAP points when a grid declares none.
DEFAULT_SMALLEST_EFFECT = 0.5

#: Practical verdicts of :func:`margin_verdict`, keyed by a short code.
MARGIN_VERDICTS = {
    "better_big": "better by at least δ",
    "better_small": "better, by less than δ",
    "better": "better (by more or less than δ: undecided)",
    "within": "within ±δ (no change that matters)",
    "worse_small": "worse, by less than δ",
    "worse_big": "worse by at least δ",
    "worse": "worse (by more or less than δ: undecided)",
    "inconclusive": "inconclusive (more seeds needed)",
    "na": "n/a (fewer than 2 seeds)",
}


#: Simulated pairs of replications in :func:`replication_agreement` unless told otherwise.
REPLICATION_DRAWS = 20000

#: The size class of each practical verdict: does the change reach δ? (The question the README's
#: headline answers; the verdict adds the direction against 0.) Texts in :data:`SIZE_CLASSES`.
SIZE_OF_VERDICT = {
    "better_big": "better_big", "worse_big": "worse_big",
    "better_small": "below", "within": "below", "worse_small": "below",
    "better": "undecided", "worse": "undecided", "inconclusive": "undecided", "na": "na",
}

#: Texts of the size classes of :data:`SIZE_OF_VERDICT`.
SIZE_CLASSES = {
    "better_big": "better by at least δ",
    "worse_big": "worse by at least δ",
    "below": "changes by less than δ",
    "undecided": "undecided whether the change reaches δ",
    "na": "n/a (fewer than 2 seeds)",
}


@dataclass(frozen=True)
class Interval:
    """A mean with a two-sided interval (``lo``, ``hi`` None when it cannot be computed)."""

    mean: float
    lo: float | None
    hi: float | None
    n: int

    def text(self, signed: bool = True) -> str:
        """``"+0.12 [-0.05, +0.29]"`` (the interval omitted when undefined)."""
        f = "{:+.2f}" if signed else "{:.2f}"
        if self.lo is None or self.hi is None:
            return f.format(self.mean)
        return f"{f.format(self.mean)} [{f.format(self.lo)}, {f.format(self.hi)}]"


def _t_quantile(p: float, df: int) -> float:
    """Quantile ``p`` of Student's t with ``df`` degrees of freedom (scipy.stats.t.ppf)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def paired_t_interval(gains: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean of the paired gains $g_s$ and its Student-t interval.

    Args:
        gains: (n,) paired differences, one per seed.
        confidence: two-sided level in (0, 1).

    Returns:
        :class:`Interval` with ``lo``/``hi`` = $\\bar g \\mp t_{(1+c)/2,\\,n-1}\\, s/\\sqrt n$
        (sample std, ddof 1); ``lo``/``hi`` None for n = 1.

    Raises:
        ValueError: no gains, a non-finite gain, or ``confidence`` outside (0, 1).
    """
    g = np.asarray(gains, dtype=np.float64).reshape(-1)  # (n,)
    if g.size == 0:
        raise ValueError("paired_t_interval needs at least one paired gain, got none")
    if not np.isfinite(g).all():
        raise ValueError(f"paired gains must be finite, got {g.tolist()}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    n, mean = g.size, float(g.mean())
    if n < 2:
        return Interval(mean, None, None, n)
    half = _t_quantile((1 + confidence) / 2, n - 1) * float(g.std(ddof=1)) / math.sqrt(n)
    return Interval(mean, mean - half, mean + half, n)


def verdict(interval: Interval) -> str:
    """"CLML better" when the interval lies above 0, "CLML worse" when below, else "no difference
    detected"; "n/a (fewer than 2 seeds)" when it has no bounds."""
    if interval.lo is None or interval.hi is None:
        return VERDICTS[3]
    if interval.lo > 0:
        return VERDICTS[0]
    if interval.hi < 0:
        return VERDICTS[1]
    return VERDICTS[2]


def _check_delta(delta: float) -> None:
    if isinstance(delta, bool) or not isinstance(delta, (int, float)) \
            or not math.isfinite(delta) or delta <= 0:
        raise ValueError(f"the smallest effect of interest must be a finite number > 0, "
                         f"got {delta!r}")


def _margin_codes(lo: np.ndarray, hi: np.ndarray, delta: float) -> np.ndarray:
    """:func:`margin_code` for many intervals at once: ``lo``, ``hi`` float arrays of one shape
    (bounds, lo <= hi) -> array of codes of that shape. The one place the rules are written."""
    lo, hi = np.asarray(lo, dtype=np.float64), np.asarray(hi, dtype=np.float64)
    return np.select(
        [(lo > 0) & (lo >= delta), (lo > 0) & (hi < delta), lo > 0,
         (hi < 0) & (hi <= -delta), (hi < 0) & (lo > -delta), hi < 0,
         (lo > -delta) & (hi < delta)],
        ["better_big", "better_small", "better", "worse_big", "worse_small", "worse", "within"],
        default="inconclusive")


def margin_code(interval: Interval, delta: float) -> str:
    r"""The key of :data:`MARGIN_VERDICTS` for a gain interval $[l, h]$ and a margin $\delta > 0$.

    * $l \ge \delta$: better by at least δ; $0 < l$ and $h < \delta$: better, by less than δ;
      $0 < l < \delta \le h$: better, size undecided (and the mirror images for worse);
    * $-\delta < l \le 0 \le h < \delta$: within ±δ (an equivalence claim at the interval's
      level);
    * otherwise (the interval holds 0 and reaches past +δ or -δ): inconclusive.

    Args:
        interval: mean gain with its two-sided interval (e.g. :func:`paired_t_interval`).
        delta: smallest effect of interest δ (> 0, finite), in the gain's units (mAP points).

    Raises:
        ValueError: ``delta`` not a finite number > 0.
    """
    _check_delta(delta)
    lo, hi = interval.lo, interval.hi
    if lo is None or hi is None:
        return "na"
    return str(_margin_codes(np.float64(lo), np.float64(hi), delta))


def margin_verdict(interval: Interval, delta: float = DEFAULT_SMALLEST_EFFECT) -> str:
    r"""The practical verdict text for ``interval`` against 0 and ±δ (see :func:`margin_code`),
    with δ written out, e.g. ``"within ±0.5 (no change that matters)"``."""
    text = MARGIN_VERDICTS[margin_code(interval, delta)]
    return text.replace("δ", f"{delta:g}")


def replication_agreement(mean: float, sd: float, n: int,
                          delta: float = DEFAULT_SMALLEST_EFFECT, confidence: float = 0.95,
                          draws: int = REPLICATION_DRAWS, seed: int = 0,
                          level: str = "verdict") -> float:
    r"""Probability that two independent replications of a paired comparison, of ``n`` seeds
    each, get the same practical verdict (:func:`margin_code` of their :func:`paired_t_interval`).

    Model: the paired gains $g_s$ of each replication are drawn independently from
    $\mathcal N(\mu, \sigma^2)$. This is what happens when the same grid runs on another machine:
    a change of float kernels sends every run along another trajectory, so the gains of a seed
    are a new draw (docs/teaching_regime.md §3 measures it). With $\mu$ and $\sigma$ estimated
    from runs already made (a plug-in), it answers "how many seeds would make this verdict
    repeat?". Computed by simulation (``draws`` pairs of replications, seeded): the standard
    error of the returned fraction is at most $0.5/\sqrt{\text{draws}}$.

    Args:
        mean: $\mu$, the mean paired gain (mAP points). sd: $\sigma \ge 0$, the standard
            deviation of one paired gain. n: seeds per replication (>= 2).
        delta: the smallest effect of interest δ (> 0). confidence: level of the t interval.
        draws: simulated pairs of replications (>= 100). seed: numpy ``default_rng`` seed.
        level: ``'verdict'`` (the practical verdict, against 0 and ±δ) or ``'size'`` (its size
            class, :data:`SIZE_OF_VERDICT`: does the change reach δ?).

    Returns:
        float in [0, 1]: $\sum_k p_k^2$ estimated, $p_k$ the probability of verdict (or size
        class) $k$.

    Raises:
        ValueError: non-finite ``mean``/``sd``, ``sd`` < 0, ``n`` < 2, ``draws`` < 100, bad
            ``delta`` or ``confidence``, unknown ``level``.
    """
    _check_delta(delta)
    if level not in ("verdict", "size"):
        raise ValueError(f"level must be 'verdict' or 'size', got {level!r}")
    if not (math.isfinite(mean) and math.isfinite(sd)) or sd < 0:
        raise ValueError(f"mean and sd must be finite with sd >= 0, got mean={mean!r}, sd={sd!r}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 2:
        raise ValueError(f"n must be an int >= 2 (a t interval needs two seeds), got {n!r}")
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 100:
        raise ValueError(f"draws must be an int >= 100, got {draws!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    g = mean + sd * rng.standard_normal((2, draws, n))  # (2, draws, n): two replications
    m, s = g.mean(axis=2), g.std(axis=2, ddof=1)  # (2, draws)
    half = _t_quantile((1 + confidence) / 2, n - 1) * s / math.sqrt(n)  # (2, draws)
    codes = _margin_codes(m - half, m + half, delta)  # (2, draws)
    if level == "size":
        codes = np.vectorize(SIZE_OF_VERDICT.__getitem__, otypes=[object])(codes)
    return float(np.mean(codes[0] == codes[1]))


class _SortedScores:
    """The per-class ranking of one arm's test scores, computed once for all resamples."""

    def __init__(self, scores: np.ndarray, labels: np.ndarray):
        n, c = scores.shape
        self.order = np.argsort(-scores, axis=0, kind="stable")  # (N, C) descending per class
        s_sorted = np.take_along_axis(scores, self.order, axis=0)  # (N, C)
        t_sorted = np.take_along_axis(labels, self.order, axis=0)  # (N, C)
        is_end = np.ones((n, c), dtype=bool)  # last position of each block of tied scores
        is_end[:-1] = s_sorted[1:] != s_sorted[:-1]
        #: per class: ranked positions of the positives, and the end of the tied block of each
        #: (a positive in a tied block gets the precision at the block's end: ties='group')
        self.pos: list[np.ndarray] = []
        self.pos_end: list[np.ndarray] = []
        for k in range(c):
            ends = np.flatnonzero(is_end[:, k])  # (blocks,)
            block = np.cumsum(np.r_[0, is_end[:-1, k]])  # (N,) block id of each position
            pos = np.flatnonzero(t_sorted[:, k] == 1)  # (P_k,)
            self.pos.append(pos)
            self.pos_end.append(ends[block[pos]])

    def weighted_map(self, weights: np.ndarray) -> np.ndarray:
        """mAP (in %) for each column of ``weights`` (N, B): image i counted ``weights[i, b]``
        times in resample b.

        AP_k = sum over the positives j of w_j * TP_j / R_j, divided by sum_j w_j, with R_j the
        weighted number of images ranked up to j's tied block and TP_j the weighted positives among
        them. A class without a positive in a resample is left out of that resample's mean (nan
        when no class has one). Images are rows so that gathers and running sums work on whole
        contiguous rows.
        """
        b, c = weights.shape[1], self.order.shape[1]
        ap = np.full((c, b), np.nan)
        for k in range(c):
            pos, end = self.pos[k], self.pos_end[k]
            if pos.size == 0:
                continue
            w = weights[self.order[:, k]]  # (N, B) in ranked order
            rank = np.cumsum(w, axis=0)  # (N, B) weighted images up to each position
            wp = w[pos]  # (P, B) weights of the positives
            tp_cum = np.cumsum(wp, axis=0)  # (P, B) weighted positives up to each positive
            if np.array_equal(end, pos):  # no tie involving a positive
                tp, r = tp_cum, rank[pos]
            else:  # positives up to the end of each positive's block
                last_pos = np.searchsorted(pos, end, side="right") - 1  # (P,)
                tp, r = tp_cum[last_pos], rank[end]
            n_pos = tp_cum[-1]  # (B,)
            prec = np.divide(tp, r, out=np.zeros_like(tp), where=r > 0)  # (P, B)
            with np.errstate(invalid="ignore", divide="ignore"):
                ap[k] = np.where(n_pos > 0, (wp * prec).sum(axis=0) / n_pos, np.nan)
        counted = np.isfinite(ap).sum(axis=0)  # (B,)
        total = np.where(np.isfinite(ap), ap, 0.0).sum(axis=0)
        return np.where(counted > 0, 100.0 * total / np.maximum(counted, 1), np.nan)


def _as_scores(name: str, x, shape: tuple[int, ...] | None = None) -> np.ndarray:
    a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, C), got shape {a.shape}")
    if shape is not None and a.shape != shape:
        raise ValueError(f"{name} has shape {a.shape}, expected {shape} (the labels' shape)")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds non-finite values")
    return a


def paired_bootstrap(
    arms: Sequence[tuple[object, object, object]],
    n_boot: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
    chunk: int = 250,
) -> Interval:
    """Paired bootstrap of the mean mAP gain over test images, pooled over seeds.

    Args:
        arms: one ``(baseline_scores, clml_scores, labels)`` per seed: scores (N_s, C) real
            (logits or probabilities; only the per-class ranking matters), labels (N_s, C) in
            {0, 1}.
        n_boot: bootstrap replicates (>= 100).
        confidence: two-sided level of the percentile interval.
        seed: seed of the resampling (numpy ``default_rng``).
        chunk: replicates computed at once (memory ~ chunk * N * 8 bytes per array)).

    Returns:
        :class:`Interval`: ``mean`` = the observed mean gain over seeds (mAP in %), ``lo``/``hi``
        the percentile interval of the replicate gains, ``n`` = number of seeds.

    Raises:
        ValueError: no seeds, mismatched shapes, labels outside {0, 1}, non-finite scores, or bad
            ``n_boot`` / ``confidence``.
    """
    if not arms:
        raise ValueError("paired_bootstrap needs at least one seed, got none")
    if not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"n_boot must be an int >= 100, got {n_boot!r}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    observed, reps = [], np.zeros(n_boot)  # reps: (n_boot,) sum over seeds of replicate gains
    for i, (base, clml, labels) in enumerate(arms):
        y = _as_scores(f"seed {i} labels", labels)
        check_label_codes(y, f"seed {i} labels")
        sb = _SortedScores(_as_scores(f"seed {i} baseline scores", base, y.shape), y)
        sc = _SortedScores(_as_scores(f"seed {i} +CLML scores", clml, y.shape), y)
        n = y.shape[0]
        ones = np.ones((n, 1))
        observed.append(float(sc.weighted_map(ones)[0] - sb.weighted_map(ones)[0]))
        for start in range(0, n_boot, chunk):
            b = min(chunk, n_boot - start)
            idx = rng.integers(0, n, size=(n, b))  # (N, b): column = one resample
            flat = (idx * b + np.arange(b)[None, :]).ravel()
            w = np.bincount(flat, minlength=n * b).reshape(n, b).astype(np.float64)  # draw counts
            reps[start:start + b] += sc.weighted_map(w) - sb.weighted_map(w)
    reps /= len(arms)
    alpha = (1 - confidence) / 2
    lo, hi = np.nanquantile(reps, [alpha, 1 - alpha])
    return Interval(float(np.mean(observed)), float(lo), float(hi), len(arms))


__all__ = [
    "DEFAULT_SMALLEST_EFFECT", "Interval", "MARGIN_VERDICTS", "REPLICATION_DRAWS", "SIZE_CLASSES",
    "SIZE_OF_VERDICT", "VERDICTS", "margin_code", "margin_verdict", "paired_t_interval",
    "paired_bootstrap", "replication_agreement", "verdict",
]
