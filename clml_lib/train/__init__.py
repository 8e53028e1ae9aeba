"""Training engine: :class:`TrainConfig` (the one schema of a run: every field declared once, with
type, default, range, help and role), :func:`fit` (train / resume one run, write
``metrics.json`` and ``checkpoint.pt``) and :func:`build_run` (the run object behind ``fit``:
``.fit()``, ``.step(batch)``, ``.evaluate()``, with an optional loss passed in).

Command line: ``python -m clml_lib.train -f params/paper.yaml --set data_root=/data/coco ...``
(``--help`` lists every field); multi-process: ``torchrun --nproc_per_node 2 -m clml_lib.train
-f ...``. ``docs/configuration.md`` describes the schema, the parameter layers and the grids.

``fit`` and ``build_run`` are imported on first use (PEP 562), so reading a config does not import
the engine.
"""

from .config import TrainConfig, load_config

__all__ = ["TrainConfig", "build_run", "fit", "load_config"]


def __getattr__(name: str):
    if name in ("fit", "build_run"):
        from . import engine

        return getattr(engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
