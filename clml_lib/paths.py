"""Project paths, and the one rule for relative paths.

**Rule.** A relative path in a run's configuration (``data_root``, ``label_list``, ``weights_path``,
``out_dir``) and a relative ``--out`` of the grid driver are taken from the *project root*, the
folder holding ``pyproject.toml`` (:data:`PROJECT_ROOT`), never from the current working directory:
papermill starts kernels in the project root while nbval starts them in ``notebooks/``, and a run
must mean the same thing in both. Absolute paths and ``~`` work as usual. Files named on a command
line (``--config``, papermill's ``-f``) are ordinary command-line paths, taken from the current
directory.
"""

from __future__ import annotations

from pathlib import Path

#: The repository root (the folder holding ``pyproject.toml``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = PROJECT_ROOT / "notebooks"
PARAMS = PROJECT_ROOT / "params"
RUNS = PROJECT_ROOT / "runs"
DATA = PROJECT_ROOT / "data"


def resolve_path(path: str | Path) -> Path:
    """``path`` as an absolute path: ``~`` expanded, a relative path taken from
    :data:`PROJECT_ROOT` (whatever the current directory is).

    Raises:
        ValueError: ``path`` is empty (an empty path field means "none": check it first).
    """
    if str(path) == "":
        raise ValueError("empty path: an empty path field means 'none' and has no location")
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p)


def resolve(path: str | Path) -> Path:
    """:func:`resolve_path` under the short name the notebooks import."""
    return resolve_path(path)
