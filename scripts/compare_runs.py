"""Does the main job's result hold on another machine? Compare two runs of the same grids.

    python scripts/compare_runs.py --a runs/grids --b runs/grids_emulated \\
        [--grids teaching teaching_ceiling] [--names native emulated] [--seeds 0 1 ...]
        [--out FILE.md]

``--a`` and ``--b`` are two output roots of the grid driver holding the same grids with the same
seeds (e.g. the main job run natively, and again with ``--out runs/grids_emulated`` under
``ATEN_CPU_CAPABILITY=default ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2``, which makes
the float kernels those of another CPU). For every comparison of the grids it prints, per run,
the paired gain with its 95 % t interval and the practical verdict against the grid's smallest
effect of interest δ (:func:`clml_lib.stats.margin_verdict`), and then the two checks of a
result that holds on another machine:

* **same verdict**: the two practical verdicts are identical (and, coarser, **same size class**:
  both say the same about whether the change reaches δ, :data:`clml_lib.stats.SIZE_OF_VERDICT`);
* **means inside**: each run's mean (every arm's test mAP and the gain) lies inside the other
  run's 95 % t interval of that mean.

A second table says how much of a disagreement is noise. The runs of one seed and arm in A and B
differ only by the float kernels (or the machine), so the spread of their difference is the
noise the kernels alone put into one run. The paired gains of both runs, pooled, give a mean and a
standard deviation; with them as the truth, :func:`clml_lib.stats.replication_agreement` gives the
probability that two replications of n seeds each get the same verdict (and the same size class),
for the n of the runs and for more seeds: how many seeds a verdict needs to hold on another machine.

For a single-arm experiment (the full-label ceiling) only the arm's mean is compared. The exit
code is 0 whatever the outcome (a comparison is a measurement, not a test); a grid missing from
either root, or a run with missing seeds, is an error (exit 1) naming it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clml_lib.reproduce.collate import Comparison, build_comparisons  # noqa: E402
from clml_lib.reproduce.grid import load_grid  # noqa: E402
from clml_lib.stats import (  # noqa: E402
    REPLICATION_DRAWS, SIZE_OF_VERDICT, Interval, margin_code, margin_verdict, paired_t_interval,
    replication_agreement)

KEY = "test_mAP"  # the val-selected test mAP, as the main job reports it
#: seed counts at which the probability of the same verdict is shown (besides the runs' own n)
MORE_SEEDS = (20, 30, 50, 100)


def _inside(x: float, iv: Interval) -> bool:
    return iv.lo is not None and iv.hi is not None and iv.lo <= x <= iv.hi


def _load(root: Path, grid_name: str, seeds: list[int] | None = None
          ) -> tuple[dict[tuple[str, str], Comparison], float]:
    """The comparisons of one finished grid under ``root`` (keyed by experiment and variant; the
    grid's seeds, or ``seeds``) and the grid's δ; every planned run must have finished."""
    grid = load_grid(grid_name, seeds=seeds, out=root)
    comparisons, notes = build_comparisons(grid)
    if notes or not comparisons:
        raise SystemExit(f"error: grid {grid_name} in {root} is not complete: "
                         + ("; ".join(notes[:5]) or "no finished run"))
    return {(c.label, c.variant): c for c in comparisons}, grid.smallest_effect


def compare(a_root: Path, b_root: Path, grids: list[str], names: tuple[str, str],
            seeds: list[int] | None = None) -> str:
    """The comparison as markdown (see the module docstring)."""
    na, nb = names
    lines = [f"| experiment | gain [95 % t CI], {na} | verdict, {na} | gain [95 % t CI], {nb} | "
             f"verdict, {nb} | same verdict | same size class | means inside the other's "
             "interval |", "|---|---|---|---|---|---|---|---|"]
    noise: list[str] = []
    seed_counts: set[int] = set()  # n of the paired comparisons, for the noise table's header
    summary = {"rows": 0, "paired": 0, "same": 0, "same_size": 0, "inside": 0}
    for grid_name in grids:
        (a, delta), (b, _) = _load(a_root, grid_name, seeds), _load(b_root, grid_name, seeds)
        if set(a) != set(b):
            raise SystemExit(f"error: grid {grid_name}: the two roots hold different experiments "
                             f"({sorted(set(a) ^ set(b))})")
        for key in a:
            ca, cb = a[key], b[key]
            sides = ["baseline"] + (["clml"] if ca.clml else [])
            if any(len(ca.values(s, KEY)) != len(cb.values(s, KEY)) for s in sides):
                raise SystemExit(f"error: {key[0]}: the two runs have different seed counts")
            # per arm: the mean test mAP with its 95 % t interval over seeds, in run A and run B
            arms = {side: (paired_t_interval(ca.values(side, KEY)),
                           paired_t_interval(cb.values(side, KEY))) for side in sides}
            outside = []
            for side, (ia, ib) in arms.items():
                if not (_inside(ia.mean, ib) and _inside(ib.mean, ia)):
                    outside.append(f"{side} {ia.mean:.2f} / {ib.mean:.2f}")
            label = key[0] + (f" {key[1]}" if ca.clml else " (one arm)")
            if ca.clml:
                ga, gb = ca.interval(KEY), cb.interval(KEY)
                if not (_inside(ga.mean, gb) and _inside(gb.mean, ga)):
                    outside.append(f"gain {ga.mean:+.2f} / {gb.mean:+.2f}")
                code_a, code_b = margin_code(ga, delta), margin_code(gb, delta)
                same = code_a == code_b
                same_size = SIZE_OF_VERDICT[code_a] == SIZE_OF_VERDICT[code_b]
                cells = [ga.text(), margin_verdict(ga, delta), gb.text(), margin_verdict(gb, delta),
                         "yes" if same else "**no**", "yes" if same_size else "**no**"]
                noise.append(noise_row(key[0] + f" {key[1]}", ca, cb, delta))
                seed_counts.add(ga.n)
            else:
                ia, ib = arms["baseline"]
                same = same_size = False
                cells = [f"mAP {ia.text(signed=False)}", "-", f"mAP {ib.text(signed=False)}", "-",
                         "-", "-"]
            inside = not outside
            summary["rows"] += 1
            summary["paired"] += bool(ca.clml)
            summary["same"] += same
            summary["same_size"] += same_size
            summary["inside"] += inside
            cells.append("yes" if inside else "**no**: " + ", ".join(outside))
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"{summary['same']} of {summary['paired']} comparisons with the same practical "
              f"verdict (δ = {delta:g}), {summary['same_size']} of {summary['paired']} with the "
              f"same size class; {summary['inside']} of {summary['rows']} rows with every "
              "mean inside the other run's 95 % t interval."]
    if noise:
        own = str(seed_counts.pop()) if len(seed_counts) == 1 else "the runs' own"
        counts = f"n = {own} / " + " / ".join(str(k) for k in MORE_SEEDS)
        lines += ["", "How much of it is noise: the sd of one paired gain in each run; the sd of "
                  f"the difference {na} − {nb} of the same seed and arm (what the kernels or the "
                  "machine alone change in one run); and, with the pooled gains of both runs as "
                  "the truth, the probability that two replications get the same verdict (same "
                  f"size class) at {counts} seeds ({REPLICATION_DRAWS:,} simulated pairs each).",
                  "",
                  f"| experiment | sd of a paired gain, {na} / {nb} | same run, {na} − {nb}: sd | "
                  f"P(same verdict), {counts} | P(same size class), {counts} |",
                  "|---|---|---|---|---|", *noise]
    return "\n".join(lines)


def _sd(values: list[float]) -> str:
    return f"{float(np.std(values, ddof=1)):.2f}" if len(values) > 1 else "n/a"


def noise_row(label: str, ca: Comparison, cb: Comparison, delta: float) -> str:
    """One row of the noise table (see the module docstring) for a paired comparison run twice
    ("n/a" where fewer than two values make a standard deviation)."""
    ga, gb = list(ca.gains(KEY).values()), list(cb.gains(KEY).values())
    same_run = [side_a[s].summary[KEY] - side_b[s].summary[KEY]
                for side_a, side_b in ((ca.baseline, cb.baseline), (ca.clml, cb.clml))
                for s in sorted(set(side_a) & set(side_b))]
    pooled = np.array(ga + gb)  # (n_a + n_b,) the gains of both runs
    mean, sd = float(pooled.mean()), float(pooled.std(ddof=1))
    p = {level: " / ".join(
        f"{replication_agreement(mean, sd, n, delta, level=level):.2f}" if n > 1 else "n/a"
        for n in (len(ga), *MORE_SEEDS)) for level in ("verdict", "size")}
    return (f"| {label} | {_sd(ga)} / {_sd(gb)} | {_sd(same_run)} ({len(same_run)} runs) | "
            f"{p['verdict']} | {p['size']} |")


def provenance_line(root: Path, grid: str, name: str) -> str:
    """Where and how a root's runs were made (the provenance the main job records), one line."""
    path = root / grid / "results" / "provenance.json"
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return f"* **{name}** ({root}): no provenance.json"
    kernels = ", ".join(f"{k}={v}" for k, v in (doc.get("kernels") or {}).items()) or "default"
    command = " ".join([str(doc.get("command", "?")), *map(str, doc.get("args") or [])])
    return (f"* **{name}**: `{command}` finished {doc.get('finished_utc', '?')}, "
            f"{doc.get('wall_seconds', '?')} s wall, {doc.get('cpu', '?')}, "
            f"{doc.get('cores', '?')} cores, torch {doc.get('torch', '?')}, float kernels: "
            f"{kernels}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--a", required=True, type=Path, help="first output root (e.g. runs/grids)")
    ap.add_argument("--b", required=True, type=Path, help="second output root")
    ap.add_argument("--grids", nargs="+", default=["teaching", "teaching_ceiling"])
    ap.add_argument("--names", nargs=2, default=["A", "B"], metavar=("NAME_A", "NAME_B"))
    ap.add_argument("--seeds", nargs="+", type=int,
                    help="compare these seeds (default: each grid's own), e.g. after "
                         "`bash scripts/main.sh --seeds ...`")
    ap.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = ap.parse_args(argv)
    for root in (args.a, args.b):
        if not root.is_dir():
            print(f"error: {root} is not a folder of grid outputs", file=sys.stderr)
            return 1
    text = compare(args.a, args.b, args.grids, tuple(args.names), args.seeds)
    print(text)
    if args.out:
        cmd = "python scripts/compare_runs.py " + shlex.join(argv if argv is not None
                                                            else sys.argv[1:])
        head = ["# The main job on two machines or kernel settings", "",
                f"Generated by `{cmd}`: the val-selected test mAP of the same grids and seeds, run "
                "twice; the verdict reads each run's paired 95 % t interval against 0 and the "
                "grid's smallest effect of interest δ (docs/evaluation.md §9; how to read a "
                "disagreement, and the noise table: §9a).", "",
                provenance_line(args.a, args.grids[0], args.names[0]),
                provenance_line(args.b, args.grids[0], args.names[1]), "", ""]
        args.out.write_text("\n".join(head) + text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
