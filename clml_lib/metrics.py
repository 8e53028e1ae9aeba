"""Multi-label evaluation metrics: mAP (as the reference computes it), per-class AP, and the
threshold metrics CP / CR / CF1 / OP / OR / OF1.

Conventions (the decisions taken here, see docs/method.md §6 item 13 and docs/evaluation.md §5):

* **mAP** is the mean over classes of the per-class average precision, where the AP of class ``c``
  is the mean, over the positives of ``c``, of the precision at that positive's rank when the
  images are sorted by descending score (the ASL / Hill / CLML reference implementation), times
  100. Without tied scores this equals ``sklearn.metrics.average_precision_score`` per class.
* **Ties.** The reference sorts with ``argsort`` and so orders tied scores arbitrarily. Here
  ``ties='group'`` (default) gives every positive inside a block of tied scores the precision at the
  end of the block: the value does not depend on the order of the samples and equals scikit-learn's
  AP with ties. ``ties='first'`` breaks ties by sample index (a deterministic version of the
  reference's arbitrary order). Ties are common in practice: ``sigmoid`` saturates to exactly 1.0 in
  float32 for logits above ~17, which is why :mod:`clml_lib.train` ranks by the logits.
* **Classes without a positive** have no AP (0/0). The reference returns 0 for them, which drags mAP
  down; scikit-learn returns 0 with a warning. Here ``empty='raise'`` (default) raises a ValueError
  naming the classes, ``empty='skip'`` gives them AP ``nan`` and leaves them out of the mean (the
  number skipped is returned by :func:`average_precision_per_class`), ``empty='zero'`` counts them
  as AP 0 like the reference.
* **Threshold metrics** follow the ML-GCN definitions: per class, precision = TP/(TP+FP) and
  recall = TP/(TP+FN); CP and CR are their means over classes; **CF1 = 2 CP CR / (CP + CR)** (from
  the averaged CP and CR); OP, OR, OF1 pool the counts over all classes. The reference
  ``validate.py`` instead reports the *mean of the per-class F1* as "F_C"; it is exposed here as
  ``macro_F1``. A class with no predicted positive has precision 0 (scikit-learn's
  ``zero_division=0``). All values are in [0, 100].
"""

from __future__ import annotations


import numpy as np
import torch

from .checks import check_label_codes

_TIES = ("group", "first")
_EMPTY = ("raise", "skip", "zero")


def _as_float64(name: str, x) -> np.ndarray:
    """Convert a tensor / array / nested list to a float64 NumPy array (no copy of semantics)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    else:
        x = np.asarray(x, dtype=np.float64)
    return x


def _check_inputs(scores, targets) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``scores`` (N, C) finite reals and ``targets`` (N, C) in {0, 1}.

    Raises:
        ValueError: not 2-D, shapes differ, N == 0 or C == 0, non-finite scores, targets outside
            {0, 1} (e.g. -1 "unknown" codes: evaluate against the full ground truth instead).
    """
    s = _as_float64("scores", scores)
    t = _as_float64("targets", targets)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (N, C), got shape {tuple(s.shape)}")
    if t.ndim != 2:
        raise ValueError(f"targets must be 2-D (N, C), got shape {tuple(t.shape)}")
    if s.shape != t.shape:
        raise ValueError(
            f"scores and targets must have the same shape, got {tuple(s.shape)} vs {tuple(t.shape)}"
        )
    if s.shape[0] == 0 or s.shape[1] == 0:
        raise ValueError(f"need at least one sample and one class, got shape {tuple(s.shape)}")
    if not np.isfinite(s).all():
        bad = np.argwhere(~np.isfinite(s))[0]
        raise ValueError(
            f"scores contain NaN/inf ({int((~np.isfinite(s)).sum())} entries, first at "
            f"[{bad[0]}, {bad[1]}] = {s[bad[0], bad[1]]})"
        )
    check_label_codes(
        t,
        "targets",
        hint="; -1 'unknown' codes are not allowed in evaluation targets: "
        "use the full ground truth",
    )
    return s, t


def _ap_one_class(s: np.ndarray, t: np.ndarray, ties: str) -> float:
    """AP of one class: mean precision at each positive's rank.

    Shapes: scores ``s`` (N,), targets ``t`` (N,)."""
    order = np.argsort(-s, kind="stable")  # descending; ties keep sample-index order
    s_sorted = s[order]  # (N,)
    t_sorted = t[order]  # (N,)
    tp = np.cumsum(t_sorted)  # (N,) positives among the first i+1
    rank = np.arange(1, len(s) + 1, dtype=np.float64)  # (N,)
    if ties == "group":
        # index of the last element of each tied block, for every position
        is_end = np.ones(len(s), dtype=bool)
        is_end[:-1] = s_sorted[1:] != s_sorted[:-1]
        ends = np.flatnonzero(is_end)  # (B,)
        block = np.cumsum(np.r_[0, is_end[:-1]])  # (N,) block id of each position
        last = ends[block]
        precision = tp[last] / rank[last]  # (N,)
    else:
        precision = tp / rank  # (N,)
    n_pos = t_sorted.sum()
    return float((precision * t_sorted).sum() / n_pos)


def average_precision_per_class(
    scores, targets, ties: str = "group", empty: str = "raise"
) -> tuple[np.ndarray, int]:
    """Per-class average precision AP_c in [0, 1], as the reference's ``mAP`` helper computes it.

    Args:
        scores: (N, C) real scores (logits or probabilities; only the ranking matters).
        targets: (N, C) ground truth in {0, 1}.
        ties: ``'group'`` (tied block gets the precision at its end; order-independent, equals
            scikit-learn) or ``'first'`` (ties broken by sample index).
        empty: what to do with classes that have no positive: ``'raise'`` | ``'skip'`` (AP nan) |
            ``'zero'`` (AP 0, as the reference).

    Returns:
        ``(ap, n_skipped)``: ap (C,) float64 (nan for skipped classes), and how many were skipped.

    Raises:
        ValueError: bad shapes or values (see module doc), unknown ``ties`` / ``empty``, or a class
            without any positive when ``empty='raise'``.
    """
    if ties not in _TIES:
        raise ValueError(f"ties must be one of {_TIES}, got {ties!r}")
    if empty not in _EMPTY:
        raise ValueError(f"empty must be one of {_EMPTY}, got {empty!r}")
    s, t = _check_inputs(scores, targets)
    n_pos = t.sum(axis=0)  # (C,)
    no_pos = np.flatnonzero(n_pos == 0)
    if len(no_pos) and empty == "raise":
        raise ValueError(
            f"{len(no_pos)} class(es) have no positive target, so their AP is undefined: indices "
            f"{no_pos[:20].tolist()}{' ...' if len(no_pos) > 20 else ''}; "
            "pass empty='skip' to leave "
            "them out of the mean or empty='zero' to count them as 0 like the reference"
        )
    ap = np.empty(s.shape[1], dtype=np.float64)
    for c in range(s.shape[1]):
        if n_pos[c] == 0:
            ap[c] = np.nan if empty == "skip" else 0.0
        else:
            ap[c] = _ap_one_class(s[:, c], t[:, c], ties)
    return ap, int(len(no_pos)) if empty == "skip" else 0


def mean_average_precision(
    scores, targets, ties: str = "group", empty: str = "raise"
) -> tuple[float, np.ndarray]:
    """mAP = 100 * mean_c AP_c (ASL / Hill / CLML reference definition), and the per-class AP.

    Args:
        scores: (N, C) real scores (logits or probabilities).
        targets: (N, C) ground truth in {0, 1}.
        ties, empty: see :func:`average_precision_per_class`.

    Returns:
        ``(mAP, ap)``: mAP in [0, 100] (float), ap (C,) float64 in [0, 100] (nan for classes skipped
        with ``empty='skip'``).

    Raises:
        ValueError: as :func:`average_precision_per_class`; also when every class is skipped.
    """
    ap, _ = average_precision_per_class(scores, targets, ties=ties, empty=empty)
    if np.isnan(ap).all():
        raise ValueError("no class has a positive target: mAP is undefined")
    return float(100.0 * np.nanmean(ap)), 100.0 * ap


def chance_map(targets) -> float:
    r"""Expected mAP (in %) of scores that carry no information (a uniformly random ranking).

    For a class with $P$ positives among $N$ images, the AP of a random ranking has the exact
    expectation $E[\mathrm{AP}] = H_N/N + \frac{P-1}{N(N-1)}\,(N - H_N)$, with $H_N$ the N-th
    harmonic number (from $E[x_k \sum_{i\le k} x_i] = P/N + (k-1)P(P-1)/(N(N-1))$ for the
    indicator $x_k$ of a positive at rank $k$); about the prevalence $P/N$ for large $N$. The
    chance mAP is the mean over the classes that have a positive (``empty='skip'``, as the engine
    scores the test split). Every mAP table states it, so that a number can be read against it.

    Args:
        targets: (N, C) ground truth in {0, 1}, N >= 2.

    Returns:
        Expected mAP in [0, 100].

    Raises:
        ValueError: not a 2-D 0/1 matrix, fewer than 2 images, or no class with a positive.
    """
    t = _as_float64("targets", targets)
    if t.ndim != 2:
        raise ValueError(f"targets must be 2-D (N, C), got shape {t.shape}")
    check_label_codes(t, "targets")
    n = t.shape[0]
    if n < 2:
        raise ValueError(f"chance_map needs at least 2 images, got {n}")
    pos = t.sum(axis=0)  # (C,)
    pos = pos[pos > 0]
    if pos.size == 0:
        raise ValueError("no class has a positive target: chance mAP is undefined")
    h_n = float(np.sum(1.0 / np.arange(1, n + 1)))
    ap = h_n / n + (pos - 1) / (n * (n - 1)) * (n - h_n)  # (C',)
    return float(100.0 * ap.mean())


def threshold_metrics(
    scores, targets, threshold: float = 0.5, empty: str = "raise"
) -> dict[str, float]:
    """CP, CR, CF1, OP, OR, OF1 (ML-GCN definitions) and macro_F1 (reference "F_C") at a threshold.

    A prediction is positive when ``score >= threshold`` (ML-GCN thresholds logits with ``>= 0``,
    i.e. probabilities with ``>= 0.5``).

    Args:
        scores: (N, C) probabilities in [0, 1] (apply ``sigmoid`` to logits first; a score outside
            [0, 1] raises, so logits are not silently thresholded at 0.5).
        targets: (N, C) ground truth in {0, 1}.
        threshold: in (0, 1).
        empty: classes with no positive target have no recall: ``'raise'`` | ``'skip'`` (left out of
            the class averages CP, CR, macro_F1; still pooled in OP/OR/OF1) | ``'zero'`` (recall 0).

    Returns:
        dict with keys ``CP, CR, CF1, OP, OR, OF1, macro_F1``, each in [0, 100].
        ``CF1 = 2 CP CR / (CP + CR)``; ``macro_F1`` = mean over classes of the per-class F1.
        A class with no predicted positive has precision 0; an F1 with P + R = 0 is 0.

    Raises:
        ValueError: bad shapes/values, scores outside [0, 1], threshold outside (0, 1), bad
            ``empty``, or a class without positives when ``empty='raise'``.
    """
    if not (0.0 < float(threshold) < 1.0):
        raise ValueError(f"threshold must be in (0, 1), got {threshold!r}")
    if empty not in _EMPTY:
        raise ValueError(f"empty must be one of {_EMPTY}, got {empty!r}")
    s, t = _check_inputs(scores, targets)
    if s.min() < 0.0 or s.max() > 1.0:
        raise ValueError(
            f"scores must be probabilities in [0, 1] for threshold metrics, got range "
            f"[{s.min():.4g}, {s.max():.4g}]; apply torch.sigmoid to logits first"
        )
    pred = s >= threshold  # (N, C) bool
    pos = t == 1  # (N, C)
    tp = (pred & pos).sum(axis=0).astype(np.float64)  # (C,)
    n_pred = pred.sum(axis=0).astype(np.float64)  # (C,)
    n_pos = pos.sum(axis=0).astype(np.float64)  # (C,)
    no_pos = np.flatnonzero(n_pos == 0)
    if len(no_pos) and empty == "raise":
        raise ValueError(
            f"{len(no_pos)} class(es) have no positive target, so their recall is undefined: "
            f"indices {no_pos[:20].tolist()}; pass empty='skip' or empty='zero'"
        )
    keep = np.ones_like(n_pos, dtype=bool) if empty == "zero" else n_pos > 0  # (C,)
    if not keep.any():
        raise ValueError("no class has a positive target: class-averaged metrics are undefined")
    prec_c = np.divide(tp, n_pred, out=np.zeros_like(tp), where=n_pred > 0)  # (C,)
    rec_c = np.divide(tp, n_pos, out=np.zeros_like(tp), where=n_pos > 0)  # (C,)
    f1_c = _f1(prec_c, rec_c)  # (C,)
    cp, cr = prec_c[keep].mean(), rec_c[keep].mean()
    op = tp.sum() / n_pred.sum() if n_pred.sum() > 0 else 0.0
    orc = tp.sum() / n_pos.sum() if n_pos.sum() > 0 else 0.0
    out = {
        "CP": cp,
        "CR": cr,
        "CF1": float(_f1(np.array(cp), np.array(cr))),
        "OP": op,
        "OR": orc,
        "OF1": float(_f1(np.array(op), np.array(orc))),
        "macro_F1": f1_c[keep].mean(),
    }
    return {k: float(100.0 * v) for k, v in out.items()}


def _f1(p: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Harmonic mean 2pr/(p+r), 0 where p + r == 0."""
    p, r = np.asarray(p, dtype=np.float64), np.asarray(r, dtype=np.float64)
    den = p + r
    return np.divide(2 * p * r, den, out=np.zeros_like(den), where=den > 0)


def mined_label_quality(mined, observed, truth) -> dict[str, float | int | None]:
    """Precision and recall of the labels added by label correction, against the hidden truth.

    Args:
        mined: (N, C) bool, entries turned from unobserved to positive by correction.
        observed: (N, C) observed labels in {0, 1}, or {-1, 0, 1} (-1 = unknown); 1 = annotated
            positive.
        truth: (N, C) hidden full ground truth in {0, 1}.

    Returns:
        dict ``count`` (mined entries), ``true`` (mined entries that are true positives),
        ``missing`` (true positives that were hidden: truth 1, observed not 1),
        ``precision`` = true / count (None when count == 0) and ``recall`` = true / missing
        (None when nothing is missing), both in [0, 1].

    Raises:
        ValueError: shapes differ; codes outside {0, 1} (observed: {-1, 0, 1}); a mined entry
            that is an observed positive (correction only adds labels).
    """
    m = _as_float64("mined", mined)
    o = _as_float64("observed", observed)
    y = _as_float64("truth", truth)
    if not (m.shape == o.shape == y.shape) or m.ndim != 2:
        raise ValueError(
            f"mined, observed and truth must be the same (N, C) shape, got {m.shape}, {o.shape}, "
            f"{y.shape}"
        )
    check_label_codes(m, "mined")
    check_label_codes(o, "observed", allow_unknown=True)
    check_label_codes(y, "truth")
    both = (m == 1) & (o == 1)  # (N, C)
    if both.any():
        i, j = (int(v) for v in np.argwhere(both)[0])
        raise ValueError(
            f"mined marks {int(both.sum())} observed positives (first at row {i}, class {j}); "
            "correction only turns unobserved entries into positives"
        )
    count = int(m.sum())
    true = int((m * y).sum())
    missing = int(((o != 1) & (y == 1)).sum())
    return {
        "count": count,
        "true": true,
        "missing": missing,
        "precision": true / count if count else None,
        "recall": true / missing if missing else None,
    }
