"""``python -m clml_lib.train --config params/x.yaml --set key=value ...`` (also under torchrun)."""

from __future__ import annotations

import argparse
import json
import sys

from .config import TrainConfig, load_config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m clml_lib.train",
        description="Train one CLML run from a YAML preset plus key=value overrides.",
    )
    parser.add_argument("--config", help="YAML (or JSON) file of TrainConfig fields")
    parser.add_argument("--set", nargs="+", action="extend", default=[], metavar="KEY=VALUE",
                        help="override fields, values parsed as YAML (e.g. --set use_clml=false "
                             "lr=1e-3); may be repeated")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.set)
    except (ValueError, FileNotFoundError) as err:
        parser.error(str(err))
    if args.print_config:
        print(json.dumps(cfg.to_dict(), indent=1))
        return 0
    from .engine import fit

    summary = fit(cfg)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
