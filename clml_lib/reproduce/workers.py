"""The ``process`` runner of the grid driver: runs in long-lived worker processes, no notebook.

A papermill run pays a fixed cost of about 20 s on 2 cores (kernel start, importing torch and
torchvision in the kernel, rendering the teaching set, plotting), three times the 3-epoch
fine-tuning run itself. The process runner keeps ``jobs`` worker processes alive for the whole
grid: each imports torch once, sets its intra-op threads to ``cores // jobs``, and calls
:func:`clml_lib.train.fit` on each run's exact configuration
(:attr:`~clml_lib.reproduce.grid.Run.config`: the same composition of layers, axes, ``set``,
``--set``, seed fields and ``out_dir`` as the papermill runner) with ``verbose=False`` (a
bookkeeping field: it changes no number). The teaching images are generated once per worker (the
generator caches them per process).

The run folder gets the files of a papermill run (``config.json``, ``metrics.json``,
``checkpoint.pt``, ``test_scores.pt``, written by the engine), so skip, resume and collation work
the same, plus ``run.log``: what ``fit`` printed, and the traceback when it raised. A run that
raises is a failed run (its error and ``run.log`` are named) and the grid goes on. A worker that
dies (killed, out of memory) fails the runs it held with that message; running the grid again
resumes them from their checkpoints.

The grid's per-cell ``timeout_s`` applies to papermill only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import traceback
import warnings
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import get_context
from pathlib import Path
from typing import Callable

#: The file of a run folder holding the output (and traceback) of a process-runner run.
RUN_LOG_NAME = "run.log"


def init_worker(threads: int) -> None:
    """Worker (or Slurm task) start: pin the intra-op threads to ``threads`` and import the
    engine once (torch included)."""
    from clml_lib.threads import pin_threads

    pin_threads(threads)
    import clml_lib.train.engine  # noqa: F401  (torch, torchvision, the losses: imported once)


def run_in_worker(config: dict, run_dir: str, header: str = "") -> tuple[float, str]:
    """Train one run (in a worker process) and return ``(seconds, error)``.

    Args:
        config: the run's :class:`~clml_lib.train.TrainConfig` as a dict (``to_dict()``).
        run_dir: the run folder (``config["out_dir"]`` resolved); ``run.log`` there gets what
            ``fit`` prints (appended: a resumed run's log follows the earlier attempt's).
        header: what the first line of this attempt in ``run.log`` says ran it (default: the
            worker process and its pid).

    Returns:
        The wall time of :func:`~clml_lib.train.fit` and ``""``, or the error
        ``"ExceptionName: message"`` when it raised (the traceback is in ``run.log``), or when
        the run folder or its ``run.log`` cannot be written (a folder, a symbolic link, no
        permission: nothing is trained then).
    """
    from clml_lib.atomic import open_append
    from clml_lib.train import TrainConfig
    from clml_lib.train.engine import fit

    folder = Path(run_dir)
    start = time.perf_counter()
    error = ""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        log = open_append(folder / RUN_LOG_NAME)  # a resume appends; a link is never followed
    except OSError as exc:  # an unwritable --out, a run.log that is a folder or a link
        return time.perf_counter() - start, f"{type(exc).__name__}: {exc}"
    with log:
        where = header or f"worker pid {os.getpid()}"
        log.write(f"=== {time.strftime('%Y-%m-%d %H:%M:%S')} fit() in {where}\n")
        log.flush()
        # catch_warnings: each run's log shows its own warnings, not only the worker's first run's
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), \
                warnings.catch_warnings():
            try:
                cfg = dataclasses.replace(TrainConfig.from_dict(config), verbose=False,
                                          progress=False)
                fit(cfg)
            except Exception as exc:  # recorded like a failed notebook; the grid goes on
                traceback.print_exc(file=log)
                error = f"{type(exc).__name__}: {exc}"
    return time.perf_counter() - start, error


class WorkerPool:
    """``jobs`` long-lived worker processes (``spawn``: a clean interpreter, no forked torch
    state) with ``threads`` torch threads each.

    Raises:
        ValueError: ``jobs`` or ``threads`` < 1.
    """

    def __init__(self, jobs: int, threads: int):
        for name, value in (("jobs", jobs), ("threads", threads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        self.jobs, self.threads = jobs, threads
        self._pool = self._new_pool()

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=self.jobs, mp_context=get_context("spawn"),
                                   initializer=init_worker, initargs=(self.threads,))

    def run_all(self, items: list[tuple[object, dict, str]],
                done: Callable[[object, float, str], None]) -> None:
        """Run every ``(key, config, run_dir)``; call ``done(key, seconds, error)`` as each
        ends (in the calling thread). A dead worker fails the runs it broke, and a fresh pool
        takes the runs not yet started."""
        pending = list(items)
        while pending:
            futures: dict[Future, tuple[object, dict, str]] = {
                self._pool.submit(run_in_worker, item[1], item[2]): item for item in pending}
            pending = []
            broken = False
            for fut in as_completed(futures):
                item = futures[fut]
                key = item[0]
                try:
                    seconds, error = fut.result()
                except BrokenProcessPool as exc:
                    if not broken:  # the first broken run is (one of) the dead worker's
                        broken = True
                        done(key, 0.0, f"a worker process died while this run was in flight "
                                       f"({exc}); run the grid again to resume it")
                    else:  # queued behind the dead worker: try again in a fresh pool
                        pending.append(item)
                    continue
                except Exception as exc:  # raised outside fit (e.g. by the log): a failed run
                    done(key, 0.0, f"{type(exc).__name__}: {str(exc).splitlines()[0][:300]}")
                    continue
                done(key, seconds, error)
            if broken:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = self._new_pool()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "WorkerPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
