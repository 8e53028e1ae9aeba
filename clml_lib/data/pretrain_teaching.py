"""The teaching backbone's source task and the command that pretrains it.

The paper fine-tunes a ResNet-101 pretrained on ImageNet: single-label, object-centred photos of
1,000 fine classes, none of them COCO's images. The teaching analog (docs/teaching_regime.md):

* **Source task** (:func:`source_split`): object-centred images, ONE larger object each (radius
  0.28-0.40 of the side instead of 0.17-0.26), on the same kind of textured, cluttered background
  as the teaching set; **36 fine classes** = the 12 shapes x 3 fill textures (``disc/plain``,
  ``disc/stripes``, ``disc/shaded``, ...), single-label (softmax). No scenes, so no label
  co-occurrence to learn; the images come from their own random streams (generator seed
  :data:`SOURCE_SEED` and stream codes 10 / 12, never the target's streams 0 / 1 / 2), so not one
  of the teaching set's train / val / test images is seen.
* **Pretraining** (:func:`pretrain`): ``small_resnet`` (:class:`clml_lib.models.SmallResNet`)
  with a 36-way head, softmax cross-entropy, AdamW with OneCycle, random horizontal flips, on
  the CPU with pinned threads and deterministic algorithms, so the same command gives the same
  bytes on the same platform and torch version.

Run ``python -m clml_lib.data.pretrain_teaching`` (defaults = the shipped file) to write
``data/teaching_backbone.pt`` (float32 state dict with ``body.*`` and the 36-class ``head.*``,
loadable with ``torch.load(weights_only=True)``) and ``data/teaching_backbone.json`` (the
command, seeds, source task, source test mAP and top-1 accuracy, torch version, sha256 of the
.pt). ``--quick`` is a seconds-long form for the tests. An existing output is never replaced
without ``--force``.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..atomic import atomic_write_bytes, atomic_write_json
from ..checks import check_int
from ..mapping_file import read_mapping
from ..metrics import mean_average_precision
from ..models import build_model, count_parameters
from ..paths import resolve
from .teaching import TEACHING_CLASSES, TEXTURES, _render

#: The 36 fine source classes: shape/texture, index = 3 * shape index + texture index.
SOURCE_CLASSES: list[str] = [f"{s}/{t}" for s in TEACHING_CLASSES for t in TEXTURES]
#: Generator seed of the source images (the teaching set's images use data seed 0).
SOURCE_SEED = 1
#: Random-stream codes of the source splits (the teaching set uses 0 / 1 / 2).
_STREAM = {"train": 10, "test": 12}
#: Backbone that is pretrained and the paths of the shipped files (relative to the project root).
BACKBONE = "small_resnet"
DEFAULT_OUT = "data/teaching_backbone.pt"

#: The recipe of the shipped file; ``--quick`` overrides sizes and epochs only.
DEFAULTS: dict[str, Any] = {
    "seed": SOURCE_SEED, "epochs": 10, "num_train": 8000, "num_test": 2000, "batch_size": 128,
    "lr": 3e-3, "weight_decay": 5e-4, "image_size": 32, "threads": 1,
}
QUICK = {"epochs": 1, "num_train": 256, "num_test": 144}


def source_split(split: str, num_images: int, image_size: int = 32,
                 seed: int = SOURCE_SEED) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and fine labels of the source task (see the module doc).

    Args:
        split: ``'train'`` | ``'test'``. num_images: N >= 1. image_size: S >= 16. seed: >= 0.

    Returns:
        images uint8 (N, 3, S, S); labels int64 (N,) indices into :data:`SOURCE_CLASSES`.

    Raises:
        ValueError: unknown split or a bad size / seed.
    """
    if split not in _STREAM:
        raise ValueError(f"source split must be one of {sorted(_STREAM)}, got {split!r}")
    num_images = check_int("num_images", num_images, lo=1)
    image_size = check_int("image_size", image_size, lo=16)
    seed = check_int("seed", seed, lo=0)
    rng = np.random.default_rng(np.random.SeedSequence([seed, _STREAM[split]]))
    fine = rng.integers(0, len(SOURCE_CLASSES), num_images)  # (N,)
    shape, texture = fine // len(TEXTURES), fine % len(TEXTURES)
    onehot = np.zeros((num_images, len(TEACHING_CLASSES)), np.uint8)  # (N, 12) the drawn shape
    onehot[np.arange(num_images), shape] = 1
    images = _render(rng, onehot, image_size, layout="centre", textures=texture)
    return torch.from_numpy(images), torch.from_numpy(fine.astype(np.int64))


def _evaluate(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Source test mAP (macro AP over the 36 classes of the softmax scores) and top-1, in %."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(images[i:i + 500].float() / 255.0)[0]
                            for i in range(0, len(images), 500)])  # (N, 36)
    target = F.one_hot(labels, len(SOURCE_CLASSES)).numpy()  # (N, 36)
    present = target.sum(0) > 0
    mAP, _ = mean_average_precision(logits.softmax(1).numpy()[:, present], target[:, present])
    top1 = float((logits.argmax(1) == labels).float().mean()) * 100.0
    return {"map": round(mAP, 2), "top1": round(top1, 2), "num_classes_scored": int(present.sum())}


def pretrain(*, seed: int, epochs: int, num_train: int, num_test: int, batch_size: int, lr: float,
             weight_decay: float, image_size: int, threads: int, log=print) -> tuple[dict, dict]:
    """Pretrain ``small_resnet`` on the source task.

    Returns:
        ``(state_dict, report)``: the float32 state dict of the ``MultiLabelNet`` (body + 36-way
        head) and a report (source test mAP / top-1, per-epoch loss, wall time).
    """
    old = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        return _pretrain(seed, epochs, num_train, num_test, batch_size, lr, weight_decay,
                         image_size, log)
    finally:
        torch.set_num_threads(old[0])
        torch.use_deterministic_algorithms(old[1])


def _pretrain(seed, epochs, num_train, num_test, batch_size, lr, weight_decay, image_size, log):
    torch.manual_seed(seed)
    t0 = time.perf_counter()
    train_x, train_y = source_split("train", num_train, image_size, seed)
    test_x, test_y = source_split("test", num_test, image_size, seed)
    t_data = time.perf_counter() - t0
    model = build_model(BACKBONE, len(SOURCE_CLASSES))
    steps = -(-num_train // batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps,
                                                pct_start=0.2)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(num_train, generator=gen)  # (N,)
        flip = torch.rand(num_train, generator=gen) < 0.5  # (N,)
        total = 0.0
        for b in range(steps):
            idx = order[b * batch_size:(b + 1) * batch_size]
            x = train_x[idx].float() / 255.0  # (B, 3, S, S)
            x = torch.where(flip[idx, None, None, None], x.flip(3), x)
            loss = F.cross_entropy(model(x)[0], train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        losses.append(round(total / num_train, 4))
        log(f"epoch {epoch + 1}/{epochs}: train loss {losses[-1]:.4f} "
            f"({time.perf_counter() - t0:.0f} s)")
    metrics = _evaluate(model, test_x, test_y)
    log(f"source test: mAP {metrics['map']:.2f}, top-1 {metrics['top1']:.2f} %")
    state = {k: v.detach().to(torch.float32).clone() if v.is_floating_point() else v.clone()
             for k, v in model.state_dict().items()}
    report = {"source_test": metrics, "train_loss": losses, "data_seconds": round(t_data, 1),
              "wall_seconds": round(time.perf_counter() - t0, 1),
              "parameters": count_parameters(model), "feature_dim": model.feature_dim}
    return state, report


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m clml_lib.data.pretrain_teaching",
        description="Pretrain the teaching backbone (small_resnet) on the source task: 36 "
                    "shape/texture classes, one object per image, images never from the teaching "
                    "set. Writes the weights (.pt) and a sidecar (.json).")
    p.add_argument("--out", default=DEFAULT_OUT,
                   help=f"weights file to write; the sidecar gets .json (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                   help="source image generator and training seed")
    p.add_argument("--epochs", type=int, default=None, help=f"default {DEFAULTS['epochs']}")
    p.add_argument("--quick", action="store_true",
                   help=f"a seconds-long run for the tests ({QUICK})")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    return p


def main(argv: list[str] | None = None) -> dict:
    """Entry point; returns the sidecar dict. Exit status 2 on bad arguments or existing outputs."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    args = parser.parse_args(argv)
    recipe = dict(DEFAULTS, **(QUICK if args.quick else {}))
    recipe["seed"] = args.seed
    if args.epochs is not None:
        recipe["epochs"] = args.epochs
    try:
        check_int("seed", recipe["seed"], lo=0)
        check_int("epochs", recipe["epochs"], lo=1)
    except ValueError as err:
        parser.error(str(err))
    out = resolve(args.out)
    if out.suffix != ".pt":
        parser.error(f"--out must end in .pt, got {out}")
    sidecar_path = out.with_suffix(".json")
    existing = [str(p) for p in (out, sidecar_path) if p.exists()]
    if existing and not args.force:
        parser.error(f"{' and '.join(existing)} exist; pass --force to replace them")
    state, report = pretrain(**recipe)
    buf = io.BytesIO()
    torch.save(state, buf)
    data = buf.getvalue()
    sidecar = {
        "command": f"python -m clml_lib.data.pretrain_teaching {shlex.join(argv)}".strip(),
        "weights_file": out.name,
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "backbone": BACKBONE,
        "head_classes": len(SOURCE_CLASSES),
        "recipe": recipe,
        "source_task": {
            "description": "one object per image near the centre (radius 0.28-0.40 of the side), "
                           "textured cluttered background as the teaching set; single-label, "
                           "36 fine classes = 12 shapes x 3 fill textures; no scenes",
            "classes": SOURCE_CLASSES,
            "generator_seed": recipe["seed"],
            "streams": _STREAM,
            "sizes": {"train": recipe["num_train"], "test": recipe["num_test"]},
            "disjoint_from_target": "own random streams (codes 10/12; the teaching set uses "
                                    "0/1/2), own layout and label set",
        },
        **report,
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    atomic_write_bytes(out, data)
    atomic_write_json(sidecar_path, sidecar)
    print(f"wrote {out} ({len(data)} bytes, sha256 {sidecar['sha256'][:16]}...) and {sidecar_path}")
    return sidecar


def load_sidecar(weights_path: str | Path = DEFAULT_OUT) -> dict:
    """The sidecar (.json beside the weights file) as a dict.

    Raises:
        FileNotFoundError: no sidecar. ValueError: not a JSON object (the message names the file).
    """
    return read_mapping(resolve(weights_path).with_suffix(".json"), "weights sidecar")


if __name__ == "__main__":
    main()
