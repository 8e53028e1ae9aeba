"""How many seeds does a verdict need to hold on another machine? A table of probabilities.

    python scripts/replication.py --mean 0 0.15 0.3 --sd 0.5 [--seeds 10 20 30 50 100] [--delta 0.5]

For each true mean paired gain μ (``--mean``) and standard deviation σ of one paired gain
(``--sd``), it prints the probability that two independent replications of n seeds each (e.g. the
same grid on two machines, whose float kernels make every run a new draw) get the same practical
verdict, and the same size class (does the change reach δ?), for each n of ``--seeds``:
:func:`clml_lib.stats.replication_agreement` (simulated pairs, seeded: the output is the same on
every run). Take μ and σ from runs already made (``scripts/compare_runs.py`` prints them for
two runs of one grid); docs/evaluation.md §9 reads such a table.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clml_lib.stats import (  # noqa: E402
    DEFAULT_SMALLEST_EFFECT, REPLICATION_DRAWS, replication_agreement)

LEVELS = {"verdict": "same verdict", "size": "same size class"}


def table(means: list[float], sds: list[float], seeds: list[int], delta: float) -> str:
    """The markdown table: one row per (μ, σ, level), one column per seed count."""
    lines = ["| mean gain μ | sd σ of one gain | probability of the | "
             + " | ".join(f"n = {n}" for n in seeds) + " |",
             "|---|---|---|" + "---|" * len(seeds)]
    for mu in means:
        for sd in sds:
            for level, name in LEVELS.items():
                ps = [replication_agreement(mu, sd, n, delta, level=level) for n in seeds]
                lines.append(f"| {mu:+.2f} | {sd:.2f} | {name} | "
                             + " | ".join(f"{p:.2f}" for p in ps) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mean", nargs="+", type=float, required=True, help="true mean gains μ")
    ap.add_argument("--sd", nargs="+", type=float, required=True, help="sd σ of one paired gain")
    ap.add_argument("--seeds", nargs="+", type=int, default=[10, 20, 30, 50, 100])
    ap.add_argument("--delta", type=float, default=DEFAULT_SMALLEST_EFFECT,
                    help="smallest effect of interest δ (default %(default)s)")
    args = ap.parse_args(argv)
    try:
        text = table(args.mean, args.sd, args.seeds, args.delta)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"δ = {args.delta:g}; 95 % t intervals; {REPLICATION_DRAWS:,} simulated pairs of "
          "replications each\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
