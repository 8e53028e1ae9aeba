"""Training engine: :class:`TrainConfig` (the one schema of a run: every field declared once, with
type, default, range, help and role) and :func:`fit` (train / resume one run, write
``metrics.json`` and ``checkpoint.pt``).

Command line: ``python -m clml_lib.train -f params/paper.yaml --set data_root=/data/coco ...``
(``--help`` lists every field); multi-process: ``torchrun --nproc_per_node 2 -m clml_lib.train
-f ...``. ``docs/configuration.md`` describes the schema, the parameter layers and the grids.

``fit`` is imported on first use (PEP 562), so reading a config does not import the engine.
"""

from .config import TrainConfig, load_config

__all__ = ["TrainConfig", "fit", "load_config"]


def __getattr__(name: str):
    if name == "fit":
        from .engine import fit

        return fit
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
