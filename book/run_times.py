"""Measured run times of the notebooks: ``notebooks/run_times.json``, written and read here.

``scripts/execute_notebooks.sh`` records one entry per notebook it executes::

    python book/run_times.py record notebooks/01_false_negative_mining.ipynb 97

and the book (``book/build.py``) reads the file for its run-times page and for the note under
each chapter's title. An entry holds what was measured and where::

    {"notebooks/01_false_negative_mining.ipynb":
        {"seconds": 97, "executed_at": "2026-12-04T18:00:00Z", "cpus": 2,
         "cpu": "Intel(R) Xeon(R) ..."}}

A notebook never executed by the script has no entry: the book says "not measured" for it
rather than repeating the estimate its introduction gives.

Errors: ``RunTimesError`` for a file that is not this format (naming the file and the key), a
negative or non-integer number of seconds, or a notebook path outside ``notebooks/``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: the file the execution script writes and the book reads (relative to the repository root)
RUN_TIMES = Path("notebooks") / "run_times.json"
FIELDS = ("seconds", "executed_at", "cpus", "cpu")
#: the execution script's names of those fields
ALIASES = {"date": "executed_at", "cores": "cpus"}


class RunTimesError(ValueError):
    """``notebooks/run_times.json`` or a value recorded into it is not valid."""


def _cpu_model() -> str:
    from clml_lib.machine import cpu_model

    return cpu_model()


def load(path: Path | None = None) -> dict[str, dict]:
    """The recorded entries, ``{notebook path relative to the root: entry}`` ({} without a file).

    Raises:
        RunTimesError: the file is not a JSON object of entries holding every field of
            :data:`FIELDS` with an integer ``seconds >= 0``.
    """
    path = ROOT / RUN_TIMES if path is None else Path(path)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise RunTimesError(f"{path}:{err.lineno}: not JSON ({err.msg})") from None
    if not isinstance(data, dict):
        raise RunTimesError(f"{path}: expected a JSON object {{notebook: entry}}, "
                            f"got {type(data).__name__}")
    out = {}
    for nb, entry in data.items():
        if isinstance(entry, dict):  # scripts/execute_notebooks.sh's spelling: by stem, date, cores
            entry = {ALIASES.get(k, k): v for k, v in entry.items()}
        if not isinstance(entry, dict) or any(f not in entry for f in FIELDS):
            raise RunTimesError(f"{path}: entry {nb!r} must hold the fields {FIELDS}, "
                                f"got {entry!r}")
        sec = entry["seconds"]
        if isinstance(sec, bool) or not isinstance(sec, (int, float)) or not sec >= 0:
            raise RunTimesError(f"{path}: entry {nb!r}: seconds must be a number >= 0, "
                                f"got {sec!r}")
        entry["seconds"] = int(round(sec))
        key = nb if nb.startswith("notebooks/") else f"notebooks/{nb}.ipynb"
        out[key] = entry
    return out


def record(notebook: str, seconds: int, path: Path | None = None) -> dict:
    """Add or replace the entry of ``notebook`` (a path under ``notebooks/``); returns it.

    Raises:
        RunTimesError: ``seconds`` negative, or ``notebook`` not a ``.ipynb`` under
            ``notebooks/``, or an existing file that :func:`load` refuses.
    """
    rel = Path(notebook)
    if rel.is_absolute():
        try:
            rel = rel.resolve().relative_to(ROOT)
        except ValueError:
            raise RunTimesError(f"{notebook}: not inside the repository {ROOT}") from None
    if rel.parts[:1] != ("notebooks",) or rel.suffix != ".ipynb":
        raise RunTimesError(f"{notebook}: expected a notebooks/*.ipynb path")
    if seconds < 0:
        raise RunTimesError(f"{notebook}: seconds must be >= 0, got {seconds}")
    path = ROOT / RUN_TIMES if path is None else Path(path)
    data = load(path)
    entry = {
        "seconds": int(seconds),
        "executed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cpus": os.cpu_count() or 0,
        "cpu": _cpu_model(),
    }
    data[rel.as_posix()] = entry
    path.write_text(json.dumps(dict(sorted(data.items())), indent=1) + "\n", encoding="utf-8")
    return entry


def describe(entry: dict | None) -> str:
    """One line for a page: ``"1 min 37 s (2 CPUs, 2026-12-04)"``, or ``"not measured yet"``."""
    if not entry:
        return "not measured yet"
    s = entry["seconds"]
    took = f"{s} s" if s < 60 else f"{s // 60} min {s % 60:02d} s"
    return f"{took} ({entry['cpus']} CPUs, {entry['executed_at'][:10]})"


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] != "record":
        print("usage: python book/run_times.py record NOTEBOOK.ipynb SECONDS", file=sys.stderr)
        return 2
    try:
        seconds = int(argv[2])
    except ValueError:
        print(f"run_times: SECONDS must be an integer, got {argv[2]!r}", file=sys.stderr)
        return 2
    try:
        entry = record(argv[1], seconds)
    except RunTimesError as err:
        print(f"run_times: {err}", file=sys.stderr)
        return 1
    print(f"[run_times] {argv[1]}: {describe(entry)} -> {RUN_TIMES}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
