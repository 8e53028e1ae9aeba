"""Training engine: :class:`TrainConfig` (every knob, one papermill parameter each) and
:func:`fit` (train / resume one run, write ``metrics.json`` and ``checkpoint.pt``).

Command line: ``python -m clml_lib.train --config params/x.yaml --set key=value ...``;
multi-process: ``torchrun --nproc_per_node 2 -m clml_lib.train --config ...``.

``fit`` is imported on first use (PEP 562), so reading a config does not import torch.
"""

from .config import TrainConfig, load_config

__all__ = ["TrainConfig", "fit", "load_config"]


def __getattr__(name: str):
    if name == "fit":
        from .engine import fit

        return fit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
