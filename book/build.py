"""Build the clml book: ``python book/build.py`` (``bash scripts/book.sh`` calls it).

Stages the repository's own layout into ``runs/book_src/`` and runs Sphinx (MyST-NB, the
sphinx-book-theme) on it into ``runs/book/``. Nothing is executed and nothing is fetched:

* ``index.md``: the README, with a "get the code and run it" section (the repository's address
  from ``git remote get-url origin``, never guessed) before its first ``##`` section and the
  site's table of contents appended (hidden toctrees);
* ``notebooks/NN_*.ipynb`` in reading order (by number), then ``notebooks/reproduce.ipynb``,
  then any other notebook under ``notebooks/``, all with their committed outputs;
* ``results``: ``docs/results/*.md`` when the main job has written them, else a page saying how
  to produce them (``book/pages/results_missing.md``);
* every ``docs/*.md`` (method notes), by glob; the other Markdown files of the repository;
* ``notebooks/solutions/``: its README is the one sidebar entry of the exercises; each
  ``chNN.md`` becomes a page (reached from the README and from chapter NN's note, not from the
  sidebar) where every exercise's written solution and its ``solve_<name>()`` code sit folded
  in a toggle (the checker ``check_<name>`` whose docstring starts "Exercise NN.k" pairs them);
* ``api/``: one page per top-level module or package of ``clml_lib`` (found on disk, so new
  modules appear), each submodule by ``automodule``;
* ``run_times.md`` / ``run_times.json``: how long each notebook took when
  ``scripts/execute_notebooks.sh`` last executed it (``notebooks/run_times.json``, see
  ``book/run_times.py``); "not measured yet" where it has no entry;
* any repository file that a staged page links to (e.g. ``../clml_lib/losses/nuclear.py``), so
  that the link resolves in the site (as a download).

Errors: ``BookError`` for a missing notebook folder or a README without a title.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run_times  # noqa: E402  (book/run_times.py)

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
# run times, as the execution script measured them
# --------------------------------------------------------------------------------------------


def run_time(path: Path, measured: dict | None = None, root: Path = ROOT) -> dict:
    """What the book says about a notebook's run: its repository path, code cells, measured time.

    ``measured`` is :func:`run_times.load`'s dict (read from ``notebooks/run_times.json`` when
    None); ``seconds`` is None for a notebook the execution script has not timed.
    """
    measured = run_times.load() if measured is None else measured
    nb = json.loads(path.read_text(encoding="utf-8"))
    rel = path.relative_to(root).as_posix()
    entry = measured.get(rel)
    return {"path": rel, "cells": sum(c["cell_type"] == "code" for c in nb["cells"]),
            "seconds": entry["seconds"] if entry else None,
            "measured": run_times.describe(entry)}


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
    """The run-times page: one row per notebook, its measured wall time or "not measured yet"."""
    entries = [times[_doc(nb, ROOT)] for nb in notebooks]
    lines = [
        "# Run times of the notebooks",
        "",
        "Wall time of each notebook, measured when `bash scripts/execute_notebooks.sh` last",
        "executed it (the script records every run in `notebooks/run_times.json`; the page is",
        "built from that file). The date and the number of CPUs of that run are given beside it.",
        "",
        "| notebook | code cells | measured run time |",
        "|---|---|---|",
    ]
    for nb, t in zip(notebooks, entries):
        lines.append(f"| [{nb.stem}]({t['path']}) | {t['cells']} | {t['measured']} |")
    done = [t["seconds"] for t in entries if t["seconds"] is not None]
    lines.append("")
    if done:
        total = sum(done)
        lines.append(f"All {len(done)} measured notebooks together: {total // 60} min "
                     f"{total % 60:02d} s.")
    missing = [nb.name for nb, t in zip(notebooks, entries) if t["seconds"] is None]
    if missing:
        lines.append("")
        lines.append(f"Not measured yet: {', '.join(missing)}. `bash scripts/execute_notebooks.sh "
                     "notebooks/NAME.ipynb` executes a notebook and records its time.")
    return "\n".join(lines + [""])


# --------------------------------------------------------------------------------------------
# the repository's address and the "get the code" block
# --------------------------------------------------------------------------------------------


def repository_url(root: Path = ROOT) -> str:
    """``git remote get-url origin`` of ``root`` as a browsable address, or "" without one.

    Credentials in the URL (``https://user:token@host/...``) are dropped; an SSH remote
    (``git@host:owner/name.git``) is given as ``https://host/owner/name``.
    """
    try:
        proc = subprocess.run(["git", "-C", str(root), "remote", "get-url", "origin"],
                              capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    url = proc.stdout.strip() if proc.returncode == 0 else ""
    if not url:
        return ""
    ssh = re.match(r"^(?:ssh://)?[\w.-]+@([\w.-]+)[:/](.+?)$", url)
    if ssh:
        url = f"https://{ssh.group(1)}/{ssh.group(2)}"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""  # a local path or file:// remote (a clone of a clone) is no address to publish
    url = urllib.parse.urlunsplit(parts._replace(netloc=parts.hostname
                                                 + (f":{parts.port}" if parts.port else "")))
    return url[:-4] if url.endswith(".git") else url


def get_the_code(url: str) -> str:
    """The landing page's "Get the code and run it" section (``book/pages/get_the_code.md``)."""
    template = (BOOK / "pages" / "get_the_code.md").read_text(encoding="utf-8")
    if url:
        where = f"The course lives in the Git repository <{url}>."
        clone = url + (".git" if url.startswith("http") else "")
    else:
        where = ("This copy of the site was built from a checkout without an `origin` remote, so "
                 "it cannot give the repository's address (the build reads "
                 "`git remote get-url origin`); use the address you got the site from.")
        clone = "REPOSITORY_ADDRESS"
    return template.replace("{where}", where).replace("{clone}", clone)


# --------------------------------------------------------------------------------------------
# the exercise solutions, folded
# --------------------------------------------------------------------------------------------

EXERCISE = re.compile(r"^Exercise (\d+\.\d+)\b")


def exercise_functions(chapter: str, root: Path = ROOT) -> dict[str, str]:
    """``{"01.2": "bce_minimiser", ...}``: exercise number -> ``<name>`` of its checker.

    Read (not imported) from ``clml_lib/exercises/ch<chapter>.py``: each ``check_<name>`` whose
    docstring starts with "Exercise NN.k". {} when the chapter has no checker module.
    """
    path = root / "clml_lib" / "exercises" / f"ch{chapter}.py"
    if not path.is_file():
        return {}
    out = {}
    for node in ast.parse(path.read_text(encoding="utf-8"), str(path)).body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("check_"):
            m = EXERCISE.match(ast.get_docstring(node) or "")
            if m:
                out[m.group(1)] = node.name[len("check_"):]
    return out


def _function_sources(path: Path) -> dict[str, str]:
    text = path.read_text(encoding="utf-8")
    return {n.name: ast.get_source_segment(text, n) for n in ast.parse(text, str(path)).body
            if isinstance(n, ast.FunctionDef)}


def solutions_page(md: Path, root: Path = ROOT) -> str:
    """The staged text of ``notebooks/solutions/chNN.md``: each exercise's solution folded.

    Every ``## Exercise NN.k`` section keeps its heading; its text and the source of the
    matching ``solve_<name>()`` (from ``chNN.py``) go into a ``clml-toggle`` (a closed
    ``<details>``). An exercise with a ``solve_`` function but no written section gets a
    section with the code alone. The whole ``chNN.py`` follows, folded too.
    """
    chapter = md.stem[2:]
    text = md.read_text(encoding="utf-8")
    code_file = md.with_suffix(".py")
    sources = _function_sources(code_file) if code_file.is_file() else {}
    names = exercise_functions(chapter, root)
    head, *sections = re.split(r"(?m)^## ", text)
    body_of = {}
    order = []
    for sec in sections:
        title, _, body = sec.partition("\n")
        m = re.match(r"Exercise (\d+\.\d+)", title)
        key = m.group(1) if m else title.strip()
        order.append(key)
        body_of[key] = (title.strip(), body.strip())
    for number in sorted(names):
        if number not in body_of:
            order.append(number)
            body_of[number] = (f"Exercise {number}", "")
    rel = code_file.relative_to(root).as_posix()
    out = ["---", "orphan: true", "---", "", head.strip(), "",
           "Every solution below is folded: try the exercise first, then open it. "
           f"Each holds the written solution and the code of its `solve_<name>()` in "
           f"[`{code_file.name}`]({code_file.name}), which `tests/test_solutions.py` runs "
           "through the notebook's checker.", ""]
    for key in order:
        title, body = body_of[key]
        name = names.get(key)
        code = sources.get(f"solve_{name}") if name else None
        out += [f"## {title}", "", "::::{clml-toggle} Show the solution", ""]
        if body:
            out += [body, ""]
        if code:
            out += [f"Code: `solve_{name}()` in `{rel}`:", "", "```python", code, "```", ""]
        out += ["::::", ""]
    if code_file.is_file():
        out += [f"## The whole file `{code_file.name}`", "",
                f"::::{{clml-toggle}} Show {rel} (helpers, every solve_ function and the "
                "typical wrong answers in WRONG)", "", "```python",
                code_file.read_text(encoding="utf-8").rstrip(), "```", "::::", ""]
    return "\n".join(out)


def solutions_index(readme: Path, pages: list[Path]) -> str:
    """The staged solutions README: its text, then a link to each chapter's solutions page."""
    lines = [readme.read_text(encoding="utf-8").rstrip(), "", "## Solutions by chapter", ""]
    lines += [f"* [{_title(p)}]({p.name})" for p in pages]
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


def _copy(files: list[Path], src: Path) -> None:
    """Copy repository files into the staged tree at the same relative paths."""
    for p in files:
        dst = src / p.relative_to(ROOT)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dst)


def stage(src: Path) -> dict:
    """Lay out the Sphinx source tree in ``src``; returns the run-time entries per docname."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    readme = ROOT / "README.md"
    if not readme.is_file() or not readme.read_text(encoding="utf-8").startswith("# "):
        raise BookError(f"{readme}: missing, or its first line is not a '# title'")

    course = chapters()
    extra_nbs = other_notebooks()
    md = [p for p in markdown_files() if p != readme]
    docs_dir = ROOT / "docs"
    # notebooks, Markdown pages, and the images and other assets next to the notes
    # (e.g. docs/results/teaching.png)
    assets = [p for p in docs_dir.rglob("*") if p.is_file() and p.suffix != ".md"] \
        if docs_dir.is_dir() else []
    _copy(course + extra_nbs + md + assets, src)

    results = [p for p in md if p.relative_to(ROOT).parts[:2] == ("docs", "results")]
    notes = [p for p in md if p.relative_to(ROOT).parts[0] == "docs" and p not in results]
    exercises = [p for p in md if p.relative_to(ROOT).parts[0] == "notebooks"]
    solutions_dir = ROOT / "notebooks" / "solutions"
    solution_pages = sorted(p for p in exercises
                            if p.parent == solutions_dir and re.fullmatch(r"ch\d+\.md", p.name))
    for p in solution_pages:
        (src / p.relative_to(ROOT)).write_text(solutions_page(p), encoding="utf-8")
    if (solutions_dir / "README.md").is_file():
        (src / "notebooks" / "solutions" / "README.md").write_text(
            solutions_index(solutions_dir / "README.md", solution_pages), encoding="utf-8")
    exercises = [p for p in exercises if p not in solution_pages]
    exercises.sort(key=lambda p: (p.name != "README.md", p.relative_to(ROOT).as_posix()))
    repo_notes = [p for p in md if p not in results + notes + exercises + solution_pages]
    result_docs = [_doc(p, ROOT) for p in results]
    if not result_docs:
        shutil.copyfile(BOOK / "pages" / "results_missing.md", src / "results.md")
        result_docs = ["results"]

    measured = run_times.load()
    times = {_doc(nb, ROOT): run_time(nb, measured) for nb in course + extra_nbs}
    for nb in course:  # chapter NN -> its folded solutions page, for the chapter's note
        sol = solutions_dir / f"ch{nb.name[:2]}.md"
        if CHAPTER.match(nb.name) and sol in solution_pages:
            times[_doc(nb, ROOT)]["solutions"] = _doc(sol, ROOT)
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

    text = readme.read_text(encoding="utf-8").rstrip() + "\n"
    first = re.search(r"(?m)^## ", text)
    block = get_the_code(repository_url()) + "\n"
    index = text[:first.start()] + block + "\n" + text[first.start():] if first else text + block
    index += _toctree("Course", [_doc(nb, ROOT) for nb in course])
    index += _toctree("Results", result_docs + ["run_times"])
    index += _toctree("Exercises", [_doc(p, ROOT) for p in exercises]
                      + [_doc(nb, ROOT) for nb in extra_nbs])
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
    env = dict(os.environ, CLML_REPOSITORY_URL=repository_url())
    proc = subprocess.run(cmd, cwd=ROOT, env=env)
    if proc.returncode != 0:
        print(f"[book] sphinx failed (exit {proc.returncode}); warnings in {log}", file=sys.stderr)
        return proc.returncode
    warnings = [w for w in log.read_text().splitlines() if "WARNING" in w or "ERROR" in w]
    print(f"[book] built {out}/index.html in {time.perf_counter() - t0:.1f} s, "
          f"{len(warnings)} warnings (in {log})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
