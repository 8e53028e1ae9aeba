"""Image transforms of the reproduction (docs/method.md §3.2): squash-resize, Cutout, RandAugment.

Reference pipeline (train)::

    Resize((448, 448)) -> CutoutPIL(cutout_factor=0.5) -> RandAugment() -> ToTensor()

and ``Resize((448, 448)) -> ToTensor()`` for evaluation. Decisions:

* **Squash resize**: ``Resize((s, s))`` ignores the aspect ratio, as the reference does.
* **Cutout** (:class:`Cutout`, our implementation of the reference ``CutoutPIL``): one
  rectangle of ``fraction`` times the image side, centred at a uniformly random pixel and
  clipped at the border, filled with one random colour, applied to every image.
* **RandAugment**: torchvision's ``RandAugment()`` (2 ops, magnitude 9 of 31 bins). The
  reference uses PyPI ``randaugment==1.0.2`` (UDA style: 2 of 15 ops, each with p = 0.5, a
  random magnitude in 1..9), which is not a dependency here; torchvision's is the documented
  stand-in.
* **No ImageNet normalisation by default** (``normalize=False``): the reference feeds [0, 1]
  pixels to ImageNet-pretrained torchvision weights (inherited from ASL's TResNet code).
  That is the reference behaviour, so it is the default for reproduction; ``normalize=True``
  adds ``Normalize(IMAGENET_MEAN, IMAGENET_STD)``, the statistics those weights were trained
  with (docs/evaluation.md §1.2: a known hazard of the reference).

Randomness comes from ``torch`` (seed it, or let the DataLoader seed its workers).

:mod:`clml_lib.data.tensor_pipeline` is the same pipeline on uint8 tensors, batched and able to
run on a GPU (``decode_jpeg`` + ``transforms.v2``), with the same parameter draws.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class EnsurePIL:
    """Pass PIL images through; turn a (3, H, W) tensor (float in [0, 1] or uint8) or an
    (H, W, 3) uint8 array into a PIL RGB image, so one pipeline serves files and the teaching set.

    Raises:
        TypeError: any other input (the message names its type and shape).
    """

    def __call__(self, img):
        if isinstance(img, Image.Image):
            return img.convert("RGB") if img.mode != "RGB" else img
        if isinstance(img, torch.Tensor) and img.ndim == 3 and img.shape[0] in (1, 3):
            if img.is_floating_point():
                img = (img.clamp(0, 1) * 255).round().to(torch.uint8)
            array = img.detach().cpu().expand(3, -1, -1).permute(1, 2, 0).contiguous().numpy()
            return Image.fromarray(array, "RGB")
        if isinstance(img, np.ndarray) and img.ndim == 3 and img.shape[2] == 3:
            if img.dtype != np.uint8:
                raise TypeError(f"expected an (H, W, 3) uint8 array, got dtype {img.dtype}")
            return Image.fromarray(img)
        shape = tuple(getattr(img, "shape", ()))
        raise TypeError(
            f"expected a PIL image, a (3, H, W) tensor or an (H, W, 3) uint8 array, "
            f"got {type(img).__name__} {shape}"
        )

    def __repr__(self) -> str:
        return "EnsurePIL()"


class Cutout:
    """Cut out one random rectangle and fill it with a random colour (always applied).

    The rectangle is ``round(fraction * H)`` x ``round(fraction * W)`` centred on a uniformly
    random pixel, clipped at the image border (so it can be smaller near the edges), and filled
    with one uniformly random RGB colour.

    Args:
        fraction: side of the rectangle as a fraction of the image side, in (0, 1]
            (reference 0.5).

    ``__call__(img)``: a PIL image (returns a new PIL image) or a tensor (C, H, W) (float in
    [0, 1] or uint8; returns a new tensor). Raises ValueError for a bad fraction, TypeError
    for other inputs.
    """

    def __init__(self, fraction: float = 0.5) -> None:
        if not 0.0 < float(fraction) <= 1.0:
            raise ValueError(f"cutout fraction must be in (0, 1], got {fraction!r}")
        self.fraction = float(fraction)

    def _box(self, h: int, w: int) -> tuple[int, int, int, int]:
        ch, cw = int(self.fraction * h + 0.5), int(self.fraction * w + 0.5)
        yc = int(torch.randint(0, h, (1,)))
        xc = int(torch.randint(0, w, (1,)))
        y1, y2 = max(0, yc - ch // 2), min(h, yc + ch // 2)
        x1, x2 = max(0, xc - cw // 2), min(w, xc + cw // 2)
        return y1, y2, x1, x2

    def __call__(self, img):
        colour = torch.randint(0, 256, (3,))
        if isinstance(img, Image.Image):
            img = img.convert("RGB")
            w, h = img.size
            y1, y2, x1, x2 = self._box(h, w)
            out = img.copy()
            if y2 > y1 and x2 > x1:
                ImageDraw.Draw(out).rectangle([x1, y1, x2 - 1, y2 - 1], fill=tuple(colour.tolist()))
            return out
        if isinstance(img, torch.Tensor) and img.ndim == 3:
            c, h, w = img.shape
            y1, y2, x1, x2 = self._box(h, w)
            out = img.clone()
            fill = colour[:c] if img.dtype == torch.uint8 else colour[:c] / 255.0
            fill = fill.to(img.dtype)
            out[:, y1:y2, x1:x2] = fill[:, None, None]
            return out
        raise TypeError(
            f"Cutout expects a PIL image or a (C, H, W) tensor, got {type(img).__name__}"
        )

    def __repr__(self) -> str:
        return f"Cutout(fraction={self.fraction})"


def build_transforms(
    train: bool,
    image_size: int = 448,
    normalize: bool = False,
    cutout: float = 0.5,
    randaugment: bool = True,
) -> "torchvision.transforms.Compose":  # noqa: F821
    """The reproduction's transform pipeline (see the module docstring).

    Args:
        train: True for training (squash-resize, Cutout, RandAugment, ToTensor), False for
            evaluation (squash-resize, ToTensor).
        image_size: output side S (reference 448).
        normalize: add ImageNet mean/std normalisation (default False = reference behaviour).
        cutout: Cutout fraction; 0 switches Cutout off (train only).
        randaugment: use torchvision's RandAugment (train only).

    Returns:
        A ``torchvision.transforms.Compose`` mapping a PIL image, a (3, H, W) tensor or an
        (H, W, 3) uint8 array to a float tensor (3, S, S) (in [0, 1] without normalisation).

    Raises:
        ValueError: ``image_size`` not a positive int; ``cutout`` outside [0, 1].
    """
    from torchvision import transforms as T  # imported here: keeps `import clml_lib.data` light

    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
        raise ValueError(f"image_size must be a positive int, got {image_size!r}")
    if not 0.0 <= float(cutout) <= 1.0:
        raise ValueError(f"cutout must be in [0, 1], got {cutout!r}")
    steps: list = [EnsurePIL(), T.Resize((image_size, image_size))]
    if train:
        if cutout > 0:
            steps.append(Cutout(cutout))
        if randaugment:
            steps.append(T.RandAugment())
    steps.append(T.ToTensor())
    if normalize:
        steps.append(T.Normalize(IMAGENET_MEAN, IMAGENET_STD))
    return T.Compose(steps)
