"""Networks that return both the logits and the latent representation used by CLML.

``build_model(name, num_classes, weights_path)`` gives an :class:`MultiLabelNet` whose
``forward(x)`` returns ``(logits, features)``:

* ``features`` z_i (N, D) is the paper's latent representation (paper.md section 1): for the ResNet
  family the post-ReLU global-average-pooled vector (D = 2048 for ResNet-50/101, 512 for
  ResNet-18/34), unnormalised, no projection head, as in the reference code. For any other
  torchvision classifier it is the input of the model's final linear classifier (for heads that
  start with Dropout, e.g. EfficientNet / VGG, that input is taken after the dropout).
* ``logits`` s (N, C) = W z + b from a fresh D -> C linear layer replacing the 1000-way ImageNet
  classifier (PyTorch's default Linear initialisation, as the reference's ``nn.Linear``).

``tiny_cnn`` is a small CNN (about 0.125 M parameters, D = 96) for the 32 x 32 teaching set.

Weights (``weights_path``): ``''`` random init; ``'imagenet'`` torchvision's DEFAULT weights through
the weights API (a download, so it fails offline with a clear message unless the torch hub cache
holds the file); a local file: either a torchvision state dict of the same architecture (its
1000-way classifier is dropped, the new head stays freshly initialised) or a state dict /
checkpoint written by this library (``body.*`` / ``head.*`` keys, loaded completely). Keys are always
matched strictly: a file of another architecture raises a ValueError listing the missing and
unexpected keys, never a silent partial load.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
import torchvision

#: prefixes of the auxiliary ImageNet heads of GoogLeNet / Inception-v3 (dropped: aux_logits=False)
_AUX_PREFIXES = ("aux1.", "aux2.", "AuxLogits.")
_AUX_MODELS = ("googlenet", "inception_v3")


class MultiLabelNet(nn.Module):
    """``body`` (image -> z, (N, D)) followed by ``head`` (z -> logits, (N, C)).

    Attributes:
        backbone: the backbone name given to :func:`build_model`.
        feature_dim: D. num_classes: C.
    """

    def __init__(self, body: nn.Module, feature_dim: int, num_classes: int, backbone: str):
        super().__init__()
        self.body = body
        self.head = nn.Linear(feature_dim, num_classes)
        self.backbone = backbone
        self.feature_dim = feature_dim
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (N, 3, H, W) -> (logits (N, C), features (N, D))."""
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(x.shape)}")
        z = self.body(x)  # (N, D)
        if z.dim() != 2 or z.shape[1] != self.feature_dim:
            raise RuntimeError(
                f"backbone {self.backbone!r} returned features of shape {tuple(z.shape)}, expected "
                f"(N, {self.feature_dim})"
            )
        return self.head(z), z  # (N, C), (N, D)


class TinyCNN(nn.Module):
    """Small CNN body for 32 x 32 images, shaped like a miniature ResNet.

    A stem conv3x3(3 -> w)-BN-ReLU and 2x2 max-pool, then two stages of (conv3x3-BN-ReLU) x 2
    with widths 2w and 4w, each followed by a 2x2 max-pool, a last conv3x3 to 6w, and global
    average pooling: z (N, 6w), post-ReLU like ResNet's pooled feature. Most of the compute runs at
    16 x 16 and 8 x 8, so an epoch of the 2,000-image teaching set takes a few seconds on one core.

    With ``width=16`` (default) it has about 0.125 M parameters and D = 96.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")

        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
                    nn.ReLU(inplace=True)]

        w = width
        self.features = nn.Sequential(
            *block(3, w), nn.MaxPool2d(2),
            *block(w, 2 * w), *block(2 * w, 2 * w), nn.MaxPool2d(2),
            *block(2 * w, 4 * w), *block(4 * w, 4 * w), nn.MaxPool2d(2),
            *block(4 * w, 6 * w),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = 6 * w

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) -> z (N, 6 * width)."""
        return torch.flatten(self.pool(self.features(x)), 1)  # (N, D)


def available_backbones() -> list[str]:
    """Names accepted by :func:`build_model`: ``tiny_cnn`` and torchvision's classification models."""
    return ["tiny_cnn"] + sorted(torchvision.models.list_models(module=torchvision.models))


def _find_classifier(model: nn.Module, name: str) -> tuple[str, nn.Linear]:
    """Dotted path and module of the final 1000-way linear classifier of a torchvision model."""
    found = [(n, m) for n, m in model.named_modules()
             if isinstance(m, nn.Linear) and not n.startswith(tuple(p[:-1] for p in _AUX_PREFIXES))]
    if not found:
        raise ValueError(
            f"backbone {name!r} has no final nn.Linear classifier (e.g. SqueezeNet uses a conv "
            "classifier); pick another torchvision model"
        )
    return found[-1]


def _replace_module(root: nn.Module, path: str, new: nn.Module) -> None:
    parent = root
    *parents, last = path.split(".")
    for p in parents:
        parent = getattr(parent, p)
    setattr(parent, last, new)


def _torchvision_body(name: str, imagenet: bool) -> tuple[nn.Module, int, str]:
    """Build the torchvision model (random or DEFAULT weights); cut its classifier off."""
    kwargs = {"aux_logits": False} if name in _AUX_MODELS else {}
    if name in _AUX_MODELS and not imagenet:
        kwargs["init_weights"] = True
    weights = None
    if imagenet:
        weights = torchvision.models.get_model_weights(name).DEFAULT
        try:
            model = torchvision.models.get_model(name, weights=weights, **kwargs)
        except Exception as err:  # network errors surface as URLError / RuntimeError / OSError
            raise RuntimeError(
                f"could not get the ImageNet weights {weights} for {name!r} through torchvision's "
                f"weights API ({type(err).__name__}: {err}). Offline? Download the file elsewhere, "
                f"and pass its path as weights_path, or put it in the torch hub cache "
                f"({torch.hub.get_dir()}/checkpoints)"
            ) from err
    else:
        model = torchvision.models.get_model(name, weights=None, **kwargs)
    path, linear = _find_classifier(model, name)
    _replace_module(model, path, nn.Identity())
    return model, linear.in_features, path


def _extract_state_dict(obj, path: Path) -> dict[str, torch.Tensor]:
    """The state dict inside a loaded file: a bare state dict, or {'model'|'state_dict': ...}."""
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]  # our checkpoint (raw weights) or a {'model': sd} wrapper
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"weights file {path} does not hold a state dict of tensors")
    # weights saved from DataParallel / DistributedDataParallel carry a 'module.' prefix
    if obj and all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _strict_load(module: nn.Module, sd: dict[str, torch.Tensor], path: Path, what: str) -> None:
    """load_state_dict(strict=True) with an error that lists missing/unexpected/mis-shaped keys."""
    own = module.state_dict()
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in sd and sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def first(xs: list[str]) -> str:
            return ", ".join(xs[:10]) + (f", ... ({len(xs)} in all)" if len(xs) > 10 else "")

        parts = []
        if missing:
            parts.append(f"{len(missing)} missing keys: {first(missing)}")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected keys: {first(unexpected)}")
        if shapes:
            parts.append(f"{len(shapes)} shape mismatches: {first(shapes)}")
        raise ValueError(
            f"weights file {path} does not match {what}: " + "; ".join(parts)
            + ". Is it the right architecture / number of classes?"
        )
    module.load_state_dict(sd, strict=True)


def load_weights(model: MultiLabelNet, weights_path: str | os.PathLike, classifier: str = "fc"):
    """Load a local weights file into ``model`` (see module doc for the accepted formats).

    Args:
        model: a :class:`MultiLabelNet`.
        weights_path: path of a ``torch.save`` file (loaded with ``weights_only=True``).
        classifier: dotted path of the torchvision classifier whose keys are dropped from a
            torchvision state dict (``fc`` for ResNets).

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable, not a state dict, or keys/shapes
        that do not match the architecture (the message lists them).
    """
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"weights file not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # our training checkpoints also hold RNG states (NumPy objects) that weights_only refuses:
        # read those through the checkpoint loader, which checks the format tag first
        from .train.checkpoint import load_checkpoint

        try:
            obj = load_checkpoint(path)
        except (ValueError, FileNotFoundError):
            raise ValueError(f"could not read weights file {path}: {type(err).__name__}: {err}") from err
    sd = _extract_state_dict(obj, path)
    ours = any(k.startswith(("body.", "head.")) for k in sd)
    if ours:
        _strict_load(model, sd, path, f"{model.backbone!r} with {model.num_classes} classes")
    else:  # a plain backbone state dict (torchvision layout): drop its classifier, load the body
        drop = (f"{classifier}.",) + _AUX_PREFIXES
        body_sd = {k: v for k, v in sd.items() if not k.startswith(drop)}
        _strict_load(model.body, body_sd, path, f"the {model.backbone!r} backbone")


def build_model(name: str, num_classes: int, weights_path: str | os.PathLike | None = "") -> MultiLabelNet:
    """Build a multi-label network returning ``(logits (N, C), features (N, D))``.

    Args:
        name: ``'tiny_cnn'`` or any torchvision classification model name (``resnet18``,
            ``resnet50``, ``resnet101``, ... see :func:`available_backbones`).
        num_classes: C >= 1.
        weights_path: ``''`` / None random init; ``'imagenet'`` torchvision DEFAULT weights
            (download); or a local file (torchvision backbone state dict, or our own state dict /
            checkpoint).

    Raises:
        ValueError: unknown name (the message lists close matches), num_classes < 1, a weights file
            of the wrong architecture (missing / unexpected keys listed), ``'imagenet'`` for tiny_cnn.
        FileNotFoundError: weights file missing.
        RuntimeError: ImageNet weights could not be downloaded.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    weights_path = "" if weights_path is None else str(weights_path)
    names = available_backbones()
    if name not in names:
        import difflib

        close = difflib.get_close_matches(str(name), names, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown backbone {name!r}{hint} (tiny_cnn or a torchvision classification model)")
    imagenet = weights_path.lower() == "imagenet"
    if name == "tiny_cnn":
        if imagenet:
            raise ValueError("there are no ImageNet weights for 'tiny_cnn'; use weights_path=''")
        body = TinyCNN()
        model = MultiLabelNet(body, body.out_dim, num_classes, name)
        classifier = "fc"
    else:
        body, dim, classifier = _torchvision_body(name, imagenet)
        model = MultiLabelNet(body, dim, num_classes, name)
    if weights_path and not imagenet:
        load_weights(model, weights_path, classifier=classifier)
    return model


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
