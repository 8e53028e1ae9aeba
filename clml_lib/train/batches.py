"""In-memory batches for data that already sit in tensors (the generated teaching set): no
DataLoader, no per-item calls, no collation.

:class:`TensorBatches` walks the indices of a sampler (the same :class:`EpochShuffleSampler` /
:class:`ShardSampler` as the DataLoader path, so the order, the resume and the DDP sharding are
the same) in chunks of ``batch_size`` and yields ``(images, *rows)``: the uint8 images
``(B, 3, S, S)`` of the chunk converted to float in [0, 1] (``x / 255``, the same operation as the
dataset's ``__getitem__``), then an optional batch transform, then the matching rows of the other
tensors (labels). A batch transform that draws its randomness from the global generator in item
order gives the same numbers as the per-item transform it replaces (:func:`batch_flip`).
"""

from __future__ import annotations

from typing import Callable, Iterable, Iterator

import torch


def batch_flip(images: torch.Tensor) -> torch.Tensor:
    """Random horizontal flip of each image of a batch ``(B, 3, S, S)`` with probability 1/2.

    Draws ``torch.rand(B)`` from the global generator: the same B numbers, in the same order, as
    B calls of ``torch.rand(())`` by a per-item flip, so both give identical batches.
    """
    flip = torch.rand(images.shape[0]) < 0.5  # (B,)
    if not bool(flip.any()):
        return images
    return torch.where(flip.to(images.device)[:, None, None, None], images.flip(-1), images)


class TensorBatches:
    """Batches of rows of in-memory tensors, in the order of ``sampler``.

    Args:
        images: uint8 ``(N, 3, S, S)``.
        rows: other tensors with first dimension N (e.g. observed and true labels ``(N, C)``).
        sampler: an iterable of indices in ``[0, N)`` (re-iterated at every ``iter``).
        batch_size: items per batch (the last batch may be smaller).
        transform: optional function on a float batch ``(B, 3, S, S)``.

    Raises:
        ValueError: images not uint8 (N, 3, S, S), a row tensor of another length, batch_size < 1.
    """

    def __init__(self, images: torch.Tensor, rows: tuple[torch.Tensor, ...], sampler: Iterable[int],
                 batch_size: int, transform: Callable[[torch.Tensor], torch.Tensor] | None = None):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, 3, S, S), got {images.dtype} "
                             f"{tuple(images.shape)}")
        for r in rows:
            if r.shape[0] != images.shape[0]:
                raise ValueError(f"row tensor of length {r.shape[0]} != {images.shape[0]} images")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.images, self.rows, self.sampler = images, rows, sampler
        self.batch_size, self.transform = batch_size, transform

    def __len__(self) -> int:
        return -(-len(self.sampler) // self.batch_size)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        order = torch.as_tensor(list(iter(self.sampler)), dtype=torch.long)  # (n,)
        for start in range(0, order.numel(), self.batch_size):
            idx = order[start : start + self.batch_size]  # (B,)
            x = self.images[idx].float() / 255.0  # (B, 3, S, S) in [0, 1]
            if self.transform is not None:
                x = self.transform(x)
            yield (x, *(r[idx] for r in self.rows))
