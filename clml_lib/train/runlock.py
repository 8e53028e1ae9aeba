"""One run per output folder: ``out_dir/.run.lock``, held for the whole run.

The lock is an advisory ``fcntl.flock`` on the lock file (POSIX), which the kernel releases when
the holding process ends, however it ends; the file also records the holder's pid, host and start
time for the error message. A second run on the same folder fails at once with that message. A
lock file left behind by a process that no longer exists (``kill -9``, power loss) is *stale*:
the next run takes the lock (the kernel lock is free), reports the dead pid it replaces, and
rewrites the file with its own pid. The file is removed when the run ends.

* **Never follows a link.** The lock file is opened with ``O_NOFOLLOW`` and must be a regular file
  with one name: a ``.run.lock`` that is a symbolic link, a hard link to another file, a folder or
  a FIFO is refused (naming it), and nothing it points to is opened or truncated.
* **Forked children do not hold it.** ``flock`` belongs to the open file, which a ``fork`` shares:
  DataLoader workers forked by the run would keep the folder locked for seconds after the run is
  killed (``kill -9``). Every forked child closes its copy of the descriptor at once
  (``os.register_at_fork``), so the lock dies with the process that took it.
* **Leftover temporary files** of the atomic writer (a run killed while writing a checkpoint) are
  removed when the lock is taken (no writer can be running there then), and reported.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import stat
import time
from pathlib import Path
from typing import Callable

from ..atomic import stale_temp_files

LOCK_NAME = ".run.lock"

#: descriptors of the locks this process holds: a forked child closes its copies at once
_HELD: set[int] = set()


def _close_in_child() -> None:
    for fd in list(_HELD):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_close_in_child)


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

    def _open(self) -> int:
        """Open (or create) the lock file without following a link; refuse anything but a
        regular file with a single name."""
        flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK
        try:
            fd = os.open(self.path, flags, 0o644)
        except OSError as err:
            if err.errno == errno.ELOOP:
                raise OSError(err.errno, f"the lock file {self.path} is a symbolic link; it is "
                              "never followed (a run would overwrite its target): remove it "
                              "and run again") from None
            raise OSError(err.errno, f"cannot create the lock file {self.path}: "
                          f"{err.strerror}") from None
        st = os.fstat(fd)
        problem = ("is not a regular file" if not stat.S_ISREG(st.st_mode) else
                   f"has {st.st_nlink} names (a hard link to another file)" if st.st_nlink > 1
                   else "")
        if problem:
            os.close(fd)
            raise OSError(errno.EINVAL, f"the lock file {self.path} {problem}; it would be "
                          "overwritten: remove it and run again")
        os.set_blocking(fd, True)
        return fd

    def _remove_stale_temp_files(self) -> None:
        for tmp in stale_temp_files(self.path.parent):
            try:
                tmp.unlink()
            except OSError:
                continue
            self.log(f"[clml] removed {tmp}, a temporary file left by a run killed while writing")

    def acquire(self) -> None:
        for _ in range(5):  # retried only if the file was replaced between open and lock
            fd = self._open()
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
            _HELD.add(fd)
            self._remove_stale_temp_files()
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
        _HELD.discard(self._fd)
        os.close(self._fd)  # closing frees the flock
        self._fd = None

    def __enter__(self) -> "RunLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def wait_until_free(out_dir: str | os.PathLike, timeout_s: float, poll_s: float = 0.2,
                    log: Callable[[str], None] | None = None) -> bool:
    """Wait until no live process holds ``out_dir``'s run lock, for at most ``timeout_s``.

    For a task that restarts a run whose previous process may still be dying (a Slurm task
    started again right after ``scancel``: the queue shows the old task gone before the kernel has
    reaped its process). Nothing is created or taken: the lock is only probed (``flock`` and
    unlock at once), so the run itself still takes it with :class:`RunLock`.

    Args:
        out_dir: the run folder.
        timeout_s: the longest wait in seconds (>= 0).
        poll_s: seconds between probes.
        log: told once, naming the holder, when the lock is found held.

    Returns:
        True when the lock is free (or there is none), False when a process still holds it after
        ``timeout_s`` (then :meth:`RunLock.acquire` fails naming it).
    """
    lock = RunLock(out_dir)  # its path and its holder's description; never acquired here
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            fd = os.open(lock.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | os.O_NONBLOCK)
        except OSError:  # no lock file; or a link or an unreadable file, which acquire() reports
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return True
        except BlockingIOError:
            if log is not None and not told:
                log(f"[clml] {lock.path.parent} is still held ({lock._holder()}); "
                    f"waiting up to {timeout_s:.0f} s for it to end")
                told = True
        finally:
            os.close(fd)
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
