"""Sphinx extension of the clml book: docstring math, chapter notes, MathJax on every page.

Three jobs, each small:

1. ``autodoc-process-docstring``: the library's docstrings write math as ``$...$`` and
   ``$$...$$`` (Markdown habits) and tables as Markdown pipe tables. reST knows neither, so each
   docstring is rewritten before parsing: display math -> ``.. math::`` blocks, inline math ->
   ``:math:`` roles, pipe tables -> ``.. list-table::``. Text inside ````literals```` is left alone.
2. ``doctree-resolved``: every notebook page gets a note under its title saying how to open it in
   JupyterLab and how long it takes to run, as the notebook's introduction states it
   (``book/build.py`` collects those sentences into ``run_times.json`` in the staged source).
3. MathJax is loaded on every page (section titles with math show up in the sidebar of pages that
   have no math themselves), from ``_static/mathjax`` (copied there from ``clml_mathjax_dir``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from docutils.utils import urischemes

# ---------------------------------------------------------------------------------------------
# 1. Docstrings: $...$, $$...$$ and pipe tables -> reST
# ---------------------------------------------------------------------------------------------

_LITERAL = re.compile(r"``.+?``")
_INLINE = re.compile(
    r"\$\$(.+?)\$\$"  # $$x$$ inside a line: typeset inline
    r"|(?<![\\$])\$(?!\$)(?=\S)(.+?)(?<=\S)(?<![\\$])\$(?!\$)"
)


def _inline_math(text: str) -> str:
    """Replace ``$x$`` by ``:math:`x``` outside ````literal```` spans.

    Escaped spaces (``\\ ``) are inserted where the role touches a word character, so that reST
    still recognises the role (``$N$-th`` -> ``:math:`N`\\ -th``).
    """
    out, pos = [], 0
    for lit in _LITERAL.finditer(text):
        out.append(_inline_math_plain(text[pos:lit.start()]))
        out.append(lit.group(0))
        pos = lit.end()
    out.append(_inline_math_plain(text[pos:]))
    return "".join(out)


def _inline_math_plain(text: str) -> str:
    def repl(m: re.Match) -> str:
        before = text[m.start() - 1] if m.start() > 0 else " "
        after = text[m.end()] if m.end() < len(text) else " "
        tex = m.group(1) if m.group(1) is not None else m.group(2)
        role = ":math:`" + tex.replace("`", r"\`") + "`"
        if before.isalnum() or before in ")]}":
            role = "\\ " + role
        if after.isalnum() or after in "([{":
            role = role + "\\ "
        return role

    return _INLINE.sub(repl, text)


def _open_dollars(line: str) -> bool:
    """True when ``line`` opens an inline ``$...$`` that it does not close (math over lines)."""
    bare = _LITERAL.sub("", line).replace("$$", "").replace("\\$", "")
    return bare.count("$") % 2 == 1


def _join_split_math(lines: list[str]) -> list[str]:
    """Join a line whose inline math or ````literal```` continues on the next line(s) with them
    (same paragraph), so that napoleon's ``type: text`` split never cuts through one."""
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        while (_open_dollars(line) or line.count("``") % 2 == 1) and i < len(lines) \
                and lines[i].strip() \
                and not lines[i].strip().startswith("$$"):
            line = line.rstrip() + " " + lines[i].strip()
            i += 1
        out.append(line)
    return out


_PROTECTED = re.compile(r"``.+?``|:[a-z]+:`[^`]*`")  # literals and roles: left as they are
_SCHEME = re.compile(r"(?<![:\w\\])(" + "|".join(sorted(urischemes.schemes, key=len, reverse=True))
                     + r"):(?![/\s`])")


def _no_bare_uris(text: str) -> str:
    """``file:line`` in prose is not a link: escape the colon of URI-scheme words (outside
    literals) that docutils would otherwise turn into hyperlinks."""
    out, pos = [], 0
    for lit in _PROTECTED.finditer(text):
        out.append(_SCHEME.sub(r"\1\\:", text[pos:lit.start()]))
        out.append(lit.group(0))
        pos = lit.end()
    out.append(_SCHEME.sub(r"\1\\:", text[pos:]))
    return "".join(out)


def _is_table_line(line: str) -> bool:
    s = line.strip()
    return s.startswith("|") and s.endswith("|") and len(s) > 1


def _split_row(line: str) -> list[str]:
    cells, cur, in_math, in_lit = [], "", False, False
    body = line.strip()[1:-1]
    i = 0
    while i < len(body):
        ch = body[i]
        if body.startswith("``", i):
            in_lit = not in_lit
            cur += "``"
            i += 2
            continue
        if ch == "$" and not in_lit:
            in_math = not in_math
        if ch == "|" and not in_math and not in_lit:
            cells.append(cur.strip())
            cur = ""
        else:
            cur += ch
        i += 1
    cells.append(cur.strip())
    return cells


def _table_to_list_table(rows: list[str], indent: str) -> list[str]:
    """A Markdown pipe table (header, ``---`` rule, rows) as a reST ``list-table``."""
    header = _split_row(rows[0])
    rule = rows[1].replace("|", "").replace(":", "").replace("-", "").strip() == ""
    body = rows[2:] if rule else rows[1:]
    out = [f"{indent}.. list-table::", f"{indent}   :header-rows: {1 if rule else 0}", ""]
    for row in ([header] if rule else []) + [_split_row(r) for r in body]:
        for j, cell in enumerate(row):
            mark = "* -" if j == 0 else "  -"
            out.append(f"{indent}   {mark} {_inline_math(cell) or '..'}")
    out.append("")
    return out


def docstring_to_rest(lines: list[str]) -> list[str]:
    """Rewrite one docstring (a list of lines) from its Markdown-flavoured math into reST."""
    lines = _join_split_math(lines)
    out: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = line[: len(line) - len(line.lstrip())]
        if stripped.startswith("$$"):
            # display math: $$ on its own line ... $$, or $$ x $$ on one line
            rest = stripped[2:]
            if rest.rstrip().endswith("$$") and rest.strip() != "":
                body = [rest.rstrip()[:-2]]
                i += 1
            else:
                body = [rest] if rest.strip() else []
                i += 1
                while i < len(lines) and "$$" not in lines[i]:
                    body.append(lines[i].strip())
                    i += 1
                if i < len(lines):
                    last = lines[i].strip()
                    tail = last[: last.index("$$")]
                    if tail.strip():
                        body.append(tail)
                    i += 1
            if out and out[-1].strip():
                out.append("")
            out.append(f"{indent}.. math::")
            out.append("")
            out.extend(f"{indent}   {b}" for b in body if b.strip())
            out.append("")
            continue
        if _is_table_line(line) and i + 1 < len(lines) and _is_table_line(lines[i + 1]):
            rows = []
            while i < len(lines) and _is_table_line(lines[i]):
                rows.append(lines[i])
                i += 1
            if out and out[-1].strip():
                out.append("")
            out.extend(_table_to_list_table(rows, indent))
            continue
        out.append(_no_bare_uris(_inline_math(line)))
        i += 1
    return out


def _process_docstring(app, what, name, obj, options, lines):
    lines[:] = docstring_to_rest(list(lines))


# ---------------------------------------------------------------------------------------------
# 2. The chapter note: how to open the notebook, how long it runs
# ---------------------------------------------------------------------------------------------


def _run_times(app) -> dict:
    path = Path(app.srcdir) / "run_times.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _add_chapter_note(app, doctree, docname):
    times = _run_times(app)
    if docname not in times:
        return
    info = times[docname]
    note = nodes.admonition(classes=["note", "clml-chapter-note"])
    note += nodes.title(text="Run this chapter yourself")
    p1 = nodes.paragraph()
    p1 += nodes.Text("From the repository root: ")
    p1 += nodes.literal(text=f"source scripts/env.sh && jupyter lab {info['path']}")
    p1 += nodes.Text(" (the first call of env.sh installs the environment). ")
    p1 += nodes.Text("Download the executed notebook: ")
    href = Path(info["path"]).name
    p1 += nodes.reference(text=href, refuri=href, internal=False)
    p1 += nodes.Text(".")
    p2 = nodes.paragraph()
    if info.get("stated"):
        p2 += nodes.Text(f"Runs in {info['stated']} ")
    else:
        p2 += nodes.Text("Run time: not stated in the notebook. ")
    p2 += nodes.Text("All chapters: ")
    p2 += nodes.reference(text="run times", refuri=app.builder.get_relative_uri(docname,
                                                                                 "run_times"))
    p2 += nodes.Text(".")
    note += p1
    note += p2
    # after the first section title
    for section in doctree.findall(nodes.section):
        section.insert(1, note)
        break
    else:
        doctree.insert(0, note)


def _copy_mathjax(app, exception):
    """MathJax 3 (its ``es5`` build and licence only) into ``_static/mathjax``."""
    if exception is not None or app.builder.format != "html":
        return
    import shutil

    src = Path(app.config.clml_mathjax_dir)
    dst = Path(app.outdir) / "_static" / "mathjax"
    shutil.copytree(src / "es5", dst / "es5", dirs_exist_ok=True)
    shutil.copyfile(src / "LICENSE", dst / "LICENSE")


def _copy_notebooks(app, exception):
    """Each notebook next to its page, so that the note's download link resolves."""
    if exception is not None or app.builder.format != "html":
        return
    import shutil

    for docname, info in _run_times(app).items():
        src = Path(app.srcdir) / info["path"]
        dst = Path(app.outdir) / info["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)


def setup(app):
    # before napoleon (priority 500): it splits "Returns:" text at a colon outside literals
    app.connect("autodoc-process-docstring", _process_docstring, priority=400)
    app.connect("doctree-resolved", _add_chapter_note)
    app.add_config_value("clml_mathjax_dir", "", "html")
    app.connect("build-finished", _copy_notebooks)
    app.connect("build-finished", _copy_mathjax)
    app.set_html_assets_policy("always")  # MathJax on every page
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
