"""Build the clml book: ``python book/build.py`` (``bash scripts/book.sh`` calls it).

Stages the repository's own layout into ``runs/book_src/`` and runs Sphinx (MyST-NB, the
sphinx-book-theme) on it into ``runs/book/``. Nothing is executed and nothing is fetched:

* ``index.md``: the README, with the site's table of contents appended (hidden toctrees);
* ``notebooks/NN_*.ipynb`` in reading order (by number), then ``notebooks/reproduce.ipynb``,
  then any other notebook under ``notebooks/`` (e.g. solutions), all with their committed outputs;
* ``results``: ``docs/results/*.md`` when the main job has written them, else a page saying how
  to produce them (``book/pages/results_missing.md``);
* every ``docs/*.md`` (method notes), by glob; Markdown under ``notebooks/`` (exercise
  solutions) next to the non-chapter notebooks; the other Markdown files of the repository;
* ``api/``: one page per top-level module or package of ``clml_lib`` (found on disk, so new
  modules appear), each submodule by ``automodule``;
* ``run_times.md`` / ``run_times.json``: how long each notebook runs, read from the
  ``**Runs in** ...`` sentence of its introduction (the one place that fact is written);
* any repository file that a staged page links to (e.g. ``../clml_lib/losses/nuclear.py``), so
  that the link resolves in the site (as a download).

Errors: ``BookError`` for a missing notebook folder or a README without a title.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "book"

CHAPTER = re.compile(r"^\d\d_.+\.ipynb$")
LINK = re.compile(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
SKIP_DIRS = {".git", ".venv", "runs", "book", "node_modules", "__pycache__", "build", "dist"}


class BookError(RuntimeError):
    """The repository is not in a state the book can be built from."""


# --------------------------------------------------------------------------------------------
# what goes in, in which order
# --------------------------------------------------------------------------------------------


def chapters(root: Path = ROOT) -> list[Path]:
    """The notebooks in reading order: ``NN_*.ipynb`` by number, then ``reproduce.ipynb``.

    Raises:
        BookError: no ``notebooks/`` folder or no numbered chapter in it.
    """
    nb_dir = root / "notebooks"
    if not nb_dir.is_dir():
        raise BookError(f"{nb_dir}: no notebooks folder")
    numbered = sorted(p for p in nb_dir.glob("*.ipynb") if CHAPTER.match(p.name))
    if not numbered:
        raise BookError(f"{nb_dir}: no numbered chapter (NN_name.ipynb)")
    extra = [nb_dir / "reproduce.ipynb"] if (nb_dir / "reproduce.ipynb").is_file() else []
    return numbered + extra


def other_notebooks(root: Path = ROOT) -> list[Path]:
    """Notebooks under ``notebooks/`` that are not chapters (e.g. ``notebooks/solutions/``)."""
    main = set(chapters(root))
    return sorted(
        p for p in (root / "notebooks").rglob("*.ipynb")
        if p not in main and ".ipynb_checkpoints" not in p.parts
    )


def markdown_files(root: Path = ROOT) -> list[Path]:
    """Every Markdown file of the repository outside build, cache and environment folders."""
    out = []
    for folder, dirs, files in os.walk(root):
        rel = Path(folder).relative_to(root)
        dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.startswith(".")
                         and (rel / d).as_posix() != "data/cache")
        out += [Path(folder) / f for f in files if f.endswith(".md")]
    return sorted(out)


def library_modules(root: Path = ROOT) -> dict[str, list[str]]:
    """Top-level entries of ``clml_lib`` -> the dotted modules documented on their page.

    A package's page documents the package itself and each of its public modules (private
    ``_name`` modules and ``__main__`` excluded: importing the latter runs the command line).
    """
    lib = root / "clml_lib"
    pages: dict[str, list[str]] = {}
    for p in sorted(lib.iterdir()):
        if p.is_file() and p.suffix == ".py" and not p.stem.startswith("_"):
            pages[f"clml_lib.{p.stem}"] = [f"clml_lib.{p.stem}"]
        elif p.is_dir() and (p / "__init__.py").is_file():
            name = f"clml_lib.{p.name}"
            mods = [name]
            for q in sorted(p.rglob("*.py")):
                if any(part.startswith("_") for part in q.relative_to(p).with_suffix("").parts):
                    continue
                mods.append(".".join(("clml_lib",) + q.relative_to(lib).with_suffix("").parts))
            pages[name] = mods
    return pages


# --------------------------------------------------------------------------------------------
# run times, as each notebook states them
# --------------------------------------------------------------------------------------------

RUNS_IN = re.compile(r"\*\*Runs in\*\*\s*(.+?)(?:\n\s*\n|\Z)", re.S)


def run_time(path: Path) -> dict:
    """The run time a notebook states in its introduction (``**Runs in** ...``), and its cells.

    The notebook's own sentence is the one place this fact lives: its authors measure it when
    they execute the notebook. (Jupyter's per-cell timestamps are not used: the execution
    script does not record them, and the ones left in older cells are stale.)
    ``stated`` is None when the notebook has no such sentence.
    """
    nb = json.loads(path.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    stated = None
    for cell in nb["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        m = RUNS_IN.search("".join(cell["source"]))
        if m:
            stated = " ".join(m.group(1).split())
            break
    return {"stated": stated, "cells": len(code)}


def _title(path: Path) -> str:
    """First Markdown heading of a notebook or Markdown file (fallback: the file name)."""
    if path.suffix == ".ipynb":
        nb = json.loads(path.read_text(encoding="utf-8"))
        text = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    else:
        text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem


def run_times_page(notebooks: list[Path], times: dict) -> str:
    lines = [
        "# Run times of the notebooks",
        "",
        "How long each notebook takes to run, as its introduction states it (its authors measure",
        "it when they execute the notebook; the project's notebooks are executed on 2 CPU cores).",
        "",
        "| notebook | code cells | runs in |",
        "|---|---|---|",
    ]
    for nb in notebooks:
        t = times[_doc(nb, ROOT)]
        lines.append(f"| [{nb.stem}]({nb.relative_to(ROOT).as_posix()}) | {t['cells']} | "
                     f"{t['stated'] or 'not stated in the notebook'} |")
    return "\n".join(lines + [""])


# --------------------------------------------------------------------------------------------
# staging
# --------------------------------------------------------------------------------------------


def _toctree(caption: str, docs: list[str]) -> str:
    if not docs:
        return ""
    body = "\n".join(docs)
    return f"\n```{{toctree}}\n:hidden:\n:caption: {caption}\n:maxdepth: 1\n\n{body}\n```\n"


def _doc(path: Path, base: Path) -> str:
    return path.relative_to(base).with_suffix("").as_posix()


def _api_page(name: str, modules: list[str]) -> str:
    title = f"``{name}``"
    out = [title, "=" * len(title), "", f".. automodule:: {modules[0]}", "   :no-members:", ""]
    if len(modules) == 1:
        out[4] = "   :members:"
    for mod in modules[1:]:
        sub = f"``{mod}``"
        out += [sub, "-" * len(sub), "", f".. automodule:: {mod}", "   :members:", ""]
    return "\n".join(out)


def _copy_linked_files(pages: list[Path], src: Path) -> None:
    """Copy into the staged tree every repository file that a staged page links to."""
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for target in LINK.findall(text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            rel = target.split("#")[0]
            if not rel:
                continue
            staged = (page.parent / rel).resolve()
            try:
                in_repo = ROOT / staged.relative_to(src.resolve())
            except ValueError:
                continue
            if not staged.exists() and in_repo.is_file():
                staged.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(in_repo, staged)


def stage(src: Path) -> dict:
    """Lay out the Sphinx source tree in ``src``; returns the run times per notebook docname."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    readme = ROOT / "README.md"
    if not readme.is_file() or not readme.read_text(encoding="utf-8").startswith("# "):
        raise BookError(f"{readme}: missing, or its first line is not a '# title'")

    course = chapters()
    extra_nbs = other_notebooks()
    for nb in course + extra_nbs:
        dst = src / nb.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(nb, dst)

    md = [p for p in markdown_files() if p != readme]
    for p in md:
        dst = src / p.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dst)
    # images and other assets next to the notes (e.g. docs/results/teaching.png)
    docs_dir = ROOT / "docs"
    if docs_dir.is_dir():
        for p in docs_dir.rglob("*"):
            if p.is_file() and p.suffix != ".md":
                dst = src / p.relative_to(ROOT)
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dst)

    results = [p for p in md if p.relative_to(ROOT).parts[:2] == ("docs", "results")]
    notes = [p for p in md if p.relative_to(ROOT).parts[0] == "docs" and p not in results]
    exercises = [p for p in md if p.relative_to(ROOT).parts[0] == "notebooks"]
    exercises.sort(key=lambda p: (p.name != "README.md", p.relative_to(ROOT).as_posix()))
    repo_notes = [p for p in md if p not in results + notes + exercises]
    result_docs = [_doc(p, ROOT) for p in results]
    if not result_docs:
        shutil.copyfile(BOOK / "pages" / "results_missing.md", src / "results.md")
        result_docs = ["results"]

    times = {_doc(nb, ROOT): run_time(nb) | {"path": nb.relative_to(ROOT).as_posix()}
             for nb in course + extra_nbs}
    (src / "run_times.json").write_text(json.dumps(times, indent=1))
    (src / "run_times.md").write_text(run_times_page(course + extra_nbs, times))

    api = src / "api"
    api.mkdir()
    pages = library_modules()
    for name, mods in pages.items():
        (api / f"{name}.rst").write_text(_api_page(name, mods))
    (api / "index.md").write_text(
        "# API reference\n\nGenerated from the docstrings of `clml_lib`; each page links to the "
        "highlighted source (`[source]`).\n\n"
        + "\n".join(f"* [`{n}`]({n}.rst)" for n in pages)
        + "\n" + _toctree("API", list(pages)).replace(":hidden:\n", "")
    )

    index = readme.read_text(encoding="utf-8").rstrip() + "\n"
    index += _toctree("Course", [_doc(nb, ROOT) for nb in course])
    index += _toctree("Results", result_docs + ["run_times"])
    index += _toctree("Exercises and solutions",
                      [_doc(p, ROOT) for p in exercises] + [_doc(nb, ROOT) for nb in extra_nbs])
    index += _toctree("Method notes", [_doc(p, ROOT) for p in notes])
    index += _toctree("Repository notes", [_doc(p, ROOT) for p in repo_notes])
    index += _toctree("Library", ["api/index"])
    (src / "index.md").write_text(index, encoding="utf-8")

    _copy_linked_files(list(src.rglob("*.md")) + list(src.rglob("*.ipynb")), src)
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(ROOT / "runs" / "book"), help="site folder")
    ap.add_argument("--jobs", default="1", help="Sphinx -j (parallel readers)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    src = out.parent / "book_src"
    doctrees = out.parent / "book_doctrees"
    t0 = time.perf_counter()
    stage(src)
    for d in (out, doctrees):
        if d.exists():
            shutil.rmtree(d)
    log = out.parent / "book_build.log"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-c", str(BOOK), "-d", str(doctrees),
           "-j", args.jobs, "-q", "-w", str(log), str(src), str(out)]
    proc = subprocess.run(cmd, cwd=ROOT)
    if proc.returncode != 0:
        print(f"[book] sphinx failed (exit {proc.returncode}); warnings in {log}", file=sys.stderr)
        return proc.returncode
    warnings = [w for w in log.read_text().splitlines() if "WARNING" in w or "ERROR" in w]
    print(f"[book] built {out}/index.html in {time.perf_counter() - t0:.1f} s, "
          f"{len(warnings)} warnings (in {log})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
