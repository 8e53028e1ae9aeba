"""Grids of runs of ``notebooks/reproduce.ipynb``: load, validate, plan, run.

A grid file ``params/grids/<name>.yaml`` declares parameter layers and axes::

    description: BCE with and without CLML on the teaching set
    layers: [teaching]          # params/<name>.yaml files composed in order, like papermill -f
    axes:                       # expanded as a product, first axis outermost
      setting: [40left, single]
      use_clml: [false, true]
    seeds: [0, 1, 2]            # one run per cell and seed (--seeds overrides)
    seed_fields: [seed, split_seed]   # the fields a grid seed sets (this is the default)
    set: {}                     # fixed parameters of every run (like papermill -p)
    timeout_s: 900              # papermill per-cell timeout (--timeout overrides)

An axis named ``layer`` takes parameter files (e.g. ``[voc, nus]``) added after ``layers``. Run
``(cell, seed)`` gets exactly what papermill gets from ``-f layer ... -p axis value ... -p name
value`` (``set``, then ``--set``), then the seed fields and ``out_dir``; fields set nowhere take the
notebook's defaults, which equal the schema's (a test keeps them equal).
:meth:`Run.papermill_command` prints that command, so one cell is reproduced by hand with the same
composition. Every value goes through the one parser and validator of
:mod:`clml_lib.train.config`; a problem raises :class:`GridError` naming the file, the cell and
the field, before anything runs.

A run lives in ``<out>/<grid>/<cell>/seed<seed>/``. :func:`run_grid` first checks every run folder
(before any kernel starts): a folder whose ``config.json``/``metrics.json`` holds another
configuration in a field that changes what a run computes (any field of role ``experiment`` or
``clml``: only the ``bookkeeping`` fields may differ on resume) fails with the fields named and is
never overwritten; an unreadable ``metrics.json`` is named and the run is re-run (the engine resumes
it from ``checkpoint.pt``). Finished runs are skipped; the others run, ``jobs`` at a time, either
through papermill (``runner="papermill"``, the default: one kernel per run, the executed notebook
in the run folder) or in ``jobs`` long-lived worker processes that call ``fit`` on the same
configuration (``runner="process"``, :mod:`.workers`: the same run files, without the ~20 s
start-up of a notebook kernel per run), or as the tasks of a Slurm job array (``runner="slurm"``,
:mod:`.slurm`).

Seeds: a grid seed sets ``seed`` and ``split_seed`` (``seed_fields``): the missing-label draw, the
validation carve-out, the initialisation, the batch order and the augmentation all vary with it, so
the interval over seeds covers all of them (the teaching images themselves are fixed).
"""

from __future__ import annotations

import difflib
import itertools
import math
import os
import re
import shlex
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from clml_lib.checks import Range, clip
from clml_lib.mapping_file import parse_json, read_mapping
from clml_lib.models import check_backbone
from clml_lib.paths import NOTEBOOKS, PARAMS, PROJECT_ROOT, resolve_path
from clml_lib.seed import SEED_RANGE
from clml_lib.stats import DEFAULT_SMALLEST_EFFECT, Interval, margin_code
from clml_lib.train.config import (
    BOOKKEEPING_FIELDS,
    SEED_FIELDS,
    TrainConfig,
    parse_override,
    parse_value,
    read_layer,
)

from . import slurm as slurm_mod
from .slurm import SlurmResources
from .workers import RUN_LOG_NAME, WorkerPool

#: The notebook every run executes.
NOTEBOOK = NOTEBOOKS / "reproduce.ipynb"
#: How runs are executed (:func:`run_grid`): a notebook per run, fit() in worker processes, or a
#: Slurm job array.
RUNNERS = ("papermill", "process", "slurm")
#: Where grid files live.
GRIDS = PARAMS / "grids"
#: The fields a grid seed sets unless the grid says otherwise.
DEFAULT_SEED_FIELDS = ("seed", "split_seed")
_GRID_KEYS = {"description", "layers", "axes", "seeds", "seed_fields", "set", "timeout_s",
              "smallest_effect"}


class GridError(ValueError):
    """A bad grid file, layer, parameter name or value, found before anything runs."""


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=3)
    return f" (did you mean {', '.join(map(repr, close))}?)" if close else ""


def _rel(path: Path) -> str:
    """``path`` relative to the project root when inside it (shorter logs), else absolute."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def available_layers(folder: str | Path = PARAMS) -> list[str]:
    """Names of the parameter files ``folder/*.yaml``, sorted."""
    return sorted(p.stem for p in Path(folder).glob("*.yaml"))


def find_layer(name: str | Path, folder: str | Path = PARAMS) -> Path:
    """``params/<name>.yaml``, or ``name`` itself when it is a YAML path (relative: from the
    project root).

    Raises:
        GridError: no such file (lists the available layers).
    """
    return _find_yaml(name, folder, "parameter file", "parameter file", "available")


def _find_yaml(name: str | Path, folder: str | Path, file_what: str, what: str,
               listing: str) -> Path:
    """``folder/<name>.yaml``, or ``name`` itself when it is a YAML path (relative: from the
    project root); the shared lookup of parameter files and grids.

    Raises:
        GridError: ``"<file_what> not found: path"`` for a path, ``"unknown <what> 'name' ... ;
            <listing>: names"`` (with a suggestion) for a name.
    """
    text = str(name)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        path = resolve_path(text)
        if not path.is_file():
            raise GridError(f"{file_what} not found: {path}")
        return path
    path = Path(folder) / f"{text}.yaml"
    if not path.is_file():
        names = available_layers(folder)
        raise GridError(f"unknown {what} {text!r}: no file {path}{_suggest(text, names)}; "
                        f"{listing}: {', '.join(names)}")
    return path


def load_layer(name: str | Path, folder: str | Path = PARAMS) -> dict[str, Any]:
    """The fields set by one parameter file, parsed and checked.

    Raises:
        GridError: no such file, not a mapping, an unknown field or a bad value (file named).
    """
    path = find_layer(name, folder)
    try:
        return read_layer(path)
    except ValueError as exc:
        raise GridError(str(exc)) from None


def notebook_parameters(notebook: str | Path = NOTEBOOK) -> dict[str, str]:
    """``name -> type name`` of the notebook's ``parameters`` cell, read by papermill.

    Raises:
        FileNotFoundError: no notebook at ``notebook``.
        GridError: the notebook has no ``parameters`` cell (papermill would then inject at the
            top and the notebook's own values would silently win).
    """
    import papermill as pm

    notebook = Path(notebook)
    if not notebook.is_file():
        raise FileNotFoundError(f"notebook not found: {notebook}")
    params = pm.inspect_notebook(str(notebook))
    if not params:
        raise GridError(f"{notebook} has no cell tagged 'parameters' (or it defines nothing)")
    return {name: p["inferred_type_name"] for name, p in params.items()}


def parse_sets(items: list[str] | None) -> dict[str, Any]:
    """``["name=value", ...]`` -> typed dict through the one parser (later items win).

    Raises:
        GridError: an item without ``=``, an unknown field or a bad value.
    """
    out: dict[str, Any] = {}
    for item in items or []:
        try:
            key, value = parse_override(item)
        except ValueError as exc:
            raise GridError(f"--set {item!r}: {exc}") from None
        out[key] = value
    return out


def _token(name: str, value: Any) -> str:
    """Folder-name token of one axis value: ``40left``, ``bce``, ``clml`` / ``no_clml``,
    ``tau0.5``."""
    if isinstance(value, bool):
        short = name[4:] if name.startswith("use_") else name
        return short if value else f"no_{short}"
    if isinstance(value, str):
        return Path(value).stem.lower() if name == "layer" else value.lower()
    return f"{name.rstrip('_')}{value}"


@dataclass
class Run:
    """One papermill run: a grid cell at one seed."""

    cell: str
    seed: int
    layers: list[Path]
    params: dict[str, Any]  # what papermill gets: -p values (layers not included)
    config: TrainConfig  # the full configuration the notebook will build
    run_dir: Path

    @property
    def notebook_path(self) -> Path:
        return self.run_dir / "reproduce.ipynb"

    @property
    def metrics_path(self) -> Path:
        return self.run_dir / "metrics.json"

    @property
    def scores_path(self) -> Path:
        """Per-image test scores of the selected model, written by the engine."""
        return self.run_dir / "test_scores.pt"

    def notebook_parameters(self) -> dict[str, Any]:
        """Every parameter passed to papermill: the layers composed, then ``params``."""
        out: dict[str, Any] = {}
        for layer in self.layers:
            out.update(read_layer(layer))
        out.update(self.params)
        return out

    def papermill_command(self, notebook: str | Path = NOTEBOOK) -> str:
        """The papermill command line that runs exactly this run (same composition)."""
        parts = ["papermill", _rel(Path(notebook)), _rel(self.notebook_path)]
        for layer in self.layers:
            parts += ["-f", _rel(layer)]
        for k, v in self.params.items():
            parts += ["-p", k, str(v)]
        return " ".join(shlex.quote(p) for p in parts)

    def read_metrics(self) -> dict[str, Any] | None:
        """The run's ``metrics.json``, or None when it does not exist yet.

        Raises:
            GridError: the file exists but is not a readable JSON object, or lacks what the
                driver and the collator read (a ``summary`` with ``finished`` and, once finished,
                numbers for the mAPs; ``config`` and ``epochs`` of the right types); the message
                names the file and the key.
        """
        doc = _read_json(self.metrics_path)
        if doc is not None:
            _check_metrics(doc, self.metrics_path)
        return doc

    def metrics_or_problem(self) -> tuple[dict[str, Any] | None, str]:
        """``(metrics, "")``, ``(None, "")`` when absent, or ``(None, problem)`` when unreadable."""
        try:
            return self.read_metrics(), ""
        except GridError as exc:
            return None, str(exc)

    def status(self) -> str:
        """``finished`` (summary.finished at the requested last epoch), ``partial`` (something on
        disk, or an unreadable metrics.json, and ``resume`` true: the engine resumes it),
        ``restart`` (something on disk but ``resume`` false: the engine starts over) or
        ``new``."""
        metrics, _ = self.metrics_or_problem()
        if metrics is not None and metrics["summary"].get("finished"):
            try:
                done = TrainConfig.from_dict(metrics["config"]).last_epoch
            except ValueError:
                done = None
            if done == self.config.last_epoch:
                return "finished"
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            return "partial" if self.config.resume else "restart"
        return "new"

    def config_mismatch(self) -> list[str]:
        """Why the folder cannot hold this run: the fields (outside the bookkeeping role) in which
        the configuration on disk (``metrics.json``, else ``config.json``) differs from this run's,
        or a label list whose content changed since the run (its SHA-256 is recorded in
        ``metrics.json``); empty when the folder is new or agrees."""
        for path in (self.metrics_path, self.run_dir / "config.json"):
            try:
                doc = self.read_metrics() if path == self.metrics_path else _read_json(path)
            except GridError:
                continue  # unreadable: reported by metrics_or_problem, the other file may do
            if doc is None:
                continue
            stored = doc["config"] if path == self.metrics_path else doc
            try:
                old = TrainConfig.from_dict(stored, source=_rel(path))
            except (ValueError, TypeError) as exc:
                return [f"its configuration cannot be read by this version: {exc}"]
            out = [f"{k}: on disk {clip(a, 80)}, requested {clip(b, 80)}"
                   for k, (a, b) in old.trajectory_changes(self.config).items()]
            if path == self.metrics_path and not out:
                out = self._data_changes(doc.get("data"))
            return out
        return []

    def _data_changes(self, recorded: Any) -> list[str]:
        """The input files whose fingerprint differs from the one recorded in metrics.json."""
        if not isinstance(recorded, dict):
            return []
        try:
            now = self.config.data_fingerprint()
        except FileNotFoundError:
            return []  # the run fails with the missing file named
        return [f"label_list {self.config.label_list}: its content changed since this run "
                f"(sha256 {str(recorded.get(k))[:12]}... on disk, {str(v)[:12]}... now)"
                for k, v in now.items() if k in recorded and recorded[k] != v]


def _read_json(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        doc = parse_json(path.read_bytes().decode("utf-8"), _rel(path), "run file")
    except UnicodeDecodeError as exc:
        raise GridError(f"{_rel(path)} is not valid JSON ({exc}); truncated by a killed run?")
    except ValueError as exc:
        raise GridError(f"{_rel(path)} is not valid JSON ({exc}); truncated by a killed run?")
    if not isinstance(doc, dict):
        raise GridError(f"{_rel(path)} holds a {type(doc).__name__}, not a JSON object")
    return doc


#: summary keys that a finished run's metrics.json must hold as numbers (the collator's columns)
SUMMARY_NUMBERS = ("test_mAP", "best_test_mAP", "optimism_gap", "val_mAP")


def _check_metrics(doc: dict[str, Any], path: Path) -> None:
    """Refuse a metrics.json that lacks what is read from it (see :meth:`Run.read_metrics`)."""
    def bad(where: str, value: Any, need: str) -> GridError:
        return GridError(f"{_rel(path)}: {where} is {clip(value, 80)}, {need}: the file is "
                         "damaged (re-run the grid: a finished run is rewritten from its "
                         "checkpoint)")

    if not isinstance(doc.get("summary"), dict):
        raise bad("summary", doc.get("summary", "missing"), "not an object")
    if not isinstance(doc.get("config"), dict):
        raise bad("config", doc.get("config", "missing"), "not an object")
    summary = doc["summary"]
    if not isinstance(summary.get("finished", False), bool):
        raise bad("summary.finished", summary["finished"], "not true or false")
    if summary.get("finished"):
        for key in SUMMARY_NUMBERS:
            value = summary.get(key, "missing")
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise bad(f"summary.{key}", value, "not a finite number")
    epochs = doc.get("epochs", [])
    if not isinstance(epochs, list):
        raise bad("epochs", epochs, "not a list")
    for i, entry in enumerate(epochs):
        if not isinstance(entry, dict) or isinstance(entry.get("epoch"), bool) \
                or not isinstance(entry.get("epoch"), int):
            raise bad(f"epochs[{i}]", entry, "not an object with an integer 'epoch'")
        mined = entry.get("mined")
        if mined is None:
            continue
        if not isinstance(mined, dict):
            raise bad(f"epochs[{i}].mined", mined, "not an object")
        for key in ("count", "true", "missing"):
            value = mined.get(key, 0)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not math.isfinite(value):
                raise bad(f"epochs[{i}].mined.{key}", value, "not a finite number")


@dataclass
class Grid:
    """A validated grid: its runs, in order, and where they go."""

    name: str
    description: str
    seeds: list[int]
    timeout_s: float | None
    out_dir: Path
    axes: dict[str, list[Any]] = field(default_factory=dict)
    seed_fields: tuple[str, ...] = DEFAULT_SEED_FIELDS
    runs: list[Run] = field(default_factory=list)
    #: smallest effect of interest δ (mAP points) the practical verdicts are read against
    smallest_effect: float = DEFAULT_SMALLEST_EFFECT

    @property
    def results_dir(self) -> Path:
        return self.out_dir / "results"


def find_grid_file(name: str | Path, folder: str | Path = GRIDS) -> Path:
    """``params/grids/<name>.yaml``, or ``name`` itself when it is a YAML path.

    Raises:
        GridError: no such grid (lists the available ones).
    """
    return _find_yaml(name, folder, "grid file", "grid", "available grids")


#: Longest grid description accepted (characters).
MAX_DESCRIPTION = 2000
#: A grid's per-cell timeout: a positive, finite number of seconds.
TIMEOUT_RANGE = Range(0.0, None, lo_open=True)
_FOLDER_NAME = re.compile(r"[A-Za-z0-9_.-]+")


@dataclass
class GridSpec:
    """A grid file read and validated, before its runs are planned (:func:`expand`).

    Attributes:
        path: the grid file. name: its stem (the grid's folder name).
        description: free text (at most :data:`MAX_DESCRIPTION` characters).
        layers: parameter files composed first, in order.
        axes: field -> typed values (the ``layer`` axis holds parameter-file paths).
        seeds: the seeds to run (unique, in :data:`clml_lib.seed.SEED_RANGE`).
        seed_fields: the fields a seed sets (a non-empty subset of ``SEED_FIELDS``).
        fixed: the grid's ``set`` (typed). sets: ``--set`` values (typed).
        timeout_s: papermill per-cell timeout (positive, finite) or None.
        out_dir: the grid's folder.
        smallest_effect: δ of the practical verdicts (mAP points, finite, > 0).
    """

    path: Path
    name: str
    description: str
    layers: list[Path]
    axes: dict[str, list[Any]]
    seeds: list[int]
    seed_fields: tuple[str, ...]
    fixed: dict[str, Any]
    sets: dict[str, Any]
    timeout_s: float | None
    out_dir: Path
    smallest_effect: float = DEFAULT_SMALLEST_EFFECT


def _name_list(value: Any, what: str, where: str, empty_ok: bool = True) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise GridError(f"{where}: {what} must be a list of names, got {clip(value)}")
    if not value and not empty_ok:
        raise GridError(f"{where}: {what} must not be empty")
    return value


def _seed_list(value: Any, where: str) -> list[int]:
    """A non-empty list of unique seeds."""
    if not isinstance(value, list):
        raise GridError(f"{where}: seeds must be a list of seeds such as [0, 1, 2], got "
                        f"{clip(value)} ({type(value).__name__})")
    if not value:
        raise GridError(f"{where}: seeds must not be empty (leave the key out to run seed 0)")
    out = []
    for s in value:
        try:
            out.append(SEED_RANGE.check("a seed", s))
        except ValueError as exc:
            raise GridError(f"{where}: seeds: {exc}") from None
    dup = sorted({s for s in out if out.count(s) > 1})
    if dup:
        raise GridError(f"{where}: seeds: {dup} listed twice (each seed is one run per cell)")
    return out


def _seed_fields(value: Any, where: str) -> tuple[str, ...]:
    names = _name_list(value, "seed_fields", where, empty_ok=False)
    for f in names:
        if f not in SEED_FIELDS:
            kind = "is not a seed field" if f in TrainConfig.field_names() else "unknown field"
            text = (f"{clip(f, 60)} {kind}" if kind.startswith("is") else
                    f"{kind} {clip(f, 60)}")
            raise GridError(f"{where}: seed_fields: {text}{_suggest(f[:100], list(SEED_FIELDS))};"
                            f" a grid seed may set {', '.join(SEED_FIELDS)}")
    if len(set(names)) != len(names):
        raise GridError(f"{where}: seed_fields lists a field twice: {names}")
    return tuple(names)


def _timeout(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        return TIMEOUT_RANGE.check("timeout", value)
    except ValueError as exc:
        raise GridError(f"{where}: {exc} (a positive, finite number of seconds)") from None


def read_grid_spec(
    name: str | Path,
    seeds: list[int] | None = None,
    out: str | Path = "runs/grids",
    sets: dict[str, Any] | None = None,
    timeout_s: float | None = None,
    params_dir: str | Path = PARAMS,
) -> GridSpec:
    """Read and validate a grid file (arguments as :func:`load_grid`); nothing is planned yet.

    Raises:
        GridError: see :func:`load_grid`.
    """
    path = find_grid_file(name)
    try:
        doc = read_mapping(path, "grid file")
    except ValueError as exc:
        raise GridError(str(exc)) from None
    extra = set(doc) - _GRID_KEYS
    if extra:
        raise GridError(f"{path}: unknown key(s) {clip(sorted(extra))}; allowed: "
                        f"{sorted(_GRID_KEYS)}")
    where = path.name
    if not _FOLDER_NAME.fullmatch(path.stem) or path.stem in (".", ".."):
        raise GridError(f"{path}: a grid's name (its file name) must be [A-Za-z0-9_.-]+ and not "
                        "'.' or '..': it names the grid's folder")
    description = doc.get("description", "")
    if description is None:
        description = ""
    if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
        raise GridError(f"{where}: description must be text of at most {MAX_DESCRIPTION} "
                        f"characters, got {clip(description)} ({type(description).__name__})")
    seeds = _seed_list(list(seeds), "--seeds") if seeds else (
        _seed_list(doc["seeds"], where) if "seeds" in doc else [0])
    timeout = _timeout(timeout_s, "--timeout") if timeout_s is not None else _timeout(
        doc.get("timeout_s"), where)
    seed_fields = _seed_fields(doc.get("seed_fields", list(DEFAULT_SEED_FIELDS)), where)
    layers = [find_layer(n, params_dir) for n in _name_list(doc.get("layers", []), "layers",
                                                             where)]
    fixed = doc.get("set") or {}
    if not isinstance(fixed, dict):
        raise GridError(f"{where}: set must be a mapping of field: value, got {clip(fixed)}")
    fixed = _typed(fixed, f"{where} set")
    sets = dict(sets or {})
    axes = doc.get("axes") or {}
    if not isinstance(axes, dict):
        raise GridError(f"{where}: axes must be a mapping of field: [values], got {clip(axes)}")
    typed_axes: dict[str, list[Any]] = {}
    for axis, values in axes.items():
        if not isinstance(values, list) or not values:
            raise GridError(f"{where}: axis {clip(axis, 60)} must be a non-empty list, got "
                            f"{clip(values)}")
        if axis == "layer":
            typed_axes[axis] = [str(find_layer(v, params_dir)) for v in
                                _name_list(values, "axis 'layer'", where)]
        else:
            typed_axes[axis] = [_typed({axis: v}, f"{where} axis {axis!r}")[axis] for v in values]
        repeated = [v for i, v in enumerate(typed_axes[axis]) if v in typed_axes[axis][:i]]
        if repeated:
            raise GridError(f"{where}: axis {axis!r} lists {clip(repeated[0], 80)} twice")
    for what, keys in (("an axis", typed_axes), ("set", fixed), ("--set", sets)):
        clash = [k for k in keys if k in seed_fields or k == "out_dir"]
        if clash:
            raise GridError(f"{where}: {what} cannot set {clash}: the driver sets them per run "
                            "(use --seeds and --out)")
    delta = doc.get("smallest_effect", DEFAULT_SMALLEST_EFFECT)
    try:
        margin_code(Interval(0.0, None, None, 0), delta)  # validates delta
    except ValueError as exc:
        raise GridError(f"{where}: smallest_effect: {exc}") from None
    return GridSpec(path, path.stem, description.strip(), layers, typed_axes, seeds, seed_fields,
                    fixed, sets, timeout, resolve_path(out) / path.stem, float(delta))


def expand(spec: GridSpec, params_dir: str | Path = PARAMS) -> Grid:
    """Plan the runs of a validated grid: one per cell of the axes' product and seed, each with
    its full configuration (validated) and its folder. Nothing is run or written.

    Raises:
        GridError: a run's configuration is invalid (cell, seed and field named); a backbone
            that cannot be built; a cell name that is not a plain folder name; two runs sharing
            a folder; two cells that differ only in fields their configuration ignores (they
            would run one experiment under two names).
    """
    where = spec.path.name
    base: dict[str, Any] = {}
    for layer in spec.layers:
        base.update(load_layer(layer, params_dir))
    grid = Grid(spec.name, spec.description, spec.seeds, spec.timeout_s, spec.out_dir,
                spec.axes, spec.seed_fields, smallest_effect=spec.smallest_effect)
    seen: dict[Path, str] = {}
    experiments: dict[tuple, str] = {}
    checked: set[tuple[str, str]] = set()
    names = list(spec.axes)
    for combo in itertools.product(*spec.axes.values()) if names else [()]:
        point = dict(zip(names, combo))
        cell = "_".join(_token(k, v) for k, v in point.items()) or "run"
        if not _FOLDER_NAME.fullmatch(cell) or cell in (".", ".."):
            raise GridError(f"{where}: cell name {clip(cell, 80)} must be [A-Za-z0-9_.-]+ and not "
                            "'.' or '..' (it is the cell's folder in the grid's folder)")
        cell_layers = spec.layers + ([Path(point.pop("layer"))] if "layer" in point else [])
        composed = dict(base)
        for layer in cell_layers[len(spec.layers):]:
            composed.update(load_layer(layer, params_dir))
        for seed in spec.seeds:
            run_dir = grid.out_dir / cell / f"seed{seed}"
            if run_dir in seen:
                raise GridError(f"{where}: two cells share the folder {run_dir}")
            seen[run_dir] = cell
            params = {**point, **spec.fixed, **spec.sets, **{f: seed for f in spec.seed_fields},
                      "out_dir": _rel(run_dir)}
            try:
                cfg = TrainConfig.from_dict({**composed, **params})
                key = (cfg.backbone, cfg.weights_path.lower() == "imagenet" and "imagenet")
                if key not in checked:
                    check_backbone(cfg.backbone, cfg.weights_path)
                    checked.add(key)
            except ValueError as exc:
                raise GridError(f"{where} cell {cell!r} seed {seed}: {exc}") from None
            _refuse_same_experiment(cfg, cell, experiments, where)
            grid.runs.append(Run(cell, seed, cell_layers, params, cfg, run_dir))
    return grid


def _refuse_same_experiment(cfg: TrainConfig, cell: str, experiments: dict[tuple, str],
                            where: str) -> None:
    """Two cells whose configurations are equal once the fields they ignore are set aside run
    one experiment twice (e.g. a ``setting`` axis when ``label_list`` is set): refuse."""
    ignored = cfg.ignored_fields()
    values = cfg.to_dict()
    key = tuple((k, repr(v)) for k, v in values.items() if k != "out_dir" and k not in ignored)
    other = experiments.setdefault(key, cell)
    if other != cell:
        why = "; ".join(f"{k} is ignored: {reason}" for k, reason in ignored.items())
        raise GridError(f"{where}: cells {other!r} and {cell!r} would run the same experiment "
                        f"under two names ({why or 'their configurations are equal'}); remove "
                        "that axis or the field that makes it ignored")


def load_grid(
    name: str | Path,
    seeds: list[int] | None = None,
    out: str | Path = "runs/grids",
    sets: dict[str, Any] | None = None,
    timeout_s: float | None = None,
    notebook: str | Path = NOTEBOOK,
    params_dir: str | Path = PARAMS,
) -> Grid:
    """Read and validate a grid and plan its runs; nothing is run or written
    (:func:`read_grid_spec`, then :func:`expand`).

    Args:
        name: grid name (``params/grids/<name>.yaml``) or a path to a grid YAML file.
        seeds: seeds to run (default: the grid's ``seeds``, else ``[0]``).
        out: parent folder of the grid's folder (relative: from the project root).
        sets: ``--set`` values (typed, :func:`parse_sets`) applied to every run after ``set``.
        timeout_s: papermill per-cell execution timeout (default: the grid's ``timeout_s``).
        notebook: the notebook run; its parameters cell must hold every schema field.
        params_dir: where layer names are looked up.

    Raises:
        GridError: malformed grid (anchors, repeated keys, wrong types: file and line named),
            unknown layer, unknown field or bad value (file, cell and field named), ``seeds`` or
            ``seed_fields`` empty or not a list, a seed out of range, a timeout that is not a
            positive finite number, a seed field set by an axis or ``set``, a cell name that is
            not a plain folder name, an unknown backbone, two runs sharing a folder, or cells
            that differ only in fields their configuration ignores.
    """
    spec = read_grid_spec(name, seeds, out, sets, timeout_s, params_dir)
    in_notebook = notebook_parameters(notebook)  # papermill reads the notebook: ~0.1 s a call
    missing = [f for f in TrainConfig.field_names() if f not in in_notebook]
    if missing:
        raise GridError(f"{notebook}: its parameters cell lacks {missing}; regenerate it from the "
                        "schema (notebooks/reproduce.py)")
    return expand(spec, params_dir)


def _typed(values: dict[str, Any], where: str) -> dict[str, Any]:
    try:
        return {k: parse_value(k, v) for k, v in values.items()}
    except ValueError as exc:
        raise GridError(f"{where}: {exc}") from None


@dataclass
class RunOutcome:
    """What happened to one run in :func:`run_grid`."""

    run: Run
    status: str  # skipped | ran | failed | planned | submitted (queued in Slurm, not waited for)
    seconds: float = 0.0
    error: str = ""


def execute_run(run: Run, notebook: str | Path, timeout_s: float | None,
                log_output: bool = True) -> None:
    """Execute ``notebook`` with the run's composed parameters into ``run.notebook_path``.

    Raises:
        OSError: the notebook's path in the run folder is a symbolic link (nothing is run).
        papermill.PapermillExecutionError: a cell raised (the executed notebook, with the
            error, is written first).
        Exception: whatever nbclient raises on a cell timeout or a dead kernel.
    """
    import papermill as pm

    run.run_dir.mkdir(parents=True, exist_ok=True)
    if run.notebook_path.is_symlink():  # papermill writes through links: never follow one
        raise OSError(f"{run.notebook_path} is a symbolic link; the executed notebook is never "
                      "written through a link (remove it and run again)")
    pm.execute_notebook(
        str(notebook),
        str(run.notebook_path),
        parameters=run.notebook_parameters(),
        kernel_name="python3",
        execution_timeout=timeout_s,
        log_output=log_output,
        progress_bar=False,
        cwd=str(PROJECT_ROOT),
    )


def plan(grid: Grid, log: Callable[[str], None] = print) -> list[tuple[Run, str, str]]:
    """Check every run folder before anything runs: ``(run, status, problem)`` per run, status
    ``finished`` | ``partial`` | ``restart`` | ``new`` | ``mismatch`` (:meth:`Run.status`);
    problems are logged."""
    out = []
    for run in grid.runs:
        mismatch = run.config_mismatch()
        if mismatch:
            problem = (f"{_rel(run.run_dir)} holds a run with another configuration "
                       f"({'; '.join(mismatch)}); only {', '.join(BOOKKEEPING_FIELDS)} may differ "
                       "between a run and its resume: delete the folder or choose another --out")
            log(f"{grid.name}/{run.cell} seed {run.seed}: FAILED: {problem}")
            out.append((run, "mismatch", problem))
            continue
        _, unreadable = run.metrics_or_problem()
        if unreadable:
            how = ("the engine resumes from checkpoint.pt when there is one" if run.config.resume
                   else "resume is false: the run starts over")
            log(f"{grid.name}/{run.cell} seed {run.seed}: {unreadable}: treated as unfinished, "
                f"re-run ({how})")
        out.append((run, run.status(), unreadable))
    return out


def cpu_count() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


@dataclass
class _Pending:
    """A run to execute: its index in the grid, its log tag and its status from :func:`plan`."""

    index: int
    tag: str
    run: Run
    status: str  # new | partial (| finished in a dry run)


class _Outcomes:
    """The outcome of every run, recorded as each ends (thread-safe) and logged."""

    def __init__(self, n: int, log: Callable[[str], None], where: Callable[[Run], str]):
        self.n, self.log, self.where = n, log, where
        self._by_index: dict[int, RunOutcome] = {}
        self._lock = threading.Lock()

    def add(self, index: int, outcome: RunOutcome, line: str = "") -> None:
        with self._lock:
            if line:
                self.log(line)
            self._by_index[index] = outcome

    def ended(self, item: _Pending, seconds: float, error: str) -> None:
        """Log and record one ended run: failed with ``error``, else ran (its mAP logged)."""
        if error:
            self.add(item.index, RunOutcome(item.run, "failed", seconds, error),
                     f"{item.tag}: FAILED after {seconds:.1f} s: {error}\n    "
                     f"{self.where(item.run)}")
            return
        metrics, problem = item.run.metrics_or_problem()
        summary = (metrics or {}).get("summary", {})
        self.add(item.index, RunOutcome(item.run, "ran", seconds),
                 f"{item.tag}: done in {seconds:.1f} s (test mAP selected on val "
                 f"{summary.get('test_mAP', float('nan')):.2f}, best on test "
                 f"{summary.get('best_test_mAP', float('nan')):.2f})"
                 + (f" {problem}" if problem else ""))

    def in_order(self) -> list[RunOutcome]:
        return [self._by_index[i] for i in range(self.n)]


def _where(runner: str) -> Callable[[Run], str]:
    """Where a failed run of ``runner`` left its error."""
    if runner == "papermill":
        return lambda run: f"executed notebook with the error: {_rel(run.notebook_path)}"
    return lambda run: f"output and traceback: {_rel(run.run_dir / RUN_LOG_NAME)}"


def run_grid(
    grid: Grid,
    dry_run: bool = False,
    notebook: str | Path = NOTEBOOK,
    log: Callable[[str], None] = print,
    jobs: int = 1,
    runner: str = "papermill",
    slurm: SlurmResources | None = None,
    wait: bool = True,
) -> list[RunOutcome]:
    """Run every planned run of ``grid``, keeping going after failures.

    All run folders are checked first (:func:`plan`): a folder holding another configuration is a
    failure before any run starts (never overwritten); finished runs are skipped; a run whose
    Slurm task is still in the queue (``slurm.json``) is not started a second time.

    Args:
        runner: ``papermill`` (default): each run executes ``notebook`` in its own kernel,
            ``jobs`` at a time, with ``OMP_NUM_THREADS = max(1, cores // jobs)``, into
            ``<run>/reproduce.ipynb``. ``process``: ``jobs`` long-lived worker processes
            (``max(1, cores // jobs)`` torch threads each) call :func:`clml_lib.train.fit` on each
            run's configuration, with its output in ``<run>/run.log`` (:mod:`.workers`).
            ``slurm``: one task of a Slurm job array per run (:mod:`.slurm`), with ``slurm``'s
            resources; ``jobs`` does not apply.
        slurm: the Slurm runner's resources (default: :class:`~.slurm.SlurmResources` defaults).
        wait: Slurm runner: follow the array until every task has ended (else submit and return;
            the submitted runs get the outcome ``submitted``).

    Returns:
        One :class:`RunOutcome` per run, in grid order (``planned`` for every run when
        ``dry_run``).

    Raises:
        ValueError: ``jobs`` < 1, or an unknown ``runner``.
        SlurmError: Slurm runner: bad resources, or no Slurm commands (not in a dry run).
    """
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise ValueError(f"jobs must be an int >= 1, got {jobs!r}")
    if runner not in RUNNERS:
        raise ValueError(f"runner must be one of {RUNNERS}, got {runner!r}")
    outcomes = _Outcomes(len(grid.runs), log, _where(runner))
    todo = []
    for i, (run, status, problem) in enumerate(plan(grid, log)):
        item = _Pending(i, f"[{i + 1}/{len(grid.runs)}] {grid.name}/{run.cell} seed {run.seed}",
                        run, status)
        if status == "mismatch":
            outcomes.add(i, RunOutcome(run, "failed", error=problem))
        elif status == "finished" and not (dry_run and runner != "slurm"):
            outcomes.add(i, RunOutcome(run, "planned" if dry_run else "skipped"),
                         f"{item.tag}: finished earlier, skipped ({_rel(run.run_dir)})")
        else:
            todo.append(item)
    if runner == "slurm":
        _run_slurm(grid, todo, outcomes, notebook, slurm or SlurmResources(), dry_run, wait)
    elif dry_run:
        for item in todo:
            how = item.run.papermill_command(notebook) if runner == "papermill" else (
                f"fit() in a worker process -> {_rel(item.run.run_dir / RUN_LOG_NAME)}")
            outcomes.add(item.index, RunOutcome(item.run, "planned"),
                         f"{item.tag}: {item.status:8s} -> {how}")
    else:
        todo = _not_queued_in_slurm(todo, outcomes)
        if runner == "process":
            _run_processes(todo, outcomes, jobs)
        else:
            _run_papermill(grid, todo, outcomes, notebook, jobs)
    return outcomes.in_order()


def _run_papermill(grid: Grid, todo: list[_Pending], outcomes: _Outcomes, notebook: str | Path,
                   jobs: int) -> None:
    """Each run executes the notebook in its own kernel, ``jobs`` kernels at a time."""
    import papermill as pm

    def one(item: _Pending) -> None:
        outcomes.log(f"{item.tag}: {'resuming' if item.status == 'partial' else 'running'} -> "
                     f"{_rel(item.run.notebook_path)}")
        start = time.perf_counter()
        try:
            execute_run(item.run, notebook, grid.timeout_s, log_output=jobs == 1)
        except pm.PapermillExecutionError as exc:
            error = f"{exc.ename}: {exc.evalue} (cell {exc.exec_count})"
        except Exception as exc:  # dead kernel, cell timeout, missing kernel...
            error = f"{type(exc).__name__}: {exc}"
        else:
            error = ""
        outcomes.ended(item, time.perf_counter() - start, error)

    if not todo:
        return
    previous = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(max(1, cpu_count() // jobs))  # inherited by kernels
    try:
        if jobs == 1:
            for item in todo:
                one(item)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for f in [pool.submit(one, item) for item in todo]:
                    f.result()
    finally:
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous


def _run_processes(todo: list[_Pending], outcomes: _Outcomes, jobs: int) -> None:
    """``jobs`` long-lived worker processes call fit() on each run's configuration."""
    if not todo:
        return
    threads = max(1, cpu_count() // jobs)
    resumed = [item.tag for item in todo if item.status == "partial"]
    outcomes.log(f"{len(todo)} run(s) to {jobs} worker process(es) with {threads} thread(s) "
                 f"each; output of each in <run folder>/{RUN_LOG_NAME}"
                 + (f"; resuming {', '.join(resumed)}" if resumed else ""))
    by_index = {item.index: item for item in todo}
    with WorkerPool(jobs, threads) as pool:
        pool.run_all([(item.index, item.run.config.to_dict(), str(item.run.run_dir))
                      for item in todo],
                     lambda i, seconds, error: outcomes.ended(by_index[i], seconds, error))


def _slurm_states(todo: list[_Pending], log: Callable[[str], None]) -> dict[int, str]:
    """``index -> squeue state`` of the runs in ``todo`` whose recorded Slurm task is still in
    the queue (empty when none has a ``slurm.json``, or squeue is not available here)."""
    records = {item.index: slurm_mod.read_record(item.run.run_dir) for item in todo}
    records = {i: r for i, r in records.items() if r}
    if not records:
        return {}
    try:
        states = slurm_mod.queue_states()
    except slurm_mod.SlurmError as exc:
        log(f"{len(records)} run(s) were submitted to Slurm earlier; cannot tell whether they are "
            f"still queued ({exc})")
        return {}
    return {i: states[r["job_id"]] for i, r in records.items()
            if slurm_mod.is_queued(states.get(r["job_id"]))}


def _not_queued_in_slurm(todo: list[_Pending], outcomes: _Outcomes) -> list[_Pending]:
    """Local runners: a run still queued in Slurm fails here instead of running twice."""
    queued = _slurm_states(todo, outcomes.log)
    for item in todo:
        if item.index in queued:
            job = slurm_mod.read_record(item.run.run_dir)["job_id"]
            outcomes.add(item.index, RunOutcome(
                item.run, "failed", error=f"its Slurm task {job} is {queued[item.index]}: wait "
                f"for it (--runner slurm follows it) or scancel {job}"),
                f"{item.tag}: in the Slurm queue as {job} ({queued[item.index]}), not run here")
    return [item for item in todo if item.index not in queued]


def _run_slurm(grid: Grid, todo: list[_Pending], outcomes: _Outcomes, notebook: str | Path,
               resources: SlurmResources, dry_run: bool, wait: bool) -> None:
    """Submit the runs that are neither finished nor queued as one Slurm job array, then follow
    them and those queued earlier (:mod:`.slurm`)."""
    finished = [item for item in todo if item.status == "finished"]  # dry run only
    todo = [item for item in todo if item.status != "finished"]
    runs = [item.run for item in todo] or [r.run for r in finished] or grid.runs
    resolved = resources.resolve(runs, grid.timeout_s)
    if not dry_run:
        slurm_mod.require_slurm()
    queued = _slurm_states(todo, outcomes.log)
    follow = {item.index: slurm_mod.read_record(item.run.run_dir)["job_id"]
              for item in todo if item.index in queued}
    new = [item for item in todo if item.index not in queued]
    folder = slurm_mod.submitit_folder(grid.out_dir)
    params = resources.sbatch_parameters(resolved, f"clml-{grid.name}")
    no_resume = [item.tag for item in new if not item.run.config.resume]
    if no_resume:
        outcomes.log(f"note: resume is false in {len(no_resume)} run(s): a requeued task starts "
                     "them over from epoch 0 (--set resume=true resumes from checkpoint.pt)")
    outcomes.log(f"slurm: {len(new)} run(s) to submit as one array, {len(follow)} already queued; "
                 f"per task: {_describe(resolved)}, entry {resources.entry}; task logs and "
                 f"sbatch script in {_rel(folder)}")
    entry = ("fit() in the task -> run.log" if resources.entry == "process"
             else "papermill in the task -> reproduce.ipynb")
    if dry_run:
        for k, item in enumerate(new):
            outcomes.log(f"{item.tag}: {item.status:8s} -> array task {k}: {entry}")
    for item in todo:
        if item.index in follow:
            outcomes.log(f"{item.tag}: queued earlier as {follow[item.index]} "
                         f"({queued[item.index]}), followed")
    if dry_run:
        for item in finished:
            outcomes.add(item.index, RunOutcome(item.run, "planned"),
                         f"{item.tag}: finished -> skipped")
        for item in todo:
            outcomes.add(item.index, RunOutcome(item.run, "planned"))
        if new:
            outcomes.log(f"sbatch script ({len(new)} task(s)):\n" + slurm_mod.sbatch_script(
                params, folder, len(new), resources.python_command()))
        return
    if new:
        tasks = [slurm_mod.SlurmTask(item.run, resources.entry, str(notebook), grid.timeout_s)
                 for item in new]
        try:
            submitted = slurm_mod.submit(tasks, params, folder, resources.max_requeues,
                                         resources.python_command())
        except slurm_mod.SlurmError as exc:
            for item in new:
                outcomes.add(item.index, RunOutcome(item.run, "failed", error=str(exc)))
            outcomes.log(f"slurm: {exc}")
            new = []
            submitted = []
        for item, (job, stdout, stderr) in zip(new, submitted):
            slurm_mod.write_record(item.run.run_dir, job, stdout, stderr)
            follow[item.index] = job
        if submitted:
            array = submitted[0][0].split("_")[0]
            outcomes.log(f"slurm: submitted job {array} ({len(submitted)} task(s)); follow it "
                         f"with: squeue -j {array}; Slurm log of each run: <run folder>/"
                         f"{slurm_mod.SLURM_RECORD}")
    by_index = {item.index: item for item in todo}
    if not wait:
        for i, job in follow.items():
            outcomes.add(i, RunOutcome(by_index[i].run, "submitted"),
                         f"{by_index[i].tag}: in the Slurm queue as {job}")
        return

    def ended(i: int, state: str) -> bool:
        item = by_index[i]
        metrics, _ = item.run.metrics_or_problem()
        if item.run.status() == "finished":
            outcomes.ended(item, slurm_mod.run_seconds(metrics), "")
            return True
        error = slurm_mod.last_error(item.run.run_dir) or (
            f"the Slurm task {follow[i]} ended ({state}) before the run finished (cancelled, "
            "out of memory, a node failure or out of requeues); run the grid again to resume it")
        record = slurm_mod.read_record(item.run.run_dir) or {}
        outcomes.ended(item, slurm_mod.run_seconds(metrics), error
                       + (f"; Slurm log: {record['stderr']}" if record.get("stderr") else ""))
        return False

    slurm_mod.follow(follow, ended, resources.poll_s, outcomes.log)


def _describe(resolved: dict[str, Any]) -> str:
    """``nodes=1 gpus_per_node=1 ...`` of the resolved resources that are set."""
    return " ".join(f"{k}={v}" for k, v in resolved.items() if v is not None)
