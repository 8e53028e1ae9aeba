"""Sphinx extension of the clml book: docstring math, chapter notes, links, toggles, tidy output.

Each job small and separate:

1. ``autodoc-process-docstring``: the library's docstrings write math as ``$...$`` and
   ``$$...$$`` (Markdown habits) and tables as Markdown pipe tables. reST knows neither, so each
   docstring is rewritten before parsing: display math -> ``.. math::`` blocks, inline math ->
   ``:math:`` roles, pipe tables -> ``.. list-table::``. Text inside ````literals```` is left alone.
2. ``doctree-read``: ``# NBVAL_...`` marker lines (instructions to nbval, not to the reader) are
   taken out of code blocks; table columns that are empty or say "n/a" in every row are left
   out, with a line under the table naming them; the numbered sections of each page ("2.1 ...")
   are collected for the cross-references.
3. ``doctree-resolved``: repository paths of pages written in prose or inline code
   (``docs/method.md §2.1``, ``notebooks/solutions/ch01.md``, ``clml_lib/losses/nuclear.py``)
   become links to the page, and to the numbered section when a ``§n`` follows. Every notebook
   page gets a note under its title: how to open it in JupyterLab, its measured run time
   (``book/build.py`` writes ``run_times.json`` in the staged source), its folded solutions.
4. The ``clml-toggle`` directive: a closed ``<details>`` whose summary is the argument
   (the exercise solutions).
5. MathJax is loaded on every page (section titles with math show up in the sidebar of pages that
   have no math themselves), from ``_static/mathjax`` (copied there from ``clml_mathjax_dir``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from docutils import nodes
from docutils.utils import urischemes
from sphinx.util.docutils import SphinxDirective

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
# 2. Read-time tidying: nbval markers, empty table columns, numbered sections
# ---------------------------------------------------------------------------------------------

NBVAL_LINE = re.compile(r"^[ \t]*#[ \t]*NBVAL_[A-Z_]+[ \t]*$\n?", re.M)


def _strip_nbval(doctree) -> None:
    """Remove ``# NBVAL_...`` marker lines from every code block of the page."""
    for block in doctree.findall(nodes.literal_block):
        text = block.astext()
        if "NBVAL_" not in text:
            continue
        clean = NBVAL_LINE.sub("", text)
        block[:] = [nodes.Text(clean)]
        block.rawsource = clean


def _is_empty_cell(text: str) -> bool:
    t = " ".join(text.split()).lower()
    return t in ("", "-", "—") or t.startswith("n/a")


def _drop_empty_columns(doctree) -> None:
    """Leave out table columns whose body cells are all empty, "-" or "n/a ..."; a paragraph
    under the table names each column left out and what every row said."""
    for table in list(doctree.findall(nodes.table)):
        tgroup = next(iter(table.findall(nodes.tgroup)), None)
        if tgroup is None:
            continue
        head = [r for th in tgroup.findall(nodes.thead) for r in th.findall(nodes.row)]
        body = [r for tb in tgroup.findall(nodes.tbody) for r in tb.findall(nodes.row)]
        rows = head + body
        ncols = int(tgroup.get("cols", 0))
        if not body or any(len(r) != ncols for r in rows) or any(
                e.get("morecols") or e.get("morerows") for r in rows for e in r):
            continue  # spans: leave the table as written
        drop = [j for j in range(ncols) if all(_is_empty_cell(r[j].astext()) for r in body)]
        if not drop or len(drop) == ncols:
            continue
        said = []
        for j in drop:
            name = " ".join(head[-1][j].astext().split()) if head else f"column {j + 1}"
            values = sorted({" ".join(r[j].astext().split()) for r in body})
            said.append(f"“{name}” ({' / '.join(f'“{v}”' for v in values if v) or 'empty'} "
                        "in every row)")
        for j in sorted(drop, reverse=True):
            for r in rows:
                del r[j]
        specs = [c for c in tgroup.children if isinstance(c, nodes.colspec)]
        for j in sorted(drop, reverse=True):
            tgroup.remove(specs[j])
        tgroup["cols"] = ncols - len(drop)
        note = nodes.paragraph(classes=["clml-dropped-columns"])
        note += nodes.Text("Left out of this table: " + "; ".join(said) + ".")
        table.parent.insert(table.parent.index(table) + 1, note)


SECTION_NUMBER = re.compile(r"^(\d+[a-z]?(?:\.\d+[a-z]?)*)\.?(?=\s)")


def _collect_sections(app, doctree) -> None:
    """Numbered sections of the page (``## 2. Method``, ``### 2.1 ...``) -> their HTML ids."""
    numbers = {}
    for section in doctree.findall(nodes.section):
        title = next(iter(section.findall(nodes.title)), None)
        m = SECTION_NUMBER.match(title.astext().strip()) if title is not None else None
        if m and section["ids"] and m.group(1) not in numbers:
            numbers[m.group(1)] = section["ids"][0]
    env = app.env
    if not hasattr(env, "clml_sections"):
        env.clml_sections = {}
    env.clml_sections[env.docname] = numbers


def _doctree_read(app, doctree):
    _strip_nbval(doctree)
    _drop_empty_columns(doctree)
    _collect_sections(app, doctree)


def _purge_sections(app, env, docname):
    getattr(env, "clml_sections", {}).pop(docname, None)


def _merge_sections(app, env, docnames, other):
    if not hasattr(env, "clml_sections"):
        env.clml_sections = {}
    env.clml_sections.update({d: s for d, s in getattr(other, "clml_sections", {}).items()
                              if d in docnames})


# ---------------------------------------------------------------------------------------------
# 3. Cross-references as links; the chapter note
# ---------------------------------------------------------------------------------------------

XREF_PATH = (r"(?:(?:docs|notebooks|data)/(?:[\w.-]+/)*[\w.-]+\.(?:md|ipynb)"
             r"|clml_lib/(?:[\w]+/)*[\w]+\.py|notebooks/solutions/?(?![\w.]))")
SECTION_REF = r"§\s?(\d+[a-z]?(?:\.\d+[a-z]?)*)"
XREF_TEXT = re.compile(r"(?<![\w/.-])(" + XREF_PATH + r")((?:,?\s*)" + SECTION_REF + ")?")
XREF_SECTION = re.compile(r"^(\s*)" + SECTION_REF)
_SKIP_PARENTS = (nodes.reference, nodes.literal_block, nodes.raw, nodes.math, nodes.math_block,
                 nodes.comment, nodes.target, nodes.FixedTextElement)


def _target(env, path: str) -> tuple[str, str] | None:
    """A repository path -> (docname, anchor) of its page in this site, or None."""
    path = path.rstrip("/")
    if path == "notebooks/solutions":
        doc = "notebooks/solutions/README"
        return (doc, "") if doc in env.found_docs else None
    if path.startswith("clml_lib/") and path.endswith(".py"):
        parts = path[:-3].split("/")
        if parts[-1] == "__init__":
            parts = parts[:-1]
        # the module's entry in the Python domain (written by automodule on its API page)
        entry = env.get_domain("py").data.get("modules", {}).get(".".join(parts))
        return (entry[0], entry[1]) if entry else None
    doc = path.rsplit(".", 1)[0]
    return (doc, "") if doc in env.found_docs else None


def _section_anchor(env, docname: str, number: str) -> str:
    """The id of section ``number`` of ``docname``, else of its longest numbered parent."""
    sections = getattr(env, "clml_sections", {}).get(docname, {})
    parts = number.split(".")
    while parts:
        key = ".".join(parts)
        if key in sections:
            return sections[key]
        if key[-1].isalpha():  # 5b -> 5
            parts[-1] = parts[-1].rstrip("abcdefghijklmnopqrstuvwxyz")
            if not parts[-1]:
                parts.pop()
            continue
        parts.pop()
    return ""


def _ref(app, fromdoc: str, target: tuple[str, str], number: str | None, *children):
    doc, anchor = target
    if number:
        anchor = _section_anchor(app.env, doc, number) or anchor
    uri = app.builder.get_relative_uri(fromdoc, doc) + (f"#{anchor}" if anchor else "")
    ref = nodes.reference("", "", *children, refuri=uri, internal=True,
                          classes=["clml-xref"])
    return ref


def _inside(node, kinds) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, kinds):
            return True
        parent = parent.parent
    return False


def _link_paths(app, doctree, docname) -> None:
    """Turn repository paths of site pages (with an optional ``§n``) into links."""
    env = app.env
    # inline code: `docs/method.md` (and a "§2.1" right after it)
    for lit in list(doctree.findall(nodes.literal)):
        if _inside(lit, _SKIP_PARENTS) or not re.fullmatch(XREF_PATH, lit.astext().strip()):
            continue
        target = _target(env, lit.astext().strip())
        if target is None:
            continue
        parent = lit.parent
        i = parent.index(lit)
        number, children = None, [lit.deepcopy()]
        after = parent[i + 1] if i + 1 < len(parent) else None
        if isinstance(after, nodes.Text):
            m = XREF_SECTION.match(str(after))
            if m:
                number = m.group(2)
                children.append(nodes.Text(m.group(0)))
                rest = str(after)[m.end():]
                if rest:
                    parent.replace(after, nodes.Text(rest))
                else:
                    parent.remove(after)
        parent.replace(lit, _ref(app, docname, target, number, *children))
    # plain text: docs/method.md §2.1
    for text in list(doctree.findall(nodes.Text)):
        parent = text.parent
        if parent is None or _inside(text, _SKIP_PARENTS + (nodes.literal,)):
            continue
        s = str(text)
        pieces, pos = [], 0
        for m in XREF_TEXT.finditer(s):
            target = _target(env, m.group(1))
            if target is None:
                continue
            pieces.append(nodes.Text(s[pos:m.start()]))
            pieces.append(_ref(app, docname, target, m.group(3), nodes.Text(m.group(0))))
            pos = m.end()
        if not pieces:
            continue
        pieces.append(nodes.Text(s[pos:]))
        i = parent.index(text)
        parent.remove(text)
        for k, piece in enumerate(p for p in pieces if not (isinstance(p, nodes.Text) and
                                                             not str(p))):
            parent.insert(i + k, piece)


def _run_times(app) -> dict:
    path = Path(app.srcdir) / "run_times.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _add_chapter_note(app, doctree, docname):
    times = _run_times(app)
    if docname not in times:
        return
    info = times[docname]
    uri = app.builder.get_relative_uri
    note = nodes.admonition(classes=["note", "clml-chapter-note"])
    note += nodes.title(text="Run this chapter yourself")
    p1 = nodes.paragraph()
    p1 += nodes.Text("In a clone of the repository (")
    p1 += nodes.reference(text="get the code", refuri=uri(docname, "index")
                          + "#get-the-code-and-run-it", internal=True)
    p1 += nodes.Text("): ")
    p1 += nodes.literal(text="bash scripts/lab.sh")
    p1 += nodes.Text(" opens JupyterLab on the notebooks folder with the project's kernel; open ")
    p1 += nodes.literal(text=info["path"])
    p1 += nodes.Text(" (or its ")
    p1 += nodes.literal(text=Path(info["path"]).with_suffix(".py").name)
    p1 += nodes.Text(" twin, which opens as the same notebook). Download the executed notebook: ")
    href = Path(info["path"]).name
    p1 += nodes.reference(text=href, refuri=href, internal=False)
    p1 += nodes.Text(".")
    p2 = nodes.paragraph()
    p2 += nodes.Text(f"Measured run time: {info['measured']}. All notebooks: ")
    p2 += nodes.reference(text="run times", refuri=uri(docname, "run_times"), internal=True)
    p2 += nodes.Text(".")
    note += p1
    note += p2
    if info.get("solutions"):
        p3 = nodes.paragraph()
        p3 += nodes.Text("Solutions to the exercises at its end, folded until you open them: ")
        p3 += nodes.reference(text="solutions", refuri=uri(docname, info["solutions"]),
                              internal=True)
        p3 += nodes.Text(".")
        note += p3
    # after the first section title
    for section in doctree.findall(nodes.section):
        section.insert(1, note)
        break
    else:
        doctree.insert(0, note)


def _doctree_resolved(app, doctree, docname):
    _link_paths(app, doctree, docname)
    _add_chapter_note(app, doctree, docname)


# ---------------------------------------------------------------------------------------------
# 4. The toggle: a closed <details>
# ---------------------------------------------------------------------------------------------


class toggle(nodes.General, nodes.Element):  # noqa: N801 (docutils node names are lower case)
    """A foldable block: ``<details class="clml-toggle"><summary>...</summary>...</details>``."""


def _visit_toggle_html(self, node):
    from html import escape

    self.body.append(f'<details class="clml-toggle"><summary>{escape(node["summary"])}'
                     "</summary>\n")


def _depart_toggle_html(self, node):
    self.body.append("</details>\n")


def _visit_toggle_text(self, node):  # other builders: the content, unfolded
    pass


class ToggleDirective(SphinxDirective):
    """``:::{clml-toggle} Summary text`` ... ``:::``: the content folded under the summary."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = True

    def run(self):
        node = toggle(summary=self.arguments[0])
        self.set_source_info(node)
        self.state.nested_parse(self.content, self.content_offset, node)
        return [node]


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
    app.connect("doctree-read", _doctree_read)
    app.connect("env-purge-doc", _purge_sections)
    app.connect("env-merge-info", _merge_sections)
    app.connect("doctree-resolved", _doctree_resolved)
    app.add_node(toggle, html=(_visit_toggle_html, _depart_toggle_html),
                 text=(_visit_toggle_text, _visit_toggle_text),
                 latex=(_visit_toggle_text, _visit_toggle_text))
    app.add_directive("clml-toggle", ToggleDirective)
    app.add_config_value("clml_mathjax_dir", "", "html")
    app.connect("build-finished", _copy_notebooks)
    app.connect("build-finished", _copy_mathjax)
    app.set_html_assets_policy("always")  # MathJax on every page
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
