"""A dataset with observed (partial) labels served next to the hidden ground truth.

Training sees only ``observed`` (e.g. ``simulate_missing(base.labels, '40left', seed)``); the
truth rides along so that label correction (false-negative mining, docs/method.md §2.1) can be
scored: how many of the labels it adds are real positives.
"""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from ..checks import check_label_codes


class PartialLabelDataset(Dataset):
    """Wrap a dataset with observed labels; items are ``(image, observed_i, truth_i)``.

    Args:
        base: any dataset of this package (``.classes``, ``.labels`` (N, C) 0/1,
            ``__getitem__(i) -> (image, labels_i)``); ``base.labels`` is the ground truth.
        observed: (N, C) observed labels, 1/0 (assume negative) or 1/0/-1 (-1 unknown).
        strict: (default True) also require that every observed positive is a true positive,
            as for any split made by ``simulate_missing``; set False for real partial
            annotations whose positives may disagree with the reference labels.

    Attributes:
        classes: ``base.classes``.
        observed: float tensor (N, C), the labels served for training; ``labels`` is the same
            tensor (the labels this dataset serves).
        truth: float tensor (N, C), ``base.labels``.

    ``__getitem__(i)`` -> ``(image, observed_i (C,), truth_i (C,))``, image from ``base[i]``.

    Raises:
        ValueError: base without ``labels``; observed not of base.labels' shape (N, C); a value
            outside {1, 0, -1}; ground truth not 0/1; with ``strict``, an observed positive
            that the ground truth marks 0 (first offending row and class named).
    """

    def __init__(self, base, observed: torch.Tensor, strict: bool = True) -> None:
        truth = getattr(base, "labels", None)
        if not isinstance(truth, torch.Tensor):
            raise ValueError(f"base dataset {type(base).__name__} has no .labels tensor (N, C)")
        obs = torch.as_tensor(observed, dtype=torch.float32)
        if obs.shape != truth.shape:
            raise ValueError(
                f"observed must have the shape of base.labels {tuple(truth.shape)}, "
                f"got {tuple(obs.shape)}"
            )
        names = getattr(base, "names", None)
        check_label_codes(obs, "observed", allow_unknown=True, row_names=names)
        check_label_codes(truth, "base.labels (the ground truth)", row_names=names)
        if strict:
            invented = (obs == 1) & (truth == 0)
            if invented.any():
                i, j = (int(v) for v in torch.nonzero(invented)[0])
                row = f"row {i} ({names[i]!r})" if names is not None else f"row {i}"
                raise ValueError(
                    f"observed has {int(invented.sum())} positives that the ground truth marks 0 "
                    f"(first: {row}, class {j} {base.classes[j]!r}): observed labels must be a "
                    "subset of the ground truth, as in a split made from these annotations by "
                    "simulate_missing or `python -m clml_lib.data.prepare`. Check that the label "
                    "list (training config field `label_list`) was made for this dataset "
                    "(`dataset`, `data_root`) and uses its class order; library callers with "
                    "real partial annotations can pass PartialLabelDataset(strict=False)"
                )
        self.base = base
        self.classes: list[str] = list(base.classes)
        self.observed = obs  # (N, C)
        self.labels = obs
        self.truth = truth  # (N, C)

    def __len__(self) -> int:
        return self.observed.shape[0]

    def __getitem__(self, i: int):
        image, _ = self.base[i]
        return image, self.observed[i].clone(), self.truth[i].clone()

    def __repr__(self) -> str:
        kept = int((self.observed == 1).sum()) / max(int(self.truth.sum()), 1)
        return f"PartialLabelDataset({self.base!r}, kept_fraction={kept:.3f})"
