"""Grids of papermill runs of ``notebooks/reproduce.ipynb``: load, validate, plan, run.

A grid file ``params/grids/<name>.yaml`` reads::

    description: BCE with and without CLML on the teaching set, 40% of the positives left
    seeds: [0, 1, 2]          # one run per cell and seed (``--seeds`` overrides)
    timeout_s: 900            # papermill per-cell execution timeout (``--timeout`` overrides)
    cells:
      - name: bce             # folder name of the cell (default: the preset name)
        preset: teaching      # params/<preset>.yaml (a complete parameter set)
        overrides: {use_clml: false}

Run ``(cell, seed)`` gets the parameters ``preset`` < ``overrides`` < ``--set`` < ``seed`` and
``out_dir``, and its executed notebook, ``metrics.json`` and ``checkpoint.pt`` live in
``<out>/<grid>/<cell>/seed<seed>/``. Everything (preset files, parameter names against the
notebook's ``parameters`` cell, types, values through ``TrainConfig.from_dict``, duplicate
runs) is validated by :func:`load_grid` before anything runs; a problem raises
:class:`GridError` naming the file, cell and parameter.

:func:`run_grid` runs each planned run through papermill, skips finished ones (``metrics.json``
with ``summary.finished: true`` and the same configuration), lets the engine resume interrupted
ones from ``checkpoint.pt``, and keeps going after a failure: the failed run's executed notebook
(with the error) stays in its folder and the failure is returned.

Decision: ``seed`` varies the training seed (initialisation, batch order, augmentation) only;
``split_seed`` (which labels are hidden, which images form the validation split) stays fixed,
like the reference's fixed released split files. Put ``split_seed`` in ``overrides`` or ``--set``
to vary it.
"""

from __future__ import annotations

import difflib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import yaml

from clml_lib.paths import NOTEBOOKS, PARAMS, PROJECT_ROOT, resolve

#: The notebook every run executes.
NOTEBOOK = NOTEBOOKS / "reproduce.ipynb"
#: Where grid files live.
GRIDS = PARAMS / "grids"
#: Parameters that may differ between a run on disk and a re-request of it without changing its
#: trajectory (the engine's ``RESUME_FREE_FIELDS``, and ``num_workers``); a larger ``stop_epoch``
#: makes a finished run resume and train on.
BOOKKEEPING = ("out_dir", "progress", "resume", "num_workers", "device", "stop_epoch")
#: Parameters set per run by the driver; a preset may hold them, a cell override may not.
DRIVER_SET = ("seed", "out_dir")
_GRID_KEYS = {"description", "seeds", "timeout_s", "cells"}
_CELL_KEYS = {"name", "preset", "overrides"}
_TYPES = {"str": str, "int": int, "float": float, "bool": bool}


class GridError(ValueError):
    """A bad grid file, preset, parameter name or value, found before anything runs."""


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


def _rel(path: Path) -> str:
    """``path`` relative to the project root when inside it (shorter logs), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def available_presets(folder: str | Path = PARAMS) -> list[str]:
    """Names of the preset files ``folder/*.yaml``, sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def load_preset(name: str | Path, folder: str | Path = PARAMS) -> dict[str, Any]:
    """Parameters of preset ``name`` (``params/<name>.yaml``) or of a YAML file path.

    Raises:
        GridError: no such preset (lists the available ones), or the file is not a mapping.
    """
    text = str(name)
    is_path = text.endswith((".yaml", ".yml")) or "/" in text
    path = resolve(text) if is_path else Path(folder) / f"{text}.yaml"
    if not path.is_file():
        if is_path:
            raise GridError(f"preset file not found: {path}")
        names = available_presets(folder)
        raise GridError(
            f"unknown preset {text!r}: no file {path}{_suggest(text, names)}; "
            f"available presets: {', '.join(names)}"
        )
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(params, dict):
        raise GridError(
            f"{path}: expected a mapping of parameter: value, got {type(params).__name__}"
        )
    return params


def notebook_parameters(notebook: str | Path = NOTEBOOK) -> dict[str, str]:
    """``name -> type name`` of the notebook's ``parameters`` cell, read by papermill.

    Raises:
        FileNotFoundError: no notebook at ``notebook``.
        GridError: the notebook has no ``parameters`` cell (papermill would then inject at the
            top and the notebook's defaults would silently win, style.md 3.8).
    """
    import papermill as pm

    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook not found: {notebook}")
    params = pm.inspect_notebook(str(notebook))
    if not params:
        raise GridError(f"{notebook} has no cell tagged 'parameters' (or it defines nothing)")
    return {name: p["inferred_type_name"] for name, p in params.items()}


def parse_value(text: str) -> Any:
    """A ``--set key=value`` value: YAML scalars (``true``, ``3``, ``0.5``, ``cpu``), and
    exponent floats such as ``1e-4`` (which YAML 1.1 would leave a string)."""
    if text.strip() == "":
        return ""
    if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+", text.strip()):
        return float(text)
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``["key=value", ...]`` -> dict (later items win).

    Raises:
        GridError: an item without ``=`` or with an empty key.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise GridError(f"--set expects key=value, got {item!r}")
        out[key.strip()] = parse_value(value)
    return out


def check_parameters(params: dict[str, Any], allowed: dict[str, str], where: str) -> dict[str, Any]:
    """Check names and types of ``params`` against the notebook's parameters cell.

    Ints and numeric strings (``'1e-4'``) are converted for float parameters, as
    ``TrainConfig.from_dict`` does; nothing else is converted.

    Args:
        params: parameter values.
        allowed: ``name -> type name`` from :func:`notebook_parameters`.
        where: what the values come from, for the error message.

    Returns:
        A copy of ``params`` with float parameters as floats.

    Raises:
        GridError: an unknown name (with close matches) or a value of the wrong type.
    """
    unknown = [k for k in params if k not in allowed]
    if unknown:
        hints = "; ".join(f"{k!r}{_suggest(k, list(allowed))}" for k in unknown)
        raise GridError(
            f"{where}: unknown parameter(s) {hints}; the notebook's parameters are: "
            f"{', '.join(allowed)}"
        )
    out = dict(params)
    for key, value in params.items():
        expected = _TYPES.get(allowed[key])
        if expected is None:
            continue
        if expected is float and not isinstance(value, (bool, float)):
            try:  # ints, and strings such as '1e-4' (YAML 1.1 reads 1e-4 without a dot as str)
                out[key] = float(value)
                continue
            except (TypeError, ValueError):
                pass
        if type(out[key]) is not expected:
            raise GridError(
                f"{where}: parameter {key!r} must be {allowed[key]}, got "
                f"{type(value).__name__} {value!r}"
            )
    return out


def _check_values(params: dict[str, Any], where: str) -> None:
    """Validate the values through ``TrainConfig.from_dict`` (choices, ranges)."""
    from clml_lib.train import TrainConfig

    try:
        TrainConfig.from_dict(params)
    except (ValueError, TypeError) as exc:
        raise GridError(f"{where}: {exc}") from exc


@dataclass
class Run:
    """One papermill run: a grid cell at one seed."""

    cell: str
    seed: int
    preset: str
    params: dict[str, Any]
    run_dir: Path

    @property
    def notebook_path(self) -> Path:
        return self.run_dir / "reproduce.ipynb"

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.json"

    def read_metrics(self) -> dict[str, Any] | None:
        """The run's ``metrics.json``, or None when it does not exist yet."""
        if not self.metrics_path.is_file():
            return None
        return json.loads(self.metrics_path.read_text())

    def status(self) -> str:
        """``finished`` (summary.finished, at the requested ``stop_epoch``), ``partial``
        (something on disk: the engine resumes it) or ``new``."""
        metrics = self.read_metrics()
        if (
            metrics is not None
            and metrics.get("summary", {}).get("finished")
            and metrics.get("config", {}).get("stop_epoch") == self.params.get("stop_epoch")
        ):
            return "finished"
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            return "partial"
        return "new"

    def config_mismatch(self) -> list[str]:
        """Differences between the configuration in ``metrics.json`` and ``params``
        (ignoring :data:`BOOKKEEPING`): a run folder from another configuration must not be
        skipped as finished nor resumed."""
        metrics = self.read_metrics()
        if metrics is None or "config" not in metrics:
            return []
        stored = metrics["config"]
        return [
            f"{k}: on disk {stored.get(k)!r}, requested {v!r}"
            for k, v in self.params.items()
            if k not in BOOKKEEPING and k in stored and stored[k] != v
        ]


@dataclass
class Grid:
    """A validated grid: its runs, in order, and where they go."""

    name: str
    description: str
    seeds: list[int]
    timeout_s: float | None
    out_dir: Path
    runs: list[Run] = field(default_factory=list)

    @property
    def results_dir(self) -> Path:
        return self.out_dir / "results"


def find_grid_file(name: str | Path, folder: str | Path = GRIDS) -> Path:
    """``params/grids/<name>.yaml``, or ``name`` itself when it is a YAML path.

    Raises:
        GridError: no such grid (lists the available ones).
    """
    text = str(name)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = resolve(text)
        if not path.is_file():
            raise GridError(f"grid file not found: {path}")
        return path
    path = Path(folder) / f"{text}.yaml"
    if not path.is_file():
        names = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        raise GridError(
            f"unknown grid {text!r}: no file {path}{_suggest(text, names)}; "
            f"available grids: {', '.join(names)}"
        )
    return path


def load_grid(
    name: str | Path,
    seeds: list[int] | None = None,
    out: str | Path = "runs/grids",
    sets: dict[str, Any] | None = None,
    timeout_s: float | None = None,
    notebook: str | Path = NOTEBOOK,
    presets_dir: str | Path = PARAMS,
    check_values: bool = True,
) -> Grid:
    """Read and validate a grid and plan its runs; nothing is run or written.

    Args:
        name: grid name (``params/grids/<name>.yaml``) or a path to a grid YAML file.
        seeds: seeds to run (default: the grid's ``seeds``, else ``[0]``).
        out: parent folder of the grid's folder (relative paths: from the project root).
        sets: ``--set`` overrides applied to every cell.
        timeout_s: papermill per-cell execution timeout (default: the grid's ``timeout_s``).
        notebook: the notebook whose ``parameters`` cell defines the valid names.
        presets_dir: where preset names are looked up.
        check_values: also validate every run's values through ``TrainConfig.from_dict``.

    Raises:
        GridError: malformed grid, unknown preset, unknown parameter or bad value, a cell
            override of ``seed``/``out_dir``, or two runs sharing a folder.
    """
    path = find_grid_file(name)
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise GridError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(spec, dict) or not isinstance(spec.get("cells"), list) or not spec["cells"]:
        raise GridError(f"{path}: expected a mapping with a non-empty list 'cells'")
    extra = set(spec) - _GRID_KEYS
    if extra:
        raise GridError(f"{path}: unknown key(s) {sorted(extra)}; allowed: {sorted(_GRID_KEYS)}")
    seeds = list(seeds) if seeds else list(spec.get("seeds") or [0])
    for s in seeds:
        if not isinstance(s, int) or isinstance(s, bool) or s < 0:
            raise GridError(f"{path}: seeds must be non-negative ints, got {s!r}")
    if len(set(seeds)) != len(seeds):
        raise GridError(f"{path}: duplicate seeds {seeds}")
    timeout = timeout_s if timeout_s is not None else spec.get("timeout_s")
    if timeout is not None and (not isinstance(timeout, (int, float)) or timeout <= 0):
        raise GridError(f"timeout must be a positive number of seconds, got {timeout!r}")
    allowed = notebook_parameters(notebook)
    sets = check_parameters(dict(sets or {}), allowed, "--set")
    bad_sets = [k for k in DRIVER_SET if k in sets]
    if bad_sets:
        raise GridError(f"--set cannot set {bad_sets}: use --seeds and --out")
    grid_name = path.stem
    description = str(spec.get("description", ""))
    grid = Grid(grid_name, description, seeds, timeout, resolve(out) / grid_name)
    seen: dict[Path, str] = {}
    for i, cell in enumerate(spec["cells"]):
        where = f"{path.name} cell {i}"
        if not isinstance(cell, dict) or "preset" not in cell:
            raise GridError(f"{where}: expected a mapping with a 'preset', got {cell!r}")
        extra = set(cell) - _CELL_KEYS
        if extra:
            raise GridError(
                f"{where}: unknown key(s) {sorted(extra)}; allowed: {sorted(_CELL_KEYS)}"
            )
        cell_name = str(cell.get("name") or Path(str(cell["preset"])).stem)
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", cell_name):
            raise GridError(f"{where}: cell name {cell_name!r} must be [A-Za-z0-9_.-]+")
        where = f"{path.name} cell {cell_name!r}"
        overrides = cell.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise GridError(f"{where}: overrides must be a mapping, got {overrides!r}")
        bad = [k for k in DRIVER_SET if k in overrides]
        if bad:
            raise GridError(f"{where}: overrides cannot set {bad}; the driver sets them per run")
        preset = load_preset(cell["preset"], presets_dir)
        preset = check_parameters(preset, allowed, f"preset {cell['preset']!r}")
        overrides = check_parameters(overrides, allowed, f"{where} overrides")
        missing = [k for k in allowed if k not in {**preset, **overrides, **sets}]
        if missing:
            raise GridError(
                f"{where}: preset {cell['preset']!r} lacks {missing}; presets must list every "
                "parameter so that nothing comes from the notebook's teaching defaults"
            )
        for seed in seeds:
            run_dir = grid.out_dir / cell_name / f"seed{seed}"
            if run_dir in seen:
                raise GridError(f"{where}: two cells share the folder {run_dir} ({seen[run_dir]})")
            seen[run_dir] = cell_name
            params = {**preset, **overrides, **sets, "seed": seed, "out_dir": _rel(run_dir)}
            if check_values:
                _check_values(params, f"{where} seed {seed}")
            grid.runs.append(Run(cell_name, seed, str(cell["preset"]), params, run_dir))
    return grid


@dataclass
class RunOutcome:
    """What happened to one run in :func:`run_grid`."""

    run: Run
    status: str  # skipped | ran | failed | planned
    seconds: float = 0.0
    error: str = ""


def execute_run(run: Run, notebook: str | Path, timeout_s: float | None) -> None:
    """Execute ``notebook`` with ``run.params`` into ``run.notebook_path`` through papermill.

    Raises:
        papermill.PapermillExecutionError: a cell raised (the executed notebook, with the
            error, is written first).
        Exception: whatever nbclient raises on a cell timeout or a dead kernel.
    """
    import papermill as pm

    run.run_dir.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(
        str(notebook),
        str(run.notebook_path),
        parameters=run.params,
        kernel_name="python3",
        execution_timeout=timeout_s,
        log_output=True,
        progress_bar=False,
        cwd=str(PROJECT_ROOT),
    )


def run_grid(
    grid: Grid,
    dry_run: bool = False,
    notebook: str | Path = NOTEBOOK,
    log: Callable[[str], None] = print,
) -> list[RunOutcome]:
    """Run every planned run of ``grid`` in order, keeping going after failures.

    A finished run with the same configuration is skipped; a run folder whose
    ``metrics.json`` holds another configuration is a failure (never overwritten); anything
    else runs (the engine resumes from ``checkpoint.pt`` when ``resume`` is true).

    Returns:
        One :class:`RunOutcome` per run, in order (``planned`` for every run when
        ``dry_run``).
    """
    import papermill as pm

    outcomes = []
    n = len(grid.runs)
    for i, run in enumerate(grid.runs, 1):
        tag = f"[{i}/{n}] {grid.name}/{run.cell} seed {run.seed}"
        status = run.status()
        mismatch = run.config_mismatch()
        if mismatch:
            msg = (
                f"{_rel(run.run_dir)} holds a run with another configuration "
                f"({'; '.join(mismatch)}); delete it or choose another --out"
            )
            log(f"{tag}: FAILED: {msg}")
            outcomes.append(RunOutcome(run, "failed", error=msg))
            continue
        if dry_run:
            log(f"{tag}: {status:8s} -> {_rel(run.run_dir)}  (preset {run.preset})")
            outcomes.append(RunOutcome(run, "planned"))
            continue
        if status == "finished":
            log(f"{tag}: finished earlier, skipped ({_rel(run.run_dir)})")
            outcomes.append(RunOutcome(run, "skipped"))
            continue
        verb = "resuming" if status == "partial" else "running"
        log(f"{tag}: {verb} -> {_rel(run.notebook_path)}")
        start = time.perf_counter()
        try:
            execute_run(run, notebook, grid.timeout_s)
        except pm.PapermillExecutionError as exc:
            error = f"{exc.ename}: {exc.evalue} (cell {exc.exec_count})"
        except Exception as exc:  # dead kernel, cell timeout, missing kernel...
            error = f"{type(exc).__name__}: {exc}"
        else:
            error = ""
        seconds = time.perf_counter() - start
        if error:
            log(f"{tag}: FAILED after {seconds:.1f} s: {error}")
            log(f"    executed notebook with the error: {_rel(run.notebook_path)}")
            outcomes.append(RunOutcome(run, "failed", seconds, error))
        else:
            summary = (run.read_metrics() or {}).get("summary", {})
            log(
                f"{tag}: done in {seconds:.1f} s (test mAP selected on val "
                f"{summary.get('test_mAP', float('nan')):.2f}, best on test "
                f"{summary.get('best_test_mAP', float('nan')):.2f})"
            )
            outcomes.append(RunOutcome(run, "ran", seconds))
    return outcomes
