"""One run per output folder: ``out_dir/.run.lock``, held for the whole run.

The lock is an advisory ``fcntl.flock`` on the lock file (POSIX), which the kernel releases when
the holding process ends, however it ends; the file also records the holder's pid, host and start
time for the error message. A second run on the same folder fails at once with that message. A
lock file left behind by a process that no longer exists (``kill -9``, power loss) is *stale*:
the next run takes the lock (the kernel lock is free), reports the dead pid it replaces, and
rewrites the file with its own pid. The file is removed when the run ends.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from pathlib import Path
from typing import Callable

LOCK_NAME = ".run.lock"


class RunLock:
    """Exclusive lock of a run folder (context manager).

    Args:
        out_dir: the run folder (must exist).
        log: where to report a stale lock that was replaced (default: ignore).

    Raises (on enter):
        RuntimeError: another live process holds the lock (its pid, host and start are named).
        OSError: the lock file cannot be created (the path is named).
    """

    def __init__(self, out_dir: str | os.PathLike, log: Callable[[str], None] | None = None):
        self.path = Path(out_dir) / LOCK_NAME
        self.log = log or (lambda msg: None)
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            return "an unknown process"
        return (f"pid {info.get('pid')} on {info.get('host')}, started "
                f"{info.get('started', '?')}")

    def acquire(self) -> None:
        for _ in range(5):  # retried only if the file was replaced between open and lock
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise type(err)(f"cannot create the lock file {self.path}: {err}") from err
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise RuntimeError(
                    f"{self.path.parent} is in use by another run ({self._holder()}; lock file "
                    f"{self.path}). Wait for it to finish or use another out_dir") from None
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # the holder removed the file as we opened it: take the new one
                os.close(fd)
                continue
            old = os.read(fd, 4096).decode(errors="replace").strip()
            if old:
                try:
                    pid = json.loads(old).get("pid")
                except ValueError:
                    pid = "?"
                self.log(f"[clml] replacing a stale lock of pid {pid} (no longer running) in "
                         f"{self.path}")
            info = {"pid": os.getpid(), "host": socket.gethostname(),
                    "started": time.strftime("%Y-%m-%d %H:%M:%S %z")}
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
            os.write(fd, json.dumps(info).encode())
            os.fsync(fd)
            self._fd = fd
            return
        raise RuntimeError(f"could not take the lock {self.path}: it keeps being replaced")

    def release(self) -> None:
        """Remove the lock file and free the lock (no-op if not held)."""
        if self._fd is None:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        os.close(self._fd)  # closing frees the flock
        self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()
