"""The course as a static website (book/, scripts/book.sh), checked in a real headless browser.

The site is built from the committed executed notebooks (or a build newer than every input is
reused), then Debian's Chromium, driven by Selenium through Debian's chromedriver
(``SE_OFFLINE=true``: nothing is downloaded), opens every page from disk (``file://``) and checks:
no SEVERE console message, MathJax finished and every ``.math`` element typeset without TeX
error, no raw ``$$`` / ``\\(`` / ``\\[`` (or ``$...\\cmd...$``) left in the rendered text, every
image loaded (``naturalWidth > 0``), every internal link pointing at an existing file and anchor,
and the sidebar listing the chapters in reading order. Screenshots of the landing page and of
notebook 03 go to ``runs/book_screenshots/``.

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
from clml_book import docstring_to_rest  # noqa: E402  (book/_ext/clml_book.py)

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


def test_run_time_is_the_sentence_the_notebook_states(tmp_path):
    nb = tmp_path / "07_x.ipynb"
    _notebook(nb, "Intro.\n\n**Runs in** about 20 s on 2 CPU\ncores; no training.\n\nNext.")
    assert book_build.run_time(nb) == {"stated": "about 20 s on 2 CPU cores; no training.",
                                       "cells": 1}
    _notebook(nb, "No statement.")
    assert book_build.run_time(nb)["stated"] is None


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
    """Each numbered chapter: how to open it in JupyterLab, the download, its stated run time."""
    for nb in book_build.chapters():
        page = site / nb.relative_to(ROOT).with_suffix(".html")
        html_text = page.read_text(encoding="utf-8")
        assert "clml-chapter-note" in html_text, f"{page}: no 'run this chapter' note"
        text = " ".join(re.sub(r"<[^>]+>", " ", html_text).split())
        assert f"jupyter lab {nb.relative_to(ROOT).as_posix()}" in text, page
        assert (page.parent / nb.name).is_file(), f"{page}: notebook download missing"
        if CHAPTER_NB.match(nb.name):
            stated = book_build.run_time(nb)["stated"]
            assert stated, f"{nb}: its introduction states no run time ('**Runs in** ...')"
            assert "Runs in " + " ".join(stated.split()[:4]) in text, f"{page}: run time missing"


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

_TOC_JS = r"""
return Array.from(document.querySelectorAll('nav.bd-docs-nav a.reference.internal'))
            .map(a => a.href);
"""

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
                 "--window-size=1400,2000", "--hide-scrollbars", f"--user-data-dir={profile}"):
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
            }
            if rel == "index.html":
                driver.save_screenshot(str(SHOTS / "landing.png"))
            if rel.startswith("notebooks/03_"):
                driver.save_screenshot(str(SHOTS / "notebook_03.png"))
                driver.execute_script(
                    "const i = document.querySelector('.cell_output img');"
                    "if (i) i.scrollIntoView({block: 'center'});")
                time.sleep(0.3)
                driver.save_screenshot(str(SHOTS / "notebook_03_figure.png"))
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


def test_browser_screenshots_saved(crawl):
    for name in ("landing.png", "notebook_03.png", "notebook_03_figure.png"):
        shot = SHOTS / name
        assert shot.is_file() and shot.stat().st_size > 10_000, f"{shot}: missing or empty"
