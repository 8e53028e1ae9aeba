"""Command line of the grid driver: ``python -m clml_lib.reproduce --grid NAME ...``.

Examples::

    python -m clml_lib.reproduce --grid teaching                 # the main job (CPU)
    python -m clml_lib.reproduce --grid teaching --dry-run       # plan and validate only
    python -m clml_lib.reproduce --grid coco_table --seeds 0 1 2 \\
        --set data_root=/data/coco --set device=cuda:0 --timeout 86400
    python -m clml_lib.reproduce --grid teaching --jobs 2        # two kernels at a time
    python -m clml_lib.reproduce --grid teaching --runner process --jobs 2   # the main job
    python -m clml_lib.reproduce --grid coco_table --runner slurm --dry-run \
        --set data_root=/data/coco --slurm partition=gpu --slurm time_min=720   # a job array
    python -m clml_lib.reproduce --list                          # grids and parameter files

Exit status: 0 when every run finished (or was skipped as finished, or is queued in Slurm with
``--no-wait``), 1 when some run failed (they are listed; the others still ran and were collated;
with ``--dry-run``: some run folder holds another configuration) or the results could not be
written, 2 for a bad grid, parameter file, value or Slurm resource, or an ``--out`` that cannot be
written (nothing ran).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

from .collate import (
    collate,
    chance_level,
    render_compact_table,
    render_mined,
    render_single_arm_table,
)
from .grid import GRIDS, RUNNERS, GridError, _rel, available_layers, load_grid, parse_sets, run_grid
from .slurm import SLURM_RECORD, SlurmError, SlurmResources
from .workers import RUN_LOG_NAME


_PAPERMILL_CHATTER = ("Executing Cell", "Ending Cell", "Input Notebook", "Output Notebook",
                      "Executing notebook with kernel")


def _quiet_papermill(record: logging.LogRecord) -> bool:
    """Keep the notebooks' own output in the log, drop papermill's per-cell banners."""
    return not str(record.getMessage()).startswith(_PAPERMILL_CHATTER)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clml_lib.reproduce",
        description="Run a grid of notebooks/reproduce.ipynb configurations (through papermill, "
        "fit() in worker processes, or a Slurm job array) and collate baseline vs +CLML.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Slurm keys (--slurm KEY=VALUE, or a YAML mapping in --slurm-config; see "
        "docs/slurm.md):\n  " + SlurmResources.describe_keys().replace("\n", "\n  "),
    )
    parser.add_argument("--grid", help="grid name (params/grids/NAME.yaml) or a grid YAML path")
    parser.add_argument("--seeds", type=int, nargs="+", help="seeds (default: the grid's)")
    parser.add_argument("--out", default="runs/grids", help="parent folder of the grid's runs")
    parser.add_argument("--timeout", type=float, help="papermill per-cell timeout in seconds")
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="NAME=VALUE",
                        help="set a field in every run, like papermill -p (repeatable)")
    parser.add_argument("--jobs", type=int, default=1,
                        help="runs at a time (papermill kernels or worker processes, each with "
                        "cores // jobs threads); default 1")
    parser.add_argument("--runner", choices=RUNNERS, default="papermill",
                        help="papermill (default): each run executes the notebook in its own "
                        "kernel; process: --jobs long-lived worker processes call fit() on each "
                        "run's configuration (same run files, output in run.log, no per-run "
                        "kernel start-up; the per-cell timeout does not apply); slurm: one "
                        "task of a Slurm job array per run (--slurm, --slurm-config, --no-wait)")
    parser.add_argument("--slurm", dest="slurm_sets", action="append", default=[],
                        metavar="KEY=VALUE", help="a Slurm resource for every task (repeatable; "
                        "keys below), e.g. partition=gpu, time_min=720, gpus_per_node=4")
    parser.add_argument("--slurm-config", metavar="FILE",
                        help="YAML file of Slurm keys (--slurm items are applied after it)")
    parser.add_argument("--no-wait", action="store_true",
                        help="slurm: submit and exit; run the same command again to follow the "
                        "queued runs (or with --no-wait --summary to collate what has finished)")
    parser.add_argument("--summary", action="store_true",
                        help="after the full results, print the compact table (the README's) "
                        "and the labels mined per epoch once more, as the last thing printed")
    parser.add_argument("--dry-run", action="store_true",
                        help="validate and print the plan; run nothing, write nothing")
    parser.add_argument("--list", action="store_true", help="list grids and parameter files")
    return parser


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and write (then remove) a probe file in it.

    Raises:
        OSError: the folder cannot be created or written (the path and the reason named).
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write the grid's folder {folder}: "
                      f"{exc.strerror or exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status (see the module docstring)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.list:
        print("grids:           " + ", ".join(sorted(p.stem for p in GRIDS.glob("*.yaml"))))
        print("parameter files: " + ", ".join(available_layers()))
        return 0
    if not args.grid:
        parser.error("--grid is required (or --list)")
    if args.jobs < 1:
        parser.error(f"--jobs must be >= 1, got {args.jobs}")
    if args.runner != "slurm" and (args.slurm_sets or args.slurm_config or args.no_wait):
        parser.error("--slurm, --slurm-config and --no-wait need --runner slurm")
    try:
        grid = load_grid(args.grid, seeds=args.seeds, out=args.out, sets=parse_sets(args.sets),
                         timeout_s=args.timeout)
        slurm = None
        if args.runner == "slurm":
            slurm = (SlurmResources.from_file(args.slurm_config) if args.slurm_config
                     else SlurmResources()).with_flags(args.slurm_sets)
            slurm.resolve(grid.runs, grid.timeout_s)  # refuses impossible combinations now
    except (GridError, SlurmError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.dry_run:
        try:
            check_writable(grid.out_dir)
        except OSError as exc:
            print(f"error: {exc}; choose another --out", file=sys.stderr)
            return 2
    axes = " x ".join(f"{k} {v}" for k, v in grid.axes.items()) or "one cell"
    jobs = "" if args.runner == "slurm" else f"{args.jobs} job(s), "
    print(f"grid {grid.name}: {len(grid.runs)} runs ({axes} x seeds {grid.seeds}; a seed sets "
          f"{', '.join(grid.seed_fields)}) in {_rel(grid.out_dir)}, per-cell timeout "
          f"{grid.timeout_s} s, {jobs}runner {args.runner}")
    if grid.description:
        print(f"  {grid.description}")

    def where(run):  # what a failed run left behind
        if args.runner == "papermill":
            return _rel(run.notebook_path)
        if args.runner == "slurm":
            return f"{_rel(run.run_dir / RUN_LOG_NAME)}, {_rel(run.run_dir / SLURM_RECORD)}"
        return _rel(run.run_dir / RUN_LOG_NAME)

    if not args.dry_run:  # cell outputs (one line per epoch) through papermill's logger
        logging.basicConfig(level=logging.WARNING, format="%(message)s")
        pm_logger = logging.getLogger("papermill")
        pm_logger.setLevel(logging.INFO)
        pm_logger.addFilter(_quiet_papermill)
    start = time.perf_counter()
    try:
        outcomes = run_grid(grid, dry_run=args.dry_run, jobs=args.jobs, runner=args.runner,
                            slurm=slurm, wait=not args.no_wait)
    except SlurmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    wall = time.perf_counter() - start
    if args.dry_run:  # a run folder holding another configuration would fail: say so now
        return 1 if any(o.status == "failed" for o in outcomes) else 0
    failures = [f"{o.run.cell} seed {o.run.seed}: {o.error} ({where(o.run)})"
                for o in outcomes if o.status == "failed"]
    comparisons: list = []
    try:
        md, png, text = collate(grid, failures, comparisons=comparisons)
    except OSError as exc:
        print(f"error: the results could not be written: {exc}", file=sys.stderr)
        return 1
    print()
    print(text)
    print(f"results: {_rel(md)}" + (f" and {_rel(png)}" if png else ""))
    if args.summary:
        print(f"\n## Summary of grid {grid.name}: test mAP (%) of the model selected on val\n")
        chance = chance_level(comparisons)
        if chance is not None:
            print("chance level (mAP of uninformative scores on these test labels): "
                  f"{chance:.2f}\n")
        if any(c.clml for c in comparisons):
            print(render_compact_table(comparisons, grid.smallest_effect))
            print("\n### Labels mined by correction (pooled over seeds)\n")
            print(render_mined(comparisons))
        single = render_single_arm_table(comparisons)
        if single:
            print(single)
    seconds = sum(o.seconds for o in outcomes)
    ran = sum(o.status == "ran" for o in outcomes)
    how = "Slurm" if args.runner == "slurm" else f"{args.jobs} job(s)"
    print(f"{ran} runs executed ({seconds:.1f} s of run time, {wall:.1f} s wall with {how}), "
          f"{sum(o.status == 'skipped' for o in outcomes)} skipped as finished")
    queued = sum(o.status == "submitted" for o in outcomes)
    if queued:
        print(f"{queued} run(s) in the Slurm queue, not waited for (--no-wait): run the same "
              "command again to follow them, or with --no-wait --summary to collate what has "
              "finished")
    if failures:
        print(f"{len(failures)} run(s) FAILED:", file=sys.stderr)
        for f in failures:
            print(f"  {f}", file=sys.stderr)
        return 1
    return 0
