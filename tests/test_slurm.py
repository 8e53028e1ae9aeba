"""The Slurm runner of the grid driver.

Pure Python (always run): Slurm resources (file, flags, errors, derived values), the torchrun
variables derived from Slurm's environment, the follow loop on a scripted queue, the dry run of
the paper's COCO table.

Against a real single-node Slurm (``scripts/slurm_local.sh start``: installs Debian's Slurm and
munge when missing, starts the daemons without systemd; stopped by pid at the end), when running
as root: a 2 cells x 2 seeds teaching grid through ``--runner slurm --no-wait``; one task is
cancelled with ``scancel`` mid-run and another gets the pre-emption signal (USR2, requeued by
submitit); running the command again submits only the cancelled run, follows the others, and
every run ends with the metrics of the process runner on the same configurations (the resumed
runs kept their first epochs: exact resume from checkpoint.pt); a third command skips all four.
Then a run with two tasks (DDP ranks, gloo on CPU) with the rendezvous taken from Slurm's
environment. Not root: skipped with the command to run (fails under ``CI=true``).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from clml_lib.paths import PROJECT_ROOT
from clml_lib.reproduce import load_grid
from clml_lib.reproduce.cli import main
from clml_lib.reproduce.slurm import (
    SlurmError,
    SlurmResources,
    follow,
    queue_states,
    read_record,
)
from clml_lib.train.checkpoint import load_checkpoint
from clml_lib.train.distributed import first_host, torchrun_env_from_slurm

SCRIPT = PROJECT_ROOT / "scripts" / "slurm_local.sh"
HOW_TO = ("the Slurm tests start a local Slurm and need root: sudo bash scripts/slurm_local.sh "
          "start is what they run (Debian/Ubuntu; or run the tests as root)")
#: the teaching runs of the grid: 8 epochs of about a second each on an idle core (the cancelled
#: run must still be training when scancel takes effect, KillWait 2 s later; the test also
#: suspends the task just before cancelling it, so that it cannot finish in that window)
RUN = {"epochs": 8, "num_train_images": 800, "batch_size": 32, "max_eval_batches": 2}


def _missing(what: str) -> None:
    """Fail in CI (CI=true), skip elsewhere: never a silent skip in CI."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI=true: required)")
    pytest.skip(what)


# --------------------------------------------------------------------------- pure Python
def test_resources_from_file_and_flags(tmp_path):
    conf = tmp_path / "slurm.yaml"
    conf.write_text("partition: gpu\ntime_min: 240\noptions: {constraint: a100}\n"
                    "setup: ['module load cuda']\n")
    res = SlurmResources.from_file(conf).with_flags(["time_min=60", "mem_gb=32",
                                                     "partition=auto"])
    assert res.time_min == 60 and res.mem_gb == 32.0 and res.partition is None
    assert res.options == {"constraint": "a100"} and res.setup == ["module load cuda"]
    grid = load_grid("coco_table", sets={"data_root": "/data/coco"})
    resolved = res.resolve(grid.runs, grid.timeout_s)
    # derived: one GPU and one task (device cuda), num_workers 8 + 1 CPUs
    assert (resolved["gpus_per_node"], resolved["tasks_per_node"], resolved["cpus_per_task"]) \
        == (1, 1, 9)
    params = res.sbatch_parameters(resolved, "clml-coco_table")
    assert params["mem"] == "32GB" and params["time"] == 60
    assert params["additional_parameters"] == {"constraint": "a100"}
    default = SlurmResources().resolve(grid.runs, grid.timeout_s)
    assert default["time_min"] == 172800 // 60  # the grid's timeout_s


@pytest.mark.parametrize("items, message", [
    (["partiton=gpu"], "unknown Slurm key 'partiton'"),
    (["nodes=0"], "nodes must be >= 1"),
    (["gpus_per_node=two"], "gpus_per_node must be a int"),
    (["entry=kernel"], "entry must be one of"),
    (["options={time: 5}"], "'time' has its own key"),
    (["time_min"], "expected KEY=VALUE"),
    (["poll_s=-1"], "poll_s must be > 0"),
])
def test_bad_resources_are_named(items, message):
    with pytest.raises(SlurmError, match=message.replace("(", r"\(")):
        SlurmResources().with_flags(items)


def test_bad_resource_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(SlurmError, match="expected a mapping"):
        SlurmResources.from_file(bad)
    with pytest.raises(SlurmError, match="Slurm config not found"):
        SlurmResources.from_file(tmp_path / "none.yaml")


def test_papermill_entry_refuses_several_processes():
    grid = load_grid("teaching", seeds=[0])
    res = SlurmResources().with_flags(["entry=papermill", "tasks_per_node=2"])
    with pytest.raises(SlurmError, match="need entry: process"):
        res.resolve(grid.runs, grid.timeout_s)


def test_torchrun_variables_from_slurm():
    env = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
           "SLURM_NTASKS_PER_NODE": "4", "SLURM_JOB_NODELIST": "gpu[07-08]",
           "SLURM_JOB_ID": "1234567"}
    assert torchrun_env_from_slurm(env) == {
        "RANK": "5", "WORLD_SIZE": "8", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "4",
        "MASTER_ADDR": "gpu07", "MASTER_PORT": str(20000 + 1234567 % 20000)}
    assert torchrun_env_from_slurm({**env, "MASTER_PORT": "29500"})["MASTER_PORT"] == "29500"
    assert torchrun_env_from_slurm({"SLURM_NTASKS": "1", "SLURM_PROCID": "0"}) == {}
    assert torchrun_env_from_slurm({}) == {}
    with pytest.raises(ValueError, match="SLURM_PROCID=8 is outside"):
        torchrun_env_from_slurm({**env, "SLURM_PROCID": "8"})
    with pytest.raises(ValueError, match="SLURM_LOCALID is not set"):
        torchrun_env_from_slurm({k: v for k, v in env.items() if k != "SLURM_LOCALID"})
    assert [first_host(s) for s in ("n1", "a[3-5,9],b2", "x[001-004]y[2-3]")] == \
        ["n1", "a3", "x001y2"]
    for bad in ("", "a[1", "a]1,b", "a[]"):
        with pytest.raises(ValueError, match="host list"):
            first_host(bad)


def test_follow_reports_progress_and_ends_each_task_once():
    script = [
        {"1_0": "PENDING", "1_1": "PENDING"},
        {"1_0": "RUNNING", "1_1": "PENDING"},
        {"1_0": "PREEMPTED", "1_1": "RUNNING"},  # may be requeued: looked at twice
        {"1_0": "PENDING", "1_1": "COMPLETED"},
        {"1_0": "RUNNING"},
        {},  # both purged
    ]
    polls = iter(script)
    ended, lines = [], []
    follow({"a": "1_0", "b": "1_1"}, lambda key, state: ended.append((key, state)) or key == "b",
           0.0, lines.append, poll=lambda: next(polls), sleep=lambda s: None)
    assert ended == [("b", "COMPLETED"), ("a", "GONE")]
    text = "\n".join(lines)
    assert "0 done, 0 running, 2 pending, 0 failed of 2" in text
    assert "1 done, 0 running, 1 pending, 0 failed of 2" in text
    assert lines[-1].startswith("slurm: 1 done, 0 running, 0 pending, 1 failed of 2")


def test_coco_table_dry_run_prints_the_array(capsys):
    code = main(["--grid", "coco_table", "--runner", "slurm", "--dry-run", "--set",
                 "data_root=/data/coco", "--slurm", "partition=gpu", "--out",
                 str(Path(tempfile.gettempdir()) / "clml_dry_run_never_written")])
    out = capsys.readouterr().out
    assert code == 0
    assert "32 run(s) to submit as one array" in out
    assert "[32/32] coco_table/single_splc_clml seed 0: new      -> array task 31" in out
    for line in ("#SBATCH --array=0-31%32", "#SBATCH --gpus-per-node=1",
                 "#SBATCH --partition=gpu", "#SBATCH --cpus-per-task=9",
                 "#SBATCH --time=2880", "#SBATCH --signal=USR2@120"):
        assert line in out, line
    assert not (Path(tempfile.gettempdir()) / "clml_dry_run_never_written").exists()


# --------------------------------------------------------------------------- a real Slurm
def _free_port_pair() -> int:
    for _ in range(50):
        port = random.randrange(17000, 30000)
        ok = True
        for p in (port, port + 1):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return port
    raise RuntimeError("no free port pair for slurmctld/slurmd")


@pytest.fixture(scope="module")
def local_slurm():
    """A single-node Slurm with (at most) 2 CPUs, started and stopped by scripts/slurm_local.sh;
    ``SLURM_CONF`` set for the module."""
    if os.geteuid() != 0:
        _missing(HOW_TO)
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        _missing("no Slurm and no apt-get to install it: install slurmctld slurmd "
                 "slurm-client munge")
    folder = Path(tempfile.mkdtemp(prefix="clml-slurm-"))  # under /tmp: munge must reach it
    folder.chmod(0o755)
    env = {**os.environ, "CLML_SLURM_DIR": str(folder), "CLML_SLURM_PORT": str(_free_port_pair()),
           "CLML_SLURM_CPUS": str(min(2, os.cpu_count() or 1))}
    start = time.perf_counter()
    res = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True,
                         timeout=900)
    print(f"slurm_local.sh start: {time.perf_counter() - start:.1f} s\n{res.stdout}")
    previous = os.environ.get("SLURM_CONF")
    try:
        assert res.returncode == 0, res.stdout + res.stderr
        os.environ["SLURM_CONF"] = str(folder / "slurm.conf")
        yield folder
    finally:
        stop = subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True,
                              text=True, timeout=120)
        print(stop.stdout + stop.stderr)
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        shutil.rmtree(folder, ignore_errors=True)


def _write_grid(path: Path, axes: dict, seeds: list[int], **fixed) -> Path:
    path.write_text(yaml.safe_dump({"description": "Slurm test grid", "layers": ["teaching"],
                                    "axes": axes, "seeds": seeds, "timeout_s": 600,
                                    "set": {**RUN, **fixed}}))
    return path


def _numbers(doc, path=""):
    """Every number of a metrics.json (``path -> value``) but the wall times."""
    if isinstance(doc, dict):
        return {k2: v2 for k, v in doc.items() if k != "time_s"
                for k2, v2 in _numbers(v, f"{path}.{k}").items()}
    if isinstance(doc, list):
        return {k2: v2 for i, v in enumerate(doc) for k2, v2 in _numbers(v, f"{path}[{i}]").items()}
    if isinstance(doc, (int, float)) and not isinstance(doc, bool):
        return {path: float(doc)}
    return {}


def _metrics(run_dir: Path) -> dict | None:
    try:
        return json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None


def _wait(what: str, condition, timeout: float = 900.0, step: float = 0.1, seen=None):
    end = time.time() + timeout
    while time.time() < end:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                         + (f" (last seen: {seen[-3:]})" if seen else ""))


def _log_lines(run_dir: Path) -> list[str]:
    return [line for line in (run_dir / "run.log").read_text().splitlines()
            if line.startswith("=== ")]


@pytest.mark.slow
def test_slurm_runner_equals_process_runner_resumes_after_scancel_and_skips(
        local_slurm, tmp_path, capsys):
    grid_file = _write_grid(tmp_path / "slurm2x2.yaml", {"use_clml": [False, True]}, [0, 1])
    by_process = tmp_path / "process"
    start = time.perf_counter()
    assert main(["--grid", str(grid_file), "--out", str(by_process), "--runner", "process",
                 "--jobs", "2"]) == 0
    capsys.readouterr()
    with capsys.disabled():
        print(f"process runner: {time.perf_counter() - start:.1f} s")

    out = tmp_path / "slurm"
    args = ["--grid", str(grid_file), "--out", str(out), "--runner", "slurm",
            "--slurm", "cpus_per_task=1", "--slurm", "poll_s=1", "--slurm", "time_min=30"]
    assert main(args + ["--no-wait"]) == 0
    submitted = capsys.readouterr().out
    assert "4 run(s) in the Slurm queue" in submitted
    grid = load_grid(grid_file, out=out)
    dirs = [run.run_dir for run in grid.runs]
    jobs = [read_record(d)["job_id"] for d in dirs]
    array = jobs[0].split("_")[0]
    assert jobs == [f"{array}_{i}" for i in range(4)]
    script = (out / grid.name / "slurm" / f"{array}_submission.sh").read_text()
    with capsys.disabled():
        print(f"submitted array {array}:\n{script}")
    assert "#SBATCH --array=0-3%4" in script and "#SBATCH --cpus-per-task=1" in script

    # the first two tasks run at once (2 CPUs): cancel one after its first epoch; pre-empt the
    # other: USR2, what Slurm sends its task before a pre-emption or the time limit (sent to
    # the task's process here: `scancel --signal` would wait on the requeue it triggers);
    # submitit requeues it and it restarts after the local cluster's cred_expire (10 s)
    cancelled, preempted = dirs[0], dirs[1]
    first_epoch = {}
    acted = set()

    def preempt() -> None:
        header = _log_lines(preempted)[0]
        pid = int(re.search(rf"Slurm task {jobs[1]} \(attempt 1\) pid (\d+) ", header).group(1))
        os.kill(pid, signal.SIGUSR2)

    def act():
        for d, action in ((cancelled, lambda: (
                              subprocess.run(["scontrol", "suspend", jobs[0]], timeout=60),
                              subprocess.run(["scancel", jobs[0]], check=True, timeout=60))),
                          (preempted, preempt)):
            metrics = _metrics(d)
            if d not in acted and (d / "checkpoint.pt").is_file() and metrics:
                first_epoch[d] = metrics["epochs"][0]
                action()
                acted.add(d)
        return len(acted) == 2

    _wait("the first checkpoints of tasks 0 and 1", act, step=0.05)
    seen: list = []

    def gone() -> bool:
        seen.append(queue_states().get(jobs[0]))
        return seen[-1] in ("CANCELLED", None)

    _wait("the cancelled task to leave the queue", gone, timeout=60, seen=seen)
    metrics = _metrics(cancelled)
    assert not metrics["summary"].get("finished"), "the cancelled run finished before scancel " \
        "took effect: the test needs longer epochs"

    # the same command again: submits only the cancelled run, follows the three others
    start = time.perf_counter()
    assert main(args) == 0
    again = capsys.readouterr().out
    with capsys.disabled():
        print(f"second command: {time.perf_counter() - start:.1f} s\n" + again[:4000])
    assert "slurm: 1 run(s) to submit as one array" in again  # the cancelled one
    assert f"queued earlier as {jobs[1]}" in again  # the pre-empted one, requeued by itself
    assert "slurm: 4 done, 0 running, 0 pending, 0 failed of 4" in again
    record = read_record(cancelled)
    assert record["job_id"] != jobs[0] and record["earlier"][0]["job_id"] == jobs[0]
    assert Path(record["stdout"]).is_file()
    lines = _log_lines(cancelled)
    assert f"Slurm task {jobs[0]} (attempt 1)" in lines[0]
    assert f"Slurm task {record['job_id']} (attempt 1)" in lines[-2]
    assert "resuming from checkpoint.pt" in lines[-2] and "ended after" in lines[-1]
    lines = _log_lines(preempted)
    assert any(f"Slurm task {jobs[1]} (attempt 2)" in line and "resuming from checkpoint.pt"
               in line for line in lines), lines
    for d in (cancelled, preempted):  # resumed, not retrained: the first epoch is the same one
        assert _metrics(d)["epochs"][0] == first_epoch[d]

    # equal to the process runner's runs, number by number (wall times aside)
    for run in grid.runs:
        mine = _metrics(run.run_dir)
        theirs = _metrics(by_process / grid.name / run.cell / f"seed{run.seed}")
        assert mine["summary"]["finished"] and theirs["summary"]["finished"]
        a, b = _numbers(mine), _numbers(theirs)
        assert a.keys() == b.keys()
        assert {k for k in a if a[k] != b[k]} == set(), run.run_dir
        assert {k for k in mine["config"] if mine["config"][k] != theirs["config"][k]} \
            == {"out_dir"}

    # once more: everything finished, nothing submitted
    capsys.readouterr()
    before = [read_record(d)["job_id"] for d in dirs]
    assert main(args) == 0
    third = capsys.readouterr().out
    assert "0 runs executed" in third and "4 skipped as finished" in third
    assert "slurm: 0 run(s) to submit" in third and "submitted job" not in third
    assert [read_record(d)["job_id"] for d in dirs] == before


@pytest.mark.slow
def test_two_tasks_train_one_ddp_run_with_the_slurm_rendezvous(local_slurm, tmp_path, capsys):
    if (os.cpu_count() or 1) < 2:
        pytest.skip("two DDP tasks need a 2-CPU node")
    grid_file = _write_grid(tmp_path / "ddp.yaml", {"use_clml": [True]}, [0], epochs=1)
    out = tmp_path / "slurm"
    assert main(["--grid", str(grid_file), "--out", str(out), "--runner", "slurm",
                 "--slurm", "tasks_per_node=2", "--slurm", "cpus_per_task=1",
                 "--slurm", "poll_s=1"]) == 0
    text = capsys.readouterr().out
    assert "tasks_per_node=2" in text
    (run,) = load_grid(grid_file, out=out).runs
    assert _metrics(run.run_dir)["summary"]["finished"]
    ckpt = load_checkpoint(run.run_dir / "checkpoint.pt", map_location="cpu")
    assert ckpt["world_size"] == 2
    record = read_record(run.run_dir)
    rank1 = Path(record["stdout"].replace("_0_log.out", "_1_log.out"))
    assert rank1.is_file(), "the second task (rank 1) writes its own Slurm log"
