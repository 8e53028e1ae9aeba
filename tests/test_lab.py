"""``bash scripts/lab.sh``: JupyterLab started headless with the script's configuration.

The server runs as the script runs it (``python -m jupyterlab --config=<lab.sh's config>``; the
script's other line, ``source scripts/env.sh``, only prepares ``.venv``), on a free localhost
port with a token, with isolated Jupyter user/runtime folders. Checked through the REST and
websocket APIs: the server answers, the lab page and the course's UI settings are served, a
kernel of the project's interpreter starts and runs cells (``1+1``, ``import clml_lib``), a
notebook's ``.py`` twin opens as a notebook with its pairing, and after ``/api/shutdown`` neither
the server nor the kernel is left running.
"""

from __future__ import annotations

import ast
import asyncio
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAB_SH = ROOT / "scripts" / "lab.sh"
START_TIMEOUT = 60


def _lab_command() -> list[str]:
    """The command line lab.sh runs after ``source env.sh``, read from the script itself."""
    line = [ln for ln in LAB_SH.read_text().splitlines() if ln.startswith("exec python")]
    assert len(line) == 1, f"{LAB_SH}: expected one 'exec python ...' line, found {line}"
    config = re.search(r'--config="\$ROOT/([^"]+)"', line[0])
    assert config, f"{LAB_SH}: the exec line names no --config=\"$ROOT/...\": {line[0]}"
    assert (ROOT / config.group(1)).is_file(), f"{config.group(1)}: missing"
    return [sys.executable, "-m", "jupyterlab", f"--config={ROOT / config.group(1)}"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def _post(url: str, token: str, body: dict | None = None) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=json.dumps(body or {}).encode(), method="POST",
                                 headers={"Authorization": f"token {token}",
                                          "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return r.status, r.read()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (exited, not yet reaped by its parent) is not running
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


async def _execute(ws_url: str, token: str, code: str, timeout: float = 60.0) -> dict:
    """Run ``code`` in a kernel over its websocket: {"result": text/plain, "status", "error"}."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    req = HTTPRequest(ws_url, headers={"Authorization": f"token {token}"})
    conn = await websocket_connect(req)
    msg_id = uuid.uuid4().hex
    conn.write_message(json.dumps({
        "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex,
                   "msg_type": "execute_request", "version": "5.3"},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }))
    out: dict = {"result": None, "status": None, "error": None}
    idle = False
    deadline = time.monotonic() + timeout
    try:
        while out["status"] is None or not idle:  # the reply (shell) and idle again (iopub)
            raw = await asyncio.wait_for(conn.read_message(), deadline - time.monotonic())
            assert raw is not None, "kernel websocket closed"
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "execute_result":
                out["result"] = msg["content"]["data"]["text/plain"]
            elif kind == "error":
                out["error"] = f"{msg['content']['ename']}: {msg['content']['evalue']}"
            elif kind == "execute_reply":
                out["status"] = msg["content"]["status"]
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                idle = True
    finally:
        conn.close()
    return out


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A running server: (base url, token, Popen). Stopped, and checked gone, by the test."""
    pytest.importorskip("jupyterlab")
    pytest.importorskip("jupytext")
    home = tmp_path_factory.mktemp("jupyter")
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"), JUPYTER_DATA_DIR=str(home / "data"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "user-settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), IPYTHONDIR=str(home / "ipython"),
               JUPYTER_PLATFORM_DIRS="1", OMP_NUM_THREADS="1", MPLBACKEND="Agg")
    env.pop("JUPYTER_TOKEN", None)
    cmd = _lab_command() + ["--no-browser", f"--ServerApp.port={port}",
                            "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}"]
    log = open(home / "server.log", "w+")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    t0 = time.monotonic()
    while True:
        if proc.poll() is not None:
            log.seek(0)
            pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{log.read()[-3000:]}")
        try:
            if _get(f"{base}/api/status", token, timeout=2)[0] == 200:
                break
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            pass
        if time.monotonic() - t0 > START_TIMEOUT:
            os.killpg(proc.pid, signal.SIGKILL)
            log.seek(0)
            pytest.fail(f"no answer on {base}/api/status after {START_TIMEOUT} s:\n"
                        f"{log.read()[-3000:]}")
        time.sleep(0.2)
    print(f"[lab] answering after {time.monotonic() - t0:.1f} s")
    state = {"kernel_pids": []}
    try:
        yield base, token, proc, state, log
    finally:
        if proc.poll() is None:  # a failed test: stop everything it started
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        log.close()


def test_lab_server_answers_with_the_course_settings(lab):
    base, token, proc, _, _ = lab
    status, body = _get(f"{base}/api/status", token)
    assert status == 200 and "started" in json.loads(body)
    # without the token: refused
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{base}/api/status", timeout=5)
    assert err.value.code == 403
    status, page = _get(f"{base}/lab", token)
    assert status == 200 and b"jupyter-config-data" in page
    config = json.loads(re.search(rb'id="jupyter-config-data"[^>]*>(.*?)</script>', page,
                                  re.S).group(1))
    assert config["news"] == {"disabled": True}, config.get("news")
    assert config["extensionManager"]["can_install"] is False, config.get("extensionManager")
    assert Path(config["serverRoot"]).resolve() == (ROOT / "notebooks").resolve()
    settings = {}
    for plugin in ("@jupyterlab/apputils-extension:notification",
                   "@jupyterlab/docmanager-extension:plugin"):
        settings[plugin] = json.loads(_get(f"{base}/lab/api/settings/{plugin}", token)[1])

    def default(plugin, key):  # overrides.json sets the defaults of the plugins' schemas
        return settings[plugin]["schema"]["properties"][key]["default"]

    notification = "@jupyterlab/apputils-extension:notification"
    assert default(notification, "fetchNews") == "false"
    assert default(notification, "checkForUpdates") is False
    viewers = default("@jupyterlab/docmanager-extension:plugin", "defaultViewers")
    assert viewers.get("python") == "Jupytext Notebook", viewers


def test_lab_py_twin_opens_as_a_paired_notebook(lab):
    base, token, _, _, _ = lab
    twins = sorted(p for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.py")
                   if p.with_suffix(".ipynb").is_file())
    assert twins, "no notebooks/NN_*.py with its .ipynb"
    py = twins[0]
    status, body = _get(f"{base}/api/contents/{py.name}", token, timeout=30)
    model = json.loads(body)
    assert status == 200 and model["type"] == "notebook", (py.name, model.get("type"))
    cells = model["content"]["cells"]
    nb = json.loads(py.with_suffix(".ipynb").read_text(encoding="utf-8"))
    assert len(cells) == len(nb["cells"]), f"{py.name}: {len(cells)} cells, .ipynb has " \
                                           f"{len(nb['cells'])}"
    formats = model["content"]["metadata"].get("jupytext", {}).get("formats", "")
    assert set(formats.split(",")) == {"ipynb", "py:percent"}, formats
    # the library's modules are outside the server's root (it is notebooks/)
    with pytest.raises(urllib.error.HTTPError):
        _get(f"{base}/api/contents/../clml_lib/__init__.py", token)


def test_lab_kernel_runs_cells_and_everything_stops(lab):
    base, token, proc, state, log = lab
    t0 = time.monotonic()
    status, body = _post(f"{base}/api/kernels", token, {"name": "python3"})
    kernel = json.loads(body)
    assert status == 201 and kernel["name"] == "python3", kernel
    ws = f"ws{base[4:]}/api/kernels/{kernel['id']}/channels"

    async def run_all():
        first = await _execute(ws, token, "1+1")
        lib = await _execute(ws, token, "import os, sys, clml_lib\n"
                                        "(os.getpid(), sys.executable, clml_lib.__file__)")
        return first, lib

    first, lib = asyncio.run(run_all())
    assert first["error"] is None and first["result"] == "2", first
    assert lib["error"] is None and lib["status"] == "ok", lib
    pid, executable, lib_file = ast.literal_eval(lib["result"])
    assert Path(executable).resolve() == Path(sys.executable).resolve(), \
        f"the kernel runs {executable}, not the project's interpreter {sys.executable}"
    assert Path(lib_file).resolve().is_relative_to(ROOT), lib_file
    assert _alive(pid)
    print(f"[lab] kernel started and ran two cells in {time.monotonic() - t0:.1f} s")

    status, _ = _post(f"{base}/api/shutdown", token)
    assert status in (200, 204)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        pytest.fail("jupyter lab still running 30 s after /api/shutdown")
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(pid), f"kernel process {pid} left running after the server stopped"
    assert not _alive(proc.pid)
    try:  # nothing else of the server's process group either
        os.killpg(proc.pid, 0)
        left = True
    except ProcessLookupError:
        left = False
    assert not left, f"processes of the server's group {proc.pid} left running"
