r"""The reproduction's 448 px input pipeline on uint8 tensors, batched, on the CPU or a GPU.

Same augmentation semantics as :func:`clml_lib.data.transforms.build_transforms` (the reference:
PIL decode, squash-resize, Cutout, RandAugment, ToTensor), but on ``uint8`` tensors:

1. **decode**: ``torchvision.io.decode_jpeg`` (a list of encoded files at once; with
   ``device='cuda'`` the GPU decodes them);
2. **squash-resize** to ``(S, S)``: bilinear with antialiasing, one image at a time (the
   inputs differ in size), then stacked into one ``(N, 3, S, S)`` batch;
3. **Cutout** (:func:`cutout`): one rectangle per image, ``round(fraction * side)`` wide,
   centred on a uniformly random pixel, clipped at the border, filled with one uniformly random
   colour: all images in one masked write;
4. **RandAugment**: torchvision's ``RandAugment()`` (2 ops drawn uniformly from the same 14,
   magnitude bin 9 of 31, each signed op negated with probability 1/2, nearest interpolation,
   black fill). The ops are drawn per image and the batch is split by (op, sign): one batched
   call per group instead of one call per image;
5. ``uint8 -> float32`` in ``[0, 1]`` (``ToTensor``), optional ImageNet normalisation.

The random parameters are drawn per image from ``torch``'s generator in the reference order
(Cutout: colour, centre row, centre column; then for each RandAugment op: its index and, for a
signed op, its sign), so with the same seed the batch gets exactly the parameters the reference
transforms draw image by image (``tests/test_tensor_pipeline.py`` checks this).

API::

    pipe = build_train_pipeline(image_size=448, cutout=0.5, randaugment=True, device="cpu")
    x = pipe.from_files(paths)        # (N, 3, S, S) float32 in [0, 1] on pipe.device
    x = pipe(list_of_uint8_images)    # each (3, H_i, W_i) uint8, any size
    x = pipe(uint8_batch)             # (N, 3, H, W) uint8
    x = pipe(image)                   # one (3, H, W) uint8 image -> (3, S, S)
    build_eval_pipeline(image_size=448, device="cpu")    # decode + resize only

In a ``DataLoader`` the dataset can return decoded ``uint8`` images (``read_image``) and the
pipeline runs on the collated list in the main process or on the GPU; or each worker calls it
on one image (the single-image form).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .transforms import IMAGENET_MEAN, IMAGENET_STD

#: RandAugment of the reference: torchvision's defaults.
RANDAUGMENT_NUM_OPS = 2
RANDAUGMENT_MAGNITUDE = 9
RANDAUGMENT_BINS = 31

#: The 14 RandAugment ops in torchvision's order: name -> (signed, magnitude at bin m of B bins
#: for an image of size (H, W)). Brightness, Color, Contrast, Sharpness scale a factor 1 + v.
RANDAUGMENT_OPS: dict[str, tuple[bool, object]] = {
    "Identity": (False, lambda m, B, H, W: 0.0),
    "ShearX": (True, lambda m, B, H, W: 0.3 * m / (B - 1)),
    "ShearY": (True, lambda m, B, H, W: 0.3 * m / (B - 1)),
    "TranslateX": (True, lambda m, B, H, W: 150.0 / 331.0 * W * m / (B - 1)),
    "TranslateY": (True, lambda m, B, H, W: 150.0 / 331.0 * H * m / (B - 1)),
    "Rotate": (True, lambda m, B, H, W: 30.0 * m / (B - 1)),
    "Brightness": (True, lambda m, B, H, W: 0.9 * m / (B - 1)),
    "Color": (True, lambda m, B, H, W: 0.9 * m / (B - 1)),
    "Contrast": (True, lambda m, B, H, W: 0.9 * m / (B - 1)),
    "Sharpness": (True, lambda m, B, H, W: 0.9 * m / (B - 1)),
    "Posterize": (False, lambda m, B, H, W: float(8 - int(round(m / ((B - 1) / 4))))),
    "Solarize": (False, lambda m, B, H, W: 255.0 * (1.0 - m / (B - 1))),
    "AutoContrast": (False, lambda m, B, H, W: 0.0),
    "Equalize": (False, lambda m, B, H, W: 0.0),
}
OP_NAMES = list(RANDAUGMENT_OPS)


def randaugment_magnitudes(
    image_size: tuple[int, int],
    magnitude: int = RANDAUGMENT_MAGNITUDE,
    bins: int = RANDAUGMENT_BINS,
) -> dict[str, tuple[float, bool]]:
    """``{op name: (magnitude, signed)}`` for an image of size ``(H, W)``, rounded to float32 as
    torchvision's tables are."""
    H, W = image_size
    f32 = torch.tensor([float(f(magnitude, bins, H, W)) for signed, f in RANDAUGMENT_OPS.values()])
    return {name: (float(v), RANDAUGMENT_OPS[name][0]) for name, v in zip(OP_NAMES, f32.tolist())}


def _apply_op(x: Tensor, name: str, v: float) -> Tensor:
    """One RandAugment op with signed magnitude ``v`` on a uint8 batch ``(K, 3, H, W)``."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    nearest = InterpolationMode.NEAREST
    if name == "Identity":
        return x
    if name in ("ShearX", "ShearY"):
        shear = (
            [math.degrees(math.atan(v)), 0.0]
            if name == "ShearX"
            else [0.0, math.degrees(math.atan(v))]
        )
        return F.affine(
            x,
            angle=0.0,
            translate=[0, 0],
            scale=1.0,
            shear=shear,
            interpolation=nearest,
            fill=None,
            center=[0, 0],
        )
    if name in ("TranslateX", "TranslateY"):
        # an integer translation with nearest sampling is a shift with black fill: slice copies
        t = int(v)
        dim = -1 if name == "TranslateX" else -2
        out = torch.zeros_like(x)
        n = x.shape[dim] - abs(t)
        if n > 0:
            out.narrow(dim, max(t, 0), n).copy_(x.narrow(dim, max(-t, 0), n))
        return out
    if name == "Rotate":
        return F.rotate(x, v, interpolation=nearest, fill=None)
    if name == "Brightness":
        return F.adjust_brightness(x, 1.0 + v)
    if name == "Color":
        return F.adjust_saturation(x, 1.0 + v)
    if name == "Contrast":
        return F.adjust_contrast(x, 1.0 + v)
    if name == "Sharpness":
        return F.adjust_sharpness(x, 1.0 + v)
    if name == "Posterize":
        return F.posterize(x, int(v))
    if name == "Solarize":
        return F.solarize(x, v)
    if name == "AutoContrast":
        return F.autocontrast(x)
    if name == "Equalize":
        return F.equalize(x)
    raise ValueError(f"unknown RandAugment op {name!r}; expected one of {OP_NAMES}")


@dataclass
class AugmentParams:
    """Per-image random parameters of one batch (CPU tensors).

    ``colour`` (N, 3) int64 in [0, 255], ``centre`` (N, 2) int64 (row, column) of the Cutout box;
    ``ops`` (N, num_ops) int64 indices into :data:`OP_NAMES`; ``signs`` (N, num_ops) in {+1, -1}.
    """

    colour: Tensor
    centre: Tensor
    ops: Tensor
    signs: Tensor


def draw_params(
    n: int,
    height: int,
    width: int,
    cutout: bool,
    randaugment: bool,
    num_ops: int = RANDAUGMENT_NUM_OPS,
) -> AugmentParams:
    """Draw the parameters of ``n`` images from ``torch``'s global generator, image by image, in
    the order the reference transforms draw them (Cutout, then each RandAugment op)."""
    colour = torch.zeros(n, 3, dtype=torch.long)
    centre = torch.zeros(n, 2, dtype=torch.long)
    ops = torch.zeros(n, num_ops if randaugment else 0, dtype=torch.long)
    signs = torch.ones(n, num_ops if randaugment else 0, dtype=torch.long)
    signed = [RANDAUGMENT_OPS[name][0] for name in OP_NAMES]
    for i in range(n):
        if cutout:
            colour[i] = torch.randint(0, 256, (3,))
            centre[i, 0] = int(torch.randint(0, height, (1,)))
            centre[i, 1] = int(torch.randint(0, width, (1,)))
        for j in range(ops.shape[1]):
            k = int(torch.randint(len(OP_NAMES), (1,)).item())
            ops[i, j] = k
            if signed[k] and torch.randint(2, (1,)):
                signs[i, j] = -1
    return AugmentParams(colour, centre, ops, signs)


def cutout(x: Tensor, fraction: float, colour: Tensor, centre: Tensor) -> Tensor:
    """Cutout on a uint8 batch ``x`` ``(N, C, H, W)``: for image i a box of
    ``round(fraction * H) x round(fraction * W)`` centred on ``centre[i]`` (row, column), clipped
    at the border, filled with ``colour[i]`` ``(N, 3)``. Returns a new batch.

    Raises:
        ValueError: ``fraction`` outside (0, 1], or parameter shapes that do not match ``x``.
    """
    if not 0.0 < float(fraction) <= 1.0:
        raise ValueError(f"cutout fraction must be in (0, 1], got {fraction!r}")
    N, C, H, W = x.shape
    if colour.shape != (N, 3) or centre.shape != (N, 2):
        raise ValueError(
            f"cutout parameters must be colour (N, 3) and centre (N, 2) for N = {N}, "
            f"got {tuple(colour.shape)} and {tuple(centre.shape)}"
        )
    ch, cw = int(fraction * H + 0.5), int(fraction * W + 0.5)  # box side, as the reference rounds
    yc, xc = centre[:, 0].tolist(), centre[:, 1].tolist()
    fill = colour[:, :C].to(device=x.device, dtype=x.dtype)  # (N, C)
    out = x.clone()
    for i in range(N):  # one slice write per image: touches only the box (a quarter of the image)
        y1, y2 = max(0, yc[i] - ch // 2), min(H, yc[i] + ch // 2)
        x1, x2 = max(0, xc[i] - cw // 2), min(W, xc[i] + cw // 2)
        if y2 > y1 and x2 > x1:
            out[i, :, y1:y2, x1:x2] = fill[i].view(C, 1, 1)
    return out


def randaugment(
    x: Tensor,
    ops: Tensor,
    signs: Tensor,
    magnitude: int = RANDAUGMENT_MAGNITUDE,
    bins: int = RANDAUGMENT_BINS,
) -> Tensor:
    """RandAugment on a uint8 batch ``(N, 3, H, W)`` with per-image ops ``(N, num_ops)`` and signs
    ``(N, num_ops)``: op j of every image, one batched call per (op, sign) group. Returns a new
    batch."""
    N, _, H, W = x.shape
    mags = randaugment_magnitudes((H, W), magnitude, bins)
    out = x.clone()
    for j in range(ops.shape[1]):
        key = ops[:, j] * 2 + (signs[:, j] < 0)  # (N,) group id: op and sign
        for g in torch.unique(key).tolist():
            idx = (key == g).nonzero().flatten().to(x.device)  # (K,)
            name = OP_NAMES[g // 2]
            if name == "Identity":
                continue
            v, _signed = mags[name]
            out.index_copy_(0, idx, _apply_op(out.index_select(0, idx), name, -v if g % 2 else v))
    return out


class TensorPipeline:
    """Decode, squash-resize and (for training) Cutout + RandAugment on uint8 tensors.

    Args:
        image_size: output side S.
        train: apply Cutout and RandAugment.
        cutout: Cutout fraction in [0, 1] (0 = off).
        randaugment: apply RandAugment.
        device: ``'cpu'``, ``'cuda'`` or ``'cuda:N'``: where decoding and augmentation run.
        normalize: ImageNet mean/std normalisation after scaling to [0, 1].

    ``__call__(images)``: a list of ``(3, H_i, W_i)`` uint8 tensors, an ``(N, 3, H, W)`` uint8 batch
    or one ``(3, H, W)`` image; returns float32 ``(N, 3, S, S)`` (or ``(3, S, S)``) on ``device``.
    ``decode(data)``: list of 1-D uint8 tensors (encoded JPEGs) -> list of uint8 images.
    ``from_files(paths)``: read, decode and transform.

    Raises:
        ValueError: bad size / fraction / device, inputs that are not uint8 RGB images, or a file
            that does not decode as a JPEG (the message names it).
    """

    def __init__(
        self,
        image_size: int = 448,
        train: bool = True,
        cutout: float = 0.5,
        randaugment: bool = True,
        device: str | torch.device = "cpu",
        normalize: bool = False,
    ) -> None:
        if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 1:
            raise ValueError(f"image_size must be a positive int, got {image_size!r}")
        if not 0.0 <= float(cutout) <= 1.0:
            raise ValueError(f"cutout must be in [0, 1], got {cutout!r}")
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device={device!r} but CUDA is not available")
        if self.device.type not in ("cpu", "cuda"):
            raise ValueError(f"device must be 'cpu' or 'cuda[:N]', got {device!r}")
        self.image_size = image_size
        self.train = bool(train)
        self.cutout = float(cutout) if train else 0.0
        self.randaugment = bool(randaugment) and self.train
        self.normalize = bool(normalize)

    def decode(self, data: Sequence[Tensor]) -> list[Tensor]:
        """Encoded JPEG files (1-D uint8 CPU tensors) -> RGB uint8 images ``(3, H, W)`` on the
        pipeline's device (the GPU decodes with ``device='cuda'``)."""
        from torchvision.io import ImageReadMode, decode_jpeg

        data = list(data)
        for i, d in enumerate(data):
            if not isinstance(d, Tensor) or d.dtype != torch.uint8 or d.dim() != 1:
                raise ValueError(
                    f"decode expects 1-D uint8 tensors (file bytes); item {i} is "
                    f"{type(d).__name__} {getattr(d, 'dtype', '')} {tuple(getattr(d, 'shape', ()))}"
                )
        if not data:
            return []
        return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device))

    def from_files(self, paths: Sequence[str | os.PathLike]) -> Tensor:
        """Read, decode and transform image files: float32 ``(N, 3, S, S)`` on the device."""
        from torchvision.io import read_file

        paths = [os.fspath(p) for p in paths]
        data = [read_file(p) for p in paths]
        try:
            images = self.decode(data)
        except RuntimeError:  # name the file that does not decode (one at a time)
            for p, d in zip(paths, data):
                try:
                    self.decode([d])
                except RuntimeError as one:
                    raise ValueError(f"{p}: not a decodable JPEG ({one})") from one
            raise
        return self(images)

    def resize(self, images: Sequence[Tensor]) -> Tensor:
        """Squash-resize each uint8 ``(3, H_i, W_i)`` image to ``(3, S, S)``; stacked
        ``(N, 3, S, S)``."""
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        S = self.image_size
        out = torch.empty(len(images), 3, S, S, dtype=torch.uint8, device=self.device)
        for i, img in enumerate(images):
            if (
                not isinstance(img, Tensor)
                or img.dtype != torch.uint8
                or img.dim() != 3
                or img.shape[0] != 3
            ):
                raise ValueError(
                    f"expected uint8 RGB images (3, H, W); item {i} is "
                    f"{type(img).__name__} {getattr(img, 'dtype', '')} "
                    f"{tuple(getattr(img, 'shape', ()))}"
                )
            img = img.to(self.device)
            if img.shape[1:] == (S, S):
                out[i] = img
            else:
                out[i] = F.resize(
                    img, [S, S], interpolation=InterpolationMode.BILINEAR, antialias=True
                )
        return out

    def augment(self, x: Tensor) -> Tensor:
        """Cutout and RandAugment (training) on a uint8 batch ``(N, 3, S, S)``; returns uint8."""
        if not (self.cutout > 0 or self.randaugment):
            return x
        N, _, H, W = x.shape
        p = draw_params(N, H, W, self.cutout > 0, self.randaugment)
        if self.cutout > 0:
            x = cutout(x, self.cutout, p.colour, p.centre)
        if self.randaugment:
            x = randaugment(x, p.ops, p.signs)
        return x

    def __call__(self, images: Tensor | Sequence[Tensor]) -> Tensor:
        single = isinstance(images, Tensor) and images.dim() == 3
        if single:
            images = [images]
        elif isinstance(images, Tensor) and images.dim() != 4:
            raise ValueError(
                f"expected (3, H, W) or (N, 3, H, W) uint8, got shape {tuple(images.shape)}"
            )
        x = self.augment(self.resize(images))  # (N, 3, S, S) uint8
        x = x.float().div_(255.0)  # (N, 3, S, S) float32 in [0, 1]
        if self.normalize:
            mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
            x = (x - mean) / std
        return x[0] if single else x

    def __repr__(self) -> str:
        return (
            f"TensorPipeline(image_size={self.image_size}, train={self.train}, "
            f"cutout={self.cutout}, randaugment={self.randaugment}, "
            f"device={str(self.device)!r}, normalize={self.normalize})"
        )


class PILToTensorPipeline:
    """A per-item dataset transform: a PIL image -> uint8 ``(3, H, W)`` -> ``pipeline`` -> float32
    ``(3, S, S)``; what the training engine uses for photo datasets with
    ``input_pipeline='tensor'`` (the datasets decode with PIL, the augmentation runs on tensors)."""

    def __init__(self, pipeline: TensorPipeline) -> None:
        self.pipeline = pipeline

    def __call__(self, image) -> Tensor:
        from torchvision.transforms.functional import pil_to_tensor

        return self.pipeline(pil_to_tensor(image.convert("RGB")))  # (3, S, S)

    def __repr__(self) -> str:
        return f"PILToTensorPipeline({self.pipeline!r})"


def build_train_pipeline(
    image_size: int = 448,
    cutout: float = 0.5,
    randaugment: bool = True,
    device: str | torch.device = "cpu",
    normalize: bool = False,
) -> TensorPipeline:
    """The training pipeline (decode, squash-resize, Cutout, RandAugment, [0, 1] floats): the tensor
    counterpart of ``build_transforms(train=True, ...)``. See :class:`TensorPipeline`."""
    return TensorPipeline(image_size, True, cutout, randaugment, device, normalize)


def build_eval_pipeline(
    image_size: int = 448, device: str | torch.device = "cpu", normalize: bool = False
) -> TensorPipeline:
    """The evaluation pipeline (decode, squash-resize, [0, 1] floats)."""
    return TensorPipeline(image_size, False, 0.0, False, device, normalize)
