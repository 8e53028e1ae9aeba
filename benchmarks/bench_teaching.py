"""Wall time of a fine-tuning teaching run against the from-scratch teaching run, side by side.

Both runs go through papermill exactly as the grid runs them (``notebooks/reproduce.ipynb``, the
parameter layers composed in order, kernel ``python3``, cwd = project root), one after the other
in this one process, with the math libraries pinned to the same number of threads (default 2,
set before torch is imported; papermill kernels inherit it). Printed: both wall times and the
ratio ``scratch / fine-tune`` (target >= 5). Then the time per run of the grid driver's
``process`` runner (what the main job pays per run): the fine-tuning run in one long-lived worker
process (:class:`clml_lib.reproduce.workers.WorkerPool`) with the threads of one of the main
job's two workers (``cores // 2``), its first run (which also generates the teaching images)
and the next ones (warm: images cached in the worker).

* **Anchor** (from scratch): ``params/teaching_scratch.yaml`` (tiny CNN, 32 px, 10 epochs).
* **Fine-tuning run**: ``params/teaching.yaml`` when it names the pretrained ``small_resnet``
  backbone; else, when ``data/teaching_backbone.pt`` exists, ``params/teaching.yaml`` with
  ``backbone=small_resnet``, that weights file and ``--finetune-epochs`` epochs; else a stand-in
  (``backbone=tiny_cnn``, ``--finetune-epochs`` epochs), and the output says so.

Options: ``--process-runs N``: runs timed in the worker (default 3; 0 skips it);
``--no-papermill`` times :func:`clml_lib.train.fit` in this process instead (no kernel
start, no notebook cells); ``--profile`` prints where the time of each in-process run goes
(data, model, training steps, evaluation, file writes); ``--repeats N`` alternates the two runs N
times and reports the medians.

    python benchmarks/bench_teaching.py                  # papermill, 2 threads
    python benchmarks/bench_teaching.py --no-papermill --profile
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "reproduce.ipynb"
SCRATCH = ROOT / "params" / "teaching_scratch.yaml"
TEACHING = ROOT / "params" / "teaching.yaml"
BACKBONE_WEIGHTS = ROOT / "data" / "teaching_backbone.pt"


def _read_yaml(path: Path) -> dict:
    """The fields of a parameter layer, read and checked by the schema's own reader."""
    from clml_lib.train.config import read_layer

    return read_layer(path)


def runs(finetune_epochs: int) -> list[tuple[str, dict, str]]:
    """``(name, parameters, description)`` of the anchor and the fine-tuning run."""
    scratch = _read_yaml(SCRATCH)
    teaching = _read_yaml(TEACHING)
    if teaching.get("backbone") == "small_resnet":
        fine, what = dict(teaching), f"{TEACHING.relative_to(ROOT)} as it is"
    elif BACKBONE_WEIGHTS.is_file():
        fine = {**teaching, "backbone": "small_resnet",
                "weights_path": str(BACKBONE_WEIGHTS.relative_to(ROOT)), "epochs": finetune_epochs}
        what = (f"{TEACHING.relative_to(ROOT)} + backbone small_resnet, weights "
                f"{BACKBONE_WEIGHTS.relative_to(ROOT)}, {finetune_epochs} epochs")
    else:
        fine = {**scratch, "backbone": "tiny_cnn", "epochs": finetune_epochs}
        what = (f"STAND-IN: {BACKBONE_WEIGHTS.relative_to(ROOT)} does not exist yet, so "
                f"{SCRATCH.relative_to(ROOT)} with tiny_cnn and {finetune_epochs} epochs")
    return [("scratch", scratch, f"{SCRATCH.relative_to(ROOT)}"), ("finetune", fine, what)]


def _time_papermill(params: dict, out: Path) -> float:
    import papermill as pm

    t0 = time.perf_counter()
    pm.execute_notebook(str(NOTEBOOK), str(out.with_suffix(".ipynb")), parameters=params,
                        kernel_name="python3", progress_bar=False, log_output=False,
                        cwd=str(ROOT))
    return time.perf_counter() - t0


def _time_fit(params: dict, profile: bool) -> tuple[float, str]:
    import cProfile
    import io
    import pstats

    from clml_lib.train import TrainConfig
    from clml_lib.train.engine import fit

    cfg = TrainConfig.from_dict(params)
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof is not None:
        prof.enable()
    fit(cfg)
    if prof is not None:
        prof.disable()
    wall = time.perf_counter() - t0
    if prof is None:
        return wall, ""
    stats = pstats.Stats(prof, stream=io.StringIO())
    phases = {  # function name (in the engine / data modules) -> phase
        "build_run_data": "data (generate / read, split)",
        "build_model": "model (build, load weights)",
        "train_step": "training steps (forward, loss, backward, Adam, EMA)",
        "__iter__": "batches (index, convert, augment)",
        "_evaluate_epoch": "evaluation (val + test, raw + EMA, metrics)",
        "_write_epoch": "file writes (scores, checkpoint, config, metrics)",
    }
    got: dict[str, float] = {}
    for (filename, _, name), row in stats.stats.items():  # type: ignore[attr-defined]
        if name in phases and ("clml_lib" in filename):
            got[phases[name]] = got.get(phases[name], 0.0) + row[3]  # cumulative time
    lines = [f"    {k:55s} {v:6.2f} s  ({100 * v / wall:4.1f} %)" for k, v in got.items()]
    return wall, "\n".join(lines)


def _time_process_runner(params: dict, threads: int, n: int, tmp: Path) -> list[float]:
    """Seconds of ``n`` fine-tuning runs (seeds 0..n-1) in one warm worker process."""
    from clml_lib.reproduce.workers import WorkerPool

    seconds: list[float] = []
    errors: list[str] = []
    items = [(seed, {**params, "seed": seed, "split_seed": seed,
                     "out_dir": str(tmp / f"process_{seed}")}, str(tmp / f"process_{seed}"))
             for seed in range(n)]
    with WorkerPool(1, threads) as pool:
        for item in items:  # one at a time, in order: the first run is the cold one
            pool.run_all([item], lambda _, s, e: (seconds.append(s), errors.append(e)))
    bad = [e for e in errors if e]
    if bad:
        raise RuntimeError(f"process-runner run failed: {bad[0]}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2, help="OMP/MKL threads (default 2)")
    ap.add_argument("--no-papermill", action="store_true", help="time fit() in this process")
    ap.add_argument("--profile", action="store_true",
                    help="with --no-papermill: print the time of each phase of each run")
    ap.add_argument("--repeats", type=int, default=1, help="alternate the two runs N times")
    ap.add_argument("--finetune-epochs", type=int, default=3)
    ap.add_argument("--process-runs", type=int, default=3,
                    help="fine-tuning runs timed in one worker process of the grid's process "
                    "runner (0: skip)")
    args = ap.parse_args(argv)
    if args.threads < 1 or args.repeats < 1 or args.finetune_epochs < 1:
        ap.error("--threads, --repeats and --finetune-epochs must be >= 1")
    if args.process_runs < 0:
        ap.error("--process-runs must be >= 0")
    if args.profile and not args.no_papermill:
        ap.error("--profile needs --no-papermill (the work of a papermill run is in its kernel)")
    from clml_lib.threads import pin_threads

    pin_threads(args.threads)  # the environment too: the notebook kernels inherit it
    import torch

    from clml_lib.reproduce.grid import cpu_count

    plan = runs(args.finetune_epochs)
    mode = "in-process fit()" if args.no_papermill else "papermill notebooks/reproduce.ipynb"
    print(f"bench_teaching: {mode}, {args.threads} threads, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at start")
    for name, _, what in plan:
        print(f"  {name:8s}: {what}")
    times: dict[str, list[float]] = {name: [] for name, _, _ in plan}
    warm_median = None
    with tempfile.TemporaryDirectory(prefix="bench_teaching_") as tmp:
        for rep in range(args.repeats):
            for name, params, _ in plan:
                out = Path(tmp) / f"{name}_{rep}"
                params = {**params, "out_dir": str(out), "resume": False, "progress": False}
                if args.no_papermill:
                    wall, prof = _time_fit(params, args.profile)
                else:
                    wall, prof = _time_papermill(params, out), ""
                times[name].append(wall)
                print(f"  run {rep}: {name:8s} {wall:7.2f} s")
                if prof:
                    print(prof)
        if args.process_runs:
            fine = {**plan[1][1], "resume": False, "progress": False}
            threads = max(1, cpu_count() // 2)  # as each of the main job's --jobs 2 workers
            per_run = _time_process_runner(fine, threads, args.process_runs, Path(tmp))
            warm = per_run[1:] or per_run
            warm_median = sorted(warm)[len(warm) // 2]
            print(f"  process runner (one worker, {threads} thread(s)): fine-tuning runs "
                  + ", ".join(f"{x:.2f}" for x in per_run) + " s (first: also generates the "
                  f"images); warm median {warm_median:.2f} s per run")
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    ratio = med["scratch"] / med["finetune"]
    print(f"from scratch: {med['scratch']:.2f} s   fine-tuning: {med['finetune']:.2f} s   "
          f"ratio {ratio:.2f} (target >= 5: {'met' if ratio >= 5 else 'NOT met'})")
    if warm_median is not None:
        ratio_p = med["scratch"] / warm_median
        print(f"from scratch: {med['scratch']:.2f} s   fine-tuning in the process runner (the "
              f"main job): {warm_median:.2f} s per run   ratio {ratio_p:.2f} (target >= 5: "
              f"{'met' if ratio_p >= 5 else 'NOT met'})")
    print(f"load average {os.getloadavg()[0]:.1f} at the end (timings on a busy machine are "
          "inflated; the ratio of runs measured side by side is the figure to read)")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    raise SystemExit(main())
