"""How the gap between a reshaped format and its low-rank baseline changes with the training budget.

Reads the ``results.csv`` of several runs of the same table under budgets of different lengths (for
example ``--budget cpu --finetune-steps 125``, ``250``, the ``cpu`` budget's 500 and the ``long`` budget's
2,000 steps) and, for each pair such as ``cp:rcp``, lists the two cells' test accuracy and the gap
(reshaped − baseline, in points) against the cell's number of optimisation steps (sequential and
fine-tuning steps together, read from the CSV) and the training images they saw (steps × the run's batch
size, read from its ``config.json``; budgets with different batch sizes compare by images)::

    python -m tnn.experiments.budget_gap --runs runs/gap125 runs/gap250 docs/results/resnet32-cpu-recipe \\
        docs/results/resnet32-long --pairs cp:rcp tt:rtt --rate 0.05 --out docs/results/resnet32-gap

writes ``OUT/gap.csv``, ``OUT/gap.md`` and ``OUT/gap_vs_budget.png``.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tnn.experiments import plots
from tnn.experiments.tables import csv_text, finished_cells, read_csv
from tnn.formats import FORMATS
from tnn.io import atomic_write_text

__all__ = ["gap_rows", "gap_markdown", "parse_pair"]

GAP_FIELDS = ("baseline", "reshaped", "rate", "steps", "images", "baseline_acc", "reshaped_acc", "gap_points",
              "run")


def parse_pair(text: str) -> tuple[str, str]:
    """``"cp:rcp"`` → ``("cp", "rcp")``; both must be formats of :data:`tnn.formats.FORMATS`."""
    parts = text.split(":")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"a pair is BASELINE:RESHAPED, e.g. cp:rcp; got {text!r}")
    unknown = [p for p in parts if p not in FORMATS]
    if unknown:
        raise ValueError(f"unknown format(s) {unknown} in pair {text!r}; valid formats: {', '.join(FORMATS)}")
    return parts[0], parts[1]


def _steps(row: dict[str, Any]) -> int:
    return int(row.get("steps_seq") or 0) + int(row.get("steps_ft") or 0)


def gap_rows(
    runs: Sequence[tuple[str, Sequence[dict[str, Any]]]],
    pairs: Sequence[tuple[str, str]],
    rate: float,
    metric: str = "acc_final_test",
    batch_sizes: dict[str, int] | None = None,
) -> list[dict[str, Any]]:
    """One row per (pair, run) whose two cells at ``rate`` both finished.

    Parameters
    ----------
    runs : sequence of (name, rows)
        Each run's ``results.csv`` rows (:func:`tnn.experiments.tables.read_csv`) and a name for it.
    pairs : sequence of (baseline, reshaped)
    rate : float
        The target rate of the cells compared.
    metric : str
        The accuracy column compared (fractions); the gap is reported in points.
    batch_sizes : dict, optional
        Run name -> its batch size; gives the ``images`` column (steps × batch; ``None`` where unknown).

    Returns
    -------
    list of dict
        Keys :data:`GAP_FIELDS`, sorted by pair, then images seen (where every row has them), then steps.

    Raises
    ------
    ValueError
        When the two cells of a pair in one run were trained for different numbers of steps.
    """
    out = []
    for name, rows in runs:
        cells = finished_cells(rows)
        for base, reshaped in pairs:
            a, b = cells.get((base, float(rate))), cells.get((reshaped, float(rate)))
            if a is None or b is None or a.get(metric) is None or b.get(metric) is None:
                continue
            if _steps(a) != _steps(b):
                raise ValueError(f"run {name}: {base} was trained for {_steps(a)} steps and {reshaped} for "
                                 f"{_steps(b)}; a gap needs the same budget")
            x, y = 100 * float(a[metric]), 100 * float(b[metric])
            batch = (batch_sizes or {}).get(name)
            out.append({"baseline": base, "reshaped": reshaped, "rate": rate, "steps": _steps(a),
                        "images": _steps(a) * batch if batch else None,
                        "baseline_acc": round(x, 2), "reshaped_acc": round(y, 2),
                        "gap_points": round(y - x, 2), "run": name})
    pair_order = {p: i for i, p in enumerate(pairs)}
    by_images = all(r["images"] is not None for r in out)
    return sorted(out, key=lambda r: (pair_order[(r["baseline"], r["reshaped"])],
                                      r["images"] if by_images else 0, r["steps"]))


def _run_batch_size(folder: Path) -> int | None:
    """The batch size of the budget an experiment folder ran (its ``config.json``), if recorded."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    budget = json.loads(path.read_text()).get("budget") or {}
    batch = budget.get("batch_size")
    return int(batch) if isinstance(batch, int) and batch > 0 else None


def gap_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """A table: pair, steps, images seen, both accuracies (%) and the gap (points)."""
    lines = ["| pair | rate | steps | images seen | baseline % | reshaped % | gap (points) |",
             "|" + " --- |" * 7]
    for r in rows:
        images = f"{r['images']:,}" if r.get("images") else "—"
        lines.append(f"| {r['baseline']} / {r['reshaped']} | {r['rate']:g} | {r['steps']} | {images} | "
                     f"{r['baseline_acc']:.2f} | {r['reshaped_acc']:.2f} | {r['gap_points']:+.2f} |")
    return "\n".join(lines) + "\n"


def write_gap_outputs(out: str | os.PathLike[str], rows: Sequence[dict[str, Any]], title: str = "") -> None:
    """``gap.csv``, ``gap.md`` and (with matplotlib) ``gap_vs_budget.png`` in ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "gap.csv", csv_text(rows, GAP_FIELDS))
    atomic_write_text(out / "gap.md", (f"### {title}\n\n" if title else "") + gap_markdown(rows))
    if plots.available():
        plots.gap_vs_budget(rows, out / "gap_vs_budget.png", title=title)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m tnn.experiments.budget_gap", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", nargs="+", required=True, metavar="DIR",
                   help="experiment folders (each with results.csv), one per budget")
    p.add_argument("--pairs", nargs="+", default=["cp:rcp", "tt:rtt"], metavar="BASE:RESHAPED")
    p.add_argument("--rate", type=float, required=True, help="target rate of the compared cells")
    p.add_argument("--out", required=True, help="folder for gap.csv, gap.md and gap_vs_budget.png")
    p.add_argument("--title", default="", help="title of the table and plot")
    args = p.parse_args(argv)
    try:
        pairs = [parse_pair(t) for t in args.pairs]
        runs, batch_sizes = [], {}
        for d in args.runs:
            path = Path(d) / "results.csv"
            if not path.is_file():
                raise ValueError(f"{path} does not exist: every --runs folder needs a results.csv")
            runs.append((str(d), read_csv(path)))
            batch = _run_batch_size(Path(d))
            if batch:
                batch_sizes[str(d)] = batch
        rows = gap_rows(runs, pairs, args.rate, batch_sizes=batch_sizes)
    except ValueError as exc:
        p.error(str(exc))
    write_gap_outputs(args.out, rows, title=args.title)
    print(gap_markdown(rows), end="")


if __name__ == "__main__":
    main()
