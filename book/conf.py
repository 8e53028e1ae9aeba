"""Sphinx configuration of the clml book (built by ``bash scripts/book.sh``; see book/build.py).

The source directory is a staged copy of the repository's own layout (README.md as index.md,
notebooks/, docs/, data/README.md, the generated API and run-time pages), so links written for
the repository (``notebooks/03_low_rank_terms.ipynb``) resolve in the site too. Nothing is
fetched at build or view time: the theme ships with its Python package and MathJax 3 is copied
(its ``es5`` build and licence) from the ``django-static-mathjax`` wheel into ``_static/mathjax``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

BOOK = Path(__file__).resolve().parent
sys.path.insert(0, str(BOOK / "_ext"))


def _mathjax_dir() -> str:
    """MathJax 3's folder (holding ``es5/``) inside the installed django-static-mathjax package."""
    spec = importlib.util.find_spec("mathjax")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "MathJax 3 is not installed: pip install -e '.[book]' (package django-static-mathjax)"
        )
    static = Path(list(spec.submodule_search_locations)[0]) / "static"
    if not (static / "mathjax" / "es5" / "tex-svg.js").is_file():
        raise RuntimeError(
            f"{static}/mathjax/es5/tex-svg.js missing: reinstall django-static-mathjax"
        )
    return str(static / "mathjax")


project = "clml: CLML, reference and teachable"
author = "the clml authors"
root_doc = "index"
extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
    "clml_book",
]
exclude_patterns = ["_build", "**.ipynb_checkpoints", "run_times.json"]
suppress_warnings = ["myst.header"]  # chapters may skip heading levels (## under #)

# notebooks: rendered from their committed outputs, never executed
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3

# API reference from the docstrings
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
autodoc_preserve_defaults = True  # signatures show `folder=PARAMS_DIR`, not a path of this machine
autodoc_inherit_docstrings = False  # torch.autograd.Function docstrings are not ours
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# math: MathJax 3 served by the site itself, SVG output (no font files to fetch)
mathjax_path = "mathjax/es5/tex-svg.js"
mathjax3_config = {
    "tex": {"tags": "ams"},
    "svg": {"fontCache": "global"},
    "options": {"enableMenu": False},
}

#: the repository's address, shown on the landing page and as the header's repository button.
#: Filled by book/build.py from ``git remote get-url origin`` (credentials dropped); empty when the
#: checkout has no such remote, and then nothing links to a repository (no address is guessed).
clml_repository_url = os.environ.get("CLML_REPOSITORY_URL", "")

html_theme = "sphinx_book_theme"
html_title = "clml: CLML, reference and teachable"
html_static_path = [str(BOOK / "_static")]
clml_mathjax_dir = _mathjax_dir()  # es5/ and LICENSE copied to _static/mathjax/ (clml_book.py)
html_css_files = ["clml_book.css"]
html_js_files = ["clml_book.js"]  # display equations fitted to the column
html_theme_options = {
    "show_toc_level": 2,
    "home_page_in_toc": True,
    "use_download_button": True,
    "navigation_with_keys": False,
    # one search box: the one in the sidebar (none in the top bar)
    "navbar_persistent": [],
    # the results pages' wide tables get the width of the page's table of contents
    "secondary_sidebar_items": {"**": ["page-toc"]} | {
        page: [] for page in ["results"] + [
            p.relative_to(BOOK.parent).with_suffix("").as_posix()
            for p in sorted((BOOK.parent / "docs" / "results").glob("*.md"))]},
}
if clml_repository_url.startswith(("https://", "http://")):
    html_theme_options |= {"repository_url": clml_repository_url, "use_repository_button": True}
# an explicit colour mode: without it the theme logs a console error on the first page a
# browser opens (empty mode in a fresh profile)
html_context = {"default_mode": "auto"}
html_show_sourcelink = False
html_copy_source = True  # the download button offers the page source
