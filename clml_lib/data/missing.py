"""Missing-label simulation, split statistics and the two label encodings.

Protocol (docs/method.md §3.1, docs/evaluation.md §1.4 and §4): the released COCO-2014 split
files were made from the full labels by dropping *positive* labels image by image. An image with
n positives keeps exactly ``floor(n/5) + 1`` of them in the 40 % file, ``floor(n/2) + 1`` in the
75 % file and 1 in the single-label file, a uniform random choice within the image; the three
files were drawn independently (not nested). Over 82,081 images that gives 241,035 -> 181,422
(75.3 %) -> 96,251 (39.9 %) -> 82,081 positives. The generating script and seed were never
released. ``simulate_missing`` rebuilds that recipe by default, seeded (``recipe='per_image'``,
see :func:`keep_counts` for the rule at any ``NNleft``); ``recipe='global_quota'`` keeps an exact
fraction of all positives instead, with at least one per image, nested across settings by default.

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
from fractions import Fraction
from typing import Sequence

import numpy as np
import torch

from ..checks import check_label_codes

#: The value of an unknown label in the 1/0/-1 encoding.
UNKNOWN = -1

#: Named settings -> fraction of the positives kept (None: full; 0: single positive).
SETTINGS: dict[str, float | None] = {"full": None, "75left": 0.75, "40left": 0.40, "single": 0.0}
_LEFT = re.compile(r"(\d{1,2})left")

#: The recipes of :func:`simulate_missing`; the first one is the default.
RECIPES: tuple[str, ...] = ("per_image", "global_quota")

#: Knots (f, g) of the per-image keep rate g(f) of :func:`keep_counts`, linear between knots:
#: single (f = 0), the released 40 % and 75 % files, full (f = 1).
KEEP_RATE_KNOTS: tuple[tuple[Fraction, Fraction], ...] = (
    (Fraction(0), Fraction(0)),
    (Fraction(2, 5), Fraction(1, 5)),
    (Fraction(3, 4), Fraction(1, 2)),
    (Fraction(1), Fraction(1)),
)


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


def _percent(frac: float) -> int:
    """The kept fraction of a setting as an integer percent (settings are whole percents)."""
    return int(round(frac * 100))


def check_recipe(recipe: str, nested: bool | None) -> bool:
    """Validate a ``(recipe, nested)`` pair of :func:`simulate_missing`; return the nesting used.

    Args:
        recipe: one of :data:`RECIPES`.
        nested: None (the recipe's default) or a bool. Nesting is an option of the
            ``'global_quota'`` recipe only (None means True there); ``'per_image'`` always
            draws each setting independently and takes no ``nested``.

    Returns:
        Whether the settings are nested (always False for ``'per_image'``).

    Raises:
        ValueError: unknown recipe; ``nested`` not None or a bool; ``nested`` given with
            ``recipe='per_image'``.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}: expected one of {list(RECIPES)}")
    if nested is not None and not isinstance(nested, (bool, np.bool_)):
        raise ValueError(f"nested must be None, True or False, got {nested!r}")
    if recipe == "per_image":
        if nested is not None:
            raise ValueError(
                f"nested={nested} is an option of recipe='global_quota' only: the per-image "
                "recipe (the released files' recipe) always draws each setting independently; "
                "leave nested unset or choose recipe='global_quota'"
            )
        return False
    return True if nested is None else bool(nested)


def keep_rate(setting: str) -> Fraction | None:
    """The per-image keep rate g(f) of the ``'per_image'`` recipe, as an exact fraction.

    g is linear between the knots :data:`KEEP_RATE_KNOTS` (f, g) = (0, 0), (0.40, 1/5),
    (0.75, 1/2), (1, 1), with f the setting's fraction (``'single'``: f = 0)::

        g(f) = f / 2                   for 0    <= f <= 0.40
        g(f) = 1/5 + (6/7)(f - 0.40)   for 0.40 <= f <= 0.75
        g(f) = 1/2 + 2 (f - 0.75)      for 0.75 <= f <= 1

    so g(0.40) = 1/5 and g(0.75) = 1/2 give the released files' rules exactly, and g increases
    with f.

    Args:
        setting: ``'full'``, ``'75left'``, ``'40left'``, ``'single'`` or ``'NNleft'``.

    Returns:
        g as a :class:`fractions.Fraction`, or None for ``'full'`` (everything kept).

    Raises:
        ValueError: unknown setting.
    """
    frac = _parse_setting(setting)
    if frac is None:
        return None
    f = Fraction(_percent(frac), 100)
    for (f0, g0), (f1, g1) in zip(KEEP_RATE_KNOTS, KEEP_RATE_KNOTS[1:]):
        if f <= f1:
            return g0 + (g1 - g0) * (f - f0) / (f1 - f0)
    raise AssertionError(f"fraction {f} outside [0, 1]")  # _parse_setting allows 0..0.99 only


def keep_counts(n_positives: np.ndarray | Sequence[int], setting: str) -> np.ndarray:
    """How many of its n positives an image keeps under the ``'per_image'`` recipe.

    ``k(n) = min(n, floor(n * g) + 1)`` for n >= 1 and ``k(0) = 0``, with g = :func:`keep_rate`
    (exact integer arithmetic). The released COCO-2014 files follow it: 40left ``floor(n/5) + 1``
    (n = 1-4 -> 1, 5-9 -> 2, 10-14 -> 3, ...), 75left ``floor(n/2) + 1`` (1 -> 1, 2-3 -> 2,
    4-5 -> 3, ...), single 1; full keeps n. An image's kept fraction k(n)/n is 1 for a single
    object and tends to g as n grows (k(n) > n g), so the kept fraction of all positives is
    above g and depends on how many positives the images hold: on the released COCO-2014 labels
    (2.94 per image) it is 0.399 at 40left and 0.753 at 75left, close to f there; elsewhere it is
    not f in general.

    Args:
        n_positives: (N,) non-negative integer counts of positives per image.
        setting: as in :func:`keep_rate`.

    Returns:
        int64 array (N,) of kept counts, ``0 <= k <= n``.

    Raises:
        ValueError: unknown setting; negative or non-integer counts; not 1-D.
    """
    n = np.asarray(n_positives)
    if n.ndim != 1:
        raise ValueError(f"n_positives must be 1-D (N,), got shape {n.shape}")
    if n.size and (
        not np.issubdtype(n.dtype, np.number)
        or not np.all(np.isfinite(n))
        or np.any(n != np.round(n))
        or n.min() < 0
    ):
        raise ValueError(f"n_positives must hold non-negative integers, got {n.dtype} values")
    n = n.astype(np.int64)
    g = keep_rate(setting)
    if g is None:
        return n.copy()
    k = (n * g.numerator) // g.denominator + 1  # floor(n * g) + 1, exact
    return np.where(n > 0, np.minimum(n, k), 0)


def simulate_missing(
    labels: torch.Tensor | np.ndarray,
    setting: str,
    seed: int,
    recipe: str = RECIPES[0],
    nested: bool | None = None,
) -> torch.Tensor:
    """Drop positive labels at random to simulate a missing-label split (1/0 encoding).

    Settings (the reference splits, docs/method.md §3.1): ``'full'`` (the labels unchanged, a
    copy), ``'75left'`` / ``'40left'`` (any ``'NNleft'``, fraction f = NN/100) and ``'single'``
    (f = 0).

    Recipes:

    * ``'per_image'`` (default; the recipe of the released COCO-2014 files): an image with n
      positives keeps exactly k(n) of them (:func:`keep_counts`: ``floor(n/5) + 1`` at 40left,
      ``floor(n/2) + 1`` at 75left, 1 at single), chosen uniformly at random within the image.
      Each setting is drawn independently (a random stream per (seed, setting)), so the
      settings are not nested, like the released files. The kept fraction of all positives
      follows from the per-image counts (above f on most data; :func:`keep_counts`).
    * ``'global_quota'``: every positive (i, c) gets a uniform random key. Each image keeps its
      lowest-key positive (its single label); the other positives are kept in increasing key
      order over the whole matrix until ``round(f * P)`` of the P positives are kept, so the
      kept fraction is exact. If ``round(f * P)`` is below the number of non-empty images the
      at-least-one rule wins and a warning reports the fraction actually kept. With
      ``nested=True`` (its default) every setting uses the same keys for a seed, so
      ``single <= 40left <= 75left <= full`` element-wise; ``nested=False`` draws keys per
      setting.

    Both: only positives are removed (``observed <= labels``), never a label invented; every
    image with a positive keeps at least one; images without any positive stay all zeros.

    Args:
        labels: ground truth y (N, C) with values 0/1 (tensor or array).
        setting: see above.
        seed: non-negative int; the result is a deterministic function of (labels, setting,
            seed, recipe, nested).
        recipe: one of :data:`RECIPES` (default ``'per_image'``).
        nested: ``'global_quota'`` only: share the random keys between settings (None = True);
            see :func:`check_recipe`.

    Returns:
        Observed labels, float32 tensor (N, C) of 0/1.

    Raises:
        ValueError: labels not 2-D or not 0/1 (e.g. holding -1); unknown setting; negative or
            non-int seed; unknown recipe; ``nested`` given with ``recipe='per_image'``.
    """
    y = _as_tensor(labels)
    check_label_codes(y, "labels", hint=" (simulate_missing needs the full 0/1 ground truth)")
    frac = _parse_setting(setting)
    if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    nested = check_recipe(recipe, nested)
    y_np = y.detach().cpu().numpy().astype(bool)  # (N, C)
    if frac is None:
        return torch.from_numpy(y_np.astype(np.float32))
    rows, cols = np.nonzero(y_np)  # (P,), (P,) in row-major order
    if recipe == "per_image":
        keep = _keep_per_image(y_np, rows, setting, int(seed), _percent(frac))
    else:
        keep = _keep_global_quota(rows, setting, int(seed), frac, nested)
    observed = np.zeros(y_np.shape, dtype=np.float32)
    observed[rows[keep], cols[keep]] = 1.0
    return torch.from_numpy(observed)


#: First entropy word that separates the per-image streams from the global-quota ones.
_PER_IMAGE_STREAM = 1


def _keep_per_image(
    y_np: np.ndarray, rows: np.ndarray, setting: str, seed: int, percent: int
) -> np.ndarray:
    """Bool (P,): the kept positives, k(n) uniformly chosen ones in each image."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, _PER_IMAGE_STREAM, percent]))
    keys = rng.random(len(rows))  # (P,)
    order = np.lexsort((keys, rows))  # by row, then key: a uniform random order within a row
    per_row = y_np.sum(1)  # (N,)
    start = np.cumsum(per_row) - per_row  # (N,) first position of each row in `order`
    rank = np.arange(len(rows)) - start[rows[order]]  # (P,) rank of the key within its row
    keep = np.zeros(len(rows), dtype=bool)
    keep[order[rank < keep_counts(per_row, setting)[rows[order]]]] = True
    return keep


def _keep_global_quota(
    rows: np.ndarray, setting: str, seed: int, frac: float, nested: bool
) -> np.ndarray:
    """Bool (P,): one lowest-key positive per image, then the lowest keys up to round(f * P)."""
    stream = [seed] if nested else [seed, 1 + _percent(frac)]
    rng = np.random.default_rng(np.random.SeedSequence(stream))
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
                stacklevel=3,
            )
        elif extra > 0:
            rest = np.nonzero(~keep)[0]
            keep[rest[np.argsort(keys[rest], kind="stable")[:extra]]] = True
    return keep


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
