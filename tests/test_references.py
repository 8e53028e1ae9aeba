"""No file of the repository refers to a file that is not in it.

Scans the tracked text files (``.py .md .ipynb .yaml .yml .sh .toml .cfg``; notebook cell sources,
not outputs) for

* references to files outside the project: the background notes ``paper.md``, ``field.md``,
  ``style.md``, anything under ``.notes/``, ``../shared`` or ``/work/shared`` (the project's own
  notes are ``docs/method.md`` and ``docs/evaluation.md``);
* relative markdown links ``[text](path)`` in ``.md`` files and notebook markdown cells whose target
  is not in the repository;
* paths that start with a top-level folder of the repository and end in a source extension
  (``clml_lib/.../x.py``, ``tests/test_x.py``, ``docs/x.md``, ``notebooks/x.ipynb``, ...) that do
  not exist. Placeholders (``chNN``, ``<name>``, ``{x}``, globs) and folders that hold no tracked
  file (user data such as ``data/coco/``) are skipped.

Every finding is reported as ``file:line: reference``.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".yaml", ".yml", ".sh", ".toml", ".cfg"}
SOURCE_EXT = r"(?:py|md|ipynb|yaml|yml|sh|toml|cfg|json|txt)"

OUTSIDE = re.compile(
    r"(?<![\w/.-])(?:paper|field|style)\.md\b"  # the background notes, by bare name
    r"|\.notes/"
    r"|\.\./shared\b"
    r"|/work/shared\b"
)
MD_LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _tracked() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    return [p for p in out.split("\0") if p]


TRACKED = _tracked()
TRACKED_SET = set(TRACKED)
TRACKED_DIRS = {str(Path(p).parent) for p in TRACKED} | {
    str(parent) for p in TRACKED for parent in Path(p).parents
}
TOP = sorted({p.split("/", 1)[0] for p in TRACKED if "/" in p})
PATH_REF = re.compile(
    r"(?<![\w/.-])((?:"
    + "|".join(re.escape(t) for t in TOP)
    + r")/[\w./-]*?\.%s)(?![\w-])" % SOURCE_EXT
)
PLACEHOLDER = re.compile(r"NN|[*<>{}]|\.\.\.|XX|(?:^|/)(?:[A-Z_]+|x|name)\.\w+$")


def _exists(rel: str) -> bool:
    rel = rel.rstrip("/")
    return rel in TRACKED_SET or rel in TRACKED_DIRS or (ROOT / rel).exists()


def _lines(path: str) -> list[tuple[str, str, str]]:
    """(where, text, kind) for every line of a file; kind 'md' for markdown text, 'code'
    otherwise; where is the line number, or "cell C line L" in a notebook (cell sources only)."""
    full = ROOT / path
    if path.endswith(".ipynb"):
        nb = json.loads(full.read_text(encoding="utf-8"))
        rows = []
        for c, cell in enumerate(nb.get("cells", [])):
            src = "".join(cell.get("source", []))
            kind = "md" if cell.get("cell_type") == "markdown" else "code"
            rows += [
                (f"cell {c} line {i + 1}", line, kind) for i, line in enumerate(src.splitlines())
            ]
        return rows
    kind = "md" if path.endswith(".md") else "code"
    text = full.read_text(encoding="utf-8", errors="replace")
    return [(str(i + 1), line, kind) for i, line in enumerate(text.splitlines())]


FILES = [p for p in TRACKED if Path(p).suffix in TEXT_SUFFIXES and (ROOT / p).is_file()]
THIS = str(Path(__file__).resolve().relative_to(ROOT))


def _findings(path: str) -> list[str]:
    found = []
    base = Path(path).parent
    for n, line, kind in _lines(path):
        if path != THIS:
            for m in OUTSIDE.finditer(line):
                found.append(
                    f"{path}:{n}: refers to {m.group(0)!r}, which is outside the repository"
                )
        if kind == "md":
            for m in MD_LINK.finditer(line):
                target = m.group(1).split("#", 1)[0]
                if (
                    not target
                    or re.match(r"^[a-z][a-z0-9+.-]*:", target)
                    or PLACEHOLDER.search(target)
                ):
                    continue  # URL, mailto, pure anchor or placeholder
                rel = target.lstrip("/") if target.startswith("/") else str(base / target)
                resolved = (ROOT / rel).resolve()  # resolves '..'

                try:
                    rel_resolved = str(resolved.relative_to(ROOT))
                except ValueError:
                    found.append(f"{path}:{n}: link {m.group(1)!r} leaves the repository")
                    continue
                if not _exists(rel_resolved):
                    found.append(
                        f"{path}:{n}: link {m.group(1)!r} -> {rel_resolved} does not exist"
                    )
        for m in PATH_REF.finditer(line):
            ref = m.group(1)
            if PLACEHOLDER.search(ref) or path == THIS:
                continue
            parent = str(Path(ref).parent)
            if parent not in TRACKED_DIRS:
                continue  # a folder the repository does not hold (user data, run outputs)
            if not _exists(ref):
                found.append(f"{path}:{n}: mentions {ref}, which does not exist")
    return found


def test_the_scan_sees_the_project():
    assert "README.md" in TRACKED_SET and "clml_lib" in TOP and len(FILES) > 20


@pytest.mark.parametrize(
    "line, bad",
    [
        ("see paper.md 2.3", True),
        ("see `docs/method.md` §2.3", False),
        ("(.notes/TRAIN_CONTRACT.md)", True),
        ("cp ../shared/spec/x .", True),
        ("the clml_lib/losses/no_such_module.py file", True),
        ("the clml_lib/losses/nuclear.py file", False),
        ("data/coco/coco_train_0.4left.txt", False),
        ("notebooks/solutions/chNN.py", False),
        ("python -m clml_lib.reproduce --grid params/grids/NAME.yaml", False),
        ("see params/no_such_preset.yaml", True),
    ],
)
def test_the_patterns(line, bad, tmp_path):
    hits = bool(OUTSIDE.search(line))
    for m in PATH_REF.finditer(line):
        ref = m.group(1)
        if (
            not PLACEHOLDER.search(ref)
            and str(Path(ref).parent) in TRACKED_DIRS
            and not _exists(ref)
        ):
            hits = True
    assert hits == bad, line


@pytest.mark.parametrize("path", FILES)
def test_no_reference_to_a_missing_file(path):
    found = _findings(path)
    assert not found, "\n".join(found)
