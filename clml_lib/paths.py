"""Project paths resolved from the repository root, so that notebooks run the same
whether papermill starts them from the root or nbval from ``notebooks/``."""

from __future__ import annotations

from pathlib import Path

#: The repository root (the folder holding ``pyproject.toml``).
PROJECT_ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = PROJECT_ROOT / "notebooks"
PARAMS = PROJECT_ROOT / "params"
RUNS = PROJECT_ROOT / "runs"
DATA = PROJECT_ROOT / "data"


def resolve(path: str | Path) -> Path:
    """Return ``path`` as an absolute path; a relative path is taken from the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else (PROJECT_ROOT / p)
