"""The one reader of the project's small YAML and JSON documents: a file that must hold a mapping.

Parameter layers (``params/*.yaml``), grid files (``params/grids/*.yaml``), a run's
``config.json`` / ``metrics.json``, weights sidecars and benchmark layers are all read by
:func:`read_mapping`. It refuses, with a ``ValueError`` naming the file (and ``file:line`` where
the parser knows it):

* **anchors and aliases** (``&a`` / ``*a``, and the merge key ``<<`` built on them): a
  few hundred bytes of nested aliases expand to gigabytes (the "billion laughs" document). No
  parameter file of the project needs them; write the value out instead;
* **a key repeated** in one mapping (YAML and JSON would keep the last one silently);
* a file larger than :data:`MAX_BYTES`, nesting deeper than :data:`MAX_DEPTH`, text that is not
  UTF-8, a document that is not YAML / JSON, and a document that is not a mapping with string
  keys (an empty file is the empty mapping).

YAML is read with PyYAML's safe loader (no ``!!python`` tags); ``.json`` files are read as JSON.
Values in messages are cut to ~200 characters (:func:`clml_lib.checks.clip`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .checks import clip

#: Largest document accepted (bytes): parameter files and grids are a few kilobytes.
MAX_BYTES = 4 * 1024 * 1024
#: Deepest nesting of lists / mappings accepted.
MAX_DEPTH = 64


def read_mapping(path: str | os.PathLike, what: str = "file", *,
                 max_bytes: int = MAX_BYTES) -> dict[str, Any]:
    """Read a YAML (or, for a ``.json`` suffix, JSON) file that must hold a mapping.

    Args:
        path: the file.
        what: what the file is, for messages (``"parameter file"``, ``"grid file"``).
        max_bytes: the largest size accepted.

    Returns:
        The mapping (``{}`` for an empty YAML file), keys in file order.

    Raises:
        FileNotFoundError: no such file (the path is named).
        ValueError: too large, not UTF-8, not YAML / JSON, an anchor or alias, a repeated key,
            nesting deeper than :data:`MAX_DEPTH`, not a mapping, or a key that is not a string;
            the message names the file (``file:line`` where known).
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p}")
    if not p.is_file():
        raise ValueError(f"{what} {p} is not a regular file")
    size = p.stat().st_size
    if size > max_bytes:
        raise ValueError(f"{what} {p}: {size:,} bytes, more than the {max_bytes:,} accepted")
    data = p.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise ValueError(f"{what} {p}: not valid UTF-8 (byte 0x{data[err.start]:02x} at offset "
                         f"{err.start})") from None
    doc = parse_json(text, p, what) if p.suffix.lower() == ".json" else _parse_yaml(text, p, what)
    if doc is None and p.suffix.lower() != ".json":
        doc = {}
    if not isinstance(doc, dict):
        raise ValueError(f"{what} {p} must hold a mapping (key: value lines), got a "
                         f"{type(doc).__name__}: {clip(doc, 80)}")
    bad = [k for k in doc if not isinstance(k, str)]
    if bad:
        raise ValueError(f"{what} {p}: keys must be names (strings), got {clip(bad[0], 80)} "
                         f"({type(bad[0]).__name__})")
    return doc


def parse_json(text: str, path: str | os.PathLike, what: str = "file") -> Any:
    """Parse JSON ``text`` read from ``path``, refusing repeated keys and deep nesting.

    Raises:
        ValueError: not JSON (``file:line:col``), a key repeated in one object, nesting deeper
            than :data:`MAX_DEPTH`.
    """
    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in items:
            if k in out:
                raise _Repeated(k)
            out[k] = v
        return out

    _check_depth_json(text, path, what)
    try:
        return json.loads(text, object_pairs_hook=pairs)
    except _Repeated as rep:
        raise ValueError(f"{what} {path}: the key {clip(rep.key, 80)} appears twice in one "
                         "object (JSON readers keep the last one silently); keep one") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"{what} {path}:{err.lineno}:{err.colno}: not valid JSON: "
                         f"{err.msg}") from None
    except RecursionError:
        raise ValueError(f"{what} {path}: nested too deeply") from None


class _Repeated(Exception):
    def __init__(self, key: str):
        self.key = key


def _check_depth_json(text: str, path: str | os.PathLike, what: str) -> None:
    """Refuse JSON nested deeper than :data:`MAX_DEPTH` before parsing (brackets outside
    strings counted in one pass)."""
    depth, in_str, escaped = 0, False, False
    for ch in text:
        if in_str:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                raise ValueError(f"{what} {path}: nested more than {MAX_DEPTH} levels deep")
        elif ch in "]}":
            depth -= 1


def _parse_yaml(text: str, path: Path, what: str) -> Any:
    import yaml

    loader = None
    try:
        loader = _StrictLoader(text)  # the reader refuses control characters here
        return loader.get_single_data()
    except _Refused as err:
        raise ValueError(f"{what} {path}:{err.line}: {err.reason}") from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = err.problem or err.context or "not valid YAML"
        raise ValueError(f"{what} {path}{line}: not valid YAML: {problem}") from None
    except yaml.YAMLError as err:
        raise ValueError(f"{what} {path}: not valid YAML: {clip(str(err), 200)}") from None
    except RecursionError:
        raise ValueError(f"{what} {path}: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()


class _Refused(Exception):
    def __init__(self, line: int, reason: str):
        self.line, self.reason = line, reason


def _make_loader():
    import yaml

    class StrictLoader(yaml.SafeLoader):
        """SafeLoader without anchors, aliases or repeated keys, and with a depth limit."""

        def compose_node(self, parent, index):  # noqa: D401 - PyYAML hook
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise _Refused(event.start_mark.line + 1,
                               f"alias *{event.anchor[:40]}: anchors and aliases are not "
                               "accepted (a few of them can expand to gigabytes); write the "
                               "value out")
            event = self.peek_event()
            anchor = getattr(event, "anchor", None)
            if anchor is not None:
                raise _Refused(event.start_mark.line + 1,
                               f"anchor &{anchor[:40]}: anchors and aliases are not "
                               "accepted; write the value out")
            self._depth = getattr(self, "_depth", 0) + 1
            try:
                if self._depth > MAX_DEPTH:
                    raise _Refused(event.start_mark.line + 1,
                                   f"nested more than {MAX_DEPTH} levels deep")
                return super().compose_node(parent, index)
            finally:
                self._depth -= 1

        def construct_mapping(self, node, deep=False):
            seen: dict[Any, int] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    hash(key)
                except TypeError:
                    raise _Refused(key_node.start_mark.line + 1,
                                   f"a key must be a name, got {clip(key, 80)}") from None
                if key in seen:
                    raise _Refused(key_node.start_mark.line + 1,
                                   f"the key {clip(key, 80)} appears twice in one mapping "
                                   f"(first at line {seen[key]}; YAML keeps the last one "
                                   "silently); keep one")
                seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


_loader_class = None


def _StrictLoader(text: str):  # noqa: N802 - a class factory, built on first use
    global _loader_class
    if _loader_class is None:
        _loader_class = _make_loader()
    return _loader_class(text)


__all__ = ["read_mapping", "parse_json", "MAX_BYTES", "MAX_DEPTH"]
