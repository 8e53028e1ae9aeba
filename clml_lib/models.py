"""Networks that return both the logits and the latent representation used by CLML.

``build_model(name, num_classes, weights_path)`` gives an :class:`MultiLabelNet` whose
``forward(x)`` returns ``(logits, features)``:

* ``features`` z_i (N, D) is the paper's latent representation (docs/method.md section 1): for
  the ResNet family the post-ReLU global-average-pooled vector (D = 2048 for ResNet-50/101, 512
  for ResNet-18/34), unnormalised, no projection head, as in the reference code. For any other
  torchvision classifier it is the input of the model's final linear classifier (for heads that
  start with Dropout, e.g. EfficientNet / VGG, that input is taken after the dropout).
* ``logits`` s (N, C) = W z + b from a fresh D -> C linear layer replacing the 1000-way ImageNet
  classifier (PyTorch's default Linear initialisation, as the reference's ``nn.Linear``).

Own backbones for the 32 x 32 teaching set (:data:`OWN_BACKBONES`):

* ``small_resnet``: :class:`SmallResNet`, a ResNet in miniature (basic residual blocks,
  BatchNorm, post-ReLU global-average-pooled features, D = 64, about 0.08 M parameters). The
  repository ships it pretrained on a source task (``data/teaching_backbone.pt``, made by
  ``python -m clml_lib.train.pretrain_teaching``): the teaching analog of ImageNet weights.
* ``tiny_cnn``: :class:`TinyCNN`, a plain CNN (about 0.125 M parameters, D = 96) trained from
  scratch.

Weights (``weights_path``): ``''`` random init; ``'imagenet'`` torchvision's DEFAULT weights through
the weights API (a download, so it fails offline with a clear message unless the torch hub cache
holds the file); or a local file. A local file is trusted with nothing but tensors: it is read
with ``torch.load(weights_only=True)`` only, never unpickled in full, so a file carrying a pickle
payload is refused without running it. Accepted contents:

* a torchvision state dict of the same architecture: its classifier is dropped, the new head
  stays freshly initialised;
* a state dict written by this library (``body.*`` / ``head.*`` keys), bare or inside a training
  checkpoint (a dict whose ``"model"`` entry is the state dict). When its head has the model's
  number of classes the whole model is loaded; when its head was trained on another label set
  (another C, or no head at all) the body is loaded and the head stays fresh, as with ImageNet
  weights, and a warning says so once.

The body's keys are always matched strictly: a file of another architecture raises a ValueError
listing the missing, unexpected and mis-shaped keys, never a silent partial load.
"""

from __future__ import annotations

import difflib
import os
import re
import warnings
from pathlib import Path

import torch
import torch.nn as nn

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
    """Small plain CNN body for 32 x 32 images.

    A stem conv3x3(3 -> w)-BN-ReLU and 2x2 max-pool, then two stages of (conv3x3-BN-ReLU) x 2
    with widths 2w and 4w, each followed by a 2x2 max-pool, a last conv3x3 to 6w, and global
    average pooling: z (N, 6w), post-ReLU like ResNet's pooled feature.

    With ``width=16`` (default) it has about 0.125 M parameters and D = 96.

    Raises:
        ValueError: ``width`` < 1.
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


class BasicBlock(nn.Module):
    """ResNet's basic residual block: relu(bn(conv3x3(relu(bn(conv3x3(x))))) + shortcut(x)).

    The shortcut is the identity, or a strided conv1x1-BN projection when the stride or the
    width changes (ResNet's option B).
    """

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, cin, H, W) -> (N, cout, H / stride, W / stride)."""
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.shortcut(x))


class SmallResNet(nn.Module):
    """A ResNet in miniature for 32 x 32 images: the teaching stand-in for ResNet-101.

    Stem conv3x3(3 -> w)-BN-ReLU at full resolution, then ``len(blocks)`` stages of basic
    residual blocks; stage i has width w * 2**i and halves the resolution in its first block.
    Global average pooling of the last (post-ReLU) stage gives z (N, D), D = w * 2**(stages - 1),
    unnormalised, like ResNet-101's 2048-d pooled feature. With the defaults (w = 16, one block
    per stage, three stages) a 32 px image ends at 4 x 4 before pooling, D = 64, about 0.08 M
    parameters.

    Args:
        width: w >= 1. blocks: number of basic blocks per stage, each >= 1.

    Raises:
        ValueError: ``width`` < 1, or ``blocks`` empty or with an entry < 1.
    """

    def __init__(self, width: int = 16, blocks: tuple[int, ...] = (1, 1, 1)):
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be >= 1, got {width}")
        if not blocks or any(b < 1 for b in blocks):
            raise ValueError(f"blocks must be a non-empty tuple of ints >= 1, got {blocks!r}")
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width),
                                  nn.ReLU(inplace=True))
        stages, cin = [], width
        for i, n in enumerate(blocks):
            cout = width * 2**i
            stage = [BasicBlock(cin if j == 0 else cout, cout, 1 + (j == 0)) for j in range(n)]
            stages.append(nn.Sequential(*stage))
            cin = cout
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.out_dim = cin
        for m in self.modules():  # He init for convs, as torchvision's ResNet
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 3, H, W) -> z (N, D)."""
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)  # (N, D)


#: The backbones defined here (no ImageNet weights): name -> constructor of the body.
OWN_BACKBONES = {"small_resnet": SmallResNet, "tiny_cnn": TinyCNN}


def available_backbones() -> list[str]:
    """Names accepted by :func:`build_model`: :data:`OWN_BACKBONES`, torchvision classifiers.

    Imports torchvision (about 3.5 s on a 2-core machine); :func:`build_model` does so only for a
    name that is not one of :data:`OWN_BACKBONES`."""
    import torchvision

    return list(OWN_BACKBONES) + sorted(torchvision.models.list_models(module=torchvision.models))


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
    import torchvision  # here, not at the top: the own backbones do not need it

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


def read_weights_file(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """The state dict in a weights file, read with ``torch.load(weights_only=True)`` only.

    Accepts a bare state dict, ``{'model': state_dict, ...}`` (a training checkpoint, whose other
    entries must be weights-only loadable too) or ``{'state_dict': state_dict}``; a ``module.``
    prefix on every key (DataParallel / DDP) is removed. Nothing in the file is executed: a pickle
    that needs more than tensors and plain containers is refused.

    Returns:
        name -> tensor, on the CPU.

    Raises:
        FileNotFoundError: no such file (or a directory). ValueError: not a weights-only torch
        file (garbage, a pickle payload, objects other than tensors and plain types), or no state
        dict of tensors inside; the message names the file.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a directory, not a file" if path.is_dir() else "not found"
        raise FileNotFoundError(f"weights file {what}: {path}")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols before refusing
            warnings.simplefilter("ignore", UserWarning)
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        # keep torch's diagnosis (e.g. "Unsupported global: GLOBAL os.system") but not its advice
        # to retry with weights_only=False, which would run whatever the file carries
        found = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:\n\s*\n|Check the docum|$)",
                          str(err), flags=re.S)
        detail = found.group(1).strip() if found else f"{type(err).__name__}: {str(err)[:200]}"
        raise ValueError(
            f"could not read weights file {path}: it is not a weights-only torch file (a state "
            f"dict of tensors, or a checkpoint holding one) and is refused without being "
            f"unpickled ({detail})"
        ) from None
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]  # a training checkpoint or a {'model': sd} wrapper
    elif isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not obj or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()):
        raise ValueError(f"weights file {path} does not hold a state dict of tensors "
                         f"(got {type(obj).__name__})")
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return obj


def _strict_load(module: nn.Module, sd: dict[str, torch.Tensor], path: Path, what: str,
                 prefix: str = "") -> None:
    """load_state_dict(strict=True) with an error that lists missing/unexpected/mis-shaped keys
    (shown with ``prefix``, the module's place in the file's key names)."""
    own = module.state_dict()
    missing = [prefix + k for k in own if k not in sd]
    unexpected = [prefix + k for k in sd if k not in own]
    shapes = [f"{prefix}{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
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
            + ". Is it the right architecture?"
        )
    module.load_state_dict(sd, strict=True)


def load_weights(model: MultiLabelNet, weights_path: str | os.PathLike,
                 classifier: str = "fc") -> str:
    """Load a local weights file into ``model`` (see the module doc for the accepted formats).

    Args:
        model: a :class:`MultiLabelNet`.
        weights_path: path of a ``torch.save`` file (read by :func:`read_weights_file`).
        classifier: dotted path of the torchvision classifier whose keys are dropped from a
            torchvision state dict (``fc`` for ResNets).

    Returns:
        ``'all'`` (body and head loaded) or ``'body'`` (head left fresh).

    Raises:
        FileNotFoundError: no such file. ValueError: unreadable or refused file, not a state
        dict, or body keys/shapes that do not match the architecture (the message lists them),
        or a head whose feature size differs from the body's.
    """
    path = Path(weights_path).expanduser()
    sd = read_weights_file(path)
    if any(k.startswith(("body.", "head.")) for k in sd):  # written by this library
        head = {k[len("head."):]: v for k, v in sd.items() if k.startswith("head.")}
        body = {k[len("body."):]: v for k, v in sd.items() if not k.startswith("head.")
                and k.startswith("body.")}
        others = [k for k in sd if not k.startswith(("body.", "head."))]
        if others:
            _strict_load(model, sd, path, f"{model.backbone!r}")  # raises, listing the keys
        own_head = model.head.state_dict()
        if head and set(head) == set(own_head) and all(
                head[k].shape == own_head[k].shape for k in head):
            _strict_load(model, sd, path, f"{model.backbone!r} with {model.num_classes} classes")
            return "all"
        _strict_load(model.body, body, path, f"the {model.backbone!r} backbone", prefix="body.")
        weight = head.get("weight")
        if weight is not None and (weight.dim() != 2 or weight.shape[1] != model.feature_dim):
            raise ValueError(f"weights file {path}: head.weight has shape {tuple(weight.shape)}, "
                             f"expected (C, {model.feature_dim}) for the {model.backbone!r} body")
        source = f"a head for {weight.shape[0]} classes" if weight is not None else "no head"
        warnings.warn(f"weights file {path} holds {source}; loaded its {model.backbone!r} body and "
                      f"kept a fresh head for {model.num_classes} classes", stacklevel=3)
        return "body"
    # a plain backbone state dict (torchvision layout): drop its classifier, load the body
    drop = (f"{classifier}.",) + _AUX_PREFIXES
    body_sd = {k: v for k, v in sd.items() if not k.startswith(drop)}
    _strict_load(model.body, body_sd, path, f"the {model.backbone!r} backbone")
    if len(body_sd) < len(sd):
        warnings.warn(f"weights file {path}: dropped its classifier ({classifier}.*) and kept a "
                      f"fresh head for {model.num_classes} classes", stacklevel=3)
    return "body"


def check_backbone(name: str, weights_path: str = "") -> str:
    """Require a backbone :func:`build_model` can build, with ImageNet weights only where they
    exist; the grid driver calls it before anything runs (``--dry-run`` included).

    Imports torchvision only for a name that is not one of :data:`OWN_BACKBONES`.

    Raises:
        ValueError: unknown name (closest names suggested), or ``weights_path='imagenet'`` for
            one of :data:`OWN_BACKBONES`.
    """
    names = list(OWN_BACKBONES) if name in OWN_BACKBONES else available_backbones()
    if name not in names:
        close = difflib.get_close_matches(str(name)[:100], names, n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown backbone {str(name)[:100]!r}{hint} "
                         f"({', '.join(OWN_BACKBONES)} or a torchvision classification model)")
    if name in OWN_BACKBONES and str(weights_path).lower() == "imagenet":
        raise ValueError(f"there are no ImageNet weights for {name!r}; use weights_path='' or "
                         "a local weights file (e.g. data/teaching_backbone.pt)")
    return name


def build_model(name: str, num_classes: int,
                weights_path: str | os.PathLike | None = "") -> MultiLabelNet:
    """Build a multi-label network returning ``(logits (N, C), features (N, D))``.

    Args:
        name: ``'small_resnet'``, ``'tiny_cnn'`` or any torchvision classification model name
            (``resnet18``, ``resnet50``, ``resnet101``, ... see :func:`available_backbones`).
        num_classes: C >= 1.
        weights_path: ``''`` / None random init; ``'imagenet'`` torchvision DEFAULT weights
            (download); or a local weights-only file (see the module doc).

    Raises:
        ValueError: unknown name (the message lists close matches), num_classes < 1, a weights file
            that is refused or of the wrong architecture (keys listed), ``'imagenet'`` for an own
            backbone.
        FileNotFoundError: weights file missing.
        RuntimeError: ImageNet weights could not be downloaded.
    """
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 1:
        raise ValueError(f"num_classes must be an int >= 1, got {num_classes!r}")
    weights_path = "" if weights_path is None else str(weights_path)
    check_backbone(name, weights_path)
    imagenet = weights_path.lower() == "imagenet"
    if name in OWN_BACKBONES:
        body = OWN_BACKBONES[name]()
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
