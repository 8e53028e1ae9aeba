"""The ``slurm`` runner of the grid driver: each planned run is one task of a Slurm job array,
submitted through submitit.

* **Resources** (:class:`SlurmResources`) are set once for the whole array, in a YAML file
  (``--slurm-config FILE``) and/or ``--slurm KEY=VALUE`` flags (later wins): partition, nodes,
  GPUs per node, tasks per node, CPUs per task, memory, time limit, array parallelism, extra sbatch
  options, setup lines run before the task (``module load ...``). Unset ones are derived from the
  runs (one GPU and one task per node when they train on CUDA; ``num_workers + 1`` CPUs per task;
  the grid's ``timeout_s`` as the time limit).
* **A task** (:class:`SlurmTask`) runs its run the way a local runner does: ``entry: process``
  (default) calls :func:`~clml_lib.reproduce.workers.run_in_worker` (output in ``run.log``),
  ``entry: papermill`` executes the notebook into ``<run>/reproduce.ipynb``; the run folder holds
  the same files either way, plus ``slurm.json`` (written at submission: the job id and the
  task's Slurm log files, and those of earlier submissions of the same run). Each attempt adds a
  ``=== Slurm task ...`` line to ``run.log`` and one at its end.
* **Requeue.** submitit asks Slurm to send ``USR2`` ``signal_delay_s`` before the time limit; on
  that signal (a time limit or a pre-emption) the task requeues itself (``scontrol requeue``), up
  to ``max_requeues`` times for time limits, and the engine resumes the run exactly from
  ``checkpoint.pt`` (the epoch in progress is trained again). The runs need ``resume: true``.
* **Multi-GPU.** ``gpus_per_node: G`` (and ``nodes: M``) starts ``G`` tasks per node; every task
  derives torchrun's variables from Slurm's (:func:`clml_lib.train.distributed.
  torchrun_env_from_slurm`) and :func:`~clml_lib.train.fit` joins one DDP group of ``G * M``
  processes, as under ``torchrun``. ``tasks_per_node`` without GPUs does the same on CPU (gloo).
* **Following.** The driver polls ``squeue`` every ``poll_s`` seconds and prints a progress line
  (done / running / pending / failed) when it changes; a task that leaves the queue is *done*
  when its run's ``metrics.json`` is finished, else *failed* (the error line of ``run.log`` is
  named). ``--no-wait`` submits and returns. Running the driver again follows the runs whose task
  is still in the queue (``slurm.json`` + ``squeue``) and submits only the runs that are neither
  finished nor queued.

submitit writes its sbatch script, its pickled task and each task's log under
``<grid out>/slurm/`` (shared with the nodes, like the run folders). Those pickles are written by
the driver and loaded by the tasks it submits; do not put foreign files there.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import math
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import yaml

from clml_lib.atomic import atomic_write_json
from clml_lib.train.runlock import wait_until_free

from .workers import RUN_LOG_NAME

if TYPE_CHECKING:  # pragma: no cover
    import clml_lib.reproduce.grid  # the full name: the API reference links it to one class

#: The file of a run folder naming its Slurm job and log files (written at submission).
SLURM_RECORD = "slurm.json"
#: Seconds a task waits for its run folder's lock, held by a cancelled task's dying process.
LOCK_WAIT_S = 120.0
#: How the task of a run executes it (the local runners' entries).
ENTRIES = ("process", "papermill")
#: squeue states of a task waiting to (re)start.
PENDING_STATES = frozenset({"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD",
                            "SPECIAL_EXIT", "CONFIGURING"})
#: squeue states of a task holding its resources.
RUNNING_STATES = frozenset({"RUNNING", "COMPLETING", "SIGNALING", "STAGE_OUT", "RESIZING",
                            "SUSPENDED", "STOPPED"})
#: Ended states after which Slurm may still requeue the task: final only on a second look.
MAYBE_REQUEUED = frozenset({"PREEMPTED", "NODE_FAIL"})
_FAILED_MARK = " FAILED: "


class SlurmError(ValueError):
    """Bad Slurm resources (file, key and value named), or Slurm cannot be used."""


def _spec(default: Any, help: str, kind: type, auto: str = "") -> Any:
    meta = {"help": help, "kind": kind, "auto": auto}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class SlurmResources:
    """What every task of the array asks Slurm for; ``None`` means derived from the runs (see
    :meth:`resolve`). The keys of ``--slurm-config`` files and ``--slurm KEY=VALUE`` flags."""

    partition: str | None = _spec(None, "partition (sbatch --partition)", str,
                                  "the cluster's default partition")
    account: str | None = _spec(None, "account to charge (sbatch --account)", str, "none")
    qos: str | None = _spec(None, "quality of service (sbatch --qos)", str, "none")
    nodes: int = _spec(1, "nodes per run", int)
    gpus_per_node: int | None = _spec(None, "GPUs per node per run", int,
                                      "1 when the runs train on CUDA, else 0")
    tasks_per_node: int | None = _spec(None, "processes per node per run (DDP ranks)", int,
                                       "gpus_per_node, at least 1")
    cpus_per_task: int | None = _spec(None, "CPUs per process", int,
                                      "the runs' num_workers + 1")
    mem_gb: float | None = _spec(None, "memory per node in GB (sbatch --mem)", float,
                                 "the cluster's default")
    time_min: int | None = _spec(None, "time limit per attempt in minutes", int,
                                 "the grid's timeout_s, else 1440")
    array_parallelism: int = _spec(256, "array tasks running at once (sbatch --array=...%N)", int)
    max_requeues: int = _spec(3, "requeues after a time limit (pre-emptions are not counted)",
                              int)
    signal_delay_s: int = _spec(120, "USR2 this long before the time limit (then requeue)", int)
    entry: str = _spec("process", "how a task runs its run: process (fit) or papermill", str)
    setup: list = _spec([], "shell lines run before the task (e.g. module load ...)", list)
    options: dict = _spec({}, "more sbatch options, name: value (e.g. constraint: a100)", dict)
    python: str | None = _spec(None, "python command on the nodes", str, "this interpreter")
    poll_s: float = _spec(30.0, "seconds between two squeue polls of the driver", float)

    @classmethod
    def keys(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def describe_keys(cls) -> str:
        """One line per key: name, default (or how it is derived) and meaning (for --help)."""
        lines = []
        for f in dataclasses.fields(cls):
            default = f.metadata["auto"] or repr(getattr(cls(), f.name))
            lines.append(f"{f.name}: {f.metadata['help']} (default: {default})")
        return "\n".join(lines)

    @classmethod
    def from_mapping(cls, values: dict[str, Any], where: str,
                     base: "SlurmResources | None" = None) -> "SlurmResources":
        """``base`` (default: the defaults) with ``values`` applied, each checked.

        Raises:
            SlurmError: an unknown key (with the list of keys) or a value of the wrong type or
                range, named with ``where``.
        """
        out = dataclasses.replace(base) if base is not None else cls()
        specs = {f.name: f for f in dataclasses.fields(cls)}
        for key, value in values.items():
            if key not in specs:
                raise SlurmError(f"{where}: unknown Slurm key {key!r}; keys: "
                                 f"{', '.join(specs)}")
            setattr(out, key, _check_value(key, value, specs[key], where))
        out.validate(where)
        return out

    @classmethod
    def from_file(cls, path: str | Path, base: "SlurmResources | None" = None
                  ) -> "SlurmResources":
        """Resources from a YAML mapping of keys (see :meth:`describe_keys`).

        Raises:
            SlurmError: no such file, not YAML, not a mapping, or a bad key or value (named).
        """
        path = Path(path)
        if not path.is_file():
            raise SlurmError(f"Slurm config not found: {path}")
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise SlurmError(f"{path}: not valid YAML: {exc}") from None
        if doc is None:
            doc = {}
        if not isinstance(doc, dict):
            raise SlurmError(f"{path}: expected a mapping of Slurm keys, got "
                             f"{type(doc).__name__}")
        return cls.from_mapping(doc, str(path), base)

    def with_flags(self, items: list[str]) -> "SlurmResources":
        """Apply ``--slurm KEY=VALUE`` items (values read as YAML: ``2``, ``a100``, ``[a, b]``,
        ``{constraint: a100}``; ``auto`` or ``null`` restores the derived default).

        Raises:
            SlurmError: an item without ``=``, an unknown key or a bad value.
        """
        values = {}
        for item in items:
            key, sep, text = item.partition("=")
            if not sep or not key.strip():
                raise SlurmError(f"--slurm {item!r}: expected KEY=VALUE")
            try:
                value = yaml.safe_load(text) if text.strip() else None
            except yaml.YAMLError as exc:
                raise SlurmError(f"--slurm {item!r}: not a YAML value: {exc}") from None
            values[key.strip()] = None if value == "auto" else value
        return self.from_mapping(values, "--slurm", self)

    def validate(self, where: str = "Slurm resources") -> None:
        """Raises SlurmError on a value out of range (names the key)."""
        for key in ("nodes", "array_parallelism", "tasks_per_node", "cpus_per_task", "time_min",
                    "signal_delay_s"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise SlurmError(f"{where}: {key} must be >= 1, got {value}")
        for key in ("gpus_per_node", "max_requeues"):
            value = getattr(self, key)
            if value is not None and value < 0:
                raise SlurmError(f"{where}: {key} must be >= 0, got {value}")
        if self.mem_gb is not None and self.mem_gb <= 0:
            raise SlurmError(f"{where}: mem_gb must be > 0, got {self.mem_gb}")
        if self.poll_s <= 0:
            raise SlurmError(f"{where}: poll_s must be > 0, got {self.poll_s}")
        if self.entry not in ENTRIES:
            raise SlurmError(f"{where}: entry must be one of {ENTRIES}, got {self.entry!r}")
        if not all(isinstance(line, str) for line in self.setup):
            raise SlurmError(f"{where}: setup must be a list of shell lines, got {self.setup!r}")
        named = {"partition", "account", "qos", "nodes", "ntasks-per-node", "cpus-per-task",
                 "gpus-per-node", "mem", "time", "array", "output", "error", "signal",
                 "job-name"}
        for name in self.options:
            if str(name).replace("_", "-") in named:
                raise SlurmError(f"{where}: options: {name!r} has its own key or is set by the "
                                 "driver; use the key (see --slurm-help)")

    def resolve(self, runs: list[clml_lib.reproduce.grid.Run],
                timeout_s: float | None) -> dict[str, Any]:
        """The concrete resources of one task: every derived value filled in.

        Raises:
            SlurmError: several processes per run with the papermill entry (a notebook is one
                process).
        """
        cuda = any(r.config.device.startswith("cuda") for r in runs)
        gpus = self.gpus_per_node if self.gpus_per_node is not None else int(cuda)
        tasks = self.tasks_per_node if self.tasks_per_node is not None else max(1, gpus)
        cpus = self.cpus_per_task if self.cpus_per_task is not None else (
            max((r.config.num_workers for r in runs), default=0) + 1)
        if self.time_min is not None:
            minutes = self.time_min
        else:
            minutes = math.ceil(timeout_s / 60) if timeout_s else 1440
        if self.entry == "papermill" and tasks * self.nodes > 1:
            raise SlurmError(f"{tasks * self.nodes} processes per run (nodes x tasks_per_node) "
                             "need entry: process (a notebook runs in one process)")
        return {"partition": self.partition, "account": self.account, "qos": self.qos,
                "nodes": self.nodes, "gpus_per_node": gpus, "tasks_per_node": tasks,
                "cpus_per_task": cpus, "mem_gb": self.mem_gb, "time_min": minutes,
                "array_parallelism": self.array_parallelism}

    def sbatch_parameters(self, resolved: dict[str, Any], job_name: str) -> dict[str, Any]:
        """The parameters of ``submitit.SlurmExecutor.update_parameters`` for ``resolved``."""
        out: dict[str, Any] = {
            "job_name": job_name, "time": resolved["time_min"], "nodes": resolved["nodes"],
            "ntasks_per_node": resolved["tasks_per_node"],
            "cpus_per_task": resolved["cpus_per_task"],
            "array_parallelism": resolved["array_parallelism"],
            "signal_delay_s": self.signal_delay_s, "stderr_to_stdout": False,
        }
        if resolved["gpus_per_node"]:
            out["gpus_per_node"] = resolved["gpus_per_node"]
        if resolved["mem_gb"] is not None:
            mem = resolved["mem_gb"]
            out["mem"] = f"{int(mem)}GB" if mem == int(mem) else f"{int(mem * 1024)}MB"
        for key in ("partition", "account", "qos"):
            if resolved[key]:
                out[key] = resolved[key]
        if self.setup:
            out["setup"] = list(self.setup)
        if self.options:
            out["additional_parameters"] = {str(k).replace("_", "-"): v
                                            for k, v in self.options.items()}
        return out

    def python_command(self) -> str:
        return self.python or shlex.quote(sys.executable)


def _check_value(key: str, value: Any, spec: dataclasses.Field, where: str) -> Any:
    kind, optional = spec.metadata["kind"], bool(spec.metadata["auto"])
    if value is None:
        if optional:
            return None
        raise SlurmError(f"{where}: {key} cannot be empty (default {spec.default!r})")
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if kind is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, bool) or not isinstance(value, kind):
        raise SlurmError(f"{where}: {key} must be a {kind.__name__}, got {value!r}")
    return value


# --------------------------------------------------------------------------- the task
@dataclass
class SlurmTask:
    """One run as a submitit task (a checkpointable callable: ``checkpoint`` resubmits it, and
    the engine resumes from ``checkpoint.pt``).

    Args:
        run: the run (its configuration, folder and notebook parameters).
        entry: ``process`` or ``papermill`` (:data:`ENTRIES`).
        notebook: the notebook (papermill entry).
        timeout_s: papermill per-cell timeout.
    """

    run: clml_lib.reproduce.grid.Run
    entry: str
    notebook: str
    timeout_s: float | None = None

    def __call__(self) -> float:
        """Run it in this Slurm task; returns the seconds it took.

        Raises:
            RuntimeError: the run failed (its error; the traceback is in ``run.log``), so that
                Slurm records the task as FAILED.
        """
        from clml_lib.train.distributed import torchrun_env_from_slurm

        from .workers import init_worker, run_in_worker

        os.environ.update(torchrun_env_from_slurm())
        init_worker(int(os.environ.get("SLURM_CPUS_PER_TASK", "1")))
        rank = int(os.environ.get("RANK", "0"))
        job = task_job_id()
        attempt = int(os.environ.get("SLURM_RESTART_COUNT", "0")) + 1
        where = f"Slurm task {job} (attempt {attempt}) pid {os.getpid()} on {socket.gethostname()}"
        folder = self.run.run_dir
        start = time.perf_counter()
        if rank != 0:  # other DDP ranks: the same fit, their output in the Slurm log
            from clml_lib.train.engine import fit

            fit(dataclasses.replace(self.run.config, verbose=False, progress=False))
            return time.perf_counter() - start
        # a task started again right after scancel may find the cancelled task's process still
        # dying with the folder's lock: wait for it rather than fail
        wait_until_free(folder, LOCK_WAIT_S,
                        log=lambda msg: _append_log(folder, f"=== {_now()} {where}: {msg}"))
        header = where + (", resuming from checkpoint.pt" if self.run.config.resume and (
            folder / "checkpoint.pt").is_file() else "")
        if self.entry == "process":
            seconds, error = run_in_worker(self.run.config.to_dict(), str(folder),
                                           header=header)
        else:
            _append_log(folder, f"=== {_now()} {header}: papermill -> {self.run.notebook_path}")
            error = _papermill(self.run, self.notebook, self.timeout_s)
            seconds = time.perf_counter() - start
        _append_log(folder, f"=== {_now()} {where}: "
                    + (f"{_FAILED_MARK.strip()} {error}" if error else
                       f"ended after {seconds:.1f} s"))
        if error:
            raise RuntimeError(error)
        return seconds

    def checkpoint(self) -> Any:
        """Called by submitit on USR2 (time limit or pre-emption): requeue the same task."""
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def _papermill(run: clml_lib.reproduce.grid.Run, notebook: str, timeout_s: float | None) -> str:
    """Execute the run's notebook; ``""`` or the error (as the papermill runner reports it)."""
    import papermill as pm

    from .grid import execute_run

    try:
        execute_run(run, notebook, timeout_s, log_output=False)
    except pm.PapermillExecutionError as exc:
        return f"{exc.ename}: {exc.evalue} (cell {exc.exec_count})"
    except Exception as exc:  # dead kernel, cell timeout, missing kernel...
        return f"{type(exc).__name__}: {exc}"
    return ""


def task_job_id(environ: dict[str, str] | None = None) -> str:
    """``ARRAYID_INDEX`` for an array task, else ``SLURM_JOB_ID`` (``"?"`` outside Slurm)."""
    env = os.environ if environ is None else environ
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID", "?")


def _now() -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S")


def _append_log(folder: Path, line: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / RUN_LOG_NAME, "a", encoding="utf-8") as log:
        log.write(line + "\n")


def last_error(run_dir: Path) -> str:
    """The error of the last Slurm attempt recorded in ``run.log``, or ``""``."""
    try:
        lines = (run_dir / RUN_LOG_NAME).read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return ""
    marks = [line for line in lines if line.startswith("=== ") and "Slurm task" in line]
    if marks and _FAILED_MARK in marks[-1]:
        return marks[-1].split(_FAILED_MARK, 1)[1]
    return ""


# --------------------------------------------------------------------------- submit and follow
def submitit_folder(out_dir: Path) -> Path:
    """Where submitit keeps the sbatch scripts, pickled tasks and Slurm logs of a grid."""
    return out_dir / "slurm"


def sbatch_script(params: dict[str, Any], folder: Path, n_tasks: int, python: str) -> str:
    """The sbatch script submitit writes for an array of ``n_tasks`` (a single job for one)."""
    from submitit.slurm.slurm import _make_sbatch_string

    command = f"{python} -u -m submitit.core._submit {shlex.quote(str(folder))}"
    return _make_sbatch_string(command=command, folder=folder,
                               map_count=n_tasks if n_tasks > 1 else None, **params)


def require_slurm() -> None:
    """Raises SlurmError when ``sbatch``/``squeue``/``srun`` are not on PATH."""
    missing = [c for c in ("sbatch", "squeue", "srun") if shutil.which(c) is None]
    if missing:
        raise SlurmError(f"{', '.join(missing)} not found: run on a Slurm login node (or start "
                         "a local one: sudo bash scripts/slurm_local.sh start, then export "
                         "SLURM_CONF as it prints)")


def submit(tasks: list[SlurmTask], params: dict[str, Any], folder: Path, max_requeues: int,
           python: str) -> list[tuple[str, Path, Path]]:
    """Submit ``tasks`` as one array; ``(job id, stdout, stderr)`` per task, in order.

    Raises:
        SlurmError: sbatch refused the submission (its message).
    """
    import submitit

    executor = submitit.SlurmExecutor(folder=folder, max_num_timeout=max_requeues, python=python)
    executor.update_parameters(**params)
    try:
        jobs = executor.submit_array(tasks)
    except (subprocess.CalledProcessError, submitit.core.utils.FailedJobError,
            submitit.core.utils.FailedSubmissionError) as exc:
        detail = getattr(exc, "stderr", None) or getattr(exc, "output", None) or exc
        if isinstance(detail, bytes):
            detail = detail.decode(errors="replace")
        raise SlurmError(f"sbatch refused the array: {str(detail).strip()}") from None
    return [(job.job_id, job.paths.stdout, job.paths.stderr) for job in jobs]


def write_record(run_dir: Path, job_id: str, stdout: Path, stderr: Path) -> None:
    """``slurm.json`` of a run: this submission, earlier ones kept under ``earlier``."""
    old = read_record(run_dir)
    earlier = []
    if old:
        earlier = list(old.get("earlier", []))
        earlier.append({k: v for k, v in old.items() if k != "earlier"})
    atomic_write_json(run_dir / SLURM_RECORD, {
        "job_id": job_id, "submitted": _now(), "stdout": str(stdout), "stderr": str(stderr),
        "earlier": earlier})


def read_record(run_dir: Path) -> dict[str, Any] | None:
    """The run's ``slurm.json``, or None when absent or unreadable."""
    try:
        doc = json.loads((run_dir / SLURM_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("job_id"), str) else None


def queue_states() -> dict[str, str]:
    """``job id -> state`` of this user's Slurm tasks still known to ``squeue`` (arrays expanded:
    ``123_4``; recently ended ones included).

    Raises:
        SlurmError: squeue failed (its message).
    """
    cmd = ["squeue", "-h", "-r", "-t", "all", "-u", getpass.getuser(), "-o", "%i|%T"]
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"{' '.join(cmd)} failed: {exc}") from None
    if res.returncode != 0:
        raise SlurmError(f"{' '.join(cmd)} failed: {res.stderr.strip() or res.stdout.strip()}")
    states = {}
    for line in res.stdout.splitlines():
        job, _, state = line.strip().partition("|")
        if job:
            states[job] = state.split()[0] if state else "UNKNOWN"
    return states


def is_queued(state: str | None) -> bool:
    return state in PENDING_STATES or state in RUNNING_STATES


def follow(jobs: dict[Any, str], ended: Callable[[Any, str], bool], poll_s: float,
           log: Callable[[str], None] = print, poll: Callable[[], dict[str, str]] = queue_states,
           sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll until every task of ``jobs`` (``key -> job id``) has left the running states.

    ``ended(key, state)`` is called once per task as it ends (``state``: squeue's, or ``GONE``
    once purged from the queue) and returns whether its run finished. A progress line
    ``slurm: D done, R running, P pending, F failed of N`` is logged whenever it changes.
    Three squeue failures in a row raise.

    Raises:
        SlurmError: squeue kept failing.
    """
    remaining = dict(jobs)
    done = failed = errors = 0
    second_look: set[Any] = set()
    start, last = time.time(), ""
    while remaining:
        try:
            states = poll()
            errors = 0
        except SlurmError:
            errors += 1
            if errors >= 3:
                raise
            sleep(poll_s)
            continue
        running = pending = 0
        for key, job in list(remaining.items()):
            state = states.get(job, "GONE")
            if state in RUNNING_STATES:
                running += 1
            elif state in PENDING_STATES:
                pending += 1
            elif state in MAYBE_REQUEUED and key not in second_look:
                second_look.add(key)
                pending += 1
            else:
                del remaining[key]
                if ended(key, state):
                    done += 1
                else:
                    failed += 1
        line = (f"slurm: {done} done, {running} running, {pending} pending, {failed} failed of "
                f"{len(jobs)}")
        if line != last:
            log(f"{line} ({time.strftime('%H:%M:%S')}, {time.time() - start:.0f} s)")
            last = line
        if remaining:
            sleep(poll_s)


def run_seconds(metrics: dict[str, Any] | None) -> float:
    """Training time of a finished run from its ``metrics.json`` (sum of the epochs' ``time_s``)."""
    total = 0.0
    for epoch in (metrics or {}).get("epochs", []):
        value = epoch.get("time_s") if isinstance(epoch, dict) else None
        if isinstance(value, (int, float)):
            total += float(value)
    return total
