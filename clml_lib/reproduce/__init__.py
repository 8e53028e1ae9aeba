"""Reproductions of the paper's experiments through ``notebooks/reproduce.ipynb``.

* :mod:`.presets`: the table behind ``params/*.yaml`` (complete parameter sets).
* :mod:`.grid`: grid files ``params/grids/*.yaml``; validation before anything runs; papermill
  runs that skip finished cells, resume interrupted ones and survive failures.
* :mod:`.collate`: baseline vs +CLML tables (two model-selection protocols) and a plot.
* :mod:`.cli`: ``python -m clml_lib.reproduce --grid NAME [--seeds ...] [--set k=v] [--dry-run]``.
"""

from .collate import Comparison, build_comparisons, collate
from .grid import (
    NOTEBOOK,
    Grid,
    GridError,
    Run,
    RunOutcome,
    check_parameters,
    load_grid,
    load_preset,
    notebook_parameters,
    parse_sets,
    run_grid,
)
from .presets import preset_table, render_preset, write_presets

__all__ = [
    "NOTEBOOK",
    "Comparison",
    "Grid",
    "GridError",
    "Run",
    "RunOutcome",
    "build_comparisons",
    "check_parameters",
    "collate",
    "load_grid",
    "load_preset",
    "notebook_parameters",
    "parse_sets",
    "preset_table",
    "render_preset",
    "run_grid",
    "write_presets",
]
