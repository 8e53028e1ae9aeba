"""Reproductions of the paper's experiments through ``notebooks/reproduce.ipynb``.

* parameter layers ``params/*.yaml`` (``paper.yaml`` the complete reference recipe, small layers
  on top) composed like papermill's ``-f``; the schema is :class:`clml_lib.train.TrainConfig`.
* :mod:`.grid`: grid files ``params/grids/*.yaml`` (layers and axes); validation before anything
  runs; papermill runs that skip finished cells, resume interrupted ones, survive failures and run
  ``jobs`` kernels at a time.
* :mod:`.collate`: baseline vs +CLML tables with intervals and verdicts, and a plot.
* :mod:`.cli`: ``python -m clml_lib.reproduce --grid NAME [--seeds ...] [--set k=v] [--jobs N]``.
"""

from .collate import Comparison, build_comparisons, collate, render_compact_table
from .grid import (
    NOTEBOOK,
    Grid,
    GridError,
    Run,
    RunOutcome,
    load_grid,
    load_layer,
    notebook_parameters,
    parse_sets,
    plan,
    run_grid,
)

__all__ = [
    "NOTEBOOK",
    "Comparison",
    "Grid",
    "GridError",
    "Run",
    "RunOutcome",
    "build_comparisons",
    "collate",
    "load_grid",
    "load_layer",
    "notebook_parameters",
    "parse_sets",
    "plan",
    "render_compact_table",
    "run_grid",
]
