"""Missing-label simulation, split statistics and the two label encodings.

Protocol (docs/method.md §3.1, docs/evaluation.md §1.4 and §4): the reference splits were made
from the full COCO labels by randomly dropping *positive* labels while every image keeps at least
one:
241,035 -> 181,422 (75% left) -> 96,251 (40% left) positives over 82,081 images, plus a
single-positive split. The generating script and seed were never released, and the released
files are not nested. ``simulate_missing`` rebuilds the recipe, seeded, and by default nested.

Encodings of observed labels (N, C):

* **1/0, assume negative** (the reference convention, what the split files store and what
  ``simulate_missing`` returns): 1 = observed positive, 0 = negative *or missing*. The
  ``clml_lib`` losses take this encoding.
* **1/0/-1**: 1 = observed positive, 0 = known negative, -1 = unknown (Cole et al. style).
  ``clml_lib.losses.correct_labels`` also accepts it; the base losses treat -1 according to
  their ``unknown`` policy (see the losses' docs). ``to_unknown_encoding`` and
  ``to_assume_negative`` convert between the two.

Keep the ground truth next to the observed labels (``PartialLabelDataset``) so that label
correction (false-negative mining) can be scored.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from ..checks import check_label_codes

#: The value of an unknown label in the 1/0/-1 encoding.
UNKNOWN = -1

#: Named settings -> fraction of the positives kept (None: full; 0: single positive).
SETTINGS: dict[str, float | None] = {"full": None, "75left": 0.75, "40left": 0.40, "single": 0.0}
_LEFT = re.compile(r"(\d{1,2})left")


def _as_tensor(labels, what: str = "labels") -> torch.Tensor:
    y = torch.as_tensor(labels)
    if y.ndim != 2:
        raise ValueError(f"{what} must be a 2-D (N, C) matrix, got shape {tuple(y.shape)}")
    return y


def _parse_setting(setting: str) -> float | None:
    if setting in SETTINGS:
        return SETTINGS[setting]
    m = _LEFT.fullmatch(str(setting))
    if m and 1 <= int(m.group(1)) <= 99:
        return int(m.group(1)) / 100.0
    raise ValueError(
        f"unknown missing-label setting {setting!r}: expected one of {list(SETTINGS)} "
        "or 'NNleft' with NN in 1..99"
    )


def simulate_missing(
    labels: torch.Tensor | np.ndarray, setting: str, seed: int, nested: bool = True
) -> torch.Tensor:
    """Drop positive labels at random to simulate a missing-label split (1/0 encoding).

    Settings (the reference splits, docs/method.md §3.1):

    * ``'full'``: the labels unchanged (a copy).
    * ``'75left'`` / ``'40left'`` (or any ``'NNleft'``): keep ``round(f * P)`` of the P
      positives overall (f = 0.75 / 0.40), with at least one per image.
    * ``'single'``: exactly one positive per image.

    Recipe: every positive (i, c) gets a uniform random key. Each image keeps its lowest-key
    positive (its *single* label); the other positives are kept in increasing key order over
    the whole matrix until ``round(f * P)`` positives are kept. Only positives are removed
    (``observed <= labels``), never a label invented. Images without any positive are left
    unchanged (all zeros: a split cannot keep what is not there). If ``round(f * P)`` is below
    the number of non-empty images the at-least-one rule wins and a warning reports the
    fraction actually kept.

    Nesting: with ``nested=True`` every setting uses the same keys for a seed, so
    ``single <= 40left <= 75left <= full`` element-wise (the released reference files are *not*
    nested, docs/evaluation.md §1.4). With ``nested=False`` each setting draws its own keys.

    Args:
        labels: ground truth (N, C) with values 0/1 (tensor or array).
        setting: see above.
        seed: non-negative int; the result is a deterministic function of (labels, setting,
            seed, nested).
        nested: share the random keys between settings (default True).

    Returns:
        Observed labels, float32 tensor (N, C) of 0/1.

    Raises:
        ValueError: labels not 2-D or not 0/1 (e.g. holding -1); unknown setting; negative or
            non-int seed.
    """
    y = _as_tensor(labels)
    check_label_codes(y, "labels", hint=" (simulate_missing needs the full 0/1 ground truth)")
    frac = _parse_setting(setting)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    y_np = y.detach().cpu().numpy().astype(bool)  # (N, C)
    if frac is None:
        return torch.from_numpy(y_np.astype(np.float32))
    stream = [int(seed)] if nested else [int(seed), 1 + int(round(frac * 100))]
    rng = np.random.default_rng(np.random.SeedSequence(stream))
    rows, cols = np.nonzero(y_np)  # (P,), (P,) in row-major order
    keys = rng.random(len(rows))  # (P,)
    # each image's lowest-key positive is always kept
    order = np.lexsort((keys, rows))  # by row, then key
    first = np.ones(len(order), dtype=bool)
    first[1:] = rows[order][1:] != rows[order][:-1]
    keep = np.zeros(len(rows), dtype=bool)
    keep[order[first]] = True
    if frac > 0:
        target = int(round(frac * len(rows)))
        extra = target - int(keep.sum())
        if extra < 0:
            warnings.warn(
                f"setting {setting!r}: keeping one positive per image already keeps "
                f"{keep.sum()}/{len(rows)} = {keep.mean():.3f} of the positives, more than the "
                f"target {frac:.2f}",
                UserWarning,
                stacklevel=2,
            )
        elif extra > 0:
            rest = np.nonzero(~keep)[0]
            keep[rest[np.argsort(keys[rest], kind="stable")[:extra]]] = True
    observed = np.zeros(y_np.shape, dtype=np.float32)
    observed[rows[keep], cols[keep]] = 1.0
    return torch.from_numpy(observed)


# --------------------------------------------------------------------------- encodings
def to_unknown_encoding(
    observed: torch.Tensor, known_negatives: torch.Tensor | None = None
) -> torch.Tensor:
    """Convert 1/0 (assume negative) observed labels to the 1/0/-1 encoding.

    Every 0 becomes -1 (unknown) unless ``known_negatives`` marks it as a verified negative.
    With the reference splits nothing is a known negative, so the default maps all 0s to -1.

    Args:
        observed: (N, C) 0/1.
        known_negatives: optional bool (N, C), True where a 0 is a verified negative.

    Returns:
        float tensor (N, C) with values 1, 0, -1.

    Raises:
        ValueError: observed not (N, C) 0/1; known_negatives of another shape or marking an
            observed positive.
    """
    y = _as_tensor(observed, "observed")
    check_label_codes(y, "observed")
    out = torch.where(y == 1, 1.0, float(UNKNOWN))  # (N, C)
    if known_negatives is not None:
        kn = torch.as_tensor(known_negatives, dtype=torch.bool)
        if kn.shape != y.shape:
            raise ValueError(
                f"known_negatives must have the shape of observed {tuple(y.shape)}, "
                f"got {tuple(kn.shape)}"
            )
        if (kn & (y == 1)).any():
            raise ValueError("known_negatives marks an observed positive as negative")
        out[kn] = 0.0
    return out


def to_assume_negative(labels: torch.Tensor) -> torch.Tensor:
    """Convert 1/0/-1 labels to 1/0 (assume negative): -1 (unknown) becomes 0.

    Args:
        labels: (N, C) with values in {1, 0, -1} (a 1/0 matrix passes through unchanged).

    Returns:
        float tensor (N, C) of 0/1.

    Raises:
        ValueError: not (N, C), or a value outside {1, 0, -1}.
    """
    y = _as_tensor(labels)
    check_label_codes(y, "labels", allow_unknown=True)
    return (y == 1).float()


def unknown_mask(labels: torch.Tensor) -> torch.Tensor:
    """Bool (N, C): True where ``labels`` is -1 (unknown)."""
    return _as_tensor(labels) == UNKNOWN


# --------------------------------------------------------------------------- statistics
@dataclass
class SplitStats:
    """Counts of a label matrix and, optionally, of an observed split of it.

    Attributes:
        images: N.
        positives: number of positive labels in ``labels``.
        positives_per_image: positives / N.
        empty_images: images without any positive label.
        per_class: {class name: positives of that class}.
        observed_positives, kept_fraction, observed_per_image, observed_empty_images,
        observed_per_class, invented: the same for the observed split (None without it);
            ``kept_fraction`` = observed_positives / positives; ``invented`` counts observed
            positives that are 0 in ``labels`` (0 for a split made by ``simulate_missing``).
        unknown: number of -1 entries in the observed split (1/0/-1 encoding), else 0.
    """

    images: int
    positives: int
    positives_per_image: float
    empty_images: int
    per_class: dict[str, int]
    observed_positives: int | None = None
    kept_fraction: float | None = None
    observed_per_image: float | None = None
    observed_empty_images: int | None = None
    observed_per_class: dict[str, int] | None = field(default=None)
    invented: int | None = None
    unknown: int = 0

    def to_dict(self) -> dict:
        """A plain dict of the fields (JSON-serialisable)."""
        return dict(self.__dict__)

    def __str__(self) -> str:
        lines = [
            f"images               {self.images:,}",
            f"positives            {self.positives:,}",
            f"positives per image  {self.positives_per_image:.3f}",
            f"images left empty    {self.empty_images:,}",
        ]
        if self.observed_positives is not None:
            lines += [
                f"observed positives   {self.observed_positives:,}  "
                f"(kept fraction {self.kept_fraction:.4f})",
                f"observed per image   {self.observed_per_image:.3f}",
                f"observed empty       {self.observed_empty_images:,}",
                f"invented positives   {self.invented:,}",
            ]
            if self.unknown:
                lines.append(f"unknown (-1) entries {self.unknown:,}")
        width = max(len(k) for k in self.per_class) if self.per_class else 0
        lines.append("per class: positives" + ("  observed" if self.observed_per_class else ""))
        for name, count in self.per_class.items():
            extra = f"  {self.observed_per_class[name]:>8,}" if self.observed_per_class else ""
            lines.append(f"  {name:<{width}}  {count:>8,}{extra}")
        return "\n".join(lines)


def split_stats(
    labels: torch.Tensor | np.ndarray,
    observed: torch.Tensor | np.ndarray | None = None,
    names: Sequence[str] | None = None,
) -> SplitStats:
    """Count images, positives, positives per image, empty images and per-class positives.

    Args:
        labels: ground truth (N, C) 0/1.
        observed: optional observed split (N, C), 1/0 or 1/0/-1 (-1 is counted as unknown,
            not as positive).
        names: optional C class names (default ``'0'..'C-1'``).

    Returns:
        :class:`SplitStats` (``str()`` gives a printable table).

    Raises:
        ValueError: labels not (N, C) 0/1; observed of another shape or with a value outside
            {1, 0, -1}; ``len(names) != C``.
    """
    y = _as_tensor(labels)
    check_label_codes(y, "labels")
    n, c = y.shape
    if names is None:
        names = [str(k) for k in range(c)]
    if len(names) != c:
        raise ValueError(f"got {len(names)} class names for {c} classes")
    per_row = y.sum(1)  # (N,)
    stats = SplitStats(
        images=n,
        positives=int(per_row.sum()),
        positives_per_image=float(per_row.sum()) / max(n, 1),
        empty_images=int((per_row == 0).sum()),
        per_class={name: int(v) for name, v in zip(names, y.sum(0).tolist())},
    )
    if observed is not None:
        o = _as_tensor(observed, "observed")
        if o.shape != y.shape:
            raise ValueError(
                f"observed must have the shape of labels {tuple(y.shape)}, got {tuple(o.shape)}"
            )
        check_label_codes(o, "observed", allow_unknown=True)
        pos = o == 1  # (N, C)
        obs_row = pos.sum(1)  # (N,)
        stats.observed_positives = int(obs_row.sum())
        stats.kept_fraction = stats.observed_positives / max(stats.positives, 1)
        stats.observed_per_image = stats.observed_positives / max(n, 1)
        stats.observed_empty_images = int((obs_row == 0).sum())
        stats.observed_per_class = {name: int(v) for name, v in zip(names, pos.sum(0).tolist())}
        stats.invented = int((pos & (y == 0)).sum())
        stats.unknown = int((o == UNKNOWN).sum())
    return stats
