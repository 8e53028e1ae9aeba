"""Hostile and careless inputs, one class per test: each is refused with one clear message naming
the file, field or value (or handled correctly), and nothing outside the run folder or the input
changes. docs/reliability.md lists the classes with these tests.

Every input is written in its real format (YAML grids and layers, PNG files, label lists, COCO
JSON, run folders as the engine writes them).
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from clml_lib import atomic
from clml_lib.atomic import atomic_torch_save, atomic_write_text, open_append
from clml_lib.checks import CLIP_CHARS
from clml_lib.data import read_label_list, write_label_list
from clml_lib.data.images import load_image
from clml_lib.data.prepare import decode_check
from clml_lib.reproduce import mining
from clml_lib.reproduce.cli import main as grid_main
from clml_lib.reproduce.collate import collate
from clml_lib.reproduce.grid import GridError, expand, plan, read_grid_spec
from clml_lib.reproduce.workers import RUN_LOG_NAME, run_in_worker
from clml_lib.train import TrainConfig
from clml_lib.train.config import read_layer
from clml_lib.train.optim import build_scheduler
from clml_lib.train.runlock import LOCK_NAME, RunLock, wait_until_free

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def _grid(tmp_path: Path, name: str = "g", text: str | None = None, **spec) -> Path:
    path = tmp_path / f"{name}.yaml"
    if text is None:
        spec = {"description": "test grid", "layers": ["teaching"], "seeds": [0], **spec}
        text = yaml.safe_dump(spec)
    path.write_text(text)
    return path


def _load(path: Path, tmp_path: Path, **kw):
    return expand(read_grid_spec(path, out=tmp_path / "runs", **kw))


def _finished(run, test_map: float = 50.0) -> None:
    """A run folder as the engine leaves a finished run (metrics.json and config.json)."""
    run.run_dir.mkdir(parents=True, exist_ok=True)
    summary = {"selected_epoch": 1, "selected_model": "ema", "val_mAP": 50.0,
               "test_mAP": test_map, "best_test_mAP": test_map + 1, "best_test_epoch": 1,
               "best_test_model": "raw", "optimism_gap": 1.0, "finished": True, "epochs_run": 2}
    epochs = [{"epoch": e, "mined": {"count": 0, "true": 0, "missing": 5}} for e in range(2)]
    doc = {"config": run.config.to_dict(), "epochs": epochs, "summary": summary}
    run.metrics_path.write_text(json.dumps(doc))
    (run.run_dir / "config.json").write_text(json.dumps(run.config.to_dict()))


# ----------------------------------------------------------------------- 1 the run lock
@pytest.mark.parametrize("kind", ["symlink", "hardlink", "folder"])
def test_run_lock_never_follows_or_truncates_another_file(tmp_path, kind):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    run = tmp_path / "run"
    run.mkdir()
    lock = run / LOCK_NAME
    if kind == "symlink":
        lock.symlink_to(victim)
    elif kind == "hardlink":
        os.link(victim, lock)
    else:
        lock.mkdir()
    with pytest.raises(OSError) as info:
        RunLock(run).acquire()
    assert str(lock) in str(info.value)
    assert victim.read_text() == "keep me\n"
    if kind == "symlink":  # the training command: one line, exit 1, the target untouched
        proc = subprocess.run([PY, "-m", "clml_lib.train", "--set", f"out_dir={run}",
                               "epochs=1"], capture_output=True, text=True, env=ENV,
                              timeout=300)
        assert proc.returncode == 1 and proc.stderr.startswith(f"error: [Errno 40] the lock "
                                                               f"file {lock} is a symbolic link")
        assert proc.stderr.count("\n") == 1 and victim.read_text() == "keep me\n"


def test_the_lock_dies_with_its_process_even_with_forked_workers_alive(tmp_path):
    """kill -9 of a run whose (DataLoader-like) forked children live on: the next run takes the
    folder at once, reporting the dead pid."""
    code = ("import os, signal, sys, time\n"
            "from clml_lib.train.runlock import RunLock\n"
            "RunLock(sys.argv[1]).acquire()\n"
            "child = os.fork()\n"
            "if child == 0:\n    os.close(1)\n    os.close(2)\n    time.sleep(60)\n"
            "    os._exit(0)\n"
            "print(child, flush=True)\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([PY, "-c", code, str(tmp_path)], capture_output=True, text=True,
                          env=ENV, timeout=120)
    child = int(proc.stdout.split()[0])
    try:
        os.kill(child, 0)  # the forked child still runs
        messages: list[str] = []
        with RunLock(tmp_path, log=messages.append):
            pass
        assert any("stale lock" in m for m in messages)
    finally:
        os.kill(child, signal.SIGKILL)


def test_wait_until_free_waits_for_a_dying_holder_and_gives_up_on_a_live_one(tmp_path):
    """A restarted task (Slurm, after scancel) waits for the old process to release the folder;
    a holder that stays is reported and the wait ends at its timeout."""
    assert wait_until_free(tmp_path, 0.0) and not (tmp_path / LOCK_NAME).exists()  # no lock
    code = ("import sys, time\nfrom clml_lib.train.runlock import RunLock\n"
            "lock = RunLock(sys.argv[1]); lock.acquire(); print('held', flush=True)\n"
            "time.sleep(float(sys.argv[2]))\n")
    holder = subprocess.Popen([PY, "-c", code, str(tmp_path), "1.5"], env=ENV,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        messages: list[str] = []
        start = time.monotonic()
        assert wait_until_free(tmp_path, 60, poll_s=0.05, log=messages.append)
        assert time.monotonic() - start > 0.5  # it did wait for the holder to end
        assert len(messages) == 1 and f"pid {holder.pid} " in messages[0]
        with RunLock(tmp_path):  # and the folder can be taken now
            pass
    finally:
        holder.kill()
        holder.wait()
    stays = subprocess.Popen([PY, "-c", code, str(tmp_path), "60"], env=ENV,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert stays.stdout.readline().strip() == "held"
        start = time.monotonic()
        assert not wait_until_free(tmp_path, 0.3, poll_s=0.05)
        assert time.monotonic() - start < 5
        with pytest.raises(RuntimeError, match=f"pid {stays.pid} "):
            RunLock(tmp_path).acquire()
    finally:
        stays.kill()
        stays.wait()


def test_a_temporary_file_left_by_a_killed_writer_is_removed_with_the_lock(tmp_path):
    code = ("import sys, time\nfrom clml_lib.atomic import _atomic_write\n"
            "def slow(fh):\n    fh.write(b'x' * 4096); fh.flush(); print('ready', flush=True)\n"
            "    time.sleep(60)\n"
            "_atomic_write(sys.argv[1], slow)\n")
    proc = subprocess.Popen([PY, "-c", code, str(tmp_path / "checkpoint.pt")], env=ENV,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    proc.kill()  # SIGKILL while the checkpoint is being written
    proc.wait(timeout=60)
    leftovers = atomic.stale_temp_files(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].name.startswith(".checkpoint.pt.")
    assert not (tmp_path / "checkpoint.pt").exists()
    messages: list[str] = []
    with RunLock(tmp_path, log=messages.append):
        assert atomic.stale_temp_files(tmp_path) == []
    assert any(str(leftovers[0]) in m for m in messages)


# ----------------------------------------------------------------------- 2 ignored axes
def test_a_setting_axis_with_a_label_list_is_refused(tmp_path):
    path = _grid(tmp_path, layers=[], set={"dataset": "coco", "data_root": "/data/coco",
                                           "label_list": "coco_train_0.4left.txt"},
                 axes={"setting": ["40left", "single"], "use_clml": [False, True]})
    with pytest.raises(GridError, match=r"cells '40left_no_clml' and 'single_no_clml' would run "
                                        r"the same experiment.*setting is ignored: label_list"):
        _load(path, tmp_path)


def test_the_collated_label_names_the_label_list_not_the_ignored_setting(tmp_path):
    lst = tmp_path / "coco_single.txt"
    lst.write_text("a.jpg, 1\n")
    grid = _load(_grid(tmp_path, layers=[], set={"dataset": "coco", "data_root": "/d",
                                                 "label_list": str(lst)},
                       axes={"use_clml": [False, True]}), tmp_path)
    for run in grid.runs:
        _finished(run)
    text = collate(grid, n_boot=10)[2]
    assert "coco / label_list:coco_single.txt / BCE" in text and "40left" not in text


# ----------------------------------------------------------------------- 3, 12 seeds
@pytest.mark.parametrize("spec, message", [
    ({"seed_fields": []}, "seed_fields must not be empty"),
    ({"seed_fields": ["lr"]}, "'lr' is not a seed field"),
    ({"seeds": 3}, r"seeds must be a list of seeds such as \[0, 1, 2\], got 3 \(int\)"),
    ({"seeds": []}, "seeds must not be empty"),
    ({"seeds": "0 1 2"}, r"seeds must be a list of seeds.*'0 1 2' \(str\)"),
    ({"seeds": [0, 0]}, r"\[0\] listed twice"),
    ({"seeds": [99999999999999999999]}, r"must be in \[0, 9223372036854775807\]"),
    ({"seeds": [-1]}, r"must be in \[0, "),
    ({"timeout_s": float("nan")}, "timeout must be finite"),
    ({"timeout_s": float("inf")}, "timeout must be finite"),
    ({"timeout_s": 0}, r"timeout must be in \(0, inf\)"),
    ({"axes": {"data_root": [".."]}}, r"cell name '\.\.' must be"),
    ({"axes": {"data_root": ["."]}}, r"cell name '\.' must be"),
    ({"set": {"backbone": "resnet_18"}}, r"unknown backbone 'resnet_18'.*did you mean"),
    ({"set": {"weights_path": "imagenet"}}, "no ImageNet weights for 'small_resnet'"),
    ({"set": {"image_size": 100000}}, r"image_size must be in \[8, 2048\]"),
    ({"axes": {"lr": [0.1, 0.1]}}, "lists 0.1 twice"),
])
def test_grid_values_are_checked_before_anything_runs(tmp_path, spec, message):
    with pytest.raises(GridError, match=message) as info:
        _load(_grid(tmp_path, **spec), tmp_path)
    assert "g.yaml" in str(info.value)


def test_command_line_seeds_and_timeout_are_checked_like_the_file(tmp_path, capsys):
    path = _grid(tmp_path)
    with pytest.raises(GridError, match="timeout must be finite"):
        _load(path, tmp_path, timeout_s=float("nan"))
    assert grid_main(["--grid", str(path), "--seeds", "99999999999999999999", "--dry-run",
                      "--out", str(tmp_path / "runs")]) == 2
    assert "--seeds: seeds: a seed must be in [0, 9223372036854775807]" in capsys.readouterr().err


# ----------------------------------------------------------------------- 4 aliases, repeated keys
BOMB = ("a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
        "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]\n")


def test_an_alias_bomb_in_a_grid_description_is_refused_at_once(tmp_path):
    text = BOMB.replace("a: &a", "description: &a", 1).replace(
        "[x, x, x, x, x, x, x, x, x]", "[x]") + "layers: [teaching]\n"
    start = time.perf_counter()
    with pytest.raises(GridError, match=r"g\.yaml:1: anchor &a: anchors and aliases are not "
                                        "accepted"):
        _load(_grid(tmp_path, text=text), tmp_path)
    assert time.perf_counter() - start < 5


def test_an_alias_in_a_parameter_layer_is_refused_by_the_train_command(tmp_path):
    layer = tmp_path / "layer.yaml"
    layer.write_text("backbone: &b [[*x]]\n".replace("*x", "1") + "seed: *b\n")
    with pytest.raises(ValueError, match=r"layer\.yaml:1: anchor &b"):
        read_layer(layer)
    proc = subprocess.run([PY, "-m", "clml_lib.train", "-f", str(layer), "--print-config"],
                          capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.returncode == 2 and "anchors and aliases are not accepted" in proc.stderr
    assert len(proc.stderr) < 2000 and "Traceback" not in proc.stderr


@pytest.mark.parametrize("suffix, text, where", [
    (".yaml", "lr: 0.1\nseed: 1\nlr: 0.2\n", r"layer\.yaml:3: the key 'lr' appears twice in one "
                                             r"mapping \(first at line 1"),
    (".json", '{"lr": 0.1, "lr": 0.2}', r"layer\.json: the key 'lr' appears twice"),
])
def test_a_key_repeated_in_one_file_is_refused(tmp_path, suffix, text, where):
    layer = tmp_path / f"layer{suffix}"
    layer.write_text(text)
    with pytest.raises(ValueError, match=where):
        read_layer(layer)


def test_a_repeated_grid_key_is_refused(tmp_path):
    path = _grid(tmp_path, text="layers: [teaching]\nseeds: [0]\nseeds: [1, 2]\n")
    with pytest.raises(GridError, match=r"g\.yaml:3: the key 'seeds' appears twice"):
        _load(path, tmp_path)


def test_error_messages_quote_at_most_about_200_characters_of_a_value(tmp_path):
    huge = "x" * 100_000
    for spec in ({"set": {"setting": huge}}, {"description": huge}, {"seeds": [huge]},
                 {"axes": {"lr": [huge]}}):
        with pytest.raises(GridError) as info:
            _load(_grid(tmp_path, **spec), tmp_path)
        assert len(str(info.value)) < CLIP_CHARS + 600, spec
    lst = tmp_path / "l.txt"
    lst.write_text(f"{huge}.jpg\n")
    with pytest.raises(ValueError) as info:
        read_label_list(lst, 3)
    assert len(str(info.value)) < CLIP_CHARS + 300


# ----------------------------------------------------------------------- 5, 6 images
def test_a_16_bit_png_is_scaled_not_saturated(tmp_path):
    ramp = np.linspace(0, 65535, 64 * 64).round().astype(np.uint16).reshape(64, 64)
    Image.fromarray(ramp).save(tmp_path / "ramp16.png")
    assert Image.open(tmp_path / "ramp16.png").mode == "I;16"  # a real 16-bit PNG
    rgb = np.asarray(load_image(tmp_path / "ramp16.png"))
    expected = np.floor(ramp.astype(np.float64) * 255 / 65535 + 0.5).astype(np.uint8)
    assert rgb.shape == (64, 64, 3) and (rgb == expected[..., None]).all()
    assert (rgb == 255).mean() < 0.01


def test_a_float_image_is_refused_with_its_file_and_mode(tmp_path):
    Image.fromarray(np.ones((4, 4), np.float32)).save(tmp_path / "f.tif")
    with pytest.raises(ValueError, match=r"f\.tif: mode 'F'.*no known value range"):
        load_image(tmp_path / "f.tif")


def _png_claiming(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header declares ``width`` x ``height`` grayscale pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    rows = zlib.compress(b"\x00" * (width + 1) * 64, 9)  # the first rows only: bombs are lazy
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height,
                                                                       8, 0, 0, 0, 0))
                     + chunk(b"IDAT", rows) + chunk(b"IEND", b""))
    return path


def test_a_decompression_bomb_is_one_message_naming_the_file(tmp_path):
    bomb = _png_claiming(tmp_path / "bomb.png", 20000, 20000)
    assert bomb.stat().st_size < 60_000
    with pytest.raises(ValueError, match=r"cannot read image .*bomb\.png: DecompressionBombError"):
        load_image(bomb)

    class Listed:
        paths = [bomb]

    with pytest.raises(ValueError, match=r"1 of 1 images cannot be decoded:\n  .*bomb\.png"):
        decode_check(Listed())


# ----------------------------------------------------------------------- 7 mining --out
def test_mining_out_never_replaces_a_file_of_a_run(tmp_path, capsys):
    run = tmp_path / "cell" / "seed0"
    run.mkdir(parents=True)
    (run / "config.json").write_text('{"seed": 0}\n')
    (run / "checkpoint.pt").write_bytes(b"not read")
    for target, extra in ((run / "config.json", ["--force"]), (tmp_path / "cell" / "t.md", [])):
        assert mining.main([str(tmp_path / "cell"), "--out", str(target), *extra]) == 1
        assert "would overwrite an input of this command" in capsys.readouterr().err
    assert (run / "config.json").read_text() == '{"seed": 0}\n'
    other = tmp_path / "table.md"
    other.write_text("old\n")
    assert mining.main([str(run), "--out", str(other)]) == 1
    assert "exists; choose another --out, or pass --force" in capsys.readouterr().err
    assert other.read_text() == "old\n"


# ----------------------------------------------------------------------- 9 damaged metrics.json
@pytest.mark.parametrize("damage, problem", [
    (lambda d: d["summary"].update(test_mAP=None), "summary.test_mAP is None, not a finite"),
    (lambda d: d["summary"].pop("best_test_mAP"), "summary.best_test_mAP is 'missing'"),
    (lambda d: d.update(summary=[]), "summary is [], not an object"),
    (lambda d: d["epochs"][0].update(mined={"count": "many"}), "epochs[0].mined.count is"),
    (lambda d: d.pop("config"), "config is 'missing', not an object"),
])
def test_a_damaged_metrics_json_is_named_and_the_sound_runs_are_collated(tmp_path, damage,
                                                                         problem):
    grid = _load(_grid(tmp_path, axes={"use_clml": [False, True]}, seeds=[0, 1]), tmp_path)
    for k, run in enumerate(grid.runs):
        _finished(run, 50.0 + k)
    bad = grid.runs[3]
    doc = json.loads(bad.metrics_path.read_text())
    damage(doc)
    bad.metrics_path.write_text(json.dumps(doc))
    lines: list[str] = []
    assert [s for _, s, _ in plan(grid, lines.append)] == ["finished"] * 3 + ["partial"]
    assert any(problem in line and "metrics.json" in line for line in lines)
    md, _, text = collate(grid, n_boot=10)
    assert md.is_file() and problem in text and "clml/seed1/metrics.json" in text
    assert "| teaching / 40left / BCE +CLML | 1 |" in text  # seed 0 paired, seed 1 left out


# ----------------------------------------------------------------------- 10 OneCycle
@pytest.mark.parametrize("epochs, steps", [(1, 5), (1, 1), (5, 1), (1, 10), (2, 5), (3, 17)])
def test_onecycle_trains_every_step_count(epochs, steps):
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=1e-3)
    sched = build_scheduler(opt, 1e-3, epochs, steps)
    lrs = [opt.param_groups[0]["lr"]]
    for _ in range(epochs * steps):  # the engine steps once per batch
        opt.step()
        sched.step()
        lrs.append(opt.param_groups[0]["lr"])
    assert all(math.isfinite(v) and 0 < v <= 1e-3 * (1 + 1e-9) for v in lrs)


def test_onecycle_at_five_steps_takes_the_limit_schedule():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=1e-3)
    build_scheduler(opt, 1e-3, 1, 5)  # torch alone: ZeroDivisionError
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3, rel=1e-6)  # warm-up ended at step 0


def test_a_five_step_run_trains(tmp_path):
    from clml_lib.train import fit

    torch.set_num_threads(1)
    summary = fit(TrainConfig(epochs=1, max_train_batches=5, batch_size=8, num_train_images=64,
                              max_eval_batches=1, verbose=False, out_dir=str(tmp_path / "r")))
    assert summary["finished"] and summary["epochs_run"] == 1


# ----------------------------------------------------------------------- 13 seed bounds
def test_a_seed_beyond_64_bits_is_refused_by_the_schema():
    for field in ("seed", "split_seed"):
        with pytest.raises(ValueError, match=rf"{field} must be in \[0, 9223372036854775807\]"):
            TrainConfig.from_dict({field: "99999999999999999999"})
    assert TrainConfig(seed=2**63 - 1).seed == 2**63 - 1


# ----------------------------------------------------------------------- 14 full disk, modes
class _FullDisk:
    """A file whose writes fail with ENOSPC after ``room`` bytes, like a full disk."""

    def __init__(self, fh, room: int):
        self.fh, self.room = fh, room

    def write(self, data) -> int:
        if self.room < len(data):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= len(data)
        return self.fh.write(data)

    def __getattr__(self, name):
        return getattr(self.fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()


@pytest.mark.parametrize("room", [0, 100, 5000])
def test_a_full_disk_is_named_and_leaves_the_old_checkpoint(tmp_path, monkeypatch, room):
    target = tmp_path / "checkpoint.pt"
    atomic_torch_save(target, {"w": torch.ones(3)})
    before = target.read_bytes()
    real = os.fdopen
    monkeypatch.setattr(atomic.os, "fdopen", lambda fd, mode: _FullDisk(real(fd, mode), room))
    with pytest.raises(OSError) as info:
        atomic_torch_save(target, {"w": torch.zeros(100_000)})
    assert info.value.errno == errno.ENOSPC
    assert f"No space left on device while writing {target}" in str(info.value)
    assert target.read_bytes() == before and atomic.stale_temp_files(tmp_path) == []


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_umask_and_keep_a_replaced_files_mode(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        new = atomic_write_text(tmp_path / "new.txt", "x")
        assert new.stat().st_mode & 0o777 == mode
        kept = tmp_path / "kept.txt"
        kept.write_text("old")
        kept.chmod(0o640)
        atomic_write_text(kept, "new")
        assert kept.stat().st_mode & 0o777 == 0o640
    finally:
        os.umask(old)


def test_a_written_link_is_replaced_never_followed(tmp_path):
    victim = tmp_path / "outside.txt"
    victim.write_text("keep me")
    link = tmp_path / "run" / "metrics.json"
    link.parent.mkdir()
    link.symlink_to(victim)
    atomic_write_text(link, "{}")
    assert victim.read_text() == "keep me" and not link.is_symlink() and link.read_text() == "{}"
    log = tmp_path / "run" / RUN_LOG_NAME
    log.symlink_to(victim)
    with pytest.raises(OSError, match="a symbolic link"):
        open_append(log)
    assert victim.read_text() == "keep me"


# ----------------------------------------------------------------------- weak: the driver
def test_an_unwritable_run_folder_fails_that_run_only(tmp_path):
    grid = _load(_grid(tmp_path, axes={"use_clml": [False, True]}), tmp_path)
    run = grid.runs[0]
    (run.run_dir / RUN_LOG_NAME).mkdir(parents=True)  # run.log is a folder
    seconds, error = run_in_worker(run.config.to_dict(), str(run.run_dir))
    assert f"cannot write the log {run.run_dir / RUN_LOG_NAME}: Is a directory" in error
    blocked = tmp_path / "file"
    blocked.write_text("")
    seconds, error = run_in_worker(run.config.to_dict(), str(blocked / "run"))
    assert error.startswith(("FileExistsError", "NotADirectoryError"))


def test_an_out_that_cannot_be_written_stops_the_driver_before_any_run(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    rc = grid_main(["--grid", str(_grid(tmp_path)), "--out", str(blocked / "runs")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot write the grid's folder" in err and "Traceback" not in err


def test_the_driver_says_resuming_only_when_the_engine_resumes(tmp_path):
    for resume, status in ((True, "partial"), (False, "restart")):
        grid = _load(_grid(tmp_path, set={"resume": resume}), tmp_path)
        run = grid.runs[0]
        run.run_dir.mkdir(parents=True, exist_ok=True)
        (run.run_dir / "config.json").write_text(json.dumps(run.config.to_dict()))
        assert run.status() == status


def test_weights_inside_out_dir_are_refused(tmp_path):
    for weights in ("runs/x/checkpoint.pt", "runs/x/./w.pt"):
        with pytest.raises(ValueError, match="lies in out_dir .* would overwrite the input"):
            TrainConfig(weights_path=weights, out_dir="runs/x")
    TrainConfig(weights_path="runs/a/checkpoint.pt", out_dir="runs/b")  # another run's weights


# ----------------------------------------------------------------------- weak: data
def test_label_list_names_stay_in_the_root_and_are_compared_in_normal_form(tmp_path):
    lst = tmp_path / "l.txt"
    for text, message in (("a.jpg, 0\n./a.jpg, 1\n", r"l\.txt:2: image 'a\.jpg' is listed again "
                                                     r"\(as '\./a\.jpg'\) \(conflicting"),
                          ("a.jpg, 0\nsub/../a.jpg, 1\n", r"l\.txt:2: .*has a '\.\.' component"),
                          ("../../etc/passwd, 0\n", r"l\.txt:1: .*'\.\.' component"),
                          ("/etc/passwd, 0\n", r"l\.txt:1: .*is an absolute path")):
        lst.write_text(text)
        with pytest.raises(ValueError, match=message):
            read_label_list(lst, 3)
    lst.write_text("./sub//b.jpg, 2\n")
    assert read_label_list(lst, 3)[0] == ["sub/b.jpg"]


def test_an_edited_label_list_is_not_resumed_nor_skipped(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from data_fixtures import make_coco_tree

    from clml_lib.data import CocoMultiLabel
    from clml_lib.train import fit

    torch.set_num_threads(1)
    root = make_coco_tree(tmp_path / "coco", num_train=12, num_val=4, image_size=16)
    ds = CocoMultiLabel(root, "train")
    lst = write_label_list(tmp_path / "split.txt", ds.names, ds.labels)
    cfg = dict(dataset="coco", data_root=str(root), label_list=str(lst), image_size=16,
               num_train_images=0,
               batch_size=4, epochs=2, stop_epoch=0, max_eval_batches=1, verbose=False,
               resume=True, augment=False, out_dir=str(tmp_path / "run"))
    fit(TrainConfig.from_dict(cfg))
    recorded = json.loads((tmp_path / "run" / "metrics.json").read_text())["data"]
    assert len(recorded["label_list_sha256"]) == 64
    fewer = ds.labels.clone()
    fewer[0, int(fewer[0].nonzero()[0])] = 0  # one positive label removed
    write_label_list(lst, ds.names, fewer, overwrite=True)  # edited between stop and resume
    with pytest.raises(ValueError, match="the label list changed since the run started"):
        fit(TrainConfig.from_dict({**cfg, "stop_epoch": -1}))
    grid = _load(_grid(tmp_path, layers=[], set={k: v for k, v in cfg.items()
                                                 if k not in ("out_dir", "stop_epoch")}),
                 tmp_path)
    run = grid.runs[0]
    run.run_dir.mkdir(parents=True)
    for name in ("metrics.json", "config.json"):
        doc = json.loads((tmp_path / "run" / name).read_text())
        conf = doc.get("config", doc)
        conf.update(out_dir=str(run.run_dir), seed=0, split_seed=0, stop_epoch=-1)
        (run.run_dir / name).write_text(json.dumps(doc))
    (mismatch,) = run.config_mismatch()
    assert "its content changed since this run" in mismatch


# ----------------------------------------------------------------------- grid loader properties
FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
AXES = {"setting": ["full", "75left", "40left", "single"], "use_clml": [False, True],
        "base_loss": ["BCE", "Focal", "ASL", "Hill", "SPLC"], "tau": [0.5, 0.6, 0.75, 0.9],
        "lr": [1e-3, 2e-3, 3e-3]}


@st.composite
def grid_specs(draw):
    names = draw(st.lists(st.sampled_from(sorted(AXES)), max_size=3, unique=True))
    axes = {n: draw(st.lists(st.sampled_from(AXES[n]), min_size=1, max_size=3, unique=True))
            for n in names}
    seeds = draw(st.lists(st.integers(0, 2**63 - 1), min_size=1, max_size=3, unique=True))
    return {"description": draw(st.text(max_size=40)), "layers": ["teaching"], "axes": axes,
            "seeds": seeds, "timeout_s": draw(st.floats(1, 1e6))}


@FAST
@given(grid_specs())
def test_a_valid_grid_round_trips(tmp_path_factory, spec):
    tmp = tmp_path_factory.mktemp("grid")
    grid = _load(_grid(tmp, **spec), tmp)
    cells = math.prod(len(v) for v in spec["axes"].values())
    assert len(grid.runs) == cells * len(spec["seeds"]) and grid.seeds == spec["seeds"]
    assert grid.description == spec["description"].strip()
    for run in grid.runs:
        assert (run.config.seed, run.config.split_seed) == (run.seed, run.seed)
        for axis, values in spec["axes"].items():
            assert getattr(run.config, axis) in values
        assert run.run_dir.parent.parent == grid.out_dir


def _dump(spec) -> bytes:
    return yaml.safe_dump(spec, sort_keys=True).encode()


def _with(**changes):
    return lambda spec: _dump({**spec, **changes})


CORRUPT = {
    "alias": lambda spec: b"x: &a 1\n" + _dump(spec),
    "repeated_key": lambda spec: _dump(spec) + b"seeds: [0]\n",
    "unknown_key": _with(cells=[]),
    "seeds_scalar": _with(seeds=3),
    "seeds_text": _with(seeds="0 1 2"),
    "empty_seeds": _with(seeds=[]),
    "seed_too_big": _with(seeds=[2**64]),
    "empty_seed_fields": _with(seed_fields=[]),
    "nan_timeout": _with(timeout_s=float("nan")),
    "not_a_mapping": lambda spec: yaml.safe_dump([spec]).encode(),
    "bad_value": _with(set={"lr": -1}),
    "unknown_field": _with(set={"lrr": 1}),
    "axis_not_a_list": _with(axes={"tau": 0.5}),
    "dotdot_cell": _with(axes={"data_root": [".."]}),
    "not_utf8": lambda spec: b"# \xff\n" + _dump(spec),
    "truncated": lambda spec: _dump(spec) + b"z: [1, 2\n",
    "deep": lambda spec: _dump(spec) + b"z: " + b"[" * 200 + b"]" * 200 + b"\n",
}


@FAST
@given(grid_specs(), st.sampled_from(sorted(CORRUPT)))
def test_a_corrupted_grid_is_a_grid_error_naming_the_file(tmp_path_factory, spec, kind):
    tmp = tmp_path_factory.mktemp("grid")
    path = tmp / "g.yaml"
    path.write_bytes(CORRUPT[kind](spec))
    with pytest.raises(GridError) as info:
        _load(path, tmp)
    assert "g.yaml" in str(info.value)


def test_the_executed_notebook_is_never_written_through_a_link(tmp_path):
    from clml_lib.reproduce.grid import execute_run

    victim = tmp_path / "outside.ipynb"
    victim.write_text("keep me")
    run = _load(_grid(tmp_path), tmp_path).runs[0]
    run.run_dir.mkdir(parents=True)
    run.notebook_path.symlink_to(victim)
    with pytest.raises(OSError, match="is a symbolic link"):
        execute_run(run, ROOT / "notebooks" / "reproduce.ipynb", None)
    assert victim.read_text() == "keep me"
