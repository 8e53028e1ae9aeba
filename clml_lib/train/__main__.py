"""``python -m clml_lib.train -f params/paper.yaml -f params/voc.yaml --set key=value ...``
(also under torchrun). ``--help`` lists every field of the schema with its default.

Exit status: 0 when the run finished, 2 for a bad parameter file or value (nothing ran), 1 when
training refused or failed on its input (a ``ValueError`` or ``OSError``: data, weights, resume,
lock file, full disk; one line ``error: ...``); other errors keep their traceback."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..atomic import atomic_write_text
from ..paths import NOTEBOOKS, PROJECT_ROOT
from .config import (
    PARAMETERS_CELL_MARKER,
    help_text,
    load_config,
    parameters_cell_source,
    render_configuration_md,
    render_parameters_cell,
)

#: The configuration guide whose field table is generated from the schema.
CONFIGURATION_MD = PROJECT_ROOT / "docs" / "configuration.md"
#: The notebook whose parameters cell is generated from the schema (jupytext twin, then .ipynb).
REPRODUCE_PY = NOTEBOOKS / "reproduce.py"
REPRODUCE_IPYNB = NOTEBOOKS / "reproduce.ipynb"


def write_notebook_parameters(py: Path = REPRODUCE_PY, ipynb: Path = REPRODUCE_IPYNB) -> None:
    """Write :func:`~.config.parameters_cell_source` into the parameters cell of ``py`` (its
    jupytext source) and of ``ipynb`` (the cell tagged ``parameters``; the other cells and every
    output are left as they are, so the notebook needs executing again afterwards).

    Raises:
        ValueError: either file lacks its parameters cell, or ``ipynb`` has more than one.
    """
    import nbformat

    text = render_parameters_cell(py.read_text(encoding="utf-8"))
    nb = nbformat.read(str(ipynb), as_version=4)
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    if len(cells) != 1:
        raise ValueError(f"{ipynb} must hold one cell tagged 'parameters' (the twin of "
                         f"{PARAMETERS_CELL_MARKER!r}), found {len(cells)}")
    cells[0].source = parameters_cell_source()
    atomic_write_text(py, text)
    body = nbformat.writes(nb)
    atomic_write_text(ipynb, body if body.endswith("\n") else body + "\n")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m clml_lib.train",
        description="Train one CLML run from parameter files (composed in order, like papermill's\n"
        "-f) plus NAME=VALUE overrides. Relative path fields are taken from the project root.",
        epilog=help_text(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-f", "--config", action="append", default=[], metavar="FILE",
                        help="YAML (or JSON) file of fields; repeat to layer files (later wins)")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="NAME=VALUE",
                        help="override fields (e.g. --set use_clml=false lr=1e-3); repeatable")
    parser.add_argument("--print-config", action="store_true",
                        help="print the resolved config as JSON and exit")
    parser.add_argument("--write-docs", action="store_true",
                        help="regenerate the field table of docs/configuration.md and exit")
    parser.add_argument("--write-notebook", action="store_true",
                        help="regenerate the parameters cell of notebooks/reproduce.py and .ipynb "
                        "and exit (execute the notebook again afterwards)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.write_docs:
        path = Path(CONFIGURATION_MD)
        atomic_write_text(path, render_configuration_md(path.read_text(encoding="utf-8")))
        print(f"wrote the field table of {path}")
    if args.write_notebook:
        write_notebook_parameters()
        print(f"wrote the parameters cell of {REPRODUCE_PY} and {REPRODUCE_IPYNB} "
              "(execute the notebook again)")
    if args.write_docs or args.write_notebook:
        return 0
    try:
        cfg = load_config(args.config, args.set)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    from .engine import fit

    try:
        summary = fit(cfg)
    except (ValueError, OSError) as err:  # a refusal (data, weights, resume, lock file, disk)
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
