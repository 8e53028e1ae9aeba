"""The course as a static website (book/, scripts/book.sh), checked in a real headless browser.

The site is built from the committed executed notebooks (or a build newer than every input is
reused), then Debian's Chromium, driven by Selenium through Debian's chromedriver
(``SE_OFFLINE=true``: nothing is downloaded), opens every page from disk (``file://``) at a
1400-px window and checks: no SEVERE console message, MathJax finished and every ``.math``
element typeset without TeX error, no raw ``$$`` / ``\\(`` / ``\\[`` (or ``$...\\cmd...$``) left
in the rendered text, every image loaded (``naturalWidth > 0``) and no figure enlarged past its
pixels, every internal link pointing at an existing file and anchor, the sidebar listing the
chapters in reading order (and no solutions page), no element of the article wider than the
text column unless it sits in its own scroll box, no ``NBVAL`` text, no raw backtick in the prose,
every ``docs/... §n`` reference a link, no table column that is empty or "n/a" in every row, and
exactly one visible search box. Screenshots of the landing page, notebook 01 section 5, notebook
03 and the results page go to ``runs/book_screenshots/``.

Without Sphinx or the browser the tests fail in CI (``CI=true``) with the install commands, and
skip elsewhere with the same message.
"""

from __future__ import annotations

import html.parser
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "runs" / "book"
SHOTS = ROOT / "runs" / "book_screenshots"
sys.path.insert(0, str(ROOT / "book"))
sys.path.insert(0, str(ROOT / "book" / "_ext"))

import build as book_build  # noqa: E402  (book/build.py)
import run_times  # noqa: E402  (book/run_times.py)
from clml_book import _drop_empty_columns, docstring_to_rest  # noqa: E402  (book/_ext/)

CHAPTER_NB = re.compile(r"^\d\d_")
INSTALL_BOOK = "pip install -e '.[book]'  (sphinx, myst-nb, sphinx-book-theme, selenium, " \
    "django-static-mathjax)"
INSTALL_BROWSER = "bash scripts/install_browser.sh  (as root: apt-get update && apt-get install " \
    "-y chromium chromium-driver)"


def _missing(what: str) -> None:
    """Fail in CI (CI=true), skip elsewhere: never a silent skip in CI."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} (CI=true: required)")
    pytest.skip(what)


# --------------------------------------------------------------------------------------------
# pure-Python parts: the docstring rewriter, run times, reading order
# --------------------------------------------------------------------------------------------


def _rest_to_html(lines: list[str]) -> str:
    from docutils.core import publish_parts
    from docutils.parsers.rst import roles

    from docutils import nodes

    def math_role(name, rawtext, text, lineno, inliner, options=None, content=None):
        tex = rawtext.split("`", 1)[1].rsplit("`", 1)[0]  # as Sphinx's role: backslashes kept
        return [nodes.Text(f"MATH[{tex}]")], []

    roles.register_local_role("math", math_role)
    return publish_parts("\n".join(lines), writer="html",
                         settings_overrides={"report_level": 2, "halt_level": 2})["body"]


def test_docstring_math_becomes_rest_math():
    doc = [
        r"Loss $\mathcal L$ over $N$-th rows, ``$HOME`` untouched.",
        "",
        "$$",
        r"\lVert\mathbf A\rVert_* = \sum_r \sigma_r",
        "$$",
        "",
        r"One line: $$a+b$$, a difference $g_s = a -",
        r"b_s$ over two lines; errors name file:line.",
    ]
    out = docstring_to_rest(doc)
    assert out[0] == r"Loss :math:`\mathcal L` over :math:`N`-th rows, ``$HOME`` untouched."
    i = out.index(".. math::")
    assert out[i + 2] == r"   \lVert\mathbf A\rVert_* = \sum_r \sigma_r"
    assert out[-1] == ("One line: :math:`a+b`, a difference :math:`g_s = a - b_s` over two "
                       r"lines; errors name file\:line.")
    pytest.importorskip("docutils")
    html_body = _rest_to_html(out)
    assert r"MATH[\mathcal L]" in html_body and "MATH[N]" in html_body
    assert "MATH[g_s = a - b_s]" in html_body
    assert "$" not in html_body.replace("$HOME", "") and "<a " not in html_body


def test_docstring_pipe_table_becomes_list_table():
    doc = ["| loss | positives ($y=1$) |", "|---|---|", r"| BCE | $-\log p$ |"]
    out = docstring_to_rest(doc)
    assert out[:2] == [".. list-table::", "   :header-rows: 1"]
    assert r"   * - BCE" in out and r"     - :math:`-\log p`" in out
    html_body = _rest_to_html(out)
    assert "<table" in html_body and r"MATH[-\log p]" in html_body


def test_docstring_literal_over_two_lines_survives_napoleon():
    """A ````literal```` broken over two lines of a Returns: section stays one literal."""
    from sphinx.ext.napoleon import Config, GoogleDocstring

    doc = ["Returns:", '    ``{"python": [version, gauss], "numpy": {"keys": uint32',
           '    (624,)}}``.']
    rest = str(GoogleDocstring(docstring_to_rest(doc), Config(napoleon_use_rtype=True)))
    assert '``{"python": [version, gauss], "numpy": {"keys": uint32 (624,)}}``' in rest
    _rest_to_html(rest.splitlines())  # parses without a docutils error (halt_level=2)


def test_every_library_docstring_converts_without_dollars_left():
    """Each module's docstrings, converted, keep no $ outside ``literals`` and code examples."""
    import inspect

    for name, mods in book_build.library_modules().items():
        for mod in mods:
            module = __import__(mod, fromlist=["_"])
            for obj in [module] + [v for _, v in inspect.getmembers(module)
                                   if getattr(v, "__module__", None) == mod]:
                doc = inspect.getdoc(obj) or ""
                for line in docstring_to_rest(doc.splitlines()):
                    bare = re.sub(r"``.*?``|:math:`.*?`", "", line)
                    assert "$" not in bare or bare.lstrip().startswith((">>>", "$ ")), (
                        f"{mod}: docstring of {getattr(obj, '__qualname__', mod)} keeps a raw $ "
                        f"after conversion: {line!r}")


def _notebook(path: Path, intro: str = "") -> None:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# 07 · A title\n\n" + intro]},
             {"cell_type": "code", "execution_count": 1, "outputs": [], "source": ["1"],
              "metadata": {}}]
    nb = {"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb))


#: fixture notebooks made under tmp_path (not files of the repository)
NB = "notebooks/"


def test_run_times_record_load_describe(tmp_path):
    path = tmp_path / "run_times.json"
    assert run_times.load(path) == {}
    entry = run_times.record(NB + "07_x.ipynb", 97, path)
    assert entry["seconds"] == 97 and entry["cpus"] >= 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["executed_at"])
    run_times.record(NB + "00_a.ipynb", 5, path)
    data = run_times.load(path)
    assert list(data) == [NB + "00_a.ipynb", NB + "07_x.ipynb"]  # sorted, both kept
    assert run_times.describe(data[NB + "07_x.ipynb"]).startswith("1 min 37 s (")
    assert run_times.describe(data[NB + "00_a.ipynb"]).startswith("5 s (")
    assert run_times.describe(None) == "not measured yet"
    with pytest.raises(run_times.RunTimesError, match="notebooks/\\*.ipynb"):
        run_times.record("docs/x.md", 3, path)
    with pytest.raises(run_times.RunTimesError, match=">= 0"):
        run_times.record(NB + "00_a.ipynb", -1, path)
    path.write_text('{"' + NB + 'a.ipynb": {"seconds": "3"}}')
    with pytest.raises(run_times.RunTimesError, match=NB + "a.ipynb"):
        run_times.load(path)
    path.write_text("{not json")
    with pytest.raises(run_times.RunTimesError, match=":1: not JSON"):
        run_times.load(path)


def test_run_times_page_shows_the_measured_times(tmp_path):
    nbs = tmp_path / "notebooks"
    nbs.mkdir()
    for name in ("00_a", "01_b"):
        _notebook(nbs / f"{name}.ipynb")
    measured = {NB + "00_a.ipynb": {"seconds": 125, "executed_at": "2026-12-04T10:00:00Z",
                                         "cpus": 2, "cpu": "x"}}
    times = {}
    for nb in book_build.chapters(tmp_path):
        times[nb.relative_to(tmp_path).with_suffix("").as_posix()] = book_build.run_time(
            nb, measured, tmp_path)
    assert times["notebooks/00_a"]["seconds"] == 125
    assert times["notebooks/01_b"] == {"path": NB + "01_b.ipynb", "cells": 1,
                                       "seconds": None, "measured": "not measured yet"}
    old_root = book_build.ROOT
    book_build.ROOT = tmp_path
    try:
        page = book_build.run_times_page(book_build.chapters(tmp_path), times)
    finally:
        book_build.ROOT = old_root
    assert "| [00_a](" + NB + "00_a.ipynb) | 1 | 2 min 05 s (2 CPUs, 2026-12-04) |" in page
    assert "| [01_b](" + NB + "01_b.ipynb) | 1 | not measured yet |" in page
    assert "Not measured yet: 01_b.ipynb." in page


def test_repository_url_from_git_remote(tmp_path):
    assert book_build.repository_url(tmp_path) == ""  # not a git checkout: no address
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert book_build.repository_url(tmp_path) == ""  # no origin: no address
    for remote, shown in [("https://user:secret@example.org/team/clml.git",
                           "https://example.org/team/clml"),
                          ("git@example.org:team/clml.git", "https://example.org/team/clml")]:
        subprocess.run(["git", "-C", str(tmp_path), "remote", "remove", "origin"],
                       capture_output=True)
        subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin", remote],
                       check=True)
        assert book_build.repository_url(tmp_path) == shown
    assert "REPOSITORY_ADDRESS" in book_build.get_the_code("")
    block = book_build.get_the_code("https://example.org/team/clml")
    assert "git clone https://example.org/team/clml.git clml" in block
    assert "bash scripts/lab.sh" in block


def test_solutions_page_folds_each_exercise_with_its_code(tmp_path):
    (tmp_path / "clml_lib" / "exercises").mkdir(parents=True)
    (tmp_path / "clml_lib" / "exercises" / "ch07.py").write_text(
        'def check_alpha(answer):\n    """Exercise 07.1. Alpha."""\n\n\n'
        'def check_beta(answer):\n    """Exercise 07.2. Beta."""\n')
    sol = tmp_path / "notebooks" / "solutions"
    sol.mkdir(parents=True)
    (sol / "ch07.py").write_text("def _helper():\n    return 1\n\n\n"
                                 "def solve_alpha():\n    return _helper()\n\n\n"
                                 "def solve_beta():\n    return 2\n")
    (sol / "ch07.md").write_text("# Notebook 07: written solutions\n\n## Exercise 07.1\n\n"
                                 "Because $x$.\n")
    assert book_build.exercise_functions("07", tmp_path) == {"07.1": "alpha", "07.2": "beta"}
    page = book_build.solutions_page(sol / "ch07.md", tmp_path)
    assert page.startswith("---\norphan: true\n---\n")
    one = page[page.index("## Exercise 07.1"):page.index("## Exercise 07.2")]
    assert "::::{clml-toggle} Show the solution" in one and "Because $x$." in one
    assert "def solve_alpha():\n    return _helper()" in one
    two = page[page.index("## Exercise 07.2"):page.index("## The whole file")]
    assert "def solve_beta():" in two  # no written section: the code alone, folded
    assert "def _helper()" in page[page.index("## The whole file"):]


def test_empty_and_na_columns_are_left_out():
    from docutils.core import publish_doctree

    rst = """
+------+-------+-----------------------+------+
| name | value | paper                 | note |
+======+=======+=======================+======+
| a    | 1     | n/a (not in the paper)|      |
+------+-------+-----------------------+------+
| b    | 2     | n/a (not in the paper)|      |
+------+-------+-----------------------+------+
"""
    from docutils import nodes

    tree = publish_doctree(rst, settings_overrides={"report_level": 5})
    _drop_empty_columns(tree)
    table = next(iter(tree.findall(nodes.table)))
    head = [e.astext() for e in next(iter(table.findall(nodes.thead))).findall(nodes.entry)]
    assert head == ["name", "value"]
    note = [p.astext() for p in tree.findall(nodes.paragraph) if "clml-dropped-columns"
            in p["classes"]]
    assert note == ["Left out of this table: “paper” (“n/a (not in the paper)” in every row); "
                    "“note” (empty in every row)."]


def test_chapters_in_reading_order(tmp_path):
    nbs = tmp_path / "notebooks"
    (nbs / "solutions").mkdir(parents=True)
    for name in ["reproduce", "10_late", "02_b", "00_a", "solutions/00_a_solutions"]:
        _notebook(nbs / f"{name}.ipynb")
    assert [p.stem for p in book_build.chapters(tmp_path)] == ["00_a", "02_b", "10_late",
                                                               "reproduce"]
    assert [p.stem for p in book_build.other_notebooks(tmp_path)] == ["00_a_solutions"]
    with pytest.raises(book_build.BookError, match="no notebooks folder"):
        book_build.chapters(tmp_path / "nowhere")


# --------------------------------------------------------------------------------------------
# the built site
# --------------------------------------------------------------------------------------------


def _inputs() -> list[Path]:
    files = book_build.chapters() + book_build.other_notebooks() + book_build.markdown_files()
    files += list((ROOT / "clml_lib").rglob("*.py")) + [
        p for p in (ROOT / "book").rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    files += [p for p in (ROOT / "docs").rglob("*") if p.is_file()] if (ROOT / "docs").is_dir() \
        else []
    return files


@pytest.fixture(scope="module")
def site() -> Path:
    for mod in ("sphinx", "myst_nb", "sphinx_book_theme", "mathjax"):
        if importlib.util.find_spec(mod) is None:
            _missing(f"the book needs {mod}: {INSTALL_BOOK}")
    index = SITE / "index.html"
    fresh = index.is_file() and index.stat().st_mtime > max(p.stat().st_mtime for p in _inputs())
    if not fresh:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, str(ROOT / "book" / "build.py")], cwd=ROOT,
                              capture_output=True, text=True)
        assert proc.returncode == 0, f"book build failed:\n{proc.stdout}\n{proc.stderr}"
        seconds = time.perf_counter() - t0
        print(f"[book] built in {seconds:.1f} s")
    assert index.is_file(), f"{index} not written"
    return SITE


def test_build_has_no_warnings(site):
    """Sphinx warnings are defects a reader meets (a docstring's literal block lost, a type name
    linked to the wrong class of two), so the build must report none."""
    log = site.parent / "book_build.log"
    assert log.is_file(), f"{log} missing: book/build.py writes Sphinx's warnings there"
    found = [w for w in log.read_text().splitlines() if "WARNING" in w or "ERROR" in w]
    assert not found, f"{len(found)} Sphinx warnings in {log}:\n" + "\n".join(found[:20])


def _pages(site: Path) -> list[Path]:
    return sorted(p for p in site.rglob("*.html")
                  if not {"_static", "_sources", "_images"}.intersection(p.relative_to(site).parts))


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("id", "name") and v:
                self.ids.add(v)


def _ids(path: Path, cache: dict) -> set[str]:
    if path not in cache:
        parser = _Ids()
        parser.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = parser.ids
    return cache[path]


def test_site_needs_no_network(site):
    """No page or stylesheet loads anything from a remote host (fonts, math, scripts)."""
    remote = re.compile(r"""(?:src|href)\s*=\s*["'](?:https?:)?//|@import\s+url\(\s*["']?https?:|"""
                        r"""url\(\s*["']?https?://""")
    bad = []
    for p in _pages(site) + list((site / "_static").rglob("*.css")):
        text = p.read_text(encoding="utf-8", errors="replace")
        for m in remote.finditer(text):
            # plain hyperlinks to the outside (<a href="https://...">) are allowed: not loaded
            start = text.rfind("<", 0, m.start())
            if p.suffix == ".html" and text[start:start + 2].lower() == "<a":
                continue
            bad.append(f"{p.relative_to(site)}: {text[max(0, m.start() - 40):m.end() + 40]!r}")
    assert not bad, "pages load remote resources:\n" + "\n".join(bad[:20])


def test_chapter_pages_say_how_to_run(site):
    """Each numbered chapter: lab.sh and its path, the download, its measured run time."""
    measured = run_times.load()
    for nb in book_build.chapters():
        page = site / nb.relative_to(ROOT).with_suffix(".html")
        html_text = page.read_text(encoding="utf-8")
        assert "clml-chapter-note" in html_text, f"{page}: no 'run this chapter' note"
        text = " ".join(re.sub(r"<[^>]+>", " ", html_text).split())
        assert "bash scripts/lab.sh" in text and nb.relative_to(ROOT).as_posix() in text, page
        assert (page.parent / nb.name).is_file(), f"{page}: notebook download missing"
        entry = measured.get(nb.relative_to(ROOT).as_posix())
        assert f"Measured run time: {run_times.describe(entry)}" in text, page


def test_landing_page_gets_the_code(site):
    html_text = (site / "index.html").read_text(encoding="utf-8")
    assert 'id="get-the-code-and-run-it"' in html_text
    text = " ".join(re.sub(r"<[^>]+>", " ", html_text).split())
    url = book_build.repository_url()
    if url:
        assert f'href="{url}"' in html_text and f"git clone {url}" in text
    else:  # no origin remote: says so, invents no address
        assert "without an origin remote" in text
        assert "git clone REPOSITORY_ADDRESS clml" in text
    assert "bash scripts/lab.sh" in text


def test_solutions_are_folded_with_their_code(site):
    pages = sorted((site / "notebooks" / "solutions").glob("ch*.html"))
    assert pages, "no solutions page"
    for page in pages:
        html_text = page.read_text(encoding="utf-8")
        folds = re.findall(r"<details class=\"clml-toggle\"[^>]*>", html_text)
        assert folds and all(" open" not in f for f in folds), f"{page}: no closed toggle"
        chapter = page.stem[2:]
        for number, name in book_build.exercise_functions(chapter).items():
            i = html_text.find(f"Exercise {number}")
            assert i >= 0, f"{page}: exercise {number} missing"
            assert f"solve_{name}" in html_text[i:], f"{page}: code of {number} missing"


# --------------------------------------------------------------------------------------------
# the browser
# --------------------------------------------------------------------------------------------

_TEXT_JS = r"""
const clone = document.body.cloneNode(true);
clone.querySelectorAll('pre, code, script, style, mjx-container, textarea, .highlight')
     .forEach(e => e.remove());
return clone.textContent;
"""

_MATH_JS = r"""
const done = arguments[arguments.length - 1];
if (!window.MathJax || !MathJax.startup || !MathJax.startup.promise) {
    done({ok: false, why: 'MathJax not loaded'}); return;
}
MathJax.startup.promise.then(() => {
    const math = Array.from(document.querySelectorAll('.math'));
    const untyped = math.filter(e => !e.querySelector('mjx-container'))
                        .map(e => e.textContent.slice(0, 80));
    const errors = Array.from(document.querySelectorAll('[data-mjx-error], mjx-merror'))
                        .map(e => e.getAttribute('data-mjx-error') || e.textContent);
    done({ok: true, math: math.length,
          containers: document.querySelectorAll('mjx-container').length,
          untyped: untyped, errors: errors});
}).catch(e => done({ok: false, why: String(e)}));
"""

_IMAGES_JS = r"""
const done = arguments[arguments.length - 1];
const imgs = Array.from(document.images);
imgs.forEach(i => { i.loading = 'eager'; });
const t0 = Date.now();
(function poll() {
    const pending = imgs.filter(i => !i.complete);
    if (pending.length && Date.now() - t0 < 10000) { setTimeout(poll, 50); return; }
    done(imgs.filter(i => !(i.complete && i.naturalWidth > 0))
             .map(i => i.getAttribute('src')));
})();
"""

_LINKS_JS = "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);"

_LAYOUT_JS = r"""
const art = document.querySelector('article.bd-article, .bd-search-container');
if (!art) return {ok: false, why: 'no article.bd-article (nor search container)'};
const cs = getComputedStyle(art), ar = art.getBoundingClientRect();
const left = ar.left + parseFloat(cs.paddingLeft) - 1;
const right = ar.right - parseFloat(cs.paddingRight) + 1;
const cls = e => typeof e.className === 'string' && e.className
    ? '.' + e.className.trim().split(/\s+/).join('.') : '';
const name = e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + cls(e);
const scrolls = e => ['auto', 'scroll', 'hidden', 'clip'].includes(getComputedStyle(e).overflowX);
const inside = r => r.left >= left && r.right <= right;
const wide = [];
for (const e of art.querySelectorAll('*')) {
    const r = e.getBoundingClientRect();
    if (r.width === 0 || r.height === 0 || inside(r)) continue;
    if (e.closest('mjx-assistive-mml')) continue;  // MathJax's clipped copy for screen readers
    let box = e.parentElement, boxed = false;
    while (box && box !== art) {
        if (scrolls(box) && inside(box.getBoundingClientRect())) { boxed = true; break; }
        box = box.parentElement;
    }
    if (!boxed) wide.push(`${name(e)} [${Math.round(r.left)}, ${Math.round(r.right)}] `
                          + `column [${Math.round(left)}, ${Math.round(right)}]: `
                          + (e.textContent || '').trim().slice(0, 60));
}
const all = art.textContent;
const prose = art.cloneNode(true);
prose.querySelectorAll('pre, code, script, style, mjx-container, textarea, .highlight, dt.sig')
     .forEach(e => e.remove());  // (a signature shows values of constants, quotes and all)
const unlinked = art.cloneNode(true);
unlinked.querySelectorAll('a, pre, script, style, mjx-container, .highlight')
        .forEach(e => e.remove());
const visible = e => e.offsetParent !== null && e.getBoundingClientRect().width > 0
    && getComputedStyle(e).visibility !== 'hidden';
const search = Array.from(document.querySelectorAll(
    '.search-button-field, .search-button, input[type=search], form.bd-search, form[role=search]'))
    .filter(visible);
const searchBoxes = search.filter(e => !search.some(o => o !== e && o.contains(e))).map(name);
const tables = [];
for (const table of art.querySelectorAll('table:has(thead)')) {  // data tables
    const rows = Array.from(table.querySelectorAll('tbody tr')).map(
        tr => Array.from(tr.children).map(td => td.textContent.trim()));
    if (!rows.length) continue;
    const n = Math.max(...rows.map(r => r.length));
    for (let j = 0; j < n; j++) {
        if (rows.every(r => r.length === n && (r[j] === '' || /^n\/a/i.test(r[j])))) {
            const th = table.querySelectorAll('thead th')[j];
            tables.push(th ? th.textContent.trim() : `column ${j + 1}`);
        }
    }
}
const figures = Array.from(art.querySelectorAll('.cell_output img'))
    .filter(i => i.complete && i.naturalWidth > 0 && i.clientWidth > i.naturalWidth + 1)
    .map(i => `${i.getAttribute('src')}: ${i.naturalWidth} px shown at ${i.clientWidth}`);
return {ok: true, wide: wide, nbval: (all.match(/.{0,40}NBVAL.{0,40}/) || [null])[0],
        backtick: (prose.textContent.match(/.{0,60}`.{0,60}/) || [null])[0],
        unlinked: (unlinked.textContent.match(
            /.{0,40}\b(?:docs|notebooks)\/[\w.\/-]+\.(?:md|ipynb)\s*§\s?\d.{0,20}/) || [null])[0],
        search: searchBoxes, na_columns: tables, enlarged: figures,
        column: [left, right]};
"""

_TOC_JS = r"""
return Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference.internal'))
            .map(a => a.href);
"""

_SCROLL_TO = "const e = document.querySelector({!r}); if (e) e.scrollIntoView({{block: 'start'}});"
#: screenshots at a 1400-px window: name -> (page, script that scrolls to the part shown)
SCREENSHOTS = {
    "landing.png": ("index.html", ""),
    "notebook_01_section_5.png": (
        "notebooks/01_false_negative_mining.html",
        "const h = Array.from(document.querySelectorAll('h2'))"
        "                .find(e => e.textContent.trim().startsWith('5.'));"
        "if (h) h.scrollIntoView({block: 'start'});"),
    "notebook_03.png": ("notebooks/03_low_rank_terms.html", ""),
    "notebook_03_figure.png": ("notebooks/03_low_rank_terms.html",
                               _SCROLL_TO.format(".cell_output img")),
    "results.png": ("docs/results/teaching.html", ""),
    "results_tables.png": ("docs/results/teaching.html", _SCROLL_TO.format("table")),
}

RAW_MATH = [
    (re.compile(r"\$\$"), "$$"),
    (re.compile(r"\\\("), r"\("),
    (re.compile(r"\\\["), r"\["),
    (re.compile(r"\$[^$\n]{0,200}?\\[A-Za-z]+[^$\n]{0,200}?\$"), r"$...\command...$"),
]


@pytest.fixture(scope="module")
def crawl(site):
    """Open every page once in headless Chromium; returns {page: findings} and the TOCs."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_bin = shutil.which("chromedriver")
    if not chromium or not driver_bin:
        _missing(f"headless Chromium and chromedriver not found: {INSTALL_BROWSER}")
    if importlib.util.find_spec("selenium") is None:
        _missing(f"selenium not installed: {INSTALL_BOOK}")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="clml_book_chromium_")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 "--window-size=1400,1300", "--hide-scrollbars", f"--user-data-dir={profile}"):
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_bin), options=opts)
    driver.set_script_timeout(60)
    driver.set_page_load_timeout(60)
    SHOTS.mkdir(parents=True, exist_ok=True)
    found: dict[str, dict] = {}
    try:
        for page in _pages(site):
            rel = page.relative_to(site).as_posix()
            driver.get(page.as_uri())
            math = driver.execute_async_script(_MATH_JS)
            found[rel] = {
                "math": math,
                "text": driver.execute_script(_TEXT_JS),
                "broken_images": driver.execute_async_script(_IMAGES_JS),
                "links": driver.execute_script(_LINKS_JS),
                "toc": driver.execute_script(_TOC_JS),
                "console": [e for e in driver.get_log("browser") if e["level"] == "SEVERE"],
                "layout": driver.execute_script(_LAYOUT_JS),
            }
            for shot, (where, scroll) in SCREENSHOTS.items():
                if rel != where:
                    continue
                driver.execute_script("window.scrollTo(0, 0);" + scroll)
                time.sleep(0.3)
                driver.save_screenshot(str(SHOTS / shot))
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
    return found


def test_browser_no_console_errors(crawl):
    bad = [f"{p}: {e['message']}" for p, f in crawl.items() for e in f["console"]]
    assert not bad, "SEVERE console messages:\n" + "\n".join(bad)


def test_browser_every_equation_typeset(crawl):
    bad = []
    for p, f in crawl.items():
        m = f["math"]
        if not m["ok"]:
            bad.append(f"{p}: {m['why']}")
            continue
        if m["untyped"]:
            bad.append(f"{p}: {len(m['untyped'])} math elements not typeset, "
                       f"e.g. {m['untyped'][0]!r}")
        if m["errors"]:
            bad.append(f"{p}: TeX errors {m['errors'][:3]}")
        if m["math"] and not m["containers"]:
            bad.append(f"{p}: {m['math']} math elements, no mjx-container")
        for regex, what in RAW_MATH:
            hit = regex.search(f["text"])
            if hit:
                ctx = f["text"][max(0, hit.start() - 60):hit.end() + 60].replace("\n", " ")
                bad.append(f"{p}: raw {what} in the rendered text: ...{ctx}...")
    assert not bad, "\n".join(bad)
    # the chapters that derive things do have typeset math
    for nb in book_build.chapters():
        rel = nb.relative_to(ROOT).with_suffix(".html").as_posix()
        text = nb.read_text(encoding="utf-8")
        if "$" in text:
            assert crawl[rel]["math"]["containers"] > 0, \
                f"{rel}: math in the notebook, none typeset"


def test_browser_every_image_loads(crawl):
    bad = [f"{p}: {src}" for p, f in crawl.items() for src in f["broken_images"]]
    assert not bad, "images that did not load (naturalWidth 0):\n" + "\n".join(bad)
    assert any(f["broken_images"] == [] and "notebooks/" in p for p, f in crawl.items())


def test_browser_every_internal_link_resolves(crawl, site):
    cache: dict = {}
    bad = []
    root = site.resolve()
    for p, f in crawl.items():
        for href in f["links"]:
            url = urllib.parse.urlsplit(href)
            if url.scheme in ("http", "https", "mailto"):
                continue
            if url.scheme != "file":
                bad.append(f"{p}: link with scheme {url.scheme!r}: {href}")
                continue
            target = Path(urllib.request.url2pathname(url.path)).resolve()
            if target.is_dir():
                target = target / "index.html"
            if not target.is_relative_to(root):
                bad.append(f"{p}: link leaves the site: {href}")
            elif not target.is_file():
                bad.append(f"{p}: link to a missing file: {href}")
            elif url.fragment and target.suffix == ".html":
                frag = urllib.parse.unquote(url.fragment)
                if frag not in _ids(target, cache):
                    bad.append(f"{p}: missing anchor #{frag} in {target.relative_to(root)}")
    assert not bad, f"{len(bad)} broken internal links:\n" + "\n".join(sorted(set(bad))[:40])


def test_browser_toc_lists_chapters_in_order(crawl, site):
    expected = [nb.relative_to(ROOT).with_suffix(".html").as_posix()
                for nb in book_build.chapters()]
    for page in ["index.html", expected[3]]:
        hrefs = [urllib.request.url2pathname(urllib.parse.urlsplit(h).path)
                 for h in crawl[page]["toc"]]
        listed = [Path(h).resolve().relative_to(site.resolve()).as_posix() for h in hrefs]
        chapters = [h for h in listed if h in expected]
        assert chapters == expected, f"{page}: sidebar lists {chapters}, expected {expected}"
        # course first, then results, notes, API
        assert listed.index(expected[-1]) < listed.index("run_times.html") \
            < listed.index("api/index.html"), f"{page}: sidebar sections out of order: {listed}"




def _layout(crawl) -> dict:
    bad = [f"{p}: {f['layout']['why']}" for p, f in crawl.items() if not f["layout"]["ok"]]
    assert not bad, "\n".join(bad)
    return {p: f["layout"] for p, f in crawl.items()}


def test_browser_nothing_wider_than_the_column(crawl):
    """At 1400 px, every element of the article fits the text column or sits in a scroll box."""
    bad = [f"{p}: {w}" for p, lay in _layout(crawl).items() for w in lay["wide"]]
    assert not bad, f"{len(bad)} elements run past the text column:\n" + "\n".join(bad[:30])


def test_browser_no_nbval_markers_or_raw_backticks(crawl):
    bad = []
    for p, lay in _layout(crawl).items():
        if lay["nbval"]:
            bad.append(f"{p}: NBVAL in the page: ...{lay['nbval']}...")
        if lay["backtick"]:
            bad.append(f"{p}: raw backtick in the prose: ...{lay['backtick']}...")
    assert not bad, "\n".join(bad)


def test_browser_section_references_are_links(crawl):
    bad = [f"{p}: ...{lay['unlinked']}..." for p, lay in _layout(crawl).items()
           if lay["unlinked"]]
    assert not bad, "'docs/... §n' references that are not links:\n" + "\n".join(bad)
    # and they do link: notebook 01 names docs/method.md §2.1 in a heading
    assert any("docs/method.html#" in h for h in
               crawl["notebooks/01_false_negative_mining.html"]["links"])


def test_browser_one_search_box(crawl):
    bad = [f"{p}: {lay['search']}" for p, lay in _layout(crawl).items()
           if len(lay["search"]) != 1]
    assert not bad, "pages without exactly one visible search box:\n" + "\n".join(bad)


def test_browser_tables_have_no_empty_columns(crawl):
    bad = [f"{p}: {lay['na_columns']}" for p, lay in _layout(crawl).items()
           if lay["na_columns"]]
    assert not bad, "table columns empty or n/a in every row:\n" + "\n".join(bad)


def test_browser_figures_not_enlarged(crawl):
    bad = [f"{p}: {e}" for p, lay in _layout(crawl).items() for e in lay["enlarged"]]
    assert not bad, "figures shown larger than their pixels (blurred):\n" + "\n".join(bad)


def test_browser_sidebar_lists_no_solutions_page(crawl):
    for page in ("index.html", "notebooks/01_false_negative_mining.html"):
        listed = [urllib.parse.urlsplit(h).path for h in crawl[page]["toc"]]
        assert not [h for h in listed if re.search(r"/solutions/ch\d+\.html$", h)], \
            f"{page}: the sidebar lists solution pages: {listed}"


def test_browser_screenshots_saved(crawl):
    for name in SCREENSHOTS:
        shot = SHOTS / name
        assert shot.is_file() and shot.stat().st_size > 10_000, f"{shot}: missing or empty"



def test_run_times_read_what_the_execution_script_writes(tmp_path):
    path = tmp_path / "run_times.json"
    path.write_text('{"00_overview": {"seconds": 30.8, "date": "2026-12-04T18:50:18Z", '
                    '"cpu": "x", "cores": 2, "threads": 1, "load_1min": 1.0}}')
    data = run_times.load(path)
    assert data["notebooks/00_overview.ipynb"]["seconds"] == 31
    assert run_times.describe(data["notebooks/00_overview.ipynb"]) == "31 s (2 CPUs, 2026-12-04)"
    assert run_times.load(ROOT / "notebooks" / "run_times.json")  # the committed file is read
