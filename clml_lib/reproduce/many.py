"""Train several runs at once from Python (a notebook): :func:`fit_many`.

The runs go to the process runner's long-lived workers (:class:`~clml_lib.reproduce.workers.
WorkerPool`): ``jobs`` processes of ``threads`` torch threads each, every run through
:func:`clml_lib.train.fit` on its exact config, so a run gives the numbers it gives in the main
job (one thread per run there too) and writes the same files. What ``fit`` printed goes to the
run folder's ``run.log``; :func:`fit_many` prints each run's summary line from it (the arm, and
whether it was trained or read from disk) as the run ends.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Hashable, Mapping

from ..train import TrainConfig
from .workers import RUN_LOG_NAME, WorkerPool

#: How a summary line of ``fit`` starts (``[clml] <dataset> <setting> | <arm> | seed <n>: ...``).
_SUMMARY_MARK = " | seed "


def summary_line(run_dir: str | os.PathLike) -> str:
    """The last summary line ``fit`` wrote to ``run_dir/run.log`` ("" when there is none)."""
    path = Path(run_dir) / RUN_LOG_NAME
    if not path.is_file():
        return ""
    lines = [ln for ln in path.read_text(encoding="utf-8", errors="replace").splitlines()
             if ln.startswith("[clml] ") and _SUMMARY_MARK in ln]
    return lines[-1] if lines else ""


def fit_many(configs: Mapping[Hashable, TrainConfig], jobs: int = 2, threads: int = 1,
             log: Callable[[str], None] = print) -> dict[Hashable, dict[str, Any]]:
    """Train (or read back, ``resume=True``) every run of ``configs`` in ``jobs`` worker
    processes of ``threads`` torch threads; print each run's summary line as it ends.

    Args:
        configs: key -> :class:`TrainConfig`; every run needs its own ``out_dir``.
        jobs, threads: worker processes and torch threads per worker (>= 1 each).
        log: where the summary lines go.

    Returns:
        key -> the ``summary`` block of the run's ``metrics.json``, in the order of ``configs``.

    Raises:
        ValueError: two runs share an ``out_dir``; ``jobs`` or ``threads`` < 1.
        RuntimeError: some runs failed (each named with its error and ``run.log``); the others
            are trained and kept.
    """
    dirs: dict[Hashable, Path] = {k: c.path("out_dir") for k, c in configs.items()}
    seen: dict[Path, Hashable] = {}
    for key, d in dirs.items():
        if d in seen:
            raise ValueError(f"runs {seen[d]!r} and {key!r} share the out_dir {d}")
        seen[d] = key
    failures: list[str] = []

    def done(key: Hashable, seconds: float, error: str) -> None:
        if error:
            failures.append(f"{key!r}: {error} (see {dirs[key] / RUN_LOG_NAME})")
        else:
            log(summary_line(dirs[key]) or f"[clml] {key!r}: finished in {seconds:.1f}s")

    items = [(k, c.to_dict(), str(dirs[k])) for k, c in configs.items()]
    with WorkerPool(jobs, threads) as pool:
        pool.run_all(items, done)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(items)} runs failed:\n" + "\n".join(failures))
    return {k: json.loads((d / "metrics.json").read_text())["summary"] for k, d in dirs.items()}
